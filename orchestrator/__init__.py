"""orchestrate: budgeted ResNet sweeps on SLURM (submitit) or Ray Tune."""

__version__ = "0.1.0"
