#!/usr/bin/env bash
# Profiles the release worker on one workload, for the reading in bench/README.md.
#
#   bench/profile.sh [cpu|mem|syscalls] [lines|flood|sse|roundtrip]
#
#   cpu       perf record (sampling at 999 Hz) while the workload runs; prints the hottest
#             symbols (self time). Needs perf.
#   mem       valgrind massif over the whole run; prints the peak snapshot's allocation tree.
#   syscalls  strace -c -f over the workload; prints the syscall counts.
#
#   lines      command.run `seq 1 $LINES` (default 2000000), JSON answer
#   flood      command.run of $FLOOD_BYTES (default 200000000) of 100-byte lines, JSON answer
#   sse        command.run `seq 1 $LINES` as an SSE stream (Accept: text/event-stream)
#   roundtrip  100 sequential command.run `true`
#
# Builds the release binary first (cargo build --release). The worker runs on a free loopback
# port with a temporary artifact directory; its output files (perf.data, massif.out,
# strace.txt) are kept in $OUT (default: a new temporary directory, printed at the end).
set -euo pipefail

mode=${1:-cpu}
workload=${2:-lines}
lines=${LINES:-2000000}
flood_bytes=${FLOOD_BYTES:-200000000}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"

cargo build --release --manifest-path "$root/Cargo.toml" --quiet
bin="$root/target/release/agentdispatch-worker"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
artifacts=$(mktemp -d)
url="http://127.0.0.1:$port"

worker_env=(
  "PORT=$port"
  "AGENTDISPATCH_HOST=127.0.0.1"
  "AGENTDISPATCH_COMMAND_ALLOWLIST=*"
  "AGENTDISPATCH_ARTIFACT_DIR=$artifacts"
  "AGENTDISPATCH_FRAMEWORKS_DIR=/nonexistent"
)

case "$mode" in
  mem)
    env "${worker_env[@]}" valgrind --tool=massif --massif-out-file="$out/massif.out" \
      --depth=6 --threshold=2 "$bin" >/dev/null 2>"$out/valgrind.log" &
    ;;
  cpu | syscalls)
    env "${worker_env[@]}" "$bin" >/dev/null &
    ;;
  *)
    echo "unknown mode: $mode (cpu, mem or syscalls)" >&2
    exit 2
    ;;
esac
worker=$!
stop_worker() {
  kill "$worker" 2>/dev/null || true
  wait "$worker" 2>/dev/null || true
  rm -rf "$artifacts"
}
trap stop_worker EXIT

for _ in $(seq 200); do
  curl -sf "$url/ping" >/dev/null && break
  sleep 0.1
done

invoke() {
  curl -sS "$url/invocations" -H 'content-type: application/json' "$@"
}

run_workload() {
  case "$workload" in
    lines)
      invoke -o /dev/null -d "{\"taskType\":\"command.run\",\"input\":{\"command\":\"seq 1 $lines\"}}"
      ;;
    flood)
      local line
      line=$(printf 'x%.0s' $(seq 99))
      invoke -o /dev/null -d "{\"taskType\":\"command.run\",\"input\":{\"command\":\"sh -c 'yes $line | head -c $flood_bytes'\"}}"
      ;;
    sse)
      invoke -N -H 'accept: text/event-stream' \
        -d "{\"taskType\":\"command.run\",\"input\":{\"command\":\"seq 1 $lines\"}}" |
        grep -c '^data: '
      ;;
    roundtrip)
      for _ in $(seq 100); do
        invoke -o /dev/null -d '{"taskType":"command.run","input":{"command":"true"}}'
      done
      ;;
    *)
      echo "unknown workload: $workload (lines, flood, sse or roundtrip)" >&2
      exit 2
      ;;
  esac
}

case "$mode" in
  cpu)
    perf record -F 999 -p "$worker" -o "$out/perf.data" 2>/dev/null &
    recorder=$!
    sleep 0.3
    time run_workload
    kill -INT "$recorder"
    wait "$recorder" || true
    perf report -i "$out/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
      grep -E '^ +[0-9]' | sed -E 's/ +-? +-? *$//' | head -30
    ;;
  syscalls)
    strace -c -f -p "$worker" -o "$out/strace.txt" 2>/dev/null &
    tracer=$!
    sleep 0.5
    time run_workload
    kill -INT "$tracer"
    wait "$tracer" || true
    head -40 "$out/strace.txt"
    ;;
  mem)
    time run_workload
    stop_worker
    trap - EXIT
    peak=$(ms_print "$out/massif.out" | sed -n 's/.*Detailed snapshots:.* \([0-9]*\) (peak).*/\1/p')
    ms_print "$out/massif.out" |
      awk -v p="$peak" '$1 == p && NF >= 5 { on = 1; print; next } on && /^---/ { exit } on' |
      cut -c1-220 | head -60
    ;;
esac
echo "files in $out"
