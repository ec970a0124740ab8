"""A real TPE search on the real local SLURM cluster, run unattended: ``submit`` queues a small
driver job and returns; the driver proposes, queues arrays of at most ``parallel`` trials and tells
results as they finish. Requeued, then cancelled mid-search and resubmitted, it ends with exactly
8 trained trials, none twice, every proposal within the budget, the journal agreeing."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from kit import ORCH
from searchkit import SPEC, check_search, results

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

DRIVEN = {**SPEC, "base": {**SPEC["base"], "resources": {"cpus_per_task": 1, "time": "00:10:00"}},
          "search": {**SPEC["search"], "driver": {"time": "00:10:00", "mem_gb": 0.5}}}


def env(tmp: Path) -> dict[str, str]:
    # the driver job inherits the submitting environment (sbatch --export=ALL): it polls every 2 s
    return {**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(tmp / "home"), "COLUMNS": "250",
            "ORCHESTRATE_SEARCH_POLL_S": "2"}


def orch(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([ORCH, *args, "--runs-dir", str(tmp / "runs")], capture_output=True, text=True, cwd=tmp,
                          env=env(tmp), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def driver(sweep: Path) -> str:
    return str(json.loads((sweep / "search" / "driver.json").read_text())["job_id"])


def job_state(job: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout.strip()
    if out:
        return out
    rows = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job, "-o", "State"], capture_output=True, text=True).stdout
    return rows.splitlines()[-1].split()[0] if rows.strip() else "UNKNOWN"  # "CANCELLED by 0": the word


def until(what, timeout: float, why: str) -> None:
    deadline = time.time() + timeout
    while not what():
        assert time.time() < deadline, why
        time.sleep(0.5)


def arrays_of_at_most_parallel(sweep: Path) -> None:
    subs = [json.loads(line) for line in (sweep / "submissions.jsonl").read_text().splitlines()]
    per_array = Counter(s["array_id"] for s in subs)
    assert per_array and max(per_array.values()) <= 2, per_array


def test_a_tpe_search_of_8_trials_2_at_a_time_completes_unattended(tmp_path: Path) -> None:
    spec = tmp_path / "tpe.yaml"
    spec.write_text(yaml.safe_dump(DRIVEN, sort_keys=False))
    sweep = tmp_path / "runs" / "tpe"
    dry = orch(tmp_path, "submit", str(spec), "--backend", "slurm", "--dry-run").stdout  # the seed's first 2, nothing written
    assert dry.count("  would submit ") == 2 and "#SBATCH" in dry and not sweep.exists(), dry
    assert "queues the sweep's driver job" in dry
    began = time.time()
    out = orch(tmp_path, "submit", str(spec), "--backend", "slurm").stdout
    assert time.time() - began < 60 and "queued the sweep's driver job" in out, out
    job = driver(sweep)
    until(lambda: job_state(job) in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), 600, "the driver never ended")
    assert job_state(job) == "COMPLETED", (sweep / "slurm").glob("driver-*/*_log.err")
    check_search(sweep)
    arrays_of_at_most_parallel(sweep)
    shown = orch(tmp_path, "status", str(sweep)).stdout
    assert "search (tpe): 8 / 8 trained, best" in shown and f"driver job {job} completed" in shown, shown
    again = orch(tmp_path, "submit", str(spec), "--backend", "slurm").stdout  # nothing left: the driver ends at once
    job2 = driver(sweep)
    assert job2 != job and "queued the sweep's driver job" in again, again
    until(lambda: job_state(job2) == "COMPLETED", 300, "a driver with nothing to do did not end")
    assert len(results(sweep)) == 8 and len((sweep / "submissions.jsonl").read_text().splitlines()) == 8


def test_the_driver_requeued_then_cancelled_mid_search_loses_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "tpe.yaml"
    spec.write_text(yaml.safe_dump(DRIVEN, sort_keys=False))
    sweep = tmp_path / "runs" / "tpe"
    orch(tmp_path, "submit", str(spec), "--backend", "slurm")
    job = driver(sweep)
    until(lambda: len(results(sweep)) >= 1, 600, "no trial finished")
    subprocess.run(["scontrol", "requeue", job], check=True)  # SLURM restarts it: the next run continues
    log = next((sweep / "slurm").glob("driver-*")) / f"{job}_0_log.out"
    until(lambda: log.read_text().count(f"Starting with JobEnvironment(job_id={job},") == 2, 400,
          "the requeued driver never ran again")
    before = len(results(sweep))
    until(lambda: len(results(sweep)) >= before + 1, 600, "the requeued driver did not go on")
    out = orch(tmp_path, "submit", str(spec), "--backend", "slurm").stdout  # while it runs: no second driver
    assert f"driver job {job} is still running it" in out and driver(sweep) == job, out
    subprocess.run(["scancel", job], check=True)  # the driver alone dies: its trials go on
    until(lambda: job_state(job) == "CANCELLED", 120, "the driver was not cancelled")
    assert len(results(sweep)) < 8
    orch(tmp_path, "submit", str(spec), "--backend", "slurm")  # a new driver continues from the journal
    job2 = driver(sweep)
    assert job2 != job
    until(lambda: job_state(job2) in ("COMPLETED", "FAILED", "CANCELLED"), 600, "the second driver never ended")
    assert job_state(job2) == "COMPLETED"
    check_search(sweep)  # exactly 8, each epoch of each once, the journal's told trials the same 8
    arrays_of_at_most_parallel(sweep)
    # `orchestrate cancel` stops a search: its driver first (else it would queue the next proposals)
    orch(tmp_path, "submit", str(spec), "--backend", "slurm", "--set", "search.trials=10")
    job3 = driver(sweep)
    until(lambda: job_state(job3) == "RUNNING", 120, "the third driver never started")
    out = orch(tmp_path, "cancel", str(sweep)).stdout
    assert out.startswith(f"cancelled the sweep's driver job {job3}"), out
    until(lambda: job_state(job3) == "CANCELLED", 120, "the driver was not cancelled")
    time.sleep(5)
    queued = subprocess.run(["squeue", "-h", "-n", "orchestrate-search-tpe", "-o", "%i"], capture_output=True,
                            text=True).stdout
    assert not queued.strip(), queued
