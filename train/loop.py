"""``run_trial(config, out_dir)``: one trial end to end, resumable at every epoch boundary.

nanoGPT-style: DDP detected from the environment, one readable training function, and only the
master process writes files. Data lives on the device as uint8; augmentation is batched there."""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from model import build_model, count_params
from train import dist
from train.atomic import atomic_write_text
from train.augment import augment, layout, normalize
from train.checkpoint import load_checkpoint, save_checkpoint, set_rng_states
from train.data import check_data_identity, fingerprint, load_arrays
from train.files import PAUSE, failure, read_result, write_config, write_metrics, write_result
from train.lease import Lease, TrialHeld, record_duplicate
from train.owner import OWNER, TrialDirTaken, check_owner  # noqa: F401 - TrialDirTaken: part of this API
from train.recipe import build_optimizer, lr_at, set_lr
from train.safefs import make_dir

DONE = ("completed", "stopped_early")
EVAL_BATCH = {"cuda": 1000, "cpu": 128}  # large CPU batches thrash the cache


def _seed(*parts: int) -> int:
    h = 1469598103934665603
    for p in parts:  # FNV-style mix: distinct, stable streams per (seed, epoch, rank, purpose)
        h = ((h ^ (p & 0xFFFFFFFF)) * 1099511628211) % (1 << 63)
    return h


def _threads(cfg: dict[str, Any], env: dist.DistEnv) -> int:
    r = cfg.get("resources") or {}
    n = r.get("cpus") or r.get("cpus_per_task") or os.environ.get("SLURM_CPUS_PER_TASK")
    # the CPUs this process may run on (a SLURM allocation or taskset), not the whole machine
    return max(1, int(n) if n else len(os.sched_getaffinity(0)) // env.local_world_size)


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, env: dist.DistEnv) -> tuple[float, float]:
    model.eval()
    sums = torch.zeros(3, device=env.device, dtype=torch.float64)
    idx = torch.arange(env.rank, len(y), env.world_size, device=x.device)  # this rank's shard
    step = EVAL_BATCH.get(env.device.type, 128)
    for start in range(0, len(idx), step):
        i = idx[start:start + step]
        with torch.autocast(env.device.type, dtype=torch.bfloat16, enabled=env.device.type == "cuda"):
            logits = model(layout(normalize(x[i].float().div_(255)), env.device)).float()
        sums[0] += F.cross_entropy(logits, y[i], reduction="sum")
        sums[1] += (logits.argmax(1) == y[i]).sum()
        sums[2] += len(i)
    dist.all_sum(sums)
    return float(sums[0] / sums[2]), float(sums[1] / sums[2])


def _better(metric: str, new: float, old: float | None, min_delta: float) -> bool:
    return old is None or (new < old - min_delta if metric.endswith("loss") else new > old + min_delta)


def train_trial(cfg: dict[str, Any], out: Path, trial_id: str, env: dist.DistEnv,
                on_epoch: EpochHook | None = None, guard: Callable[[], None] | None = None) -> dict[str, Any]:
    tr, master = cfg["train"], env.master_process
    if env.device.type == "cpu":
        torch.set_num_threads(_threads(cfg, env))
    seed, epochs = tr["seed"], tr["epochs"]
    arrays = load_arrays(cfg["data"], seed)
    data = fingerprint(cfg["data"]) if master else None  # hashing the pixels is rank 0's: it writes the files
    if data is not None:
        check_data_identity(out, data)
    dev = {k: (torch.from_numpy(x).to(env.device), torch.from_numpy(y).to(env.device)) for k, (x, y) in arrays.items()}
    train_x, train_y = dev["train"]
    n = len(train_y)
    batch = tr["batch_size"]
    if batch < env.world_size:
        raise ValueError(f"train.batch_size {batch} is smaller than the world size {env.world_size}")

    torch.manual_seed(seed)
    model = build_model(cfg["model"]).to(env.device)
    if env.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    net: torch.nn.Module = model
    if env.world_size > 1:
        # 1x1 conv grads come back with other (equally valid) strides than DDP's buckets: only slower.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[env.device] if env.device.type == "cuda" else None)
    forward = torch.compile(net) if tr["compile"] else net
    opt = build_optimizer(model.parameters(), tr["optimizer"])
    es = tr["early_stopping"]

    state = load_checkpoint(out, quiet=not master)  # rank 0 warns (and moves unreadable files aside)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        set_rng_states(state["rng"])
    state = state or {"epoch": 0, "history": [], "best": {}, "stale": 0, "wall_seconds": 0.0}
    if master:
        write_metrics(out, state["history"])
        if state["epoch"]:
            print(f"[{trial_id}] resuming after epoch {state['epoch']}/{epochs}", flush=True)
    session_start = time.time()
    # killed between the checkpoint that triggered early stopping and result.json: stay stopped
    stopped = es is not None and state["stale"] >= es["patience"]
    stopped_by = "early_stopping" if stopped else None
    steps = max(1, math.ceil(n / batch))
    if n - (steps - 1) * batch < env.world_size:  # a last batch too small to give every rank one image
        steps -= 1
    for epoch in range(state["epoch"], epochs if not stopped else state["epoch"]):
        t0 = time.time()
        net.train()
        torch.manual_seed(_seed(seed, epoch, env.rank, 1))  # dropout etc.: reproducible per epoch
        gen = torch.Generator(env.device).manual_seed(_seed(seed, epoch, env.rank, 2))
        cpu_gen = torch.Generator().manual_seed(_seed(seed, epoch, env.rank, 3))
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(_seed(seed, epoch, 0, 4))).to(env.device)
        sums = torch.zeros(3, device=env.device, dtype=torch.float64)
        for s in range(steps):
            set_lr(opt, lr_at(epoch + s / steps, tr["optimizer"]["lr"], tr["scheduler"], epochs))
            idx = perm[s * batch:(s + 1) * batch][env.rank::env.world_size]
            y = train_y[idx]
            x, partner, own = augment(train_x[idx], y, tr["augment"], gen, cpu_gen)
            with torch.autocast(env.device.type, dtype=torch.bfloat16, enabled=env.device.type == "cuda"):
                logits = forward(layout(x, env.device)).float()
            if own is None:
                loss = F.cross_entropy(logits, y, label_smoothing=tr["label_smoothing"])
            else:
                ce = F.cross_entropy(logits, y, reduction="none", label_smoothing=tr["label_smoothing"])
                ce2 = F.cross_entropy(logits, partner, reduction="none", label_smoothing=tr["label_smoothing"])
                loss = (own * ce + (1 - own) * ce2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                pred = logits.argmax(1)
                hit = (pred == y).double() if own is None else own * (pred == y) + (1 - own) * (pred == partner)
                sums[0] += loss.detach().double() * len(y)  # stays on the device: no sync per step
                sums[1] += hit.sum()
                sums[2] += len(y)
        dist.all_sum(sums)
        train_seconds = time.time() - t0
        train_loss, train_acc = float(sums[0] / sums[2]), float(sums[1] / sums[2])
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"train loss is {train_loss} in epoch {epoch + 1}")
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "train_loss": train_loss,
                               "train_acc": train_acc}
        if "val" in dev:
            row["val_loss"], row["val_acc"] = evaluate(model, *dev["val"], env)
        row["test_loss"], row["test_acc"] = evaluate(model, *dev["test"], env)
        row["epoch_seconds"] = time.time() - t0
        row["images_per_second"] = float(sums[2]) / train_seconds
        state["history"].append(row)
        best = state["best"]
        for key in ("val_acc", "test_acc"):
            if key in row:
                best[key] = max(best.get(key, 0.0), row[key])
        if es is not None:
            metric = row.get(es["metric"])
            if metric is None:
                raise ValueError(f"train.early_stopping.metric {es['metric']} is not measured (val_size is 0?)")
            if _better(es["metric"], metric, best.get("es"), es["min_delta"]):
                best["es"], state["stale"] = metric, 0
            else:
                state["stale"] += 1
                stopped = state["stale"] >= es["patience"]
                stopped_by = "early_stopping" if stopped else None
        state["epoch"] = epoch + 1
        state["wall_seconds"] += time.time() - t0
        if master:
            if guard is not None:  # the lease still ours: a runner that lost it must not write
                guard()
            # The lr schedule is a pure function of the epoch: the epoch is all the state it has.
            save_checkpoint(out, {**state, "model": model.state_dict(), "optimizer": opt.state_dict(),
                                  "trial_id": trial_id})
            write_metrics(out, state["history"])
            acc = f"val {row['val_acc']:.4f} " if "val_acc" in row else ""
            print(f"[{trial_id}] epoch {epoch + 1}/{epochs} loss {train_loss:.4f} train {train_acc:.4f} {acc}"
                  f"test {row['test_acc']:.4f}  {row['epoch_seconds']:.1f}s {row['images_per_second']:.0f} img/s",
                  flush=True)
        if on_epoch is not None:
            # rank 0 asks the launcher (Ray's scheduler, a logger); every rank learns the answer
            flag = torch.zeros(1, device=env.device)
            verdict = on_epoch({**row, "epochs": epochs}) if master else None
            if verdict:
                flag += 1
            if float(dist.all_sum(flag)) > 0:
                stopped, stopped_by = True, verdict if isinstance(verdict, str) else "hook"
        if stopped:
            break
    last = state["history"][-1]
    ips = [m["images_per_second"] for m in state["history"]]
    paused = stopped_by == PAUSE  # at its last epoch a pause is nothing: completed
    status = (PAUSE if state["epoch"] < epochs else "completed") if paused else "stopped_early" if stopped else "completed"
    return {
        "status": status, "stopped_by": None if paused else stopped_by, "trial_id": trial_id,
        "params": count_params(cfg["model"]), "epochs": epochs, "epochs_completed": state["epoch"],
        "test_acc": last["test_acc"], "test_loss": last["test_loss"], "val_acc": last.get("val_acc"),
        "best_val_acc": state["best"].get("val_acc"), "best_test_acc": state["best"]["test_acc"],
        "wall_seconds": state["wall_seconds"], "images_per_second": sum(ips) / len(ips),
        "session_seconds": time.time() - session_start, "started_at": session_start, "ended_at": time.time(),
        "world_size": env.world_size, "device": str(env.device),
        "error": None, "failure_kind": None, "host": dist.where(), "data": data,
    }


def failed_result(trial_id: str, cfg: dict[str, Any], err: BaseException, kind: str = "crash") -> dict[str, Any]:
    try:
        params = count_params(cfg["model"])
    except Exception:  # the model config itself may be what failed
        params = None
    return failure(trial_id, kind, "".join(traceback.format_exception(type(err), err, err.__traceback__)), params)


EpochHook = Callable[[dict[str, Any]], "bool | str | None"]


def run_trial(config: dict[str, Any], out_dir: str | Path, trial_id: str,
              on_epoch: EpochHook | None = None, on_start: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run (or resume, or return the finished result of) one trial in ``out_dir``.

    ``config`` is the resolved trial config and ``trial_id`` its id: whoever launches the trial
    (SLURM, Ray, ``orchestrate train``) resolved them, so the trainer knows nothing of sweeps.
    ``on_epoch(row)`` runs on rank 0 after each epoch's checkpoint with that epoch's metrics row
    (plus ``epochs``); returning True (or a reason, e.g. "asha") stops the trial there:
    ``stopped_early`` with ``stopped_by`` that reason ("hook" for True); returning ``PAUSE``
    stops it ``paused`` (not a verdict: the next run resumes it). An exception it raises
    fails the trial with the exception's ``failure_kind`` attribute, if any (e.g. "cancelled").
    ``on_start()`` runs on rank 0 once this runner holds the trial's lease, before training (a
    launcher opens its logger there, so a duplicate runner never touches the trial's W&B run).
    A trial another runner holds raises ``TrialHeld`` at once, and is recorded in the trial's
    ``duplicates/``; its files are left alone. Picklable and backend-agnostic."""
    out = Path(out_dir)
    check_owner(out, trial_id)
    done = read_result(out)
    if done is not None and done.get("status") in DONE:
        return done
    env = dist.setup()
    lease = Lease(out, trial_id) if env.master_process else None
    try:
        held: TrialHeld | None = None
        if lease is not None:
            try:
                lease.acquire()
            except TrialHeld as err:
                held, lease = err, None
        flag = torch.tensor([1.0 if held else 0.0], device=env.device)
        if float(dist.all_sum(flag)) > 0:  # every rank exits when rank 0 found the trial held
            raise held or TrialHeld(trial_id, None)
        done = read_result(out)  # it may have finished between the first look and the lease
        if done is not None and done.get("status") in DONE:
            return done
        if env.master_process:
            make_dir(out)
            write_config(out, config)
            if not (out / OWNER).is_file():
                atomic_write_text(out / OWNER, trial_id + "\n")
            (out / "result.json").unlink(missing_ok=True)  # a rerun replaces an old failure verdict
            if on_start is not None:
                on_start()
        result = train_trial(config, out, trial_id, env, on_epoch, lease.check if lease else None)
        if lease is not None:
            lease.check()
        if env.master_process:
            write_result(out, result)
        dist.finish()
        return result
    except TrialHeld as err:  # a duplicate, not a failure: the holder's files are left alone
        if env.master_process:
            record_duplicate(out, err)
            print(f"[{trial_id}] {err}", file=sys.stderr, flush=True)
        raise
    except Exception as err:
        if env.master_process:
            # submitit raises UncompletedJobError from its signal handler once a job has used up
            # its requeues: that is a timeout, not a bug in the trial.
            kind = getattr(err, "failure_kind", None) or (
                "timeout" if type(err).__name__ == "UncompletedJobError" else "crash")
            try:
                write_result(out, failed_result(trial_id, config, err, kind))
            except OSError as again:  # the disk is still full: the scheduler's state and this line say it
                print(f"[{trial_id}] could not write its failure verdict: {again}", file=sys.stderr, flush=True)
            print(f"[{trial_id}] failed: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        raise
    finally:
        if lease is not None:
            lease.release()
        dist.teardown()
