"""Backends run trials somewhere; they never parse YAML and the trainer never knows which ran it.
Everything that reads a sweep (status, cancel, logs) reaches a trial's backend through this
registry, by the name its submission recorded."""

from __future__ import annotations

import functools
import importlib
from typing import Any

from orchestrator.backends.base import Backend, JobState

# name -> "module:class": loaded by name, so the registry imports no backend (and no backend's
# imports can lead back here). A new backend is one subpackage and one line here.
PLUGINS = {"slurm": "orchestrator.backends.slurm.backend:SlurmBackend",
           "ray": "orchestrator.backends.ray.backend:RayBackend"}
BACKENDS = tuple(PLUGINS)


@functools.cache
def backend_class(name: str) -> type[Backend]:
    if name not in PLUGINS:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(BACKENDS)}")
    module, cls = PLUGINS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def get_backend(name: str, **options: Any) -> Backend:
    return backend_class(name)(**options)


@functools.cache
def reader(name: str) -> Backend | None:
    """The backend that answers for submissions made by ``name``, or None when it cannot be asked
    from this machine (e.g. no sacct here)."""
    if name not in BACKENDS:
        return None
    backend = get_backend(name)
    return backend if backend.available() else None


def default_backend() -> tuple[str, str]:
    """(name, why): SLURM where sbatch is on PATH, else Ray on this machine."""
    import shutil

    if shutil.which("sbatch"):
        return "slurm", "sbatch is on PATH"
    return "ray", "no SLURM here (sbatch not on PATH), so a private Ray instance on this machine"


__all__ = ["BACKENDS", "Backend", "JobState", "backend_class", "default_backend", "get_backend", "reader"]
