"""Shared fixtures. The cores are shared: keep torch to one thread in every test process."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True, scope="session")
def _no_stored_calibration(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Plans, time limits and goldens must not depend on the developer's own calibrations."""
    os.environ["ORCHESTRATE_CALIBRATION_DIR"] = str(tmp_path_factory.mktemp("calibration"))


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


@pytest.fixture
def cli():
    """Run the CLI in-process: returns (exit_code, stdout, stderr)."""
    from click.testing import CliRunner

    from orchestrator.cli.main import main

    def run(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return run


@pytest.fixture
def write_spec(tmp_path: Path):
    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def python() -> str:
    return sys.executable


def _unpack_shared_cifar() -> Path | None:
    """The real CIFAR-10 JPEGs from ../shared, unpacked once into a cache (atomic rename)."""
    archive = SHARED / "data" / "cifar10-jpeg.tar.xz"
    if not archive.is_file():
        return None
    cache = Path(os.environ.get("ORCHESTRATE_TEST_CACHE", Path.home() / ".cache" / "orchestrate-tests"))
    dest = cache / "cifar10-jpeg"
    if not (dest / "test" / "truck").is_dir():
        import fcntl
        import shutil
        import subprocess
        import tempfile

        cache.mkdir(parents=True, exist_ok=True)
        # test workers run at once (xdist): one unpacks, the others wait for it and reuse it
        with open(cache / ".cifar10-jpeg.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (dest / "test" / "truck").is_dir():
                tmp = Path(tempfile.mkdtemp(dir=cache))
                subprocess.run(["tar", "-xJf", str(archive), "-C", str(tmp)], check=True)
                shutil.rmtree(dest, ignore_errors=True)
                tmp.rename(dest)
    return dest


@pytest.fixture(scope="session")
def cifar_root() -> Path | None:
    """Real CIFAR-10 (ImageFolder of JPEGs) when ../shared has it, else None (use synthetic)."""
    return _unpack_shared_cifar()


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """The real two-node SLURM cluster of slurm/local-cluster.sh (installed and started if needed).
    Every test that uses it runs in one xdist worker (the "slurm" group, below): they share the
    cluster's two nodes, and some take a node down or preempt a partition."""
    import shutil
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("slurm/local-cluster.sh needs root to install and start SLURM")
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        pytest.skip("no apt-get and no SLURM: cannot bring up the local cluster")
    proc = subprocess.run(["bash", str(ROOT / "slurm" / "local-cluster.sh"), "up"], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, f"local cluster did not come up:\n{proc.stdout}\n{proc.stderr}"


def closed_wandb_runs(wandb_dir: Path, expect: int = 1, timeout: float = 90.0) -> list:
    """The offline runs under ``wandb_dir`` once ``expect`` runs have logged their exit: a trial's
    result.json is written before its launcher closes the W&B run, so a reader that saw the
    trial completed may still be ahead of wandb-core's last flush."""
    import time

    from orchestrator.tracking.wandb_files import read_run, run_files

    deadline = time.time() + timeout
    while True:
        runs = [read_run(f) for f in run_files(wandb_dir)]
        if sum(r.exited for r in runs) >= expect or time.time() > deadline:
            return runs
        time.sleep(0.5)


# How many xdist workers each kind of scheduler test gets (see pytest_collection_modifyitems).
# Measured on the 2-core test machine (issue 18): two SLURM lanes and two Ray lanes (-n 6) ran
# in 27 min with 7 failures (the Ray inside a SLURM job's `ray stop --force` killed every Ray on
# the machine: fixed, it stops its own processes only; and at a load of 15 SLURM jobs missed
# their deadlines); two SLURM lanes and one Ray lane (-n 4): 25 min 13 s, no faster than one each
# (-n 3: 23 min 42 s); two and two at -n 4: a load of 11 and a failure within 13 min.
# 2026-12-02, fresh clone, 494 tests: 37 min 48 s, both CPUs 94% busy throughout (/proc/stat: 4,662
# CPU-seconds of work; 15 min on 2 cores holds at most 1,800). The tests do not wait on schedulers
# so much as start processes: a TINY trial process costs 5.4 CPU-s, 0.4 s of it training (import
# torch 2.5 s; torch._dynamo 1.3 s, imported by the first optimizer's add_param_group; W&B ~1.2 s).
# Later that day, 497 tests, with process accounting (accton) over whole fresh-clone runs: before,
# 33 min 54 s and 4,078 CPU-s; after byte-compiling the project in setup.sh and polling states in
# this process (kit.status_now), 34 min 2 s and 4,017 CPU-s. The CLI's share fell from 810 light
# `orchestrate` processes / 421 CPU-s to 324 / 121, but runs of the same work vary by ~10% on this
# VM (the same 150 trial processes averaged 8.64, 9.73 and 8.97 CPU-s in three runs). Of 4,017:
# 150 trial processes (SLURM tasks, `orchestrate train`, torchrun ranks) 1,346; Ray's processes
# (daemons, idle workers, Tune's trial actors) 1,185; everything else (pytest, `orchestrate`
# drivers and CLI calls, in-process tests) the rest. The trials' imports alone (torch, dynamo,
# W&B: 6.8 CPU-s on an idle machine) times the ~190 processes that train are ~1,300 CPU-s.
LANES = {"slurm": 1, "ray": 1}
LOCKS = Path(os.environ.get("ORCHESTRATE_TEST_LOCKS", "/tmp"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slurm_exclusive: takes the whole SLURM cluster (kills a node, preempts a "
                                       "partition, fills every CPU, stops slurmdbd): no other SLURM test runs meanwhile")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Concurrency lanes for pytest-xdist (``--dist loadgroup``, set in pyproject.toml). Most SLURM
    and Ray tests wait on a scheduler, so they run beside the CPU-bound ones: the SLURM tests in
    ``LANES["slurm"]`` workers sharing the one cluster (see ``_scheduler_turn``), the Ray tests in
    ``LANES["ray"]``, every other test on whichever worker is free. Tests are dealt to a kind's lanes longest first, by
    their durations in tests/durations.json (a test not listed counts 20 s), so the lanes end
    together."""
    import json

    known = json.loads((Path(__file__).parent / "durations.json").read_text())
    lanes = {kind: [0.0] * n for kind, n in LANES.items()}
    kinds: list[tuple[float, str, pytest.Item]] = []
    for item in items:
        if "slurm_cluster" in getattr(item, "fixturenames", ()) or item.get_closest_marker("slurm"):
            kinds.append((known.get(item.nodeid, 20.0), "slurm", item))
        elif item.get_closest_marker("ray"):
            kinds.append((known.get(item.nodeid, 20.0), "ray", item))
    for seconds, kind, item in sorted(kinds, key=lambda k: -k[0]):
        lane = min(range(len(lanes[kind])), key=lanes[kind].__getitem__)
        lanes[kind][lane] += seconds
        item.add_marker(pytest.mark.xdist_group(f"{kind}-{lane + 1}"))


@pytest.fixture(autouse=True)
def _scheduler_turn(request: pytest.FixtureRequest) -> Any:
    """Tests in different lanes that share a scheduler take turns: SLURM tests share the cluster
    (a shared lock; a ``slurm_exclusive`` one has it alone), and a test that starts Ray has this
    machine's Ray to itself (a SLURM test that runs Ray inside a job, too: it is in the SLURM lane;
    each Ray test looks for leftovers of its own instance only, so this is for the load, not for
    correctness)."""
    import contextlib
    import fcntl

    item = request.node
    with contextlib.ExitStack() as stack:
        if "slurm_cluster" in item.fixturenames or item.get_closest_marker("slurm"):
            lock = stack.enter_context(open(LOCKS / "orchestrate-tests-slurm.lock", "a"))
            fcntl.flock(lock, fcntl.LOCK_EX if item.get_closest_marker("slurm_exclusive") else fcntl.LOCK_SH)
        if item.get_closest_marker("ray"):
            lock = stack.enter_context(open(LOCKS / "orchestrate-tests-ray.lock", "a"))
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # (closing a file releases its lock)
