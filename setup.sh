#!/usr/bin/env bash
# Create .venv (once) and install orchestrate with its test extras. Idempotent; works offline
# when pip can reach a local wheel mirror (as on this project's machines) or PyPI.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# Installing is a no-op once everything is there; the marker skips pip's own ~10 s resolve.
stamp=.venv/.orchestrate-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c 'import torch, torchvision, orchestrator, model, train' && touch "$stamp"
fi
