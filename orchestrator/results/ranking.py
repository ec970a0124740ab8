"""Did a study's ranking hold? For the configs one stage carried to the next, Kendall's tau-b and
Spearman's rho between their metric in the stage that selected them and their best in the next
(seeds averaged, as the leaderboard does). Short runs can rank configs poorly for long training
(Zela et al., 2018): a stage chain says how well each of its screens predicted."""

from __future__ import annotations

import math
from typing import Any

from orchestrator.results.board import lower_is_better
from orchestrator.results.leaderboard import collect
from orchestrator.store.stages import stage_records
from orchestrator.store.sweepdir import SweepDir

WARN_BELOW = 0.5  # tau under this: the screen's ranking did not hold (a warning line)


def kendall_tau_b(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b (ties in either list accounted for); nan when either list is constant."""
    concordant = discordant = ties_x = ties_y = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denom = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denom if denom else math.nan


def _ranks(xs: list[float]) -> list[float]:
    """Average ranks (1-based): tied values share the mean of their positions."""
    order = sorted(range(len(xs)), key=xs.__getitem__)
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman_rho(x: list[float], y: list[float]) -> float:
    """Spearman's rho: Pearson's correlation of the average ranks; nan when either is constant."""
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx, vy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return cov / math.sqrt(vx * vy) if vx and vy else math.nan


def held(sweep: SweepDir, metric: str | None = None) -> list[dict[str, Any]]:
    """One row per pair of stages (a stage that selected, the next that trained its picks) whose
    carried configs have results in both: the pairs, tau, rho, n, and a warning below 0.5."""
    records = stage_records(sweep)
    out = []
    for prev, nxt in zip(records, records[1:]):
        sel = prev.get("selection") or {}
        picks = [s for s in sel.get("selected") or [] if isinstance(s, dict)]
        if not picks:
            continue
        board = collect([sweep], metric or sel.get("metric"), only={m["trial_id"] for m in nxt["trials"]})
        low = lower_is_better(board.metric)
        later: dict[str, list[float]] = {}  # an earlier trial id -> its descendants' entry metrics
        origin = {m["trial_id"]: m.get("from") or [] for m in nxt["trials"]}
        for e in board.entries:
            for tid in e.trial_ids:
                for src in origin.get(tid, []):
                    later.setdefault(src, []).append(e.metric)
        pairs = []
        for s in picks:
            values = [v for tid in s.get("trial_ids", []) for v in later.get(tid, [])]
            if values and isinstance(s.get("metric"), (int, float)):
                pairs.append((float(s["metric"]), min(values) if low else max(values), s.get("trial_ids", [""])[0]))
        row: dict[str, Any] = {"from": prev["name"], "to": nxt["name"], "n": len(pairs),
                               "metric_from": sel.get("metric"), "metric_to": board.metric,
                               "pairs": [{"trial_id": t, "from": a, "to": b} for a, b, t in pairs]}
        if len(pairs) >= 2:
            xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
            row["tau"], row["rho"] = kendall_tau_b(xs, ys), spearman_rho(xs, ys)
        out.append(row)
    return out


def held_line(row: dict[str, Any]) -> str:
    """``ranking held from screen to long: Kendall tau 0.67, Spearman rho 0.80 over 4 configs``
    (and a warning when tau < 0.5)."""
    head = f"ranking from {row['from']} to {row['to']}"
    if "tau" not in row:
        return f"{head}: {row['n']} carried config(s) with results in both; too few to correlate (needs 2)"
    tau, rho = row["tau"], row["rho"]
    text = (f"{head}: Kendall tau {tau:.2f}, Spearman rho {rho:.2f} over {row['n']} carried configs "
            f"({row['metric_from']} -> {row['metric_to']})")
    if math.isnan(tau) or tau < WARN_BELOW:
        text += (f"\nwarning: the {row['from']} ranking held poorly in {row['to']} (tau < {WARN_BELOW}): "
                 "short runs may not pick what trains best; select more configs or train the screen longer")
    return text
