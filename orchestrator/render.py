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


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={_short(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ",".join(_short(v) for v in value) + "]"
    return "-" if value is None else str(value)


MAX_KEY_COLUMNS = 3  # beyond this an 80-column terminal has no room; one "changes" column instead


def _label(key: str) -> str:
    return key.removeprefix("model.").removeprefix("train.")


def plan_table(name: str, trials: Sequence[Trial], fill: tuple[str, ...] | None, limit: int | None) -> Table:
    keys = varying_keys(trials, fill)
    as_columns = len(keys) <= MAX_KEY_COLUMNS
    table = Table(title=f"sweep {name}: {len(trials)} trials", title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("trial id", no_wrap=True, min_width=12)
    if as_columns:
        for k in keys:
            table.add_column(_label(k), justify="right")
    else:
        table.add_column("changes from base")
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("kept", min_width=7)
    for i, t in enumerate(trials[:limit] if limit else trials):
        if as_columns:
            row = [_short(get_dotted(t.config, tuple(k.split(".")))) for k in keys]
        else:
            leaves = [(leaf, get_dotted(t.config, tuple(leaf.split(".")))) for k, v in t.overrides.items()
                      for leaf in _leaves(k, v)]
            row = [" ".join(f"{_label(k)}={_short(v)}" for k, v in leaves) or "-"]
        verdict = "[green]kept[/]" if t.kept else f"[red]dropped[/]: {t.reason}"
        table.add_row(str(i), t.trial_id, *row, f"{t.params:,}", verdict)
    return table


def print_plan(name: str, trials: Sequence[Trial], fill: tuple[str, ...] | None, limit: int | None,
               console: Console | None = None) -> None:
    console = console or Console()
    console.print(plan_table(name, trials, fill, limit))
    if limit and len(trials) > limit:
        console.print(f"... {len(trials) - limit:,} more rows (--all shows every row, --json everything)")
    kept = [t for t in trials if t.kept]
    line = f"{len(kept):,} kept, {len(trials) - len(kept):,} dropped of {len(trials):,} trials"
    if kept:
        params = [t.params for t in kept]
        line += f"; kept params {min(params):,} .. {max(params):,}"
    console.print(line if kept else f"[red]{line}: the budget drops every trial[/]")


STATE_STYLE = {"completed": "green", "stopped_early": "green", "running": "cyan", "pending": "yellow",
               "missing": "dim", "failed": "red", "timeout": "red", "preempted": "magenta",
               "cancelled": "red", "out_of_memory": "red", "node_fail": "red"}


def status_table(name: str, states: Sequence[Any]) -> Table:
    from collections import Counter

    counts = Counter(s.state for s in states)
    totals = ", ".join(f"{n} {state}" for state, n in counts.most_common())
    table = Table(title=f"sweep {name}: {len(states)} trials ({totals})", title_justify="left")
    for col in ("trial id", "state", "job", "epochs", "test acc", "detail"):
        table.add_column(col, no_wrap=col in ("trial id", "job"))
    for s in states:
        r = s.result or {}
        acc = r.get("test_acc")
        table.add_row(s.trial_id, f"[{STATE_STYLE.get(s.state, '')}]{s.state}[/]", s.job_id or "-",
                      str(r.get("epochs_completed") or "-"), f"{acc:.4f}" if isinstance(acc, float) else "-", s.detail)
    return table


def print_submit(report: Any, spec: str, runs_dir: str, dry_run: bool, console: Console | None = None) -> None:
    console = console or Console()
    if dry_run:
        console.print(f"[bold]dry run[/]: would submit {len(report.submitted)} trials of {report.sweep.path}")
        for s in report.submitted:
            console.print(f"  {s.trial_id}")
        console.print("\n[bold]sbatch text[/]:")
        console.file.write(report.preview + "\n")  # verbatim: no wrapping, no markup
        return
    arrays = sorted({s.array_id or s.job_id for s in report.submitted})
    console.print(f"submitted {len(report.submitted)} trials as job array(s) {', '.join(arrays) or '-'}; "
                  f"sweep dir {report.sweep.path}")
    for state, ids in sorted(report.skipped.items()):
        console.print(f"  left alone, {state}: {len(ids)}")
    if report.failed:
        console.print(f"  [red]{len(report.failed)} failed trials not resubmitted[/] (add --retry-failed): "
                      + ", ".join(report.failed))
    if report.dropped:
        console.print(f"  {report.dropped} trials dropped by the budget (orchestrate plan {spec} shows why)")
    rd = "" if runs_dir == "runs" else f" --runs-dir {runs_dir}"
    console.print(f"next: orchestrate status {spec}{rd} --watch | orchestrate logs TRIAL_ID{rd} | "
                  f"orchestrate cancel {spec}{rd}")
