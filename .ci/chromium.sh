#!/usr/bin/env bash
# Prints the path of a Chromium for the browser tests, installing Debian's chromium package
# when it is missing and we are root. Exits 1 when there is none and it cannot be installed.
set -euo pipefail
for c in "${LUPA_TEST_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
  if [ -n "$c" ] && [ -x "$c" ]; then echo "$c"; exit 0; fi
done
if [ "$(id -u)" != 0 ]; then
  echo "Chromium is not installed: install Debian's chromium package" >&2
  exit 1
fi
echo "installing Debian's chromium package…" >&2
apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
echo /usr/bin/chromium
