"""The leaderboard's data: its rows (``Entry``: a trial, or the seeds of one config) and the
``Board`` around them, with the numbers every output format shares (``entry_json``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

RANKED = ("completed", "stopped_early")
# result.json fields a board can rank by; losses and times rank low-is-better
METRICS = ("best_val_acc", "val_acc", "best_test_acc", "test_acc", "test_loss", "wall_seconds", "images_per_second")
SEED = "train.seed"


def lower_is_better(metric: str) -> bool:
    return metric.endswith("loss") or metric.endswith("seconds")


def epoch_key(metric: str) -> str:
    """The metrics.jsonl column behind a result.json metric (best_val_acc -> val_acc)."""
    return metric.removeprefix("best_")


@dataclass
class Entry:
    """One board row: a trial, or the seeds of one config (mean, sample std, n)."""

    sweep: str
    trial_ids: list[str]
    config: dict[str, Any]
    varying: dict[str, Any]
    params: int
    values: list[float]  # the metric, one per seed
    test_accs: list[float]
    epochs: list[int]
    walls: list[float]
    statuses: list[str]
    rank: int = 0
    pareto: bool = False
    target: dict[str, Any] | None = None
    est_epoch: float | None = None  # the calibration's seconds per epoch, to hold against the actual
    earlier: bool = False  # from an earlier version of the sweep's spec (still in its dir)
    note: str = ""  # why this row is not a mean over its config's seeds
    stopped: list[str | None] = field(default_factory=list)  # stopped_by, per seed
    wandb: list[dict[str, Any]] = field(default_factory=list)  # per seed: run_id, project, url

    @property
    def metric(self) -> float:
        return mean(self.values)

    @property
    def status(self) -> str:
        return "+".join(sorted(set(self.statuses)))


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def std(xs: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


@dataclass
class Board:
    metric: str
    metric_note: str
    keys: list[str]
    entries: list[Entry]
    sweeps: list[str]
    budget: int | None
    running: list[dict[str, Any]] = field(default_factory=list)  # {sweep, trial_id, epoch, epochs}
    failed: list[dict[str, Any]] = field(default_factory=list)  # {sweep, trial_id, status, reason}
    queued: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    _seeds: bool | None = field(default=None, repr=False)
    calibration: str | None = None  # the cost model the estimates come from
    per_seed: bool = False
    earlier: int = 0  # trials from earlier versions of a spec, ranked and marked

    @property
    def seeds(self) -> bool:
        """Some row aggregates several seeds (an n column is worth showing)."""
        if self._seeds is None:
            self._seeds = any(len(e.trial_ids) > 1 for e in self.entries)
        return self._seeds

    @property
    def targets(self) -> bool:
        return any(e.target for e in self.entries[:1])


def actual_epoch(e: Entry) -> float | None:
    """Measured seconds per epoch (wall time / epochs, mean over seeds)."""
    per = [w / n for w, n in zip(e.walls, e.epochs) if n]
    return mean(per) if per else None


def entry_json(board: Board, e: Entry) -> dict[str, Any]:
    out: dict[str, Any] = {"rank": e.rank, "sweep": e.sweep}
    if len(e.trial_ids) == 1:
        out["trial_id"] = e.trial_ids[0]
    else:
        out["trial_ids"] = e.trial_ids
    out.update({"varying": e.varying, "params": e.params, "metric": board.metric, board.metric: e.metric,
                f"{board.metric}_std": std(e.values), "n": len(e.values),
                "test_acc": mean([x for x in e.test_accs if x is not None]) if any(x is not None for x in e.test_accs)
                else None, "test_acc_std": std([x for x in e.test_accs if x is not None]),
                "epochs": mean(e.epochs), "wall_seconds": mean(e.walls), "pareto": e.pareto, "status": e.status,
                "epoch_seconds": actual_epoch(e), "est_epoch_seconds": e.est_epoch, "in_spec": not e.earlier})
    if e.note:
        out["note"] = e.note
    if e.wandb:
        out["wandb"] = e.wandb
    if e.target is not None:
        out["target"] = e.target
    return out
