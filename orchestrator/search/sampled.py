"""Searches: random, TPE and NSGA-II proposals from Optuna's samplers (the library's, never ours),
every one within the budget by construction (``feasible.py``).

Optuna's ask/tell runs against a journal file in the sweep dir (``search/journal.log``: no
database server; a killed search resumes where it was): a proposal is asked, its trial recorded
and trained, its result told. The trial is made by the sweep language (``make_trial``, handed
in), so its id follows the one config-hash rule; a repeated proposal is told the result it
already has and trains nothing. Imports nothing of the orchestrator but search."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from configcheck import ConfigError
from orchestrator.search.feasible import Feasible
from orchestrator.search.propose import Proposer, Trial
from orchestrator.search.space import Domain, as_raw

ALGORITHMS = ("grid", "random", "tpe", "nsga2")  # grid: the fixed expansion (propose.py)
COUNTS = ("params", "macs")  # objectives read from the trial's closed-form counts, not its result
MAX_REPEATS = 200  # asks in a row that only repeat known trials: the space is exhausted
# repeats in a row after which a point no proposal has had is put to the sampler (Optuna's
# enqueue_trial): TPE on a small discrete space otherwise keeps asking what it knows
STUCK = 10


def sampler(algorithm: str, seed: int, trials: int, parallel: int) -> Any:
    import optuna  # heavy: loads numpy, sqlalchemy and alembic (a second); only searches need it

    if algorithm == "tpe":  # constant liar: trials asked while others run are spread, not piled
        return optuna.samplers.TPESampler(seed=seed, constant_liar=parallel > 1, n_startup_trials=min(10, max(2, trials // 4)))
    if algorithm == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, parallel, min(50, trials // 4)))
    return optuna.samplers.RandomSampler(seed=seed)


class SampledSearch(Proposer):
    """``trials`` proposals, at most ``parallel`` in flight, from ``algorithm``'s sampler."""

    def __init__(self, settings: Mapping[str, Any], domains: tuple[Domain, ...], feasible: Feasible | None,
                 make_trial: Callable[[dict[str, Any], int], Trial], journal: Path | None) -> None:
        self.name = settings["algorithm"]
        self.settings, self.domains, self.feasible = settings, domains, feasible
        self.make_trial, self.journal = make_trial, journal
        self.arch = set(feasible.keys) if feasible else set()
        self._study: Any = None
        self.asked = self.repeats = 0

    def again(self, journal: Path | None = None, **settings: Any) -> SampledSearch:
        """The same search (space, feasible set: counted once) with another journal or settings."""
        return SampledSearch({**self.settings, **settings}, self.domains, self.feasible, self.make_trial, journal)

    # -- the study ------------------------------------------------------------------------
    def study(self) -> Any:
        if self._study is None:
            import optuna  # heavy: see sampler()

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            storage: Any = None
            if self.journal is not None:  # an open() lock: Optuna's default lock is a symlink
                from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock  # heavy: see sampler()

                path = str(self.journal)
                storage = optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
            s = self.settings
            self._study = optuna.create_study(
                study_name="search", storage=storage, load_if_exists=True,
                sampler=sampler(self.name, s["seed"], s["trials"], s["parallel"]),
                directions=["maximize" if mode == "max" else "minimize" for _, mode in s["objectives"]])
            self._same_search()
            for t in self._study.get_trials(deepcopy=False, states=(_state("RUNNING"),)):
                if "trial_id" not in t.user_attrs:  # asked by a search killed before it recorded the proposal
                    self._study.tell(t.number, state=_state("FAIL"))
        return self._study

    def _same_search(self) -> None:
        """A journal continues only the search it began: the same algorithm, space and objectives
        (more ``trials`` or another ``parallel`` are fine). Else one line, before anything runs."""
        s = self.settings
        mine = json.dumps({"algorithm": self.name, "space": as_raw(self.domains),
                           "objectives": [list(o) for o in s["objectives"]]}, sort_keys=True)
        began = self._study.user_attrs.get("search")
        if began is None:
            self._study.set_user_attr("search", mine)
        elif began != mine:
            raise ConfigError("search", f"differs from the search its journal {self.journal} began (algorithm, space "
                              "or objectives); give the sweep another name, or remove that journal to start over")

    def _frozen(self) -> list[Any]:
        return self.study().get_trials(deepcopy=False)

    def running(self) -> list[Any]:
        """Asked and recorded, not told yet (in flight, or a killed search's: they run again)."""
        return [t for t in self._frozen() if t.state.name == "RUNNING" and "trial_id" in t.user_attrs]

    def trained(self) -> int:
        """Proposals told a verdict of their own (repeats do not count)."""
        return sum(1 for t in self._frozen() if t.state.name != "RUNNING" and "trial_id" in t.user_attrs
                   and "repeat_of" not in t.user_attrs and "promoted_of" not in t.user_attrs)

    def in_flight(self) -> list[str]:
        return [t.user_attrs["trial_id"] for t in self.running()]

    def proposed(self) -> list[str]:
        """Every trial id it has proposed, in order, once each (a study records a search stage's
        trials from here)."""
        return list(dict.fromkeys(t.user_attrs["trial_id"] for t in self._frozen() if "trial_id" in t.user_attrs))

    def summary(self) -> str:
        s = self.settings
        best = self.best()
        name = s["objectives"][0][0]
        shown = f"best {name} {best[0]:.4g} ({best[1]})" if best else "no result yet"
        return (f"search ({self.name}): {self.trained()} / {s['trials']} trained, {shown}; "
                f"{sum('promoted_of' not in t.user_attrs for t in self._frozen())} proposals made, "
                f"{self.repeats_total()} repeats told their "
                "earlier result, 0 rejected (all within the budget by construction)")

    def repeats_total(self) -> int:
        return sum(1 for t in self._frozen() if "repeat_of" in t.user_attrs)

    def done(self) -> bool:
        return self.trained() >= self.settings["trials"] or self.asked and self.repeats >= MAX_REPEATS

    # -- proposing ------------------------------------------------------------------------
    def _sample(self, t: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        quantiles = []
        for d in self.domains:
            if d.key in self.arch:  # a quantile of the values the budget still allows (feasible.py)
                quantiles.append(t.suggest_float(d.key, 0.0, 1.0))
            elif d.kind == "choice":
                out[d.key] = t.suggest_categorical(d.key, list(d.values))
            elif d.kind == "int":
                step = d.values[1] - d.values[0] if len(d.values) > 1 else 1
                out[d.key] = t.suggest_int(d.key, d.values[0], d.values[-1], step=step)
            else:
                out[d.key] = t.suggest_float(d.key, d.lo, d.hi, log=d.log)
        if self.feasible is not None:
            out.update(self.feasible.decode(quantiles))
        return {d.key: out[d.key] for d in self.domains}

    def _ask(self) -> Trial | None:
        study = self.study()
        by_id = {t.user_attrs["trial_id"]: t for t in self._frozen() if "trial_id" in t.user_attrs}
        for _ in range(MAX_REPEATS):
            if self.repeats and self.repeats % STUCK == 0 and (params := self._unexplored(set(by_id))):
                study.enqueue_trial(params)  # the next ask is that point, told like any other
            t = study.ask()
            self.asked += 1
            overrides = self._sample(t)
            trial = self.make_trial(overrides, t.number)
            if not trial.kept:  # the construction failed: a bug, never a silent drop
                raise RuntimeError(f"search proposed {overrides} over budget ({trial.reason})")
            t.set_user_attr("trial_id", trial.trial_id)
            t.set_user_attr("overrides", overrides)
            earlier = by_id.get(trial.trial_id)
            if earlier is None:
                self.repeats = 0
                return trial
            self.repeats += 1  # a repeat: told what the earlier proposal got, nothing trained
            t.set_user_attr("repeat_of", earlier.number)
            if earlier.state.name == "COMPLETE":
                study.tell(t, earlier.values)
            else:
                study.tell(t, state=_state("FAIL" if earlier.state.name == "RUNNING" else earlier.state.name))
        return None

    def _unexplored(self, known: set[str]) -> dict[str, Any] | None:
        """Optuna's params for a point (feasible, drawn with the search's seed) whose trial no
        proposal has had, or None when 100 draws found none (the space is nearly exhausted)."""
        rng = random.Random(self.settings["seed"] * 1_000_003 + self.asked)
        for _ in range(100):
            point = rng.choice(self.feasible.points) if self.feasible else ()
            quantiles = iter(self.feasible.encode(point) if self.feasible else [])
            arch = self.feasible.values(point) if self.feasible else {}
            params: dict[str, Any] = {}
            overrides: dict[str, Any] = {}
            for d in self.domains:
                if d.key in self.arch:
                    params[d.key], overrides[d.key] = next(quantiles), arch[d.key]
                    continue
                if d.discrete:
                    value = rng.choice(list(d.values))
                else:
                    value = math.exp(rng.uniform(math.log(d.lo), math.log(d.hi))) if d.log else rng.uniform(d.lo, d.hi)
                params[d.key] = overrides[d.key] = value
            if self.make_trial(overrides, -1).trial_id not in known:
                return params
        return None

    def _fill(self, have: list[Trial]) -> list[Trial]:
        s, out = self.settings, list(have)
        while len(out) < s["parallel"] and self.trained() + len(out) < s["trials"] and self.repeats < MAX_REPEATS:
            trial = self._ask()
            if trial is None:
                break
            out.append(trial)
        return out[len(have):]

    def first(self) -> list[Trial]:
        """The proposals a killed search left in flight (they run again, from their checkpoints),
        then new ones up to ``parallel``."""
        again = [self.make_trial(dict(t.user_attrs["overrides"]), t.number) for t in self.running()]
        return again + self._fill(again)

    def more(self, results: Mapping[str, Mapping[str, Any]]) -> list[Trial]:
        """Tell the in-flight proposals that have a result; propose up to ``parallel`` again."""
        still = []
        for t in self.running():
            result = results.get(t.user_attrs["trial_id"])
            if result is None:
                still.append(self.make_trial(dict(t.user_attrs["overrides"]), t.number))
            else:
                self.tell(t, self.make_trial(dict(t.user_attrs["overrides"]), t.number), result)
        return self._fill(still)

    def tell(self, frozen: Any, trial: Trial, result: Mapping[str, Any]) -> None:
        status = result.get("status")
        if status == "completed":
            values = [_value(name, trial, result) for name, _ in self.settings["objectives"]]
            if all(v is not None for v in values):
                self.study().tell(frozen.number, values)
                return
        if status == "stopped_early" and len(self.settings["objectives"]) == 1:
            value, step = _value(self.settings["objectives"][0][0], trial, result), result.get("epochs_completed")
            if value is not None and isinstance(step, int):  # TPE ranks pruned trials by their last report
                import optuna  # heavy: see sampler()

                optuna.trial.Trial(self.study(), frozen._trial_id).report(value, step)
            self.study().tell(frozen.number, state=_state("PRUNED"))  # what it is: stopped by the rule
            return
        self.study().tell(frozen.number, state=_state("FAIL"))

    def later(self, results: Mapping[str, Mapping[str, Any]]) -> None:
        """Trials told as pruned at a rung that a driver then promoted and completed: each is added
        once more, complete with its final values (``promoted_of``), so the sampler learns them."""
        import optuna  # heavy: see sampler()

        frozen = self._frozen()
        done = {t.user_attrs.get("trial_id") for t in frozen if "promoted_of" in t.user_attrs}
        for t in frozen:
            tid = t.user_attrs.get("trial_id")
            result = results.get(tid) if tid and t.state.name == "PRUNED" and tid not in done else None
            if result is None or result.get("status") != "completed":
                continue
            trial = self.make_trial(dict(t.user_attrs["overrides"]), t.number)
            values = [_value(name, trial, result) for name, _ in self.settings["objectives"]]
            if all(v is not None for v in values):
                self.study().add_trial(optuna.trial.create_trial(
                    params=t.params, distributions=t.distributions, values=values,
                    user_attrs={"trial_id": tid, "overrides": t.user_attrs["overrides"], "promoted_of": t.number}))
                done.add(tid)

    def best(self) -> tuple[float, str] | None:
        """(value, trial id) of the best told trial (the first objective)."""
        mode = self.settings["objectives"][0][1]
        done = [t for t in self._frozen() if t.state.name == "COMPLETE" and "repeat_of" not in t.user_attrs]
        if not done:
            return None
        pick = max if mode == "max" else min
        t = pick(done, key=lambda t: t.values[0])
        return t.values[0], t.user_attrs["trial_id"]


def _value(name: str, trial: Trial, result: Mapping[str, Any]) -> float | None:
    if name in COUNTS:
        return float(trial.params if name == "params" else trial.macs)
    value = result.get(name)
    return float(value) if isinstance(value, (int, float)) else None


def _state(name: str) -> Any:
    from optuna.trial import TrialState  # heavy: see sampler()

    return TrialState[name]
