"""The plugin registry: backends by name, and the options each declares.

It imports nothing of the orchestrator, so every layer may ask it: the sweep language validates
a spec's ``resources:`` against the backends' options, the CLI offers their flags, and the readers
(status, cancel, logs) reach the backend a submission recorded. A backend is one subpackage
(``orchestrator/backends/<name>/``) and one line in ``PLUGINS``; it is loaded by name, on first
use. Its ``options.py`` (a frozen dataclass, Hydra's ``SlurmQueueConf`` style, importing only
``configcheck`` and this module) is read without loading the backend itself: fields made with
``option(...)`` carry their help, CLI metavar and type; ``resource`` fields are keys of the
spec's ``resources:`` section (validated by ``Options.validate``), ``flag`` fields are also
``orchestrate submit`` flags."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import shutil
from dataclasses import dataclass
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


def option(default: Any = None, *, help: str = "", metavar: str | None = None, kind: type = str,
           flag: bool = True, resource: bool = False) -> Any:
    """A field of a backend's options dataclass."""
    return dataclasses.field(default=default, metadata={"help": help, "metavar": metavar, "kind": kind,
                                                        "flag": flag, "resource": resource})


@dataclass(frozen=True)
class OptionInfo:
    name: str
    owner: str  # the backend that declares it
    default: Any
    help: str
    metavar: str | None
    kind: type
    flag: bool  # offered as a submit flag
    resource: bool  # a key of the spec's resources: section

    @property
    def cli(self) -> str:
        return "--" + self.name.replace("_", "-")


def described(name: str) -> list[OptionInfo]:
    """The options backend ``name`` declares, in field order."""
    return [OptionInfo(f.name, name, f.default, f.metadata.get("help", ""), f.metadata.get("metavar"),
                       f.metadata.get("kind", str), f.metadata.get("flag", True), f.metadata.get("resource", False))
            for f in dataclasses.fields(options_class(name))]


@functools.cache
def every_option() -> tuple[OptionInfo, ...]:
    """Every registered backend's options, in registry order (read once: the CLI asks at start-up
    and again per submit, the sweep language per resources section)."""
    return tuple(o for name in BACKENDS for o in described(name))
