#!/usr/bin/env bash
# Make sure a headless Chromium is available for the audit report's browser test (Debian's
# "chromium" package). Installs it with apt-get when missing and we may (root, or sudo without a
# password); otherwise says what to do. Prints the browser's path.
set -euo pipefail
for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; exit 0; fi
done
if [ "$(id -u)" = "0" ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "chromium is missing: install it (Debian/Ubuntu: apt-get install -y chromium)" >&2
  exit 1
fi
echo "installing chromium (Debian package) for the audit report's browser test" >&2
$SUDO apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >&2
command -v chromium
