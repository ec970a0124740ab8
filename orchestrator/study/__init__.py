"""Studies: a chain of stages in one spec (``stages:``), each chosen from the last one's
leaderboard.

- ``spec.py``: the study language (stages, ``select:``, ``carry:``, ``--set stages.N.KEY``), each
  stage made a ``SweepSpec`` of the sweep language and expanded by it (ids, budget, fill);
- ``select.py``: a finished stage's selection, made from the stage's leaderboard
  (``orchestrator.results``) by the stage's rule (top K, best per key, Pareto front);
- ``run.py``: what a study does next (``step``) and the loops that run it: the foreground (Ray)
  from stage to stage, and on SLURM a small step job, queued after each stage's jobs end, that
  records the selection and queues the next stage and its own successor.

Every decision is recorded in the sweep dir (``orchestrator/store/stages.py``) before anything of
the next stage starts, so a killed driver or step job loses nothing and repeats nothing. The
study sits above the search drivers and below ``submit``, which hands a study spec to it."""
