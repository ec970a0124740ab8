"""What byte-compiling the project (setup.sh's last step) saves each ``orchestrate`` process:
CPU-seconds of ``orchestrate --help``, ``plan`` and ``plan --json`` with the project's own
modules compiled from source at every start vs loaded from their .pyc files; ratios in the same
command.

    .venv/bin/python bench/bench_cli_start.py [--runs 10]

Each arm runs its own copy of the project's packages (orchestrator, train, model, configcheck)
put first on PYTHONPATH, with PYTHONDONTWRITEBYTECODE=1 (as on this project's machines): the
first copy has no __pycache__, so every process compiles every module it imports (what an
editable install does there); the second was compiled once with compileall. Third-party packages
load from their installed .pyc files in both."""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("orchestrator", "train", "model", "configcheck")
SPEC = {"name": "bench", "base": {"model": {"layers": 2, "blocks": 1, "channels": 8},
                                  "data": {"name": "synthetic", "subset": 40, "test_subset": 10},
                                  "train": {"epochs": 2, "batch_size": 40}},
        "grid": {"model.channels": [4, 6, 8, 10]}}


def cpu_of(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    """CPU-seconds (user + system) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10, help="processes per command and arm (alternating)")
    args = ap.parse_args()
    arms = ("from source", "from .pyc")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for arm in arms:
            for name in PACKAGES:
                shutil.copytree(ROOT / name, work / arm / name, ignore=shutil.ignore_patterns("__pycache__"))
        compileall.compile_dir(work / "from .pyc", quiet=1)
        spec = work / "bench.yaml"
        spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
        main_py = "import sys; from orchestrator.cli.main import main; sys.argv[0] = 'orchestrate'; sys.exit(main())"
        commands = {"--help": ["--help"], "plan": ["plan", str(spec)], "plan --json": ["plan", str(spec), "--json"]}
        samples: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.runs):
            for arm in arms:  # alternating, so a slower minute of the machine hits both
                env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(work / arm),
                       "OMP_NUM_THREADS": "1"}
                for label, cmd in commands.items():
                    samples.setdefault((label, arm), []).append(
                        cpu_of([sys.executable, "-c", main_py, *cmd], env, work))
    print(f"{'command':<16}{'from source':>14}{'from .pyc':>12}{'ratio':>8}   (median CPU-s of {args.runs} processes)")
    for label in commands:
        slow, fast = (statistics.median(samples[(label, arm)]) for arm in arms)
        print(f"{label:<16}{slow:>14.3f}{fast:>12.3f}{slow / fast:>7.2f}x")


if __name__ == "__main__":
    main()
