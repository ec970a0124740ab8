"""What every test folder shares (imported as ``kit``: tests/ is on sys.path through its conftest):
the project root, the installed ``orchestrate`` command, and the one tiny trial config each test
adjusts with ``tiny(...)``, and ``status_now`` for loops that poll a sweep's state."""

from __future__ import annotations

import copy
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.cli.views import json_rows
from orchestrator.results.status import views

ROOT = Path(__file__).resolve().parent.parent
ORCH = str(Path(sys.executable).parent / "orchestrate")

# Synthetic data, a 2-layer ResNet with 8 channels: an epoch takes about a second on one core.
TINY: dict[str, Any] = {
    "model": {"layers": 2, "blocks": 1, "channels": 8},
    "data": {"name": "synthetic", "subset": 40, "test_subset": 10},
    "train": {"epochs": 2, "batch_size": 40, "optimizer": {"name": "sgd", "lr": 0.05}, "augment": ["flip"]},
}
UNSET = object()  # tiny(train={"augment": UNSET}): leave the key to the trainer's default


def tiny(**sections: dict[str, Any]) -> dict[str, Any]:
    """TINY with each section's keys replaced (mappings merged one level deep, UNSET removes a
    key), e.g. ``tiny(train={"epochs": 4}, resources={"cpus_per_task": 1})``."""
    out = copy.deepcopy(TINY)
    for name, changes in sections.items():
        section = out.setdefault(name, {})
        for key, value in changes.items():
            if value is UNSET:
                section.pop(key, None)
            elif isinstance(value, dict) and isinstance(section.get(key), dict):
                section[key] = {**section[key], **copy.deepcopy(value)}
            else:
                section[key] = copy.deepcopy(value)
    return out


def status_now(target: Path | str, runs_dir: Path | str) -> list[dict[str, Any]]:
    """What ``orchestrate status TARGET --runs-dir RUNS_DIR --json`` prints, read in this process.
    For loops that poll until a state is reached: an ``orchestrate`` process costs about 0.7
    CPU-seconds, which on the 2-core test machine the trials of the other lanes need (the suite is
    CPU-bound). A test still asserts its final states on the command's own output."""
    # (through JSON, so the rows are what the command prints: lists, not tuples)
    return json.loads(json.dumps(json_rows(views(str(target), str(runs_dir), ()))))


States = list[dict[str, Any]]


def wait_states(target: Path | str, runs_dir: Path | str, until: Callable[[States], bool],
                command: Callable[[], States], timeout: float, every: float = 1.0) -> States:
    """Poll with ``status_now`` until ``until(states)``; then return what ``command()`` (the
    test's ``orchestrate status --json``) prints, once that says so too."""
    deadline = time.time() + timeout
    while True:
        states = status_now(target, runs_dir)
        if until(states) and until(states := command()):
            return states
        assert time.time() < deadline, f"timed out; states: {states}"
        time.sleep(every)
