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
from train.safefs import make_dir, read_regular, safe_name


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
                rule: str) -> dict[str, Any]:
    """``members``: ``{"trial_id", "from": [earlier trial ids]}`` per trial of the stage. Returns the
    record as written."""
    rec = {"index": index, "name": name, "definition": definition, "trials": members, "rule": rule, "time": time.time()}
    atomic_write_json(make_dir(stage_path(sweep, index, name)) / "stage.json", rec)
    return rec


def _stage(path: Path) -> dict[str, Any] | None:
    """A stage.json whose members are what readers index (trial ids that are safe names, ``from``
    lists of them); anything else is named as damaged and read as absent."""
    rec = _read(path)
    members = rec.get("trials") if rec is not None else None
    if rec is not None and not (isinstance(rec.get("index"), int) and isinstance(rec.get("name"), str)
                                and isinstance(members, list) and all(
            isinstance(m, dict) and safe_name(m.get("trial_id")) and isinstance(m.get("from", []), list)
            and all(safe_name(x) for x in m.get("from", [])) for m in members)):
        warn_corrupt(path, "not {index, name, trials: [{trial_id, from}]}")
        return None
    return rec


def _selection(path: Path) -> dict[str, Any] | None:
    """A selection.json whose picks are what readers and the next stage use (trial ids, a numeric
    metric, a config mapping); anything else is named as damaged and read as absent (remade)."""
    sel = _read(path)
    picks = sel.get("selected") if sel is not None else None
    if sel is not None and not (isinstance(picks, list) and all(
            isinstance(p, dict) and isinstance(p.get("trial_ids"), list) and p["trial_ids"]
            and all(safe_name(x) for x in p["trial_ids"]) and isinstance(p.get("metric"), (int, float))
            and isinstance(p.get("config"), dict) for p in picks)):
        warn_corrupt(path, "its picks are not a list of {trial_ids, metric, config}")
        return None
    return sel


def read_stage(sweep: SweepDir, index: int, name: str) -> dict[str, Any] | None:
    return _stage(stage_path(sweep, index, name) / "stage.json")


def write_selection(sweep: SweepDir, index: int, name: str, selection: dict[str, Any]) -> None:
    atomic_write_json(stage_path(sweep, index, name) / "selection.json", {**selection, "time": time.time()})


def read_selection(sweep: SweepDir, index: int, name: str) -> dict[str, Any] | None:
    return _selection(stage_path(sweep, index, name) / "selection.json")


def _stage_dirs(sweep: SweepDir) -> list[Path]:
    """The stages' own directories (``NN-NAME``; links are not followed), in order."""
    root = study_dir(sweep)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name[:2].isdigit() and not p.is_symlink() and p.is_dir())


def stage_records(sweep: SweepDir) -> list[dict[str, Any]]:
    """Every started stage in order: its stage.json with ``selection`` (or None) added."""
    out = []
    for d in _stage_dirs(sweep):
        rec = _stage(d / "stage.json")
        if rec is None:
            continue
        rec["selection"] = _selection(d / "selection.json")
        out.append(rec)
    return out


def stage_of(sweep: SweepDir) -> dict[str, list[str]]:
    """trial id -> the names of the stages it belongs to (a trial two stages share: both)."""
    out: dict[str, list[str]] = {}
    for rec in stage_records(sweep):
        for m in rec["trials"]:
            out.setdefault(m["trial_id"], []).append(str(rec["name"]))
    return out


def restart_from(sweep: SweepDir, index: int) -> list[str]:
    """``--restart-stage N``: the records of stage N and every later one move to
    ``study/restarted-<time>/`` (kept for the record; trained trials stay where they are and are
    not trained again where the remade stages ask for them). Returns the stages moved."""
    moved = []
    aside = study_dir(sweep) / f"restarted-{time.strftime('%Y%m%dT%H%M%S')}"
    for d in _stage_dirs(sweep):
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
