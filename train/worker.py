"""Run the trial whose ``config.yaml`` is in a trial dir: ``python -m train.worker DIR``.

What ``orchestrate train --nproc N`` starts under torchrun, one process per rank.
"""

from __future__ import annotations

import argparse
import sys

from train.files import read_config
from train.loop import run_trial


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir")
    parser.add_argument("--trial-id", required=True)
    args = parser.parse_args(argv)
    from pathlib import Path

    result = run_trial(read_config(Path(args.out_dir)), args.out_dir, args.trial_id)
    return 0 if result["status"] in ("completed", "stopped_early") else 1


if __name__ == "__main__":
    sys.exit(main())
