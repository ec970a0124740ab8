"""A stage's trials: the first stage's expansion, or, for a later one, the stage's own sweep over
each selected config (its carried keys in the base, once per seed of ``select.seeds``). Every
trial keeps the earlier trials it came from (``from``) and has the carried keys among its
overrides, so the leaderboard tells configs apart and traces them. ``possible`` runs the same
over every config a selection could take: plan's counts and the check that no selection can
leave a stage empty under the budget."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

from orchestrator.cost import plan_totals
from orchestrator.study.spec import Stage, Study, carried_keys, searches, stage_spec
from orchestrator.sweep.expand import expand
from orchestrator.sweep.proposers import Search
from orchestrator.sweep.size import MAX_TRIALS
from orchestrator.sweep.spec import SpecError, SweepSpec
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


def stage_searches(study: Study, stage: Stage, picks: list[dict[str, Any]] | None) -> list[tuple[str, SweepSpec, list[str]]]:
    """A search stage's searches, each ``(key, spec, the earlier trials it came from)``: one for the
    first stage (or a stage that carries nothing); else one per picked config, its carried keys in
    the search's base (``key``: a digest of them, naming its journal)."""
    if stage.index == 0 or picks is None or not stage.carry:
        return [("all", stage.spec, [i for p in picks or [] for i in p["trial_ids"]])]
    out: dict[str, tuple[str, SweepSpec, list[str]]] = {}
    for pick in picks:
        key = hashlib.sha256(canonical(carried_keys(stage, pick["config"])).encode()).hexdigest()[:12]
        if key in out:
            out[key][2].extend(pick["trial_ids"])
        else:
            out[key] = (key, stage_spec(study, stage, pick["config"], None), list(pick["trial_ids"]))
    return list(out.values())


def _search_sample(study: Study, stage: Stage, spec: SweepSpec) -> list[Trial]:
    """A search's first proposals (in memory, for its seed): plan's example; the search's space is
    checked against the base and the budget on the way (SpecError)."""
    try:
        return Search(spec).proposer(None).first()
    except SpecError as err:
        raise _located(stage, err) from None


def possible(study: Study, max_trials: int | None = MAX_TRIALS) -> list[dict[str, Any]]:
    """Per stage: the trials of the first stage, and for each later one, per config a selection
    could carry, how many trials it makes; refuses (SpecError) a stage that keeps no trial for
    some carried config (a selection of it would leave the stage empty)."""
    out = []
    candidates: list[Trial] = []
    searched = 0  # the stage before was a search of this many trials: its sample stands for them
    for stage in study.stages:
        if searches(stage.spec):  # proposed while it runs: its first proposals stand for it
            n = stage.spec.search["trials"]
            if stage.index == 0:
                sample = _search_sample(study, stage, stage.spec)
                out.append({"stage": stage, "trials": sample, "per_pick": [n], "picks": None, "search": n})
                candidates, searched = [t for t in sample if t.kept], n
                continue
            picks = [{"trial_ids": [c.trial_id], "config": c.config} for c in candidates]
            runs = stage_searches(study, stage, picks)
            sample: list[Trial] = []
            nxt = []
            for _, spec, _ in runs:
                made = _search_sample(study, stage, spec)
                nxt += [t for t in made if t.kept]
                sample = sample or made
            configs = len(runs) if not stage.carry else max(len(runs), searched)
            out.append({"stage": stage, "trials": sample, "per_pick": [n] * len(runs),
                        "picks": _picks(stage, configs), "search": n})
            candidates, searched = nxt, _picks(stage, configs) * n
            continue
        if stage.index == 0:
            made = stage_trials(study, stage, None, max_trials)
            kept = [t for t in made.trials if t.kept]
            out.append({"stage": stage, "trials": made.trials, "per_pick": [], "picks": None})
            candidates, searched = kept, 0
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
        configs = max(len(seen_carry), searched) if stage.carry else len(seen_carry)
        out.append({"stage": stage, "trials": sample, "per_pick": per_pick, "picks": _picks(stage, configs)})
        candidates, searched = nxt, 0
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
        n = p.get("search") or sum(t.kept for t in p["trials"])
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
