"""Reading a trial's files for the readers (status, leaderboard, plots): cheap, and never a crash:
a damaged file is named (``warn_corrupt``) and read as far as it is valid."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from orchestrator.store.sweepdir import warn_corrupt
from train.safefs import NotRegular, read_regular


def last_metrics(trial_dir: Path) -> dict[str, Any] | None:
    """The last line of metrics.jsonl (read from the end: cheap on a long run); a damaged one is named."""
    path = trial_dir / "metrics.jsonl"
    try:
        lines = [ln for ln in read_regular(path, limit=4096).splitlines() if ln.strip()]
    except NotRegular as err:
        warn_corrupt(path, str(err.strerror))
        return None
    except OSError:
        return None
    if not lines:
        return None
    try:
        row = json.loads(lines[-1])
    except ValueError as err:
        warn_corrupt(path, f"its last line: {err}")
        return None
    return row if isinstance(row, dict) else None


def read_metrics(trial_dir: Path) -> list[dict[str, Any]]:
    """Every epoch row of metrics.jsonl; damaged lines are named and left out."""
    path = trial_dir / "metrics.jsonl"
    try:
        text = read_regular(path).decode(errors="replace")
    except NotRegular as err:
        warn_corrupt(path, str(err.strerror))
        return []
    except OSError:
        return []
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("epoch"), int):
                raise ValueError("not an epoch row")
        except ValueError as err:
            warn_corrupt(path, str(err), i)
            continue
        rows.append(row)
    return rows


def damage(path: str | Path) -> str | None:
    """Why the result file at ``path`` (which read as no result) is damaged, or None if absent."""
    if not os.path.lexists(path):
        return None
    try:
        read_regular(path)
    except NotRegular as err:
        return f"{path} is damaged ({err.strerror}); skipped"
    except OSError as err:
        return f"{path} cannot be read ({err.strerror})"
    return f"{path} is corrupt (not a trial result)"
