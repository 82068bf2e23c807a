#!/usr/bin/env bash
# Install axe-core (pinned by package-lock.json) for the audit report's accessibility test, with
# `npm ci`. Installs Debian's npm with apt-get when it is missing and we may (root, or sudo without
# a password); otherwise says what to do.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    SUDO=""
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "npm is missing: install it (Debian/Ubuntu: apt-get install -y npm)" >&2
    exit 1
  fi
  echo "installing npm (Debian package) for the audit report's accessibility test" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq npm >&2
fi
npm ci --ignore-scripts --no-audit --no-fund
