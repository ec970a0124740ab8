"""Fuzzed input: whatever YAML document or ``--set`` value a user writes, ``plan`` and
``submit --dry-run`` exit 0 or 2 (one line on stderr), never with a traceback, and write nothing
on exit 2. Documents are random nested mappings, lists and scalars around the real keys, with
anchors and aliases (PyYAML writes them for shared objects)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from kit import ROOT

from orchestrator.cli.main import main

DEMO = ROOT / "sweeps" / "demo_sweep.yaml"

KEYS = ["name", "base", "grid", "vary", "trials", "budget", "repeat", "search", "wandb", "description", "model",
        "data", "train", "resources", "model.layers", "model.channels", "model.kernel", "model.blocks", "train.epochs",
        "layers", "blocks", "channels", "kernel", "pool", "family", "se", "width", "max_pool", "epochs", "optimizer",
        "lr", "max_params", "max_macs", "fill", "scheduler", "augment", "subset", "root", "cpus", "time", "<<"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 70), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(["global", "Global", "resnet", "googlenet", "sgd", "adam", "synthetic", "cifar10",
                                     "model.channels", "asha", "1:30", "", "x" * 300]),
                    st.text(max_size=12))
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers(0, 3))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(keys, inner, max_size=4)), max_leaves=12)


SPOTS = [("base", "model"), ("base", "model", "layers"), ("base", "model", "pool"), ("base", "model", "family"),
         ("base", "data"), ("base", "data", "subset"), ("base", "train"), ("base", "train", "optimizer"),
         ("base", "train", "epochs"), ("base", "train", "augment"), ("base", "resources"), ("grid",),
         ("grid", "model.layers"), ("budget",), ("budget", "fill"), ("budget", "max_params"), ("search",),
         ("search", "scheduler"), ("wandb",), ("repeat",), ("vary",), ("trials",)]


def _demo() -> dict:
    return yaml.safe_load(DEMO.read_text())


@st.composite
def documents(draw) -> str:
    if draw(st.booleans()):  # a real spec with one or two places replaced: gets past the first checks
        doc = _demo()
        for spot in draw(st.lists(st.sampled_from(SPOTS), min_size=1, max_size=2)):
            node = doc
            for key in spot[:-1]:
                node = node.setdefault(key, {}) if isinstance(node, dict) else {}
            if isinstance(node, dict):
                node[spot[-1]] = draw(values)
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    doc = draw(st.dictionaries(keys, values, max_size=6))
    if draw(st.booleans()):
        doc.setdefault("name", draw(st.sampled_from(["fz", "f z", 3, None])))
    if draw(st.booleans()):  # the same object twice: PyYAML writes an anchor and an alias
        shared = draw(st.dictionaries(keys, values, max_size=3))
        doc["base"] = {"model": shared, "train": {"epochs": 1}}
        doc["trials"] = [shared, {"<<": shared}]
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    return text if draw(st.booleans()) else text + draw(st.sampled_from(["\n: :", "\n- x", "\n!!python/name:os.system x", ""]))


SETS = st.lists(st.tuples(st.sampled_from(KEYS + ["grid.model.layers", "budget.fill", "vary.model.kernel", "train.epochs",
                                                  "model.pool", "train.optimizer", "budget.max_params", "repeat"]),
                          st.one_of(st.sampled_from(["[2,3]", "[1]", "1", "2", "null", "{name: adam}", "[", "1e9", "&a x",
                                                     "*a", "global", "model.channels", "40000"]),
                                    st.text(max_size=10))), max_size=2)


def _invoke(args: list[str], runs: Path) -> None:
    result = CliRunner().invoke(main, args, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback: the finding
    assert result.exit_code in (0, 2), (args, result.exit_code, result.output)
    event(f"{args[0]} exit {result.exit_code}")
    if result.exit_code == 2:
        lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert not runs.exists() or not any(runs.rglob("*")), list(runs.rglob("*"))  # nothing written


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(documents())
def test_any_yaml_document_is_planned_or_refused_in_one_line(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "fuzz.yaml"
        spec.write_text(text)
        runs = Path(tmp) / "runs"
        _invoke(["plan", str(spec), "--limit", "5"], runs)
        _invoke(["submit", str(spec), "--backend", "ray", "--dry-run", "--runs-dir", str(runs)], runs)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(SETS)
def test_any_set_value_is_planned_or_refused_in_one_line(sets: list[tuple[str, str]]) -> None:
    args = [a for key, value in sets for a in ("--set", f"{key}={value}")]
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        _invoke(["plan", str(DEMO), "--limit", "5", *args], runs)
        _invoke(["submit", str(DEMO), "--backend", "ray", "--dry-run", "--runs-dir", str(runs), *args], runs)


ERRORS = [  # (a --set the user wrote, the key it must blame, what the line must offer)
    ("model.pool=Global", "base.model.pool", "allowed: 'global' or an integer 1..4"),
    ("model.layers=9", "base.model.layers", "allowed: 1..8"),
    ("model.channels=abc", "base.model.channels", "allowed: integers >= 1"),
    ("model.dropout=2", "base.model.dropout", "allowed: 0.0 <= x < 1.0"),
    ("model.kernel=4", "base.model.kernel", "must be odd"),
    ("model.family=vgg", "base.model.family", "registered: densenet, googlenet"),
    ("data.subset=-1", "base.data.subset", "allowed: 1.."),
    ("data.name=imagenet", "base.data.name", "allowed: cifar10, synthetic"),
    ("train.epochs=0", "base.train.epochs", "allowed: 1.."),
    ("train.optimizer.name=foo", "base.train.optimizer.name", "allowed: sgd, adam"),
    ("train.optimizer.lr=-1", "base.train.optimizer.lr", "allowed: >= 0.0"),
    ("train.augment=[zoom]", "base.train.augment[0]", "allowed: crop, flip"),
    ("train.seed=x", "base.train.seed", "allowed: integers 0.."),
    ("train.compile=maybe", "base.train.compile", "expected true or false"),
]


def test_every_error_names_the_key_the_user_set_and_what_is_allowed() -> None:
    for value, key, offer in ERRORS:
        result = CliRunner().invoke(main, ["plan", str(DEMO), "--set", value])
        assert result.exit_code == 2, (value, result.output)
        line = result.stderr.strip()
        assert "\n" not in line and f"demo_sweep.yaml: {key}" in line and offer in line, (value, line)


def test_a_googlenet_max_pool_that_is_too_big_blames_max_pool_not_the_unset_avg_pool(tmp_path: Path) -> None:
    spec = tmp_path / "g.yaml"
    spec.write_text("name: g\nbase:\n  model: {family: googlenet, max_pool: {kernel: 10}}\n")
    result = CliRunner().invoke(main, ["plan", str(spec)])
    assert result.exit_code == 2
    assert "g.yaml: base.model.max_pool.kernel: 10 shrinks the map to 3x3" in result.stderr, result.stderr
    assert "allowed with padding 1: 2..4" in result.stderr and "avg_pool.kernel:" not in result.stderr
