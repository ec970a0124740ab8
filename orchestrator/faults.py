"""Named fault points for the fault-injection tests and ``bench/faults.py``.

``ORCHESTRATE_FAULT=submit.after_sbatch`` makes the process SIGKILL itself when it reaches that
point, exactly as a node crash or an OOM kill would: no finally blocks, no flushing. Unset (always,
outside tests), a point costs one dictionary lookup."""

from __future__ import annotations

import os
import signal

POINTS = ("submit.after_intent", "submit.after_sbatch", "submit.after_record")  # a submit killed at each step
# a study's driver or step job killed at each stage boundary: before it records anything, right
# after a stage's trials are recorded (none launched), right after a selection is recorded
STUDY_POINTS = ("study.step_start", "study.after_stage", "study.after_selection")
TRIAL_POINTS = ("trial.after_epoch",)  # inside a Ray trial, after its epoch's checkpoint (e.g. :SIGSEGV)


def point(name: str) -> None:
    """``NAME`` kills with SIGKILL; ``NAME:SIGSEGV`` (any signal name) with that signal, e.g. a
    native crash inside a trial."""
    value = os.environ.get("ORCHESTRATE_FAULT")
    if not value:
        return
    where, _, sig = value.partition(":")
    if where == name:
        # raise_signal: delivered to this thread now (os.kill may let other threads run on a while)
        signal.raise_signal(getattr(signal, sig or "SIGKILL", signal.SIGKILL))
