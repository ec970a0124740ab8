"""Which proposer runs a spec: the fixed expansion (grid / vary / trials) or a search over
``search.space``, built here from the sweep language's own pieces: a proposal becomes a trial by
the same resolve, budget and id rules as a grid point, and the budget oracle the search's
feasible set is counted with is the one ``plan`` drops and fills by."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from configcheck import ConfigError
from orchestrator.search.feasible import enumerate_feasible
from orchestrator.search.propose import FixedExpansion, Proposer
from orchestrator.search.sampled import SampledSearch
from orchestrator.search.space import Domain, parse_space
from orchestrator.sweep.expand import _budget, _Expander, expand
from orchestrator.sweep.sections import search_metric
from orchestrator.sweep.size import MAX_TRIALS
from orchestrator.sweep.spec import SpecError, SweepSpec
from orchestrator.sweep.trial import Trial
from orchestrator.sweep.trialconfig import resolve_section, trial_id

SEARCHABLE = ("model", "data", "train")  # sections a search may vary (resources are not a trial's identity)


def proposer_for(spec: SweepSpec, max_trials: int | None = MAX_TRIALS, journal: Path | None = None) -> Proposer:
    """The search policy that proposes this spec's trials. ``journal``: where a search keeps its
    sampler's state (the sweep dir's ``search/journal.log``); None keeps it in memory (plan, dry run)."""
    if spec.search.get("algorithm", "grid") == "grid":
        return FixedExpansion(lambda: expand(spec, max_trials))
    return Search(spec).proposer(journal)


class Search:
    """A search spec's space, checked against the base and the budget before anything is written."""

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        try:
            self.domains = parse_space(spec.search["space"])
        except ConfigError as err:
            raise SpecError.of(spec.file, err) from None
        self.ex = _Expander(spec)
        fill = ".".join(spec.budget.fill) if spec.budget.fill else None
        for d in self.domains:
            path = f"search.space.{d.key}"
            if d.key.split(".", 1)[0] not in SEARCHABLE:
                raise SpecError(spec.file, path, f"a search varies keys of {', '.join(SEARCHABLE)}")
            if d.key == fill:
                raise SpecError(spec.file, path, f"is also budget.fill; fill chooses {fill} for each proposal")
            if d.key.startswith("model.") and not d.discrete:
                raise SpecError(spec.file, path, "a model key takes choices or an int range: the budget is counted "
                                "over every value")
            if not d.key.startswith("model."):  # every value must make a valid trial on its own
                for j, v in enumerate(d.values if d.discrete else (d.lo, d.hi)):
                    self._check(d, v, f"{path}[{j}]" if d.kind == "choice" else path)
        self.arch = tuple(d for d in self.domains if d.key.startswith("model."))
        try:
            self.feasible = enumerate_feasible(self.arch, self.fits) if self.arch else None
        except ConfigError as err:
            raise SpecError.of(spec.file, err) from None
        base = self.make({}, -1) if self.feasible is None else None
        if base is not None and not base.kept:
            raise SpecError(spec.file, "search.space", f"varies no model key and the base model is over the budget "
                            f"({base.reason})")

    def _check(self, d: Domain, value: Any, path: str) -> None:
        section = d.key.split(".", 1)[0]
        try:
            resolve_section(section, self.ex.raw(section, [(d.key, value)]))
        except ConfigError as err:
            raise SpecError(self.spec.file, path, f"{value!r} is not a valid {d.key}: {err.path}: {err.message}") from None

    def fits(self, assignment: dict[str, Any]) -> bool:
        """Whether the base model with ``assignment`` (model keys) is valid and within budget."""
        try:
            model = resolve_section("model", self.ex.raw("model", list(assignment.items())))
        except ConfigError:
            return False
        return not _budget(self.spec, model, "search")[3]

    def make(self, overrides: dict[str, Any], number: int) -> Trial:
        """The trial for one proposal: resolved, budgeted and named like any grid point."""
        source = f"search[{number}]"
        cfg = dict(self.ex.base)
        by_section: dict[str, list[tuple[str, Any]]] = {}
        for key, value in overrides.items():
            by_section.setdefault(key.split(".", 1)[0], []).append((key, value))
        for name, items in by_section.items():
            cfg[name] = self.ex.section(name, items, source, overrides)
        cfg["model"], params, macs, reason = _budget(self.spec, cfg["model"], source)
        return Trial(trial_id(cfg, self.ex.memo), cfg, params, not reason, reason, source, overrides, macs)

    def settings(self) -> dict[str, Any]:
        s = dict(self.spec.search)
        if not s.get("objectives"):
            has_val = bool(self.ex.base["data"]["val_size"])
            metric, mode, _ = search_metric(s, has_val)
            s["objectives"] = [[metric, mode]]
        return s

    def proposer(self, journal: Path | None) -> SampledSearch:
        return SampledSearch(self.settings(), self.domains, self.feasible, self.make, journal)

    def points(self) -> int | None:
        """Feasible points of the whole space (None when a key is continuous)."""
        n = len(self.feasible.points) if self.feasible else 1
        for d in self.domains:
            if d.key.startswith("model."):
                continue
            if not d.discrete:
                return None
            n *= len(d.values)
        return n
