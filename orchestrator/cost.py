"""Cost before compute: a per-device cost model (``orchestrate calibrate``) and the time each
trial will take under it.

The model, fitted on this device to a few reference ResNets that span the MACs range:
seconds per training image = a + b * MACs, seconds per evaluated image = c + d * MACs (MACs of
one forward pass, model.count_macs). A trial's epoch = n_train * train + (n_val + n_test) * eval
+ its checkpoint (e + f * params); its total = epochs * epoch + a fixed start-up. Stored per device name as JSON under
``$ORCHESTRATE_CALIBRATION_DIR`` (default ``~/.config/orchestrate/calibration/``): copy the
file of a cluster's GPU type to share it."""

from __future__ import annotations

import heapq
import json
import math
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

from configcheck import ConfigError
from model import count_macs, count_params
from train.atomic import atomic_write_text

STARTUP_S = 20.0  # process start, imports, data load and model build, per trial (measured: 5-15 s)
# reference models: resnet at 2-3 layers, 1-2 blocks; quick spans ~2-160 M MACs in seconds on a CPU
QUICK = [{"layers": 2, "blocks": 1, "channels": 8}, {"layers": 3, "blocks": 1, "channels": 16},
         {"layers": 2, "blocks": 1, "channels": 32}, {"layers": 3, "blocks": 2, "channels": 32},
         {"layers": 2, "blocks": 2, "channels": 48}]
FULL = [*QUICK, {"layers": 3, "blocks": 2, "channels": 64}, {"layers": 4, "blocks": 2, "channels": 64},
        {"layers": 3, "blocks": 2, "channels": 85}]


def calibration_dir() -> Path:
    return Path(os.environ.get("ORCHESTRATE_CALIBRATION_DIR", Path.home() / ".config" / "orchestrate" / "calibration"))


def device_name(device: str, threads: int | None = None) -> str:
    """What the device is called: the GPU's name, or the CPU model and thread count."""
    if device == "cuda":
        import torch  # heavy: loads torch (seconds); only this path needs it

        return torch.cuda.get_device_name(0)
    model = "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} x{threads or 1} threads"


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """y = a + b x, least squares on the relative error (every reference counts alike)."""
    w = [1.0 / (y * y) for y in ys]
    sw, sx, sy = sum(w), sum(wi * x for wi, x in zip(w, xs)), sum(wi * y for wi, y in zip(w, ys))
    sxx, sxy = sum(wi * x * x for wi, x in zip(w, xs)), sum(wi * x * y for wi, x, y in zip(w, xs, ys))
    det = sw * sxx - sx * sx
    b = (sw * sxy - sx * sy) / det
    a = (sy - b * sx) / sw
    if a < 0:  # a negative intercept would make tiny models free: fit through the origin instead
        a, b = 0.0, sum(wi * x * y for wi, x, y in zip(w, xs, ys)) / sxx
    return a, b


def calibrate(device: str, quick: bool, threads: int | None = None, progress: Any = None) -> dict[str, Any]:
    """Measure the reference models here, fit, store; returns the calibration (with its path)."""
    import torch  # heavy: loads torch (seconds); only this path needs it

    from train.probe import measure  # heavy: loads torch (seconds); only this path needs it

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device", "cuda: no CUDA device here (torch.cuda.is_available() is False)")
    if device == "cpu":
        threads = threads or 1
        torch.set_num_threads(threads)
    refs = []
    load_before = os.getloadavg()[0]
    models = QUICK if quick else FULL
    for i, cfg in enumerate(models):
        cfg = {"family": "resnet", **cfg}
        m = measure(cfg, device, steps=3 if quick else 8, warmup=1 if quick else 3)
        refs.append({"model": cfg, "macs": count_macs(cfg), "params": count_params(cfg), **m})
        if progress:
            progress(i + 1, len(models), cfg, m)
    fit = {k: _fit([r["macs"] for r in refs], [r[k] for r in refs]) for k in ("train", "eval")}
    fit["checkpoint"] = _fit([r["params"] for r in refs], [r["checkpoint"] for r in refs])  # per epoch, by params
    for r in refs:
        for k in ("train", "eval"):
            a, b = fit[k]
            r[f"{k}_error"] = (a + b * r["macs"]) / r[k] - 1
    name = device_name(device, threads)
    errors = [abs(r[f"{k}_error"]) for r in refs for k in ("train", "eval")]
    cal = {"name": name, "device": device, "threads": threads, "batch": 128, "quick": quick, "created": time.time(),
           "fit": {k: {"a": a, "b": b} for k, (a, b) in fit.items()}, "references": refs,
           "startup_s": STARTUP_S, "host": socket.gethostname(), "cores": len(os.sched_getaffinity(0)),
           "load": max(load_before, os.getloadavg()[0]), "fit_error": max(errors)}
    path = calibration_dir() / f"{slug(name)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(cal, indent=1) + "\n")
    cal["path"] = str(path)
    return cal


def provenance(cal: dict[str, Any]) -> tuple[str, list[str]]:
    """Which calibration an estimate comes from (device, host, date, fit error) and what makes it
    doubtful: taken under load (load average against cores), a poor fit, another CPU model."""
    when = time.strftime("%Y-%m-%d", time.localtime(cal.get("created") or 0))
    err = cal.get("fit_error")
    if err is None and cal.get("references"):  # files from before fit_error was stored
        err = max(abs(r.get(f"{k}_error", 0.0)) for r in cal["references"] for k in ("train", "eval"))
    line = (f"calibration {cal['name']} ({cal.get('device', '?')}), taken on {cal.get('host') or 'an unknown host'} "
            f"{when}{', quick' if cal.get('quick') else ''}, fit error {err:.0%}" if err is not None else "")
    warnings = []
    load, cores = cal.get("load"), cal.get("cores")
    if load is not None and cores and load > 0.75 * cores:
        warnings.append(f"it was taken under load (load average {load:.1f} on {cores} cores): estimates run long; "
                        "recalibrate on an idle machine")
    if err is not None and err > 0.25:
        warnings.append(f"its fit error is {err:.0%}: estimates are rough; recalibrate without --quick")
    if cal.get("device") == "cpu":
        here = device_name("cpu", 1).rsplit(" x", 1)[0]
        if not cal["name"].startswith(here):
            warnings.append(f"it was taken on another CPU model ({cal['name'].rsplit(' x', 1)[0]}; this is {here})")
    return line, warnings


def find(device: str, name: str | None = None) -> dict[str, Any] | None:
    """The calibration to estimate with: ``name`` (a file, or a stored device name), else this
    machine's CPU (device cpu), else the only stored CUDA one. None when there is none."""
    root = calibration_dir()
    candidates: list[Path] = []
    if name is not None:
        p = Path(name)
        candidates = [p] if p.is_file() else [root / f"{slug(name)}.json"]
        if not candidates[0].is_file():
            known = ", ".join(sorted(q.stem for q in root.glob("*.json"))) or "none yet"
            raise ConfigError("--calibration", f"{name}: no such calibration file or stored device; stored: {known}")
    elif root.is_dir():
        stored = [json.loads(p.read_text()) | {"path": str(p)} for p in sorted(root.glob("*.json"))]
        mine = [c for c in stored if c.get("device") == device]
        if device == "cpu":
            here = device_name("cpu", 1).rsplit(" x", 1)[0]
            mine = [c for c in mine if c["name"].startswith(here)]
        if len(mine) == 1:
            return mine[0]
        candidates = [Path(mine[0]["path"])] if mine else []  # several: the first; --calibration picks another
    if not candidates:
        return None
    return json.loads(candidates[0].read_text()) | {"path": str(candidates[0])}


def split_sizes(data: dict[str, Any]) -> tuple[int, int]:
    """(training images, evaluated images per epoch) of a resolved data config."""
    n = 10 * (data.get("subset") or 5000)
    val = data.get("val_size") or 0
    return n - val, val + 10 * (data.get("test_subset") or 1000)


def epoch_seconds(cal: dict[str, Any], config: dict[str, Any], macs: int | None = None) -> float:
    macs = count_macs(config["model"]) if macs is None else macs
    n_train, n_eval = split_sizes(config["data"])
    f = cal["fit"]
    seconds = n_train * (f["train"]["a"] + f["train"]["b"] * macs) + n_eval * (f["eval"]["a"] + f["eval"]["b"] * macs)
    if "checkpoint" in f:  # the epoch's checkpoint, by parameter count
        seconds += f["checkpoint"]["a"] + f["checkpoint"]["b"] * count_params(config["model"])
    return seconds


def trial_seconds(cal: dict[str, Any], config: dict[str, Any], macs: int | None = None) -> float:
    return config["train"]["epochs"] * epoch_seconds(cal, config, macs) + cal.get("startup_s", STARTUP_S)


def makespan(seconds: list[float], slots: int) -> float:
    """Wall time of these jobs on ``slots`` at once, longest first onto the freest slot."""
    free = [0.0] * max(1, min(slots, len(seconds) or 1))
    for s in sorted(seconds, reverse=True):
        heapq.heapreplace(free, free[0] + s)
    return max(free)


def hours(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def time_limit(seconds: float, safety: float = 1.5, margin_s: float = 600.0, cap_min: int | None = None) -> tuple[int, str]:
    """A SLURM time limit in minutes for a job whose trial takes ``seconds`` by estimate: x
    ``safety`` + ``margin_s`` (queue-side start, data staging), rounded up to 5 minutes, capped
    by the partition's MaxTime. Returns (minutes, why)."""
    minutes = int(math.ceil((seconds * safety + margin_s) / 60 / 5) * 5)
    why = f"estimate {hours(seconds)} x {safety:g} + {margin_s / 60:.0f} min, rounded up to 5 min"
    if cap_min is not None and minutes > cap_min:
        return cap_min, why + f", capped at the partition's MaxTime {cap_min} min (requeue + resume covers the rest)"
    return minutes, why


def uses_gpu(config: dict[str, Any]) -> bool:
    r = config.get("resources") or {}
    return bool(r.get("gpus") or r.get("gpus_per_node"))


def plan_estimates(trials: list[Any], calibration: str | None = None,
                   parallel: int | None = None) -> tuple[dict[str, tuple[float, float]], str, float | None]:
    """trial id -> (seconds per epoch, seconds in all) for the kept trials, a line for the plan,
    and the sweep's device-hours (None without a calibration)."""
    est, line, totals = plan_totals(trials, calibration, parallel)
    return est, line, totals.get("device_hours")


def plan_totals(trials: list[Any], calibration: str | None = None,
                parallel: int | None = None) -> tuple[dict[str, tuple[float, float]], str, dict[str, Any]]:
    """``plan_estimates`` with the sweep's totals as a mapping (device-hours, unit, wall seconds,
    trials at once, the calibration): what plan --json prints; {} without a calibration."""
    kept = [t for t in trials if t.kept]
    if not kept:
        return {}, "", {}
    device = "cuda" if uses_gpu(kept[0].config) else "cpu"
    cal = find(device, calibration)
    if cal is None:
        return {}, (f"no time estimate: no {device} calibration in {calibration_dir()}; run `orchestrate calibrate "
                    f"--device {device} --quick` on {'a node with that GPU' if device == 'cuda' else 'this machine'} "
                    "(or pass --calibration FILE)"), {}
    est = {t.trial_id: (epoch_seconds(cal, t.config, t.macs), trial_seconds(cal, t.config, t.macs)) for t in kept}
    r = kept[0].config.get("resources") or {}
    per_trial = (r.get("gpus") or r.get("gpus_per_node") or 1) if device == "cuda" else (cal.get("threads") or 1)
    total = sum(s for _, s in est.values())
    k = r.get("trials_per_gpu") or 1  # packed: K trials share one allocation (no slowdown assumed)
    slots = (parallel or min(len(kept), r.get("array_parallelism") or len(kept))) * k
    unit = "GPU-hours" if device == "cuda" else "CPU-hours"
    used = total * per_trial / 3600 / k
    wall = makespan([s for _, s in est.values()], slots)
    made, doubts = provenance(cal)
    line = (f"estimate ({made}; {Path(cal['path']).name}): {used:,.1f} {unit} in all"
            + (f" ({k} trials per allocation, assuming they do not slow each other)" if k > 1 else "")
            + f"; wall {hours(wall)} with {slots} at once" + "".join(f"\nwarning: calibration: {d}" for d in doubts))
    return est, line, {"device_hours": used, "unit": unit, "wall_seconds": wall, "at_once": slots,
                       "trial_seconds": total, "calibration": cal["name"], "calibration_file": str(cal["path"]),
                       "calibration_made": made, "calibration_warnings": doubts}
