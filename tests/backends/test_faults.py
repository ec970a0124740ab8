"""Fault injection without a scheduler: a full disk under a running trial, and 100 trials
finishing in the same second while status and the leaderboard poll."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from kit import ORCH, UNSET, tiny

TINY = tiny(data={"subset": 64, "test_subset": 20, "val_size": 0},
            train={"epochs": 4, "batch_size": 32, "augment": UNSET}, resources={"cpus_per_task": 1})


def _train(spec: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([ORCH, "train", str(spec), "--out", str(out)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 16 MiB tmpfs: a real filesystem that really fills up (ENOSPC)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path, leave: int) -> Path:
    st = os.statvfs(mnt)
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler


def test_a_full_disk_fails_the_trial_as_disk_full_keeps_its_checkpoints_and_a_rerun_resumes(
        tmp_path: Path, small_disk: Path) -> None:
    spec = tmp_path / "disk.yaml"
    # wide enough that a checkpoint (~1.2 MB) dwarfs the small files' 4 KiB pages
    spec.write_text(yaml.safe_dump({"name": "disk", "base": {**TINY, "model": {**TINY["model"], "channels": 32}}}))
    probe = tmp_path / "probe"
    assert _train(spec, probe).returncode == 0
    size = (probe / "checkpoint.pt").stat().st_size
    # room for two checkpoints and half of a third (plus the small files): epoch 3's write fails
    out = small_disk / "trial"
    filler = _fill(small_disk, int(2.5 * size) + 32 * 1024)
    proc = _train(spec, out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"disk full writing {out / 'checkpoint.pt'}" in proc.stderr, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "failed" and result["failure_kind"] == "disk_full", result
    last = torch.load(out / "checkpoint.pt", weights_only=False)
    prev = torch.load(out / "checkpoint.prev.pt", weights_only=False)
    assert prev["epoch"] + 1 == last["epoch"] and 1 <= last["epoch"] < 4
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp") or p.name.endswith(".new")]  # no debris
    filler.unlink()  # space freed: the same command resumes
    again = _train(spec, out)
    assert again.returncode == 0, again.stderr
    assert f"resuming after epoch {last['epoch']}/4" in again.stdout
    epochs = [json.loads(ln)["epoch"] for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4] and json.loads((out / "result.json").read_text())["status"] == "completed"


def test_100_trials_finishing_in_the_same_second_all_recorded_while_status_and_leaderboard_poll(tmp_path: Path) -> None:
    """100 tiny trials through run_trial (lease, checkpoints, metrics, result.json), in threads of
    one process: each waits at a barrier in its last epoch's hook, so all 100 write their results
    at the same moment, while separate status and leaderboard processes poll the sweep dir."""
    import threading
    import time

    from orchestrator.store.sweepdir import SweepDir
    from orchestrator.sweep.expand import expand
    from orchestrator.sweep.spec import load_spec
    from train.loop import run_trial

    spec = tmp_path / "many.yaml"
    base = {"model": {"layers": 1, "blocks": 1, "channels": 2},
            "data": {"name": "synthetic", "subset": 2, "test_subset": 1, "val_size": 0},
            "train": {"epochs": 1, "batch_size": 20, "optimizer": {"name": "sgd", "lr": 0.05}}}
    spec.write_text(yaml.safe_dump({"name": "many", "base": base, "grid": {"train.seed": list(range(100))}}))
    trials = expand(load_spec(spec))
    assert len(trials) == 100
    sweep = SweepDir(tmp_path / "runs" / "many")
    sweep.write_plan(yaml.safe_load(spec.read_text()), trials)
    polling = threading.Event()
    # released once the readers are mid-poll, so their reads overlap the 100 result writes
    barrier = threading.Barrier(100, action=lambda: polling.wait(120) and time.sleep(0.5), timeout=600)
    ended: list[float] = []
    errors: list[BaseException] = []

    def one(t) -> None:
        def hook(row: dict) -> None:
            barrier.wait()  # every trial has trained and checkpointed: now all finish at once
        try:
            run_trial(t.config, sweep.trial_dir(t.trial_id), t.trial_id, hook)
            ended.append(time.time())
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    polls: list[subprocess.CompletedProcess] = []
    stop = threading.Event()

    def poll(args: list[str]) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        while not stop.is_set():
            proc = subprocess.Popen([ORCH, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            polling.set()
            out, err = proc.communicate()
            polls.append(subprocess.CompletedProcess(args, proc.returncode, out, err))

    pollers = [threading.Thread(target=poll, args=(args,)) for args in
               (["status", str(sweep.path), "--json"], ["leaderboard", str(sweep.path), "--format", "json"])]
    for p in pollers:
        p.start()
    workers = [threading.Thread(target=one, args=(t,)) for t in trials]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    for p in pollers:
        p.join()
    assert not errors, errors[:3]
    assert len(ended) == 100 and max(ended) - min(ended) < 1.0, max(ended) - min(ended)  # within one second
    status = json.loads(subprocess.run([ORCH, "status", str(sweep.path), "--json"], capture_output=True,
                                       text=True, check=True).stdout)
    assert [s["state"] for s in status].count("completed") == 100
    board = json.loads(subprocess.run([ORCH, "leaderboard", str(sweep.path), "--format", "json", "--per-seed"],
                                      capture_output=True, text=True, check=True).stdout)
    assert len(board) == 100
    assert polls and all(p.returncode == 0 and "Traceback" not in p.stderr for p in polls), \
        [p.stderr for p in polls if p.returncode][:2]
    for p in polls:  # every poll parsed: no reader ever saw half a file
        json.loads(p.stdout)
