"""What a study does next (``turn``: one decision under the sweep lock) and the loops that run it:
in the foreground (Ray) from stage to stage until the last ends; on SLURM in step jobs, each
queued with ``--dependency=afterany`` on the stage's jobs: it records the selection, queues the
next stage and its own successor, and ends. Everything a turn decides is in the sweep dir before
it acts (the stage's trials before they launch, a selection before the next stage's trials are
made), so a killed step job or driver, then a resubmit, loses nothing and repeats nothing."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import faults
from orchestrator.backends.states import trial_states
from orchestrator.decide import SubmitReport, auto_time, decide, groups, time_given, verdict_of, with_resources
from orchestrator.plugins import get_backend, reader
from orchestrator.rung_driver import rungs_on
from orchestrator.search.propose import FixedExpansion
from orchestrator.search.stopping import rule
from orchestrator.search_driver import fed, poll_s, search_on
from orchestrator.store.manifest import manifest_trials
from orchestrator.store.stages import (
    read_selection,
    read_stage,
    read_study,
    stage_path,
    step_submission,
    write_selection,
    write_stage,
    write_step,
)
from orchestrator.store.sweepdir import Submission, SweepDir
from orchestrator.study.expand import stage_searches, stage_trials
from orchestrator.study.select import make_selection
from orchestrator.study.spec import Stage, Study, searches, study_from_doc
from orchestrator.sweep.proposers import Search
from orchestrator.sweep.trial import Trial
from train.atomic import atomic_write_json
from train.files import PAUSE
from train.safefs import make_dir

STEP_TIME = "00:30:00"  # a step job's limit unless driver.time says: it records, queues and ends in seconds


@dataclass
class Turn:
    kind: str  # running | done | empty | interrupted
    stage: Stage
    launched: list[Submission] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # job ids of the stage's trials queued or running
    searches: list[tuple[Any, Any]] = field(default_factory=list)  # (spec, proposer) of a search stage's unfinished

    @property
    def after(self) -> list[str]:
        """The array job ids a step job waits for: those just launched and those still queued or running."""
        return sorted({s.job_id.split("_")[0] for s in self.launched} | set(self.waiting))

    def words(self) -> str:
        return f"the study {'has ended' if self.kind == 'done' else 'stopped: ' + self.kind} at stage {self.stage.name}"


def _trials_of(sweep: SweepDir, ids: list[str]) -> list[Trial]:
    by_id = {t.trial_id: t for t in manifest_trials(sweep)}
    return [by_id[i] for i in ids if i in by_id]


def _stage_options(sweep: SweepDir, stage: Stage) -> None:
    """sweep.json names the running stage and its ``search:`` (its stopping rule: Ray's Tune run
    reads it there; W&B runs are tagged with the stage)."""
    path = sweep.path / "sweep.json"
    if not os.path.lexists(path):
        return  # no plan written (a dry run): nothing to name
    opts = sweep.options()
    if opts.get("stage") != stage.name or opts.get("search") != stage.spec.search:
        atomic_write_json(path, {**opts, "search": stage.spec.search, "stage": stage.name})


def turn(study: Study, sweep: SweepDir, backend: Any, flags: dict[str, Any], report: SubmitReport,
         ours: set[str] | None = None) -> Turn:
    """The study's next step, done (call under the sweep lock): walk the stages in order; record a
    stage's trials when it starts, launch what it lacks, record a finished stage's selection and go
    on to the next. ``ours``: trials this process ran in the foreground; one of them without a
    verdict means the run was interrupted (the loop stops; a rerun resumes)."""
    quiet = SubmitReport(sweep)
    for stage in study.stages:
        rec = read_stage(sweep, stage.index, stage.name)
        picks = None
        if stage.index:
            prev = study.stages[stage.index - 1]
            picks = (read_selection(sweep, prev.index, prev.name) or {}).get("selected") or []
        if searches(stage.spec):  # its trials are what its searches have proposed so far
            runs = [(spec, Search(spec).proposer(make_dir(stage_path(sweep, stage.index, stage.name)) /
                                                 f"search-{key}.log"), came)
                    for key, spec, came in stage_searches(study, stage, picks)]
            members = [{"trial_id": tid, "from": came} for _, proposer, came in runs for tid in proposer.proposed()]
            if rec is None or rec["trials"] != members:
                began = rec is None
                rec = write_stage(sweep, stage.index, stage.name, stage.definition(), members, stage.rule_words)
                if began:
                    faults.point("study.after_stage")
            unfinished = [(spec, proposer) for spec, proposer, _ in runs if not proposer.done()]
            if unfinished:
                _stage_options(sweep, stage)
                return Turn("search", stage, searches=unfinished)
        if rec is None:
            made = stage_trials(study, stage, picks)
            kept = with_resources(stage.spec, [t for t in made.trials if t.kept], flags)
            sweep.propose(kept, f"stage {stage.name}")  # a trial an earlier stage has is not added twice
            rec = write_stage(sweep, stage.index, stage.name, stage.definition(), made.members(), stage.rule_words)
            faults.point("study.after_stage")
        ids = [m["trial_id"] for m in rec["trials"]]
        # a trial paused at a rung (ASHA run by a step job that was cut off) has not ended either
        pending = [s for s in trial_states(sweep, ids, True) if verdict_of(s) is None or s.state == PAUSE]
        if pending:
            _stage_options(sweep, stage)
            trials = with_resources(stage.spec, _trials_of(sweep, ids), flags)
            if rule(stage.spec.search).stops and not backend.runs_schedulers:  # ASHA here: the step job runs it
                return Turn("search", stage, searches=[(stage.spec, FixedExpansion(lambda trials=trials: trials))])
            todo = decide(sweep, trials, False, quiet, True)
            if ours is not None and todo & ours:
                return Turn("interrupted", stage)
            mine = [t for t in trials if t.trial_id in todo]
            by = groups(mine)
            if mine and backend.picks_time_limits and not time_given(stage.spec, mine, flags):
                report.time_note = auto_time(by, backend)
            subs = [s for g in by.values() for s in backend.launch(sweep, g, g[0].config["resources"])]
            report.submitted += subs
            waiting = sorted({s.job_id.split("_")[0] for s in pending if s.active and s.job_id})
            return Turn("running", stage, subs, waiting)
        if stage.index == len(study.stages) - 1:
            return Turn("done", stage)
        nxt = study.stages[stage.index + 1]
        sel = read_selection(sweep, stage.index, stage.name)
        if sel is None:
            assert nxt.select is not None
            macs = {t.trial_id: t.macs or 0 for t in _trials_of(sweep, ids)}
            sel = make_selection(sweep, rec, nxt.select, macs)
            write_selection(sweep, stage.index, stage.name, sel)
            print(selection_line(stage, nxt, sel), file=sys.stderr, flush=True)
            faults.point("study.after_selection")
        if not sel.get("selected"):
            return Turn("empty", stage)
    raise AssertionError("a study has at least one stage")


def selection_line(stage: Stage, nxt: Stage, sel: dict[str, Any]) -> str:
    picks = ", ".join(f"{s['trial_ids'][0]} ({sel['metric']} {s['metric']:.4f})" for s in sel["selected"])
    note = f" [{sel['note']}]" if sel.get("note") else ""
    return f"{stage.name} -> {nxt.name}: selected {sel['words']}: {picks or 'nothing'}{note}"


def run_searches(t: Turn, sweep: SweepDir, backend: Any, flags: dict[str, Any], report: SubmitReport) -> bool:
    """A search stage's unfinished searches, one after another, through the search loop every
    search runs by (``search_driver.search_on``; in the foreground with the backend's feed, so a
    proposal starts as a trial ends), or, for early stopping where no Tune scheduler runs (SLURM),
    through the rung driver (a fixed stage's trials too). Returns whether they all finished."""
    for spec, proposer in t.searches:
        stopping = rule(spec.search)
        if stopping.stops and not backend.runs_schedulers:  # ASHA by pausing and promoting (rung_driver)
            rungs_on(spec, proposer, sweep, backend, report, flags, stopping, poll_s())
            continue
        if backend.foreground():
            backend.follow(lambda tid, result, spec=spec, proposer=proposer:
                           fed(spec, proposer, sweep, report, flags, tid, result))
        try:
            search_on(spec, proposer, sweep, backend, report, flags)
        finally:
            backend.follow(None)
    return all(proposer.done() for _, proposer in t.searches)


def run_foreground(study: Study, sweep: SweepDir, backend: Any, flags: dict[str, Any], report: SubmitReport) -> Turn:
    """Ray: from stage to stage in this process until the last ends (or a run is interrupted)."""
    ours: set[str] = set()
    while True:
        with sweep.lock():
            t = turn(study, sweep, backend, flags, report, ours)
        if t.kind == "search":
            if not run_searches(t, sweep, backend, flags, report):
                return Turn("interrupted", t.stage)  # a trial of the search left without a verdict
            continue
        if t.kind != "running":
            return t
        if t.launched:
            ours |= {s.trial_id for s in t.launched}
            backend.wait(sweep, t.launched)
        elif t.waiting:
            time.sleep(2)  # another runner holds some of the stage's trials
        else:
            return Turn("interrupted", t.stage)


def queue_step(study: Study, sweep: SweepDir, backend: Any, backend_name: str, flags: dict[str, Any],
               options: dict[str, Any], runs_dir: str, after: list[str]) -> str:
    """Queue the study's next step job after ``after`` (array job ids) unless another one is
    queued for it already; the line saying which. Call under the sweep lock."""
    sub = step_submission(sweep)
    me = os.environ.get("SLURM_JOB_ID")
    if sub is not None and sub.job_id != me:
        state = backend.states([sub]).get(sub.job_id)
        if (state and state.active) or (state is None and time.time() - sub.time < 60):
            return f"the study's step job {sub.job_id} is queued for it already: nothing queued"
    args = (str(sweep.path.resolve()), dict(flags), str(Path(runs_dir).resolve()), backend_name, dict(options))
    resources = {**study.driver, "time": study.driver.get("time") or STEP_TIME}
    job_id, folder, words = backend.detach(sweep, step, args, resources, tuple(after), name="study")
    write_step(sweep, job_id, backend.name, str(folder), after)
    waits = f" after job{'s' if len(after) > 1 else ''} {', '.join(after)}" if after else ""
    return f"queued the study's step job {job_id}{waits} ({words}): it records the selection and queues the next stage"


def step(sweep_path: str, flags: dict[str, Any], runs_dir: str, backend_name: str, options: dict[str, Any]) -> str:
    """What a step job runs (handed to the backend by reference: it pickles by name): rebuild the
    study from the sweep dir's record of it, take turns until a stage is running, queue the next
    step after its jobs, end."""
    faults.point("study.step_start")
    sweep = SweepDir(sweep_path)
    rec = read_study(sweep)
    if rec is None or not isinstance(rec.get("doc"), dict):
        return "no study record in the sweep dir: nothing to do"
    study = study_from_doc(rec["doc"], str(rec.get("file") or sweep_path))
    backend = get_backend(backend_name, **options)
    report = SubmitReport(sweep)
    with sweep.lock():
        backend.reconcile(sweep)  # a killed step's unrecorded jobs are recorded first: never queued twice
    for _ in range(1000):
        with sweep.lock():
            t = turn(study, sweep, backend, flags, report)
        if t.kind == "search":  # this job drives it (polling; requeued at its time limit), then goes on
            if not run_searches(t, sweep, backend, flags, report):
                time.sleep(poll_s())
            continue
        with sweep.lock():
            if t.kind != "running":
                line = f"{t.words()} ({study.name})"
                print(line, flush=True)
                return line
            if t.after:
                line = queue_step(study, sweep, backend, backend_name, flags, options, runs_dir, t.after)
                print(line, flush=True)
                return line
        time.sleep(poll_s())  # held by runners, not yet queued
    return "gave up waiting"


def cancel_step(sweep: SweepDir) -> str | None:
    """Cancel a study's queued step job (it would queue the next stage); its job id, else None."""
    sub = step_submission(sweep)
    backend = reader(sub.backend) if sub is not None else None
    if sub is None or backend is None:
        return None
    state = backend.states([sub]).get(sub.job_id)
    if not (state and state.active):
        return None
    backend.cancel([sub])
    return sub.job_id
