"""Proposers: which trials a sweep runs. ``first()`` is what a submit starts with; ``more()`` is
asked as results arrive and may propose new trials while the sweep runs (a search). Whatever is
proposed is recorded in the sweep dir before it is launched (``record_proposals``: append-only,
under the sweep lock, ids by the one trial-id rule), so every reader sees proposed trials exactly as
planned ones.

The fixed expansion (grid / vary / trials, budget applied) is the first policy: it proposes every
trial at once and nothing later."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from orchestrator.store.sweepdir import SweepDir
from orchestrator.sweep.expand import Trial, expand
from orchestrator.sweep.size import MAX_TRIALS
from orchestrator.sweep.spec import SweepSpec


class Proposer(ABC):
    name: str

    @abstractmethod
    def first(self) -> list[Trial]:
        """The trials to plan and start with (kept and dropped, as ``plan`` shows them)."""

    def more(self, results: Mapping[str, Mapping[str, Any]]) -> list[Trial]:
        """New trials, given the results so far (trial id -> result.json); none by default."""
        return []


class FixedExpansion(Proposer):
    """Every trial of the spec's grid / vary / trials, counted and dropped or filled to the budget
    before anything runs (``orchestrator/sweep/expand.py``)."""

    name = "fixed"

    def __init__(self, spec: SweepSpec, max_trials: int | None = MAX_TRIALS) -> None:
        self.spec = spec
        self.max_trials = max_trials

    def first(self) -> list[Trial]:
        return expand(self.spec, self.max_trials)


# name -> proposer class. The next issue's searches (random, TPE, ...) are entries here.
PROPOSERS: dict[str, type[Proposer]] = {FixedExpansion.name: FixedExpansion}


def proposer_for(spec: SweepSpec, max_trials: int | None = MAX_TRIALS) -> Proposer:
    """The proposer a spec asks for (today every spec is a fixed expansion)."""
    return FixedExpansion(spec, max_trials)


def record_proposals(sweep: SweepDir, proposer: Proposer, trials: list[Trial]) -> list[Trial]:
    """Append ``trials`` proposed while the sweep runs to its manifest, marked with the proposer's
    name; returns those that were new (an id already there is not proposed twice). Callers hold
    the sweep lock."""
    return sweep.propose(trials, proposer.name)
