"""Strict validation helpers shared by every package and config section (model, data, train,
resources, the sweep spec, each backend's options). Imports nothing of the project: every layer
may import it.

Every failure is a ``ConfigError`` carrying the dotted key path, so the CLI can print one line:
``FILE: KEY.PATH: what is wrong (allowed: ...)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class ConfigError(ValueError):
    """A config value is not allowed. ``path`` is the dotted key path (may be empty)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)

    def under(self, prefix: str) -> ConfigError:
        """The same error, its path prefixed (used when a section is validated in isolation)."""
        if not prefix:
            return self
        return ConfigError(f"{prefix}.{self.path}" if self.path else prefix, self.message)


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "mapping"}.get(
        type(value), type(value).__name__
    )


def mapping(value: Any, path: str, allowed: Iterable[str]) -> dict[str, Any]:
    """A mapping whose keys are all in ``allowed`` (an unknown key lists the valid ones)."""
    allowed = allowed if isinstance(allowed, (tuple, list)) else list(allowed)
    if value is None:
        value = {}
    if type(value) is not dict and not isinstance(value, Mapping):  # dict first: the ABC check is slow
        raise ConfigError(path, f"expected a mapping with keys {', '.join(allowed)}, got {type_name(value)}")
    for key in value:
        if key not in allowed:
            raise ConfigError(join(path, str(key)), f"unknown key; valid keys: {', '.join(allowed)}")
    return dict(value)


def _range(minimum: float | None, maximum: float | None, below: bool = False) -> str:
    if minimum is not None and maximum is not None:
        return f"{minimum} <= x < {maximum}" if below else f"{minimum}..{maximum}"
    if minimum is not None:
        return f">= {minimum}"
    return f"{'<' if below else '<='} {maximum}" if maximum is not None else "any"


def integer(value: Any, path: str, minimum: int | None = None, maximum: int | None = None) -> int:
    # bool is an int subclass in Python; `true` for a channel count is a typo, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, f"expected an integer, got {type_name(value)} {value!r}; allowed: "
                          f"integers {_range(minimum, maximum)}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        side = f">= {minimum}" if minimum is not None and value < minimum else f"<= {maximum}"
        raise ConfigError(path, f"must be {side}, got {value}; allowed: {_range(minimum, maximum)}")
    return value


def number(value: Any, path: str, minimum: float | None = None, maximum: float | None = None,
           exclusive_max: bool = False) -> float:
    allowed = _range(minimum, maximum, exclusive_max)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(path, f"expected a number, got {type_name(value)} {value!r}; allowed: numbers {allowed}")
    value = float(value)
    if value != value:
        raise ConfigError(path, f"must be a number, got NaN; allowed: {allowed}")
    if minimum is not None and value < minimum:
        raise ConfigError(path, f"must be >= {minimum}, got {value}; allowed: {allowed}")
    if maximum is not None and (value >= maximum if exclusive_max else value > maximum):
        raise ConfigError(path, f"must be {'<' if exclusive_max else '<='} {maximum}, got {value}; allowed: {allowed}")
    return value


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, f"expected true or false, got {type_name(value)} {value!r}")
    return value


def choice(value: Any, path: str, allowed: Iterable[Any]) -> Any:
    allowed = list(allowed)
    # Compare types too: YAML `1` must not pass for `true`, nor `true` for `1`.
    if not any(value == a and type(value) is type(a) for a in allowed):
        raise ConfigError(path, f"got {value!r}; allowed: {', '.join(map(str, allowed))}")
    return value


def string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(path, f"expected a non-empty string, got {type_name(value)} {value!r}")
    return value


def int_or_list(value: Any, path: str, length: int, minimum: int = 1) -> list[int]:
    """An int (same for every layer) or a list of exactly ``length`` ints; returns the list."""
    if isinstance(value, list):
        if len(value) != length:
            raise ConfigError(path, f"list has {len(value)} entries but layers is {length}; give one per layer or a single int")
        return [integer(v, join(path, i), minimum) for i, v in enumerate(value)]
    return [integer(value, path, minimum)] * length
