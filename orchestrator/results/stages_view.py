"""A study's stages for the readers: one stage's leaderboard (``leaderboard --stage``) with a
column tracing each config to its results in the earlier stages, and the lines ``status`` and
``leaderboard`` print per stage (its trials by state, the selection made, the stage in progress)
and for each pair of stages, whether the ranking held."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from configcheck import ConfigError
from orchestrator.plugins import reader
from orchestrator.results.board import Board
from orchestrator.results.leaderboard import collect
from orchestrator.results.plots import _plt, _save
from orchestrator.results.ranking import held, held_line
from orchestrator.store.stages import stage_records, step_submission
from orchestrator.store.sweepdir import SweepDir
from train.files import read_result_file

TRACE = "earlier stages"  # the leaderboard column that traces a config back


def pick_stage(sweep: SweepDir, name: str | None) -> dict[str, Any] | None:
    """The stage record ``name`` names (an index or a name); default: the last stage with a result."""
    records = stage_records(sweep)
    if not records:
        if name is not None:
            raise ConfigError("--stage", f"{sweep.path} is not a study (no stage has started there)")
        return None
    if name is not None:
        for rec in records:
            if name in (rec["name"], str(rec["index"])):
                return rec
        raise ConfigError("--stage", f"{name!r}: the stages started in {sweep.name} are "
                          + ", ".join(str(r["name"]) for r in records))
    with_results = [r for r in records if any(sweep.result(m["trial_id"]) for m in r["trials"])]
    return (with_results or records)[-1]


def _metrics(rec: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """trial id -> (its config's metric in that stage, the metric's name), from the stage's selection."""
    sel = rec.get("selection") or {}
    out = {}
    candidates = sel.get("candidates")
    for c in candidates if isinstance(candidates, list) else []:
        if isinstance(c, dict) and isinstance(c.get("metric"), (int, float)) and isinstance(c.get("trial_ids"), list):
            for tid in c["trial_ids"]:
                out[str(tid)] = (float(c["metric"]), str(sel.get("metric")))
    return out


def trace(records: list[dict[str, Any]], index: int, trial_ids: list[str]) -> str:
    """``screen 0.4000 > longer 0.8600``: where a config of stage ``index`` came from."""
    parts = []
    ids = list(trial_ids)
    by_index = {r["index"]: r for r in records}
    for k in range(index, 0, -1):
        if k not in by_index or k - 1 not in by_index:
            break
        origin = {m["trial_id"]: m.get("from") or [] for m in by_index[k]["trials"]}
        ids = list(dict.fromkeys(src for tid in ids for src in origin.get(tid, [])))
        metrics = _metrics(by_index[k - 1])
        hit = next((metrics[t] for t in ids if t in metrics), None)
        if hit is None:
            break
        parts.append(f"{by_index[k - 1]['name']} {hit[0]:.4f}")
    return " > ".join(reversed(parts)) or "-"


def stage_board(sweep: SweepDir, stage: str | None, metric: str | None, per_seed: bool) -> tuple[Board, str]:
    """The leaderboard of one stage of a study (and the line naming it)."""
    rec = pick_stage(sweep, stage)
    if rec is None:
        return collect([sweep], metric, per_seed), ""
    records = stage_records(sweep)
    board = collect([sweep], metric, per_seed, only={m["trial_id"] for m in rec["trials"]})
    if rec["index"] > 0:
        board.keys = [*board.keys, TRACE]
        for e in board.entries:
            e.varying[TRACE] = trace(records, rec["index"], e.trial_ids)
    names = " -> ".join(str(r["name"]) for r in records)
    return board, f"stage {rec['name']} of study {sweep.name} ({names}); --stage NAME for another"


def stage_lines(sweep: SweepDir, held_rows: list[dict[str, Any]] | None = None) -> list[str]:
    """Per stage: its trials by state, then the selection it gave the next stage (or that it is in
    progress); then whether each stage's ranking held in the next (``held_rows``: ``held(sweep)``
    when the caller has it already)."""
    lines = []
    records = stage_records(sweep)
    for rec in records:
        ids = [m["trial_id"] for m in rec["trials"]]
        states = Counter()
        for tid in ids:
            r = read_result_file(sweep.trial_dir(tid) / "result.json")
            states[(r or {}).get("status") or "not ended"] += 1
        counts = ", ".join(f"{n} {s}" for s, n in states.most_common())
        rule = f" ({rec['rule']} of the stage before)" if rec.get("rule") else ""
        line = f"stage {rec['index']} {rec['name']}: {len(ids)} trials{rule}: {counts}"
        sel = rec.get("selection")
        if sel:
            picks = ", ".join(f"{s['trial_ids'][0]} ({s['metric']:.4f})" for s in sel.get("selected") or [])
            line += f"; selected {sel.get('words')} by {sel.get('metric')}: {picks or 'nothing'}"
            if sel.get("note"):
                line += f" [{sel['note']}]"
        elif rec is not records[-1] or states.get("not ended"):
            line += "; in progress" if states.get("not ended") else "; selection pending"
        lines.append(line)
    lines += [held_line(row) for row in (held(sweep) if held_rows is None else held_rows)]
    step = step_line(sweep) if records else ""
    return lines + ([step] if step else [])


def step_line(sweep: SweepDir) -> str:
    """``step job 12 pending`` (or how it ended) for a study run on a scheduler; "" otherwise."""
    sub = step_submission(sweep)
    if sub is None:
        return ""
    backend = reader(sub.backend)
    state = backend.states([sub]).get(sub.job_id) if backend is not None else None
    return f"the study's step job {sub.job_id} {state.state if state else 'unknown'}"


def ranking_plot(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """One panel per pair of stages: each carried config's metric in the stage that selected it
    against its best in the next, with Kendall's tau and Spearman's rho."""
    plt = _plt()
    panels = [r for r in rows if r["pairs"]] or rows[:1]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5 * max(1, len(panels)), 4.2), squeeze=False)
    for ax, row in zip(axes[0], panels):
        xs = [p["from"] for p in row["pairs"]]
        ys = [p["to"] for p in row["pairs"]]
        ax.scatter(xs, ys, color="tab:blue")
        for p in row["pairs"]:
            ax.annotate(p["trial_id"][:6], (p["from"], p["to"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        corr = (f"tau {row['tau']:.2f}, rho {row['rho']:.2f}, n={row['n']}" if "tau" in row else f"n={row['n']}")
        ax.set_title(f"{row['from']} -> {row['to']} ({corr})", fontsize=10)
        ax.set_xlabel(f"{row['from']}: {row['metric_from']}")
        ax.set_ylabel(f"{row['to']}: {row['metric_to']}")
        ax.grid(alpha=0.3)
    return _save(plt, fig, path)
