"""The trial directory's files: atomic checkpoint, metrics.jsonl, config.yaml and result.json."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from train.atomic import atomic_torch_save, atomic_write_json, atomic_write_text

CHECKPOINT, METRICS, RESULT, CONFIG = "checkpoint.pt", "metrics.jsonl", "result.json", "config.yaml"


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


def load_checkpoint(out: Path, device: torch.device) -> dict[str, Any] | None:
    path = out / CHECKPOINT
    if not path.is_file():
        return None
    # weights_only=False: the file is our own (optimizer state, RNG tuples), never user-supplied.
    return torch.load(path, map_location=device, weights_only=False)


def write_metrics(out: Path, history: list[dict[str, Any]]) -> None:
    """Rewritten whole from the checkpoint's history, so a resumed run never duplicates epochs."""
    atomic_write_text(out / METRICS, "".join(json.dumps(m) + "\n" for m in history))


def write_config(out: Path, config: dict[str, Any]) -> None:
    atomic_write_text(out / CONFIG, yaml.safe_dump(config, sort_keys=False))


def read_config(out: Path) -> dict[str, Any]:
    return yaml.safe_load((out / CONFIG).read_text())


def write_result(out: Path, result: dict[str, Any]) -> None:
    atomic_write_json(out / RESULT, result)


def read_result(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / RESULT).read_text())
    except (OSError, ValueError):
        return None
