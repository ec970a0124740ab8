"""A second local user against a victim's sweeps (issue 17): one test per finding.

The tests run as root (the victim); the attacker is ``nobody``, acting through ``setpriv`` with
the system Python (no access to the project needed). Sweep dirs live in a world-writable, sticky
scratch dir, as on a cluster's shared filesystem. Every test plants what the review planted and
checks that nothing of it is executed, followed, killed, removed or waited on."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from kit import ORCH, tiny

SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"
TINY = tiny(train={"epochs": 1})

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                                reason="needs root and setpriv to act as a second user (nobody)")


def as_nobody(code: str, *args: object) -> str:
    """Run ``code`` as uid/gid 65534 (nobody) with the system Python; returns its stdout."""
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", SYSTEM_PYTHON, "-c", code,
                           *map(str, args)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def orch(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(cwd / "home"), "COLUMNS": "200"}
    return subprocess.run([ORCH, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


@pytest.fixture
def scratch() -> Path:
    """A shared scratch dir (like /scratch/<group>): world-writable with the sticky bit."""
    d = Path(tempfile.mkdtemp(prefix="orx-test-scratch-", dir="/tmp"))
    d.chmod(0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def spec_file(where: Path, name: str, base: dict | None = None, **extra: object) -> Path:
    path = where / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "base": base or TINY, **extra}, sort_keys=False))
    path.chmod(0o644)
    return path


def trial_id(spec: Path) -> str:
    from orchestrator.sweep.expand import expand
    from orchestrator.sweep.spec import load_spec

    return expand(load_spec(spec))[0].trial_id


class Payload:
    """Unpickling this creates ``marker``: what a planted checkpoint's pickle would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def payload_checkpoint(where: Path, marker: Path, tid: str, real: Path | None = None) -> Path:
    """A checkpoint whose pickle runs code; ``real``: a genuine checkpoint plus one extra key."""
    import torch

    state = torch.load(real, weights_only=True, map_location="cpu") if real else {"epoch": 1, "trial_id": tid}
    path = where / "payload.pt"
    torch.save({**state, "extra": Payload(marker)}, path)
    path.chmod(0o644)
    return path


PLANT = "import shutil, sys, os; os.makedirs(os.path.dirname(sys.argv[2]), exist_ok=True); shutil.copy(sys.argv[1], sys.argv[2])"


@pytest.mark.ray  # it starts Ray too
def test_1_a_planted_checkpoint_never_runs_train_ray_slurm_packed(scratch: Path, slurm_cluster: None) -> None:
    """A checkpoint.pt planted by another user (with a matching .trial_id) is never unpickled:
    a trial dir others can write into is refused (exit 2) by train and by both submits, and a
    planted file that is the user's own is loaded weights-only: named as damaged, trained anew."""
    spec = spec_file(scratch, "victim")
    tid = trial_id(spec)
    marker = scratch / "PWNED"
    runs = scratch / "runs"
    trial = runs / "victim" / "trials" / tid
    trial.mkdir(parents=True)
    for d in (runs, runs / "victim", runs / "victim" / "trials", trial):
        d.chmod(0o777)  # what the old code left under umask 000 on a shared filesystem
    payload = payload_checkpoint(scratch, marker, tid)
    as_nobody(PLANT, payload, trial / "checkpoint.pt")
    as_nobody("import sys; open(sys.argv[1], 'w').write(sys.argv[2] + '\\n')", trial / ".trial_id", tid)

    train = orch(scratch, "train", str(spec), "--out", str(trial))
    assert train.returncode == 2 and str(trial) in train.stderr and "writable by" in train.stderr, train.stderr
    assert train.stderr.count("\n") == 1, train.stderr
    for backend in ("ray", "slurm"):
        sub = orch(scratch, "submit", str(spec), "--backend", backend, "--runs-dir", str(runs))
        assert sub.returncode == 2 and "writable by" in sub.stderr and sub.stderr.count("\n") == 1, sub.stderr
    assert not (runs / "victim" / "submissions.jsonl").exists()  # nothing submitted
    assert not marker.exists()

    # the user fixes the modes but the planted file stays (now theirs): weights-only, never run
    for d in (runs, runs / "victim", runs / "victim" / "trials", trial):
        d.chmod(0o755)
    for f in trial.iterdir():
        os.chown(f, 0, 0)
    train = orch(scratch, "train", str(spec), "--out", str(trial))
    assert train.returncode == 0, train.stderr
    assert "checkpoint.pt" in train.stderr and "holds more than tensors" in train.stderr, train.stderr
    assert json.loads((trial / "result.json").read_text())["status"] == "completed"
    assert not marker.exists()

    # the stealthy one: a genuine checkpoint plus an extra key, run by a packed SLURM task's child
    from orchestrator.backends.slurm.packing import PackedJob
    from orchestrator.backends.slurm.trialjob import TrialJob

    two = spec_file(scratch, "packed")
    tid2 = trial_id(two)
    out = runs / "packed" / "trials" / tid2
    first = orch(scratch, "train", str(two), "--out", str(out))  # leaves a real checkpoint of its one epoch
    assert first.returncode == 0, first.stderr
    (out / "result.json").unlink()  # as if it had been killed right after saving it
    stealthy = payload_checkpoint(scratch, marker, tid2, real=out / "checkpoint.pt")
    shutil.copy(stealthy, out / "checkpoint.pt")
    from orchestrator.sweep.expand import expand
    from orchestrator.sweep.spec import load_spec

    config = expand(load_spec(two))[0].config
    codes = PackedJob([TrialJob(config, str(out), tid2)])()
    assert codes == [{"trial_id": tid2, "returncode": 0}], (out / "stderr.log").read_text()
    assert "holds more than tensors" in (out / "stderr.log").read_text()
    assert not marker.exists()
    assert not list(out.glob(".job.pkl"))  # the child's job is JSON now


def test_2_a_sweep_dir_someone_else_made_is_refused(scratch: Path) -> None:
    spec = spec_file(scratch, "taken")
    runs = scratch / "runs"
    runs.mkdir(mode=0o1777)
    runs.chmod(0o1777)
    as_nobody("import os, sys; os.mkdir(sys.argv[1], 0o777); os.chmod(sys.argv[1], 0o777)", runs / "taken")
    proc = orch(scratch, "submit", str(spec), "--backend", "ray", "--runs-dir", str(runs))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert str(runs / "taken") in proc.stderr and "owned by nobody" in proc.stderr, proc.stderr
    assert os.listdir(runs / "taken") == []  # nothing written into it


def test_3_a_symlinked_lock_is_never_followed(scratch: Path) -> None:
    spec = spec_file(scratch, "locked")
    runs = scratch / "runs"
    sweep = runs / "locked"
    sweep.mkdir(parents=True)
    sweep.chmod(0o777)  # the old umask-000 mode: a stranger could plant the link
    target = scratch / "created-by-victim"
    as_nobody("import os, sys; os.symlink(sys.argv[2], sys.argv[1])", sweep / ".lock", target)
    proc = orch(scratch, "submit", str(spec), "--backend", "ray", "--runs-dir", str(runs))
    assert proc.returncode == 2 and "writable by" in proc.stderr, proc.stderr
    assert not target.exists()
    # the dir is the user's own again, the link still there: refused by name, not followed
    sweep.chmod(0o755)
    (sweep / ".lock").unlink()
    (sweep / ".lock").symlink_to(target)
    proc = orch(scratch, "submit", str(spec), "--backend", "ray", "--runs-dir", str(runs))
    assert proc.returncode == 2 and f"{sweep / '.lock'}: is a symlink" in proc.stderr, proc.stderr
    assert not target.exists()


def test_4_a_forged_driver_record_kills_and_removes_nothing(scratch: Path) -> None:
    from orchestrator.backends.ray.backend import _record
    from orchestrator.backends.ray.driver import DRIVER
    from orchestrator.backends.ray.processes import kill_leftovers, pid_start

    victim = subprocess.Popen(["sleep", "300"])  # the victim's own, unrelated process
    keep = scratch / "keep"
    keep.mkdir()
    (keep / "s").symlink_to("/nonexistent")  # a directory outside the sweep dir a record could name
    try:
        forged = {"host": socket.gethostname(), "state": "interrupted", "pid": 1, "pid_start": "0",
                  "ray_pids": [[victim.pid, pid_start(victim.pid)]], "socket_link": str(keep / "s")}
        spec = spec_file(scratch, "forged")
        runs = scratch / "runs"
        ray_dir = runs / "forged" / "ray"
        ray_dir.mkdir(parents=True)
        ray_dir.chmod(0o777)
        (scratch / "record.json").write_text(json.dumps(forged))
        (scratch / "record.json").chmod(0o644)
        as_nobody("import os, sys, shutil; os.mkdir(sys.argv[1], 0o755); shutil.copy(sys.argv[2], sys.argv[3])",
                  ray_dir / "r0101-000000", scratch / "record.json", ray_dir / "r0101-000000" / DRIVER)
        proc = orch(scratch, "submit", str(spec), "--backend", "ray", "--runs-dir", str(runs))
        assert proc.returncode == 2 and "writable by" in proc.stderr, proc.stderr
        # read directly: a record in someone else's dir is named and ignored
        assert _record(ray_dir / "r0101-000000", act=True) == {}
        # a record that is the user's own file in an owner-only dir still proves nothing: the
        # pid's environment does not name this run dir's token, the link is not this run's
        mine = ray_dir / "r0101-000001"
        mine.mkdir(mode=0o700)
        (mine / DRIVER).write_text(json.dumps(forged))
        record = _record(mine, act=True)
        assert record["ray_pids"] == forged["ray_pids"]
        assert kill_leftovers(record, mine) == 0
        time.sleep(0.2)
        assert victim.poll() is None, "the victim's process was killed"
        assert (keep / "s").is_symlink() and keep.is_dir()
    finally:
        victim.kill()
        victim.wait()


def test_5_a_precreated_tmp_path_is_never_used(monkeypatch: pytest.MonkeyPatch, scratch: Path) -> None:
    """Ray inside SLURM took /tmp/orx-<jobid>: a stranger who made it first (a link to their dir)
    got Ray's session, sockets and logs. The temp dir is now mkdtemp's: unpredictable, 0700."""
    from orchestrator.backends.ray.inside_slurm import node_temp, remove_temp

    job = str(900000 + os.getpid() % 10000)
    monkeypatch.setenv("SLURM_JOB_ID", job)
    theirs = scratch / "theirs"
    as_nobody("import os, sys; os.mkdir(sys.argv[1], 0o777); os.chmod(sys.argv[1], 0o777); "
              "os.symlink(sys.argv[1], sys.argv[2])", theirs, f"/tmp/orx-{job}")
    try:
        temps = [node_temp() for _ in range(3)]
        for temp in temps:
            st = os.lstat(temp)
            assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o700
            assert os.path.realpath(temp) == temp and temp != f"/tmp/orx-{job}"
            Path(temp, "session").mkdir()
            remove_temp(temp)
            assert not os.path.lexists(temp)
        assert len(set(temps)) == 3 and os.listdir(theirs) == []
    finally:
        os.unlink(f"/tmp/orx-{job}")


def test_6_readers_never_block_on_a_fifo(scratch: Path) -> None:
    """A FIFO as result.json (in a sweep the reader does not own) is named and skipped by status
    and leaderboard; a FIFO named like an image is refused by the data pre-flight."""
    from orchestrator.store.sweepdir import SweepDir
    from orchestrator.sweep.expand import expand
    from orchestrator.sweep.spec import load_spec

    spec = spec_file(scratch, "fifo", grid={"train.optimizer.lr": [0.1, 0.05]})
    trials = expand(load_spec(spec))
    sweep = SweepDir(scratch / "runs" / "fifo")
    sweep.write_plan(yaml.safe_load(spec.read_text()), trials)
    for t in trials:
        sweep.trial_dir(t.trial_id).mkdir(parents=True)
    subprocess.run(["chown", "-R", "nobody:nogroup", str(scratch / "runs")], check=True)
    fifo = sweep.trial_dir(trials[0].trial_id) / "result.json"
    as_nobody("import os, sys; os.mkfifo(sys.argv[1], 0o666)", fifo)
    for cmd in (["status", str(sweep.path)], ["leaderboard", str(sweep.path)]):
        proc = orch(scratch, *cmd, "--runs-dir", str(scratch / "runs"), timeout=60)  # blocked forever before
        assert proc.returncode == 0, proc.stderr
        assert str(fifo) in proc.stdout + proc.stderr and "FIFO" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # left alone: not the reader's to touch

    from train.data import CLASSES

    tree = scratch / "images"
    for split in ("train", "test"):
        for c in CLASSES:
            (tree / split / c).mkdir(parents=True)
            (tree / split / c / "0.jpg").write_bytes(b"")  # the pre-flight reads directory entries only
    subprocess.run(["chmod", "-R", "a+rwX", str(tree)], check=True)
    as_nobody("import os, sys; os.mkfifo(sys.argv[1], 0o666)", tree / "train" / "cat" / "a.jpg")
    data = spec_file(scratch, "fifoimg", {**TINY, "data": {"name": "cifar10", "root": str(tree), "format": "imagefolder"}})
    proc = orch(scratch, "submit", str(data), "--backend", "ray", "--dry-run", "--runs-dir", str(scratch / "runs"),
                timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"{tree / 'train' / 'cat' / 'a.jpg'} is not a regular file" in proc.stderr, proc.stderr


def _peak(cmd: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``cmd`` in a fresh child and return it with the child's peak RSS in MiB."""
    code = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(p.returncode); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
            "sys.stderr.write(p.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True, cwd=cwd, timeout=120)
    rc, kb = proc.stdout.split()[-2:]
    return subprocess.CompletedProcess(cmd, int(rc), "", proc.stderr), int(kb) // 1024


def test_7_a_million_point_grid_and_an_alias_bomb_are_refused_in_bounded_memory(scratch: Path) -> None:
    axis = list(range(8, 108))
    grid = spec_file(scratch, "huge", grid={"model.channels": axis, "train.seed": axis, "train.epochs": axis})
    proc, mib = _peak([ORCH, "plan", str(grid), "--limit", "3"], scratch)
    assert proc.returncode == 2 and "plans 1,000,000 trials (grid 100 x 100 x 100" in proc.stderr, proc.stderr
    assert "--max-trials 1000000" in proc.stderr and mib < 200, (proc.stderr, mib)

    levels = ["&a [" + ",".join(['"x"'] * 9) + "]"]
    for i in range(1, 9):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        levels.append(f"&{name} [{','.join([levels[-1]] + [f'*{prev}'] * 8)}]")
    bomb = scratch / "bomb.yaml"
    bomb.write_text(f"name: bomb\ndescription: {levels[-1]}\nbase: {{model: {{family: resnet}}}}\n")
    assert len(bomb.read_bytes()) < 1000
    proc, mib = _peak([ORCH, "plan", str(bomb)], scratch)
    assert proc.returncode == 2 and "expands to more than 200,000 YAML nodes" in proc.stderr, proc.stderr
    assert mib < 200, mib


def test_8_a_name_with_a_trailing_newline_is_refused(scratch: Path) -> None:
    spec = scratch / "nl.yaml"
    spec.write_text('name: "nl\\n"\nbase: {model: {family: resnet}}\n')
    proc = orch(scratch, "plan", str(spec))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "name:" in proc.stderr, proc.stderr
