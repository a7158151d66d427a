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
# The randomised tests take their seeds from here, so a CI failure replays exactly (each
# test prints the seed it used; FUZZ_SEED=... scripts/test.sh runs another). Plain pytest
# runs draw new seeds.
export FUZZ_SEED=${FUZZ_SEED:-1648901388} SOAK_SEED=${SOAK_SEED:-2785492896}
exec .venv/bin/python -m pytest -q -ra --durations=30 "$@"
