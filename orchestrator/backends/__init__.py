"""Backends run trials somewhere; they never parse YAML and the trainer never knows which ran it."""

from __future__ import annotations

from orchestrator.backends.base import Backend, JobState

BACKENDS = ("slurm",)


def get_backend(name: str) -> Backend:
    if name == "slurm":
        from orchestrator.backends.slurm import SlurmBackend

        return SlurmBackend()
    raise ValueError(f"unknown backend {name!r}; available: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Backend", "JobState", "get_backend"]
