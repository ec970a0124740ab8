"""The sweep directory, the on-disk contract every stage shares: its layout, lock, plan and
submission files, a trial's files and their damage-tolerant readers, the manifest. Imports:
the sweep layer below it (and train/ for the trial files)."""
