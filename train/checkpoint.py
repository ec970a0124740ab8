"""The trial's checkpoint: model, optimizer, progress and RNG states, saved atomically."""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from train.atomic import DiskFull, atomic_torch_save

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"  # the checkpoint before the last: the fallback when the last is unreadable


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(out: Path, state: dict[str, Any]) -> None:
    """Write the new checkpoint beside the old one, then keep the old one as PREVIOUS: the last
    two good checkpoints survive any crash (between the two renames only PREVIOUS is there,
    and it is the last good one)."""
    tmp = out / f".{CHECKPOINT}.new"
    try:
        atomic_torch_save(tmp, {**state, "rng": rng_states()})
    except DiskFull as err:  # name the file the user knows; both old checkpoints are untouched
        raise DiskFull(out / CHECKPOINT, err.__cause__ or err) from err
    if (out / CHECKPOINT).exists():
        os.replace(out / CHECKPOINT, out / PREVIOUS)
    os.replace(tmp, out / CHECKPOINT)


def _read(path: Path) -> dict[str, Any]:
    # weights_only=False: the file is our own (optimizer state, RNG tuples), never user-supplied.
    # map_location cpu: RNG states must stay CPU tensors; load_state_dict moves weights and
    # optimizer state to the parameters' device itself.
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or "epoch" not in state:
        raise ValueError("not a trial checkpoint")
    return state


def load_checkpoint(out: Path, quiet: bool = False) -> dict[str, Any] | None:
    """The newest readable checkpoint. One that cannot be read (truncated, a disk error) falls
    back to the previous one with a warning naming the file; when none is readable the bad files
    are moved aside (``*.corrupt-<time>``) and the trial starts again from epoch 0, saying so."""
    bad: list[tuple[Path, str]] = []
    for path in (out / CHECKPOINT, out / PREVIOUS):
        if not path.is_file():
            continue
        try:
            state = _read(path)
        except Exception as err:  # noqa: BLE001 - any unreadable file: torch, zip, pickle, OS errors
            bad.append((path, f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"))
            continue
        if bad and not quiet:
            print(f"warning: {bad[0][0]} cannot be read ({bad[0][1]}); resuming from {path.name} "
                  f"(epoch {state['epoch']}) instead", file=sys.stderr, flush=True)
        return state
    if bad and not quiet:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for path, _ in bad:
            os.replace(path, path.with_name(f"{path.name}.corrupt-{stamp}"))
        what = "; ".join(f"{p} ({why})" for p, why in bad)
        print(f"warning: no readable checkpoint: {what}; moved aside as *.corrupt-{stamp}, starting again from "
              "epoch 0", file=sys.stderr, flush=True)
    return None
