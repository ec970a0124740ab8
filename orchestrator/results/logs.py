"""``orchestrate logs TRIAL_ID``: the latest job's stdout/stderr, optionally followed."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from configcheck import ConfigError
from orchestrator.plugins import get_backend
from orchestrator.store.sweepdir import SweepDir, find_sweep
from orchestrator.tracking.sync import trial_runs
from train.safefs import open_regular


def _find(trial_id: str, target: str | None, runs_dir: str) -> SweepDir:
    sweeps = [find_sweep(target, runs_dir)] if target else [SweepDir(p) for p in sorted(Path(runs_dir).glob("*"))
                                                             if (p / "submissions.jsonl").is_file()]
    found = [sweep for sweep in sweeps if any(s.trial_id.startswith(trial_id) for s in sweep.submissions())]
    if len(found) > 1:  # the same config in two sweeps (or a short prefix): never pick one silently
        raise ConfigError("TRIAL_ID", f"{trial_id!r} is a trial of {len(found)} sweeps: "
                          f"{', '.join(str(s.path) for s in found)}; name one with --sweep")
    if found:
        return found[0]
    raise ConfigError("TRIAL_ID", f"{trial_id!r} has no submission in {target or runs_dir}")


def wandb_line(sweep: SweepDir, trial_id: str) -> str:
    """Which W&B run is the trial's, and where it is (its URL once synced)."""
    w = trial_runs(sweep, [trial_id])[trial_id]
    where = w["url"] or (f"offline in {w['dirs'][-1]}; orchestrate sync {sweep.path} uploads it" if w["dirs"]
                         else "no run files yet")
    return f"W&B run {w['run_id']} (project {w['project']}{', entity ' + w['entity'] if w['entity'] else ''}): {where}"


def show_logs(trial_id: str, target: str | None, runs_dir: str, follow: bool) -> int:
    sweep = _find(trial_id, target, runs_dir)
    subs = [s for s in sweep.submissions() if s.trial_id.startswith(trial_id)]
    sub = subs[-1]
    backend = get_backend(sub.backend)
    out, err = (Path(p) for p in backend.log_paths(sub))
    subs_ids = {s.trial_id for s in subs}
    if len(subs_ids) > 1:
        raise ConfigError("TRIAL_ID", f"{trial_id!r} is the start of {len(subs_ids)} trial ids in {sweep.path}: "
                          f"{', '.join(sorted(subs_ids))}; give more of it")
    print(f"# trial {sub.trial_id}, job {sub.job_id}\n# {wandb_line(sweep, sub.trial_id)}\n# {out}\n# {err}",
          file=sys.stderr)
    pos = {out: 0, err: 0}
    bad: set[Path] = set()

    def drain() -> None:
        for path, stream in ((out, sys.stdout), (err, sys.stderr)):
            try:  # a log link is followed only into this sweep dir; a FIFO or device is named, never read
                with open_regular(path, link_within=sweep.path) as f:
                    f.seek(pos[path])
                    chunk = f.read()
                    pos[path] += len(chunk)
            except FileNotFoundError:
                continue
            except OSError as e:
                if path not in bad:
                    bad.add(path)
                    print(f"# {path}: {e.strerror}; not shown", file=sys.stderr)
                continue
            stream.write(chunk.decode(errors="replace"))
            stream.flush()

    drain()
    while follow:
        states = backend.states([sub])
        state = states.get(sub.job_id)
        time.sleep(1.0)
        drain()
        if state is not None and not state.active:
            break
    return 0
