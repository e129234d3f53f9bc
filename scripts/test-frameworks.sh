#!/usr/bin/env bash
# Run the Python tests of the framework runners (frameworks/tests) with pytest.
#
#   scripts/test-frameworks.sh [PYTEST ARGS…] [TEST PATHS…]   e.g. -k langgraph, -x, -v
#
# pytest is installed with pip into a tools venv under
# ${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker/ when missing. The framework venvs come
# from scripts/setup-frameworks.sh; a test whose venv is missing fails and says so.
#
# PYTHON_VERSION=3.13 runs pytest on that CPython (scripts/find-python.sh finds it) from a tools
# venv of its own, …/tools-py3.13, so that the tests that start Python from sys.executable (the
# warm parent's, frameworks/tests/test_warm*.py) run on it; PYTEST_VENV names another place for
# that venv. Exit status: pytest's (non-zero on any failure).
set -euo pipefail

PYTEST_VERSION=9.2.0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker
if [[ -n ${PYTHON_VERSION:-} ]]; then
  PYTHON=$("$ROOT/scripts/find-python.sh" "$PYTHON_VERSION") ||
    { echo "test-frameworks: no CPython $PYTHON_VERSION here (on PATH or installed by pyenv)" >&2; exit 1; }
  TOOLS_DIR=${PYTEST_VENV:-$CACHE/tools-py$PYTHON_VERSION}
else
  TOOLS_DIR=${PYTEST_VENV:-$CACHE/tools}
  PYTHON=${PYTHON:-python3}
fi

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
