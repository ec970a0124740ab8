"""ASHA on SLURM vs the same trials without it, on the local cluster (slurm/local-cluster.sh up):
epochs trained, the best validation accuracy found, wall time; ratios in the same command.

    .venv/bin/python bench/bench_asha_slurm.py [--trials 9] [--epochs 9] [--eta 3]

The grid: learning rates log-spaced over three decades for one small ResNet on synthetic data,
each trial ``--epochs`` long; ASHA with grace period 1 and reduction factor ``--eta`` (rungs 1,
eta, eta^2, ... epochs) run by the sweep's driver job; the other run queues every trial to the
end. Both at most 2 trials at a time (the cluster's two nodes)."""

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

ORCH = str(Path(sys.executable).parent / "orchestrate")


def spec(trials: int, epochs: int, eta: int, asha: bool) -> dict:
    lrs = [round(10 ** (-3 + 3 * i / max(1, trials - 1)), 6) for i in range(trials)]
    return {
        "name": "asha" if asha else "full",
        "base": {"model": {"family": "resnet", "layers": 2, "blocks": 1, "channels": 8},
                 "data": {"name": "synthetic", "subset": 60, "test_subset": 20, "val_size": 100},
                 "train": {"epochs": epochs, "batch_size": 50, "optimizer": {"name": "sgd", "lr": 0.01},
                           "scheduler": {"name": "cosine"}, "augment": ["flip"]},
                 "resources": {"cpus_per_task": 1, "time": "00:20:00", "array_parallelism": 2}},
        "grid": {"train.optimizer.lr": lrs},
        "search": {"scheduler": "asha" if asha else "none", "grace_period": 1, "reduction_factor": eta,
                   "driver": {"time": "00:30:00", "mem_gb": 0.5}},
    }


def state(job: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout.strip()
    return out or "ENDED"


def run(tmp: Path, raw: dict, env: dict[str, str]) -> tuple[int, float, float, int]:
    """(epochs trained, best val_acc, wall seconds, trials stopped early) of one sweep, submitted and waited for."""
    path = tmp / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    start = time.time()
    out = subprocess.run([ORCH, "submit", str(path), "--backend", "slurm", "--runs-dir", str(tmp / "runs"), "--json"],
                         capture_output=True, text=True, env=env, check=True).stdout
    sweep = tmp / "runs" / raw["name"]
    got = json.loads(out)
    jobs = {s["job_id"].split("_")[0] for s in got["submitted"]}
    if got.get("driver"):
        jobs = {str(json.loads((sweep / "search" / "driver.json").read_text())["job_id"])}
    while any(state(j) != "ENDED" for j in jobs):
        time.sleep(1)
    while len(list((sweep / "trials").glob("*/result.json"))) < len(raw["grid"]["train.optimizer.lr"]):
        time.sleep(1)
    wall = time.time() - start
    results = [json.loads(p.read_text()) for p in (sweep / "trials").glob("*/result.json")]
    return (sum(r["epochs_completed"] for r in results), max(r["best_val_acc"] for r in results), wall,
            sum(r["status"] == "stopped_early" for r in results))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=9)
    ap.add_argument("--epochs", type=int, default=9)
    ap.add_argument("--eta", type=int, default=3)
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ORCHESTRATE_SEARCH_POLL_S": "2"}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        full = run(tmp, spec(args.trials, args.epochs, args.eta, False), env)
        asha = run(tmp, spec(args.trials, args.epochs, args.eta, True), env)
    print(f"{args.trials} trials x {args.epochs} epochs, 2 at a time, local SLURM cluster")
    print(f"  without ASHA: {full[0]} epochs, best val_acc {full[1]:.4f}, {full[2]:.0f} s")
    print(f"  ASHA (grace 1, eta {args.eta}, the driver job): {asha[0]} epochs ({asha[3]} trials stopped early), "
          f"best val_acc {asha[1]:.4f}, {asha[2]:.0f} s")
    print(f"  ratio: {full[0] / asha[0]:.2f}x fewer epochs, best {'the same' if asha[1] == full[1] else 'differs'} "
          f"({asha[1] - full[1]:+.4f}), wall {asha[2] / full[2]:.2f}x")


if __name__ == "__main__":
    main()
