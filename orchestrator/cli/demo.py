"""``orchestrate demo``: the embedded default end to end. Find real CIFAR-10 (or fall back to
synthetic data, saying so), run the two-stage study ``sweeps/demo.yaml`` through Ray Tune here (a
screen with ASHA, then its top 2 trained longer), and show the last stage's leaderboard (trials
ranked by their best validation accuracy, traced to their screen results, the Pareto front
marked) and how well the screen's ranking held."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import click

from orchestrator.cli.render import print_submit
from orchestrator.cost import find, hours, makespan, provenance, trial_seconds
from orchestrator.results.export import print_table
from orchestrator.results.stages_view import stage_board, stage_lines
from orchestrator.study.expand import possible
from orchestrator.study.spec import load_study
from orchestrator.submit import submit

ROOT = Path(__file__).resolve().parents[2]  # the project root (orchestrator/cli/demo.py)
DEMO_SPEC = ROOT / "sweeps" / "demo.yaml"
# Where this project's machines keep the real images (see ../shared/data/README.md); override
# with ORCHESTRATE_CIFAR_ARCHIVE.
ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.xz"


def _has_cifar(root: Path) -> bool:
    from train.data import DataNotFound, locate  # heavy: loads numpy; only this path needs it

    try:
        locate({"name": "cifar10", "root": str(root), "format": "auto", "download": False})
        return True
    except DataNotFound:
        return False


def find_data(data_dir: Path) -> tuple[list[str], str]:
    """(--set overrides, one line saying which data the demo uses and why)."""
    for root in (data_dir, data_dir / "cifar10-jpeg"):
        if _has_cifar(root):
            return ["data.name=cifar10", f"data.root={root}"], f"data: real CIFAR-10 in {root}"
    archive = Path(os.environ.get("ORCHESTRATE_CIFAR_ARCHIVE", ARCHIVE))
    if archive.is_file():
        dest = data_dir / "cifar10-jpeg"
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=data_dir, prefix=".unpack-"))
        try:  # unpacked beside, renamed when whole: an interrupted unpack never looks like data
            subprocess.run(["tar", "-xJf", str(archive), "-C", str(tmp)], check=True)
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return (["data.name=cifar10", f"data.root={dest}"],
                f"data: real CIFAR-10, unpacked from {archive} into {dest} (decoded once, then cached there)")
    # The synthetic classes are easy: at the demo's real-data size every trial reaches 1.0 and
    # there is nothing to rank or stop early. 30 images per class keeps them apart, and quick.
    return (["data.subset=30", "data.test_subset=30", "data.val_size=100"],
            f"data: synthetic, 30 images per class (no CIFAR-10 in {data_dir} and no archive at {archive}; put "
            "cifar-10-batches-py or the JPEG folders there, or set ORCHESTRATE_CIFAR_ARCHIVE)")


def estimate(trials: list) -> str:
    """The demo's own time estimate, printed before it starts: from this CPU's stored calibration
    when there is one (named), else from a probe of the demo's smallest and largest model, a few
    training steps each (seconds). An upper bound: ASHA stops some trials early."""
    import torch  # heavy: loads torch (seconds); only this path needs it

    from train.probe import measure  # heavy: loads torch (seconds); only this path needs it

    kept = [t for t in trials if t.kept]
    cpus = int(kept[0].config["resources"].get("cpus") or 1)
    slots = max(1, len(os.sched_getaffinity(0)) // cpus)
    cal = find("cpu")
    source = provenance(cal)[0] if cal else ""
    if cal is None:
        torch.set_num_threads(cpus)
        ends = [min(kept, key=lambda t: t.macs or 0), max(kept, key=lambda t: t.macs or 0)]
        probes = [measure(t.config["model"], steps=3, warmup=1) for t in ends]
        fit = {}
        for k in ("train", "eval"):
            x0, x1 = (t.macs or 0 for t in ends)
            y0, y1 = (p[k] for p in probes)
            b = (y1 - y0) / (x1 - x0) if x1 != x0 else 0.0
            fit[k] = {"a": y0 - b * x0, "b": max(0.0, b)}
        cal = {"fit": fit, "startup_s": 10.0}
        source = f"a probe of its smallest and largest model just now, {cpus} thread each"
    wall = makespan([trial_seconds(cal, t.config, t.macs) for t in kept], slots)
    return (f"estimate: at most {hours(wall)} for its {len(kept)} trials, {slots} at once (ASHA stops some early; "
            f"from {source}; a loaded machine takes longer)")


def run_demo(data_dir: str, runs_dir: str, overrides: tuple[str, ...]) -> None:

    sets, line = find_data(Path(data_dir).resolve())
    click.echo(line)
    # every stage's trials (a later stage's for the configs its selection could carry first)
    click.echo(estimate([t for p in possible(load_study(DEMO_SPEC, (*sets, *overrides))) for t in p["trials"]]))
    resume = ["orchestrate", "demo", *(["--runs-dir", runs_dir] if runs_dir != "runs" else []),
              *(["--data-dir", data_dir] if data_dir != "data" else []), *(w for o in overrides for w in ("--set", o))]
    report = submit(str(DEMO_SPEC), (*sets, *overrides), {}, runs_dir, "ray",
                    backend_options={"address": None, "max_concurrent": None, "as_json": False}, resume=resume)
    print_submit(report, str(DEMO_SPEC), dry_run=False)
    board, heading = stage_board(report.sweep, None, None, False)  # the board `orchestrate leaderboard` prints
    click.echo(heading)
    console = print_table(board, None)
    for line in stage_lines(report.sweep):
        console.print(line, highlight=False, soft_wrap=True)
    shown = report.sweep.path
    console.print(f"plots: orchestrate leaderboard {shown} --plot front.png --curves curves.png; "
                  f"W&B runs (offline): {shown / 'wandb'}, upload with orchestrate sync {shown}", highlight=False,
                  soft_wrap=True)
