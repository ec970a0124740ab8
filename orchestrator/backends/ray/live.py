"""The live view of a foreground sweep: one row per trial (state, epoch/epochs, metric, elapsed),
totals and an ETA, redrawn as trials report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

STYLE = {"completed": "green", "stopped_early": "green", "running": "cyan", "pending": "yellow", "failed": "red",
         "cancelled": "red", "interrupted": "magenta"}


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass
class Row:
    trial_id: str
    epochs: int
    label: str
    state: str = "pending"
    epoch: int = 0
    first_epoch: int | None = None  # the first epoch reported this session (resumed trials start later)
    metric: float | None = None
    started: float | None = None
    ended: float | None = None


@dataclass
class LiveState:
    metric: str
    rows: dict[str, Row] = field(default_factory=dict)
    t0: float = field(default_factory=time.time)

    def add(self, trial_id: str, epochs: int, label: str) -> None:
        self.rows[trial_id] = Row(trial_id, epochs, label)

    def start(self, trial_id: str) -> None:
        row = self.rows[trial_id]
        row.state, row.started = "running", time.time()

    def report(self, trial_id: str, result: dict[str, Any]) -> None:
        row = self.rows[trial_id]
        row.state = "running"
        row.epoch = int(result.get("epoch", row.epoch))
        if row.first_epoch is None:
            row.first_epoch = row.epoch - 1
        if result.get(self.metric) is not None:
            row.metric = float(result[self.metric])

    def end(self, trial_id: str, state: str, result: dict[str, Any] | None = None) -> None:
        row = self.rows[trial_id]
        row.state, row.ended = state, time.time()
        if result:
            row.epoch = result.get("epochs_completed") or row.epoch

    def eta(self) -> str:
        trained = sum(r.epoch - (r.first_epoch or 0) for r in self.rows.values() if r.first_epoch is not None)
        left = sum(r.epochs - r.epoch for r in self.rows.values() if r.state in ("pending", "running"))
        if not trained or not left:
            return "-"
        return "at most " + _clock(left * (time.time() - self.t0) / trained)  # ASHA may stop trials sooner

    def render(self) -> Group:
        table = Table(title_justify="left", title=f"{len(self.rows)} trials, metric {self.metric}")
        for col in ("trial id", "config", "state", "epoch", self.metric, "elapsed"):
            table.add_column(col, no_wrap=True, overflow="ellipsis")
        now = time.time()
        for r in self.rows.values():
            elapsed = "-" if r.started is None else _clock((r.ended or now) - r.started)
            style = STYLE.get(r.state)
            table.add_row(r.trial_id, r.label, f"[{style}]{r.state}[/]" if style else r.state, f"{r.epoch}/{r.epochs}",
                          "-" if r.metric is None else f"{r.metric:.4f}", elapsed)
        counts: dict[str, int] = {}
        for r in self.rows.values():
            counts[r.state] = counts.get(r.state, 0) + 1
        totals = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        return Group(table, Text(f"{totals}; elapsed {_clock(now - self.t0)}; ETA {self.eta()}"))
