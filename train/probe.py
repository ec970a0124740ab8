"""Throughput of one model on this device, measured the way ``run_trial`` trains: uint8 batches
on the device, batched augmentation, autocast bf16 + channels_last on CUDA, SGD steps; and the
evaluation forward pass. What ``orchestrate calibrate`` fits its cost model to."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from model import build_model
from train.augment import augment, layout, normalize
from train.schema import resolve_train

EVAL_BATCH = {"cuda": 1000, "cpu": 128}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model_cfg: dict[str, Any], device: str = "cpu", batch: int = 128, steps: int = 6,
            warmup: int = 2) -> dict[str, float]:
    """Seconds per image for a training step and for evaluation (the median of the timed steps,
    after ``warmup`` untimed ones: a real epoch pays the typical step, not the best one)."""
    dev = torch.device(device)
    torch.manual_seed(0)
    model = build_model(model_cfg).to(dev)
    cuda = dev.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    tr = resolve_train({"augment": [{"name": "crop", "padding": 4}, "flip"]})
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator(dev).manual_seed(0)
    cpu_gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)

    def train_step() -> None:
        xb, _, _ = augment(x, y, tr["augment"], gen, cpu_gen)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
            loss = F.cross_entropy(model(layout(xb, dev)).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    eval_x = torch.randint(0, 256, (EVAL_BATCH.get(dev.type, 128), 3, 32, 32), dtype=torch.uint8, device=dev)

    @torch.no_grad()
    def eval_step() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
            model(layout(normalize(eval_x.float().div_(255)), dev)).float().argmax(1)

    out = {}
    for name, fn, n in (("train", train_step, batch), ("eval", eval_step, len(eval_x))):
        model.train(name == "train")
        times = []
        for i in range(warmup + steps):
            _sync(dev)
            t0 = time.perf_counter()
            fn()
            _sync(dev)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times) / n
    # once per epoch a trial checkpoints (model + optimizer, atomically, fsync'd): its cost grows
    # with the parameters, and on small epochs it is a good part of the time

    from train.checkpoint import save_checkpoint  # heavy: loads numpy and torch (seconds); only this path needs it

    with tempfile.TemporaryDirectory() as tmp:
        state = {"epoch": 1, "history": [], "best": {}, "stale": 0, "wall_seconds": 0.0}
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            save_checkpoint(Path(tmp), {**state, "model": model.state_dict(), "optimizer": opt.state_dict()})
            times.append(time.perf_counter() - t0)
    out["checkpoint"] = statistics.median(times)
    return out
