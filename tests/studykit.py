"""The 3-stage study the scheduler tests run (4 learning rates -> the top 2 trained longer -> the
best with 2 seeds) and the check every run of it must pass, from the sweep dir's files alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kit import tiny

from orchestrator.results.leaderboard import collect
from orchestrator.store.manifest import manifest_trials
from orchestrator.store.stages import stage_records
from orchestrator.store.sweepdir import SweepDir

STUDY: dict[str, Any] = {"name": "st", "base": tiny(train={"epochs": 1}), "stages": [
    {"name": "screen", "grid": {"train.optimizer.lr": [0.01, 0.05, 0.1, 0.2]}},
    {"name": "longer", "select": {"top": 2}, "carry": ["model", "train.optimizer.lr"], "train": {"epochs": 2}},
    {"name": "seeds", "select": {"top": 1, "seeds": [0, 1]}, "carry": ["model", "train.optimizer.lr"],
     "train": {"epochs": 2}},
]}


def check_study(path: Path) -> dict[str, list[str]]:
    """Every stage's selection is the top K of its leaderboard computed from the files; each stage
    trains what its selection carried; the trial the last two stages share is one trial; every
    epoch of every trial was trained once. Returns stage name -> its trial ids."""
    sweep = SweepDir(path)
    recs = stage_records(sweep)
    assert [r["name"] for r in recs] == ["screen", "longer", "seeds"], recs
    ids = {r["name"]: [m["trial_id"] for m in r["trials"]] for r in recs}
    assert [len(v) for v in ids.values()] == [4, 2, 2]
    for rec, nxt, k in ((recs[0], recs[1], 2), (recs[1], recs[2], 1)):
        board = collect([sweep], None, only=set(ids[rec["name"]]))
        finished = [e for e in board.entries if set(e.statuses) == {"completed"}]
        sel = rec["selection"]
        assert [s["trial_ids"] for s in sel["selected"]] == [e.trial_ids for e in finished[:k]], (sel, board)
        assert [s["metric"] for s in sel["selected"]] == [e.metric for e in finished[:k]]
        picked = {t for s in sel["selected"] for t in s["trial_ids"]}
        assert {src for m in nxt["trials"] for src in m["from"]} == picked
        lrs = {s["config"]["train"]["optimizer"]["lr"] for s in sel["selected"]}
        by_id = {t.trial_id: t for t in manifest_trials(sweep)}
        assert {by_id[t].config["train"]["optimizer"]["lr"] for t in ids[nxt["name"]]} == lrs  # carried
    assert recs[2]["selection"] is None
    shared = set(ids["longer"]) & set(ids["seeds"])
    assert len(shared) == 1  # seed 0 of the best is the longer stage's own trial: trained once
    every = {t for v in ids.values() for t in v}
    assert len(every) == 7 and {t.trial_id for t in manifest_trials(sweep) if t.kept} == every
    for tid in every:
        result = json.loads((sweep.trial_dir(tid) / "result.json").read_text())
        assert result["status"] == "completed", result
        epochs = [json.loads(line)["epoch"] for line in (sweep.trial_dir(tid) / "metrics.jsonl").read_text().splitlines()]
        assert epochs == list(range(1, result["epochs"] + 1)), (tid, epochs)  # none twice, none lost
    return ids


# A study whose stages search: TPE proposes 4 screen trials (2 at a time) within the budget, then a
# random search of 2 learning rates for each of the screen's top 2 models, trained longer.
SEARCHED: dict[str, Any] = {"name": "ss", "base": tiny(train={"epochs": 1}, data={"val_size": 10}),
                            "budget": {"max_params": 30_000}, "stages": [
    {"name": "screen", "search": {"algorithm": "tpe", "trials": 4, "parallel": 2, "seed": 3, "space": {
        "model.channels": [4, 8, 16], "train.optimizer.lr": {"float": [0.01, 0.3], "log": True}}}},
    {"name": "tune", "select": {"top": 2}, "train": {"epochs": 2}, "search": {
        "algorithm": "random", "trials": 2, "parallel": 2, "space": {
            "train.optimizer.lr": {"float": [0.01, 0.3], "log": True}}}},
]}


def check_searched(path: Path) -> None:
    """Each stage's trials are its searches' proposals (every one within the budget), the tune
    stage searches each picked model once (its own journal), and the pick is the screen's top 2."""
    sweep = SweepDir(path)
    recs = stage_records(sweep)
    assert [r["name"] for r in recs] == ["screen", "tune"]
    by_id = {t.trial_id: t for t in manifest_trials(sweep)}
    screen, tune = ([m["trial_id"] for m in r["trials"]] for r in recs)
    assert len(screen) == 4 and all(by_id[t].params <= 30_000 for t in screen)
    board = collect([sweep], None, only=set(screen))
    finished = [e for e in board.entries if set(e.statuses) == {"completed"}]
    picks = recs[0]["selection"]["selected"]
    assert [s["trial_ids"] for s in picks] == [e.trial_ids for e in finished[:2]]
    models = {json.dumps(s["config"]["model"], sort_keys=True): s["trial_ids"] for s in picks}
    journals = sorted(p.name for p in (path / "study" / "01-tune").glob("search-*.log"))
    assert len(journals) == len(models)  # one search per distinct picked model
    assert len(tune) == 2 * len(models) and all(by_id[t].config["train"]["epochs"] == 2 for t in tune)
    for m in recs[1]["trials"]:  # each traced to the pick whose model it trains
        assert m["from"] == models[json.dumps(by_id[m["trial_id"]].config["model"], sort_keys=True)]
    for tid in screen + tune:
        result = json.loads((sweep.trial_dir(tid) / "result.json").read_text())
        assert result["status"] == "completed", result
        epochs = [json.loads(line)["epoch"] for line in (sweep.trial_dir(tid) / "metrics.jsonl").read_text().splitlines()]
        assert epochs == list(range(1, result["epochs"] + 1))
