"""The ``resources:`` section: what each trial asks the scheduler for. Validated strictly here;
whether a partition exists is asked of the cluster at submit time."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from configcheck import ConfigError, integer, mapping, number
from orchestrator.plugins import BACKENDS, OptionInfo, every_option, options_class

# Generic keys mean the same on every backend; the others are declared by one backend (its
# ``Options`` dataclass, read through the registry without loading the backend), which validates
# them, and giving them to another backend is an error naming their owner.
GENERIC: dict[str, Any] = {"cpus": None, "gpus": None, "workers": None, "mem_gb": None}


@functools.cache
def _scheduler_keys() -> dict[str, OptionInfo]:
    return {o.name: o for o in every_option() if o.resource}


def keys() -> tuple[str, ...]:
    return (*GENERIC, *_scheduler_keys())


def defaults() -> dict[str, Any]:
    return {**GENERIC, **{k: o.default for k, o in _scheduler_keys().items()}}


def resolve_resources(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    r = {**defaults(), **mapping(raw, "resources", keys())}
    p = "resources"
    if r["cpus"] is not None:
        integer(r["cpus"], f"{p}.cpus", 1, 4096)
    if r["gpus"] is not None:
        r["gpus"] = number(r["gpus"], f"{p}.gpus", 0, 64)
        if 1 < r["gpus"] != int(r["gpus"]):
            raise ConfigError(f"{p}.gpus", f"{r['gpus']} GPUs: a fraction must be below 1 (a share of one GPU)")
    if r["workers"] is not None:
        integer(r["workers"], f"{p}.workers", 1, 1024)
    if r["mem_gb"] is not None:
        r["mem_gb"] = number(r["mem_gb"], f"{p}.mem_gb", 0.001)
    for name in BACKENDS:  # each backend checks (and normalizes) its own keys
        options_class(name).validate(r)
    return r


def explicit(r: Mapping[str, Any]) -> list[str]:
    """The keys whose values differ from the defaults: what the user asked for."""
    d = defaults()
    return [k for k in d if r.get(k) != d[k]]


def check_backend_keys(r: Mapping[str, Any], backend: str) -> None:
    """A scheduler-specific key given to another backend is an error naming its owner."""
    for key in explicit(r):
        owner = _scheduler_keys()[key].owner if key in _scheduler_keys() else None
        if owner is not None and owner != backend:
            raise ConfigError(f"resources.{key}", f"is a {owner} key; the {backend} backend takes "
                              f"{', '.join(GENERIC)} (submit --backend {owner} to use it)")
