"""The leaderboard's PNGs: accuracy vs parameters with the Pareto front and the budget (seed 000),
and learning curves for the top entries or one per value of a key (seed 004 Fig. 4)."""

from __future__ import annotations

from itertools import accumulate
from pathlib import Path
from typing import Any

from orchestrator.results.board import Board, Entry, epoch_key, mean
from orchestrator.store.sweepdir import SweepDir
from orchestrator.store.trialfiles import read_metrics
from orchestrator.sweep.naming import label, short
from orchestrator.sweep.trialconfig import get_dotted


def _plt() -> Any:
    import matplotlib  # heavy: loads matplotlib; only this path needs it

    matplotlib.use("Agg")  # files only: login nodes have no display
    import matplotlib.pyplot as plt  # heavy: loads matplotlib; only this path needs it

    return plt


def _save(plt: Any, fig: Any, path: str | Path) -> Path:
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


# what a paper's reader calls each metric (the axis says it, not the result.json field name)
AXIS = {"best_val_acc": "best validation accuracy", "val_acc": "validation accuracy (last epoch)",
        "best_test_acc": "best test accuracy", "test_acc": "test accuracy (last epoch)", "test_loss": "test loss",
        "wall_seconds": "wall time (s)", "images_per_second": "training images per second"}


def _params_axis(ax: Any) -> None:
    """Log-scale parameter ticks written 10k, 100k, 1M (not 10^5 or 9.65x10^4)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # heavy: loads matplotlib; only this path needs it

    def words(x: float, _: Any) -> str:
        for unit, div in (("M", 1e6), ("k", 1e3)):
            if x >= div:
                return f"{x / div:g}{unit}"
        return f"{x:g}"

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(words))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _name(board: Board, e: Entry) -> str:
    text = " ".join(f"{label(k)}={short(e.varying[k])}" for k in board.keys)
    if text and (e.note or board.per_seed):  # one seed of a config: which one
        text += f" ({e.trial_ids[0][:6]})"
    return text or e.trial_ids[0]


def search_order(board: Board, sweeps: dict[str, SweepDir]) -> dict[str, list[float]]:
    """For each search sweep on the board: its trials' metric in the order they were proposed
    (trials.jsonl is append-only), for the best-so-far panel."""
    value = {tid: v for e in board.entries for tid, v in zip(e.trial_ids, e.values)}
    out = {}
    for name, sweep in sweeps.items():
        if (sweep.options().get("search") or {}).get("algorithm", "grid") != "grid":
            out[name] = [value[t["trial_id"]] for t in sweep.trials() if t["trial_id"] in value]
    return {k: v for k, v in out.items() if v}


def search_hours(board: Board, sweeps: dict[str, SweepDir]) -> dict[str, list[float]]:
    """For each search sweep: the device-hours its trials had used, cumulative, in the order
    proposed (measured: each trial's wall seconds x the GPUs it held, or x 1 on CPU)."""
    used = {}
    for e in board.entries:
        r = e.config.get("resources") or {}
        devices = (r.get("gpus") or 0) * (r.get("workers") or 1) * (r.get("nodes") or 1) or 1
        used.update({tid: w * devices / 3600 for tid, w in zip(e.trial_ids, e.walls)})
    out = {}
    for name in search_order(board, sweeps):
        out[name] = list(accumulate(used[t["trial_id"]] for t in sweeps[name].trials() if t["trial_id"] in used))
    return out


def _best_so_far(ax: Any, board: Board, order: dict[str, list[float]], xs: dict[str, list[float]] | None = None,
                 label: str = "trials trained, in the order proposed", title: str = "search: best so far") -> None:
    pick = min if board.metric.endswith("loss") else max
    for name, values in order.items():
        best = [pick(values[: i + 1]) for i in range(len(values))]
        x = (xs or {}).get(name) or list(range(1, len(values) + 1))
        ax.plot(x, values, ".", alpha=0.5, label=f"{name}: each trial")
        ax.step(x, best, where="post", lw=1.6, label=f"{name}: best so far")
    ax.set_xlabel(label)
    ax.set_ylabel(AXIS.get(board.metric, board.metric))
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.6)


def pareto_plot(board: Board, path: str | Path, order: dict[str, list[float]] | None = None,
                hours: dict[str, list[float]] | None = None) -> Path:
    """Every trial a point (seeds too), each entry's mean a ring, the front a line through its
    means, the budget a vertical line; the front's points labelled with their config. With
    ``order`` (search sweeps: ``search_order``) a second panel: the best so far vs trials, and
    with ``hours`` (``search_hours``) a third: the best so far vs device-hours used."""
    plt = _plt()
    if order:
        fig, axes = plt.subplots(1, 3 if hours else 2, figsize=(21 if hours else 14, 5.5), dpi=120)
        ax = axes[0]
        _best_so_far(axes[1], board, order)
        if hours:
            _best_so_far(axes[2], board, order, hours, "device-hours used (GPU-hours; CPU trials: hours)",
                         "search: best so far vs device-hours")
    else:
        fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    sweeps = sorted({e.sweep for e in board.entries})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, s in enumerate(sweeps):
        mine = [e for e in board.entries if e.sweep == s]
        xs = [e.params for e in mine for _ in e.values]
        ys = [v for e in mine for v in e.values]
        ax.scatter(xs, ys, s=14, alpha=0.45, color=colors[i % len(colors)], label=f"{s}: trials ({len(ys)})")
    front = sorted((e for e in board.entries if e.pareto), key=lambda e: e.params)
    if front:
        ax.plot([e.params for e in front], [e.metric for e in front], "-o", color="black", lw=1.4, ms=5,
                label=f"Pareto front ({len(front)}, {'seed means' if board.seeds and not board.per_seed else 'per trial'})")
        for e in front[:12]:
            ax.annotate(_name(board, e), (e.params, e.metric), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if board.budget:
        ax.axvline(board.budget, color="tab:red", ls="--", lw=1.2, label=f"budget {board.budget:,} params")
    ax.set_xscale("log")
    _params_axis(ax)
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel(AXIS.get(board.metric, board.metric))
    ax.set_title(f"{AXIS.get(board.metric, board.metric)} vs parameters: {', '.join(board.sweeps)}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.6)
    return _save(plt, fig, path)


def _curve(sweep: SweepDir, trial_ids: list[str], key: str) -> tuple[list[int], list[float]]:
    """The per-epoch mean over seeds (epochs every seed reached)."""
    runs = [read_metrics(sweep.trial_dir(t)) for t in trial_ids]
    n = min((len(r) for r in runs), default=0)
    xs, ys = [], []
    for i in range(n):
        vals = [r[i].get(key) for r in runs]
        if all(v is not None for v in vals):
            xs.append(runs[0][i]["epoch"])
            ys.append(mean(vals))
    return xs, ys


def curves_plot(board: Board, sweeps: dict[str, SweepDir], path: str | Path, top: int = 5,
                by: str | None = None) -> Path:
    """Loss and accuracy per epoch (train, test, and validation when held out): the top ``top``
    entries, or with ``by`` the best entry for each value of that key."""
    if by is not None:
        best: dict[str, Entry] = {}
        for e in board.entries:  # ranked order: the first entry of each value is its best
            best.setdefault(short(get_dotted(e.config, tuple(by.split(".")))), e)
        lines = [(f"{label(by)}={v}", e) for v, e in best.items()]
    else:
        lines = [(_name(board, e), e) for e in board.entries[:top]]
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = {"train": ":", "val": "--", "test": "-"}
    for i, (name, e) in enumerate(lines):
        c = colors[i % len(colors)]
        for ax, what in zip(axes, ("loss", "acc")):
            for split, ls in styles.items():
                xs, ys = _curve(sweeps[e.sweep], e.trial_ids, f"{split}_{what}")
                if xs:
                    ax.plot(xs, ys, ls, color=c, lw=1.4, label=name if what == "acc" and split == "test" else None)
    from matplotlib.lines import Line2D  # heavy: loads matplotlib; only this path needs it
    from matplotlib.ticker import MaxNLocator  # heavy: loads matplotlib; only this path needs it

    for ax, what in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 1.25, 1.75
        ax.grid(True, alpha=0.3)
    axes[0].set_title("loss")
    axes[1].set_title(f"accuracy, {'best per ' + label(by) if by else f'top {len(lines)} by ' + epoch_key(board.metric)}")
    # two legends: which line is which config (colour), and which split each style is, on both panels
    splits = [Line2D([], [], color="gray", ls=ls, lw=1.4, label=split) for split, ls in styles.items()]
    axes[0].legend(handles=splits, title="split", fontsize=8, loc="best", framealpha=0.6)
    axes[1].legend(fontsize=8, loc="best", framealpha=0.6, title="config (colour)")
    return _save(plt, fig, path)
