"""First-boot configuration for a freshly written Raspberry Pi OS / Ubuntu image: cloud-init NoCloud files.

    edge-ser firstboot --hostname pi-kitchen --ssh-key ~/.ssh/id_ed25519.pub --wifi-ssid Home \\
        --wifi-password '...' --country GB --wheelhouse wheelhouse/pi-trixie \\
        --bundle-path bundles/av_cnn --out /media/$USER/bootfs

writes, on the image's boot partition (mounted at /boot/firmware on the device):

- `user-data` (#cloud-config): hostname, a login user with the SSH key (no password login) who owns the
  bundle folder (so `edge-ser deploy BUNDLE USER@HOST` works as that user, as after `install.sh --deploy-user`),
  the `edge-ser` service user, Debian packages, `/etc/edge-ser/config.env`, the systemd unit and a first-boot
  script that installs edge-ser into /opt/edge-ser/venv from the wheelhouse (offline: `pip install --no-index
  --find-links WH -r WH/requirements.lock`) or a wheelhouse URL, puts the bundle in the `edge-ser deploy` layout
  (ROOT/versions/<bundle>-<sha12>, named as `edge-ser deploy` names it: `edge_ser_deploy.naming`; `current` link,
  SHA256SUMS checked) and enables + starts the service;
- `network-config`: netplan v2 with the Wi-Fi network (`wifis`, regulatory domain = `--country`; the WPA
  passphrase is stored as its PSK, PBKDF2(passphrase, SSID), unless `--wifi-plaintext`);
- `meta-data`: instance-id (changes with the content, the copied wheelhouse and bundle included, so cloud-init
  runs again for a new configuration)
  and local-hostname;
- `edge-ser/`: the wheelhouse and the bundle, when given as local paths.

Every value that lands in one of these files is one line of printable text (`check_line`: no newline, CR, NUL,
escape, NEL, U+2028/2029 or bidi control); a download URL is https, or http with a pinned sha256 the device
checks before use. The first-boot script removes network-config (it holds the Wi-Fi secret) from the
world-readable FAT boot partition once cloud-init has applied it, and makes what cloud-init rendered root-only
(deploy/README.md, "The Wi-Fi secret on the running device").

Raspberry Pi OS from Trixie on (and Ubuntu for Pi) reads these three files with cloud-init's NoCloud data
source. Each file is written atomically. `validate(out)` runs cloud-init's own checks when cloud-init is
installed: `cloud-init schema --config-file user-data`; for network-config, `cloud-init schema --schema-type
network-config` where supported (cloud-init >= 23.x), else `cloud-init devel net-convert` (cloud-init parses
and renders it as netplan), and `netplan generate` on it when netplan is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edge_ser.errors import ConfigError, MissingDependencyError
from edge_ser.fileio import atomic_write
from edge_ser.text import control_chars, describe_controls
from edge_ser_deploy.naming import source_name
from edge_ser_deploy.self_contained import write_self_contained

BOOT_MOUNT = "/boot/firmware"
"""Where Raspberry Pi OS (Bookworm and later) and Ubuntu for Pi mount the boot partition."""
PREFIX = "/opt/edge-ser"
ROOT = f"{PREFIX}/bundles"
VENV = f"{PREFIX}/venv"
CONFIG_DIR = "/etc/edge-ser"
SERVICE = "edge-ser"
PACKAGES = ("python3-venv", "python3-pip", "libportaudio2", "libsndfile1", "curl", "tar", "openssh-server")

_HOSTNAME = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
              "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")  # fmt: skip
_ENV_KEY = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_TIMEZONE = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*")
_SHA256 = re.compile(r"[0-9a-f]{64}")

DEFAULT_UNIT = f"""[Unit]
Description=edge-ser speech emotion recognition
After=network-online.target sound.target
Wants=network-online.target

[Service]
Type=simple
User=edge-ser
EnvironmentFile={CONFIG_DIR}/config.env
ExecStartPre=+{PREFIX}/bin/edge-ser-activate --root {ROOT} boot-check
ExecStart={VENV}/bin/edge-ser run ${{EDGE_SER_BUNDLE}}
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
"""


UNIT_NAME, START_NAME = "edge-ser.service", "edge-ser-start"
"""The full unit and its /opt/edge-ser/bin/edge-ser-start, shipped inside this package (deploy/systemd/ links to
them), so `edge-ser firstboot` writes the same unit from an installed edge-ser as from a checkout."""

LOST_WITHOUT_THE_UNIT = (
    "the config.env settings EDGE_SER_MIC, EDGE_SER_CAMERA, EDGE_SER_FALLBACK, EDGE_SER_WEB_PORT / _HOST, "
    "EDGE_SER_ENGINE and EDGE_SER_EXTRA_ARGS (and any --env of them) are ignored, and there is no watchdog "
    "(WatchdogSec), start limit, `edge-ser info` check before each start or hardening"
)


def repo_unit() -> tuple[str, str | None]:
    """The full unit and its edge-ser-start helper (package data of edge_ser_deploy); when this install of
    edge-ser lacks them (a wheel built without them), the built-in DEFAULT_UNIT and None, which runs
    `edge-ser run $EDGE_SER_BUNDLE` directly and loses LOST_WITHOUT_THE_UNIT: cmd_firstboot says so loudly."""
    from importlib import resources

    pkg = resources.files("edge_ser_deploy")
    unit, start = pkg.joinpath(UNIT_NAME), pkg.joinpath(START_NAME)
    if unit.is_file() and start.is_file():
        return unit.read_text(encoding="utf-8"), start.read_text(encoding="utf-8")
    return DEFAULT_UNIT, None


@dataclass(frozen=True)
class FirstBoot:
    """What the device should be on its first boot. Check with `validate_inputs()`; `generate()` does too."""

    hostname: str
    """RFC 1123 host label: lower-case letters, digits and '-', 1..63 characters."""
    ssh_keys: tuple[str, ...]
    """OpenSSH public key lines for the login user."""
    user: str = "edge"
    """Login user (sudo without password, SSH key only); owns ROOT (group edge-ser), so `edge-ser deploy` can
    write there as this user, the only one that logs in (root login is off)."""
    wifi_ssid: str | None = None
    wifi_password: str | None = None
    """WPA passphrase (8..63 characters) or 64-hex PSK; None for an open network."""
    country: str | None = None
    """Wi-Fi regulatory domain, ISO 3166-1 alpha-2 (required with Wi-Fi: the Pi's radio stays off without it)."""
    wifi_plaintext: bool = False
    """Store the passphrase as given instead of its PSK (WPA3-SAE networks need the passphrase)."""
    wifi_hidden: bool = False
    """The network does not broadcast its SSID: netplan's `hidden: true` (wpa_supplicant's scan_ssid=1, a
    NetworkManager hidden connection), without which the device never finds it."""
    wheelhouse_url: str | None = None
    """pip --find-links URL to install from on first boot, instead of a wheelhouse copied to the boot partition:
    a folder with the wheels, requirements.lock and index.html (scripts/wheelhouse.py writes all three; pip reads
    the links to the wheels from the page the folder's URL serves, which static hosting only has with the
    index.html); https, or http with `wheelhouse_sha256`."""
    wheelhouse_sha256: str | None = None
    """sha256 of the wheelhouse's requirements.lock, checked on the device before use; the lock pins every
    wheel's sha256, so this one pin covers the whole install (required for a plain-http URL)."""
    bundle_url: str | None = None
    """URL of a bundle .tar the device downloads on first boot, instead of one copied to the boot partition:
    https, or http with `bundle_sha256`."""
    bundle_sha256: str | None = None
    """sha256 of the bundle .tar, checked on the device before it is unpacked (required for a plain-http URL)."""
    timezone: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    """Extra KEY=VALUE lines for config.env."""
    packages: tuple[str, ...] = PACKAGES
    boot_mount: str = BOOT_MOUNT
    unit: str = field(default=DEFAULT_UNIT, repr=False)
    start_script: str | None = field(default=None, repr=False)
    """/opt/edge-ser/bin/edge-ser-start, when the unit runs it."""


def read_ssh_keys(paths: list[str | os.PathLike[str]]) -> tuple[str, ...]:
    """Public key lines from files; a missing file, a private key or a non-key line is a ConfigError."""
    keys: list[str] = []
    for p in paths:
        path = Path(p).expanduser()
        try:
            # no universal newlines: a lone CR is refused below; utf-8-sig: a byte-order mark (Windows editors) goes
            text = path.read_bytes().decode("utf-8-sig")
        except FileNotFoundError:
            raise ConfigError(
                f"--ssh-key {path}: no such file (give the public key, e.g. ~/.ssh/id_ed25519.pub)"
            ) from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"--ssh-key {path}: cannot read it as text: {e}") from e
        if "PRIVATE KEY" in text:
            raise ConfigError(f"--ssh-key {path}: is a private key; give the public key ({path}.pub)")
        # split on "\n" only: str.splitlines() would also split on \x0b, \x1c-\x1e, NEL and U+2028, turning one
        # tampered line into two keys; those characters are refused inside a line instead (CRLF files are fine)
        for line in text.split("\n"):
            line = line.strip(" \t\r")
            if line and not line.startswith("#"):
                keys.append(check_ssh_key(line, f"--ssh-key {path}"))
    if not keys:
        raise ConfigError("--ssh-key: no public key given; the device would have no way to log in")
    return tuple(keys)


def check_ssh_key(line: str, source: str = "--ssh-key") -> str:
    """`line` if it is one OpenSSH public key line (type, base64 key, optional comment); ConfigError otherwise.

    A control character (a newline above all) is refused: cloud-init writes each key as one line of
    authorized_keys, so a newline in a comment would add a second key (or `command=` options) of its own."""
    if control_chars(line):
        raise ConfigError(
            f"{source}: the key line contains control characters ({describe_controls(line)}): {line[:40]!r}..."
        )
    parts = line.split()
    if len(parts) < 2 or parts[0] not in _KEY_TYPES or not re.fullmatch(r"[A-Za-z0-9+/]+=*", parts[1]):
        raise ConfigError(f"{source}: not an OpenSSH public key line: {line[:40]!r}...")
    return line


def wpa_psk(ssid: str, passphrase: str) -> str:
    """The 64-hex WPA PSK of a passphrase (IEEE 802.11i: PBKDF2-HMAC-SHA1, salt = SSID, 4096 rounds, 32 bytes)."""
    return hashlib.pbkdf2_hmac("sha1", passphrase.encode(), ssid.encode(), 4096, 32).hex()


def check_line(value: str, option: str, *, secret: bool = False) -> str:
    """`value` if it has no control characters (newline, CR, NUL, ESC, C1 such as NEL, U+2028/2029, bidi
    overrides; `edge_ser.text`), else ConfigError naming the option: every value here ends up as one line of
    a file (YAML, config.env, wpa_supplicant, authorized_keys) or a shell script. A secret is not echoed."""
    if control_chars(value):
        shown = "(the value)" if secret else repr(value)
        raise ConfigError(
            f"{option} {shown}: contains control characters ({describe_controls(value)}); give one line of "
            "printable text"
        )
    return value


def validate_inputs(fb: FirstBoot) -> None:
    """Raise ConfigError naming the option and the bad value."""
    for value, option in ((fb.hostname, "--hostname"), (fb.user, "--user"), (fb.country, "--country"),
                          (fb.timezone, "--timezone"), (fb.boot_mount, "boot_mount")):  # fmt: skip
        if value is not None:
            check_line(value, option)
    if not _HOSTNAME.fullmatch(fb.hostname or ""):
        raise ConfigError(
            f"--hostname {fb.hostname!r}: must be 1..63 lower-case letters, digits or '-', not starting or "
            "ending with '-'"
        )
    if not _USER.fullmatch(fb.user or "") or fb.user in ("root", SERVICE):
        raise ConfigError(f"--user {fb.user!r}: must be a lower-case Linux user name, not root or {SERVICE}")
    if not fb.ssh_keys:
        raise ConfigError("--ssh-key: no public key given; the device would have no way to log in")
    for k in fb.ssh_keys:
        check_ssh_key(k)
    _check_wifi(fb)
    if fb.country is not None and not re.fullmatch(r"[A-Z]{2}", fb.country):
        raise ConfigError(f"--country {fb.country!r}: must be an ISO 3166-1 alpha-2 code such as GB or DE")
    if fb.timezone is not None and not _TIMEZONE.fullmatch(fb.timezone):
        raise ConfigError(f"--timezone {fb.timezone!r}: must be a tz database name such as Europe/London")
    if fb.timezone is not None and fb.timezone not in _known_timezones():
        raise ConfigError(f"--timezone {fb.timezone!r}: not in the tz database (e.g. Europe/London, UTC)")
    _check_url(fb.wheelhouse_url, fb.wheelhouse_sha256, "--wheelhouse-url", "--wheelhouse-sha256")
    _check_url(fb.bundle_url, fb.bundle_sha256, "--bundle-url", "--bundle-sha256")
    _check_env(fb.env)
    for p in fb.packages:
        if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", p):
            raise ConfigError(f"package name {p!r} is not a Debian package name")


def _check_url(url: str | None, sha256: str | None, option: str, pin_option: str) -> None:
    """A download URL is https, or http with a pinned sha256 (checked on the device before use)."""
    if sha256 is not None:
        if url is None:
            raise ConfigError(f"{pin_option} given without {option}")
        if not _SHA256.fullmatch(sha256):
            raise ConfigError(
                f"{pin_option} {sha256!r}: must be 64 lower-case hex digits (sha256sum's output)"
            )
    if url is None:
        return
    check_line(url, option)
    if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", url):
        raise ConfigError(f"{option} {url!r}: must be an https:// URL (or http:// with {pin_option})")
    if url.startswith("http://") and sha256 is None:
        raise ConfigError(
            f"{option} {url!r}: plain http can be altered on the way; use https, or pin the content with "
            f"{pin_option} (the device checks it before use)"
        )


def _check_wifi(fb: FirstBoot) -> None:
    """Raise ConfigError for bad Wi-Fi options: an SSID needs a country, and a password needs an SSID."""
    if fb.wifi_ssid is not None:
        check_line(fb.wifi_ssid, "--wifi-ssid")
        n = len(fb.wifi_ssid.encode())
        if not 1 <= n <= 32:
            raise ConfigError(f"--wifi-ssid {fb.wifi_ssid!r}: must be 1..32 bytes, is {n}")
        if fb.country is None:
            raise ConfigError(
                "--country is required with --wifi-ssid (Wi-Fi stays blocked without a regulatory domain)"
            )
        if fb.wifi_password is not None:
            check_line(fb.wifi_password, "--wifi-password", secret=True)
        if fb.wifi_password is not None and not _is_wpa_secret(fb.wifi_password):
            raise ConfigError(
                "--wifi-password: a WPA passphrase is 8..63 printable ASCII characters (or a 64-hex PSK)"
            )
    elif fb.wifi_password is not None:
        raise ConfigError("--wifi-password given without --wifi-ssid")
    elif fb.wifi_hidden:
        raise ConfigError("--wifi-hidden given without --wifi-ssid")


def _check_env(env: tuple[tuple[str, str], ...]) -> None:
    """`--env KEY=VALUE` lines: names, one line each, not the variable the install sets itself."""
    for k, v in env:
        check_line(k, "--env")
        if not _ENV_KEY.fullmatch(k):
            raise ConfigError(f"--env {k!r}: must be an upper-case environment variable name")
        if k == "EDGE_SER_BUNDLE":
            raise ConfigError(
                "--env EDGE_SER_BUNDLE: set by the install (the deployed bundle's `current` link); give the bundle "
                "with --bundle-path or --bundle-url"
            )
        check_line(v, f"--env {k}=")
        if v.endswith("\\"):
            raise ConfigError(
                f"--env {k}={v!r}: ends with a backslash, which continues the line in systemd's EnvironmentFile"
            )


def _known_timezones() -> set[str]:
    """The tz database names this workstation knows (the device's tzdata is the same database)."""
    import zoneinfo

    return zoneinfo.available_timezones() | {"UTC"}


def _is_wpa_secret(pw: str) -> bool:
    """True for a WPA passphrase (8..63 printable ASCII characters) or a 64-hex PSK: what WPA accepts."""
    passphrase = 8 <= len(pw) <= 63 and pw.isascii() and pw.isprintable()
    return passphrase or re.fullmatch(r"[0-9a-fA-F]{64}", pw) is not None


_SCRIPT = r"""#!/bin/bash
# edge-ser first boot: install from the wheelhouse, install the bundle, start the service. Log:
# /var/log/edge-ser-firstboot.log. Safe to run again.
set -Eeuo pipefail
exec >>/var/log/edge-ser-firstboot.log 2>&1
echo "edge-ser firstboot: $(date -u +%FT%TZ)"
# a step that fails stops the script (set -e): the log says which, not just nothing more
trap 'echo "edge-ser firstboot: FAILED (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
BOOT=__BOOT__
PREFIX=__PREFIX__
ROOT=__ROOT__
VENV=__VENV__
DEPLOY_USER=__USER__
WH_URL=__WH_URL__
WH_SHA256=__WH_SHA256__
BUNDLE_URL=__BUNDLE_URL__
BUNDLE_SHA256=__BUNDLE_SHA256__
BUNDLE_NAME=__BUNDLE_NAME__
# The Wi-Fi secret: cloud-init applied network-config in its local stage, long before this runs (runcmd).
# The boot partition is FAT (no per-file modes: every local user can read it), so the copy there goes; the
# seed stays valid (NoCloud needs user-data + meta-data; the instance-id is unchanged, so cloud-init does
# not apply network config again). What cloud-init rendered becomes root-only: /etc/netplan (0644 before
# cloud-init 23.1) and its log, which records the applied network configuration.
forget_wifi_secret() {
    if [ -f "$BOOT/network-config" ]; then
        shred -u "$BOOT/network-config" 2>/dev/null || rm -f -- "$BOOT/network-config"
        echo "edge-ser firstboot: removed $BOOT/network-config (it holds the Wi-Fi secret)"
    fi
    find /etc/netplan /etc/NetworkManager/system-connections -maxdepth 1 -type f -exec chmod 0600 {} + \
        2>/dev/null || true
    chmod 0600 /var/log/cloud-init.log 2>/dev/null || true
}
forget_wifi_secret
# fetch URL FILE [SHA256]: https stays https across redirects; a pinned sha256 is checked before use
fetch() {
    local proto=()
    case "$1" in https://*) proto=(--proto =https --proto-redir =https) ;; esac
    curl -fsSL --retry 5 ${proto[@]+"${proto[@]}"} "$1" -o "$2"
    if [ -n "${3:-}" ] && ! echo "$3  $2" | sha256sum -c --quiet -; then
        echo "edge-ser firstboot: $1 does not match its pinned sha256 $3" >&2
        rm -f -- "$2"
        return 1
    fi
}
# The bundles belong to the login user, as `deploy/pi/install.sh --deploy-user` makes them: `edge-ser deploy`
# logs in as that user (root login is off) and writes ROOT/versions, ROOT/current and the marker ROOT/pending
# without sudo; the service (group edge-ser) only reads them. PREFIX and PREFIX/bin stay root's: the unit runs
# PREFIX/bin/edge-ser-activate as root. Run again at the end, for what root wrote meanwhile (version, link).
bundles_layout() {
    install -d -m 0755 "$PREFIX" "$PREFIX/bin"
    install -d -o "$DEPLOY_USER" -g edge-ser -m 0755 "$ROOT" "$ROOT/versions"
    chown -R "$DEPLOY_USER:edge-ser" "$ROOT"
}
bundles_layout
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if [ -n "$WH_URL" ]; then
    # the lock pins every wheel (edge-ser's too) by sha256: pip installs those files and nothing else
    LOCK=$(mktemp)
    fetch "${WH_URL%/}/requirements.lock" "$LOCK" "$WH_SHA256"
    # the folder's page (its index.html, from scripts/wheelhouse.py, or the server's listing) links the wheels;
    # the trailing '/' makes pip resolve those relative links inside the folder
    "$VENV/bin/pip" install --no-index --find-links "${WH_URL%/}/" --require-hashes -r "$LOCK"
    rm -f -- "$LOCK"
    "$VENV/bin/python" -c "import edge_ser" || { echo "edge-ser firstboot: edge-ser is not in the lock" >&2; exit 1; }
else
    WH="$BOOT/edge-ser/wheelhouse"
    "$VENV/bin/pip" install --no-index --find-links "$WH" -r "$WH/requirements.lock"
    "$VENV/bin/pip" install --no-index --find-links "$WH" edge-ser
fi
# install_version STAGE V: the checked STAGE becomes ROOT/versions/V. V is named by the manifest's sha256, so a V
# already there whose files check against the same SHA256SUMS is this bundle: kept as it is (a rerun; it may be the
# live one, `current` points into it). Any other folder of that name is moved aside only once the new one is in.
install_version() {
    local dest="$ROOT/versions/$2" old
    if [ -d "$dest" ] && cmp -s "$1/SHA256SUMS" "$dest/SHA256SUMS" \
        && (cd "$dest" && sha256sum -c --quiet SHA256SUMS); then
        rm -rf -- "$1"
        echo "edge-ser firstboot: $2 is installed already; kept"
    elif [ -e "$dest" ] || [ -L "$dest" ]; then
        old=$(mktemp -d "$ROOT/versions/.old-XXXXXX")
        mv -T "$dest" "$old/v"
        mv -T "$1" "$dest" || { mv -T "$old/v" "$dest"; rm -rf -- "$old"; return 1; }
        rm -rf -- "$old"
    else
        mv -T "$1" "$dest"
    fi
    chmod 0755 "$dest"
}
STAGE=$(mktemp -d "$ROOT/versions/.incoming-XXXXXX")
# the download and the version file beside the stage go with it, whatever stops the script
trap 'rm -rf -- "$STAGE" "$STAGE.tar" "$STAGE.version"' EXIT
if [ -n "$BUNDLE_URL" ]; then
    fetch "$BUNDLE_URL" "$STAGE.tar" "$BUNDLE_SHA256"
    tar -xf "$STAGE.tar" -C "$STAGE" && rm -f "$STAGE.tar"
else
    cp -r "$BOOT/edge-ser/bundle/." "$STAGE/"
fi
# SHA256SUMS by edge_ser_deploy/sums.py, as edge-ser deploy writes it (a fusion bundle's branches too), then checked
# by coreutils; the version name by
# edge_ser_deploy/naming.py, which follows as it is (the device's wheel has no edge_ser_deploy)
"$VENV/bin/python" - "$STAGE" "$STAGE.version" "$BUNDLE_NAME" <<'PY'
__NAMING_PY__
__SUMS_PY__
import json, pathlib, sys
d = pathlib.Path(sys.argv[1]); raw = (d / "manifest.json").read_bytes(); m = json.loads(raw)
(d / "SHA256SUMS").write_bytes(sha256sums(raw, lambda n: (d / n).read_bytes() if (d / n).is_file() else None))
pathlib.Path(sys.argv[2]).write_text(version_name(sys.argv[3], raw, str(m["model"]["name"])))
PY
(cd "$STAGE" && sha256sum -c --quiet SHA256SUMS)
"$VENV/bin/edge-ser" info "$STAGE" >/dev/null
V=$(cat "$STAGE.version"); rm -f "$STAGE.version"
install_version "$STAGE" "$V"
# the one switch script (as edge-ser deploy and the Ansible role): checked above, so committed at once
__PREFIX__/bin/edge-ser-activate --root "$ROOT" --by firstboot activate "$V" --commit
bundles_layout
systemctl daemon-reload
systemctl enable ssh.service 2>/dev/null || true
systemctl enable --now __SERVICE__.service
echo "edge-ser firstboot: $V is current, __SERVICE__ started; $DEPLOY_USER may deploy to $ROOT"
"""


def _activate_script() -> str:
    from edge_ser_deploy.deploy import activate_script

    return activate_script().decode()


def _q(s: str | None) -> str:
    import shlex

    return shlex.quote(s or "")


def _sums_source() -> str:
    """edge_ser_deploy/sums.py as text: the first-boot script runs it on the device to write SHA256SUMS exactly as
    `edge-ser deploy` does (a fusion bundle's branch files included)."""
    from importlib import resources

    return resources.files("edge_ser_deploy").joinpath("sums.py").read_text(encoding="utf-8")


def _naming_source() -> str:
    """edge_ser_deploy/naming.py as text: the first-boot script runs it on the device to name the version."""
    from importlib import resources

    return resources.files("edge_ser_deploy").joinpath("naming.py").read_text(encoding="utf-8")


def user_data(fb: FirstBoot, *, bundle_name: str | None = None) -> dict:
    """The #cloud-config document (a dict; `generate` writes it as YAML).

    `bundle_name`: the name the bundle was given by (`naming.source_name` of --bundle-path), which labels its
    version on the device as `edge-ser deploy` labels it; default: the file name in `fb.bundle_url`."""
    if bundle_name is None:
        bundle_name = source_name(fb.bundle_url) if fb.bundle_url else ""
    check_line(bundle_name, "--bundle-path" if fb.bundle_url is None else "--bundle-url")
    env = [f"EDGE_SER_ROOT={ROOT}", f"EDGE_SER_BUNDLE={ROOT}/current", *(f"{k}={v}" for k, v in fb.env)]
    script = (
        _SCRIPT.replace("__BOOT__", _q(fb.boot_mount)).replace("__ROOT__", _q(ROOT)).replace("__VENV__", _q(VENV))
        .replace("__PREFIX__", _q(PREFIX)).replace("__WH_URL__", _q(fb.wheelhouse_url))
        .replace("__WH_SHA256__", _q(fb.wheelhouse_sha256)).replace("__BUNDLE_URL__", _q(fb.bundle_url))
        .replace("__BUNDLE_SHA256__", _q(fb.bundle_sha256)).replace("__SERVICE__", SERVICE)
        .replace("__BUNDLE_NAME__", _q(bundle_name)).replace("__USER__", _q(fb.user))
        .replace("__NAMING_PY__", _naming_source())
        .replace("__SUMS_PY__", _sums_source())
    )  # fmt: skip
    doc: dict = {
        "hostname": fb.hostname,
        "manage_etc_hosts": True,
        "preserve_hostname": False,
        "users": [
            {
                "name": fb.user,
                "groups": "sudo,audio,video,plugdev",
                "shell": "/bin/bash",
                "lock_passwd": True,
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "ssh_authorized_keys": list(fb.ssh_keys),
            },
            {
                "name": SERVICE,
                "system": True,
                "groups": "audio,video",
                "shell": "/usr/sbin/nologin",
                # as the install scripts and the Ansible role: the prefix, not made by useradd (it is root's)
                "homedir": PREFIX,
                "no_create_home": True,
                "lock_passwd": True,
            },
        ],
        "ssh_pwauth": False,
        "disable_root": True,
        "package_update": True,
        "packages": list(fb.packages),
        "write_files": [
            {"path": f"{CONFIG_DIR}/config.env", "permissions": "0644", "content": "\n".join(env) + "\n"},
            {"path": f"/etc/systemd/system/{SERVICE}.service", "permissions": "0644", "content": fb.unit},
            {"path": "/usr/local/sbin/edge-ser-firstboot", "permissions": "0755", "content": script},
            {"path": f"{PREFIX}/bin/edge-ser-activate", "permissions": "0755", "content": _activate_script()},
        ],
        "runcmd": [["/usr/local/sbin/edge-ser-firstboot"]],
    }
    if fb.start_script is not None:
        doc["write_files"].append(
            {"path": f"{PREFIX}/bin/edge-ser-start", "permissions": "0755", "content": fb.start_script}
        )
    if fb.timezone:
        doc["timezone"] = fb.timezone
    return doc


def network_config(fb: FirstBoot) -> dict | None:
    """netplan v2 network configuration, or None without Wi-Fi (cloud-init then brings up wired DHCP)."""
    if fb.wifi_ssid is None:
        return None
    ap: dict = {}
    pw = fb.wifi_password
    if pw is not None:
        ap["password"] = pw if fb.wifi_plaintext or len(pw) == 64 else wpa_psk(fb.wifi_ssid, pw)
    if fb.wifi_hidden:
        ap["hidden"] = True
    return {"network": {"version": 2,
                        "ethernets": {"eth0": {"dhcp4": True, "optional": True}},
                        "wifis": {"wlan0": {"dhcp4": True, "optional": True, "regulatory-domain": fb.country,
                                            "access-points": {fb.wifi_ssid: ap}}}}}  # fmt: skip


def _yaml(doc: dict) -> str:
    import yaml

    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000)


def _tree_digest(src: Path, label: str, h: hashlib._Hash) -> None:
    """Feed `h` the relative path and content of every file under `src` (sorted), prefixed with `label`."""
    h.update(f"{label}\0".encode())
    for p in sorted(src.rglob("*")):
        if p.is_file():
            h.update(f"{p.relative_to(src).as_posix()}\0{p.stat().st_size}\0".encode())
            with p.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)


def _copy_tree_atomic(src: Path, dest: Path) -> None:
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(src, tmp, copy_function=shutil.copyfile)
        old = dest.parent / f".{dest.name}.old-{os.getpid()}"
        if dest.exists():
            os.rename(dest, old)
        os.rename(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


IMAGE_TARGET = "pi-trixie"
"""The wheelhouse target (scripts/wheelhouse.py --target) of the images these files are for: Raspberry Pi OS
Trixie 64-bit, the Raspberry Pi OS that runs cloud-init (Bookworm ignores the files)."""

_LOCK_HEADER = re.compile(r"# edge-ser wheelhouse lock for ([A-Za-z0-9._-]+):")


def check_wheelhouse(wheelhouse: str | os.PathLike[str], target: str = IMAGE_TARGET) -> None:
    """ConfigError unless `wheelhouse` is a scripts/wheelhouse.py folder for `target`: its requirements.lock
    starts with `# edge-ser wheelhouse lock for TARGET:` and pins at least one wheel. A wheelhouse for another
    target (another Python, another glibc) fails on the device's first boot, with no one watching."""
    lock = Path(wheelhouse) / "requirements.lock"
    if not lock.is_file():
        raise ConfigError(
            f"--wheelhouse {wheelhouse}: no requirements.lock (make it with scripts/wheelhouse.py)"
        )
    text = lock.read_text(encoding="utf-8", errors="replace")
    m = _LOCK_HEADER.match(text)
    make = f"scripts/wheelhouse.py --target {target} writes wheelhouse/{target}"
    if m is None:
        raise ConfigError(
            f"--wheelhouse {wheelhouse}: {lock.name} does not start with '# edge-ser wheelhouse lock for "
            f"{target}:', so it is not known to be built for this image ({target}); {make}"
        )
    if m.group(1) != target:
        raise ConfigError(
            f"--wheelhouse {wheelhouse}: built for {m.group(1)} ({lock.name}'s header), but these first-boot files "
            f"are for {target} images (Raspberry Pi OS Trixie 64-bit, Python 3.13): its wheels would not install "
            f"there; {make}"
        )
    if not any(ln.strip() and not ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise ConfigError(f"--wheelhouse {wheelhouse}: {lock.name} pins no packages (an empty lock); {make}")


def _copy_failure(out: Path, what: str, src: Path | None, exc: BaseException, removed: list[str]) -> str:
    """One sentence for a copy onto the boot partition that failed: what, why (the first distinct reason), how
    much it needs and how much is free. `src` None: the cloud-init files themselves (`what`) did not fit."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
        reasons = [str(why) for *_, why in exc.args[0]]
        why = reasons[0] if reasons else str(exc)
        more = f" (and {len(reasons) - 1} more files)" if len(reasons) > 1 else ""
    else:
        why, more = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc), ""
    if src is None:
        head = f"could not write {what} there"
    else:
        need = sum(p.stat().st_size for p in src.rglob("*") if p.is_file()) if src.is_dir() else 0
        head = f"could not copy the {what} ({src}, {need / 1e6:.1f} MB) there"
    try:
        free = f"{shutil.disk_usage(out).free / 1e6:.1f} MB free"
    except OSError:
        free = "free space unknown"
    took = f"; removed what this run had copied ({', '.join(removed)})" if removed else ""
    return (
        f"--out {out}: {head}: {why}{more}; {free}{took}. "
        "Nothing else was written: free space on the partition (or use --wheelhouse-url / --bundle-url) and run "
        "again"
    )


def _check_out(out_p: Path) -> Path:
    """`out_p` if it is a folder this process can write to; ConfigError otherwise."""
    if not out_p.is_dir():
        raise ConfigError(
            f"--out {out_p}: no such folder (mount the image's boot partition and give its path)"
        )
    if not os.access(out_p, os.W_OK):  # access(2): EROFS for a read-only mount, for root too
        raise ConfigError(
            f"--out {out_p}: cannot write there (mounted read-only, or no permission): mount the boot partition "
            "read-write (or fix its permissions) and run again"
        )
    return out_p


def generate(fb: FirstBoot, out: str | os.PathLike[str], *, wheelhouse: str | os.PathLike[str] | None = None,
             bundle: str | os.PathLike[str] | None = None) -> dict[str, Path]:  # fmt: skip
    """Write user-data, network-config (with Wi-Fi) and meta-data into `out` (the mounted boot partition).

    `wheelhouse` / `bundle` (local folders) are copied to `out/edge-ser/`; otherwise `fb.wheelhouse_url` /
    `fb.bundle_url` must be set. Returns the written paths by name.
    """
    validate_inputs(fb)
    out_p = _check_out(Path(out))
    if (wheelhouse is None) == (fb.wheelhouse_url is None):
        raise ConfigError(
            "give exactly one of --wheelhouse (a folder, copied to the boot partition) or --wheelhouse-url"
        )
    if (bundle is None) == (fb.bundle_url is None):
        raise ConfigError(
            "give exactly one of --bundle-path (a bundle folder) or --bundle-url (a bundle .tar)"
        )
    if wheelhouse is not None:
        check_wheelhouse(wheelhouse)
    if bundle is not None:
        from edge_ser.bundle import load_bundle

        if not Path(bundle).is_dir():
            raise ConfigError(f"--bundle-path {bundle}: must be a bundle folder")
        loaded = load_bundle(bundle)  # BundleError if it does not verify: never ship one the device refuses
    # made (and checked) before anything is written; the bundle's name labels its version on the device
    ud = "#cloud-config\n" + _yaml(
        user_data(fb, bundle_name=source_name(bundle) if bundle is not None else None)
    )
    written: dict[str, Path] = {}
    copied = hashlib.sha256()  # what goes to edge-ser/ on the card: part of the instance-id, as user-data is
    made_dir = wheelhouse is not None or bundle is not None
    made_dir = made_dir and not (out_p / "edge-ser").exists()
    what, src = "", Path()
    net = network_config(fb)
    nc = _yaml(net) if net is not None else None
    try:
        if wheelhouse is not None or bundle is not None:
            (out_p / "edge-ser").mkdir(exist_ok=True)
        if wheelhouse is not None:
            what, src = "wheelhouse", Path(wheelhouse)
            _tree_digest(src, "wheelhouse", copied)
            _copy_tree_atomic(src, out_p / "edge-ser" / "wheelhouse")
            written["wheelhouse"] = out_p / "edge-ser" / "wheelhouse"
        if bundle is not None:
            from edge_ser.bundle.fusion import FusionBundle

            what, src = "bundle", Path(bundle)
            if isinstance(loaded, FusionBundle):  # its branches are folders beside it: ship them inside it
                with tempfile.TemporaryDirectory() as tmp:
                    shipped = write_self_contained(loaded, Path(tmp) / "b")
                    _tree_digest(shipped, "bundle", copied)
                    _copy_tree_atomic(shipped, out_p / "edge-ser" / "bundle")
            else:
                _tree_digest(src, "bundle", copied)
                _copy_tree_atomic(src, out_p / "edge-ser" / "bundle")
            written["bundle"] = out_p / "edge-ser" / "bundle"
        # the wheelhouse and bundle copied to the card count too: a new bundle (or wheelhouse) under the same
        # name leaves user-data as it was, and on a card that has booted, cloud-init runs runcmd only for a new
        # instance
        iid = hashlib.sha256((ud + (nc or "")).encode() + copied.digest()).hexdigest()[:12]
        md = _yaml({"instance-id": f"edge-ser-{fb.hostname}-{iid}", "local-hostname": fb.hostname})
        what, src = "the cloud-init files (user-data, network-config, meta-data)", None
        _write_seed(out_p, ud, nc, md, written)
    except (shutil.Error, OSError) as e:
        # a full (or read-only) boot partition: shutil.Error carries one (src, dst, why) per file; say it once,
        # and take back what this run copied, so the card is not left with a wheelhouse and no user-data (nor
        # with a user-data that does not match its meta-data)
        for path in written.values():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if made_dir:
            shutil.rmtree(out_p / "edge-ser", ignore_errors=True)
        raise ConfigError(_copy_failure(out_p, what, src, e, list(written))) from None
    return written


def _write_seed(out_p: Path, ud: str, nc: str | None, md: str, written: dict[str, Path]) -> None:
    """user-data, network-config (or none) and meta-data, each atomically, recorded in `written`."""
    atomic_write(out_p / "user-data", ud, permissions=0o600)
    written["user-data"] = out_p / "user-data"
    if nc is not None:
        atomic_write(out_p / "network-config", nc, permissions=0o600)
        written["network-config"] = out_p / "network-config"
    else:
        (out_p / "network-config").unlink(missing_ok=True)
    atomic_write(out_p / "meta-data", md)
    written["meta-data"] = out_p / "meta-data"


# --- validation with cloud-init's own tools -------------------------------------------------------------------


def cloud_init_version() -> str | None:
    exe = shutil.which("cloud-init")
    if exe is None:
        return None
    r = subprocess.run([exe, "--version"], check=False, capture_output=True, text=True, timeout=60)
    return (r.stdout + r.stderr).strip().split()[-1] if r.returncode == 0 else None


def validate(out: str | os.PathLike[str]) -> list[str]:
    """Check the files in `out` with cloud-init (and netplan); return what was checked, ConfigError on a fault."""
    exe = shutil.which("cloud-init")
    if exe is None:
        raise MissingDependencyError(
            "cloud-init is not installed: apt-get install cloud-init (Debian / Ubuntu)"
        )
    out_p = Path(out)
    done: list[str] = []
    ver = cloud_init_version()

    def run(argv: list[str], what: str) -> None:
        r = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise ConfigError(f"{what}: {(r.stdout + r.stderr).strip()[-2000:]}")

    run([exe, "schema", "--config-file", str(out_p / "user-data")], f"cloud-init {ver} schema user-data")
    done.append(f"cloud-init {ver} schema --config-file user-data: valid cloud-config")
    nc = out_p / "network-config"
    if nc.is_file():
        help_text = subprocess.run(
            [exe, "schema", "--help"], check=False, capture_output=True, text=True
        ).stdout
        if "--schema-type" in help_text:
            run([exe, "schema", "--schema-type", "network-config", "--config-file", str(nc)],
                f"cloud-init {ver} schema network-config")  # fmt: skip
            done.append(f"cloud-init {ver} schema --schema-type network-config: valid")
        with tempfile.TemporaryDirectory() as t:
            run([exe, "devel", "net-convert", "-p", str(nc), "-k", "yaml", "-d", t, "-D", "debian", "-O", "netplan"],
                f"cloud-init {ver} devel net-convert network-config")  # fmt: skip
            rendered = list(Path(t).rglob("*.yaml"))
            if not rendered or "wifis" not in rendered[0].read_text():
                raise ConfigError("cloud-init net-convert: the rendered netplan configuration has no wifis")
            done.append(
                f"cloud-init {ver} devel net-convert: parsed, rendered as netplan with the Wi-Fi network"
            )
            netplan = shutil.which("netplan")
            if netplan is not None:
                etc = Path(t) / "root" / "etc" / "netplan"
                etc.mkdir(parents=True)
                shutil.copyfile(rendered[0], etc / "50-cloud-init.yaml")
                os.chmod(etc / "50-cloud-init.yaml", 0o600)
                run([netplan, "generate", "--root-dir", str(Path(t) / "root")], "netplan generate")
                done.append("netplan generate: the netplan configuration is valid (backend files generated)")
    return done


# --- CLI ------------------------------------------------------------------------------------------------------


def add_firstboot_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hostname", required=True, help="device host name (RFC 1123 label)")
    p.add_argument("--ssh-key", action="append", required=True, metavar="FILE.pub",
                   help="OpenSSH public key file for the login user (repeatable)")  # fmt: skip
    p.add_argument("--user", default="edge", help="login user (sudo, SSH key only; default: edge)")
    p.add_argument("--wifi-ssid", default=None, metavar="SSID",
                   help="Wi-Fi network to join (1..32 bytes; needs --country and --wifi-password or --wifi-open)")  # fmt: skip
    p.add_argument("--wifi-password", default=None, metavar="PASSPHRASE",
                   help="WPA passphrase; stored as its PSK unless --wifi-plaintext (default: $EDGE_SER_WIFI_PASSWORD)")  # fmt: skip
    p.add_argument(
        "--wifi-plaintext", action="store_true", help="store the passphrase itself (WPA3 needs it)"
    )
    p.add_argument("--wifi-hidden", action="store_true",
                   help="the network does not broadcast its SSID (probe for it by name)")  # fmt: skip
    p.add_argument(
        "--wifi-open",
        action="store_true",
        help="the network has no password (it is refused without this flag)",
    )
    p.add_argument("--country", default=None, help="Wi-Fi regulatory domain, e.g. GB (required with Wi-Fi)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--wheelhouse",
        type=Path,
        metavar="DIR",
        help="offline wheelhouse folder (scripts/wheelhouse.py), copied",
    )
    g.add_argument(
        "--wheelhouse-url",
        metavar="URL",
        help="https URL of a wheelhouse folder the device installs from instead (served with the index.html "
        "scripts/wheelhouse.py writes there, or by a server that lists folders)",
    )
    p.add_argument("--wheelhouse-sha256", default=None, metavar="HEX",
                   help="sha256 of the wheelhouse's requirements.lock, checked on the device (needed for http)")  # fmt: skip
    b = p.add_mutually_exclusive_group(required=True)
    b.add_argument(
        "--bundle-path", type=Path, metavar="DIR", help="bundle folder, copied to the boot partition"
    )
    b.add_argument(
        "--bundle-url", metavar="URL", help="https URL of a bundle .tar the device downloads on first boot"
    )
    p.add_argument("--bundle-sha256", default=None, metavar="HEX",
                   help="sha256 of the bundle .tar, checked on the device (needed for http)")  # fmt: skip
    p.add_argument("--timezone", default=None, metavar="TZ", help="time zone, e.g. Europe/London")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra config.env line")
    p.add_argument("--no-validate", action="store_true", help="skip cloud-init's schema check")
    p.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="the mounted boot partition (or any folder)"
    )


def cmd_firstboot(args: argparse.Namespace) -> int:
    password = (
        args.wifi_password if args.wifi_password is not None else os.environ.get("EDGE_SER_WIFI_PASSWORD")
    )
    if args.wifi_ssid and password is None and not args.wifi_open:
        raise ConfigError(
            f"--wifi-ssid {args.wifi_ssid!r} without --wifi-password (or $EDGE_SER_WIFI_PASSWORD): give the "
            "passphrase, or --wifi-open for a network without one"
        )
    if args.wifi_open and password is not None:
        raise ConfigError("--wifi-open with a Wi-Fi password: choose one")
    env = []
    for item in args.env:
        if "=" not in item:
            raise ConfigError(f"--env {item!r}: must be KEY=VALUE")
        k, v = item.split("=", 1)
        env.append((k, v))
    unit, start = repo_unit()
    if start is None:
        print(f"WARNING: this edge-ser install has no {UNIT_NAME} / {START_NAME} in its edge_ser_deploy package "
              f"(a wheel built without them): the device gets a basic unit that runs `edge-ser run` directly, so "
              f"{LOST_WITHOUT_THE_UNIT}. Run `edge-ser firstboot` from a source checkout (pip install -e .) to "
              "get the full unit.", file=sys.stderr)  # fmt: skip
    fb = FirstBoot(
        hostname=args.hostname, ssh_keys=read_ssh_keys(args.ssh_key), user=args.user, wifi_ssid=args.wifi_ssid,
        wifi_password=password if args.wifi_ssid else None,
        country=args.country.upper() if args.country else None, wifi_plaintext=args.wifi_plaintext,
        wifi_hidden=args.wifi_hidden,
        wheelhouse_url=args.wheelhouse_url, wheelhouse_sha256=_lower(args.wheelhouse_sha256), bundle_url=args.bundle_url,
        bundle_sha256=_lower(args.bundle_sha256), timezone=args.timezone, env=tuple(env),
        unit=unit, start_script=start,
    )  # fmt: skip
    written = generate(fb, args.out, wheelhouse=args.wheelhouse, bundle=args.bundle_path)
    for path in written.values():
        print(f"wrote {path}")
    if not args.no_validate:
        if shutil.which("cloud-init") is None:
            print("not validated: cloud-init is not installed here (apt-get install cloud-init)")
        else:
            for line in validate(args.out):
                print(f"checked: {line}")
    return 0


def _lower(hex_digest: str | None) -> str | None:
    """A pasted sha256 in either case (some tools print upper-case hex)."""
    return hex_digest.strip().lower() if hex_digest is not None else None
