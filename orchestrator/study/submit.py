"""``orchestrate submit STUDY``: validate every stage (bad input: one line, nothing written),
refuse edits to stages that have started (unless ``--restart-stage N``), record the study, then
run it: in the foreground from stage to stage (Ray), or queue the stage in progress and a step
job after it (SLURM) and return."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from configcheck import ConfigError
from orchestrator.decide import SubmitReport, decide, groups, with_resources
from orchestrator.plugins import get_backend
from orchestrator.search.stopping import rule
from orchestrator.store.stages import read_stage, restart_from, write_study
from orchestrator.store.sweepdir import Submission, SweepDir
from orchestrator.study.expand import possible, stage_count, stage_hours
from orchestrator.study.run import queue_step, run_foreground, turn
from orchestrator.study.spec import Study, load_study
from orchestrator.sweep.select import check_data
from orchestrator.sweep.size import MAX_TRIALS
from orchestrator.sweep.spec import SpecError


def check_edits(study: Study, sweep: SweepDir, restart: int | None) -> None:
    """A stage that has started keeps its definition: editing it is refused in one line (or its
    records, and every later stage's, are made again with ``--restart-stage N``)."""
    if restart is not None and not 0 <= restart < len(study.stages):
        raise SpecError(study.file, "--restart-stage", f"{restart}: the study has stages 0-{len(study.stages) - 1}")
    for stage in study.stages:
        rec = read_stage(sweep, stage.index, stage.name) if sweep.exists() else None
        if rec is None or rec.get("definition") == stage.definition():
            continue
        if restart is not None and stage.index >= restart:
            continue
        raise SpecError(study.file, f"stages[{stage.index}]", f"({stage.name}) has started with a different definition: "
                        f"put it back, or pass --restart-stage {stage.index} to make its selection and every later "
                        "stage again (trained trials are kept and not trained twice)")


def submit_study(spec_file: str, sets: tuple[str, ...], flags: dict[str, Any], runs_dir: str, backend_name: str,
                 dry_run: bool = False, backend_options: dict[str, Any] | None = None,
                 resume: list[str] | None = None, max_trials: int | None = MAX_TRIALS,
                 restart: int | None = None) -> SubmitReport:
    study = load_study(spec_file, sets)
    plan = possible(study, max_trials)  # every stage checked (a selection that could be empty) before a write
    first = study.stages[0]
    trials = with_resources(first.spec, plan[0]["trials"], flags)
    kept = [t for t in trials if t.kept]
    if not kept:
        raise SpecError(spec_file, "stages[0]", f"the budget drops all {len(trials)} trials of {first.name}")
    backend = get_backend(backend_name, **(backend_options or {}))
    if not backend.foreground() and not backend.detaches:
        raise SpecError(spec_file, "stages", f"a study goes on from stage to stage by itself: in the foreground (Ray) "
                        f"or in step jobs (SLURM); --backend {backend_name} can do neither")
    for stage in study.stages:
        if rule(stage.spec.search).stops and not (backend.runs_schedulers or backend.detaches):
            raise SpecError(spec_file, f"stages[{stage.index}].search.scheduler", "early stopping needs trials that "
                            "report to one scheduler (Ray's Tune) or a step job that pauses and promotes them (SLURM)")
    for g in groups(kept).values():
        try:
            backend.check(g[0].config["resources"])
        except ConfigError as err:
            raise SpecError.of(spec_file, err) from None
    check_data(spec_file, kept)
    check_study_cost(study, plan)
    sweep = SweepDir(Path(runs_dir) / study.name)
    check_edits(study, sweep, restart)
    report = SubmitReport(sweep, dropped=sum(not t.kept for t in trials), chosen=len(kept),
                          preview_label=backend.preview_label)
    report.study = study_plan_line(plan)
    if dry_run:  # stage 1 as a submit would start it; later stages wait for their selections
        if read_stage(sweep, 0, first.name) is None:
            todo = decide(sweep, kept, False, report, record_failures=False) if sweep.exists() else \
                {t.trial_id for t in kept}
            report.submitted = [Submission(t.trial_id, "(dry run)", backend.name, 0.0, "", t.config["resources"])
                                for t in kept if t.trial_id in todo]
            report.preview = backend.preview(sweep, [t for t in kept if t.trial_id in todo], kept[0].config["resources"])
        return report
    sweep.check_mine([t.trial_id for t in kept])
    resume = resume or resume_words(spec_file, sets, backend_name, runs_dir)
    with sweep.lock():
        if restart is not None:
            moved = restart_from(sweep, restart) if sweep.exists() else []
            if moved:
                print(f"restarted stage(s) {', '.join(moved)}: their records moved aside", file=sys.stderr)
        sweep.write_plan(study.raw, trials, first.spec.search, first.spec.wandb, resume)
        write_study(sweep, str(Path(spec_file).resolve()), study.raw, resume)
        backend.reconcile(sweep)  # a killed submit's (or step job's) jobs are recorded first: never queued twice
        if not backend.foreground():
            t = turn(study, sweep, backend, flags, report)
            if t.kind in ("running", "search"):  # a search stage: the step job drives it from now
                report.driver = queue_step(study, sweep, backend, backend_name, flags, dict(backend_options or {}),
                                           runs_dir, t.after) if t.after or t.kind == "search" else \
                    "the stage's trials are held by runners"
                report.study += f"\nstage {t.stage.name} in progress"
            else:
                report.study += "\n" + t.words()
    if backend.foreground():
        t = run_foreground(study, sweep, backend, flags, report)
        report.foreground = True
        report.study += "\n" + t.words()
    if report.submitted and not report.summary:
        report.cluster_job = backend.cluster_job(report.submitted[0])
        report.summary = backend.summary(report.submitted, report.cluster_job)
    return report


def check_study_cost(study: Study, plan: list[dict[str, Any]]) -> None:
    """budget.max_gpu_hours: refuse (exit 2, nothing written) a study whose estimate, every stage at
    its most trials, is above it."""
    limits = [s.spec.budget.max_gpu_hours for s in study.stages if s.spec.budget.max_gpu_hours is not None]
    if not limits:
        return
    total = 0.0
    for p in plan:
        hours, line, _, _ = stage_hours(p)
        if hours is None:
            raise SpecError(study.file, "budget.max_gpu_hours", f"needs a time estimate, and there is none: {line}")
        total += hours
    if total > min(limits):
        raise SpecError(study.file, "budget.max_gpu_hours", f"the study's {len(plan)} stages are estimated at "
                        f"{total:,.2f} device-hours, over the limit {min(limits):g}")


def study_plan_line(plan: list[dict[str, Any]]) -> str:
    """``study: screen 6 trials -> long: top 2 of screen x 3 = 6``: the stages and their counts."""
    return "study: " + " -> ".join(stage_words(p, plan[p["stage"].index - 1]["stage"].name if p["stage"].index else "")
                                   for p in plan)


def stage_words(p: dict[str, Any], prev: str) -> str:
    """``screen 6 trials``, ``long: top 2 of screen x 3 = 6 trials``."""
    stage = p["stage"]
    lo, hi = stage_count(p)
    count = f"{lo} trials" if lo == hi else f"{lo}-{hi} trials"
    if stage.select is None:
        return f"{stage.name} {count}"
    if not stage.carry:
        return f"{stage.name}: {count} (carries nothing from {prev}; selects {stage.select.words()})"
    per = sorted(set(p["per_pick"]))
    each = str(per[0]) if len(per) == 1 else f"{per[0]}-{per[-1]}"
    return f"{stage.name}: {stage.select.words()} of {prev} x {each} = {count}"


def resume_words(spec_file: str, sets: tuple[str, ...], backend: str, runs_dir: str) -> list[str]:
    """The submit command (argv words) that resumes a sweep or study, for the hints readers print."""
    words = ["orchestrate", "submit", spec_file, "--backend", backend]
    for s in sets:
        words += ["--set", s]
    return words + (["--runs-dir", runs_dir] if runs_dir != "runs" else [])
