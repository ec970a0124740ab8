"""Every optimizer (with and without Lookahead) and every schedule builds and steps."""

from __future__ import annotations

import io

import pytest
import torch

from configcheck import ConfigError
from train.recipe import Lookahead, build_optimizer, lr_at
from train.schema import OPTIMIZERS, SCHEDULERS, resolve_train


def tiny_problem() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.nn.Linear(8, 3), torch.randn(64, 8), torch.randint(0, 3, (64,))


@pytest.mark.parametrize("lookahead", [None, {"k": 3, "alpha": 0.5}])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_steps_and_reduces_loss(name: str, lookahead: dict | None) -> None:
    cfg = resolve_train({"optimizer": {"name": name, **({"lookahead": lookahead} if lookahead else {})}})["optimizer"]
    model, x, y = tiny_problem()
    opt = build_optimizer(model.parameters(), cfg)
    assert isinstance(opt, Lookahead) == bool(lookahead)
    losses = []
    for _ in range(31):  # not a multiple of Lookahead's k: the restored step count matters
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], (name, losses[0], losses[-1])
    # checkpointable: a restored optimizer (on a restored model) takes exactly the next steps
    twin = torch.nn.Linear(8, 3)
    twin.load_state_dict(model.state_dict())
    again = build_optimizer(twin.parameters(), cfg)
    buf = io.BytesIO()  # through bytes, as a checkpoint goes (a state_dict shares the live buffers)
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    again.load_state_dict(torch.load(buf, weights_only=False))
    for _ in range(7):  # past a Lookahead sync (k=3), so its step count and slow weights count too
        for m, o in ((model, opt), (twin, again)):
            loss = torch.nn.functional.cross_entropy(m(x), y)
            o.zero_grad()
            loss.backward()
            o.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b), name


def test_lookahead_pulls_fast_weights_to_slow_every_k() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = Lookahead(torch.optim.SGD([p], lr=1.0), k=2, alpha=0.5)
    for _ in range(2):
        p.grad = torch.ones(1)
        opt.step()
    assert p.item() == pytest.approx(-1.0)  # fast went to -2, slow 0 -> 0 + 0.5 * (-2 - 0)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_schedule_gives_positive_decreasing_lrs(name: str) -> None:
    sched = resolve_train({"scheduler": {"name": name}})["scheduler"]
    lrs = [lr_at(e, 0.1, sched, 200) for e in range(200)]
    assert all(lr >= 0 for lr in lrs) and lrs[0] == pytest.approx(0.1)
    assert all(b <= a + 1e-12 for a, b in zip(lrs, lrs[1:]))


def test_schedules_match_the_seeds_recipes() -> None:
    seed000 = resolve_train({"scheduler": {"name": "step", "step_size": 10, "gamma": 0.9}})["scheduler"]
    assert lr_at(9.9, 1e-3, seed000, 50) == pytest.approx(1e-3)
    assert lr_at(25, 1e-3, seed000, 50) == pytest.approx(1e-3 * 0.81)
    seed001 = resolve_train({"scheduler": {"name": "multistep", "milestones": [100, 150]}})["scheduler"]
    assert [lr_at(e, 0.1, seed001, 200) for e in (99, 100, 150)] == pytest.approx([0.1, 0.01, 0.001])
    cosine = resolve_train({"scheduler": {"name": "cosine", "eta_min": 0.0}})["scheduler"]
    assert lr_at(100, 0.1, cosine, 200) == pytest.approx(0.05)
    warm = resolve_train({"scheduler": {"name": "constant", "warmup_epochs": 2}})["scheduler"]
    assert lr_at(1.0, 0.1, warm, 10) == pytest.approx(0.05, rel=1e-2) and lr_at(3, 0.1, warm, 10) == 0.1


@pytest.mark.parametrize(("raw", "path", "words"), [
    ({"optimizer": {"name": "lbfgs"}}, "train.optimizer.name", "sgd, adam, adamw, rmsprop, adagrad, adadelta"),
    ({"optimizer": {"name": "adam", "momentum": 0.9}}, "train.optimizer.momentum", "valid keys"),
    ({"optimizer": {"name": "sgd", "lr": -1}}, "train.optimizer.lr", ">= 0.0"),
    ({"scheduler": {"name": "multistep", "milestones": [150, 100]}}, "train.scheduler.milestones", "increasing"),
    ({"augment": [{"name": "cutmix"}, "flip"]}, "train.augment[0]", "last op"),
    ({"augment": [{"name": "mixup"}]}, "train.augment[0].name", "crop, flip"),
    ({"epochs": 0}, "train.epochs", ">= 1"),
    ({"batch_size": "64"}, "train.batch_size", "integer"),
    ({"early_stopping": {"metric": "acc"}}, "train.early_stopping.metric", "val_acc"),
    ({"epoch": 3}, "train.epoch", "valid keys: epochs"),
])
def test_bad_train_values_name_the_key(raw: dict, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_train(raw)
    assert info.value.path == path and words in str(info.value)
