"""Human output: rich tables for plans (machines get --json instead)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from orchestrator.config import get_dotted
from orchestrator.expand import Trial


def _leaves(key: str, value: Any) -> list[str]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(f"{key}.{k}", v)]
    return [key]


def _varies(trials: Sequence[Trial], key: str) -> bool:
    parts = tuple(key.split("."))
    first = get_dotted(trials[0].config, parts)
    return any(get_dotted(t.config, parts) != first for t in trials)  # stops at the first difference


def varying_keys(trials: Sequence[Trial], fill: tuple[str, ...] | None) -> list[str]:
    """The columns worth showing: every leaf key a trial overrides whose value differs between
    trials (a mapping override such as train.optimizer becomes optimizer.name, optimizer.lr, ...),
    plus the budget's fill key."""
    keys: dict[str, None] = {}
    shapes: set[tuple[str, ...]] = set()
    for t in trials:  # a 100k grid has one shape: look at its keys once
        shape = tuple(t.overrides)
        if shape not in shapes:
            shapes.add(shape)
            keys.update(dict.fromkeys(shape))
    leaves: dict[str, None] = {}
    for k in keys:
        # a key's type is fixed by the schema: the first trial that sets it tells if it is a mapping
        if isinstance(next(t.overrides[k] for t in trials if k in t.overrides), dict):
            for t in trials:
                if k in t.overrides:
                    leaves.update(dict.fromkeys(_leaves(k, t.overrides[k])))
        else:
            leaves[k] = None
    shown = [k for k in leaves if len(trials) < 2 or _varies(trials, k)]
    if fill is not None and ".".join(fill) not in shown:
        shown.append(".".join(fill))
    return shown


def short(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={short(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ",".join(short(v) for v in value) + "]"
    return "-" if value is None else str(value)


MAX_KEY_COLUMNS = 3  # beyond this an 80-column terminal has no room; one "changes" column instead


def label(key: str) -> str:
    return key.removeprefix("model.").removeprefix("train.")


def plan_table(name: str, trials: Sequence[Trial], fill: tuple[str, ...] | None, limit: int | None,
               estimates: dict[str, tuple[float, float]] | None = None) -> Table:
    keys = varying_keys(trials, fill)
    as_columns = len(keys) <= MAX_KEY_COLUMNS
    table = Table(title=f"sweep {name}: {len(trials)} trials", title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("trial id", no_wrap=True, min_width=12)
    if as_columns:
        for k in keys:  # whole headers: on a narrow terminal the verdict column wraps instead
            table.add_column(label(k), justify="right", min_width=len(label(k)))
    else:
        table.add_column("changes from base")
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("MACs", justify="right", no_wrap=True)
    if estimates:
        from orchestrator.cost import hours

        table.add_column("s/epoch", justify="right", no_wrap=True)
        table.add_column("time", justify="right", no_wrap=True)
    table.add_column("kept", min_width=4)
    for i, t in enumerate(trials[:limit] if limit else trials):
        if as_columns:
            row = [short(get_dotted(t.config, tuple(k.split(".")))) for k in keys]
        else:
            leaves = [(leaf, get_dotted(t.config, tuple(leaf.split(".")))) for k, v in t.overrides.items()
                      for leaf in _leaves(k, v)]
            if fill is not None:  # the width the budget chose is a change from base too
                leaves.append((".".join(fill), get_dotted(t.config, fill)))
            row = [" ".join(f"{label(k)}={short(v)}" for k, v in leaves) or "-"]
        verdict = "[green]kept[/]" if t.kept else f"[red]{t.reason}[/]"  # red: dropped, and why
        times = []
        if estimates:
            e = estimates.get(t.trial_id)
            times = [f"{e[0]:.1f}", hours(e[1])] if e else ["-", "-"]
        table.add_row(str(i), t.trial_id, *row, f"{t.params:,}", macs_words(t.macs), *times, verdict)
    return table


def macs_words(macs: int | None) -> str:
    """742,193,480 -> 742.2M: MACs vary over orders of magnitude; params keep every digit."""
    if macs is None:
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if macs >= div:
            return f"{macs / div:.1f}{unit}"
    return str(macs)


def print_plan(name: str, trials: Sequence[Trial], fill: tuple[str, ...] | None, limit: int | None,
               console: Console | None = None, estimates: dict[str, tuple[float, float]] | None = None) -> None:
    console = console or Console()
    console.print(plan_table(name, trials, fill, limit, estimates))
    if limit and len(trials) > limit:
        console.print(f"... {len(trials) - limit:,} more rows (--all shows every row, --json everything)")
    kept = [t for t in trials if t.kept]
    line = f"{len(kept):,} kept, {len(trials) - len(kept):,} dropped of {len(trials):,} trials"
    if kept:
        params = [t.params for t in kept]
        line += f"; kept params {min(params):,} .. {max(params):,}"
        macs = [t.macs for t in kept if t.macs is not None]
        if macs:
            line += f", MACs {macs_words(min(macs))} .. {macs_words(max(macs))} per image"
    console.print(line if kept else f"[red]{line}: the budget drops every trial[/]")


STATE_STYLE = {"completed": "green", "stopped_early": "green", "running": "cyan", "pending": "yellow",
               "missing": "dim", "failed": "red", "timeout": "red", "preempted": "magenta",
               "cancelled": "red", "out_of_memory": "red", "node_fail": "red", "interrupted": "magenta"}


def status_table(view: Any, states: Sequence[Any], width: int | None = None) -> Table:
    """One line per trial: which config (the keys that vary, params), its state, progress, best
    accuracy and, for a failure, one line saying why (the full text: orchestrate logs)."""
    from collections import Counter

    from orchestrator.status import best_metric, progress

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
    table = Table(title=title, title_justify="left")
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


def _limits(report: Any) -> str:
    from orchestrator.resources import time_words

    return "; ".join(sorted({time_words(s.resources["time"]) for s in report.submitted}))


def _left_alone(report: Any, console: Console, verb: str) -> None:
    failed = set(report.failed)  # listed once, on their own line
    for state, ids in sorted(report.skipped.items()):
        rest = [i for i in ids if i not in failed]
        if rest:
            console.print(f"  {verb} alone, {state}: {len(rest)}")
    if report.failed:
        console.print(f"  [red]{len(report.failed)} failed trials {'would not be' if verb == 'would leave' else 'not'} "
                      "resubmitted[/] (add --retry-failed): " + ", ".join(report.failed))


def ray_cluster_job(report: Any) -> str | None:
    """The SLURM job id when the submitted Ray trials run in a Ray cluster inside a SLURM job."""
    from pathlib import Path

    if not report.submitted or report.submitted[0].backend != "ray":
        return None
    job = Path(report.submitted[0].folder) / "slurm_job"
    return job.read_text().strip() if job.is_file() else None


def _shown_path(path: Any) -> str:
    from pathlib import Path

    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def print_submit(report: Any, spec: str, dry_run: bool, console: Console | None = None) -> None:
    console = console or Console(soft_wrap=True)  # lines hold commands and ids: never break them
    where = _shown_path(report.sweep.path)
    n = len(report.submitted)
    if dry_run:
        if n:
            console.print(f"[bold]dry run[/]: would submit {n} of {report.chosen} trials to {where}; {_limits(report)}")
            if report.time_note:
                console.print(report.time_note, highlight=False)
        else:
            console.print(f"[bold]dry run[/]: nothing would be submitted: none of the {report.chosen} trials "
                          f"of {where} is missing" + ("" if report.failed else " or failed"))
        _left_alone(report, console, "would leave")
        for s in report.submitted:
            console.print(f"  would submit {s.trial_id}")
        if n:
            console.print("\n[bold]sbatch text[/]:")
            console.file.write(report.preview + "\n")  # verbatim: no wrapping, no markup
        return
    arrays = sorted({s.array_id or s.job_id for s in report.submitted})
    cluster_job = ray_cluster_job(report)
    foreground = n and report.submitted[0].backend == "ray" and cluster_job is None
    if cluster_job is not None:
        console.print(f"submitted SLURM job {cluster_job}: a Ray cluster that runs these {n} trials (driver "
                      f"ray/{arrays[0]}, its log ray/{arrays[0]}/driver.log); sweep dir {where}")
    elif foreground:
        console.print(f"ran {n} trials on Ray (driver ray/{arrays[0]}); sweep dir {where}; Tune's state (for "
                      f"ExperimentAnalysis, Tuner.restore): {where}/ray/{arrays[0]}/tune/tune")
    elif n:
        console.print(f"submitted {n} trials as job array(s) {', '.join(arrays)}; {_limits(report)}; sweep dir {where}")
        if report.time_note:
            console.print(report.time_note, highlight=False)
    else:
        console.print(f"submitted nothing: none of the {report.chosen} trials of {where} is missing"
                      + ("" if report.failed else " or failed"))
    _left_alone(report, console, "left")
    if report.dropped:
        console.print(f"  {report.dropped} trials dropped by the budget (orchestrate plan {spec} shows why)")
    # The sweep dir itself, not the spec: it is what was submitted (after --set name=..., --runs-dir).
    if foreground:
        console.print(f"next: orchestrate status {where} | orchestrate logs TRIAL_ID --sweep {where}")
    else:
        console.print(f"next: orchestrate status {where} --watch | orchestrate logs TRIAL_ID --sweep {where} | "
                      f"orchestrate cancel {where}")


def ray_results(report: Any, runs_dir: str) -> str | None:
    """After a foreground Ray run: the sweep's status table; "interrupted" when some trial is."""
    from orchestrator.status import poll, views

    if not report.submitted or report.submitted[0].backend != "ray" or ray_cluster_job(report) is not None:
        return None
    outcome = None
    for view in views(str(report.sweep.path), runs_dir):
        states = poll(view)
        Console().print(status_table(view, states))
        if any(s.state == "interrupted" for s in states):
            outcome = "interrupted"
    return outcome
