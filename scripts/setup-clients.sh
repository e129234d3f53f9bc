#!/usr/bin/env bash
# Install the real SDK clients (A2A, MCP) that scripts/test-clients.sh runs against the worker, and
# the other cached tools of the tests:
#
#   scripts/setup-clients.sh [--force] [py-v1|py-v03|js|aws|agentcore|py-mcp|js-mcp|otel|agui-py|agui-ws|agui-js|ws …]   (default: all twelve)
#
# Under ${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker/clients/:
#   py-v1/     a venv with a2a-sdk 1.x and pytest (tests/clients/python/requirements-v1.txt)
#   py-v03/    a venv with a2a-sdk 0.3.x and pytest (tests/clients/python/requirements-v03.txt)
#   js/        node_modules with @a2a-js/sdk 1.x (npm ci of tests/clients/js/package-lock.json)
#   py-mcp/    a venv with the MCP Python SDK (mcp) and pytest (tests/clients/python/requirements-mcp.txt)
#   js-mcp/    node_modules with @modelcontextprotocol/sdk (npm ci of tests/clients/js-mcp/package-lock.json)
#   aws/       a venv with the AWS CLI (awscli 1.x) and pytest, for scripts/test-aws.sh
#              (tests/aws/requirements.txt)
#   agentcore/ a venv with AWS's bedrock-agentcore SDK, the Python of tests/request_context.rs'
#              framework (tests/agentcore/requirements.txt)
#   otel/      the OTLP/HTTP span exporter and opentelemetry-proto, for tests/tracing.rs
#              (tests/clients/otel/requirements.txt), made with the frameworks' CPython: the
#              tests put its site-packages on a framework venv's path
#   agui-py/   a venv with AG-UI's Python SDK (ag-ui-protocol) and pytest
#              (tests/clients/agui/requirements.txt)
#   agui-ws/   ag-ui-protocol and websockets: AG-UI on /ws (tests/clients/agui/ws-requirements.txt)
#   agui-js/   node_modules with @ag-ui/client (npm ci of tests/clients/agui-js/package-lock.json)
#   ws/        a venv with the Python websockets client, for tests/ws.rs
#              (tests/clients/ws/requirements.txt)
# Each is stamped with the sha256 of what it was made from (and the Python version); a matching
# stamp is skipped, so a second run takes a second. Only the package registries are used (PyPI,
# npm). uv makes the venvs when it is on PATH or in the tools venv of setup-frameworks.sh,
# else python -m venv and pip.
#
# Environment: PYTHON (interpreter, default python3), NPM (default npm), UV (a uv binary).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker
CLIENTS=$CACHE/clients
PYTHON=${PYTHON:-python3}
NPM=${NPM:-npm}
STAMP_NAME=.agentdispatch-stamp
FORCE=0
NAMES=()

die() { echo "setup-clients: $*" >&2; exit 1; }

for arg in "$@"; do
  case $arg in
    --force) FORCE=1 ;;
    py-v1 | py-v03 | js | aws | agentcore | py-mcp | js-mcp | otel | agui-py | agui-ws | agui-js | ws) NAMES+=("$arg") ;;
    -h | --help) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $arg" ;;
  esac
done

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum; else shasum -a 256; fi | cut -d' ' -f1
}

fresh() { # fresh DIR STAMP: whether DIR was made from STAMP
  [[ $FORCE == 0 && -f $1/$STAMP_NAME && $(<"$1/$STAMP_NAME") == "$2" ]]
}

if [[ -z ${UV:-} ]]; then
  if command -v uv >/dev/null 2>&1; then UV=$(command -v uv)
  elif [[ -x $CACHE/tools/bin/uv ]]; then UV=$CACHE/tools/bin/uv
  fi
fi

PY_EXE=$("$PYTHON" -c 'import sys; print(sys.executable)') || die "cannot run $PYTHON"
PY_VERSION=$("$PY_EXE" -c 'import sys; print(sys.version)')

venv() { # venv NAME REQUIREMENTS MODULES: MODULES (comma-separated) must import afterwards
  local dir=$CLIENTS/$1 req=$2 modules=$3 stamp started
  stamp=$({ cat "$req"; echo "$PY_VERSION"; } | sha256)
  if fresh "$dir" "$stamp"; then
    echo "$1: up to date ($dir)"
    return
  fi
  started=$SECONDS
  echo "$1: creating $dir (with ${UV:-pip})"
  rm -rf "$dir"
  if [[ -n ${UV:-} ]]; then
    UV_PYTHON_DOWNLOADS=never "$UV" venv --quiet --python "$PY_EXE" "$dir"
    "$UV" pip sync --quiet --python "$dir/bin/python" --compile-bytecode "$req"
  else
    "$PY_EXE" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$req"
  fi
  "$dir/bin/python" -c "import $modules" || die "$1: the venv cannot import $modules"
  echo "$stamp" >"$dir/$STAMP_NAME"
  echo "$1: ready in $((SECONDS - started)) s"
}

node_modules() { # node_modules NAME PACKAGE: npm ci of tests/clients/NAME; PACKAGE must be there after
  local dir=$CLIENTS/$1 src=$ROOT/tests/clients/$1 package=$2 stamp started
  command -v node >/dev/null 2>&1 || die "node is not installed (node 20 or later)"
  stamp=$({ cat "$src/package.json" "$src/package-lock.json"; node --version; } | sha256)
  if fresh "$dir" "$stamp"; then
    echo "$1: up to date ($dir)"
    return
  fi
  started=$SECONDS
  echo "$1: npm ci into $dir"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$src/package.json" "$src/package-lock.json" "$dir/"
  (cd "$dir" && "$NPM" ci --no-audit --no-fund --loglevel=error >/dev/null)
  [[ -f $dir/node_modules/$package/package.json ]] || die "$1: $package missing after npm ci"
  echo "$stamp" >"$dir/$STAMP_NAME"
  echo "$1: ready in $((SECONDS - started)) s"
}

mkdir -p "$CLIENTS"
((${#NAMES[@]})) || NAMES=(py-v1 py-v03 js aws agentcore py-mcp js-mcp otel agui-py agui-ws agui-js ws)
for name in "${NAMES[@]}"; do
  case $name in
    py-v1) venv py-v1 "$ROOT/tests/clients/python/requirements-v1.txt" a2a,pytest ;;
    py-v03) venv py-v03 "$ROOT/tests/clients/python/requirements-v03.txt" a2a,pytest ;;
    js) node_modules js @a2a-js/sdk ;;
    py-mcp) venv py-mcp "$ROOT/tests/clients/python/requirements-mcp.txt" mcp,pytest ;;
    js-mcp) node_modules js-mcp @modelcontextprotocol/sdk ;;
    agui-py) venv agui-py "$ROOT/tests/clients/agui/requirements.txt" ag_ui.core,pytest ;;
    agui-ws) venv agui-ws "$ROOT/tests/clients/agui/ws-requirements.txt" ag_ui.core,websockets,pytest ;;
    agui-js) node_modules agui-js @ag-ui/client ;;
    aws) venv aws "$ROOT/tests/aws/requirements.txt" awscli.clidriver,pytest ;;
    agentcore) venv agentcore "$ROOT/tests/agentcore/requirements.txt" bedrock_agentcore.identity.auth ;;
    otel)
      # Its packages join a framework venv's (tests/tracing.rs): made with that venv's CPython
      # (protobuf is compiled per version), the one scripts/setup-frameworks.sh prefers.
      (
        PY_EXE=$("$ROOT/scripts/find-python.sh" 3.12) || PY_EXE=$(command -v python3)
        PY_VERSION=$("$PY_EXE" -c 'import sys; print(sys.version)')
        venv otel "$ROOT/tests/clients/otel/requirements.txt" opentelemetry.proto.collector.trace.v1.trace_service_pb2
      )
      ;;
    ws) venv ws "$ROOT/tests/clients/ws/requirements.txt" websockets ;;
  esac
done
