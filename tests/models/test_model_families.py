"""The seed-003 families (kuangliu's GoogLeNet, MobileNetV2, MobileNet, DenseNet): exact counts,
count == numel over random configs, forward shapes, and clear errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model import ConfigError, build_model, count_macs, count_params, resolve_config

KNOWN = [  # kuangliu's models as printed in seed 003 (Tables 1 and 2)
    ({"family": "googlenet"}, 6_166_250),
    ({"family": "googlenet", "stem_kernel": 5}, 6_175_466),
    ({"family": "mobilenetv2"}, 2_296_922),
    ({"family": "mobilenet"}, 3_217_226),
    ({"family": "densenet"}, 6_956_298),  # DenseNet121
    ({"family": "densenet", "growth": 12}, 1_000_618),  # kuangliu's densenet_cifar
]


def numel(cfg: dict) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(cfg).parameters())


@pytest.mark.parametrize(("cfg", "expected"), KNOWN, ids=[c["family"] + str(len(c)) for c, _ in KNOWN])
def test_known_counts(cfg: dict, expected: int) -> None:
    assert count_params(cfg) == expected == numel(cfg)


odd = st.sampled_from([1, 3, 5, 7])


@st.composite
def googlenet_configs(draw: st.DrawFn) -> dict:
    mk = draw(st.integers(1, 7))
    cfg = {"family": "googlenet", "width": draw(st.sampled_from([0.05, 0.1, 0.25, 0.5, 0.75, 1.0])),
           "stem_kernel": draw(odd), "kernel": draw(odd), "num_classes": draw(st.integers(1, 20)),
           "max_pool": {"kernel": mk, "padding": draw(st.integers(0, mk // 2))}}
    final = resolve_config({**cfg, "avg_pool": {"kernel": 1}})  # the map size entering the avg pool
    from model.googlenet import sizes

    h = sizes(final)[0]
    pad = draw(st.integers(0, 2))
    cfg["avg_pool"] = {"kernel": draw(st.integers(max(1, 2 * pad), h + 2 * pad)), "padding": pad}
    return cfg


@st.composite
def mobilenet_configs(draw: st.DrawFn) -> dict:
    return {"family": "mobilenetv2", "width": draw(st.sampled_from([0.05, 0.1, 0.25, 0.5, 1.0, 1.5])),
            "kernel": draw(odd), "num_classes": draw(st.integers(1, 20))}


@st.composite
def mobilenet_v1_configs(draw: st.DrawFn) -> dict:
    return {"family": "mobilenet", "width": draw(st.sampled_from([0.05, 0.1, 0.25, 0.5, 1.0])),
            "num_classes": draw(st.integers(1, 20))}


@st.composite
def densenet_configs(draw: st.DrawFn) -> dict:
    return {"family": "densenet", "growth": draw(st.integers(1, 12)),
            "blocks": draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)),
            "reduction": draw(st.sampled_from([0.5, 0.75, 1.0])), "num_classes": draw(st.integers(1, 20))}


ANY = st.one_of(googlenet_configs(), mobilenet_configs(), mobilenet_v1_configs(), densenet_configs())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY)
def test_count_equals_numel(cfg: dict) -> None:
    assert count_params(cfg) == numel(cfg)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY)
def test_macs_equal_the_flop_counter(cfg: dict) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build_model(cfg).eval()
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, 32, 32))
    assert count_macs(cfg) == counter.get_total_flops() // 2


@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY.filter(lambda c: c.get("width", 0) <= 0.25))
def test_forward_shape(cfg: dict) -> None:
    torch.set_num_threads(1)
    assert build_model(cfg).eval()(torch.zeros(1, 3, 32, 32)).shape == (1, cfg["num_classes"])


@pytest.mark.parametrize(("cfg", "path", "words"), [
    ({"family": "googlenet", "kernel": 4}, "model.kernel", "odd"),
    ({"family": "googlenet", "width": 0}, "model.width", "> 0"),
    ({"family": "googlenet", "avg_pool": {"kernel": 9}}, "model.avg_pool.kernel", "allowed: 1..8"),
    ({"family": "googlenet", "avg_pool": {"kernel": 3, "padding": 2}}, "model.avg_pool.padding", "<= 1"),
    ({"family": "googlenet", "max_pool": {"size": 3}}, "model.max_pool.size", "valid keys: kernel, padding"),
    ({"family": "googlenet", "layers": 3}, "model.layers", "valid keys: family, width"),
    ({"family": "mobilenetv2", "kernel": 2}, "model.kernel", "odd"),
    ({"family": "mobilenetv2", "width": "half"}, "model.width", "number"),
    ({"family": "mobilenet", "kernel": 3}, "model.kernel", "valid keys: family, width, num_classes"),
    ({"family": "densenet", "blocks": [6, 12, 24, 16, 8]}, "model.blocks", "1..4"),
    ({"family": "densenet", "blocks": [6, 0]}, "model.blocks[1]", ">= 1"),
    ({"family": "densenet", "growth": 1, "blocks": [1, 1], "reduction": 0.1}, "model.reduction", "0 channels"),
])
def test_invalid_configs_name_the_key(cfg: dict, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_config(cfg)
    assert info.value.path == path
    assert words in str(info.value)
