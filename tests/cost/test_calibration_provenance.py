"""Which calibration an estimate comes from, and when to doubt it (issue 16)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from kit import ROOT

from orchestrator.cost import calibration_dir, device_name, slug


def store(**fields) -> Path:
    """A calibration file as `orchestrate calibrate` writes it (plausible CPU numbers)."""
    name = fields.pop("name", device_name("cpu", 1))
    refs = [{"model": {}, "macs": m, "params": 1000, "train": 1e-4 + 2e-12 * m, "eval": 3e-5 + 6e-13 * m,
             "checkpoint": 0.01, "train_error": 0.02, "eval_error": -0.03} for m in (2e6, 2e7, 1.6e8)]
    cal = {"name": name, "device": "cpu", "threads": 1, "batch": 128, "quick": True, "created": time.time(),
           "fit": {"train": {"a": 1e-4, "b": 2e-12}, "eval": {"a": 3e-5, "b": 6e-13},
                   "checkpoint": {"a": 0.01, "b": 0.0}}, "references": refs, "startup_s": 20.0,
           "host": "login7", "cores": 2, "load": 0.2, "fit_error": 0.03, **fields}
    path = calibration_dir() / f"{slug(name)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cal))
    return path


@pytest.fixture(autouse=True)
def _own_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ORCHESTRATE_CALIBRATION_DIR", str(tmp_path / "cal"))


def test_plan_names_the_calibration_and_trusts_a_clean_one(cli) -> None:
    store()
    code, out, _ = cli("plan", str(ROOT / "sweeps" / "demo_sweep.yaml"))
    assert code == 0
    assert f"calibration {device_name('cpu', 1)} (cpu), taken on login7 {time.strftime('%Y-%m-%d')}, quick, " \
           "fit error 3%" in " ".join(out.split())
    assert "warning: calibration" not in out


@pytest.mark.parametrize(("fields", "words"), [
    ({"load": 3.1, "cores": 2}, "it was taken under load (load average 3.1 on 2 cores)"),
    ({"fit_error": 0.38}, "its fit error is 38%"),
    ({"name": "Some Other CPU x1 threads"}, "it was taken on another CPU model (Some Other CPU; this is"),
])
def test_plan_warns_about_a_doubtful_calibration(cli, fields: dict, words: str) -> None:
    path = store(**fields)
    code, out, _ = cli("plan", str(ROOT / "sweeps" / "demo_sweep.yaml"), "--calibration", str(path))
    assert code == 0
    assert f"warning: calibration: {words}" in " ".join(out.split()), out
    code, out, _ = cli("plan", str(ROOT / "sweeps" / "demo_sweep.yaml"), "--calibration", str(path), "--json", "--totals")
    assert any(words in w for w in json.loads(out)["totals"]["calibration_warnings"])
    code, out, _ = cli("plan", str(ROOT / "sweeps" / "demo_sweep.yaml"), "--calibration", str(path), "--json")
    trials = json.loads(out)  # a list, as ever: each kept trial with its estimate
    assert all(t["est_seconds"] > 0 and t["est_epoch_seconds"] > 0 for t in trials if t["kept"])


def test_calibrate_records_where_and_under_what_load(tmp_path: Path) -> None:
    from orchestrator.cost import calibrate

    cal = calibrate("cpu", quick=True)
    assert cal["host"] == os.uname().nodename and cal["cores"] == len(os.sched_getaffinity(0))
    assert cal["load"] >= 0 and cal["fit_error"] == max(abs(r[f"{k}_error"]) for r in cal["references"]
                                                        for k in ("train", "eval"))
