"""A finished stage's selection: its leaderboard (``orchestrator.results.leaderboard.collect`` over
the stage's trials, seeds averaged, the same ranking ``orchestrate leaderboard --stage`` prints),
then the next stage's rule over the configs that trained to the end (a trial ASHA stopped early
was judged by it already; one that failed has nothing to rank). ``top: K`` with fewer than K
configs trained to the end takes the best of those stopped early next, in rank order, and says so."""

from __future__ import annotations

from typing import Any

from orchestrator.results.board import Entry, lower_is_better
from orchestrator.results.leaderboard import collect
from orchestrator.store.sweepdir import SweepDir
from orchestrator.study.rules import Rule
from orchestrator.sweep.trialconfig import canonical, get_dotted


def _front(entries: list[Entry], axes: tuple[str, ...], low: bool, macs: dict[str, int]) -> list[Entry]:
    """Entries no other beats: at most its cost on every axis and at least its metric, one strictly."""
    sign = 1.0 if low else -1.0

    def cost(e: Entry) -> tuple[float, ...]:
        return tuple(float(e.params if a == "params" else macs.get(e.trial_ids[0], 0)) for a in axes)

    def beats(a: Entry, b: Entry) -> bool:
        ca, cb = cost(a), cost(b)
        better_or_equal = all(x <= y for x, y in zip(ca, cb)) and sign * a.metric <= sign * b.metric
        return better_or_equal and (ca != cb or a.metric != b.metric)

    return [e for e in entries if not any(beats(o, e) for o in entries if o is not e)]


def _config_key(e: Entry) -> str:
    """A config apart from its seed (two rows of one config: its seeds that ran different lengths)."""
    return canonical({**e.config, "train": {k: v for k, v in e.config["train"].items() if k != "seed"}})


def make_selection(sweep: SweepDir, record: dict[str, Any], rule: Rule, macs: dict[str, int]) -> dict[str, Any]:
    """The selection from one stage (its ``stage.json`` record) by ``rule``; ``macs``: trial id ->
    MACs (for a Pareto front against MACs). A stage that ended in part selects from what finished
    and says so in ``note``."""
    ids = [m["trial_id"] for m in record["trials"]]
    board = collect([sweep], rule.by, only=set(ids))
    low = lower_is_better(board.metric)
    finished = [e for e in board.entries if set(e.statuses) == {"completed"}]
    stopped_rows: list[Entry] = []
    if rule.kind == "top":
        chosen = finished[:rule.top]
        if len(chosen) < rule.top:  # too few trained to the end: the best of those stopped early next
            have = {_config_key(e) for e in chosen}
            for e in board.entries:
                if len(chosen) + len(stopped_rows) >= rule.top:
                    break
                if set(e.statuses) == {"stopped_early"} and _config_key(e) not in have:
                    have.add(_config_key(e))
                    stopped_rows.append(e)
            chosen = [e for e in board.entries if e in chosen or e in stopped_rows]  # rank order
    elif rule.kind == "best_per":
        best: dict[str, Entry] = {}
        for e in finished:  # ranked order: the first of each group is its best
            key = repr([get_dotted(e.config, tuple(k.split("."))) for k in rule.keys])
            best.setdefault(key, e)
        chosen = list(best.values())
    else:
        front = _front(finished, rule.keys, low, macs)
        chosen = [e for e in finished if e in front]
    failed = len(board.failed)
    stopped = sum(len(e.trial_ids) for e in board.entries if set(e.statuses) != {"completed"})
    note = ""
    if failed or stopped:
        parts = [f"{failed} failed" if failed else "", f"{stopped} stopped early" if stopped else ""]
        note = (f"{' and '.join(p for p in parts if p)} of {len(ids)} trials: selected from the "
                f"{sum(len(e.trial_ids) for e in finished)} that trained to the end")
    if stopped_rows:
        note = (note + "; " if note else "") + (f"{len(stopped_rows)} of the {len(chosen)} picked stopped early (only "
                                                f"{len(chosen) - len(stopped_rows)} config(s) trained to the end)")
    if rule.kind == "top" and len(chosen) < rule.top:
        note = (note + "; " if note else "") + f"only {len(chosen)} config(s) to choose {rule.top} from"

    def row(e: Entry) -> dict[str, Any]:
        return {"trial_ids": e.trial_ids, "metric": e.metric, "params": e.params, "rank": e.rank,
                "config": e.config}

    return {"rule": rule.to_json(), "words": rule.words(), "metric": board.metric, "note": note,
            "candidates": [{**{k: v for k, v in row(e).items() if k != "config"}, "status": e.status}
                           for e in board.entries],
            "failed": [f["trial_id"] for f in board.failed],
            "selected": [row(e) for e in chosen]}
