"""One expanded trial: its id, resolved config, counts and where in the spec it came from."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Trial:
    trial_id: str
    config: dict[str, Any]  # the full resolved nested config
    params: int
    kept: bool
    reason: str  # why dropped ("" when kept)
    source: str  # where in the spec it came from: base, grid, vary.KEY[j], trials[i]
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted key -> value, as expanded
    macs: int | None = None  # multiply-accumulates of one forward pass (model.count_macs)
    earlier: bool = False  # in the sweep dir from an earlier version of its spec, not in the current plan

    def to_json(self) -> dict[str, Any]:
        return {"trial_id": self.trial_id, "params": self.params, "macs": self.macs, "kept": self.kept,
                "reason": self.reason or None, "source": self.source,
                "overrides": self.overrides, "config": self.config}

    def json_text(self, memo: dict[int, tuple[Any, str]], extra: dict[str, Any] | None = None) -> str:
        """``json.dumps(self.to_json())``, byte for byte, with each shared config section encoded
        once per ``memo`` (a 100k-trial grid has a few distinct sections, not 100k); ``extra``
        keys go before the config."""
        head = json.dumps({**{k: v for k, v in self.to_json().items() if k != "config"}, **(extra or {})})
        parts = []
        for name, section in self.config.items():
            hit = memo.get(id(section))
            if hit is None or hit[0] is not section:
                hit = memo[id(section)] = (section, json.dumps(section))
            parts.append(f"{json.dumps(name)}: {hit[1]}")
        return f'{head[:-1]}, "config": {{{", ".join(parts)}}}}}'
