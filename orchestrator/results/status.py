"""What ``orchestrate status`` shows: per sweep, the trials to list (this spec's, when a spec is
given), the keys that tell them apart, and a warning when the spec is not what was submitted."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from configcheck import ConfigError
from orchestrator.backends.states import DONE, TrialState, trial_states
from orchestrator.store.manifest import manifest_trials
from orchestrator.store.sweepdir import SweepDir, find_sweeps
from orchestrator.store.trialfiles import last_metrics
from orchestrator.sweep.expand import Trial, expand
from orchestrator.sweep.naming import varying_keys
from orchestrator.sweep.spec import is_study, load_spec
from orchestrator.sweep.trialconfig import get_dotted


@dataclass(frozen=True)
class SweepView:
    sweep: SweepDir
    trials: list[Trial]  # kept trials, in plan order
    keys: list[str]  # the dotted keys whose values differ between them
    warning: str = ""


def views(target: str | None, runs_dir: str, sets: tuple[str, ...] = ()) -> list[SweepView]:
    """A spec is expanded (with ``sets``) and compared with its sweep dir: a spec edited since it
    was submitted (or another --set) must not pass the old run's trials off as its own."""
    is_spec = target is not None and not Path(target).is_dir()
    out = []
    for sweep in find_sweeps(target, runs_dir, sets=sets):
        there = [t for t in manifest_trials(sweep) if t.kept]
        # a search spec's trials are what it proposed: the sweep dir's
        if not is_spec or is_study(target) or load_spec(target, sets).search.get("algorithm", "grid") != "grid":
            out.append(SweepView(sweep, there, varying_keys(there, None) if there else []))
            continue

        mine = [t for t in expand(load_spec(target, sets)) if t.kept]
        known = {t.trial_id for t in there} | {p.name for p in (sweep.path / "trials").glob("*")}
        new = [t for t in mine if t.trial_id not in known]
        note = earlier_versions(sweep.path, mine)
        warning = ""
        if new or note:
            warning = (f"warning: {target} differs from what was submitted to {sweep.path}: {len(new)} of its "
                       f"{len(mine)} trials are not there (orchestrate submit {target} runs them)")
            if note:
                warning += (f"; {note['stay']} trials there are not in this spec, {note['finished']} of them finished "
                            f"(orchestrate status {sweep.path} lists them)")
            if not sets:
                warning += "; if it was submitted with --set, give status the same --set"
        out.append(SweepView(sweep, mine, varying_keys(mine, None) if mine else [], warning))
    return out


def earlier_versions(sweep_path: Path, trials: list[Trial]) -> dict[str, Any] | None:
    """What an edited spec leaves in its sweep dir: the trials of earlier versions that stay
    (and how many of them finished) and how many of this version's trials are new. None when the
    dir holds nothing but this version's trials."""
    sweep = SweepDir(sweep_path)
    if not sweep.exists():
        return None
    there = {t["trial_id"] for t in sweep.trials() if t.get("kept")}
    now = {t.trial_id for t in trials if t.kept}
    stays = sorted(there - now)
    if not stays:
        return None
    finished = sum((sweep.result(t) or {}).get("status") in DONE for t in stays)
    new = len(now - there)
    line = (f"{sweep.path} holds {len(stays)} trial{'s' if len(stays) != 1 else ''} of an earlier version of this "
            f"spec ({finished} finished): they "
            f"stay, and `orchestrate leaderboard {sweep.path}` ranks them beside this version's, marked †; "
            f"{new} of this version's {len(now)} trials are new")
    return {"line": line, "stay": len(stays), "finished": finished, "new": new, "of": len(now)}


def poll(view: SweepView) -> list[TrialState]:
    return trial_states(view.sweep, [t.trial_id for t in view.trials])


def best_metric(result: dict[str, Any] | None) -> tuple[str | None, float | None]:
    """The metric a trial is ranked by: best validation accuracy, or best test accuracy when the
    trial held out no validation split."""
    r = result or {}
    if r.get("best_val_acc") is not None:
        return "best_val_acc", r["best_val_acc"]
    if r.get("best_test_acc") is not None:
        return "best_test_acc", r["best_test_acc"]
    return None, None


def search_line(view: SweepView, states: list[Any]) -> str:
    """A search sweep's line, from the sweep dir alone: trained / trials, the best so far, the
    proposals made and rejected (none: every proposal is within the budget by construction)."""
    search = view.sweep.options().get("search") or {}
    if search.get("algorithm", "grid") == "grid":
        return ""
    ended = [s for s in states if not s.active and s.result is not None]
    scored = [(v, s.trial_id) for s in ended for _, v in [best_metric(s.result)] if v is not None]
    best = max(scored) if scored else None
    return (f"search ({search['algorithm']}): {len(ended)} / {search.get('trials')} trained, "
            + (f"best {best[0]:.4f} ({best[1]})" if best else "no result yet")
            + f"; {len(states)} proposed, 0 rejected")


def one_trial(shown: list[SweepView], trial: str) -> list[SweepView]:
    """The one view and trial that ``trial`` (an id or unique prefix) names."""

    hits = [(v, t) for v in shown for t in v.trials if t.trial_id.startswith(trial)]
    if len(hits) != 1:
        where = ", ".join(f"{v.sweep.path}/{t.trial_id}" for v, t in hits[:8])
        raise ConfigError("--trial", f"{trial!r} matches {len(hits)} trials" + (f": {where}" if hits else ""))
    view, t = hits[0]
    return [replace(view, trials=[t])]


def row_json(view: SweepView, trial: Trial, state: TrialState) -> dict[str, Any]:
    metric, best = best_metric(state.result)
    return {"sweep": view.sweep.name, **state.to_json(), "params": trial.params,
            "varying": {k: get_dotted(trial.config, tuple(k.split("."))) for k in view.keys},
            "best_metric": metric, "best": best, "progress": progress(view, trial, state), "config": trial.config}


def progress(view: SweepView, trial: Trial, state: TrialState) -> dict[str, Any] | None:
    """A running (or interrupted) trial's last epoch from its metrics.jsonl: epoch, epochs, and
    the latest validation (else test) accuracy. The same for every backend: it is the trial's file."""
    if state.state in ("completed", "stopped_early") or (state.result or {}).get("status") == "failed":
        return None

    last = last_metrics(view.sweep.trial_dir(trial.trial_id))
    if not last:
        return None
    key = "val_acc" if last.get("val_acc") is not None else "test_acc"
    return {"epoch": last.get("epoch"), "epochs": trial.config["train"]["epochs"], "metric": key, "value": last.get(key)}
