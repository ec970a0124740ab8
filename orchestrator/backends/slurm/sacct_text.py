"""What SLURM's commands print, parsed: sacct and squeue lines, array ids, ``scontrol show config``.
Pure functions of text, so every rule is tested from literal output with no cluster."""

from __future__ import annotations

import re
import subprocess

from orchestrator.backends.base import JobState

# SLURM job state -> (our state, still active)
_STATES = {
    "PENDING": ("pending", True), "CONFIGURING": ("running", True), "RUNNING": ("running", True),
    "COMPLETING": ("running", True), "SUSPENDED": ("running", True), "STAGE_OUT": ("running", True),
    "REQUEUED": ("pending", True), "REQUEUE_HOLD": ("pending", True), "REQUEUE_FED": ("pending", True),
    "RESIZING": ("running", True), "SIGNALING": ("running", True), "RESV_DEL_HOLD": ("pending", True),
    "COMPLETED": ("completed", False), "FAILED": ("failed", False), "TIMEOUT": ("timeout", False),
    "DEADLINE": ("timeout", False), "PREEMPTED": ("preempted", False), "CANCELLED": ("cancelled", False),
    "OUT_OF_MEMORY": ("out_of_memory", False), "NODE_FAIL": ("node_fail", False), "BOOT_FAIL": ("node_fail", False),
    "REVOKED": ("cancelled", False), "SPECIAL_EXIT": ("failed", False),
}


def sbatch_refusal(err: BaseException) -> str:
    """One line from sbatch's refusal (submitit's FailedJobError): its error lines, joined."""
    lines = [ln.removeprefix("sbatch: error: ").strip() for ln in str(err).splitlines() if ln.strip()]
    return "; ".join(lines) or "submission failed"


def parse_max_array_size(text: str) -> int | None:
    """``MaxArraySize = 4242`` in ``scontrol show config`` output, or None."""
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxArraySize" and value.strip().isdigit():
            return int(value.strip())
    return None


def _expand_array(job: str) -> list[str]:
    """``12_[3-5,7%2]`` -> 12_3, 12_4, 12_5, 12_7 (how sacct/squeue print pending array tasks)."""
    m = re.fullmatch(r"(\d+)_\[([^\]]+)\]", job)
    if not m:
        return [job]
    out = []
    for part in m.group(2).split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        out += [f"{m.group(1)}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def parse_sacct(text: str) -> dict[str, JobState]:
    """``sacct -n -P -X -D -o JobID,State`` -> job id -> its current state and restart count.

    Restarts come only from real evidence: each earlier record of the same concrete task id is
    one run that ended (requeue, preemption, node failure). A pending-range row (``59_[2-5%2]``)
    is the array's not-yet-started tasks, never a run: it gives a state to tasks that have no
    record of their own and counts nothing. (It can still list a task that has just started,
    because sacct lags; counting it made every running task of a throttled array look restarted.)"""
    runs: dict[str, list[str]] = {}
    pending: dict[str, str] = {}
    for line in text.splitlines():
        job, _, raw = line.strip().partition("|")
        if not job:
            continue
        if "[" in job:
            for j in _expand_array(job):
                pending[j] = raw or "PENDING"
        else:
            runs.setdefault(job, []).append(raw)
    out: dict[str, JobState] = {}
    for j, raw in pending.items():
        if j not in runs:
            out[j] = _job_state(raw, 0)
    for j, records in runs.items():
        state = _job_state(records[-1], len(records) - 1)
        earlier = tuple(_job_state(r, 0).state for r in records[:-1])
        out[j] = JobState(state.state, state.active, state.raw, state.restarts, earlier)
    return out


def merge_squeue(states: dict[str, JobState], text: str) -> dict[str, JobState]:
    """sacct's states with ``squeue -h -r -o %i|%T`` on top: the queue is authoritative for what is
    still active (sacct lags by seconds); restarts and earlier runs stay sacct's."""
    out = dict(states)
    for line in text.splitlines():
        job, sep, raw = line.strip().partition("|")
        if not sep:
            continue
        state, active = _STATES.get(raw, ("running", True))
        for j in _expand_array(job):
            prev = out.get(j)
            out[j] = JobState(state, active, raw, prev.restarts if prev else 0, prev.earlier if prev else ())
    return out


def _task_ids(job_ids: list[str], tasks: int) -> dict[int, str]:
    """Array task index -> job id, from what SLURM lists under an intent's name: ``12`` alone is a
    one-task (non-array) submission; ``12_0``..``12_N`` an array."""
    if tasks == 1 and len(job_ids) == 1 and "_" not in job_ids[0]:
        return {0: job_ids[0]}
    out = {}
    for j in job_ids:
        base, _, idx = j.partition("_")
        if idx.isdigit() and int(idx) < tasks:
            out[int(idx)] = j
    return out


def _job_state(raw: str, restarts: int) -> JobState:
    word = raw.split()[0] if raw else "PENDING"
    state, active = _STATES.get(word.rstrip("+"), ("failed", False))
    return JobState(state, active, raw, restarts)


def run(cmd: list[str], timeout: float = 60) -> str:
    """Scheduler CLIs, argument lists only (never a shell string built from config)."""
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=timeout).stdout
