#!/usr/bin/env bash
# Make .venv with the project and its development tools installed. Idempotent and quiet:
# reinstalls only when pyproject.toml changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# An editable install gets no bytecode, and where PYTHONDONTWRITEBYTECODE is set Python never
# writes any: the manager, every `cm` and every program would compile our modules from source
# at each start (4-7 ms a process). Compile them once, as pip does for a regular install.
.venv/bin/python -m compileall -q -j 0 component_manager benchmarks >/dev/null
