#!/usr/bin/env bash
# Print the path of a CPython of the given minor version that can make virtualenvs.
#
#   scripts/find-python.sh 3.13
#
# Looks on PATH for python<VERSION> (one with venv and ensurepip, which a tools venv needs), then
# among pyenv's installed versions (its shim answers only for the selected version, so the
# interpreter is named by its path). Exit status 1, with nothing printed, when there is none.
set -euo pipefail

want=python${1:?usage: find-python.sh VERSION (e.g. 3.13)}
if "$want" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  command -v "$want"
  exit 0
fi
if command -v pyenv >/dev/null 2>&1 && root=$(pyenv root 2>/dev/null) \
  && version=$(pyenv latest "$1" 2>/dev/null) && [[ -x $root/versions/$version/bin/$want ]]; then
  echo "$root/versions/$version/bin/$want"
  exit 0
fi
exit 1
