"""Sweep specs: strict loading, expansion, budget filter/fill, stable ids, and the plan CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kit import ROOT

from model import count_params
from orchestrator.sweep.expand import expand, fill_search
from orchestrator.sweep.spec import SpecError, load_spec, spec_from_text

JOINT_PAPER = {  # seed 000 Table 8 rows whose count matches global pooling and the largest width
    (2, 3): 140, (2, 4): 120, (2, 7): 90, (3, 2): 85, (3, 3): 68, (3, 5): 52, (4, 1): 64,
    (4, 2): 42, (4, 3): 34, (4, 4): 29, (4, 5): 26, (5, 1): 32, (5, 3): 17, (5, 4): 14, (5, 5): 13,
}


def test_joint_sweep_fills_the_widest_channels_under_budget() -> None:
    trials = expand(load_spec(ROOT / "sweeps/joint.yaml"))
    assert len(trials) == 28 and all(t.kept for t in trials)
    widths = {(t.config["model"]["layers"], t.config["model"]["blocks"]): t.config["model"]["channels"] for t in trials}
    for key, width in JOINT_PAPER.items():
        assert widths[key] == width, key
    for t in trials:
        m = t.config["model"]
        assert t.params == count_params(m) <= 5_000_000
        assert count_params({**m, "channels": m["channels"] + 1}) > 5_000_000  # the largest that fits


def test_single_param_sweep_reproduces_tables_1_to_6() -> None:
    trials = expand(load_spec(ROOT / "sweeps/single_param.yaml"))
    counts = {t.source: t.params for t in trials}
    assert counts["vary.model.layers[0]"] == 676_682
    assert counts["vary.model.blocks[9]"] == 61_339_722
    assert counts["vary.model.channels[0]"] == 11_420
    assert counts["vary.model.pool[0]"] == 11_250_762
    assert counts["vary.model.skip_kernel[1]"] == 12_550_218
    # vary values equal to the base collapse into one trial (the base itself)
    assert len(trials) == 5 + 10 + 8 + 3 + 4 + 3 - 4
    assert len({t.trial_id for t in trials}) == len(trials)


def test_trial_ids_are_stable_under_key_order(write_spec) -> None:
    a = spec_from_text("base: {model: {layers: 3, channels: 16}, train: {epochs: 1}}\ngrid: {model.blocks: [1, 2]}", "a")
    b = spec_from_text("grid: {model.blocks: [1, 2]}\nbase: {train: {epochs: 1}, model: {channels: 16, layers: 3}}", "b")
    assert [t.trial_id for t in expand(a)] == [t.trial_id for t in expand(b)]
    assert len({t.trial_id for t in expand(a)}) == 2


def test_trial_id_is_a_fixed_function_of_the_config() -> None:
    # Pinned: if this changes, every existing sweep dir loses track of its results (and a
    # resubmit would rerun everything). Change it only on purpose, with a migration note.
    code = ("from orchestrator.sweep.spec import spec_from_text; from orchestrator.sweep.expand import expand; "
            "print(expand(spec_from_text('base: {model: {layers: 3, blocks: 2, channels: 85}}', 'x'))[0].trial_id)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PYTHONHASHSEED": "123", "PATH": ""}, cwd=ROOT)
    assert proc.stdout.strip() == "15e8620f5713"
    spec = spec_from_text("base: {model: {channels: 85, blocks: 2, layers: 3}, resources: {nodes: 2}}", "y")
    assert expand(spec)[0].trial_id == "15e8620f5713"  # key order and resources do not matter


def test_grid_vary_trials_union_and_repeat() -> None:
    spec = spec_from_text("""
base: {model: {layers: 2, channels: 8}}
grid: {model.blocks: [1, 2]}
vary: {model.kernel: [3, 5]}
trials: [{model.blocks: 1}, {model.blocks: 3, model.channels: 4}]
repeat: 2
""", "x")
    trials = expand(spec)
    # grid 2 + vary 2 (kernel 3 == base blocks default 2 == grid[1]) + trials 2 (blocks 1 dup) -> 4 configs
    configs = {(t.config["model"]["blocks"], t.config["model"]["kernel"], t.config["model"]["channels"]) for t in trials}
    assert configs == {(1, 3, 8), (2, 3, 8), (2, 5, 8), (3, 3, 4)}
    assert len(trials) == 8
    assert sorted({t.config["train"]["seed"] for t in trials}) == [0, 1]


def test_an_explicit_trial_keeps_its_value_of_the_fill_key() -> None:
    spec = spec_from_text("""
base: {model: {layers: 4}}
grid: {model.blocks: [1]}
trials: [{model.blocks: [8, 6, 4, 3], model.channels: 32}, {model.blocks: 2, model.channels: 64}]
budget: {max_params: 5000000, fill: model.channels}
""", "x")
    grid, keep, drop = expand(spec)
    assert grid.config["model"]["channels"] == 64 and grid.kept  # filled
    assert keep.config["model"]["channels"] == 32 and keep.params == 4_976_426 and keep.kept  # seed 001 Model 1
    assert drop.config["model"]["channels"] == 64 and not drop.kept and drop.params == 11_173_962 and "over budget" in drop.reason


def test_budget_drops_with_a_reason() -> None:
    trials = expand(spec_from_text("base: {}\nvary: {model.blocks: [1, 2]}\nbudget: {max_params: 5000000}", "x"))
    assert [t.kept for t in trials] == [True, False]
    assert trials[1].reason == "over budget 5,000,000 params" and trials[1].params == 11_173_962


def test_a_macs_budget_filters_and_fill_respects_every_limit() -> None:
    from model import count_macs

    trials = expand(spec_from_text("base: {model: {layers: 3}}\nvary: {model.channels: [16, 32, 64]}\n"
                                   "budget: {max_macs: 200000000}", "x"))
    assert [t.kept for t in trials] == [True, True, False]
    assert trials[2].macs == count_macs({"layers": 3, "channels": 64}) and trials[2].reason == "over budget 200,000,000 MACs"
    # fill under both limits: the widest C_1 whose params AND MACs fit; MACs bind for deep-at-high-res nets
    filled = expand(spec_from_text("base: {model: {layers: 2, blocks: 2}}\nvary: {model.blocks: [1, 3]}\n"
                                   "budget: {max_params: 5000000, max_macs: 1000000000, fill: model.channels}", "y"))
    for t in filled:
        m = t.config["model"]
        wider = {**m, "channels": m["channels"] + 1}
        assert t.kept and t.params <= 5_000_000 and t.macs <= 1_000_000_000
        assert t.macs == count_macs(m) and (count_params(wider) > 5_000_000 or count_macs(wider) > 1_000_000_000)
    assert any(count_params({**t.config["model"], "channels": t.config["model"]["channels"] + 1}) <= 5_000_000
               for t in filled)  # somewhere the MACs limit, not params, decided
    only_macs = expand(spec_from_text("base: {model: {layers: 3}}\nbudget: {max_macs: 50000000, fill: model.channels}", "z"))
    c = only_macs[0].config["model"]["channels"]
    assert count_macs({"layers": 3, "channels": c}) <= 50_000_000 < count_macs({"layers": 3, "channels": c + 1})


def test_fill_reports_trials_that_cannot_fit() -> None:
    trials = expand(spec_from_text(
        "base: {model: {layers: 4}}\nvary: {model.blocks: [1, 200]}\nbudget: {max_params: 200000, fill: model.channels}", "x"))
    assert trials[0].kept and not trials[1].kept
    assert "even model.channels=1 gives" in trials[1].reason


def test_fill_search_is_exact() -> None:
    for budget in (1_000, 50_000, 4_999_999, 5_000_000):
        value, (params, _) = fill_search({"layers": 3, "blocks": 2}, "channels", budget)
        assert params == count_params({"layers": 3, "blocks": 2, "channels": value}) <= budget
        assert count_params({"layers": 3, "blocks": 2, "channels": value + 1}) > budget


def test_set_overrides_base_and_budget(cli) -> None:
    code, out, _ = cli("plan", str(ROOT / "sweeps/joint.yaml"), "--json", "--set", "budget.max_params=1000000",
                       "--set", "model.kernel=5")
    assert code == 0
    trials = json.loads(out)
    assert all(t["params"] <= 1_000_000 and t["config"]["model"]["kernel"] == 5 for t in trials)


def test_plan_table_and_json(cli) -> None:
    code, out, _ = cli("plan", str(ROOT / "sweeps/joint.yaml"))
    assert code == 0 and "28 kept, 0 dropped of 28 trials" in out
    code, out, _ = cli("plan", str(ROOT / "sweeps/joint.yaml"), "--json")
    trials = json.loads(out)
    t = next(t for t in trials if t["config"]["model"]["layers"] == 3 and t["config"]["model"]["blocks"] == 2)
    assert t["config"]["model"]["channels"] == 85 and t["params"] == 4_895_755 and t["kept"] is True
    assert set(t) >= {"trial_id", "config", "params", "kept"}


def test_params_command(cli) -> None:
    assert cli("params", "model.layers=3", "model.channels=85")[:2] == (0, "4,895,755 params, 742,193,480 MACs\n")
    code, out, _ = cli("params", "blocks=[2,1,1,1]", "--json")
    assert json.loads(out)["params"] == 4_977_226
    code, _, err = cli("params", "model.kernel=2")
    assert code == 2 and "model.kernel" in err and "odd" in err


BAD = [
    ("name: x\nbase: {model: {layers: 3}\n", "line", "YAML syntax"),
    ("base: {modle: {layers: 3}}", "base.modle", "valid keys: model, data, train"),
    ("base: {model: {layers: 3, chanels: 8}}", "base.model.chanels", "valid keys: family, layers"),
    ("base: {model: {layers: three}}", "base.model.layers", "integer"),
    ("grid: {model.blocks: []}", "grid.model.blocks", "non-empty list"),
    ("grid: {model.kernel: [3, 4]}", "grid.model.kernel[1]", "odd"),
    ("grid: {modle.kernel: [3]}", "grid.modle.kernel", "valid sections"),
    ("vary: {model.pool: [8]}", "vary.model.pool[0]", "larger than the final 4x4"),
    ("trials: [{model.blocks: [1, 1]}]", "trials[0].model.blocks", "layers is 4"),
    ("budget: {max_params: 5000000, fill: model.pool}", "budget.fill", "model.channels"),
    ("budget: {max_params: 5000000, fill: train.epochs}", "budget.fill", "allowed"),
    ("budget: {max_params: -3}", "budget.max_params", ">= 1"),
    ("budget: {max_params: 5000000, fill: model.channels}\ngrid: {model.channels: [8]}", "grid.model.channels", "fill"),
    ("repeat: 0", "repeat", ">= 1"),
    ("bogus: 1", "bogus", "valid keys: name"),
    ("name: ../evil", "name", "safe directory name"),
    ("base: !!python/object/apply:os.system ['echo hi']", "line 1", "no !!python"),
    ("base: {model: {layers: 3, layers: 4}}", "line 1", "duplicate key"),
]


@pytest.mark.parametrize(("text", "where", "words"), BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_specs_give_one_line_and_exit_2(cli, write_spec, tmp_path: Path, text: str, where: str, words: str) -> None:
    path = write_spec(text)
    code, out, err = cli("plan", str(path))
    assert code == 2, out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0] and where in lines[0] and words in lines[0], lines[0]
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]  # nothing written


def test_bad_spec_via_the_console_script_exits_2(write_spec) -> None:
    path = write_spec("grid: {model.kernel: [2]}")
    proc = subprocess.run([str(Path(sys.executable).parent / "orchestrate"), "plan", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "grid.model.kernel[0]" in proc.stderr


def test_missing_spec_file(cli, tmp_path: Path) -> None:
    code, _, err = cli("plan", str(tmp_path / "nope.yaml"))
    assert code == 2 and "cannot read spec" in err


def test_spec_error_type() -> None:
    with pytest.raises(SpecError):
        spec_from_text("[1, 2]", "x")


@pytest.mark.parametrize(("args", "words"), [
    (["--trial", "ffffffffffff"], "matches 0 trials"),
    (["--index", "9"], "allowed: 0..1"),
    (["--index", "1"], "dropped by the budget"),
    (["--trial", "x", "--index", "0"], "not both"),
])
def test_train_picks_a_trial_or_says_why_not(cli, write_spec, tmp_path: Path, args: list[str], words: str) -> None:
    path = write_spec("base: {data: {name: synthetic}}\nvary: {model.blocks: [1, 2]}\nbudget: {max_params: 5000000}")
    code, _, err = cli("train", str(path), "--out", str(tmp_path / "out"), *args)
    assert code == 2 and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_yaml_merge_keys_share_overrides_and_duplicates_still_fail(tmp_path: Path) -> None:
    text = """
base: {model: {family: googlenet}}
trials:
  - &half {model.width: 0.5, model.stem_kernel: 5}
  - {<<: *half, model.kernel: 5}
"""
    first, second = expand(spec_from_text(text, "x"))
    assert second.config["model"] | {"kernel": 3} == first.config["model"]
    assert second.config["model"]["width"] == 0.5 and second.config["model"]["kernel"] == 5
    with pytest.raises(SpecError, match="duplicate key 'model.width'"):
        spec_from_text(text.replace("model.kernel: 5", "model.width: 0.5, model.width: 1.0"), "x")


def test_set_that_trials_override_is_warned_about(cli) -> None:
    spec = str(ROOT / "sweeps/seed003_googlenet.yaml")
    code, _, err = cli("plan", spec, "--json", "--set", "model.width=0.25", "--set", "train.epochs=1")
    assert code == 0
    assert "--set model.width is ignored by 5 of 7 trials" in err and "train.epochs" not in err


def test_grid_fast_path_equals_expanding_point_by_point() -> None:
    """The grid resolves each section's combinations once; the result must be exactly what
    resolving every grid point on its own gives, in the same order."""
    import itertools

    from orchestrator.sweep.expand import _Expander

    spec = spec_from_text("""
base: {model: {layers: 3}, train: {optimizer: {name: sgd, lr: 0.1}}}
grid:
  model.channels: [8, 16, 8]
  model.blocks: [1, 2]
  train.optimizer.lr: [0.1, 0.01]
  train.epochs: [1, 2]
repeat: 2
budget: {max_params: 60000}
""", "x")
    slow = _Expander(spec)
    keys = [k for k, _ in spec.grid]
    for combo in itertools.product(*(v for _, v in spec.grid)):
        slow.point("grid", dict(zip(keys, combo)))
    fast = expand(spec)
    assert [t.to_json() for t in fast] == [t.to_json() for t in slow.trials]
    assert len(fast) == 2 * 2 * 2 * 2 * 2 and any(not t.kept for t in fast)  # channels 8 twice: deduplicated


def test_a_nan_in_a_grid_is_refused_in_one_line(write_spec, cli) -> None:
    """Found by the fuzz test: a NaN grid value (not == itself) could not be located in the grid."""
    spec = write_spec("name: n\nbase: {model: {family: resnet}, data: {name: synthetic}}\n"
                      "grid: {model.layers: [.nan], model.blocks: [1, 2]}\n")
    code, _, err = cli("plan", str(spec))
    assert code == 2 and err.count("\n") == 1 and "grid.model.layers[0]" in err and "nan" in err, err
