"""The trial lease: one runner trains a trial at a time, on any filesystem the nodes share.

``lease.json`` in the trial dir names the holder (host, pid and its start time, SLURM job id, a
random token) and a heartbeat that a thread renews every ``ORCHESTRATE_LEASE_HEARTBEAT_S``
(default 30 s). It is taken with ``os.link`` of a complete temp file, which is atomic and fails
on an existing name on local disks and NFS alike (flock is not reliable across NFS clients), and
released at the end. A second runner finds it and exits with one line naming the holder
(``TrialHeld``). A lease is stale, and taken over with a warning, when:

- its holder is this runner's own job at an earlier restart count (SLURM requeued the job: its
  earlier run is over);
- its holder ran on this host and that process is gone (pid dead, or reused by another process);
- its heartbeat is older than ``ORCHESTRATE_LEASE_STALE_S`` (default 300 s): the holder's node
  died or lost the filesystem. Clocks of the nodes must agree to well within that.

A holder whose lease was taken over (it was only slow, or cut off) notices at its next heartbeat
and stops before its next checkpoint (``LeaseLost``), so two runners never both write a trial."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from train.atomic import atomic_write_json
from train.safefs import make_dir, open_nofollow, read_regular

LEASE = "lease.json"
DUPLICATES = "duplicates"  # one file per runner that found the trial held: a duplicate, not a failure


def heartbeat_s() -> float:
    return float(os.environ.get("ORCHESTRATE_LEASE_HEARTBEAT_S", "30"))


def stale_s() -> float:
    return float(os.environ.get("ORCHESTRATE_LEASE_STALE_S", "300"))


def job_id() -> str | None:
    """This runner's job as its submission records it: ``ORCHESTRATE_JOB_ID`` (set by a launcher
    whose ids are its own, e.g. Ray's ``<driver stamp>_<i>``), else the SLURM job (``123_4`` for
    an array task)."""
    env = os.environ
    if env.get("ORCHESTRATE_JOB_ID"):
        return env["ORCHESTRATE_JOB_ID"]
    if "SLURM_ARRAY_JOB_ID" in env and "SLURM_ARRAY_TASK_ID" in env:
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot: a pid reused by another process differs."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def describe(holder: dict[str, Any]) -> str:
    job = f", job {holder['job_id']}" if holder.get("job_id") else ""
    age = time.time() - float(holder.get("heartbeat") or 0)
    return f"host {holder.get('host')} pid {holder.get('pid')}{job}, heartbeat {age:.0f} s ago"


class TrialHeld(Exception):
    """Another runner holds the trial's lease: this one exits, recorded as a duplicate."""

    def __init__(self, trial_id: str, holder: dict[str, Any] | None) -> None:
        self.trial_id, self.holder = trial_id, holder or {}
        who = describe(self.holder) if holder else "another rank's runner"
        super().__init__(f"trial {trial_id} is already being trained ({who}); this run exits as a duplicate")


class LeaseLost(TrialHeld):
    """This runner's lease was taken over while it trained: it stops before writing anything more."""

    def __init__(self, trial_id: str, holder: dict[str, Any] | None) -> None:
        super().__init__(trial_id, holder)
        self.args = (f"trial {trial_id}: the lease was taken over ({describe(self.holder)}); "
                     "this run stops without writing",)


def read_lease(out: Path) -> dict[str, Any] | None:
    return read_lease_file(out / LEASE)


def restart_count() -> str | None:
    """How often SLURM has requeued this job (None outside SLURM): a requeued run's leases differ in it."""
    return os.environ.get("SLURM_RESTART_COUNT", "0") if "SLURM_JOB_ID" in os.environ else None


def stale_reason(holder: dict[str, Any] | None, now: float | None = None, mine: str | None = None,
                 restart: str | None = None) -> str | None:
    """Why ``holder``'s lease no longer holds, or None while it does. ``mine``/``restart``: this
    runner's job id and SLURM restart count; the same job at an earlier restart count is this job's
    own run before a requeue (two runners inside one allocation share the job id, not the count)."""
    if holder is None:
        return "the lease file cannot be read"
    now = time.time() if now is None else now
    if (mine is not None and holder.get("job_id") == mine and restart is not None
            and holder.get("restart") not in (None, restart)):
        return f"it is this job's own earlier run (job {mine} was requeued)"
    if holder.get("host") == socket.gethostname():
        pid = int(holder.get("pid") or 0)
        start = _start_time(pid) if pid > 0 else None
        if start is None or (holder.get("start") is not None and start != holder.get("start")):
            return f"its process {pid} on this host is gone"
    age = now - float(holder.get("heartbeat") or 0)
    if age > stale_s():
        return f"no heartbeat for {age:.0f} s (stale after {stale_s():g} s)"
    return None


def held(out: Path, now: float | None = None) -> dict[str, Any] | None:
    """The live lease of a trial dir (for status), or None."""
    holder = read_lease(out)
    return holder if holder is not None and stale_reason(holder, now) is None else None


class Lease:
    def __init__(self, out: Path, trial_id: str) -> None:
        self.out, self.trial_id = out, trial_id
        self.token = uuid.uuid4().hex
        self.lost: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        pid = os.getpid()
        self.record = {"trial_id": trial_id, "host": socket.gethostname(), "pid": pid, "start": _start_time(pid),
                       "job_id": job_id(), "restart": restart_count(), "token": self.token,
                       "acquired_at": time.time(), "heartbeat": time.time()}

    def _write_tmp(self) -> Path:
        tmp = self.out / f".{LEASE}.{self.token}.tmp"
        self.record["heartbeat"] = time.time()
        tmp.unlink(missing_ok=True)  # one a failed beat left (unlink never follows a link); then O_EXCL
        with os.fdopen(open_nofollow(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "w") as f:
            f.write(json.dumps(self.record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return tmp

    def acquire(self) -> None:
        """Take the lease or raise TrialHeld. A stale lease is taken over with a warning."""
        make_dir(self.out)
        path = self.out / LEASE
        for _ in range(5):
            tmp = self._write_tmp()
            try:
                os.link(tmp, path)  # atomic create-if-absent, NFS included
                tmp.unlink()
                break
            except FileExistsError:
                tmp.unlink()
            holder = read_lease(self.out)
            if holder is not None and holder.get("trial_id") not in (None, self.trial_id):
                raise TrialHeld(self.trial_id, holder)  # another trial's lease: never ours to take
            why = stale_reason(holder, mine=self.record["job_id"], restart=self.record["restart"])
            if why is None:
                raise TrialHeld(self.trial_id, holder)
            aside = self.out / f".{LEASE}.stale-{self.token}"
            try:
                os.rename(path, aside)
            except FileNotFoundError:
                continue  # someone else moved it: try again
            taken = read_lease_file(aside)
            if holder is not None and (taken or {}).get("token") != holder.get("token"):
                # between reading and moving it, another runner took the lease: put theirs back
                with contextlib.suppress(FileExistsError):
                    os.link(aside, path)
                aside.unlink(missing_ok=True)
                raise TrialHeld(self.trial_id, taken)
            aside.unlink(missing_ok=True)
            who = describe(holder) if holder else str(path)
            print(f"warning: taking over the stale lease {path} ({who}): {why}", file=sys.stderr, flush=True)
        else:
            raise TrialHeld(self.trial_id, read_lease(self.out))
        self._thread = threading.Thread(target=self._beat, name="trial-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(heartbeat_s()):
            holder = read_lease(self.out)
            if holder is None or holder.get("token") != self.token:
                self.lost = holder or {"host": "?", "pid": "?"}
                return
            try:
                os.replace(self._write_tmp(), self.out / LEASE)
            except OSError:  # a full disk or a flaky mount: the next beat tries again
                continue

    def check(self) -> None:
        """Raise LeaseLost once another runner has taken this lease over."""
        if self.lost is not None:
            raise LeaseLost(self.trial_id, self.lost)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        holder = read_lease(self.out)
        if holder is not None and holder.get("token") == self.token:
            (self.out / LEASE).unlink(missing_ok=True)


def break_lease(out: Path, why: str) -> dict[str, Any] | None:
    """Remove a lease whose holder is known to be gone (its scheduler job has ended), so the next
    runner need not wait out the heartbeat timeout; says so naming the file and the holder."""
    holder = read_lease(out)
    if holder is None:
        return None
    (out / LEASE).unlink(missing_ok=True)
    print(f"warning: released {out / LEASE} ({describe(holder)}): {why}", file=sys.stderr, flush=True)
    return holder


def read_lease_file(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(read_regular(path))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def record_duplicate(out: Path, err: TrialHeld) -> Path:
    """``duplicates/<time>-<host>-<pid>.json``: who ran as a duplicate and whom it found holding the trial."""
    me = {"host": socket.gethostname(), "pid": os.getpid(), "job_id": job_id(), "time": time.time()}
    path = out / DUPLICATES / f"{time.strftime('%Y%m%dT%H%M%S')}-{me['host']}-{me['pid']}.json"
    atomic_write_json(path, {**me, "holder": err.holder, "message": str(err)})
    return path
