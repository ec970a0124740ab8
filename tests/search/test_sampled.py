"""Searches (random, TPE, NSGA-II through Optuna): every proposal within the budget by
construction, the feasible set exactly the grid's kept set, a journal that resumes, bad input in
one line. The objective here is a table lookup (no training): the end-to-end search is in
tests/backends/ray/test_search_ray.py."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from configcheck import ConfigError
from model import get_family, resolve_config
from orchestrator.search.sampled import SampledSearch
from orchestrator.sweep.expand import expand
from orchestrator.sweep.proposers import Search, proposer_for
from orchestrator.sweep.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
JOINT = ROOT / "sweeps" / "joint_search.yaml"


def write(tmp: Path, search: dict[str, Any], budget: dict[str, Any] | None = None, **top: Any) -> Path:
    doc = {"name": "s", "base": {"model": {"family": "resnet", "layers": 2, "blocks": 1, "channels": 8},
                                 "data": {"name": "synthetic", "val_size": 40}, "train": {"epochs": 2}},
           "search": search, **({"budget": budget} if budget else {}), **top}
    path = tmp / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def counts(cfg: dict[str, Any]) -> tuple[int, int]:
    family = get_family(cfg["model"])
    return family.count(cfg["model"]), family.macs(cfg["model"])


def fake_result(trial: Any) -> dict[str, Any]:
    """A deterministic 'accuracy' of the config (a lookup, not training): higher for more params
    and an lr near 3e-3, so a sampler has something to find."""
    lr = trial.config["train"]["optimizer"]["lr"]
    acc = 0.5 + 0.3 * math.log10(trial.params) / 7 - 0.05 * abs(math.log10(lr / 3e-3))
    return {"status": "completed", "val_acc": acc, "test_acc": acc}


def run(proposer: Any, results: dict[str, Any] | None = None) -> list[Any]:
    """Drive a proposer to the end, telling each batch its fake results; returns every trial trained."""
    trained, batch = [], proposer.first()
    while batch:
        trained += batch
        batch = proposer.more({t.trial_id: fake_result(t) for t in batch})
    return trained


@pytest.mark.parametrize("algorithm", ["random", "tpe", "nsga2"])
def test_every_proposal_is_within_the_budget(algorithm: str) -> None:
    """The seed-000 search space with the 5 M budget and fill: 60 proposals, each counted again
    from its recorded config (not from the proposer's own count) and within the budget."""
    spec = load_spec(JOINT, [f"search.algorithm={algorithm}", "search.trials=60",
                             "search.objectives=[{val_acc: max}, {params: min}]"])
    trained = run(proposer_for(spec))
    assert len(trained) == 60 and len({t.trial_id for t in trained}) == 60
    for t in trained:
        params, _ = counts(t.config)
        assert params == t.params <= 5_000_000 and t.kept, (t.overrides, params)


def test_the_feasible_set_is_exactly_what_the_grid_keeps(tmp_path: Path) -> None:
    """Counted two ways: the search's enumeration of its model keys, and the grid of the same
    keys expanded with the same budget (plan's rule): the same points."""
    space = {"model.layers": [1, 2, 3, 4], "model.blocks": {"int": [1, 4]}, "model.kernel": [3, 5, 7],
             "model.channels": {"int": [8, 64, ], "step": 8}}
    spec = load_spec(write(tmp_path, {"algorithm": "random", "space": space, "trials": 3},
                           {"max_params": 150_000}))
    found = {tuple(p.values(pt).values()) for p in [Search(spec).feasible] for pt in p.points}
    grid = write(tmp_path, {}, {"max_params": 150_000}, grid={k: v if isinstance(v, list) else
                                                             list(range(v["int"][0], v["int"][1] + 1, v.get("step", 1)))
                                                             for k, v in space.items()})
    kept = {tuple(t.overrides[k] for k in space) for t in expand(load_spec(grid)) if t.kept}
    assert found == kept and 0 < len(kept) < 4 * 4 * 3 * 8  # the budget really cuts


def test_proposals_fit_where_naive_sampling_mostly_would_not(tmp_path: Path) -> None:
    """A tight budget: most of the raw space is over it; every proposal still fits."""
    space = {"model.blocks": {"int": [1, 6]}, "model.channels": {"int": [4, 128]}, "model.kernel": [3, 5, 7]}
    spec = load_spec(write(tmp_path, {"algorithm": "tpe", "space": space, "trials": 40, "parallel": 4},
                           {"max_params": 40_000}))
    search = Search(spec)
    assert search.feasible.rate < 0.3  # what random sampling of the raw space would hit
    for t in run(search.proposer(None)):
        assert counts(t.config)[0] <= 40_000


def test_the_same_seed_proposes_the_same_trials() -> None:
    a = [t.trial_id for t in proposer_for(load_spec(JOINT)).first()]
    b = [t.trial_id for t in proposer_for(load_spec(JOINT)).first()]
    c = [t.trial_id for t in proposer_for(load_spec(JOINT, ["search.seed=7"])).first()]
    assert a == b and len(a) == 4 and a != c


def test_a_killed_search_resumes_from_its_journal(tmp_path: Path) -> None:
    """Proposals asked and never told (the search was killed) come back first; what was told is
    not proposed again; the search ends with exactly `trials` trained, none twice."""
    spec = load_spec(JOINT, ["search.trials=10", "search.parallel=3"])
    journal = tmp_path / "journal.log"
    first = proposer_for(spec, journal=journal)
    batch1 = first.first()
    batch2 = first.more({t.trial_id: fake_result(t) for t in batch1})  # told 3, asked 3 more
    first.study().ask()  # and killed between asking Optuna and recording what it proposed
    del first  # killed with batch2 in flight
    again = proposer_for(spec, journal=journal)
    assert [t.trial_id for t in again.first()] == [t.trial_id for t in batch2]
    rest = run(again)
    ids = [t.trial_id for t in batch1 + rest]
    assert len(ids) == 10 == len(set(ids)) and again.trained() == 10 and again.done()
    assert "10 / 10 trained" in again.summary() and "0 rejected" in again.summary()
    states = [t.state.name for t in again.study().trials]
    assert "RUNNING" not in states and states.count("FAIL") == 1  # the half-made ask, closed; counted nowhere


def test_a_small_space_ends_when_every_point_is_proposed(tmp_path: Path) -> None:
    """Two feasible points, 5 trials asked for: the repeats are told their earlier result and
    the search stops after 2 trained instead of asking forever."""
    spec = load_spec(write(tmp_path, {"algorithm": "random", "space": {"model.kernel": [3, 5]}, "trials": 5,
                                      "parallel": 1}))
    proposer = proposer_for(spec)
    trained = run(proposer)
    assert sorted(t.overrides["model.kernel"] for t in trained) == [3, 5] and proposer.done()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tpe_stuck_on_known_points_is_given_an_unexplored_one(tmp_path: Path, seed: int) -> None:
    """TPE on a small discrete space keeps asking what it knows; after 10 repeats in a row an
    unexplored point is put to it (enqueued), so a search for every point trains every point
    instead of ending on 200 repeats. Without the fallback (STUCK past MAX_REPEATS) it does not."""
    from orchestrator.search import sampled

    spec = load_spec(write(tmp_path, {"algorithm": "tpe", "space": {"model.kernel": [3, 5, 7], "model.blocks": [1, 2],
                                                                    "train.seed": [0, 1, 2, 3]},
                                      "trials": 24, "parallel": 1, "seed": seed}))
    trained = run(proposer_for(spec))
    assert len({t.trial_id for t in trained}) == len(trained) == 24
    old = sampled.STUCK
    try:
        sampled.STUCK = sampled.MAX_REPEATS + 1
        assert len(run(proposer_for(spec))) < 24  # the can-fail twin: plain TPE gives up early here
    finally:
        sampled.STUCK = old


@pytest.mark.parametrize(("search", "extra", "where", "words"), [
    ({"algorithm": "bayes", "space": {"train.epochs": [1]}, "trials": 2}, {}, "search.algorithm", "allowed: grid"),
    ({"algorithm": "tpe", "space": {}, "trials": 2}, {}, "search.space", "non-empty mapping"),
    ({"algorithm": "tpe", "space": {"train.epochs": [1, 2]}, "trials": 0}, {}, "search.trials", ">= 1"),
    ({"algorithm": "tpe", "space": {"train.epochs": [1, 2]}}, {}, "search.trials", "required"),
    ({"algorithm": "tpe", "space": {"train.epochs": [1, 2]}, "trials": 2, "objectives": [{"val_f1": "max"}]}, {},
     "search.objectives[0]", "'val_f1' is not allowed"),
    ({"algorithm": "nsga2", "space": {"train.epochs": [1, 2]}, "trials": 2}, {}, "search.objectives", "two or more"),
    ({"algorithm": "tpe", "space": {"model.channels": {"float": [1, 9]}}, "trials": 2}, {}, "search.space.model.channels",
     "choices or an int range"),
    ({"algorithm": "tpe", "space": {"model.channels": {"int": [200, 300]}}, "trials": 2}, {"budget": {"max_params": 10_000}},
     "search.space", "no point within the budget"),
    ({"algorithm": "tpe", "space": {"model.blocks": {"int": [1, 3]}}, "trials": 2},
     {"budget": {"max_params": 10_000_000, "fill": "model.blocks"}}, "search.space.model.blocks", "is also budget.fill"),
    ({"algorithm": "tpe", "space": {"train.epochs": [1, -1]}, "trials": 2}, {}, "search.space.train.epochs[1]",
     "not a valid train.epochs"),
    ({"algorithm": "tpe", "space": {"train.epochs": [1, 2]}, "trials": 2}, {"grid": {"train.seed": [0, 1]}}, "grid",
     "proposes its trials from search.space"),
    ({"space": {"train.epochs": [1, 2]}}, {}, "search.space", "set search.algorithm"),
    ({"algorithm": "tpe", "space": {"train.lr": {"int": [3, 1]}}, "trials": 2}, {}, "search.space.train.lr.int",
     "above hi"),
])
def test_bad_search_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, cli, search: dict, extra: dict,
                                                                  where: str, words: str) -> None:
    budget = extra.pop("budget", None)
    spec = write(tmp_path, search, budget, **extra)
    for args in (["plan", str(spec)], ["submit", str(spec), "--backend", "ray", "--runs-dir", str(tmp_path / "runs")]):
        code, out, err = cli(*args)
        assert code == 2 and err.count("\n") == 1 and f"{spec}: {where}" in err and words in err, (args, err)
    assert not (tmp_path / "runs").exists()


def test_the_journal_is_a_private_file_in_the_sweep_dir(tmp_path: Path) -> None:
    from orchestrator.store.sweepdir import SweepDir
    from train.safefs import Unsafe

    sweep = SweepDir(tmp_path / "runs" / "s")
    path = sweep.search_journal()
    assert path == sweep.path / "search" / "journal.log" and path.is_file() and not path.is_symlink()
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere")  # someone's link: refused, never followed
    with pytest.raises(Unsafe, match="is a symlink; refusing to follow it"):
        sweep.search_journal()
    assert not (tmp_path / "elsewhere").exists()


def test_search_keys_are_not_part_of_any_trial_id(tmp_path: Path) -> None:
    """The same proposal under another seed or trials count is the same trial."""
    a = proposer_for(load_spec(JOINT)).first()[0]
    spec = load_spec(JOINT, ["search.trials=99", "search.parallel=1"])
    b = Search(spec).make(dict(a.overrides), 0)
    assert a.trial_id == b.trial_id
    assert json.dumps(a.config, sort_keys=True) == json.dumps(b.config, sort_keys=True)


def test_the_seed_000_search_space_is_counted_exactly(tmp_path: Path) -> None:
    """sweeps/joint_search.yaml: N x B x F x K x pool = 504 model points. With global pooling the
    feasible ones are exactly the grid's kept ones over the same keys (the grid's fill and budget
    rule); every point left out is one the model refuses (a pool larger than the last map)."""
    search = Search(load_spec(JOINT))
    feasible = search.feasible
    assert feasible.total == 4 * 7 * 3 * 2 * 3 and search.points() is None  # lr is continuous
    doc = yaml.safe_load(JOINT.read_text())
    space = doc.pop("search")["space"]
    doc["grid"] = {k: v if isinstance(v, list) else list(range(v["int"][0], v["int"][1] + 1))
                   for k, v in space.items() if k.startswith("model.") and k != "model.pool"}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    kept = {tuple(t.overrides[k] for k in doc["grid"]) for t in expand(load_spec(tmp_path / "grid.yaml")) if t.kept}
    found = [feasible.values(p) for p in feasible.points]
    assert {tuple(v[k] for k in doc["grid"]) for v in found if v["model.pool"] == "global"} == kept
    base = load_spec(JOINT).base["model"]
    points = {tuple(v.values()) for v in found}
    left_out = [c for c in itertools.product(*(d.values for d in feasible.domains)) if c not in points]
    assert left_out and len(points) + len(left_out) == 504
    for combo in left_out:
        with pytest.raises(ConfigError, match="pool"):
            resolve_config({**base, **{k.split(".")[1]: v for k, v in zip(feasible.keys, combo)}, "channels": 1})
    assert isinstance(search.proposer(None), SampledSearch)


def test_set_narrows_or_removes_one_key_of_the_space() -> None:
    spec = load_spec(JOINT, ["search.space.model.layers=[2, 3]", "search.space.model.pool=null"])
    keys = [d.key for d in Search(spec).domains]
    assert "model.pool" not in keys and Search(spec).feasible.total == 2 * 7 * 3 * 2
    with pytest.raises(Exception, match="search.space has no key model.width"):
        load_spec(JOINT, ["search.space.model.width=null"])


def test_each_verdict_is_told_as_what_it_is(tmp_path: Path) -> None:
    """completed: its objectives; stopped early (ASHA): pruned; failed: failed. Only the first
    counts toward the best; all count toward trials trained."""
    spec = load_spec(write(tmp_path, {"algorithm": "random", "space": {"model.kernel": [3, 5, 7]}, "trials": 3,
                                      "parallel": 3}))
    proposer = proposer_for(spec)
    a, b, c = proposer.first()
    proposer.more({a.trial_id: {"status": "completed", "val_acc": 0.5}, b.trial_id: {"status": "stopped_early",
                   "val_acc": 0.9}, c.trial_id: {"status": "failed", "error": "boom"}})
    states = {t.user_attrs["trial_id"]: t.state.name for t in proposer.study().trials if "repeat_of" not in t.user_attrs}
    assert states == {a.trial_id: "COMPLETE", b.trial_id: "PRUNED", c.trial_id: "FAIL"}
    assert proposer.best() == (0.5, a.trial_id) and proposer.trained() == 3 and proposer.done()


def test_a_trial_pruned_at_a_rung_then_promoted_is_learnt_with_its_final_value(tmp_path: Path) -> None:
    """ASHA on SLURM: a trial that pauses is told as pruned (with its metric at the rung, which
    TPE ranks pruned trials by); promoted and completed, it is added once, complete, so the
    sampler learns its final value; it still counts as one trained trial."""
    spec = write(tmp_path, {"algorithm": "tpe", "space": {"model.blocks": {"int": [1, 3]}, "train.seed": {"int": [0, 99]}},
                            "trials": 2, "parallel": 2}, {"max_params": 30_000, "fill": "model.channels"})
    proposer = proposer_for(load_spec(spec), journal=tmp_path / "journal.log")
    a, b = proposer.first()
    proposer.more({a.trial_id: {"status": "stopped_early", "val_acc": 0.3, "epochs_completed": 1},
                   b.trial_id: {"status": "completed", "val_acc": 0.5}})
    pruned = next(t for t in proposer.study().trials if t.user_attrs.get("trial_id") == a.trial_id)
    assert pruned.state.name == "PRUNED" and pruned.intermediate_values == {1: 0.3}
    final = {a.trial_id: {"status": "completed", "val_acc": 0.8}, b.trial_id: {"status": "completed", "val_acc": 0.5}}
    proposer.later(final)
    proposer.later(final)  # once only
    again = [t for t in proposer.study().trials if t.user_attrs.get("trial_id") == a.trial_id]
    assert [t.state.name for t in again] == ["PRUNED", "COMPLETE"] and again[1].values == [0.8]
    assert again[1].params == pruned.params and proposer.best() == (0.8, a.trial_id)
    assert proposer.trained() == 2 and proposer.done() and proposer.first() == []


def test_plan_of_a_search_shows_the_space_the_feasible_count_and_the_first_proposals(cli) -> None:
    code, out, err = cli("plan", str(JOINT))
    assert code == 0, err
    assert "search (tpe): 30 trials, 4 at once, seed 0; objectives val_acc (max)" in out
    assert "model.blocks: integers 1..7" in out and "train.optimizer.lr: reals 0.0001..0.01 (log scale)" in out
    assert "model points within the budget: 462 of 504" in out and "none is rejected" in out
    first = [t.trial_id for t in proposer_for(load_spec(JOINT)).first()]
    assert all(tid in out for tid in first)


def test_a_dry_run_of_a_search_shows_its_first_proposals_and_writes_nothing(tmp_path: Path, cli) -> None:
    spec = write(tmp_path, {"algorithm": "tpe", "space": {"model.blocks": {"int": [1, 3]}, "model.kernel": [3, 5, 7],
                                                          "train.seed": {"int": [0, 99]}},
                            "trials": 8, "parallel": 3}, {"max_params": 30_000, "fill": "model.channels"})
    code, out, err = cli("submit", str(spec), "--backend", "ray", "--dry-run", "--runs-dir", str(tmp_path / "runs"))
    assert code == 0, err
    first = [t.trial_id for t in proposer_for(load_spec(spec)).first()]
    assert len(first) == 3 and all(f"would submit {tid}" in out for tid in first) and not (tmp_path / "runs").exists()
    # Ray inside a SLURM job neither runs here nor runs a driver job of its own: refused in one line
    code, _, err = cli("submit", str(spec), "--partition", "gpu", "--backend", "ray", "--dry-run",
                       "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and "search.algorithm" in err and "can do neither" in err and err.count("\n") == 1, err


def test_a_journal_continues_only_the_search_it_began(tmp_path: Path, cli) -> None:
    """More trials continue it; another space is refused in one line before anything is written."""
    journal = tmp_path / "journal.log"
    proposer_for(load_spec(JOINT), journal=journal).first()
    assert len(proposer_for(load_spec(JOINT, ["search.trials=40"]), journal=journal).first()) == 4  # the same 4
    with pytest.raises(Exception, match="differs from the search its journal"):
        proposer_for(load_spec(JOINT, ["search.space.model.kernel=[3, 5]"]), journal=journal).first()
