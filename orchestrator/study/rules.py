"""``select:``, what a stage takes from the stage before: ``top: K`` (by the stage's ranking
metric, or ``by:`` another), ``best_per: [KEY, ...]`` (the best config for each value of the keys),
or ``pareto: [params]`` (the metric-vs-params front; ``macs`` too); ``seeds: [0, 1, 2]`` trains
each selected config once per seed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from configcheck import ConfigError, integer, join, mapping
from orchestrator.results.board import METRICS
from orchestrator.sweep.trialconfig import split_key

SELECT_KEYS = ("top", "best_per", "pareto", "by", "seeds")
PARETO_AXES = ("params", "macs")


@dataclass(frozen=True)
class Rule:
    kind: str  # top | best_per | pareto
    top: int = 0
    keys: tuple[str, ...] = ()  # best_per's keys, or pareto's cost axes
    by: str | None = None  # a result.json metric; None: the stage's leaderboard default
    seeds: tuple[int, ...] = ()  # () keeps each selected config's own seed

    def words(self) -> str:
        what = {"top": f"top {self.top}", "best_per": f"the best per {', '.join(self.keys)}",
                "pareto": f"the Pareto front of the metric vs {', '.join(self.keys)}"}[self.kind]
        by = f" by {self.by}" if self.by else ""
        seeds = f", each with seeds {', '.join(map(str, self.seeds))}" if self.seeds else ""
        return f"{what}{by}{seeds}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "top": self.top, "keys": list(self.keys), "by": self.by, "seeds": list(self.seeds)}


def parse_select(raw: Any, path: str) -> Rule:
    s = mapping(raw, path, SELECT_KEYS)
    kinds = [k for k in ("top", "best_per", "pareto") if k in s]
    if len(kinds) != 1:
        raise ConfigError(path, "give exactly one of top: K, best_per: [KEY, ...], pareto: [params]"
                          + (f" (got {', '.join(kinds)})" if kinds else ""))
    kind = kinds[0]
    by = s.get("by")
    if by is not None and by not in METRICS:
        raise ConfigError(join(path, "by"), f"{by!r} is not a result metric; allowed: {', '.join(METRICS)}")
    seeds: tuple[int, ...] = ()
    if s.get("seeds") is not None:
        if not isinstance(s["seeds"], list) or not s["seeds"]:
            raise ConfigError(join(path, "seeds"), "expected a non-empty list of integer seeds, e.g. [0, 1, 2]")
        seeds = tuple(integer(v, f"{join(path, 'seeds')}[{j}]", 0) for j, v in enumerate(s["seeds"]))
        if len(set(seeds)) != len(seeds):
            raise ConfigError(join(path, "seeds"), "a seed is listed twice")
    if kind == "top":
        return Rule("top", top=integer(s["top"], join(path, "top"), 1, 10_000), by=by, seeds=seeds)
    keys = s[kind]
    if isinstance(keys, str):
        keys = [keys]
    if not isinstance(keys, list) or not keys:
        raise ConfigError(join(path, kind), "expected a non-empty list of keys")
    for j, key in enumerate(keys):
        where = f"{join(path, kind)}[{j}]"
        if kind == "pareto":
            if key not in PARETO_AXES:
                raise ConfigError(where, f"{key!r}: the front is drawn against {', '.join(PARETO_AXES)}")
        else:
            split_key(key, where)
    return Rule(kind, keys=tuple(keys), by=by, seeds=seeds)
