"""Stopping rules: how a sweep ends trials early as they report, by name (``search.scheduler``).

The one place a rule is named. A rule validates its own ``search:`` keys and builds the Ray Tune
scheduler that applies it (the scheduler is the library's); a backend whose trials report to one
scheduler as they train (``runs_schedulers``) runs it. Imports nothing of the orchestrator: the
spec validates its ``search:`` section against this registry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from configcheck import integer, number
from orchestrator.search.rungs import rungs


@dataclass(frozen=True)
class StoppingRule:
    """No early stopping: every trial trains all its epochs (Tune's FIFO scheduler)."""

    name: ClassVar[str] = "none"
    label: ClassVar[str] = "no early stopping"  # how the live view names it
    stops: ClassVar[bool] = False  # whether it ends trials early (needs a backend that runs schedulers)

    @staticmethod
    def keys(s: Mapping[str, Any]) -> dict[str, Any]:
        """This rule's own ``search:`` keys, validated, defaults filled."""
        return {}

    def pauses(self, search: Mapping[str, Any], epochs: int) -> list[int] | None:
        """Where trials pause for promotion when no Tune scheduler runs them (a driver job on
        SLURM promotes them: ``rungs.py``): the rung epochs, the last one the end; None when the
        rule never pauses a trial."""
        return None

    def tune_scheduler(self, search: Mapping[str, Any], metric: str, mode: str, epochs: int) -> Any:
        from ray.tune.schedulers import FIFOScheduler  # heavy: only where a Tune run starts

        return FIFOScheduler()


@dataclass(frozen=True)
class Asha(StoppingRule):
    """Asynchronous successive halving (Li et al. 2020) over epochs: at each rung (``grace_period``
    x ``reduction_factor``^k epochs) a trial goes on only when its metric is in the top
    1/``reduction_factor`` of those that reached the rung."""

    name: ClassVar[str] = "asha"
    label: ClassVar[str] = "ASHA"
    stops: ClassVar[bool] = True

    @staticmethod
    def keys(s: Mapping[str, Any]) -> dict[str, Any]:
        return {"grace_period": integer(s.get("grace_period", 1), "search.grace_period", 1),
                "reduction_factor": number(s.get("reduction_factor", 4), "search.reduction_factor", 1.01),
                "max_t": None if s.get("max_t") is None else integer(s["max_t"], "search.max_t", 1)}

    def tune_scheduler(self, search: Mapping[str, Any], metric: str, mode: str, epochs: int) -> Any:
        from ray.tune.schedulers import ASHAScheduler  # heavy: only where a Tune run starts

        # time_attr "epoch": a trial resumed at epoch 7 joins the rungs at epoch 7, not at 1
        return ASHAScheduler(time_attr="epoch", metric=metric, mode=mode, grace_period=search["grace_period"],
                             reduction_factor=search["reduction_factor"], max_t=search["max_t"] or epochs)

    def pauses(self, search: Mapping[str, Any], epochs: int) -> list[int] | None:
        return rungs(search["grace_period"], search["reduction_factor"], min(search["max_t"] or epochs, epochs))


# name -> rule. A new rule: one class here (its keys, its Tune scheduler) and one entry.
RULES: dict[str, StoppingRule] = {r.name: r for r in (StoppingRule(), Asha())}


def rule_keys(s: Mapping[str, Any]) -> dict[str, Any]:
    """Every rule's keys, validated whichever rule is chosen (so a spec's ``search:`` reads the
    same when its scheduler changes)."""
    out: dict[str, Any] = {}
    for r in RULES.values():
        out.update(r.keys(s))
    return out


def rule_key_names() -> tuple[str, ...]:
    return tuple(k for r in RULES.values() for k in r.keys({}))


def rule(search: Mapping[str, Any] | None) -> StoppingRule:
    """The rule a resolved ``search:`` section names (none when absent)."""
    return RULES[(search or {}).get("scheduler") or "none"]
