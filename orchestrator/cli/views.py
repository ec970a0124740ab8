"""``orchestrate plan`` and ``orchestrate status``: what a sweep will be, and what it is now."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live

from orchestrator.cli.plan_search import plan_search
from orchestrator.cli.plan_study import plan_study
from orchestrator.cli.render import print_plan
from orchestrator.cli.results_cmds import RUNS_HELP
from orchestrator.cli.status_view import status_table
from orchestrator.cost import plan_totals
from orchestrator.results.logs import wandb_line
from orchestrator.results.stages_view import stage_lines
from orchestrator.results.status import SweepView, earlier_versions, one_trial, poll, row_json, views
from orchestrator.store.stages import stage_of
from orchestrator.sweep.expand import expand, shadowed
from orchestrator.sweep.size import MAX_TRIALS
from orchestrator.sweep.spec import is_study, load_spec
from orchestrator.tracking.sync import trial_runs

SET_HELP = "Override a config key for every trial: model.kernel=5, train.epochs=2, budget.max_params=4e6 ..."


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per trial.")
@click.option("--limit", default=200, show_default=True, help="Rows shown in the table.")
@click.option("--all", "show_all", is_flag=True, help="Show every row in the table.")
@click.option("--calibration", default=None, metavar="FILE|DEVICE",
              help="Cost model to estimate time with (default: this CPU's, or the only stored GPU one).")
@click.option("--parallel", type=int, default=None, metavar="P",
              help="Trials at once for the wall-time estimate (default: resources.array_parallelism, else all).")
@click.option("--runs-dir", default="runs", show_default=True,
              help="Where its sweep dir would be: plan says how many trials of an earlier version of the spec are there.")
@click.option("--totals", "with_totals", is_flag=True,
              help="With --json: one object {sweep, kept, dropped, totals, estimate, earlier, trials} instead of the list.")
@click.option("--max-trials", type=click.IntRange(1), default=MAX_TRIALS, show_default=True,
              help="Refuse a spec planning more trials than this (counted from its axes, before expanding).")
def plan(spec: str, overrides: tuple[str, ...], as_json: bool, limit: int, show_all: bool, calibration: str | None,
         parallel: int | None, runs_dir: str, with_totals: bool, max_trials: int) -> None:
    """Expand SPEC into trials, count each model's parameters and MACs, apply the budget, and
    estimate each trial's time from a calibration (orchestrate calibrate)."""
    if is_study(spec):
        plan_study(spec, overrides, as_json, calibration, parallel, max_trials)
        return
    sweep = load_spec(spec, overrides)
    if sweep.search.get("algorithm", "grid") != "grid":
        plan_search(sweep, as_json, calibration, parallel, with_totals)
        return
    trials = expand(sweep, max_trials)
    for line in shadowed(overrides, trials):
        click.echo(line, err=True)

    est, line, totals = plan_totals(trials, calibration, parallel)
    note = earlier_versions(Path(runs_dir) / sweep.name, trials)
    if as_json:  # a list of trials (each with its estimate); --totals: {sweep, ..., totals, trials: [...]}
        out, memo = sys.stdout, {}
        kept = sum(t.kept for t in trials)
        if with_totals:
            out.write(json.dumps({"sweep": sweep.name, "kept": kept, "dropped": len(trials) - kept, "totals": totals,
                                  "estimate": line or None, "earlier": note})[:-1] + ', "trials": ')
        out.write("[\n")
        for i, t in enumerate(trials):
            e = est.get(t.trial_id)
            extra = {"est_epoch_seconds": e[0], "est_seconds": e[1]} if e else {}
            out.write(("" if i == 0 else ",\n") + t.json_text(memo, extra))
        out.write("\n]}\n" if with_totals else "\n]\n")
        return

    print_plan(sweep.name, trials, sweep.budget.fill, None if show_all else limit, estimates=est)
    if line:
        click.echo(line)
    if note:
        click.echo(note["line"])



@click.command()
@click.argument("target", metavar="[SPEC|SWEEP_DIR]", required=False)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="The --set the spec was submitted with (its trials are the ones shown).")
@click.option("--runs-dir", default="runs", show_default=True, help=RUNS_HELP)
@click.option("--json", "as_json", is_flag=True,
              help="A list of {sweep, trial_id, state, job_id, active, detail, params, varying, best, config, ...}.")
@click.option("--watch", is_flag=True, help="Refresh every few seconds until no trial is active.")
@click.option("--trial", "trial", default=None, metavar="ID",
              help="Only this trial (an id or unique prefix), with its W&B run and log files.")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between --watch refreshes.")
def status(target: str | None, overrides: tuple[str, ...], runs_dir: str, as_json: bool, watch: bool,
           interval: float, trial: str | None) -> None:
    """Per-trial state, merged from the scheduler (sacct/squeue) and the result files, with the
    keys that vary and params. SPEC: this spec's trials (warns if they are not what was submitted);
    SWEEP_DIR: what was submitted there; neither: every sweep in --runs-dir."""


    shown = views(target, runs_dir, overrides)
    if trial is not None:
        shown = one_trial(shown, trial)
    for view in shown:
        if view.warning:
            click.echo(view.warning, err=True)
    if as_json:
        click.echo(json.dumps(json_rows(shown), indent=1))
        return
    if trial is not None:
        (view,) = shown
        Console().print(status_table(view, poll(view)))
        d = view.sweep.trial_dir(view.trials[0].trial_id)
        click.echo(f"{wandb_line(view.sweep, view.trials[0].trial_id)}\nfiles: {d} (stdout.log, stderr.log, "
                   f"metrics.jsonl, result.json)")
        return
    if not watch:
        Console().print(Group(*(status_table(v, poll(v)) for v in shown)))
        for v in shown:  # a study: its stages, the selections made, whether each ranking held
            for line in stage_lines(v.sweep):
                click.echo(line)
        return
    with Live(auto_refresh=False) as live:
        while True:
            polled = [(v, poll(v)) for v in shown]
            live.update(Group(*(status_table(v, states) for v, states in polled)), refresh=True)
            if not any(st.active for _, states in polled for st in states):
                break
            time.sleep(interval)


def json_rows(shown: list[SweepView]) -> list[dict[str, Any]]:
    """``status --json``: one object per trial of each view, with its W&B run (id, project,
    entity, mode, URL once synced) and, in a study, the stages it belongs to."""
    rows: list[dict[str, Any]] = []
    for v in shown:
        runs = trial_runs(v.sweep, [t.trial_id for t in v.trials])
        stages = stage_of(v.sweep)
        rows += [{**row_json(v, t, st), "wandb": {k: x for k, x in runs[t.trial_id].items() if k != "dirs"},
                  **({"stages": stages.get(t.trial_id, [])} if stages else {})}
                 for t, st in zip(v.trials, poll(v))]
    return rows
