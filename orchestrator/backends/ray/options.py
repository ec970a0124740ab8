"""Ray's own options (``submit --address/--max-concurrent``) and what it reserves per trial
(shared by the backend and the Tune run). Imports only the options vocabulary: the CLI reads it
without loading Ray."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from orchestrator.plugins import option


@dataclass(frozen=True)
class Options:
    address: str | None = option(metavar="auto|HOST:PORT", help="attach to a running Ray cluster (its token in "
                                 "RAY_AUTH_TOKEN[_PATH]) instead of starting one.")
    max_concurrent: int | None = option(metavar="K", kind=int, help="at most K trials at once.")

    client: ClassVar[str | None] = None  # needs no scheduler: starts a private Ray instance
    fallback_why: ClassVar[str] = "no SLURM here (sbatch not on PATH), so a private Ray instance on this machine"

    @staticmethod
    def validate(r: dict[str, Any]) -> None:
        """Ray takes only the generic resource keys (checked by the sweep language)."""


def per_trial(resources: dict[str, Any]) -> dict[str, float]:
    """What Tune reserves for one trial: ``cpus`` and ``gpus`` per process, times ``workers``
    (its DDP processes, all on one node)."""
    workers = resources.get("workers") or 1
    need = {"CPU": float(resources.get("cpus") or 1) * workers}
    if resources.get("gpus"):
        need["GPU"] = float(resources["gpus"]) * workers
    return need
