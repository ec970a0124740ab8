"""Family ``mobilenetv2``: kuangliu's CIFAR MobileNetV2 (seed 003's runner-up), with a width
multiplier and the depthwise kernel as knobs. Defaults reproduce it exactly (2,296,922 parameters).

Schema and closed-form count here; the torch module is in ``model/mobilenetv2_net.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from configcheck import ConfigError, integer, mapping
from model.registry import Family, register
from model.widths import scaled, width_multiplier

STEM, HEAD = 32, 1280
# (expansion, out_channels, blocks, stride of the first block); stage 2's stride is 1 on CIFAR.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
FINAL = 4  # 32 / 2^3; kuangliu pools with avg_pool2d(out, 4)
KEYS = ("family", "width", "kernel", "num_classes")
DEFAULTS: dict[str, Any] = {"family": "mobilenetv2", "width": 1.0, "kernel": 3, "num_classes": 10}


def layout(cfg: Mapping[str, Any]) -> list[tuple[int, int, int, int]]:
    """Every block as (in_channels, out_channels, stride, expansion), in order."""
    out: list[tuple[int, int, int, int]] = []
    cin = scaled(STEM, cfg["width"])
    for expansion, c, n, stride in STAGES:
        c = scaled(c, cfg["width"])
        for i in range(n):
            out.append((cin, c, stride if i == 0 else 1, expansion))
            cin = c
    return out


def resolve(raw: Mapping[str, Any]) -> dict[str, Any]:
    cfg = {**DEFAULTS, **mapping(raw, "", KEYS)}
    cfg["width"] = width_multiplier(cfg["width"], "width")
    k = integer(cfg["kernel"], "kernel", 1, 15)
    if k % 2 == 0:
        raise ConfigError("kernel", f"must be odd, got {k} (the residual add needs the map size kept)")
    integer(cfg["num_classes"], "num_classes", 1)
    return cfg


def count(cfg: dict[str, Any]) -> int:
    k = cfg["kernel"]
    stem, head = scaled(STEM, cfg["width"]), scaled(HEAD, cfg["width"])
    total = 3 * stem * 9 + 2 * stem  # conv (no bias) + BN
    for cin, c, stride, e in layout(cfg):
        hidden = e * cin
        total += cin * hidden + 2 * hidden  # 1x1 expand + BN
        total += hidden * k * k + 2 * hidden  # depthwise + BN
        total += hidden * c + 2 * c  # 1x1 project + BN
        if stride == 1 and cin != c:
            total += cin * c + 2 * c  # projection shortcut
    total += layout(cfg)[-1][1] * head + 2 * head
    return total + head * cfg["num_classes"] + cfg["num_classes"]


def macs(cfg: dict[str, Any]) -> int:
    """Convs + the linear layer (see model.registry.count_macs): per block the 1x1 expansion at
    the input size, the k x k depthwise conv at the block's stride, the 1x1 projection (and the
    1x1 shortcut) at the output size."""
    k, h = cfg["kernel"], 32
    stem, head = scaled(STEM, cfg["width"]), scaled(HEAD, cfg["width"])
    total = h * h * 3 * stem * 9
    for cin, c, stride, e in layout(cfg):
        hidden = e * cin
        total += h * h * cin * hidden
        h = (h - 1) // stride + 1
        total += h * h * (hidden * k * k + hidden * c + (cin * c if stride == 1 and cin != c else 0))
    total += h * h * layout(cfg)[-1][1] * head
    return total + head * cfg["num_classes"]


register(Family("mobilenetv2", KEYS, resolve, count, macs, "model.mobilenetv2_net:MobileNetV2"))
