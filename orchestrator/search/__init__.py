"""Search: the one seam through which a sweep's trials are proposed and stopped.

Two kinds of policy, each a registry:

- **stopping rules** (``stopping.py``: none, ASHA) end trials early as they report; they are the
  vocabulary the spec's ``search.scheduler`` is validated against, so they import nothing of the
  orchestrator and sit below the sweep language;
- **proposers** (``propose.py``: the fixed expansion of grid / vary / trials) say which trials
  the sweep runs, at the start and, for a search, while it runs; every proposal is recorded in the
  sweep dir before it is launched (``SweepDir.propose``: append-only), so status, leaderboard and
  sync read proposed trials exactly as planned ones. Proposers are handed the expansion and the
  sweep dir (``orchestrator/sweep/proposers.py: proposer_for``), so search imports neither.

The samplers and schedulers themselves are the libraries' (Ray Tune's ASHA), never ours."""
