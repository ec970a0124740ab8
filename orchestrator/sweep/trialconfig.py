"""The trial config: its sections, dotted-key access, strict resolution and the stable trial id.

A trial config is a nested mapping ``{model, data, train, resources}``. Each section
has one resolver (validate + fill defaults) owned by the package that uses it; the sweep machinery
only composes them, so adding a section never touches expansion code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from configcheck import ConfigError, mapping
from model import resolve_config as resolve_model
from orchestrator.sweep.resources import resolve_resources
from train.schema import resolve_data, resolve_train  # late: train imports this package's peers

Resolver = Callable[[Mapping[str, Any] | None], dict[str, Any]]


def _resolvers() -> dict[str, Resolver]:
    return {
        "model": resolve_model,
        "data": resolve_data,
        "train": resolve_train,
        "resources": resolve_resources,
    }


SECTIONS = ("model", "data", "train", "resources")
# Sweep-level sections (how trials are searched and logged), not part of any trial: a trial's
# config may not hold them (see orchestrator/sweepopts.py).
SWEEP_SECTIONS = ("search", "wandb")
_RESOLVERS: dict[str, Resolver] | None = None


def resolve_section(name: str, raw: Any) -> dict[str, Any]:
    global _RESOLVERS
    if _RESOLVERS is None:
        _RESOLVERS = _resolvers()
    return _RESOLVERS[name](raw)


def resolve_trial(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate every section and fill its defaults; errors carry the full dotted path."""
    for name in SWEEP_SECTIONS:
        if isinstance(raw, Mapping) and name in raw:
            raise ConfigError(name, "is a sweep-level section now: move it to the top level of the spec "
                              "(beside budget:); it is not part of any trial's config or id")
    raw = mapping(raw, "", SECTIONS)
    return {name: resolve_section(name, raw.get(name)) for name in SECTIONS}


def split_key(key: str, where: str) -> tuple[str, ...]:
    if not isinstance(key, str) or not key:
        raise ConfigError(where, f"expected a dotted key like model.channels, got {key!r}")
    parts = tuple(key.split("."))
    if parts[0] not in SECTIONS:
        raise ConfigError(f"{where}.{key}" if where else key,
                          f"unknown section {parts[0]!r}; valid sections: {', '.join(SECTIONS)}")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"{where}.{key}" if where else key, "expected SECTION.KEY[.SUBKEY...], e.g. model.channels")
    return parts


def get_dotted(cfg: Mapping[str, Any], parts: tuple[str, ...]) -> Any:
    node: Any = cfg
    for p in parts:
        if not isinstance(node, Mapping) or p not in node:
            return None
        node = node[p]
    return node


def set_dotted(cfg: dict[str, Any], parts: tuple[str, ...], value: Any) -> dict[str, Any]:
    """Copy-on-write set: returns a new dict sharing every branch the path does not touch."""
    out = dict(cfg)
    if len(parts) == 1:
        out[parts[0]] = value
        return out
    child = cfg.get(parts[0])
    out[parts[0]] = set_dotted(dict(child) if isinstance(child, Mapping) else {}, parts[1:], value)
    return out


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)
_ID_SECTIONS = tuple(sorted(name for name in SECTIONS if name != "resources"))
# Until search/wandb left the trial config they were hashed as empty sections; hashing the same
# empty text keeps every existing id (and finished result) valid.
_LEGACY = {"search": '"search":{}', "wandb": '"wandb":{}'}
_HASHED = tuple(sorted((*_ID_SECTIONS, *_LEGACY)))


def _identity(name: str, section: Mapping[str, Any]) -> Any:
    """What of a section is the trial: where the data lives is not (``data.root`` hashes as its
    default, so ids at the default root stay as they were and any path to the same data gives the
    same id); which data it is, is checked by its fingerprint (train/data.py) at first use."""
    if name == "data" and section.get("root") is not None:
        return {**section, "root": None}
    return section


def canonical(cfg: Any) -> str:
    return _CANONICAL.encode(cfg)


def trial_id(resolved: Mapping[str, Any], memo: dict[int, tuple[Any, str, str]] | None = None) -> str:
    """Stable across runs, machines and YAML key order: a hash of the canonical resolved config.

    ``resources`` is left out: where a trial runs is not what it is, so moving a sweep to another
    partition keeps its ids (and its finished results); so is ``data.root`` (``_identity``).
    ``memo`` caches each section's canonical text by object identity; expansion shares untouched
    section dicts between trials. The hashed
    text is ``canonical`` of the id sections plus the two empty legacy sections (search, wandb)."""
    if memo is None:
        memo = {}
    parts = []
    for name in _HASHED:
        if name in _LEGACY:
            parts.append(_LEGACY[name])
            continue
        section = resolved[name]
        hit = memo.get(id(section))
        if hit is None or hit[0] is not section or hit[1] != name:
            # the entry holds the section, so its id cannot be reused; names are plain identifiers
            hit = memo[id(section)] = (section, name, f'"{name}":{canonical(_identity(name, section))}')
        parts.append(hit[2])
    return hashlib.sha256(("{" + ",".join(parts) + "}").encode()).hexdigest()[:12]
