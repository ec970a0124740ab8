"""Strict schemas of the ``data:`` and ``train:`` sections."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from model.checks import ConfigError


def _open(name: str, raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(name, f"expected a mapping, got {type(raw).__name__}")
    return json.loads(json.dumps(raw))


def resolve_data(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    return _open("data", raw)


def resolve_train(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    return _open("train", raw)
