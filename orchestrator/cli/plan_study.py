"""``orchestrate plan`` of a study: every stage with its trial count (a later stage as "top K of
stage 1 x ...", counted over every config its rule could pick), the first stage's trials, an
example of each later stage's, and the estimate for the whole study."""

from __future__ import annotations

import json

import click

from orchestrator.cli.render import print_plan
from orchestrator.study.expand import possible, stage_count
from orchestrator.study.expand import stage_hours as hours_of
from orchestrator.study.spec import load_study
from orchestrator.study.submit import stage_words


def plan_study(file: str, sets: tuple[str, ...], as_json: bool, calibration: str | None, parallel: int | None,
               max_trials: int) -> None:
    study = load_study(file, sets)
    plan = possible(study, max_trials)  # bad input (an empty selection under the budget) exits 2 here
    rows, hours, unit, lines = [], 0.0, "", []
    for p in plan:
        stage = p["stage"]
        prev = plan[stage.index - 1]["stage"].name if stage.index else ""
        lo, hi = stage_count(p)
        stage_hours, line, totals, est = hours_of(p, calibration, parallel)  # an example's, scaled
        if stage_hours is not None:
            hours += stage_hours
            unit = totals["unit"]
        rows.append({"index": stage.index, "name": stage.name, "rule": stage.select.words() if stage.select else None,
                     "carry": list(stage.carry) if stage.select else None, "trials_min": lo, "trials_max": hi,
                     "per_pick": p["per_pick"], "picks": p["picks"], "device_hours": stage_hours,
                     "trials": [t.trial_id for t in p["trials"] if t.kept] if stage.index == 0 else None})
        lines.append((p, prev, est, line, stage_hours))
    if as_json:
        click.echo(json.dumps({"study": study.name, "stages": rows, "device_hours": hours if unit else None,
                               "unit": unit or None}, indent=1))
        return
    click.echo(f"study {study.name}: {len(plan)} stages")
    for p, prev, est, _line, stage_hours in lines:
        stage = p["stage"]
        words = stage_words(p, prev)
        click.echo(f"\nstage {stage.index} {words}" + (f"; about {stage_hours:,.2f} {unit}" if stage_hours else ""))
        title = (f"{study.name} / {stage.name}" if stage.index == 0 else
                 f"{study.name} / {stage.name}: for example, for the first config{'s' if (p['picks'] or 0) > 1 else ''} "
                 "a selection could carry")
        print_plan(title, p["trials"], stage.spec.budget.fill, 50, estimates=est)
    if unit:
        click.echo(f"\nthe whole study: about {hours:,.2f} {unit} (a later stage's estimate is its example's, scaled "
                   "to its most trials)")
    else:
        click.echo(f"\n{lines[0][3]}")
