"""Shared fixtures. The cores are shared: keep torch to one thread in every test process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Concurrency groups for pytest-xdist (``--dist loadgroup``, set in pyproject.toml): the tests
    that share the one SLURM cluster run one after another in one worker, and so do those that
    start a Ray instance (two on one 2-core machine starve each other); every other test is
    spread over the remaining workers. Most SLURM and Ray tests wait on a scheduler, which is
    what running them beside the rest wins back."""
    for item in items:
        group = None
        if "slurm_cluster" in getattr(item, "fixturenames", ()) or item.get_closest_marker("slurm"):
            group = "slurm"
        elif item.get_closest_marker("ray"):
            group = "ray"
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
