#!/usr/bin/env bash
# Shared set-up for scripts/run and scripts/test: a virtual environment in .venv with Accord
# and its development tools installed. Re-running it is cheap: pip only installs what changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Accord needs Python 3.11 or newer (found: $("$python" --version 2>&1))." >&2
  exit 1
fi
stamp=.venv/.accord-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  if [ -f "$stamp" ]; then
    echo "pyproject.toml changed: updating .venv." >&2
  else
    echo "First run: setting up .venv (Accord and its tools); this takes about a minute." >&2
  fi
  if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
  fi
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  touch "$stamp"
fi
