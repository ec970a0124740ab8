"""Run the trial whose ``config.yaml`` is in a trial dir: ``python -m train.worker DIR``.

What ``orchestrate train --nproc N`` (and the Ray backend, for ``workers`` > 1) starts under
torchrun, one process per rank. ``--channel DIR`` connects rank 0's per-epoch hook to the
launcher in another process through files: after each epoch it writes ``epoch-E.json`` (the
metrics row) and waits for ``verdict-E``: empty to go on, a reason (e.g. ``asha``) to stop
early, or ``fail:KIND:message`` to fail with that ``failure_kind`` (e.g. cancelled). The
launcher's pid is in ``launcher.pid``; if it dies, the trial fails instead of waiting forever.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from train.atomic import atomic_write_json
from train.files import read_config
from train.lease import TrialHeld
from train.loop import run_trial


class LauncherVerdict(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.failure_kind = kind


def channel_hook(channel: Path, poll_s: float = 0.05) -> Callable[[dict[str, Any]], str | None]:
    launcher = int((channel / "launcher.pid").read_text())

    def hook(row: dict[str, Any]) -> str | None:
        epoch = row["epoch"]
        atomic_write_json(channel / f"epoch-{epoch}.json", row)
        verdict = channel / f"verdict-{epoch}"
        while not verdict.exists():
            try:
                os.kill(launcher, 0)
            except ProcessLookupError:
                raise RuntimeError(f"the launcher (pid {launcher}) is gone; stopping after epoch {epoch}") from None
            time.sleep(poll_s)
        text = verdict.read_text().strip()
        if text.startswith("fail:"):
            _, kind, message = text.split(":", 2)
            raise LauncherVerdict(kind, message)
        return text or None

    return hook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir")
    parser.add_argument("--trial-id", required=True)
    parser.add_argument("--channel", default=None, help="Directory for the per-epoch exchange with the launcher.")
    args = parser.parse_args(argv)
    hook = None
    if args.channel:  # every rank takes part in the stop decision's all-reduce; rank 0 asks the launcher
        hook = channel_hook(Path(args.channel)) if int(os.environ.get("RANK", "0")) == 0 else (lambda row: None)
    try:
        result = run_trial(read_config(Path(args.out_dir)), args.out_dir, args.trial_id, hook)
    except TrialHeld:  # another runner holds the trial: its line is printed, nothing written
        return 3
    except Exception:  # the verdict and traceback are in result.json
        return 1
    return 0 if result["status"] in ("completed", "stopped_early") else 1


if __name__ == "__main__":
    sys.exit(main())
