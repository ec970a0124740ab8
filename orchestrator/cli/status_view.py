"""``orchestrate status``'s table (one line per trial, fitted to the terminal) and the status a
foreground Ray run ends with."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from orchestrator.results.status import best_metric, poll, progress, search_line, views
from orchestrator.search_driver import driver_line
from orchestrator.sweep.naming import MAX_KEY_COLUMNS, label, short
from orchestrator.sweep.trialconfig import get_dotted

STATE_STYLE = {"completed": "green", "stopped_early": "green", "running": "cyan", "pending": "yellow",
               "missing": "dim", "failed": "red", "timeout": "red", "preempted": "magenta",
               "cancelled": "red", "out_of_memory": "red", "node_fail": "red", "interrupted": "magenta"}


def status_table(view: Any, states: Sequence[Any], width: int | None = None) -> Table:
    """One line per trial: which config (the keys that vary, params), its state, progress, best
    accuracy and, for a failure, one line saying why (the full text: orchestrate logs)."""

    counts = Counter(s.state for s in states)
    totals = ", ".join(f"{n} {state}" for state, n in counts.most_common())
    title = f"sweep {view.sweep.name}: {len(states)} trials ({totals})"
    width = width or Console().width
    # one array's task ids share their array id: say it once, keep "_3" per row (Ray's are long)
    jobs = [s.job_id for s in states if s.job_id]
    prefix = jobs[0].rsplit("_", 1)[0] + "_" if jobs and "_" in jobs[0] else ""
    if len(jobs) > 1 and prefix and all(j.startswith(prefix) for j in jobs):
        title += f"; jobs {prefix}*"
    else:
        prefix = ""
    caption = "; ".join(line for line in (search_line(view, list(states)), driver_line(view.sweep)) if line)
    table = Table(title=title, title_justify="left", caption=caption or None, caption_justify="left")
    as_columns = len(view.keys) <= MAX_KEY_COLUMNS
    # the accuracy column says what it holds: a running trial shows its latest val (else test) accuracy
    nows = [progress(view, trial, s) for trial, s in zip(view.trials, states)]
    metrics = {best_metric(s.result)[0] for s, now in zip(states, nows) if now is None} | {
        "best_" + now["metric"] for now in nows if now is not None and now["value"] is not None}
    metrics -= {None}
    acc_header = "best val" if metrics == {"best_val_acc"} else "best" if len(metrics) > 1 else "best test"
    rows = []
    keys = [label(k) for k in view.keys]
    for trial, s, now in zip(view.trials, states, nows):
        values = [(k, get_dotted(trial.config, tuple(k.split(".")))) for k in view.keys]
        r = s.result or {}
        metric, best = best_metric(r)
        acc = "-" if best is None else f"{best:.4f}" + (" (test)" if len(metrics) > 1 and metric != "best_val_acc" else "")
        epochs = str(r["epochs_completed"]) if r.get("epochs_completed") else "-"
        if now is not None:  # a running trial: where it is, from its metrics.jsonl
            epochs = f"{now['epoch']}/{now['epochs']}"
            test = " test" if len(metrics) > 1 and now["metric"] == "test_acc" else ""
            acc = "-" if now["value"] is None else f"{now['value']:.4f} (now{test})"
        job = (s.job_id or "-").removeprefix(prefix) if prefix else s.job_id or "-"
        rows.append({"trial id": s.trial_id, **{label(k): short(v) for k, v in values}, "params": f"{trial.params:,}",
                     "state": s.state, "job": job, "epochs": epochs, acc_header: acc,
                     "config": " ".join(f"{label(k)}={short(v)}" for k, v in values) or "-",
                     "detail": s.detail.replace("\n", " ")})
    # Every column but config and detail keeps its full width; a narrow terminal cuts those two
    # (with an ellipsis) instead of wrapping a row over several lines, and when even that leaves
    # them too little, drops the job column (the title names the array), then params, then puts
    # the keys into the config column.
    tail = ["state", "job", "epochs", acc_header]
    layouts = [["trial id", *keys, "params", *tail, "detail"] if as_columns else None,
               ["trial id", *keys, "params", *(t for t in tail if t != "job" or not prefix), "detail"]
               if as_columns else None,
               ["trial id", *keys, *(t for t in tail if t != "job"), "detail"] if as_columns else None,
               ["trial id", "params", *tail, "config", "detail"],
               ["trial id", *(t for t in tail if t != "job"), "config", "detail"]]
    for headers in (h for h in layouts if h):
        widths = [max([len(h), *(len(row[h]) for row in rows)]) for h in headers]
        fixed = [h not in ("config", "detail") for h in headers]
        # what the fixed columns leave (each column costs 3 more for borders and padding)
        left = width - sum(w + 3 for w, f in zip(widths, fixed) if f) - 1
        flexible = [i for i, f in enumerate(fixed) if not f]
        if left >= 11 * len(flexible):
            break
    for i, h in enumerate(headers):
        cap = None if fixed[i] else max(8, left // len(flexible) - 3)
        table.add_column(h, no_wrap=True, overflow="ellipsis", min_width=widths[i] if fixed[i] else None,
                         max_width=cap, justify="right" if h == "params" or h in keys else "left")
    for row in rows:
        style = STATE_STYLE.get(row["state"])
        cells = [row[h] for h in headers]
        cells[headers.index("state")] = f"[{style}]{row['state']}[/]" if style else row["state"]
        table.add_row(*cells)
    return table


def ray_results(report: Any, runs_dir: str) -> str | None:
    """After a foreground Ray run: the sweep's status table; "interrupted" when some trial is."""
    if not report.submitted or not report.foreground:
        return None
    outcome = None
    ran = {s.trial_id for s in report.submitted}  # not an earlier spec version's trials shown beside them
    for view in views(str(report.sweep.path), runs_dir):
        states = poll(view)
        Console().print(status_table(view, states))
        if any(s.state == "interrupted" and s.trial_id in ran for s in states):
            outcome = "interrupted"
    return outcome
