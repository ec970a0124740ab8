"""``orchestrate submit``: validate, lock the sweep dir, work out what is missing, submit only that."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from configcheck import ConfigError
from orchestrator.decide import SubmitReport, auto_time, check_cost, decide, time_given, with_resources
from orchestrator.decide import groups as by_resources
from orchestrator.plugins import BACKENDS, backend_class, get_backend
from orchestrator.results.status import earlier_versions
from orchestrator.search.propose import record_proposals
from orchestrator.search.stopping import rule
from orchestrator.search_driver import driver_plan, fed, queue_driver, search_on
from orchestrator.store.sweepdir import Submission, SweepDir
from orchestrator.study.submit import resume_words, submit_study
from orchestrator.sweep.expand import shadowed
from orchestrator.sweep.proposers import proposer_for
from orchestrator.sweep.select import check_data, check_same_data, select_trials
from orchestrator.sweep.size import MAX_TRIALS
from orchestrator.sweep.spec import SpecError, is_study, load_spec


def submit(spec_file: str, sets: tuple[str, ...], resource_flags: dict[str, Any], runs_dir: str,
           backend_name: str = "slurm", retry_failed: bool = False, dry_run: bool = False,
           trial_ids: tuple[str, ...] = (), indices: tuple[int, ...] = (),
           backend_options: dict[str, Any] | None = None, resume: list[str] | None = None,
           max_trials: int | None = MAX_TRIALS, restart_stage: int | None = None) -> SubmitReport:
    """Submit what is missing (and failed, with retry_failed) of the chosen kept trials. A dry run
    decides exactly as the real submit would, from the same sweep dir and scheduler, and writes
    nothing. A study (``stages:``) goes to ``orchestrator/study/submit.py``."""
    if is_study(spec_file):
        for given, flag in ((trial_ids or indices, "--trial/--index"), (retry_failed, "--retry-failed")):
            if given:
                raise SpecError(spec_file, "stages", f"{flag} is for a single sweep: a study's stages choose their "
                                "own trials (a stage selects from the trials that finished)")
        return submit_study(spec_file, sets, resource_flags, runs_dir, backend_name, dry_run, backend_options,
                            resume, max_trials, restart_stage)
    if restart_stage is not None:
        raise SpecError(spec_file, "--restart-stage", "is for a study (a spec with stages:)")
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
    stops = rule(spec.search).stops
    # a search, or early stopping, on a queue: a driver job of its own runs it there
    detached = (searching or (stops and not backend.runs_schedulers)) and not backend.foreground()
    if detached and not backend.detaches:
        key, what = ("search.algorithm", f"a {spec.search['algorithm']} search") if searching else \
            ("search.scheduler", f"{spec.search['scheduler']}")
        raise SpecError(spec_file, key, f"{what} runs where trials are told apart as they end: in the foreground "
                        f"(Ray) or in a driver job (SLURM); --backend {backend_name} here can do neither")
    if stops and not (backend.runs_schedulers or backend.detaches):
        able = ", ".join(n for n in BACKENDS if backend_class(n).runs_schedulers or backend_class(n).detaches)
        raise SpecError(spec_file, "search.scheduler", f"{spec.search['scheduler']} needs trials that report to one "
                        f"scheduler as they train: use --backend {able}")
    groups = by_resources(chosen)
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
        todo = decide(sweep, chosen, retry_failed, report, record_failures=False, in_flight=pending)
        mine = {g: [t for t in group if t.trial_id in todo] for g, group in groups.items()}
        report.preview = "\n".join(backend.preview(sweep, g, g[0].config["resources"]) for g in mine.values() if g)
        report.submitted = [Submission(t.trial_id, "(dry run)", backend.name, 0.0, "", t.config["resources"])
                            for t in chosen if t.trial_id in todo]
        if detached:
            report.driver = "a submit queues the sweep's driver job, which " + driver_plan(spec, len(chosen))
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
                proposer.in_flight()
            if searching and not detached:  # the driver job asks for proposals itself
                chosen = with_resources(spec, proposer.first(), resource_flags)
            sweep.write_plan(spec.raw, [] if searching else trials, spec.search, spec.wandb,
                             resume or resume_words(spec_file, sets, backend_name, runs_dir))
            if detached:
                backend.reconcile(sweep)  # a killed driver's unrecorded jobs are recorded first
                report.driver = queue_driver(spec, sets, resource_flags, runs_dir, sweep, backend, backend_name,
                                             backend_options or {})
                report.search = proposer.summary()
                return report
            if searching:  # the journal's proposals, recorded before they launch
                record_proposals(sweep, proposer, chosen)
                groups = by_resources(chosen)
            found = backend.reconcile(sweep)  # a killed submit's jobs are recorded first: never queued twice
            if found:
                print(f"recorded {len(found)} trial(s) that an interrupted submit had queued (jobs "
                      f"{', '.join(sorted({s.job_id for s in found})[:5])}{' ...' if len(found) > 5 else ''})",
                      file=sys.stderr)
            todo = decide(sweep, chosen, retry_failed, report, record_failures=True)
            for group in groups.values():
                mine = [t for t in group if t.trial_id in todo]
                if mine:  # launch records its submissions itself, each as soon as it exists
                    report.submitted += backend.launch(sweep, mine, mine[0].config["resources"])
    except ConfigError as err:
        if created_any and not report.submitted:  # the scheduler refused everything: leave no trace
            shutil.rmtree(created, ignore_errors=True)
        raise SpecError.of(spec_file, err) from None
    if searching:  # proposals as trials end, in the same run, where the backend can
        backend.follow(lambda tid, result: fed(spec, proposer, sweep, report, resource_flags, tid, result))
    if report.submitted:
        report.cluster_job = backend.cluster_job(report.submitted[0])
        report.foreground = backend.foreground()
        report.summary = backend.summary(report.submitted, report.cluster_job)
        backend.wait(sweep, report.submitted)  # foreground backends (Ray) run the sweep here
    if searching:
        search_on(spec, proposer, sweep, backend, report, resource_flags)
        if report.submitted and not report.summary:  # its first trials waited for runners still going
            report.foreground = backend.foreground()
            report.summary = backend.summary(report.submitted, None)
    return report
