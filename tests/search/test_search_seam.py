"""The search seam: trials proposed while a sweep runs are recorded append-only and read exactly
as planned ones; stopping rules are a registry the spec validates against; "asha" is named once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from kit import ORCH, ROOT

from configcheck import ConfigError
from orchestrator.search import stopping
from orchestrator.search.propose import FixedExpansion, record_proposals
from orchestrator.store.sweepdir import SweepDir
from orchestrator.sweep.proposers import proposer_for
from orchestrator.sweep.sections import resolve_search
from orchestrator.sweep.spec import load_spec
from train.files import write_result

BASE = {"model": {"blocks": 1, "layers": 1}, "data": {"name": "synthetic"}, "train": {"epochs": 2}}


def spec_file(tmp: Path, name: str, channels: list[int]) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": "seam", "base": BASE, "grid": {"model.channels": channels}}))
    return path


def test_asha_is_named_in_one_place_only() -> None:
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "orchestrator").rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"""["']asha["']""", line)]
    assert len(hits) == 1 and hits[0].startswith("orchestrator/search/stopping.py:"), hits


def test_the_fixed_expansion_is_a_policy_that_proposes_nothing_later(tmp_path: Path) -> None:
    spec = load_spec(spec_file(tmp_path, "a", [8, 16]))
    policy = proposer_for(spec)
    assert isinstance(policy, FixedExpansion) and [t.trial_id for t in policy.first()]
    assert policy.more({t.trial_id: {"status": "completed"} for t in policy.first()}) == []


def test_a_trial_proposed_while_the_sweep_runs_is_recorded_once_and_read_like_a_planned_one(tmp_path: Path) -> None:
    spec = load_spec(spec_file(tmp_path, "a", [8, 16]))
    policy = proposer_for(spec)
    planned = [t for t in policy.first() if t.kept]
    sweep = SweepDir(tmp_path / "runs" / "seam")
    sweep.write_plan(spec.raw, planned, spec.search, spec.wandb)
    before = (sweep.path / "trials.jsonl").read_text()
    # a search proposes a new point (same trial-id rule: the id is the config's) and one it already has
    more = [t for t in proposer_for(load_spec(spec_file(tmp_path, "b", [12, 16]))).first() if t.kept]
    new = record_proposals(sweep, policy, more)
    assert [t.config["model"]["channels"] for t in new] == [12]
    text = (sweep.path / "trials.jsonl").read_text()
    assert text.startswith(before)  # append-only: the planned lines are untouched
    assert record_proposals(sweep, policy, more) == []  # proposed twice: recorded once
    assert (sweep.path / "trials.jsonl").read_text() == text
    rows = sweep.trials()
    assert [r["trial_id"] for r in rows] == [t.trial_id for t in planned] + [new[0].trial_id]
    assert rows[-1]["proposed_by"] == "fixed" and rows[-1]["kept"]
    # the readers see it as any trial: a result for it ranks on the leaderboard, status lists it
    t = new[0]
    write_result(sweep.trial_dir(t.trial_id), {"status": "completed", "stopped_by": None, "trial_id": t.trial_id,
                                               "params": t.params, "epochs": 2, "epochs_completed": 2,
                                               "test_acc": 0.5, "test_loss": 1.0, "best_test_acc": 0.5,
                                               "error": None, "failure_kind": None})
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    board = subprocess.run([ORCH, "leaderboard", str(sweep.path), "--format", "json", "--per-seed"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert board.returncode == 0, board.stderr
    assert [r["trial_id"] for r in json.loads(board.stdout)] == [t.trial_id]
    status = subprocess.run([ORCH, "status", str(sweep.path), "--json"], capture_output=True, text=True, env=env,
                            timeout=300)
    assert status.returncode == 0, status.stderr
    states = {r["trial_id"]: r["state"] for r in json.loads(status.stdout)}
    assert states[t.trial_id] == "completed" and len(states) == 3
    # a later submit of the spec rewrites the plan: the proposed trial stays, not marked earlier
    sweep.write_plan(spec.raw, planned, spec.search, spec.wandb)
    kept = {r["trial_id"]: r for r in sweep.trials()}
    assert t.trial_id in kept and not kept[t.trial_id].get("earlier")


def test_a_proposer_killed_while_recording_leaves_the_old_manifest_or_the_new_one(tmp_path: Path) -> None:
    spec = load_spec(spec_file(tmp_path, "a", [8]))
    sweep = SweepDir(tmp_path / "runs" / "seam")
    sweep.write_plan(spec.raw, proposer_for(spec).first(), spec.search, spec.wandb)
    child = textwrap.dedent(f"""
        import yaml
        from pathlib import Path
        from orchestrator.search.propose import record_proposals
        from orchestrator.store.sweepdir import SweepDir
        from orchestrator.sweep.proposers import proposer_for
        from orchestrator.sweep.spec import load_spec
        sweep = SweepDir({str(sweep.path)!r})
        spec = Path({str(tmp_path / 'c.yaml')!r})
        for c in range(9, 4000):
            spec.write_text(yaml.safe_dump({{"name": "seam", "base": {BASE!r}, "grid": {{"model.channels": [c]}}}}))
            p = proposer_for(load_spec(spec))
            record_proposals(sweep, p, p.first())
            print(c, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    for _ in range(12):  # wait for a dozen proposals, then kill it wherever it is
        proc.stdout.readline()
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    lines = (sweep.path / "trials.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]  # every line whole
    ids = [r["trial_id"] for r in rows]
    assert len(ids) == len(set(ids)) >= 13
    assert [r["config"]["model"]["channels"] for r in rows] == [8, *range(9, 9 + len(rows) - 1)]


def test_stopping_rules_are_a_registry_the_spec_validates_against(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_search({"scheduler": "asha"})["reduction_factor"] == 4
    with pytest.raises(ConfigError, match="allowed: none, asha"):
        resolve_search({"scheduler": "hyperband"})

    class Median(stopping.StoppingRule):
        name = "median"
        label = "median stopping"
        stops = True

    monkeypatch.setitem(stopping.RULES, "median", Median())
    assert resolve_search({"scheduler": "median"})["scheduler"] == "median"
    assert stopping.rule({"scheduler": "median"}).stops
    assert not stopping.rule(None).stops and stopping.rule({"scheduler": "asha"}).label == "ASHA"
