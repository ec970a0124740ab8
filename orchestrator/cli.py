"""The ``orchestrate`` command line: parse, call, render. Bad input -> one line on stderr, exit 2."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from model.checks import ConfigError
from orchestrator.spec import SpecError

SET_HELP = "Override a config key for every trial: model.kernel=5, train.epochs=2, budget.max_params=4e6 ..."


def bad_input(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Every user mistake becomes one clear stderr line and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SpecError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)
        except ConfigError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="orchestrate")
def main() -> None:
    """Find the best model under a parameter budget: plan, run and rank sweeps on SLURM or Ray."""


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per trial.")
@click.option("--limit", default=200, show_default=True, help="Rows shown in the table.")
@click.option("--all", "show_all", is_flag=True, help="Show every row in the table.")
@bad_input
def plan(spec: str, overrides: tuple[str, ...], as_json: bool, limit: int, show_all: bool) -> None:
    """Expand SPEC into trials, count each model's parameters and apply the budget."""
    from orchestrator.expand import expand
    from orchestrator.spec import load_spec

    sweep = load_spec(spec, overrides)
    trials = expand(sweep)
    if as_json:
        out = sys.stdout
        out.write("[\n")
        for i, t in enumerate(trials):
            out.write(("" if i == 0 else ",\n") + json.dumps(t.to_json()))
        out.write("\n]\n")
        return
    from orchestrator.render import print_plan

    print_plan(sweep.name, trials, sweep.budget.fill, None if show_all else limit)


@main.command()
@click.argument("assignments", nargs=-1, metavar="KEY=VALUE...")
@click.option("--json", "as_json", is_flag=True, help="Print the count and the resolved model config.")
@bad_input
def params(assignments: tuple[str, ...], as_json: bool) -> None:
    """Count a model's parameters exactly (closed form), e.g. model.layers=3 model.channels=85."""
    from model import count_params, resolve_config
    from orchestrator.spec import parse_override

    cfg: dict[str, Any] = {}
    for text in assignments:
        key, value = parse_override(text)
        key = key.removeprefix("model.")
        if not key or "." in key:
            raise ConfigError(f"{text}", "expected model.KEY=VALUE (or KEY=VALUE) for a model key")
        cfg[key] = value
    n = count_params(cfg)
    if as_json:
        click.echo(json.dumps({"params": n, "model": resolve_config(cfg)}))
    else:
        click.echo(f"{n:,}")


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="The trial directory.")
@click.option("--trial", "trial", default=None, help="Trial id (from plan); default: the first kept trial.")
@click.option("--index", "index", type=int, default=None, help="Row number in plan's table instead of --trial.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--nproc", type=click.IntRange(1, 64), default=1, show_default=True,
              help="DDP processes on this machine (gloo on CPU, nccl on CUDA), started with torchrun.")
@bad_input
def train(spec: str, out_dir: str, trial: str | None, index: int | None, overrides: tuple[str, ...],
          nproc: int) -> None:
    """Run one trial of SPEC locally into --out (resumes from its checkpoint if there is one)."""
    from orchestrator.local import pick_trial, train_locally

    trial_obj = pick_trial(spec, overrides, trial, index)
    sys.exit(train_locally(trial_obj, out_dir, nproc))


@main.command(name="models")
def models_cmd() -> None:
    """List the registered model families."""
    from model import list_models

    for name in list_models():
        click.echo(name)


if __name__ == "__main__":
    main()
