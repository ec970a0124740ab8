"""A stage's trials: the first stage's expansion, or, for a later one, the stage's own sweep over
each selected config (its carried keys in the base, once per seed of ``select.seeds``). Every
trial keeps the earlier trials it came from (``from``) and has the carried keys among its
overrides, so the leaderboard tells configs apart and traces them. ``possible`` runs the same
over every config a selection could take: plan's counts and the check that no selection can
leave a stage empty under the budget."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from orchestrator.cost import plan_totals
from orchestrator.study.spec import Stage, Study, carried_keys, stage_spec
from orchestrator.sweep.expand import expand
from orchestrator.sweep.size import MAX_TRIALS
from orchestrator.sweep.spec import SpecError
from orchestrator.sweep.trial import Trial
from orchestrator.sweep.trialconfig import canonical


@dataclass
class StageTrials:
    trials: list[Trial] = field(default_factory=list)
    origin: dict[str, list[str]] = field(default_factory=dict)  # trial id -> the earlier trials it came from

    def members(self) -> list[dict[str, Any]]:
        return [{"trial_id": t.trial_id, "from": self.origin.get(t.trial_id, [])} for t in self.trials if t.kept]


def _located(stage: Stage, err: SpecError) -> SpecError:
    return SpecError(err.file, f"stages[{stage.index}].{err.path}" if err.path else f"stages[{stage.index}]",
                     err.message)


def stage_trials(study: Study, stage: Stage, picks: list[dict[str, Any]] | None,
                 max_trials: int | None = MAX_TRIALS) -> StageTrials:
    """``picks``: the previous stage's selection (``selected``: trial ids and a config each); None
    for the first stage."""
    out = StageTrials()
    if stage.index == 0 or picks is None:
        try:
            out.trials = [dataclasses.replace(t, source=f"{stage.name}:{t.source}") for t in expand(stage.spec, max_trials)]
        except SpecError as err:
            raise _located(stage, err) from None
        return out
    seen: dict[str, Trial] = {}
    assert stage.select is not None
    for pick in picks:
        carried = carried_keys(stage, pick["config"])
        for seed in stage.select.seeds or (None,):
            spec = stage_spec(study, stage, pick["config"], seed)
            try:
                made = expand(spec, max_trials)
            except SpecError as err:
                raise _located(stage, err) from None
            for t in made:
                extra = {**carried, **({"train.seed": seed} if seed is not None else {})}
                t = dataclasses.replace(t, source=f"{stage.name}:{t.source}", overrides={**extra, **t.overrides})
                out.origin.setdefault(t.trial_id, [])
                out.origin[t.trial_id] += [i for i in pick["trial_ids"] if i not in out.origin[t.trial_id]]
                if t.trial_id not in seen:
                    seen[t.trial_id] = t
                    out.trials.append(t)
    return out


def possible(study: Study, max_trials: int | None = MAX_TRIALS) -> list[dict[str, Any]]:
    """Per stage: the trials of the first stage, and for each later one, per config a selection
    could carry, how many trials it makes; refuses (SpecError) a stage that keeps no trial for
    some carried config (a selection of it would leave the stage empty)."""
    out = []
    candidates: list[Trial] = []
    for stage in study.stages:
        if stage.index == 0:
            made = stage_trials(study, stage, None, max_trials)
            kept = [t for t in made.trials if t.kept]
            out.append({"stage": stage, "trials": made.trials, "per_pick": [], "picks": None})
            candidates = kept
            continue
        per_pick, nxt, sample = [], [], []
        seen_carry: dict[str, int] = {}
        for c in candidates:
            key = canonical(carried_keys(stage, c.config))
            if key in seen_carry:
                continue
            made = stage_trials(study, stage, [{"trial_ids": [c.trial_id], "config": c.config}], max_trials)
            kept = [t for t in made.trials if t.kept]
            if not kept:
                why = next((t.reason for t in made.trials if t.reason), "no trial")
                raise SpecError(study.file, f"stages[{stage.index}]", f"keeps no trial for the config of "
                                f"{study.stages[stage.index - 1].name} trial {c.trial_id} ({why}): a selection of it "
                                "would leave the stage empty; change the stage's overrides or the budget")
            seen_carry[key] = len(kept)
            per_pick.append(len(kept))
            nxt += kept
            if len(sample) < _picks(stage, len(candidates)):
                sample += made.trials
        out.append({"stage": stage, "trials": sample, "per_pick": per_pick, "picks": _picks(stage, len(seen_carry))})
        candidates = nxt
    return out


def _picks(stage: Stage, configs: int) -> int:
    """How many configs the rule selects at most, out of ``configs`` candidates."""
    rule = stage.select
    if rule is None:
        return configs
    return min(rule.top, configs) if rule.kind == "top" else configs


def stage_count(p: dict[str, Any]) -> tuple[int, int]:
    """(fewest, most) trials a stage of ``possible`` can have: picks x trials per pick (a stage that
    carries nothing trains its own trials once, whatever was picked)."""
    stage = p["stage"]
    if p["picks"] is None:
        n = sum(t.kept for t in p["trials"])
        return n, n
    per = p["per_pick"]
    if not stage.carry:
        return per[0], per[0]
    picks = p["picks"]
    return picks * min(per), picks * max(per)


def stage_hours(p: dict[str, Any], calibration: str | None = None,
                parallel: int | None = None) -> tuple[float | None, str, dict[str, Any], dict[str, Any]]:
    """(a stage's device-hours at its most trials, the estimate's line, its totals, per-trial
    estimates): a later stage's from its example trials, scaled."""
    est, line, totals = plan_totals(p["trials"], calibration, parallel)
    kept = [t for t in p["trials"] if t.kept]
    if not totals or not kept:
        return None, line, totals, est
    return totals["device_hours"] * stage_count(p)[1] / len(kept), line, totals, est
