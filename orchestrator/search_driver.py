"""A search while it runs: tell the sampler what ended, record its proposals, launch them.

In the foreground (Ray) the backend's feed proposes as each trial ends (``fed``) and submit loops
over what is left (``search_on``). On a scheduler whose jobs outlive the terminal (SLURM) the same
loop runs unattended in a small driver job of its own (``queue_driver`` -> ``drive``): it polls the
sweep dir and the scheduler, tells results as trials finish, and keeps up to ``parallel`` trials
queued until ``trials`` have verdicts. Everything it knows is in the sweep dir and the journal, so
a killed or requeued driver loses nothing: the next one (or the next submit) continues; the
driver's own lease keeps a second one from proposing beside it."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from orchestrator.backends.states import trial_states
from orchestrator.decide import NOT_VERDICTS, SubmitReport, decide, groups, verdict_of, with_resources
from orchestrator.plugins import get_backend, reader
from orchestrator.rung_driver import rungs_on
from orchestrator.search.propose import Proposer, record_proposals
from orchestrator.search.stopping import rule
from orchestrator.store.sweepdir import Submission, SweepDir
from orchestrator.sweep.expand import Trial
from orchestrator.sweep.proposers import proposer_for
from orchestrator.sweep.spec import SweepSpec, load_spec
from train.atomic import atomic_write_json
from train.lease import Lease, TrialHeld, break_lease, read_lease
from train.safefs import read_regular


def poll_s() -> float:
    """How often an unattended driver asks the scheduler (``ORCHESTRATE_SEARCH_POLL_S``, default 30 s)."""
    return float(os.environ.get("ORCHESTRATE_SEARCH_POLL_S", "30"))


def fed(spec: SweepSpec, proposer: Proposer, sweep: SweepDir, report: SubmitReport, flags: dict[str, Any],
        trial_id: str, result: dict[str, Any]) -> list[Trial]:
    """A backend's feed (``Backend.follow``): tell the search ``trial_id`` ended with ``result``;
    record what it proposes; return those to start."""
    with sweep.lock():  # one submit at a time asks the journal and records (a second one waits)
        new = with_resources(spec, proposer.more({trial_id: result}), flags)
        if not new:
            return []
        record_proposals(sweep, proposer, new)
        todo = decide(sweep, new, False, report, record_failures=True)
    return [t for t in new if t.trial_id in todo]


def verdicts(sweep: SweepDir, trial_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The in-flight trials that have ended, with what they ended as: their result.json, or for a
    job that ended without one (cancelled, out of memory, node failure) the failure the state
    merge records for it."""
    return {st.trial_id: v for st in trial_states(sweep, trial_ids, True) if (v := verdict_of(st)) is not None}


def search_on(spec: SweepSpec, proposer: Proposer, sweep: SweepDir, backend: Any, report: SubmitReport,
              flags: dict[str, Any], lease: Lease | None = None) -> None:
    """Until ``trials`` have verdicts: tell the sampler what ended, propose, launch what has no
    verdict and nobody runs, then wait (a foreground backend runs them; else poll). Proposals
    another runner still holds (a killed driver's workers going down, queued jobs) are waited for;
    one that a foreground run of this process left without a verdict was interrupted: the loop
    stops there (the same submit resumes)."""
    ours = {s.trial_id for s in report.submitted}
    quiet = SubmitReport(sweep)  # the loop's own decisions, not the report's
    while True:
        if lease is not None:
            lease.check()  # another driver took over (this one was cut off): stop proposing
        with sweep.lock():
            proposer.more(verdicts(sweep, proposer.in_flight()))
            batch = with_resources(spec, proposer.first(), flags)  # every proposal without a verdict
            if not batch:
                break
            record_proposals(sweep, proposer, batch)
            todo = decide(sweep, batch, False, quiet, record_failures=True)
            if backend.foreground() and todo & ours:
                break
            subs = [s for g in groups([t for t in batch if t.trial_id in todo]).values()
                    for s in backend.launch(sweep, g, g[0].config["resources"])]
        report.submitted += subs
        ours |= {s.trial_id for s in subs}
        if subs and backend.foreground():
            backend.wait(sweep, subs)  # (what the backend's feed starts is appended to subs)
            continue
        now = trial_states(sweep, [t.trial_id for t in batch], False)
        if subs or any(st.active or st.state == "unknown" for st in now):
            time.sleep(poll_s() if not backend.foreground() else 2)  # queued, or held by runners still going
        elif all(st.state in NOT_VERDICTS for st in now):
            break  # nothing runs them and nothing was launched: never loop without progress
        # else: they ended after their verdicts were read: told at the next turn
    report.search = proposer.summary()


# -- unattended: the driver job ------------------------------------------------------------------
def driver_file(sweep: SweepDir) -> Path:
    return sweep.path / "search" / "driver.json"


def driver_submission(sweep: SweepDir) -> Submission | None:
    """The search's latest driver job, as a submission (trial id ``search-driver``), or None."""
    try:
        raw = json.loads(read_regular(driver_file(sweep)))
        return Submission("search-driver", str(raw["job_id"]), str(raw["backend"]), float(raw["time"]),
                          str(raw["folder"]), {})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def driver_state(sweep: SweepDir, backend: Any = None) -> tuple[Submission | None, Any, bool]:
    """(the driver job, its scheduler state, whether the scheduler still has it queued or running);
    ``backend``: the one to ask (default: the one that queued it, when it can be asked from here)."""
    sub = driver_submission(sweep)
    backend = backend or (reader(sub.backend) if sub else None)
    if sub is None or backend is None:
        return sub, None, False
    state = backend.states([sub]).get(sub.job_id)
    return sub, state, bool(state and state.active) or (state is None and time.time() - sub.time < 60)


def driver_line(sweep: SweepDir) -> str:
    """``driver job 12 running`` (or how it ended) for a search run unattended; "" otherwise."""
    sub, state, _ = driver_state(sweep)
    return f"driver job {sub.job_id} {state.state if state else 'unknown'}" if sub else ""


def cancel_driver(sweep: SweepDir) -> str | None:
    """Cancel the search's driver job if it is queued or running; its job id, else None."""
    sub, _, active = driver_state(sweep)
    if sub is None or not active:
        return None
    reader(sub.backend).cancel([sub])
    return sub.job_id


def queue_driver(spec: SweepSpec, sets: tuple[str, ...], flags: dict[str, Any], runs_dir: str, sweep: SweepDir,
                 backend: Any, backend_name: str, options: dict[str, Any]) -> str:
    """Queue the search's driver job unless one still runs it; the line saying which. Called under
    the sweep lock (two submits cannot both queue one)."""
    sub, _, active = driver_state(sweep, backend)
    if active and sub is not None:
        return f"the sweep's driver job {sub.job_id} is still running it: nothing queued"
    if sub is not None:  # its job has ended: its lease is nobody's now
        break_lease(driver_file(sweep).parent / "driver", f"its job {sub.job_id} ended")
    args = (str(Path(spec.file).resolve()), tuple(sets), dict(flags), str(Path(runs_dir).resolve()), backend_name,
            dict(options))
    job_id, folder, resources = backend.detach(sweep, drive, args, spec.search["driver"])
    atomic_write_json(driver_file(sweep), {"job_id": job_id, "backend": backend.name, "time": time.time(),
                                           "folder": str(folder), "resources": resources})
    return f"queued the sweep's driver job {job_id} ({resources}): it " + driver_plan(spec, None)


def driver_plan(spec: SweepSpec, trials: int | None) -> str:
    """What the driver job will do, in words (``trials``: how many a fixed sweep has, if known)."""
    s = spec.search
    how = rule(s)
    stops = f", pausing each at the {how.label} rungs and promoting the best" if how.stops else ""
    if s.get("algorithm", "grid") == "grid":
        return f"runs the sweep's{f' {trials}' if trials else ''} trials{stops}"
    return f"proposes {s['algorithm']} trials {s['parallel']} at a time until {s['trials']} are trained{stops}"


def drive(spec_file: str, sets: tuple[str, ...], flags: dict[str, Any], runs_dir: str, backend_name: str,
          options: dict[str, Any]) -> str:
    """What the driver job runs (handed to the backend by reference: it pickles by name)."""
    spec = load_spec(spec_file, sets)
    sweep = SweepDir(Path(runs_dir) / spec.name)
    lease = Lease(driver_file(sweep).parent / "driver", "search-driver")
    try:
        lease.acquire()
    except TrialHeld as err:
        holder = err.holder or read_lease(lease.out) or {}
        line = f"another driver (job {holder.get('job_id')}, pid {holder.get('pid')}) runs this search: this one ends"
        print(line, flush=True)
        return line
    try:
        searching = spec.search.get("algorithm", "grid") != "grid"
        proposer = proposer_for(spec, journal=sweep.search_journal() if searching else None)
        report = SubmitReport(sweep)
        backend = get_backend(backend_name, **options)
        with sweep.lock():
            backend.reconcile(sweep)  # a killed driver's unrecorded jobs are recorded first: never queued twice
        stopping = rule(spec.search)
        if stopping.stops:  # (submit queues a driver for one only where no Tune scheduler runs it)
            rungs_on(spec, proposer, sweep, backend, report, flags, stopping, poll_s(), lease)
        else:
            search_on(spec, proposer, sweep, backend, report, flags, lease)
        done = proposer.summary() or f"{len(report.submitted)} trial runs launched; the sweep has ended"
        print(done, flush=True)
        return done
    except TrialHeld as err:  # LeaseLost: another driver took over
        print(f"search driver: {err}", file=sys.stderr, flush=True)
        return str(err)
    finally:
        lease.release()
