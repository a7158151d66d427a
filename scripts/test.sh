#!/usr/bin/env bash
# Install everything the tests need, then run ruff, mypy and the whole pytest suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k router -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check . >/dev/null || { .venv/bin/ruff format --diff . | head -50; exit 1; }
echo "== mypy"
.venv/bin/mypy signaling peer media tests $(ls scripts/*.py 2>/dev/null)
echo "== pytest"
exec .venv/bin/python -m pytest -q -ra "$@"
