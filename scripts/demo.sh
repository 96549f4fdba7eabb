#!/usr/bin/env bash
# The main job on bundled real data: set up (idempotent), then `patchline demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/patchline demo "$@"
