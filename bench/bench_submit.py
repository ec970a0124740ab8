"""Submitting a 1,000-trial sweep to SLURM: seconds from command start until every array task is
queued, and how many times sbatch ran (goal <= 5 s, <= 2 calls). Needs a cluster
(slurm/local-cluster.sh up); cancels the jobs afterwards.

    .venv/bin/python bench/bench_submit.py [--trials 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=1000)
    args = ap.parse_args()
    exe = str(Path(sys.executable).parent / "orchestrate")
    real = shutil.which("sbatch")
    assert real, "no sbatch: run slurm/local-cluster.sh up first"
    # Cancelled tasks may still be writing their logs into tmp while it is removed: never fail on that.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        shim, log = Path(tmp, "bin"), Path(tmp, "sbatch.calls")
        shim.mkdir()
        (shim / "sbatch").write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {real} "$@"\n')
        (shim / "sbatch").chmod(0o755)
        spec = Path(tmp, "big.yaml")
        spec.write_text(
            "name: bench\nbase:\n  model: {layers: 2, blocks: 1, channels: 4}\n"
            "  data: {name: synthetic, subset: 10, test_subset: 10}\n  train: {epochs: 1}\n"
            f"  resources: {{cpus_per_task: 1, time: '00:05:00', array_parallelism: 4}}\nrepeat: {args.trials}\n")
        env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}
        start = time.perf_counter()
        proc = subprocess.run([exe, "submit", str(spec), "--runs-dir", str(Path(tmp, "runs")), "--json"],
                              env=env, capture_output=True, text=True, check=True, cwd=tmp)
        returned = time.perf_counter() - start
        subs = json.loads(proc.stdout)["submitted"]
        arrays = sorted({s["array_id"] for s in subs})
        while True:  # every task known to the scheduler (pending, running or done)
            seen = subprocess.run(["sacct", "-n", "-X", "-P", "-j", ",".join(arrays), "-o", "JobID"],
                                  capture_output=True, text=True).stdout.split()
            queued = subprocess.run(["squeue", "-h", "-r", "-j", ",".join(arrays), "-o", "%i"],
                                    capture_output=True, text=True).stdout.split()
            if len(set(queued) | {s for s in seen if "[" not in s}) >= len(subs):
                break
            time.sleep(0.05)
        all_queued = time.perf_counter() - start
        subprocess.run(["scancel", *arrays], check=False)
        calls = log.read_text().count("\n") if log.exists() else 0
        deadline = time.time() + 120  # let the cancelled tasks leave the nodes before their folder goes
        while time.time() < deadline and subprocess.run(["squeue", "-h", "-j", ",".join(arrays), "-o", "%i"],
                                                        capture_output=True, text=True).stdout.strip():
            time.sleep(0.5)
    print(f"{len(subs)} trials -> {len(arrays)} array job(s), {calls} sbatch call(s)")
    print(f"command returned after {returned:.2f} s; all array tasks queued after {all_queued:.2f} s "
          f"(goal <= 5 s, <= 2 sbatch calls)")


if __name__ == "__main__":
    main()
