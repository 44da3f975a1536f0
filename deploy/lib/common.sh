# Shared by deploy/pi/install.sh and deploy/jetson/install.sh (sourced, not run). Every action goes through
# `run` (or `write_file`), so --dry-run prints the plan and changes nothing. Every step is idempotent.
# shellcheck shell=bash

PREFIX=${EDGE_SER_PREFIX:-/opt/edge-ser}
ETC=${EDGE_SER_ETC:-/etc/edge-ser}
SERVICE_USER=edge-ser
DRY_RUN=0
WHEELHOUSE=""
DEPLOY_USER=${SUDO_USER:-}
ENABLE=1
CAMERA_GIVEN=0
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf 'edge-ser install: %s\n' "$*" >&2; }
die() { printf 'edge-ser install: error: %s\n' "$*" >&2; exit 1; }

run() {
    if [ "$DRY_RUN" = 1 ]; then
        printf 'RUN %s\n' "$*"
    else
        "$@"
    fi
}

# write_file PATH MODE: content from stdin; written only when it differs (idempotent); prints the plan in a dry run
write_file() {
    local path=$1 mode=$2 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [ "$DRY_RUN" = 1 ]; then
        printf 'WRITE %s (mode %s)\n' "$path" "$mode"
        sed 's/^/    | /' "$tmp"
        rm -f "$tmp"
        return 0
    fi
    if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
        rm -f "$tmp"
        return 0
    fi
    install -D -m "$mode" "$tmp" "$path"
    rm -f "$tmp"
    say "wrote $path"
}

# write_sudoers PATH: like write_file (mode 0440), but never a half-written or invalid sudoers file (one breaks
# every sudo on the device): a temp file in PATH's folder (its name has a '.', which sudo's #includedir skips),
# checked with `visudo -cf` when visudo is here, then renamed into place
write_sudoers() {
    local path=$1 dir tmp
    dir=$(dirname "$path")
    if [ "$DRY_RUN" = 1 ]; then
        write_file "$path" 0440
        return 0
    fi
    [ -d "$dir" ] || install -d -m 0755 "$dir"
    tmp=$(mktemp "$dir/.$(basename "$path").XXXXXX")
    cat >"$tmp"
    chmod 0440 "$tmp"
    if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
        rm -f "$tmp"
        return 0
    fi
    if command -v visudo >/dev/null 2>&1 && ! visudo -cf "$tmp" >&2; then
        rm -f "$tmp"
        die "the sudoers rule for $path is invalid (visudo -cf failed, see above): not installed; is --deploy-user a valid user name?"
    fi
    mv -f "$tmp" "$path"
    say "wrote $path"
}

# check_deploy_user: before any change, the --deploy-user (default $SUDO_USER) must exist here: it owns the
# bundle folders and gets the sudoers rule (a typo failed only after apt, the user and the venv, with a bare
# "install: invalid user"). None at all (run as root, not through sudo, without --deploy-user) is refused too: it
# made root-owned bundles, no sudoers rule and a hint naming an empty user (--deploy-user root: deploys log in
# as root). A dry run says so and goes on.
check_deploy_user() {
    if [ -z "$DEPLOY_USER" ]; then
        local msg="run with --deploy-user NAME: the SSH login that runs \`edge-ser deploy\` (it owns $PREFIX/bundles and may restart the service; \$SUDO_USER, the default, is empty when not run through sudo; --deploy-user root if deploys log in as root)"
        [ "$DRY_RUN" = 1 ] || die "$msg; nothing was changed"
        say "warning: $msg (a real run stops before changing anything)"
        return 0
    fi
    id -u -- "$DEPLOY_USER" >/dev/null 2>&1 && return 0
    if [ "$DRY_RUN" = 1 ]; then
        say "warning: --deploy-user $DEPLOY_USER: no such user here (a real run stops before changing anything)"
        return 0
    fi
    die "--deploy-user $DEPLOY_USER: no such user on this machine (the SSH login that runs \`edge-ser deploy\`; create it first, e.g. adduser $DEPLOY_USER); nothing was changed"
}

# apt_packages LIST...: the package names in deploy/lib/LIST (one a line, '#' comments), the one list the
# Ansible role reads too
apt_packages() {
    local f
    for f in "$@"; do
        [ -r "$HERE/lib/$f" ] || die "$HERE/lib/$f not found: the package list of the install scripts (a partial copy of deploy/?)"
        sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$HERE/lib/$f"
    done
}

# apt_install PACKAGE...: apt-get install of those not installed. Installed means dpkg's status "... ok installed":
# `dpkg -s` also succeeds for a package removed with its configuration files left ("deinstall ok config-files",
# e.g. alsa-utils or v4l-utils after `apt remove`), which was then never installed again
apt_install() {
    local missing=() p
    for p in "$@"; do
        case $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) in
            *" ok installed") ;;
            *) missing+=("$p") ;;
        esac
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        say "system packages already installed: $*"
        return 0
    fi
    run env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

ensure_user() {
    if id "$SERVICE_USER" >/dev/null 2>&1; then
        say "user $SERVICE_USER exists"
    else
        run useradd --system --home-dir "$PREFIX" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
    fi
    run usermod -a -G audio,video "$SERVICE_USER"
}

ensure_layout() {
    run install -d -m 0755 "$PREFIX" "$PREFIX/bin" "$ETC"
    # the deploy user (who runs `edge-ser deploy` over SSH) owns the bundles; the service only reads them
    local owner=root
    [ -n "$DEPLOY_USER" ] && owner=$DEPLOY_USER
    run install -d -m 0755 -o "$owner" -g "$SERVICE_USER" "$PREFIX/bundles" "$PREFIX/bundles/versions"
}

# ensure_venv: the venv, made with VENV_ARGS; an existing one is brought in line with them: its pyvenv.cfg's
# include-system-site-packages follows --system-site-packages (a GStreamer camera needs the system's OpenCV, and
# without one pip's OpenCV must be the one seen), so a re-run with a different camera converges
ensure_venv() {
    local py=${PYTHON:-python3} cfg=$PREFIX/venv/pyvenv.cfg want=false have a
    for a in "${VENV_ARGS[@]}"; do [ "$a" = --system-site-packages ] && want=true; done
    if [ -x "$PREFIX/venv/bin/python" ]; then
        have=$(sed -n 's/^include-system-site-packages *= *//p' "$cfg" 2>/dev/null | tail -n 1)
        if [ -f "$cfg" ] && [ "$have" != "$want" ]; then
            say "virtual environment $PREFIX/venv exists: include-system-site-packages ${have:-unset} -> $want"
            W=$want awk '!/^include-system-site-packages *=/ { print }
                END { print "include-system-site-packages = " ENVIRON["W"] }' "$cfg" | write_file "$cfg" 0644
        else
            say "virtual environment $PREFIX/venv exists"
        fi
    else
        run "$py" -m venv "${VENV_ARGS[@]}" "$PREFIX/venv"
    fi
}

# configured_camera: the EDGE_SER_CAMERA of an existing config.env (fails when there is none): a re-run without a
# camera option keeps the camera the device is configured with, and sets the venv up for it
configured_camera() {
    [ -f "$ETC/config.env" ] && grep -q '^EDGE_SER_CAMERA=' "$ETC/config.env" &&
        sed -n 's/^EDGE_SER_CAMERA=//p' "$ETC/config.env" | tail -n 1
}

# is_gstreamer CAMERA: whether a camera source is a GStreamer pipeline (edge-ser's rule: it contains '!')
is_gstreamer() { case $1 in *'!'*) return 0 ;; *) return 1 ;; esac; }

# system_opencv: a GStreamer camera needs an OpenCV built with GStreamer, which pip's opencv wheels never are:
# drop the lock's wheel from the venv so the distribution's python3-opencv (apt, seen through a venv made with
# --system-site-packages) is the one imported, then check that it imports and has GStreamer. It must be built
# against numpy 2 (the lock's numpy): Debian 13 / Raspberry Pi OS trixie and later; on bookworm the check fails
# and says what to do instead.
system_opencv() {
    run "$PREFIX/venv/bin/pip" uninstall -y opencv-python-headless opencv-python
    if [ "$DRY_RUN" = 1 ]; then
        printf 'CHECK %s/venv/bin/python: import cv2, GStreamer: YES\n' "$PREFIX"
        return 0
    fi
    if "$PREFIX/venv/bin/python" -c 'import cv2, re, sys; sys.exit(0 if re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()) else 1)' 2>/dev/null; then
        say "OpenCV with GStreamer: the system's python3-opencv"
    else
        say "warning: the camera is a GStreamer pipeline, but the venv's OpenCV does not import or has no GStreamer"
        say "  (python3-opencv built against numpy 1, e.g. Debian bookworm?); the service will refuse the camera."
        say "  Use a USB camera: run the install again with --camera 0 (sudo $0 WHEELHOUSE --camera 0 ...): pip's"
        say "  OpenCV is then reinstalled from the wheelhouse (setting EDGE_SER_CAMERA=0 alone does not bring cv2 back,"
        say "  and a re-run without a camera option keeps this camera); or see deploy/README.md, 'A CSI camera'."
    fi
}

# pip_install_wheelhouse: offline install of the pinned lock file from the wheelhouse
pip_install_wheelhouse() {
    [ -n "$WHEELHOUSE" ] || die "no wheelhouse given (see deploy/README.md, 'Offline wheelhouse')"
    [ -f "$WHEELHOUSE/requirements.lock" ] || [ "$DRY_RUN" = 1 ] ||
        die "$WHEELHOUSE/requirements.lock not found: is $WHEELHOUSE a wheelhouse?"
    run "$PREFIX/venv/bin/pip" install --no-index --find-links "$WHEELHOUSE" -r "$WHEELHOUSE/requirements.lock"
    # edge-ser itself, if the wheelhouse carries its wheel and the lock does not list it
    run "$PREFIX/venv/bin/pip" install --no-index --find-links "$WHEELHOUSE" --no-deps edge-ser
}

# runtime_upgrade STEP...: run the commands that change the venv (pip install / uninstall) so that a failure
# cannot leave the device with a half-upgraded runtime. The venv is copied to PREFIX/.venv-previous first (cp -a
# to a temp name, then renamed: the snapshot exists only when complete), the STEPs run in a subshell with errexit,
# and the result must import edge_ser; on any failure the half-upgraded venv is moved aside and the snapshot
# renamed back into PREFIX/venv (the same path, so its scripts' #! lines still hold), and the run stops with the
# reason. On success the snapshot is removed. A snapshot left by a run that was cut off (power, SSH) is restored
# before anything else: the venv it left may be the half-upgraded one. A first install (no venv before) has
# nothing to go back to: the half-filled venv stays for the next run to complete.
runtime_upgrade() {
    local venv=$PREFIX/venv snap=$PREFIX/.venv-previous rc=0
    if [ "$DRY_RUN" = 1 ]; then
        [ ! -x "$venv/bin/python" ] || printf 'RUN cp -a %s %s (snapshot; restored if pip fails)\n' "$venv" "$snap"
        "$@"
        printf 'CHECK %s/bin/python: import edge_ser\n' "$venv"
        return 0
    fi
    if [ -d "$snap" ]; then
        say "an earlier upgrade of $venv was interrupted: restoring the runtime it had saved in $snap first"
        venv_restore "$venv" "$snap" || die "could not restore $snap to $venv; move it back by hand (mv -T $snap $venv)"
    fi
    if [ -x "$venv/bin/python" ]; then
        rm -rf "$snap.tmp"
        cp -a "$venv" "$snap.tmp" && mv -T "$snap.tmp" "$snap" || { rm -rf "$snap.tmp"
            die "could not copy $venv to $snap (disk full?): the runtime was not upgraded, $venv is as it was"; }
    else
        snap=""
    fi
    set +e
    (set -e; "$@"; "$venv/bin/python" -c 'import edge_ser' ||
        { say "the upgraded $venv/bin/python cannot import edge_ser (see above)"; exit 1; })
    rc=$?
    set -e
    if [ "$rc" = 0 ]; then
        [ -z "$snap" ] || rm -rf "$snap"
        return 0
    fi
    if [ -z "$snap" ]; then
        die "installing the runtime into the new $venv failed (exit $rc, see above): there was no runtime before to go back to; fix the wheelhouse and run this script again"
    fi
    venv_restore "$venv" "$snap" || die "installing the runtime failed (exit $rc) and restoring $snap to $venv failed too: move it back by hand (mv -T $snap $venv)"
    die "installing the runtime from $WHEELHOUSE failed (exit $rc, see above): $venv was restored to the runtime it had before this run; config.env and the service were not changed. Fix the wheelhouse and run this script again"
}

# venv_restore VENV SNAPSHOT: the snapshot back in VENV's place (the broken venv renamed aside, then removed)
venv_restore() {
    local venv=$1 snap=$2 aside=$1.failed
    rm -rf "$aside"
    if [ -e "$venv" ]; then mv -T "$venv" "$aside" || return 1; fi
    mv -T "$snap" "$venv" || return 1
    rm -rf "$aside"
    say "restored $venv from $snap"
}

# write_config BUNDLE CAMERA: a new config.env; an existing one is kept as it is (edits included) except its
# EDGE_SER_CAMERA line, set to CAMERA when that differs (a camera option given on this run: --camera,
# --pi-camera, --csi-camera; without one CAMERA is the configured camera, see configured_camera)
write_config() {
    local bundle=$1 camera=$2 cfg=$ETC/config.env old
    if [ -f "$cfg" ]; then
        old=$(configured_camera) || old=""
        if grep -q '^EDGE_SER_CAMERA=' "$cfg" && [ "$old" = "$camera" ]; then
            say "$cfg exists: kept (edit it, then: systemctl restart edge-ser)"
            return 0
        fi
        say "$cfg exists: kept, but EDGE_SER_CAMERA '$old' -> '$camera' (the camera option given)"
        C=$camera awk '/^EDGE_SER_CAMERA=/ { if (!done) print "EDGE_SER_CAMERA=" ENVIRON["C"]; done = 1; next }
            { print } END { if (!done) print "EDGE_SER_CAMERA=" ENVIRON["C"] }' "$cfg" | write_file "$cfg" 0644
        return 0
    fi
    write_file "$ETC/config.env" 0644 <<CONF
# edge-ser service settings (read by edge-ser.service; after a change: sudo systemctl restart edge-ser)
# The bundle: \`edge-ser deploy BUNDLE user@host\` switches $PREFIX/bundles/current.
EDGE_SER_BUNDLE=$bundle
# Audio-only fallback bundle for audio-visual models (empty: none)
EDGE_SER_FALLBACK=
# Microphone: PortAudio index or part of its name (empty: the default device; \`python -m sounddevice\` lists them)
EDGE_SER_MIC=
# Camera: index, /dev/videoN or a GStreamer pipeline (only used by audio-visual bundles)
EDGE_SER_CAMERA=$camera
# Live web page port (empty: no page) and interface. The page has no authentication: 0.0.0.0 lets anyone on
# the network open it; 127.0.0.1 keeps it on the device (reach it with ssh -L 8000:localhost:8000).
EDGE_SER_WEB_PORT=8000
EDGE_SER_WEB_HOST=0.0.0.0
# Inference engine: auto, onnxruntime, numpy, tflite[-int8|-fp16|-fp32]
EDGE_SER_ENGINE=auto
# More \`edge-ser run\` options, e.g. --threads 2 --hop 0.25
EDGE_SER_EXTRA_ARGS=--threads 2
CONF
}

install_service() {
    run install -m 0755 "$HERE/systemd/edge-ser-start" "$PREFIX/bin/edge-ser-start"
    # the one switch / rollback script: `edge-ser-start --boot-check` rolls back an unverified bundle with it
    run install -m 0755 "$HERE/lib/edge-ser-activate" "$PREFIX/bin/edge-ser-activate"
    write_file /etc/systemd/system/edge-ser.service 0644 <"$HERE/systemd/edge-ser.service"
    if [ -n "$DEPLOY_USER" ] && [ "$DEPLOY_USER" != root ]; then
        # lets `edge-ser deploy` restart the service through `sudo -n` (nothing else)
        local sc
        sc=$(command -v systemctl || echo /usr/bin/systemctl)
        write_sudoers /etc/sudoers.d/edge-ser-deploy <<SUDO
$DEPLOY_USER ALL=(root) NOPASSWD: $sc restart edge-ser, $sc start edge-ser, $sc stop edge-ser
SUDO
    fi
    run systemctl daemon-reload
    if [ "$ENABLE" = 1 ]; then
        run systemctl enable edge-ser.service
        # a dry run prints the real plan: no restart without a deployed bundle there either
        if [ -e "$PREFIX/bundles/current" ]; then
            run systemctl restart edge-ser.service
        else
            say "no bundle yet: the service starts after the first \`edge-ser deploy BUNDLE $DEPLOY_USER@$(hostname)\`"
        fi
    fi
}

common_usage() {
    cat <<USAGE
  WHEELHOUSE           folder with the wheels and requirements.lock (scripts build it: see deploy/README.md)
  --dry-run            print every action, change nothing (works without root)
  --deploy-user USER   the SSH user of \`edge-ser deploy\`: owns $PREFIX/bundles, may restart the service
                       (default: \$SUDO_USER)
  --bundle PATH        bundle the service runs (default $PREFIX/bundles/current)
  --camera SRC         camera for audio-visual bundles (default 0)
  --no-enable          install but do not enable / start the service
USAGE
}

# common_option "$@": the argument in $1 when it is one that both scripts take (common_usage lists them), after
# the script's own options; sets OPTION_VALUES to the values it took after $1 (0 or 1: the caller shifts them).
# An unknown option or a second WHEELHOUSE stops the run (with the script's `usage`).
# shellcheck disable=SC2034  # BUNDLE, CAMERA, ENABLE: read by the scripts
common_option() {
    OPTION_VALUES=0
    case $1 in
        --dry-run) DRY_RUN=1 ;;
        --deploy-user) DEPLOY_USER=${2:?--deploy-user needs a user name}; OPTION_VALUES=1 ;;
        --bundle) BUNDLE=${2:?--bundle needs a path}; OPTION_VALUES=1 ;;
        --camera) CAMERA=${2:?--camera needs a source}; CAMERA_GIVEN=1; OPTION_VALUES=1 ;;
        --no-enable) ENABLE=0 ;;
        -h|--help) usage; exit 0 ;;
        -*) usage >&2; die "unknown option $1" ;;
        *) [ -z "$WHEELHOUSE" ] || die "one wheelhouse only"; WHEELHOUSE=$1 ;;
    esac
}

# check_common_options: once the options are read, before any change: a WHEELHOUSE was given, and root (or
# --dry-run); the scripts then call check_deploy_user
check_common_options() {
    [ -n "$WHEELHOUSE" ] || { usage >&2; exit 2; }
    [ "$DRY_RUN" = 1 ] || [ "$(id -u)" = 0 ] || die "run as root (sudo), or with --dry-run"
    check_wheelhouse
}

# check_wheelhouse: before any change, WHEELHOUSE has a requirements.lock built for this Python (the lock's first
# line, written by scripts/wheelhouse.py, names it: "... Python 3.11, cp311 / ..."). A mistyped folder, or the
# pi-trixie wheelhouse (cp313) on a Bookworm Pi (3.11), went through apt, the service user and a new venv first,
# and failed only at pip. A dry run warns and goes on.
check_wheelhouse() {
    local lock=$WHEELHOUSE/requirements.lock want have msg=""
    if [ ! -f "$lock" ]; then
        msg="$lock not found: is $WHEELHOUSE a wheelhouse? (build it on a workstation with scripts/wheelhouse.py --target TARGET and copy wheelhouse/TARGET over: deploy/README.md, 'Offline wheelhouse')"
    else
        want=$(sed -n '1s/^# edge-ser wheelhouse lock for .*, Python \([0-9][0-9]*\.[0-9][0-9]*\), .*/\1/p' "$lock")
        have=$("${PYTHON:-python3}" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || have=""
        if [ -n "$want" ] && [ -n "$have" ] && [ "$want" != "$have" ]; then
            msg="$lock is for Python $want ($(sed -n '1s/^# edge-ser wheelhouse lock for \([^:]*\):.*/\1/p' "$lock")), this device's ${PYTHON:-python3} is $have: copy over the wheelhouse built for this OS (pi-bookworm: 3.11, pi-trixie: 3.13, jetpack6: 3.10)"
        fi
    fi
    [ -n "$msg" ] || return 0
    [ "$DRY_RUN" = 1 ] || die "$msg; nothing was changed"
    say "warning: $msg (a real run stops before changing anything)"
}
