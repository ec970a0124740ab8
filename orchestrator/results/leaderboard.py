"""``orchestrate leaderboard``: rank finished trials from the sweep dirs' files alone (offline, on
a login node, while trials still run, for any backend), aggregate seeds, mark the accuracy-vs-
params Pareto front, and account for every trial that is not ranked."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import yaml

from configcheck import ConfigError
from orchestrator.backends.states import error_line
from orchestrator.cost import epoch_seconds, find, uses_gpu
from orchestrator.results.board import METRICS, RANKED, SEED, Board, Entry, epoch_key, lower_is_better, mean
from orchestrator.store.manifest import manifest_trials
from orchestrator.store.sweepdir import SweepDir, warn_corrupt
from orchestrator.store.trialfiles import damage, last_metrics, read_metrics
from orchestrator.sweep.naming import varying_keys
from orchestrator.sweep.trialconfig import canonical, get_dotted
from orchestrator.tracking.sync import trial_runs
from train import yamlbound
from train.files import read_result_file
from train.safefs import read_regular


def _budget(sweep: SweepDir) -> tuple[int | None, tuple[str, ...] | None]:
    """The spec's budget.max_params and budget.fill key (its value differs per trial: a column)."""
    try:
        budget = (yamlbound.load(read_regular(sweep.path / "spec.yaml")) or {}).get("budget") or {}
        fill = budget.get("fill")
        return budget.get("max_params"), tuple(fill.split(".")) if isinstance(fill, str) else None
    except FileNotFoundError:
        return None, None
    except (OSError, yaml.YAMLError, AttributeError) as err:
        warn_corrupt(sweep.path / "spec.yaml", type(err).__name__)
        return None, None


def _reason(result: dict[str, Any]) -> str:
    return error_line(result.get("error")) or result.get("failure_kind") or result.get("status", "?")


def collect(sweeps: list[SweepDir], metric: str | None = None, per_seed: bool = False,
            only: set[str] | None = None) -> Board:
    """Every kept trial of every sweep (``only``: of these trial ids, e.g. one stage of a study):
    ranked entries, and the rest counted by why not."""
    if metric is not None and metric not in METRICS:
        raise ConfigError("--metric", f"{metric!r} is not a result.json metric; allowed: {', '.join(METRICS)}")
    done: list[tuple[str, Any, dict[str, Any]]] = []
    board = Board(metric or "best_val_acc", "", [], [], [s.name for s in sweeps], None, per_seed=per_seed)
    keys: dict[str, None] = {}
    budgets = set()
    for sweep in sweeps:
        base = os.path.join(sweep.path, "trials")
        # an edited spec's earlier trials stay ranked (marked) where they left a result; the
        # earlier ones without one are no longer asked for, so not counted as missing
        trials = [t for t in manifest_trials(sweep) if t.kept and (only is None or t.trial_id in only) and (
            only is not None or not t.earlier or os.path.isfile(os.path.join(base, t.trial_id, "result.json")))]
        board.earlier += sum(t.earlier for t in trials)
        budget, fill = _budget(sweep)
        budgets.add(budget)
        keys.update(dict.fromkeys(k for k in (varying_keys(trials, fill) if len(trials) > 1 else [])
                                  if per_seed or k != SEED))
        submitted: set[str] | None = None  # read only if some trial has no files yet
        for t in trials:
            d = os.path.join(base, t.trial_id)  # plain strings: 10,000 pathlib joins cost a tenth of a second
            r = read_result_file(os.path.join(d, "result.json"))
            if r is None and (why := damage(os.path.join(d, "result.json"))):
                r = {"status": "failed", "failure_kind": "corrupt", "error": why}
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
        # Within one version of a spec a trial's config is the base plus its overrides (and the
        # budget fill, a function of them): the overrides without the seed name its config.
        key = t.trial_id if per_seed else "\0".join((sweep, str(t.earlier and canonical(_no_seed_config(t.config))),
                                                     json.dumps(_no_seed(t.overrides), sort_keys=True, default=str)))
        e = groups.get(key)
        if e is None:
            varying = {k: get_dotted(t.config, tuple(k.split("."))) for k in board.keys}
            e = groups[key] = Entry(sweep, [], t.config, varying, t.params, [], [], [], [], [], earlier=t.earlier)
        e.trial_ids.append(t.trial_id)
        e.values.append(float(value))
        e.test_accs.append(r.get("test_acc"))
        e.epochs.append(r.get("epochs_completed") or 0)
        e.walls.append(r.get("wall_seconds") or 0.0)
        e.statuses.append(r["status"])
        e.stopped.append(r.get("stopped_by"))
    return [part for e in groups.values() for part in _same_length(e)]


def _same_length(e: Entry) -> list[Entry]:
    """Seeds that trained different lengths (ASHA stopped one at epoch 2 of 3) are not one mean:
    each becomes its own row, saying why."""
    if len(set(e.epochs)) <= 1:
        return [e]
    why = (f"not aggregated: its {len(e.trial_ids)} seeds ran different lengths "
           f"({', '.join(f'{n} epochs' + (f' ({s})' if s else '') for n, s in zip(e.epochs, e.stopped))})")
    return [Entry(e.sweep, [t], e.config, e.varying, e.params, [v], [a], [n], [w], [s], earlier=e.earlier, note=why,
                  stopped=[b]) for t, v, a, n, w, s, b in zip(e.trial_ids, e.values, e.test_accs, e.epochs, e.walls,
                                                               e.statuses, e.stopped)]


def _no_seed_config(config: dict[str, Any]) -> dict[str, Any]:
    return {**config, "train": {k: v for k, v in config["train"].items() if k != "seed"}}


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


def attach_wandb(board: Board, sweeps: list[SweepDir]) -> None:
    """Each row's W&B runs (run id, project, URL once synced): for --format json and the wandb column."""
    by_name = {s.name: s for s in sweeps}
    for sweep in sweeps:
        mine = [e for e in board.entries if e.sweep == sweep.name]
        runs = trial_runs(by_name[sweep.name], [t for e in mine for t in e.trial_ids])
        for e in mine:
            e.wandb = [{k: runs[t][k] for k in ("run_id", "project", "entity", "url")} for t in e.trial_ids]
