"""The suite's concurrency lanes hold: tests in one xdist group run in one worker, one after the
other (pytest 9.2 silently lost this, pytest-xdist#1386; the SLURM tests rely on it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_an_xdist_group_runs_in_one_worker(tmp_path: Path) -> None:
    (tmp_path / "lanes.ini").write_text("[pytest]\n")  # not the project's: its own options only
    (tmp_path / "test_g.py").write_text(
        "import os, pytest, time\n"
        "@pytest.mark.xdist_group('lane')\n"
        "@pytest.mark.parametrize('i', range(6))\n"
        "def test_x(i):\n"
        "    time.sleep(0.2)\n"
        "    with open('workers.txt', 'a') as f:\n"
        "        f.write(os.environ['PYTEST_XDIST_WORKER'] + '\\n')\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "3", "--dist", "loadgroup", "-p", "no:cacheprovider",
                           "-c", str(tmp_path / "lanes.ini"), "--rootdir", str(tmp_path), "test_g.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    workers = (tmp_path / "workers.txt").read_text().split()
    assert len(workers) == 6 and len(set(workers)) == 1, workers
