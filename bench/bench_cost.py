"""Cost before compute, measured:

1. ``count_macs`` (closed form) vs torch's FLOP counter on the built model (meta tensors), over
   seed 000's grid of ResNets: the speed ratio (goal >= 1000x) and that they agree.
2. Estimate accuracy on this CPU: ``orchestrate calibrate`` (quick), then 8 models of different
   sizes trained for 1 epoch on a real-data subset (CIFAR-10 from ../shared when present, else
   synthetic, stated); median absolute error of the estimated epoch time (goal <= 25%).
3. Packing: trials per hour for 4 small trials in one 2-CPU allocation, run K = 1, 2, 4 at a
   time (PackedJob, the code a SLURM array task runs), same trials, same machine.

    .venv/bin/python bench/bench_cost.py [--skip-accuracy] [--skip-packing]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bench_macs() -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from model import build_model, count_macs

    cfgs = [{"layers": n, "blocks": b, "channels": c} for n in (2, 3, 4, 5) for b in (1, 2, 3) for c in (16, 32, 64)]
    t0 = time.perf_counter()
    closed = [count_macs(c) for c in cfgs]
    t_closed = time.perf_counter() - t0
    t0 = time.perf_counter()
    counted = []
    for c in cfgs:
        with torch.device("meta"):
            m = build_model(c).eval()
            with FlopCounterMode(display=False) as fc:
                m(torch.zeros(1, 3, 32, 32))
        counted.append(fc.get_total_flops() // 2)
    t_counter = time.perf_counter() - t0
    assert closed == counted, "count_macs disagrees with the flop counter"
    print(f"count_macs: {len(cfgs)} ResNets, all equal to the flop counter; closed form {t_closed * 1e6 / len(cfgs):.1f} us "
          f"per model vs {t_counter * 1e3 / len(cfgs):.1f} ms built+counted: {t_counter / t_closed:,.0f}x (goal >= 1000x)")


def bench_accuracy() -> None:
    import torch

    from orchestrator.cost import calibrate, epoch_seconds
    from orchestrator.sweep.expand import expand
    from orchestrator.sweep.spec import spec_from_text
    from train.loop import run_trial

    torch.set_num_threads(1)
    cal_dir = Path(tempfile.mkdtemp(prefix="bench-cal-"))
    os.environ["ORCHESTRATE_CALIBRATION_DIR"] = str(cal_dir)
    t0 = time.perf_counter()
    cal = calibrate("cpu", quick=True, threads=1)
    print(f"calibrate --quick: {time.perf_counter() - t0:.1f} s; {cal['name']}")
    refs = sorted(cal["references"], key=lambda r: r["macs"])
    print(f"  largest vs smallest reference: {refs[-1]['macs'] / refs[0]['macs']:.0f}x the MACs, "
          f"{refs[-1]['train'] / refs[0]['train']:.1f}x the seconds per training image (measured in this run)")
    shared = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.xz"
    cache = Path.home() / ".cache" / "orchestrate-tests" / "cifar10-jpeg"
    if cache.is_dir():
        data, what = f"{{name: cifar10, root: {cache}, subset: 100, test_subset: 50}}", f"real CIFAR-10 ({cache})"
    else:
        data, what = "{name: synthetic, subset: 100, test_subset: 50}", (
            f"synthetic data (no unpacked CIFAR-10 in {cache}; the tests unpack {shared} there)")
    models = [(2, 1, 8), (2, 1, 16), (3, 1, 24), (2, 2, 24), (3, 2, 32), (2, 1, 48), (4, 1, 32), (2, 2, 40)]
    text = ("base: {data: " + data + ", train: {epochs: 1, batch_size: 128, augment: [flip]}, resources: {cpus: 1}}\n"
            "trials:\n" + "".join(f"  - {{model.layers: {n}, model.blocks: {b}, model.channels: {c}}}\n" for n, b, c in models))
    trials = expand(spec_from_text(text, "acc"))
    errors = []
    print(f"1 epoch each on {what}, 1 thread:")
    for t in trials:
        out = Path(tempfile.mkdtemp(prefix="bench-acc-"))
        r = run_trial(t.config, out, t.trial_id)
        est = epoch_seconds(cal, t.config, t.macs)
        measured = r["wall_seconds"]
        errors.append(abs(est / measured - 1))
        m = t.config["model"]
        print(f"  layers={m['layers']} blocks={m['blocks']} channels={m['channels']:>2} {t.macs / 1e6:7.1f} M MACs: "
              f"measured {measured:6.2f} s, estimated {est:6.2f} s ({100 * (est / measured - 1):+.0f}%)")
    print(f"median absolute error {100 * statistics.median(errors):.1f}% (goal <= 25%); "
          f"worst {100 * max(errors):.1f}%")


def bench_packing() -> None:
    from orchestrator.backends.slurm.backend import TrialJob
    from orchestrator.backends.slurm.packing import PackedJob
    from orchestrator.sweep.expand import expand
    from orchestrator.sweep.spec import spec_from_text

    text = ("base: {model: {layers: 2, blocks: 1, channels: 16}, data: {name: synthetic, subset: 100, test_subset: 50},"
            " train: {epochs: 3, batch_size: 64, augment: [flip]}}\ngrid: {train.seed: [0, 1, 2, 3]}\n")
    trials = expand(spec_from_text(text, "pack"))
    os.environ["SLURM_CPUS_PER_TASK"] = "2"  # one 2-CPU allocation
    base = None
    for k in (1, 2, 4):
        root = Path(tempfile.mkdtemp(prefix=f"bench-pack{k}-"))
        jobs = [TrialJob(t.config, str(root / t.trial_id), t.trial_id, None) for t in trials]
        t0 = time.perf_counter()
        for i in range(0, len(jobs), k):
            codes = PackedJob(jobs[i:i + k])()
            assert all(c["returncode"] == 0 for c in codes), codes
        wall = time.perf_counter() - t0
        per_hour = len(jobs) / wall * 3600
        base = base or per_hour
        print(f"  K={k}: 4 trials in {wall:5.1f} s = {per_hour:6.0f} trials/hour ({per_hour / base:.2f}x K=1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-packing", action="store_true")
    args = parser.parse_args()
    bench_macs()
    if not args.skip_accuracy:
        bench_accuracy()
    if not args.skip_packing:
        print("packing, one 2-CPU allocation, 4 small trials (3 epochs each):")
        bench_packing()


if __name__ == "__main__":
    main()
