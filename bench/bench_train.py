"""Training throughput: this pipeline vs a seed-style baseline, same model, same command.

Baseline (what the seeds run): a torchvision-style Dataset over PIL images with
RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor + Normalize, DataLoader with 2
workers, fp32, batch 128. Ours: uint8 data resident on the device, per-sample crop + flip
batched on the device, no DataLoader (bf16 + channels_last on CUDA). Prints both images/s and
the ratio (goal >= 1.5x on a CPU machine; on a GPU, also seconds/epoch for the seed-000 model).

    .venv/bin/python bench/bench_train.py [--steps 30] [--model layers=3,blocks=2,channels=16]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from model import build_model
from train.augment import augment
from train.data import synthetic
from train.schema import resolve_train

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class PILDataset(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does per item: uint8 HWC -> PIL -> transforms."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        from torchvision import transforms as T

        self.x, self.y = x.transpose(0, 2, 3, 1).copy(), y
        self.tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.tf(Image.fromarray(self.x[i])), int(self.y[i])


def step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, amp: bool) -> None:
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        loss = F.cross_entropy(model(x).float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def baseline(model_cfg: dict, x: np.ndarray, y: np.ndarray, steps: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = build_model(model_cfg).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = torch.utils.data.DataLoader(PILDataset(x, y), batch_size=128, shuffle=True, num_workers=2,
                                         drop_last=True, persistent_workers=False)
    it = iter(loader)
    xb, yb = next(it)  # warm-up: workers started, first batch through
    step(model, opt, xb.to(device), yb.to(device), False)
    sync(device)
    start, n = time.perf_counter(), 0
    for _ in range(steps):
        xb, yb = next(it)
        step(model, opt, xb.to(device, non_blocking=True), yb.to(device, non_blocking=True), False)
        n += len(yb)
    sync(device)
    return n / (time.perf_counter() - start)


def ours(model_cfg: dict, x: np.ndarray, y: np.ndarray, steps: int, device: torch.device) -> float:
    torch.manual_seed(0)
    cuda = device.type == "cuda"
    model = build_model(model_cfg).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ops = resolve_train({"augment": [{"name": "crop", "padding": 4}, "flip"]})["augment"]
    tx, ty = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    gen, cpu_gen = torch.Generator(device).manual_seed(0), torch.Generator().manual_seed(0)
    perm = torch.randperm(len(ty), device=device, generator=gen)

    def one(s: int) -> None:
        idx = perm[(s * 128) % (len(ty) - 128):][:128]
        xb, _, _ = augment(tx[idx], ty[idx], ops, gen, cpu_gen)
        if cuda:
            xb = xb.contiguous(memory_format=torch.channels_last)
        step(model, opt, xb, ty[idx], cuda)

    one(0)
    sync(device)
    start = time.perf_counter()
    for s in range(steps):
        one(s + 1)
    sync(device)
    return steps * 128 / (time.perf_counter() - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--model", default="layers=3,blocks=1,channels=16")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model_cfg = {k: int(v) for k, v in (kv.split("=") for kv in args.model.split(","))}
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = synthetic(500, 1)  # pixel content does not change the cost of either pipeline
    x, y = data.train_x, data.train_y
    print(f"device {device}, model {model_cfg}, batch 128, {args.steps} timed steps, torch threads {args.threads}")
    b = baseline(model_cfg, x, y, args.steps, device)
    o = ours(model_cfg, x, y, args.steps, device)
    print(f"seed-style PIL + DataLoader(2 workers), fp32: {b:9.0f} img/s")
    print(f"orchestrate device-resident + batched aug:    {o:9.0f} img/s")
    print(f"ratio: {o / b:.2f}x (goal >= 1.5x on CPU, >= 5x on GPU)")
    if device.type == "cuda":
        final, full = {"layers": 3, "blocks": 2, "channels": 85}, synthetic(5000, 1)
        for name, fn in (("seed-style baseline", baseline), ("orchestrate", ours)):
            ips = fn(final, full.train_x, full.train_y, 50000 // 128 - 2, device)
            print(f"seed-000 final model (3, 2, 85), {name}: {50000 / ips:.2f} s/epoch")

if __name__ == "__main__":
    main()
