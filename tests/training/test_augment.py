"""Augmentation: batched on the device, per-sample parameters, reproducible under a seed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from train.augment import affine, augment, crop, cutmix, flip, grayscale, jitter
from train.schema import resolve_train


def gens(seed: int = 0) -> tuple[torch.Generator, torch.Generator]:
    return torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)


def same_image_batch(b: int = 16) -> torch.Tensor:
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    return x.expand(b, -1, -1, -1).contiguous()


def distinct(x: torch.Tensor) -> int:
    return len({t.numpy().tobytes() for t in x})


@pytest.mark.parametrize("op", [
    lambda x, g: crop(x, 4, g),
    lambda x, g: flip(x, 0.5, g),
    lambda x, g: affine(x, g, degrees=10),
    lambda x, g: affine(x, g, shear=10, scale=(0.8, 1.2)),
    lambda x, g: jitter(x, g, 0.2, 0.2, 0.2),
    lambda x, g: grayscale(x, 0.5, g),
], ids=["crop", "flip", "rotation", "affine", "jitter", "grayscale"])
def test_each_op_draws_per_sample_parameters(op) -> None:
    out = op(same_image_batch(), gens()[0])
    assert out.shape == (16, 3, 32, 32)
    assert distinct(out) > 1  # one draw per batch would give 16 identical images


def test_crop_is_a_shifted_window_of_the_padded_image() -> None:
    x = torch.rand(8, 3, 32, 32)
    out = crop(x, 4, torch.Generator().manual_seed(1))
    padded = F.pad(x, (4, 4, 4, 4))
    for i in range(8):
        windows = [padded[i, :, dy:dy + 32, dx:dx + 32] for dy in range(9) for dx in range(9)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_augment_is_reproducible_under_a_seed() -> None:
    ops = resolve_train({"augment": [{"name": "crop", "padding": 4}, {"name": "affine", "shear": 10, "scale": [0.8, 1.2]},
                                     {"name": "rotation", "degrees": 10}, {"name": "jitter", "brightness": 0.2},
                                     "flip", "grayscale", {"name": "cutmix", "p": 1.0}]})["augment"]
    x = (torch.rand(32, 3, 32, 32) * 255).to(torch.uint8)
    y = torch.arange(32) % 10
    a = augment(x, y, ops, *gens(5))
    b = augment(x, y, ops, *gens(5))
    c = augment(x, y, ops, *gens(6))
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_cutmix_pastes_partner_boxes_and_reports_the_area() -> None:
    x = torch.stack([torch.full((3, 32, 32), float(i)) for i in range(16)])
    y = torch.arange(16)
    mixed, partner, own = cutmix(x, y, alpha=1.0, p=1.0, gen=gens()[0], cpu_gen=gens()[1])
    for i in range(16):
        from_self = (mixed[i] == i).float().mean()
        assert torch.isclose(from_self, own[i]) or partner[i] == i
        assert set(mixed[i].unique().tolist()) <= {float(i), float(partner[i])}
    assert sorted(partner.tolist()) == list(range(16))
    assert ((own >= 0) & (own <= 1)).all() and (own < 1).any()


def test_grayscale_p1_makes_equal_channels() -> None:
    out = grayscale(torch.rand(4, 3, 8, 8), 1.0, gens()[0])
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])
