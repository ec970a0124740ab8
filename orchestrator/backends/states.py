"""Per-trial state, merged from the result files (the trial's own verdict) and the scheduler.

Where a job ended without a verdict (timeout, preemption, OOM, cancel, node failure), the trial's
result.json is written here with that failure kind, so the reason survives the scheduler's memory."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.backends.base import Backend, JobState
from orchestrator.plugins import backend_class, reader
from orchestrator.store.crashes import killed_by, read_tail
from orchestrator.store.sweepdir import Submission, SweepDir
from orchestrator.store.trialfiles import damage
from train.files import failure, write_result
from train.lease import DUPLICATES, describe, held
from train.safefs import read_regular

DONE = ("completed", "stopped_early")
GRACE_S = 60.0  # a just-submitted job may not be in squeue/sacct yet


@dataclass(frozen=True)
class TrialState:
    trial_id: str
    state: str  # the shared vocabulary, or "missing" (never submitted / lost)
    active: bool
    job_id: str | None
    detail: str = ""  # failure: the exception's last line; scheduler word; restarts
    result: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        r = self.result or {}
        return {"trial_id": self.trial_id, "state": self.state, "job_id": self.job_id, "active": self.active,
                "detail": self.detail, "test_acc": r.get("test_acc"), "epochs_completed": r.get("epochs_completed"),
                "params": r.get("params")}


_MODULE_PREFIX = re.compile(r"^(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_]\w*(?::|$))")


def error_line(error: str | None) -> str:
    """One line for a failure: the exception line of a Python traceback (``DataNotFound: ...``,
    module path dropped; a multi-line message keeps its first line), else the last non-empty line.
    The whole text stays in result.json and the job's log (``orchestrate logs``)."""
    lines = (error or "").strip().splitlines()
    if lines and lines[0].startswith("killed by SIG"):  # orchestrator/crashes.py: the signal, then its stack
        return lines[0]
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("Traceback (most recent call last):"):
            header = next((ln for ln in lines[i + 1:] if ln.strip() and not ln[0].isspace()), "")
            if header:
                return _MODULE_PREFIX.sub("", header.strip())
            break
    real = [ln.strip() for ln in lines if ln.strip()]
    return real[-1] if real else ""


# What a scheduler prints when it kills a job for memory without the OUT_OF_MEMORY state
# (slurmstepd's JobAcctGatherParams=OverMemoryKill, or the kernel's OOM killer).
OOM_WORDS = ("exceeded job memory limit", "exceeded memory limit", "oom-kill", "out of memory")


def _stderr_tail(backend: Backend | None, sub: Submission) -> bytes:
    """The end of the job's stderr, read once: why a job died before the trial could write its
    verdict (the scheduler's OOM words, a signal's marks and stack, its last line)."""
    try:
        err = backend.log_paths(sub)[1] if backend else None
    except (TypeError, NotImplementedError):
        return b""
    return (read_tail(err) or b"") if err else b""


def _last_real_line(lines: list[str], kind: type[Backend]) -> str:
    real = [ln for ln in lines if not kind.noise(ln)]
    return (real or lines or [""])[-1]


def _kind(sub: Submission | None) -> type[Backend]:
    """The class of the backend that ran a submission (its static knowledge needs no scheduler)."""
    try:
        return backend_class(sub.backend) if sub else Backend
    except ValueError:
        return Backend


def verdict_state(result: dict[str, Any]) -> str:
    """The state a result.json says: its status, or for a failure its kind (a crash is "failed")."""
    if result.get("status") != "failed":
        return result["status"]
    kind = result.get("failure_kind") or "crash"
    return "failed" if kind == "crash" else kind


def _duplicate_of(sweep: SweepDir, trial_id: str, job_id: str | None) -> str:
    """Whom job ``job_id`` found holding the trial, if it exited as a duplicate (its record in duplicates/)."""
    for path in sorted((sweep.trial_dir(trial_id) / DUPLICATES).glob("*.json")):
        try:
            record = json.loads(read_regular(path))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and job_id and record.get("job_id") == job_id:
            holder = record.get("holder") or {}
            return f"host {holder.get('host')} pid {holder.get('pid')}"
    return ""


def _after(job: JobState) -> str:
    """`` after node_fail``: how the job's earlier runs ended, when that was not a plain requeue."""
    why = [w for w in dict.fromkeys(job.earlier) if w not in ("pending", "running", "completed")]
    return f" after {', '.join(why)}" if why else ""


def _ended(job_id: str | None, jobs: dict[str, JobState]) -> bool:
    """The scheduler says this job is over (its lease, if still there, is a dead runner's)."""
    job = jobs.get(job_id) if job_id else None
    return job is not None and not job.active


def trial_states(sweep: SweepDir, trial_ids: list[str], record_failures: bool = True) -> list[TrialState]:
    """Each trial's state; its latest submission's backend (from the registry, by the name it
    recorded) says what its job is doing."""
    # a verdict is written only into the user's own sweep: reading another's never writes there
    record_failures = record_failures and sweep.mine()
    latest = sweep.latest()
    jobs: dict[str, JobState] = {}
    by_backend: dict[str, list[Submission]] = {}
    for t in trial_ids:
        if t in latest:
            by_backend.setdefault(latest[t].backend, []).append(latest[t])
    trouble: dict[str, str] = {}
    for name, subs in by_backend.items():
        backend = reader(name)
        if backend is not None:
            jobs.update(backend.states(subs))
            trouble[name] = backend.trouble
    params: dict[str, Any] = {}

    def params_of(trial_id: str) -> int | None:  # the manifest is read once, and only if needed
        if not params:
            params.update((t["trial_id"], t.get("params")) for t in sweep.trials())
        return params.get(trial_id)

    return [_merge(sweep, t, latest.get(t), jobs, reader(latest[t].backend) if t in latest else None,
                   record_failures, params_of, trouble.get(latest[t].backend, "") if t in latest else "")
            for t in trial_ids]


def _merge(sweep: SweepDir, trial_id: str, sub: Submission | None, jobs: dict[str, JobState],
           backend: Backend | None, record_failures: bool, params_of: Callable[[str], int | None],
           trouble: str = "") -> TrialState:
    result = sweep.result(trial_id)
    job_id = sub.job_id if sub else None
    path = sweep.trial_dir(trial_id) / "result.json"
    if result is None and (why := damage(path)):  # damaged: say so by name, never overwrite it with a guess
        job = jobs.get(job_id) if job_id else None
        if job is None or not job.active:
            return TrialState(trial_id, "failed", False, job_id, f"{why}; submit --retry-failed reruns the trial "
                              "from its checkpoint")
    if result is not None and result.get("status") in DONE:
        restarts = _kind(sub).restarts(result)
        detail = f"restarts {restarts}" if restarts else ""
        job = jobs.get(job_id) if job_id else None
        if detail and job is not None and job.earlier:
            detail += _after(job)
        return TrialState(trial_id, result["status"], False, job_id, detail, result)
    job = jobs.get(job_id) if job_id else None
    if job is not None and job.active:
        detail = job.raw + (f", restarts {job.restarts}" + _after(job) if job.restarts else "")
        return TrialState(trial_id, job.state, True, job_id, detail, result)
    holder = held(sweep.trial_dir(trial_id))
    here = holder is not None and holder.get("host") == socket.gethostname()
    if holder is not None and (here or not _ended(holder.get("job_id"), jobs)):
        # a runner holds the trial's lease (maybe from another job than the latest): it is running.
        # On this host held() has seen its process alive, whatever the scheduler says of its job
        # (a dead Ray driver's worker trains on until it notices, within seconds).
        note = "; its job has ended, the runner is still alive" if here and _ended(holder.get("job_id"), jobs) else ""
        return TrialState(trial_id, "running", True, holder.get("job_id") or job_id,
                          f"lease: {describe(holder)}{note}", result)
    if result is not None and result.get("status") == "failed":
        return TrialState(trial_id, verdict_state(result), False, job_id, error_line(result.get("error")), result)
    if result is not None and result.get("status") == "paused":  # at a rung: not a verdict, resumable
        return TrialState(trial_id, "paused", False, job_id, f"paused after epoch {result.get('epochs_completed')}",
                          result)
    if sub is None:
        return TrialState(trial_id, "missing", False, None, "not submitted")
    if job is None and backend is None:
        return TrialState(trial_id, "missing", False, job_id, f"no {sub.backend} client here to ask about job {job_id}")
    if job is not None and job.state == "interrupted":  # not a verdict: a rerun of submit resumes it
        return TrialState(trial_id, "interrupted", False, job_id, job.raw, result)
    if job is None and trouble:  # not a verdict: nobody can say, so nothing is resubmitted or recorded
        return TrialState(trial_id, "unknown", False, job_id, f"the scheduler is not answering ({trouble})")
    if job is None:
        if time.time() - sub.time < GRACE_S:
            return TrialState(trial_id, "pending", True, job_id, "submitted")
        return TrialState(trial_id, "missing", False, job_id, "the scheduler has no record of its job")
    # The job ended but the trial wrote no verdict: the scheduler killed it (or it died hard).
    kind = job.state if job.state != "completed" else "failed"
    detail = f"job {job_id} ended {job.raw}" + ("" if job.state != "completed" else " without a result.json")
    raw = _stderr_tail(backend, sub) if kind in ("failed", "cancelled") else b""
    tail = [ln.strip() for ln in raw[-4096:].decode(errors="replace").splitlines() if ln.strip()]
    oom = next((ln for ln in tail if any(w in ln.lower() for w in OOM_WORDS)), "")
    if oom:
        kind, detail = "out_of_memory", f"{detail}: {oom}"
    elif kind == "failed" and (holder_of := _duplicate_of(sweep, trial_id, job_id)):
        detail += f": it exited as a duplicate ({holder_of} held the trial) and that runner left no result"
    elif kind == "failed" and (signal := killed_by(raw.decode(errors="replace"))):
        # the verdict keeps the native stack; the status line says the signal and the job
        stack = signal.splitlines()
        verdict = failure(trial_id, "crash", "\n".join([stack[0], f"(job {job_id} ended {job.raw})", *stack[1:]]),
                          params_of(trial_id))
        if record_failures:
            write_result(sweep.trial_dir(trial_id), verdict)
        return TrialState(trial_id, kind, False, job_id, f"{stack[0]} ({detail})", verdict)
    elif kind == "failed" and tail:
        detail += f": {_last_real_line(tail, _kind(sub))}"
    verdict = failure(trial_id, "crash" if kind == "failed" else kind, detail, params_of(trial_id))
    if record_failures:
        write_result(sweep.trial_dir(trial_id), verdict)
    return TrialState(trial_id, kind, False, job_id, detail, verdict)
