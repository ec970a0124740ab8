"""`orchestrate plan` wall time on a 100,000-point grid vs a 1-point grid (ratio; goal <= 5x).

Both are full command runs (interpreter start included), as a user would type them.

    .venv/bin/python bench/bench_plan.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ONE = "name: one\nbase: {model: {layers: 3}}\ngrid: {model.blocks: [2]}\n"
CHANNELS = ", ".join(map(str, range(1, 1001)))
BIG = ("name: big\nbase: {model: {layers: 3}, train: {epochs: 1}}\n"
       f"grid:\n  model.channels: [{CHANNELS}]\n  model.blocks: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
       "  model.kernel: [1, 3, 5, 7, 9]\n  train.seed: [0, 1]\n")


def timed(args: list[str], reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    exe = str(Path(sys.executable).parent / "orchestrate")
    with tempfile.TemporaryDirectory() as tmp:
        one, big = Path(tmp, "one.yaml"), Path(tmp, "big.yaml")
        one.write_text(ONE)
        big.write_text(BIG)
        for mode in ([], ["--json"]):
            t1 = timed([exe, "plan", str(one), *mode], 3)
            t100k = timed([exe, "plan", str(big), *mode], 2)
            label = " ".join(["plan", *mode])
            print(f"{label:12s} 1 point {t1:6.2f} s   100,000 points {t100k:6.2f} s   "
                  f"ratio {t100k / t1:.1f}x (goal <= 5x)")


if __name__ == "__main__":
    main()
