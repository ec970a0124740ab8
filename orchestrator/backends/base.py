"""The backend contract (Hydra-launcher style): ``launch`` trials, report their jobs' ``states``.

``check`` (resources against the real cluster), ``preview`` (what would be submitted) and
``cancel`` complete it. Trial states use one vocabulary for every backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from orchestrator.expand import Trial
from orchestrator.sweepdir import Submission, SweepDir

STATES = ("pending", "running", "completed", "stopped_early", "failed", "timeout", "preempted", "cancelled",
          "out_of_memory", "node_fail")


@dataclass(frozen=True)
class JobState:
    state: str  # one of STATES
    active: bool  # queued or running: will still produce a result without a resubmit
    raw: str = ""  # the scheduler's own word, e.g. "CANCELLED by 0"
    restarts: int = 0


class Backend(ABC):
    name: str

    @abstractmethod
    def launch(self, sweep: SweepDir, trials: list[Trial], resources: dict[str, Any]) -> list[Submission]:
        """Start every trial (one array job where the scheduler has them); return one Submission each."""

    @abstractmethod
    def states(self, submissions: list[Submission]) -> dict[str, JobState]:
        """job id -> state, for the jobs the scheduler still knows."""

    def check(self, resources: dict[str, Any]) -> None:
        """Raise ConfigError for resources this cluster cannot satisfy (before anything is submitted)."""
        return None

    def preview(self, sweep: SweepDir, trials: list[Trial], resources: dict[str, Any]) -> str:
        return ""

    def cancel(self, submissions: list[Submission]) -> None:
        raise NotImplementedError(f"backend {self.name} cannot cancel")

    def log_paths(self, submission: Submission) -> tuple[str, str]:
        raise NotImplementedError(f"backend {self.name} has no log files")
