#!/usr/bin/env bash
# Create frameworks/<name>/.venv for the Python framework runners.
#
#   scripts/setup-frameworks.sh [--force] [NAME…]
#   scripts/setup-frameworks.sh --uv          # the path of its uv, for `uv pip compile`
#
# NAME defaults to every folder of frameworks/ that has a requirements.txt; a NAME with a "/" is
# a folder path of its own (bench/agentcore, the in-process floor of the warm-start bench). Each venv is made
# with uv from the pinned requirements.txt, byte-compiled (these machines set
# PYTHONDONTWRITEBYTECODE=1, so uncompiled imports would be slow on every run). A venv whose
# stamp (sha256 of requirements.txt + Python version) matches is skipped, so a second run takes
# seconds; uv's cache (UV_CACHE_DIR, default ~/.cache/uv) makes a fresh clone re-create them fast.
#
# Environment: PYTHON (interpreter, default: CPython 3.12 if found, else python3), UV (a uv binary to use),
# AGENTDISPATCH_FRAMEWORKS_DIR (default: frameworks/ of this repository).
# uv itself, when not on PATH, is installed with pip into a tools venv under
# ${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker/; `--uv` prints the path of the uv it uses
# (installing it when needed), e.g. "$(scripts/setup-frameworks.sh --uv)" pip compile ….
set -euo pipefail

UV_VERSION=0.13.9
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FRAMEWORKS_DIR=${AGENTDISPATCH_FRAMEWORKS_DIR:-$ROOT/frameworks}
TOOLS_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker/tools
# The frameworks' CPython: 3.12 where the machine has it (the image's, see the Dockerfile: a warm
# parent makes its objects immortal there, README "Warm starts"), else python3.
PREFERRED_PYTHON=3.12
STAMP_NAME=.agentdispatch-stamp

die() { echo "setup-frameworks: $*" >&2; exit 1; }

# Sets PYTHON, when unset, to CPython $PREFERRED_PYTHON (scripts/find-python.sh: on PATH or
# installed by pyenv), else to python3.
pick_python() {
  [[ -n ${PYTHON:-} ]] && return
  PYTHON=$("$ROOT/scripts/find-python.sh" "$PREFERRED_PYTHON") || PYTHON=python3
}

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum; else shasum -a 256; fi | cut -d' ' -f1
}

# Sets UV to a working uv binary, installing it into the tools venv when needed.
find_uv() {
  if [[ -n ${UV:-} ]]; then
    return
  elif command -v uv >/dev/null 2>&1; then
    UV=$(command -v uv)
  elif [[ -x $TOOLS_DIR/bin/uv ]]; then
    UV=$TOOLS_DIR/bin/uv
  else
    echo "setup-frameworks: installing uv $UV_VERSION into $TOOLS_DIR"
    [[ -x $TOOLS_DIR/bin/python ]] || "$PYTHON" -m venv "$TOOLS_DIR"
    "$TOOLS_DIR/bin/python" -m pip install --quiet "uv==$UV_VERSION"
    UV=$TOOLS_DIR/bin/uv
  fi
}

setup_one() {
  local name=$1 dir req venv stamp started size
  if [[ $name == */* ]]; then dir=$ROOT/$name; else dir=$FRAMEWORKS_DIR/$name; fi
  req=$dir/requirements.txt
  venv=$dir/.venv
  [[ -f $req ]] || die "$name: no requirements.txt in $dir"
  stamp=$({ cat "$req"; echo "$PY_VERSION"; } | sha256)
  if [[ $FORCE == 0 && -x $venv/bin/python && -f $venv/$STAMP_NAME && $(<"$venv/$STAMP_NAME") == "$stamp" ]]; then
    echo "$name: up to date ($venv)"
    return
  fi
  started=$SECONDS
  echo "$name: creating $venv"
  rm -rf "$venv"
  "$UV" venv --quiet --python "$PY_EXE" "$venv"
  "$UV" pip sync --quiet --python "$venv/bin/python" --compile-bytecode "$req"
  echo "$stamp" >"$venv/$STAMP_NAME"
  size=$(du -sh "$venv" | cut -f1)
  echo "$name: ready in $((SECONDS - started)) s, $size"
}

FORCE=0
PRINT_UV=0
NAMES=()
for arg in "$@"; do
  case $arg in
    --force) FORCE=1 ;;
    --uv) PRINT_UV=1 ;;
    -h | --help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $arg" ;;
    *) NAMES+=("${arg%/}") ;;
  esac
done

if [[ $PRINT_UV == 1 ]]; then
  # The uv these scripts use, for a command of your own (`uv pip compile`): its path only.
  pick_python
  find_uv >&2
  echo "$UV"
  exit 0
fi

if [[ ${#NAMES[@]} == 0 ]]; then
  for req in "$FRAMEWORKS_DIR"/*/requirements.txt; do
    [[ -f $req ]] && NAMES+=("$(basename "$(dirname "$req")")")
  done
  [[ ${#NAMES[@]} -gt 0 ]] || die "no framework with a requirements.txt in $FRAMEWORKS_DIR"
fi

pick_python
PY_EXE=$("$PYTHON" -c 'import sys; print(sys.executable)') || die "cannot run $PYTHON"
PY_VERSION=$("$PY_EXE" -c 'import sys; print(sys.version)')
find_uv
export UV_PYTHON_DOWNLOADS=never

for name in "${NAMES[@]}"; do
  setup_one "$name"
done
