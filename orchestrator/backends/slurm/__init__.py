"""The SLURM backend (submitit): one job array per submission, sacct/squeue text, crash-consistent
submit intents, packing K trials per array task, the job each task runs. Imports the backend
interface, tracking, store, sweep."""
