"""The trial's checkpoint: model, optimizer, progress and RNG states, saved atomically."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from train.atomic import atomic_torch_save

CHECKPOINT = "checkpoint.pt"


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
    atomic_torch_save(out / CHECKPOINT, {**state, "rng": rng_states()})


def load_checkpoint(out: Path) -> dict[str, Any] | None:
    path = out / CHECKPOINT
    if not path.is_file():
        return None
    # weights_only=False: the file is our own (optimizer state, RNG tuples), never user-supplied.
    # map_location cpu: RNG states must stay CPU tensors; load_state_dict moves weights and
    # optimizer state to the parameters' device itself.
    return torch.load(path, map_location="cpu", weights_only=False)
