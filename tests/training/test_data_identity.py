"""Where the data lives is not a trial's identity; which data it is, is (issue 16)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from kit import ORCH, ROOT

from orchestrator.sweep.expand import expand
from orchestrator.sweep.spec import load_spec


def test_the_default_ids_are_pinned() -> None:
    """Ids at the default data.root are what they were before data.root left the id: every
    finished result on disk stays valid (the first trial of sweeps/joint.yaml)."""
    assert expand(load_spec(str(ROOT / "sweeps" / "joint.yaml")))[0].trial_id == "f697b2ec6e0a"


@pytest.mark.parametrize("root", ["data/cifar10-jpeg", "/datasets/cifar10", "./data", "data", "~/cifar"])
def test_the_data_path_is_not_part_of_a_trials_id(root: str) -> None:
    spec = str(ROOT / "sweeps" / "joint.yaml")
    default = [t.trial_id for t in expand(load_spec(spec))]
    assert [t.trial_id for t in expand(load_spec(spec, (f"data.root={root}",)))] == default


def batches(root: Path, seed: int) -> Path:
    """A CIFAR-10-shaped python-batches copy (10 images per class per batch), pixels from ``seed``."""
    rng = np.random.default_rng(seed)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [c for c in range(10) for _ in range(10)]
        data = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
        with open(d / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
    return root


def orch(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ORCH, *args], capture_output=True, text=True, cwd=tmp, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(tmp / "home")})


@pytest.mark.ray
def test_moved_data_keeps_results_and_other_data_is_refused(tmp_path: Path) -> None:
    a = batches(tmp_path / "a", seed=1)
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"name": "s", "base": {
        "model": {"layers": 1, "blocks": 1, "channels": 4}, "data": {"subset": 5, "test_subset": 5},
        "train": {"epochs": 1, "batch_size": 25}, "resources": {"cpus": 1}}}))
    first = orch(tmp_path, "submit", str(spec), "--backend", "ray", "--set", f"data.root={a}")
    assert first.returncode == 0, first.stdout + first.stderr
    (tid,) = [p.name for p in (tmp_path / "runs" / "s" / "trials").iterdir()]
    recorded = json.loads((tmp_path / "runs" / "s" / "trials" / tid / "data.json").read_text())
    assert recorded["kind"] == "batches" and recorded["path"] == str(a / "cifar-10-batches-py")
    result = json.loads((tmp_path / "runs" / "s" / "trials" / tid / "result.json").read_text())
    assert result["data"]["fingerprint"] == recorded["fingerprint"]

    moved = tmp_path / "moved"
    a.rename(moved)  # the same data elsewhere: nothing reruns
    again = orch(tmp_path, "submit", str(spec), "--backend", "ray", "--set", f"data.root={moved}", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["submitted"] == [] and json.loads(again.stdout)["skipped"] == {"completed": [tid]}

    other = batches(tmp_path / "b", seed=2)  # other pixels under the same id: refused, nothing written
    refused = orch(tmp_path, "submit", str(spec), "--backend", "ray", "--set", f"data.root={other}")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith(f"error: {spec}: data.root:") and "holds other data" in line and recorded["fingerprint"] in line


def test_a_resume_on_other_data_is_refused(tmp_path: Path) -> None:
    from orchestrator.sweep.trialconfig import resolve_trial
    from train.data import check_data_identity, fingerprint

    cfg = resolve_trial({"data": {"root": str(batches(tmp_path / "a", seed=1))}})["data"]
    out = tmp_path / "trial"
    out.mkdir()
    check_data_identity(out, fingerprint(cfg))  # first start: recorded
    check_data_identity(out, fingerprint(cfg))  # the same data: fine
    other = resolve_trial({"data": {"root": str(batches(tmp_path / "b", seed=2))}})["data"]
    with pytest.raises(ValueError, match="holds other data"):
        check_data_identity(out, fingerprint(other))


def test_one_search_order_finds_the_demos_copy_and_the_error_names_both_places(tmp_path: Path) -> None:
    from orchestrator.sweep.trialconfig import resolve_trial
    from train.data import DataNotFound, locate

    cfg = resolve_trial({"data": {"root": str(tmp_path / "data")}})["data"]
    with pytest.raises(DataNotFound) as err:
        locate(cfg)
    assert f"{tmp_path / 'data'} or {tmp_path / 'data' / 'cifar10-jpeg'}" in str(err.value)
    batches(tmp_path / "data" / "cifar10-jpeg", seed=3)  # where `orchestrate demo` unpacks its copy
    assert locate(cfg) == ("batches", tmp_path / "data" / "cifar10-jpeg" / "cifar-10-batches-py")
