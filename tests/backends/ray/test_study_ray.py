"""The 3-stage study on real Ray in the foreground, killed (SIGKILL) at every stage boundary: right
after a stage's trials are recorded (none launched) and right after a selection is recorded (the
next stage not begun); each rerun resumes and the study ends as one uninterrupted run would, no
trial trained twice. W&B runs carry their stage."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from kit import ORCH
from studykit import SEARCHED, STUDY, check_searched, check_study

pytestmark = pytest.mark.ray


def run(tmp: Path, spec: Path, fault: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(tmp / "home"), "COLUMNS": "200"}
    if fault:
        env["ORCHESTRATE_FAULT"] = fault
    return subprocess.run([ORCH, "submit", str(spec), "--backend", "ray", "--runs-dir", str(tmp / "runs")],
                          capture_output=True, text=True, cwd=tmp, env=env, timeout=600)


def test_a_study_on_ray_killed_at_each_stage_boundary_resumes_to_the_end(tmp_path: Path) -> None:
    spec = tmp_path / "st.yaml"
    spec.write_text(yaml.safe_dump(STUDY, sort_keys=False))
    study = tmp_path / "runs" / "st" / "study"
    boundaries = [  # (the fault, what the sweep dir holds after the kill)
        ("study.after_stage", ["00-screen/stage.json"]),
        ("study.after_selection", ["00-screen/selection.json"]),
        ("study.after_stage", ["01-longer/stage.json"]),
        ("study.after_selection", ["01-longer/selection.json"]),
        ("study.after_stage", ["02-seeds/stage.json"]),
    ]
    trained: list[set[str]] = []
    for fault, holds in boundaries:
        proc = run(tmp_path, spec, fault)
        assert proc.returncode == -9, proc.stdout + proc.stderr  # SIGKILL at the boundary
        for rel in holds:
            assert (study / rel).is_file(), (rel, proc.stdout + proc.stderr)
        nxt = {"00-screen/stage.json": "00-screen/selection.json", "00-screen/selection.json": "01-longer",
               "01-longer/stage.json": "01-longer/selection.json", "01-longer/selection.json": "02-seeds",
               "02-seeds/stage.json": None}[holds[0]]
        assert nxt is None or not (study / nxt).exists()  # killed before the next step began
        trained.append({p.parent.name for p in (tmp_path / "runs" / "st" / "trials").glob("*/result.json")})
    assert [len(t) for t in trained] == [0, 4, 4, 6, 6]  # each run trained one stage's trials, then died
    proc = run(tmp_path, spec, None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the study has ended at stage seeds" in proc.stdout, proc.stdout
    check_study(tmp_path / "runs" / "st")
    # the killed runs' trials were not run again: one submission per trial, seven in all
    subs = [json.loads(line)["trial_id"] for line in (tmp_path / "runs" / "st" / "submissions.jsonl").read_text().splitlines()]
    assert len(subs) == len(set(subs)) == 7
    from orchestrator.tracking.wandb_files import read_run, run_files

    runs = [r for r in (read_run(f) for f in run_files(tmp_path / "runs" / "st" / "wandb" / "wandb")) if r.run_id]
    tags = {r.run_id: set(r.tags or ()) for r in runs}
    assert len(tags) == 7 and all(any(t.startswith("stage-") for t in v) for v in tags.values()), tags


def test_a_study_whose_stages_search_runs_stage_to_stage_on_ray(tmp_path: Path) -> None:
    spec = tmp_path / "ss.yaml"
    spec.write_text(yaml.safe_dump(SEARCHED, sort_keys=False))
    proc = run(tmp_path, spec, None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the study has ended at stage tune" in proc.stdout, proc.stdout
    check_searched(tmp_path / "runs" / "ss")
