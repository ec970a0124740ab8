"""Family ``googlenet``: kuangliu's CIFAR GoogLeNet (the base of seed 003), with the knobs that
seed varied: a width multiplier, the stem kernel, the inception kernels and the pooling layers.

Defaults reproduce kuangliu's model exactly (6,166,250 parameters). Schema and closed-form count
live here; the torch module is in ``model/googlenet_net.py`` so counting never imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from configcheck import ConfigError, integer, mapping
from model.registry import Family, register
from model.widths import scaled, width_multiplier

INPUT_SIZE = 32
STEM = 192
# Inception blocks as (n1x1, n3x3red, n3x3, n5x5red, n5x5, pool_planes); "pool" is the stride-2
# max pool between stages. Each block's input width is the previous block's output width.
LAYOUT: tuple[tuple[int, ...] | str, ...] = (
    (64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), "pool",
    (192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
    (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128), "pool",
    (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128),
)
KEYS = ("family", "width", "stem_kernel", "kernel", "max_pool", "avg_pool", "num_classes")
POOL_KEYS = ("kernel", "padding")
DEFAULTS: dict[str, Any] = {
    "family": "googlenet", "width": 1.0, "stem_kernel": 3, "kernel": 3,
    "max_pool": {"kernel": 3, "padding": 1}, "avg_pool": {"kernel": 8, "padding": 0}, "num_classes": 10,
}


def blocks(cfg: Mapping[str, Any]) -> list[tuple[int, ...] | str]:
    """The layout with the width multiplier applied."""
    return [b if b == "pool" else tuple(scaled(c, cfg["width"]) for c in b) for b in LAYOUT]


def sizes(cfg: Mapping[str, Any]) -> tuple[int, int]:
    """(map size entering the average pool, map size after it)."""
    h = INPUT_SIZE
    mp = cfg["max_pool"]
    for _ in range(LAYOUT.count("pool")):
        h = (h + 2 * mp["padding"] - mp["kernel"]) // 2 + 1
    ap = cfg["avg_pool"]
    return h, h + 2 * ap["padding"] - ap["kernel"] + 1


def _pool(raw: Any, key: str, default: dict[str, int]) -> dict[str, int]:
    pool = {**default, **mapping(raw, key, POOL_KEYS)}
    k = integer(pool["kernel"], f"{key}.kernel", 1, 32)
    # torch refuses padding above half the kernel: the padded border would be all padding.
    integer(pool["padding"], f"{key}.padding", 0, k // 2)
    return pool


def resolve(raw: Mapping[str, Any]) -> dict[str, Any]:
    cfg = {**DEFAULTS, **mapping(raw, "", KEYS)}
    cfg["width"] = width_multiplier(cfg["width"], "width")
    for key in ("stem_kernel", "kernel"):
        k = integer(cfg[key], key, 1, 15)
        if k % 2 == 0:
            # padding (k-1)//2 keeps the map size only for odd kernels; the branches' outputs
            # would no longer concatenate.
            raise ConfigError(key, f"must be odd, got {k} (branch outputs must keep the map size)")
    cfg["max_pool"] = _pool(cfg["max_pool"], "max_pool", DEFAULTS["max_pool"])
    cfg["avg_pool"] = _pool(cfg["avg_pool"], "avg_pool", DEFAULTS["avg_pool"])
    integer(cfg["num_classes"], "num_classes", 1)
    final, pooled = sizes(cfg)
    if final < 1:  # the first pool always leaves >= 1 pixel (kernel <= 32); the second may not
        raise ConfigError("max_pool.kernel", f"{cfg['max_pool']['kernel']} shrinks the map to nothing")
    if pooled < 1:
        ap = cfg["avg_pool"]
        if "avg_pool" not in raw:  # the user's max_pool shrank the map below the default average pool
            mp = cfg["max_pool"]
            fits = [k for k in range(1, 33) if mp["padding"] <= k // 2
                    and sizes({**cfg, "max_pool": {**mp, "kernel": k}})[1] >= 1]
            raise ConfigError("max_pool.kernel", f"{mp['kernel']} shrinks the map to {final}x{final}, smaller than "
                              f"the {ap['kernel']}x{ap['kernel']} average pool; allowed with padding {mp['padding']}: "
                              f"{fits[0]}..{fits[-1]} (or set avg_pool.kernel 1..{final + 2 * ap['padding']})")
        raise ConfigError("avg_pool.kernel", f"{ap['kernel']} is larger than the final {final}x{final} map "
                          f"plus padding {ap['padding']}; allowed: 1..{final + 2 * ap['padding']}")
    return cfg


def _conv_bn(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout + 2 * cout  # conv with bias (kuangliu keeps it) + BN


def count(cfg: dict[str, Any]) -> int:
    stem = scaled(STEM, cfg["width"])
    k = cfg["kernel"]
    total = _conv_bn(3, stem, cfg["stem_kernel"])
    cin = stem
    for b in blocks(cfg):
        if b == "pool":
            continue
        n1, r3, n3, r5, n5, pp = b
        total += (_conv_bn(cin, n1, 1) + _conv_bn(cin, r3, 1) + _conv_bn(r3, n3, k)
                  + _conv_bn(cin, r5, 1) + _conv_bn(r5, n5, k) + _conv_bn(n5, n5, k) + _conv_bn(cin, pp, 1))
        cin = n1 + n3 + n5 + pp
    pooled = sizes(cfg)[1]
    return total + cin * pooled * pooled * cfg["num_classes"] + cfg["num_classes"]


def macs(cfg: dict[str, Any]) -> int:
    """Convs + the linear layer (see model.registry.count_macs); the branches keep the map size,
    each stride-2 max pool shrinks it."""
    stem, k, h = scaled(STEM, cfg["width"]), cfg["kernel"], INPUT_SIZE
    mp = cfg["max_pool"]
    total = h * h * 3 * stem * cfg["stem_kernel"] ** 2
    cin = stem
    for b in blocks(cfg):
        if b == "pool":
            h = (h + 2 * mp["padding"] - mp["kernel"]) // 2 + 1
            continue
        n1, r3, n3, r5, n5, pp = b
        total += h * h * (cin * (n1 + r3 + r5 + pp) + (r3 * n3 + r5 * n5 + n5 * n5) * k * k)
        cin = n1 + n3 + n5 + pp
    pooled = sizes(cfg)[1]
    return total + cin * pooled * pooled * cfg["num_classes"]


register(Family("googlenet", KEYS, resolve, count, macs, "model.googlenet_net:GoogLeNet"))
