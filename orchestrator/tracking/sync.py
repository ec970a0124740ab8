"""From the sweep dir to W&B: ``orchestrate sync`` uploads offline runs (in parallel, each once),
and ``leaderboard --wandb`` logs the board and its plots as one sweep-level run.

Compute nodes often have no network; trials log offline into ``<sweep>/wandb``. Anything with the
sweep dir and a network (the login node, or a laptop after ``rsync -a``) can upload it later."""

from __future__ import annotations

import json
import netrc
import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from orchestrator.store.sweepdir import SweepDir, warn_corrupt
from orchestrator.tracking.wandb_files import RunFile, read_run
from orchestrator.tracking.wandb_run import Tracker, plans_for, run_id, settings, wandb_env
from train.atomic import atomic_write_text
from train.lease import held
from train.safefs import make_dir, read_regular

LEDGER = "synced.json"
_URL = re.compile(r"https?://\S+/runs/[A-Za-z0-9_-]+")


class SyncError(Exception):
    """Sync cannot start (no network, no key): one line, exit 1."""


@dataclass
class SyncReport:
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # uploaded before and unchanged
    live: list[str] = field(default_factory=list)  # still being written by a running trial
    closed: list[str] = field(default_factory=list)  # runs of ended trials whose process died unclosed
    empty: list[str] = field(default_factory=list)  # nothing in it to upload
    failed: list[tuple[str, str]] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0


def offline_runs(sweep: SweepDir) -> list[Path]:
    return sorted((sweep.path / "wandb" / "wandb").glob("offline-run-*"))


def _read(run_dir: Path) -> RunFile | None:
    files = list(run_dir.glob("run-*.wandb"))
    try:
        return read_run(files[0]) if files else None
    except (OSError, ValueError):
        return None


def _stamp(run_dir: Path) -> dict[str, float]:
    files = list(run_dir.glob("run-*.wandb"))
    st = files[0].stat() if files else None
    return {"size": st.st_size if st else 0, "mtime": st.st_mtime if st else 0.0}


def base_url() -> str:
    return os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")


def check_reachable(url: str, timeout: float = 5.0) -> None:
    u = urlparse(url)
    host, port = u.hostname or "api.wandb.ai", u.port or (443 if u.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        raise SyncError(f"cannot reach {host}:{port} ({err.strerror or err})") from None
    if os.environ.get("WANDB_API_KEY"):
        return
    try:
        if netrc.netrc().authenticators(host):
            return
    except (OSError, netrc.NetrcParseError):
        pass
    raise SyncError(f"no W&B API key for {host}: run `wandb login` or set WANDB_API_KEY")


def sync(sweep: SweepDir, jobs: int = 4, dry_run: bool = False) -> SyncReport:
    """Upload every finished offline run not uploaded yet (or changed since), ``jobs`` at a time."""
    report = SyncReport()
    ledger_path = sweep.path / "wandb" / LEDGER
    ledger = _ledger(sweep, warn=True)
    ended = ended_unclosed(sweep, ledger)
    report.closed = [d.name for d, _, _ in ended]
    if not dry_run:
        for _, tid, result in ended:
            close_run(sweep, tid, result)
    runs = offline_runs(sweep)
    ids = [d.name.split("-", 3)[-1] for d in runs]  # offline-run-<time>-<run id>
    todo = []
    for i, d in enumerate(runs):
        if _unchanged(ledger, d):  # uploaded and unchanged: not even read
            report.skipped.append(d.name)
            continue
        run = _read(d)
        if d.name in report.closed and dry_run:  # would be closed first, then uploaded
            todo.append(d)
        elif run is None or not run.run_id:  # killed before wandb-core flushed anything: logged again later
            report.empty.append(d.name)
        elif not (run.exited or ids[i] in ids[i + 1:]):
            # finished when its process logged an exit, or a later process of the same run took
            # over (a requeue, a resume after kill -9): nothing will write to it again
            report.live.append(d.name)
        else:
            todo.append(d)
    if not todo or dry_run:
        report.uploaded = [d.name for d in todo] if dry_run else []
        return report
    check_reachable(base_url())
    env = {**os.environ, **wandb_env(sweep.path / "wandb")}
    if "WANDB_CONFIG_DIR" in os.environ:  # the user's own login settings win for uploading
        env["WANDB_CONFIG_DIR"] = os.environ["WANDB_CONFIG_DIR"]
    wandb_cli = str(Path(sys.executable).with_name("wandb"))
    t0 = time.monotonic()

    def one(d: Path) -> tuple[Path, str | None]:
        proc = subprocess.run([wandb_cli, "sync", "--include-offline", "--include-synced", str(d)], env=env,
                              capture_output=True, text=True, timeout=3600)
        text = (proc.stdout + proc.stderr).strip().splitlines()
        bad = proc.returncode != 0 or any("error" in ln.lower() for ln in text)
        if bad:
            return d, text[-1] if text else f"wandb sync exited {proc.returncode}"
        urls[d.name] = next((m.group(0) for ln in text if (m := _URL.search(ln))), None)
        return d, None

    urls: dict[str, str | None] = {}
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for d, err in pool.map(one, todo):
            if err:
                report.failed.append((d.name, err))
                continue
            report.uploaded.append(d.name)
            report.bytes += int(_stamp(d)["size"])
            ledger[d.name] = {**_stamp(d), **({"url": urls[d.name]} if urls.get(d.name) else {})}
            atomic_write_text(ledger_path, json.dumps(ledger, indent=1) + "\n")
    report.seconds = time.monotonic() - t0
    return report


def _ledger(sweep: SweepDir, warn: bool) -> dict[str, Any]:
    """synced.json: what sync uploaded (run dir -> size, mtime, url). A damaged one is named (with
    ``warn``) and read as empty: every run is then checked (and uploaded) again."""
    path = sweep.path / "wandb" / LEDGER
    try:
        ledger = json.loads(read_regular(path))
        if not isinstance(ledger, dict):
            raise ValueError("not a mapping")
        return ledger
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        if warn:
            warn_corrupt(path, f"{type(err).__name__}: {err}; every run is checked again")
        return {}


def _unchanged(ledger: dict[str, Any], d: Path) -> bool:
    entry = ledger.get(d.name)
    return isinstance(entry, dict) and {k: v for k, v in entry.items() if k != "url"} == _stamp(d)


def ended_unclosed(sweep: SweepDir, ledger: dict[str, Any]) -> list[tuple[Path, str, dict[str, Any]]]:
    """(run dir, trial id, its verdict) of each trial in a final state whose latest W&B run has no
    exit record and no live runner: its process was killed (scancel, ASHA's stop, kill -9) before
    it could close the run, and nothing will ever write to it again. Runs the ledger holds as
    uploaded and unchanged are not read (an upload was closed or superseded)."""
    runs = offline_runs(sweep)
    ids = [d.name.split("-", 3)[-1] for d in runs]
    uid = sweep.uid()
    out = []
    for i, d in enumerate(runs):
        parts = ids[i].rsplit("-", 2)
        if (ids[i] in ids[i + 1:] or len(parts) != 3 or run_id(sweep.name, uid, parts[1]) != ids[i]
                or _unchanged(ledger, d)):
            continue  # a later process of the run took over, or not one of this sweep's trial runs
        tid = parts[1]
        result = sweep.result(tid)
        if result is None or held(sweep.trial_dir(tid)) is not None:
            continue
        run = _read(d)
        if run is None or not run.exited:  # empty (killed before its first flush) or open
            out.append((d, tid, result))
    return out


def close_run(sweep: SweepDir, trial_id: str, result: dict[str, Any]) -> None:
    """Close an ended trial's run the way its launcher would have: resume it offline (a new run
    dir of the same run, which supersedes the dead one), log any epoch it lacks, its verdict as
    summary, and an exit record."""
    config = next((t.get("config") for t in sweep.trials() if t.get("trial_id") == trial_id), None) or {}
    Tracker(plans_for(sweep, [trial_id])[trial_id], sweep.trial_dir(trial_id), trial_id).start(
        config, result.get("params")).finish(result)


def trial_runs(sweep: SweepDir, trial_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Which W&B run is each trial's: its run id (fixed at submit: sweep, trial id, the sweep dir's
    uid), project, entity, mode, its offline run dirs and, once ``orchestrate sync`` uploaded it,
    its URL (what ``wandb sync`` printed, kept in synced.json)."""
    opts = settings(sweep.options().get("wandb") or {})
    uid = sweep.uid()
    by_run: dict[str, list[Path]] = {}
    for d in offline_runs(sweep):  # offline-run-<time>-<run id>
        by_run.setdefault(d.name.split("-", 3)[-1], []).append(d)
    ledger = _ledger(sweep, warn=False)
    out = {}
    for tid in trial_ids:
        rid = run_id(sweep.name, uid, tid)
        dirs = by_run.get(rid, [])
        urls = [e.get("url") for d in dirs if isinstance(e := ledger.get(d.name), dict)]
        out[tid] = {"run_id": rid, "project": opts["project"], "entity": opts["entity"], "mode": opts["mode"],
                    "dirs": [str(d) for d in dirs], "url": next((u for u in urls if u), None)}
    return out


def publish_board(sweep: SweepDir, columns: list[str], rows: list[list[Any]], images: dict[str, Path]) -> str:
    """One sweep-level run in the sweep's group (job_type "leaderboard") holding the board as a
    wandb.Table and the plots as images; returns where it went (offline dir or URL)."""
    opts = settings(sweep.options().get("wandb") or {})
    if opts["mode"] == "disabled":
        return "nowhere: wandb.mode is disabled"
    root = sweep.path / "wandb"
    os.environ.update(wandb_env(root))
    make_dir(root)
    import wandb  # heavy: loads wandb (about a second); only this path needs it

    run = wandb.init(id=run_id(sweep.name, sweep.uid(), "leaderboard"), resume="allow", group=sweep.name,
                     job_type="leaderboard", name=f"{sweep.name} leaderboard", project=opts["project"],
                     entity=opts["entity"], tags=opts["tags"] or None, mode=opts["mode"], dir=str(root),
                     reinit="create_new", settings=wandb.Settings(console="off", silent=True))
    payload: dict[str, Any] = {"leaderboard": wandb.Table(columns=columns, data=rows)}
    payload.update({k: wandb.Image(str(p)) for k, p in images.items()})
    run.log(payload)
    where = run.url if opts["mode"] == "online" else run.dir
    run.finish()
    return str(where)
