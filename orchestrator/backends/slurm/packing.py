"""Several trials in one SLURM array task (``resources.trials_per_gpu: K``): small models use a
fraction of a GPU, so K trials share the task's GPU (and split its CPUs), each in its own
process with its own directory, checkpoint, result and W&B run.

``PackedJob`` is what the array task runs. It is ``Checkpointable`` like ``TrialJob``: on a
time limit or preemption submitit requeues it, and every one of its trials resumes from its own
checkpoint (a finished one returns at once). A trial that crashes takes only itself down: its
process writes its failed result and the others go on. ``python -m orchestrator.backends.slurm.packing FILE``
runs one ``TrialJob`` from its JSON (a child): nothing in a trial dir is unpickled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import submitit

from orchestrator.backends.slurm.trialjob import TrialJob
from train.atomic import atomic_write_json
from train.safefs import make_dir, open_nofollow, read_regular

JOB = ".job.json"  # the child's TrialJob as plain data


class PackedJob(submitit.helpers.Checkpointable):
    def __init__(self, jobs: list[Any]) -> None:
        self.jobs = jobs  # TrialJob each

    def __call__(self) -> list[dict[str, Any]]:
        threads = max(1, int(os.environ.get("SLURM_CPUS_PER_TASK", "1")) // len(self.jobs))
        procs = []
        for job in self.jobs:
            out = make_dir(Path(job.out_dir))
            atomic_write_json(out / JOB, job.to_json())
            for name in ("stdout.log", "stderr.log"):
                if (out / name).is_symlink():  # an earlier unpacked submission's link: this run writes its own file
                    (out / name).unlink()
            logs = [os.fdopen(open_nofollow(out / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND), "ab")
                    for name in ("stdout.log", "stderr.log")]
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "SLURM_CPUS_PER_TASK": str(threads)}
            procs.append((job, subprocess.Popen([sys.executable, "-m", "orchestrator.backends.slurm.packing", str(out / JOB)],
                                                stdout=logs[0], stderr=logs[1], env=env)))
            for f in logs:
                f.close()
        return [{"trial_id": job.trial_id, "returncode": p.wait()} for job, p in procs]


def main(argv: list[str]) -> int:
    # the file must be the user's own (written by the parent a moment ago); JSON, so never code
    job = TrialJob.from_json(json.loads(read_regular(argv[0], mine=True)))
    try:
        result = job()
    except Exception:  # its verdict and traceback are in its result.json
        return 1
    return 0 if result.get("status") in ("completed", "stopped_early") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
