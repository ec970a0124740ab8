"""The SLURM backend against a real local cluster (slurm/local-cluster.sh, brought up here):
arrays, GPUs as GRES, DDP over tasks and nodes, requeue + resume, failures, cancel, idempotent
resubmit, bad resources. Trials are tiny synthetic ResNets so the two shared cores keep up."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from kit import ORCH, ROOT, status_now, tiny, wait_states

from model import count_params

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

TINY = tiny(resources={"cpus_per_task": 1, "time": "00:10:00"})


def write(tmp: Path, name: str, base: dict, **extra) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "base": base, **extra}, sort_keys=False))
    return path


def orch(tmp: Path, *args: str, check: bool = True, columns: int = 80) -> subprocess.CompletedProcess:
    proc = subprocess.run([ORCH, *args, *(["--runs-dir", str(tmp / "runs")] if args[0] != "logs" else [])],
                          capture_output=True, text=True, cwd=tmp,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": str(columns)})
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def status(tmp: Path, spec: Path) -> list[dict]:
    return json.loads(orch(tmp, "status", str(spec), "--json").stdout)


def wait(tmp: Path, spec: Path, until, timeout: float = 240) -> list[dict]:
    return wait_states(spec, tmp / "runs", until, lambda: status(tmp, spec), timeout)


def settled(states: list[dict]) -> bool:
    return all(not s["active"] and s["state"] != "missing" for s in states)


def result(tmp: Path, name: str, trial_id: str) -> dict:
    return json.loads((tmp / "runs" / name / "trials" / trial_id / "result.json").read_text())


def jobs_of(name: str, since: float) -> list[str]:
    """Job ids of sweep ``name`` that SLURM accepted since ``since`` (sacct: also those that
    already ended). A submission slurmctld refused ("Requested node configuration is not
    available") may still reach the accounting database, as FAILED with no node ever assigned
    (seen on a fresh-clone run): it never was a job."""
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 1))
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-S", start, "-o", "JobID,JobName,State,NodeList"],
                         capture_output=True, text=True, check=True).stdout
    rows = [ln.split("|") for ln in out.splitlines() if ln.strip()]
    # job names are orchestrate-<sweep>-<intent token>
    return [r[0] for r in rows if r[1].startswith(f"orchestrate-{name}-")
            and not (r[2] == "FAILED" and r[3] == "None assigned")]


def test_cpu_sweep_all_complete_and_resubmit_skips_them(tmp_path: Path) -> None:
    spec = write(tmp_path, "cpu4", TINY, grid={"model.channels": [4, 6, 8, 10]})
    out = orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--json")
    sub = json.loads(out.stdout)
    assert len(sub["submitted"]) == 4 and len({s["array_id"] for s in sub["submitted"]}) == 1  # one array
    states = wait(tmp_path, spec, settled)
    assert [s["state"] for s in states] == ["completed"] * 4
    for s in states:
        r = result(tmp_path, "cpu4", s["trial_id"])
        assert r["status"] == "completed" and r["epochs_completed"] == 2 and r["host"]["slurm_job_id"]
    dry = orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--dry-run")  # says what submit will do
    assert "nothing would be submitted" in dry.stdout and "would leave alone, completed: 4" in dry.stdout
    assert "sbatch text" not in dry.stdout
    again = json.loads(orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--json").stdout)
    assert again["submitted"] == [] and len(again["skipped"]["completed"]) == 4
    for s in states:  # which config is which, without opening files
        assert s["varying"] == {"model.channels": s["config"]["model"]["channels"]}
        assert s["params"] == count_params(s["config"]["model"]) and s["best_metric"] == "best_test_acc"
        assert s["best"] == result(tmp_path, "cpu4", s["trial_id"])["best_test_acc"]
    table = orch(tmp_path, "status", str(spec)).stdout
    assert "channels" in table and f"{states[0]['params']:,}" in table
    # the spec edited after its submit: status says so and shows the edited spec's trials
    edited = write(tmp_path, "cpu4", {**TINY, "train": {**TINY["train"], "epochs": 3}},
                   grid={"model.channels": [4, 6, 8, 10]})
    stale = orch(tmp_path, "status", str(edited), "--json")
    assert "differs from what was submitted" in stale.stderr and "4 of its 4 trials are not there" in stale.stderr
    rows = json.loads(stale.stdout)
    assert [r["state"] for r in rows] == ["missing"] * 4 and {r["config"]["train"]["epochs"] for r in rows} == {3}
    spec = write(tmp_path, "cpu4", TINY, grid={"model.channels": [4, 6, 8, 10]})
    logs = orch(tmp_path, "logs", states[0]["trial_id"], "--runs-dir", str(tmp_path / "runs"))
    assert "epoch 2/2" in logs.stdout
    everything = json.loads(orch(tmp_path, "status", "--json").stdout)  # no target: every sweep in --runs-dir
    assert {s["sweep"] for s in everything} == {"cpu4"} and len(everything) == 4
    watched = orch(tmp_path, "status", str(tmp_path / "runs" / "cpu4"), "--watch", "--interval", "0.5")
    assert "4 completed" in watched.stdout  # by sweep dir; --watch returns once nothing is active
    board = json.loads(orch(tmp_path, "leaderboard", str(spec), "--format", "json").stdout)
    assert sorted(r["trial_id"] for r in board) == sorted(s["trial_id"] for s in states)
    assert [r["rank"] for r in board] == [1, 2, 3, 4] and board[0]["metric"] == "test_acc"  # no validation split


def test_gpu_partition_gives_each_trial_its_own_gpu(tmp_path: Path) -> None:
    spec = write(tmp_path, "gpu", {**TINY, "train": {**TINY["train"], "epochs": 3}}, grid={"train.seed": [0, 1, 2, 3]})
    orch(tmp_path, "submit", str(spec), "--partition", "gpu", "--gpus-per-node", "1")
    states = wait(tmp_path, spec, settled)
    assert {s["state"] for s in states} == {"completed"}
    placed = []
    for s in states:
        host = result(tmp_path, "gpu", s["trial_id"])["host"]
        assert host["cuda_visible_devices"] in ("0", "1"), host  # exactly one (fake) GPU each
        placed.append((host["slurmd_nodename"], host["slurm_job_gpus"]))
    assert len(set(placed)) >= 2, placed


def test_two_trials_packed_per_gpu_share_one_job_and_its_gpu(tmp_path: Path) -> None:
    """trials_per_gpu: 2 -> one array task (one job id, one fake GPU) runs two trials at once, each
    in its own process and dir; a raising trial fails alone; `scontrol requeue` resumes both."""
    bad = {"train.optimizer": {"name": "sgd", "lr": 1e30}}  # fails at run time (nan loss)
    base = {**TINY, "data": {**TINY["data"], "subset": 60}, "train": {**TINY["train"], "epochs": 12},
            "resources": {"cpus_per_task": 2, "time": "00:10:00", "trials_per_gpu": 2}}
    spec = write(tmp_path, "packed", base, trials=[{"train.seed": 0}, {"train.seed": 1}, {"train.seed": 2, **bad},
                                                   {"train.seed": 3, "train.epochs": 2}])
    sub = json.loads(orch(tmp_path, "submit", str(spec), "--partition", "gpu", "--gpus-per-node", "1", "--json").stdout)
    jobs = [s["job_id"] for s in sub["submitted"]]
    assert len(jobs) == 4 and jobs[0] == jobs[1] and jobs[2] == jobs[3] and jobs[0] != jobs[2]  # 2 per task
    dirs = [tmp_path / "runs" / "packed" / "trials" / s["trial_id"] for s in sub["submitted"]]
    deadline = time.time() + 360  # (a deadline, not a speed: a loaded 2-core machine starts jobs late)
    while not all((d / "metrics.jsonl").is_file() and (d / "metrics.jsonl").read_text().count("\n") >= 5 for d in dirs[:2]):
        assert time.time() < deadline, "the packed pair never got to epoch 5"
        time.sleep(0.3)
    running = status(tmp_path, spec)
    assert [s["job_id"] for s in running] == jobs and running[0]["state"] == "running" == running[1]["state"]
    subprocess.run(["scontrol", "requeue", jobs[0]], check=True)
    states = wait(tmp_path, spec, settled, timeout=400)
    assert [s["state"] for s in states] == ["completed", "completed", "failed", "completed"], states
    assert states[2]["detail"] == "FloatingPointError: train loss is nan in epoch 1"  # only it failed
    a, b = (result(tmp_path, "packed", s["trial_id"]) for s in states[:2])
    assert a["host"]["slurm_job_id"] == b["host"]["slurm_job_id"]
    assert a["host"]["cuda_visible_devices"] == b["host"]["cuda_visible_devices"] in ("0", "1")  # the same GPU
    assert a["host"]["slurm_restart_count"] == b["host"]["slurm_restart_count"] == "1"
    assert a["epochs_completed"] == b["epochs_completed"] == 12
    for d in dirs[:2]:  # each resumed from its own checkpoint, in its own log
        log = (d / "stdout.log").read_text()
        assert not (d / "stdout.log").is_symlink() and "resuming after epoch" in log and "epoch 12/12" in log
        assert int(log.split("resuming after epoch ")[1].split("/")[0]) >= 5
    # they ran at the same time: their last sessions overlap
    assert a["started_at"] < b["ended_at"] and b["started_at"] < a["ended_at"]
    logs = orch(tmp_path, "logs", states[0]["trial_id"], "--runs-dir", str(tmp_path / "runs")).stdout
    assert "epoch 12/12" in logs


def test_ddp_two_tasks_on_one_node_and_across_two_nodes(tmp_path: Path) -> None:
    spec = write(tmp_path, "ddp", TINY, trials=[
        {"train.seed": 0, "resources.tasks_per_node": 2},
        {"train.seed": 1, "resources.nodes": 2},
    ])
    sub = json.loads(orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--json").stdout)
    assert len(sub["submitted"]) == 2
    states = wait(tmp_path, spec, settled)
    assert [s["state"] for s in states] == ["completed", "completed"], states
    one, two = (result(tmp_path, "ddp", s["trial_id"]) for s in states)
    assert one["world_size"] == 2 and two["world_size"] == 2
    assert two["host"]["slurm_nnodes"] == "2"


def test_time_limit_shorter_than_training_requeues_and_completes(tmp_path: Path) -> None:
    # slurmctld checks time limits every 30 s and signals a job whose limit, less the signal delay,
    # ends before its next check: with a 1-minute limit and a 30 s delay, USR2 comes at the first
    # check, 0-30 s into each run. Size the training to ~35 s on THIS machine (time 5 epochs here
    # first), so at least one requeue happens however fast it is: each more run costs ~30 s.
    probe = write(tmp_path, "probe", {**TINY, "train": {**TINY["train"], "epochs": 5}})
    proc = subprocess.run([ORCH, "train", str(probe), "--out", str(tmp_path / "probe")], capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in (tmp_path / "probe" / "metrics.jsonl").read_text().splitlines()]
    per_epoch = sorted(r["epoch_seconds"] for r in rows)[len(rows) // 2]
    epochs = max(40, min(2000, round(35 / per_epoch)))
    base = {**TINY, "train": {**TINY["train"], "epochs": epochs},
            "resources": {**TINY["resources"], "time": "00:01:00", "signal_delay_s": 30}}
    spec = write(tmp_path, "timeout", base)
    orch(tmp_path, "submit", str(spec), "--partition", "cpu")
    states = wait(tmp_path, spec, settled, timeout=420)
    tid = states[0]["trial_id"]
    r = result(tmp_path, "timeout", tid)
    assert r["status"] == "completed" and r["epochs_completed"] == epochs, r
    assert int(r["host"].get("slurm_restart_count", "0")) >= 1, r["host"]  # it really was requeued
    log = (tmp_path / "runs" / "timeout" / "trials" / tid / "stdout.log").read_text()
    assert "resuming after epoch" in log and "epoch 1/" in log
    first_resume = int(log.split("resuming after epoch ")[1].split("/")[0])
    assert first_resume > 0


def start_past_epoch_5(tmp: Path, name: str, epochs: int) -> tuple[Path, str, str, Path]:
    """Submit one long trial on cpu and wait until it has 5 epochs behind it.
    Returns (spec, job id, trial id, its trial dir)."""
    spec = write(tmp, name, {**TINY, "train": {**TINY["train"], "epochs": epochs}})
    sub = json.loads(orch(tmp, "submit", str(spec), "--partition", "cpu", "--json").stdout)
    job, tid = sub["submitted"][0]["job_id"], sub["submitted"][0]["trial_id"]
    trial_dir = tmp / "runs" / name / "trials" / tid
    deadline = time.time() + 120
    while not ((trial_dir / "metrics.jsonl").is_file() and (trial_dir / "metrics.jsonl").read_text().count("\n") >= 5):
        assert time.time() < deadline, "trial never got to epoch 5"
        time.sleep(0.3)
    return spec, job, tid, trial_dir


def resumed_after(trial_dir: Path) -> int:
    log = (trial_dir / "stdout.log").read_text()
    return int(log.split("resuming after epoch ")[1].split("/")[0])


def test_scontrol_requeue_resumes_from_the_checkpoint(tmp_path: Path) -> None:
    spec, job, tid, trial_dir = start_past_epoch_5(tmp_path, "requeue", 60)
    assert status(tmp_path, spec)[0]["progress"]["epoch"] >= 5  # a running trial's progress, from its files
    subprocess.run(["scontrol", "requeue", job], check=True)
    # a real restart is shown while the job is queued or running again (sacct keeps the first run)
    wait(tmp_path, spec, lambda s: s[0]["active"] and "restarts 1" in s[0]["detail"], timeout=120)
    states = wait(tmp_path, spec, settled, timeout=300)
    assert states[0]["state"] == "completed" and states[0]["detail"] == "restarts 1"  # SLURM_RESTART_COUNT
    assert resumed_after(trial_dir) >= 5  # epochs did not restart from 0
    r = result(tmp_path, "requeue", tid)
    assert r["epochs_completed"] == 60 and r["host"]["slurm_restart_count"] == "1"
    from conftest import closed_wandb_runs

    runs = closed_wandb_runs(tmp_path / "runs" / "requeue" / "wandb" / "wandb")
    runs = [x for x in runs if x.run_id]  # (a killed process may have flushed nothing: re-logged later)
    steps = [step for x in runs for step in x.steps]
    assert len({x.run_id for x in runs}) == 1 and sorted(steps) == list(range(1, 61))  # one run, each epoch once
    assert runs[-1].summary["status"] == "completed" and runs[-1].job_type == "trial"


@pytest.mark.slurm_exclusive
def test_preemption_by_a_higher_priority_partition_requeues_and_resumes(tmp_path: Path) -> None:
    """A real preemption: a job in partition `urgent` needs every CPU of both nodes, so SLURM
    preempts the trial (SIGTERM, GraceTime, SIGKILL, requeue) and it resumes from its checkpoint."""
    spec, job, tid, trial_dir = start_past_epoch_5(tmp_path, "preempt", 200)
    cpus = subprocess.run(["sinfo", "-h", "-p", "urgent", "-o", "%c"], capture_output=True, text=True).stdout.split()[0]
    urgent = subprocess.run(["sbatch", "--parsable", "-p", "urgent", "-N", "2", "--ntasks-per-node", "1",
                             "-c", cpus.rstrip("+"), "--mem", "100M", "-o", "/dev/null", "--wrap", "sleep 3"],
                            capture_output=True, text=True, check=True).stdout.strip()
    states = wait(tmp_path, spec, settled, timeout=300)
    assert states[0]["state"] == "completed"
    history = subprocess.run(["sacct", "-n", "-X", "-D", "-P", "-j", job, "-o", "State"],
                             capture_output=True, text=True).stdout.split()
    assert "PREEMPTED" in history, history
    urgent_state = subprocess.run(["sacct", "-n", "-X", "-P", "-j", urgent, "-o", "State"],
                                  capture_output=True, text=True).stdout.split()
    assert urgent_state == ["COMPLETED"]
    assert resumed_after(trial_dir) >= 5  # not from 0
    assert result(tmp_path, "preempt", tid)["epochs_completed"] == 200


def test_a_trial_over_its_memory_limit_is_out_of_memory(tmp_path: Path) -> None:
    """100 MB cannot hold a Python process with torch: slurmstepd kills the step (OverMemoryKill),
    and status calls it out_of_memory, not a crash, and records that in result.json."""
    spec = write(tmp_path, "oom", {**TINY, "train": {**TINY["train"], "epochs": 50},
                                   "resources": {**TINY["resources"], "mem_gb": 0.1}})
    sub = json.loads(orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--json").stdout)
    tid = sub["submitted"][0]["trial_id"]
    states = wait(tmp_path, spec, settled, timeout=180)
    assert states[0]["state"] == "out_of_memory", states
    assert "memory limit" in states[0]["detail"]
    r = result(tmp_path, "oom", tid)
    assert r["status"] == "failed" and r["failure_kind"] == "out_of_memory"
    assert r["params"] == count_params(TINY["model"])  # from the manifest: the trial never got to say


def test_a_raising_trial_fails_alone_then_retry_failed_resubmits_only_it(tmp_path: Path) -> None:
    bad = {"train.optimizer": {"name": "sgd", "lr": 1e30}}  # a valid config that fails at run time
    spec = write(tmp_path, "mixed", TINY, trials=[{"train.seed": 0}, {"train.seed": 1, **bad}, {"train.seed": 2}])
    orch(tmp_path, "submit", str(spec), "--partition", "cpu")
    states = wait(tmp_path, spec, settled)
    assert [s["state"] for s in states] == ["completed", "failed", "completed"]
    assert states[1]["detail"] == "FloatingPointError: train loss is nan in epoch 1"  # one line, not the traceback
    failed = result(tmp_path, "mixed", states[1]["trial_id"])
    assert "Traceback" in failed["error"] and failed["failure_kind"] == "crash"
    table = orch(tmp_path, "status", str(spec), columns=200).stdout.splitlines()
    body = table[table.index(next(ln for ln in table if ln.startswith("┡"))) + 1:-1]
    assert len(body) == 3 and all(s["trial_id"] in row for s, row in zip(states, body)), table  # a row, a line
    assert "FloatingPointError" in body[1]

    again = json.loads(orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--json").stdout)
    assert again["submitted"] == [] and again["failed"] == [states[1]["trial_id"]]
    retry = json.loads(orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--retry-failed", "--json").stdout)
    assert [s["trial_id"] for s in retry["submitted"]] == [states[1]["trial_id"]]
    wait(tmp_path, spec, settled)

    # a new trial in the spec: only it is submitted
    spec = write(tmp_path, "mixed", TINY, trials=[{"train.seed": 0}, {"train.seed": 1, **bad}, {"train.seed": 2},
                                                   {"train.seed": 3}])
    added = json.loads(orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--json").stdout)
    assert len(added["submitted"]) == 1 and added["submitted"][0]["trial_id"] == status(tmp_path, spec)[3]["trial_id"]
    history = (tmp_path / "runs" / "mixed" / "submissions.jsonl").read_text().splitlines()
    assert len(history) == 3 + 1 + 1


def test_a_throttled_array_shows_no_restarts_for_tasks_that_never_restarted(tmp_path: Path) -> None:
    """--array-parallelism 1: sacct prints the not-yet-started tasks as one range row
    (``N_[1-2%1]``) next to the running task's own record; neither is a restart."""
    spec = write(tmp_path, "throttled", {**TINY, "train": {**TINY["train"], "epochs": 15}},
                 grid={"train.seed": [0, 1, 2]})
    orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--array-parallelism", "1")
    seen_throttled = False
    deadline = time.time() + 240
    while True:
        states = status_now(spec, tmp_path / "runs")
        assert not any("restart" in s["detail"] for s in states), states
        running = [s for s in states if s["state"] == "running"]
        assert len(running) <= 1, states  # the throttle holds
        seen_throttled |= bool(running) and any(s["state"] == "pending" for s in states)
        if settled(states):
            break
        assert time.time() < deadline, states
        time.sleep(0.2)
    states = status(tmp_path, spec)
    assert seen_throttled and [s["state"] for s in states] == ["completed"] * 3
    assert all(s["detail"] == "" for s in states)


def test_a_wrong_data_root_is_refused_before_anything_is_queued(tmp_path: Path) -> None:
    spec = write(tmp_path, "nodata", TINY, grid={"train.seed": [0, 1, 2]})
    t0 = time.time()
    for extra in ([], ["--dry-run"]):
        proc = orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--set", "data.name=cifar10",
                    "--set", "data.root=/wrong/path", *extra, check=False)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr.count("\n") == 1 and "data.root: no CIFAR-10 found in /wrong/path" in proc.stderr
        assert str(spec) in proc.stderr and proc.stdout == ""
    time.sleep(1)
    assert jobs_of("nodata", t0) == [] and not (tmp_path / "runs").exists()


def test_submit_chosen_trials_only_and_the_next_commands_reach_them(tmp_path: Path) -> None:
    spec = write(tmp_path, "chosen", {**TINY, "train": {**TINY["train"], "epochs": 1}}, grid={"train.seed": [0, 1, 2]})
    from orchestrator.sweep.expand import expand
    from orchestrator.sweep.spec import load_spec

    ids = [t.trial_id for t in expand(load_spec(spec))]
    one = json.loads(orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--trial", ids[1][:6], "--json").stdout)
    assert [s["trial_id"] for s in one["submitted"]] == [ids[1]]
    dry = orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--index", "2", "--index", "1", "--dry-run",
               "--time", "1:30")
    assert "would submit 1 of 2 trials" in dry.stdout and f"would submit {ids[2]}" in dry.stdout
    assert "time limit 2 min per job (1:30 is MM:SS = 1 min 30 s" in dry.stdout
    other = orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--index", "2", "--set", "name=other")
    assert "submitted 1 trials" in other.stdout and "time limit 10 min per job;" in other.stdout
    assert "orchestrate status runs/other --watch" in other.stdout  # the sweep just submitted, not the spec's
    states = wait(tmp_path, spec, lambda s: s[1]["state"] == "completed")
    assert [s["state"] for s in states] == ["missing", "completed", "missing"]
    nxt = other.stdout.split("next: ")[1].split(" | ")[0].split()
    assert nxt[:3] == ["orchestrate", "status", "runs/other"]
    done = wait(tmp_path, tmp_path / "runs" / "other", lambda s: s[2]["state"] == "completed")
    assert [s["state"] for s in done] == ["missing", "missing", "completed"] and done[2]["trial_id"] == ids[2]
    bad = orch(tmp_path, "submit", str(spec), "--trial", "zzz", check=False)
    assert bad.returncode == 2 and "--trial zzz: matches 0 trials" in bad.stderr


def test_concurrent_submits_do_not_duplicate(tmp_path: Path) -> None:
    spec = write(tmp_path, "race", {**TINY, "train": {**TINY["train"], "epochs": 1}}, grid={"train.seed": [0, 1, 2]})
    cmd = [ORCH, "submit", str(spec), "--partition", "cpu", "--runs-dir", str(tmp_path / "runs")]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    history = [json.loads(line) for line in (tmp_path / "runs" / "race" / "submissions.jsonl").read_text().splitlines()]
    assert sorted(h["trial_id"] for h in history) == sorted({h["trial_id"] for h in history})
    assert len(history) == 3
    wait(tmp_path, spec, settled)


def test_cancel_marks_the_trial_cancelled(tmp_path: Path) -> None:
    spec = write(tmp_path, "cancel", {**TINY, "train": {**TINY["train"], "epochs": 5000}})
    orch(tmp_path, "submit", str(spec), "--partition", "cpu")
    running = wait(tmp_path, spec, lambda s: s[0]["state"] == "running", timeout=60)
    assert orch(tmp_path, "cancel", check=False).returncode == 2  # neither a sweep nor --trial: refused
    out = orch(tmp_path, "cancel", "--trial", running[0]["trial_id"])  # found by searching --runs-dir
    assert f"cancelled {running[0]['trial_id']}" in out.stdout
    states = wait(tmp_path, spec, settled, timeout=60)
    assert states[0]["state"] == "cancelled"
    r = result(tmp_path, "cancel", states[0]["trial_id"])
    assert r["status"] == "failed" and r["failure_kind"] == "cancelled"


@pytest.mark.parametrize(("flags", "words"), [
    (["--partition", "nosuch"], "resources.partition: 'nosuch' is not a partition of this cluster; allowed: cpu, gpu"),
    (["--time", "1:75:00"], "resources.time"),
    (["--time", "soon"], "resources.time"),
    (["--nodes", "-1"], "resources.nodes: must be >= 1"),
    (["--gpus-per-node", "-2"], "resources.gpus_per_node: must be >= 0"),
    (["--cpus-per-task", "0"], "resources.cpus_per_task"),
    (["--mem-gb", "100000"], "sbatch: Memory specification can not be satisfied"),  # refused by SLURM itself
])
def test_bad_resources_exit_2_and_submit_nothing(tmp_path: Path, flags: list[str], words: str) -> None:
    spec = write(tmp_path, "bad", TINY)
    t0 = time.time()
    proc = orch(tmp_path, "submit", str(spec), *flags, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and words in proc.stderr and str(spec) in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists() and jobs_of("bad", t0) == []


def test_budget_that_drops_everything_is_refused(tmp_path: Path) -> None:
    spec = write(tmp_path, "nothing", TINY, budget={"max_params": 10})
    proc = orch(tmp_path, "submit", str(spec), check=False)
    assert proc.returncode == 2 and "nothing to submit" in proc.stderr
    assert not (tmp_path / "runs").exists()


GOLDEN = ROOT / "tests" / "backends" / "slurm" / "golden" / "sbatch_array.txt"


def test_dry_run_prints_the_golden_sbatch_text(tmp_path: Path) -> None:
    spec = write(tmp_path, "golden", TINY, grid={"model.channels": [4, 8, 12]})
    proc = orch(tmp_path, "submit", str(spec), "--partition", "gpu", "--gpus-per-node", "2", "--nodes", "2",
                "--time", "02:00:00", "--array-parallelism", "2", "--mem-gb", "8", "--dry-run")
    text = proc.stdout.split("sbatch text:\n", 1)[1]
    text = text.replace(str(tmp_path / "runs"), "<RUNS>")
    text = re.sub(re.escape(str(Path(sys.executable).parent)) + r"/python[0-9.]*", "<PYTHON>", text)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


GOLDEN_AUTO = ROOT / "tests" / "backends" / "slurm" / "golden" / "sbatch_auto_time.txt"


def test_without_a_time_limit_each_array_gets_one_from_the_estimate(tmp_path: Path, monkeypatch) -> None:
    """A stored calibration (written here with round numbers: 1 us per MAC per training image)
    makes the estimate; the slowest trial x 1.5 + 10 min, rounded up to 5 min, is the limit."""
    import math

    from model import count_macs
    from orchestrator.cost import device_name

    cal_dir = tmp_path / "cal"
    cal_dir.mkdir()
    cal = {"name": device_name("cpu", 1), "device": "cpu", "threads": 1, "startup_s": 20.0,
           "fit": {"train": {"a": 0.0, "b": 1e-6}, "eval": {"a": 0.0, "b": 0.0}}}
    (cal_dir / "cpu.json").write_text(json.dumps(cal))
    monkeypatch.setenv("ORCHESTRATE_CALIBRATION_DIR", str(cal_dir))
    base = {**TINY, "resources": {"cpus_per_task": 1}}  # no time
    spec = write(tmp_path, "auto", base, grid={"model.channels": [4, 8, 12]})
    proc = orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--dry-run")
    slowest = 400 * 1e-6 * count_macs({**TINY["model"], "channels": 12}) * 2 + 20  # 400 images, 2 epochs
    minutes = math.ceil((slowest * 1.5 + 600) / 60 / 5) * 5
    assert f"#SBATCH --time={minutes}\n" in proc.stdout
    assert "from the slowest trial's estimate" in proc.stdout and f"{minutes // 60:02d}:{minutes % 60:02d}:00" in proc.stdout
    text = proc.stdout.split("sbatch text:\n", 1)[1].replace(str(tmp_path / "runs"), "<RUNS>")
    text = re.sub(re.escape(str(Path(sys.executable).parent)) + r"/python[0-9.]*", "<PYTHON>", text)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN_AUTO.write_text(text)
    assert text == GOLDEN_AUTO.read_text()
    # an explicit --time wins; without a calibration the default hour stays, and the line says why
    assert "#SBATCH --time=30\n" in orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--time", "00:30:00",
                                          "--dry-run").stdout
    monkeypatch.setenv("ORCHESTRATE_CALIBRATION_DIR", str(tmp_path / "none"))
    plain = orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--dry-run").stdout
    assert "#SBATCH --time=60\n" in plain and "the default 1 h per job (no time estimate" in plain


def test_more_trials_than_max_array_size_are_split_into_arrays(tmp_path: Path) -> None:
    from orchestrator.backends.slurm.backend import SlurmBackend
    from orchestrator.store.sweepdir import SweepDir
    from orchestrator.sweep.expand import expand
    from orchestrator.sweep.spec import load_spec

    spec = write(tmp_path, "split", {**TINY, "train": {**TINY["train"], "epochs": 1}}, grid={"train.seed": [0, 1, 2]})
    backend = SlurmBackend()
    from orchestrator.backends.slurm.sacct_text import parse_max_array_size

    # from the cluster's own config (the local cluster sets it), and the parser on literal text
    conf = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True).stdout
    assert backend.max_array_size == parse_max_array_size(conf) is not None
    backend.__dict__["max_array_size"] = 2  # as if the cluster allowed 2 tasks per array
    trials = expand(load_spec(spec))
    sweep = SweepDir(tmp_path / "runs" / "split")
    with sweep.lock():
        sweep.write_plan({}, trials)
        subs = backend.launch(sweep, trials, trials[0].config["resources"] | {"partition": "cpu"})
    assert [s.trial_id for s in sweep.submissions()] == [s.trial_id for s in subs]  # launch recorded them
    assert len({s.array_id for s in subs}) == 2 and sorted(s.trial_id for s in subs) == sorted(t.trial_id for t in trials)
    assert [s["state"] for s in wait(tmp_path, spec, settled)] == ["completed"] * 3


@pytest.mark.slurm_exclusive
def test_status_says_when_the_scheduler_is_not_answering(tmp_path: Path) -> None:
    """sacct down (slurmdbd stopped) while a cancelled job has left the queue: status says the
    scheduler is not answering, with its message; it records no verdict and submit resubmits
    nothing (issue 16: it said `missing - the scheduler has no record of its job`)."""
    spec = write(tmp_path, "nodb", {**TINY, "train": {**TINY["train"], "epochs": 5000}})
    orch(tmp_path, "submit", str(spec), "--partition", "cpu")
    (running,) = wait(tmp_path, spec, lambda s: s[0]["state"] == "running", timeout=60)
    subprocess.run(["scancel", running["job_id"]], check=True)
    deadline = time.time() + 60
    while running["job_id"].split("_")[0] in subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True,
                                                              text=True).stdout:
        assert time.time() < deadline
        time.sleep(0.5)
    pid = int(Path("/var/lib/orchestrate-slurm/pids/slurmdbd.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    try:
        deadline = time.time() + 30
        while Path(f"/proc/{pid}").exists():  # gone, so `up` below starts a new one
            assert time.time() < deadline, "slurmdbd did not stop"
            time.sleep(0.2)
        deadline = time.time() + 30
        while subprocess.run(["sacct", "-n", "-X", "-j", running["job_id"]], capture_output=True).returncode == 0:
            assert time.time() < deadline, "sacct still answers"
            time.sleep(0.5)
        (s,) = status(tmp_path, spec)
        assert s["state"] == "unknown" and s["detail"].startswith("the scheduler is not answering (sacct exited"), s
        assert not (tmp_path / "runs" / "nodb" / "trials" / s["trial_id"] / "result.json").exists()
        dry = orch(tmp_path, "submit", str(spec), "--partition", "cpu", "--dry-run")
        assert "nothing would be submitted" in dry.stdout, dry.stdout
    finally:
        up = subprocess.run(["bash", str(ROOT / "slurm" / "local-cluster.sh"), "up"], capture_output=True, text=True)
        assert up.returncode == 0, up.stderr
    (s,) = wait(tmp_path, spec, settled, timeout=60)
    assert s["state"] == "cancelled"


def test_a_gpu_partition_without_a_gpu_request_says_so(tmp_path: Path) -> None:
    """The README's headline submit trained on CPU without a word (issue 16)."""
    spec = write(tmp_path, "cpuongpu", TINY)
    dry = orch(tmp_path, "submit", str(spec), "--partition", "gpu", "--dry-run")
    assert "no GPUs requested: partition gpu has GPUs (gpu:" in dry.stderr and "--gpus-per-node 1" in dry.stderr
    asked = orch(tmp_path, "submit", str(spec), "--partition", "gpu", "--gpus-per-node", "1", "--dry-run")
    assert "no GPUs requested" not in asked.stderr
    assert "no GPUs requested" not in orch(tmp_path, "submit", str(spec), "--dry-run").stderr  # the default partition
