#!/usr/bin/env bash
# The main job: set up (tools/setup.sh), then run the example realm (tools/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
exec .venv/bin/python tools/demo.py
