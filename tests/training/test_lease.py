"""The trial lease: one runner per trial, duplicates recorded, stale leases taken over, a lost
lease stops its runner, status shows a held trial as running."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from kit import ORCH, UNSET, tiny

from train.lease import LEASE, Lease, LeaseLost, TrialHeld, held, stale_reason

TINY = tiny(data={"subset": 200, "test_subset": 20, "val_size": 0},
            train={"epochs": 4, "batch_size": 32, "augment": UNSET}, resources={"cpus_per_task": 1})


def _spec(tmp_path: Path) -> Path:
    path = tmp_path / "lease.yaml"
    path.write_text(yaml.safe_dump({"name": "lease", "base": TINY}))
    return path


def _train(spec: Path, out: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([ORCH, "train", str(spec), "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1", **env})


def test_two_concurrent_runs_of_one_trial_exactly_one_trains(tmp_path: Path) -> None:
    spec, out = _spec(tmp_path), tmp_path / "trial"
    procs = [_train(spec, out), _train(spec, out)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 3], outs
    loser = outs[[p.returncode for p in procs].index(3)]
    lines = [ln for ln in loser[1].splitlines() if ln.strip()]
    assert len(lines) == 1 and "is already being trained (host" in lines[0] and "pid" in lines[0], loser
    assert "epoch" not in loser[0]  # it trained nothing
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "completed" and result["epochs_completed"] == 4
    epochs = [json.loads(ln)["epoch"] for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]
    dups = list((out / "duplicates").iterdir())
    assert len(dups) == 1
    dup = json.loads(dups[0].read_text())
    assert dup["holder"]["pid"] in [p.pid for p in procs] or dup["holder"]["host"] == socket.gethostname()
    assert not (out / LEASE).exists()  # released at the end


def _lease_file(out: Path, **fields) -> None:
    out.mkdir(parents=True, exist_ok=True)
    record = {"trial_id": "abc", "host": socket.gethostname(), "pid": os.getpid(), "start": None, "job_id": None,
              "token": "t0", "heartbeat": time.time(), **fields}
    (out / LEASE).write_text(json.dumps(record))


def test_a_live_lease_is_held_and_a_dead_holder_on_this_host_is_taken_over(tmp_path: Path, capsys) -> None:
    out = tmp_path / "t"
    _lease_file(out)  # this very process: alive
    with pytest.raises(TrialHeld, match="already being trained"):
        Lease(out, "abc").acquire()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _lease_file(out, pid=int(dead.stdout))
    lease = Lease(out, "abc")
    lease.acquire()
    err = capsys.readouterr().err
    assert "taking over the stale lease" in err and f"its process {dead.stdout.strip()} on this host is gone" in err, err
    assert json.loads((out / LEASE).read_text())["token"] == lease.token
    lease.release()
    assert not (out / LEASE).exists()


def test_staleness_rules_from_literal_records(monkeypatch) -> None:
    now = 1_000_000.0
    other = {"host": "elsewhere", "pid": 1, "heartbeat": now - 10, "job_id": "7_1"}
    assert stale_reason(other, now) is None
    assert "no heartbeat for 400 s" in stale_reason({**other, "heartbeat": now - 400}, now)
    monkeypatch.setenv("ORCHESTRATE_LEASE_STALE_S", "5")
    assert "stale after 5 s" in stale_reason(other, now)
    monkeypatch.setenv("ORCHESTRATE_LEASE_STALE_S", "300")
    requeued = {**other, "restart": "0"}
    assert "requeued" in stale_reason(requeued, now, mine="7_1", restart="1")
    assert stale_reason(requeued, now, mine="7_1", restart="0") is None  # two runners in one allocation
    assert stale_reason(requeued, now, mine="7_2", restart="1") is None
    assert "cannot be read" in stale_reason(None, now)
    here = {"host": socket.gethostname(), "pid": os.getpid(), "start": "not-my-start-time", "heartbeat": now}
    assert "is gone" in stale_reason(here, now)  # the pid was reused by another process


def test_a_runner_whose_lease_was_taken_over_stops_before_writing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ORCHESTRATE_LEASE_HEARTBEAT_S", "0.05")
    out = tmp_path / "t"
    lease = Lease(out, "abc")
    lease.acquire()
    lease.check()
    _lease_file(out, token="someone-else", host="elsewhere")
    deadline = time.time() + 5
    while lease.lost is None and time.time() < deadline:
        time.sleep(0.02)
    with pytest.raises(LeaseLost, match="taken over"):
        lease.check()
    lease.release()
    assert json.loads((out / LEASE).read_text())["token"] == "someone-else"  # not ours to remove


def test_status_shows_a_held_trial_as_running_and_a_dead_ones_lease_as_not_held(tmp_path: Path, cli) -> None:
    from orchestrator.store.sweepdir import Submission, SweepDir

    spec = _spec(tmp_path)
    code, out, err = cli("plan", str(spec), "--json")
    trial_id = json.loads(out)[0]["trial_id"]
    from orchestrator.sweep.expand import expand
    from orchestrator.sweep.spec import load_spec

    sweep = SweepDir(tmp_path / "runs" / "lease")
    sweep.write_plan({"name": "lease"}, expand(load_spec(spec)))
    sweep.record([Submission(trial_id, "999999", "slurm-none", time.time() - 3600, "", {})])
    _lease_file(sweep.trial_dir(trial_id), trial_id=trial_id, host="elsewhere", job_id="888_1")
    code, out, err = cli("status", str(sweep.path), "--json")
    row = json.loads(out)[0]
    assert code == 0 and row["state"] == "running" and row["job_id"] == "888_1", row
    assert "lease: host elsewhere" in row["detail"]
    _lease_file(sweep.trial_dir(trial_id), trial_id=trial_id, host="elsewhere", heartbeat=time.time() - 3600)
    assert held(sweep.trial_dir(trial_id)) is None
    row = json.loads(cli("status", str(sweep.path), "--json")[1])[0]
    assert row["state"] != "running", row


def test_a_trial_dir_whose_id_file_names_another_trial_is_refused(tmp_path: Path) -> None:
    spec, out = _spec(tmp_path), tmp_path / "trial"
    out.mkdir()
    (out / ".trial_id").write_text("0123456789ab\n")
    (out / "metrics.jsonl").write_text('{"epoch": 1}\n')
    proc = subprocess.run([ORCH, "train", str(spec), "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 2 and "holds trial 0123456789ab's files" in proc.stderr, proc.stderr
    assert (out / "metrics.jsonl").read_text() == '{"epoch": 1}\n'  # left alone


def test_a_ray_trainable_that_finds_its_trial_held_exits_as_a_duplicate_without_touching_it(tmp_path: Path) -> None:
    from orchestrator.backends.ray.trainable import Ended, trainable
    from orchestrator.sweep.expand import expand
    from orchestrator.sweep.spec import load_spec

    (trial,) = expand(load_spec(_spec(tmp_path)))
    out = tmp_path / "trial"
    holder = Lease(out, trial.trial_id)  # this process holds it, as another runner would
    holder.acquire()
    try:
        plan = {"wandb": {}, "group": "lease", "name": "", "run_id": "lease-x-1", "dir": str(tmp_path / "wandb")}
        # it ends with Ended (not a plain return): Tune then records no result, which ASHA would choke on
        with pytest.raises(Ended, match="is already being trained"):
            trainable({"spec": {"out": str(out), "trial_id": trial.trial_id, "config": trial.config, "tracking": plan,
                                "early_stopping": False}})
    finally:
        holder.release()
    assert not (out / "result.json").exists() and not (out / "checkpoint.pt").exists()
    (dup,) = [json.loads(p.read_text()) for p in (out / "duplicates").iterdir()]
    assert dup["holder"]["token"] == holder.token and "is already being trained" in dup["message"]
    assert not (tmp_path / "wandb").exists()  # no W&B run opened for a duplicate
