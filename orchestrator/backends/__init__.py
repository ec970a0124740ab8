"""Backends run trials somewhere; they never parse YAML and the trainer never knows which ran it.

This module is the registry, and only that: it imports no backend and nothing of the orchestrator,
so every layer may ask it by name. A backend is one subpackage (``backends/<name>/``) and one line
in ``PLUGINS``; its ``options.py`` (a frozen dataclass: its own resource keys and submit flags,
importing only ``configcheck``) is read without loading the backend, by the sweep language (which
validates ``resources:`` against it) and by the CLI (which offers its flags)."""

from __future__ import annotations

import functools
import importlib
import shutil
from typing import Any

# name -> "module:class", loaded by name. A new backend: one subpackage and one line here.
PLUGINS = {"slurm": "orchestrator.backends.slurm.backend:SlurmBackend",
           "ray": "orchestrator.backends.ray.backend:RayBackend"}
BACKENDS = tuple(PLUGINS)


def _known(name: str) -> str:
    if name not in PLUGINS:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(BACKENDS)}")
    return PLUGINS[name]


@functools.cache
def backend_class(name: str) -> Any:
    """The backend's class (an ``orchestrator.backends.base.Backend``)."""
    module, cls = _known(name).split(":")
    return getattr(importlib.import_module(module), cls)


@functools.cache
def options_class(name: str) -> Any:
    """The backend's options dataclass: ``Options`` in the ``options.py`` beside its backend module."""
    package = _known(name).split(":")[0].rsplit(".", 1)[0]
    return importlib.import_module(package + ".options").Options


def get_backend(name: str, **options: Any) -> Any:
    return backend_class(name)(**options)


@functools.cache
def reader(name: str) -> Any:
    """The backend that answers for submissions made by ``name``, or None when it cannot be asked
    from this machine (e.g. no sacct here)."""
    if name not in BACKENDS:
        return None
    backend = get_backend(name)
    return backend if backend.available() else None


def default_backend() -> tuple[str, str]:
    """(name, why): the first backend whose scheduler client is on PATH (``Options.client``), else
    the last one, which needs none (a private Ray instance on this machine)."""
    for name in BACKENDS:
        client = options_class(name).client
        if client and shutil.which(client):
            return name, f"{client} is on PATH"
    return BACKENDS[-1], options_class(BACKENDS[-1]).fallback_why


__all__ = ["BACKENDS", "PLUGINS", "backend_class", "default_backend", "get_backend", "options_class", "reader"]
