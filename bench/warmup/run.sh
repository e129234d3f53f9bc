#!/bin/sh
# What a warm parent's warm-up costs (docs/warm-starts.md, "Warm-up"): the LangGraph parent's own
# clock from its start to ready ("importMs" in the worker's "warm parent ready" line), in three
# set-ups alternated round by round so that a loaded machine weighs on each alike:
#   build  - an own entrypoint (a one-node graph, tests/frameworks_http/own_agent.rs's): import
#            and build, no run (the warm-up of any agent of yours)
#   plain  - the example, its manifest's prompt switched off (AGENTDISPATCH_WARMUP_PROMPT=""):
#            import and build; the floor of the next
#   prompt - the example with its manifest's prompt: import, build and 3 offline runs
# Usage: bench/warmup/run.sh [ROUNDS] (default 5); needs the langgraph venv and a built worker
# (BIN, default target/debug/agentdispatch-worker: the time measured is the Python parent's).
set -eu
cd "$(dirname "$0")/../.."
ROUNDS=${1:-5}
BIN=${BIN:-target/debug/agentdispatch-worker}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/app"
# The own agent: the graph of tests/frameworks_http/own_agent.rs, its call count in a file.
sed -n '/^pub(crate) const MY_GRAPH: &str = r#"/,/^"#;/p' tests/frameworks_http/own_agent.rs \
  | sed '1s/.*r#"//; $d' > "$work/app/my_graph.py"
ready_ms() { # set-up, then VAR=value…: the parent's importMs
  log="$work/log"
  env PORT=0 AGENTDISPATCH_ARTIFACT_DIR="$work/art" AGENTDISPATCH_FRAMEWORKS_DIR="$PWD/frameworks" \
    AGENTDISPATCH_WARM=langgraph AGENTDISPATCH_AGENT_FRAMEWORK=langgraph OWN_AGENT_CALLS="$work/calls" \
    "$@" "$BIN" serve > "$log" 2>&1 &
  pid=$!
  until grep -q '"warm parent ready"' "$log"; do
    kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  kill $pid; wait $pid 2>/dev/null || true
  grep -m1 '"warm parent ready"' "$log" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["importMs"])'
}
: > "$work/build"; : > "$work/plain"; : > "$work/prompt"
i=0
while [ $i -lt "$ROUNDS" ]; do
  ready_ms AGENTDISPATCH_APP_DIR="$work/app" AGENTDISPATCH_ENTRYPOINT=my_graph:graph >> "$work/build"
  ready_ms AGENTDISPATCH_WARMUP_PROMPT= >> "$work/plain"
  ready_ms >> "$work/prompt"
  i=$((i + 1))
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }
calls=$(cat "$work/calls" 2>/dev/null | wc -l)
echo "LangGraph warm parent, start -> ready (its importMs), median of $ROUNDS, alternated:"
echo "  own entrypoint, import + build:        $(median "$work/build") ms  (agent calls during warm-up: $calls)"
echo "  example, import + build (floor):       $(median "$work/plain") ms"
echo "  example, import + build + 3 runs:      $(median "$work/prompt") ms"
