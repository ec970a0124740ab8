"""``orchestrate train``: pick one trial of a spec and run it here, in-process or under torchrun."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from orchestrator.sweep.expand import Trial, expand, shadowed
from orchestrator.sweep.select import check_data, select_trials
from orchestrator.sweep.spec import SpecError, load_spec
from train.files import write_config
from train.lease import TrialHeld


def pick_trial(spec_file: str, overrides: tuple[str, ...], trial_id: str | None, index: int | None) -> Trial:
    spec = load_spec(spec_file, overrides)
    trials = expand(spec)
    if trial_id is None and index is None:
        kept = [t for t in trials if t.kept]
        if not kept:
            raise SpecError(spec_file, "budget", "drops every trial; nothing to train")
        chosen = kept[0]
    else:
        chosen = select_trials(spec_file, trials, [trial_id] if trial_id is not None else [],
                               [index] if index is not None else [])[0]
    for line in shadowed(overrides, [chosen]):
        print(line, file=sys.stderr)
    check_data(spec_file, [chosen])  # before anything is written: bad input, exit 2
    return chosen


HELD = 3  # exit code of a runner that found the trial held by another


def train_locally(trial: Trial, out_dir: str, nproc: int) -> int:
    from train.loop import check_owner  # heavy: loads numpy and torch (seconds); only this path needs it

    out = Path(out_dir)
    check_owner(out, trial.trial_id)  # before anything is written; bad input, exit 2
    if nproc == 1:
        from train.loop import run_trial  # heavy: loads numpy and torch (seconds); only this path needs it

        try:
            result = run_trial(trial.config, out, trial.trial_id)
        except TrialHeld:  # its one line (naming the holder) is printed; a duplicate, not a failure
            return HELD
        except Exception as err:  # the verdict and traceback are in result.json already
            print(f"trial {trial.trial_id} failed: {type(err).__name__}: {err} (see {out / 'result.json'})",
                  file=sys.stderr)
            return 1
        print(f"trial {trial.trial_id} {result['status']}: test_acc {result['test_acc']:.4f} "
              f"after {result['epochs_completed']} epochs -> {out / 'result.json'}")
        return 0

    write_config(out, trial.config)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "train.worker", str(out), "--trial-id", trial.trial_id]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run(cmd, env=env).returncode
