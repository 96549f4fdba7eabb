#!/usr/bin/env bash
# The test command: set up (idempotent), run the whole suite against real services, then check the
# runtime-only install (scripts/runtime_check.sh: a fresh venv with `pip install .`, numpy 2.x).
# Pieces: `.venv/bin/python -m pytest -m "not slow"` (unit tests, seconds), `-m runtime`, one file.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -q "$@"
if [ $# -eq 0 ]; then
  bash scripts/runtime_check.sh
fi
