"""What a Ray worker runs for one trial: ``run_trial`` with a per-epoch hook that reports to Tune
and hears its scheduler's verdict, a cancel check, and the trial's own log files.

Kept apart from the driver so a worker imports only this, Ray and the trainer."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CANCEL = "CANCEL"  # a file in the trial dir: `orchestrate cancel` asks the trial to stop there
STARTED = ".started"  # written when a worker picks the trial up: status says running, not pending


class Cancelled(Exception):
    failure_kind = "cancelled"


@contextlib.contextmanager
def trial_logs(out: Path) -> Iterator[None]:
    """The worker's stdout/stderr (file descriptors, so C++ and child output too) appended to the
    trial's stdout.log/stderr.log for the length of the trial, then restored: a reused worker
    runs the next trial into that trial's logs."""
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    for fd, name in ((1, "stdout.log"), (2, "stderr.log")):
        path = out / name
        if path.is_symlink():  # a SLURM submission's link: this run writes its own file
            path.unlink()
        sys.stdout.flush()
        sys.stderr.flush()
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
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
    from ray import tune

    from train.atomic import atomic_write_text
    from train.files import failure, write_result
    from train.loop import run_trial

    spec = tune_config["spec"]
    out = Path(spec["out"])
    trial_id = spec["trial_id"]
    with trial_logs(out):
        if (out / CANCEL).exists():
            write_result(out, failure(trial_id, "cancelled", "cancelled before it started"))
            return
        atomic_write_text(out / STARTED, f"{os.getpid()} {time.time()}\n")

        told_to_stop: list[SystemExit] = []

        def on_epoch(row: dict[str, Any]) -> str | None:
            if (out / CANCEL).exists():
                raise Cancelled(f"cancelled after epoch {row['epoch']}/{row['epochs']}")
            try:
                tune.report({k: v for k, v in row.items() if isinstance(v, (int, float))})
            except SystemExit as stop:  # Tune's way of saying: the scheduler stopped this trial
                told_to_stop.append(stop)
                return "asha" if row["epoch"] < row["epochs"] else None
            return None

        try:
            run_trial(spec["config"], out, trial_id, on_epoch)
        except Exception:  # its verdict and traceback are in result.json: a failed trial, not a Ray error
            return
        if told_to_stop:  # the verdict is written; now end the way Tune expects, or it cannot reuse this worker
            raise told_to_stop[0]
