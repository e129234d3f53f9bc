#!/usr/bin/env bash
# The project's Dockerfile built for real without Docker (issue 23), linux/amd64:
#   1. stand-in base images under the names the Dockerfile's FROM lines use (the defaults of its
#      RUST_IMAGE and PYTHON_IMAGE arguments): Debian bookworm root filesystems (mmdebstrap) with
#      this machine's rustup toolchain and CPython 3.12 copied in, imported into podman's storage;
#      made once, remade only when their recipe changes;
#   2. `buildah bud --isolation chroot` of the Dockerfile as it is;
#   3. the image run with podman: the worker is PID 1 and uid 1000, /ping, an echo task, a
#      LangGraph task forked from its warm parent, a clean stop;
#   4. docs/packaging.md's own-agent recipe (its dockerfile block, read from the document) built
#      FROM that image with an own LangGraph agent folder, run: the user's agent must answer.
#
#   scripts/test-image.sh            # everything; exit 0 when every check passed
#   scripts/test-image.sh --can-run  # says whether this machine can run it (exit 0) or why not
#
# Needs root, Debian's apt (buildah, podman, runc and mmdebstrap are installed when missing), the
# crate registry and PyPI. Cached: the stand-in bases and buildah's layers in container storage,
# cargo's registry and target dir (buildah cache mounts) under
# ${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker/image. The containers and the recipe's
# image are removed at exit; the built image stays as the next run's layer cache.
set -euo pipefail
# The whole script is one block, read before it runs: editing the file during a run is safe.
{
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker/image
SUITE=bookworm   # the Debian release of both official bases (…-slim-bookworm)
IMAGE=localhost/agentdispatch-worker:image-test
OWN_IMAGE=localhost/agentdispatch-worker-own-agent:image-test
# What each stand-in is made of, beside the toolchain copied in. The official rust image's slim
# variant carries gcc and libc6-dev for linking; the python one the shared libraries CPython's
# modules link (ssl, sqlite3, ctypes, lzma, bz2, readline, uuid, dbm).
RUST_PACKAGES=ca-certificates,gcc,libc6-dev
PYTHON_PACKAGES=ca-certificates,netbase,tzdata,libssl3,libsqlite3-0,libffi8,libbz2-1.0,liblzma5,libreadline8,libncursesw6,zlib1g,libuuid1,libgdbm6,libexpat1
# Bump when the way a stand-in is made changes (its image is then made again).
RUST_RECIPE=1
PYTHON_RECIPE=2

cd "$ROOT"
TAG=image
# step, say, die, source_lines, write_sources, sha256, install_missing, can_run_or_exit
# shellcheck source=scripts/lib/debian-host.sh
source scripts/lib/debian-host.sh
# The host's rustup toolchain matching the Dockerfile's RUST_IMAGE tag, and its CPython 3.12.
rust_version() { sed -n 's/^ARG RUST_IMAGE=rust:\([0-9.]*\)-.*/\1/p' Dockerfile; }
host_toolchain() {
  local v
  v=$(rust_version)
  [[ -n $v ]] || return 1
  rustup run "$v" rustc --print sysroot 2>/dev/null
}
host_python() {
  local py
  py=$(scripts/find-python.sh 3.12 2>/dev/null) || return 1
  "$py" -c 'import sys; print(sys.base_prefix)'
}

cannot_run_reason() {
  [[ $(uname -s) == Linux ]] || { echo "not Linux"; return; }
  [[ $(uname -m) == x86_64 ]] || { echo "host is $(uname -m), not x86_64 (the stand-ins copy x86_64 toolchains)"; return; }
  [[ $(id -u) -eq 0 ]] || { echo "needs root (rootful buildah/podman, mmdebstrap, apt-get install)"; return; }
  command -v apt-get >/dev/null 2>&1 || { echo "needs Debian's apt-get"; return; }
  [[ -n $(source_lines "$SUITE") ]] || { echo "apt has no Debian $SUITE source configured"; return; }
  command -v rustup >/dev/null 2>&1 || { echo "needs rustup (its toolchain goes into the rust stand-in)"; return; }
  host_toolchain >/dev/null || { echo "rustup has no toolchain $(rust_version) (the Dockerfile's RUST_IMAGE)"; return; }
  host_python >/dev/null || { echo "no CPython 3.12 on this machine (scripts/find-python.sh 3.12)"; return; }
  command -v curl >/dev/null 2>&1 || { echo "needs curl"; return; }
  command -v python3 >/dev/null 2>&1 || { echo "needs python3 (to read JSON)"; return; }
  true
}

can_run_or_exit test-image.sh "$@"
started=$SECONDS
mkdir -p "$CACHE/tmp"

step "host tools"
missing=()
for tool in buildah podman runc mmdebstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)
install_missing "${missing[@]}"
say "$(buildah --version); $(podman --version)"
# podman's defaults fail here: crun cannot set RLIMIT_NOFILE, nor use hybrid cgroups. What works
# (IMAGE-NOTES): no default ulimits, runc, cgroupfs.
printf '[containers]\ndefault_ulimits = []\n' >"$CACHE/containers.conf"
export CONTAINERS_CONF=$CACHE/containers.conf
# buildah keeps its RUN cache mounts (cargo's registry and target dir) under TMPDIR.
export TMPDIR=$CACHE/tmp
podman_() { podman --runtime runc --cgroup-manager cgroupfs "$@"; }

# Debian sources for mmdebstrap: the host's SUITE sources.
sources=$CACHE/$SUITE.sources
write_sources "$sources"

# The label a stand-in carries: what it was made from; a different one remakes it.
standin_label() { podman image inspect --format '{{index .Labels "agentdispatch.standin"}}' "$1" 2>/dev/null || true; }

# make_standin NAME STAMP PACKAGES FILL ENV…: a bookworm minbase root filesystem with PACKAGES,
# FILL ROOTFS run on it, imported as NAME (docker.io/library/…) with ENV lines.
make_standin() {
  local name=$1 stamp=$2 packages=$3 fill=$4 rootfs=$CACHE/rootfs
  shift 4
  if [[ $(standin_label "$name") == "$stamp" ]]; then
    say "$name: cached"
    return
  fi
  say "$name: making it (Debian $SUITE minbase + $packages)"
  rm -rf "$rootfs"
  mmdebstrap --quiet --variant=minbase --include="$packages" "$SUITE" "$rootfs" "$sources"
  # The machine's CA bundle: cargo and pip reach the registries through it, as on the host.
  cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
  "$fill" "$rootfs"
  local changes=(--change "LABEL agentdispatch.standin=$stamp")
  local e
  for e in "$@"; do changes+=(--change "ENV $e"); done
  tar -C "$rootfs" -c . | podman import --quiet "${changes[@]}" --message "agentdispatch stand-in" - "$name" >/dev/null
  rm -rf "$rootfs"
  say "$name: $(podman image inspect --format '{{.Size}}' "$name" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
}

# The official rust image's layout: rustup in /usr/local/cargo/bin, the toolchain named by its
# version in /usr/local/rustup, without its documentation.
# shellcheck disable=SC2317 # called indirectly (by make_standin, by the EXIT trap)
fill_rust() {
  local r=$1 sysroot version
  sysroot=$(host_toolchain)
  version=$(rust_version)
  mkdir -p "$r/usr/local/cargo/bin" "$r/usr/local/rustup/toolchains/$version-x86_64-unknown-linux-gnu"
  tar -C "$sysroot" --exclude=./share/doc -c . | tar -C "$r/usr/local/rustup/toolchains/$version-x86_64-unknown-linux-gnu" -x
  cp "$(command -v rustup)" "$r/usr/local/cargo/bin/rustup"
  local t
  for t in cargo rustc rustdoc rust-gdb rust-lldb cargo-clippy clippy-driver cargo-fmt rustfmt; do
    ln -s rustup "$r/usr/local/cargo/bin/$t"
  done
  printf 'version = "12"\ndefault_toolchain = "%s-x86_64-unknown-linux-gnu"\nprofile = "minimal"\n' \
    "$version" >"$r/usr/local/rustup/settings.toml"
}

# The official python image's layout: CPython in /usr/local with pip.
# shellcheck disable=SC2317 # called indirectly (by make_standin, by the EXIT trap)
fill_python() {
  local r=$1 prefix
  prefix=$(host_python)
  # Without the test suite, the static library, and what this machine installed beside pip.
  tar -C "$prefix" --exclude=./lib/python3.12/test --exclude=./lib/python3.12/site-packages --exclude='*.a' \
    --exclude=./share --exclude=./include --exclude='./bin/pip*' -c . | tar -C "$r/usr/local" -x
  [[ -e $r/usr/local/bin/python ]] || ln -s python3 "$r/usr/local/bin/python"
  chroot "$r" /sbin/ldconfig
  chroot "$r" /usr/bin/env PIP_ROOT_USER_ACTION=ignore /usr/local/bin/python3 -m ensurepip --default-pip >/dev/null
  # pip and uv reach PyPI through this machine's CA bundle, as on the host (its /etc/pip.conf and
  # SSL_CERT_FILE); files rather than ENV, so that the built image's environment stays the
  # Dockerfile's own.
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$r/etc/pip.conf"
  mkdir -p "$r/etc/uv"
  printf 'native-tls = true\n' >"$r/etc/uv/uv.toml"
  chroot "$r" /usr/local/bin/python3 -c 'import ssl, sqlite3, ctypes, lzma, bz2, venv, ensurepip' ||
    die "the python stand-in's CPython misses a module"
}

step "stand-in base images (the Dockerfile's FROM names)"
rust_image=$(sed -n 's/^ARG RUST_IMAGE=//p' Dockerfile)
python_image=$(sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile)
[[ -n $rust_image && -n $python_image ]] || die "no ARG RUST_IMAGE=… / ARG PYTHON_IMAGE=… in the Dockerfile"
rust_stamp=$(echo "$RUST_RECIPE $SUITE $RUST_PACKAGES $("$(host_toolchain)/bin/rustc" --version)" | sha256)
python_stamp=$(echo "$PYTHON_RECIPE $SUITE $PYTHON_PACKAGES $("$(host_python)/bin/python3" --version)" | sha256)
make_standin "docker.io/library/$rust_image" "$rust_stamp" "$RUST_PACKAGES" fill_rust \
  "PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  "RUSTUP_HOME=/usr/local/rustup" "CARGO_HOME=/usr/local/cargo" "RUST_VERSION=$(rust_version)"
make_standin "docker.io/library/$python_image" "$python_stamp" "$PYTHON_PACKAGES" fill_python \
  "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin" "LANG=C.UTF-8"
say "$rust_image: $(podman_ run --rm --network host "docker.io/library/$rust_image" rustc --version)"
say "$python_image: $(podman_ run --rm --network host "docker.io/library/$python_image" python --version)"

containers=()
# shellcheck disable=SC2317 # called indirectly (by make_standin, by the EXIT trap)
cleanup() {
  local c
  for c in "${containers[@]}"; do podman_ rm -f "$c" >/dev/null 2>&1 || true; done
  podman rmi -f "$OWN_IMAGE" >/dev/null 2>&1 || true
  rm -rf "$CACHE/tmp/own-agent"
}
trap cleanup EXIT

step "buildah bud --isolation chroot of the Dockerfile as it is (linux/amd64)"
build_started=$SECONDS
# --layers: the next run reuses every step whose inputs did not change (the venv step, unless
# frameworks/ changed); --pull-never: the FROM images are the stand-ins, never a registry's.
# --force-rm: a failed step leaves no working container behind. The log shows each step (cut to
# a line), cargo's summary and each venv; the whole of it is in build.log.
set +o pipefail
buildah bud --isolation chroot --layers --force-rm --pull-never --platform linux/amd64 -f Dockerfile -t "$IMAGE" . 2>&1 |
  tee "$CACHE/build.log" | grep --line-buffered -E '^\[[0-9]/[0-9]\] (STEP|COMMIT)|Finished|[a-z-]+: ready in|^Error|FAIL' | cut -c1-150
built=${PIPESTATUS[0]}
set -o pipefail
((built == 0)) || { tail -20 "$CACHE/build.log"; die "buildah bud failed (the log: $CACHE/build.log)"; }
# .ci/run's budget reads this: the caches are made, so a run takes the cached time.
date -u +%FT%TZ >"$CACHE/built"
say "built $IMAGE in $((SECONDS - build_started)) s, $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
# Images of earlier builds that no tag or layer cache refers to any more.
podman image prune -f >/dev/null

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# json EXPR: evaluates EXPR with `j` the JSON document on stdin.
json() { python3 -c 'import json, sys; j = json.load(sys.stdin); v = eval(sys.argv[1]); print(v if isinstance(v, str) else json.dumps(v))' "$1"; }

# start NAME IMAGE ENV…: runs IMAGE detached on the host's network (the worker on a free port),
# waits for /ping; sets $base.
start() {
  local name=$1 image=$2 port envs=() e
  shift 2
  for e in "$@"; do envs+=(-e "$e"); done
  port=$(free_port)
  containers+=("$name")
  podman_ rm -f "$name" >/dev/null 2>&1 || true
  podman_ run -d --name "$name" --network host -e "PORT=$port" "${envs[@]}" "$image" >/dev/null ||
    die "podman run $image failed"
  base=http://127.0.0.1:$port
  local deadline=$((SECONDS + 60))
  until ping=$(curl -fsS --max-time 2 "$base/ping" 2>/dev/null); do
    [[ $(podman_ inspect -f '{{.State.Running}}' "$name") == true ]] || fail "$name" "the container stopped before /ping answered"
    ((SECONDS < deadline)) || fail "$name" "no answer on /ping within 60 s"
    sleep 0.5
  done
}
fail() {
  say "$1: the container's log (last 30 lines):"
  podman_ logs --tail 30 "$1" >&2 2>&1 || true
  die "$1: $2"
}
# invoke CONTAINER PAYLOAD: the synchronous answer of POST /invocations.
invoke() { curl -fsS --max-time 120 -H 'Content-Type: application/json' -d "$2" "$base/invocations" || fail "$1" "POST /invocations $2 failed"; }

step "the image run with podman"
c=agentdispatch-image-test
# langgraph's warm parent starts with the worker, so that its first task can be forked from it.
start "$c" "$IMAGE" AGENTDISPATCH_WARM=langgraph
status=$(json 'j["status"]' <<<"$ping")
[[ $status == Healthy ]] || fail "$c" "/ping says '$status', expected Healthy: $ping"
say "ok /ping: $ping"
pid=$(podman_ inspect -f '{{.State.Pid}}' "$c")
cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")
nspid=$(awk '/^NSpid:/ { print $NF }' "/proc/$pid/status")
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
[[ $cmdline == "/usr/local/bin/agentdispatch-worker serve " && $nspid == 1 && $uid == 1000 ]] ||
  fail "$c" "PID 1 should be the worker as uid 1000: pid $nspid in the container, uid $uid, command '$cmdline'"
say "ok PID 1 is '${cmdline% }', uid $uid"
answer=$(invoke "$c" '{"input":{"instruction":"hi"}}')
[[ $(json 'j["output"]' <<<"$answer") == "Accepted instruction: hi" ]] || fail "$c" "echo task: $answer"
say "ok echo task: Accepted instruction: hi"
deadline=$((SECONDS + 120))
until podman_ logs "$c" 2>/dev/null | grep '"warm parent ready"' | grep -q '"framework":"langgraph"'; do
  ((SECONDS < deadline)) || fail "$c" "langgraph's warm parent not ready within 120 s"
  sleep 0.5
done
answer=$(invoke "$c" '{"framework":"langgraph","input":{"instruction":"hello world"}}')
output=$(json 'j["output"]' <<<"$answer")
parent=$(json '[e["payload"].get("parentPid") for e in j["events"] if e["type"] == "task.log" and e["payload"].get("warm") is True]' <<<"$answer")
[[ $output == "Shouted: HELLO WORLD" ]] || fail "$c" "langgraph task: $answer"
[[ $parent =~ ^\[[0-9]+\]$ ]] || fail "$c" "the langgraph task was not forked from its warm parent: $answer"
say "ok langgraph task, forked from warm parent $parent: $output"
podman_ stop -t 20 "$c" >/dev/null
code=$(podman_ inspect -f '{{.State.ExitCode}}' "$c")
[[ $code == 0 ]] || fail "$c" "the worker exited $code after SIGTERM, expected 0"
say "ok SIGTERM: the worker exited 0"

step "docs/packaging.md's own-agent recipe, built FROM the image"
# The document's dockerfile block, as written, with its two placeholders filled: the image (an
# ECR URI there) and the extra package (`my-package` there; the agent below uses it).
recipe=$(awk '/^## Adding your own agent to the image/ { s = 1 } s && /^```dockerfile/ { b = 1; next } b && /^```/ { exit } b' docs/packaging.md)
[[ $recipe == FROM\ * ]] || die "docs/packaging.md: no dockerfile block starting with FROM under '## Adding your own agent to the image'"
[[ $(grep -c -- 'my-package' <<<"$recipe") == 1 ]] || die "docs/packaging.md: the recipe should install 'my-package' once"
own=$CACHE/tmp/own-agent
rm -rf "$own"
mkdir -p "$own/my_agent"
{
  echo "FROM $IMAGE"
  sed -e 1d -e 's/my-package/humanize==4.12.3/' <<<"$recipe"
} >"$own/Dockerfile"
: >"$own/my_agent/__init__.py"
cat >"$own/my_agent/graph.py" <<'PY'
"""A user's own LangGraph agent: adds two numbers, with a package of its own."""

import humanize
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph


def add(state: MessagesState):
    words = state["messages"][-1].content.split()
    total = sum(int(w) for w in words[1:])
    return {"messages": [AIMessage(content=f"my_agent: {humanize.intcomma(total)}")]}


builder = StateGraph(MessagesState)
builder.add_node("add", add)
builder.add_edge(START, "add")
agent = builder.compile()
PY
sed 's/^/  | /' "$own/Dockerfile"
buildah bud --isolation chroot --no-cache --force-rm --pull-never -t "$OWN_IMAGE" "$own" >"$CACHE/own-build.log" 2>&1 ||
  { tail -20 "$CACHE/own-build.log"; die "the recipe's build failed (the log: $CACHE/own-build.log)"; }
c=agentdispatch-image-test-own
start "$c" "$OWN_IMAGE"
answer=$(invoke "$c" '{"input":{"instruction":"add 2000 40"}}')
output=$(json 'j.get("output")' <<<"$answer")
if [[ $output != "my_agent: 2,040" ]]; then
  hint=""
  [[ $output != Shouted:* ]] ||
    hint=" (that is the shipped example agent's answer: the recipe's ENV did not win over frameworks/langgraph/framework.json's env)"
  fail "$c" "the own agent should answer 'my_agent: 2,040' to 'add 2000 40', got '$output'$hint: $answer"
fi
say "ok the user's agent answers: $output"
podman_ stop -t 20 "$c" >/dev/null

step "summary"
say "$((SECONDS - started)) s; the Dockerfile builds unchanged on the stand-ins, the image and the documented own-agent recipe serve"
exit
}
