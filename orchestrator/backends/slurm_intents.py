"""Crash-consistent SLURM submits: an intent is written before sbatch (the job name carries its
token; which trials each array task runs; a copy of each task's pickle) and cleared once the job
ids are recorded. ``reconcile`` finishes what a killed submit left, from what SLURM has under the
intent's job name, before any new decision."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import submitit

from orchestrator.backends.slurm_text import _expand_array, _task_ids
from orchestrator.expand import Trial
from orchestrator.sweepdir import Submission, SweepDir

RECONCILE_WAIT_S = 10.0  # how long an intent SLURM has not seen may still be in flight (an orphaned sbatch)


def write_intent(sweep: SweepDir, folder: Path, token: str, ex: submitit.SlurmExecutor,
                 packs: list[list[Trial]], calls: list[Any], resources: dict[str, Any]) -> None:
    """Before sbatch: the intent (job name, which trials each array task runs) and a copy of
    each task's pickle, so that a submit killed inside submitit (after sbatch, before it moved
    the pickles into place) can still be completed by the next one."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, call in enumerate(calls):
        delayed = submitit.core.utils.DelayedSubmission(call)
        delayed.set_timeout(ex.parameters.get("time", 5), ex.max_num_timeout)
        delayed.dump(folder / f"intent-{token}-{i}.pkl")
    sweep.write_intent(token, {"token": token, "backend": "slurm", "time": time.time(),
                               "job_name": ex.parameters["job_name"], "folder": str(folder),
                               "tasks": [[t.trial_id for t in p] for p in packs], "resources": resources})


def clear_intent(sweep: SweepDir, folder: Path, token: str) -> None:
    """The job ids are recorded (or sbatch refused): the intent and its pickle copies go."""
    for backup in folder.glob(f"intent-{token}-*.pkl"):
        backup.unlink(missing_ok=True)
    sweep.clear_intent(token)


def reconcile(backend: Any, sweep: SweepDir, read_only: bool = False) -> list[Submission]:
    """Finish what a killed submit left: for each intent, the jobs SLURM has under its name
    are recorded (their pickles put in place if submitit had not yet); an intent SLURM never
    saw is forgotten (its trials are missing, so this submit sends them). Returns the
    submissions found that were not recorded yet."""
    found: list[Submission] = []
    for intent in sweep.intents():
        if intent.get("backend") != backend.name:
            continue
        ids = jobs_named(intent["job_name"], intent["time"])
        if not ids and time.time() - intent["time"] < RECONCILE_WAIT_S:  # an orphaned sbatch may still land
            time.sleep(RECONCILE_WAIT_S - (time.time() - intent["time"]))
            ids = jobs_named(intent["job_name"], intent["time"])
        tasks = intent["tasks"]
        folder = Path(intent["folder"])
        by_task = _task_ids(ids, len(tasks))
        subs = [Submission(t, by_task[i], backend.name, time.time(), str(folder), intent["resources"],
                           array_id=by_task[i].split("_")[0]) for i, pack in enumerate(tasks) if i in by_task
                for t in pack]
        latest = sweep.latest()
        new = [s for s in subs if latest.get(s.trial_id) is None or latest[s.trial_id].job_id != s.job_id]
        found += new  # (killed after record: already there)
        if read_only:
            continue
        for i, job in by_task.items():
            pkl = submitit.core.utils.JobPaths(folder, job_id=job).submitted_pickle
            backup = folder / f"intent-{intent['token']}-{i}.pkl"
            if not pkl.exists() and backup.exists():
                os.replace(backup, pkl)
        if new:
            backend._submissions(sweep, [s.trial_id for s in new], [s.job_id for s in new], folder, intent["resources"])
        clear_intent(sweep, folder, intent["token"])
    return found


def jobs_named(name: str, since: float) -> list[str]:
    """Job ids (``12`` or ``12_3``) SLURM has under this name, queued or ended."""
    from orchestrator.backends.slurm import _run  # (slurm imports this module)

    ids: set[str] = set()
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 120))
    for cmd in (["squeue", "-h", "-r", "--name", name, "-o", "%i"],
                ["sacct", "-n", "-P", "-X", "--name", name, "-S", start, "-o", "JobID"]):
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError, subprocess.TimeoutExpired):
            for line in _run(cmd).split():
                ids.update(_expand_array(line.strip()))
    return sorted(ids)
