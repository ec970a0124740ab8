"""Family ``resnet``: seed 000's parametric CIFAR ResNet (N, B_i, C_1, F_i, K_i, P) plus optional SE.

This module holds the config schema and the closed-form parameter count; the torch module lives in
``model/resnet_net.py`` so counting never imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from configcheck import ConfigError, choice, int_or_list, integer, mapping, number
from model.registry import Family, register

INPUT_SIZE = 32  # CIFAR images; every stride-2 layer maps H to ceil(H / 2)
KEYS = ("family", "layers", "blocks", "channels", "kernel", "skip_kernel", "pool", "se", "dropout", "num_classes", "preact")
DEFAULTS: dict[str, Any] = {  # ResNet-18 as in the seeds' starter code
    "family": "resnet", "layers": 4, "blocks": 2, "channels": 64, "kernel": 3, "skip_kernel": 1,
    "pool": "global", "se": None, "dropout": 0.0, "num_classes": 10,
}
SE_KEYS = ("reduction", "where")
# Keys added after trial ids were first handed out: the resolved config holds them only when they
# differ from their default, so every existing sweep keeps its trial ids (and its results).
LATE_DEFAULTS: dict[str, Any] = {"preact": False}


def final_size(layers: int) -> int:
    size = INPUT_SIZE
    for _ in range(layers - 1):
        size = (size + 1) // 2
    return size


def per_layer(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Expand a resolved config into per-layer lists (channels double per layer from C_1)."""
    n = cfg["layers"]
    ch = cfg["channels"]
    return {
        "blocks": cfg["blocks"] if isinstance(cfg["blocks"], list) else [cfg["blocks"]] * n,
        "channels": ch if isinstance(ch, list) else [ch * 2**i for i in range(n)],
        "kernel": cfg["kernel"] if isinstance(cfg["kernel"], list) else [cfg["kernel"]] * n,
        "skip_kernel": cfg["skip_kernel"] if isinstance(cfg["skip_kernel"], list) else [cfg["skip_kernel"]] * n,
        "final": final_size(n),
    }


# Two pre-activation layouts, named for the kuangliu models they reproduce: "senet" (SENet18:
# conv-BN-ReLU stem; ``true`` means this one, as it always did) and "preactresnet"
# (PreActResNet18: a bare conv stem, 2 x C_1 fewer parameters).
PREACT = (False, True, "senet", "preactresnet")


def _preact(value: Any) -> bool | str:
    if value not in PREACT or (value in (0, 1) and not isinstance(value, bool)):
        raise ConfigError("preact", f"{value!r} is not allowed; allowed: false (post-activation blocks), "
                          "senet or true (kuangliu's SENet18: BN-ReLU stem), preactresnet (kuangliu's "
                          "PreActResNet18: bare conv stem)")
    return True if value == "senet" else value


def bare_stem(cfg: Mapping[str, Any]) -> bool:
    return cfg.get("preact") == "preactresnet"


def resolve(raw: Mapping[str, Any]) -> dict[str, Any]:
    cfg = {**DEFAULTS, **mapping(raw, "", KEYS)}
    if "preact" in cfg:
        cfg["preact"] = _preact(cfg["preact"])
    for key, default in LATE_DEFAULTS.items():
        if key in cfg and cfg[key] == default:
            del cfg[key]
    n = integer(cfg["layers"], "layers", 1, 8)
    int_or_list(cfg["blocks"], "blocks", n, 1)
    int_or_list(cfg["channels"], "channels", n, 1)
    for key in ("kernel", "skip_kernel"):
        values = cfg[key] if type(cfg[key]) is int else int_or_list(cfg[key], key, n, 1)
        for i, k in enumerate(values if isinstance(values, list) else (integer(values, key, 1),)):
            if k % 2 == 0:
                where = f"{key}[{i}]" if isinstance(cfg[key], list) else key
                # An even kernel with padding (k-1)//2 shrinks the map by one pixel, so the
                # residual add no longer lines up.
                raise ConfigError(where, f"must be odd, got {k} (even kernels break the residual add)")
    final = final_size(n)
    if cfg["pool"] != "global":
        if type(cfg["pool"]) is not int or cfg["pool"] < 1:
            raise ConfigError("pool", f"{cfg['pool']!r} is not allowed; allowed: 'global' or an integer "
                              f"1..{final} (the final {final}x{final} map of layers={n})")
        if cfg["pool"] > final:
            raise ConfigError("pool", f"{cfg['pool']} is larger than the final {final}x{final} map "
                              f"(layers={n}); allowed: 1..{final} or 'global'")
    cfg["dropout"] = number(cfg["dropout"], "dropout", 0.0, 1.0, exclusive_max=True)
    integer(cfg["num_classes"], "num_classes", 1)
    if cfg["se"] is not None:
        se = {"reduction": 16, "where": "blocks", **mapping(cfg["se"], "se", SE_KEYS)}
        r = integer(se["reduction"], "se.reduction", 1)
        choice(se["where"], "se.where", ("stem", "blocks"))
        layers = per_layer(cfg)
        narrowest = layers["channels"][0] if se["where"] == "stem" else min(layers["channels"])
        if narrowest // r < 1:
            raise ConfigError("se.reduction", f"{r} leaves {narrowest}//{r} = 0 squeeze channels; "
                              f"allowed: 1..{narrowest}")
        cfg["se"] = se
    return cfg


def _se(c: int, r: int) -> int:
    hidden = c // r
    return c * hidden + hidden + hidden * c + c  # two 1x1 convs with bias


def count(cfg: dict[str, Any]) -> int:
    L = per_layer(cfg)
    se = cfg["se"]
    se_blocks = se is not None and se["where"] == "blocks"
    c1 = L["channels"][0]
    total = 3 * c1 * L["kernel"][0] ** 2 + (0 if bare_stem(cfg) else 2 * c1)  # stem conv (+ BN)
    if se is not None and se["where"] == "stem":
        total += _se(c1, se["reduction"])
    preact = bool(cfg.get("preact", False))
    cin = c1
    for i, (blocks, c, f, k) in enumerate(zip(L["blocks"], L["channels"], L["kernel"], L["skip_kernel"])):
        per_block = 2 * c * c * f * f + 4 * c + (_se(c, se["reduction"]) if se_blocks else 0)
        # the first block maps cin -> c (and has the projection shortcut when stride/width change);
        # pre-activation normalizes the block's input (cin) instead of conv2's output, and its
        # shortcut is a bare conv
        total += blocks * per_block + (cin - c) * c * f * f + (2 * (cin - c) if preact else 0)
        if i > 0 or cin != c:
            total += cin * c * k * k + (0 if preact else 2 * c)
        cin = c
    pooled = 1 if cfg["pool"] == "global" else L["final"] // cfg["pool"]
    return total + cin * pooled * pooled * cfg["num_classes"] + cfg["num_classes"]


def macs(cfg: dict[str, Any]) -> int:
    """Convs + the linear layer (see model.registry.count_macs). A stride-2 conv with padding
    (k-1)//2 and odd k maps h to ceil(h/2); SE's two 1x1 convs run on the pooled 1x1 map."""
    L = per_layer(cfg)
    se = cfg["se"]
    c1, h = L["channels"][0], INPUT_SIZE
    total = h * h * 3 * c1 * L["kernel"][0] ** 2
    if se is not None and se["where"] == "stem":
        total += 2 * c1 * (c1 // se["reduction"])
    cin = c1
    for i, (blocks, c, f, k) in enumerate(zip(L["blocks"], L["channels"], L["kernel"], L["skip_kernel"])):
        for b in range(blocks):
            if i > 0 and b == 0:
                h = (h + 1) // 2
            total += h * h * (cin * c + c * c) * f * f
            if b == 0 and (i > 0 or cin != c):
                total += h * h * cin * c * k * k  # projection shortcut
            if se is not None and se["where"] == "blocks":
                total += 2 * c * (c // se["reduction"])
            cin = c
    pooled = 1 if cfg["pool"] == "global" else L["final"] // cfg["pool"]
    return total + cin * pooled * pooled * cfg["num_classes"]


register(Family("resnet", KEYS, resolve, count, macs, "model.resnet_net:ResNet", fillable=("channels", "blocks", "layers")))
