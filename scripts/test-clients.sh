#!/usr/bin/env bash
# Run the worker's A2A, MCP and AG-UI surfaces through the real SDK clients (installed by
# scripts/setup-clients.sh, which this runs first: a second run takes a second):
#
#   scripts/test-clients.sh [py-v1|py-v03|js|py-mcp|js-mcp|agui-py|agui-ws|agui-js …] (default: all eight)
#
#   py-v1    Python a2a-sdk 1.x, its A2A 1.0 JSON-RPC transport  tests/clients/python/test_a2a_v1.py
#   py-v03   Python a2a-sdk 0.3.x                               tests/clients/python/test_a2a_v03.py
#   js       @a2a-js/sdk 1.x, its A2A 1.0 JSON-RPC transport     tests/clients/js/a2a.test.mjs
#   py-mcp   Python mcp SDK, its Streamable HTTP client          tests/clients/python/test_mcp.py
#   js-mcp   @modelcontextprotocol/sdk, its Streamable HTTP client tests/clients/js-mcp/mcp.test.mjs
#   agui-py  AG-UI's Python models, the six frameworks           tests/clients/agui/test_agui.py
#   agui-ws  AG-UI's Python models over /ws (websockets)       tests/clients/agui/test_agui_ws.py
#   agui-js  @ag-ui/client's HttpAgent, two frameworks           tests/clients/agui-js/agui.test.mjs
#            (both agui suites need the frameworks' venvs: scripts/setup-frameworks.sh)
#
# The worker binary is AGENTDISPATCH_TEST_WORKER, else target/debug/agentdispatch-worker (built
# with cargo build --locked when missing). Each test starts its own worker (PORT=0, the port read from its log) with
# its own artifact and session folders. Exits non-zero when any suite fails; one summary line
# per suite.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLIENTS=${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker/clients

SUITES=("$@")
[[ ${#SUITES[@]} -gt 0 ]] || SUITES=(py-v1 py-v03 js py-mcp js-mcp agui-py agui-ws agui-js)
for s in "${SUITES[@]}"; do
  case $s in
    py-v1 | py-v03 | js | py-mcp | js-mcp | agui-py | agui-ws | agui-js) ;;
    -h | --help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test-clients: unknown suite $s (py-v1, py-v03, js, py-mcp, js-mcp, agui-py, agui-ws, agui-js)" >&2; exit 2 ;;
  esac
done

"$ROOT/scripts/setup-clients.sh" "${SUITES[@]}" || { echo "test-clients: setup-clients.sh failed" >&2; exit 1; }

WORKER=${AGENTDISPATCH_TEST_WORKER:-$ROOT/target/debug/agentdispatch-worker}
if [[ ! -x $WORKER ]]; then
  if [[ -n ${AGENTDISPATCH_TEST_WORKER:-} ]]; then
    echo "test-clients: AGENTDISPATCH_TEST_WORKER=$WORKER is not an executable" >&2
    exit 1
  fi
  (cd "$ROOT" && cargo build --locked) || exit 1
fi
WORKER=$(cd "$(dirname "$WORKER")" && pwd)/$(basename "$WORKER")
export AGENTDISPATCH_TEST_WORKER=$WORKER
export AGENTDISPATCH_FIXTURE_FRAMEWORKS=$ROOT/tests/fixtures/frameworks
export AGENTDISPATCH_FRAMEWORKS=$ROOT/frameworks

SUMMARY=()
FAILED=0
PASSED=0
FAILURES=0

run_suite() { # run_suite NAME LABEL COMMAND…
  local name=$1 label=$2 log rc started
  shift 2
  log=$(mktemp)
  started=$SECONDS
  echo "== $name: $label"
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  local counts
  # pytest's closing line ("9 passed in 7.1s"), or node's "# pass N" and "# fail N".
  counts=$(grep -E '^(=+ )?[0-9]+ (passed|failed|errors?)|^# (pass|fail) [0-9]+$' "$log" |
    sed -E 's/^=+ //; s/ =+$//; s/^# //' | paste -sd, - | sed 's/,/, /g')
  # Totals for the closing line: pytest's "N passed"/"N failed", node's "# pass N"/"# fail N".
  local p f
  p=$(grep -oE '^(=+ )?([0-9]+ failed, )?[0-9]+ passed' "$log" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' | tail -1)
  f=$(grep -oE '^(=+ )?[0-9]+ failed' "$log" | grep -oE '[0-9]+' | tail -1)
  [[ -n $p ]] || p=$(grep -oE '^# pass [0-9]+$' "$log" | grep -oE '[0-9]+' | tail -1)
  [[ -n $f ]] || f=$(grep -oE '^# fail [0-9]+$' "$log" | grep -oE '[0-9]+' | tail -1)
  PASSED=$((PASSED + ${p:-0}))
  FAILURES=$((FAILURES + ${f:-0}))
  rm -f "$log"
  if [[ $rc == 0 ]]; then
    SUMMARY+=("ok    $name ($label): ${counts:-passed}, $((SECONDS - started)) s")
  else
    SUMMARY+=("FAIL  $name ($label): ${counts:-exit $rc}, $((SECONDS - started)) s")
    FAILED=1
  fi
}

for s in "${SUITES[@]}"; do
  case $s in
    py-v1)
      run_suite py-v1 "a2a-sdk 1.x" \
        "$CLIENTS/py-v1/bin/python" -m pytest -p no:cacheprovider -q "$ROOT/tests/clients/python/test_a2a_v1.py" ;;
    py-v03)
      run_suite py-v03 "a2a-sdk 0.3.x" \
        "$CLIENTS/py-v03/bin/python" -m pytest -p no:cacheprovider -q "$ROOT/tests/clients/python/test_a2a_v03.py" ;;
    js)
      # Node resolves packages next to the test file: run a copy beside the cached node_modules.
      cp "$ROOT/tests/clients/js/a2a.test.mjs" "$CLIENTS/js/a2a.test.mjs"
      run_suite js "@a2a-js/sdk 1.x" \
        node --test --test-reporter=tap "$CLIENTS/js/a2a.test.mjs" ;;
    py-mcp)
      run_suite py-mcp "mcp (Python SDK)" \
        "$CLIENTS/py-mcp/bin/python" -m pytest -p no:cacheprovider -q "$ROOT/tests/clients/python/test_mcp.py" ;;
    js-mcp)
      cp "$ROOT/tests/clients/js-mcp/mcp.test.mjs" "$CLIENTS/js-mcp/mcp.test.mjs"
      run_suite js-mcp "@modelcontextprotocol/sdk" \
        env AGENTDISPATCH_ROOT="$ROOT" node --test --test-reporter=tap "$CLIENTS/js-mcp/mcp.test.mjs" ;;
    agui-py)
      run_suite agui-py "ag-ui-protocol" \
        "$CLIENTS/agui-py/bin/python" -m pytest -p no:cacheprovider -q "$ROOT/tests/clients/agui/test_agui.py" ;;
    agui-ws)
      run_suite agui-ws "ag-ui-protocol over /ws" \
        "$CLIENTS/agui-ws/bin/python" -m pytest -p no:cacheprovider -q "$ROOT/tests/clients/agui/test_agui_ws.py" ;;
    agui-js)
      cp "$ROOT/tests/clients/agui-js/agui.test.mjs" "$CLIENTS/agui-js/agui.test.mjs"
      run_suite agui-js "@ag-ui/client HttpAgent" \
        node --test --test-reporter=tap "$CLIENTS/agui-js/agui.test.mjs" ;;
  esac
done

echo "== SDK client suites (A2A, MCP, AG-UI)"
printf '%s\n' "${SUMMARY[@]}"
# A suite that failed before counting anything (a worker that never started) still fails.
[[ $FAILED == 0 || $FAILURES -gt 0 ]] || FAILURES=1
echo "sdk-clients: $PASSED passed, $FAILURES failed"
exit $FAILED
