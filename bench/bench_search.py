"""Feasible by construction vs naive sampling, on seed 000's search space with the width in the
space instead of filled (so the budget really cuts): the share of proposals within 5 M params,
and the time per proposal within budget (ratio against naive rejection sampling, same process).

    .venv/bin/python bench/bench_search.py [--proposals 200]

Not here yet (issue 19): the replay of TPE / random / NSGA-II against a table of really trained
results (trials to within 0.5 pt of the best, hypervolume), which needs that table trained first.
"""

from __future__ import annotations

import argparse
import random
import time

from model import get_family
from orchestrator.sweep.proposers import Search
from orchestrator.sweep.spec import load_spec

BUDGET = 5_000_000
SETS = ["budget.fill=null", "search.algorithm=random", "search.space.model.channels={int: [8, 512], step: 8}"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--proposals", type=int, default=200)
    args = ap.parse_args()
    n = args.proposals
    spec = load_spec("sweeps/joint_search.yaml", [*SETS, f"search.trials={n}", f"search.parallel={n}"])
    start = time.perf_counter()
    search = Search(spec)
    built = time.perf_counter() - start
    f = search.feasible
    print(f"space: {' x '.join(str(len(d.values)) for d in f.domains)} = {f.total:,} model points; "
          f"{len(f.points):,} within {BUDGET:,} params ({f.rate:.1%}); counted in {built:.2f} s")

    start = time.perf_counter()
    proposals = search.proposer(None).first()  # n proposals, none told: the sampler's own draws
    constructed = (time.perf_counter() - start) / n
    fit = sum(get_family(t.config["model"]).count(t.config["model"]) <= BUDGET for t in proposals)
    print(f"construction: {fit}/{n} proposals within budget ({fit / n:.0%}), {constructed * 1e3:.2f} ms each")

    rng = random.Random(0)
    start = time.perf_counter()
    hits = tries = 0
    while hits < n:
        tries += 1
        hits += search.fits({d.key: rng.choice(d.values) for d in f.domains})
    naive = (time.perf_counter() - start) / hits
    print(f"naive sampling of the raw space: {hits}/{tries} within budget ({hits / tries:.1%}), "
          f"{naive * 1e3:.2f} ms per proposal within budget (rejection sampling; a real search trains the rest)")
    print(f"ratio construction / naive time per feasible proposal: {constructed / naive:.2f}x; "
          f"over-budget proposals: construction 0%, naive {1 - hits / tries:.1%}")


if __name__ == "__main__":
    main()
