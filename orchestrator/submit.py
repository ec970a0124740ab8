"""``orchestrate submit``: validate, lock the sweep dir, work out what is missing, submit only that."""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from configcheck import ConfigError
from orchestrator.backends.states import DONE, trial_states
from orchestrator.cost import plan_estimates, time_limit
from orchestrator.plugins import BACKENDS, backend_class, get_backend
from orchestrator.results.status import earlier_versions
from orchestrator.search.propose import Proposer, record_proposals
from orchestrator.search.stopping import rule
from orchestrator.store.sweepdir import Submission, SweepDir
from orchestrator.sweep.expand import Trial, shadowed
from orchestrator.sweep.proposers import proposer_for
from orchestrator.sweep.resources import resolve_resources
from orchestrator.sweep.select import check_data, check_same_data, select_trials
from orchestrator.sweep.size import MAX_TRIALS
from orchestrator.sweep.spec import SpecError, SweepSpec, load_spec
from orchestrator.sweep.trialconfig import set_dotted
from train.files import read_result
from train.lease import break_lease


@dataclass
class SubmitReport:
    sweep: SweepDir
    submitted: list[Submission] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # state -> trial ids left alone
    failed: list[str] = field(default_factory=list)  # failed trials not resubmitted (no --retry-failed)
    preview: str = ""
    time_note: str = ""  # how the SLURM time limit was chosen when none was given
    preview_label: str = "preview"  # what the backend calls its dry-run preview
    foreground: bool = False  # the trials ran in this process (they are done or interrupted now)
    cluster_job: str | None = None  # the scheduler job hosting the trials (a Ray cluster inside SLURM)
    summary: str = ""  # the backend's line for what it did, "{where}" and "{limits}" left to fill
    dropped: int = 0
    chosen: int = 0  # kept trials this submit considered (all, or those of --trial/--index)
    search: str = ""  # a search's line: trained / trials, best so far, proposals made and rejected


def with_resources(spec: SweepSpec, trials: list[Trial], overrides: dict[str, Any]) -> list[Trial]:
    """Apply CLI resource flags on top of each trial's resources and validate the result
    (ids do not change: resources are not part of a trial's identity)."""
    out = []
    for t in trials:
        raw = dict(t.config.get("resources") or {})
        for key, value in overrides.items():
            if value is not None:
                raw = set_dotted(raw, (key,), value)
        try:
            res = resolve_resources(raw)
        except ConfigError as err:
            raise SpecError.of(spec.file, err) from None
        out.append(dataclasses.replace(t, config={**t.config, "resources": res}))
    return out


def time_given(spec: SweepSpec, trials: list[Trial], flags: dict[str, Any]) -> bool:
    """Did anyone ask for a time limit (--time, base resources.time, a trial's override)?"""
    base = spec.base.get("resources") if isinstance(spec.base.get("resources"), dict) else {}
    return (flags.get("time") is not None or "time" in (base or {})
            or any(k in ("resources.time", "resources") for t in trials for k in t.overrides))


def auto_time(groups: dict[str, list[Trial]], backend: Any) -> str:
    """SLURM without a time limit: each array gets one from the estimate of its slowest trial
    (cost.time_limit: x1.5 + 10 min, rounded up to 5 min, capped by the partition's MaxTime).
    Returns the line saying what was chosen and why."""
    lines = []
    for key, group in list(groups.items()):
        est, line, _ = plan_estimates(group)
        if not est:
            return f"time limit: the default 1 h per job ({line})"
        cap = backend.max_time(group[0].config["resources"].get("partition"))
        k = group[0].config["resources"].get("trials_per_gpu") or 1  # packed trials may run up to K x slower
        minutes, why = time_limit(max(s for _, s in est.values()) * k, cap_min=cap)
        text = f"{minutes // 60:02d}:{minutes % 60:02d}:00"
        groups[key] = [dataclasses.replace(t, config={**t.config, "resources": {**t.config["resources"], "time": text}})
                       for t in group]
        lines.append(f"time limit {text} per job from the slowest trial's estimate ({why})")
    return "; ".join(lines)


def submit(spec_file: str, sets: tuple[str, ...], resource_flags: dict[str, Any], runs_dir: str,
           backend_name: str = "slurm", retry_failed: bool = False, dry_run: bool = False,
           trial_ids: tuple[str, ...] = (), indices: tuple[int, ...] = (),
           backend_options: dict[str, Any] | None = None, resume: list[str] | None = None,
           max_trials: int | None = MAX_TRIALS) -> SubmitReport:
    """Submit what is missing (and failed, with retry_failed) of the chosen kept trials. A dry run
    decides exactly as the real submit would, from the same sweep dir and scheduler, and writes
    nothing."""
    spec = load_spec(spec_file, sets)
    proposer = proposer_for(spec, max_trials)  # a search: in memory here, its first proposals for the seed
    searching = spec.search.get("algorithm", "grid") != "grid"
    if searching and (trial_ids or indices):
        raise SpecError(spec_file, "search.algorithm", "a search proposes its own trials: --trial and --index are "
                        "for a fixed sweep")
    trials = with_resources(spec, proposer.first(), resource_flags)
    for line in shadowed(sets, trials):
        print(line, file=sys.stderr)
    if not any(t.kept for t in trials):
        raise SpecError(spec_file, "budget", f"drops all {len(trials)} trials; nothing to submit "
                        "(see orchestrate plan for the reasons)")
    chosen = select_trials(spec_file, trials, trial_ids, indices)
    backend = get_backend(backend_name, **(backend_options or {}))
    if searching and not backend.foreground():
        raise SpecError(spec_file, "search.algorithm", f"a {spec.search['algorithm']} search runs where its proposals "
                        "are told their results: in the foreground (--backend ray on this machine) for now; its "
                        "SLURM driver job is not built yet")
    if rule(spec.search).stops and not backend.runs_schedulers:
        able = ", ".join(n for n in BACKENDS if backend_class(n).runs_schedulers)
        raise SpecError(spec_file, "search.scheduler", f"{spec.search['scheduler']} needs trials that report to one "
                        f"scheduler as they train: use --backend {able}")
    groups = _groups(chosen)
    for group in groups.values():
        try:
            backend.check(group[0].config["resources"])
        except ConfigError as err:
            raise SpecError.of(spec_file, err) from None
    check_data(spec_file, chosen)
    check_cost(spec_file, spec, chosen)
    for group in groups.values():  # after every refusal: bad input stays one line
        for line in backend.notes(group[0].config["resources"]):
            print(line, file=sys.stderr)
    sweep = SweepDir(Path(runs_dir) / spec.name)
    note = None if searching else earlier_versions(sweep.path, trials)  # a search's proposals are its own
    if note:
        print(note["line"], file=sys.stderr)
    check_same_data(spec_file, {t.trial_id: sweep.trial_dir(t.trial_id) for t in chosen}, chosen)
    report = SubmitReport(sweep, dropped=sum(not t.kept for t in trials), chosen=len(chosen),
                          preview_label=backend.preview_label)
    if backend.picks_time_limits and not time_given(spec, trials, resource_flags):
        report.time_note = auto_time(groups, backend)
        chosen = [t for g in groups.values() for t in g]
    if dry_run:  # the same decision, read-only: nothing written, nothing submitted
        pending = {s.trial_id for s in backend.reconcile(sweep, read_only=True)} if sweep.exists() else set()
        todo = _decide(sweep, chosen, retry_failed, report, record_failures=False, in_flight=pending)
        mine = {g: [t for t in group if t.trial_id in todo] for g, group in groups.items()}
        report.preview = "\n".join(backend.preview(sweep, g, g[0].config["resources"]) for g in mine.values() if g)
        report.submitted = [Submission(t.trial_id, "(dry run)", backend.name, 0.0, "", t.config["resources"])
                            for t in chosen if t.trial_id in todo]
        return report
    sweep.check_mine([t.trial_id for t in chosen])  # Unsafe: one line naming the directory, exit 2
    created = sweep.path  # the outermost directory this submit will create, if any
    while not created.parent.exists():
        created = created.parent
    created_any = not created.exists()
    try:
        with sweep.lock():
            if searching:  # the journal first: one begun with another space refuses this spec here
                proposer = proposer.again(sweep.search_journal())  # (its space counted once, above)
                chosen = with_resources(spec, proposer.first(), resource_flags)
            sweep.write_plan(spec.raw, [] if searching else trials, spec.search, spec.wandb,
                             resume or _resume(spec_file, sets, backend_name, runs_dir))
            if searching:  # the journal's proposals, recorded before they launch
                record_proposals(sweep, proposer, chosen)
                groups = _groups(chosen)
            found = backend.reconcile(sweep)  # a killed submit's jobs are recorded first: never queued twice
            if found:
                print(f"recorded {len(found)} trial(s) that an interrupted submit had queued (jobs "
                      f"{', '.join(sorted({s.job_id for s in found})[:5])}{' ...' if len(found) > 5 else ''})",
                      file=sys.stderr)
            todo = _decide(sweep, chosen, retry_failed, report, record_failures=True)
            for group in groups.values():
                mine = [t for t in group if t.trial_id in todo]
                if mine:  # launch records its submissions itself, each as soon as it exists
                    report.submitted += backend.launch(sweep, mine, mine[0].config["resources"])
    except ConfigError as err:
        if created_any and not report.submitted:  # the scheduler refused everything: leave no trace
            shutil.rmtree(created, ignore_errors=True)
        raise SpecError.of(spec_file, err) from None
    if searching:  # proposals as trials end, in the same run, where the backend can
        backend.follow(lambda tid, result: _fed(spec, proposer, sweep, report, resource_flags, tid, result))
    if report.submitted:
        report.cluster_job = backend.cluster_job(report.submitted[0])
        report.foreground = backend.foreground()
        report.summary = backend.summary(report.submitted, report.cluster_job)
        backend.wait(sweep, report.submitted)  # foreground backends (Ray) run the sweep here
    if searching:
        _search_on(spec, proposer, sweep, backend, report, resource_flags)
        if report.submitted and not report.summary:  # its first trials waited for runners still going
            report.foreground = backend.foreground()
            report.summary = backend.summary(report.submitted, None)
    return report


def _groups(trials: list[Trial]) -> dict[str, list[Trial]]:
    """One array per distinct resource request (normally exactly one)."""
    groups: dict[str, list[Trial]] = {}
    for t in trials:
        groups.setdefault(repr(sorted(t.config["resources"].items())), []).append(t)
    return groups


def _fed(spec: SweepSpec, proposer: Proposer, sweep: SweepDir, report: SubmitReport, flags: dict[str, Any],
         trial_id: str, result: dict[str, Any]) -> list[Trial]:
    """A backend's feed (``Backend.follow``): tell the search ``trial_id`` ended with ``result``;
    record what it proposes; return those to start."""
    with sweep.lock():  # one submit at a time asks the journal and records (a second one waits)
        new = with_resources(spec, proposer.more({trial_id: result}), flags)
        if not new:
            return []
        record_proposals(sweep, proposer, new)
        todo = _decide(sweep, new, False, report, record_failures=True)
    return [t for t in new if t.trial_id in todo]


def _search_on(spec: SweepSpec, proposer: Proposer, sweep: SweepDir, backend: Any, report: SubmitReport,
               flags: dict[str, Any]) -> None:
    """Until ``trials`` have verdicts: tell the sampler what ended, propose, launch what has no
    verdict and nobody runs, wait. Proposals another runner still holds (a killed driver's workers
    going down) are waited for; one this submit ran that has no verdict was interrupted: the loop
    stops there (the same submit resumes)."""
    ours = {s.trial_id for s in report.submitted}
    quiet = SubmitReport(sweep)  # the loop's own decisions, not the report's
    while True:
        with sweep.lock():
            proposer.more({tid: r for tid in proposer.in_flight() if (r := read_result(sweep.trial_dir(tid))) is not None})
            batch = with_resources(spec, proposer.first(), flags)  # every proposal without a verdict
            if not batch or any(t.trial_id in ours for t in batch):
                break
            record_proposals(sweep, proposer, batch)
            todo = _decide(sweep, batch, False, quiet, record_failures=True)
            subs = [s for g in _groups([t for t in batch if t.trial_id in todo]).values()
                    for s in backend.launch(sweep, g, g[0].config["resources"])]
        if subs:
            backend.wait(sweep, subs)  # (what the backend's feed starts is appended to subs)
            report.submitted += subs
            ours |= {s.trial_id for s in subs}
        elif any(st.active for st in trial_states(sweep, [t.trial_id for t in batch], False)):
            time.sleep(2)  # held by runners still going: their verdicts, or their leases, come
        else:
            break
    report.search = proposer.summary()


def _resume(spec_file: str, sets: tuple[str, ...], backend: str, runs_dir: str) -> list[str]:
    words = ["orchestrate", "submit", spec_file, "--backend", backend]
    for s in sets:
        words += ["--set", s]
    return words + (["--runs-dir", runs_dir] if runs_dir != "runs" else [])


def check_cost(spec_file: str, spec: SweepSpec, chosen: list[Trial]) -> None:
    """budget.max_gpu_hours: refuse (exit 2, nothing written) a sweep estimated above it."""
    limit = spec.budget.max_gpu_hours
    if limit is None:
        return

    _, line, device_hours = plan_estimates(chosen)
    if device_hours is None:
        raise SpecError(spec_file, "budget.max_gpu_hours", f"needs a time estimate, and there is none: {line}")
    if device_hours > limit:
        raise SpecError(spec_file, "budget.max_gpu_hours", f"the {len(chosen)} trials are estimated at "
                        f"{device_hours:,.2f} device-hours, over the limit {limit:g} ({line.splitlines()[0]})")


def _decide(sweep: SweepDir, chosen: list[Trial], retry_failed: bool, report: SubmitReport,
            record_failures: bool, in_flight: set[str] | None = None) -> set[str]:
    """Which chosen trials to launch: the missing ones and those whose driver was interrupted
    (they resume from their checkpoints), plus those that ended without success when
    retry_failed. The others are left alone, by state, in ``report``."""
    states = {s.trial_id: s for s in trial_states(sweep, [t.trial_id for t in chosen], record_failures)}
    todo: set[str] = set()
    for t in chosen:
        s = states[t.trial_id]
        if t.trial_id in (in_flight or ()):  # a dry run: queued by a killed submit, recorded by the next
            report.skipped.setdefault("pending", []).append(t.trial_id)
            continue
        ended_badly = not s.active and s.state not in (*DONE, "interrupted", "unknown")
        if s.state in ("missing", "interrupted") or (retry_failed and ended_badly):
            todo.add(t.trial_id)
            if record_failures:
                # a lease that did not make it running belongs to a job the scheduler says ended:
                # its holder died with its node; the new job must not wait out the heartbeat
                break_lease(sweep.trial_dir(t.trial_id), f"its job ended ({s.state}: {s.detail})")
        else:
            report.skipped.setdefault(s.state, []).append(t.trial_id)
            if ended_badly:
                report.failed.append(t.trial_id)
    return todo
