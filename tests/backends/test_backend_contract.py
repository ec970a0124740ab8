"""One contract every backend passes (Hydra's launcher pattern): the same sweep gives the same
files and statuses on SLURM (the local cluster) and on Ray; a raising trial fails alone with
its traceback; a resubmit runs only what is missing, --retry-failed reruns failures; an
interrupted trial resumes from its checkpoint. A new backend passes this or it is not done."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from kit import ORCH, tiny, wait_states

TINY = tiny(resources={"cpus": 1})
TRIAL_FILES = {"config.yaml", "metrics.jsonl", "checkpoint.pt", "result.json", "stdout.log", "stderr.log"}
RESULT_KEYS = {"status", "trial_id", "params", "epochs_completed", "test_acc", "best_test_acc", "best_val_acc",
               "wall_seconds", "error", "failure_kind", "host", "started_at", "ended_at"}


class Runner:
    """Submit a spec on one backend and wait until every trial has settled. The backend's own
    knowledge (its flags, how to interrupt a trial mid-run) comes from its adapter."""

    def __init__(self, adapter: Adapter, tmp: Path) -> None:
        self.adapter, self.tmp = adapter, tmp
        self.backend = adapter.name
        self.flags = ["--backend", adapter.name, *adapter.flags]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([ORCH, *args, "--runs-dir", str(self.tmp / "runs")], capture_output=True, text=True,
                              cwd=self.tmp, env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}, timeout=600)
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def status(self, spec: Path) -> list[dict]:
        return json.loads(self.run("status", str(spec), "--json").stdout)

    def submit(self, spec: Path, *extra: str) -> dict:
        out = json.loads(self.run("submit", str(spec), *self.flags, *extra, "--json").stdout)
        self.settle(spec)
        return out

    def settle(self, spec: Path, timeout: float = 300) -> list[dict]:
        return wait_states(spec, self.tmp / "runs", lambda states: all(
            not s["active"] and s["state"] not in ("missing", "pending") for s in states), lambda: self.status(spec), timeout)

    def interrupt_mid_trial(self, spec: Path, sweep: Path, tid: str) -> None:
        self.adapter.interrupt_mid_trial(self, spec, sweep, tid)


class Adapter:
    """What the contract needs to know about one backend (Hydra's launcher-test adapter)."""

    name = ""
    flags: tuple[str, ...] = ()

    def bring_up(self, request: pytest.FixtureRequest) -> None:
        """Make the backend reachable (start its cluster) or skip."""

    def interrupt_mid_trial(self, runner: Runner, spec: Path, sweep: Path, tid: str) -> None:
        """Stop a running trial hard, the backend's way, and submit again so that it resumes."""
        raise NotImplementedError


class SlurmAdapter(Adapter):
    name = "slurm"
    flags = ("--partition", "cpu", "--time", "00:10:00")

    def bring_up(self, request: pytest.FixtureRequest) -> None:
        if os.geteuid() != 0 or (shutil.which("apt-get") is None and shutil.which("slurmctld") is None):
            pytest.skip("the local SLURM cluster needs root and Debian's packages")
        request.getfixturevalue("slurm_cluster")

    def interrupt_mid_trial(self, runner: Runner, spec: Path, sweep: Path, tid: str) -> None:
        """Requeue the job mid-trial (what a preemption or a node failure does)."""
        out = json.loads(runner.run("submit", str(spec), *runner.flags, "--json").stdout)
        job = out["submitted"][0]["job_id"]
        wait_epochs(sweep / "trials" / tid, 5)
        subprocess.run(["scontrol", "requeue", job], check=True)


class RayAdapter(Adapter):
    name = "ray"

    def interrupt_mid_trial(self, runner: Runner, spec: Path, sweep: Path, tid: str) -> None:
        """SIGKILL the foreground driver mid-trial; the orphaned worker stops; submit again."""
        driver = subprocess.Popen([ORCH, "submit", str(spec), *runner.flags, "--runs-dir", str(runner.tmp / "runs")],
                                  cwd=runner.tmp, env={**os.environ, "OMP_NUM_THREADS": "1"},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_epochs(sweep / "trials" / tid, 5)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        deadline = time.time() + 30  # the orphaned worker notices within seconds; until then it is running
        while (state := runner.status(spec)[0]["state"]) == "running" and time.time() < deadline:
            time.sleep(0.5)
        assert state == "interrupted"
        runner.run("submit", str(spec), *runner.flags)


def wait_epochs(trial_dir: Path, n: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not ((trial_dir / "metrics.jsonl").is_file() and (trial_dir / "metrics.jsonl").read_text().count("\n") >= n):
        assert time.time() < deadline, f"{trial_dir} never reached epoch {n}"
        time.sleep(0.2)


def write(tmp: Path, name: str, base: dict, **extra) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "base": base, **extra}, sort_keys=False))
    return path


class BackendContract:
    """The contract, written once. A backend plugs in with a subclass naming its adapter:
    ``class TestMine(BackendContract): adapter = MineAdapter()``."""

    adapter: Adapter

    @pytest.fixture
    def runner(self, request: pytest.FixtureRequest, tmp_path: Path) -> Runner:
        self.adapter.bring_up(request)
        return Runner(self.adapter, tmp_path)

    def test_a_sweep_completes_with_the_same_files(self, runner: Runner, tmp_path: Path) -> None:
        spec = write(tmp_path, "four", TINY, grid={"model.channels": [4, 6, 8, 10]})
        sub = runner.submit(spec)
        assert len(sub["submitted"]) == 4 and {s["backend"] for s in sub["submitted"]} == {runner.backend}
        states = runner.status(spec)
        assert [s["state"] for s in states] == ["completed"] * 4
        sweep = tmp_path / "runs" / "four"
        assert {"spec.yaml", "sweep.json", "trials.jsonl", "submissions.jsonl"} <= {p.name for p in sweep.iterdir()}
        for s in states:
            d = sweep / "trials" / s["trial_id"]
            assert {p.name for p in d.iterdir()} >= TRIAL_FILES
            r = json.loads((d / "result.json").read_text())
            assert set(r) >= RESULT_KEYS and r["status"] == "completed" and r["epochs_completed"] == 2
            assert [json.loads(line)["epoch"] for line in (d / "metrics.jsonl").read_text().splitlines()] == [1, 2]
            assert s["params"] == r["params"] and s["best"] == r["best_test_acc"]
            assert s["varying"] == {"model.channels": s["config"]["model"]["channels"]}
            assert "epoch 2/2" in runner.run("logs", s["trial_id"], "--sweep", str(sweep)).stdout
        # the same W&B run per trial (offline, in the sweep dir) and the same leaderboard
        from conftest import closed_wandb_runs

        runs = closed_wandb_runs(sweep / "wandb" / "wandb", expect=4)
        assert sorted(r.run_id.split("-")[1] for r in runs) == sorted(s["trial_id"] for s in states)
        for r in runs:
            assert r.group == "four" and r.job_type == "trial" and r.steps == [1, 2] and r.summary["status"] == "completed"
        board = json.loads(runner.run("leaderboard", str(spec), "--format", "json").stdout)
        assert sorted(r["trial_id"] for r in board) == sorted(s["trial_id"] for s in states)
        assert {r["status"] for r in board} == {"completed"} and [r["rank"] for r in board] == [1, 2, 3, 4]


    def test_a_raising_trial_fails_alone_and_resubmits_follow_the_rules(self, runner: Runner, tmp_path: Path) -> None:
        trials = [{"train.seed": 0}, {"train.seed": 1, "train.optimizer.lr": 1e30}, {"train.seed": 2}]
        spec = write(tmp_path, "mixed", TINY, trials=trials)
        runner.submit(spec)
        states = runner.status(spec)
        assert [s["state"] for s in states] == ["completed", "failed", "completed"]
        assert states[1]["detail"] == "FloatingPointError: train loss is nan in epoch 1"
        failed = json.loads((tmp_path / "runs" / "mixed" / "trials" / states[1]["trial_id"] / "result.json").read_text())
        assert "Traceback" in failed["error"] and failed["failure_kind"] == "crash"

        again = runner.submit(spec)  # only what is missing: nothing; the failure is listed, not rerun
        assert again["submitted"] == [] and again["failed"] == [states[1]["trial_id"]]
        retry = runner.submit(spec, "--retry-failed")
        assert [s["trial_id"] for s in retry["submitted"]] == [states[1]["trial_id"]]
        assert runner.status(spec)[1]["state"] == "failed"  # it fails again, the same way

        spec = write(tmp_path, "mixed", TINY, trials=[*trials, {"train.seed": 3}])
        added = runner.submit(spec)
        assert [s["trial_id"] for s in added["submitted"]] == [runner.status(spec)[3]["trial_id"]]
        assert runner.status(spec)[3]["state"] == "completed"


    def test_an_interrupted_trial_resumes_from_its_checkpoint(self, runner: Runner, tmp_path: Path) -> None:
        spec = write(tmp_path, "resume", {**TINY, "train": {**TINY["train"], "epochs": 40}})
        from orchestrator.sweep.expand import expand
        from orchestrator.sweep.spec import load_spec

        (trial,) = expand(load_spec(spec))
        sweep = tmp_path / "runs" / "resume"
        runner.interrupt_mid_trial(spec, sweep, trial.trial_id)
        (s,) = runner.settle(spec)
        assert s["state"] == "completed" and s["epochs_completed"] == 40
        d = sweep / "trials" / trial.trial_id
        assert [json.loads(line)["epoch"] for line in (d / "metrics.jsonl").read_text().splitlines()] == list(range(1, 41))
        log = (d / "stdout.log").read_text()
        assert int(log.split("resuming after epoch ")[1].split("/")[0]) >= 5  # not from 0


    def test_a_trial_another_runner_holds_is_left_alone_shown_running_and_trained_once(self, runner: Runner,
                                                                                     tmp_path: Path) -> None:
        """A trial already being trained (here by `orchestrate train` into the sweep's trial dir): its
        lease makes it running for status and for submit, which leaves it alone instead of starting a
        second copy; every epoch is trained once. (A second copy that starts anyway exits as a
        duplicate: test_lease.py, test_faults_slurm.py.)"""
        spec = write(tmp_path, "held", {**TINY, "train": {**TINY["train"], "epochs": 60}})
        from orchestrator.sweep.expand import expand
        from orchestrator.sweep.spec import load_spec

        (trial,) = expand(load_spec(spec))
        d = tmp_path / "runs" / "held" / "trials" / trial.trial_id
        first = subprocess.Popen([ORCH, "train", str(spec), "--out", str(d)], cwd=tmp_path, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        wait_epochs(d, 3)
        out = json.loads(runner.run("submit", str(spec), *runner.flags, "--json").stdout)
        assert first.poll() is None, "the holder finished too soon for this test"
        assert out["submitted"] == [] and out["skipped"] == {"running": [trial.trial_id]}, out
        (s,) = runner.status(spec)
        assert s["state"] == "running" and s["active"] and s["detail"].startswith("lease: host"), s
        assert f"pid {first.pid}" in s["detail"]
        first.communicate(timeout=600)
        assert first.returncode == 0
        (s,) = runner.settle(spec)
        assert s["state"] == "completed" and s["epochs_completed"] == 60
        assert [json.loads(ln)["epoch"] for ln in (d / "metrics.jsonl").read_text().splitlines()] == list(range(1, 61))
        assert not (d / "duplicates").exists()


@pytest.mark.slurm
class TestSlurm(BackendContract):
    adapter = SlurmAdapter()


@pytest.mark.ray
class TestRay(BackendContract):
    adapter = RayAdapter()

