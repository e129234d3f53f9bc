#!/usr/bin/env bash
# Check docs/agentcore.md and scripts/agentcore-deploy.sh against the AWS CLI's own service
# models, with no AWS account (what that proves and what not: docs/agentcore.md, "How this page
# is tested"):
#
#   scripts/test-aws.sh [pytest arguments…]
#
# The AWS CLI (tests/aws/requirements.txt, pinned) comes from PyPI into
# ${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker/clients/aws/ (scripts/setup-clients.sh aws:
# a second run installs nothing). The tests start the worker (AGENTDISPATCH_TEST_WORKER, else
# target/debug/agentdispatch-worker, built when missing) with the langgraph framework
# (scripts/setup-frameworks.sh langgraph, run here; cached too).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${XDG_CACHE_HOME:-$HOME/.cache}/agentdispatch-worker/clients/aws

die() { echo "test-aws: $*" >&2; exit 1; }

"$ROOT/scripts/setup-clients.sh" aws || die "scripts/setup-clients.sh aws failed"
"$ROOT/scripts/setup-frameworks.sh" langgraph >/dev/null || die "scripts/setup-frameworks.sh langgraph failed"
if [[ -z ${AGENTDISPATCH_TEST_WORKER:-} && ! -x $ROOT/target/debug/agentdispatch-worker ]]; then
  (cd "$ROOT" && cargo build --locked) || die "cargo build failed"
fi

cd "$ROOT"
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/aws "$@"
