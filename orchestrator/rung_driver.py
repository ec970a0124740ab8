"""Early stopping where no Tune scheduler runs the trials (SLURM): the driver job pauses each trial
at its rung (``pause.json``, read by the trial after each epoch; the trial stops ``paused`` with
its checkpoint, not a verdict), promotes the best 1/eta of each rung to go on from their
checkpoints (``search/rungs.py``: ASHA's rule, the highest rung first), starts new trials in the
slots left, and ends the trials never promoted ``stopped_early`` by the rule. The learning-rate
schedule is the full run's, so a promoted trial's epochs equal those of a run that never paused.

With a search, a trial that pauses is told to the sampler as pruned (the sampler is told each
trial once; a promoted trial's later epochs reach the leaderboard, not the sampler)."""

from __future__ import annotations

import time
from typing import Any

from orchestrator.backends.states import DONE, trial_states
from orchestrator.decide import SubmitReport, groups, verdict_of, with_resources
from orchestrator.search.propose import Proposer, record_proposals
from orchestrator.search.rungs import promotion
from orchestrator.search.stopping import StoppingRule
from orchestrator.store.manifest import manifest_trials
from orchestrator.store.pauses import metric_by_epoch, set_pause
from orchestrator.store.sweepdir import SweepDir
from orchestrator.sweep.expand import Trial
from orchestrator.sweep.sections import search_metric
from orchestrator.sweep.spec import SweepSpec
from orchestrator.sweep.trialconfig import resolve_section
from train.files import PAUSE, read_result, write_result
from train.lease import Lease


def rungs_on(spec: SweepSpec, proposer: Proposer, sweep: SweepDir, backend: Any, report: SubmitReport,
             flags: dict[str, Any], stopping: StoppingRule, poll_s: float, lease: Lease | None = None) -> None:
    """Run the sweep's trials through the rungs of ``stopping`` (epochs; the last is the end) until
    no trial runs, none can be promoted and no new one is left."""
    s = spec.search
    searching = s.get("algorithm", "grid") != "grid"
    fixed = [] if searching else [t for t in with_resources(spec, proposer.first(), flags) if t.kept]
    epochs = max((t.config["train"]["epochs"] for t in fixed), default=0) or \
        resolve_section("train", spec.base.get("train") or {})["epochs"]
    levels = stopping.pauses(s, epochs)
    if levels is None:
        raise ValueError(f"{stopping.name} cannot pause trials: no driver can run it")
    parallel = s["parallel"] if searching else (fixed[0].config["resources"].get("array_parallelism") or len(fixed))
    known: dict[str, Trial] = {t.trial_id: t for t in fixed}
    while True:
        if lease is not None:
            lease.check()
        with sweep.lock():
            if searching:
                known.update({t.trial_id: t for t in manifest_trials(sweep) if t.trial_id not in known and t.kept})
            states = {st.trial_id: st for st in trial_states(sweep, list(known), True)}
            if searching:
                _tell(proposer, states)
            any_trial = next(iter(known.values()), None)
            has_val = bool(any_trial and any_trial.config["data"].get("val_size"))
            metric, mode, _ = search_metric(s, has_val)
            running = {tid for tid, st in states.items() if st.active}
            waiting = {tid: st.result["epochs_completed"] for tid, st in states.items()
                       if st.state == PAUSE and st.result}
            reached: dict[int, dict[str, float]] = {at: {} for at in levels[:-1]}
            for tid in known:  # each trial's metrics.jsonl read once a turn
                for at, value in metric_by_epoch(sweep.trial_dir(tid), metric).items():
                    if at in reached:
                        reached[at][tid] = value
            launch: list[Trial] = []
            fresh = iter(fixed) if not searching else None
            while len(running) + len(launch) < parallel:
                step = promotion(reached, waiting, levels, s["reduction_factor"], mode == "max")
                if step is not None:
                    tid, to = step
                    waiting.pop(tid)
                    set_pause(sweep.trial_dir(tid), _pause(to, known[tid]))
                    launch.append(known[tid])
                    continue
                new = _next_new(spec, proposer, sweep, flags, states, launch, fresh)
                if new is None:
                    break
                known[new.trial_id] = new
                set_pause(sweep.trial_dir(new.trial_id), _pause(levels[0], new))
                launch.append(new)
            subs = [sub for g in groups(launch).values() for sub in backend.launch(sweep, g, g[0].config["resources"])]
            report.submitted += subs
        if not subs and not running:
            break
        time.sleep(poll_s)
    with sweep.lock():
        _end_the_paused(sweep, list(known), stopping.name)
        if searching:
            _tell(proposer, {st.trial_id: st for st in trial_states(sweep, list(known), True)})


def _pause(at: int, trial: Trial) -> int | None:
    return at if at < trial.config["train"]["epochs"] else None


def _tell(proposer: Proposer, states: dict[str, Any]) -> None:
    """Tell the sampler its in-flight proposals' verdicts, a pause as pruned at its rung, and the
    final results of promoted trials that completed (``Proposer.later``)."""
    told = {}
    for tid in proposer.in_flight():
        st = states.get(tid)
        if st is not None and st.state == PAUSE:
            told[tid] = {**(st.result or {}), "status": "stopped_early"}
        elif st is not None and (verdict := verdict_of(st)) is not None:
            told[tid] = verdict
    proposer.more(told)
    proposer.later({tid: st.result for tid, st in states.items() if st.state == "completed" and st.result})


def _next_new(spec: SweepSpec, proposer: Proposer, sweep: SweepDir, flags: dict[str, Any], states: dict[str, Any],
              launch: list[Trial], fresh: Any) -> Trial | None:
    """The next trial never started: the fixed expansion's next missing one, or the search's next
    proposal (recorded before it launches)."""
    taken = {t.trial_id for t in launch}
    if fresh is not None:
        return next((t for t in fresh if t.trial_id not in taken and states[t.trial_id].state == "missing"), None)
    for t in with_resources(spec, proposer.first(), flags):
        st = states.get(t.trial_id)
        if t.trial_id not in taken and (st is None or st.state in ("missing", "interrupted")):
            record_proposals(sweep, proposer, [t])
            return t
    return None


def _end_the_paused(sweep: SweepDir, trial_ids: list[str], name: str) -> None:
    """Trials still paused when nothing more runs were not promoted: the rule stopped them there."""
    for tid in trial_ids:
        d = sweep.trial_dir(tid)
        result = read_result(d)
        if result is not None and result.get("status") == PAUSE:
            write_result(d, {**result, "status": "stopped_early", "stopped_by": name})
            set_pause(d, None)
        elif result is not None and result.get("status") in DONE:
            set_pause(d, None)
