"""Strict schemas of the ``data:`` and ``train:`` sections: validate, fill defaults, name the key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from configcheck import ConfigError, boolean, choice, integer, join, mapping, number, string

DATA_KEYS = ("name", "root", "format", "download", "subset", "test_subset", "val_size")
TRAIN_KEYS = ("epochs", "batch_size", "seed", "optimizer", "scheduler", "augment", "label_smoothing",
              "early_stopping", "compile")

OPTIMIZERS: dict[str, dict[str, Any]] = {  # name -> its keys with defaults (lr is required-ish: has a default)
    "sgd": {"lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0},
    "adam": {"lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0},
    "adamw": {"lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01},
    "rmsprop": {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "weight_decay": 0.0},
    "adagrad": {"lr": 0.01, "lr_decay": 0.0, "eps": 1e-10, "weight_decay": 0.0},
    "adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0},
}
SCHEDULERS: dict[str, dict[str, Any]] = {
    "constant": {},
    "step": {"step_size": 10, "gamma": 0.1},
    "multistep": {"milestones": [100, 150], "gamma": 0.1},
    "cosine": {"T_max": None, "eta_min": 0.0},  # T_max null -> the trial's epochs
}
AUGMENTS: dict[str, dict[str, Any]] = {  # torchvision-like names and parameters, applied in list order
    "crop": {"padding": 4},
    "flip": {"p": 0.5},
    "rotation": {"degrees": 10.0},
    "affine": {"degrees": 0.0, "translate": 0.0, "shear": 0.0, "scale": [1.0, 1.0]},
    "jitter": {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0},
    "grayscale": {"p": 0.1},
    "cutmix": {"alpha": 1.0, "p": 0.5},
}
METRICS = ("val_acc", "val_loss", "test_acc", "test_loss", "train_loss", "train_acc")


def resolve_data(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    d = {"name": "cifar10", "root": None, "format": "auto", "download": False, "subset": None,
         "test_subset": None, "val_size": 0, **mapping(raw, "data", DATA_KEYS)}
    choice(d["name"], "data.name", ("cifar10", "synthetic"))
    if d["root"] is not None:
        string(d["root"], "data.root")
    choice(d["format"], "data.format", ("auto", "batches", "imagefolder"))
    boolean(d["download"], "data.download")
    for key, most in (("subset", 5000), ("test_subset", 1000)):
        if d[key] is not None:
            integer(d[key], f"data.{key}", 1, most)
    per_class = d["subset"] or 5000
    integer(d["val_size"], "data.val_size", 0, per_class * 10 - 10)
    if d["val_size"] % 10:
        raise ConfigError("data.val_size", f"must be a multiple of 10 (stratified over 10 classes), got {d['val_size']}")
    return d


def _options(raw: Any, path: str, table: dict[str, dict[str, Any]], what: str) -> dict[str, Any]:
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, Mapping) or "name" not in raw:
        raise ConfigError(path, f"expected a mapping with 'name' ({what}: {', '.join(table)})")
    name = choice(raw["name"], f"{path}.name", list(table))
    return {"name": name, **table[name], **mapping(raw, path, ["name", *table[name], *_EXTRA.get(path, ())])}


_EXTRA = {"train.optimizer": ("lookahead",), "train.scheduler": ("warmup_epochs",)}


def _floats(value: Any, path: str, n: int, lo: float, hi: float) -> list[float]:
    if not isinstance(value, list) or len(value) != n:
        raise ConfigError(path, f"expected a list of {n} numbers in [{lo}, {hi}], got {value!r}")
    return [number(v, join(path, i), lo, hi) for i, v in enumerate(value)]


def _optimizer(raw: Any) -> dict[str, Any]:
    p = "train.optimizer"
    o = _options(raw, p, OPTIMIZERS, "optimizers")
    for key, value in o.items():
        if key in ("name", "lookahead"):
            continue
        if key == "betas":
            o[key] = _floats(value, f"{p}.betas", 2, 0.0, 0.999999)
        elif key == "nesterov":
            boolean(value, f"{p}.nesterov")
        else:
            o[key] = number(value, f"{p}.{key}", 0.0)
    if o["lr"] <= 0:
        raise ConfigError(f"{p}.lr", f"must be > 0, got {o['lr']}")
    if o["name"] == "sgd" and o["nesterov"] and o["momentum"] <= 0:
        raise ConfigError(f"{p}.nesterov", "needs momentum > 0")
    if o.get("lookahead") is not None:
        la = {"k": 5, "alpha": 0.5, **mapping(o["lookahead"], f"{p}.lookahead", ("k", "alpha"))}
        integer(la["k"], f"{p}.lookahead.k", 1)
        la["alpha"] = number(la["alpha"], f"{p}.lookahead.alpha", 0.0, 1.0)
        o["lookahead"] = la
    else:
        o["lookahead"] = None
    return o


def _scheduler(raw: Any) -> dict[str, Any]:
    p = "train.scheduler"
    s = _options(raw, p, SCHEDULERS, "schedulers")
    s["warmup_epochs"] = number(s.get("warmup_epochs", 0), f"{p}.warmup_epochs", 0.0)
    if s["name"] == "step":
        integer(s["step_size"], f"{p}.step_size", 1)
    if s["name"] == "multistep":
        ms = s["milestones"]
        if not isinstance(ms, list) or not ms:
            raise ConfigError(f"{p}.milestones", "expected a non-empty increasing list of epochs")
        for i, m in enumerate(ms):
            integer(m, f"{p}.milestones[{i}]", 1)
        if ms != sorted(set(ms)):
            raise ConfigError(f"{p}.milestones", f"must be strictly increasing, got {ms}")
    if "gamma" in s:
        s["gamma"] = number(s["gamma"], f"{p}.gamma", 0.0, 1.0)
    if s["name"] == "cosine":
        if s["T_max"] is not None:
            integer(s["T_max"], f"{p}.T_max", 1)
        s["eta_min"] = number(s["eta_min"], f"{p}.eta_min", 0.0)
    return s


def _augment(raw: Any) -> list[dict[str, Any]]:
    p = "train.augment"
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(p, f"expected a list of ops ({', '.join(AUGMENTS)}), e.g. [{{name: crop, padding: 4}}, flip]")
    ops = []
    for i, item in enumerate(raw):
        path = f"{p}[{i}]"
        op = _options(item, path, AUGMENTS, "ops")
        for key, value in op.items():
            if key == "name":
                continue
            if key == "scale":
                op[key] = _floats(value, f"{path}.scale", 2, 0.01, 10.0)
                if op[key][0] > op[key][1]:
                    raise ConfigError(f"{path}.scale", f"expected [min, max] with min <= max, got {value}")
            elif key == "padding":
                integer(value, f"{path}.padding", 0, 16)
            elif key == "p":
                op[key] = number(value, f"{path}.p", 0.0, 1.0)
            elif key in ("brightness", "contrast", "saturation", "translate"):
                op[key] = number(value, f"{path}.{key}", 0.0, 1.0)
            else:  # degrees, shear, alpha
                op[key] = number(value, f"{path}.{key}", 0.0, 180.0)
        if op["name"] == "cutmix" and op["alpha"] <= 0:
            raise ConfigError(f"{path}.alpha", "must be > 0")
        if op["name"] == "cutmix" and i != len(raw) - 1:
            raise ConfigError(path, "cutmix mixes labels, so it must be the last op")
        ops.append(op)
    return ops


def resolve_train(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    t = {"epochs": 10, "batch_size": 128, "seed": 0, "optimizer": {"name": "sgd"}, "scheduler": {"name": "constant"},
         "augment": [{"name": "crop"}, {"name": "flip"}], "label_smoothing": 0.0, "early_stopping": None,
         "compile": False, **mapping(raw, "train", TRAIN_KEYS)}
    integer(t["epochs"], "train.epochs", 1, 100_000)
    integer(t["batch_size"], "train.batch_size", 1, 1 << 20)
    integer(t["seed"], "train.seed", 0, 2**31 - 1)
    t["optimizer"] = _optimizer(t["optimizer"])
    t["scheduler"] = _scheduler(t["scheduler"])
    t["augment"] = _augment(t["augment"])
    t["label_smoothing"] = number(t["label_smoothing"], "train.label_smoothing", 0.0, 1.0, exclusive_max=True)
    boolean(t["compile"], "train.compile")
    if t["early_stopping"] is not None:
        es = {"metric": "val_acc", "patience": 10, "min_delta": 0.0,
              **mapping(t["early_stopping"], "train.early_stopping", ("metric", "patience", "min_delta"))}
        choice(es["metric"], "train.early_stopping.metric", METRICS)
        integer(es["patience"], "train.early_stopping.patience", 1)
        es["min_delta"] = number(es["min_delta"], "train.early_stopping.min_delta", 0.0)
        t["early_stopping"] = es
    return t
