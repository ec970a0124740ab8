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

import yaml

ROOT = Path(__file__).resolve().parent.parent
ORCH = str(Path(sys.executable).parent / "orchestrate")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TINY = {"model": {"layers": 2, "blocks": 1, "channels": 8},
        "data": {"name": "synthetic", "subset": 64, "test_subset": 20, "val_size": 0},
        "train": {"epochs": 12, "batch_size": 32, "optimizer": {"name": "sgd", "lr": 0.05}},
        "resources": {"cpus_per_task": 1, "time": "00:10:00"}}
Row = tuple[str, str, str, str, str, bool]


def spec(tmp: Path, name: str, epochs: int = 12, **extra) -> Path:
    path = tmp / f"{name}.yaml"
    base = {**TINY, "train": {**TINY["train"], "epochs": epochs}, **extra.pop("base", {})}
    path.write_text(yaml.safe_dump({"name": name, "base": base, **extra}))
    return path


def orch(tmp: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    runs = [] if args[0] == "train" else ["--runs-dir", str(tmp / "runs")]
    return subprocess.run([ORCH, *args, *runs], capture_output=True, text=True, env={**ENV, **kw.pop("env", {})},
                          cwd=tmp, timeout=900, **kw)


def epochs_of(d: Path) -> list[int]:
    try:
        return [json.loads(ln)["epoch"] for ln in (d / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    except (OSError, ValueError):
        return []


def wait_epochs(d: Path, n: int, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while len(epochs_of(d)) < n:
        if time.time() > deadline:
            raise TimeoutError(f"{d} never reached epoch {n}")
        time.sleep(0.1)


def resumed_after(text: str) -> int:
    return int(text.split("resuming after epoch ")[1].split("/")[0]) if "resuming after epoch " in text else 0


def trained(text: str) -> int:
    """Epoch lines a run printed: with the resume point, how much work was done twice."""
    return sum(1 for ln in text.splitlines() if "] epoch " in ln)


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


def slurm_jobs(prefix: str, since: float) -> list[str]:
    """Concrete job ids named ``prefix...`` submitted since ``since`` (queued or ended)."""
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 1))
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-S", start, "-o", "JobID,JobName,Submit"], capture_output=True,
                         text=True).stdout.split()
    return sorted({ln.split("|")[0] for ln in out if ln.split("|")[1].startswith(prefix) and "[" not in ln})


def settle(tmp: Path, s: Path, timeout: float = 300) -> list[dict]:
    deadline = time.time() + timeout
    while True:
        states = json.loads(orch(tmp, "status", str(s), "--json").stdout)
        if all(not x["active"] and x["state"] != "missing" for x in states) or time.time() > deadline:
            return states
        time.sleep(1)


def killed_submit(tmp: Path, point: str) -> Row:
    name = "ks-" + point.split(".")[1].replace("_", "-")
    s = spec(tmp, name, 1, grid={"train.seed": [0, 1, 2]})
    t0 = time.time()
    killed = orch(tmp, "submit", str(s), "--partition", "cpu", env={"ORCHESTRATE_FAULT": point})
    again = orch(tmp, "submit", str(s), "--partition", "cpu")
    states = settle(tmp, s)
    jobs = slurm_jobs(f"orchestrate-{name}-", t0)
    ok = killed.returncode == -9 and again.returncode == 0 and len(jobs) == 3 and all(
        x["state"] == "completed" for x in states)
    return ("killed submit", f"SIGKILL at {point}", f"rerun: {len(jobs)} jobs for 3 trials, "
            f"{sum(x['state'] == 'completed' for x in states)}/3 completed", "0", str(len(jobs) - 3), ok)


def node_fail(tmp: Path) -> Row:
    s = spec(tmp, "nf", 60)
    sub = json.loads(orch(tmp, "submit", str(s), "--partition", "cpu", "--json").stdout)["submitted"][0]
    d = tmp / "runs" / "nf" / "trials" / sub["trial_id"]
    wait_epochs(d, 5)
    node = subprocess.run(["squeue", "-h", "-j", sub["job_id"], "-o", "%N"], capture_output=True, text=True).stdout.strip()
    pid = json.loads((d / "lease.json").read_text())["pid"]
    try:
        os.kill(int(Path(f"/run/slurm/slurmd-{node}.pid").read_text()), signal.SIGKILL)
        subprocess.run(["pkill", "-9", "-f", rf"slurmstepd: \[{sub['job_id']}\."], check=False)
        os.kill(pid, signal.SIGKILL)
        states = settle(tmp, s, 400)
    finally:
        subprocess.run(["bash", str(ROOT / "slurm" / "local-cluster.sh"), "up"], capture_output=True, timeout=300)
    r = json.loads((d / "result.json").read_text())
    log = (d / "stdout.log").read_text()
    start = resumed_after(log)
    ok = states[0]["state"] == "completed" and "after node_fail" in states[0]["detail"] and epochs_of(d) == list(
        range(1, 61)) and r["host"]["slurmd_nodename"] != node
    return ("node failure", f"slurmd + trial on {node} SIGKILLed", f"{states[0]['detail']}; finished on "
            f"{r['host']['slurmd_nodename']} from epoch {start}", str(trained(log) - 60), "0", ok)


def sacct_final(job: str, timeout: float = 60) -> list[str]:
    """The job's sacct states once it has ended there (sacct lags the queue by seconds)."""
    deadline = time.time() + timeout
    while True:
        states = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job, "-o", "State"], capture_output=True,
                                text=True).stdout.split()
        if (states and states[-1] not in ("RUNNING", "PENDING", "COMPLETING")) or time.time() > deadline:
            return states
        time.sleep(0.5)


def held_job(tmp: Path) -> Row:
    s = spec(tmp, "hj", 60)
    sys.path.insert(0, str(ROOT / "tests"))
    from test_faults_slurm import fill_the_cluster

    blocker = fill_the_cluster()  # the trial's job waits in the queue until it is held
    try:
        sub = json.loads(orch(tmp, "submit", str(s), "--partition", "cpu", "--json").stdout)["submitted"][0]
        subprocess.run(["scontrol", "hold", sub["job_id"]], check=True)
    finally:
        subprocess.run(["scancel", blocker], check=False)
    d = tmp / "runs" / "hj" / "trials" / sub["trial_id"]
    first = subprocess.Popen([ORCH, "train", str(s), "--out", str(d)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=ENV)
    wait_epochs(d, 1)
    subprocess.run(["scontrol", "release", sub["job_id"]], check=True)
    first.communicate(timeout=600)
    states = settle(tmp, s)
    sacct = sacct_final(sub["job_id"])
    dups = len(list((d / "duplicates").glob("*.json")))
    ok = dups == 1 and sacct == ["COMPLETED"] and epochs_of(d) == list(range(1, 61)) and states[0]["state"] == "completed"
    return ("job starts on a held trial", "job released while another runner trains", f"job {sacct[0] if sacct else '?'}"
            f" as a duplicate; trial trained once", "0", str(dups), ok)


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


def requeue(tmp: Path) -> Row:
    s = spec(tmp, "rq", 40)
    sub = json.loads(orch(tmp, "submit", str(s), "--partition", "cpu", "--json").stdout)["submitted"][0]
    d = tmp / "runs" / "rq" / "trials" / sub["trial_id"]
    wait_epochs(d, 5)
    subprocess.run(["scontrol", "requeue", sub["job_id"]], check=True)
    states = settle(tmp, s)
    log = (d / "stdout.log").read_text()
    ok = states[0]["state"] == "completed" and epochs_of(d) == list(range(1, 41)) and resumed_after(log) > 0
    return ("SLURM requeue", "scontrol requeue mid-trial", f"{states[0]['detail']}; resumed after epoch "
            f"{resumed_after(log)}", str(trained(log) - 40), "0", ok)


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
