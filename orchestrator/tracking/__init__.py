"""Weights & Biases: a trial's run (the tracker launchers hand the trainer as its epoch hook),
reading W&B's offline run files back, and ``sync``. Imports: store, sweep."""
