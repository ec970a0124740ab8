"""Whose trial directory this is: a runner never resumes, appends to or reports another trial's files."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from configcheck import ConfigError
from train.checkpoint import load_checkpoint
from train.files import read_result
from train.lease import read_lease
from train.safefs import check_dir, read_regular


class TrialDirTaken(ConfigError):
    """The directory holds another trial's checkpoint or result: resuming it would report that
    trial's progress under this trial's id."""


OWNER = ".trial_id"  # written at a trial's first start: whose directory this is


def check_owner(out: Path, trial_id: str) -> None:
    """Raise Unsafe when ``out`` is not safely the user's own (``safefs.check_dir``); raise
    TrialDirTaken when ``out`` belongs to another trial: its id file, result.json,
    checkpoint or lease says so (metrics.jsonl and the W&B run follow the checkpoint and the id,
    so they are never resumed or appended to by another trial either)."""
    if os.path.lexists(out):
        check_dir(out)  # another user's directory, or one others can write into: refused (exit 2)
    owner: str | None = None
    with contextlib.suppress(OSError, UnicodeDecodeError):
        owner = read_regular(out / OWNER).decode().strip() or None
    done = read_result(out)
    owner = owner or (done.get("trial_id") if done is not None else None)
    if owner is None:
        state = load_checkpoint(out, quiet=True)  # the trainer itself reports an unreadable one
        owner = state.get("trial_id") if state is not None else None
    if owner is None:
        owner = (read_lease(out) or {}).get("trial_id")
    if owner is not None and owner != trial_id:
        raise TrialDirTaken(str(out), f"holds trial {owner}'s files, not {trial_id}'s; "
                            "give this trial its own directory")
