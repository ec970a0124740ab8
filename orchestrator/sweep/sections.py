"""The sweep-level sections ``search:`` (how trials are stopped early: a rule from orchestrator/search/stopping.py) and
``wandb:`` (where runs are logged). Validated strictly; neither is part of a trial's id, so moving
a sweep to early stopping or renaming its W&B project keeps every trial and finished result."""

from __future__ import annotations

from typing import Any

from configcheck import ConfigError, integer, mapping, number, string
from configcheck.durations import time_minutes
from orchestrator.search.sampled import ALGORITHMS, COUNTS
from orchestrator.search.space import as_raw, parse_space
from orchestrator.search.stopping import RULES, rule_key_names, rule_keys

METRICS = ("val_acc", "val_loss", "test_acc", "test_loss", "train_acc", "train_loss")
PROPOSAL_KEYS = ("algorithm", "space", "trials", "parallel", "seed", "objectives", "driver")  # a search's (not grid's)
# the job that runs a search unattended on a scheduler (SLURM): small, CPU only, requeued at its time limit
DRIVER_KEYS = ("partition", "time", "cpus_per_task", "mem_gb", "account", "qos")
SEARCH_KEYS = ("scheduler", "metric", "mode", *PROPOSAL_KEYS, *rule_key_names())
WANDB_KEYS = ("project", "entity", "mode", "tags", "notes")
WANDB_MODES = ("offline", "online", "disabled")


def _choice(value: Any, path: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(path, f"{value!r} is not allowed; allowed: {', '.join(allowed)}")
    return value


def resolve_search(raw: Any) -> dict[str, Any]:
    """``scheduler``: a stopping rule's name (``orchestrator/search/stopping.py``); ``metric``
    (default: val_acc when trials hold out a validation split, else test_acc; chosen per sweep by
    ``search_metric``), ``mode`` (default: min for losses, else max), and every rule's own keys
    (counted in epochs), validated by the rule."""
    s = mapping(raw, "search", SEARCH_KEYS)
    out: dict[str, Any] = {
        "scheduler": _choice(s.get("scheduler", "none"), "search.scheduler", tuple(RULES)),
        "metric": None if s.get("metric") is None else _choice(s["metric"], "search.metric", METRICS),
        "mode": None if s.get("mode") is None else _choice(s["mode"], "search.mode", ("max", "min")),
        **rule_keys(s),
        **_proposals(s),
    }
    return out


def _proposals(s: dict[str, Any]) -> dict[str, Any]:
    """``algorithm`` (grid: the spec's grid / vary / trials; random, tpe, nsga2: Optuna's samplers
    over ``space``), ``trials`` (how many to train), ``parallel`` (at once), ``seed``, ``objectives``
    ([{name: max|min}, ...]; default: the search metric alone, resolved per sweep)."""
    algorithm = _choice(s.get("algorithm", "grid"), "search.algorithm", ALGORITHMS)
    if algorithm == "grid":
        extra = [k for k in PROPOSAL_KEYS[1:] if k in s and k != "driver"]
        if extra:
            raise ConfigError(f"search.{extra[0]}", "is for a search: set search.algorithm to one of "
                              f"{', '.join(a for a in ALGORITHMS if a != 'grid')}")
        return {"algorithm": "grid", "driver": resolve_driver(s.get("driver"))}  # a driver job runs early stopping on SLURM
    for key in ("space", "trials"):
        if key not in s:
            raise ConfigError(f"search.{key}", f"is required with search.algorithm {algorithm}")
    trials = integer(s["trials"], "search.trials", 1, 100_000)
    objectives = _objectives(s.get("objectives"))
    if algorithm == "nsga2" and (objectives is None or len(objectives) < 2):
        raise ConfigError("search.objectives", "nsga2 is multi-objective: give two or more, e.g. "
                          "[{val_acc: max}, {params: min}]")
    return {"algorithm": algorithm, "space": as_raw(parse_space(s["space"])), "trials": trials,
            "parallel": integer(s.get("parallel", min(4, trials)), "search.parallel", 1, 10_000),
            "seed": integer(s.get("seed", 0), "search.seed", 0), "objectives": objectives,
            "driver": resolve_driver(s.get("driver"))}


def resolve_driver(raw: Any, where: str = "search.driver") -> dict[str, Any]:
    """``search.driver``: the resources of the job that runs a search unattended (``partition``,
    ``time``: default the partition's limit up to one day, then it is requeued; ``cpus_per_task``
    1; ``mem_gb`` 2; ``account``; ``qos``)."""
    d = mapping(raw or {}, where, DRIVER_KEYS)
    out: dict[str, Any] = {"partition": None, "time": None, "cpus_per_task": 1, "mem_gb": 2.0, "account": None,
                           "qos": None}
    for key in ("partition", "account", "qos"):
        if d.get(key) is not None:
            out[key] = string(d[key], f"{where}.{key}")
    if d.get("time") is not None:
        time_minutes(string(d["time"], f"{where}.time"), f"{where}.time")
        out["time"] = d["time"]
    if "cpus_per_task" in d:
        out["cpus_per_task"] = integer(d["cpus_per_task"], f"{where}.cpus_per_task", 1, 64)
    if "mem_gb" in d:
        out["mem_gb"] = number(d["mem_gb"], f"{where}.mem_gb", 0.1)
    return out


def _objectives(raw: Any) -> list[list[str]] | None:
    """[[name, mode], ...] from [{val_acc: max}, {params: min}] (or one mapping)."""
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise ConfigError("search.objectives", "is empty; give at least one {metric: max|min}")
    out: list[list[str]] = []
    allowed = (*METRICS, *COUNTS)
    for i, item in enumerate(items):
        path = f"search.objectives[{i}]" if isinstance(raw, list) else "search.objectives"
        if not (isinstance(item, dict) and len(item) == 1):
            raise ConfigError(path, f"expected one {{metric: max|min}}, got {item!r}")
        ((name, mode),) = item.items()
        _choice(name, path, allowed)
        _choice(mode, f"{path}.{name}", ("max", "min"))
        if any(name == n for n, _ in out):
            raise ConfigError(path, f"repeats the objective {name}")
        out.append([name, mode])
    return out


def search_metric(search: dict[str, Any], has_val: bool) -> tuple[str, str, str]:
    """(metric, mode, why): the metric a stopping rule compares trials by, and a line saying how it was chosen."""
    metric = search["metric"] or ("val_acc" if has_val else "test_acc")
    why = "search.metric" if search["metric"] else (
        "default: the trials hold out a validation split" if has_val else
        "default: no validation split (data.val_size is 0), so test accuracy; set data.val_size to "
        "keep the test set out of model selection")
    mode = search["mode"] or ("min" if metric.endswith("loss") else "max")
    return metric, mode, why


def resolve_wandb(raw: Any) -> dict[str, Any]:
    w = mapping(raw, "wandb", WANDB_KEYS)
    tags = w.get("tags") or []
    if not isinstance(tags, list):
        raise ConfigError("wandb.tags", "expected a list of strings")
    return {
        "project": None if w.get("project") is None else string(w["project"], "wandb.project"),
        "entity": None if w.get("entity") is None else string(w["entity"], "wandb.entity"),
        "mode": _choice(w.get("mode", "offline"), "wandb.mode", WANDB_MODES),
        "tags": [string(t, f"wandb.tags[{i}]") for i, t in enumerate(tags)],
        "notes": None if w.get("notes") is None else string(w["notes"], "wandb.notes"),
    }
