"""Expand a SweepSpec into trials: grid x vary x trials x repeat, budget filter/fill, stable ids."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from model import get_family, resolve_config
from model.checks import ConfigError
from orchestrator.config import get_dotted, resolve_section, resolve_trial, set_dotted, trial_id
from orchestrator.spec import SpecError, SweepSpec

FILL_LIMIT = 1 << 16  # no sane width, depth or block count is larger; bounds the doubling search


@dataclass(frozen=True)
class Trial:
    trial_id: str
    config: dict[str, Any]  # the full resolved nested config
    params: int
    kept: bool
    reason: str  # why dropped ("" when kept)
    source: str  # where in the spec it came from: base, grid, vary.KEY[j], trials[i]
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted key -> value, as expanded

    def to_json(self) -> dict[str, Any]:
        return {"trial_id": self.trial_id, "params": self.params, "kept": self.kept,
                "reason": self.reason or None, "source": self.source,
                "overrides": self.overrides, "config": self.config}


def _points(spec: SweepSpec) -> Iterator[tuple[str, dict[str, Any]]]:
    if spec.grid:
        keys = [k for k, _ in spec.grid]
        for combo in itertools.product(*(values for _, values in spec.grid)):
            yield "grid", dict(zip(keys, combo))
    for key, values in spec.vary:
        for j, v in enumerate(values):
            yield f"vary.{key}[{j}]", {key: v}
    for i, t in enumerate(spec.trials):
        yield f"trials[{i}]", dict(t)
    if not (spec.grid or spec.vary or spec.trials):
        yield "base", {}


def _locate(err: ConfigError, source: str, overrides: dict[str, Any], spec: SweepSpec) -> str:
    """Map an error inside a merged trial back to the spec entry that caused it."""
    for key, value in overrides.items():
        if err.path == key or err.path.startswith((key + ".", key + "[")):
            suffix = err.path[len(key):]
            if source == "grid":
                j = next(j for j, v in enumerate(dict(spec.grid)[key]) if v == value)
                where = f"grid.{key}[{j}]{suffix}"
            else:
                where = f"{source}{suffix}" if source.startswith("vary") else f"{source}.{key}{suffix}"
            if len(overrides) > 1:
                others = ", ".join(f"{k}={v!r}" for k, v in overrides.items() if k != key)
                return f"{where} (with {others})"
            return where
    combo = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
    return f"{source} ({combo}) -> {err.path}" if combo else f"base.{err.path}"


def fill_search(model_cfg: dict[str, Any], key: str, max_params: int) -> tuple[int | None, int]:
    """Largest integer value of ``key`` whose count fits. Returns (value or None, params at it or
    at 1 when nothing fits). The count is monotone in every fillable key, so double then bisect;
    an invalid value (e.g. too many layers for the pool size) counts as not fitting."""
    family = get_family(model_cfg)

    def count_at(v: int) -> int | None:
        try:
            return family.count(resolve_config({**model_cfg, key: v}))
        except ConfigError:
            return None

    first = count_at(1)
    if first is None or first > max_params:
        return None, first if first is not None else 0
    lo, lo_count, hi = 1, first, 2
    while hi <= FILL_LIMIT:
        c = count_at(hi)
        if c is None or c > max_params:
            break
        lo, lo_count, hi = hi, c, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        c = count_at(mid)
        if c is not None and c <= max_params:
            lo, lo_count = mid, c
        else:
            hi = mid
    return lo, lo_count


def _check_fill(spec: SweepSpec) -> None:
    parts = spec.budget.fill
    if parts is None:
        return
    key = ".".join(parts)
    for section, entries in (("grid", spec.grid), ("vary", spec.vary)):
        if key in dict(entries):
            raise SpecError(spec.file, f"{section}.{key}", f"is also budget.fill; fill chooses {key}, so do not vary it")
    # An explicit trial may set the fill key: that trial keeps its value and is only filtered.


def _fill(spec: SweepSpec, cfg: dict[str, Any], source: str) -> tuple[dict[str, Any], int, str]:
    assert spec.budget.fill is not None and spec.budget.max_params is not None
    family = get_family(cfg["model"])
    section, key = spec.budget.fill[0], ".".join(spec.budget.fill[1:])
    allowed = ", ".join(f"model.{k}" for k in family.fillable) or "none (use max_params alone to filter)"
    if section != "model" or key not in family.fillable:
        raise SpecError(spec.file, "budget.fill", f"{'.'.join(spec.budget.fill)} is not an integer model key "
                        f"the count grows with; allowed for family {family.name}: {allowed}")
    if isinstance(cfg["model"][key], list):
        raise SpecError(spec.file, f"base.model.{key}", f"is a per-layer list but budget.fill needs one integer "
                        f"to search (in {source})")
    value, params = fill_search(cfg["model"], key, spec.budget.max_params)
    if value is None:
        return cfg, params, (f"even model.{key}=1 gives {params:,} params > budget {spec.budget.max_params:,}"
                             if params else f"no valid model.{key} >= 1")
    model = resolve_config({**cfg["model"], key: value})
    return {**cfg, "model": model}, params, ""


def expand(spec: SweepSpec) -> list[Trial]:
    try:
        base = resolve_trial(spec.base)
    except ConfigError as err:
        raise SpecError.of(spec.file, err, "base") from None
    _check_fill(spec)
    trials: list[Trial] = []
    seen: set[str] = set()
    base_seed = get_dotted(base, ("train", "seed")) or 0
    # Each section resolves from its own keys alone, and a grid repeats every section override
    # across all values of the other keys: resolve (and budget the model) once per distinct
    # section override. Trials then share section dicts, which also lets trial_id memoize.
    sections: dict[tuple[str, str], dict[str, Any]] = {}
    models: dict[int, tuple[dict[str, Any], int, str]] = {}
    memo: dict[int, tuple[Any, str]] = {}
    for source, overrides in _points(spec):
        by_section: dict[str, list[tuple[str, Any]]] = {}
        for key, value in overrides.items():
            by_section.setdefault(key.split(".", 1)[0], []).append((key, value))
        cfg = dict(base)
        for name, items in by_section.items():
            cache_key = (name, repr(items))
            section = sections.get(cache_key)
            if section is None:
                raw = spec.base
                for key, value in items:
                    raw = set_dotted(raw, tuple(key.split(".")), value)
                try:
                    section = resolve_section(name, raw.get(name))
                except ConfigError as err:
                    raise SpecError(spec.file, _locate(err, source, overrides, spec), err.message) from None
                sections[cache_key] = section
            cfg[name] = section
        budgeted = models.get(id(cfg["model"]))
        if budgeted is None:
            explicit = spec.budget.fill is not None and ".".join(spec.budget.fill) in overrides
            budgeted = models[id(cfg["model"])] = _budget(spec, cfg, source, fill=not explicit)
        model_cfg, params, reason = budgeted
        cfg["model"] = model_cfg
        for r in range(spec.repeat):
            seeded, seeded_overrides = cfg, overrides
            if spec.repeat > 1:
                seeded = {**cfg, "train": {**cfg["train"], "seed": base_seed + r}}
                seeded_overrides = {**overrides, "train.seed": base_seed + r}
            tid = trial_id(seeded, memo)
            if tid in seen:
                continue
            seen.add(tid)
            trials.append(Trial(tid, seeded, params, not reason, reason, source, seeded_overrides))
    return trials


def _budget(spec: SweepSpec, cfg: dict[str, Any], source: str, fill: bool = True) -> tuple[dict[str, Any], int, str]:
    """(model section after fill, params, reason dropped or "")."""
    if spec.budget.fill is not None and fill:
        filled, params, reason = _fill(spec, cfg, source)
        return filled["model"], params, reason
    params = get_family(cfg["model"]).count(cfg["model"])
    if spec.budget.max_params is not None and params > spec.budget.max_params:
        return cfg["model"], params, f"over budget {spec.budget.max_params:,}"
    return cfg["model"], params, ""
