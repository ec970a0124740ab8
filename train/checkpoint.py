"""The trial's checkpoint: model, optimizer, progress and RNG states, saved atomically."""

from __future__ import annotations

import os
import pickle
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from train.atomic import DiskFull, atomic_torch_save
from train.safefs import Unsafe, open_regular, problem

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"  # the checkpoint before the last: the fallback when the last is unreadable


def rng_states() -> dict[str, Any]:
    """Every RNG's state as tensors and plain numbers: what ``torch.load(weights_only=True)``
    reads without unpickling anything else (numpy's and Python's own states are pickled objects)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, mt, gauss_next = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": int(version), "state": torch.tensor(mt, dtype=torch.int64), "gauss_next": gauss_next}}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    npy, py = states["numpy"], states["python"]
    if isinstance(npy, dict):
        np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["gauss"]))
    else:  # a checkpoint from before 2026-12-02: numpy's own tuple
        np.random.set_state(npy)
    if isinstance(py, dict):
        random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    else:
        random.setstate(py)
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


# What checkpoints written before 2026-12-02 hold beyond tensors: numpy's RNG state array. These
# three rebuild an ndarray and nothing else; every other global is refused by torch's loader.
_LEGACY = [np._core.multiarray._reconstruct, np.ndarray, np.dtype, np.dtypes.UInt32DType]


def _read(path: Path) -> dict[str, Any]:
    """Load with ``weights_only=True``: a checkpoint is data, and the trial dir may sit on a shared
    filesystem where someone else could have planted a pickle that runs code. The file must be
    the user's own and a regular file (no symlink, no FIFO); its bytes are read once, checked."""
    with open_regular(path) as f, torch.serialization.safe_globals(_LEGACY):
        why = problem(os.fstat(f.fileno()))
        if why:
            raise Unsafe(str(path), f"{why}; refusing to load it")
        # map_location cpu: RNG states must stay CPU tensors; load_state_dict moves weights and
        # optimizer state to the parameters' device itself.
        state = torch.load(f, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "epoch" not in state:
        raise ValueError("not a trial checkpoint")
    if not isinstance(state.get("rng", {}).get("numpy"), dict):
        print(f"note: {path} is in the format before 2026-12-02 (numpy's RNG state as an array); it loads "
              "with only numpy's array type allowed, and the next epoch's checkpoint is in the new format",
              file=sys.stderr, flush=True)
    return state


def load_checkpoint(out: Path, quiet: bool = False) -> dict[str, Any] | None:
    """The newest readable checkpoint. One that cannot be read (truncated, a disk error) falls
    back to the previous one with a warning naming the file; when none is readable the bad files
    are moved aside (``*.corrupt-<time>``) and the trial starts again from epoch 0, saying so."""
    bad: list[tuple[Path, str]] = []
    for path in (out / CHECKPOINT, out / PREVIOUS):
        if not os.path.lexists(path):
            continue
        try:
            state = _read(path)
        except Unsafe:  # another user's file, or one others can write: refused, not "damaged"
            raise
        except pickle.UnpicklingError as err:  # torch's weights-only loader met a global it does not allow
            said = [ln.strip() for ln in str(err).splitlines() if "GLOBAL" in ln or "Unsupported" in ln]
            bad.append((path, "holds more than tensors and plain data; refused without running it"
                              + (f": {said[0]}" if said else "")))
            continue
        except Exception as err:  # noqa: BLE001 - any unreadable file: torch, zip, OS errors
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
