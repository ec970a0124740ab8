"""Width multipliers of the mobile families: a validated multiplier and the channels it scales to."""

from __future__ import annotations

from typing import Any

from configcheck import ConfigError, number


def width_multiplier(value: Any, path: str) -> float:
    """A channel-width multiplier in (0, 4]."""
    value = number(value, path, 0.0, 4.0)
    if value <= 0:
        raise ConfigError(path, f"must be > 0, got {value}")
    return value


def scaled(channels: int, width: float) -> int:
    """``channels`` under a width multiplier: floored (0.5 halves exactly), never below 1."""
    return max(1, int(channels * width))
