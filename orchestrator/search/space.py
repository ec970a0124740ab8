"""A search space: the domain of each dotted key a search proposes (``search.space``).

- a list: the choices (``model.kernel_size: [3, 5, 7]``), tried as they are written;
- ``{int: [lo, hi]}`` (optional ``step``): every integer lo, lo+step, ..., hi;
- ``{float: [lo, hi]}`` (optional ``log: true``): a real interval, sampled on a log scale when asked.

Validated strictly, one line per error (``ConfigError``). Imports nothing of the orchestrator."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from configcheck import ConfigError, type_name

MAX_VALUES = 100_000  # one key's discrete domain; beyond that, use a float range


@dataclass(frozen=True)
class Domain:
    key: str
    kind: str  # "choice", "int" or "float"
    values: tuple[Any, ...] = ()  # choice and int: every value, in order
    lo: float = 0.0  # float: the interval
    hi: float = 0.0
    log: bool = False

    @property
    def discrete(self) -> bool:
        return self.kind != "float"

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(repr(v) for v in self.values)
        if self.kind == "int":
            step = self.values[1] - self.values[0] if len(self.values) > 1 else 1
            return f"integers {self.values[0]}..{self.values[-1]}" + (f" step {step}" if step != 1 else "")
        return f"reals {self.lo:g}..{self.hi:g}" + (" (log scale)" if self.log else "")

    def pick(self, u: float) -> Any:
        """The value at quantile ``u`` in [0, 1) of the float domain."""
        if self.log:
            return math.exp(math.log(self.lo) + u * (math.log(self.hi) - math.log(self.lo)))
        return self.lo + u * (self.hi - self.lo)


def _number(value: Any, path: str, integral: bool) -> float:
    ok = isinstance(value, int) if integral else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or (isinstance(value, float) and not math.isfinite(value)):
        raise ConfigError(path, f"expected {'an integer' if integral else 'a number'}, got {value!r}")
    return value


def parse_domain(key: str, raw: Any, path: str) -> Domain:
    if isinstance(raw, list):
        if not raw:
            raise ConfigError(path, "is an empty list of choices; give at least one value")
        seen: list[Any] = []
        for i, v in enumerate(raw):
            if isinstance(v, (dict, list)) or v is None:
                raise ConfigError(f"{path}[{i}]", f"expected a plain value (number, string, bool), got {type_name(v)}")
            if any(type(v) is type(s) and v == s for s in seen):
                raise ConfigError(f"{path}[{i}]", f"repeats the choice {v!r}")
            seen.append(v)
        return Domain(key, "choice", tuple(raw))
    if not isinstance(raw, dict):
        raise ConfigError(path, "expected a list of choices, {int: [lo, hi]} (optional step) or {float: [lo, hi]} "
                          f"(optional log: true), got {raw!r}")
    kinds = [k for k in ("int", "float") if k in raw]
    extra = sorted(set(raw) - {"int", "float", "step", "log"})
    if len(kinds) != 1 or extra:
        raise ConfigError(path, f"takes exactly one of int, float (and step for int, log for float); got keys "
                          f"{', '.join(map(str, raw))}")
    kind = kinds[0]
    bounds = raw[kind]
    if not (isinstance(bounds, list) and len(bounds) == 2):
        raise ConfigError(f"{path}.{kind}", f"expected [lo, hi], got {bounds!r}")
    lo, hi = (_number(b, f"{path}.{kind}[{i}]", kind == "int") for i, b in enumerate(bounds))
    if lo > hi:
        raise ConfigError(f"{path}.{kind}", f"lo {lo} is above hi {hi}")
    if kind == "int":
        if "log" in raw:
            raise ConfigError(f"{path}.log", "is for float ranges; an int range takes step")
        step = _number(raw.get("step", 1), f"{path}.step", True)
        if step < 1:
            raise ConfigError(f"{path}.step", f"must be >= 1, got {step}")
        if (hi - lo) // step + 1 > MAX_VALUES:
            raise ConfigError(path, f"has {(hi - lo) // step + 1:,} integers, more than {MAX_VALUES:,}; use a float range")
        return Domain(key, "int", tuple(range(int(lo), int(hi) + 1, int(step))))
    if "step" in raw:
        raise ConfigError(f"{path}.step", "is for int ranges; a float range is continuous")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{path}.log", f"expected true or false, got {log!r}")
    if log and lo <= 0:
        raise ConfigError(f"{path}.float", f"a log-scale range needs lo > 0, got {lo}")
    if lo == hi:
        raise ConfigError(f"{path}.float", f"is the single value {lo}; write it in base instead")
    return Domain(key, "float", lo=float(lo), hi=float(hi), log=log)


def parse_space(raw: Any, path: str = "search.space") -> tuple[Domain, ...]:
    """Every key's domain, in the order written (which is the order proposals choose them in)."""
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(path, "expected a non-empty mapping {dotted.key: domain}")
    out = []
    for key, value in raw.items():
        if not isinstance(key, str) or "." not in key:
            raise ConfigError(f"{path}.{key}", "expected a dotted key such as model.channels or train.optimizer.lr")
        out.append(parse_domain(key, value, f"{path}.{key}"))
    return tuple(out)


def as_raw(domains: tuple[Domain, ...]) -> dict[str, Any]:
    """The space as plain data again (for the sweep dir's record of the search)."""
    out: dict[str, Any] = {}
    for d in domains:
        if d.kind == "choice":
            out[d.key] = list(d.values)
        elif d.kind == "int":
            step = d.values[1] - d.values[0] if len(d.values) > 1 else 1
            out[d.key] = {"int": [d.values[0], d.values[-1]], **({"step": step} if step != 1 else {})}
        else:
            out[d.key] = {"float": [d.lo, d.hi], **({"log": True} if d.log else {})}
    return out
