"""The ``resources:`` section (owned by the SLURM issue; accepted as a mapping until then)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from model.checks import ConfigError


def resolve_resources(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError("resources", f"expected a mapping, got {type(raw).__name__}")
    return json.loads(json.dumps(raw))
