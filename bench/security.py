"""Security probes (issue 17): a second local user (nobody) against a victim's sweeps, run for
real by tests/house/test_hostile.py (one test per probe), plus the cost of the two refusals that guard
against unbounded work, measured here in fresh processes. Prints one table: probe, outcome,
verdict. Part of bench/faults.py's report; alone:

    .venv/bin/python bench/security.py

Needs root and setpriv (the probes switch to uid 65534); the checkpoint probe needs the local
SLURM cluster (slurm/local-cluster.sh up). About 2 minutes on 2 cores."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ORCH = str(Path(sys.executable).parent / "orchestrate")
PROBES = {  # test in tests/house/test_hostile.py -> (probe, what passing it shows)
    "test_1": ("planted checkpoint.pt whose pickle writes a marker (train, Ray submit, SLURM submit, packed job)",
               "dir writable by others: exit 2 naming it (train, both submits); planted file in the user's own dir: "
               "loaded weights-only, named as damaged, trained anew; marker never created"),
    "test_2": ("sweep dir pre-created by nobody", "submit exits 2 (owned by nobody); nothing written into it"),
    "test_3": (".lock a symlink to a path the victim can write", "refused (exit 2), never followed; target never created"),
    "test_4": ("forged ray/<stamp>/driver.json naming the victim's pid and a dir to remove",
               "record in a foreign dir ignored and named; the user's own record still needs the run's token in the "
               "process environment: nothing killed, nothing removed"),
    "test_5": ("/tmp/orx-<jobid> pre-created as a link to nobody's dir", "never used: mkdtemp 0700 per node; cleanup "
               "failures said"),
    "test_6": ("FIFO as result.json; FIFO named a.jpg in an ImageFolder tree", "status and leaderboard name the FIFO "
               "and finish; the data pre-flight refuses the image tree (exit 2)"),
    "test_7": ("100x100x100 grid; 8-level YAML alias bomb (<1 KB)", "refused in one line before expanding"),
    "test_8": ('name: "nl\\n"', "exit 2 (names are matched whole)"),
}


def _peak(args: list[str], cwd: Path) -> tuple[int, float, int]:
    """(exit code, seconds, peak RSS MiB) of ``orchestrate ARGS`` in a fresh process."""
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "p = subprocess.run(sys.argv[1:], capture_output=True); "
            "print(p.returncode, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, ORCH, *args], capture_output=True, text=True, cwd=cwd,
                         timeout=600).stdout.split()
    return int(out[0]), float(out[1]), int(out[2]) // 1024


def bounded_work(tmp: Path) -> str:
    """The refusals' cost next to a baseline: the same CLI planning a one-trial spec."""
    axis = list(range(8, 108))
    base = {"model": {"family": "resnet"}}
    (tmp / "one.yaml").write_text(yaml.safe_dump({"name": "one", "base": base}))
    (tmp / "grid.yaml").write_text(yaml.safe_dump({"name": "grid", "base": base, "grid": {
        "model.channels": axis, "train.seed": axis, "train.epochs": axis}}))
    bomb = "&a [" + ",".join(['"x"'] * 9) + "]"
    for i in range(1, 9):
        bomb = f"&{chr(97 + i)} [{bomb}, " + ", ".join([f"*{chr(96 + i)}"] * 8) + "]"
    (tmp / "bomb.yaml").write_text(f"name: bomb\ndescription: {bomb}\nbase: {{model: {{family: resnet}}}}\n")
    _, t1, m1 = _peak(["plan", str(tmp / "one.yaml")], tmp)
    parts = [f"baseline plan of 1 trial {t1:.2f} s {m1} MiB"]
    for name in ("grid", "bomb"):
        rc, t, m = _peak(["plan", str(tmp / f"{name}.yaml"), "--limit", "3"], tmp)
        parts.append(f"{name}: exit {rc}, {t:.2f} s ({t / t1:.2f}x), {m} MiB")
    return "; ".join(parts)


def report() -> bool:
    """Run the probes and print the table; True when every probe held."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "hostile.xml"
        t0 = time.time()
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
                        str(ROOT / "tests" / "house" / "test_hostile.py")], cwd=ROOT, capture_output=True, timeout=1800)
        print(f"  security probes ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
        results = {}
        for case in ET.parse(xml).getroot().iter("testcase"):
            key = "_".join(case.get("name", "").split("_")[:2])
            verdict = "SKIP" if case.find("skipped") is not None else (
                "FAIL" if case.find("failure") is not None or case.find("error") is not None else "PASS")
            results[key] = (verdict, float(case.get("time", 0)))
        measured = bounded_work(Path(tmp))
    print("\n| probe (as uid 65534 against root's sweeps) | outcome | verdict |\n|---|---|---|")
    ok = True
    for key, (probe, outcome) in PROBES.items():
        verdict, secs = results.get(key, ("FAIL", 0.0))
        ok = ok and verdict != "FAIL"
        extra = f" [{measured}]" if key == "test_7" else ""
        print(f"| {probe} | {outcome}{extra} ({secs:.0f} s) | {verdict} |")
    return ok


if __name__ == "__main__":
    sys.exit(0 if report() else 1)
