#!/usr/bin/env bash
# Debian packages the tests use for real components: PortAudio + a PulseAudio server (the microphone path),
# Chromium + chromedriver (the live page). Installed only when missing, only as root with apt-get; when that
# is not possible the tests that need them skip with the reason. Never fatal. cloud-init + netplan.io (~15 s): the
# first-boot files are checked with their own validators (tests/test_firstboot.py).
set -uo pipefail
PACKAGES=(libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins alsa-utils chromium chromium-driver openssh-server openssh-client cloud-init netplan.io)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-packages: missing ${missing[*]} (not root or no apt-get): the tests that need them will skip" >&2
    exit 0
fi
echo "system-packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/tmp/edge-ser-apt.log 2>&1; then
    echo "system-packages: apt-get failed (see /tmp/edge-ser-apt.log): the tests that need them will skip" >&2
fi
exit 0
