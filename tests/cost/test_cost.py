"""Cost before compute: a real `orchestrate calibrate --quick`, the plan's time estimates from it,
`budget.max_gpu_hours` refusing a sweep, and the pieces (fit, makespan, time limit)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from kit import ORCH, ROOT

from model import count_macs
from orchestrator.cost import _fit, device_name, epoch_seconds, makespan, time_limit


def orch(tmp: Path, *args: str, cal: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([ORCH, *args], capture_output=True, text=True, cwd=tmp, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "ORCHESTRATE_CALIBRATION_DIR": str(cal),
                               "COLUMNS": "200"})
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def write_cal(root: Path, b_train: float = 1e-9, b_eval: float = 0.0) -> dict:
    cal = {"name": device_name("cpu", 1), "device": "cpu", "threads": 1, "startup_s": 20.0,
           "fit": {"train": {"a": 0.0, "b": b_train}, "eval": {"a": 0.0, "b": b_eval}}}
    root.mkdir(parents=True, exist_ok=True)
    (root / "cpu.json").write_text(json.dumps(cal))
    return cal


def test_calibrate_quick_then_plan_shows_time_per_trial_and_the_sweeps_total(tmp_path: Path) -> None:
    cal_dir = tmp_path / "cal"
    out = orch(tmp_path, "calibrate", "--quick", cal=cal_dir)
    (stored,) = cal_dir.glob("*.json")
    cal = json.loads(stored.read_text())
    assert cal["device"] == "cpu" and len(cal["references"]) == 5 and cal["fit"]["train"]["b"] > 0
    macs = [r["macs"] for r in cal["references"]]
    assert max(macs) / min(macs) > 50  # the references span the MACs range
    assert "fit error on the 5 reference models" in out.stdout and str(stored) in out.stdout
    # (how much more the largest reference costs per image than the smallest is a timing: bench/bench_cost.py)
    plan = orch(tmp_path, "plan", str(ROOT / "sweeps" / "joint.yaml"), "--all", cal=cal_dir).stdout
    assert "s/epoch" in plan and "CPU-hours in all" in plan and "28 at once" in plan
    assert "MACs" in plan


def test_without_a_calibration_the_plan_says_how_to_make_one(tmp_path: Path) -> None:
    plan = orch(tmp_path, "plan", str(ROOT / "sweeps" / "demo_sweep.yaml"), cal=tmp_path / "none").stdout
    assert "no time estimate" in plan and "orchestrate calibrate --device cpu --quick" in plan
    assert "s/epoch" not in plan


def test_the_estimate_follows_the_calibration(tmp_path: Path) -> None:
    cal = write_cal(tmp_path / "cal", b_train=2e-9, b_eval=1e-9)
    cfg = {"model": {"family": "resnet", "layers": 3, "blocks": 2, "channels": 85},
           "data": {"subset": None, "val_size": 5000, "test_subset": None}, "train": {"epochs": 10}}
    m = count_macs(cfg["model"])
    assert epoch_seconds(cal, cfg) == pytest.approx(45_000 * 2e-9 * m + 15_000 * 1e-9 * m)


def test_max_gpu_hours_refuses_a_sweep_over_it_in_one_line(tmp_path: Path) -> None:
    write_cal(tmp_path / "cal", b_train=1e-7)  # ~0.1 us per MAC: the demo is hours
    spec = tmp_path / "capped.yaml"
    doc = yaml.safe_load((ROOT / "sweeps" / "demo_sweep.yaml").read_text())
    doc["budget"]["max_gpu_hours"] = 0.5
    spec.write_text(yaml.safe_dump(doc))
    proc = orch(tmp_path, "submit", str(spec), "--backend", "ray", "--runs-dir", str(tmp_path / "runs"),
                cal=tmp_path / "cal", check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "budget.max_gpu_hours: the 6 trials are estimated at" in proc.stderr and "over the limit 0.5" in proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing submitted, nothing written
    doc["budget"]["max_gpu_hours"] = 10_000
    spec.write_text(yaml.safe_dump(doc))
    ok = orch(tmp_path, "submit", str(spec), "--backend", "ray", "--dry-run", "--runs-dir", str(tmp_path / "runs"),
              cal=tmp_path / "cal")
    assert "would submit 6" in ok.stdout
    none = orch(tmp_path, "submit", str(spec), "--backend", "ray", "--runs-dir", str(tmp_path / "runs"),
                cal=tmp_path / "nothing", check=False)
    assert none.returncode == 2 and "needs a time estimate" in none.stderr


def test_fit_makespan_and_time_limit() -> None:
    xs = [1e6, 5e6, 2e7, 1e8]
    a, b = _fit(xs, [3e-4 + 6e-11 * x for x in xs])
    assert a == pytest.approx(3e-4) and b == pytest.approx(6e-11)
    assert makespan([5, 4, 3], 2) == 7 and makespan([10], 4) == 10 and makespan([1, 1, 1, 1], 4) == 1
    assert time_limit(3600)[0] == 100  # 1 h x 1.5 + 10 min = 100 min
    minutes, why = time_limit(10 * 3600, cap_min=480)
    assert minutes == 480 and "capped at the partition's MaxTime 480 min" in why
