#!/usr/bin/env bash
# Installs what the tests need (pinned, into .venv; Debian packages when root), checks lint and format with
# the pinned ruff, and runs the test suite. Arguments go to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${EDGE_SER_VENV:-$ROOT/.venv}
# a relative EDGE_SER_VENV is where the command was run from, as bootstrap.sh takes it (not the repo, after the cd)
case $VENV in /*) ;; *) VENV=$PWD/$VENV ;; esac
export EDGE_SER_VENV=$VENV
"$ROOT/scripts/bootstrap.sh" test
"$ROOT/scripts/system-packages.sh"  # PortAudio, PulseAudio, Chromium for the real-device tests (skip if absent)
cd "$ROOT"
# lint (pycodestyle, pyflakes, import order, bugbear, pyupgrade, complexity) and format, with the pinned ruff
"$VENV/bin/ruff" check --quiet . || { echo "run-tests: ruff check found problems (ruff check --fix . mends many)" >&2; exit 1; }
"$VENV/bin/ruff" format --check --quiet . || { echo "run-tests: files need formatting: ruff format ." >&2; exit 1; }
exec "$VENV/bin/python" -m pytest "$@"
