"""A study's records in its sweep dir (``study/``), the one place every reader learns the stages:

- ``study.json``: the study document as the last submit resolved it (after ``--set``), which the
  SLURM step job rebuilds the study from (plain JSON, validated again; never executed);
- ``NN-NAME/stage.json``: a stage that has started: its definition digest and its trials, each with
  the earlier stage's trials it was carried from (``from``), written before any of them launches;
- ``NN-NAME/selection.json``: what the next stage takes: the rule, every candidate with its metric,
  the selected ones, and a note when the stage ended in part; written, atomically, before
  anything of the next stage starts;
- ``step.json``: the latest SLURM step job (status and cancel find it here).

Trials themselves stay in ``trials.jsonl`` and ``trials/`` like any sweep's: a trial two stages
share is one trial, trained once."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from orchestrator.store.sweepdir import Submission, SweepDir, warn_corrupt
from train.atomic import atomic_write_json
from train.safefs import make_dir, read_regular


def study_dir(sweep: SweepDir) -> Path:
    return sweep.path / "study"


def is_study_dir(sweep: SweepDir) -> bool:
    return (study_dir(sweep) / "study.json").is_file()


def _read(path: Path) -> dict[str, Any] | None:
    try:
        out = json.loads(read_regular(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        warn_corrupt(path, type(err).__name__)
        return None
    if not isinstance(out, dict):
        warn_corrupt(path, "not a JSON object")
        return None
    return out


def write_study(sweep: SweepDir, file: str, doc: dict[str, Any], resume: list[str]) -> None:
    atomic_write_json(make_dir(study_dir(sweep)) / "study.json",
                      {"file": file, "doc": doc, "resume": resume, "time": time.time()})


def read_study(sweep: SweepDir) -> dict[str, Any] | None:
    return _read(study_dir(sweep) / "study.json")


def stage_path(sweep: SweepDir, index: int, name: str) -> Path:
    return study_dir(sweep) / f"{index:02d}-{name}"


def write_stage(sweep: SweepDir, index: int, name: str, definition: str, members: list[dict[str, Any]],
                rule: str) -> None:
    """``members``: ``{"trial_id", "from": [earlier trial ids]}`` per trial of the stage."""
    atomic_write_json(make_dir(stage_path(sweep, index, name)) / "stage.json",
                      {"index": index, "name": name, "definition": definition, "trials": members,
                       "rule": rule, "time": time.time()})


def read_stage(sweep: SweepDir, index: int, name: str) -> dict[str, Any] | None:
    return _read(stage_path(sweep, index, name) / "stage.json")


def write_selection(sweep: SweepDir, index: int, name: str, selection: dict[str, Any]) -> None:
    atomic_write_json(stage_path(sweep, index, name) / "selection.json", {**selection, "time": time.time()})


def read_selection(sweep: SweepDir, index: int, name: str) -> dict[str, Any] | None:
    return _read(stage_path(sweep, index, name) / "selection.json")


def stage_records(sweep: SweepDir) -> list[dict[str, Any]]:
    """Every started stage in order: its stage.json with ``selection`` (or None) added."""
    out = []
    root = study_dir(sweep)
    if not root.is_dir():
        return out
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and p.name[:2].isdigit()):
        rec = _read(d / "stage.json")
        if rec is None or not isinstance(rec.get("trials"), list):
            continue
        rec["selection"] = _read(d / "selection.json")
        out.append(rec)
    return out


def stage_of(sweep: SweepDir) -> dict[str, list[str]]:
    """trial id -> the names of the stages it belongs to (a trial two stages share: both)."""
    out: dict[str, list[str]] = {}
    for rec in stage_records(sweep):
        for m in rec["trials"]:
            if isinstance(m, dict) and isinstance(m.get("trial_id"), str):
                out.setdefault(m["trial_id"], []).append(str(rec["name"]))
    return out


def restart_from(sweep: SweepDir, index: int) -> list[str]:
    """``--restart-stage N``: the records of stage N and every later one move to
    ``study/restarted-<time>/`` (kept for the record; trained trials stay where they are and are
    not trained again where the remade stages ask for them). Returns the stages moved."""
    moved = []
    root = study_dir(sweep)
    aside = root / f"restarted-{time.strftime('%Y%m%dT%H%M%S')}"
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and p.name[:2].isdigit()):
        if int(d.name[:2]) >= index:
            make_dir(aside)
            shutil.move(str(d), str(aside / d.name))
            moved.append(d.name[3:])
    return moved


def step_file(sweep: SweepDir) -> Path:
    return study_dir(sweep) / "step.json"


def write_step(sweep: SweepDir, job_id: str, backend: str, folder: str, after: list[str]) -> None:
    atomic_write_json(make_dir(study_dir(sweep)) / "step.json",
                      {"job_id": job_id, "backend": backend, "time": time.time(), "folder": folder, "after": after})


def step_submission(sweep: SweepDir) -> Submission | None:
    raw = _read(step_file(sweep)) if step_file(sweep).exists() else None
    try:
        return Submission("study-step", str(raw["job_id"]), str(raw["backend"]), float(raw["time"]),
                          str(raw["folder"]), {}) if raw else None
    except (KeyError, TypeError, ValueError):
        return None
