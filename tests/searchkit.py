"""What the search tests of every backend share: one TPE search spec (8 trials, 2 at a time,
each proposal within a 30 k budget) and the check that a finished search trained exactly its
trials, each once, within the budget, with the journal agreeing (imported as ``searchkit``)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from model import get_family

BUDGET = 30_000
SPEC = {
    "name": "tpe",
    "base": {"model": {"family": "resnet", "layers": 2, "blocks": 1, "channels": 8},
             "data": {"name": "synthetic", "subset": 40, "test_subset": 10, "val_size": 40},
             "train": {"epochs": 2, "batch_size": 40, "optimizer": {"name": "sgd", "lr": 0.05}, "augment": ["flip"]}},
    "search": {"algorithm": "tpe", "trials": 8, "parallel": 2, "seed": 3,
               "space": {"model.blocks": {"int": [1, 3]}, "model.kernel": [3, 5, 7],
                         "train.optimizer.lr": {"float": [0.001, 0.3], "log": True}}},
    "budget": {"max_params": BUDGET, "fill": "model.channels"},
}


def results(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in (sweep / "trials").glob("*/result.json")}


def check_search(sweep: Path) -> None:
    """8 trained, each within the budget (counted again from its recorded config), each epoch of
    each trial trained once, and the journal's told trials the same 8."""
    done = results(sweep)
    assert len(done) == 8 and {r["status"] for r in done.values()} == {"completed"}, done
    rows = [json.loads(line) for line in (sweep / "trials.jsonl").read_text().splitlines()]
    assert {r["trial_id"] for r in rows} == set(done) and all(r.get("proposed_by") == "tpe" for r in rows)
    for tid in done:
        cfg = yaml.safe_load((sweep / "trials" / tid / "config.yaml").read_text())
        assert get_family(cfg["model"]).count(cfg["model"]) <= BUDGET
        epochs = [json.loads(line)["epoch"] for line in (sweep / "trials" / tid / "metrics.jsonl").read_text().splitlines()]
        assert epochs == [1, 2], (tid, epochs)
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = str(sweep / "search" / "journal.log")
    study = optuna.load_study(study_name="search", storage=optuna.storages.JournalStorage(
        JournalFileBackend(path, lock_obj=JournalFileOpenLock(path))))
    told = [t for t in study.trials if t.state.name == "COMPLETE" and "repeat_of" not in t.user_attrs]
    assert sorted(t.user_attrs["trial_id"] for t in told) == sorted(done)
    assert not [t for t in study.trials if t.state.name == "RUNNING"]


