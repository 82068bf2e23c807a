#!/usr/bin/env sh
# Print the path of a Python 3.13 interpreter (the Lambda runtime's version), or fail.
# Order: $PYTHON313 if set, python3.13 on PATH, then a pyenv-installed 3.13.x.
set -eu
is313() { "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 13) else 1)' >/dev/null 2>&1; }
if [ -n "${PYTHON313:-}" ] && is313 "$PYTHON313"; then echo "$PYTHON313"; exit 0; fi
if command -v python3.13 >/dev/null 2>&1 && is313 python3.13; then command -v python3.13; exit 0; fi
if command -v pyenv >/dev/null 2>&1; then
  v=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.13(\.[0-9]+)?$' | sort -V | tail -n 1 || true)
  if [ -n "$v" ]; then
    p=$(PYENV_VERSION="$v" pyenv which python3.13 2>/dev/null || true)
    if [ -n "$p" ] && is313 "$p"; then echo "$p"; exit 0; fi
  fi
fi
for p in "$HOME"/.pyenv/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13; do
  if [ -x "$p" ] && is313 "$p"; then echo "$p"; exit 0; fi
done
echo "error: Python 3.13 not found (the Lambda runtime is python3.13). Install it (e.g. 'pyenv install 3.13') or set PYTHON313=/path/to/python3.13" >&2
exit 1
