"""A search's proposals fed to a running Tune run: a Tune ``Searcher`` that hands out the first
proposals, and as each trial ends asks the search for the next ones (``more``: tell, propose,
record; the submit's), so up to ``parallel`` trials run at all times instead of batch by batch.
The sampler is Optuna's (``orchestrator/search/sampled.py``); Tune only schedules."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ray.tune.search import Searcher

from orchestrator.sweep.expand import Trial

# Tune saves its searcher with the experiment state: the searcher holds only a key into this table.
FEEDS: dict[str, dict[str, Any]] = {}

GIVE_UP_S = 30.0
More = Callable[[str, dict[str, Any]], list[Trial]]  # (ended trial id, its result.json) -> trials to start


class Feed(Searcher):
    """``FEEDS[key]``: ``queue`` (specs to start), ``live`` (Tune id -> trial id), ``ended``
    (trial id -> when it ended, while its result.json is not written yet), ``more``, ``spec_for``
    (Trial -> spec), ``result`` (trial id -> result.json or None), ``added`` (called with each new
    trial)."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def _feed(self) -> dict[str, Any]:
        return FEEDS[self.key]

    def _read_ended(self) -> None:
        """Tell the search every ended trial whose result.json is there now (Tune may end a trial
        a moment before its worker writes it), and queue what it proposes."""
        f = self._feed()
        for trial_id in list(f["ended"]):
            result = f["result"](trial_id)
            if result is None:
                continue
            del f["ended"][trial_id]
            for t in f["more"](trial_id, result):
                f["added"](t)
                f["queue"].append(f["spec_for"](t))

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        f = self._feed()
        self._read_ended()
        if f["queue"]:
            spec = f["queue"].pop(0)
            f["live"][trial_id] = spec["trial_id"]
            return {"spec": spec}
        if not f["live"]:  # nothing runs: a trial ended without a result for 30 s has none coming
            for trial_id, when in list(f["ended"].items()):  # (the run's end writes its failure)
                if time.monotonic() - when > GIVE_UP_S:
                    del f["ended"][trial_id]
            if not f["ended"]:
                return Searcher.FINISHED
        return None  # asked again soon

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        f = self._feed()
        ended = f["live"].pop(trial_id, None)
        if ended is not None:
            f["ended"][ended] = time.monotonic()
        self._read_ended()

    def save(self, checkpoint_path: str) -> None:  # the journal and the sweep dir are the state
        pass

    def restore(self, checkpoint_path: str) -> None:
        pass
