"""Model families by name (timm-style): each family registers how to resolve, count and build."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from configcheck import ConfigError, mapping, string


@dataclass(frozen=True)
class Family:
    """A family is two files: ``model/<name>.py`` (schema, layout, closed-form counts; no torch)
    registers this, and ``module`` (``"model.<name>_net:Class"``) holds the torch module, which
    reads its layout from the first file. Nothing imports the other way."""

    name: str
    keys: tuple[str, ...]
    resolve: Callable[[Mapping[str, Any]], dict[str, Any]]  # validated copy with defaults filled
    count: Callable[[dict[str, Any]], int]  # parameters, closed form on a resolved config
    macs: Callable[[dict[str, Any]], int]  # multiply-accumulates of one 32x32 forward, closed form
    module: str  # "package.module:Class", built with the resolved config
    fillable: tuple[str, ...] = ()  # integer keys on which the parameter count is monotone

    def build(self, cfg: dict[str, Any]) -> Any:
        path, cls = self.module.split(":")
        return getattr(importlib.import_module(path), cls)(cfg)


_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    _FAMILIES[family.name] = family
    return family


def list_models() -> list[str]:
    return sorted(_FAMILIES)


def get_family(cfg: Mapping[str, Any], path: str = "model") -> Family:
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, Mapping):
        mapping(cfg, path, ["family"])
    name = cfg.get("family", "resnet")
    if type(name) is str and name in _FAMILIES:  # the hot path of plan: no error formatting
        return _FAMILIES[name]
    name = string(name, f"{path}.family")
    if name not in _FAMILIES:
        raise ConfigError(f"{path}.family", f"unknown family {name!r}; registered: {', '.join(list_models())}")
    return _FAMILIES[name]


def resolve_config(cfg: Mapping[str, Any] | None, path: str = "model") -> dict[str, Any]:
    """Validate a model config and fill its defaults; errors carry ``path`` as prefix."""
    return _resolve(get_family(cfg, path), cfg, path)


def _resolve(family: Family, cfg: Mapping[str, Any] | None, path: str = "model") -> dict[str, Any]:
    try:
        return family.resolve({} if cfg is None else cfg)
    except ConfigError as err:
        raise err.under(path) from None


def count_params(cfg: Mapping[str, Any] | None = None) -> int:
    """Exact trainable-parameter count in closed form; no module is built, torch is not imported."""
    family = get_family(cfg)
    return family.count(_resolve(family, cfg))


def count_macs(cfg: Mapping[str, Any] | None = None) -> int:
    """Multiply-accumulates of one forward pass on one 32x32 image, in closed form (no module
    built): every convolution (depthwise ones at cin/groups = 1 per output) and the final linear
    layer. Not counted: biases, BatchNorm, activations, pooling, SE's gating multiply, residual
    adds and concatenations (elementwise work, a few percent at most). Equals
    ``torch.utils.flop_counter`` FLOPs / 2 on the built model (tests/test_model_count.py)."""
    family = get_family(cfg)
    return family.macs(_resolve(family, cfg))


def build_model(cfg: Mapping[str, Any] | None = None) -> Any:
    """Build the ``torch.nn.Module`` for a model config (same dict ``count_params`` takes)."""
    family = get_family(cfg)
    return family.build(_resolve(family, cfg))


