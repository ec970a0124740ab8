"""A real TPE search on real Ray (CPU): 8 trials, 2 at a time, proposed as trials end in one Tune
run, each proposal within the budget; killed mid-search and resubmitted, it ends with exactly 8
trained trials, none twice, and the journal agrees with the sweep dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from kit import ORCH
from searchkit import SPEC, check_search, results

pytestmark = pytest.mark.ray

def env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(tmp / "home"), "COLUMNS": "200"}


def submit(tmp: Path, spec: Path) -> subprocess.Popen:
    return subprocess.Popen([ORCH, "submit", str(spec), "--backend", "ray", "--runs-dir", str(tmp / "runs")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp, env=env(tmp),
                            start_new_session=True)


def test_a_tpe_search_of_8_trials_2_at_a_time_completes(tmp_path: Path) -> None:
    spec = tmp_path / "tpe.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    proc = submit(tmp_path, spec)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    assert "search (tpe): 8 / 8 trained" in out and "0 rejected" in out, out
    check_search(tmp_path / "runs" / "tpe")
    # one Tune run: each proposal made as a trial ended, started in the same run (no batch restarts)
    subs = [json.loads(line) for line in (tmp_path / "runs" / "tpe" / "submissions.jsonl").read_text().splitlines()]
    (folder,) = {s["folder"] for s in subs}
    assert sorted(s["job_id"] for s in subs) == sorted(f"{Path(folder).name}_{i}" for i in range(8))
    shown = subprocess.run([ORCH, "status", str(tmp_path / "runs" / "tpe")], capture_output=True, text=True,
                           env={**env(tmp_path), "COLUMNS": "300"}, timeout=120).stdout
    assert "search (tpe): 8 / 8 trained, best" in shown and "8 proposed, 0 rejected" in shown, shown
    # one W&B run per trial, grouped by the sweep, tagged with the search that proposed it
    from orchestrator.tracking.wandb_files import read_run, run_files

    runs = [read_run(f) for f in run_files(tmp_path / "runs" / "tpe" / "wandb" / "wandb")]
    runs = [r for r in runs if r.run_id]
    assert len({r.run_id for r in runs}) == 8 and all("search-tpe" in r.tags for r in runs), [r.tags for r in runs]
    # the leaderboard's plot of a search: the best so far, over the trials in the order proposed
    from orchestrator.results.leaderboard import collect
    from orchestrator.results.plots import search_order
    from orchestrator.store.sweepdir import SweepDir

    sweep = SweepDir(tmp_path / "runs" / "tpe")
    board = collect([sweep])
    order = search_order(board, {"tpe": sweep})
    done = results(sweep.path)
    assert order["tpe"] == [done[json.loads(line)["trial_id"]]["best_val_acc"]
                            for line in (sweep.path / "trials.jsonl").read_text().splitlines()]
    from orchestrator.results.plots import search_hours

    hours = search_hours(board, {"tpe": sweep})["tpe"]  # the third panel's axis: measured, cumulative
    walls = [done[json.loads(line)["trial_id"]]["wall_seconds"] / 3600
             for line in (sweep.path / "trials.jsonl").read_text().splitlines()]
    assert len(hours) == 8 and all(abs(h - sum(walls[: i + 1])) < 1e-9 for i, h in enumerate(hours))
    plot = subprocess.run([ORCH, "leaderboard", str(sweep.path), "--plot", str(tmp_path / "p.png")],
                          capture_output=True, text=True, env=env(tmp_path), timeout=120)
    assert plot.returncode == 0 and (tmp_path / "p.png").stat().st_size > 10_000, plot.stderr


def test_a_search_killed_mid_way_then_resubmitted_trains_exactly_its_trials_once(tmp_path: Path) -> None:
    spec = tmp_path / "tpe.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    sweep = tmp_path / "runs" / "tpe"
    proc = submit(tmp_path, spec)
    deadline = time.time() + 600
    while len(results(sweep)) < 3:  # the second batch is running
        assert time.time() < deadline and proc.poll() is None, "the search never got past its first batch"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
    proc.communicate()
    assert len(results(sweep)) < 8
    again = submit(tmp_path, spec)
    out, _ = again.communicate(timeout=900)
    assert again.returncode == 0, out
    check_search(sweep)
