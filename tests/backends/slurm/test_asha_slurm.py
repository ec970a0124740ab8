"""ASHA on the real local SLURM cluster, which has no Tune scheduler: the sweep's driver job
pauses each trial at its rung (``paused``, resumable, not a verdict), promotes the best 1/eta of
each rung to go on from its checkpoint, and ends the rest stopped early. A promoted trial's
epochs equal those of the same trial run without a pause; every epoch is trained once."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from kit import ORCH, tiny

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

TIMING = {"wall_seconds", "images_per_second", "session_seconds", "epoch_seconds", "started_at", "ended_at"}
EPOCHS = 4
SPEC = {
    "name": "asha",
    "base": tiny(data={"val_size": 40}, train={"epochs": EPOCHS, "scheduler": {"name": "cosine"}},
                 resources={"cpus_per_task": 1, "time": "00:10:00", "array_parallelism": 2}),
    "grid": {"train.optimizer.lr": [0.001, 0.01, 0.1, 0.3]},
    "search": {"scheduler": "asha", "grace_period": 1, "reduction_factor": 2,
               "driver": {"time": "00:10:00", "mem_gb": 0.5}},
}


def env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(tmp / "home"), "COLUMNS": "250",
            "ORCHESTRATE_SEARCH_POLL_S": "2"}


def orch(tmp: Path, *args: str, runs: bool = True) -> str:
    proc = subprocess.run([ORCH, *args, *(["--runs-dir", str(tmp / "runs")] if runs else [])], capture_output=True,
                          text=True, cwd=tmp, env=env(tmp), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def job_state(job: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout.strip()
    rows = "" if out else subprocess.run(["sacct", "-n", "-X", "-P", "-j", job, "-o", "State"], capture_output=True,
                                         text=True).stdout
    return out or (rows.splitlines()[-1].split()[0] if rows.strip() else "UNKNOWN")


def rows(trial_dir: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]


def test_asha_on_slurm_pauses_promotes_and_resumes_to_the_metrics_of_an_unpaused_run(tmp_path: Path) -> None:
    spec = tmp_path / "asha.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    sweep = tmp_path / "runs" / "asha"
    dry = orch(tmp_path, "submit", str(spec), "--backend", "slurm", "--dry-run")  # (it was refused before issue 19)
    assert "queues the sweep's driver job, which runs the sweep's 4 trials, pausing each at the ASHA rungs" in dry
    assert not sweep.exists()
    out = orch(tmp_path, "submit", str(spec), "--backend", "slurm")
    assert "queued the sweep's driver job" in out and "ASHA rungs" in out, out
    job = str(json.loads((sweep / "search" / "driver.json").read_text())["job_id"])
    deadline = time.time() + 600
    seen_paused = False
    while job_state(job) in ("PENDING", "RUNNING", "REQUEUED"):
        assert time.time() < deadline, "the driver never ended"
        seen_paused |= any(json.loads(p.read_text()).get("status") == "paused"
                           for p in (sweep / "trials").glob("*/result.json"))
        time.sleep(0.5)
    assert job_state(job) == "COMPLETED" and seen_paused
    results = {p.parent.name: json.loads(p.read_text()) for p in (sweep / "trials").glob("*/result.json")}
    assert len(results) == 4, results
    runs = Counter(json.loads(line)["trial_id"] for line in (sweep / "submissions.jsonl").read_text().splitlines())
    stopped = {t for t, r in results.items() if r["status"] == "stopped_early"}
    assert stopped and all(results[t]["stopped_by"] == "asha" and results[t]["epochs_completed"] < EPOCHS
                           for t in stopped), results
    promoted = [t for t, r in results.items() if r["status"] == "completed" and runs[t] >= 2]
    assert promoted, (results, runs)  # paused at a rung, then promoted, then resumed to the end
    for t, r in results.items():  # every epoch trained once, from 1 to where it stopped
        assert [row["epoch"] for row in rows(sweep / "trials" / t)] == list(range(1, r["epochs_completed"] + 1))
    assert sum(r["epochs_completed"] for r in results.values()) < 4 * EPOCHS
    per_array = Counter(json.loads(line)["array_id"] for line in (sweep / "submissions.jsonl").read_text().splitlines())
    assert max(per_array.values()) <= 2
    # the promoted trial, run again here in one go: the same numbers, epoch for epoch
    orch(tmp_path, "train", str(spec), "--trial", promoted[0], "--out", str(tmp_path / "whole"), runs=False)
    assert rows(sweep / "trials" / promoted[0]) == rows(tmp_path / "whole")
    assert not list((sweep / "trials").glob("*/pause.json"))  # the driver cleans up after itself
    shown = orch(tmp_path, "status", str(sweep))
    assert f"driver job {job} completed" in shown and "stopped_early" in shown, shown
