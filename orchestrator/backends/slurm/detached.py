"""A small job of its own that runs a function unattended (a search's driver): one task, CPU only,
requeued by submitit at its time limit (Checkpointable), so it outlives any one allocation. Its
folder is owner-only, like every job folder (submitit pickles the call there)."""

from __future__ import annotations

import contextlib
import faulthandler
import io
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import submitit

from configcheck import ConfigError
from configcheck.durations import time_minutes
from orchestrator.backends.slurm.allocation import outside_any_job
from orchestrator.backends.slurm.sacct_text import sbatch_refusal
from orchestrator.store.sweepdir import SweepDir
from train.safefs import make_dir, tighten_umask

DAY_MIN = 24 * 60  # a driver's time limit without one given: a day, or the partition's limit if shorter
MAX_REQUEUES = 1000  # at its time limit the driver is requeued; it has nothing to lose in between


class DriverJob(submitit.helpers.Checkpointable):
    """``run(*args)`` in the job (``run`` is a function handed in: it pickles by name, so this
    module imports nothing above the backends). Requeued as it is: the next run continues from
    the sweep dir."""

    def __init__(self, run: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.run, self.args = run, args

    def __call__(self) -> Any:
        tighten_umask()  # (sbatch passes the submitting shell's umask on)
        faulthandler.enable()
        return self.run(*self.args)


def submit_driver(sweep: SweepDir, run: Callable[..., Any], args: tuple[Any, ...], driver: dict[str, Any],
                  max_time: int | None, after: tuple[str, ...] = (), name: str = "search") -> tuple[str, Path, str]:
    """Queue ``run(*args)`` as a one-task job with ``driver``'s resources (``search.driver``),
    starting once the jobs ``after`` have ended, however they ended (``--dependency=afterany``: a
    study's step job after its stage's arrays); returns (job id, its folder, the resources in words)."""
    minutes = time_minutes(driver["time"], "search.driver.time") if driver.get("time") else min(DAY_MIN, max_time or DAY_MIN)
    prefix = "driver" if name == "search" else name  # (a search's driver folders keep their name)
    folder = make_dir(make_dir(sweep.path / "slurm") / f"{prefix}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}")
    ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=MAX_REQUEUES)
    params: dict[str, Any] = {"job_name": f"orchestrate-{name}-{sweep.name}", "time": minutes, "nodes": 1,
                              "ntasks_per_node": 1, "cpus_per_task": driver["cpus_per_task"],
                              "mem": f"{max(1, round(driver['mem_gb'] * 1024))}M", "signal_delay_s": 60}
    for key in ("partition", "account", "qos"):
        if driver.get(key):
            params[key] = driver[key]
    if after:  # array job ids (12) wait for every task; job ids are digits and _ only (checked)
        params["dependency"] = "afterany:" + ":".join(a for a in after if a.replace("_", "").isdigit())
    ex.update_parameters(**params)
    try:  # submitit prints sbatch's stderr itself on failure; it is reported in one line instead
        with contextlib.redirect_stderr(io.StringIO()), outside_any_job():
            job = ex.submit(DriverJob(run, args))
    except submitit.core.utils.FailedJobError as err:  # sbatch refused the request: one line
        shutil.rmtree(folder, ignore_errors=True)
        raise ConfigError("search.driver", sbatch_refusal(err)) from None
    words = (f"partition {driver.get('partition') or 'default'}, {driver['cpus_per_task']} CPU, "
             f"{driver['mem_gb']:g} GB, {minutes // 60}:{minutes % 60:02d} h a run, requeued at its limit")
    return str(job.job_id), folder, words
