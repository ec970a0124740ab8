"""What one SLURM array task runs for one trial (submitit pickles it into the job's own folder,
which is owner-only: see docs/ARCHITECTURE.md, "Nobody else gets in")."""

from __future__ import annotations

import faulthandler
from pathlib import Path
from typing import Any

import submitit

from orchestrator.store.pauses import pause_hook
from orchestrator.tracking.wandb_run import DeferredTracker
from train.files import read_result
from train.lease import TrialHeld
from train.safefs import tighten_umask


class TrialJob(submitit.helpers.Checkpointable):
    """What each array task runs. Checkpointable: on timeout/preemption submitit calls
    ``checkpoint`` and requeues this same object; the trial then resumes from its last epoch
    checkpoint (which is also what happens when ``scontrol requeue`` restarts the job)."""

    def __init__(self, config: dict[str, Any], out_dir: str, trial_id: str,
                 tracking: dict[str, Any] | None = None) -> None:
        self.config, self.out_dir, self.trial_id, self.tracking = config, out_dir, trial_id, tracking

    def __call__(self) -> dict[str, Any]:
        from train.loop import run_trial  # heavy: loads numpy and torch (seconds); only this path needs it

        tighten_umask()  # (sbatch passes the submitting shell's umask on)
        faulthandler.enable()  # a native crash leaves its signal and stack in the job's stderr
        # rank 0 logs to W&B once it holds the trial's lease; every rank passes a hook, as the
        # stop decision is an all-reduce
        tracker = DeferredTracker(getattr(self, "tracking", None), self.config, self.out_dir, self.trial_id)
        pause = pause_hook(Path(self.out_dir))  # ASHA on SLURM: the driver says where the trial pauses

        def on_epoch(row: dict[str, Any]) -> Any:
            return tracker.hook(row) or pause(row)

        try:
            result = run_trial(self.config, self.out_dir, self.trial_id, on_epoch, on_start=tracker.open)
        except TrialHeld as err:  # another job trains it: this one ends as a duplicate, not a failure
            return {"status": "duplicate", "trial_id": self.trial_id, "holder": err.holder}
        finally:
            tracker.finish(read_result(Path(self.out_dir)))
        return {k: result.get(k) for k in ("status", "trial_id", "epochs_completed", "test_acc")}

    def to_json(self) -> dict[str, Any]:
        """Plain data: what a packed job's child and a submit's intent store instead of a pickle."""
        return {"config": self.config, "out_dir": self.out_dir, "trial_id": self.trial_id,
                "tracking": getattr(self, "tracking", None)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialJob:
        return cls(data["config"], data["out_dir"], data["trial_id"], data.get("tracking"))
