"""Choosing trials of an expanded spec by id prefix or plan row (``--trial``, ``--index``), and
checking that their data exists before anything runs or is queued."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from configcheck import ConfigError
from orchestrator.sweep.expand import Trial
from orchestrator.sweep.spec import SpecError
from train.safefs import read_regular


def select_trials(spec_file: str, trials: list[Trial], ids: Sequence[str] = (),
                  indices: Sequence[int] = ()) -> list[Trial]:
    """The trials named by id (a unique prefix) or by plan row ``#``, in plan order; every kept
    trial when neither is given. A dropped trial cannot be chosen: the budget says why."""
    if ids and indices:
        raise ConfigError("--trial/--index", "give one of them, not both")
    if not ids and not indices:
        return [t for t in trials if t.kept]
    chosen: dict[str, Trial] = {}
    for prefix in ids:
        found = [t for t in trials if t.trial_id.startswith(prefix)]
        if len(found) != 1:
            listing = ", ".join(t.trial_id for t in trials[:10]) + (" ..." if len(trials) > 10 else "")
            raise SpecError(spec_file, f"--trial {prefix}", f"matches {len(found)} trials; ids: {listing}")
        chosen[found[0].trial_id] = found[0]
    for index in indices:
        if not 0 <= index < len(trials):
            raise SpecError(spec_file, f"--index {index}", f"allowed: 0..{len(trials) - 1} (plan's # column)")
        chosen[trials[index].trial_id] = trials[index]
    for t in chosen.values():
        if not t.kept:
            raise SpecError(spec_file, f"trial {t.trial_id}", f"is dropped by the budget: {t.reason}")
    order = {t.trial_id: i for i, t in enumerate(trials)}
    return sorted(chosen.values(), key=lambda t: order[t.trial_id])


def check_data(spec_file: str, trials: Sequence[Trial]) -> None:
    """Every distinct ``data:`` section must point at data that is there (or may be downloaded),
    checked here, where the submit runs: on a cluster the login node sees the same shared
    filesystem as the compute nodes, so a wrong ``data.root`` fails now, not once per queued job."""
    from train.data import DataNotFound, locate  # heavy: loads numpy; only this path needs it

    seen: set[int] = set()
    for t in trials:
        data = t.config["data"]
        if id(data) in seen:  # expanded trials share their section dicts
            continue
        seen.add(id(data))
        try:
            locate(data)
        except DataNotFound as err:
            where = "" if t.source == "base" or not any(k.startswith("data.") for k in t.overrides) \
                else f" (in {t.source}, trial {t.trial_id})"
            raise SpecError(spec_file, "", f"{err}{where}") from None


def check_same_data(spec_file: str, trial_dirs: dict[str, Any], trials: Sequence[Trial]) -> None:
    """A trial id leaves ``data.root`` out: the same data moved (or the same path spelled another
    way) keeps every finished result. Other data must not pass for it: where a trial recorded its
    data (data.json, at its first start) somewhere else than ``data.root`` now points, the data
    found now is fingerprinted (read once) and must be the same. ``trial_dirs``: trial id -> dir."""
    from train.data import fingerprint, locate  # heavy: loads numpy; only this path needs it

    checked: dict[tuple[int, str], str] = {}
    for t in trials:
        try:
            first = json.loads(read_regular(trial_dirs[t.trial_id] / "data.json"))
        except (OSError, ValueError, KeyError):
            continue
        if not isinstance(first, dict) or not isinstance(first.get("fingerprint"), str):
            continue
        kind, path = locate(t.config["data"])
        if kind == "download" or str(path) == first.get("path", "") and kind == first.get("kind"):
            continue
        key = (id(t.config["data"]), str(path))
        if key not in checked:
            checked[key] = fingerprint(t.config["data"])["fingerprint"]
        if checked[key] != first["fingerprint"]:
            raise SpecError(spec_file, "data.root", f"{path} holds other data (fingerprint {checked[key]}) than trial "
                            f"{t.trial_id} trained on ({first['fingerprint']}, from {first.get('path')}); point "
                            "data.root back there, or run this as a new sweep (another name: or --runs-dir)")
