#!/usr/bin/env bash
# Install edge-ser on Raspberry Pi OS (Bookworm or Trixie, 64-bit; Pi 4 / Pi 5) from an offline wheelhouse, as a systemd
# service that runs `edge-ser run` on boot. Idempotent: run it again after an upgrade of the wheelhouse.
#
#   sudo deploy/pi/install.sh WHEELHOUSE [--deploy-user USER] [--pi-camera] [--dry-run]
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib/common.sh"

PI_CAMERA=0
BUNDLE="$PREFIX/bundles/current"
CAMERA=0
VENV_ARGS=()

usage() {
    echo "usage: sudo $0 WHEELHOUSE [options]"
    common_usage
    echo "  --pi-camera          also install libcamera apps and GStreamer plugins for a CSI camera module"
    echo "                       (camera source: a libcamerasrc GStreamer pipeline)"
}

while [ $# -gt 0 ]; do
    case $1 in
        --pi-camera) PI_CAMERA=1; CAMERA_GIVEN=1 ;;
        *) common_option "$@"; shift "$OPTION_VALUES" ;;
    esac
    shift
done
check_common_options
check_deploy_user

model=$(tr -d '\0' 2>/dev/null </proc/device-tree/model || echo unknown)
say "device: $model; wheelhouse: $WHEELHOUSE$([ "$DRY_RUN" = 1 ] && echo ' (dry run)')"
case $model in
    *"Raspberry Pi"*) ;;
    *) say "warning: this does not look like a Raspberry Pi; continuing" ;;
esac
[ "$(uname -m)" = aarch64 ] || say "warning: $(uname -m): wheels for aarch64 (64-bit Raspberry Pi OS) are expected"

# deploy/lib/apt-packages.txt: PortAudio, OpenBLAS / OpenMP, V4L and ALSA tools (the Ansible role's list too)
pkgs=$(apt_packages apt-packages.txt)  # (a missing list stops the run here)
mapfile -t PACKAGES <<<"$pkgs"
if [ "$PI_CAMERA" = 1 ]; then
    PACKAGES+=(rpicam-apps-lite gstreamer1.0-libcamera gstreamer1.0-plugins-base gstreamer1.0-plugins-good)
    CAMERA="libcamerasrc ! video/x-raw,width=640,height=480,framerate=30/1 ! videoconvert ! appsink"
elif [ "$CAMERA_GIVEN" != 1 ] && c=$(configured_camera); then
    CAMERA=$c  # a re-run without a camera option: the configured camera, and the venv set up for it
    say "camera: EDGE_SER_CAMERA=$c from $ETC/config.env (--camera / --pi-camera change it)"
    case $c in *libcamerasrc*) PACKAGES+=(gstreamer1.0-libcamera gstreamer1.0-plugins-base gstreamer1.0-plugins-good) ;; esac
fi
if is_gstreamer "$CAMERA"; then  # OpenCV with GStreamer: the distribution's (system_opencv)
    PACKAGES+=(python3-opencv)
    VENV_ARGS=(--system-site-packages)
fi
apt_install "${PACKAGES[@]}"
ensure_user
ensure_layout
ensure_venv
# the venv's packages, changed as one step: a pip failure puts the previous runtime back (runtime_upgrade)
pi_runtime() {
    pip_install_wheelhouse
    if is_gstreamer "$CAMERA"; then system_opencv; fi
}
runtime_upgrade pi_runtime
write_config "$BUNDLE" "$CAMERA"
install_service
say "done. status: systemctl status edge-ser; logs: journalctl -u edge-ser -f"
