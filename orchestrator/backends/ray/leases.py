"""A Ray run's leases after it stops (a clean stop is not a crash)."""

from __future__ import annotations

import socket
import time

from orchestrator.store.sweepdir import Submission, SweepDir
from train.lease import LEASE, read_lease, stale_reason


def release_leases(sweep: SweepDir, submissions: list[Submission], wait_s: float = 10.0) -> None:
    """Ray's shutdown SIGKILLs an interrupted run's workers; their leases would make the resume warn
    of a dead runner. This run's own leases whose process is gone are released, quietly (a clean
    stop is not a crash); a worker here still going down is waited for, up to ``wait_s``."""
    mine, here, pending, deadline = {s.job_id for s in submissions}, socket.gethostname(), list(submissions), time.time() + wait_s
    while pending:
        dying = []
        for s in pending:
            out = sweep.trial_dir(s.trial_id)
            holder = read_lease(out)
            if holder is None or holder.get("job_id") not in mine:
                continue
            if stale_reason(holder) is not None:
                (out / LEASE).unlink(missing_ok=True)
            elif holder.get("host") == here:
                dying.append(s)
        if not dying or time.time() > deadline:
            return
        pending = dying
        time.sleep(0.2)
