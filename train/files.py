"""The trial directory's text files (torch-free, so schedulers and status can read them cheaply):
config.yaml, metrics.jsonl and result.json, each written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from train import yamlbound
from train.atomic import atomic_write_json, atomic_write_text
from train.safefs import read_regular

METRICS, RESULT, CONFIG = "metrics.jsonl", "result.json", "config.yaml"


PAUSE = "paused"  # an epoch hook's answer: stop here resumable, no verdict (a scheduler resumes it later)

def write_metrics(out: Path, history: list[dict[str, Any]]) -> None:
    """Rewritten whole from the checkpoint's history, so a resumed run never duplicates epochs."""
    atomic_write_text(out / METRICS, "".join(json.dumps(m) + "\n" for m in history))


def write_config(out: Path, config: dict[str, Any]) -> None:
    atomic_write_text(out / CONFIG, yaml.safe_dump(config, sort_keys=False))


def read_config(out: Path) -> dict[str, Any]:
    return yamlbound.load(read_regular(out / CONFIG))


def write_result(out: Path, result: dict[str, Any]) -> None:
    atomic_write_json(out / RESULT, result)


def read_result(out: Path) -> dict[str, Any] | None:
    return read_result_file(out / RESULT)


def read_result_file(path: str | Path) -> dict[str, Any] | None:
    """A result.json's verdict, or None (absent, not a regular file, or damaged: readers name it)."""
    try:
        data = json.loads(read_regular(path))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "status" in data else None


def failure(trial_id: str, kind: str, error: str, params: int | None = None) -> dict[str, Any]:
    """The result.json of a trial that did not finish: written by the trainer (a crash, with its
    traceback) or by status/submit from the scheduler (timeout, cancelled, ...)."""
    return {"status": "failed", "trial_id": trial_id, "params": params, "epochs_completed": None,
            "test_acc": None, "best_val_acc": None, "best_test_acc": None, "wall_seconds": None,
            "images_per_second": None, "failure_kind": kind, "error": error}
