#!/usr/bin/env bash
# Install edge-ser on a Jetson (Orin Nano / NX, JetPack 6) from an offline wheelhouse, as a systemd service
# that runs `edge-ser run` on boot. Uses NVIDIA's onnxruntime-gpu wheel (CUDA / TensorRT) when one is in the
# wheelhouse or given with --ort-wheel; otherwise says where to get it and installs the CPU onnxruntime.
# Idempotent: run it again after an upgrade of the wheelhouse.
#
#   sudo deploy/jetson/install.sh WHEELHOUSE [--ort-wheel PATH] [--deploy-user USER] [--dry-run]
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib/common.sh"

ORT_WHEEL=""
BUNDLE="$PREFIX/bundles/current"
CAMERA=0
# the JetPack python3 packages (e.g. TensorRT's bindings) stay visible inside the venv
VENV_ARGS=(--system-site-packages)
L4T_RELEASE_FILE=${L4T_RELEASE_FILE:-/etc/nv_tegra_release}

usage() {
    echo "usage: sudo $0 WHEELHOUSE [options]"
    common_usage
    echo "  --ort-wheel PATH     NVIDIA's onnxruntime_gpu-*.whl for this JetPack (default: looked up in WHEELHOUSE)"
    echo "  --csi-camera         camera source: an nvarguscamerasrc GStreamer pipeline (CSI camera)"
}

while [ $# -gt 0 ]; do
    case $1 in
        --csi-camera) CAMERA="nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink"; CAMERA_GIVEN=1 ;;
        --ort-wheel) ORT_WHEEL=${2:?--ort-wheel needs a .whl path}; shift ;;
        *) common_option "$@"; shift "$OPTION_VALUES" ;;
    esac
    shift
done
check_common_options
check_deploy_user

# L4T / JetPack: /etc/nv_tegra_release says e.g. "# R36 (release), REVISION: 3.0, ..." (R36 = JetPack 6.x, R35 = 5.x)
# JetPack 5 is refused: its Python 3.8 cannot run edge-ser (Python >= 3.10, numpy >= 2) and no wheelhouse is built for it
L4T=""
if [ -r "$L4T_RELEASE_FILE" ]; then
    L4T=$(sed -n 's/^# R\([0-9]*\) (release), REVISION: \([0-9.]*\).*/\1.\2/p' "$L4T_RELEASE_FILE" | head -n 1)
fi
case ${L4T%%.*} in
    36) JETPACK=6 ;;
    35) die "L4T R$L4T is JetPack 5: edge-ser needs JetPack 6 (L4T R36; Python >= 3.10 and numpy >= 2, and the jetpack6 wheelhouse). Flash JetPack 6 first; nothing was changed" ;;
    "") JETPACK=unknown; say "warning: $L4T_RELEASE_FILE not found: not a Jetson? continuing with CPU packages" ;;
    *) JETPACK=unknown; say "warning: L4T R$L4T is not JetPack 6 (R36); continuing" ;;
esac
py=$(${PYTHON:-python3} -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")' 2>/dev/null || echo cp3)
say "L4T ${L4T:-?} (JetPack $JETPACK), python $py; wheelhouse: $WHEELHOUSE$([ "$DRY_RUN" = 1 ] && echo ' (dry run)')"

if [ "$CAMERA_GIVEN" != 1 ] && c=$(configured_camera); then
    CAMERA=$c  # a re-run without a camera option: the configured camera
    say "camera: EDGE_SER_CAMERA=$c from $ETC/config.env (--camera / --csi-camera change it)"
fi
# NVIDIA's onnxruntime-gpu: --ort-wheel (checked before any change: a mistyped path failed only at pip, after apt,
# the service user and the venv), else one in the wheelhouse matching this Python
if [ -n "$ORT_WHEEL" ] && [ ! -f "$ORT_WHEEL" ]; then
    msg="--ort-wheel $ORT_WHEEL: no such file (NVIDIA's onnxruntime_gpu-*-$py-*linux_aarch64.whl; or put it into $WHEELHOUSE and leave --ort-wheel out)"
    [ "$DRY_RUN" = 1 ] || die "$msg; nothing was changed"
    say "warning: $msg (a real run stops before changing anything)"
fi
if [ -z "$ORT_WHEEL" ]; then
    for w in "$WHEELHOUSE"/onnxruntime_gpu-*-"$py"-*linux_aarch64.whl; do
        [ -f "$w" ] && ORT_WHEEL=$w
    done
fi
# with it, the lock is installed without its CPU onnxruntime: checked before any change (a missing or empty lock
# made pip install nothing and exit 0: a "successful" install without numpy, OpenCV or sounddevice)
lock=""
if [ -n "$ORT_WHEEL" ]; then
    lock=$(mktemp)
    trap 'rm -f "$lock"' EXIT  # set here: a run that stops before the install (die below, apt) leaked it
    if [ -f "$WHEELHOUSE/requirements.lock" ]; then
        grep -v -i -E '^onnxruntime([=<>~ ;]|$)' "$WHEELHOUSE/requirements.lock" >"$lock" || true
        grep -q -E '^[[:space:]]*[^#[:space:]]' "$lock" ||
            die "$WHEELHOUSE/requirements.lock lists nothing besides onnxruntime: is $WHEELHOUSE a complete wheelhouse?"
    elif [ "$DRY_RUN" != 1 ]; then
        die "$WHEELHOUSE/requirements.lock not found: is $WHEELHOUSE a wheelhouse? (with the GPU onnxruntime the lock is still needed); nothing was changed"
    fi
fi
# deploy/lib/apt-packages.txt and apt-packages-jetson.txt (GStreamer): the Ansible role's lists too
pkgs=$(apt_packages apt-packages.txt apt-packages-jetson.txt)  # (a missing list stops the run here)
mapfile -t PACKAGES <<<"$pkgs"
if is_gstreamer "$CAMERA"; then PACKAGES+=(python3-opencv); fi  # OpenCV with GStreamer (system_opencv)
apt_install "${PACKAGES[@]}"
ensure_user
ensure_layout
ensure_venv

# the venv's packages, changed as one step: a pip failure puts the previous runtime back (runtime_upgrade)
jetson_runtime() {
    if [ -n "$ORT_WHEEL" ]; then
        say "onnxruntime: NVIDIA GPU build $(basename "$ORT_WHEEL")"
        # the lock's CPU onnxruntime must not shadow the GPU build: install the lock without it, then the GPU wheel
        run "$PREFIX/venv/bin/pip" install --no-index --find-links "$WHEELHOUSE" -r "$lock"
        run "$PREFIX/venv/bin/pip" uninstall -y onnxruntime
        run "$PREFIX/venv/bin/pip" install --no-index --find-links "$WHEELHOUSE" --no-deps "$ORT_WHEEL"
        run "$PREFIX/venv/bin/pip" install --no-index --find-links "$WHEELHOUSE" --no-deps edge-ser
    else
        cat >&2 <<HINT
edge-ser install: NVIDIA's onnxruntime-gpu wheel was not found (in $WHEELHOUSE or --ort-wheel): installing the
  CPU onnxruntime from the lock file instead (correct, but without CUDA / TensorRT). To get the GPU build:
  - JetPack 6 (L4T R36): the Jetson AI Lab index, https://pypi.jetson-ai-lab.dev/jp6/cu126 (JetPack 6.2; cu122
    for 6.0/6.1), e.g. on a connected machine:
      pip download --no-deps --index-url https://pypi.jetson-ai-lab.dev/jp6/cu126 onnxruntime-gpu -d WHEELHOUSE
  then run this script again (or pass --ort-wheel PATH/onnxruntime_gpu-*.whl).
HINT
        pip_install_wheelhouse
    fi
    if is_gstreamer "$CAMERA"; then system_opencv; fi
}
runtime_upgrade jetson_runtime
write_config "$BUNDLE" "$CAMERA"
install_service
say "done. status: systemctl status edge-ser; logs: journalctl -u edge-ser -f"
