#!/usr/bin/env bash
# Proof that the device side runs on arm64, without the hardware: an arm64 Debian bookworm root (Python 3.11,
# as Raspberry Pi OS Bookworm) built with debootstrap and run through qemu-user-static; the pinned device
# wheels (aarch64) + an edge-ser wheel of this checkout installed offline into a venv inside it; then
# scripts/arm64_predict.py writes the logits of every shipped bundle (each folder of bundles/ with a manifest)
# on the fixed samples its input kind takes (an EMODB and a synthetic WAV for audio kinds, a FER-2013 image and
# video frames with a face for face kinds, both for audio-visual and fusion bundles), through edge_ser.Recognizer
# with the numpy and onnxruntime engines, inside the root and on this x86 host, and the two are compared.
# Result: deploy/arm64_proof.json + deploy/arm64_proof.md. Slow (minutes), so a script, not a unit test.
#
#   sudo scripts/arm64_proof.sh            # needs root (debootstrap, chroot, binfmt); idempotent: reruns reuse
#                                          # the root, the wheels and the venvs from the cache
# Env:
#   EDGE_SER_ARM64_CACHE  cache dir (default /var/tmp/edge-ser-arm64); delete it to start from scratch
#   EDGE_SER_WHEELHOUSE   aarch64 wheel dir (default wheelhouse/<target> from scripts/wheelhouse.py if it holds
#                         an aarch64 numpy wheel, else: pip download into the cache)
#   EDGE_SER_DATA         data sets root for the EMODB / FER-2013 samples (default ../shared/datasets)
#   EDGE_SER_BUNDLES      bundle names to run (default: every folder of bundles/ with a manifest.json; a fusion
#                         bundle needs its branch bundles beside it, so they are copied into the root too)
#   MIRROR                Debian mirror (default http://deb.debian.org/debian)
#   ARM64_MODE            auto (default) | binfmt | explicit. explicit: no binfmt_misc; every aarch64 program is
#                         started as `chroot ROOT qemu-aarch64-static PROG` and the packages of debootstrap's
#                         second stage are unpacked with dpkg-deb on the host instead of configured inside.
#   PYTHON                x86 Python 3.11 for the host side (default python3.11, else python3)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${EDGE_SER_ARM64_CACHE:-/var/tmp/edge-ser-arm64}
SUITE=bookworm
MIRROR=${MIRROR:-http://deb.debian.org/debian}
MODE=${ARM64_MODE:-auto}
DATA=${EDGE_SER_DATA:-$REPO/../shared/datasets}
HOSTPY=${PYTHON:-$(command -v python3.11 || command -v python3)}
RFS=$CACHE/root          # the arm64 root
OPT=/opt/edge-ser        # inside the root
if [ -n "${EDGE_SER_BUNDLES:-}" ]; then
  read -r -a BUNDLES <<<"$EDGE_SER_BUNDLES"
else
  BUNDLES=()
  for m in "$REPO"/bundles/*/manifest.json; do
    if [ -f "$m" ]; then BUNDLES+=("$(basename "$(dirname "$m")")"); fi
  done
fi
OUTDIR=$REPO/deploy
export PIP_DISABLE_PIP_VERSION_CHECK=1

T_ALL=$(date +%s.%N)
declare -A TIMES=()
ORDER=()
NOTES=()
step_t0=""
step_name=""
CACHED=""
step() {  # step "name": ends the previous step (recording its wall time) and starts the next
  local now
  now=$(date +%s.%N)
  if [ -n "$step_name" ]; then
    TIMES[$step_name]=$(printf '%.1f' "$(echo "$now - $step_t0" | bc)")
    ORDER+=("$step_name")
    # the wall time of the last run that really did the step (reruns skip cached work)
    [ -n "$CACHED" ] || echo "${TIMES[$step_name]}" > "$CACHE/cold/$(echo "$step_name" | tr -c 'a-zA-Z0-9\n' _)"
    CACHED=""
    echo "   ... ${TIMES[$step_name]} s"
  fi
  step_name=$1
  step_t0=$now
  [ -n "$1" ] && echo "== [$(date +%H:%M:%S)] $1"
  return 0
}
note() { NOTES+=("$1"); echo "   note: $1"; }
die() { echo "arm64_proof: $*" >&2; exit 1; }

[ ${#BUNDLES[@]} -gt 0 ] || die "no bundles: no $REPO/bundles/*/manifest.json"
for b in "${BUNDLES[@]}"; do [ -f "$REPO/bundles/$b/manifest.json" ] || die "no bundle $REPO/bundles/$b"; done
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and binfmt_misc need it): sudo $0"
[ "$(uname -m)" = x86_64 ] || note "host is $(uname -m), not x86_64: the 'x86' side is this machine"
mkdir -p "$CACHE/cold"

# --- cleanup: unmount what we mounted, unregister the binfmt handler we registered ----------------------
MOUNTED=()
BINFMT_REGISTERED=""
BINFMT_MOUNTED=""
cleanup() {
  local m
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
    m=${MOUNTED[$i]}
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "arm64_proof: could not unmount $m" >&2
  done
  if [ -n "$BINFMT_REGISTERED" ] && [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64 || true
  fi
  if [ -n "$BINFMT_MOUNTED" ]; then umount /proc/sys/fs/binfmt_misc 2>/dev/null || true; fi
}
trap cleanup EXIT

# --- 1. host tools -------------------------------------------------------------------------------------
step "host tools: qemu-user-static, debootstrap"
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v bc >/dev/null || need+=(bc)
command -v dpkg-deb >/dev/null || need+=(dpkg)
if [ ${#need[@]} -gt 0 ]; then
  echo "   apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
QEMU=$(command -v qemu-aarch64-static)
QEMU_VERSION=$("$QEMU" --version | head -1)
echo "   $QEMU_VERSION; $(debootstrap --version 2>/dev/null || dpkg-query -W -f='debootstrap ${Version}' debootstrap)"

# --- 2. binfmt_misc (so the kernel hands aarch64 ELF files to qemu, also for dpkg's children) -----------
step "binfmt_misc: qemu-aarch64 handler"
binfmt_ok() { [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64; }
if [ "$MODE" != explicit ]; then
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    if mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null; then
      BINFMT_MOUNTED=1
    else
      note "binfmt_misc is not mountable here (mount -t binfmt_misc failed)"
    fi
  fi
  if [ -e /proc/sys/fs/binfmt_misc/register ] && ! binfmt_ok; then
    # magic and mask from qemu-user-static's own binfmt.d file; F = open the interpreter now, so it works in
    # the chroot without a copy (a copy is put in the root anyway)
    conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    if [ -f "$conf" ]; then
      line=$(grep -v '^#' "$conf" | head -1)
      IFS=: read -r _ name type off magic mask _ flags <<<"$line"
      line=":$name:$type:$off:$magic:$mask:$QEMU:${flags:-F}"
    else
      line=':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$QEMU"':F'
    fi
    if printf '%s' "$line" > /proc/sys/fs/binfmt_misc/register 2>/dev/null; then
      BINFMT_REGISTERED=1
      echo "   registered qemu-aarch64 (removed again at exit)"
    else
      note "could not register a qemu-aarch64 binfmt handler"
    fi
  fi
fi
if [ "$MODE" = auto ]; then
  if binfmt_ok; then MODE=binfmt; else MODE=explicit; fi
fi
[ "$MODE" = binfmt ] && ! binfmt_ok && die "ARM64_MODE=binfmt but no qemu-aarch64 binfmt handler is enabled"
echo "   mode: $MODE"
if [ "$MODE" = binfmt ]; then
  ARM=(chroot "$RFS")                              # the kernel starts qemu for every aarch64 exec
else
  note "explicit qemu mode: aarch64 programs started as 'chroot ROOT /usr/bin/qemu-aarch64-static PROG'"
  ARM=(chroot "$RFS" /usr/bin/qemu-aarch64-static)
fi
arm() { "${ARM[@]}" "$@"; }
# a clean environment, set on the host side (an aarch64 `env` could not exec anything in explicit mode)
arm_env() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "${ARM[@]}" "$@"; }

# --- 3. debootstrap ------------------------------------------------------------------------------------
step "debootstrap $SUITE arm64 (first stage, on the host)"
if [ -f "$CACHE/.stage1.done" ]; then
  echo "   cached: $RFS"; CACHED=1
else
  rm -rf "$RFS"
  debootstrap --arch=arm64 --foreign --variant=minbase --include=python3,python3-venv,libgomp1 \
    "$SUITE" "$RFS" "$MIRROR" > "$CACHE/debootstrap-stage1.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap-stage1.log"; die "debootstrap first stage failed (log: $CACHE/debootstrap-stage1.log)"; }
  touch "$CACHE/.stage1.done"
fi
install -m 0755 "$QEMU" "$RFS/usr/bin/qemu-aarch64-static"

step "debootstrap second stage (inside, emulated)"
if [ -f "$CACHE/.stage2.done" ]; then
  echo "   cached"; CACHED=1
elif [ "$MODE" = binfmt ]; then
  chroot "$RFS" /debootstrap/debootstrap --second-stage > "$CACHE/debootstrap-stage2.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap-stage2.log"; die "second stage failed (log: $CACHE/debootstrap-stage2.log)"; }
  echo "stage2: debootstrap --second-stage" > "$CACHE/.stage2.done"
else
  # dpkg's maintainer scripts exec aarch64 programs, which needs binfmt; unpack the packages instead
  note "no second stage: the $(ls "$RFS"/var/cache/apt/archives/*.deb | wc -l) downloaded .debs unpacked with dpkg-deb -x (maintainer scripts not run)"
  for deb in "$RFS"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$RFS"; done
  echo "stage2: dpkg-deb -x (explicit mode)" > "$CACHE/.stage2.done"
fi
# /proc only: with the host's /sys mounted in the root, the emulated run died with "qemu: uncaught target
# signal 11" (onnxruntime's cpuinfo reads the x86 host's CPU topology there); without /sys cpuinfo just warns
note "/sys is not mounted in the root: with the host sysfs visible the emulated predict run segfaulted (qemu: uncaught target signal 11); without it onnxruntime's cpuinfo prints 'failed to parse the list of possible processors' warnings and uses generic kernels"
mkdir -p "$RFS/proc"
if ! mountpoint -q "$RFS/proc"; then
  if mount -t proc proc "$RFS/proc"; then MOUNTED+=("$RFS/proc"); else note "could not mount /proc in the root"; fi
fi
[ -e "$RFS/dev/null" ] || { mount --bind /dev "$RFS/dev" && MOUNTED+=("$RFS/dev"); }
ARM_UNAME=$(arm /bin/uname -m)
ARM_PY=$(arm_env /usr/bin/python3 -c 'import platform, sys; print(platform.machine(), sys.version.split()[0], "/", *platform.libc_ver())')
ARM_OS=$(. "$RFS/etc/os-release" && echo "$PRETTY_NAME")
echo "   inside: uname -m = $ARM_UNAME; python3: $ARM_PY; $ARM_OS"
[ "$ARM_UNAME" = aarch64 ] || die "the root does not run as aarch64 (uname -m = $ARM_UNAME)"

# --- 4. wheels ------------------------------------------------------------------------------------------
step "aarch64 wheels for requirements/device.txt"
WH=${EDGE_SER_WHEELHOUSE:-}
if [ -z "$WH" ]; then  # scripts/wheelhouse.py's Pi OS Bookworm target first, else any cp311 aarch64 one
  for d in "$REPO"/wheelhouse/pi-bookworm/ "$REPO"/wheelhouse/*/; do
    if compgen -G "$d/numpy-*-cp311-*aarch64*.whl" >/dev/null; then WH=${d%/}; break; fi
  done
fi
if [ -n "$WH" ]; then
  echo "   using wheelhouse $WH"
  note "wheels from the wheelhouse $WH"
else
  WH=$CACHE/wheels
  echo "   no aarch64 wheelhouse in $REPO/wheelhouse: pip download into $WH"
  note "no wheelhouse/<target> with aarch64 wheels yet: wheels fetched with pip download --platform manylinux*_aarch64 --python-version 3.11"
  mkdir -p "$WH"
  "$HOSTPY" -m pip download -q --only-binary=:all: --implementation cp --python-version 3.11 \
    --abi cp311 --abi abi3 --abi none --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 \
    --platform manylinux_2_17_aarch64 --platform linux_aarch64 \
    -d "$WH" -r "$REPO/requirements/device.txt" 2>&1 | { grep -v "is ignored: it is neither" || true; }
fi
# the arm64 install follows the wheelhouse's hash lock when there is one (minus its edge-ser line: the edge-ser
# installed is the wheel built below from this checkout), else requirements/device.txt; the x86 venv uses
# requirements/device.txt (the same versions; the lock's hashes are the aarch64 wheels')
if [ -f "$WH/requirements.lock" ]; then
  grep -v '^edge-ser==' "$WH/requirements.lock" > "$CACHE/arm64-requirements.txt"
  LOCKNAME="$(basename "$WH")/requirements.lock (--require-hashes)"
  HASHES=--require-hashes
else
  cp "$REPO/requirements/device.txt" "$CACHE/arm64-requirements.txt"
  LOCKNAME=requirements/device.txt
  HASHES=
fi
(cd "$WH" && ls -- *.whl) | sed 's/^/     /'

step "edge-ser wheel from this checkout"
SRC=$CACHE/src
rm -rf "$SRC" "$CACHE/dist" && mkdir -p "$SRC" "$CACHE/dist"
# built from a copy, so build/ and *.egg-info never land in the checkout; build isolation fetches the
# setuptools pyproject.toml asks for
(cd "$REPO" && tar --exclude=__pycache__ -cf - pyproject.toml README.md edge_ser converters) | tar -xf - -C "$SRC"
"$HOSTPY" -m pip wheel -q --no-deps -w "$CACHE/dist" "$SRC" 2>&1 | { grep -v "is ignored: it is neither" || true; }
EDGE_WHL=$(ls "$CACHE"/dist/edge_ser-*.whl)
echo "   $(basename "$EDGE_WHL")"

# --- 5. venv + offline install inside the root --------------------------------------------------------
step "venv + pip install --no-index (inside, emulated)"
mkdir -p "$RFS$OPT/wheels" "$RFS$OPT/bundles" "$RFS$OPT/work"
rm -rf "$RFS$OPT/wheels" && mkdir -p "$RFS$OPT/wheels"
cp "$WH"/*.whl "$RFS$OPT/wheels/"
cp "$CACHE/arm64-requirements.txt" "$RFS$OPT/wheels/device.txt"
rm -f "$RFS$OPT"/wheels/edge_ser-*.whl && mkdir -p "$RFS$OPT/dist" && rm -f "$RFS$OPT"/dist/*.whl
cp "$EDGE_WHL" "$RFS$OPT/dist/"
want=$( (ls "$RFS$OPT/wheels"; cat "$RFS$OPT/wheels/device.txt"; sha256sum "$EDGE_WHL" | cut -d' ' -f1) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$RFS/opt/venv/.stamp" 2>/dev/null || true)" = "$want" ]; then
  echo "   cached: /opt/venv"; CACHED=1
else
  if [ ! -x "$RFS/opt/venv/bin/python" ]; then
    if [ "$MODE" = binfmt ]; then
      arm_env /usr/bin/python3 -m venv /opt/venv
    else  # ensurepip starts a subprocess (an aarch64 exec): without binfmt, bootstrap pip from its wheel
      arm_env /usr/bin/python3 -m venv --without-pip /opt/venv
      pipwhl=$(cd "$RFS" && ls usr/share/python-wheels/pip-*.whl | head -1)
      arm_env /opt/venv/bin/python "/$pipwhl/pip" install -q --no-index "/$pipwhl"
    fi
  else  # an existing venv is updated (a rebuilt edge-ser wheel): 'uncached' stays the run that created it
    CACHED=1
  fi
  arm_env /opt/venv/bin/python -m pip install -q --no-index --find-links "$OPT/wheels" $HASHES \
    -r "$OPT/wheels/device.txt"
  arm_env /opt/venv/bin/python -m pip install -q --no-index --no-deps --force-reinstall \
    "$OPT/dist/$(basename "$EDGE_WHL")"
  arm_env /opt/venv/bin/python -m pip check
  echo "$want" > "$RFS/opt/venv/.stamp"
fi
arm_env /opt/venv/bin/python -m pip list --format=freeze 2>/dev/null | sed 's/^/     /'

# --- 6. x86 side: the same pins in a clean venv -------------------------------------------------------
step "x86 venv (same pins, host wheels)"
XV=$CACHE/x86-venv
xwant=$( (cat "$REPO/requirements/device.txt"; sha256sum "$EDGE_WHL" | cut -d' ' -f1; "$HOSTPY" -V) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$XV/.stamp" 2>/dev/null || true)" = "$xwant" ]; then
  echo "   cached: $XV"; CACHED=1
else
  if [ -x "$XV/bin/python" ]; then CACHED=1; else "$HOSTPY" -m venv "$XV"; fi  # as for the arm64 venv
  "$XV/bin/python" -m pip install -q -r "$REPO/requirements/device.txt" 2>&1 \
    | { grep -v "is ignored: it is neither" || true; }
  "$XV/bin/python" -m pip install -q --force-reinstall --no-deps "$EDGE_WHL"
  echo "$xwant" > "$XV/.stamp"
fi

# --- 7. samples, bundles, runs ------------------------------------------------------------------------
step "samples (x86, once) + copy into the root"
SAMPLES=$CACHE/samples
rm -rf "$SAMPLES"
"$XV/bin/python" "$REPO/scripts/arm64_predict.py" samples --out "$SAMPLES" --data "$DATA"
rm -rf "$RFS$OPT/work/samples" && cp -r "$SAMPLES" "$RFS$OPT/work/samples"
cp "$REPO/scripts/arm64_predict.py" "$RFS$OPT/arm64_predict.py"
# every bundle folder, not only those run: a fusion bundle's manifest names its branches as ../<branch>
rm -rf "$RFS$OPT/bundles" && mkdir -p "$RFS$OPT/bundles"
for m in "$REPO"/bundles/*/manifest.json; do cp -r "$(dirname "$m")" "$RFS$OPT/bundles/"; done
echo "   bundles: ${BUNDLES[*]}"

step "predict on arm64 (emulated): numpy + onnxruntime"
(cd / && arm_env /opt/venv/bin/python "$OPT/arm64_predict.py" run --samples "$OPT/work/samples" \
  --out "$OPT/work/arm64.json" "${BUNDLES[@]/#/$OPT/bundles/}")
cp "$RFS$OPT/work/arm64.json" "$CACHE/arm64.json"

step "predict on x86: numpy + onnxruntime"
(cd "$CACHE" && "$XV/bin/python" "$REPO/scripts/arm64_predict.py" run --samples "$SAMPLES" \
  --out "$CACHE/x86.json" "${BUNDLES[@]/#/$REPO/bundles/}")

step ""
TOTAL=$(printf '%.1f' "$(echo "$(date +%s.%N) - $T_ALL" | bc)")
{
  echo "{"
  for k in "${ORDER[@]}"; do
    cold=$(cat "$CACHE/cold/$(echo "$k" | tr -c 'a-zA-Z0-9\n' _)" 2>/dev/null || echo null)
    printf '  "%s": {"this_run": %s, "last_uncached": %s},\n' "$k" "${TIMES[$k]}" "$cold"
  done
  printf '  "total": {"this_run": %s, "last_uncached": null}\n}\n' "$TOTAL"
} > "$CACHE/timings.json"
notes="- Host: $(uname -srm), $("$HOSTPY" -V 2>&1), $(. /etc/os-release && echo "$PRETTY_NAME").
- Emulator: $QEMU_VERSION, mode \`$MODE\`$([ "$MODE" = binfmt ] && echo " (binfmt_misc handler with the F flag; \`chroot ROOT PROG\` runs aarch64 programs transparently)").
- Root: debootstrap --arch=arm64 --foreign --variant=minbase --include=python3,python3-venv,libgomp1 $SUITE, $(cat "$CACHE/.stage2.done"); $ARM_OS; inside \`uname -m\` = $ARM_UNAME, python3 = $ARM_PY.
- Device wheels (arm64): \`pip install --no-index --find-links $WH\` of the pins in \`$LOCKNAME\`, then edge-ser $(basename "$EDGE_WHL") built from this checkout (--no-deps); \`pip check\` clean. x86: the same versions from requirements/device.txt (x86_64 wheels) in a clean venv.
- Engines ran with 1 thread; each predict was run once untimed, then 3 timed calls (median), checked bit-repeatable."
for n in "${NOTES[@]}"; do notes+=$'\n'"- $n"; done
step "compare -> deploy/arm64_proof.{json,md}"
rc=0
"$XV/bin/python" "$REPO/scripts/arm64_predict.py" compare --x86 "$CACHE/x86.json" --arm64 "$CACHE/arm64.json" \
  --timings "$CACHE/timings.json" --json "$OUTDIR/arm64_proof.json" --md "$OUTDIR/arm64_proof.md" \
  --notes "$notes" || rc=$?
step ""
echo "arm64_proof: wrote $OUTDIR/arm64_proof.md and .json (exit $rc; total ${TOTAL} s before the compare)"
exit $rc
