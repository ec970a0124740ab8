"""Fault injection without a scheduler: a full disk under a running trial, and 100 trials
finishing in the same second while status and the leaderboard poll."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ORCH = str(Path(sys.executable).parent / "orchestrate")
TINY = {
    "model": {"layers": 2, "blocks": 1, "channels": 8},
    "data": {"name": "synthetic", "subset": 64, "test_subset": 20, "val_size": 0},
    "train": {"epochs": 4, "batch_size": 32, "optimizer": {"name": "sgd", "lr": 0.05}},
    "resources": {"cpus_per_task": 1},
}


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
