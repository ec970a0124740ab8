"""The backend contract (Hydra-launcher style): ``launch`` trials, report their jobs' ``states``.

``check`` (resources against the real cluster), ``preview`` (what would be submitted), ``wait``
(foreground backends run the trials there), ``cancel`` and ``log_paths`` complete it. Trial
states use one vocabulary for every backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from configcheck import ConfigError
from orchestrator.plugins import described
from orchestrator.store.sweepdir import Submission, SweepDir
from orchestrator.sweep.expand import Trial


@dataclass(frozen=True)
class JobState:
    state: str  # pending running completed stopped_early failed timeout preempted cancelled out_of_memory node_fail interrupted
    active: bool  # queued or running: will still produce a result without a resubmit
    raw: str = ""  # the scheduler's own word, e.g. "CANCELLED by 0"
    restarts: int = 0
    earlier: tuple[str, ...] = ()  # how the job's earlier runs ended (node_fail, preempted, ...), oldest first


class Backend(ABC):
    name: str
    # set by ``states`` when the scheduler did not answer (its own message): a job it could not
    # report is then unknown, not missing
    trouble: str = ""
    # What the shared code asks a backend instead of comparing its name:
    runs_schedulers = False  # runs a search scheduler that stops trials as they report (ASHA)
    picks_time_limits = False  # submit gives each job a time limit from the cost estimate when none is set
    preview_label = "preview"  # what a dry run calls the backend's preview

    def max_time(self, partition: str | None) -> int | None:
        """The longest time limit (minutes) a job may ask for there, or None (no limit known)."""
        return None

    def foreground(self) -> bool:
        """Whether the launched trials run in this process (``wait``) rather than in a queue."""
        return False

    def cluster_job(self, submission: Submission) -> str | None:
        """The scheduler job that hosts this submission's trials, when it is not the trial's own
        job (a Ray cluster inside a SLURM job), else None."""
        return None

    @classmethod
    def options(cls, flags: dict[str, Any], given: dict[str, Any], as_json: bool = False) -> dict[str, Any]:
        """This backend's constructor options from submit's flags: ``given`` holds the backends'
        own flags that are not resource keys (its ``Options`` fields; None when not given; one of
        another backend's is refused), ``flags`` the resource flags (a backend may take some of
        them for itself); ``as_json``: machine output was asked for."""
        mine = {o.name for o in described(cls.name) if not o.resource}
        wrong = [k for k, v in given.items() if v is not None and k not in mine]
        if wrong:
            raise ConfigError("/".join("--" + k.replace("_", "-") for k in wrong),
                              f"not an option of --backend {cls.name} (another backend's; see orchestrate submit --help)")
        return {k: v for k, v in given.items() if k in mine}

    def summary(self, submitted: list[Submission], cluster_job: str | None) -> str:
        """One line saying what ``launch`` did, for people; ``{where}`` (the sweep dir as shown)
        and ``{limits}`` (the jobs' time limits in words) are filled in by the CLI."""
        arrays = sorted({s.array_id or s.job_id for s in submitted})
        return f"submitted {len(submitted)} trials as job array(s) {', '.join(arrays)}; {{limits}}; sweep dir {{where}}"

    @staticmethod
    def restarts(result: dict[str, Any]) -> int:
        """How often the scheduler restarted a finished trial's job, from its result.json."""
        return 0

    @staticmethod
    def noise(line: str) -> bool:
        """A line of a job's stderr that is the launcher's own noise, never the trial's last word."""
        return False

    @abstractmethod
    def launch(self, sweep: SweepDir, trials: list[Trial], resources: dict[str, Any]) -> list[Submission]:
        """Start (or queue) every trial; record each Submission in the sweep dir as soon as it
        exists (``sweep.record``), so a crash later cannot lose it; return them. Called under the
        sweep lock."""

    @abstractmethod
    def states(self, submissions: list[Submission]) -> dict[str, JobState]:
        """job id -> state, for the jobs the backend still knows."""

    def available(self) -> bool:
        """Whether this machine can ask the backend about its jobs (a scheduler client is here)."""
        return True

    def follow(self, more: Any) -> bool:
        """A search's feed for the next ``wait``: ``more(trial_id, result)`` is called as each
        launched trial ends and returns the trials to start next (already recorded as proposals);
        the backend records and starts them in the same run. Returns whether it takes the feed
        (else the caller proposes batch by batch between waits)."""
        return False

    detaches = False  # runs a function unattended in a job of its own (a search's driver): ``detach``

    def detach(self, sweep: SweepDir, run: Any, args: tuple[Any, ...], driver: dict[str, Any],
               after: tuple[str, ...] = (), name: str = "search") -> tuple[str, Any, str]:
        """Queue ``run(*args)`` (a module-level function) to run without this process, with the
        small resources ``driver`` names (``search.driver``), once the jobs ``after`` have ended
        (however they ended); (job id, its folder, the resources in words). Only where ``detaches``."""
        raise ConfigError("--backend", f"{self.name} cannot run a search unattended")

    def wait(self, sweep: SweepDir, submissions: list[Submission]) -> None:
        """Foreground backends run the launched trials here, after the sweep lock is released."""
        return None

    def check(self, resources: dict[str, Any]) -> None:
        """Raise ConfigError for resources this backend cannot satisfy (before anything is submitted)."""
        return None

    def reconcile(self, sweep: SweepDir, read_only: bool = False) -> list[Submission]:
        """Record what a killed submit handed the scheduler but did not record (its intents);
        called under the sweep lock before deciding. Returns the submissions found. (A backend
        that records before it starts anything has none of its own; others' are left to them.)"""
        sweep.intents()  # names a damaged one
        return []

    def preview(self, sweep: SweepDir, trials: list[Trial], resources: dict[str, Any]) -> str:
        return ""

    def notes(self, resources: dict[str, Any]) -> list[str]:
        """What a user should know about this request before it runs (e.g. a GPU partition asked
        for no GPU): lines submit prints, dry run or not."""
        return []

    def cancel(self, submissions: list[Submission]) -> None:
        raise NotImplementedError(f"backend {self.name} cannot cancel")

    def log_paths(self, submission: Submission) -> tuple[str, str]:
        raise NotImplementedError(f"backend {self.name} has no log files")


class BackendStopped(Exception):
    """The scheduler died under a running sweep (Ray's raylet killed, the machine out of memory):
    the message says what happened, where its log is and the command that resumes the sweep; the
    trials without a verdict keep their checkpoints."""
