"""How a backend declares its options (Hydra's ``SlurmQueueConf`` style): a frozen dataclass whose
fields carry their help, CLI metavar and type. ``resource`` fields are keys of the spec's
``resources:`` section (validated by the backend's ``Options.validate``); ``flag`` fields are also
``orchestrate submit`` flags. Imports only the standard library and ``configcheck``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from orchestrator.backends import BACKENDS, options_class


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


def every_option() -> list[OptionInfo]:
    """Every registered backend's options, in registry order."""
    return [o for name in BACKENDS for o in described(name)]
