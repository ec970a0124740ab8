"""Family ``mobilenet``: kuangliu's CIFAR MobileNet (v1: depthwise-separable convs) with a width
multiplier; the default is seed 003's MobileNet (3,217,226 parameters).

Schema and closed-form count here; the torch module is in ``model/mobilenet_net.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from configcheck import integer, mapping
from model.registry import Family, register
from model.widths import scaled, width_multiplier

STEM = 32
# (out channels, stride) per depthwise-separable block; four stride-2 blocks take 32x32 to 2x2
LAYOUT = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
          (512, 1), (1024, 2), (1024, 1))
FINAL = 2
KEYS = ("family", "width", "num_classes")
DEFAULTS: dict[str, Any] = {"family": "mobilenet", "width": 1.0, "num_classes": 10}


def layout(cfg: Mapping[str, Any]) -> list[tuple[int, int, int]]:
    """Every block as (in channels, out channels, stride)."""
    cin, out = scaled(STEM, cfg["width"]), []
    for c, stride in LAYOUT:
        c = scaled(c, cfg["width"])
        out.append((cin, c, stride))
        cin = c
    return out


def resolve(raw: Mapping[str, Any]) -> dict[str, Any]:
    cfg = {**DEFAULTS, **mapping(raw, "", KEYS)}
    cfg["width"] = width_multiplier(cfg["width"], "width")
    integer(cfg["num_classes"], "num_classes", 1)
    return cfg


def count(cfg: dict[str, Any]) -> int:
    stem = scaled(STEM, cfg["width"])
    total = 3 * stem * 9 + 2 * stem  # conv (no bias) + BN
    for cin, c, _ in layout(cfg):
        total += cin * 9 + 2 * cin + cin * c + 2 * c  # depthwise 3x3 + BN, pointwise 1x1 + BN
    last = layout(cfg)[-1][1]
    return total + last * cfg["num_classes"] + cfg["num_classes"]


def macs(cfg: dict[str, Any]) -> int:
    """Convs + the linear layer (see model.registry.count_macs): depthwise 3x3 (one input channel
    per output) at the block's stride, then the 1x1 pointwise conv."""
    stem, h = scaled(STEM, cfg["width"]), 32
    total = h * h * 3 * stem * 9
    for cin, c, stride in layout(cfg):
        h = (h - 1) // stride + 1
        total += h * h * (cin * 9 + cin * c)
    return total + layout(cfg)[-1][1] * cfg["num_classes"]


register(Family("mobilenet", KEYS, resolve, count, macs, "model.mobilenet_net:MobileNet"))
