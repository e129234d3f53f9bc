#!/usr/bin/env bash
# Check docs/agentcore.md and scripts/agentcore-deploy.sh against the AWS CLI's own service
# models, with no AWS account (what that proves and what not: docs/agentcore.md, "How this page
# is tested"):
#
#   scripts/test-aws.sh [pytest arguments…]
#
# The AWS CLI (tests/aws/requirements.txt, pinned) is installed from PyPI into
# ${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker/aws/, stamped with the sha256 of the
# requirements and the Python version: a second run installs nothing. The tests start the worker
# (AGENTDISPATCH_TEST_WORKER, else target/debug/agentdispatch-worker, built when missing) with the
# langgraph framework (scripts/setup-frameworks.sh langgraph, run here; cached too).
#
# Environment: PYTHON (interpreter, default python3), UV (a uv binary).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker
VENV=$CACHE/aws
REQ=$ROOT/tests/aws/requirements.txt
PYTHON=${PYTHON:-python3}
STAMP=$VENV/.agentdispatch-stamp

die() { echo "test-aws: $*" >&2; exit 1; }

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum; else shasum -a 256; fi | cut -d' ' -f1
}

if [[ -z ${UV:-} ]]; then
  if command -v uv >/dev/null 2>&1; then UV=$(command -v uv)
  elif [[ -x $CACHE/tools/bin/uv ]]; then UV=$CACHE/tools/bin/uv
  fi
fi
PY_EXE=$("$PYTHON" -c 'import sys; print(sys.executable)') || die "cannot run $PYTHON"
stamp=$({ cat "$REQ"; "$PY_EXE" -c 'import sys; print(sys.version)'; } | sha256)
if [[ -f $STAMP && $(<"$STAMP") == "$stamp" ]]; then
  echo "aws: up to date ($VENV)"
else
  started=$SECONDS
  echo "aws: creating $VENV (with ${UV:-pip})"
  rm -rf "$VENV"
  if [[ -n ${UV:-} ]]; then
    UV_PYTHON_DOWNLOADS=never "$UV" venv --quiet --python "$PY_EXE" "$VENV"
    "$UV" pip sync --quiet --python "$VENV/bin/python" --compile-bytecode "$REQ"
  else
    "$PY_EXE" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$REQ"
  fi
  "$VENV/bin/python" -c 'import awscli.clidriver, pytest' || die "the venv cannot import awscli and pytest"
  echo "$stamp" >"$STAMP"
  echo "aws: ready in $((SECONDS - started)) s"
fi

"$ROOT/scripts/setup-frameworks.sh" langgraph >/dev/null || die "scripts/setup-frameworks.sh langgraph failed"
if [[ -z ${AGENTDISPATCH_TEST_WORKER:-} && ! -x $ROOT/target/debug/agentdispatch-worker ]]; then
  (cd "$ROOT" && cargo build --locked) || die "cargo build failed"
fi

cd "$ROOT"
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/aws "$@"
