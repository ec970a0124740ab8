"""count_params is closed form and EXACTLY the numel of the built model, for every config."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kit import ROOT

from model import ConfigError, build_model, count_macs, count_params, list_models, resolve_config
from model.resnet import final_size

KNOWN = [  # seed 000 Tables 1-8 and seeds 002/004, as the issue lists them
    ({}, 11_173_962),
    ({"pool": 1}, 11_250_762),
    ({"pool": 2}, 11_189_322),
    ({"skip_kernel": 3}, 12_550_218),
    ({"blocks": 1}, 4_903_242),
    ({"channels": 2}, 11_420),
    ({"layers": 3, "blocks": 2, "channels": 85}, 4_895_755),
    ({"layers": 2, "blocks": 3, "channels": 140}, 4_990_870),
    ({"blocks": [2, 1, 1, 1]}, 4_977_226),
    ({"layers": 3, "blocks": [4, 4, 3], "se": {"reduction": 16, "where": "stem"}}, 4_697_742),
    # more rows of seed 000's tables
    ({"layers": 2}, 676_682), ({"layers": 6}, 178_992_202), ({"blocks": 10}, 61_339_722),
    ({"channels": 256}, 178_585_866), ({"kernel": 1}, 1_407_562), ({"skip_kernel": 5}, 15_302_730),
    ({"layers": 5, "blocks": 5, "channels": 13}, 4_968_077), ({"layers": 4, "blocks": 4, "channels": 29}, 4_875_287),
    # seed 003 Table 1: kuangliu's SENet18 (pre-activation blocks with SE)
    ({"preact": True, "se": {"reduction": 16, "where": "blocks"}}, 11_260_354),
    ({"preact": "senet", "se": {"reduction": 16, "where": "blocks"}}, 11_260_354),
    # kuangliu's PreActResNet18: bare stem conv, 2 x C_1 fewer than the SENet-style stem
    ({"preact": "preactresnet"}, 11_171_146),
]


def numel(cfg: dict) -> int:
    with torch.device("meta"):  # shapes only: no memory, no init cost
        return sum(p.numel() for p in build_model(cfg).parameters())


def counted_macs(cfg: dict) -> int:
    """torch's own FLOP counter on the built model (meta tensors: shapes only) / 2."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build_model(cfg).eval()
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, 32, 32))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize(("cfg", "expected"), KNOWN, ids=[str(c) for c, _ in KNOWN])
def test_known_counts(cfg: dict, expected: int) -> None:
    assert count_params({"family": "resnet", **cfg}) == expected


@pytest.mark.parametrize(("cfg", "expected"), KNOWN[:10], ids=[str(c) for c, _ in KNOWN[:10]])
def test_known_counts_match_built_model(cfg: dict, expected: int) -> None:
    assert numel(cfg) == expected


@pytest.mark.parametrize("family", list_models())
def test_every_registered_family_builds_counts_and_runs(family: str) -> None:
    cfg = {"family": family}
    model = build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) == count_params(cfg)
    out = model.eval()(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, resolve_config(cfg)["num_classes"])


odd = st.sampled_from([1, 3, 5, 7])


@st.composite
def resnet_configs(draw: st.DrawFn) -> dict:
    n = draw(st.integers(1, 5))

    def per_layer(values: st.SearchStrategy) -> object:
        return draw(st.one_of(values, st.lists(values, min_size=n, max_size=n)))

    cfg = {"family": "resnet", "layers": n, "blocks": per_layer(st.integers(1, 3)),
           "kernel": per_layer(odd), "skip_kernel": per_layer(odd),
           "num_classes": draw(st.integers(1, 20)), "dropout": draw(st.sampled_from([0.0, 0.2])),
           "preact": draw(st.sampled_from([False, True, "senet", "preactresnet"]))}
    if draw(st.booleans()):
        cfg["channels"] = draw(st.lists(st.integers(1, 24), min_size=n, max_size=n))
    else:
        cfg["channels"] = draw(st.integers(1, 16))
    cfg["pool"] = draw(st.one_of(st.just("global"), st.integers(1, final_size(n))))
    if draw(st.booleans()):
        from model.resnet import per_layer as expand

        narrowest = min(expand({**cfg, "se": None})["channels"])
        cfg["se"] = {"reduction": draw(st.integers(1, narrowest)), "where": draw(st.sampled_from(["stem", "blocks"]))}
        if cfg["se"]["where"] == "stem":
            c1 = expand({**cfg, "se": None})["channels"][0]
            cfg["se"]["reduction"] = min(cfg["se"]["reduction"], c1)
    return cfg


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(resnet_configs())
def test_count_equals_numel(cfg: dict) -> None:
    assert count_params(cfg) == numel(cfg)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(resnet_configs())
def test_macs_equal_the_flop_counter(cfg: dict) -> None:
    assert count_macs(cfg) == counted_macs(cfg)


def test_seed_000_final_model_macs() -> None:
    cfg = {"layers": 3, "blocks": 2, "channels": 85}  # N=3, B=2, C1=85: 4,895,755 params
    assert count_macs(cfg) == counted_macs(cfg) == 742_193_480  # ENVIRONMENT.md: "742 M MAC"
    assert count_macs({}) == 555_422_720  # ResNet-18 on CIFAR (0.56 GMAC, as usually quoted)


def test_model_files_import_one_way() -> None:
    """model/<family>.py (schema, counts) never imports its torch module; <family>_net.py reads it."""
    import ast

    root = ROOT / "model"
    for family in list_models():
        tree = ast.parse((root / f"{family}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not any(m and (m.endswith("_net") or m.startswith("torch")) for m in imported), (family, imported)
        net = ast.parse((root / f"{family}_net.py").read_text())
        assert f"model.{family}" in {n.module for n in ast.walk(net) if isinstance(n, ast.ImportFrom)}


@settings(max_examples=40, deadline=None)
@given(resnet_configs())
def test_forward_shape_for_random_configs(cfg: dict) -> None:
    model = build_model(cfg).eval()
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, cfg["num_classes"])


@pytest.mark.parametrize(("cfg", "path", "words"), [
    ({"kernel": 4}, "model.kernel", "odd"),
    ({"skip_kernel": [1, 2, 1, 1]}, "model.skip_kernel[1]", "odd"),
    ({"pool": 5}, "model.pool", "1..4"),
    ({"layers": 3, "blocks": [2, 2]}, "model.blocks", "layers is 3"),
    ({"channels": 0}, "model.channels", ">= 1"),
    ({"blocks": -1}, "model.blocks", ">= 1"),
    ({"widht": 3}, "model.widht", "valid keys: family, layers"),
    ({"family": "vgg"}, "model.family", "registered: densenet, googlenet, mobilenet, mobilenetv2, resnet"),
    ({"channels": True}, "model.channels", "integer"),
    ({"se": {"reduction": 128, "where": "stem"}}, "model.se.reduction", "0 squeeze"),
    ({"se": {"reduction": 4, "where": "head"}}, "model.se.where", "stem, blocks"),
    ({"dropout": 1.0}, "model.dropout", "< 1.0"),
])
def test_invalid_configs_name_the_key(cfg: dict, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_config(cfg)
    assert info.value.path == path
    assert words in str(info.value)


def test_preact_default_stays_out_of_the_resolved_config() -> None:
    """preact came after trial ids were handed out: at its default it must not change them."""
    assert "preact" not in resolve_config({}) and resolve_config({"preact": False}) == resolve_config({})
    assert resolve_config({"preact": True})["preact"] is True
    assert resolve_config({"preact": "senet"}) == resolve_config({"preact": True})  # the same model, the same id
    assert resolve_config({"preact": "preactresnet"})["preact"] == "preactresnet"
    for bad in (1, "yes"):
        with pytest.raises(ConfigError, match="allowed: false .*senet or true .*preactresnet"):
            resolve_config({"preact": bad})
