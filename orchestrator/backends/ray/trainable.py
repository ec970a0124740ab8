"""What a Ray worker runs for one trial: ``run_trial`` with a per-epoch hook that reports to Tune
and hears its scheduler's verdict, a cancel check, and the trial's own log files.

Kept apart from the driver so a worker imports only this, Ray and the trainer."""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator import faults
from orchestrator.backends.ray.driver import driver_alive
from orchestrator.tracking.wandb_run import DeferredTracker
from train.atomic import atomic_write_text
from train.files import failure, read_result, write_config, write_result
from train.lease import LEASE, TrialHeld, held, read_lease
from train.safefs import make_dir, open_nofollow, read_regular, tighten_umask

CANCEL = "CANCEL"  # a file in the trial dir: `orchestrate cancel` asks the trial to stop there
STARTED = ".started"  # written when a worker picks the trial up: status says running, not pending


class Cancelled(Exception):
    failure_kind = "cancelled"


class Ended(Exception):
    """A trial that ended without a result for Tune (failed, cancelled, a duplicate): its verdict is
    in the trial dir already; Tune records an error for it, and its scheduler never sees a result
    without the metric."""


@contextlib.contextmanager
def trial_logs(out: Path) -> Iterator[None]:
    """The worker's stdout/stderr (file descriptors, so C++ and child output too) appended to the
    trial's stdout.log/stderr.log for the length of the trial, then restored: a reused worker
    runs the next trial into that trial's logs."""
    make_dir(out)
    saved = []
    for fd, name in ((1, "stdout.log"), (2, "stderr.log")):
        path = out / name
        if path.is_symlink():  # a SLURM submission's link: this run writes its own file
            path.unlink()
        sys.stdout.flush()
        sys.stderr.flush()
        target = open_nofollow(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        saved.append((fd, os.dup(fd)))
        os.dup2(target, fd)
        os.close(target)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


def trainable(tune_config: dict[str, Any]) -> None:
    """Tune's function trainable. ``tune_config["spec"]``: trial_id, config (resolved), out (the trial dir)."""
    from ray import tune  # heavy: loads Ray; only this path needs it

    from train.loop import run_trial  # heavy: loads numpy and torch (seconds); only this path needs it

    spec = tune_config["spec"]
    out = Path(spec["out"])
    trial_id = spec["trial_id"]
    with trial_logs(out):
        # a native crash leaves its signal and stack in stderr.log (orchestrator/crashes.py reads it)
        faulthandler.enable(all_threads=False)
        tighten_umask()
        if (out / CANCEL).exists():
            write_result(out, failure(trial_id, "cancelled", "cancelled before it started"))
            raise Ended(f"{trial_id}: cancelled before it started")
        atomic_write_text(out / STARTED, f"{os.getpid()} {time.time()}\n")
        tracker = DeferredTracker(spec.get("tracking"), spec["config"], out, trial_id, rank_from_env=False)

        told_to_stop: list[SystemExit] = []
        final: list[dict[str, Any]] = []

        def on_epoch(row: dict[str, Any]) -> str | None:
            tracker.hook(row)
            faults.point("trial.after_epoch")
            if row["epoch"] >= row["epochs"]:
                # The last epoch is reported after W&B has finished (below): once Tune has every
                # trial's last result it may end the run and kill this worker mid-upload.
                final.append(row)
                return None
            if (out / CANCEL).exists():
                raise Cancelled(f"cancelled after epoch {row['epoch']}/{row['epochs']}")
            try:
                tune.report({k: v for k, v in row.items() if isinstance(v, (int, float))})
            except SystemExit as stop:  # Tune's way of saying: stop this trial
                told_to_stop.append(stop)
                if spec.get("early_stopping"):
                    return spec["early_stopping"]  # the rule's name: the scheduler stopped it, a verdict
                raise  # the run is being torn down: no verdict, the checkpoint stays for a resume
            return None

        if spec.get("driver_record"):
            follow_driver(Path(spec["driver_record"]), out)
        workers = spec["config"]["resources"].get("workers") or 1
        # the lease names this submission, so status can tell a dead driver's leftover runner
        # (interrupted, resumable) from a live one
        if spec.get("job_id"):
            os.environ["ORCHESTRATE_JOB_ID"] = spec["job_id"]
        try:
            if workers > 1:
                run_ddp(spec["config"], out, trial_id, workers, on_epoch, tracker.open)
            else:
                run_trial(spec["config"], out, trial_id, on_epoch, on_start=tracker.open)
        except Exception as err:  # its verdict and traceback are in result.json (a duplicate: in duplicates/)
            # Ended, not a plain return: Tune takes a return as a final result, and one without the
            # metric makes ASHA end the whole run (a trial cancelled before its first epoch did)
            raise Ended(f"{trial_id}: {type(err).__name__}: {err}") from None
        finally:
            os.environ.pop("ORCHESTRATE_JOB_ID", None)  # a reused worker runs another trial next
            tracker.finish(read_result(out))
        if final and not told_to_stop:  # a SystemExit here is Tune ending the trial: let it through
            tune.report({k: v for k, v in final[0].items() if isinstance(v, (int, float))})
        if told_to_stop:  # the verdict is written; now end the way Tune expects, or it cannot reuse this worker
            raise told_to_stop[0]


def follow_driver(record: Path, out: Path, every: float = 1.0) -> None:
    """A trial dies with its driver: once the driver is gone (SIGKILLed, its host lost), nobody
    reads its epochs and status already calls it interrupted, so a worker that trained on would
    write epochs behind status's back until the next submit killed it. Checked every second from
    the driver's record (pid + start time here, heartbeat from another host); this worker's lease
    is given up first, so the resume does not wait or warn."""
    started = bool(_FOLLOW)
    _FOLLOW.update(record=record, out=out)  # a reused worker: the one thread follows its current trial
    if not started:
        threading.Thread(target=_watch, args=(every,), daemon=True, name="follow-driver").start()


_FOLLOW: dict[str, Any] = {}
_CHILDREN: set[int] = set()  # process groups of this worker's torchrun launches (workers > 1)


def _watch(every: float) -> None:

    misses = 0
    while True:
        time.sleep(every)
        record, out = _FOLLOW["record"], _FOLLOW["out"]
        try:
            alive = driver_alive(json.loads(read_regular(record)))
        except (OSError, ValueError, KeyError, TypeError):
            alive = False
        misses = 0 if alive else misses + 1
        if misses < 2:  # two looks a second apart: never on one torn read
            continue
        for pgid in list(_CHILDREN):
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
        holder = read_lease(out)
        if holder is not None and holder.get("pid") in (os.getpid(), *_CHILDREN):
            (out / LEASE).unlink(missing_ok=True)
        print(f"[{out.name}] its driver ({record.parent.name}) is gone: this worker stops", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


def run_ddp(config: dict[str, Any], out: Path, trial_id: str, workers: int, on_epoch: Any,
            on_start: Any = None) -> None:
    """``workers`` DDP processes under torchrun (gloo on CPU, nccl on CUDA), here, in the CPUs and
    GPUs Ray reserved for the trial; rank 0's epochs reach ``on_epoch`` through a file channel
    (train/worker.py), and its answer goes back before the next epoch starts."""
    from train.loop import check_owner  # heavy: loads numpy and torch (seconds); only this path needs it

    check_owner(out, trial_id)
    holder = held(out)  # rank 0 takes the lease itself; this spares a duplicate the torchrun start
    if holder is not None:
        raise TrialHeld(trial_id, holder)
    write_config(out, config)
    if on_start is not None:
        on_start()
    channel = out / ".channel"
    shutil.rmtree(channel, ignore_errors=True)  # (rmtree never follows a symlink: it refuses one)
    make_dir(channel, private=True)
    atomic_write_text(channel / "launcher.pid", str(os.getpid()))
    cpus = config["resources"].get("cpus") or 1
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={workers}",
           "-m", "train.worker", str(out), "--trial-id", trial_id, "--channel", str(channel)]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": str(cpus)}, start_new_session=True)
    _CHILDREN.add(proc.pid)
    epoch = 1
    try:
        while True:
            row_file = channel / f"epoch-{epoch}.json"
            if row_file.exists():
                try:
                    verdict = on_epoch(json.loads(row_file.read_text())) or ""
                except Cancelled as err:
                    verdict = f"fail:cancelled:{err}"
                (channel / f"verdict-{epoch}.tmp").write_text(verdict)
                os.replace(channel / f"verdict-{epoch}.tmp", channel / f"verdict-{epoch}")
                epoch += 1
                continue
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:  # the trial was stopped from outside: no orphan ranks
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _CHILDREN.discard(proc.pid)
        shutil.rmtree(channel, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun exited with {proc.returncode}; see {out / 'result.json'}")
