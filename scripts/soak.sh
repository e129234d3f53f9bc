#!/usr/bin/env bash
# The soak test (not part of scripts/test.sh): 10,000 mixed tasks from 8 clients against the
# release worker, then its memory, fds, threads and children checked against a baseline.
# See bench/README.md "## Soak" and bench/soak.rs.
#
#   scripts/soak.sh [--tasks N] [--clients N] [--settle SECONDS]
#
# Environment: SOAK_TASKS, SOAK_CLIENTS, SOAK_SETTLE_SECONDS (the same knobs).
# Then the minute-long 100k-lines/s flood of tests/faults.rs (5 s in scripts/test.sh).
# Exit status is non-zero when any check fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo bench --bench soak -- "$@"
AGENTDISPATCH_FLOOD_SECONDS=${AGENTDISPATCH_FLOOD_SECONDS:-60} cargo test --locked --release --test faults flood
