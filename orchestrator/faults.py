"""Named fault points for the fault-injection tests and ``bench/faults.py``.

``ORCHESTRATE_FAULT=submit.after_sbatch`` makes the process SIGKILL itself when it reaches that
point, exactly as a node crash or an OOM kill would: no finally blocks, no flushing. Unset (always,
outside tests), a point costs one dictionary lookup."""

from __future__ import annotations

import os
import signal

POINTS = ("submit.after_intent", "submit.after_sbatch", "submit.after_record")


def point(name: str) -> None:
    if os.environ.get("ORCHESTRATE_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
