"""``orchestrate leaderboard`` and ``orchestrate sync``: readers of sweep dirs (no scheduler)."""

from __future__ import annotations

import json
import sys

import click

from configcheck import ConfigError
from orchestrator.cost import calibrate as run
from orchestrator.results.board import Board
from orchestrator.results.export import FORMATS, cells, columns, footer, pick, print_table, render
from orchestrator.results.leaderboard import attach_wandb, collect, reach_target
from orchestrator.results.plots import curves_plot, pareto_plot, search_hours, search_order
from orchestrator.results.ranking import held
from orchestrator.results.stages_view import ranking_plot, stage_board, stage_lines
from orchestrator.store.stages import stage_records
from orchestrator.store.sweepdir import find_sweeps
from orchestrator.sweep.naming import leaf_keys
from orchestrator.tracking.sync import SyncError, publish_board
from orchestrator.tracking.sync import sync as do_sync

RUNS_HELP = "Where sweep directories live (runs/<sweep name>/...)."
TABLE_ROWS = 100  # a person reads the top of a 10,000-trial board; files and --all get every row


def _sweeps(targets: tuple[str, ...], runs_dir: str) -> list:
    if not targets:
        return find_sweeps(None, runs_dir)
    out, seen = [], set()
    for t in targets:
        for s in find_sweeps(t, runs_dir):
            if s.path not in seen:
                seen.add(s.path)
                out.append(s)
    return out


@click.command()
@click.argument("targets", metavar="[SPEC|SWEEP_DIR ...]", nargs=-1)
@click.option("--runs-dir", default="runs", show_default=True, help=RUNS_HELP)
@click.option("--metric", default=None,
              help="A result.json field to rank by (default best_val_acc; test_acc where no validation split is held out).")
@click.option("--top", type=click.IntRange(1), default=None, metavar="K",
              help=f"Show the best K rows (and curves). The table shows {TABLE_ROWS} unless --all.")
@click.option("--all", "show_all", is_flag=True, help="The table: every row.")
@click.option("--format", "fmt", type=click.Choice(tuple(FORMATS)), default="table", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), default=None, metavar="FILE.png",
              help="Accuracy vs params (log x), the Pareto front and the budget.")
@click.option("--curves", type=click.Path(dir_okay=False), default=None, metavar="FILE.png",
              help="Loss/accuracy per epoch of the top K (default 5), or one line per --by value.")
@click.option("--by", default=None, metavar="KEY", help="Curves: the best entry per value of KEY (train.optimizer.name).")
@click.option("--target", type=float, default=None, metavar="ACC", help="Epochs and minutes until the metric first reached ACC.")
@click.option("--per-seed", is_flag=True, help="One row per trial instead of seed means.")
@click.option("--wandb", "to_wandb", is_flag=True, help="Log the board and plots as one sweep-level W&B run per sweep.")
@click.option("--stage", default=None, metavar="NAME",
              help="A study: rank this stage's trials (default: the last stage with results), traced to earlier stages.")
@click.option("--columns", "wanted", default=None, metavar="A,B,...",
              help="Markdown/LaTeX columns, e.g. rank,config,params,metric,test acc,n,epochs,wall,status,wandb "
                   "(config: every varying key; metric: the ranking one). LaTeX's default is what a paper prints: "
                   "rank, config, params, metric, test acc, n.")
def leaderboard(targets: tuple[str, ...], runs_dir: str, metric: str | None, top: int | None, show_all: bool, fmt: str,
                plot: str | None, curves: str | None, by: str | None, target: float | None, per_seed: bool,
                to_wandb: bool, wanted: str | None, stage: str | None) -> None:
    """Rank finished trials (completed and stopped early) of one or more sweeps from their files:
    seeds aggregated (mean ± std), the accuracy-vs-params Pareto front marked, and every trial not
    ranked (running, failed, missing) counted below. Works offline and while trials run."""
    for path, name in ((plot, "--plot"), (curves, "--curves")):
        if path is not None and not path.lower().endswith(".png"):
            raise ConfigError(name, f"{path}: give a .png file name")
    sweeps = _sweeps(targets, runs_dir)
    studies = [s for s in sweeps if stage_records(s)]
    heading, stage_notes, held_rows = "", [], []
    if len(sweeps) == 1 and studies:  # one study: one stage of it, and how each stage's ranking held
        board, heading = stage_board(sweeps[0], stage, metric, per_seed)
        held_rows = held(sweeps[0])
        stage_notes = [line for line in stage_lines(sweeps[0], held_rows) if not line.startswith("stage ")]
    elif stage is not None:
        raise ConfigError("--stage", "is for one study (a sweep dir made from a spec with stages:)")
    else:
        board = collect(sweeps, metric, per_seed)
    by_name = {s.name: s for s in sweeps}
    if by is not None:
        known = {leaf for e in board.entries for k, v in e.config.items() for leaf in leaf_keys(k, v)}
        if board.entries and by not in known:
            raise ConfigError("--by", f"{by!r} is not a config key of these trials; e.g. {', '.join(sorted(known)[:8])}")
    if target is not None:
        reach_target(board, by_name, target)
    columns_wanted = tuple(c.strip() for c in wanted.split(",") if c.strip()) if wanted else None
    if fmt == "json" or "wandb" in (columns_wanted or ()):
        attach_wandb(board, sweeps)
    if columns_wanted is not None:
        pick(board, columns_wanted)  # an unknown name: one line listing the valid ones, exit 2
    rows = top
    if fmt == "table" and top is None and not show_all and len(board.entries) > TABLE_ROWS:
        rows = TABLE_ROWS
    if heading:
        click.echo(heading, err=fmt != "table")
    if fmt == "table":
        print_table(board, rows, more_hint=rows != top)
        for line in stage_notes:
            click.echo(line)
    else:
        out = render(board, fmt, rows, columns_wanted)
        click.echo(out, nl=not str(out).endswith("\n"))
        for line in [*footer(board), *stage_notes]:  # stdout stays parseable; the accounting goes to stderr
            click.echo(line, err=True)
    images = {}
    if plot:
        images["pareto"] = pareto_plot(board, plot, search_order(board, by_name), search_hours(board, by_name))
        click.echo(f"wrote {plot}", err=True)
        if held_rows:  # a study: each stage's metric against the next's, for the configs it carried
            stages_png = plot[:-4] + "-stages.png"
            images["stages"] = ranking_plot(held_rows, stages_png)
            click.echo(f"wrote {stages_png}", err=True)
    if curves:
        images["curves"] = curves_plot(board, by_name, curves, top or 5, by)
        click.echo(f"wrote {curves}", err=True)
    if to_wandb:
        _publish(board, sweeps, images, columns, cells)


def _publish(board, sweeps, images, columns, cells) -> None:  # noqa: ANN001 - CLI glue

    for sweep in sweeps:
        mine = Board(**{**board.__dict__, "_seeds": None, "entries": [e for e in board.entries if e.sweep == sweep.name],
                        "sweeps": [sweep.name]})
        pics = dict(images) if len(sweeps) == 1 else {}
        if not pics:  # each sweep's run carries its own plots, kept beside its results
            where = sweep.path / "leaderboard"
            pics = {"pareto": pareto_plot(mine, where / "pareto.png"),
                    "curves": curves_plot(mine, {sweep.name: sweep}, where / "curves.png")}
        try:
            where = publish_board(sweep, columns(mine), [cells(mine, e) for e in mine.entries], pics)
        except Exception as err:  # noqa: BLE001 - W&B's failure is reported, the board is already printed
            click.echo(f"error: --wandb: W&B failed for sweep {sweep.name}: {type(err).__name__}: {err}", err=True)
            sys.exit(1)
        click.echo(f"W&B: leaderboard of {sweep.name} logged to {where}", err=True)


@click.command()
@click.argument("target", metavar="[SPEC|SWEEP_DIR]", required=False)
@click.option("--runs-dir", default="runs", show_default=True, help=RUNS_HELP)
@click.option("--jobs", type=click.IntRange(1, 64), default=4, show_default=True, help="Uploads at once.")
@click.option("--dry-run", is_flag=True, help="Say what would be uploaded; upload nothing.")
@click.option("--json", "as_json", is_flag=True)
def sync(target: str | None, runs_dir: str, jobs: int, dry_run: bool, as_json: bool) -> None:
    """Upload a sweep's offline W&B runs (trials log offline by default), in parallel, skipping runs
    already uploaded and unchanged and runs still being written. On a cluster without network:
    copy the sweep dir (rsync -a) to a machine with network and run `orchestrate sync DIR` there."""
    reports = []
    for sweep in find_sweeps(target, runs_dir):
        try:
            rep = do_sync(sweep, jobs, dry_run)
        except SyncError as err:
            n = len(list((sweep.path / "wandb" / "wandb").glob("offline-run-*")))
            click.echo(f"sync: {err}; {n} offline runs wait in {sweep.path / 'wandb'}: copy {sweep.path} to a machine "
                       "with network and run `orchestrate sync DIR` there", err=True)
            sys.exit(1)
        reports.append((sweep, rep))
        if not as_json:
            verb = "would upload" if dry_run else "uploaded"
            click.echo(f"{sweep.name}: {verb} {len(rep.uploaded)} runs"
                       + (f" ({rep.bytes / 1e6:.1f} MB in {rep.seconds:.1f} s)" if rep.uploaded and not dry_run else "")
                       + (f" ({'would close' if dry_run else 'closed'} {len(rep.closed)} left open by a killed trial)"
                          if rep.closed else "")
                       + f"; {len(rep.skipped)} already uploaded and unchanged; {len(rep.live)} still being written"
                       + (" (sync again when they finish)" if rep.live else ""))
            for name, err in rep.failed:
                click.echo(f"  failed {name}: {err}", err=True)
    if as_json:
        click.echo(json.dumps([{"sweep": s.name, **r.__dict__} for s, r in reports], indent=1))
    if any(r.failed for _, r in reports):
        sys.exit(1)


@click.command()
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--quick", is_flag=True, help="5 small reference models, a few steps each (seconds on a CPU).")
@click.option("--threads", type=int, default=None, help="CPU threads per trial (default 1, as resources.cpus: 1 trains).")
@click.option("--json", "as_json", is_flag=True)
def calibrate(device: str, quick: bool, threads: int | None, as_json: bool) -> None:
    """Measure training and evaluation throughput of reference ResNets on this device, fit
    seconds per image = a + b x MACs, and store it (per device name) for plan's time estimates."""
    def show(i: int, n: int, cfg: dict, m: dict) -> None:
        if not as_json:
            click.echo(f"  [{i}/{n}] layers={cfg['layers']} blocks={cfg['blocks']} channels={cfg['channels']}: "
                       f"train {m['train'] * 1e3:.3f} ms/img, eval {m['eval'] * 1e3:.3f} ms/img", err=True)

    cal = run(device, quick, threads, show)
    if as_json:
        click.echo(json.dumps(cal, indent=1))
        return
    f = cal["fit"]
    click.echo(f"{cal['name']}: train s/img = {f['train']['a']:.3g} + {f['train']['b']:.3g} x MACs; "
               f"eval s/img = {f['eval']['a']:.3g} + {f['eval']['b']:.3g} x MACs")
    worst = max(abs(r[f"{k}_error"]) for r in cal["references"] for k in ("train", "eval"))
    click.echo(f"fit error on the {len(cal['references'])} reference models: at most {100 * worst:.1f}%; "
               f"stored in {cal['path']}")
