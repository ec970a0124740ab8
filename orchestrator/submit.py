"""``orchestrate submit``: validate, lock the sweep dir, work out what is missing, submit only that."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.checks import ConfigError
from orchestrator.backends import get_backend
from orchestrator.config import set_dotted
from orchestrator.expand import Trial, expand, shadowed
from orchestrator.resources import resolve_resources
from orchestrator.spec import SpecError, SweepSpec, load_spec
from orchestrator.state import trial_states
from orchestrator.sweepdir import Submission, SweepDir


@dataclass
class SubmitReport:
    sweep: SweepDir
    submitted: list[Submission] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # state -> trial ids left alone
    failed: list[str] = field(default_factory=list)  # failed trials not resubmitted (no --retry-failed)
    preview: str = ""
    dropped: int = 0


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
        out.append(Trial(t.trial_id, {**t.config, "resources": res}, t.params, t.kept, t.reason, t.source, t.overrides))
    return out


def submit(spec_file: str, sets: tuple[str, ...], resource_flags: dict[str, Any], runs_dir: str,
           backend_name: str = "slurm", retry_failed: bool = False, dry_run: bool = False) -> SubmitReport:
    spec = load_spec(spec_file, sets)
    trials = with_resources(spec, expand(spec), resource_flags)
    for line in shadowed(sets, trials):
        print(line, file=sys.stderr)
    kept = [t for t in trials if t.kept]
    if not kept:
        raise SpecError(spec_file, "budget", f"drops all {len(trials)} trials; nothing to submit "
                        "(see orchestrate plan for the reasons)")
    backend = get_backend(backend_name)
    groups: dict[str, list[Trial]] = {}
    for t in kept:  # one array per distinct resource request (normally exactly one)
        groups.setdefault(repr(sorted(t.config["resources"].items())), []).append(t)
    for group in groups.values():
        try:
            backend.check(group[0].config["resources"])
        except ConfigError as err:
            raise SpecError.of(spec_file, err) from None
    sweep = SweepDir(Path(runs_dir) / spec.name)
    report = SubmitReport(sweep, dropped=len(trials) - len(kept))
    if dry_run:  # nothing written, nothing submitted
        report.preview = "\n".join(backend.preview(sweep, g, g[0].config["resources"]) for g in groups.values())
        report.submitted = [Submission(t.trial_id, "(dry run)", backend.name, 0.0, "", t.config["resources"])
                            for t in kept]
        return report
    created = sweep.path  # the outermost directory this submit will create, if any
    while not created.parent.exists():
        created = created.parent
    created_any = not created.exists()
    try:
        with sweep.lock():
            _submit_locked(sweep, spec, trials, kept, groups, backend, retry_failed, report)
    except ConfigError as err:
        if created_any and not report.submitted:  # the scheduler refused everything: leave no trace
            shutil.rmtree(created, ignore_errors=True)
        raise SpecError.of(spec_file, err) from None
    return report


def _submit_locked(sweep: SweepDir, spec: SweepSpec, trials: list[Trial], kept: list[Trial],
                   groups: dict[str, list[Trial]], backend: Any, retry_failed: bool, report: SubmitReport) -> None:
    """Under the sweep lock: record the plan, work out each kept trial's state, launch what is
    missing (and failed, with retry_failed), and log each array's jobs as soon as it is queued."""
    sweep.write_plan(spec.raw, trials)
    states = {s.trial_id: s for s in trial_states(sweep, [t.trial_id for t in kept], backend)}
    todo: set[str] = set()
    for t in kept:
        s = states[t.trial_id]
        if s.state == "missing" or (retry_failed and not s.active and s.state not in ("completed", "stopped_early")):
            todo.add(t.trial_id)
        else:
            report.skipped.setdefault(s.state, []).append(t.trial_id)
            if not s.active and s.state not in ("completed", "stopped_early"):
                report.failed.append(t.trial_id)
    for group in groups.values():
        mine = [t for t in group if t.trial_id in todo]
        if mine:
            launched = backend.launch(sweep, mine, mine[0].config["resources"])
            sweep.record(launched)  # per array, so a later failure cannot lose these ids
            report.submitted += launched
