"""One Tune run over launched trials: the trainable per trial, the sweep's stopping rule
(``orchestrator/search/stopping.py``), the live view fed by Tune's callbacks, and the verdicts
Tune alone knows (a worker that died). Imported only once the driver has set Ray's authentication environment."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ray import tune
from rich.console import Console
from rich.live import Live

from orchestrator.backends.ray.feed import FEEDS, Feed, More
from orchestrator.backends.ray.live import LiveState
from orchestrator.backends.ray.options import per_trial
from orchestrator.backends.ray.trainable import trainable
from orchestrator.backends.states import verdict_state
from orchestrator.search.stopping import rule
from orchestrator.store.crashes import killed_by_file
from orchestrator.store.sweepdir import SweepDir
from orchestrator.sweep.expand import Trial
from orchestrator.sweep.naming import label, short, varying_keys
from orchestrator.sweep.sections import resolve_search, search_metric
from orchestrator.sweep.trialconfig import get_dotted
from orchestrator.tracking.wandb_run import plans_for
from train.files import failure, read_result, write_result
from train.lease import held

# Tune pickles its callbacks with the experiment state: the view holds only a key into this table.
_VIEWS: dict[str, tuple[LiveState, Live | None, SweepDir]] = {}


class View(tune.Callback):
    """Feeds Tune's trial events to the live view (in the driver's main loop)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def _tid(self, trial: Any) -> str:
        return trial.config["spec"]["trial_id"]

    def _refresh(self) -> None:
        state, live, _ = _VIEWS[self.key]
        if live is not None:
            live.update(state.render())

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        _VIEWS[self.key][0].start(self._tid(trial))
        self._refresh()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        _VIEWS[self.key][0].report(self._tid(trial), result)
        self._refresh()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        state, _, sweep = _VIEWS[self.key]
        verdict = read_result(sweep.trial_dir(self._tid(trial)))
        row = state.rows[self._tid(trial)]
        # Tune may call this before the worker has written result.json (it stops a trial at its last
        # report); the files are read again once the run is over.
        word = ("stopped_early" if row.epoch < row.epochs else "completed") if verdict is None else verdict_state(verdict)
        state.end(self._tid(trial), word, verdict)
        self._refresh()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        _VIEWS[self.key][0].end(self._tid(trial), "failed")
        self._refresh()


def await_writers(sweep: SweepDir, trials: list[Trial], give_up_s: float = 30.0) -> None:
    """Tune ends a trial it stops (ASHA) without waiting for the trial's thread, which writes its
    verdict after the stop; a loaded machine can take seconds. Wait while a live runner still holds
    a trial without a verdict (its lease), before the run's end takes its worker down."""
    deadline = time.time() + give_up_s
    while time.time() < deadline and any(read_result(sweep.trial_dir(t.trial_id)) is None
                                         and held(sweep.trial_dir(t.trial_id)) for t in trials):
        time.sleep(0.2)


def run_tune(sweep: SweepDir, trials: list[Trial], run_dir: Path, max_concurrent: int | None,
             screen_fd: int | None, more: More | None = None) -> str:
    """Run every trial (and, for a search, what ``more`` proposes as trials end: feed.py);
    returns "finished", or "interrupted" when some trial has no verdict."""
    trials = list(trials)
    search = sweep.options().get("search") or resolve_search(None)
    stopping = rule(search)
    metric, mode, why = search_metric(search, all(t.config["data"]["val_size"] for t in trials))
    epochs = max(t.config["train"]["epochs"] for t in trials)
    resources = trials[0].config["resources"]
    need = {k.lower(): v for k, v in per_trial(resources).items()}
    keys = varying_keys(trials, None) if len(trials) > 1 else []
    state = LiveState(metric)
    specs = []
    tracking = plans_for(sweep, [t.trial_id for t in trials])
    if more is not None:  # a search: the keys it searches, however few trials run at first
        keys = list(trials[0].overrides)
    latest = sweep.latest()  # recorded before this run: each trial's lease names its submission

    def added(t: Trial) -> None:
        text = " ".join(f"{label(k)}={short(get_dotted(t.config, tuple(k.split('.'))))}" for k in keys) or "-"
        state.add(t.trial_id, t.config["train"]["epochs"], text)

    def spec_for(t: Trial) -> dict[str, Any]:
        nonlocal latest
        if t.trial_id not in tracking:  # proposed while the run goes: recorded just now
            tracking.update(plans_for(sweep, [t.trial_id]))
            latest = sweep.latest()
            trials.append(t)
        # the trainer sizes its threads from resources.cpus: what Ray reserved for it
        config = {**t.config, "resources": {**resources, "cpus": int(need["cpu"]) // (resources.get("workers") or 1)}}
        return {"trial_id": t.trial_id, "config": config, "out": str(sweep.trial_dir(t.trial_id)),
                "early_stopping": stopping.name if stopping.stops else None, "tracking": tracking[t.trial_id],
                "job_id": latest[t.trial_id].job_id if t.trial_id in latest else None,
                "driver_record": str(run_dir / "driver.json")}

    for t in trials:
        added(t)
        specs.append(spec_for(t))

    console = None
    if screen_fd is not None:
        console = Console(file=os.fdopen(os.dup(screen_fd), "w"), soft_wrap=False)
        console.print(f"ray: {len(trials)} trials, each reserving {', '.join(f'{k} {v:g}' for k, v in need.items())}; "
                      f"{stopping.label}, metric {metric} "
                      f"({mode}; {why}); Ray's own output: {run_dir / 'driver.log'}")
    live = Live(state.render(), console=console, refresh_per_second=2) if console else None

    space: dict[str, Any] = {"param_space": {"spec": tune.grid_search(specs)}}
    if more is not None:
        FEEDS[str(run_dir)] = {"queue": specs, "live": {}, "ended": {}, "more": more, "spec_for": spec_for,
                               "added": added, "result": lambda tid: read_result(sweep.trial_dir(tid))}
        space = {"search_alg": Feed(str(run_dir)), "num_samples": -1}
    tuner = tune.Tuner(
        tune.with_resources(trainable, need),
        param_space=space.pop("param_space", None),
        tune_config=tune.TuneConfig(scheduler=stopping.tune_scheduler(search, metric, mode, epochs), reuse_actors=True,
                                    max_concurrent_trials=max_concurrent, **space),
        run_config=tune.RunConfig(storage_path=str(run_dir / "tune"), name="tune", verbose=0,
                                  callbacks=[View(str(run_dir))]),
    )
    _VIEWS[str(run_dir)] = (state, live, sweep)
    try:
        if live is not None:
            with live:
                grid = tuner.fit()
                await_writers(sweep, trials)
                for t in trials:  # the final word is the files'
                    verdict = read_result(sweep.trial_dir(t.trial_id))
                    if verdict is not None and state.rows[t.trial_id].state != "pending":
                        state.end(t.trial_id, verdict_state(verdict), verdict)
                live.update(state.render())
        else:
            grid = tuner.fit()
            await_writers(sweep, trials)
    finally:
        _VIEWS.pop(str(run_dir), None)
        FEEDS.pop(str(run_dir), None)
        if console is not None:
            console.line()
            console.file.flush()
    for result in grid:
        spec = (result.config or {}).get("spec") or {}
        tid = spec.get("trial_id")
        if tid and result.error is not None and read_result(sweep.trial_dir(tid)) is None:
            # a worker killed by a signal left its mark in the trial's stderr.log; Ray's own text
            # only guesses (it blames the OOM killer for a SIGSEGV)
            error = killed_by_file(sweep.trial_dir(tid) / "stderr.log") or (
                "the Ray worker failed: " + "".join(str(result.error).splitlines(keepends=True)[-20:]))
            write_result(sweep.trial_dir(tid), failure(tid, "crash", error,
                                                       next(t.params for t in trials if t.trial_id == tid)))
    missing = [t for t in trials if read_result(sweep.trial_dir(t.trial_id)) is None]
    return "interrupted" if missing else "finished"
