"""``orchestrate leaderboard`` on a generated sweep dir holding every kind of trial: completed,
stopped early, failed, running, queued, never submitted, and seeds of one config. The plan and
counts are the real expansion's; results and metrics are written as the trainer writes them."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from kit import ORCH

from orchestrator.store.sweepdir import Submission, SweepDir
from orchestrator.sweep.expand import expand
from orchestrator.sweep.spec import load_spec
from orchestrator.tracking.wandb_files import read_run, run_files
from train.files import failure, write_result

BASE = {"model": {"blocks": 1}, "data": {"name": "synthetic", "val_size": 100},
        "train": {"epochs": 3, "optimizer": {"name": "sgd", "lr": 0.05}}}

# (layers, channels) -> one outcome per seed: (status, best_val_acc) or a word
OUTCOMES = {
    (1, 8): [("completed", 0.50), ("completed", 0.54)],
    (1, 16): [("completed", 0.60), ("stopped_early", 0.56)],
    (2, 8): [("completed", 0.49), "failed"],  # more params than (1, 8) and worse: off the front
    (2, 16): ["running", "queued"],
    (3, 8): ["missing", "missing"],
    (3, 16): [("completed", 0.61), ("completed", 0.63)],
}


def write_trial(sweep: SweepDir, t, status: str, best: float, with_val: bool = True) -> None:
    """result.json and metrics.jsonl as run_trial writes them: val_acc climbs by 0.1 an epoch to ``best``."""
    d = sweep.trial_dir(t.trial_id)
    d.mkdir(parents=True, exist_ok=True)
    epochs = 3 if status == "completed" else 2
    rows = []
    for e in range(1, epochs + 1):
        acc = round(best - 0.1 * (epochs - e), 4)
        row = {"epoch": e, "lr": 0.05, "train_loss": 2 - acc, "train_acc": acc + 0.05, "test_loss": 2.1 - acc,
               "test_acc": acc - 0.02, "epoch_seconds": 30.0, "images_per_second": 100.0}
        if with_val:
            row.update(val_loss=2.05 - acc, val_acc=acc)
        rows.append(row)
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_result(d, {"status": status, "stopped_by": "asha" if status == "stopped_early" else None,
                     "trial_id": t.trial_id, "params": t.params, "epochs": 3, "epochs_completed": epochs,
                     "test_acc": rows[-1]["test_acc"], "test_loss": rows[-1]["test_loss"],
                     "val_acc": best if with_val else None, "best_val_acc": best if with_val else None,
                     "best_test_acc": rows[-1]["test_acc"], "wall_seconds": 30.0 * epochs, "images_per_second": 100.0,
                     "error": None, "failure_kind": None})


def make(tmp: Path, name: str = "lb", with_val: bool = True) -> tuple[SweepDir, dict]:
    base = {**BASE, "data": {**BASE["data"], "val_size": 100 if with_val else 0}}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "base": base, "repeat": 2, "budget": {"max_params": 200_000},
                                    "grid": {"model.layers": [1, 2, 3], "model.channels": [8, 16]}}))
    spec = load_spec(path)
    trials = [t for t in expand(spec) if t.kept]
    sweep = SweepDir(tmp / "runs" / name)
    sweep.write_plan(spec.raw, trials, spec.search, spec.wandb)
    by_cfg: dict = {}
    for t in trials:
        by_cfg.setdefault((t.config["model"]["layers"], t.config["model"]["channels"]), []).append(t)
    subs = []
    for key, outcomes in OUTCOMES.items():
        for t, outcome in zip(sorted(by_cfg[key], key=lambda t: t.config["train"]["seed"]), outcomes):
            if outcome == "missing":
                continue
            subs.append(Submission(t.trial_id, "1", "slurm", time.time(), str(sweep.path / "slurm"), {}))
            if outcome == "failed":
                write_result(sweep.trial_dir(t.trial_id), failure(t.trial_id, "crash", "Traceback (most recent call last):\n"
                                                                  "  File x\nRuntimeError: boom\n", t.params))
            elif outcome == "running":
                d = sweep.trial_dir(t.trial_id)
                d.mkdir(parents=True)
                (d / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "val_acc": 0.3, "test_acc": 0.3}) + "\n")
            elif outcome != "queued":
                write_trial(sweep, t, *outcome, with_val=with_val)
    sweep.record(subs)
    return sweep, by_cfg


def orch(tmp: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([ORCH, *args, "--runs-dir", str(tmp / "runs")], capture_output=True, text=True, cwd=tmp,
                          env={**os.environ, "HOME": str(tmp / "home"), "COLUMNS": "200"}, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def brute_front(rows: list[dict], metric: str) -> set[int]:
    """The Pareto front by definition: no row with at most the params and at least the metric, one strictly."""
    return {r["rank"] for r in rows if not any(
        o["params"] <= r["params"] and o[metric] >= r[metric] and (o["params"] < r["params"] or o[metric] > r[metric])
        for o in rows)}


def test_order_seed_aggregation_front_and_every_trial_accounted_for(tmp_path: Path) -> None:
    sweep, by_cfg = make(tmp_path)
    proc = orch(tmp_path, "leaderboard", str(sweep.path), "--format", "json")
    rows = json.loads(proc.stdout)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    # (1, 16): a 3-epoch completed seed and a 2-epoch ASHA-stopped one are not one mean (issue 16)
    order = [(3, 16), (1, 16), (1, 16), (1, 8), (2, 8)]  # .62 (mean), .60, .56, .52 (mean), .49 (one seed)
    assert [(r["varying"]["model.layers"], r["varying"]["model.channels"]) for r in rows] == order
    assert [r["n"] for r in rows] == [2, 1, 1, 2, 1]
    assert rows[0]["best_val_acc"] == pytest.approx(0.62) and rows[0]["best_val_acc_std"] == pytest.approx(0.0141421, 1e-4)
    assert rows[4]["best_val_acc_std"] is None and "trial_id" in rows[4] and len(rows[0]["trial_ids"]) == 2
    assert set(rows[0]["trial_ids"]) == {t.trial_id for t in by_cfg[(3, 16)]}
    assert [(r["status"], r["epochs"]) for r in rows[1:3]] == [("completed", 3), ("stopped_early", 2)]
    assert rows[1]["note"] == rows[2]["note"] == ("not aggregated: its 2 seeds ran different lengths "
                                                  "(3 epochs, 2 epochs (asha))")
    assert "note" not in rows[0] and "note" not in rows[3]
    assert all(r["params"] == by_cfg[(r["varying"]["model.layers"], r["varying"]["model.channels"])][0].params for r in rows)
    assert "model.seed" not in rows[0]["varying"] and "train.seed" not in rows[0]["varying"]
    assert {r["rank"] for r in rows if r["pareto"]} == brute_front(rows, "best_val_acc")
    assert [r["pareto"] for r in rows] == [True, True, False, True, False]
    err = proc.stderr
    assert "running: 1" in err and "(epoch 1/3" in err
    assert "queued: 1" in err and "failed: 1" in err and "RuntimeError: boom" in err and "missing: 2" in err

    per_seed = json.loads(orch(tmp_path, "leaderboard", str(sweep.path), "--format", "json", "--per-seed").stdout)
    assert len(per_seed) == 7 and all("trial_id" in r for r in per_seed)
    assert [r["best_val_acc"] for r in per_seed] == sorted((r["best_val_acc"] for r in per_seed), reverse=True)

    table = orch(tmp_path, "leaderboard", str(sweep.path), "--top", "2").stdout
    assert "top 2 shown" in table and "missing: 2" in table and "val acc" in table
    assert "0.6200 ± 0.0141" in table


def test_csv_json_markdown_and_latex_parse(tmp_path: Path) -> None:
    sweep, _ = make(tmp_path)
    rows = list(csv.DictReader(io.StringIO(orch(tmp_path, "leaderboard", str(sweep.path), "--format", "csv").stdout)))
    assert len(rows) == 5 and rows[0]["rank"] == "1" and float(rows[0]["best_val_acc"]) == pytest.approx(0.62)
    assert {"model.layers", "model.channels", "params", "pareto", "n", "test_acc"} <= set(rows[0])
    md = orch(tmp_path, "leaderboard", str(sweep.path), "--format", "markdown").stdout.splitlines()
    assert len(md) == 7 and all(line.startswith("|") and line.endswith("|") for line in md)
    assert len({line.count("|") for line in md}) == 1
    tex = orch(tmp_path, "leaderboard", str(sweep.path), "--format", "latex").stdout
    assert tex.startswith("\\begin{table}") and tex.rstrip().endswith("\\end{table}")
    body = tex.split("\\midrule\n")[1].split("\\bottomrule")[0].strip().splitlines()
    header = tex.split("\\toprule\n")[1].split("\\midrule")[0]
    assert len(body) == 5 and {line.count(" & ") for line in body} == {header.count(" & ")}
    assert all(line.endswith("\\\\") for line in body)
    # the front's rows (ranks 1, 2, 4) bold in every cell, the others in none
    assert [line.count("\\textbf{") for line in body] == [header.count(" & ") + 1] * 2 + [0] + \
        [header.count(" & ") + 1] + [0]
    assert "$\\pm$" in tex and "best\\_val\\_acc" in tex  # escaped for LaTeX


def test_latex_is_paper_ready_and_its_columns_choosable(tmp_path: Path) -> None:
    """Numbers right-aligned, no wall/status/s-per-epoch by default; --columns picks (issue 16)."""
    sweep, _ = make(tmp_path)
    tex = orch(tmp_path, "leaderboard", str(sweep.path), "--format", "latex").stdout
    spec = tex.split("\\begin{tabular}{")[1].split("}")[0]
    header = [c.strip() for c in tex.split("\\toprule\n")[1].split("\\midrule")[0].rstrip(" \\\n").split(" & ")]
    assert header == ["rank", "channels", "layers", "params", "best\\_val\\_acc", "test acc", "n"]
    assert spec == "rrrrrrr"
    tex = orch(tmp_path, "leaderboard", str(sweep.path), "--format", "latex", "--columns", "rank,trial id,metric,wall").stdout
    header = tex.split("\\toprule\n")[1].split("\\midrule")[0]
    assert header.strip() == "rank & trial id & best\\_val\\_acc & wall \\\\"
    assert tex.split("\\begin{tabular}{")[1].split("}")[0] == "rlrr"
    bad = orch(tmp_path, "leaderboard", str(sweep.path), "--format", "latex", "--columns", "rank,accuracy", check=False)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: --columns: 'accuracy' is not")


def test_csv_with_test_acc_as_the_metric_names_each_column_once_and_nulls_are_empty(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    sweep, _ = make(tmp_path, "noval", with_val=False)
    text = orch(tmp_path, "leaderboard", str(sweep.path), "--format", "csv").stdout
    header = text.splitlines()[0].split(",")
    assert len(header) == len(set(header)) and "test_acc" in header and "test_acc.1" not in header
    assert "-" not in [c for line in text.splitlines()[1:] for c in next(csv.reader([line]))]
    frame = pandas.read_csv(io.StringIO(text))
    assert list(frame.columns) == header
    for col in ("test_acc", "test_acc_std", "epochs", "params"):
        assert pandas.api.types.is_numeric_dtype(frame[col]), (col, frame[col].dtype)
    assert frame["test_acc_std"].isna().sum() >= 1  # a one-seed row: no std, an empty cell


def test_plots_target_and_several_sweeps(tmp_path: Path) -> None:
    sweep, by_cfg = make(tmp_path)
    other, _ = make(tmp_path, "noval", with_val=False)
    plot, curves = tmp_path / "front.png", tmp_path / "curves.png"
    proc = orch(tmp_path, "leaderboard", str(sweep.path), "--plot", str(plot), "--curves", str(curves),
                "--by", "model.layers", "--target", "0.44", "--format", "json")
    for png in (plot, curves):
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    rows = {(r["varying"]["model.layers"], r["varying"]["model.channels"]): r for r in json.loads(proc.stdout)}
    # (1, 8): seed 0 (0.30, 0.40, 0.50) reaches 0.44 in epoch 3 (90 s), seed 1 (0.34, 0.44, ...) in epoch 2 (60 s)
    assert (rows[(2, 8)]["target"]["reached"], rows[(2, 8)]["target"]["epochs"]) == (1, 3)  # 0.29, 0.39, 0.49
    assert rows[(1, 8)]["target"] == {"metric": "val_acc", "target": 0.44, "reached": 2, "of": 2,
                                      "epochs": 2.5, "minutes": pytest.approx(1.25)}
    # without a validation split the default metric is test accuracy, and the board says so
    alone = orch(tmp_path, "leaderboard", str(other.path), "--format", "json")
    assert json.loads(alone.stdout)[0]["metric"] == "test_acc" and "no validation split" in alone.stderr
    both = json.loads(orch(tmp_path, "leaderboard", "--format", "json").stdout)  # every sweep in --runs-dir
    assert {r["sweep"] for r in both} == {"lb", "noval"} and len(both) == 10  # 5 rows each
    assert "sweep" in orch(tmp_path, "leaderboard").stdout.split("\n", 3)[2]  # a sweep column


@pytest.mark.parametrize("args, words", [
    (["--metric", "accuracy"], "--metric: 'accuracy' is not a result.json metric; allowed: best_val_acc"),
    (["--plot", "front.pdf"], "--plot: front.pdf: give a .png file name"),
    (["--by", "model.depth", "--curves", "c.png"], "--by: 'model.depth' is not a config key"),
])
def test_bad_options_exit_2_with_one_line(tmp_path: Path, args: list[str], words: str) -> None:
    sweep, _ = make(tmp_path)
    proc = orch(tmp_path, "leaderboard", str(sweep.path), *args, check=False)
    assert proc.returncode == 2 and proc.stdout == "" and words in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_leaderboard_to_wandb_is_one_sweep_level_run(tmp_path: Path) -> None:
    sweep, _ = make(tmp_path)
    orch(tmp_path, "leaderboard", str(sweep.path), "--wandb")
    files = [f for f in run_files(sweep.path / "wandb" / "wandb") if "leaderboard" in f.name]
    (run,) = [read_run(f) for f in files]
    assert run.group == "lb" and run.job_type == "leaderboard" and run.exited
    (row,) = run.history
    assert row["leaderboard._type"] == "table-file" and row["leaderboard.nrows"] == 5
    assert row["pareto._type"] == "image-file" and row["curves._type"] == "image-file"
    assert (sweep.path / "leaderboard" / "pareto.png").is_file()  # the plots it logged stay in the sweep dir
    assert not (tmp_path / "home").exists() or not list((tmp_path / "home").rglob("*wandb*"))


def test_sync_without_network_says_so_in_one_line_and_uploads_nothing(tmp_path: Path) -> None:
    """Real offline runs of a trial; W&B's server is a closed port here. A dry run lists what
    would go; runs already uploaded and unchanged (the ledger) are skipped."""
    sweep, by_cfg = make(tmp_path)
    import pickle

    from orchestrator.backends.slurm.backend import TrialJob
    from orchestrator.tracking.wandb_run import plans_for

    t = by_cfg[(3, 8)][0]  # a never-submitted trial: train it for real, offline W&B
    t.config["data"].update(subset=40, test_subset=20)
    job = tmp_path / "job.pkl"
    job.write_bytes(pickle.dumps(TrialJob(t.config, str(sweep.trial_dir(t.trial_id)), t.trial_id,
                                          plans_for(sweep, [t.trial_id])[t.trial_id])))
    code = "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))()"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    subprocess.run([sys.executable, "-c", code, str(job)], check=True, env={**env, "OMP_NUM_THREADS": "1"},
                   capture_output=True)
    closed = subprocess.run([ORCH, "sync", str(sweep.path), "--runs-dir", str(tmp_path / "runs")], capture_output=True,
                            text=True, env={**env, "WANDB_BASE_URL": "http://127.0.0.1:9", "HOME": str(tmp_path / "home")})
    assert closed.returncode == 1 and closed.stdout == ""
    assert len(closed.stderr.strip().splitlines()) == 1 and "cannot reach 127.0.0.1:9" in closed.stderr
    assert "1 offline runs wait in" in closed.stderr and "orchestrate sync DIR" in closed.stderr
    dry = json.loads(orch(tmp_path, "sync", str(sweep.path), "--dry-run", "--json").stdout)
    assert len(dry[0]["uploaded"]) == 1 and dry[0]["skipped"] == [] and dry[0]["live"] == []
    from orchestrator.tracking.sync import LEDGER, _stamp

    (name,) = dry[0]["uploaded"]
    ledger = {name: _stamp(sweep.path / "wandb" / "wandb" / name)}  # as a finished upload records it
    (sweep.path / "wandb" / LEDGER).write_text(json.dumps(ledger))
    again = json.loads(orch(tmp_path, "sync", str(sweep.path), "--json").stdout)
    assert again[0]["uploaded"] == [] and again[0]["skipped"] == [name]  # nothing to do: no network needed


def test_with_a_calibration_the_board_holds_estimated_against_measured_epoch_time(tmp_path: Path, monkeypatch) -> None:
    from orchestrator.cost import device_name, epoch_seconds

    cal = {"name": device_name("cpu", 1), "device": "cpu", "threads": 1, "startup_s": 20.0,
           "fit": {"train": {"a": 1e-4, "b": 1e-10}, "eval": {"a": 0.0, "b": 3e-11}}}
    (tmp_path / "cal").mkdir()
    (tmp_path / "cal" / "c.json").write_text(json.dumps(cal))
    monkeypatch.setenv("ORCHESTRATE_CALIBRATION_DIR", str(tmp_path / "cal"))
    sweep, by_cfg = make(tmp_path)
    rows = json.loads(orch(tmp_path, "leaderboard", str(sweep.path), "--format", "json").stdout)
    for r in rows:
        t = by_cfg[(r["varying"]["model.layers"], r["varying"]["model.channels"])][0]
        assert r["est_epoch_seconds"] == pytest.approx(epoch_seconds(cal, t.config))
        assert r["epoch_seconds"] == pytest.approx(30.0)  # every generated epoch took 30 s
    assert "s/epoch (est)" in orch(tmp_path, "leaderboard", str(sweep.path)).stdout


def test_damaged_files_are_named_and_never_crash_a_reader(tmp_path: Path) -> None:
    sweep, by_cfg = make(tmp_path)
    bad = by_cfg[(3, 16)][0].trial_id
    (sweep.trial_dir(bad) / "result.json").write_text('{"status": "compl')  # a torn write
    with open(sweep.path / "trials.jsonl", "a") as f:
        f.write('{"trial_id": "abc", "conf\n')
    with open(sweep.path / "submissions.jsonl", "a") as f:
        f.write("not json\n")
    proc = orch(tmp_path, "leaderboard", str(sweep.path), "--format", "json")
    rows = json.loads(proc.stdout)
    assert len(rows) == 5 and f"{sweep.trial_dir(bad) / 'result.json'} is corrupt" in proc.stderr
    assert f"{sweep.path / 'trials.jsonl'} line 13 is corrupt" in proc.stderr
    assert f"{sweep.path / 'submissions.jsonl'} line" in proc.stderr
    status = orch(tmp_path, "status", str(sweep.path), "--json")
    mine = next(r for r in json.loads(status.stdout) if r["trial_id"] == bad)
    assert mine["state"] == "failed" and "result.json is corrupt" in mine["detail"]
    assert (sweep.trial_dir(bad) / "result.json").read_text() == '{"status": "compl'  # left as it was


DAMAGE = {  # file (relative to the sweep dir; {t} = a trial dir) -> damaged contents
    "{t}/result.json": ["[1, 2]", "5", "", '{"no_status": 1}', "\x00\xff"],
    "{t}/metrics.jsonl": ['{"epoch": 1, "val_acc": 0.5}\n{"epo', "7\n", "[]\n{\"epoch\": \"x\"}\n", "\x00\n"],
    "sweep.json": ["{", "[]"],
    "spec.yaml": ["budget: [", "- 1"],
    "submissions.jsonl": ['{"trial_id": 1}\n', "[]\n"],
    "intents/x.json": ["{", '{"token": 1}'],
    "wandb/synced.json": ["{", "[1]"],
}


def _cli(tmp: Path, *args: str) -> tuple[int, str, str]:
    """In-process (about 100 calls below): each call names what it finds damaged afresh."""
    from click.testing import CliRunner

    from orchestrator.cli.main import main
    from orchestrator.store import sweepdir

    sweepdir._WARNED.clear()
    r = CliRunner().invoke(main, [*args, "--runs-dir", str(tmp / "runs")], env={"COLUMNS": "200"})
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.stdout, r.stderr


@pytest.mark.parametrize("target", sorted(DAMAGE))
def test_every_file_readers_read_damaged_in_every_way_is_named_and_never_crashes_them(tmp_path: Path, target: str,
                                                                                     capsys) -> None:
    sweep, by_cfg = make(tmp_path)
    trial = by_cfg[(1, 16)][0].trial_id  # completed, with metrics
    path = sweep.path / target.format(t=f"trials/{trial}")
    path.parent.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(DAMAGE[target]):
        path.write_text(text)
        named = ""
        for args in (["status", str(sweep.path), "--json"], ["status", str(sweep.path)],
                     ["leaderboard", str(sweep.path), "--format", "json"], ["leaderboard", str(sweep.path)],
                     ["leaderboard", str(sweep.path), "--target", "0.5", "--curves", str(tmp_path / f"c{i}.png")]):
            code, out, err = _cli(tmp_path, *args)
            assert code == 0, (text, args, out, err)
            if args[-1] == "json":
                json.loads(out)
            named += err
        assert path.read_text() == text  # left as it was
        if target == "sweep.json":  # read by submit, W&B and Ray, not by these readers
            from orchestrator.store import sweepdir

            sweepdir._WARNED.clear()
            capsys.readouterr()
            assert sweep.options()["name"] == "lb"
            assert f"{path} is corrupt" in capsys.readouterr().err
        elif target == "wandb/synced.json":  # sync's ledger
            code, out, err = _cli(tmp_path, "sync", str(sweep.path), "--dry-run")
            assert code in (0, 1) and f"{path} is corrupt" in err, (code, err)
        elif target != "intents/x.json":  # (intents are read by submit, below)
            assert f"{path}" in named and "corrupt" in named, (target, text, named)
    if target == "intents/x.json":
        code, out, err = _cli(tmp_path, "submit", str(sweep.path / "spec.yaml"), "--backend", "ray", "--dry-run")
        assert f"{path} is corrupt" in err, err


def test_an_edited_spec_keeps_the_earlier_results_visible(tmp_path: Path) -> None:
    """epochs 3 -> 4 changes every id: plan, submit --dry-run and status say how many trials of the
    earlier version stay (and finished) and how many are new; the board ranks them all, the
    earlier ones marked (issue 16: it showed `1 ranked, missing 7` with 7 results on disk)."""
    sweep, _ = make(tmp_path)
    doc = yaml.safe_load((tmp_path / "lb.yaml").read_text())
    doc["base"]["train"]["epochs"] = 4
    edited = tmp_path / "lb.yaml"
    edited.write_text(yaml.safe_dump(doc))
    words = "holds 12 trials of an earlier version of this spec (7 finished)"
    plan = orch(tmp_path, "plan", str(edited))
    assert words in plan.stdout and "12 of this version's 12 trials are new" in plan.stdout
    planned = json.loads(orch(tmp_path, "plan", str(edited), "--json", "--totals").stdout)
    assert (planned["earlier"]["stay"], planned["earlier"]["finished"], planned["earlier"]["new"]) == (12, 7, 12)
    dry = orch(tmp_path, "submit", str(edited), "--backend", "ray", "--dry-run")
    assert words in dry.stderr and "would submit 12 of 12" in dry.stdout
    # what the real submit records before launching, then one trial of the new version finishes
    spec = load_spec(edited)
    new = [t for t in expand(spec) if t.kept]
    sweep.write_plan(spec.raw, new, spec.search, spec.wandb)
    write_trial(sweep, new[0], "completed", 0.70)
    warning = orch(tmp_path, "status", str(edited)).stdout + orch(tmp_path, "status", str(edited)).stderr
    assert "12 trials there are not in this spec, 7 of them finished" in warning
    proc = orch(tmp_path, "leaderboard", str(sweep.path), "--format", "json")
    rows = json.loads(proc.stdout)
    assert len(rows) == 6 and rows[0]["in_spec"] and rows[0]["trial_id"] == new[0].trial_id
    assert [r["in_spec"] for r in rows[1:]] == [False] * 5 and sum(r["n"] for r in rows[1:]) == 7
    assert "missing: 11" in proc.stderr and "12 trials still in the sweep dir" not in proc.stderr
    table = orch(tmp_path, "leaderboard", str(sweep.path)).stdout
    assert "†" in table and "† = from an earlier version of the spec (8 trials still in the sweep dir" in table


def test_each_rows_wandb_run_is_named_and_the_per_seed_footer_says_so(tmp_path: Path) -> None:
    sweep, by_cfg = make(tmp_path)
    rows = json.loads(orch(tmp_path, "leaderboard", str(sweep.path), "--format", "json").stdout)
    uid = sweep.uid()
    for r in rows:
        ids = r.get("trial_ids") or [r["trial_id"]]
        assert [w["run_id"] for w in r["wandb"]] == [f"lb-{t}-{uid}" for t in ids]
        assert all(w["project"] and w["url"] is None for w in r["wandb"])  # not synced yet
    # once synced: the URL wandb sync printed, from synced.json
    tid = rows[0]["trial_ids"][0]
    run_dir = sweep.path / "wandb" / "wandb" / f"offline-run-20261201_000000-lb-{tid}-{uid}"
    run_dir.mkdir(parents=True)
    (sweep.path / "wandb" / "synced.json").write_text(json.dumps(
        {run_dir.name: {"size": 1, "mtime": 1.0, "url": f"https://wandb.ai/me/orchestrate/runs/lb-{tid}-{uid}"}}))
    rows = json.loads(orch(tmp_path, "leaderboard", str(sweep.path), "--format", "json").stdout)
    assert rows[0]["wandb"][0]["url"] == f"https://wandb.ai/me/orchestrate/runs/lb-{tid}-{uid}"
    md = orch(tmp_path, "leaderboard", str(sweep.path), "--format", "markdown", "--columns", "rank,trial id,wandb").stdout
    assert md.splitlines()[0] == "| rank | trial id | wandb |" and f"https://wandb.ai/me/orchestrate/runs/lb-{tid}" in md
    per_seed = orch(tmp_path, "leaderboard", str(sweep.path), "--per-seed").stdout
    assert "one trial per row" in per_seed and "seed means" not in per_seed
    assert "seed means" in orch(tmp_path, "leaderboard", str(sweep.path)).stdout


def test_logs_of_an_id_in_two_sweeps_names_both_and_status_trial_names_its_wandb_run(tmp_path: Path) -> None:
    sweep, by_cfg = make(tmp_path)
    make(tmp_path, "lb2")  # the same configs, so the same trial ids, in a second sweep
    tid = by_cfg[(1, 8)][0].trial_id
    proc = orch(tmp_path, "logs", tid, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert f"is a trial of 2 sweeps: {tmp_path / 'runs' / 'lb'}, {tmp_path / 'runs' / 'lb2'}; name one with --sweep" in line
    logs = orch(tmp_path, "logs", tid, "--sweep", str(sweep.path))
    assert f"# W&B run lb-{tid}-{sweep.uid()} (project " in logs.stderr
    one = orch(tmp_path, "status", str(sweep.path), "--trial", tid[:8])
    assert tid in one.stdout and f"W&B run lb-{tid}-{sweep.uid()}" in one.stdout
    rows = json.loads(orch(tmp_path, "status", str(sweep.path), "--json").stdout)
    assert all(r["wandb"]["run_id"] == f"lb-{r['trial_id']}-{sweep.uid()}" for r in rows)


def test_a_killed_trials_wandb_run_is_closed_and_syncable(tmp_path: Path) -> None:
    """A trial killed mid-run (scancel, ASHA's stop) whose verdict is written leaves its W&B run
    without an exit record: sync closes it (a resumed offline process of the same run) instead
    of calling it `still being written` forever (issue 16)."""
    sweep, by_cfg = make(tmp_path)
    import pickle

    from orchestrator.backends.slurm.backend import TrialJob
    from orchestrator.tracking.wandb_run import plans_for

    t = by_cfg[(3, 8)][0]
    t.config["data"].update(subset=40, test_subset=20)
    t.config["train"]["epochs"] = 500
    job = tmp_path / "job.pkl"
    job.write_bytes(pickle.dumps(TrialJob(t.config, str(sweep.trial_dir(t.trial_id)), t.trial_id,
                                          plans_for(sweep, [t.trial_id])[t.trial_id])))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    proc = subprocess.Popen([sys.executable, "-c", "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))()",
                             str(job)], env={**env, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    metrics = sweep.trial_dir(t.trial_id) / "metrics.jsonl"
    deadline = time.time() + 120
    def flushed() -> bool:  # wandb-core has written the run and some epochs
        runs = [read_run(f) for f in run_files(sweep.path / "wandb" / "wandb")]
        return bool(runs) and bool(runs[0].run_id) and len(runs[0].steps) >= 1

    while not (metrics.is_file() and metrics.read_text().count("\n") >= 3 and flushed()):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.kill()  # as scancel's SIGKILL does: no finally, no exit record
    proc.wait()
    (sweep.trial_dir(t.trial_id) / "lease.json").unlink(missing_ok=True)  # the scheduler said the job ended
    write_result(sweep.trial_dir(t.trial_id), failure(t.trial_id, "cancelled", "cancelled by the user", t.params))
    dry = json.loads(orch(tmp_path, "sync", str(sweep.path), "--dry-run", "--json").stdout)[0]
    assert dry["live"] == [] and len(dry["closed"]) == 1 and dry["closed"] == dry["uploaded"]
    closing = subprocess.run([ORCH, "sync", str(sweep.path), "--runs-dir", str(tmp_path / "runs")], capture_output=True,
                             text=True, env={**env, "WANDB_BASE_URL": "http://127.0.0.1:9", "HOME": str(tmp_path / "home")})
    assert closing.returncode == 1 and "cannot reach" in closing.stderr  # closed here; uploading needs the network
    runs = [read_run(f) for f in run_files(sweep.path / "wandb" / "wandb")]
    mine = [r for r in runs if r.run_id and t.trial_id in r.run_id]
    assert len(mine) == 2 and mine[-1].exited and mine[-1].summary["failure_kind"] == "cancelled"
    again = json.loads(orch(tmp_path, "sync", str(sweep.path), "--dry-run", "--json").stdout)[0]
    assert again["live"] == [] and again["closed"] == [] and len(again["uploaded"]) == 2


def test_status_table_labels_running_accuracy_and_fits_80_columns(tmp_path: Path) -> None:
    """While trials run, the accuracy column holds their latest validation accuracy and says so
    (it was headed `best test`); an 80-column terminal gets every row whole (issue 16)."""
    from rich.console import Console

    from orchestrator.backends.states import TrialState
    from orchestrator.cli.status_view import status_table
    from orchestrator.results.status import views

    sweep, _ = make(tmp_path)
    for p in sweep.path.glob("trials/*/result.json"):
        p.unlink()  # only running trials now (metrics.jsonl, no verdict)
    (view,) = views(str(sweep.path), str(tmp_path / "runs"))
    # what the scheduler would say: every task of Ray array r1201-223112 running
    states = [TrialState(t.trial_id, "running", True, f"r1201-223112_{i}", "driver pid 4242") for i, t in
              enumerate(view.trials)]
    for width in (80, 100, 200):
        console = Console(width=width, record=True, file=io.StringIO())
        console.print(status_table(view, states, width=width))
        text = console.export_text()
        assert max(len(line) for line in text.splitlines()) <= width, text
        header = next(line for line in text.splitlines() if "trial id" in line)
        assert "best val" in header and "best test" not in header, text
        assert "(now)" in text
