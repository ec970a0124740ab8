"""Ray Tune: the sweep runs in the foreground of ``orchestrate submit`` (the driver), on a private
Ray instance here or on a cluster given by ``--address``; fractional GPUs pack trials, ASHA stops
the weak ones early. The driver writes the same sweep dir as SLURM; status reads it back (and the
driver's record) without Ray."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from configcheck import ConfigError
from configcheck.durations import time_minutes
from orchestrator.backends.base import Backend, BackendStopped, JobState
from orchestrator.backends.ray.driver import (
    DRIVER,
    Heartbeat,
    RaySession,
    RayWatch,
    check_fits,
    driver_alive,
    quiet_fds,
    sigterm_as_interrupt,
    write_token,
)
from orchestrator.backends.ray.inside_slurm import SLURM_OPTIONS, check_fits_slurm, job_state, submit_cluster_job
from orchestrator.backends.ray.leases import release_leases
from orchestrator.backends.ray.options import per_trial
from orchestrator.backends.ray.processes import descendants, kill_leftovers, pid_start
from orchestrator.backends.ray.trainable import CANCEL, STARTED
from orchestrator.store.sweepdir import Submission, SweepDir, warn_corrupt
from orchestrator.sweep.expand import Trial
from orchestrator.sweep.resources import check_backend_keys
from train.atomic import atomic_write_text
from train.files import failure, read_result, write_result
from train.safefs import Unsafe, check_dir, make_dir, read_regular


def _record(folder: str | Path, act: bool = False) -> dict[str, Any]:
    """A driver record (status reads any, the user's or another's). ``act``: it is about to be
    acted on (its pids signalled, its link removed), so only when it is the user's own file in an
    owner-only run dir; else it is named and ignored."""
    path = Path(folder) / DRIVER
    try:
        if act:
            check_dir(folder)
            if os.lstat(folder).st_mode & 0o077:
                raise Unsafe(str(folder), "is not owner-only (a run dir is made 0700)")
        record = json.loads(read_regular(path, mine=act))
        return record if isinstance(record, dict) else {}
    except FileNotFoundError:
        return {}
    except Unsafe as err:
        warn_corrupt(path, f"{err}; not acted on")
        return {}
    except (OSError, ValueError):
        return {}


class RayBackend(Backend):
    name = "ray"
    runs_schedulers = True
    preview_label = "Ray plan"

    @classmethod
    def options(cls, flags: dict[str, Any], given: dict[str, Any], as_json: bool = False) -> dict[str, Any]:
        """``--address``/``--max-concurrent``, and SLURM placement flags (``--partition`` ...):
        with them the Ray cluster starts inside one SLURM job."""
        own = super().options(flags, given)
        slurm = {k: flags.pop(k) for k in SLURM_OPTIONS if flags.get(k) is not None}
        return {**own, "as_json": as_json, "slurm": slurm or None}

    def foreground(self) -> bool:
        return self.slurm is None  # inside SLURM the driver runs in the cluster job

    def summary(self, submitted: list[Submission], cluster_job: str | None) -> str:
        run = sorted({s.array_id or s.job_id for s in submitted})[0]
        if cluster_job is not None:
            return (f"submitted SLURM job {cluster_job}: a Ray cluster that runs these {len(submitted)} trials (driver "
                    f"ray/{run}, its log ray/{run}/driver.log); sweep dir {{where}}")
        return (f"ran {len(submitted)} trials on Ray (driver ray/{run}); sweep dir {{where}}; Tune's state (for "
                f"ExperimentAnalysis, Tuner.restore): {{where}}/ray/{run}/tune/tune")

    def cluster_job(self, submission: Submission) -> str | None:
        try:
            return read_regular(Path(submission.folder) / "slurm_job").decode().strip()
        except (OSError, UnicodeDecodeError):
            return None

    def __init__(self, address: str | None = None, max_concurrent: int | None = None, as_json: bool = False,
                 slurm: dict[str, Any] | None = None) -> None:
        self.address, self.max_concurrent, self.as_json = address, max_concurrent, as_json
        self.slurm = slurm  # set: the Ray cluster (and its driver) run inside one SLURM job
        self.session: RaySession | None = None
        self.trials: dict[str, Trial] = {}
        self.outcome = ""
        self.more: Any = None  # a search's feed (follow): trials proposed while the run goes

    def check(self, resources: dict[str, Any]) -> None:
        check_backend_keys(resources, self.name)
        if self.slurm is not None:
            from orchestrator.backends.slurm.backend import SlurmBackend  # heavy: loads submitit; only this path needs it

            if self.address is not None:
                raise ConfigError("--address", "attach to a running cluster, or start one in a SLURM job (--partition/"
                                  "--nodes), not both")
            SlurmBackend().check_partition(self.slurm.get("partition"))
            time_minutes(self.slurm.get("time") or "01:00:00", "--time")
            check_fits_slurm(per_trial(resources), self.slurm)

    def preview(self, sweep: SweepDir, trials: list[Trial], resources: dict[str, Any]) -> str:
        need = ", ".join(f"{k} {v:g}" for k, v in per_trial(resources).items())
        where = f"the Ray cluster at {self.address}" if self.address else "a private Ray instance on this machine"
        return f"ray: {len(trials)} trials on {where}, each reserving {need}"

    def launch(self, sweep: SweepDir, trials: list[Trial], resources: dict[str, Any]) -> list[Submission]:
        for old in sorted((sweep.path / "ray").glob(f"*/{DRIVER}")):  # a SIGKILLed driver's leftovers
            record = _record(old.parent, act=True)
            if record and not driver_alive(record):
                kill_leftovers(record, old.parent)
        stamp = time.strftime("r%m%d-%H%M%S")
        run_dir = sweep.path / "ray" / stamp
        if self.slurm is not None:
            return self._launch_in_slurm(sweep, run_dir, stamp, trials, resources)
        self.session = RaySession(run_dir, self.address)
        try:
            cpus = None if self.address else len(os.sched_getaffinity(0))
            self.session.start(cpus=cpus, gpus=_fake_gpus())
            check_fits(per_trial(resources), self.session.resources())
        except BaseException:
            self.session.stop()
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        self._start_record(run_dir, trials)
        return self._record_subs(sweep, run_dir, stamp, trials, resources)

    def follow(self, more: Any) -> bool:
        if self.slurm is not None:  # the driver runs in the cluster job, away from this process
            return False
        self.more = more
        return True

    def _fed(self, sweep: SweepDir, submissions: list[Submission]) -> Any:
        """The feed the Tune run calls as a trial ends: the search's next trials, each recorded as
        a submission of this run (job id <stamp>_<n>) before Tune starts it."""
        def more(trial_id: str, result: dict[str, Any]) -> list[Trial]:
            new = self.more(trial_id, result)
            if new:
                s = submissions[0]
                submissions.extend(self._record_subs(sweep, Path(s.folder), s.array_id or "", new,
                                                     new[0].config["resources"], first=len(submissions)))
                self.trials.update({t.trial_id: t for t in new})
            return new
        return more if self.more is not None else None

    def _record_subs(self, sweep: SweepDir, run_dir: Path, stamp: str, trials: list[Trial],
                     resources: dict[str, Any], first: int = 0) -> list[Submission]:
        now = time.time()
        subs = [Submission(t.trial_id, f"{stamp}_{first + i}", self.name, now, str(run_dir), resources, array_id=stamp)
                for i, t in enumerate(trials)]
        for t in trials:  # a new submission is a new request: earlier cancel marks do not apply
            for name in (CANCEL, STARTED):
                (sweep.trial_dir(t.trial_id) / name).unlink(missing_ok=True)
        sweep.record(subs)
        return subs

    def _start_record(self, run_dir: Path, trials: list[Trial]) -> None:
        self.record = {"pid": os.getpid(), "pid_start": pid_start(os.getpid()), "host": socket.gethostname(),
                       "started": time.time(), "state": "running", "address": self.address,
                       "ray_pids": [] if self.address else descendants(os.getpid()),
                       "socket_link": str(self.session.link) if self.session and self.session.link else None}
        Heartbeat(run_dir / DRIVER, self.record).write()
        self.trials = {t.trial_id: t for t in trials}

    def _launch_in_slurm(self, sweep: SweepDir, run_dir: Path, stamp: str, trials: list[Trial],
                         resources: dict[str, Any]) -> list[Submission]:
        make_dir(make_dir(sweep.path / "ray") / run_dir.name, private=True)
        write_token(run_dir / "auth_token")
        subs = self._record_subs(sweep, run_dir, stamp, trials, resources)
        job = submit_cluster_job(sweep, run_dir, trials, resources, self.slurm or {}, self.max_concurrent, RayBackend)
        atomic_write_text(run_dir / "slurm_job", job + "\n")
        return subs

    def drive(self, sweep: SweepDir, run_dir: Path, trials: list[Trial], resources: dict[str, Any],
              submissions: list[Submission]) -> None:
        """Run the driver of submissions already recorded (inside the Ray cluster job)."""
        self.session = RaySession(run_dir, self.address)
        self.session.start()
        check_fits(per_trial(resources), self.session.resources())
        self._start_record(run_dir, trials)
        self.wait(sweep, submissions)

    def wait(self, sweep: SweepDir, submissions: list[Submission]) -> None:
        from orchestrator.backends.ray.tune_run import run_tune  # heavy: loads Ray; only this path needs it

        if self.session is None:  # the driver runs inside a SLURM job: submit returns now
            return
        run_dir = self.session.run_dir
        if not self.address:  # Ray's agents start after init: take the list again
            self.record["ray_pids"] = descendants(os.getpid())
        beat = Heartbeat(run_dir / DRIVER, self.record)
        watch = RayWatch([] if self.address else self.record["ray_pids"])
        broke = ""
        try:
            with beat, watch, sigterm_as_interrupt(), quiet_fds(run_dir / "driver.log") as screen:
                try:
                    self.outcome = run_tune(sweep, [self.trials[s.trial_id] for s in submissions], run_dir,
                                            self.max_concurrent, None if self.as_json else screen,
                                            self._fed(sweep, submissions))
                except KeyboardInterrupt:
                    if not watch.died:
                        raise
                    broke = watch.died
                except Exception as err:  # Ray itself failed under the run
                    traceback.print_exc()  # into driver.log, with Ray's own last words
                    broke = watch.died or (f"{type(err).__name__}: {err}".strip().splitlines() or [""])[0][:300]
        except KeyboardInterrupt:
            self.outcome = "interrupted"
        finally:
            self.session.stop()
            beat.write(state=self.outcome or "interrupted", ended=time.time(), **({"error": broke} if broke else {}))
            if not self.address:
                kill_leftovers(self.record, run_dir)
            release_leases(sweep, submissions)
        if broke:
            left = [s for s in submissions if read_result(sweep.trial_dir(s.trial_id)) is None]
            raise BackendStopped(f"Ray stopped under the sweep ({broke}); {len(left)} of {len(submissions)} trials have "
                             f"no verdict and keep their last epoch checkpoints; Ray's log: {run_dir / 'driver.log'}; "
                             f"resume with: {sweep.resume_hint()}")
        if self.outcome != "interrupted":
            for s in submissions:  # a worker that died before its trial could write a verdict
                if read_result(sweep.trial_dir(s.trial_id)) is None:
                    write_result(sweep.trial_dir(s.trial_id), failure(
                        s.trial_id, "crash", "the Ray worker ended without a result (see ray/"
                        f"{run_dir.name}/driver.log)", self.trials[s.trial_id].params))

    def states(self, submissions: list[Submission]) -> dict[str, JobState]:
        out: dict[str, JobState] = {}
        records: dict[str, dict[str, Any]] = {}
        for s in submissions:
            record = records.setdefault(s.folder, _record(s.folder))
            trial_dir = _trial_dir(s)
            if not record:  # a Ray cluster job that has not started its driver (yet)

                job = job_state(Path(s.folder), s)
                if job is not None and job[1]:
                    out[s.job_id] = JobState("pending", True, job[2])
                    continue
                if job is not None and read_result(trial_dir) is None:
                    out[s.job_id] = JobState("interrupted", False, f"{job[2]} before its driver started; resume with: "
                                             f"{_resume_hint(s)}")
                    continue
            if driver_alive(record):
                started = (trial_dir / STARTED).is_file()
                out[s.job_id] = JobState("running" if started else "pending", True, f"driver pid {record['pid']}")
            elif read_result(trial_dir) is None:
                how = "was interrupted" if record.get("state") == "interrupted" else "is gone"
                if record.get("error"):
                    how = f"stopped: {record['error']}"
                # the command first: a narrow table cuts the end of the line
                out[s.job_id] = JobState("interrupted", False, f"resume with: {_resume_hint(s)} (its driver "
                                         f"ray/{Path(s.folder).name} {how})")
        return out

    def cancel(self, submissions: list[Submission]) -> None:
        """Each trial stops at its next epoch (a queued one before it starts): a file in its dir,
        read by the worker wherever it runs (the sweep dir is on the shared filesystem)."""
        for s in submissions:
            trial_dir = _trial_dir(s)
            make_dir(trial_dir)
            atomic_write_text(trial_dir / CANCEL, f"cancelled at {time.time()}\n")

    def log_paths(self, submission: Submission) -> tuple[str, str]:
        trial_dir = _trial_dir(submission)
        return str(trial_dir / "stdout.log"), str(trial_dir / "stderr.log")


def _resume_hint(sub: Submission) -> str:
    return SweepDir(Path(sub.folder).parent.parent).resume_hint()


def _trial_dir(sub: Submission) -> Path:
    return Path(sub.folder).parent.parent / "trials" / sub.trial_id  # folder: <sweep>/ray/<stamp>


def _fake_gpus() -> float | None:
    """ORCHESTRATE_RAY_GPUS: how many GPUs a private instance announces (tests fake one on CPU)."""
    value = os.environ.get("ORCHESTRATE_RAY_GPUS")
    return float(value) if value else None
