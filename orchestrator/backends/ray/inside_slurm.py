"""Ray inside a SLURM allocation: one SLURM job over N nodes starts a Ray head (task 0) and
workers (the other tasks), and task 0 runs the sweep's driver against it, so ASHA and GPU
packing work on a SLURM cluster too.

Authentication stays on: the token is made at submit time in the sweep's run dir (0600, in a
0700 dir on the shared filesystem) and every node's Ray reads it from there; other users on the
same nodes cannot reach the cluster without it."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from configcheck import ConfigError
from configcheck.durations import time_minutes
from orchestrator.backends.ray.processes import stop_marked
from orchestrator.backends.slurm.allocation import outside_any_job
from orchestrator.backends.slurm.sacct_text import sbatch_refusal
from orchestrator.plugins import reader
from orchestrator.store.sweepdir import Submission, SweepDir
from orchestrator.sweep.expand import Trial
from train.atomic import atomic_write_text
from train.safefs import read_regular

SLURM_OPTIONS = ("partition", "nodes", "time", "account", "qos", "constraint", "cpus_per_task", "gpus_per_node",
                 "mem_gb")
HEAD, DONE = "head_address", "cluster_done"


def check_fits_slurm(need: dict[str, float], slurm: dict[str, Any]) -> None:
    """One trial must fit one node of the allocation, or the sweep would wait forever."""
    cpus = slurm.get("cpus_per_task") or 1
    gpus = slurm.get("gpus_per_node") or 0
    if need["CPU"] > cpus or need.get("GPU", 0) > gpus:
        asked = ", ".join(f"{k} {v:g}" for k, v in need.items())
        raise ConfigError("--cpus-per-task/--gpus-per-node", f"each trial asks for {asked}; each node of the Ray "
                          f"cluster job would have CPU {cpus}, GPU {gpus}: raise --cpus-per-task/--gpus-per-node")


def submit_cluster_job(sweep: SweepDir, run_dir: Path, trials: list[Trial], resources: dict[str, Any],
                       slurm: dict[str, Any], max_concurrent: int | None, driver: type) -> str:
    """Queue the Ray cluster job; its task 0 runs ``driver`` (the Ray backend's class, handed in
    so this module never imports the backend that imports it)."""
    import submitit  # heavy: loads submitit; only this path needs it


    ex = submitit.SlurmExecutor(folder=run_dir / "slurm", max_num_timeout=0)
    params: dict[str, Any] = {"job_name": f"orchestrate-ray-{sweep.name}", "nodes": slurm.get("nodes") or 1,
                              "ntasks_per_node": 1, "time": time_minutes(slurm.get("time") or "01:00:00"),
                              "cpus_per_task": slurm.get("cpus_per_task") or 1}
    for key in ("partition", "account", "qos", "constraint"):
        if slurm.get(key):
            params[key] = slurm[key]
    if slurm.get("gpus_per_node"):
        params["gpus_per_node"] = slurm["gpus_per_node"]
    if slurm.get("mem_gb"):
        params["mem"] = f"{max(1, round(slurm['mem_gb'] * 1024))}M"
    ex.update_parameters(**params)
    try:  # submitit prints sbatch's stderr itself on failure; it is reported in one line instead
        with contextlib.redirect_stderr(io.StringIO()), outside_any_job():
            job = ex.submit(ClusterJob(str(sweep.path), str(run_dir), trials, resources, max_concurrent, driver))
    except submitit.core.utils.FailedJobError as err:  # sbatch refused the request: one line
        raise ConfigError("sbatch", sbatch_refusal(err)) from None
    return str(job.job_id)


class ClusterJob:
    """What every task of the Ray cluster job runs (submitit pickles it)."""

    def __init__(self, sweep: str, run_dir: str, trials: list[Trial], resources: dict[str, Any],
                 max_concurrent: int | None, driver: type) -> None:
        self.sweep, self.run_dir, self.trials = sweep, run_dir, trials
        self.resources, self.max_concurrent, self.driver = resources, max_concurrent, driver

    def __call__(self) -> str:
        run_dir = Path(self.run_dir)
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(run_dir / "auth_token")
        os.environ.pop("RAY_AUTH_TOKEN", None)
        ray = str(Path(sys.executable).parent / "ray")
        temp = node_temp()
        # this node's Ray processes carry the line (workers inherit it): they, and only they, are
        # stopped at the end; `ray stop` would end every Ray of this user on a shared node
        mark = f"ORCHESTRATE_RAY_NODE={temp}"
        env = {**os.environ, "ORCHESTRATE_RAY_NODE": temp}
        common = [f"--num-cpus={os.environ.get('SLURM_CPUS_PER_TASK', '1')}", f"--temp-dir={temp}",
                  "--disable-usage-stats"]
        gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
        if gpus:
            common.append(f"--num-gpus={len(gpus.split(','))}")
        if int(os.environ.get("SLURM_PROCID", "0")) != 0:
            address = _wait_for(run_dir / HEAD)
            subprocess.run([ray, "start", f"--address={address}", *common], check=True, capture_output=True, env=env)
            try:
                _wait_for(run_dir / DONE)
            finally:
                stop_marked(mark)
                remove_temp(temp)
            return "worker done"
        port = _free_port()
        host = socket.gethostname()
        subprocess.run([ray, "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
                       check=True, capture_output=True, env=env)
        address = f"{socket.gethostbyname(host)}:{port}"
        atomic_write_text(run_dir / HEAD, address)
        try:
            backend = self.driver(address=address, max_concurrent=self.max_concurrent, as_json=True)
            sweep = SweepDir(self.sweep)
            subs = [s for s in sweep.submissions() if s.folder == self.run_dir]
            backend.drive(sweep, run_dir, self.trials, self.resources, subs)
            return backend.outcome
        finally:
            atomic_write_text(run_dir / DONE, str(time.time()))
            stop_marked(mark)
            remove_temp(temp)  # node-local: sockets and this node's Ray logs


def node_temp() -> str:
    """This node's Ray temp dir: unpredictable and owner-only (mkdtemp: 0700), never a name
    someone else could create first (Ray makes its session and socket dirs world-writable inside
    it). In /tmp, short: Unix socket paths must stay under 108 bytes."""
    return tempfile.mkdtemp(prefix=f"orx-{os.environ.get('SLURM_JOB_ID', os.getpid())}-", dir="/tmp")


def remove_temp(temp: str) -> None:
    """Remove this node's Ray temp dir; a failure is said (on the job's stderr), never swallowed."""
    failed: list[str] = []
    shutil.rmtree(temp, onerror=lambda fn, path, exc: failed.append(f"{path}: {exc[1]}"))
    if failed:
        print(f"warning: could not remove Ray's temp dir {temp} completely ({len(failed)} failures, first: "
              f"{failed[0]})", file=sys.stderr, flush=True)


def _wait_for(path: Path, timeout: float = 600.0) -> str:
    deadline = time.time() + timeout
    while not path.is_file():
        if time.time() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.5)
    return read_regular(path).decode().strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def job_state(run_dir: Path, submission: Submission) -> tuple[str, bool, str] | None:
    """(state, active, raw) of the Ray cluster job of ``run_dir``, asked of SLURM; None when the
    run was not made by a cluster job, or SLURM cannot be asked from here."""
    job_file = run_dir / "slurm_job"
    if not job_file.is_file():
        return None

    slurm = reader("slurm")
    if slurm is None:
        return None
    job = read_regular(job_file).decode().strip()
    state = slurm.states([Submission(submission.trial_id, job, "slurm", submission.time, str(run_dir), {})]).get(job)
    if state is None:
        return None
    return state.state, state.active, f"Ray cluster job {job} {state.raw}"
