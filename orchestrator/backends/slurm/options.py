"""SLURM's own options (Hydra's ``SlurmQueueConf`` style): the keys of a spec's ``resources:``
section only SLURM takes, their defaults, the ``submit`` flags they become, their validation, and
what they derive to (tasks per node, GPUs per node, the requeue signal's delay). Imports only
``configcheck`` and the options vocabulary: the sweep language and the CLI read it without loading
the backend."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from configcheck import ConfigError, integer, string
from configcheck.durations import time_minutes
from orchestrator.plugins import option

NAMES = ("partition", "account", "qos", "constraint")  # SLURM names: no spaces or shell syntax


@dataclass(frozen=True)
class Options:
    partition: str | None = option(resource=True)
    nodes: int = option(1, kind=int, resource=True)
    gpus_per_node: int = option(0, kind=int, resource=True)
    tasks_per_node: int | None = option(kind=int, resource=True, help="Default: one per GPU (1 on CPU-only).")
    cpus_per_task: int | None = option(kind=int, resource=True)
    time: str = option("01:00:00", metavar="HH:MM:SS", resource=True,
                       help="Per-job time limit; jobs requeue and resume.")
    account: str | None = option(resource=True)
    qos: str | None = option(resource=True)
    constraint: str | None = option(resource=True)
    array_parallelism: int = option(256, kind=int, resource=True, help="At most this many array tasks run at once.")
    signal_delay_s: int | None = option(kind=int, resource=True, flag=False)
    max_requeues: int = option(20, kind=int, resource=True, flag=False)
    trials_per_gpu: int = option(1, kind=int, resource=True, flag=False)

    client: ClassVar[str | None] = "sbatch"  # on PATH: this machine submits to SLURM by default
    fallback_why: ClassVar[str] = ""

    @staticmethod
    def validate(r: dict[str, Any]) -> None:
        """Check (and normalize, in place) SLURM's keys of a resolved ``resources`` mapping."""
        p = "resources"
        for key in NAMES:
            if r[key] is not None:
                string(r[key], f"{p}.{key}")
                if not re.fullmatch(r"[A-Za-z0-9_.,:&|!()\[\]*-]+", r[key]):  # no spaces or shell syntax
                    raise ConfigError(f"{p}.{key}", f"{r[key]!r} has characters SLURM names never have")
        for generic, specific in (("cpus", "cpus_per_task"), ("gpus", "gpus_per_node"), ("workers", "tasks_per_node")):
            if r[generic] is not None and r[specific] not in (None, 0):
                raise ConfigError(f"{p}.{generic}", f"give {generic} (any backend) or {specific} (SLURM), not both")
        integer(r["nodes"], f"{p}.nodes", 1, 10_000)
        integer(r["gpus_per_node"], f"{p}.gpus_per_node", 0, 64)
        if r["tasks_per_node"] is not None:
            integer(r["tasks_per_node"], f"{p}.tasks_per_node", 1, 1024)
        if r["cpus_per_task"] is not None:
            integer(r["cpus_per_task"], f"{p}.cpus_per_task", 1, 4096)
        time_minutes(r["time"], f"{p}.time")
        r["time"] = str(r["time"])
        integer(r["array_parallelism"], f"{p}.array_parallelism", 1, 100_000)
        if r["signal_delay_s"] is not None:
            integer(r["signal_delay_s"], f"{p}.signal_delay_s", 0, 3600)
        integer(r["max_requeues"], f"{p}.max_requeues", 0, 1000)
        if integer(r["trials_per_gpu"], f"{p}.trials_per_gpu", 1, 64) > 1 and (r["nodes"] > 1 or tasks_per_node(r) > 1):
            raise ConfigError(f"{p}.trials_per_gpu", f"{r['trials_per_gpu']} packs whole single-process trials into "
                              "one task: it needs nodes 1 and one task (at most one GPU per job, no workers)")


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
