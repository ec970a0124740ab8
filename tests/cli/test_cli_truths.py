"""What a new user is told (issue 7), without a scheduler: narrowing a sweep from the command
line, dropped rows that show what was counted, time limits in words, one-line failures, restarts
only from real evidence, a stale spec's status, and an expansion whose caches cannot mix trials."""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import pytest
import yaml
from kit import ROOT

from configcheck.durations import time_words
from model import count_params, resolve_config
from orchestrator.backends.slurm.sacct_text import parse_sacct
from orchestrator.backends.states import error_line
from orchestrator.sweep.expand import expand
from orchestrator.sweep.spec import load_spec

JOINT = str(ROOT / "sweeps" / "joint.yaml")


def plan(cli, *args: str) -> list[dict]:
    code, out, err = cli("plan", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_set_replaces_a_grid_list(cli) -> None:
    rows = plan(cli, JOINT, "--set", "grid.model.layers=[2,3]")
    assert len(rows) == 2 * 7
    assert {(r["config"]["model"]["layers"], r["config"]["model"]["blocks"]) for r in rows} == \
        {(n, b) for n in (2, 3) for b in range(1, 8)}
    full = {r["trial_id"] for r in plan(cli, JOINT)}
    assert {r["trial_id"] for r in rows} <= full  # the same trials (and ids) as in the full sweep


def test_set_adds_removes_and_validates_sweep_lists(cli) -> None:
    one = plan(cli, JOINT, "--set", "grid.model.blocks=null", "--set", "grid.model.layers=[3]")
    assert [r["config"]["model"]["layers"] for r in one] == [3] and one[0]["config"]["model"]["channels"] == 85  # blocks back at 2
    varied = plan(cli, JOINT, "--set", "grid.model.layers=[2]", "--set", "vary.model.kernel=[5]")
    assert len(varied) == 7 + 1 and varied[-1]["config"]["model"]["kernel"] == 5
    for bad, words in [("grid.model.layers=[]", "grid.model.layers: expected a non-empty list"),
                       ("grid.model.nosuch=null", "grid has no key model.nosuch; it has: model.layers, model.blocks"),
                       ("grid.model=[1]", "allowed: SECTION.KEY"),
                       ("grid.model.nosuch=[1]", "unknown key")]:
        code, out, err = cli("plan", JOINT, "--set", bad)
        assert code == 2 and words in err and err.count("\n") == 1, err


def test_set_on_a_swept_key_says_how_to_change_the_sweep(cli) -> None:
    code, _, err = cli("plan", JOINT, "--set", "model.layers=2")
    assert code == 0
    assert "ignored by 28 of 28 trials" in err and "--set grid.model.layers=[...]" in err


def test_the_advice_in_the_joint_sweeps_comment_works(cli) -> None:
    """The comment's own command, taken from the file and run: `--set grid.model.layers=[2,3]`
    gives 2 x 7 trials, as it says."""
    import re

    text = (ROOT / "sweeps" / "joint.yaml").read_text()
    m = re.search(r"`--set (grid\.model\.layers=\[[0-9,]+\])` \((\d+) x (\d+) trials\)", text)
    assert m, "the comment no longer says how to narrow the sweep"
    rows = plan(cli, JOINT, "--set", m.group(1))
    assert len(rows) == int(m.group(2)) * int(m.group(3))
    assert sorted({r["config"]["model"]["layers"] for r in rows}) == [int(x) for x in m.group(1).split("[")[1][:-1].split(",")]


def test_the_demo_sweeps_comment_describes_its_grid() -> None:
    import re

    import yaml

    text = (ROOT / "sweeps" / "demo.yaml").read_text()
    grid = yaml.safe_load(text)["stages"][0]["grid"]  # the demo study's screen
    prose = " ".join(line.lstrip("#").strip() for line in text.splitlines())
    m = re.search(r"(\d+)-(\d+) layers x (\d+)-(\d+) blocks", prose)
    assert m, "the comment no longer states the grid"
    assert (min(grid["model.layers"]), max(grid["model.layers"])) == (int(m.group(1)), int(m.group(2)))
    assert (min(grid["model.blocks"]), max(grid["model.blocks"])) == (int(m.group(3)), int(m.group(4)))


def test_a_fill_dropped_row_shows_the_value_it_was_counted_at(write_spec) -> None:
    spec = write_spec("name: fd\nbase: {model: {layers: 2}}\ngrid: {model.blocks: [1, 50]}\n"
                      "budget: {max_params: 3000, fill: model.channels}\n")
    kept, dropped = expand(load_spec(spec))
    assert kept.kept and not dropped.kept
    assert dropped.config["model"]["channels"] == 1
    assert dropped.params == count_params(dropped.config["model"]) > 3000


def test_grid_plus_many_points_never_mix_up_cached_models(write_spec) -> None:
    """Every trial's count and fill belong to its own config, however many sections the grid
    freed before the vary/trials points were expanded (an id-keyed cache once reused them)."""
    trials_yaml = "\n".join(f"  - {{model.layers: 3, model.blocks: {b}, model.kernel: 5}}" for b in range(1, 9))
    spec = write_spec("name: mix\nbase: {model: {pool: global}}\n"
                      "grid: {model.layers: [2, 3, 4], model.blocks: [1, 2, 3, 4, 5, 6]}\n"
                      "vary: {model.kernel: [1, 5, 7], model.skip_kernel: [3]}\n"
                      f"trials:\n{trials_yaml}\nbudget: {{max_params: 1_000_000, fill: model.channels}}\n")
    trials = expand(load_spec(spec))
    assert len(trials) == 18 + 4 + 8 and len({t.trial_id for t in trials}) == len(trials)
    for t in trials:
        m = t.config["model"]
        for key, value in t.overrides.items():
            assert m[key.split(".", 1)[1]] == value, (t.source, key)
        assert t.params == count_params(m) <= 1_000_000
        assert count_params(resolve_config({**m, "channels": m["channels"] + 1})) > 1_000_000


@pytest.mark.parametrize(("text", "words"), [
    ("1:30", "time limit 2 min per job (1:30 is MM:SS = 1 min 30 s, rounded up to whole minutes; "
             "for hours write HH:MM:SS)"),
    ("01:30:00", "time limit 1 h 30 min per job"),
    ("90", "time limit 1 h 30 min per job (90 is MM = 1 h 30 min)"),
    ("1-12", "time limit 1 d 12 h per job"),
])
def test_time_limits_in_words(text: str, words: str) -> None:
    assert time_words(text) == words


def test_a_traceback_becomes_its_exception_line() -> None:
    from train.data import DataNotFound, locate

    try:
        locate({"name": "cifar10", "root": "/wrong/path", "format": "auto", "download": False})
    except DataNotFound as err:
        text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    assert text.count("\n") > 3
    line = error_line(text)
    assert line.startswith("DataNotFound: data.root: no CIFAR-10 found in /wrong/path") and "\n" not in line
    chained = ("Traceback (most recent call last):\n  File \"a\", line 1\nValueError: first\n\nDuring handling "
               "of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n"
               "  File \"b\", line 2\n    x()\nRuntimeError: second\nmore of the message\n")
    assert error_line(chained) == "RuntimeError: second"
    assert error_line("job 4_1 ended FAILED\n\n") == "job 4_1 ended FAILED"


def test_a_pending_range_row_is_not_a_restart() -> None:
    """What sacct -D prints for a throttled array while its tasks start (sacct lags): the range
    row still lists tasks that have records of their own."""
    states = parse_sacct("59_0|COMPLETED\n59_1|RUNNING\n59_2|RUNNING\n59_[2-5%2]|PENDING\n")
    assert states["59_1"].restarts == 0 and states["59_2"].restarts == 0
    assert states["59_2"].state == "running" and states["59_5"].state == "pending"
    requeued = parse_sacct("60_0|REQUEUED\n60_0|PREEMPTED\n60_0|RUNNING\n61|NODE_FAIL\n61|PENDING\n")
    assert requeued["60_0"].restarts == 2 and requeued["60_0"].active and requeued["61"].restarts == 1


def test_status_of_an_edited_spec_warns_and_lists_its_own_trials(cli, tmp_path: Path) -> None:
    """A sweep dir written by a submit of one spec; the spec is then edited (epochs 1 -> 2)."""
    from orchestrator.store.sweepdir import SweepDir

    base = {"model": {"layers": 2, "blocks": 1, "channels": 4}, "data": {"name": "synthetic"},
            "train": {"epochs": 1}}
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"name": "s", "base": base, "grid": {"train.seed": [0, 1]}}))
    old = expand(load_spec(spec))
    SweepDir(tmp_path / "runs" / "s").write_plan({}, old)
    code, out, err = cli("status", str(spec), "--runs-dir", str(tmp_path / "runs"), "--json")
    assert code == 0 and "differs" not in err
    assert [r["trial_id"] for r in json.loads(out)] == [t.trial_id for t in old]

    spec.write_text(yaml.safe_dump({"name": "s", "base": {**base, "train": {"epochs": 2}},
                                    "grid": {"train.seed": [0, 1, 2]}}))
    new = expand(load_spec(spec))
    code, out, err = cli("status", str(spec), "--runs-dir", str(tmp_path / "runs"), "--json")
    assert code == 0
    assert "differs from what was submitted" in err and "3 of its 3 trials are not there" in err
    assert "2 trials there are not in this spec" in err
    rows = json.loads(out)
    assert [r["trial_id"] for r in rows] == [t.trial_id for t in new]
    assert {r["state"] for r in rows} == {"missing"} and [r["varying"] for r in rows] == \
        [{"train.seed": s} for s in (0, 1, 2)]
    assert all(r["params"] == count_params(base["model"]) and r["config"]["train"]["epochs"] == 2 for r in rows)
    # the same spec, given the --set that makes it what was submitted: no warning
    code, out, err = cli("status", str(spec), "--runs-dir", str(tmp_path / "runs"), "--json",
                         "--set", "train.epochs=1", "--set", "grid.train.seed=[0,1]")
    assert code == 0 and "differs" not in err and len(json.loads(out)) == 2


def test_help_promises_only_what_exists(cli) -> None:
    code, out, _ = cli("--help")
    assert code == 0
    commands = [line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()]
    assert {"plan", "submit", "status", "leaderboard", "sync", "demo"} <= set(commands)
    for name in commands:  # every command the help names is there
        assert cli(name, "--help")[0] == 0, name


def test_search_and_wandb_are_sweep_level_and_never_change_ids(write_spec, cli) -> None:
    plain = write_spec("name: s\nbase: {model: {layers: 2}}\ngrid: {train.seed: [0, 1]}\n", "plain.yaml")
    tuned = write_spec("name: s\nbase: {model: {layers: 2}}\ngrid: {train.seed: [0, 1]}\n"
                       "search: {scheduler: asha, metric: val_loss, grace_period: 2}\n"
                       "wandb: {project: p, tags: [a], mode: disabled}\n", "tuned.yaml")
    ids = [t.trial_id for t in expand(load_spec(plain))]
    assert [t.trial_id for t in expand(load_spec(tuned))] == ids
    assert [t.trial_id for t in expand(load_spec(plain, ["search.scheduler=asha", "wandb.project=x"]))] == ids
    spec = load_spec(tuned)
    assert spec.search["scheduler"] == "asha" and spec.search["reduction_factor"] == 4 and spec.wandb["mode"] == "disabled"
    assert "search" not in expand(spec)[0].config
    for text, words in [("base: {search: {scheduler: asha}}", "base.search: is sweep-level: move it to the top level"),
                        ("search: {scheduler: hyperband}", "search.scheduler: 'hyperband' is not allowed; allowed: none, asha"),
                        ("search: {grace: 1}", "search.grace: unknown key; valid keys: scheduler, metric, mode"),
                        ("wandb: {mode: sometimes}", "wandb.mode: 'sometimes' is not allowed"),
                        ("wandb: {tags: a}", "wandb.tags: expected a list")]:
        code, _, err = cli("plan", str(write_spec(f"name: bad\n{text}\n", "bad.yaml")))
        assert code == 2 and words in err and err.count("\n") == 1, err


def test_plan_shows_the_filled_width_when_many_keys_vary(write_spec) -> None:
    """Beyond three varying keys the plan has one `changes` column: the width budget.fill chose
    must be in it too (issue 16: it was hidden)."""
    from rich.console import Console

    from orchestrator.cli.render import print_plan

    spec = write_spec("name: many\nbase: {model: {layers: 2}}\ngrid: {model.blocks: [1, 2], model.kernel: [3, 5], "
                      "model.skip_kernel: [1, 3], train.seed: [0, 1]}\nbudget: {max_params: 50000, fill: model.channels}\n")
    trials = expand(load_spec(spec))
    console = Console(width=200, record=True, file=__import__("io").StringIO())
    print_plan("many", trials, ("model", "channels"), None, console=console)
    text = console.export_text()
    for t in trials:
        assert f"channels={t.config['model']['channels']}" in text
