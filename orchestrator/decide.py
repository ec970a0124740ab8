"""What a submit launches: trials made ready for a scheduler (resources resolved, data found from
anywhere) and the decision, per trial, from the sweep dir and the scheduler, of what is missing
and must run. Shared by ``submit`` and a search's driver (``search_driver.py``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from configcheck import ConfigError
from orchestrator.backends.states import DONE, trial_states
from orchestrator.cost import plan_estimates, time_limit
from orchestrator.store.pauses import set_pause
from orchestrator.store.sweepdir import Submission, SweepDir
from orchestrator.sweep.expand import Trial
from orchestrator.sweep.resources import resolve_resources
from orchestrator.sweep.spec import SpecError, SweepSpec
from orchestrator.sweep.trialconfig import set_dotted
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
    driver: str = ""  # a search run unattended: the line naming its driver job
    study: str = ""  # a study: its stages and counts, and where it stands


def with_resources(spec: SweepSpec, trials: list[Trial], overrides: dict[str, Any]) -> list[Trial]:
    """Apply CLI resource flags on top of each trial's resources and validate the result; a
    relative (or default) ``data.root`` becomes the absolute path this submit checked, since a
    runner's working directory is its own (Ray Tune's trial dir). Ids do not change: neither
    resources nor the data's path are part of a trial's identity."""
    from train.data import data_root  # heavy: loads numpy; only submitting needs it

    out = []
    roots: dict[int, dict[str, Any]] = {}  # expanded trials share their data section: resolve (and keep) one each
    for t in trials:
        raw = dict(t.config.get("resources") or {})
        for key, value in overrides.items():
            if value is not None:
                raw = set_dotted(raw, (key,), value)
        try:
            res = resolve_resources(raw)
        except ConfigError as err:
            raise SpecError.of(spec.file, err) from None
        config = {**t.config, "resources": res}
        data = config.get("data")
        if isinstance(data, dict) and data.get("name") != "synthetic":
            if id(data) not in roots:
                roots[id(data)] = {**data, "root": str(data_root(data))}
            config["data"] = roots[id(data)]
        out.append(dataclasses.replace(t, config=config))
    return out


NOT_VERDICTS = ("missing", "interrupted", "unknown")  # no result yet, and no job that will give one


def verdict_of(state: Any) -> dict[str, Any] | None:
    """What a trial ended as, for a search to be told: its result.json, or for a job that ended
    without one (cancelled, out of memory, node failure) the failure the state merge records; None
    while it runs or has no verdict."""
    if state.active or state.state in NOT_VERDICTS:
        return None
    return state.result or {"status": "failed", "failure_kind": state.state}


def groups(trials: list[Trial]) -> dict[str, list[Trial]]:
    """One array per distinct resource request (normally exactly one)."""
    out: dict[str, list[Trial]] = {}
    for t in trials:
        out.setdefault(repr(sorted(t.config["resources"].items())), []).append(t)
    return out


def decide(sweep: SweepDir, chosen: list[Trial], retry_failed: bool, report: SubmitReport,
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
        # paused: at a rung of an ASHA run that ended or was given up: without the rule it trains on
        ended_badly = not s.active and s.state not in (*DONE, "interrupted", "unknown", "paused")
        if s.state in ("missing", "interrupted", "paused") or (retry_failed and ended_badly):
            todo.add(t.trial_id)
            if record_failures and s.state == "paused":
                set_pause(sweep.trial_dir(t.trial_id), None)  # to the end now (the rung driver does not decide)
            if record_failures:
                # a lease that did not make it running belongs to a job the scheduler says ended:
                # its holder died with its node; the new job must not wait out the heartbeat
                break_lease(sweep.trial_dir(t.trial_id), f"its job ended ({s.state}: {s.detail})")
        else:
            report.skipped.setdefault(s.state, []).append(t.trial_id)
            if ended_badly:
                report.failed.append(t.trial_id)
    return todo


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
