"""What the Ray backend reserves per trial (shared by the backend and the Tune run)."""

from __future__ import annotations

from typing import Any


def per_trial(resources: dict[str, Any]) -> dict[str, float]:
    """What Tune reserves for one trial: ``cpus`` and ``gpus`` per process, times ``workers``
    (its DDP processes, all on one node)."""
    workers = resources.get("workers") or 1
    need = {"CPU": float(resources.get("cpus") or 1) * workers}
    if resources.get("gpus"):
        need["GPU"] = float(resources["gpus"]) * workers
    return need
