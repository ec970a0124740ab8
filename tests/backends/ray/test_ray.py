"""The Ray backend with real Ray on CPU: a private token-authenticated instance per submit, ASHA,
GPU packing on a fake GPU, clean stops, resume after SIGKILL, attach to `ray start --head`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from kit import ORCH, TINY, status_now, wait_states

pytestmark = pytest.mark.ray


def write(tmp: Path, name: str, base: dict, **extra) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "base": base, **extra}, sort_keys=False))
    return path


def env(tmp: Path, **extra: str) -> dict[str, str]:
    # HOME in the test dir: nothing may land in the user's home (~/.ray, ~/.cache/ray ...)
    return {**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(tmp / "home"), "COLUMNS": "200", **extra}


def orch(tmp: Path, *args: str, check: bool = True, **extra: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([ORCH, *args, "--runs-dir", str(tmp / "runs")], capture_output=True, text=True, cwd=tmp,
                          env=env(tmp, **extra), timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def status(tmp: Path, target: Path) -> list[dict]:
    return json.loads(orch(tmp, "status", str(target), "--json").stdout)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def states_now(tmp: Path, target: Path) -> list[dict]:
    """For polling loops: read in this process (kit.status_now), not by a command per look."""
    return status_now(target, tmp / "runs")


def ray_processes() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()
    return [ln for ln in out if any(w in ln for w in ("raylet", "gcs_server", "ray::", "default_worker"))]


def leftovers(sweep: Path) -> list[str]:
    """Ray processes still running of this sweep's private instances: their command lines name the
    instance's temp dir (``socket_link`` in each driver record); other tests' Rays are not looked at."""
    links = [os.path.dirname(json.loads(p.read_text()).get("socket_link") or "") for p in sweep.glob("ray/*/driver.json")]
    assert links and all(links), links
    return [p for p in ray_processes() if any(link in p for link in links)]


def start_driver(tmp: Path, spec: Path, *flags: str) -> subprocess.Popen:
    return subprocess.Popen([ORCH, "submit", str(spec), "--backend", "ray", "--runs-dir", str(tmp / "runs"), *flags],
                            cwd=tmp, env=env(tmp), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_until_epoch(tmp: Path, spec: Path, name: str, n: int, *flags: str) -> tuple[subprocess.Popen, Path, list[str]]:
    """Start a driver and wait until one of its trials has n epochs. Returns (driver, sweep dir, trial ids)."""
    sweep = tmp / "runs" / name
    driver = start_driver(tmp, spec, *flags)
    deadline = time.time() + 120
    while not (sweep / "trials.jsonl").is_file():
        assert time.time() < deadline, "the driver never wrote its plan"
        time.sleep(0.2)
    ids = [json.loads(line)["trial_id"] for line in (sweep / "trials.jsonl").read_text().splitlines()]
    wait_for_epochs([sweep / "trials" / t for t in ids], n)
    return driver, sweep, ids


def wait_for_epochs(trial_dirs: list[Path], n: int, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not any((d / "metrics.jsonl").is_file() and (d / "metrics.jsonl").read_text().count("\n") >= n
                  for d in trial_dirs):
        assert time.time() < deadline, "no trial got far enough"
        time.sleep(0.2)


def test_a_sweep_runs_with_authentication_on_and_leaves_nothing_behind(tmp_path: Path) -> None:
    spec = write(tmp_path, "four", {**TINY, "resources": {"cpus": 1}}, grid={"model.channels": [4, 6, 8, 10]})
    out = orch(tmp_path, "submit", str(spec), "--backend", "ray", "--json")
    assert json.loads(out.stdout)["submitted"][0]["backend"] == "ray"
    states = status(tmp_path, spec)
    assert [s["state"] for s in states] == ["completed"] * 4
    sweep = tmp_path / "runs" / "four"
    for s in states:
        d = sweep / "trials" / s["trial_id"]
        assert {"result.json", "metrics.jsonl", "checkpoint.pt", "config.yaml", "stdout.log"} <= {p.name for p in d.iterdir()}
        assert "epoch 2/2" in (d / "stdout.log").read_text()  # the trial's own log, not Ray's
    (run_dir,) = (sweep / "ray").iterdir()
    assert stat.S_IMODE((run_dir / "auth_token").stat().st_mode) == 0o600
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert not (tmp_path / "home" / ".ray").exists()
    assert "Configuration for experiment" not in out.stdout + out.stderr  # Ray's console noise went to its log
    assert (run_dir / "driver.log").is_file()
    assert json.loads((run_dir / "driver.json").read_text())["state"] == "finished"
    # Tune's own reader opens the experiment where submit says it is (issue 16: the README named its parent)
    tune_dir = run_dir / "tune" / "tune"
    analysis = subprocess.run([sys.executable, "-c", "import sys; from ray.tune import ExperimentAnalysis; "
                               "a = ExperimentAnalysis(sys.argv[1]); print(len(a.trials), sorted(a.dataframe().columns)[:3])",
                               str(tune_dir)], capture_output=True, text=True, env=env(tmp_path), timeout=120)
    assert analysis.returncode == 0 and analysis.stdout.startswith("4 "), analysis.stderr[-2000:]
    time.sleep(1)
    assert not [p for p in ray_processes() if str(tmp_path) in p] and not leftovers(sweep), ray_processes()
    again = json.loads(orch(tmp_path, "submit", str(spec), "--backend", "ray", "--json").stdout)
    assert again["submitted"] == [] and len(again["skipped"]["completed"]) == 4  # nothing rerun
    for s in states:  # one offline W&B run per trial, grouped by sweep, every epoch once, the verdict as summary
        (run,) = wandb_runs(sweep, s["trial_id"])
        assert run.group == "four" and run.job_type == "trial" and run.steps == [1, 2] and run.exited
        assert run.config["params"] == s["params"] and run.summary["status"] == "completed"
        assert run.name == f"channels={s['config']['model']['channels']}"
    assert not list((tmp_path / "home").rglob("*wandb*"))
    board = json.loads(orch(tmp_path, "leaderboard", str(sweep), "--format", "json").stdout)
    assert sorted(r["trial_id"] for r in board) == sorted(s["trial_id"] for s in states)


def wandb_runs(sweep: Path, trial_id: str) -> list:
    """The trial's W&B run files (one per process that ran it), read back, empty ones left out."""
    from orchestrator.tracking.wandb_files import read_run, run_files

    runs = [read_run(f) for f in run_files(sweep / "wandb" / "wandb")]
    return [r for r in runs if r.run_id and f"-{trial_id}-" in r.run_id]


def test_asha_stops_weak_trials_early(tmp_path: Path) -> None:
    lrs = [0.1, 0.05, 1e-5, 3e-6, 1e-6, 3e-7, 1e-7, 3e-8]  # two learn, six barely move
    spec = write(tmp_path, "asha", {**TINY, "data": {**TINY["data"], "val_size": 100}, "train": {**TINY["train"], "epochs": 8}},
                 grid={"train.optimizer.lr": lrs}, search={"scheduler": "asha", "reduction_factor": 2})
    proc = orch(tmp_path, "submit", str(spec), "--backend", "ray", "--max-concurrent", "2")
    assert "metric val_acc" in proc.stdout  # stated: the default metric with a validation split
    (run_dir,) = (tmp_path / "runs" / "asha" / "ray").iterdir()
    assert f"Tune's state (for ExperimentAnalysis, Tuner.restore): runs/asha/ray/{run_dir.name}/tune/tune" in proc.stdout
    states = status(tmp_path, spec)
    stopped = [s for s in states if s["state"] == "stopped_early"]
    assert stopped and all(s["epochs_completed"] < 8 for s in stopped), states
    assert {s["state"] for s in states} <= {"completed", "stopped_early"}
    results = [json.loads((tmp_path / "runs" / "asha" / "trials" / s["trial_id"] / "result.json").read_text())
               for s in stopped]
    assert {r["stopped_by"] for r in results} == {"asha"} and all(r["error"] is None for r in results)
    assert sum(s["epochs_completed"] for s in states) < 8 * len(lrs) / 2


def test_a_raising_trial_fails_with_its_traceback_and_the_others_finish(tmp_path: Path) -> None:
    spec = write(tmp_path, "mixed", TINY, trials=[{"train.seed": 0}, {"train.seed": 1, "train.optimizer.lr": 1e30},
                                                   {"train.seed": 2}])
    orch(tmp_path, "submit", str(spec), "--backend", "ray")
    states = status(tmp_path, spec)
    assert [s["state"] for s in states] == ["completed", "failed", "completed"]
    assert states[1]["detail"] == "FloatingPointError: train loss is nan in epoch 1"
    r = json.loads((tmp_path / "runs" / "mixed" / "trials" / states[1]["trial_id"] / "result.json").read_text())
    assert "Traceback" in r["error"] and r["failure_kind"] == "crash"


def test_sigkill_of_the_driver_then_rerun_resumes_without_duplicates(tmp_path: Path) -> None:
    spec = write(tmp_path, "killed", {**TINY, "train": {**TINY["train"], "epochs": 40}}, grid={"train.seed": [0, 1, 2]})
    driver, sweep, ids = start_until_epoch(tmp_path, spec, "killed", 5, "--max-concurrent", "2")
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    # The orphaned workers stop on their own within seconds (issue 16: they trained on); until
    # then status calls their trials running, never interrupted while epochs are still written.
    deadline = time.time() + 30
    while {s["state"] for s in states_now(tmp_path, spec)} != {"interrupted"}:
        states = states_now(tmp_path, spec)
        assert time.time() < deadline, states
        assert {s["state"] for s in states} <= {"running", "interrupted"}, states
        time.sleep(0.5)
    states = status(tmp_path, spec)
    assert states[0]["detail"].startswith(f"resume with: orchestrate submit {spec} --backend ray"), states[0]
    before = {t: (sweep / "trials" / t / "metrics.jsonl").read_text().count("\n")
              if (sweep / "trials" / t / "metrics.jsonl").is_file() else 0 for t in ids}
    for s in states:  # where each one got to, from its metrics.jsonl
        assert (s["progress"] or {}).get("epoch", 0) == before[s["trial_id"]]
    time.sleep(3)  # nobody writes behind status's back
    assert before == {t: (sweep / "trials" / t / "metrics.jsonl").read_text().count("\n")
                      if (sweep / "trials" / t / "metrics.jsonl").is_file() else 0 for t in ids}
    orch(tmp_path, "submit", str(spec), "--backend", "ray")  # (a warning may name a lease Ray's kill left: a crash)
    states = status(tmp_path, spec)
    assert [s["state"] for s in states] == ["completed"] * 3
    for t in ids:
        rows = [json.loads(line) for line in (sweep / "trials" / t / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == list(range(1, 41))  # every epoch once
        if before[t] >= 2:
            log = (sweep / "trials" / t / "stdout.log").read_text()
            assert "resuming after epoch" in log  # from its checkpoint, not from 0
        runs = wandb_runs(sweep, t)  # the killed worker's run continued: one run id, no epoch twice
        steps = [step for r in runs for step in r.steps]
        assert len({r.run_id for r in runs}) == 1 and sorted(steps) == list(range(1, 41)), (t, steps)
    history = [json.loads(line) for line in (sweep / "submissions.jsonl").read_text().splitlines()]
    assert len(history) == 6 and all(h["backend"] == "ray" for h in history)
    time.sleep(1)
    assert not leftovers(sweep), ray_processes()  # the dead driver's leftovers too


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_cleanly_and_status_says_interrupted(tmp_path: Path, sig: int) -> None:
    """Under ASHA too: a trial stopped because the driver stops is interrupted (resumable), never
    stopped_early (Tune's own Ctrl-C handling would stop each trial like its scheduler does)."""
    spec = write(tmp_path, "term", {**TINY, "train": {**TINY["train"], "epochs": 400}}, grid={"train.seed": [0, 1]},
                 search={"scheduler": "asha", "grace_period": 300})
    driver, sweep, ids = start_until_epoch(tmp_path, spec, "term", 3)
    driver.send_signal(sig)
    out, err = driver.communicate(timeout=60)
    assert driver.returncode == 130, out + err
    assert "the same command resumes it" in err
    assert [s["state"] for s in status(tmp_path, spec)] == ["interrupted"] * 2
    assert not [t for t in ids if (sweep / "trials" / t / "lease.json").exists()]  # a clean stop is not a crash
    assert any((sweep / "trials" / t / "checkpoint.pt").is_file() for t in ids)
    time.sleep(1)
    assert not leftovers(sweep), ray_processes()


def test_impossible_resources_are_refused_before_anything_starts(tmp_path: Path) -> None:
    spec = write(tmp_path, "huge", {**TINY, "resources": {"cpus": 512}})
    proc = orch(tmp_path, "submit", str(spec), "--backend", "ray", check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "each trial asks for CPU 512; the Ray cluster has CPU" in proc.stderr
    assert not (tmp_path / "runs").exists()
    gpu = write(tmp_path, "gpu", {**TINY, "resources": {"gpus": 0.5}})
    proc = orch(tmp_path, "submit", str(gpu), "--backend", "ray", check=False)
    assert proc.returncode == 2 and "GPU 0.5; the Ray cluster has CPU" in proc.stderr and "GPU 0" in proc.stderr


@pytest.mark.parametrize(("resources", "backend", "words"), [
    ({"partition": "gpu"}, "ray", "resources.partition: is a slurm key; the ray backend takes cpus, gpus, workers"),
    ({"cpus_per_task": 2}, "ray", "resources.cpus_per_task: is a slurm key"),
    ({"gpus": 0.5}, "slurm", "resources.gpus: 0.5 is a share of a GPU; SLURM allocates whole GPUs"),
    ({"cpus": 2, "cpus_per_task": 2}, "ray", "resources.cpus: give cpus (any backend) or cpus_per_task (SLURM)"),
])
def test_a_key_of_another_backend_is_refused(tmp_path: Path, resources: dict, backend: str, words: str) -> None:
    if backend == "slurm" and subprocess.run(["which", "sbatch"], capture_output=True).returncode:
        pytest.skip("needs sbatch on PATH (the local SLURM cluster)")
    spec = write(tmp_path, "owner", {**TINY, "resources": resources})
    proc = orch(tmp_path, "submit", str(spec), "--backend", backend, check=False)
    assert proc.returncode == 2 and words in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "runs").exists()


def test_half_a_gpu_each_packs_two_trials_onto_one_gpu(tmp_path: Path) -> None:
    spec = write(tmp_path, "packed", {**TINY, "train": {**TINY["train"], "epochs": 30}, "resources": {"gpus": 0.5}},
                 grid={"train.seed": [0, 1]})
    orch(tmp_path, "submit", str(spec), "--backend", "ray", ORCHESTRATE_RAY_GPUS="1")  # Ray announces one GPU
    a, b = (json.loads((tmp_path / "runs" / "packed" / "trials" / s["trial_id"] / "result.json").read_text())
            for s in status(tmp_path, spec))
    assert a["status"] == b["status"] == "completed"
    assert a["started_at"] < b["ended_at"] and b["started_at"] < a["ended_at"]  # they ran at the same time
    assert a["host"]["cuda_visible_devices"] == b["host"]["cuda_visible_devices"] == "0"  # on the same GPU


def test_cancel_stops_a_running_ray_trial(tmp_path: Path) -> None:
    spec = write(tmp_path, "cancel", {**TINY, "train": {**TINY["train"], "epochs": 2000}})
    driver, sweep, (tid,) = start_until_epoch(tmp_path, spec, "cancel", 2)
    assert status(tmp_path, spec)[0]["state"] == "running"
    assert f"cancelled {tid}" in orch(tmp_path, "cancel", str(spec)).stdout
    driver.communicate(timeout=120)
    (s,) = status(tmp_path, spec)
    assert s["state"] == "cancelled" and "cancelled after epoch" in s["detail"]
    logs = orch(tmp_path, "logs", tid, "--sweep", str(sweep), check=False)
    assert "epoch 1/2000" in logs.stdout


def test_attach_to_a_running_ray_head_with_its_token(tmp_path: Path) -> None:
    """A cluster someone started with `ray start --head` (token auth on): submit --address runs
    the sweep there; a client without the token is refused."""
    token, port, temp = start_head(tmp_path, cpus=2)
    try:
        spec = write(tmp_path, "attached", TINY, grid={"train.seed": [0, 1]})
        proc = orch(tmp_path, "submit", str(spec), "--backend", "ray", "--address", f"127.0.0.1:{port}",
                    RAY_AUTH_TOKEN_PATH=str(token))
        assert "ran 2 trials on Ray" in proc.stdout
        assert [s["state"] for s in status(tmp_path, spec)] == ["completed"] * 2
        stranger = subprocess.run([sys.executable, "-c", f"import ray; ray.init(address='127.0.0.1:{port}')"],
                                  env=env(tmp_path, RAY_AUTH_MODE="token", HOME=str(tmp_path / "stranger")),
                                  capture_output=True, text=True, timeout=120)
        assert stranger.returncode != 0 and ("uthentication" in stranger.stderr or "token" in stranger.stderr)
    finally:
        stop_head(f"RAY_AUTH_TOKEN_PATH={token}")
        shutil.rmtree(temp, ignore_errors=True)


def start_head(tmp_path: Path, cpus: int) -> tuple[Path, str, Path]:
    """A Ray head as someone starts it by hand (`ray start --head`, token auth on), outside any
    sweep: returns (its token file, its port, its temp dir)."""
    token = tmp_path / "token"
    token.write_text("f" * 64)
    token.chmod(0o600)
    with socket.socket() as probe:  # a port nobody uses right now
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    temp = Path(f"/tmp/orx-head-{os.getpid()}")
    subprocess.run([str(Path(sys.executable).parent / "ray"), "start", "--head", f"--port={port}", f"--num-cpus={cpus}",
                    "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"],
                   env=env(tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token)), check=True,
                   capture_output=True, timeout=120)
    return token, port, temp


def head_processes(marker: str) -> list[int]:
    """The pids whose environment holds ``marker``: one head's processes."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if marker.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") and int(pid) != os.getpid():
                out.append(int(pid))
    return out


def stop_head(marker: str) -> None:
    """Kill this head's processes only, found by a line of their environment (``ray stop`` would
    kill every Ray on the machine, other tests' beside this one included; a worker's command line
    is its title, ``ray::IDLE``, but its environment is what it was started with)."""
    for _ in range(2):  # once more for anything the first pass's kills let start
        for pid in head_processes(marker):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(1)


def test_the_demo_runs_on_synthetic_data_when_there_is_no_cifar(tmp_path: Path) -> None:
    """The README's main job where no CIFAR-10 is found: says so, runs the demo study through Ray
    (a screen with ASHA, then its top 2 longer), ranks the last stage's trials and says how well
    the screen's ranking held."""
    proc = subprocess.run([ORCH, "demo", "--data-dir", str(tmp_path / "nodata"), "--runs-dir", str(tmp_path / "runs")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env=env(tmp_path, ORCHESTRATE_CIFAR_ARCHIVE=str(tmp_path / "no-archive.tar.xz")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("data: synthetic, 30 images per class (no CIFAR-10 in")
    assert "ASHA, metric val_acc" in proc.stdout
    states = json.loads(orch(tmp_path, "status", str(tmp_path / "runs" / "demo"), "--json").stdout)
    # (whether ASHA stops any of these six depends on the data: tests/backends/ray/test_ray.py's ASHA test checks that)
    screen = [s for s in states if "screen" in s["stages"]]
    longer = [s for s in states if "longer" in s["stages"]]
    assert len(screen) == 6 and len(longer) == 2 and {s["state"] for s in states} <= {"completed", "stopped_early"}
    assert {s["state"] for s in longer} == {"completed"}
    # it ends with the last stage's leaderboard: its trials, best first, the front marked
    board = proc.stdout.split("leaderboard: demo (2 ranked)")[1]
    assert "ranked by best_val_acc" in board and "screen 0." in board  # each traced to its screen result
    ranked = [line.split()[1] for line in board.splitlines() if line.strip()[:1].isdigit()]
    best = sorted(longer, key=lambda s: (-s["best"], s["params"]))
    assert ranked[0] == best[0]["trial_id"] and sorted(ranked) == sorted(s["trial_id"] for s in longer)
    assert "ranking from screen to longer: Kendall tau" in board
    assert "orchestrate sync" in proc.stdout


def test_workers_2_run_ddp_inside_one_ray_trial(tmp_path: Path) -> None:
    spec = write(tmp_path, "ddp", {**TINY, "data": {**TINY["data"], "val_size": 100},
                                   "train": {**TINY["train"], "epochs": 3}, "resources": {"workers": 2, "cpus": 1}})
    proc = orch(tmp_path, "submit", str(spec), "--backend", "ray")
    assert "each reserving cpu 2" in proc.stdout  # cpus per worker x workers
    (s,) = status(tmp_path, spec)
    d = tmp_path / "runs" / "ddp" / "trials" / s["trial_id"]
    r = json.loads((d / "result.json").read_text())
    assert s["state"] == "completed" and r["world_size"] == 2 and r["epochs_completed"] == 3
    assert [json.loads(line)["epoch"] for line in (d / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert not (d / ".channel").exists()


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_ray_inside_a_slurm_job_runs_the_sweep_there(tmp_path: Path) -> None:
    """`submit --backend ray --partition P`: one SLURM job starts a Ray head (and workers on
    further nodes), runs the driver there, and stops its own Ray only: a Ray someone else started
    on the same node (here: by hand, before the job) lives on. Status follows it from the login node."""
    token, _, temp = start_head(tmp_path, cpus=0)
    try:
        ray_inside_slurm(tmp_path)
        assert len(head_processes(f"RAY_AUTH_TOKEN_PATH={token}")) >= 2  # (`ray stop` in the job killed them)
    finally:
        stop_head(f"RAY_AUTH_TOKEN_PATH={token}")
        shutil.rmtree(temp, ignore_errors=True)


def ray_inside_slurm(tmp_path: Path) -> None:
    spec = write(tmp_path, "inslurm", {**TINY, "data": {**TINY["data"], "val_size": 100}, "train": {**TINY["train"], "epochs": 4}},
                 grid={"train.optimizer.lr": [0.1, 0.05, 1e-6, 1e-7]}, search={"scheduler": "asha", "reduction_factor": 2})
    proc = orch(tmp_path, "submit", str(spec), "--backend", "ray", "--partition", "cpu", "--cpus-per-task", "2",
                "--time", "00:10:00")
    assert "submitted SLURM job" in proc.stdout and "a Ray cluster that runs these 4 trials" in proc.stdout
    deadline = time.time() + 300  # for this and the waits below
    states = wait_states(spec, tmp_path / "runs", lambda rows: all(not s["active"] for s in rows),
                         lambda: status(tmp_path, spec), 300)
    assert {s["state"] for s in states} <= {"completed", "stopped_early"} and len(states) == 4, states
    sweep = tmp_path / "runs" / "inslurm"
    (run_dir,) = (sweep / "ray").iterdir()
    assert stat.S_IMODE((run_dir / "auth_token").stat().st_mode) == 0o600
    job = (run_dir / "slurm_job").read_text().strip()
    while json.loads((run_dir / "driver.json").read_text())["state"] == "running":  # the last verdicts come
        assert time.time() < deadline, "the driver never finished"                  # just before it ends
        time.sleep(0.5)
    assert json.loads((run_dir / "driver.json").read_text())["state"] == "finished"
    while subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip():
        assert time.time() < deadline, "the Ray cluster job never ended"
        time.sleep(0.5)
    r = json.loads((sweep / "trials" / states[0]["trial_id"] / "result.json").read_text())
    assert r["host"]["slurm_job_id"] == job  # the trial ran inside the Ray cluster job
    time.sleep(2)
    assert not [p for p in ray_processes() if f"orx-{job}" in p], ray_processes()
    wide = orch(tmp_path, "submit", str(spec), "--backend", "ray", "--partition", "cpu", "--cpus-per-task", "1",
                "--set", "resources.cpus=2", check=False)  # one trial could never fit a node of the job
    assert wide.returncode == 2 and "each trial asks for CPU 2; each node of the Ray cluster job would have CPU 1" \
        in wide.stderr and wide.stderr.count("\n") == 1, wide.stderr


def test_a_trial_killed_by_a_signal_says_so_with_its_native_stack(tmp_path: Path) -> None:
    """A worker that dies by SIGSEGV (a oneDNN bug did, issue 16) is recorded as `killed by SIGSEGV`
    with the stack its stderr.log holds, not Ray's guess about the OOM killer; the others finish."""
    spec = write(tmp_path, "segv", {**TINY, "train": {**TINY["train"], "epochs": 1}},
                 grid={"model.channels": [4, 8]})
    proc = orch(tmp_path, "submit", str(spec), "--backend", "ray", check=False,
                ORCHESTRATE_FAULT="trial.after_epoch:SIGSEGV")
    rows = status(tmp_path, spec)
    assert [r["state"] for r in rows] == ["failed", "failed"], proc.stdout + proc.stderr
    for r in rows:
        assert r["detail"] == "killed by SIGSEGV", r
        verdict = json.loads((tmp_path / "runs" / "segv" / "trials" / r["trial_id"] / "result.json").read_text())
        lines = verdict["error"].splitlines()
        assert lines[0] == "killed by SIGSEGV" and len(lines) > 2, verdict["error"]
        assert "OOM" not in verdict["error"]


def test_cancelling_one_trial_under_asha_ends_only_that_trial(tmp_path: Path) -> None:
    """A trial cancelled before its first epoch reports no metric to Tune: ASHA must not take the
    sweep down with it (issue 16), and the other trials finish."""
    spec = write(tmp_path, "ashacancel", {**TINY, "data": {**TINY["data"], "val_size": 100},
                                          "train": {**TINY["train"], "epochs": 4}},
                 grid={"train.seed": [0, 1, 2]}, search={"scheduler": "asha", "grace_period": 4})
    driver, sweep, ids = start_until_epoch(tmp_path, spec, "ashacancel", 1, "--max-concurrent", "1")
    assert f"cancelled {ids[2]}" in orch(tmp_path, "cancel", str(spec), "--trial", ids[2]).stdout
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, out + err
    states = status(tmp_path, spec)
    assert [s["state"] for s in states] == ["completed", "completed", "cancelled"], states
    assert states[2]["detail"] == "cancelled before it started"


def test_ray_killed_under_the_demo_says_what_happened_and_how_to_resume(tmp_path: Path) -> None:
    """The raylet SIGKILLed from outside (memory pressure did it): the driver says so in one line
    with Ray's log and the command that resumes *this* sweep (the demo's own), and status agrees."""
    demo = subprocess.Popen([ORCH, "demo", "--data-dir", str(tmp_path / "nodata"), "--runs-dir", str(tmp_path / "runs"),
                             "--set", "train.epochs=200"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env(tmp_path, ORCHESTRATE_CIFAR_ARCHIVE="/nonexistent"))
    sweep = tmp_path / "runs" / "demo"
    deadline = time.time() + 180
    while not list(sweep.glob("trials/*/metrics.jsonl")):
        assert time.time() < deadline and demo.poll() is None, "the demo never trained an epoch"
        time.sleep(0.3)
    (record,) = [json.loads(p.read_text()) for p in sweep.glob("ray/*/driver.json")]
    raylets = [p for p, _ in record["ray_pids"] if "raylet" in cmdline(p)]
    assert raylets, record
    for pid in raylets:
        os.kill(pid, signal.SIGKILL)
    out, err = demo.communicate(timeout=240)
    assert demo.returncode == 1, out + err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "Ray stopped under the sweep" in line and "driver.log" in line
    assert line.endswith(f"resume with: orchestrate demo --runs-dir {tmp_path / 'runs'} --data-dir {tmp_path / 'nodata'} "
                         "--set train.epochs=200"), line
    states = status(tmp_path, sweep)
    assert {s["state"] for s in states} <= {"interrupted", "completed", "stopped_early"}, states
    hints = [s["detail"] for s in states if s["state"] == "interrupted"]
    assert hints and all("orchestrate demo --runs-dir" in h for h in hints), hints
    time.sleep(1)
    assert not leftovers(sweep), ray_processes()
