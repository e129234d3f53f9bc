#!/usr/bin/env bash
# Fuzzes every parser of outside input with cargo-fuzz (libFuzzer), SECONDS per target
# (default 60), then exits non-zero if any target crashed. See docs/fuzzing.md.
#
#   scripts/fuzz.sh [SECONDS]
#
# Each target starts from its committed seeds (fuzz/seeds/<target>/) plus whatever earlier runs
# left in fuzz/corpus/<target>/ (gitignored; new inputs go there). A crashing input is written
# to fuzz/artifacts/<target>/ and the script names it; reproduce it with
#   cargo +nightly fuzz run <target> <file>
# Installs cargo-fuzz if it is missing. Needs a nightly toolchain (FUZZ_TOOLCHAIN, default
# `nightly`).
set -euo pipefail

SECONDS_PER_TARGET=${1:-60}
if [[ ! $SECONDS_PER_TARGET =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS]   (seconds per target, a positive whole number)" >&2
  exit 2
fi
TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUZZ="$ROOT/fuzz"
cd "$ROOT"

# target:dictionary
TARGETS=(
  fuzz_payload:json
  fuzz_protocol_line:json
  fuzz_command:command
  fuzz_line_decoder:lines
  fuzz_manifest:json
  fuzz_a2a_ids:json
)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

echo "== building the fuzz targets (toolchain $TOOLCHAIN)"
cargo "+$TOOLCHAIN" fuzz build

failed=()
for entry in "${TARGETS[@]}"; do
  target=${entry%%:*}
  dict=${entry#*:}
  mkdir -p "$FUZZ/corpus/$target"
  echo
  echo "== $target: ${SECONDS_PER_TARGET}s"
  if ! cargo "+$TOOLCHAIN" fuzz run "$target" \
    "$FUZZ/corpus/$target" "$FUZZ/seeds/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" \
    -dict="$FUZZ/dict/$dict.dict" \
    -timeout=10 \
    -rss_limit_mb=2048 \
    -print_final_stats=1; then
    failed+=("$target")
  fi
done

echo
if ((${#failed[@]})); then
  echo "fuzz: crash in ${failed[*]}; inputs in fuzz/artifacts/<target>/" >&2
  echo "fuzz: $((${#TARGETS[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
  exit 1
fi
echo "fuzz: ${#TARGETS[@]} targets, ${SECONDS_PER_TARGET}s each, no crash"
# The plain closing line CI reads: one per target.
echo "fuzz: ${#TARGETS[@]} passed, 0 failed"
