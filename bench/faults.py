"""Fault injection, end to end: every failure the product claims to survive, injected for real
(SIGKILL, truncated files, a full tmpfs, a dead node, killed submits, duplicate runners), then
the outcome measured from the trial's own files and the scheduler. Prints one table:
scenario, injected fault, outcome, epochs lost, duplicates, verdict; then bench/security.py's
(probe, outcome, verdict): a second user against the sweeps.

    .venv/bin/python bench/faults.py [--only NAME ...]

SLURM rows need the local cluster (slurm/local-cluster.sh up, as root); the disk row needs root
(a tmpfs mount). Rows that cannot run here say so. About 5 minutes on 2 cores."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from faultkit import ENV, ORCH, ROOT, Row, epochs_of, orch, resumed_after, spec, trained, wait_epochs
from faults_slurm import held_job, killed_submit, node_fail, requeue


def concurrent(tmp: Path) -> Row:
    s, out = spec(tmp, "dup", 12), tmp / "dup"
    procs = [subprocess.Popen([ORCH, "train", str(s), "--out", str(out)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=ENV) for _ in range(2)]
    res = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    dups = len(list((out / "duplicates").glob("*.json")))
    ok = codes == [0, 3] and epochs_of(out) == list(range(1, 13)) and dups == 1
    line = next((e.strip() for _, e in res if "already being trained" in e), "")
    import re

    m = re.search(r"\(host (\S+) pid (\d+)", line)
    holder = f"host {m[1]} pid {m[2]}" if m else "?"
    return ("two runners, one trial", "2 x orchestrate train at once", f"exit codes {codes}: one trained 12/12, the "
            f"other found it held ({holder}) and exited", "0", str(dups), ok)


def kill9(tmp: Path, damage: str) -> Row:
    s, out = spec(tmp, f"k-{damage}", 12), tmp / f"k-{damage}"
    p = subprocess.Popen([ORCH, "train", str(s), "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=ENV)
    wait_epochs(out, 5)
    time.sleep(0.15)  # into the next epoch
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = len(epochs_of(out))
    if damage in ("last", "both"):
        with open(out / "checkpoint.pt", "r+b") as f:
            f.truncate(100)
    if damage == "both":
        with open(out / "checkpoint.prev.pt", "r+b") as f:
            f.truncate(100)
    again = orch(tmp, "train", str(s), "--out", str(out))
    start = resumed_after(again.stdout)
    ok = again.returncode == 0 and epochs_of(out) == list(range(1, 13)) and start == {"none": done, "last": done - 1,
                                                                                       "both": 0}[damage]
    fault = {"none": "kill -9 mid-epoch", "last": "kill -9 + truncated checkpoint.pt",
             "both": "kill -9 + both checkpoints truncated"}[damage]
    how = {"none": f"resumed after epoch {start}", "last": f"fell back to checkpoint.prev.pt, epoch {start}",
           "both": "moved aside, restarted from epoch 0"}[damage]
    return (f"crash ({damage} checkpoint damaged)" if damage != "none" else "crash", fault,
            f"{how}; 12/12 epochs", str(done - start), "0", ok)


def full_disk(tmp: Path) -> Row:
    if os.geteuid() != 0:
        return ("full disk", "ENOSPC on a tmpfs", "skipped: needs root", "-", "-", True)
    mnt = tmp / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
    try:
        s = spec(tmp, "disk", 6, base={"model": {"layers": 2, "blocks": 1, "channels": 32}})
        probe = orch(tmp, "train", str(s), "--out", str(tmp / "probe"))
        assert probe.returncode == 0, probe.stderr
        size = (tmp / "probe" / "checkpoint.pt").stat().st_size
        st = os.statvfs(mnt)
        filler = mnt / "filler"
        filler.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - int(2.5 * size) - 32 * 1024))
        out = mnt / "trial"
        first = orch(tmp, "train", str(s), "--out", str(out))
        kind = json.loads((out / "result.json").read_text()).get("failure_kind")
        done = len(epochs_of(out))
        filler.unlink()
        again = orch(tmp, "train", str(s), "--out", str(out))
        start = resumed_after(again.stdout)
        ok = first.returncode == 1 and kind == "disk_full" and again.returncode == 0 and epochs_of(out) == list(
            range(1, 7))
        return ("full disk", "tmpfs filled to 2.5 checkpoints", f"{kind} at epoch {done + 1}; freed, resumed after "
                f"epoch {start}", str(done - start), "0", ok)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def ray_driver(tmp: Path) -> Row:
    s = spec(tmp, "rd", 40, base={"resources": {"cpus": 1}})
    from orchestrator.sweep.expand import expand
    from orchestrator.sweep.spec import load_spec

    sid = expand(load_spec(s))[0].trial_id
    d = tmp / "runs" / "rd" / "trials" / sid
    driver = subprocess.Popen([ORCH, "submit", str(s), "--backend", "ray", "--runs-dir", str(tmp / "runs")], cwd=tmp,
                              env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_epochs(d, 5)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.time() + 30  # its worker notices within seconds and stops; until then it is running
    while (state := json.loads(orch(tmp, "status", str(s), "--json").stdout)[0]["state"]) == "running":
        if time.time() > deadline:
            break
        time.sleep(0.5)
    again = orch(tmp, "submit", str(s), "--backend", "ray")
    log = (d / "stdout.log").read_text()
    ok = state == "interrupted" and again.returncode == 0 and epochs_of(d) == list(range(1, 41))
    return ("Ray driver killed", "SIGKILL of the driver at epoch >= 5", f"status {state}; resubmit resumed after "
            f"epoch {resumed_after(log)}, 40/40", str(trained(log) - 40), "0", ok)


def many(tmp: Path) -> Row:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(ROOT / "tests" / "backends" / "test_faults.py"), "-k", "100_trials"],
                          capture_output=True, text=True, env=ENV, cwd=ROOT)
    ok = proc.returncode == 0
    return ("many at once", "100 results in one second, readers polling", "100/100 recorded, every poll parsed" if ok
            else proc.stdout[-200:], "0", "0", ok)


def fuzz(tmp: Path) -> Row:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" /
                           "sweep" / "test_fuzz.py")], capture_output=True, text=True, env=ENV, cwd=ROOT)
    ok = proc.returncode == 0
    return ("fuzzed input", "800 random YAML docs and --set values", "exit 0 or 2, one line, nothing written" if ok
            else proc.stdout[-200:], "-", "-", ok)


SCENARIOS: dict[str, Callable[[Path], Row]] = {
    "concurrent": concurrent, "kill9": lambda t: kill9(t, "none"), "corrupt-last": lambda t: kill9(t, "last"),
    "corrupt-both": lambda t: kill9(t, "both"), "disk": full_disk,
    **{f"submit-{p.split('.')[1]}": (lambda t, p=p: killed_submit(t, p))
       for p in ("submit.after_intent", "submit.after_sbatch", "submit.after_record")},
    "requeue": requeue, "node-fail": node_fail, "held-job": held_job, "ray-driver": ray_driver, "many": many,
    "fuzz": fuzz,
}
NEEDS_SLURM = {"submit-after_intent", "submit-after_sbatch", "submit-after_record", "requeue", "node-fail", "held-job"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=sorted(SCENARIOS))
    args = ap.parse_args()
    slurm = shutil.which("sbatch") is not None
    rows: list[Row] = []
    for name in args.only or SCENARIOS:
        if name in NEEDS_SLURM and not slurm:
            rows.append((name, "-", "skipped: no SLURM (slurm/local-cluster.sh up)", "-", "-", True))
            continue
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
            t0 = time.time()
            try:
                row = SCENARIOS[name](Path(tmp))
            except Exception as err:  # noqa: BLE001 - a scenario that breaks is a FAIL row, not a crash
                row = (name, "-", f"{type(err).__name__}: {err}"[:80], "-", "-", False)
            print(f"  {name}: {'PASS' if row[-1] else 'FAIL'} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
            rows.append(row)
    head = ("scenario", "injected fault", "outcome", "epochs lost", "duplicates", "verdict")
    table = [head, *[(*r[:5], "PASS" if r[5] else "FAIL") for r in rows]]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in table[1:]:
        print("| " + " | ".join(r) + " |")
    from security import report  # bench/security.py (bench/ is on the path when run as a script)

    secure = args.only is not None or report()  # the security table: a full run only
    return 0 if all(r[5] for r in rows) and secure else 1


if __name__ == "__main__":
    sys.exit(main())
