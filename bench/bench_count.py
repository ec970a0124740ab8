"""Closed-form parameter count vs building the same models on the meta device (ratio; goal >= 1000x).

    .venv/bin/python bench/bench_count.py
"""

from __future__ import annotations

import time

import torch

from model import build_model, count_params
from orchestrator.sweep.expand import expand
from orchestrator.sweep.spec import load_spec


def main() -> None:
    torch.set_num_threads(1)
    configs = [t.config["model"] for t in expand(load_spec("sweeps/joint.yaml"))]
    configs += [t.config["model"] for t in expand(load_spec("sweeps/single_param.yaml"))]

    def built(cfg: dict) -> int:
        with torch.device("meta"):
            return sum(p.numel() for p in build_model(cfg).parameters())

    assert [count_params(c) for c in configs] == [built(c) for c in configs]
    results = {}
    for name, fn, reps in (("closed form", count_params, 200), ("meta build", built, 3)):
        start = time.perf_counter()
        for _ in range(reps):
            for c in configs:
                fn(c)
        results[name] = (time.perf_counter() - start) / (reps * len(configs))
    for name, sec in results.items():
        print(f"{name:12s} {sec * 1e6:12.1f} us/model  ({len(configs)} models: joint + single_param)")
    print(f"ratio meta-build / closed-form: {results['meta build'] / results['closed form']:.0f}x (goal >= 1000x)")


if __name__ == "__main__":
    main()
