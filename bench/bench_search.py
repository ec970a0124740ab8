"""Feasible by construction vs naive sampling, on seed 000's search space with the width in the
space instead of filled (so the budget really cuts): the share of proposals within 5 M params,
and the time per proposal within budget (ratio against naive rejection sampling, same process).

    .venv/bin/python bench/bench_search.py [--proposals 200] [--seeds 20]

Then the tabular benchmark (``bench/replay.py``): the product's search code replayed against a
grid really trained on CIFAR-10 (``bench/data/table_grid.jsonl``; how it was made:
bench/data/README.md): trials until within 0.5 pt of the table's best for TPE and random vs the
grid in its written order, NSGA-II's hypervolume at 1/3 of the trials vs the whole grid's, and
ASHA's promotions (the SLURM driver's own rule) over the trained curves.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import replay

from model import get_family
from orchestrator.sweep.proposers import Search
from orchestrator.sweep.spec import load_spec

BUDGET = 5_000_000
SETS = ["budget.fill=null", "search.algorithm=random", "search.space.model.channels={int: [8, 512], step: 8}"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--proposals", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=20)
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
    if replay.TABLE.exists():
        tabular(args.seeds)


def tabular(seeds: int) -> None:
    table = replay.load_table()
    n = len(table)
    best = max(max(r["val_acc"]) for r in table.values())
    print(f"\ntabular benchmark: {n} trained trials of {replay.GRID.name}, best val_acc {best:.4f}; {seeds} seeds each")
    orders = {a: [replay.replay(a, s, n, table) for s in range(seeds)] for a in ("random", "tpe")}
    for within in (0.005, 0.02):  # 0.5 pt (the goal); 2 pt: about one standard error of a 500-image accuracy
        grid = replay.trials_to_target(replay.grid_order(table), table, within)
        close = sum(max(r["val_acc"]) >= best - within for r in table.values())
        print(f"  within {within * 100:g} pt of the best ({close} of {n} trials are): the grid in written order needs {grid}")
        for algorithm, runs in orders.items():
            found = [replay.trials_to_target(o, table, within) for o in runs]
            med = replay.median(found, n + 1)
            print(f"    {algorithm:6s}: median {med:g} trials (a seed that never got there counts {n + 1}; "
                  f"seeds: {found}); ratio to the grid {med / grid:.2f}")
    third = max(1, round(n / 3))
    ref = (max(r["params"] for r in table.values()) * 1.01, 0.1)  # chance accuracy, just past the largest model
    whole = replay.hypervolume([(r["params"], max(r["val_acc"])) for r in table.values()], ref)
    ratios = []
    for s in range(seeds):
        order = replay.replay("nsga2", s, third, table, [{"val_acc": "max"}, {"params": "min"}])
        ratios.append(replay.hypervolume([(table[t]["params"], max(table[t]["val_acc"])) for t in order], ref) / whole)
    print(f"  nsga2 : hypervolume (val_acc vs params) after {third} trials / the whole grid's: median "
          f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")
    full = sum(len(r["val_acc"]) for r in table.values())
    for eta in (2, 3):
        epochs, top = replay.asha_epochs(table, 1, eta, replay.grid_order(table))
        print(f"  ASHA (grace 1, eta {eta}) over the trained curves: {epochs} epochs vs {full} without it "
              f"({full / epochs:.2f}x fewer); best val_acc reached {top:.4f} vs {best:.4f}")


if __name__ == "__main__":
    main()
