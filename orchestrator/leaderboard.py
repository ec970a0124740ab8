"""``orchestrate leaderboard``: rank finished trials from the sweep dirs' files alone (offline, on
a login node, while trials still run, for any backend), aggregate seeds, mark the accuracy-vs-
params Pareto front, and account for every trial that is not ranked."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from model.checks import ConfigError
from orchestrator.config import get_dotted
from orchestrator.sweepdir import SweepDir, warn_corrupt
from orchestrator.trialfiles import last_metrics, read_metrics, read_result_file

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

    @property
    def seeds(self) -> bool:
        """Some row aggregates several seeds (an n column is worth showing)."""
        if self._seeds is None:
            self._seeds = any(len(e.trial_ids) > 1 for e in self.entries)
        return self._seeds

    @property
    def targets(self) -> bool:
        return any(e.target for e in self.entries[:1])


def _budget(sweep: SweepDir) -> tuple[int | None, tuple[str, ...] | None]:
    """The spec's budget.max_params and budget.fill key (its value differs per trial: a column)."""
    try:
        budget = (yaml.safe_load((sweep.path / "spec.yaml").read_text()) or {}).get("budget") or {}
        fill = budget.get("fill")
        return budget.get("max_params"), tuple(fill.split(".")) if isinstance(fill, str) else None
    except FileNotFoundError:
        return None, None
    except (OSError, yaml.YAMLError, AttributeError) as err:
        warn_corrupt(sweep.path / "spec.yaml", type(err).__name__)
        return None, None


def _reason(result: dict[str, Any]) -> str:
    from orchestrator.state import error_line

    return error_line(result.get("error")) or result.get("failure_kind") or result.get("status", "?")


def collect(sweeps: list[SweepDir], metric: str | None = None, per_seed: bool = False) -> Board:
    """Every kept trial of every sweep: ranked entries, and the rest counted by why not."""
    from orchestrator.render import varying_keys
    from orchestrator.status import manifest_trials

    if metric is not None and metric not in METRICS:
        raise ConfigError("--metric", f"{metric!r} is not a result.json metric; allowed: {', '.join(METRICS)}")
    done: list[tuple[str, Any, dict[str, Any]]] = []
    board = Board(metric or "best_val_acc", "", [], [], [s.name for s in sweeps], None, per_seed=per_seed)
    keys: dict[str, None] = {}
    budgets = set()
    for sweep in sweeps:
        trials = [t for t in manifest_trials(sweep) if t.kept]
        budget, fill = _budget(sweep)
        budgets.add(budget)
        keys.update(dict.fromkeys(k for k in (varying_keys(trials, fill) if len(trials) > 1 else [])
                                  if per_seed or k != SEED))
        submitted: set[str] | None = None  # read only if some trial has no files yet
        base = os.path.join(sweep.path, "trials")
        for t in trials:
            d = os.path.join(base, t.trial_id)  # plain strings: 10,000 pathlib joins cost a tenth of a second
            r = read_result_file(os.path.join(d, "result.json"))
            if r is None and os.path.isfile(os.path.join(d, "result.json")):
                r = {"status": "failed", "failure_kind": "corrupt",
                     "error": f"{os.path.join(d, 'result.json')} is corrupt (not a trial result)"}
            label = f"{sweep.name}/{t.trial_id}" if len(sweeps) > 1 else t.trial_id
            if r is not None and r.get("status") in RANKED:
                done.append((sweep.name, t, r))
            elif r is not None:
                board.failed.append({"sweep": sweep.name, "trial_id": t.trial_id, "status": r.get("failure_kind")
                                     or r.get("status"), "reason": _reason(r)})
            elif os.path.isfile(os.path.join(d, "metrics.jsonl")) or os.path.isfile(os.path.join(d, ".started")):
                last = last_metrics(Path(d)) or {}
                board.running.append({"sweep": sweep.name, "trial_id": t.trial_id, "epoch": last.get("epoch", 0),
                                      "epochs": t.config["train"]["epochs"]})
            elif t.trial_id in (submitted := submitted if submitted is not None else
                                {x.trial_id for x in sweep.submissions()}):
                board.queued.append(label)
            else:
                board.missing.append(label)
    board.budget = max((int(b) for b in budgets if b), default=None)
    board.keys = list(keys)
    if metric is None:  # the default: validation accuracy, or test accuracy where nothing was held out
        if done and any(r.get("best_val_acc") is None for _, _, r in done):
            board.metric = "test_acc"
            board.metric_note = ("ranked by test_acc (last epoch): some trials hold out no validation split "
                                 "(data.val_size 0), so there is no best_val_acc to rank by")
        else:
            board.metric_note = "ranked by best_val_acc (best validation accuracy over the epochs)"
    else:
        board.metric_note = f"ranked by {metric}"
    board.entries = _group(done, board, per_seed)
    rank(board)
    _estimates(board)
    return board


def _estimates(board: Board) -> None:
    """Estimated seconds per epoch from the stored calibration (if any), beside the measured ones:
    how good the cost model was, and when to recalibrate."""
    from orchestrator.cost import epoch_seconds, find, uses_gpu

    if not board.entries:
        return
    try:
        cal = find("cuda" if uses_gpu(board.entries[0].config) else "cpu")
    except (ConfigError, OSError, ValueError):
        cal = None
    if cal is None:
        return
    board.calibration = cal["name"]
    for e in board.entries:
        e.est_epoch = epoch_seconds(cal, e.config)


def _group(done: list[tuple[str, Any, dict[str, Any]]], board: Board, per_seed: bool) -> list[Entry]:
    """Trials that differ only in train.seed (a spec's ``repeat``) become one entry."""
    groups: dict[str, Entry] = {}
    for sweep, t, r in done:
        value = r.get(board.metric)
        if value is None:
            board.failed.append({"sweep": sweep, "trial_id": t.trial_id, "status": "unranked",
                                 "reason": f"its result has no {board.metric}"})
            continue
        # Within a sweep a trial's config is the base plus its overrides (and the budget fill,
        # a function of them): the overrides without the seed name its config.
        key = t.trial_id if per_seed else sweep + "\0" + json.dumps(_no_seed(t.overrides), sort_keys=True, default=str)
        e = groups.get(key)
        if e is None:
            varying = {k: get_dotted(t.config, tuple(k.split("."))) for k in board.keys}
            e = groups[key] = Entry(sweep, [], t.config, varying, t.params, [], [], [], [], [])
        e.trial_ids.append(t.trial_id)
        e.values.append(float(value))
        e.test_accs.append(r.get("test_acc"))
        e.epochs.append(r.get("epochs_completed") or 0)
        e.walls.append(r.get("wall_seconds") or 0.0)
        e.statuses.append(r["status"])
    return list(groups.values())


def _no_seed(overrides: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in overrides.items() if k != SEED}
    if isinstance(out.get("train"), dict) and "seed" in out["train"]:
        out["train"] = {k: v for k, v in out["train"].items() if k != "seed"}
    return out


def rank(board: Board) -> None:
    """Order by the metric (mean over seeds; ties: fewer params first, then id) and mark the
    Pareto front: no other entry has at most its params and at least its metric, one strictly."""
    low = lower_is_better(board.metric)
    sign = 1.0 if low else -1.0
    board.entries.sort(key=lambda e: (sign * e.metric, e.params, e.trial_ids[0]))
    for i, e in enumerate(board.entries, 1):
        e.rank = i
    best_so_far = math.inf
    for e in sorted(board.entries, key=lambda e: (e.params, sign * e.metric)):
        score = sign * e.metric
        e.pareto = score < best_so_far
        best_so_far = min(best_so_far, score)


def reach_target(board: Board, sweeps: dict[str, SweepDir], target: float) -> None:
    """Epochs and minutes until the per-epoch metric first reached ``target`` (mean over the seeds
    that reached it; ``reached`` says how many of them did)."""
    key = epoch_key(board.metric)
    for e in board.entries:
        hits = []
        for tid in e.trial_ids:
            elapsed = 0.0
            for row in read_metrics(sweeps[e.sweep].trial_dir(tid)):
                elapsed += row.get("epoch_seconds") or 0.0
                v = row.get(key)
                if v is not None and (v <= target if lower_is_better(key) else v >= target):
                    hits.append((row["epoch"], elapsed / 60))
                    break
        e.target = {"metric": key, "target": target, "reached": len(hits), "of": len(e.trial_ids),
                    "epochs": mean([h[0] for h in hits]) if hits else None,
                    "minutes": mean([h[1] for h in hits]) if hits else None}


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
                "epoch_seconds": actual_epoch(e), "est_epoch_seconds": e.est_epoch})
    if e.target is not None:
        out["target"] = e.target
    return out
