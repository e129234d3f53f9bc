#!/usr/bin/env bash
# The soak test (not part of scripts/test.sh): 10,000 mixed tasks from 8 clients against the
# release worker, then its memory, fds, threads and children checked against a baseline.
# See bench/README.md "## Soak" and bench/soak.rs.
#
#   scripts/soak.sh [--tasks N] [--clients N] [--settle SECONDS]
#
# Environment: SOAK_TASKS, SOAK_CLIENTS, SOAK_SETTLE_SECONDS (the same knobs).
# Exit status is non-zero when any check fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec cargo bench --bench soak -- "$@"
