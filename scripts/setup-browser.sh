#!/usr/bin/env bash
# Install Debian's Chromium and its WebDriver for the playground's headless-browser test
# (tests/dev/playground.rs): `apt-get install chromium chromium-driver`, skipped when both are
# there already (a second run takes no time). Needs root (or sudo) and Debian's package
# archive; nothing is downloaded from anywhere else.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  echo "browser: up to date ($(/usr/bin/chromium --version 2>/dev/null | head -1))"
  exit 0
fi
SUDO=()
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup-browser: needs root or sudo for apt-get" >&2; exit 1; }
  SUDO=(sudo)
fi
started=$SECONDS
echo "browser: installing chromium and chromium-driver with apt-get"
"${SUDO[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
echo "browser: ready in $((SECONDS - started)) s"
