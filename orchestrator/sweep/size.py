"""How big a sweep is, before it is expanded: specs come from anyone, and a grid's size is the
product of its axes, so a few lines of YAML can ask for a million trials."""

from __future__ import annotations

from orchestrator.sweep.spec import SpecError, SweepSpec

MAX_TRIALS = 100_000  # a sweep planned past this is refused before expanding (``--max-trials`` raises it)


def planned(spec: SweepSpec) -> int:
    """How many trials the spec asks for before de-duplication and the budget, in closed form."""
    n = 1
    for _, values in spec.grid:
        n *= len(values)
    n = (n if spec.grid else 0) + sum(len(v) for _, v in spec.vary) + len(spec.trials)
    return max(n, 1) * spec.repeat


def check_size(spec: SweepSpec, max_trials: int | None = MAX_TRIALS) -> None:
    """Refuse (one line, exit 2) a spec planning more than ``max_trials`` trials, from its axes'
    lengths alone: nothing is expanded, so a 100x100x100 grid costs microseconds, not gigabytes."""
    n = planned(spec)
    if max_trials is not None and n > max_trials:
        axes = " x ".join(str(len(v)) for _, v in spec.grid)
        where = "grid" if spec.grid else ("vary" if spec.vary else "trials")
        raise SpecError(spec.file, where, f"plans {n:,} trials ({'grid ' + axes + ', ' if axes else ''}repeat "
                        f"{spec.repeat}); the limit is {max_trials:,}: narrow the sweep, or raise the limit with "
                        f"--max-trials {n}")
