"""Ray backend benchmarks, each against a baseline run in the same command.

1. ASHA vs no scheduler on the same configs (default: 8 Adam learning rates on real CIFAR-10
   when ../shared/data has it, else synthetic): epochs trained, best validation accuracy found,
   wall time. Goal: >= 3x fewer epochs, and the full run's best config among ASHA's top 2.
2. Per-trial overhead: N trivial 1-epoch trials through Ray vs N times the same trial in-process.
   Goal: <= 0.5 s per trial.

    .venv/bin/python bench/bench_ray.py [--only asha|overhead] [--epochs 8] [--subset 200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ORCH = str(Path(sys.executable).parent / "orchestrate")
ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.xz"


def data_section(tmp: Path, subset: int) -> dict:
    cache = Path(os.environ.get("ORCHESTRATE_TEST_CACHE", Path.home() / ".cache" / "orchestrate-tests")) / "cifar10-jpeg"
    if not (cache / "test" / "truck").is_dir() and ARCHIVE.is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "-xJf", str(ARCHIVE), "-C", str(cache.parent)], check=True)
    if (cache / "test" / "truck").is_dir():
        return {"name": "cifar10", "root": str(cache), "subset": subset, "test_subset": 100, "val_size": 1000}
    print("(no real CIFAR-10 here: synthetic data)")
    return {"name": "synthetic", "subset": subset, "test_subset": 100, "val_size": 1000}


def submit(tmp: Path, name: str, doc: dict, *flags: str) -> tuple[float, list[dict]]:
    spec = tmp / f"{name}.yaml"
    spec.write_text(yaml.safe_dump({"name": name, **doc}, sort_keys=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.time()
    subprocess.run([ORCH, "submit", str(spec), "--backend", "ray", "--runs-dir", str(tmp / "runs"), "--json", *flags],
                   check=True, env=env, capture_output=True)
    wall = time.time() - t0
    out = subprocess.run([ORCH, "status", str(spec), "--runs-dir", str(tmp / "runs"), "--json"], check=True, env=env,
                         capture_output=True, text=True).stdout
    return wall, json.loads(out)


def bench_asha(tmp: Path, epochs: int, subset: int) -> None:
    lrs = [3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5]
    base = {"model": {"layers": 2, "blocks": 1, "channels": 16}, "data": data_section(tmp, subset),
            "train": {"epochs": epochs, "batch_size": 64, "optimizer": {"name": "adam", "lr": 1e-3}},
            "resources": {"cpus": 1}}
    grid = {"train.optimizer.lr": lrs}
    full_wall, full = submit(tmp, "full", {"base": base, "grid": grid})
    asha_wall, asha = submit(tmp, "asha", {"base": base, "grid": grid,
                                           "search": {"scheduler": "asha", "grace_period": 1, "reduction_factor": 3}})
    e_full, e_asha = (sum(s["epochs_completed"] for s in rows) for rows in (full, asha))
    best_full = max(full, key=lambda s: s["best"])
    top2 = [s["varying"] for s in sorted(asha, key=lambda s: -s["best"])[:2]]
    print(f"ASHA vs no scheduler, {len(lrs)} configs x {epochs} epochs ({base['data']['name']}, {subset}/class):")
    print(f"  epochs trained: {e_full} vs {e_asha} -> {e_full / e_asha:.2f}x fewer (goal >= 3x)")
    print(f"  best val acc:   {best_full['best']:.4f} ({best_full['varying']}) vs "
          f"{max(s['best'] for s in asha):.4f}")
    print(f"  wall time:      {full_wall:.1f} s vs {asha_wall:.1f} s -> {full_wall / asha_wall:.2f}x")
    print(f"  full run's best config among ASHA's top 2: {best_full['varying'] in top2} (top 2: {top2})")


def bench_overhead(tmp: Path, n: int) -> None:
    base = {"model": {"layers": 1, "blocks": 1, "channels": 2}, "data": {"name": "synthetic", "subset": 2, "test_subset": 1},
            "train": {"epochs": 1, "batch_size": 20, "augment": []}, "resources": {"cpus": 1}}
    wall, rows = submit(tmp, "trivial", {"base": base, "grid": {"train.seed": list(range(n))}}, "--max-concurrent", "1")
    assert all(s["state"] == "completed" for s in rows)
    code = ("import sys, time; sys.path.insert(0, '.'); from orchestrator.sweep.expand import expand; "
            "from orchestrator.sweep.spec import load_spec; from train.loop import run_trial; "
            f"ts = expand(load_spec('{tmp / 'trivial.yaml'}')); t0 = time.time(); "
            f"[run_trial(t.config, '{tmp}/inproc/' + t.trial_id, t.trial_id) for t in ts]; print(time.time() - t0)")
    t_in = time.time()
    inner = float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT,
                                 env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout.split()[-1])
    process = time.time() - t_in
    print(f"per-trial overhead, {n} trivial 1-epoch trials, one at a time:")
    print(f"  Ray: {wall:.1f} s in all (Ray start-up included); in-process loop: {inner:.2f} s "
          f"({process:.1f} s with interpreter and imports)")
    print(f"  overhead per trial: {(wall - process) / n:.3f} s (goal <= 0.5 s); ratio Ray/in-process {wall / process:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["asha", "overhead"])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--subset", type=int, default=200)
    ap.add_argument("--trials", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "overhead"):
            bench_overhead(Path(tmp), args.trials)
        if args.only in (None, "asha"):
            bench_asha(Path(tmp), args.epochs, args.subset)


if __name__ == "__main__":
    main()
