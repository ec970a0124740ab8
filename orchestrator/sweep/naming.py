"""How a trial is named for people: the keys that vary across a sweep, and short labels and
values for them (tables, W&B run names, plots)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.sweep.trial import Trial
from orchestrator.sweep.trialconfig import get_dotted


def leaf_keys(key: str, value: Any) -> list[str]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in leaf_keys(f"{key}.{k}", v)]
    return [key]


def varies(trials: Sequence[Trial], key: str) -> bool:
    parts = tuple(key.split("."))
    first = get_dotted(trials[0].config, parts)
    return any(get_dotted(t.config, parts) != first for t in trials)  # stops at the first difference


def varying_keys(trials: Sequence[Trial], fill: tuple[str, ...] | None) -> list[str]:
    """The columns worth showing: every leaf key a trial overrides whose value differs between
    trials (a mapping override such as train.optimizer becomes optimizer.name, optimizer.lr, ...),
    plus the budget's fill key."""
    keys: dict[str, None] = {}
    shapes: set[tuple[str, ...]] = set()
    for t in trials:  # a 100k grid has one shape: look at its keys once
        shape = tuple(t.overrides)
        if shape not in shapes:
            shapes.add(shape)
            keys.update(dict.fromkeys(shape))
    leaves: dict[str, None] = {}
    for k in keys:
        # a key's type is fixed by the schema: the first trial that sets it tells if it is a mapping
        if isinstance(next(t.overrides[k] for t in trials if k in t.overrides), dict):
            for t in trials:
                if k in t.overrides:
                    leaves.update(dict.fromkeys(leaf_keys(k, t.overrides[k])))
        else:
            leaves[k] = None
    shown = [k for k in leaves if len(trials) < 2 or varies(trials, k)]
    if fill is not None and ".".join(fill) not in shown:
        shown.append(".".join(fill))
    return shown


def short(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={short(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ",".join(short(v) for v in value) + "]"
    return "-" if value is None else str(value)


MAX_KEY_COLUMNS = 3  # beyond this an 80-column terminal has no room; one "changes" column instead


def label(key: str) -> str:
    return key.removeprefix("model.").removeprefix("train.")
