#!/usr/bin/env bash
# The main job, end to end on built-in (synthetic) data: sets up .venv, then runs `edge-ser demo`.
# Extra arguments go to `edge-ser demo` (see `edge-ser demo --help`), e.g. --data emodb.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/bootstrap.sh" main
exec "${EDGE_SER_VENV:-$ROOT/.venv}/bin/edge-ser" demo "$@"
