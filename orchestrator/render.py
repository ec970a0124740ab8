"""Human output: rich tables for plans (machines get --json instead)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from orchestrator.config import get_dotted
from orchestrator.expand import Trial


def varying_keys(trials: Sequence[Trial], fill: tuple[str, ...] | None) -> list[str]:
    keys: dict[str, None] = {}
    for t in trials:
        keys.update(dict.fromkeys(t.overrides))
    if fill is not None:
        keys[".".join(fill)] = None
    return list(keys)


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={_short(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ",".join(_short(v) for v in value) + "]"
    return "-" if value is None else str(value)


def plan_table(name: str, trials: Sequence[Trial], fill: tuple[str, ...] | None, limit: int | None) -> Table:
    keys = varying_keys(trials, fill)
    table = Table(title=f"sweep {name}: {len(trials)} trials", title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("trial id", no_wrap=True, min_width=12)
    for k in keys:
        table.add_column(k.removeprefix("model."), justify="right")
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("kept", no_wrap=True, min_width=7)
    for i, t in enumerate(trials[:limit] if limit else trials):
        row = [_short(get_dotted(t.config, tuple(k.split(".")))) for k in keys]
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
