#!/usr/bin/env bash
# What the web tests (test/test_web.py) need besides Python: Node.js >= 20.19 with npm (Vite 8,
# vitest), and Chromium for the browser test (Debian's package: /usr/bin/chromium; Playwright's
# own browser download does not work here and is not used).
#
# Run as root, it installs what is missing with apt-get; otherwise it prints the exact command.
# Quick and quiet when everything is there. It never fails `make test` by itself: when something
# is still missing, test/test_web.py fails and says what.
#
# Usage: scripts/install_web_test_deps.sh      (CHROMIUM=/path/to/chromium to use another one)
set -uo pipefail

MIN_NODE_MAJOR=20
MIN_NODE_MINOR=19
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

say() { echo "install_web_test_deps: $*" >&2; }

node_ok() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || return 1
  local v major minor
  v=$(node --version 2>/dev/null | sed 's/^v//')
  major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
  [ "${major:-0}" -gt $MIN_NODE_MAJOR ] || { [ "${major:-0}" -eq $MIN_NODE_MAJOR ] && [ "${minor:-0}" -ge $MIN_NODE_MINOR ]; }
}

missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ -x "$CHROMIUM" ] || missing+=(chromium)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
      say "apt-get install ${missing[*]} failed; the web tests will fail until they are installed"
    fi
  else
    say "the web tests need: ${missing[*]}. Install them with:"
    say "    sudo apt-get update && sudo apt-get install -y ${missing[*]}"
  fi
fi

if command -v node >/dev/null 2>&1 && ! node_ok; then
  say "Node.js $(node --version) is older than ${MIN_NODE_MAJOR}.${MIN_NODE_MINOR}, which Vite needs" \
      "(Debian 12's nodejs is 18). Install Node.js ${MIN_NODE_MAJOR}.${MIN_NODE_MINOR} or newer" \
      "(Debian 13 or Ubuntu 25.04 nodejs, or the NodeSource packages) and run make test again."
fi
exit 0
