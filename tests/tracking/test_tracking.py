"""W&B in a trial, with real wandb (offline) read back from its own .wandb files: one run per
trial, config (with params) at start, every epoch exactly once across a kill -9 and resume, the
summary; and W&B failures (bad mode, bad dir, init timeout, a dying wandb-core) never stop a trial.

Each trial runs the way a SLURM array task runs it: the pickled TrialJob, in its own process."""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.backends.slurm.backend import TrialJob
from orchestrator.store.sweepdir import SweepDir
from orchestrator.sweep.expand import expand
from orchestrator.sweep.spec import load_spec
from orchestrator.tracking.wandb_files import read_run, run_files
from orchestrator.tracking.wandb_run import plans_for

BASE = {
    "model": {"layers": 2, "blocks": 1, "channels": 8},
    "data": {"name": "synthetic", "subset": 60, "test_subset": 20, "val_size": 100},
    "train": {"epochs": 3, "batch_size": 32, "optimizer": {"name": "sgd", "lr": 0.05}, "augment": ["flip"]},
    "resources": {"cpus_per_task": 1},
}


def make_sweep(tmp: Path, epochs: int = 3, subset: int = 60, wandb: dict | None = None) -> tuple[SweepDir, list]:
    base = {**BASE, "data": {**BASE["data"], "subset": subset}, "train": {**BASE["train"], "epochs": epochs}}
    doc = {"name": "wb", "base": base, "grid": {"model.channels": [6, 8]}, "wandb": wandb or {"tags": ["t1"]}}
    path = tmp / "wb.yaml"
    path.write_text(yaml.safe_dump(doc))
    spec = load_spec(path)
    trials = [t for t in expand(spec) if t.kept]
    sweep = SweepDir(tmp / "runs" / "wb")
    sweep.write_plan(spec.raw, trials, spec.search, spec.wandb)
    return sweep, trials


def job_file(tmp: Path, sweep: SweepDir, trial) -> Path:
    plan = plans_for(sweep, [trial.trial_id])[trial.trial_id]
    path = tmp / f"job-{trial.trial_id}.pkl"
    path.write_bytes(pickle.dumps(TrialJob(trial.config, str(sweep.trial_dir(trial.trial_id)), trial.trial_id, plan)))
    return path


def env(tmp: Path, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    return {**clean, "OMP_NUM_THREADS": "1", "HOME": str(tmp / "home"), **extra}


def start(tmp: Path, job: Path, **extra: str) -> subprocess.Popen:
    code = "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))()"
    return subprocess.Popen([sys.executable, "-c", code, str(job)], env=env(tmp, **extra), cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[str, str]:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    return out, err


def runs_of(sweep: SweepDir, trial_id: str) -> list:
    run_id = plans_for(sweep, [trial_id])[trial_id]["run_id"]
    return [read_run(f) for f in run_files(sweep.path / "wandb" / "wandb", run_id)]


def metrics(sweep: SweepDir, trial_id: str) -> list[dict]:
    return [json.loads(x) for x in (sweep.trial_dir(trial_id) / "metrics.jsonl").read_text().splitlines()]


def test_one_run_per_trial_with_config_every_epoch_once_and_the_summary(tmp_path: Path) -> None:
    sweep, trials = make_sweep(tmp_path)
    t = trials[0]
    out, err = finish(start(tmp_path, job_file(tmp_path, sweep, t)))
    (run,) = runs_of(sweep, t.trial_id)
    assert run.group == "wb" and run.job_type == "trial" and run.project == "orchestrate"
    assert run.name == f"channels={t.config['model']['channels']}" and run.tags == ["t1"]
    assert run.config["params"] == t.params and run.config["model"] == t.config["model"]
    assert run.config["train"] == t.config["train"] and run.config["trial_id"] == t.trial_id
    rows = metrics(sweep, t.trial_id)
    assert run.steps == [1, 2, 3]
    for logged, row in zip(run.history, rows):  # every metrics.jsonl field, as written
        assert {k: logged[k] for k in row} == row
    result = json.loads((sweep.trial_dir(t.trial_id) / "result.json").read_text())
    for key in ("status", "params", "test_acc", "best_val_acc", "epochs_completed", "wall_seconds"):
        assert run.summary[key] == result[key]
    assert run.exited and run.exit_code == 0
    # W&B stays in the sweep dir and off our stdout
    assert not (tmp_path / "home").exists() or not list((tmp_path / "home").rglob("*wandb*"))
    assert "wandb" not in out.lower() and "epoch 3/3" in out and "warning" not in err


def test_kill_9_then_rerun_continues_the_same_run_without_logging_an_epoch_twice(tmp_path: Path) -> None:
    sweep, trials = make_sweep(tmp_path, epochs=5, subset=300)
    t = trials[0]
    job = job_file(tmp_path, sweep, t)
    proc = start(tmp_path, job)
    deadline = time.time() + 120
    mfile = sweep.trial_dir(t.trial_id) / "metrics.jsonl"
    while not (mfile.is_file() and mfile.read_text().count("\n") >= 2):
        assert time.time() < deadline and proc.poll() is None, "no second epoch"
        time.sleep(0.05)
    time.sleep(0.5)  # inside epoch 3, or between its checkpoint and its W&B log
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (sweep.trial_dir(t.trial_id) / "result.json").exists()
    time.sleep(1.1)  # W&B names a process's run dir by the second
    finish(start(tmp_path, job))
    files = runs_of(sweep, t.trial_id)
    assert len(files) == 2  # one per process
    # wandb-core buffers its file: what the killed process had not flushed is logged again from
    # metrics.jsonl by the next one; what it had flushed is not
    runs = [r for r in files if r.run_id]
    assert {r.run_id for r in runs} == {plans_for(sweep, [t.trial_id])[t.trial_id]["run_id"]}  # the same run
    steps = [s for r in runs for s in r.steps]
    assert sorted(steps) == [1, 2, 3, 4, 5] and len(steps) == 5  # each epoch exactly once
    assert [r["epoch"] for r in metrics(sweep, t.trial_id)] == [1, 2, 3, 4, 5]
    assert runs[-1].summary["status"] == "completed" and runs[-1].config["params"] == t.params


class BlackHole:
    """A server that accepts connections and never answers: W&B's init times out against it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                return


def _kill_wandb_core(proc: subprocess.Popen, mfile: Path) -> None:
    """After the first epoch, SIGKILL the trial's wandb-core (its child process)."""
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if mfile.is_file() and mfile.read_text().count("\n") >= 1:
            ps = subprocess.run(["ps", "-eo", "pid,ppid,comm"], capture_output=True, text=True).stdout.split("\n")[1:]
            core = [int(p.split()[0]) for p in ps if p.split() and p.split()[1] == str(proc.pid) and "wandb-core" in p]
            if core:
                for pid in core:
                    os.kill(pid, signal.SIGKILL)
                return
        time.sleep(0.05)
    raise AssertionError("never saw the trial's wandb-core")


@pytest.mark.parametrize("failure", ["bad mode", "bad dir", "init timeout", "wandb-core killed"])
def test_wandb_trouble_never_stops_a_trial(tmp_path: Path, failure: str) -> None:
    sweep, trials = make_sweep(tmp_path, epochs=3, subset=120)
    t = trials[0]
    extra: dict[str, str] = {}
    if failure == "bad mode":
        extra["WANDB_MODE"] = "sideways"
    elif failure == "bad dir":
        (sweep.path / "wandb").write_text("a file where W&B wants its directory")
    elif failure == "init timeout":
        hole = BlackHole()
        extra = {"WANDB_MODE": "online", "WANDB_BASE_URL": f"http://127.0.0.1:{hole.port}",
                 "WANDB_API_KEY": "x" * 40, "WANDB_INIT_TIMEOUT": "3"}
    proc = start(tmp_path, job_file(tmp_path, sweep, t), **extra)
    if failure == "wandb-core killed":
        _kill_wandb_core(proc, sweep.trial_dir(t.trial_id) / "metrics.jsonl")
    t0 = time.time()
    out, err = finish(proc)
    result = json.loads((sweep.trial_dir(t.trial_id) / "result.json").read_text())
    assert result["status"] == "completed" and result["epochs_completed"] == 3
    warnings = [ln for ln in err.splitlines() if "warning: W&B" in ln]
    assert len(warnings) == 1, err  # one line says what happened
    assert "training goes on" in warnings[0]
    if failure == "init timeout":
        assert "init failed" in warnings[0] or "did not finish" in warnings[0]
        assert time.time() - t0 < 120
