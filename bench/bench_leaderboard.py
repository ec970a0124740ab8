"""Leaderboard speed on a 10,000-trial sweep dir, and W&B's cost per epoch inside a trial.

1. A generated sweep dir: the real expansion's trials.jsonl shape (10,000 trials, 5 seeds per
   config), a result.json and a 50-epoch metrics.jsonl per trial, plus 2% running, 2% failed.
   Timed: the leaderboard as a table, as JSON (in-process and as the `orchestrate` command) and
   with --target (which reads every metrics.jsonl). Baseline, same process: json.load of every
   result.json and nothing else (the I/O floor). Goal: table and json <= 1 s.
2. W&B overhead: the same small CPU trial (synthetic data, 6 epochs) with and without its
   offline W&B run (the SLURM TrialJob path, in fresh processes, alternating). Goal: <= 5% of
   an epoch.

    .venv/bin/python bench/bench_leaderboard.py [--trials 10000] [--epochs 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.cli.results_cmds import TABLE_ROWS  # noqa: E402
from orchestrator.results.export import render  # noqa: E402
from orchestrator.results.leaderboard import collect, reach_target  # noqa: E402
from orchestrator.store.sweepdir import Submission, SweepDir  # noqa: E402
from orchestrator.sweep.expand import Trial, expand  # noqa: E402
from orchestrator.sweep.spec import load_spec  # noqa: E402


def generate(root: Path, n: int, epochs: int) -> SweepDir:
    """A sweep dir of n trials: configs from a real trial, 5 seeds per config."""
    spec_path = root / "big.yaml"
    spec_path.write_text(yaml.safe_dump({"name": "big", "base": {"model": {"layers": 3, "blocks": 1},
                                                                  "data": {"name": "synthetic", "val_size": 100}}}))
    spec = load_spec(spec_path)
    (proto,) = expand(spec)
    rng = random.Random(0)
    trials = []
    for i in range(n):
        cfg = json.loads(json.dumps(proto.config))
        cfg["model"]["channels"] = 8 + (i // 5) % 400
        cfg["model"]["kernel"] = (3, 5, 7)[(i // 2000) % 3]
        cfg["train"]["seed"] = i % 5
        trials.append(Trial(f"{i:012x}", cfg, 10_000 + 37 * ((i // 5) % 2000), True, "", "grid",
                            {"model.channels": cfg["model"]["channels"], "model.kernel": cfg["model"]["kernel"],
                             "train.seed": i % 5}))
    sweep = SweepDir(root / "runs" / "big")
    sweep.write_plan(spec.raw, trials, spec.search, spec.wandb)
    sweep.record([Submission(t.trial_id, str(i), "slurm", time.time(), "x", {}) for i, t in enumerate(trials)])
    for i, t in enumerate(trials):
        d = sweep.trial_dir(t.trial_id)
        d.mkdir(parents=True)
        best = 0.5 + 0.4 * rng.random()
        rows = [{"epoch": e, "lr": 0.1, "train_loss": 1.0, "train_acc": best * e / epochs, "val_loss": 1.0,
                 "val_acc": best * e / epochs, "test_loss": 1.0, "test_acc": best * e / epochs - 0.01,
                 "epoch_seconds": 10.0, "images_per_second": 5000.0} for e in range(1, epochs + 1)]
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        if i % 50 == 1:  # running: no result yet
            continue
        status = "failed" if i % 50 == 2 else "completed"
        (d / "result.json").write_text(json.dumps({
            "status": status, "trial_id": t.trial_id, "params": t.params, "epochs": epochs, "epochs_completed": epochs,
            "test_acc": rows[-1]["test_acc"], "val_acc": best, "best_val_acc": best, "best_test_acc": best - 0.01,
            "wall_seconds": 10.0 * epochs, "images_per_second": 5000.0, "failure_kind": "crash" if status == "failed" else None,
            "error": "Traceback (most recent call last):\nRuntimeError: x" if status == "failed" else None}))
    return sweep


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_board(n: int, epochs: int, repeats: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-board-"))
    try:
        t0 = time.perf_counter()
        sweep = generate(root, n, epochs)
        print(f"generated {n:,} trials x {epochs} epochs in {time.perf_counter() - t0:.1f} s ({sweep.path})")

        def floor() -> None:
            for t in sweep.trials():
                with contextlib.suppress(OSError):
                    json.loads((sweep.trial_dir(t["trial_id"]) / "result.json").read_text())

        def table(rows: int | None = TABLE_ROWS) -> None:
            from rich.console import Console

            with open(os.devnull, "w") as null:
                Console(file=null, width=200).print(render(collect([sweep]), "table", rows))

        def as_json() -> None:
            render(collect([sweep]), "json", None)

        def target() -> None:
            board = collect([sweep])
            reach_target(board, {sweep.name: sweep}, 0.5)
            render(board, "json", None)

        base = timed(floor, repeats)
        rows = [("baseline: json.load every result.json", base)]
        rows += [(f"leaderboard table, top {TABLE_ROWS} rows as printed (in-process)", timed(table, repeats)),
                 ("leaderboard --format json, every row (in-process)", timed(as_json, repeats)),
                 ("leaderboard table --all (1,200 rows through rich; in-process)", timed(lambda: table(None), repeats)),
                 ("leaderboard --target 0.5 --format json (reads every metrics.jsonl)", timed(target, repeats))]
        orch = str(Path(sys.executable).with_name("orchestrate"))
        for fmt in ("table", "json"):
            def cli(fmt: str = fmt) -> None:
                subprocess.run([orch, "leaderboard", str(sweep.path), "--format", fmt], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rows.append((f"orchestrate leaderboard --format {fmt} (the command, incl. start-up)", timed(cli, repeats)))
        board = collect([sweep])
        print(f"{len(board.entries):,} ranked rows (seed means), {len(board.running)} running, {len(board.failed)} failed")
        for name, secs in rows:
            print(f"  {name:72s} {secs:7.3f} s  {secs / base:6.1f}x baseline")
        goal = [s for name, s in rows if "command" in name] + [s for _, s in rows[1:3]]
        print("goal: table and json <= 1 s: " + ("met" if max(goal) <= 1.0 else "NOT met"))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_wandb(repeats: int) -> None:
    from orchestrator.backends.slurm.backend import TrialJob
    from orchestrator.tracking.wandb_run import plans_for

    root = Path(tempfile.mkdtemp(prefix="bench-wandb-"))
    try:
        spec_path = root / "w.yaml"
        base = {"model": {"layers": 2, "blocks": 1, "channels": 16},
                "data": {"name": "synthetic", "subset": 200, "test_subset": 50, "val_size": 200},
                "train": {"epochs": 6, "batch_size": 64}, "resources": {"cpus": 1}}
        spec_path.write_text(yaml.safe_dump({"name": "w", "base": base, "grid": {"train.seed": list(range(2 * repeats))}}))
        spec = load_spec(spec_path)
        trials = [t for t in expand(spec) if t.kept]
        sweep = SweepDir(root / "runs" / "w")
        sweep.write_plan(spec.raw, trials, spec.search, spec.wandb)
        plans = plans_for(sweep, [t.trial_id for t in trials])
        code = ("import pickle, sys, time; t=time.perf_counter(); pickle.load(open(sys.argv[1], 'rb'))(); "
                "print(time.perf_counter()-t)")
        env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")} | {"OMP_NUM_THREADS": "1"}
        walls: dict[bool, list[float]] = {True: [], False: []}
        epochs: dict[bool, list[float]] = {True: [], False: []}
        for i, t in enumerate(trials):
            on = i % 2 == 0
            job = root / f"{t.trial_id}.pkl"
            job.write_bytes(pickle.dumps(TrialJob(t.config, str(sweep.trial_dir(t.trial_id)), t.trial_id,
                                                  plans[t.trial_id] if on else None)))
            out = subprocess.run([sys.executable, "-c", code, str(job)], env=env, capture_output=True, text=True, check=True)
            walls[on].append(float(out.stdout.strip().splitlines()[-1]))
            rows = [json.loads(x) for x in (sweep.trial_dir(t.trial_id) / "metrics.jsonl").read_text().splitlines()]
            epochs[on].append(sum(r["epoch_seconds"] for r in rows) / len(rows))
        n = base["train"]["epochs"]
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        ep_off, ep_on = mean(epochs[False]), mean(epochs[True])
        wall_off, wall_on = mean(walls[False]), mean(walls[True])
        print(f"small CPU trial, {n} epochs, {repeats} runs each (fresh processes, alternating):")
        print(f"  epoch time without W&B {ep_off:.3f} s, with offline W&B {ep_on:.3f} s: "
              f"{100 * (ep_on / ep_off - 1):+.1f}% per epoch (goal <= 5%)")
        print(f"  whole trial incl. W&B start and finish: {wall_off:.2f} s vs {wall_on:.2f} s "
              f"({(wall_on - wall_off) / n:+.3f} s per epoch, {100 * (wall_on / wall_off - 1):+.1f}%)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bench_board(args.trials, args.epochs, args.repeats)
    bench_wandb(args.repeats)


if __name__ == "__main__":
    main()
