#!/usr/bin/env bash
# linux/arm64 proven on an x86_64 Debian machine without Docker (issue 14):
#   1. a bookworm build chroot (mmdebstrap) with Debian's rustc-web/cargo-web and the arm64 std;
#   2. the worker cross-compiled there, `--locked --release`, for aarch64-unknown-linux-gnu;
#   3. the ELF checked: aarch64, and no GLIBC_ version newer than the image's runtime (bookworm);
#   4. the Rust integration tests run against that binary under qemu-aarch64 10 (user mode);
#   5. the image filesystem for linux/arm64 (tests/arm64_image.rs): the arm64 worker as PID 1,
#      an arm64 CPython from Debian's packages, the default FRAMEWORKS' arm64 wheels from uv.
#
#   scripts/test-arm64.sh            # everything; exit 0 when every step passed
#   scripts/test-arm64.sh --can-run  # says whether this machine can run it (exit 0) or why not
#
# Everything downloaded or built is cached under ${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker/arm64
# (the chroot ~1.5 GB, cargo's target dir, qemu, the arm64 Python and wheels): a second run only
# rebuilds what changed. Needs root (chroot, namespaces, apt), Debian's apt with a bookworm
# source configured, and a kernel with per-user-namespace binfmt_misc (Linux 6.7 or later) for
# step 5. Emulation is slow, so tests that measure speed rather than behaviour are skipped by
# name (EMULATION_SKIPS below, each with its reason).
set -euo pipefail
# The whole script is one block, read before it runs: editing the file during a run is safe.
{
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker/arm64
TRIPLE=aarch64-unknown-linux-gnu
SUITE=bookworm            # the release of the image's base (python:3.12-slim-bookworm)
GLIBC_MAX=2.36            # bookworm's glibc: the highest GLIBC_ version the binary may need
QEMU_SUITE=trixie         # bookworm's qemu 7.2 rejects PR_SET_CHILD_SUBREAPER; trixie has 10
CHROOT_PACKAGES=rustc-web,cargo-web,libstd-rust-web-dev:arm64,gcc-aarch64-linux-gnu,libc6-dev-arm64-cross,ca-certificates,gcc,libc6-dev
# The image's runtime for the arm64 tree: CPython and a shell, from Debian's arm64 packages
# (bookworm's 3.11 stands in for the image's 3.12: the warm parents run without immortal objects).
IMAGE_PACKAGES=python3.11,libc6,libgcc-s1,dash,coreutils
PYTHON_VERSION=3.11
UV_VERSION=0.13.9

# Tests that measure emulation rather than behaviour: skipped under qemu, by name, each
# printed with its reason. Format: "test_file test_name|reason". None is needed today: every
# test waits on events with bounds that hold under qemu (measured 2026-12-01, see
# docs/packaging.md); add one here rather than loosening a test's bound for emulation.
EMULATION_SKIPS=(
)

cd "$ROOT"
TAG=arm64
# step, say, die, source_lines, write_sources, sha256, install_missing, can_run_or_exit
# shellcheck source=scripts/lib/debian-host.sh
source scripts/lib/debian-host.sh

# Why this machine cannot run the script, or nothing when it can.
cannot_run_reason() {
  [[ $(uname -s) == Linux ]] || { echo "not Linux"; return; }
  [[ $(uname -m) == x86_64 ]] || { echo "host is $(uname -m), not x86_64 (an arm64 host runs the native suite instead)"; return; }
  [[ $(id -u) -eq 0 ]] || { echo "needs root (a chroot, PID/user namespaces, apt-get install)"; return; }
  if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
    echo "needs Debian's apt-get and dpkg-deb"
    return
  fi
  [[ -n $(source_lines "$SUITE") ]] || { echo "apt has no Debian $SUITE source configured"; return; }
  command -v unshare >/dev/null 2>&1 || { echo "needs unshare (util-linux)"; return; }
  local major minor
  IFS=. read -r major minor _ <<<"$(uname -r)"
  if ((major < 6 || (major == 6 && minor < 7))); then
    echo "kernel $(uname -r) has no per-user-namespace binfmt_misc (Linux 6.7+), needed for the arm64 image tree"
    return
  fi
  grep -qw binfmt_misc /proc/filesystems ||
    { echo "the kernel has no binfmt_misc file system, needed for the arm64 image tree"; return; }
  true
}


can_run_or_exit test-arm64.sh "$@"
started=$SECONDS
mkdir -p "$CACHE"

step "host tools"
missing=()
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-venv)
[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)
install_missing "${missing[@]}"
write_sources "$CACHE/$SUITE.sources"

step "qemu-aarch64 from Debian $QEMU_SUITE"
QEMU=$CACHE/qemu/usr/bin/qemu-aarch64
if [[ ! -x $QEMU ]]; then
  apt_dir=$CACHE/apt-$QEMU_SUITE
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/deb"
  write_sources "$apt_dir/sources.sources" "$QEMU_SUITE"
  # A private apt state: the system's sources and package lists stay as they are.
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.sources" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o APT::Architectures=amd64
    -o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" update -qq
  rm -f "$apt_dir/deb/"*.deb
  (cd "$apt_dir/deb" && apt-get "${apt_opts[@]}" download qemu-user >/dev/null)
  rm -rf "$CACHE/qemu.tmp"
  # Its static binaries, without installing the package (so no binfmt registration either).
  dpkg-deb -x "$apt_dir/deb/"qemu-user_*.deb "$CACHE/qemu.tmp"
  rm -rf "$CACHE/qemu"
  mv "$CACHE/qemu.tmp" "$CACHE/qemu"
fi
qemu_version=$("$QEMU" --version | head -1)
say "$qemu_version"
if [[ ! $qemu_version =~ version\ ([0-9]+) ]] || ((BASH_REMATCH[1] < 10)); then
  die "$QEMU is not qemu 10 or later"
fi

step "build chroot (Debian $SUITE, rustc-web)"
CHROOT=$CACHE/chroot
chroot_stamp=$(echo "$SUITE $CHROOT_PACKAGES" | sha256)
if [[ ! -f $CHROOT/.agentdispatch-stamp || $(<"$CHROOT/.agentdispatch-stamp") != "$chroot_stamp" ]]; then
  say "creating $CHROOT (a few minutes, ~1.5 GB)"
  rm -rf "$CHROOT.tmp"
  mmdebstrap --quiet --variant=apt --architectures=amd64,arm64 --include="$CHROOT_PACKAGES" \
    "$SUITE" "$CHROOT.tmp" "$CACHE/$SUITE.sources"
  echo "$chroot_stamp" >"$CHROOT.tmp/.agentdispatch-stamp"
  rm -rf "$CHROOT"
  mv "$CHROOT.tmp" "$CHROOT"
fi
# cargo reaches the crate registry with the host's CA bundle (it may hold a local CA) and resolver.
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  rm -f "$CHROOT/etc/ssl/certs/ca-certificates.crt"
  cp -L /etc/ssl/certs/ca-certificates.crt "$CHROOT/etc/ssl/certs/ca-certificates.crt"
fi
rm -f "$CHROOT/etc/resolv.conf"
cp -L /etc/resolv.conf "$CHROOT/etc/resolv.conf" 2>/dev/null || true
say "$(chroot "$CHROOT" rustc --version)"

step "cross-compile the worker (--locked --release --target $TRIPLE)"
mkdir -p "$CACHE/target" "$CACHE/cargo-home" "$CHROOT/src" "$CHROOT/target" "$CHROOT/cargo"
# A private mount namespace: the bind mounts vanish with it, whatever happens.
# shellcheck disable=SC2016 # the inner script's own variables
unshare --mount --fork -- /bin/sh -eu -c '
  c=$1
  mount --bind "$2" "$c/src" && mount -o remount,bind,ro "$c/src"
  mount --bind "$3" "$c/target"
  mount --bind "$4" "$c/cargo"
  mount -t proc proc "$c/proc"
  exec chroot "$c" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root CARGO_HOME=/cargo CARGO_TARGET_DIR=/target \
    CARGO_TERM_COLOR=never \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    /bin/sh -c "cd /src && cargo build --release --locked --target $5 --bin agentdispatch-worker"
' sh "$CHROOT" "$ROOT" "$CACHE/target" "$CACHE/cargo-home" "$TRIPLE"
WORKER=$CACHE/target/$TRIPLE/release/agentdispatch-worker
[[ -x $WORKER ]] || die "no binary at $WORKER"

step "ELF checks"
# The chroot's readelf (binutils), on a copy of the binary in its /tmp.
cp "$WORKER" "$CHROOT/tmp/agentdispatch-worker"
header=$(chroot "$CHROOT" readelf -h /tmp/agentdispatch-worker)
machine=$(awk -F: '/Machine:/ { gsub(/^ +/, "", $2); print $2 }' <<<"$header")
say "machine: $machine"
[[ $machine == AArch64 ]] || die "the binary is for '$machine', not AArch64"
glibc_needs=$(chroot "$CHROOT" readelf -V --wide /tmp/agentdispatch-worker | grep -o 'GLIBC_[0-9.]*' | sort -u -V)
rm -f "$CHROOT/tmp/agentdispatch-worker"
highest=$(tail -1 <<<"$glibc_needs")
say "glibc versions needed: $(tr '\n' ' ' <<<"$glibc_needs")"
if [[ $(printf '%s\n%s\n' "${highest#GLIBC_}" "$GLIBC_MAX" | sort -V | tail -1) != "$GLIBC_MAX" ]]; then
  die "the binary needs $highest, newer than $SUITE's glibc $GLIBC_MAX (the image's runtime)"
fi
say "highest $highest <= $GLIBC_MAX ($SUITE, the image's runtime): fits"
say "size: $(du -h "$WORKER" | cut -f1)"

step "arm64 runtime tree (Debian $SUITE arm64: $IMAGE_PACKAGES)"
IMAGE_ROOT=$CACHE/image-root
image_stamp=$(echo "$SUITE $IMAGE_PACKAGES" | sha256)
if [[ ! -f $IMAGE_ROOT/.agentdispatch-stamp || $(<"$IMAGE_ROOT/.agentdispatch-stamp") != "$image_stamp" ]]; then
  rm -rf "$IMAGE_ROOT.tmp"
  # extract: the packages and their dependencies unpacked, no maintainer script run.
  mmdebstrap --quiet --variant=extract --architectures=arm64 --include="$IMAGE_PACKAGES" \
    "$SUITE" "$IMAGE_ROOT.tmp" "$CACHE/$SUITE.sources"
  echo "$image_stamp" >"$IMAGE_ROOT.tmp/.agentdispatch-stamp"
  rm -rf "$IMAGE_ROOT"
  mv "$IMAGE_ROOT.tmp" "$IMAGE_ROOT"
fi
python_says=$("$QEMU" -L "$IMAGE_ROOT" "$IMAGE_ROOT/usr/bin/python$PYTHON_VERSION" -c \
  'import platform, ssl, sqlite3, sys; print(platform.machine(), sys.version.split()[0], ssl.OPENSSL_VERSION)')
say "arm64 CPython under qemu: $python_says"

step "arm64 wheels of the default FRAMEWORKS (uv, --python-platform $TRIPLE)"
frameworks=$(sed -n 's/^ARG FRAMEWORKS="\(.*\)"$/\1/p' Dockerfile)
[[ -n $frameworks ]] || die "no ARG FRAMEWORKS=\"…\" in the Dockerfile"
UV=${UV:-}
if [[ -z $UV ]]; then
  tools=${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker/tools
  if command -v uv >/dev/null 2>&1; then
    UV=$(command -v uv)
  elif [[ -x $tools/bin/uv ]]; then
    UV=$tools/bin/uv
  else
    say "installing uv $UV_VERSION into $tools"
    [[ -x $tools/bin/python ]] || python3 -m venv "$tools"
    "$tools/bin/python" -m pip install --quiet "uv==$UV_VERSION"
    UV=$tools/bin/uv
  fi
fi
SITE=$CACHE/site-packages
mkdir -p "$SITE"
for name in $frameworks; do
  req=frameworks/$name/requirements.txt
  [[ -f $req ]] || die "$name: no $req"
  stamp=$({ cat "$req"; echo "$TRIPLE $PYTHON_VERSION compiled"; } | sha256)
  if [[ -f $SITE/$name/.agentdispatch-stamp && $(<"$SITE/$name/.agentdispatch-stamp") == "$stamp" ]]; then
    say "$name: up to date"
    continue
  fi
  rm -rf "$SITE/$name.tmp"
  # --only-binary: every pinned package must have an aarch64 wheel (the image build compiles
  # nothing). Byte-compiled like the image's venvs (bytecode depends on the Python version
  # only, so the host's 3.11 compiles it): without it, every import under qemu compiles again.
  "$UV" pip install --quiet --python-platform "$TRIPLE" --python-version "$PYTHON_VERSION" \
    --only-binary :all: --compile-bytecode --target "$SITE/$name.tmp" -r "$req"
  echo "$stamp" >"$SITE/$name.tmp/.agentdispatch-stamp"
  rm -rf "${SITE:?}/$name"
  mv "$SITE/$name.tmp" "$SITE/$name"
  say "$name: $(du -sh "$SITE/$name" | cut -f1)"
done

failures=0
summary=()
# Adds up the `test result:` lines of cargo test output (file $2) under label $1.
count_results() {
  summary+=("$1: $(awk '/^test result:/ {
      for (i = 1; i < NF; i++) { n = $i + 0; w = $(i + 1); sub(/[;,]$/, "", w); t[w] += n }
    } END { printf "%d passed, %d failed, %d skipped", t["passed"], t["failed"], t["filtered"] + t["ignored"] }' "$2")")
}

step "Rust integration tests against the arm64 worker under qemu"
worker_cmd="$QEMU -L $IMAGE_ROOT $WORKER"
[[ $worker_cmd != *[[:space:]]*[[:space:]]*[[:space:]]*[[:space:]]* ]] ||
  die "the cache path has spaces: AGENTDISPATCH_TEST_WORKER is split on whitespace"
say "AGENTDISPATCH_TEST_WORKER=$worker_cmd"
say "$("$QEMU" -L "$IMAGE_ROOT" "$WORKER" --version)" ||
  die "the arm64 worker does not start under qemu"
# Every integration test file except these two: packaging.rs lays out and runs the native
# binary itself, and arm64_image.rs is the next step.
targets=()
for f in tests/*.rs; do
  t=$(basename "$f" .rs)
  case $t in packaging | arm64_image) continue ;; esac
  targets+=(--test "$t")
done
skips=()
((${#EMULATION_SKIPS[@]})) || say "no test is skipped under emulation (EMULATION_SKIPS is empty)"
for entry in "${EMULATION_SKIPS[@]}"; do
  name=${entry%%|*}
  say "skipped under emulation: $name — ${entry#*|}"
  skips+=(--skip "${name#* }")
done
log=$CACHE/emulated-tests.log
# A bound on the whole step, so that a hung test cannot eat CI's budget (it takes ~5 min).
if AGENTDISPATCH_TEST_WORKER="$worker_cmd" timeout --kill-after=30 "${ARM64_SUITE_TIMEOUT:-1500}" \
  cargo test --locked --no-fail-fast "${targets[@]}" -- "${skips[@]}" 2>&1 | tee "$log"; then
  :
else
  failures=$((failures + 1))
fi
count_results "emulated suite (arm64 worker under qemu; skipped = by name)" "$log"
if [[ ${ARM64_COMPARE_NATIVE:-0} == 1 ]]; then
  step "the same test files against the native binary, to compare (ARM64_COMPARE_NATIVE=1)"
  native_log=$CACHE/native-tests.log
  cargo test --locked --no-fail-fast "${targets[@]}" 2>&1 | tee "$native_log" || true
  count_results "native suite (same files, nothing skipped)" "$native_log"
fi

step "the image filesystem for linux/arm64, run under qemu (tests/arm64_image.rs)"
log=$CACHE/arm64-image.log
if AGENTDISPATCH_ARM64_WORKER=$WORKER AGENTDISPATCH_ARM64_QEMU=$QEMU AGENTDISPATCH_ARM64_ROOT=$IMAGE_ROOT \
  AGENTDISPATCH_ARM64_SITE_PACKAGES=$SITE timeout --kill-after=30 "${ARM64_IMAGE_TIMEOUT:-900}" \
  cargo test --locked --test arm64_image -- --ignored --nocapture 2>&1 | tee "$log"; then
  :
else
  failures=$((failures + 1))
fi
count_results "arm64 image filesystem" "$log"

step "summary"
printf '%s\n' "${summary[@]}"
say "$((SECONDS - started)) s"
((failures == 0)) || die "$failures step(s) failed"
say "linux/arm64: binary, image filesystem and behaviour under emulation pass"
exit
}
