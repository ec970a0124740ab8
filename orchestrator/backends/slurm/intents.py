"""Crash-consistent SLURM submits: an intent is written before sbatch (the job name carries its
token; which trials each array task runs; plain JSON, never a pickle) and cleared once the job
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

from orchestrator.backends.slurm.sacct_text import _expand_array, _task_ids
from orchestrator.backends.slurm.sacct_text import run as _run
from orchestrator.store.sweepdir import Submission, SweepDir, warn_corrupt
from orchestrator.sweep.expand import Trial
from train.safefs import make_dir

RECONCILE_WAIT_S = 10.0  # how long an intent SLURM has not seen may still be in flight (an orphaned sbatch)


def write_intent(sweep: SweepDir, folder: Path, token: str, ex: submitit.SlurmExecutor,
                 packs: list[list[Trial]], resources: dict[str, Any]) -> None:
    """Before sbatch: the intent (job name, which trials each array task runs, the job's time
    limit), so that a submit killed inside submitit (after sbatch, before it moved the job
    pickles into place) can still be completed by the next one: it writes those pickles anew
    from the sweep's own trials.jsonl (``backend.calls``), never from a pickle left in the dir."""
    make_dir(folder)
    sweep.write_intent(token, {"token": token, "backend": "slurm", "time": time.time(),
                               "job_name": ex.parameters["job_name"], "folder": str(folder),
                               "timeout_min": ex.parameters.get("time", 5), "max_num_timeout": ex.max_num_timeout,
                               "tasks": [[t.trial_id for t in p] for p in packs], "resources": resources})


def clear_intent(sweep: SweepDir, folder: Path, token: str) -> None:
    """The job ids are recorded (or sbatch refused): the intent goes."""
    sweep.clear_intent(token)


def reconcile(backend: Any, sweep: SweepDir, read_only: bool = False) -> list[Submission]:
    """Finish what a killed submit left: for each intent, the jobs SLURM has under its name
    are recorded (their pickles put in place if submitit had not yet); an intent SLURM never
    saw is forgotten (its trials are missing, so this submit sends them). Returns the
    submissions found that were not recorded yet."""
    found: list[Submission] = []
    known = {t["trial_id"] for t in sweep.trials()}
    for intent in sweep.intents():
        if intent.get("backend") != backend.name:
            continue
        ids = jobs_named(intent["job_name"], intent["time"])
        if not ids and time.time() - intent["time"] < RECONCILE_WAIT_S:  # an orphaned sbatch may still land
            time.sleep(RECONCILE_WAIT_S - (time.time() - intent["time"]))
            ids = jobs_named(intent["job_name"], intent["time"])
        tasks = intent["tasks"]
        folder = Path(intent["folder"])
        if folder.parent != sweep.path / "slurm" or not all(t in known for pack in tasks for t in pack):
            warn_corrupt(sweep.path / "intents" / f"{intent['token']}.json", "names a folder outside this sweep's "
                         "slurm/ or trials not in trials.jsonl; not acted on")
            continue
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
            if not os.path.lexists(pkl):
                delayed = submitit.core.utils.DelayedSubmission(backend.call(sweep, tasks[i], intent["resources"]))
                delayed.set_timeout(intent.get("timeout_min", 5), intent.get("max_num_timeout", 3))
                make_dir(pkl.parent)
                delayed.dump(pkl)
        if new:
            backend._submissions(sweep, [s.trial_id for s in new], [s.job_id for s in new], folder, intent["resources"])
        clear_intent(sweep, folder, intent["token"])
    return found


def jobs_named(name: str, since: float) -> list[str]:
    """Job ids (``12`` or ``12_3``) SLURM has under this name, queued or ended."""

    ids: set[str] = set()
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 120))
    for cmd in (["squeue", "-h", "-r", "--name", name, "-o", "%i"],
                ["sacct", "-n", "-P", "-X", "--name", name, "-S", start, "-o", "JobID"]):
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError, subprocess.TimeoutExpired):
            for line in _run(cmd).split():
                ids.update(_expand_array(line.strip()))
    return sorted(ids)
