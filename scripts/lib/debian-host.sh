# shellcheck shell=bash
# Shared by the scripts that build on this Debian machine without Docker (scripts/test-arm64.sh,
# scripts/test-image.sh): sourced, not run. The sourcing script sets TAG (its name after "test-"),
# SUITE (a Debian release) and defines cannot_run_reason (why the machine cannot run it, or nothing).

step() { printf '\n== %s: %s\n' "$TAG" "$*"; }
say() { printf 'test-%s: %s\n' "$TAG" "$*"; }
die() {
  printf 'test-%s: FAIL: %s\n' "$TAG" "$*" >&2
  exit 1
}

# "URI SUITE" of every configured Debian source for SUITE and its -updates/-security.
source_lines() {
  # shellcheck disable=SC2016 # apt's own $(FIELD) placeholders
  apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Identifier: Packages' 2>/dev/null |
    awk -v s="$1" '$3 == "main" && ($2 == s || $2 == s "-updates" || $2 == s "-security") { print $1, $2 }' | sort -u
}

# A deb822 sources file for apt/mmdebstrap: the host's SUITE sources, or (with a second argument)
# OTHER from the URI of the host's SUITE source.
write_sources() {
  local out=$1 other=${2:-} uri suite
  : >"$out"
  while read -r uri suite; do
    if [[ -n $other ]]; then
      [[ $suite == "$SUITE" ]] || continue
      suite=$other
    fi
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n' \
      "$uri" "$suite" >>"$out"
  done < <(source_lines "$SUITE")
}

sha256() { sha256sum | cut -d' ' -f1; }

# apt-get installs the Debian packages named, if any, saying which.
install_missing() {
  (($#)) || return 0
  say "installing $*"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# The script's arguments: `--can-run` says whether this machine can run it (exit 0) or why not
# (exit 1); anything else is a usage error; none returns, dying first when the machine cannot.
can_run_or_exit() {
  local name=$1 reason
  shift
  if [[ ${1:-} == --can-run ]]; then
    reason=$(cannot_run_reason)
    if [[ -n $reason ]]; then
      echo "$reason"
      exit 1
    fi
    echo "this machine can run scripts/$name"
    exit 0
  elif [[ $# -gt 0 ]]; then
    echo "usage: scripts/$name [--can-run]" >&2
    exit 2
  fi
  reason=$(cannot_run_reason)
  [[ -z $reason ]] || die "cannot run here: $reason"
}
