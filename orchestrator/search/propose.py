"""Proposers: which trials a sweep runs. ``first()`` is what a submit starts with; ``more()`` is
asked as results arrive and may propose new trials while the sweep runs (a search). Whatever is
proposed is recorded in the sweep dir before it is launched (``record_proposals``: append-only,
under the sweep lock, ids by the one trial-id rule), so every reader sees proposed trials exactly as
planned ones.

The fixed expansion (grid / vary / trials, budget applied) is the first policy: it proposes every
trial at once and nothing later."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, Protocol

# A policy knows trials only as the sweep language makes them (``orchestrator.sweep.trial.Trial``:
# an id, a config, counts) and the sweep dir only as somewhere to record proposals: both are handed
# in, so search imports neither and sits below them.
Trial = Any


class Recorder(Protocol):
    def propose(self, trials: list[Trial], by: str) -> list[Trial]: ...


class Proposer(ABC):
    name: str

    @abstractmethod
    def first(self) -> list[Trial]:
        """The trials to plan and start with (kept and dropped, as ``plan`` shows them)."""

    def more(self, results: Mapping[str, Mapping[str, Any]]) -> list[Trial]:
        """New trials, given the results so far (trial id -> result.json); none by default."""
        return []

    def later(self, results: Mapping[str, Mapping[str, Any]]) -> None:
        """Final results of trials it was told about as paused (stopped at a rung) that went on
        (promoted) and ended; nothing by default."""
        return None

    def done(self) -> bool:
        """Whether it will propose nothing more (a fixed expansion: from the start)."""
        return True

    def in_flight(self) -> list[str]:
        """Ids of proposed trials whose results it waits for."""
        return []

    def proposed(self) -> list[str]:
        """Ids of every trial it has proposed so far (a fixed expansion: every kept one)."""
        return [t.trial_id for t in self.first() if t.kept]

    def summary(self) -> str:
        """One line for status and submit: what it proposed and trained."""
        return ""


class FixedExpansion(Proposer):
    """Every trial of the spec's grid / vary / trials, counted and dropped or filled to the budget
    before anything runs: ``expansion`` is the sweep language's (``orchestrator.sweep.expand``,
    handed in by ``orchestrator/sweep/proposers.py: proposer_for``)."""

    name = "fixed"

    def __init__(self, expansion: Callable[[], list[Trial]]) -> None:
        self.expansion = expansion

    def first(self) -> list[Trial]:
        return self.expansion()


# name -> proposer class; the searches (random, TPE, NSGA-II: sampled.py) are one class, named per algorithm
PROPOSERS: dict[str, type[Proposer]] = {FixedExpansion.name: FixedExpansion}


def record_proposals(sweep: Recorder, proposer: Proposer, trials: list[Trial]) -> list[Trial]:
    """Append ``trials`` proposed while the sweep runs to its manifest, marked with the proposer's
    name; returns those that were new (an id already there is not proposed twice). Callers hold
    the sweep lock."""
    return sweep.propose(trials, proposer.name)
