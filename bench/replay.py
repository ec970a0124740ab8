"""The tabular benchmark: searches replayed against a grid that was really trained.

``bench/table_grid.yaml`` was trained through orchestrate itself (the command is in
bench/data/README.md); ``make_table`` keeps each trial's id, overrides, counts and per-epoch
validation accuracy in ``bench/data/table_grid.jsonl``. ``replay`` then runs the product's own
search code (``proposer_for`` on the same space, Optuna's samplers, the budget construction) and
looks each proposal's result up in the table instead of training it."""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import yaml

from orchestrator.search.rungs import promotion, rungs
from orchestrator.store.sweepdir import SweepDir
from orchestrator.store.trialfiles import read_metrics
from orchestrator.sweep.proposers import proposer_for
from orchestrator.sweep.spec import load_spec

GRID = Path(__file__).parent / "table_grid.yaml"
TABLE = Path(__file__).parent / "data" / "table_grid.jsonl"


def make_table(sweep_dir: str, out: Path = TABLE) -> int:
    """One line per finished trial of the trained grid: id, overrides, params, MACs, val_acc per epoch."""
    sweep = SweepDir(Path(sweep_dir))
    rows = []
    for t in sweep.trials():
        curve = [m["val_acc"] for m in read_metrics(sweep.trial_dir(t["trial_id"]))]
        if curve:
            rows.append({"trial_id": t["trial_id"], "overrides": t["overrides"], "params": t["params"],
                         "macs": t["macs"], "val_acc": curve})
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def load_table(path: Path = TABLE) -> dict[str, dict[str, Any]]:
    return {r["trial_id"]: r for r in map(json.loads, path.read_text().splitlines())}


def grid_order(table: dict[str, dict[str, Any]]) -> list[str]:
    return list(table)  # trials.jsonl order: the grid as written


def replay(algorithm: str, seed: int, trials: int, table: dict[str, dict[str, Any]],
           objectives: list[dict[str, str]] | None = None) -> list[str]:
    """The trial ids the product's search trains, in order, when each result is the table's."""
    raw = yaml.safe_load(GRID.read_text())
    space = raw.pop("grid")
    raw["search"] = {**(raw.get("search") or {}), "algorithm": algorithm, "space": space, "trials": trials,
                     "parallel": 1, "seed": seed, **({"objectives": objectives} if objectives else {})}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(yaml.safe_dump(raw, sort_keys=False))
        f.flush()
        proposer = proposer_for(load_spec(f.name))
    order: list[str] = []
    batch = proposer.first()
    while batch:
        t = batch[0]
        if t.trial_id not in table:
            raise KeyError(f"proposal {t.trial_id} ({t.overrides}) is not in the table")
        order.append(t.trial_id)
        batch = proposer.more({t.trial_id: {"status": "completed", "val_acc": max(table[t.trial_id]["val_acc"])}})
    return order


def trials_to_target(order: list[str], table: dict[str, dict[str, Any]], within: float = 0.005) -> int | None:
    """How many trials until one is within ``within`` of the table's best (1-based), or None."""
    best = max(max(r["val_acc"]) for r in table.values())
    return next((i for i, tid in enumerate(order, 1) if max(table[tid]["val_acc"]) >= best - within), None)


def hypervolume(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by (params, acc) points, params minimized and acc maximized, up to ``ref``
    (params at most, acc at least)."""
    area, best = 0.0, ref[1]
    for p, a in sorted((p, a) for p, a in points if p <= ref[0] and a >= ref[1]):
        if a > best:  # params upward: each better accuracy adds a strip from its params to ref
            area += (ref[0] - p) * (a - best)
            best = a
    return area


def asha_epochs(table: dict[str, dict[str, Any]], grace: int, eta: float, order: list[str]) -> tuple[int, float]:
    """ASHA's promotions (the driver's own ``rungs.promotion``) over the table's curves, trials
    started in ``order`` one slot at a time: (epochs trained, best final val_acc among trials
    that reached the end)."""
    max_t = min(len(r["val_acc"]) for r in table.values())
    levels = rungs(grace, eta, max_t)
    reached: dict[int, dict[str, float]] = {}
    waiting: dict[str, int] = {}
    trained: dict[str, int] = {}
    queue = list(order)
    while True:
        step = promotion(reached, waiting, levels, eta, True)
        if step is not None:
            tid, to = step
            waiting.pop(tid)
        elif queue:
            tid, to = queue.pop(0), levels[0]
        else:
            break
        curve = table[tid]["val_acc"]
        for e in range(trained.get(tid, 0) + 1, to + 1):
            reached.setdefault(e, {})[tid] = curve[e - 1]
        trained[tid] = to
        if to < max_t:
            waiting[tid] = to
    finished = [max(table[t]["val_acc"][:max_t]) for t, e in trained.items() if e == max_t]
    return sum(trained.values()), max(finished)


def median(values: list[int | None], never: int) -> float:
    """The median, a search that never got there counted as ``never`` (more than it ran)."""
    return statistics.median(never if v is None else v for v in values)
