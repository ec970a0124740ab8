"""sbatch from inside a SLURM job (a search's driver job, a user's salloc shell) inherits that
job's output variables (``SLURM_MEM_PER_NODE``, ``SLURM_CPUS_PER_TASK``, ``SLURM_RESTART_COUNT``
...): the new job would then run with another job's memory and CPU settings (srun refuses
``SLURM_MEM_PER_CPU`` beside ``SLURM_MEM_PER_NODE``) and believe it was requeued. Submitting is
done without them; the user's own ``SBATCH_*`` defaults and ``SLURM_CONF`` stay."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

KEEP = ("SLURM_CONF",)  # input variables of sbatch itself, not an allocation's


@contextlib.contextmanager
def outside_any_job() -> Iterator[None]:
    """This process's environment without the enclosing job's ``SLURM_*`` variables, restored after."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("SLURM_") and k not in KEEP}
    for key in saved:
        del os.environ[key]
    try:
        yield
    finally:
        os.environ.update(saved)
