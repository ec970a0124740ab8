"""Human output: rich tables for plans (machines get --json instead)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from configcheck.durations import time_words
from orchestrator.cost import hours
from orchestrator.sweep.expand import Trial
from orchestrator.sweep.naming import MAX_KEY_COLUMNS, label, leaf_keys, short, varying_keys
from orchestrator.sweep.trialconfig import get_dotted


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
        table.add_column("s/epoch", justify="right", no_wrap=True)
        table.add_column("time", justify="right", no_wrap=True)
    table.add_column("kept", min_width=4)
    for i, t in enumerate(trials[:limit] if limit else trials):
        if as_columns:
            row = [short(get_dotted(t.config, tuple(k.split(".")))) for k in keys]
        else:
            leaves = [(leaf, get_dotted(t.config, tuple(leaf.split(".")))) for k, v in t.overrides.items()
                      for leaf in leaf_keys(k, v)]
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


def _limits(report: Any) -> str:
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


def _shown_path(path: Any) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def print_submit(report: Any, spec: str, dry_run: bool, console: Console | None = None) -> None:
    console = console or Console(soft_wrap=True)  # lines hold commands and ids: never break them
    where = _shown_path(report.sweep.path)
    n = len(report.submitted)
    if dry_run:
        if report.study:
            console.print(report.study, highlight=False)
        if n:
            console.print(f"[bold]dry run[/]: would submit {n} of {report.chosen} trials to {where}; {_limits(report)}")
            if report.time_note:
                console.print(report.time_note, highlight=False)
        else:
            console.print(f"[bold]dry run[/]: nothing would be submitted: none of the {report.chosen} trials "
                          f"of {where} is missing" + ("" if report.failed else " or failed"))
        if report.driver:
            console.print(report.driver, highlight=False)
        _left_alone(report, console, "would leave")
        for s in report.submitted:
            console.print(f"  would submit {s.trial_id}")
        if n:
            console.print(f"\n[bold]{report.preview_label}[/]:")
            console.file.write(report.preview + "\n")  # verbatim: no wrapping, no markup
        return
    foreground = n and report.foreground
    if report.study:
        console.print(report.study, highlight=False)
    if n:  # the backend's own words for what it did
        console.print(report.summary.replace("{limits}", _limits(report)).replace("{where}", where))
        if report.time_note and not foreground and report.cluster_job is None:
            console.print(report.time_note, highlight=False)
    if report.driver and (report.study or not n):  # a search run unattended, or a study's step job
        console.print(report.driver, highlight=False)
    elif not n:
        console.print(f"submitted nothing: none of the {report.chosen} trials of {where} is missing"
                      + ("" if report.failed else " or failed"))
    _left_alone(report, console, "left")
    if report.search:
        console.print(report.search, highlight=False)
    if report.dropped:
        console.print(f"  {report.dropped} trials dropped by the budget (orchestrate plan {spec} shows why)")
    # The sweep dir itself, not the spec: it is what was submitted (after --set name=..., --runs-dir).
    if foreground:
        console.print(f"next: orchestrate status {where} | orchestrate logs TRIAL_ID --sweep {where}")
    else:
        console.print(f"next: orchestrate status {where} --watch | orchestrate logs TRIAL_ID --sweep {where} | "
                      f"orchestrate cancel {where}")
