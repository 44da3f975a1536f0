#!/usr/bin/env bash
# Installs what the tests need (pinned, into .venv) and runs the test suite. Arguments go to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/bootstrap.sh" test
cd "$ROOT"
exec "${EDGE_SER_VENV:-$ROOT/.venv}/bin/python" -m pytest "$@"
