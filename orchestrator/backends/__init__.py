"""Backends run trials somewhere; they never parse YAML and the trainer never knows which ran it.
``base.py`` is the contract every backend implements, ``states.py`` the shared state vocabulary;
each backend is a subpackage (``slurm/``, ``ray/``) with its ``options.py`` and ``backend.py``,
listed by name in ``orchestrator/plugins.py`` (the registry). Imports: tracking, store, sweep and
below."""
