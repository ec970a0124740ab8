"""Batched augmentation on the training device with PER-SAMPLE random parameters.

torchvision's v2 transforms draw one crop/flip per call, i.e. one per batch when given a batch
tensor; here every image gets its own offsets, angles and factors, drawn from generators seeded
by (seed, epoch, rank) so a resumed epoch sees exactly the same augmentations.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
import torch.nn.functional as F

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
GRAY = (0.299, 0.587, 0.114)


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (hi - lo) + lo


def crop(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    if padding == 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    oy = torch.randint(0, 2 * padding + 1, (b, 1), generator=gen, device=x.device)
    ox = torch.randint(0, 2 * padding + 1, (b, 1), generator=gen, device=x.device)
    rows = (oy + torch.arange(h, device=x.device))[:, :, None]  # [B, H, 1]
    cols = (ox + torch.arange(w, device=x.device))[:, None, :]  # [B, 1, W]
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # one gather


def flip(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    mask = torch.rand(x.shape[0], generator=gen, device=x.device) < p
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def affine(x: torch.Tensor, gen: torch.Generator, degrees: float = 0.0, translate: float = 0.0,
           shear: float = 0.0, scale: tuple[float, float] = (1.0, 1.0)) -> torch.Tensor:
    """Per-sample rotation/shear/scale/translation through one affine_grid + grid_sample."""
    b, dev = x.shape[0], x.device
    angle = _uniform(b, -degrees, degrees, gen, dev) * (math.pi / 180)
    sh = _uniform(b, -shear, shear, gen, dev) * (math.pi / 180)
    s = _uniform(b, scale[0], scale[1], gen, dev)
    t = _uniform(2 * b, -translate, translate, gen, dev).view(b, 2) * 2  # fraction -> [-1, 1] units
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(sh)
    # forward map M = R(angle) @ Shear_x @ scale; grid_sample wants output -> input, i.e. M^-1
    m = torch.stack([torch.stack([cos, cos * tan - sin], -1), torch.stack([sin, sin * tan + cos], -1)], -2)
    m = m * s[:, None, None]
    inv = torch.linalg.inv(m)
    theta = torch.cat([inv, -(inv @ t[:, :, None])], dim=2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = GRAY
    return r * x[:, 0:1] + g * x[:, 1:2] + b * x[:, 2:3]


def jitter(x: torch.Tensor, gen: torch.Generator, brightness: float = 0.0, contrast: float = 0.0,
           saturation: float = 0.0) -> torch.Tensor:
    b, dev = x.shape[0], x.device
    if brightness:
        x = x * _uniform(b, max(0.0, 1 - brightness), 1 + brightness, gen, dev).view(b, 1, 1, 1)
    if contrast:
        mean = _gray(x).mean((1, 2, 3), keepdim=True)
        f = _uniform(b, max(0.0, 1 - contrast), 1 + contrast, gen, dev).view(b, 1, 1, 1)
        x = (x - mean) * f + mean
    if saturation:
        g = _gray(x)
        f = _uniform(b, max(0.0, 1 - saturation), 1 + saturation, gen, dev).view(b, 1, 1, 1)
        x = (x - g) * f + g
    return x.clamp(0, 1)


def grayscale(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    mask = torch.rand(x.shape[0], generator=gen, device=x.device) < p
    return torch.where(mask[:, None, None, None], _gray(x).expand_as(x), x)


def cutmix(x: torch.Tensor, y: torch.Tensor, alpha: float, p: float, gen: torch.Generator,
           cpu_gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample CutMix with a partner from a shuffled batch: (images, partner labels, lambda),
    lambda = the fraction of each image that is still its own (1 where not applied)."""
    b, _, h, w = x.shape
    dev = x.device
    # Beta has no generator argument: draw it from a CPU fork seeded by our own CPU generator.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=cpu_gen)))
        lam = torch.distributions.Beta(alpha, alpha).sample((b,)).to(dev)
    apply = torch.rand(b, generator=gen, device=dev) < p
    partner = torch.randperm(b, generator=gen, device=dev)
    cut = torch.sqrt(1 - lam)
    ch, cw = (cut * h).long(), (cut * w).long()
    cy = torch.randint(0, h, (b,), generator=gen, device=dev)
    cx = torch.randint(0, w, (b,), generator=gen, device=dev)
    y0, y1 = (cy - ch // 2).clamp(0, h), (cy + ch // 2).clamp(0, h)
    x0, x1 = (cx - cw // 2).clamp(0, w), (cx + cw // 2).clamp(0, w)
    rows = torch.arange(h, device=dev)[None, :, None]
    cols = torch.arange(w, device=dev)[None, None, :]
    box = (rows >= y0[:, None, None]) & (rows < y1[:, None, None]) & (cols >= x0[:, None, None]) & (cols < x1[:, None, None])
    box &= apply[:, None, None]
    mixed = torch.where(box[:, None], x[partner], x)
    own = 1 - box.flatten(1).float().mean(1)  # exact area after clipping at the border
    return mixed, y[partner], own


@functools.lru_cache(maxsize=8)
def _stats(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    # made once per device: a fresh host->device copy every step would stall the GPU's queue
    mean = torch.tensor(MEAN, device=device, dtype=dtype).view(1, 3, 1, 1)
    return mean, torch.tensor(STD, device=device, dtype=dtype).view(1, 3, 1, 1)


def normalize(x: torch.Tensor) -> torch.Tensor:
    mean, std = _stats(x.device, x.dtype)
    return (x - mean) / std


def layout(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The memory layout a batch reaches the model in: channels-last on CUDA (what tensor cores
    want), plain contiguous NCHW on CPU whatever strides augmentation left (the crop's gather is
    channels-last): torch 2.14's oneDNN corrupts memory in the backward of narrow (<= 8 channel)
    convolutions fed channels-last input on CPU (SIGSEGV, double free, or a hang; issue 16)."""
    if device.type == "cuda":
        return x.contiguous(memory_format=torch.channels_last)
    return x.contiguous(memory_format=torch.contiguous_format)


def augment(images: torch.Tensor, labels: torch.Tensor, ops: list[dict[str, Any]], gen: torch.Generator,
            cpu_gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """uint8 [B,3,H,W] -> normalized float, partner labels, own-fraction (None without cutmix)."""
    x = images.float().div_(255)
    partner, own = labels, None
    for op in ops:
        name = op["name"]
        if name == "crop":
            x = crop(x, op["padding"], gen)
        elif name == "flip":
            x = flip(x, op["p"], gen)
        elif name == "rotation":
            x = affine(x, gen, degrees=op["degrees"])
        elif name == "affine":
            x = affine(x, gen, op["degrees"], op["translate"], op["shear"], tuple(op["scale"]))
        elif name == "jitter":
            x = jitter(x, gen, op["brightness"], op["contrast"], op["saturation"])
        elif name == "grayscale":
            x = grayscale(x, op["p"], gen)
        elif name == "cutmix":
            x = normalize(x)  # mix normalized images so the pasted box is on the same scale
            x, partner, own = cutmix(x, labels, op["alpha"], op["p"], gen, cpu_gen)
            return x, partner, own
        else:  # the schema admits only the names above
            raise ValueError(f"unknown augmentation {name!r}")
    return normalize(x), partner, own
