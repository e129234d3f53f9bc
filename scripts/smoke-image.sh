#!/usr/bin/env bash
# Smoke-test a built worker image with a local Docker engine.
#
#   scripts/smoke-image.sh IMAGE
#
# Starts IMAGE on a free loopback port, waits for GET /ping, posts an echo task and a langgraph
# framework task, checks both answers, then stops the container (SIGTERM to the worker, which is
# PID 1) and checks that it exited 0. Environment: PLATFORM (e.g. linux/arm64) is passed to
# `docker run --platform` when set; SMOKE_TIMEOUT_SECONDS (default 60) bounds the wait for /ping.
set -euo pipefail

say() { printf 'smoke-image: %s\n' "$*" >&2; }
die() {
  printf 'smoke-image: FAIL: %s\n' "$*" >&2
  exit 1
}

[[ $# -eq 1 && -n "$1" ]] || die "usage: scripts/smoke-image.sh IMAGE"
image="$1"
timeout_s="${SMOKE_TIMEOUT_SECONDS:-60}"
command -v docker >/dev/null 2>&1 || die "'docker' is not on PATH"
command -v curl >/dev/null 2>&1 || die "'curl' is not on PATH"
if ! command -v jq >/dev/null 2>&1 && ! command -v python3 >/dev/null 2>&1; then
  die "neither jq nor python3 is on PATH (one is needed to read JSON)"
fi

container=""
cleanup() {
  if [[ -n "$container" ]]; then
    docker rm -f "$container" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

fail_with_logs() {
  if [[ -n "$container" ]]; then
    say "container logs (last 40 lines):"
    docker logs --tail 40 "$container" >&2 2>&1 || true
  fi
  die "$*"
}

# json_field FIELD: print the top-level FIELD of the JSON object on stdin ("" when absent).
json_field() {
  if command -v jq >/dev/null 2>&1; then
    jq -r --arg f "$1" '.[$f] | if . == null then "" else tostring end'
  else
    python3 -c 'import json, sys
v = json.load(sys.stdin).get(sys.argv[1])
print("" if v is None else (json.dumps(v) if isinstance(v, (dict, list)) else str(v).lower() if isinstance(v, bool) else v))' "$1"
  fi
}

run_args=(-d -p "127.0.0.1::8080")
if [[ -n "${PLATFORM:-}" ]]; then
  run_args+=(--platform "$PLATFORM")
fi
say "starting $image"
container="$(docker run "${run_args[@]}" "$image")" || die "docker run $image failed"
port="$(docker port "$container" 8080/tcp | head -n 1)"
port="${port##*:}"
[[ "$port" =~ ^[0-9]+$ ]] || fail_with_logs "could not read the published port of the container"
base="http://127.0.0.1:${port}"

say "waiting for $base/ping (up to ${timeout_s}s)"
deadline=$((SECONDS + timeout_s))
until ping="$(curl -fsS --max-time 2 "$base/ping" 2>/dev/null)"; do
  if [[ "$(docker inspect -f '{{.State.Running}}' "$container" 2>/dev/null)" != "true" ]]; then
    fail_with_logs "the container stopped before answering /ping"
  fi
  ((SECONDS < deadline)) || fail_with_logs "no answer on /ping after ${timeout_s}s"
  sleep 1
done
status="$(json_field status <<<"$ping")"
[[ "$status" == "Healthy" ]] || fail_with_logs "/ping status is '$status', expected Healthy: $ping"
say "ok /ping: $ping"

# invoke NAME PAYLOAD EXPECTED_OUTPUT
invoke() {
  local answer ok output
  answer="$(curl -fsS --max-time 120 -H 'Content-Type: application/json' \
    -d "$2" "$base/invocations")" || fail_with_logs "$1 task: POST /invocations failed"
  ok="$(json_field ok <<<"$answer")"
  output="$(json_field output <<<"$answer")"
  if [[ "$ok" != "true" || "$output" != "$3" ]]; then
    fail_with_logs "$1 task: expected ok=true and output '$3', got: $answer"
  fi
  say "ok $1 task: $output"
}

invoke echo '{"input":{"instruction":"hi"}}' 'Accepted instruction: hi'
invoke langgraph '{"framework":"langgraph","input":{"instruction":"hello world"}}' 'Shouted: HELLO WORLD'

say "stopping the container (SIGTERM to PID 1)"
docker stop -t 20 "$container" >/dev/null || fail_with_logs "docker stop failed"
code="$(docker inspect -f '{{.State.ExitCode}}' "$container")"
[[ "$code" == "0" ]] || fail_with_logs "the worker exited with code $code after SIGTERM, expected 0"
say "PASS $image"
