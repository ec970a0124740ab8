"""The ``orchestrate`` command line: parse, call, render. Bad input -> one line on stderr, exit 2."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from configcheck import ConfigError
from model import count_macs, count_params, get_family, list_models, resolve_config
from orchestrator.backends.base import BackendStopped
from orchestrator.backends.states import trial_states
from orchestrator.cli.demo import run_demo
from orchestrator.cli.render import print_submit
from orchestrator.cli.results_cmds import calibrate, leaderboard, sync
from orchestrator.cli.status_view import ray_results
from orchestrator.cli.train_one import pick_trial, train_locally
from orchestrator.cli.views import SET_HELP, plan, status
from orchestrator.plugins import BACKENDS, backend_class, default_backend, every_option, reader
from orchestrator.results.logs import show_logs
from orchestrator.search_driver import cancel_driver
from orchestrator.store.sweepdir import find_sweeps
from orchestrator.study.run import cancel_step
from orchestrator.submit import submit as do_submit
from orchestrator.sweep.size import MAX_TRIALS
from orchestrator.sweep.spec import SpecError, parse_override
from orchestrator.sweep.trialconfig import set_dotted
from train.safefs import tighten_umask


def bad_input(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Every user mistake becomes one clear stderr line and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (SpecError, ConfigError) as err:
            # one line, whatever the user's keys or values hold (a key may contain a newline)
            text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(err))
            click.echo(f"error: {text}", err=True)
            sys.exit(2)
        except BackendStopped as err:  # not the user's mistake: exit 1, but one clear line too
            click.echo(f"error: {err}", err=True)
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="orchestrate")
def main() -> None:
    """Find the best model under a parameter budget: plan sweeps (exact parameter counts), run
    them on SLURM, or through Ray Tune here, on a Ray cluster or inside a SLURM job (ASHA, GPU
    packing), log each trial to W&B (offline by default; `sync` uploads) and rank the results
    (`leaderboard`: seed means, Pareto front, plots)."""
    tighten_umask()  # sweep dirs sit on shared filesystems: nothing made here is writable by others


@main.command()
@click.argument("assignments", nargs=-1, metavar="KEY=VALUE...")
@click.option("--json", "as_json", is_flag=True, help="Print the count and the resolved model config.")
@bad_input
def params(assignments: tuple[str, ...], as_json: bool) -> None:
    """Count a model's parameters and MACs (one 32x32 forward) exactly, in closed form, e.g.
    model.layers=3 model.channels=85 -> 4,895,755 params, 742,193,480 MACs."""
    cfg: dict[str, Any] = {}
    for text in assignments:
        key, value = parse_override(text)
        parts = tuple(key.removeprefix("model.").split("."))
        if not all(parts):
            raise ConfigError(f"{text}", "expected model.KEY=VALUE (or KEY=VALUE, or KEY.SUBKEY=VALUE) for a model key")
        cfg = set_dotted(cfg, parts, value)
    n, macs = count_params(cfg), count_macs(cfg)
    if as_json:
        click.echo(json.dumps({"params": n, "macs": macs, "model": resolve_config(cfg)}))
    else:
        click.echo(f"{n:,} params, {macs:,} MACs")


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
    trial_obj = pick_trial(spec, overrides, trial, index)
    sys.exit(train_locally(trial_obj, out_dir, nproc))


RUNS_HELP = "Where sweep dirs live (<runs-dir>/<sweep name>/)."


def backend_flags(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Every registered backend's own submit flags: the fields of its ``Options`` dataclass marked
    as flags, in registry and field order (the help says whose each is)."""
    seen: set[str] = set()
    for o in reversed([o for o in every_option() if o.flag]):
        if o.name not in seen:
            seen.add(o.name)
            fn = click.option(o.cli, o.name, type=o.kind, default=None, metavar=o.metavar,
                              help=f"{o.owner}: {o.help}" if o.help else o.owner)(fn)
    return fn


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="Default: slurm where sbatch is on PATH, else ray (a private Ray instance here).")
@click.option("--cpus", type=int, default=None, help="CPUs per trial process (any backend).")
@click.option("--gpus", type=float, default=None,
              help="GPUs per trial process; ray packs trials that ask for a fraction (0.25: four per GPU).")
@click.option("--workers", type=int, default=None, help="DDP processes per trial (slurm: tasks over --nodes).")
@click.option("--mem-gb", type=float, default=None, help="Memory per trial (any backend).")
@backend_flags
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--trial", "trial_ids", multiple=True, metavar="ID",
              help="Submit only this trial (an id or unique prefix from plan; repeatable).")
@click.option("--index", "indices", type=int, multiple=True, metavar="N",
              help="Submit only plan's row N (repeatable); instead of --trial.")
@click.option("--retry-failed", is_flag=True, help="Also resubmit trials that failed, timed out or were cancelled.")
@click.option("--dry-run", is_flag=True,
              help="Say exactly what this submit would do (submit, leave alone and why) and the backend's "
                   "preview (SLURM: the sbatch text); submit and write nothing.")
@click.option("--runs-dir", default="runs", show_default=True, help=RUNS_HELP)
@click.option("--json", "as_json", is_flag=True)
@click.option("--max-trials", type=click.IntRange(1), default=MAX_TRIALS, show_default=True,
              help="Refuse a spec planning more trials than this (counted from its axes, before expanding).")
@click.option("--restart-stage", type=click.IntRange(0), default=None, metavar="N",
              help="A study: make stage N's selection and every later stage again (after editing a stage that "
                   "has started); trained trials are kept and not trained twice.")
@bad_input
def submit(spec: str, backend: str | None, cpus: int | None, gpus: float | None, workers: int | None,
           mem_gb: float | None, overrides: tuple[str, ...], trial_ids: tuple[str, ...], indices: tuple[int, ...],
           retry_failed: bool, dry_run: bool, runs_dir: str, as_json: bool, max_trials: int,
           restart_stage: int | None, **backend_opts: Any) -> None:
    """Submit every kept trial of SPEC that is not done, queued or running: on SLURM one job
    array; on Ray the sweep runs here in the foreground with a live view (Ctrl-C stops it cleanly;
    rerun to resume). The data each trial reads is checked first."""
    resource_keys = {o.name for o in every_option() if o.resource}
    flags = {"cpus": cpus, "gpus": gpus, "workers": workers, "mem_gb": mem_gb,
             **{k: v for k, v in backend_opts.items() if k in resource_keys}}

    chosen = ""
    if backend is None:  # said with the summary, so a refused submit still prints one line only
        backend, why = default_backend()
        chosen = f"backend {backend}: {why} (choose with --backend)"
    # each backend takes its own flags (and may take resource flags for itself)
    given = {k: v for k, v in backend_opts.items() if k not in resource_keys}
    options = backend_class(backend).options(flags, given, as_json)
    report = do_submit(spec, overrides, flags, runs_dir, backend, retry_failed, dry_run, trial_ids, indices,
                       backend_options=options, max_trials=max_trials, restart_stage=restart_stage)
    if as_json:
        click.echo(json.dumps({"sweep_dir": str(report.sweep.path), "dry_run": dry_run, "backend": backend,
                               "submitted": [s.to_json() for s in report.submitted],
                               "skipped": report.skipped, "failed": report.failed, "time_note": report.time_note,
                               "search": report.search, "driver": report.driver, "study": report.study}))
        return
    if chosen:
        click.echo(chosen)
    print_submit(report, spec, dry_run)
    if not dry_run and ray_results(report, runs_dir) == "interrupted":
        click.echo("interrupted: the same command resumes it (completed trials are not rerun)", err=True)
        sys.exit(130)


@main.command()
@click.argument("target", metavar="[SPEC|SWEEP_DIR]", required=False)
@click.option("--trial", "trial_ids", multiple=True, help="Only this trial (repeatable); default: every active one.")
@click.option("--runs-dir", default="runs", show_default=True, help=RUNS_HELP)
@bad_input
def cancel(target: str | None, trial_ids: tuple[str, ...], runs_dir: str) -> None:
    """Cancel a sweep's queued and running jobs (or those of --trial, found in --runs-dir)."""
    if target is None and not trial_ids:
        raise ConfigError("cancel", "give SPEC|SWEEP_DIR (a whole sweep) or --trial ID")
    cancelled = 0
    for sweep in find_sweeps(target, runs_dir, trial_ids):
        driver = None if trial_ids else cancel_driver(sweep)  # first: it would queue the next proposals
        if driver:
            click.echo(f"cancelled the sweep's driver job {driver} of sweep {sweep.name}")
            cancelled += 1
        step = None if trial_ids else cancel_step(sweep)  # a study's: it would queue the next stage
        if step:
            click.echo(f"cancelled the study's step job {step} of {sweep.name}")
            cancelled += 1
        ids = [t["trial_id"] for t in sweep.trials() if t["kept"]]
        if trial_ids:
            unknown = [t for t in trial_ids if t not in ids]
            if target is not None and unknown:
                raise ConfigError("--trial", f"{', '.join(unknown)} not in sweep {sweep.name}")
            ids = [t for t in trial_ids if t in ids]
        active = [s for s in trial_states(sweep, ids) if s.active]
        latest = sweep.latest()
        by_backend: dict[str, list] = {}
        for s in active:
            by_backend.setdefault(latest[s.trial_id].backend, []).append(latest[s.trial_id])
        for name, subs in by_backend.items():
            backend = reader(name)
            if backend is None:
                raise ConfigError(f"--backend {name}", f"cannot reach {name} from here to cancel its jobs")
            backend.cancel(subs)
        for s in active:
            click.echo(f"cancelled {s.trial_id} (job {s.job_id}) of sweep {sweep.name}")
        cancelled += len(active)
    if not cancelled:
        click.echo("nothing to cancel: no queued or running trial")


@main.command()
@click.argument("trial_id")
@click.option("--sweep", "target", default=None, metavar="SPEC|SWEEP_DIR", help="Default: search every sweep in --runs-dir.")
@click.option("--runs-dir", default="runs", show_default=True, help=RUNS_HELP)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output until the job ends.")
@bad_input
def logs(trial_id: str, target: str | None, runs_dir: str, follow: bool) -> None:
    """Show a trial's job stdout and stderr (its latest submission)."""
    sys.exit(show_logs(trial_id, target, runs_dir, follow))


@main.command()
@click.option("--data-dir", default="data", show_default=True, type=click.Path(file_okay=False),
              help="Where to look for (or unpack) CIFAR-10.")
@click.option("--runs-dir", default="runs", show_default=True, help=RUNS_HELP)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@bad_input
def demo(data_dir: str, runs_dir: str, overrides: tuple[str, ...]) -> None:
    """Run the demo sweep (sweeps/demo.yaml: 6 small ResNets, ASHA) through Ray on this machine,
    on real CIFAR-10 when it is found, else synthetic data; then list the trials by best
    validation accuracy."""
    run_demo(data_dir, runs_dir, overrides)


@main.command(name="models")
def models_cmd() -> None:
    """List the registered model families: their keys and the default model's parameter count."""
    for name in list_models():
        family = get_family({"family": name})
        keys = ", ".join(k for k in family.keys if k != "family")
        click.echo(f"{name:12s} {count_params({'family': name}):>12,} params by default; keys: {keys}")


def _results_commands() -> None:
    for cmd in (plan, status, leaderboard, sync, calibrate):
        cmd.callback = bad_input(cmd.callback)
        main.add_command(cmd)


_results_commands()

if __name__ == "__main__":
    main()
