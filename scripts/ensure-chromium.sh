#!/usr/bin/env bash
# The browser tests drive Debian's Chromium through Playwright (no browser download).
# Install it where we can; elsewhere those tests skip and say why.
set -uo pipefail

if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser tests..."
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -q && apt-get install -y -q chromium; then
    exit 0
  fi
  echo "Could not install chromium; the browser tests will skip." >&2
else
  echo "/usr/bin/chromium is missing (install Debian's chromium as root); the browser tests will skip." >&2
fi
exit 0
