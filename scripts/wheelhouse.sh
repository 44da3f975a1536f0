#!/usr/bin/env bash
# Build the offline device wheelhouses: wheels in wheelhouse/<target>/ (not committed), reports in
# deploy/wheelhouse/<target>.md + .json (committed). See scripts/wheelhouse.py for one target by hand.
#   scripts/wheelhouse.sh                      # pi-bookworm pi-trixie jetpack6
#   scripts/wheelhouse.sh pi-trixie            # just one
#   scripts/wheelhouse.sh jetpack6 -- --allow-missing 'ai-edge-litert=not used on the Jetson'
# Arguments after -- go to every run. Every target is tried; the exit status is non-zero if any failed.
# Env: PYTHON (default: the repo's .venv, else python3); it needs pip >= 23.3 (wheelhouse.py checks and says how
# to upgrade: older pip refuses --platform / --abi without --target). Network: PyPI only.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-}
[ -n "$PY" ] || { [ -x "$ROOT/.venv/bin/python" ] && PY=$ROOT/.venv/bin/python; } || PY=$(command -v python3)
targets=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do targets+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#targets[@]} -gt 0 ] || targets=(pi-bookworm pi-trixie jetpack6)

# Per-target pins where the requirement files' pin has no wheel for that Python (the report records both):
# JetPack 6 is Python 3.10, which numpy >= 2.3 and onnxruntime >= 1.24 dropped. A case, not an associative array:
# macOS's /bin/bash 3.2 has no `declare -A`, and there ${PINS[jetpack6]} read as ${PINS[0]}, empty, so jetpack6
# was built without its pins and failed on numpy's missing cp310 wheel.
pins() {
  case $1 in
    jetpack6) echo "--pin numpy==2.2.6 --pin onnxruntime==1.23.2" ;;
  esac
}
status=0
for t in "${targets[@]}"; do
  # shellcheck disable=SC2046  # pins gives a word list on purpose
  "$PY" "$ROOT/scripts/wheelhouse.py" --target "$t" --extras device,tflite $(pins "$t") "$@" || status=1
done
exit $status
