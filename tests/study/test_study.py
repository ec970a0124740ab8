"""Studies without a scheduler: the language (bad input in one line, --set on a stage), the
shipped seed studies planned with today's counts, stage trial ids pinned, the selection rules
against the stage's leaderboard, and the rank correlations."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from kit import ORCH, ROOT, tiny

from orchestrator.results.leaderboard import collect
from orchestrator.results.ranking import kendall_tau_b, spearman_rho
from orchestrator.store.stages import write_stage
from orchestrator.store.sweepdir import SweepDir
from orchestrator.study.expand import stage_trials
from orchestrator.study.rules import parse_select
from orchestrator.study.select import make_selection
from orchestrator.study.spec import load_study
from orchestrator.sweep.expand import expand
from orchestrator.sweep.spec import load_spec
from train.files import failure, write_result

BASE = tiny(train={"epochs": 1})
STUDY = {"name": "st", "base": BASE, "stages": [
    {"name": "screen", "grid": {"train.optimizer.lr": [0.01, 0.05, 0.1, 0.2]}},
    {"name": "longer", "select": {"top": 2}, "carry": ["model", "train.optimizer.lr"], "train": {"epochs": 2}},
    {"name": "seeds", "select": {"top": 1, "seeds": [0, 1]}, "carry": ["model", "train.optimizer.lr"],
     "train": {"epochs": 2}},
]}


def write(tmp: Path, doc: dict, name: str = "study") -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def orch(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ORCH, *args], capture_output=True, text=True, cwd=tmp, timeout=300,
                          env={**os.environ, "HOME": str(tmp / "home"), "COLUMNS": "200"})


def plan_json(tmp: Path, spec: Path | str, *sets: str) -> dict:
    proc = orch(tmp, "plan", str(spec), "--json", *(x for s in sets for x in ("--set", s)))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_seed_studies_plan_every_stage_with_todays_counts(tmp_path: Path) -> None:
    counts = {s["name"]: (s["trials_min"], s["trials_max"])
              for s in plan_json(tmp_path, ROOT / "sweeps" / "seed000_study.yaml")["stages"]}
    # 29 = sweeps/single_param.yaml, 28 = sweeps/joint.yaml; the top 2 of those with 3 seeds each
    assert counts == {"one_at_a_time": (29, 29), "joint": (28, 28), "long": (6, 6)}
    counts = {s["name"]: (s["trials_min"], s["trials_max"])
              for s in plan_json(tmp_path, ROOT / "sweeps" / "seed003_study.yaml")["stages"]}
    assert counts == {"screen": (6, 6), "googlenet": (5, 5), "lr_wd": (12, 12)}  # as seed003_*.yaml
    for single in ("single_param", "seed003_screen"):  # the first stages are those sweeps, trial for trial
        ids = {t.trial_id for t in expand(load_spec(ROOT / "sweeps" / f"{single}.yaml")) if t.kept}
        study = "seed000_study" if single == "single_param" else "seed003_study"
        assert set(plan_json(tmp_path, ROOT / "sweeps" / f"{study}.yaml")["stages"][0]["trials"]) == ids
    # the joint stage, for a screen config with the base's kernels, is sweeps/joint.yaml's grid (same ids)
    study = load_study(ROOT / "sweeps" / "seed000_study.yaml")
    screen = [t for t in stage_trials(study, study.stages[0], None).trials if t.source.endswith("base")
              or t.overrides == {"model.layers": 4}]
    joint = stage_trials(study, study.stages[1], [{"trial_ids": [screen[0].trial_id], "config": screen[0].config}])
    assert {t.trial_id for t in joint.trials if t.kept} == \
        {t.trial_id for t in expand(load_spec(ROOT / "sweeps" / "joint.yaml")) if t.kept}


def test_set_on_a_stage_shrinks_it(tmp_path: Path) -> None:
    spec = ROOT / "sweeps" / "seed000_study.yaml"
    plan = plan_json(tmp_path, spec, "stages.0.train.epochs=1", "stages.joint.grid.model.layers=[2]",
                     "stages.2.select.top=1")
    counts = {s["name"]: s["trials_max"] for s in plan["stages"]}
    assert counts == {"one_at_a_time": 29, "joint": 7, "long": 3}
    study = load_study(spec, ["stages.0.train.epochs=1"])
    assert {t.config["train"]["epochs"] for t in stage_trials(study, study.stages[0], None).trials} == {1}
    assert study.stages[1].spec.base["train"]["epochs"] == 50  # the other stages keep theirs


def test_stage_trial_ids_are_pinned_and_a_shared_trial_is_one_trial(tmp_path: Path) -> None:
    study = load_study(write(tmp_path, STUDY))
    screen = stage_trials(study, study.stages[0], None).trials
    assert [t.trial_id for t in screen] == ["fa2aa2886fae", "cac120a8fe80", "eaa815efe1c5", "0d81b190dc41"]
    picks = [{"trial_ids": [t.trial_id], "config": t.config} for t in screen[2:]]
    longer = stage_trials(study, study.stages[1], picks)
    assert [t.trial_id for t in longer.trials] == ["0e94494cfc06", "bda86a44f887"]
    assert longer.origin == {"0e94494cfc06": [screen[2].trial_id], "bda86a44f887": [screen[3].trial_id]}
    assert longer.trials[0].overrides["train.optimizer.lr"] == 0.1 and longer.trials[0].overrides["model.layers"] == 2
    seeds = stage_trials(study, study.stages[2], [{"trial_ids": ["0e94494cfc06"], "config": longer.trials[0].config}])
    # seed 0 is the base's seed: the same config as the pick itself, so the same trial (trained once)
    assert [t.trial_id for t in seeds.trials] == ["0e94494cfc06", "77f34d37f155"]


@pytest.mark.parametrize(("change", "words"), [
    (lambda d: d["stages"][0].update(select={"top": 1}), "stages[0].select: the first stage has no stage before it"),
    (lambda d: d["stages"][1].update(carry=["model.layerz"]), "stages[1].carry[0]: 'model.layerz' is not a key of the "
                                                               "previous stage's configs"),
    (lambda d: d["stages"][1].update(select={"top": 0}), "stages[1].select.top: must be >= 1"),
    (lambda d: d["stages"][2].update(name="screen"), "stages[2].name: 'screen' is also the name of stages[0]"),
    (lambda d: d["stages"][1].update(select={"top": 1, "best_per": ["model.layers"]}),
     "stages[1].select: give exactly one of top: K"),
    (lambda d: d["stages"][1].pop("select"), "stages[1].select: is required from the second stage on"),
    (lambda d: d.update(grid={"train.epochs": [1]}), "grid: in a study each stage has its own"),
    (lambda d: d["stages"][1].update(select={"pareto": ["flops"]}), "stages[1].select.pareto[0]: 'flops'"),
    # every config the screen could pass on is over the budget at the stage's width
    (lambda d: (d.update(budget={"max_params": 20_000}),
                d["stages"][1].update(model={"channels": 64}, carry=["train.optimizer.lr"])),
     "stages[1]: keeps no trial for the config of screen trial"),
])
def test_bad_studies_are_one_line_exit_2_and_write_nothing(tmp_path: Path, change, words) -> None:
    doc = json.loads(json.dumps(STUDY))
    change(doc)
    spec = write(tmp_path, doc)
    for cmd in (("plan", str(spec)), ("submit", str(spec), "--backend", "ray", "--runs-dir", str(tmp_path / "runs"))):
        proc = orch(tmp_path, *cmd)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], proc.stderr
        assert lines[0].startswith(f"error: {spec}: ")
    assert not (tmp_path / "runs").exists()


def _finish(sweep: SweepDir, t, status: str, best: float) -> None:
    """result.json as run_trial writes it."""
    d = sweep.trial_dir(t.trial_id)
    d.mkdir(parents=True, exist_ok=True)
    if status == "failed":
        write_result(d, failure(t.trial_id, "crash", "RuntimeError: boom\n", t.params))
        return
    write_result(d, {"status": status, "stopped_by": "asha" if status == "stopped_early" else None,
                     "trial_id": t.trial_id, "params": t.params, "epochs": 3, "epochs_completed": 3 if status ==
                     "completed" else 1, "test_acc": best - 0.01, "test_loss": 1.0, "val_acc": best,
                     "best_val_acc": best, "best_test_acc": best - 0.01, "wall_seconds": 3.0,
                     "images_per_second": 10.0, "error": None, "failure_kind": None})


def test_each_rule_selects_from_the_stages_leaderboard(tmp_path: Path) -> None:
    doc = {"name": "sel", "base": tiny(data={"val_size": 10}), "stages": [
        {"name": "grid", "repeat": 2, "grid": {"model.layers": [1, 2, 3], "model.channels": [8, 16]}},
        {"name": "next", "select": {"top": 2}}]}
    study = load_study(write(tmp_path, doc))
    trials = [t for t in stage_trials(study, study.stages[0], None).trials if t.kept]
    sweep = SweepDir(tmp_path / "runs" / "sel")
    sweep.write_plan(study.raw, trials)
    write_stage(sweep, 0, "grid", study.stages[0].definition(),
                [{"trial_id": t.trial_id, "from": []} for t in trials], "")
    best = {(1, 8): (0.50, 0.54), (1, 16): (0.60, 0.62), (2, 8): (0.70, "failed"), (2, 16): (0.65, "stopped_early"),
            (3, 8): (0.40, 0.44), (3, 16): (0.58, 0.60)}
    seen: dict = {}
    for t in trials:
        key = (t.config["model"]["layers"], t.config["model"]["channels"])
        outcome = best[key][seen.setdefault(key, 0)]
        seen[key] += 1
        if outcome == "failed":
            _finish(sweep, t, "failed", 0)
        elif outcome == "stopped_early":
            _finish(sweep, t, "stopped_early", 0.3)
        else:
            _finish(sweep, t, "completed", outcome)
    record = {"trials": [{"trial_id": t.trial_id, "from": []} for t in trials]}
    board = collect([sweep], None, only={t.trial_id for t in trials})
    finished = [e for e in board.entries if set(e.statuses) == {"completed"}]
    # seed means; (2, 8) and (2, 16) rank on the one seed each that trained to the end, as the board does
    assert [round(e.metric, 4) for e in finished] == [0.70, 0.65, 0.61, 0.59, 0.52, 0.42]
    cfg = [(e.config["model"]["layers"], e.config["model"]["channels"]) for e in finished]
    assert cfg == [(2, 8), (2, 16), (1, 16), (3, 16), (1, 8), (3, 8)]

    def pick(rule: dict) -> list[tuple[int, int]]:
        sel = make_selection(sweep, record, parse_select(rule, "select"), {t.trial_id: t.macs for t in trials})
        assert "1 failed and 1 stopped early of 12 trials: selected from the 10" in sel["note"]
        assert [c["metric"] for c in sel["candidates"]] == [e.metric for e in board.entries]  # every ranked row
        return [(s["config"]["model"]["layers"], s["config"]["model"]["channels"]) for s in sel["selected"]]

    assert pick({"top": 2}) == [(2, 8), (2, 16)]
    # more than trained to the end: the best stopped early comes next (not a config already picked)
    assert pick({"top": 9}) == cfg
    assert [s for s in board.entries if set(s.statuses) == {"stopped_early"}]  # (2, 16)'s seed 1, same config
    assert pick({"best_per": ["model.layers"]}) == [(2, 8), (1, 16), (3, 16)]
    assert pick({"best_per": ["model.channels"]}) == [(2, 8), (2, 16)]
    # (3, 8) stopped early in both seeds: a top 6 takes it after the five that trained to the end
    for t in trials:
        if (t.config["model"]["layers"], t.config["model"]["channels"]) == (3, 8):
            _finish(sweep, t, "stopped_early", 0.3)
    sel = make_selection(sweep, record, parse_select({"top": 6}, "select"), {})
    assert [(s["config"]["model"]["layers"], s["config"]["model"]["channels"]) for s in sel["selected"]] == \
        [(2, 8), (2, 16), (1, 16), (3, 16), (1, 8), (3, 8)]
    assert "1 of the 6 picked stopped early (only 5 config(s) trained to the end)" in sel["note"]
    for t in trials:
        if (t.config["model"]["layers"], t.config["model"]["channels"]) == (3, 8):
            _finish(sweep, t, "completed", best[(3, 8)][t.config["train"]["seed"]])
    front = [c for c, e in zip(cfg, finished) if not any(
        o.params <= e.params and o.metric >= e.metric and (o.params, o.metric) != (e.params, e.metric) for o in finished)]
    assert 2 <= len(front) < len(cfg) and pick({"pareto": ["params"]}) == front


def test_rank_correlations_match_their_textbook_values() -> None:
    assert kendall_tau_b([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau_b([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # scipy.stats.kendalltau's and spearmanr's documented examples (ties in both lists)
    assert math.isclose(kendall_tau_b([12, 2, 1, 12, 2], [1, 4, 7, 1, 0]), -0.47140452079103173)
    assert math.isclose(spearman_rho([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]), 0.8207826816681233)
    assert math.isnan(kendall_tau_b([1, 1], [1, 2])) and math.isnan(spearman_rho([1, 1, 1], [1, 2, 3]))


def started(tmp: Path) -> tuple[Path, SweepDir]:
    """STUDY's spec and a sweep dir where its first stage has started (its plan and stage record)."""
    spec = write(tmp, STUDY)
    study = load_study(spec)
    sweep = SweepDir(tmp / "runs" / "st")
    trials = [t for t in stage_trials(study, study.stages[0], None).trials if t.kept]
    sweep.write_plan(study.raw, trials)
    write_stage(sweep, 0, "screen", study.stages[0].definition(), [{"trial_id": t.trial_id, "from": []} for t in trials],
                "")
    return spec, sweep


def test_a_stage_that_started_cannot_change_unless_restarted(tmp_path: Path) -> None:
    from orchestrator.store.stages import restart_from

    spec, sweep = started(tmp_path)
    dry = ("submit", str(spec), "--backend", "ray", "--dry-run", "--runs-dir", str(tmp_path / "runs"))
    assert orch(tmp_path, *dry).returncode == 0
    edited = json.loads(json.dumps(STUDY))
    edited["stages"][1]["train"] = {"epochs": 3}  # a stage that has not started: takes effect
    write(tmp_path, edited)
    assert orch(tmp_path, *dry).returncode == 0
    edited["stages"][0]["grid"]["train.optimizer.lr"] = [0.01, 0.3]  # the one that started: refused
    write(tmp_path, edited)
    proc = orch(tmp_path, *dry)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "stages[0]: (screen) has started with a different definition" in proc.stderr
    assert "--restart-stage 0" in proc.stderr
    assert orch(tmp_path, *dry, "--restart-stage", "0").returncode == 0
    proc = orch(tmp_path, *dry, "--restart-stage", "7")
    assert proc.returncode == 2 and "--restart-stage: 7: the study has stages 0-2" in proc.stderr
    assert restart_from(sweep, 0) == ["screen"]  # its record moved aside, kept
    assert not (sweep.path / "study" / "00-screen").exists()
    assert list(sweep.path.glob("study/restarted-*/00-screen/stage.json"))
    assert orch(tmp_path, *dry).returncode == 0  # the edited stage is a new one now


def test_a_study_that_searches_plans_its_counts(tmp_path: Path) -> None:
    from studykit import SEARCHED

    plan = plan_json(tmp_path, write(tmp_path, SEARCHED, "ss"))
    assert [(s["name"], s["trials_max"]) for s in plan["stages"]] == [("screen", 4), ("tune", 4)]
    bad = json.loads(json.dumps(SEARCHED))
    bad["stages"][1]["select"]["seeds"] = [0, 1]
    proc = orch(tmp_path, "plan", str(write(tmp_path, bad, "bad")))
    assert proc.returncode == 2 and "stages[1].select.seeds: a search stage proposes its own trials" in proc.stderr


@pytest.mark.parametrize("damage", ['[1, 2]', '{"index": 0, "name": "screen", "trials": ["x"]}',
                                    '{"index": 0, "name": "screen", "trials": [{"trial_id": "../../etc"}]}'])
def test_a_damaged_stage_record_is_named_and_never_crashes_a_reader(tmp_path: Path, damage: str) -> None:
    spec, sweep = started(tmp_path)
    (sweep.path / "study" / "00-screen" / "stage.json").write_text(damage)
    for cmd in (("status", str(sweep.path)), ("leaderboard", str(sweep.path))):
        proc = orch(tmp_path, *cmd)
        assert proc.returncode == 0, proc.stderr
        assert "00-screen/stage.json is corrupt" in proc.stderr, proc.stderr
