"""Narrow models on CPU (issue 16): torch 2.14's oneDNN corrupts memory in the backward of <= 8
channel convolutions fed channels-last input (SIGSEGV, double free, or a hang). The trainer hands
the CPU model contiguous NCHW batches; these tests train such models in fresh processes, several
times, since the corruption is not deterministic, and check the layout itself."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from kit import ROOT

from train.augment import augment, layout
from train.schema import resolve_train

# one trial, the real trainer (crop + flip: the crop's gather leaves channels-last strides)
SCRIPT = """
import sys, torch
from orchestrator.sweep.trialconfig import resolve_trial
from train.loop import run_trial
torch.set_num_threads(1)
width = int(sys.argv[2])
cfg = resolve_trial({"model": {"layers": 2, "blocks": 1, "channels": width},
                     "data": {"name": "synthetic", "subset": 20, "test_subset": 5},
                     "train": {"epochs": 1, "batch_size": 50, "optimizer": {"name": "sgd", "lr": 0.05},
                               "augment": [{"name": "crop", "padding": 4}, "flip"]},
                     "resources": {"cpus": 1}})
r = run_trial(cfg, sys.argv[1], f"narrow{width}")
assert r["status"] == "completed", r
print("done", width, r["epochs_completed"])
"""


def test_cpu_batches_reach_the_model_as_contiguous_nchw() -> None:
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    tr = resolve_train({"augment": [{"name": "crop", "padding": 4}, "flip"]})
    g = torch.Generator().manual_seed(0)
    batch, _, _ = augment(x, torch.zeros(8, dtype=torch.long), tr["augment"], g, torch.Generator().manual_seed(1))
    assert not batch.is_contiguous()  # what the crop leaves: the case the layout must fix
    out = layout(batch, torch.device("cpu"))
    assert out.is_contiguous() and not out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, batch)


@pytest.mark.parametrize("width", [2, 4, 6, 8])
def test_narrow_resnets_train_on_cpu_in_fresh_processes(tmp_path: Path, width: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}

    def once(i: int) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / f"t{i}"), str(width)], cwd=ROOT,
                              capture_output=True, text=True, env=env, timeout=240)

    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(once, range(3)))
    for i, proc in enumerate(runs):
        assert proc.returncode == 0, f"run {i} of width {width}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
        assert f"done {width} 1" in proc.stdout
