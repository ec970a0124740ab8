"""What bench/faults.py's scenarios share: the CLI, one small config, reading a trial's epochs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ORCH = str(Path(sys.executable).parent / "orchestrate")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TINY = {"model": {"layers": 2, "blocks": 1, "channels": 8},
        "data": {"name": "synthetic", "subset": 64, "test_subset": 20, "val_size": 0},
        "train": {"epochs": 12, "batch_size": 32, "optimizer": {"name": "sgd", "lr": 0.05}},
        "resources": {"cpus_per_task": 1, "time": "00:10:00"}}
Row = tuple[str, str, str, str, str, bool]


def spec(tmp: Path, name: str, epochs: int = 12, **extra) -> Path:
    path = tmp / f"{name}.yaml"
    base = {**TINY, "train": {**TINY["train"], "epochs": epochs}, **extra.pop("base", {})}
    path.write_text(yaml.safe_dump({"name": name, "base": base, **extra}))
    return path


def orch(tmp: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    runs = [] if args[0] == "train" else ["--runs-dir", str(tmp / "runs")]
    return subprocess.run([ORCH, *args, *runs], capture_output=True, text=True, env={**ENV, **kw.pop("env", {})},
                          cwd=tmp, timeout=900, **kw)


def epochs_of(d: Path) -> list[int]:
    try:
        return [json.loads(ln)["epoch"] for ln in (d / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    except (OSError, ValueError):
        return []


def wait_epochs(d: Path, n: int, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while len(epochs_of(d)) < n:
        if time.time() > deadline:
            raise TimeoutError(f"{d} never reached epoch {n}")
        time.sleep(0.1)


def resumed_after(text: str) -> int:
    return int(text.split("resuming after epoch ")[1].split("/")[0]) if "resuming after epoch " in text else 0


def trained(text: str) -> int:
    """Epoch lines a run printed: with the resume point, how much work was done twice."""
    return sum(1 for ln in text.splitlines() if "] epoch " in ln)
