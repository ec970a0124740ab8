"""Expand a SweepSpec into trials: grid x vary x trials x repeat, budget filter/fill, stable ids."""

from __future__ import annotations

import gc
import itertools
from typing import Any

from configcheck import ConfigError
from model import get_family, resolve_config
from orchestrator.sweep.size import MAX_TRIALS, check_size
from orchestrator.sweep.spec import SpecError, SweepSpec, parse_override
from orchestrator.sweep.trial import Trial
from orchestrator.sweep.trialconfig import get_dotted, resolve_section, resolve_trial, set_dotted, trial_id

FILL_LIMIT = 1 << 16  # no sane width, depth or block count is larger; bounds the doubling search


def _locate(err: ConfigError, source: str, overrides: dict[str, Any], spec: SweepSpec) -> str:
    """Map an error inside a merged trial back to the spec entry that caused it."""
    for key, value in overrides.items():
        if err.path == key or err.path.startswith((key + ".", key + "[")):
            suffix = err.path[len(key):]
            if source == "grid":
                # the same object (a NaN is not == itself), else an equal one
                j = next((j for j, v in enumerate(dict(spec.grid)[key]) if v is value),
                         next((j for j, v in enumerate(dict(spec.grid)[key]) if v == value), 0))
                where = f"grid.{key}[{j}]{suffix}"
            else:
                where = f"{source}{suffix}" if source.startswith("vary") else f"{source}.{key}{suffix}"
            if len(overrides) > 1:
                others = ", ".join(f"{k}={v!r}" for k, v in overrides.items() if k != key)
                return f"{where} (with {others})"
            return where
    combo = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
    return f"{source} ({combo}) -> {err.path}" if combo else f"base.{err.path}"


Counts = tuple[int, int]  # (params, macs)


def fill_search(model_cfg: dict[str, Any], key: str, max_params: int | None,
                max_macs: int | None = None) -> tuple[int | None, Counts | None]:
    """Largest integer value of ``key`` whose params and MACs both fit their limits (None: no
    limit). Returns (value or None, (params, macs) at it, or at 1 when nothing fits; None when 1
    is invalid). Both counts are monotone in every fillable key, so double then bisect; an
    invalid value (e.g. too many layers for the pool size) counts as not fitting."""
    family = get_family(model_cfg)

    def counts_at(v: int) -> Counts | None:
        try:
            cfg = resolve_config({**model_cfg, key: v})
        except ConfigError:
            return None
        return family.count(cfg), family.macs(cfg)

    def fits(c: Counts | None) -> bool:
        return c is not None and (max_params is None or c[0] <= max_params) and (max_macs is None or c[1] <= max_macs)

    first = counts_at(1)
    if not fits(first):
        return None, first
    lo, lo_counts, hi = 1, first, 2
    while hi <= FILL_LIMIT:
        c = counts_at(hi)
        if not fits(c):
            break
        lo, lo_counts, hi = hi, c, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        c = counts_at(mid)
        if fits(c):
            lo, lo_counts = mid, c
        else:
            hi = mid
    return lo, lo_counts


def _crossed(spec: SweepSpec, params: int, macs: int) -> list[tuple[int, int, str]]:
    """(count, limit, unit) for every budget limit the model is over (empty when it fits)."""
    b = spec.budget
    return [(n, limit, unit) for n, limit, unit in ((params, b.max_params, "params"), (macs, b.max_macs, "MACs"))
            if limit is not None and n > limit]


def _check_fill(spec: SweepSpec) -> None:
    parts = spec.budget.fill
    if parts is None:
        return
    key = ".".join(parts)
    for section, entries in (("grid", spec.grid), ("vary", spec.vary)):
        if key in dict(entries):
            raise SpecError(spec.file, f"{section}.{key}", f"is also budget.fill; fill chooses {key}, so do not vary it")
    # An explicit trial may set the fill key: that trial keeps its value and is only filtered.


def _fill(spec: SweepSpec, model: dict[str, Any], source: str) -> tuple[dict[str, Any], int, int, str]:
    assert spec.budget.fill is not None
    family = get_family(model)
    section, key = spec.budget.fill[0], ".".join(spec.budget.fill[1:])
    allowed = ", ".join(f"model.{k}" for k in family.fillable) or "none (use max_params alone to filter)"
    if section != "model" or key not in family.fillable:
        raise SpecError(spec.file, "budget.fill", f"{'.'.join(spec.budget.fill)} is not an integer model key "
                        f"the count grows with; allowed for family {family.name}: {allowed}")
    if isinstance(model[key], list):
        raise SpecError(spec.file, f"base.model.{key}", f"is a per-layer list but budget.fill needs one integer "
                        f"to search (in {source})")
    value, counts = fill_search(model, key, spec.budget.max_params, spec.budget.max_macs)
    if value is None:
        if counts is None:
            return model, 0, 0, f"no valid model.{key} >= 1"
        # the dropped row shows the value its count was taken at, not the base's default
        return resolve_config({**model, key: 1}), *counts, f"even model.{key}=1 gives " + "; ".join(
            f"{n:,} {unit} > budget {limit:,}" for n, limit, unit in _crossed(spec, *counts))
    return resolve_config({**model, key: value}), *counts, ""


def _budget(spec: SweepSpec, model: dict[str, Any], source: str,
            fill: bool = True) -> tuple[dict[str, Any], int, int, str]:
    """(model section after fill, params, macs, reason dropped or "")."""
    if spec.budget.fill is not None and fill:
        return _fill(spec, model, source)
    family = get_family(model)
    params, macs = family.count(model), family.macs(model)
    crossed = _crossed(spec, params, macs)  # the counts are in the plan's columns: name the limits crossed
    return model, params, macs, "over budget " + " and ".join(f"{limit:,} {unit}" for _, limit, unit in crossed) if crossed else ""


def _grid_groups(grid: tuple[tuple[str, tuple[Any, ...]], ...]) -> list[tuple[str, list[tuple[str, tuple[Any, ...]]]]] | None:
    """The grid's keys grouped by section, or None when a section's keys are not adjacent (then
    a product over sections would not keep the spec's product order)."""
    groups: list[tuple[str, list[tuple[str, tuple[Any, ...]]]]] = []
    for key, values in grid:
        name = key.split(".", 1)[0]
        if groups and groups[-1][0] == name:
            groups[-1][1].append((key, values))
        elif any(g[0] == name for g in groups):
            return None
        else:
            groups.append((name, [(key, values)]))
    return groups


class _Expander:
    """One expansion's caches. Each section resolves from its own keys alone, and a grid repeats
    every section override across all values of the other keys: so resolve (and budget the model)
    once per distinct section override. Trials then share section dicts, which also lets
    trial_id memoize each section's canonical text."""

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        try:
            self.base = resolve_trial(spec.base)
        except ConfigError as err:
            raise SpecError.of(spec.file, err, "base") from None
        _check_fill(spec)
        self.fill_key = ".".join(spec.budget.fill) if spec.budget.fill is not None else None
        self.base_seed = get_dotted(self.base, ("train", "seed")) or 0
        self.sections: dict[tuple[str, str], dict[str, Any]] = {}
        # id(model section) -> (that section, its budget verdict). Holding the section keeps its
        # id from being reused by a later dict (grid sections are freed once the grid is done).
        self.models: dict[int, tuple[dict[str, Any], tuple[dict[str, Any], int, int, str]]] = {}
        self.memo: dict[int, tuple[Any, str, str]] = {}
        self.seen: set[str] = set()
        self.trials: list[Trial] = []

    def section(self, name: str, items: list[tuple[str, Any]], source: str, overrides: dict[str, Any]) -> dict[str, Any]:
        cache_key = (name, repr(items))
        section = self.sections.get(cache_key)
        if section is None:
            section = self.sections[cache_key] = self.resolve(name, self.raw(name, items), source, overrides)
        return section

    def raw(self, name: str, items: list[tuple[str, Any]]) -> Any:
        """The base's raw ``name`` section with ``items`` (dotted keys) set in it."""
        base = self.spec.base.get(name)
        if (base is None or isinstance(base, dict)) and all(k.count(".") == 1 for k, _ in items):
            # the common case (model.channels): one merge instead of a dotted set per key
            return {**(base or {}), **{k.split(".", 1)[1]: v for k, v in items}}
        raw = self.spec.base
        for key, value in items:
            raw = set_dotted(raw, tuple(key.split(".")), value)
        return raw.get(name)

    def resolve(self, name: str, raw: Any, source: str, overrides: dict[str, Any]) -> dict[str, Any]:
        try:
            return resolve_section(name, raw)
        except ConfigError as err:
            raise SpecError(self.spec.file, _locate(err, source, overrides, self.spec), err.message) from None

    def grid_options(self, name: str, entries: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[str, dict, dict]]:
        """(name, resolved section, its overrides) for every combination of one section's grid keys.
        Each combination is distinct, so they skip the section cache."""
        keys = [k for k, _ in entries]
        out = []
        for combo in itertools.product(*(values for _, values in entries)):
            ov = dict(zip(keys, combo))
            out.append((name, self.resolve(name, self.raw(name, list(ov.items())), "grid", ov), ov))
        return out

    def emit(self, cfg: dict[str, Any], source: str, overrides: dict[str, Any]) -> None:
        model = cfg["model"]
        hit = self.models.get(id(model))
        if hit is None or hit[0] is not model:
            explicit = self.fill_key is not None and self.fill_key in overrides
            hit = self.models[id(model)] = (model, _budget(self.spec, model, source, fill=not explicit))
        model_cfg, params, macs, reason = hit[1]
        cfg["model"] = model_cfg
        for r in range(self.spec.repeat):
            seeded, seeded_overrides = cfg, overrides
            if self.spec.repeat > 1:
                seeded = {**cfg, "train": {**cfg["train"], "seed": self.base_seed + r}}
                seeded_overrides = {**overrides, "train.seed": self.base_seed + r}
            tid = trial_id(seeded, self.memo)
            if tid in self.seen:
                continue
            self.seen.add(tid)
            self.trials.append(Trial(tid, seeded, params, not reason, reason, source, seeded_overrides, macs))

    def point(self, source: str, overrides: dict[str, Any]) -> None:
        by_section: dict[str, list[tuple[str, Any]]] = {}
        for key, value in overrides.items():
            by_section.setdefault(key.split(".", 1)[0], []).append((key, value))
        cfg = dict(self.base)
        for name, items in by_section.items():
            cfg[name] = self.section(name, items, source, overrides)
        self.emit(cfg, source, overrides)

    def grid(self) -> None:
        groups = _grid_groups(self.spec.grid)
        if groups is None:
            keys = [k for k, _ in self.spec.grid]
            for combo in itertools.product(*(values for _, values in self.spec.grid)):
                self.point("grid", dict(zip(keys, combo)))
            return
        # The product over sections of each section's own product is the grid in the same order,
        # and every section is resolved before the (large) outer loop.
        choices = [self.grid_options(name, entries) for name, entries in groups]
        base = self.base
        for picks in itertools.product(*choices):
            cfg = dict(base)
            overrides: dict[str, Any] = {}
            for name, section, ov in picks:
                cfg[name] = section
                overrides.update(ov)
            self.emit(cfg, "grid", overrides)


def expand(spec: SweepSpec, max_trials: int | None = MAX_TRIALS) -> list[Trial]:
    check_size(spec, max_trials)
    # Expansion allocates only acyclic dicts and tuples, hundreds of thousands for a big grid; the
    # cyclic collector would rescan them over and over (a quarter of the time) and find nothing.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _expand(spec)
    finally:
        if enabled:
            gc.enable()


def _expand(spec: SweepSpec) -> list[Trial]:
    ex = _Expander(spec)
    if spec.grid:
        ex.grid()
    for key, values in spec.vary:
        for j, v in enumerate(values):
            ex.point(f"vary.{key}[{j}]", {key: v})
    for i, t in enumerate(spec.trials):
        ex.point(f"trials[{i}]", dict(t))
    if not (spec.grid or spec.vary or spec.trials):
        ex.point("base", {})
    return ex.trials


def shadowed(sets: tuple[str, ...] | list[str], trials: list[Trial]) -> list[str]:
    """Warnings for ``--set`` keys that some trials override with their own grid/vary/trials value
    (the sweep's entries win over the base, so those trials ignore the --set)."""
    out = []
    for text in sets:
        key = parse_override(text)[0]
        hit = [t for t in trials if any(k == key or k.startswith(key + ".") or key.startswith(k + ".")
                                        for k in t.overrides)]
        if hit:
            sources = {t.source.split("[")[0].split(".")[0] for t in hit}
            fix = " or ".join(f"--set {s}.{key}=[...]" for s in ("grid", "vary") if s in sources)
            out.append(f"warning: --set {key} is ignored by {len(hit)} of {len(trials)} trials, which set "
                       f"{key} themselves (grid/vary/trials win over the base), e.g. trial {hit[0].trial_id}"
                       + (f"; to change the sweep's own values use {fix}" if fix else ""))
    return out
