#!/usr/bin/env bash
# Installs what the tests need (pinned, into .venv; Debian packages when root) and runs the test suite.
# Arguments go to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/bootstrap.sh" test
"$ROOT/scripts/system-packages.sh"  # PortAudio, PulseAudio, Chromium for the real-device tests (skip if absent)
cd "$ROOT"
exec "${EDGE_SER_VENV:-$ROOT/.venv}/bin/python" -m pytest "$@"
