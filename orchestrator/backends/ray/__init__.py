"""The Ray backend: the driver (a private instance or a cluster, token auth), the Tune run
(ASHA), the per-trial trainable, the live view, and a Ray cluster inside a SLURM job. Imports the
backend interface, the SLURM backend (for Ray inside SLURM), tracking, store, sweep."""
