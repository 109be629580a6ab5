#!/usr/bin/env bash
# Set up (tools/setup.sh) and run every test tier. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
exec .venv/bin/python -m pytest "$@"
