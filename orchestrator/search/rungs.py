"""ASHA's promotions where no Tune scheduler runs the trials (SLURM): the rungs, and which paused
trial goes on next. Pure: the driver hands in what each trial measured at each rung.

Asynchronous successive halving (Li et al. 2020): a trial trains to the first rung and pauses;
whenever a slot is free, a trial paused at rung k goes on to rung k+1 if its metric there is in
the top 1/eta of all trials that reached rung k (highest rung first); else a new trial starts.
Trials never promoted end stopped early at their rung."""

from __future__ import annotations

from collections.abc import Mapping


def rungs(grace_period: int, reduction_factor: float, max_t: int) -> list[int]:
    """The epochs where trials pause: grace_period x eta^k below max_t, then max_t (the end)."""
    out: list[int] = []
    k = 0
    while (r := round(grace_period * reduction_factor ** k)) < max_t:
        if not out or r > out[-1]:
            out.append(r)
        k += 1
    return [*out, max_t]


def promotion(reached: Mapping[int, Mapping[str, float]], waiting: Mapping[str, int], levels: list[int],
              reduction_factor: float, maximize: bool) -> tuple[str, int] | None:
    """(trial, the rung it goes on to) for the next promotion, or None. ``reached``: rung epoch ->
    {trial: its metric after that epoch}, for every trial that trained that far; ``waiting``:
    trial -> the rung epoch it is paused at."""
    for k in range(len(levels) - 2, -1, -1):  # the highest rung first
        at = levels[k]
        scores = reached.get(at) or {}
        top = int(len(scores) / reduction_factor)
        if top < 1:
            continue
        ranked = sorted(scores, key=lambda t: scores[t], reverse=maximize)[:top]
        for trial in ranked:
            if waiting.get(trial) == at:
                return trial, levels[k + 1]
    return None
