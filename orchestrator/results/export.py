"""The leaderboard written out: a rich table for people, markdown / csv / LaTeX (booktabs) to
paste into a paper, JSON for machines, and the footer that accounts for every unranked trial."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from configcheck import ConfigError
from orchestrator.results.board import Board, Entry, actual_epoch, entry_json, mean, std
from orchestrator.sweep.naming import label, short


def _pm(xs: list[float], digits: int = 4, tex: bool = False) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    s = std(xs)
    m = f"{mean(xs):.{digits}f}"
    if s is None:
        return m
    return f"{m} $\\pm$ {s:.{digits}f}" if tex else f"{m} ± {s:.{digits}f}"


def _wall(seconds: float) -> str:
    if not seconds or math.isnan(seconds):
        return "-"
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def columns(board: Board) -> list[str]:
    many = len(board.sweeps) > 1
    seeds = board.seeds
    cols = ["rank", *(["sweep"] if many else []), "trial id", *map(label, board.keys), "params", board.metric]
    if board.metric != "test_acc":
        cols.append("test acc")
    cols += [*(["n"] if seeds else []), "epochs", "wall", *(["s/epoch (est)"] if board.calibration else []), "status",
             "pareto"]
    if any(e.target for e in board.entries):
        cols += [f"ep to {board.entries[0].target['target']:g}", "min to target"]
    if any(e.wandb for e in board.entries):
        cols.append("wandb")
    return cols


# What a paper prints (LaTeX's default): the config, its size, its accuracy; not wall times or states.
PAPER = ("rank", "sweep", "config", "params", "metric", "test acc", "n")
NUMERIC = ("rank", "params", "test acc", "n", "epochs", "wall", "s/epoch (est)", "min to target")


def pick(board: Board, wanted: tuple[str, ...] | None) -> list[int]:
    """Indices into ``columns(board)`` of the ``wanted`` ones, in the board's order: ``config``
    names every varying key, ``metric`` the ranking metric; an unknown name is refused, listing
    the valid ones."""
    cols = columns(board)
    if wanted is None:
        return list(range(len(cols)))
    keys = {label(k) for k in board.keys}
    valid = sorted({*cols, "config", "metric", "wandb"} - keys - {board.metric}) + ["<a varying key>"]
    out = []
    for name in wanted:
        hit = [i for i, c in enumerate(cols) if c == name or (name == "config" and c in keys)
               or (name == "metric" and c == board.metric)]
        if not hit and name not in PAPER and name != "wandb":
            raise ConfigError("--columns", f"{name!r} is not a column here; allowed: {', '.join(valid)}")
        out += hit
    return sorted(set(out))


def cells(board: Board, e: Entry, tex: bool = False) -> list[str]:
    many = len(board.sweeps) > 1
    seeds = board.seeds
    tid = e.trial_ids[0] if len(e.trial_ids) == 1 else f"{e.trial_ids[0]} +{len(e.trial_ids) - 1}"
    tid += EARLIER if e.earlier else ""
    row = [str(e.rank), *([e.sweep] if many else []), tid, *(short(e.varying[k]) for k in board.keys),
           f"{e.params:,}", _pm(e.values, tex=tex)]
    if board.metric != "test_acc":
        row.append(_pm(e.test_accs, tex=tex))
    epochs = mean(e.epochs)
    row += [*([str(len(e.trial_ids))] if seeds else []), f"{epochs:g}" if epochs == int(epochs) else f"{epochs:.1f}",
            _wall(mean(e.walls))]
    if board.calibration:
        actual = actual_epoch(e)
        row.append(f"{actual:.1f} ({e.est_epoch:.1f})" if actual is not None and e.est_epoch is not None else "-")
    row += [e.status, "*" if e.pareto else ""]
    if board.targets:
        t = e.target or {}
        partial = "" if t.get("reached") == t.get("of") else f" ({t.get('reached')}/{t.get('of')})"
        row += ["-" if t.get("epochs") is None else f"{t['epochs']:g}{partial}",
                "-" if t.get("minutes") is None else f"{t['minutes']:.2f}"]
    if any(x.wandb for x in board.entries):
        row.append(" ".join(w["url"] or w["run_id"] for w in e.wandb) or "-")
    return row


def footer(board: Board) -> list[str]:
    """Nothing silently dropped: what is not in the table, and why."""
    rows = "one trial per row" if board.per_seed or not board.seeds else "seed means"
    lines = [board.metric_note + (f"; * = on the accuracy-vs-params Pareto front ({sum(e.pareto for e in board.entries)} "
                                  f"of the rows, {rows})" if board.entries else "")]
    if board.earlier:
        lines.append(f"{EARLIER.strip()} = from an earlier version of the spec ({board.earlier} trials still in the sweep "
                     "dir, ranked beside the current ones; status SWEEP_DIR lists them)")
    notes = [e for e in board.entries if e.note]
    for note in dict.fromkeys(e.note for e in notes):
        ids = [e.trial_ids[0] for e in notes if e.note == note]
        lines.append(f"{', '.join(ids)}: {note}")
    if board.running:
        shown = ", ".join(f"{r['trial_id']} (epoch {r['epoch']}/{r['epochs']})" for r in board.running[:8])
        more = f", +{len(board.running) - 8} more" if len(board.running) > 8 else ""
        lines.append(f"running: {len(board.running)} (no result yet: {shown}{more}; orchestrate status asks the scheduler)")
    if board.queued:
        lines.append(f"queued: {len(board.queued)} (submitted, not started: {', '.join(board.queued[:8])}"
                     f"{', ...' if len(board.queued) > 8 else ''})")
    if board.failed:
        lines.append(f"failed: {len(board.failed)}")
        lines += [f"  {f['trial_id']} {f['status']}: {f['reason']}" for f in board.failed[:20]]
        if len(board.failed) > 20:
            lines.append(f"  ... {len(board.failed) - 20} more (orchestrate status)")
    if board.missing:
        lines.append(f"missing: {len(board.missing)} (never submitted: {', '.join(board.missing[:8])}"
                     f"{', ...' if len(board.missing) > 8 else ''})")
    return lines


EARLIER = " †"


def to_json(board: Board) -> str:
    return json.dumps([entry_json(board, e) for e in board.entries], indent=1)


def to_csv(board: Board) -> str:
    """Plain numbers (mean and std in their own columns), one row per entry: for pandas / sheets."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    keys = board.keys
    # every column named once (ranked by test_acc, there is no second test_acc), a null is an
    # empty cell (pandas then reads the column as numbers)
    extra = ["test_acc", "test_acc_std"] if board.metric != "test_acc" else []
    fields = [board.metric, f"{board.metric}_std", "n", *extra, "epochs", "wall_seconds", "status", "pareto", "in_spec"]
    w.writerow(["rank", "sweep", "trial_ids", *keys, "params", *fields])
    for e in board.entries:
        j = {**entry_json(board, e), "pareto": int(e.pareto), "in_spec": int(not e.earlier)}
        w.writerow([e.rank, e.sweep, " ".join(e.trial_ids), *(_csv(e.varying[k]) for k in keys), e.params,
                    *(_csv(j[f]) for f in fields)])
    return buf.getvalue()


def _csv(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return short(value) if isinstance(value, (list, dict)) else value


def to_markdown(board: Board, entries: list[Entry], wanted: tuple[str, ...] | None = None) -> str:
    keep = pick(board, wanted)
    cols = [columns(board)[i] for i in keep]
    numeric = {*NUMERIC, board.metric} | {label(k) for k in board.keys if _numeric(board, k)}
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---:" if c in numeric else "---" for c in cols) + "|"]
    lines += ["| " + " | ".join(cells(board, e)[i].replace("|", "\\|") for i in keep) + " |" for e in entries]
    return "\n".join(lines) + "\n"


_TEX = str.maketrans({"_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}"})


def to_latex(board: Board, entries: list[Entry], wanted: tuple[str, ...] | None = None) -> str:
    """A booktabs table (\\usepackage{booktabs}); the front's rows in bold; numbers right-aligned.
    Columns: ``wanted`` (--columns), else what a paper prints (PAPER)."""
    keep = [i for i in pick(board, wanted or PAPER) if columns(board)[i] != "pareto"]
    cols = [columns(board)[i] for i in keep]
    body = []
    for e in entries:
        full = cells(board, e, tex=True)
        row = [full[i] if "$" in full[i] else full[i].translate(_TEX) for i in keep]
        body.append(" & ".join(f"\\textbf{{{c}}}" if e.pareto else c for c in row) + r" \\")
    caption = board.metric_note.translate(_TEX) + "; bold: on the accuracy-vs-params Pareto front."
    numeric = {*NUMERIC, board.metric}
    spec = "".join("r" if c in numeric or c in {label(k) for k in board.keys if _numeric(board, k)} else "l" for c in cols)
    return "\n".join([r"\begin{table}[t]", r"\centering", r"\begin{tabular}{" + spec + "}", r"\toprule",
                      " & ".join(c.translate(_TEX) for c in cols) + r" \\", r"\midrule", *body, r"\bottomrule",
                      r"\end{tabular}", f"\\caption{{{caption}}}", r"\end{table}"]) + "\n"


def _numeric(board: Board, key: str) -> bool:
    return all(isinstance(e.varying.get(key), (int, float)) and not isinstance(e.varying.get(key), bool)
               for e in board.entries)


def render(board: Board, fmt: str, top: int | None, wanted: tuple[str, ...] | None = None) -> str | Any:
    """The board in format ``fmt`` (a key of FORMATS), its first ``top`` entries."""
    entries = board.entries[:top] if top else board.entries
    return FORMATS[fmt](board, entries, wanted)


def _only(board: Board, entries: list[Entry]) -> Board:
    return Board(**{**board.__dict__, "entries": entries, "_seeds": None})


# short headers: the table should fit a terminal
HEAD = {"best_val_acc": "val acc", "best_test_acc": "best test", "test_acc": "test acc", "pareto": "front",
        "status": "status"}


def table(board: Board, entries: list[Entry]) -> Any:
    title = f"leaderboard: {', '.join(board.sweeps)} ({len(board.entries)} ranked" + (
        f", top {len(entries)} shown)" if len(entries) < len(board.entries) else ")")
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    cols = columns(board)
    rows = [cells(board, e) for e in entries]
    for i, c in enumerate(cols):
        t.add_column(HEAD.get(c, c), no_wrap=True, min_width=max([len(HEAD.get(c, c)), *(len(r[i]) for r in rows)]),
                     justify="left" if c in ("trial id", "sweep", "status", "pareto") else "right")
    for e, r in zip(entries, rows):
        t.add_row(*r, style="bold" if e.pareto else None)
    return t


# ``leaderboard --format NAME``: a new format is one function (board, entries, wanted columns) and one line here
FORMATS: dict[str, Callable[[Board, list[Entry], tuple[str, ...] | None], Any]] = {
    "table": lambda board, entries, wanted: table(board, entries),
    "markdown": to_markdown,
    "csv": lambda board, entries, wanted: to_csv(_only(board, entries)),
    "json": lambda board, entries, wanted: to_json(_only(board, entries)),
    "latex": to_latex,
}


def width(board: Board, top: int | None) -> int:
    """The table's natural width: a pipe or a file gets every column whole, not 80 cut ones."""
    entries = board.entries[:top] if top else board.entries
    rows = [columns(board), *(cells(board, e) for e in entries)]
    return sum(max(len(HEAD.get(r[i], r[i]) if j == 0 else r[i]) for j, r in enumerate(rows)) + 3
               for i in range(len(rows[0]))) + 4


def summary_json(board: Board) -> dict[str, Any]:
    return {"metric": board.metric, "note": board.metric_note, "ranked": len(board.entries),
            "running": board.running, "queued": board.queued, "failed": board.failed, "missing": board.missing}


def print_table(board: Board, rows: int | None, more_hint: bool = False) -> Any:
    """The table (at its natural width when not on a terminal) and the footer; returns the console."""
    console = Console()
    if not console.is_terminal:  # a pipe or a file gets every column whole, not 80 cut ones
        console = Console(width=max(80, width(board, rows)))
    console.print(table(board, board.entries[:rows] if rows else board.entries))
    if more_hint:
        console.print(f"{len(board.entries) - rows:,} more rows: --all, --top K, or --format csv|json for files",
                      highlight=False)
    for line in footer(board):
        console.print(line, highlight=False, soft_wrap=True)
    return console
