#!/usr/bin/env bash
# Run the Python tests of the framework runners (frameworks/tests) with pytest.
#
#   scripts/test-frameworks.sh [PYTEST ARGS…] [TEST PATHS…]   e.g. -k langgraph, -x, -v
#
# pytest is installed with pip into a tools venv under
# ${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker/ when missing. The framework venvs come
# from scripts/setup-frameworks.sh; a test whose venv is missing fails and says so.
# Exit status: pytest's (non-zero on any failure).
set -euo pipefail

PYTEST_VERSION=9.2.0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker/tools
PYTHON=${PYTHON:-python3}

if ! "$TOOLS_DIR/bin/python" -c 'import pytest' >/dev/null 2>&1; then
  echo "test-frameworks: installing pytest $PYTEST_VERSION into $TOOLS_DIR"
  [[ -x $TOOLS_DIR/bin/python ]] || "$PYTHON" -m venv "$TOOLS_DIR"
  "$TOOLS_DIR/bin/python" -m pip install --quiet "pytest==$PYTEST_VERSION"
fi

cd "$ROOT"
# Test paths given (e.g. frameworks/tests/test_langgraph.py or …::TestX): run those, else all.
targets=(frameworks/tests)
for arg in "$@"; do
  if [[ $arg != -* && ( -e ${arg%%::*} ) ]]; then
    targets=()
  fi
done
exec "$TOOLS_DIR/bin/python" -m pytest -p no:cacheprovider -rfE "$@" "${targets[@]}"
