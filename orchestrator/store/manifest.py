"""The sweep dir's manifest (trials.jsonl) as Trial records, for every reader."""

from __future__ import annotations

from orchestrator.store.sweepdir import SweepDir
from orchestrator.sweep.trial import Trial


def manifest_trials(sweep: SweepDir) -> list[Trial]:
    """Every trial of the sweep dir's manifest: the current plan, then (``earlier``) the kept
    trials of earlier versions of its spec."""
    return [Trial(t["trial_id"], t["config"], t["params"], t["kept"], t.get("reason") or "", t.get("source", ""),
                  t.get("overrides") or {}, t.get("macs"), bool(t.get("earlier"))) for t in sweep.trials()]
