"""A 3-stage study on the real local SLURM cluster from one submit that returns at once: step
jobs, each queued after its stage's array (``--dependency=afterany``), record the selection and
queue the next stage. The step job killed before and after it records a selection: a resubmit
completes the study, no trial trained twice, the recorded selection kept."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from kit import ORCH, tiny
from studykit import SEARCHED, STUDY, check_searched, check_study

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

SPEC = {**STUDY, "base": {**STUDY["base"], "resources": {"cpus_per_task": 1, "time": "00:10:00"}},
        "driver": {"time": "00:05:00", "mem_gb": 0.5}}


def orch(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([ORCH, *args, "--runs-dir", str(tmp / "runs")], capture_output=True, text=True, cwd=tmp,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(tmp / "home"), "COLUMNS": "250",
                               "ORCHESTRATE_SEARCH_POLL_S": "2", **env}, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def job_state(job: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout.strip()
    if out:
        return out
    rows = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job, "-o", "State"], capture_output=True, text=True).stdout
    return rows.splitlines()[-1].split()[0] if rows.strip() else "UNKNOWN"


def step_job(sweep: Path) -> str:
    return str(json.loads((sweep / "study" / "step.json").read_text())["job_id"])


def wait_steps(sweep: Path, timeout: float, until_stage: str | None = None) -> str:
    """Wait until the latest step job has ended and queued no successor; its final state."""
    deadline = time.time() + timeout
    while True:
        assert time.time() < deadline, "the study's step jobs never ended"
        job = step_job(sweep)
        state = job_state(job)
        if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "UNKNOWN") and step_job(sweep) == job:
            return state
        time.sleep(1)


def test_a_three_stage_study_runs_unattended_from_one_submit(tmp_path: Path) -> None:
    spec = tmp_path / "st.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    sweep = tmp_path / "runs" / "st"
    dry = orch(tmp_path, "submit", str(spec), "--backend", "slurm", "--dry-run").stdout
    assert "study: screen 4 trials -> longer: top 2 of screen x 1 = 2 trials" in dry and not sweep.exists(), dry
    began = time.time()
    out = orch(tmp_path, "submit", str(spec), "--backend", "slurm").stdout
    assert time.time() - began < 60, out
    assert "stage screen in progress" in out and "queued the study's step job" in out, out
    first = step_job(sweep)
    assert job_state(first) == "PENDING"  # waiting on the stage's array (Dependency)
    assert wait_steps(sweep, 600) == "COMPLETED"  # (the test never submits again)
    check_study(sweep)
    assert step_job(sweep) != first  # a chain of step jobs, each after its stage
    status = orch(tmp_path, "status", str(sweep)).stdout
    assert "stage 0 screen: 4 trials: 4 completed; selected top 2 by test_acc" in status, status
    assert "ranking from screen to longer: Kendall tau" in status, status
    board = orch(tmp_path, "leaderboard", str(sweep)).stdout
    assert "stage seeds of study st" in board and "screen 0." in board and "longer 0." in board, board


@pytest.mark.parametrize("fault", ["study.step_start", "study.after_selection"])
def test_a_step_job_killed_before_or_after_it_records_then_resubmit_completes_once(tmp_path: Path, fault: str) -> None:
    spec = tmp_path / "st.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    sweep = tmp_path / "runs" / "st"
    orch(tmp_path, "submit", str(spec), "--backend", "slurm", ORCHESTRATE_FAULT=fault)  # step jobs inherit it
    assert wait_steps(sweep, 300) != "COMPLETED"  # the first step job killed itself at the fault point
    selection = sweep / "study" / "00-screen" / "selection.json"
    assert selection.exists() == (fault == "study.after_selection")
    assert not (sweep / "study" / "01-longer").exists()  # nothing of the next stage began
    recorded = selection.read_text() if selection.exists() else None
    out = orch(tmp_path, "submit", str(spec), "--backend", "slurm").stdout
    assert "stage longer in progress" in out, out
    assert wait_steps(sweep, 300) == "COMPLETED"
    check_study(sweep)
    if recorded is not None:
        assert selection.read_text() == recorded  # made once, kept
    subs = [json.loads(line)["trial_id"] for line in (sweep / "submissions.jsonl").read_text().splitlines()]
    assert len(subs) == len(set(subs)) == 7  # every trial queued once


def test_cancel_stops_the_study_first_then_its_trials(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(SPEC))
    doc["stages"][0]["train"] = {"epochs": 500}
    spec = tmp_path / "st.yaml"
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))
    sweep = tmp_path / "runs" / "st"
    orch(tmp_path, "submit", str(spec), "--backend", "slurm")
    step = step_job(sweep)
    out = orch(tmp_path, "cancel", str(sweep)).stdout
    assert f"cancelled the study's step job {step} of st" in out and out.count("cancelled ") == 5, out
    deadline = time.time() + 60
    while job_state(step) not in ("CANCELLED",):
        assert time.time() < deadline, job_state(step)
        time.sleep(1)
    assert not (sweep / "study" / "00-screen" / "selection.json").exists()
    status = orch(tmp_path, "status", str(sweep)).stdout
    assert f"the study's step job {step} CANCELLED" in status or f"the study's step job {step} cancelled" in status, status


def test_a_study_whose_stages_search_is_driven_by_its_step_job(tmp_path: Path) -> None:
    doc = {**SEARCHED, "base": {**SEARCHED["base"], "resources": {"cpus_per_task": 1, "time": "00:10:00"}},
           "driver": SPEC["driver"]}
    spec = tmp_path / "ss.yaml"
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))
    sweep = tmp_path / "runs" / "ss"
    began = time.time()
    out = orch(tmp_path, "submit", str(spec), "--backend", "slurm").stdout
    assert time.time() - began < 60 and "queued the study's step job" in out, out  # it drives the search
    assert wait_steps(sweep, 600) == "COMPLETED"
    check_searched(sweep)


def test_asha_in_a_study_stage_is_run_by_its_step_job(tmp_path: Path) -> None:
    """SLURM has no Tune scheduler: the step job pauses and promotes the screen's trials at their
    rungs (the rung driver), ends the rest stopped early, then selects among those that finished."""
    doc = {"name": "sa", "base": {**tiny(data={"val_size": 40}, train={"epochs": 4, "scheduler": {"name": "cosine"}}),
                                  "resources": {"cpus_per_task": 1, "time": "00:10:00", "array_parallelism": 2}},
           "driver": SPEC["driver"], "stages": [
               {"name": "screen", "grid": {"train.optimizer.lr": [0.001, 0.01, 0.1, 0.3]},
                "search": {"scheduler": "asha", "grace_period": 1, "reduction_factor": 2}},
               {"name": "longer", "select": {"top": 1}, "carry": ["model", "train.optimizer.lr"],
                "train": {"epochs": 5}}]}
    spec = tmp_path / "sa.yaml"
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))
    sweep = tmp_path / "runs" / "sa"
    out = orch(tmp_path, "submit", str(spec), "--backend", "slurm").stdout
    assert "queued the study's step job" in out, out
    assert wait_steps(sweep, 600) == "COMPLETED"
    from orchestrator.store.stages import stage_records
    from orchestrator.store.sweepdir import SweepDir

    recs = stage_records(SweepDir(sweep))
    screen = [json.loads((sweep / "trials" / m["trial_id"] / "result.json").read_text()) for m in recs[0]["trials"]]
    stopped = [r for r in screen if r["status"] == "stopped_early"]
    done = [r for r in screen if r["status"] == "completed"]
    assert stopped and all(r["stopped_by"] == "asha" and r["epochs_completed"] < 4 for r in stopped), screen
    assert done and not list(sweep.glob("trials/*/pause.json"))
    sel = recs[0]["selection"]
    assert len(sel["selected"]) == 1 and sel["selected"][0]["trial_ids"][0] in {r["trial_id"] for r in done}
    assert "stopped early" in sel["note"]
    (last,) = recs[1]["trials"]
    result = json.loads((sweep / "trials" / last["trial_id"] / "result.json").read_text())
    assert result["status"] == "completed" and result["epochs_completed"] == 5
