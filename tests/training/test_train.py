"""One trial end to end: accuracy on real data, exact resume after kill -9, DDP, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from kit import ORCH, ROOT, tiny

TIMING = {"wall_seconds", "images_per_second", "session_seconds", "epoch_seconds", "started_at", "ended_at"}

TINY = tiny(  # synthetic, small enough for a few seconds per epoch on one core
    data={"subset": 60, "test_subset": 20, "val_size": 100},
    train={"epochs": 3, "batch_size": 32,
           "augment": [{"name": "crop", "padding": 4}, "flip", {"name": "cutmix", "p": 0.5}]},
    resources={"cpus_per_task": 1})


def spec(tmp_path: Path, base: dict, name: str = "t") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "base": base}))
    return path


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([ORCH, *args], capture_output=True, text=True, env=env, **kw)


def result(out: Path) -> dict:
    return json.loads((out / "result.json").read_text())


def test_small_resnet_learns_real_cifar10(tmp_path: Path, cifar_root: Path | None) -> None:
    if cifar_root is not None:
        data, threshold = {"name": "cifar10", "root": str(cifar_root), "subset": 500}, 0.35
    else:  # no ../shared here: the same test on synthetic data, with its own bar
        warnings.warn("../shared/data is absent: this test trains on synthetic data, not real CIFAR-10", stacklevel=1)
        data, threshold = {"name": "synthetic", "subset": 500, "test_subset": 1000}, 0.60
    base = {"model": {"layers": 3, "blocks": 1, "channels": 16}, "data": data,
            "train": {"epochs": 2, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.003},
                      "scheduler": {"name": "cosine"}, "augment": ["flip"]},
            "resources": {"cpus_per_task": 1}}
    out = tmp_path / "trial"
    proc = run("train", str(spec(tmp_path, base)), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    r = result(out)
    assert r["status"] == "completed" and r["epochs_completed"] == 2
    assert r["test_acc"] > threshold, r
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert {"epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "epoch_seconds",
            "images_per_second"} <= set(metrics[0])
    assert 0 <= r["test_acc"] <= 1 and r["params"] == 78_042
    if cifar_root is not None:
        # config, metrics, result, and the last two checkpoints
        assert {p.name for p in (tmp_path / "trial").iterdir()} == {"config.yaml", "metrics.jsonl", "result.json",
                                                                    "checkpoint.pt", "checkpoint.prev.pt", ".trial_id", "data.json"}


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]


def test_kill_9_mid_epoch_then_rerun_gives_identical_results(tmp_path: Path) -> None:
    base = {**TINY, "data": {**TINY["data"], "subset": 200}, "train": {**TINY["train"], "epochs": 4}}
    path = spec(tmp_path, base)
    ref, out = tmp_path / "ref", tmp_path / "killed"
    assert run("train", str(path), "--out", str(ref)).returncode == 0

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([ORCH, "train", str(path), "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait for the first epoch's checkpoint, then kill inside epoch 2
        if (out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "result.json").exists()
    done = (out / "metrics.jsonl").read_text().splitlines()
    assert 1 <= len(done) < 4

    again = run("train", str(path), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert f"resuming after epoch {len(done)}/4" in again.stdout
    a, b = result(ref), result(out)
    assert {k: v for k, v in a.items() if k not in TIMING} == {k: v for k, v in b.items() if k not in TIMING}
    wa, wb = _weights(ref), _weights(out)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    strip = [{k: v for k, v in json.loads(line).items() if k not in TIMING}
             for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert strip == [{k: v for k, v in json.loads(line).items() if k not in TIMING}
                     for line in (ref / "metrics.jsonl").read_text().splitlines()]


SITECUSTOMIZE = textwrap.dedent("""
    import os
    _replace = os.replace
    def _logged(src, dst, *a, **k):
        with open(os.path.join(os.environ["WRITE_LOG"], "rank-" + os.environ.get("RANK", "launcher")), "a") as f:
            f.write(str(dst) + "\\n")
        return _replace(src, dst, *a, **k)
    os.replace = _logged
""")


def test_two_process_ddp_trial_completes_and_only_rank_0_writes(tmp_path: Path) -> None:
    hook, log = tmp_path / "hook", tmp_path / "log"
    hook.mkdir()
    log.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WRITE_LOG": str(log),
           "PYTHONPATH": os.pathsep.join([str(hook), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    base = {**TINY, "train": {**TINY["train"], "epochs": 2}}
    proc = subprocess.run([ORCH, "train", str(spec(tmp_path, base)), "--out", str(out), "--nproc", "2"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = result(out)
    assert r["status"] == "completed" and r["world_size"] == 2 and r["epochs_completed"] == 2
    writers = {p.name: p.read_text().split() for p in log.iterdir()}
    in_trial = {rank: [w for w in written if w.startswith(str(out))] for rank, written in writers.items()}
    assert in_trial.get("rank-0"), writers
    # the CLI (no RANK) writes config.yaml before torchrun starts; of the ranks, only 0 writes
    assert all(not w for rank, w in in_trial.items() if rank not in ("rank-0", "rank-launcher")), in_trial
    assert [Path(w).name for w in in_trial.get("rank-launcher", [])] in ([], ["config.yaml"])


def test_nan_loss_fails_with_traceback_and_nonzero_exit(tmp_path: Path) -> None:
    base = {**TINY, "train": {**TINY["train"], "optimizer": {"name": "sgd", "lr": 1e30}, "augment": []}}
    out = tmp_path / "nan"
    proc = run("train", str(spec(tmp_path, base)), "--out", str(out))
    assert proc.returncode == 1
    r = result(out)
    assert r["status"] == "failed" and "FloatingPointError" in r["error"] and "Traceback" in r["error"]
    assert r["failure_kind"] == "crash"


def test_early_stopping_and_a_completed_trial_is_not_rerun(tmp_path: Path) -> None:
    base = {**TINY, "train": {**TINY["train"], "epochs": 5,
                              "early_stopping": {"metric": "val_loss", "patience": 1, "min_delta": 100.0}}}
    out = tmp_path / "es"
    path = spec(tmp_path, base)
    assert run("train", str(path), "--out", str(out)).returncode == 0
    r = result(out)
    assert r["status"] == "stopped_early" and r["epochs_completed"] == 2 and r["best_val_acc"] is not None
    stamp = (out / "result.json").stat().st_mtime_ns
    assert run("train", str(path), "--out", str(out)).returncode == 0
    assert (out / "result.json").stat().st_mtime_ns == stamp
    (out / "result.json").unlink()  # as if killed after the last checkpoint, before the verdict
    assert run("train", str(path), "--out", str(out)).returncode == 0
    again = result(out)
    assert again["status"] == "stopped_early" and again["epochs_completed"] == 2


@pytest.mark.parametrize(("sets", "where"), [
    (["train.optimizer.name=lbfgs"], "train.optimizer.name"),
    (["data.val_size=7"], "data.val_size"),
    (["data.name=cifar10", "data.root=/nonexistent/cifar"], "no CIFAR-10 found in /nonexistent/cifar"),
])
def test_bad_train_or_data_values_exit_2_with_one_line(tmp_path: Path, sets: list[str], where: str) -> None:
    out = tmp_path / "never"
    args = [a for s in sets for a in ("--set", s)]
    proc = run("train", str(spec(tmp_path, TINY)), "--out", str(out), *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and where in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_a_trial_dir_of_another_trial_is_refused_and_left_alone(tmp_path: Path) -> None:
    """Two trials with the same architecture: B must not resume (and report) A's progress."""
    base = {**TINY, "train": {**TINY["train"], "epochs": 1}}
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump({"name": "two", "base": base, "grid": {"train.seed": [0, 1]}}))
    out = tmp_path / "shared"
    assert run("train", str(path), "--out", str(out), "--index", "0").returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    for extra in ([], ["--nproc", "2"]):
        proc = run("train", str(path), "--out", str(out), "--index", "1", *extra)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "files, not" in proc.stderr and "give this trial its own directory" in proc.stderr
        assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing written


def test_the_epoch_hook_sees_every_epoch_and_can_stop_the_trial(tmp_path: Path) -> None:
    from orchestrator.sweep.expand import expand
    from orchestrator.sweep.spec import load_spec
    from train.loop import run_trial

    (trial,) = expand(load_spec(spec(tmp_path, {**TINY, "train": {**TINY["train"], "epochs": 5}})))
    seen: list[dict] = []

    def hook(row: dict) -> str | None:
        seen.append(row)
        return "asha" if row["epoch"] == 2 else None

    result = run_trial(trial.config, tmp_path / "t", trial.trial_id, hook)
    assert [r["epoch"] for r in seen] == [1, 2] and seen[0]["epochs"] == 5 and "val_acc" in seen[0]
    assert result["status"] == "stopped_early" and result["stopped_by"] == "asha" and result["epochs_completed"] == 2
    assert json.loads((tmp_path / "t" / "result.json").read_text())["stopped_by"] == "asha"

    class Cancelled(Exception):
        failure_kind = "cancelled"

    def cancel(row: dict) -> None:
        raise Cancelled("stop")

    (other,) = expand(load_spec(spec(tmp_path, {**TINY, "train": {**TINY["train"], "epochs": 5, "seed": 9}}, "o")))
    with pytest.raises(Cancelled):
        run_trial(other.config, tmp_path / "o", other.trial_id, cancel)
    r = json.loads((tmp_path / "o" / "result.json").read_text())
    assert r["status"] == "failed" and r["failure_kind"] == "cancelled"


def test_a_paused_trial_resumes_to_the_same_metrics_as_one_never_paused(tmp_path: Path) -> None:
    """ASHA on SLURM pauses a trial at a rung and resumes it when promoted: the learning-rate
    schedule is the full run's, so every epoch's metrics equal those of a run that never paused."""
    from orchestrator.sweep.expand import expand
    from orchestrator.sweep.spec import load_spec
    from train.loop import PAUSE, run_trial

    (trial,) = expand(load_spec(spec(tmp_path, {**TINY, "train": {**TINY["train"], "epochs": 4,
                                                                   "scheduler": {"name": "cosine"}}})))
    torch.set_num_threads(1)
    whole = run_trial(trial.config, tmp_path / "whole", trial.trial_id)
    paused = run_trial(trial.config, tmp_path / "p", trial.trial_id, lambda row: PAUSE if row["epoch"] in (1, 2) else None)
    assert paused["status"] == "paused" and paused["epochs_completed"] == 1 and paused["stopped_by"] is None
    assert result(tmp_path / "p")["status"] == "paused"  # not a verdict: the next run resumes it
    again = run_trial(trial.config, tmp_path / "p", trial.trial_id, lambda row: PAUSE if row["epoch"] == 2 else None)
    assert again["status"] == "paused" and again["epochs_completed"] == 2
    last = run_trial(trial.config, tmp_path / "p", trial.trial_id, lambda row: PAUSE if row["epoch"] == 4 else None)
    assert last["status"] == "completed" and last["epochs_completed"] == 4
    rows = [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in (tmp_path / "p" / "metrics.jsonl").read_text().splitlines()]
    ref = [{k: v for k, v in json.loads(line).items() if k not in TIMING}
           for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert rows == ref and len(rows) == 4 and whole["status"] == "completed"
    assert [r["lr"] for r in rows] == [r["lr"] for r in ref]


def test_the_trainer_imports_neither_orchestrator_nor_ray() -> None:
    code = ("import sys, train.loop, train.worker; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('orchestrator', 'ray', 'wandb')]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_an_unreadable_checkpoint_falls_back_to_the_previous_one_then_to_epoch_0(tmp_path: Path, capsys) -> None:
    from orchestrator.sweep.expand import expand
    from orchestrator.sweep.spec import load_spec
    from train.loop import run_trial

    (trial,) = expand(load_spec(spec(tmp_path, {**TINY, "train": {**TINY["train"], "epochs": 4}})))
    out = tmp_path / "t"

    def crash_after_3(row: dict) -> None:
        if row["epoch"] == 3:
            raise RuntimeError("killed after epoch 3")

    with pytest.raises(RuntimeError):
        run_trial(trial.config, out, trial.trial_id, crash_after_3)
    assert torch.load(out / "checkpoint.prev.pt", weights_only=False)["epoch"] == 2
    data = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(data[: len(data) // 3])  # a partial copy
    capsys.readouterr()
    r = run_trial(trial.config, out, trial.trial_id)
    err = capsys.readouterr().err
    assert f"warning: {out / 'checkpoint.pt'} cannot be read" in err and "resuming from checkpoint.prev.pt (epoch 2)" in err
    assert r["status"] == "completed" and r["epochs_completed"] == 4
    assert [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]

    (out / "result.json").unlink()  # both checkpoints unreadable: moved aside, a fresh start, said so
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (out / name).write_bytes(b"not a checkpoint")
    r = run_trial(trial.config, out, trial.trial_id)
    err = capsys.readouterr().err
    assert "no readable checkpoint" in err and str(out / "checkpoint.pt") in err and "starting again from epoch 0" in err
    assert r["status"] == "completed" and r["epochs_completed"] == 4
    assert len(list(out.glob("checkpoint.pt.corrupt-*"))) == 1 and len(list(out.glob("checkpoint.prev.pt.corrupt-*"))) == 1
