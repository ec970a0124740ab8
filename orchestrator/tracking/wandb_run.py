"""W&B for one trial, on rank 0: one run per trial for its whole life (requeues, preemptions and
resumes continue it), each epoch logged exactly once, and W&B trouble never touching training.

The trial's own files are the record; W&B follows them. ``wandb.init`` runs in a background
thread, so a slow or failing init (many trials starting at once, no network) never stalls an
epoch; whatever epochs W&B has not seen yet are logged from ``metrics.jsonl`` as soon as it is up,
and on a resume the run files already on disk say which epochs are there (a kill -9 between the
checkpoint and the log leaves that epoch for the next process to log)."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from model import count_params
from orchestrator.store.manifest import manifest_trials
from orchestrator.sweep.naming import label, short, varying_keys
from orchestrator.sweep.trialconfig import get_dotted
from orchestrator.tracking.wandb_files import logged_steps
from train.safefs import make_dir

ENV_OVERRIDES = {"mode": "WANDB_MODE", "project": "WANDB_PROJECT", "entity": "WANDB_ENTITY", "notes": "WANDB_NOTES"}
DEFAULT_PROJECT = "orchestrate"
FINISH_TIMEOUT_S = 60.0
FINISH_WAIT_INIT_S = 30.0


def run_id(sweep_name: str, sweep_uid: str, trial_id: str) -> str:
    """Stable for a trial of this sweep dir (so every resume finds the same run), and distinct
    from a same-named sweep started elsewhere (another uid): W&B ids allow [A-Za-z0-9_-]."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", sweep_name).strip("-")[:40] or "sweep"
    return f"{slug}-{trial_id}-{sweep_uid}"


def settings(wandb_opts: dict[str, Any]) -> dict[str, Any]:
    """The sweep's wandb section with the standard WANDB_* variables of this environment on top."""
    out = {"mode": "offline", "project": DEFAULT_PROJECT, "entity": None, "tags": [], "notes": None,
           **{k: v for k, v in (wandb_opts or {}).items() if v is not None}}
    for key, var in ENV_OVERRIDES.items():
        if os.environ.get(var):
            out[key] = os.environ[var]
    if os.environ.get("WANDB_TAGS"):
        out["tags"] = [t for t in os.environ["WANDB_TAGS"].split(",") if t]
    if os.environ.get("WANDB_DISABLED", "").lower() in ("1", "true", "yes"):
        out["mode"] = "disabled"
    return out


def plan(sweep_path: Path, sweep_name: str, sweep_uid: str, wandb_opts: dict[str, Any], trial_id: str,
         name: str) -> dict[str, Any]:
    """What a trial's launcher needs to open its run (picklable; built at submit time)."""
    return {"wandb": dict(wandb_opts or {}), "group": sweep_name, "name": name or trial_id,
            "run_id": run_id(sweep_name, sweep_uid, trial_id), "dir": str(sweep_path / "wandb")}


def wandb_env(root: Path) -> dict[str, str]:
    """Every file W&B writes stays under the sweep dir (nothing in $HOME), and it stays quiet."""
    return {"WANDB_DIR": str(root), "WANDB_CACHE_DIR": str(root / "cache"), "WANDB_DATA_DIR": str(root / "data"),
            "WANDB_CONFIG_DIR": str(root / "config"), "WANDB_ARTIFACT_DIR": str(root / "artifacts"),
            "WANDB_SILENT": "true"}


def _warn(trial_id: str, text: str) -> None:
    print(f"[{trial_id}] warning: W&B {text}; training goes on, its files stay the record", file=sys.stderr, flush=True)


class Tracker:
    """``start`` before ``run_trial``, ``hook`` as (part of) its per-epoch hook, ``finish`` after."""

    def __init__(self, tplan: dict[str, Any], out: str | Path, trial_id: str) -> None:
        self.plan, self.out, self.trial_id = tplan, Path(out), trial_id
        self.opts = settings(tplan["wandb"])
        self.root = Path(tplan["dir"])
        self.run: Any = None
        self.logged: set[int] = set()
        self.broken = self.opts["mode"] == "disabled"
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self.timeout = float(os.environ.get("WANDB_INIT_TIMEOUT", "90"))

    def start(self, config: dict[str, Any], params: int | None) -> Tracker:
        if self.broken:
            self._ready.set()
            return self
        self._deadline = time.monotonic() + self.timeout + 5
        os.environ.update(wandb_env(self.root))
        full = {**config, "params": params, "trial_id": self.trial_id, "sweep": self.plan["group"],
                **({"stage": self.plan["stage"]} if self.plan.get("stage") else {})}
        threading.Thread(target=self._init, args=(full,), daemon=True, name="wandb-init").start()
        return self

    def _init(self, config: dict[str, Any]) -> None:
        try:
            make_dir(self.root)
            self.logged = logged_steps(self.root / "wandb", self.plan["run_id"])
            import wandb  # heavy: loads wandb (about a second); only this path needs it

            o = self.opts
            self.run = wandb.init(
                id=self.plan["run_id"], resume="allow", group=self.plan["group"], job_type="trial",
                name=self.plan["name"], project=o["project"], entity=o["entity"], tags=o["tags"] or None,
                notes=o["notes"], mode=o["mode"], dir=str(self.root), config=config, reinit="create_new",
                settings=wandb.Settings(console="off", init_timeout=self.timeout, silent=True))
        except BaseException as err:  # noqa: BLE001 - anything W&B does wrong stays out of training
            self.broken = True
            _warn(self.trial_id, f"init failed ({type(err).__name__}: {_line(err)})")
        finally:
            self._ready.set()

    def _catch_up(self) -> None:
        """Log every metrics.jsonl epoch this run does not have yet, in order."""
        try:
            rows = [json.loads(line) for line in (self.out / "metrics.jsonl").read_text().splitlines() if line.strip()]
        except (OSError, ValueError):
            return
        for row in rows:
            epoch = row.get("epoch")
            if epoch is None or epoch in self.logged:
                continue
            self.run.log(row, step=int(epoch))
            self.logged.add(epoch)

    def _guard(self, what: str, fn: Callable[[], None]) -> None:
        if self.broken or self.run is None:
            return
        with self._lock:
            try:
                fn()
            except Exception as err:  # noqa: BLE001 - a dying wandb-core must not kill the trial (Ctrl-C still does)
                self.broken = True
                _warn(self.trial_id, f"{what} failed ({type(err).__name__}: {_line(err)})")

    def hook(self, row: dict[str, Any]) -> None:
        """Per-epoch: log what is new. Returns nothing, so it never stops the trial."""
        if self._ready.is_set():
            self._guard("log", self._catch_up)

    def finish(self, result: dict[str, Any] | None) -> None:
        # Training is over: wait for a slow init a little (the slot may hold a GPU), not its full timeout.
        if not self._ready.wait(min(FINISH_WAIT_INIT_S, max(0.0, getattr(self, "_deadline", 0) - time.monotonic()))):
            self.broken = True
            _warn(self.trial_id, "init did not finish before the trial did, so W&B has none of its epochs "
                  "(they are in its metrics.jsonl)")
        if self.broken or self.run is None:
            return

        def close() -> None:
            self._catch_up()
            if result:
                self.run.summary.update({k: v for k, v in result.items() if k != "error" or v is None})
                if result.get("error"):
                    self.run.summary["error"] = _line(result["error"])
            failed = (result or {}).get("status") not in ("completed", "stopped_early", "paused")  # paused: resumed later
            self.run.finish(exit_code=1 if failed else 0)

        done = threading.Thread(target=lambda: self._guard("finish", close), daemon=True, name="wandb-finish")
        done.start()
        done.join(FINISH_TIMEOUT_S)
        if done.is_alive():
            _warn(self.trial_id, f"finish did not return in {FINISH_TIMEOUT_S:g} s; left behind")


def _line(err: Any) -> str:
    text = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    return (text[0] if text else "")[:300]


def open_tracker(tplan: dict[str, Any] | None, config: dict[str, Any], out: str | Path, trial_id: str,
                 rank_from_env: bool = True) -> Tracker | None:
    """The trial's tracker on the process that logs (rank 0 of a SLURM task group; a Ray
    trainable always is), else None."""
    if not tplan or (rank_from_env and int(os.environ.get("SLURM_PROCID", os.environ.get("RANK", "0"))) != 0):
        return None
    try:
        params = count_params(config["model"])
    except Exception:  # noqa: BLE001 - the trainer reports a bad model config itself
        params = None
    return Tracker(tplan, out, trial_id).start(config, params)




class DeferredTracker:
    """A launcher's tracker, opened only once its runner holds the trial's lease (``run_trial``'s
    ``on_start``), so a duplicate runner never touches the trial's W&B run."""

    def __init__(self, tplan: dict[str, Any] | None, config: dict[str, Any], out: str | Path, trial_id: str,
                 rank_from_env: bool = True) -> None:
        self.args = (tplan, config, out, trial_id, rank_from_env)
        self.tracker: Tracker | None = None

    def open(self) -> None:
        self.tracker = open_tracker(*self.args[:4], rank_from_env=self.args[4])

    def hook(self, row: dict[str, Any]) -> None:
        if self.tracker is not None:
            self.tracker.hook(row)

    def finish(self, result: dict[str, Any] | None) -> None:
        if self.tracker is not None:  # also on a failure or a requeue: the run continues next time
            self.tracker.finish(result)


def plans_for(sweep: Any, trial_ids: list[str]) -> dict[str, dict[str, Any]]:
    """trial id -> its tracking plan; run names from the keys that vary across the whole sweep
    (not just this submission), so a resubmitted trial keeps its name."""
    kept = [t for t in manifest_trials(sweep) if t.kept and not t.earlier]
    keys = varying_keys(kept, None) if len(kept) > 1 else []
    opts, uid = sweep.options(), sweep.uid()
    wandb = dict(opts.get("wandb") or {})
    algorithm = (opts.get("search") or {}).get("algorithm", "grid")
    if algorithm != "grid":  # a search's runs say which search proposed them
        wandb["tags"] = [*(wandb.get("tags") or []), f"search-{algorithm}"]
    stage = opts.get("stage")  # a study's stage being launched (its trials' runs carry it)
    if isinstance(stage, str):
        wandb["tags"] = [*(wandb.get("tags") or []), f"stage-{stage}"]
    by_id = {t.trial_id: t for t in kept}
    out = {}
    for tid in trial_ids:
        t = by_id.get(tid)
        name = " ".join(f"{label(k)}={short(get_dotted(t.config, tuple(k.split('.'))))}" for k in keys) if t else ""
        out[tid] = plan(sweep.path, sweep.name, uid, wandb, tid, name)
        if isinstance(stage, str):
            out[tid]["stage"] = stage
    return out
