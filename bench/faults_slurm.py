"""bench/faults.py's SLURM rows: a submit killed at each step, a requeue, a dead node, a job that
starts while another runner holds its trial. Needs the local cluster (slurm/local-cluster.sh up)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from faultkit import ENV, ORCH, ROOT, Row, epochs_of, orch, resumed_after, spec, trained, wait_epochs


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
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "backends" / "slurm")]  # kit, test_slurm
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
