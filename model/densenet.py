"""Family ``densenet``: kuangliu's CIFAR DenseNet-BC (bottleneck + compression), seed 003's
DenseNet121 by default (6,956,298 parameters).

Schema and closed-form count here; the torch module is in ``model/densenet_net.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from configcheck import ConfigError, integer, mapping, number
from model.registry import Family, register

INPUT_SIZE = 32
KEYS = ("family", "growth", "blocks", "reduction", "num_classes")
DEFAULTS: dict[str, Any] = {"family": "densenet", "growth": 32, "blocks": [6, 12, 24, 16], "reduction": 0.5,
                            "num_classes": 10}


def stages(cfg: Mapping[str, Any]) -> list[tuple[int, int, int]]:
    """Per dense stage: (input channels, output channels, channels after its transition or 0)."""
    g, out = cfg["growth"], []
    planes = 2 * g
    for i, n in enumerate(cfg["blocks"]):
        end = planes + n * g
        trans = math.floor(end * cfg["reduction"]) if i < len(cfg["blocks"]) - 1 else 0
        out.append((planes, end, trans))
        planes = trans
    return out


def resolve(raw: Mapping[str, Any]) -> dict[str, Any]:
    cfg = {**DEFAULTS, **mapping(raw, "", KEYS)}
    integer(cfg["growth"], "growth", 1)
    blocks = cfg["blocks"]
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 4:
        # each transition halves the map: 32 -> 4 after three of them
        raise ConfigError("blocks", f"expected a list of 1..4 dense-layer counts, got {blocks!r}")
    for i, n in enumerate(blocks):
        integer(n, f"blocks[{i}]", 1)
    cfg["blocks"] = list(blocks)
    cfg["reduction"] = number(cfg["reduction"], "reduction", 0.0, 1.0)
    for i, (_, end, trans) in enumerate(stages(cfg)[:-1]):
        if trans < 1:
            raise ConfigError("reduction", f"{cfg['reduction']} leaves transition {i + 1} with floor({end} x "
                              f"{cfg['reduction']}) = 0 channels; allowed: > {1 / end:.3g}")
    integer(cfg["num_classes"], "num_classes", 1)
    return cfg


def final_size(cfg: Mapping[str, Any]) -> int:
    return INPUT_SIZE >> (len(cfg["blocks"]) - 1)


def count(cfg: dict[str, Any]) -> int:
    g = cfg["growth"]
    total = 3 * 2 * g * 9  # stem conv, no bias, no BN (kuangliu)
    for n_in, n_out, trans in stages(cfg):
        planes = n_in
        for _ in range((n_out - n_in) // g):
            # BN(planes) -> 1x1 conv to 4g -> BN(4g) -> 3x3 conv to g, no biases
            total += 2 * planes + planes * 4 * g + 2 * 4 * g + 4 * g * g * 9
            planes += g
        if trans:
            total += 2 * n_out + n_out * trans  # BN + 1x1 conv, then 2x2 average pool
    last = stages(cfg)[-1][1]
    return total + 2 * last + last * cfg["num_classes"] + cfg["num_classes"]


def macs(cfg: dict[str, Any]) -> int:
    """Convs + the linear layer (see model.registry.count_macs); each transition's 2x2 average
    pool halves the map (its 1x1 conv runs before the pool)."""
    g, h = cfg["growth"], INPUT_SIZE
    total = h * h * 3 * 2 * g * 9
    for n_in, n_out, trans in stages(cfg):
        for planes in range(n_in, n_out, g):
            total += h * h * (planes * 4 * g + 4 * g * g * 9)
        if trans:
            total += h * h * n_out * trans
            h //= 2
    return total + stages(cfg)[-1][1] * cfg["num_classes"]


register(Family("densenet", KEYS, resolve, count, macs, "model.densenet_net:DenseNet", fillable=("growth",)))
