"""Rank and world size from torchrun, from SLURM (through submitit's helper), or one process."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device

    @property
    def master_process(self) -> bool:
        return self.rank == 0


def _from_slurm() -> None:
    """Inside an srun/sbatch task with several tasks but no torchrun variables: export them
    (MASTER_ADDR = first node, a port from the job id) the way submitit's helper does."""
    if "RANK" in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) <= 1 or "SLURM_PROCID" not in os.environ:
        return
    from submitit.helpers import TorchDistributedEnvironment  # heavy: loads submitit; only this path needs it

    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def setup() -> DistEnv:
    _from_slurm()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        device = torch.device("cuda", local_rank % n)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world,
                                **({"device_id": device} if device.type == "cuda" else {}))
    return DistEnv(rank, world, local_rank, local_world, device)


def all_sum(values: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def finish() -> None:
    """Every rank reaches the end before any tears down: a rank that destroys the process group
    while another still finishes its last collective aborts the latter (gloo: terminate called)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def where() -> dict[str, Any]:
    """Where rank 0 ran: enough to debug placement (which node, which GPUs, which job)."""
    keys = ("SLURMD_NODENAME", "SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT",
            "CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_NNODES", "MASTER_ADDR")

    return {"hostname": socket.gethostname(), **{k.lower(): os.environ[k] for k in keys if k in os.environ}}
