"""Where a trial pauses: ``pause.json`` in its trial dir (``{"at": epoch}``), written by the ASHA
driver before it launches or promotes the trial and read by the trial's runner after each epoch
(its epoch hook answers ``PAUSE`` there). Plain JSON, read without following a link; the driver
owns it, the trial only reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.store.trialfiles import read_metrics
from train.atomic import atomic_write_json
from train.files import PAUSE
from train.safefs import make_dir, read_regular

PAUSE_FILE = "pause.json"


def pause_at(trial_dir: Path) -> int | None:
    """The epoch the trial pauses after, or None (it trains to the end)."""
    try:
        at = json.loads(read_regular(trial_dir / PAUSE_FILE)).get("at")
    except (OSError, ValueError, AttributeError):
        return None
    return at if isinstance(at, int) and not isinstance(at, bool) else None


def set_pause(trial_dir: Path, at: int | None) -> None:
    """Pause the trial after epoch ``at`` (None: train to the end)."""
    if at is None:
        (trial_dir / PAUSE_FILE).unlink(missing_ok=True)
    else:
        atomic_write_json(make_dir(trial_dir) / PAUSE_FILE, {"at": at})


def pause_hook(trial_dir: Path) -> Any:
    """The epoch hook that pauses the trial where ``pause.json`` says (read each epoch: the driver
    may move it while the trial runs)."""
    def hook(row: dict[str, Any]) -> str | None:
        at = pause_at(trial_dir)
        return PAUSE if at is not None and row["epoch"] >= at else None
    return hook


def metric_by_epoch(trial_dir: Path, metric: str) -> dict[int, float]:
    """The trial's ``metric`` after each epoch it trained (its metrics.jsonl rows)."""
    return {row["epoch"]: float(row[metric]) for row in read_metrics(trial_dir)
            if isinstance(row.get(metric), (int, float))}
