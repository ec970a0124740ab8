"""``orchestrate plan`` of a search spec: its space, how much of it fits the budget (counted
exactly), the first proposals for its seed, and the estimate for ``search.trials`` trials."""

from __future__ import annotations

import json

import click

from orchestrator.cli.render import print_plan
from orchestrator.cost import plan_totals
from orchestrator.sweep.proposers import Search
from orchestrator.sweep.spec import SweepSpec

SAMPLED = 200  # proposals drawn (in memory) to estimate a long search's cost


def plan_search(spec: SweepSpec, as_json: bool, calibration: str | None, parallel: int | None,
                with_totals: bool = False) -> None:
    search = Search(spec)  # validates the space against the base and the budget: exit 2 before anything
    proposer = search.proposer(None)
    s = proposer.settings
    first = proposer.first()
    # the estimate: up to SAMPLED proposals of the same sampler, none told (what it starts from)
    sample = proposer.again(parallel=min(s["trials"], SAMPLED)).first()
    est, line, totals = plan_totals(sample, calibration, parallel or s["parallel"])
    if est and len(sample) < s["trials"]:
        scale = s["trials"] / len(sample)
        totals = {**totals, "device_hours": totals["device_hours"] * scale, "trial_seconds": totals["trial_seconds"] * scale}
    feasible = search.feasible
    lines = [f"search ({s['algorithm']}): {s['trials']} trials, {s['parallel']} at once, seed {s['seed']}; objectives "
             + ", ".join(f"{n} ({m})" for n, m in s["objectives"])]
    lines += [f"  {d.key}: {d.describe()}" for d in search.domains]
    if feasible is not None:
        lines.append(f"model points within the budget: {len(feasible.points):,} of {feasible.total:,} "
                     f"({feasible.rate:.1%}; naive sampling of the raw space would propose {1 - feasible.rate:.1%} over "
                     "budget or invalid); counted exactly, by enumerating the closed-form counts")
    points = search.points()
    lines.append(f"feasible points in all: {points:,}" if points is not None else
                 "feasible points in all: unbounded (a continuous key)")
    lines.append("every proposal is within the budget by construction: none is rejected")
    if as_json:  # the first proposals as plan's trial rows; --totals: with the search's counts
        memo: dict = {}
        rows = "[\n" + ",\n".join(t.json_text(memo, {"est_epoch_seconds": est[t.trial_id][0], "est_seconds":
                                                      est[t.trial_id][1]} if t.trial_id in est else {})
                                   for t in first) + "\n]"
        if with_totals:
            head = json.dumps({"sweep": spec.name, "search": s, "model_points": feasible.total if feasible else None,
                               "feasible_model_points": len(feasible.points) if feasible else None,
                               "feasible_points": points, "estimate": line or None, "totals": totals})
            rows = head[:-1] + ', "trials": ' + rows + "}"
        click.echo(rows)
        return
    click.echo("\n".join(lines))
    print_plan(f"{spec.name}: the first {len(first)} proposals for seed {s['seed']}", first, spec.budget.fill, None,
               estimates=est)
    if line:
        head = line.splitlines()[0]
        click.echo(f"{head} (the first {len(sample)} proposals)" + (f"; for {s['trials']} trials about "
                   f"{totals['device_hours']:,.1f} {totals['unit']}" if est and len(sample) < s["trials"] else ""))
