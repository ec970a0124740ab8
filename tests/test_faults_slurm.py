"""Fault injection on the local SLURM cluster: a submit killed at each step, then rerun; a node
that fails under a running trial; a trial dir whose disk fills up (see test_faults.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.faults import POINTS
from test_slurm import ORCH, TINY, jobs_of, orch, settled, wait, write

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]


def queued(name: str) -> list[str]:
    """Jobs of sweep ``name`` in the queue now (squeue: sacct lags by seconds), one per array task."""
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%j"], capture_output=True, text=True, check=True).stdout
    return [ln.split("|")[0] for ln in out.split() if ln.split("|")[1].startswith(f"orchestrate-{name}-")]


@pytest.mark.parametrize("point", POINTS)
def test_a_submit_killed_at_each_step_then_rerun_queues_every_trial_exactly_once(tmp_path: Path, point: str) -> None:
    name = "kill-" + point.split(".")[1].replace("_", "-")
    spec = write(tmp_path, name, {**TINY, "train": {**TINY["train"], "epochs": 1}}, grid={"train.seed": [0, 1, 2]})
    t0 = time.time()
    killed = subprocess.run([ORCH, "submit", str(spec), "--partition", "cpu", "--runs-dir", str(tmp_path / "runs")],
                            capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "ORCHESTRATE_FAULT": point})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    sweep = tmp_path / "runs" / name
    assert list((sweep / "intents").glob("*.json")), "the intent is written before sbatch"
    queued_before = queued(name)
    assert len(queued_before) == (0 if point == "submit.after_intent" else 3), queued_before
    orch(tmp_path, "submit", str(spec), "--partition", "cpu")
    states = wait(tmp_path, spec, settled)
    assert [s["state"] for s in states] == ["completed"] * 3, states
    jobs = jobs_of(name, t0)
    assert len(jobs) == 3, jobs  # one job per trial: none twice, none missing
    history = [json.loads(ln) for ln in (sweep / "submissions.jsonl").read_text().splitlines()]
    assert sorted(h["job_id"] for h in history) == sorted(jobs), history  # each recorded exactly once
    assert {h["trial_id"] for h in history} == {s["trial_id"] for s in states}
    assert not list((sweep / "intents").glob("*.json"))  # reconciled
