"""Every shipped sweep file plans cleanly and carries its seed's parameter counts exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kit import ROOT

from model import count_params
from orchestrator.sweep.expand import expand
from orchestrator.sweep.spec import is_study, load_spec

SWEEPS = ROOT / "sweeps"
SINGLE = [p for p in sorted(SWEEPS.glob("*.yaml")) if not is_study(p)]  # studies: tests/study

SEED_COUNTS = {  # counts the seeds print that each file must reproduce (the rest are commented in it)
    "seed001_blocks": {4_976_426, 4_772_010, 4_904_618, 4_903_242},
    "seed002_se_lookahead": {4_697_742},
    "seed003_googlenet": {6_166_250, 6_175_466},
    "seed003_screen": {11_173_962, 6_166_250, 6_956_298, 3_217_226, 2_296_922, 11_260_354},
    "seed004_optimizers": {4_977_226},
}


@pytest.mark.parametrize("path", SINGLE, ids=lambda p: p.stem)
def test_every_sweep_file_plans_within_its_budget(path: Path, cli) -> None:
    code, out, err = cli("plan", str(path), "--json")
    assert code == 0, err
    rows = json.loads(out)
    spec = load_spec(path)
    assert rows and spec.name == path.stem
    for row in rows:
        assert row["params"] == count_params(row["config"]["model"])
        if spec.budget.max_params is not None:
            assert row["kept"] == (row["params"] <= spec.budget.max_params)
    assert len({r["trial_id"] for r in rows}) == len(rows)  # no duplicate trials


@pytest.mark.parametrize("name", sorted(SEED_COUNTS))
def test_seed_counts_are_reproduced(name: str) -> None:
    counts = {t.params for t in expand(load_spec(SWEEPS / f"{name}.yaml"))}
    assert SEED_COUNTS[name] <= counts


def test_seed003_budget_drops_exactly_the_full_width_googlenets() -> None:
    trials = expand(load_spec(SWEEPS / "seed003_googlenet.yaml"))
    dropped = [t for t in trials if not t.kept]
    assert [t.params for t in dropped] == [6_166_250, 6_175_466]
    assert all(t.config["model"]["width"] == 0.5 for t in trials if t.kept)


def test_plan_table_shows_what_varies(cli) -> None:
    code, out, _ = cli("plan", str(SWEEPS / "joint.yaml"))
    assert code == 0
    header = next(line for line in out.splitlines() if "trial id" in line)
    assert all(word in header for word in ("layers", "blocks", "channels", "params", "kept"))
    # more than three keys vary: one "changes" column, mapping overrides shown as leaf keys
    code, out, _ = cli("plan", str(SWEEPS / "seed003_screen.yaml"))
    assert code == 0 and "changes from base" in out
    assert "family=densenet" in out and "se.where=blocks" in out
    code, out, _ = cli("plan", str(SWEEPS / "seed003_googlenet.yaml"))
    assert out.count("over budget") == 2 and "5 kept, 2 dropped of 7 trials" in out


@pytest.mark.parametrize("path", SINGLE, ids=lambda p: p.stem)
def test_memoized_json_text_is_json_dumps(path: Path) -> None:
    memo: dict = {}
    for t in expand(load_spec(path)):
        assert t.json_text(memo) == json.dumps(t.to_json())
