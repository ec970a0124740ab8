"""The ``resources:`` section: what each trial asks the scheduler for. Validated strictly here;
whether a partition exists is asked of the cluster at submit time."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from model.checks import ConfigError, integer, mapping, number, string

# Generic keys mean the same on every backend; the others belong to one scheduler, and giving
# them to another backend is an error naming their owner.
GENERIC = ("cpus", "gpus", "workers", "mem_gb")
SLURM_ONLY = ("partition", "nodes", "gpus_per_node", "tasks_per_node", "cpus_per_task", "time", "account", "qos",
              "constraint", "array_parallelism", "signal_delay_s", "max_requeues", "trials_per_gpu")
KEYS = (*GENERIC, *SLURM_ONLY)
OWNER = {**dict.fromkeys(SLURM_ONLY, "slurm")}
DEFAULTS: dict[str, Any] = {
    "cpus": None, "gpus": None, "workers": None,
    "partition": None, "nodes": 1, "gpus_per_node": 0, "tasks_per_node": None, "cpus_per_task": None,
    "mem_gb": None, "time": "01:00:00", "account": None, "qos": None, "constraint": None,
    "array_parallelism": 256, "signal_delay_s": None, "max_requeues": 20, "trials_per_gpu": 1,
}
TIME_RE = re.compile(r"^(?:(?P<days>\d+)-)?(?P<clock>\d+(?::\d+){0,2})$")
TIME_HELP = "allowed: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (SLURM's --time formats)"


def time_minutes(text: str, path: str = "resources.time") -> int:
    """SLURM time string -> whole minutes (rounded up; SLURM's granularity is one minute)."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str):
        raise ConfigError(path, f"expected a time string, got {text!r}; {TIME_HELP}")
    m = TIME_RE.match(text.strip())
    if not m:
        raise ConfigError(path, f"{text!r} is not a time; {TIME_HELP}")
    fields = [int(f) for f in m["clock"].split(":")]
    days = m["days"] is not None
    d = int(m["days"]) if days else 0
    if days:  # D-HH[:MM[:SS]]
        h, mins, s = (fields + [0, 0])[:3]
    elif len(fields) == 3:  # HH:MM:SS
        h, mins, s = fields
    else:  # MM or MM:SS
        h, mins, s = 0, fields[0], fields[1] if len(fields) == 2 else 0
    if (mins >= 60 and (h or d)) or s >= 60 or (days and h >= 24):
        raise ConfigError(path, f"{text!r} has a field out of range; {TIME_HELP}")
    total = ((d * 24 + h) * 60 + mins) * 60 + s
    if total <= 0:
        raise ConfigError(path, f"must be positive, got {text!r}")
    return math.ceil(total / 60)


def resolve_resources(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    r = {**DEFAULTS, **mapping(raw, "resources", KEYS)}
    p = "resources"
    for key in ("partition", "account", "qos", "constraint"):
        if r[key] is not None:
            string(r[key], f"{p}.{key}")
            if not re.fullmatch(r"[A-Za-z0-9_.,:&|!()\[\]*-]+", r[key]):  # no spaces or shell syntax
                raise ConfigError(f"{p}.{key}", f"{r[key]!r} has characters SLURM names never have")
    if r["cpus"] is not None:
        integer(r["cpus"], f"{p}.cpus", 1, 4096)
    if r["gpus"] is not None:
        r["gpus"] = number(r["gpus"], f"{p}.gpus", 0, 64)
        if 1 < r["gpus"] != int(r["gpus"]):
            raise ConfigError(f"{p}.gpus", f"{r['gpus']} GPUs: a fraction must be below 1 (a share of one GPU)")
    if r["workers"] is not None:
        integer(r["workers"], f"{p}.workers", 1, 1024)
    for generic, specific in (("cpus", "cpus_per_task"), ("gpus", "gpus_per_node"), ("workers", "tasks_per_node")):
        if r[generic] is not None and r[specific] not in (None, 0):
            raise ConfigError(f"{p}.{generic}", f"give {generic} (any backend) or {specific} (SLURM), not both")
    integer(r["nodes"], f"{p}.nodes", 1, 10_000)
    integer(r["gpus_per_node"], f"{p}.gpus_per_node", 0, 64)
    if r["tasks_per_node"] is not None:
        integer(r["tasks_per_node"], f"{p}.tasks_per_node", 1, 1024)
    if r["cpus_per_task"] is not None:
        integer(r["cpus_per_task"], f"{p}.cpus_per_task", 1, 4096)
    if r["mem_gb"] is not None:
        r["mem_gb"] = number(r["mem_gb"], f"{p}.mem_gb", 0.001)
    time_minutes(r["time"], f"{p}.time")
    r["time"] = str(r["time"])
    integer(r["array_parallelism"], f"{p}.array_parallelism", 1, 100_000)
    if r["signal_delay_s"] is not None:
        integer(r["signal_delay_s"], f"{p}.signal_delay_s", 0, 3600)
    integer(r["max_requeues"], f"{p}.max_requeues", 0, 1000)
    if integer(r["trials_per_gpu"], f"{p}.trials_per_gpu", 1, 64) > 1 and (r["nodes"] > 1 or tasks_per_node(r) > 1):
        raise ConfigError(f"{p}.trials_per_gpu", f"{r['trials_per_gpu']} packs whole single-process trials into one "
                          "task: it needs nodes 1 and one task (at most one GPU per job, no workers)")
    return r


def explicit(r: Mapping[str, Any]) -> list[str]:
    """The keys whose values differ from the defaults: what the user asked for."""
    return [k for k in KEYS if r.get(k) != DEFAULTS[k]]


def check_backend_keys(r: Mapping[str, Any], backend: str) -> None:
    """A scheduler-specific key given to another backend is an error naming its owner."""
    for key in explicit(r):
        owner = OWNER.get(key)
        if owner is not None and owner != backend:
            raise ConfigError(f"resources.{key}", f"is a {owner} key; the {backend} backend takes "
                              f"{', '.join(GENERIC)} (submit --backend {owner} to use it)")


def gpus_per_node(r: Mapping[str, Any]) -> int:
    """SLURM allocates whole GPUs: ``gpus`` must be a whole number there."""
    if r.get("gpus") is not None:
        if r["gpus"] != int(r["gpus"]):
            raise ConfigError("resources.gpus", f"{r['gpus']} is a share of a GPU; SLURM allocates whole GPUs "
                              "(--backend ray packs several trials onto one GPU)")
        return int(r["gpus"])
    return r["gpus_per_node"]


def tasks_per_node(r: Mapping[str, Any]) -> int:
    """One task (DDP rank) per GPU; on CPU-only requests as given (default 1). ``workers`` (all
    ranks of the trial) is split evenly over ``nodes``."""
    if r.get("workers"):
        if r["workers"] % r["nodes"]:
            raise ConfigError("resources.workers", f"{r['workers']} workers do not split evenly over {r['nodes']} nodes")
        return r["workers"] // r["nodes"]
    return r["tasks_per_node"] or max(1, gpus_per_node(r))


def cpus_per_task(r: Mapping[str, Any]) -> int | None:
    return r.get("cpus") or r.get("cpus_per_task")


def signal_delay(r: Mapping[str, Any]) -> int:
    """Seconds before the time limit at which the job is told to checkpoint and requeue: 90 s
    like submitit, but at most half the limit so short test jobs still get work done."""
    if r["signal_delay_s"] is not None:
        return r["signal_delay_s"]
    return min(90, max(10, time_minutes(r["time"]) * 60 // 2))


def duration_words(seconds: int) -> str:
    """3690 -> '1 h 1 min 30 s' (zero fields left out)."""
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((d, "d"), (h, "h"), (m, "min"), (s, "s")) if n]
    return " ".join(parts) or "0 s"


def time_words(text: str) -> str:
    """What a job really gets for ``--time``, in words, so ``1:30`` (SLURM: 1 min 30 s, not 1 h 30)
    cannot surprise anyone: 'time limit 2 min per job (1:30 is MM:SS = 1 min 30 s, rounded up to
    whole minutes)'."""
    minutes = time_minutes(text)
    line = f"time limit {duration_words(minutes * 60)} per job"
    m = TIME_RE.match(str(text).strip())
    fields = m["clock"].split(":") if m else []
    note = ""
    if m and m["days"] is None and len(fields) <= 2:
        asked = int(fields[0]) * 60 + (int(fields[1]) if len(fields) == 2 else 0)
        note = f"{text} is {'MM:SS' if len(fields) == 2 else 'MM'} = {duration_words(asked)}"
        if asked % 60:
            note += ", rounded up to whole minutes"
        if len(fields) == 2:
            note += "; for hours write HH:MM:SS"
    return line + (f" ({note})" if note else "")
