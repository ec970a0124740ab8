"""Optimizers (+ Lookahead) and learning-rate schedules from the ``train:`` section.

Schedules are pure functions of the (fractional) epoch, so resuming needs no scheduler state
beyond the epoch counter that the checkpoint already holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch


class Lookahead:
    """Lookahead (Zhang et al. 2019): every ``k`` inner steps, slow += alpha * (fast - slow) and
    fast = slow. Wraps any optimizer; its param_groups are the inner ones (so lr schedules apply)."""

    def __init__(self, inner: torch.optim.Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        self.inner, self.k, self.alpha = inner, k, alpha
        self.param_groups = inner.param_groups
        self.defaults = inner.defaults
        self.state = inner.state
        self.steps = 0
        self.slow = [p.detach().clone() for g in self.param_groups for p in g["params"]]

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = self.inner.step(closure)
        self.steps += 1
        if self.steps % self.k == 0:
            for slow, fast in zip(self.slow, (p for g in self.param_groups for p in g["params"])):
                slow.add_(fast - slow, alpha=self.alpha)
                fast.copy_(slow)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict(), "steps": self.steps, "slow": [s.clone() for s in self.slow]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])
        self.steps = state["steps"]
        for s, saved in zip(self.slow, state["slow"]):
            s.copy_(saved)


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: dict[str, Any]) -> Any:
    params = list(params)
    name, wd, lr = cfg["name"], cfg["weight_decay"], cfg["lr"]
    if name == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=lr, momentum=cfg["momentum"],
                                                     nesterov=cfg["nesterov"], weight_decay=wd)
    elif name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        opt = cls(params, lr=lr, betas=tuple(cfg["betas"]), eps=cfg["eps"], weight_decay=wd)
    elif name == "rmsprop":
        opt = torch.optim.RMSprop(params, lr=lr, alpha=cfg["alpha"], eps=cfg["eps"], momentum=cfg["momentum"],
                                  weight_decay=wd)
    elif name == "adagrad":
        opt = torch.optim.Adagrad(params, lr=lr, lr_decay=cfg["lr_decay"], eps=cfg["eps"], weight_decay=wd)
    elif name == "adadelta":
        opt = torch.optim.Adadelta(params, lr=lr, rho=cfg["rho"], eps=cfg["eps"], weight_decay=wd)
    else:  # the schema admits only the names above
        raise ValueError(f"unknown optimizer {name!r}")
    if cfg.get("lookahead"):
        return Lookahead(opt, cfg["lookahead"]["k"], cfg["lookahead"]["alpha"])
    return opt


def lr_at(epoch: float, base_lr: float, sched: dict[str, Any], epochs: int) -> float:
    """Learning rate at fractional epoch ``epoch`` (step/multistep change at epoch boundaries,
    cosine and warmup move every step)."""
    name = sched["name"]
    whole = math.floor(epoch + 1e-9)
    if name == "constant":
        lr = base_lr
    elif name == "step":
        lr = base_lr * sched["gamma"] ** (whole // sched["step_size"])
    elif name == "multistep":
        lr = base_lr * sched["gamma"] ** sum(whole >= m for m in sched["milestones"])
    elif name == "cosine":
        t_max = sched["T_max"] or epochs
        t = min(epoch, t_max)
        lr = sched["eta_min"] + (base_lr - sched["eta_min"]) * (1 + math.cos(math.pi * t / t_max)) / 2
    else:
        raise ValueError(f"unknown scheduler {name!r}")
    warmup = sched.get("warmup_epochs", 0.0)
    if warmup and epoch < warmup:
        lr *= (epoch + 1e-3) / warmup
    return lr


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr
