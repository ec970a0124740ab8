"""The sweep directory: the on-disk contract every stage shares (no server; the shared filesystem
is the source of truth). Writes are atomic; ``lock()`` serializes concurrent submits."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from configcheck import ConfigError
from orchestrator.sweep.expand import Trial
from orchestrator.sweep.spec import sweep_name
from train.atomic import atomic_write_text
from train.files import read_result
from train.safefs import check_dir, make_dir, open_nofollow, read_regular, safe_name


@dataclass(frozen=True)
class Submission:
    """One trial handed to a backend once: which job (or Ray trial) runs it, and where its logs go."""

    trial_id: str
    job_id: str
    backend: str
    time: float
    folder: str  # the backend's folder for this submission (submitit pickles and logs)
    resources: dict[str, Any]
    array_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class SweepDir:
    def __init__(self, path: str | Path) -> None:
        # the parent resolved, the last part kept: a symlink planted as the sweep dir is refused
        # (check_dir), never followed into wherever it points
        p = Path(os.path.abspath(path))
        self.path = p.parent.resolve() / p.name

    @property
    def name(self) -> str:
        return self.path.name

    def trial_dir(self, trial_id: str) -> Path:
        return self.path / "trials" / trial_id

    def search_journal(self) -> Path:
        """``search/journal.log``: a search's sampler state (Optuna's journal). Its dir is the
        user's own and private (nobody else can put a link there), and the file is made or
        checked here without following a link: Optuna then opens it by name."""
        path = make_dir(self.path / "search", private=True) / "journal.log"
        os.close(open_nofollow(path, os.O_RDWR | os.O_CREAT))
        return path

    def exists(self) -> bool:
        return (self.path / "trials.jsonl").is_file()

    @contextlib.contextmanager
    def lock(self, timeout: float = 120.0) -> Iterator[None]:
        """An exclusive flock on ``.lock``; a second submit waits for the first, then sees its jobs.
        The sweep dir must be the user's own (``make_dir`` creates it so, and refuses one someone
        else made or can write into); a symlink at ``.lock`` is refused, never followed."""
        make_dir(self.path)
        with os.fdopen(open_nofollow(self.path / ".lock", os.O_RDWR | os.O_CREAT), "r+") as f:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{self.path / '.lock'} is held by another submit") from None
                    time.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def mine(self) -> bool:
        """The sweep dir is the user's own and writable by nobody else (a reader may write there)."""
        try:
            check_dir(self.path)
        except (OSError, ValueError):
            return False
        return True

    def check_mine(self, trial_ids: list[str] | tuple[str, ...] = ()) -> None:
        """Raise Unsafe (exit 2) unless the sweep dir and what a submit writes into (trials/, the
        scheduler folders, intents/, W&B's dir, these trials' dirs) are the user's own and writable by nobody else;
        parts not there yet are created safely later."""
        for d in (self.path, *(self.path / sub for sub in ("trials", "slurm", "ray", "intents", "wandb")),
                  *(self.trial_dir(t) for t in trial_ids)):  # (wandb/: W&B reads its settings there)
            if os.path.lexists(d):
                check_dir(d)

    def write_plan(self, spec_doc: dict[str, Any], trials: list[Trial], search: dict[str, Any] | None = None,
                   wandb: dict[str, Any] | None = None, resume: list[str] | None = None) -> None:
        """``resume``: the command (argv words) that resumes this sweep, for the hints status and
        an interrupted driver print (``orchestrate demo`` for the demo, which picks its data at
        run time; else the submit as it was typed)."""
        atomic_write_text(self.path / "spec.yaml", yaml.safe_dump(spec_doc, sort_keys=False))
        now = {t.trial_id for t in trials}
        # an edited spec's earlier trials stay in the manifest, marked: their results stay visible;
        # trials a search proposed while the sweep ran stay as they are
        earlier = [t if t.get("proposed_by") else {**t, "earlier": True}
                   for t in self.trials() if t["trial_id"] not in now and t.get("kept")]
        atomic_write_text(self.path / "trials.jsonl", "".join(json.dumps(t.to_json()) + "\n" for t in trials)
                          + "".join(json.dumps(t) + "\n" for t in earlier))
        atomic_write_text(self.path / "sweep.json", json.dumps({"name": self.name, "uid": self.uid(), "search": search or {},
                                                                "wandb": wandb or {}, "resume": resume}, indent=1) + "\n")

    def propose(self, trials: list[Trial], by: str) -> list[Trial]:
        """Append trials proposed while the sweep runs (``by``: the proposer's name) to
        trials.jsonl; an id already there is not added again. Append-only and crash-safe: the file
        is rewritten atomically with the old lines unchanged (callers hold the lock), so a crash
        leaves the old manifest or the new one, never half a line. Returns the new trials."""
        path = self.path / "trials.jsonl"
        old = read_regular(path).decode() if os.path.lexists(path) else ""
        known = {t["trial_id"] for t in self.trials()}
        new = []
        for t in trials:
            if t.trial_id not in known and safe_name(t.trial_id):
                known.add(t.trial_id)
                new.append(t)
        if new:
            if old and not old.endswith("\n"):
                old += "\n"
            atomic_write_text(path, old + "".join(json.dumps({**t.to_json(), "proposed_by": by}) + "\n" for t in new))
        return new

    def resume_hint(self, backend: str = "ray") -> str:
        """The command that resumes this sweep, as one shell-quoted line (only ever printed)."""
        words = self.options().get("resume")
        if isinstance(words, list) and words and all(isinstance(w, str) for w in words):
            return shlex.join(words)
        return f"orchestrate submit SPEC --backend {backend}"

    def uid(self) -> str:
        """A short random id fixed when the sweep dir is first written: W&B run ids carry it, so a
        same-named sweep in another runs dir never resumes this one's runs."""
        uid = self.options().get("uid")
        if not uid:
            uid = secrets.token_hex(3)
        return uid

    def options(self) -> dict[str, Any]:
        """The sweep-level sections as last submitted: {name, search, wandb}."""
        path = self.path / "sweep.json"
        try:
            opts = json.loads(read_regular(path))
            if isinstance(opts, dict):
                return opts
            raise ValueError("not a mapping")
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as err:
            warn_corrupt(path, f"{type(err).__name__}: {err}")
        return {"name": self.name, "search": {}, "wandb": {}}

    def trials(self) -> list[dict[str, Any]]:
        path = self.path / "trials.jsonl"
        lines = _lines(path)
        try:
            rows = json.loads("[" + ",".join(lines) + "]")  # one parse: a third faster on 10,000 trials
        except ValueError:  # a damaged line: read the others, name the bad ones
            return _jsonl(path, lines, lambda d: d if isinstance(d, dict) and safe_name(d.get("trial_id")) else None)
        if all(isinstance(d, dict) and safe_name(d.get("trial_id")) for d in rows):
            return rows
        # a trial id is a path component (trials/<id>): one that is not a plain name is never used
        return _jsonl(path, lines, lambda d: d if isinstance(d, dict) and safe_name(d.get("trial_id")) else None)

    def submissions(self) -> list[Submission]:
        path = self.path / "submissions.jsonl"
        lines = _lines(path)
        return _jsonl(path, lines, lambda d: self._submission(Submission(**d)))

    def _submission(self, s: Submission) -> Submission | None:
        """A recorded submission whose trial id is a plain name and whose folder (logs, Ray's
        driver record) is inside this sweep dir; else None: a path a file names is not trusted."""
        inside = not s.folder or os.path.normpath(s.folder).startswith(str(self.path) + os.sep)
        return s if safe_name(s.trial_id) and isinstance(s.folder, str) and inside else None

    def latest(self) -> dict[str, Submission]:
        """trial id -> its most recent submission (the history stays in submissions.jsonl)."""
        out: dict[str, Submission] = {}
        for s in self.submissions():
            out[s.trial_id] = s
        return out

    def record(self, new: list[Submission]) -> None:
        """Append to the submission history; the whole file is rewritten atomically (callers hold
        the lock), so a crash leaves either the old history or the new one, never half a line."""
        path = self.path / "submissions.jsonl"
        old = read_regular(path).decode() if os.path.lexists(path) else ""  # as it is: a damaged line is kept, not dropped
        if old and not old.endswith("\n"):
            old += "\n"
        atomic_write_text(path, old + "".join(json.dumps(s.to_json()) + "\n" for s in new))

    # Intents: what a submit is about to hand the scheduler, written before it does. A submit
    # killed between sbatch and ``record`` leaves one; the next submit asks the scheduler for the
    # intent's job name and records what it finds (or forgets an intent that never reached it).
    def write_intent(self, token: str, intent: dict[str, Any]) -> None:
        atomic_write_text(self.path / "intents" / f"{token}.json", json.dumps(intent) + "\n")

    def intents(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted((self.path / "intents").glob("*.json")):
            try:
                intent = json.loads(read_regular(path))
                if not isinstance(intent, dict) or not {"token", "job_name", "tasks", "time"} <= set(intent):
                    raise ValueError("not a submit intent")
                out.append(intent)
            except (OSError, ValueError) as err:  # written by rename, so only a disk fault gets here
                warn_corrupt(path, f"{type(err).__name__}: {err}")
        return out

    def clear_intent(self, token: str) -> None:
        (self.path / "intents" / f"{token}.json").unlink(missing_ok=True)

    def result(self, trial_id: str) -> dict[str, Any] | None:
        return read_result(self.trial_dir(trial_id))


_WARNED: set[tuple[str, int]] = set()


def _lines(path: Path) -> list[str]:
    """The non-blank lines of a JSONL file; none when it is absent or not a regular file (named)."""
    try:
        text = read_regular(path).decode(errors="replace")
    except FileNotFoundError:
        return []
    except OSError as err:
        warn_corrupt(path, err.strerror or type(err).__name__)
        return []
    return [line for line in text.splitlines() if line.strip()]


def warn_corrupt(path: str | Path, why: str, line: int = 0) -> None:
    """Name a damaged file on stderr, once per process; the reader goes on without it."""
    if (str(path), line) not in _WARNED:
        _WARNED.add((str(path), line))
        where = f"{path} line {line}" if line else str(path)
        print(f"warning: {where} is corrupt ({why}); skipped", file=sys.stderr)


def _jsonl(path: Path, lines: list[str], make: Any) -> list[Any]:
    """Each line that parses into what ``make`` builds; a damaged one is named on stderr (once per
    process) and left out, so a reader never crashes on it."""
    out = []
    for i, line in enumerate(lines, 1):
        try:
            item = make(json.loads(line))
            if item is None:
                raise ValueError("not a trial record")
        except (ValueError, TypeError) as err:
            warn_corrupt(path, f"{type(err).__name__}: {err}", i)
            continue
        out.append(item)
    return out


def find_sweep(target: str | Path, runs_dir: str | Path, sets: tuple[str, ...] = ()) -> SweepDir:
    """A sweep dir given itself or the spec that made it (``runs_dir/<spec name>``, after ``sets``)."""
    target = Path(target)
    if target.is_dir():
        return SweepDir(target)

    return SweepDir(Path(runs_dir) / sweep_name(target, sets))


def find_sweeps(target: str | Path | None, runs_dir: str | Path, trial_ids: tuple[str, ...] = (),
                sets: tuple[str, ...] = ()) -> list[SweepDir]:
    """The sweep ``target`` names, or without one every sweep under ``runs_dir`` (those holding
    ``trial_ids`` when given). Raises ConfigError when there is none."""
    if target is not None:
        sweep = find_sweep(target, runs_dir, sets)
        if not sweep.exists():
            raise ConfigError(str(target), f"no sweep here ({sweep.path} has no trials.jsonl); submit it first")
        return [sweep]
    found = [SweepDir(p) for p in sorted(Path(runs_dir).glob("*")) if not p.is_symlink() and (p / "trials.jsonl").is_file()]
    if trial_ids:
        found = [s for s in found if any(t["trial_id"] in trial_ids for t in s.trials())]
    if not found:
        what = f" holding {', '.join(trial_ids)}" if trial_ids else ""
        raise ConfigError("--runs-dir", f"no sweep{what} in {Path(runs_dir).resolve()}; give SPEC or SWEEP_DIR")
    return found
