"""What a finished or running sweep says: status rows, the leaderboard (ranking, seed groups,
Pareto front), its exports and plots, logs. Reads the sweep dir and asks backends through the
registry; imports backends, tracking, store, sweep."""
