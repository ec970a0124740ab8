"""Proposals that fit the budget by construction.

The budget (params, MACs) depends on the architectural keys only, and those are discrete, so
the feasible set is enumerated exactly once, from the closed-form counts (an oracle handed in by
the sweep language), and kept as a trie of feasible prefixes. A proposal chooses the keys in the
space's order; each architectural key chooses among the values that still leave a feasible
completion (``allowed``), so nothing is ever proposed over budget and nothing is thrown away.

The sampler sees each architectural key as a quantile u in [0, 1) of the values allowed at that
point (a fixed distribution, so TPE, NSGA-II and the journal see the same parameter in every
trial, however the budget narrows it); ``decode`` maps the u's to values. Imports nothing of the
orchestrator."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from configcheck import ConfigError
from orchestrator.search.space import Domain

MAX_POINTS = 200_000  # architectural combinations counted up front (the counts are ~10-100 us each)


@dataclass
class Feasible:
    """The feasible architectural points of a space: ``domains`` (in the space's order), ``total``
    (points in their product), ``points`` (those within budget, as value indices) and the trie of
    their prefixes (prefix of indices -> the next key's feasible indices, ascending)."""

    domains: tuple[Domain, ...]
    total: int
    points: list[tuple[int, ...]] = field(default_factory=list)
    nexts: dict[tuple[int, ...], list[int]] = field(default_factory=dict)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(d.key for d in self.domains)

    @property
    def rate(self) -> float:
        """The share of the raw product within budget: what naive sampling would hit."""
        return len(self.points) / self.total if self.total else 1.0

    def allowed(self, prefix: tuple[int, ...]) -> list[int]:
        """The indices of key ``len(prefix)``'s values that leave a feasible completion."""
        return self.nexts.get(prefix, [])

    def decode(self, quantiles: Sequence[float]) -> dict[str, Any]:
        """The feasible point the quantiles pick, key by key (u = 0: the first allowed value)."""
        prefix: tuple[int, ...] = ()
        for u in quantiles:
            allowed = self.allowed(prefix)
            prefix += (allowed[min(int(u * len(allowed)), len(allowed) - 1)],)
        return {d.key: d.values[i] for d, i in zip(self.domains, prefix)}

    def encode(self, point: tuple[int, ...]) -> list[float]:
        """The quantiles ``decode`` maps to ``point`` (each the middle of its value's slot)."""
        out: list[float] = []
        for k in range(len(point)):
            allowed = self.allowed(point[:k])
            out.append((allowed.index(point[k]) + 0.5) / len(allowed))
        return out

    def values(self, point: tuple[int, ...]) -> dict[str, Any]:
        return {d.key: d.values[i] for d, i in zip(self.domains, point)}


def enumerate_feasible(domains: Sequence[Domain], fits: Callable[[dict[str, Any]], bool]) -> Feasible:
    """Count every combination of the architectural ``domains`` (all discrete) with ``fits`` (the
    sweep's budget check of one assignment {key: value}; False for an invalid model as well).
    Raises ConfigError when there are more than MAX_POINTS combinations or none fits."""
    keys = [d.key for d in domains]
    total = 1
    for d in domains:
        total *= len(d.values)
    if total > MAX_POINTS:
        raise ConfigError("search.space", f"the model keys {', '.join(keys)} make {total:,} combinations, more than "
                          f"{MAX_POINTS:,} to count against the budget; narrow them")
    out = Feasible(tuple(domains), total)
    for combo in itertools.product(*(range(len(d.values)) for d in domains)):
        if not fits({d.key: d.values[i] for d, i in zip(domains, combo)}):
            continue
        out.points.append(combo)
        for i in range(len(combo)):
            nxt = out.nexts.setdefault(combo[:i], [])
            if not nxt or nxt[-1] != combo[i]:  # product order: each prefix's next indices come ascending
                nxt.append(combo[i])
    if not out.points:
        raise ConfigError("search.space", f"has no point within the budget: every combination of {', '.join(keys)} "
                          "is over it (or invalid); widen the space or the budget")
    return out
