"""Fault injection on the local SLURM cluster: a submit killed at each step, then rerun; a node
that fails under a running trial; a trial dir whose disk fills up (see test_faults.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from test_slurm import ORCH, ROOT, TINY, jobs_of, orch, resumed_after, settled, start_past_epoch_5, wait, write
from test_slurm import status as status_of

from orchestrator.faults import POINTS

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
    rerun = orch(tmp_path, "submit", str(spec), "--partition", "cpu")
    assert ("recorded 3 trial(s) that an interrupted submit had queued" in rerun.stderr) == (
        point == "submit.after_sbatch"), rerun.stderr  # (after_record: they were recorded already)
    states = wait(tmp_path, spec, settled)
    assert [s["state"] for s in states] == ["completed"] * 3, states
    jobs = jobs_of(name, t0)
    assert len(jobs) == 3, jobs  # one job per trial: none twice, none missing
    history = [json.loads(ln) for ln in (sweep / "submissions.jsonl").read_text().splitlines()]
    assert sorted(h["job_id"] for h in history) == sorted(jobs), history  # each recorded exactly once
    assert {h["trial_id"] for h in history} == {s["trial_id"] for s in states}
    assert not list((sweep / "intents").glob("*.json"))  # reconciled


def _node_of(job: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%N"], capture_output=True, text=True).stdout.strip()
    return out


@pytest.mark.slurm_exclusive
def test_a_node_that_dies_under_a_trial_is_node_fail_and_the_trial_resumes_on_the_other_node(tmp_path: Path) -> None:
    """A node crash: its slurmd and the trial's processes die at once (SIGKILL). After
    SlurmdTimeout the controller marks the node DOWN and the job NODE_FAIL; SLURM's requeue policy
    (JobRequeue=1) queues it again, it runs on the other node, takes over the dead run's lease and
    resumes from its checkpoint."""
    spec, job, tid, trial_dir = start_past_epoch_5(tmp_path, "nodefail", 80)
    node = _node_of(job)
    assert node in ("n1", "n2"), node
    other = {"n1": "n2", "n2": "n1"}[node]
    lease = json.loads((trial_dir / "lease.json").read_text())
    try:
        slurmd = int(Path(f"/run/slurm/slurmd-{node}.pid").read_text())
        os.kill(slurmd, 9)
        subprocess.run(["pkill", "-9", "-f", rf"slurmstepd: \[{job}\."], check=False)
        os.kill(lease["pid"], 9)
        seen = wait(tmp_path, spec, lambda s: "node_fail" in s[0]["detail"] or s[0]["state"] == "node_fail",
                    timeout=120)
        assert seen[0]["state"] in ("pending", "running", "node_fail"), seen
        states = wait(tmp_path, spec, settled, timeout=300)
    finally:  # the node comes back for the other tests (ReturnToService=2 once its slurmd registers)
        subprocess.run(["bash", str(ROOT / "slurm" / "local-cluster.sh"), "up"], capture_output=True, timeout=300)
    assert states[0]["state"] == "completed", states
    assert "restarts 1 after node_fail" in states[0]["detail"], states
    history = subprocess.run(["sacct", "-n", "-X", "-D", "-P", "-j", job, "-o", "State"],
                             capture_output=True, text=True).stdout.split()
    assert history[0] == "NODE_FAIL", history
    r = json.loads((trial_dir / "result.json").read_text())
    assert r["epochs_completed"] == 80 and r["host"]["slurmd_nodename"] == other, r["host"]
    assert resumed_after(trial_dir) >= 5  # from its checkpoint, not from 0
    epochs = [json.loads(ln)["epoch"] for ln in (trial_dir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, 81))


def fill_the_cluster() -> str:
    """A job on every CPU of partition cpu, running: what is submitted next waits in the queue."""
    cpus = subprocess.run(["sinfo", "-h", "-p", "cpu", "-o", "%c"], capture_output=True, text=True).stdout.split()[0]
    job = subprocess.run(["sbatch", "--parsable", "-p", "cpu", "-N", "2", "--ntasks-per-node", "1", "-c",
                          cpus.rstrip("+"), "--mem", "100M", "-o", "/dev/null", "--wrap", "sleep 600"],
                         capture_output=True, text=True, check=True).stdout.strip()
    deadline = time.time() + 60
    while subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout.strip() != "RUNNING":
        assert time.time() < deadline, "the blocking job never started"
        time.sleep(0.2)
    return job


@pytest.mark.slurm_exclusive
def test_a_job_that_starts_while_another_runner_holds_its_trial_ends_as_a_duplicate(tmp_path: Path) -> None:
    """The job is queued, held in the queue while another runner takes the trial (a resubmit
    whose first copy still runs), then released: it exits at once as a duplicate, its job ends
    COMPLETED (not a failure), and the trial is trained once, by the holder."""
    spec = write(tmp_path, "dup", {**TINY, "train": {**TINY["train"], "epochs": 60}})
    blocker = fill_the_cluster()  # the trial's job waits in the queue until the other runner has the trial
    try:
        sub = json.loads(orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--json").stdout)
        job, tid = sub["submitted"][0]["job_id"], sub["submitted"][0]["trial_id"]
        subprocess.run(["scontrol", "hold", job], check=True)
    finally:
        subprocess.run(["scancel", blocker], check=False)
    d = tmp_path / "runs" / "dup" / "trials" / tid
    first = subprocess.Popen([ORCH, "train", str(spec), "--out", str(d)], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not (d / "lease.json").exists():
        assert time.time() < deadline and first.poll() is None
        time.sleep(0.2)
    subprocess.run(["scontrol", "release", job], check=True)
    while not (d / "duplicates").is_dir() or not list((d / "duplicates").iterdir()):
        assert time.time() < deadline and first.poll() is None, "the job never found the trial held"
        time.sleep(0.3)
    (dup,) = [json.loads(p.read_text()) for p in (d / "duplicates").iterdir()]
    assert dup["holder"]["pid"] == first.pid and dup["job_id"] == job
    first.communicate(timeout=600)
    states = wait(tmp_path, spec, settled)
    assert states[0]["state"] == "completed" and states[0]["epochs_completed"] == 60
    deadline = time.time() + 60
    while (ended := subprocess.run(["sacct", "-n", "-X", "-P", "-j", job, "-o", "State"], capture_output=True,
                                   text=True).stdout.split()) in ([], ["RUNNING"], ["PENDING"]) and time.time() < deadline:
        time.sleep(0.5)  # sacct lags the queue
    assert ended == ["COMPLETED"]  # a duplicate is not a failure
    assert "is already being trained" in (d / "stderr.log").read_text()
    assert [json.loads(ln)["epoch"] for ln in (d / "metrics.jsonl").read_text().splitlines()] == list(range(1, 61))
    assert not list((tmp_path / "runs" / "dup" / "wandb").rglob("*.wandb"))  # the duplicate opened no W&B run


def test_a_resubmit_releases_the_lease_of_a_job_that_died_with_its_node(tmp_path: Path) -> None:
    """The holder's node vanished (its heartbeat is still fresh: no time has passed), but SLURM
    says its job ended: --retry-failed releases the lease, naming it, and the new job trains at
    once instead of exiting as a duplicate for the next five minutes."""
    spec = write(tmp_path, "gone", {**TINY, "train": {**TINY["train"], "epochs": 2}})
    sub = json.loads(orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--json").stdout)
    job, tid = sub["submitted"][0]["job_id"], sub["submitted"][0]["trial_id"]
    subprocess.run(["scancel", job], check=True)
    wait(tmp_path, spec, settled)
    d = tmp_path / "runs" / "gone" / "trials" / tid
    for name in ("result.json", "lease.json"):
        (d / name).unlink(missing_ok=True)
    (d / "lease.json").write_text(json.dumps({"trial_id": tid, "host": "lost-node", "pid": 4242, "job_id": job,
                                              "token": "t", "heartbeat": time.time()}))
    states = status_of(tmp_path, spec)
    assert states[0]["state"] == "cancelled", states  # the lease's own job ended: not running
    retry = orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--retry-failed")
    assert f"released {d / 'lease.json'} (host lost-node pid 4242, job {job}" in retry.stderr, retry.stderr
    states = wait(tmp_path, spec, settled)
    assert states[0]["state"] == "completed" and not (d / "duplicates").exists()
