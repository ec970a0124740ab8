"""SLURM through submitit: one job array per submission, DDP tasks per GPU, requeue on signal."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import submitit

from configcheck import ConfigError
from configcheck.durations import time_minutes
from orchestrator import faults
from orchestrator.backends.base import Backend, JobState
from orchestrator.backends.slurm.allocation import outside_any_job
from orchestrator.backends.slurm.detached import submit_driver
from orchestrator.backends.slurm.intents import clear_intent, reconcile, write_intent
from orchestrator.backends.slurm.options import cpus_per_task, gpus_per_node, signal_delay, tasks_per_node
from orchestrator.backends.slurm.packing import PackedJob
from orchestrator.backends.slurm.sacct_text import merge_squeue, parse_max_array_size, parse_sacct, sbatch_refusal
from orchestrator.backends.slurm.sacct_text import run as _run
from orchestrator.backends.slurm.trialjob import TrialJob
from orchestrator.store.sweepdir import Submission, SweepDir
from orchestrator.sweep.expand import Trial
from orchestrator.sweep.resources import check_backend_keys
from orchestrator.tracking.wandb_run import plans_for
from train.safefs import make_dir

DEFAULT_MAX_ARRAY_SIZE = 1001  # SLURM's own default, when the config does not say


def _tasks(trials: list[Trial], resources: dict[str, Any]) -> int:
    """Array tasks for these trials: one each, or one per ``trials_per_gpu`` when packing."""
    return -(-len(trials) // (resources.get("trials_per_gpu") or 1))


class SlurmBackend(Backend):
    name = "slurm"
    picks_time_limits = True
    preview_label = "sbatch text"
    detaches = True

    @staticmethod
    def restarts(result: dict[str, Any]) -> int:
        """SLURM_RESTART_COUNT, which the trainer records in result.json's host once SLURM requeued the job."""
        count = str((result.get("host") or {}).get("slurm_restart_count", "0"))
        return int(count) if count.isdigit() else 0

    @staticmethod
    def noise(line: str) -> bool:
        return line.startswith("srun: error")  # srun's own report of a task's exit, not the trial's

    def available(self) -> bool:
        return shutil.which("sacct") is not None

    @staticmethod
    def _require() -> None:
        """Submitting needs SLURM here; reading states and log paths of a sweep dir does not."""
        if shutil.which("sbatch") is None:
            raise ConfigError("--backend slurm", "no SLURM here (sbatch not found); bring one up with "
                              "slurm/local-cluster.sh up, or run on a cluster's login node")

    @functools.cached_property
    def max_array_size(self) -> int:
        return parse_max_array_size(_run(["scontrol", "show", "config"])) or DEFAULT_MAX_ARRAY_SIZE

    def _arrays(self, trials: list[Trial]) -> list[list[Trial]]:
        """One array per MaxArraySize tasks (normally a single array); a task holds
        ``trials_per_gpu`` trials."""
        size = self.max_array_size * ((trials[0].config["resources"].get("trials_per_gpu") or 1) if trials else 1)
        return [trials[i:i + size] for i in range(0, len(trials), size)]

    def partitions(self) -> list[str]:
        return sorted({p.rstrip("*") for p in _run(["sinfo", "-h", "-o", "%P"]).split()})

    def check(self, resources: dict[str, Any]) -> None:
        self._require()
        check_backend_keys(resources, self.name)
        gpus_per_node(resources)
        tasks_per_node(resources)
        self.check_partition(resources.get("partition"))

    def max_time(self, partition: str | None) -> int | None:
        """The partition's MaxTime in minutes (the default partition's without one); None when
        unlimited or unknown."""

        args = ["sinfo", "-h", "-o", "%P %l"] + (["-p", partition] if partition else [])
        try:
            rows = [ln.split() for ln in _run(args).splitlines() if ln.strip()]
        except (subprocess.CalledProcessError, FileNotFoundError, subprocess.TimeoutExpired):
            return None
        rows = [r for r in rows if len(r) == 2 and (partition or r[0].endswith("*"))]
        try:
            return time_minutes(rows[0][1]) if rows and rows[0][1] not in ("infinite", "UNLIMITED") else None
        except ConfigError:
            return None

    def check_partition(self, partition: str | None) -> None:
        self._require()
        if partition is not None:
            known = self.partitions()
            if partition not in known:
                raise ConfigError("resources.partition", f"{partition!r} is not a partition of this cluster; "
                                  f"allowed: {', '.join(known)}")

    def notes(self, resources: dict[str, Any]) -> list[str]:
        partition = resources.get("partition")
        if not partition or gpus_per_node(resources):
            return []
        try:
            gres = _run(["sinfo", "-h", "-p", partition, "-o", "%G"]).split()
        except (subprocess.CalledProcessError, FileNotFoundError, subprocess.TimeoutExpired):
            return []
        gpus = sorted({g for g in gres if g.startswith("gpu")})
        if not gpus:
            return []
        return [f"no GPUs requested: partition {partition} has GPUs ({', '.join(gpus)}), but each trial asks for none "
                "(resources.gpus_per_node 0), so it trains on CPU; --gpus-per-node 1 asks for one"]

    def _executor(self, folder: Path, r: dict[str, Any], job_name: str, count: int) -> submitit.SlurmExecutor:
        ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=r["max_requeues"])
        params: dict[str, Any] = {
            "job_name": job_name, "time": time_minutes(r["time"]), "nodes": r["nodes"],
            "ntasks_per_node": tasks_per_node(r), "signal_delay_s": signal_delay(r),
            "array_parallelism": min(r["array_parallelism"], max(1, count)),
        }
        for key in ("partition", "account", "qos", "constraint"):
            if r.get(key) is not None:
                params[key] = r[key]
        if cpus_per_task(r) is not None:
            params["cpus_per_task"] = cpus_per_task(r)
        if gpus_per_node(r):
            params["gpus_per_node"] = gpus_per_node(r)
        if r.get("mem_gb") is not None:
            params["mem"] = f"{max(1, round(r['mem_gb'] * 1024))}M"  # a bare number would mean MB to SLURM
        ex.update_parameters(**params)
        return ex

    def preview(self, sweep: SweepDir, trials: list[Trial], resources: dict[str, Any]) -> str:
        folder = sweep.path / "slurm" / "<submission>"
        ex = self._executor(folder, resources, f"orchestrate-{sweep.name}-<intent>", _tasks(trials, resources))
        from submitit.slurm.slurm import _make_sbatch_string  # heavy: loads submitit; only this path needs it

        texts = []
        k = resources.get("trials_per_gpu") or 1
        for chunk in self._arrays(trials):
            params = dict(ex.parameters)
            tasks = -(-len(chunk) // k)
            if tasks > 1:
                params["map_count"] = tasks
            texts.append(_make_sbatch_string(command=ex._submitit_command_str, folder=folder, **params))
        return "\n".join(texts)

    def launch(self, sweep: SweepDir, trials: list[Trial], resources: dict[str, Any]) -> list[Submission]:
        stamp = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        # A folder per submission, never keyed by job id alone: a cluster whose ids restart
        # (state wipe) must not hand us an older job's pickles or results.
        folder = make_dir(make_dir(sweep.path / "slurm") / stamp)  # owner-only: submitit's job pickles live here
        ex = self._executor(folder, resources, f"orchestrate-{sweep.name}", _tasks(trials, resources))
        out: list[Submission] = []

        tracking = plans_for(sweep, [t.trial_id for t in trials])
        k = resources.get("trials_per_gpu") or 1
        for chunk in self._arrays(trials):
            # K trials per array task when packing: one job id for all of them
            packs = [chunk[i:i + k] for i in range(0, len(chunk), k)]
            calls = [[TrialJob(t.config, str(sweep.trial_dir(t.trial_id)), t.trial_id, tracking[t.trial_id])
                      for t in pack] for pack in packs]
            token = uuid.uuid4().hex[:10]
            # The job name carries the intent's token: a submit killed before it recorded the job
            # ids finds them again by name (``reconcile``).
            ex.update_parameters(job_name=f"orchestrate-{sweep.name}-{token}")
            write_intent(sweep, folder, token, ex, packs, resources)
            faults.point("submit.after_intent")
            try:  # submitit prints sbatch's stderr itself on failure; we report it in one line instead
                with contextlib.redirect_stderr(io.StringIO()), outside_any_job(), ex.batch():
                    jobs = []
                    for pack, each in zip(packs, calls):
                        job = ex.submit(PackedJob(each) if k > 1 else each[0])
                        jobs += [job] * len(pack)
            except submitit.core.utils.FailedJobError as err:  # sbatch refused: the request is at fault
                clear_intent(sweep, folder, token)
                if not out:
                    shutil.rmtree(folder, ignore_errors=True)
                raise ConfigError("sbatch", sbatch_refusal(err)) from None
            faults.point("submit.after_sbatch")
            subs = self._submissions(sweep, [t.trial_id for t in chunk], [str(j.job_id) for j in jobs], folder,
                                     resources)
            faults.point("submit.after_record")
            clear_intent(sweep, folder, token)
            out += subs
        return out

    def _submissions(self, sweep: SweepDir, trial_ids: list[str], job_ids: list[str], folder: Path,
                     resources: dict[str, Any]) -> list[Submission]:
        """Record these trials' jobs (and link their logs): right after sbatch, or by ``reconcile``."""
        now = time.time()
        subs = [Submission(t, j, self.name, now, str(folder), resources, array_id=j.split("_")[0])
                for t, j in zip(trial_ids, job_ids)]
        sweep.record(subs)  # per array, so a later failure cannot lose these ids
        if (resources.get("trials_per_gpu") or 1) == 1:  # a packed trial writes its own logs in its dir
            for sub in subs:
                self._link_logs(sweep, sub)
        return subs

    def detach(self, sweep: SweepDir, run: Any, args: tuple[Any, ...], driver: dict[str, Any],
               after: tuple[str, ...] = (), name: str = "search") -> tuple[str, Any, str]:
        self._require()
        self.check_partition(driver.get("partition"))
        return submit_driver(sweep, run, args, driver, self.max_time(driver.get("partition")), after, name)

    def call(self, sweep: SweepDir, trial_ids: list[str], resources: dict[str, Any]) -> Any:
        """What one array task runs for these trials, rebuilt from the sweep's trials.jsonl (a
        killed submit's intent names only trial ids; its job pickle is written anew from this)."""
        configs = {t["trial_id"]: t["config"] for t in sweep.trials()}
        tracking = plans_for(sweep, trial_ids)
        jobs = [TrialJob(configs[t], str(sweep.trial_dir(t)), t, tracking[t]) for t in trial_ids]
        return PackedJob(jobs) if (resources.get("trials_per_gpu") or 1) > 1 else jobs[0]

    def reconcile(self, sweep: SweepDir, read_only: bool = False) -> list[Submission]:
        return reconcile(self, sweep, read_only)

    def log_paths(self, submission: Submission) -> tuple[str, str]:
        if (submission.resources.get("trials_per_gpu") or 1) > 1:  # packed: the trial's own files
            d = Path(submission.folder).parent.parent / "trials" / submission.trial_id
            return str(d / "stdout.log"), str(d / "stderr.log")
        paths = submitit.core.utils.JobPaths(submission.folder, job_id=submission.job_id, task_id=0)
        return str(paths.stdout), str(paths.stderr)

    def _link_logs(self, sweep: SweepDir, sub: Submission) -> None:
        """trials/<id>/stdout.log and stderr.log point at this submission's files (replaced atomically)."""
        d = make_dir(sweep.trial_dir(sub.trial_id))
        for name, target in zip(("stdout.log", "stderr.log"), self.log_paths(sub)):
            tmp = d / f".{name}.{uuid.uuid4().hex[:6]}"
            os.symlink(os.path.relpath(target, d), tmp)
            os.replace(tmp, d / name)

    def states(self, submissions: list[Submission]) -> dict[str, JobState]:
        arrays = sorted({s.array_id or s.job_id.split("_")[0] for s in submissions})
        if not arrays:
            return {}
        out: dict[str, JobState] = {}
        ids = ",".join(arrays)
        self.trouble = ""
        # every incarnation (-D): a requeued job has one record per run, the last is current
        try:
            out = parse_sacct(_run(["sacct", "-n", "-P", "-X", "-D", "-j", ids, "-o", "JobID,State"]))
        except FileNotFoundError:
            pass
        except subprocess.TimeoutExpired:
            self.trouble = "sacct did not answer within 60 s"
        except subprocess.CalledProcessError as err:  # e.g. slurmdbd down: "Unable to connect to database"
            said = [ln.strip() for ln in (err.stderr or "").splitlines() if ln.strip()]
            self.trouble = f"sacct exited {err.returncode}: {said[0] if said else 'no message'}"
        # the queue is authoritative for what is still active (sacct lags by seconds); squeue -j
        # fails once every listed job has left the queue
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError, subprocess.TimeoutExpired):
            out = merge_squeue(out, _run(["squeue", "-h", "-r", "-j", ids, "-o", "%i|%T"]))
        return out

    def cancel(self, submissions: list[Submission]) -> None:
        self._require()
        ids = sorted({s.job_id for s in submissions})
        if ids:
            _run(["scancel", *ids])
