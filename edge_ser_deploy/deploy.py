"""`edge-ser deploy BUNDLE user@host`: put a bundle on a device over SSH, switch to it, check it, roll back.

    edge-ser deploy bundles/av_cnn pi@raspberrypi.local
    edge-ser deploy out/laq/bundle jetson@10.0.0.7:2222 --identity ~/.ssh/fleet --keep 3

Steps (each failure is a `DeployError` naming the host and the step):

1. **verify** the bundle here (`load_bundle`); its version is `<bundle>-<first 12 hex of sha256(manifest.json)>`,
   `<bundle>` the folder's name (or the model's, for a folder called `bundle`): `edge_ser_deploy.naming`.
2. **connect**: one SSH connection, shared by the later steps (OpenSSH connection multiplexing).
3. **probe** the device: `ROOT/versions` is created and writable, `ROOT/current` (if any) is a symbolic link
   (its target is the *previous* version), and whether `ROOT/versions/<version>` already exists and verifies
   (then the upload is skipped: a second deploy of the same bundle is idempotent). A pending marker
   (`ROOT/pending`) left by an interrupted deploy is reported and resolved: its unverified version is rolled
   back and the service restarted on the version before it.
4. **upload**: a tar of the files, plus a `SHA256SUMS` file made from the manifest here, streamed over SSH into
   `ROOT/versions/.incoming-<version>-<random>` (`tar -x` on the device).
5. **device verify**: `sha256sum -c SHA256SUMS` on the device (coreutils, no Python needed), and the sums file's
   own sha256 against the one computed here. A mismatch removes the upload and fails; on success the folder is
   renamed to `ROOT/versions/<version>`.
6. **switch**: `edge-ser-activate activate` writes the marker `ROOT/pending` (previous and new version, this
   deploy's token), then switches `ROOT/current` atomically (rename(2): a reader sees the old or the new link).
7. **restart** the service (`systemctl restart SERVICE`, through `sudo -n` when the SSH user is not root; or
   `restart_cmd`; or nothing with `restart=False`), bounded by `restart_timeout`.
8. **health** check (default: `edge-ser info ROOT/current` on the device, then after `health_wait` seconds
   `systemctl is-active SERVICE`, with its NRestarts and ActiveEnterTimestampMonotonic unchanged since the
   check began (it stayed up), when the service was restarted with systemctl; or `health_cmd`), bounded by
   `health_timeout`.
9. **commit**: `edge-ser-activate commit` removes the marker and prunes: only the `keep` most recently deployed
   versions stay (never the current or the previous one).

Any failure after the switch began (a step that fails or times out, a lost connection, Ctrl-C, any exception)
rolls back: over a fresh SSH connection, `edge-ser-activate rollback` switches `current` back to the previous
version (or removes it when there was none) and the service is restarted on it; `DeployRolledBack` says what
was switched and what was restored. When the rollback cannot reach the device, `DeployStranded` says so: the
device keeps the marker, its start script rolls the unverified version back at the next start after a reboot
(`edge-ser-activate boot-check`), and the next deploy resolves it in its probe step.

The on-device side of steps 6, 9 and the rollback is one POSIX sh script, `edge_ser_deploy/edge-ser-activate`
(`deploy/lib/edge-ser-activate` links to it), shared with the Ansible role, first boot and the service's start.
The deploy pipes this host's copy to `sh -s` on the device rather than running an installed one, so the marker
format and exit codes always match this module, whatever edge-ser version the device was installed with.

Remote commands (restart, health) see `EDGE_SER_ROOT`, `EDGE_SER_CURRENT` (= ROOT/current), `EDGE_SER_VERSION`,
`EDGE_SER_VERSION_DIR` and `EDGE_SER_SERVICE` in their environment, and run under the device's `timeout`. The
device needs a POSIX shell, GNU coreutils (`sha256sum`, `ln`, `mv -T`, `timeout`) and `tar`: Raspberry Pi OS
and JetPack's Ubuntu have them.

This module uses the standard library only: the `ssh` client binary through subprocess (no paramiko). SSH
options (host keys, jump hosts, ...) come from the user's `~/.ssh/config` and from `ssh_options`; the client
runs with `BatchMode=yes`, so it never waits on a password prompt (use a key, and accept the device's host
key once by hand, or pass `-o StrictHostKeyChecking=accept-new`).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from edge_ser.errors import ConfigError, EdgeSerError
from edge_ser.text import is_control
from edge_ser_deploy.naming import source_name, version_name
from edge_ser_deploy.self_contained import fusion_files
from edge_ser_deploy.sums import sha256sums

DEFAULT_ROOT = "/opt/edge-ser/bundles"
DEFAULT_SERVICE = "edge-ser"
DEFAULT_KEEP = 5
DEFAULT_HEALTH_WAIT = 5.0
DEFAULT_HEALTH_TIMEOUT = 120.0
"""Seconds the health check (including `health_wait`) may take on the device before it counts as failed."""
DEFAULT_RESTART_TIMEOUT = 120.0
"""Seconds the restart may take; above systemd's default start timeout (90 s), so systemd gives up first."""
DEVICE_EDGE_SER = "/opt/edge-ser/venv/bin/edge-ser"
"""Where the install scripts put the `edge-ser` command; the default health check falls back to PATH."""
ACTIVATE_NAME = "edge-ser-activate"
DEVICE_ACTIVATE = "/opt/edge-ser/bin/edge-ser-activate"
"""Where the install scripts, the Ansible role and first boot install the script (the service's boot check)."""
MARKER_NAME = "pending"
"""ROOT/pending: written before `current` is switched, removed once the new version passed its health check."""
SUMS_NAME = "SHA256SUMS"

_EXIT_PREFLIGHT = 90
_EXIT_BUSY = 75
"""edge-ser-activate: another activation is pending, or this deploy's was resolved by someone else."""
_TIMED_OUT = (124, 137)
"""Exit codes of coreutils `timeout` (TERM, then KILL after -k)."""
_GUARD = 30.0
"""Seconds the local ssh waits beyond a device-side timeout before it gives up on the connection itself."""
_SCRIPT_TIMEOUT = 60.0
_ROLLBACK_ATTEMPTS = 3


class DeployError(EdgeSerError):
    """A deploy step failed; the message names the target, the step and what went wrong."""

    def __init__(self, target: str, step: str, message: str, *, exit_status: int | None = None) -> None:
        super().__init__(f"deploy to {target}: {step}: {message}")
        self.target = target
        self.step = step
        self.detail = message
        self.exit_status = exit_status
        """The device command's exit status when it ran and failed; None when SSH itself failed or timed out."""


class DeployRolledBack(DeployError):
    """A step after the switch failed, timed out, lost its connection or was interrupted, and `current` was
    switched back to the previous version (or removed when there was none); see `result`. `interrupted`: the
    cause was Ctrl-C / SIGINT (or SIGTERM / SIGHUP to the command line)."""

    def __init__(
        self, target: str, step: str, message: str, result: DeployResult, *, interrupted: bool = False
    ) -> None:
        super().__init__(target, step, message)
        self.result = result
        self.interrupted = interrupted


class DeployStranded(DeployError):
    """A step after the switch failed and the rollback could not be done (the device was unreachable, or the
    rollback itself was interrupted): `current` may still be the new, unverified version. The marker
    `result.marker` stays on the device; its start script rolls back after a reboot and the next deploy
    resolves it."""

    def __init__(
        self, target: str, step: str, message: str, result: DeployResult, *, interrupted: bool = False
    ) -> None:
        super().__init__(target, step, message)
        self.result = result
        self.interrupted = interrupted


@dataclass(frozen=True)
class Target:
    user: str | None
    host: str
    port: int | None = None

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (f"{self.user}@" if self.user else "") + host + (f":{self.port}" if self.port else "")


def parse_target(text: str, port: int | None = None) -> Target:
    """`user@host`, `user@host:port`, `user@[v6addr]:port` or `host`; `port`: the `--port` option.

    ConfigError for an empty user (`@host`: ssh would log in as the local user, not the one written) and for a
    port in the target that `port` contradicts (which one was meant cannot be known); the same port twice is
    fine."""
    s = str(text).strip()
    user, at, hostport = s.rpartition("@")
    if at and not user:
        raise ConfigError(
            f"deploy target {text!r}: empty user name before '@' (give user@host, or host alone for ssh's default)"
        )
    host, p = hostport, None
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ConfigError(f"deploy target {text!r}: unclosed '[' in an IPv6 address")
        host, rest = hostport[1:end], hostport[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"deploy target {text!r}: expected ':port' after ']'")
            p = rest[1:]
    elif hostport.count(":") == 1:
        host, p = hostport.split(":")
    if p is not None:
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise ConfigError(f"deploy target {text!r}: port {p!r} is not a number in 1..65535")
        p = int(p)
    if not host or any(c.isspace() for c in host) or host.startswith("-"):
        raise ConfigError(f"deploy target {text!r}: expected user@host[:port]")
    if user and (any(c.isspace() for c in user) or user.startswith("-")):
        raise ConfigError(f"deploy target {text!r}: bad user name {user!r}")
    if port is not None:
        if not 0 < int(port) < 65536:
            raise ConfigError(f"deploy: port {port} is not in 1..65535")
        if p is not None and p != int(port):
            raise ConfigError(
                f"deploy target {text!r} says port {p} but --port says {int(port)}: give the port once"
            )
        p = int(port)
    return Target(user or None, host, p)


@dataclass(frozen=True)
class DeployResult:
    """What a deploy did. `ok` is True when the new version is current and passed its health check."""

    target: str
    version: str
    root: str
    version_dir: str
    previous: str | None
    """Target of `ROOT/current` before the deploy (e.g. `versions/av_cnn-0123456789ab`), None if there was none."""
    current: str | None
    """Target of `ROOT/current` after the deploy (the previous one again after a rollback)."""
    uploaded: bool
    """False when the version was already on the device and verified (the upload was skipped)."""
    switched: bool
    restarted: bool
    healthy: bool
    rolled_back: bool = False
    pruned: tuple[str, ...] = ()
    health_output: str = ""
    """The output of the failed restart when the restart failed (`DeployError.step == "restart"`), else the
    health check's."""
    failure: str = ""
    """What failed after the switch (empty when nothing did)."""
    marker: str | None = None
    """The pending marker left on the device when the rollback could not be done (DeployStranded)."""
    seconds: float = 0.0
    steps: tuple[tuple[str, float], ...] = field(default=())
    """(step, seconds) in the order run."""

    @property
    def ok(self) -> bool:
        return self.healthy and not self.rolled_back

    def summary(self) -> str:
        if self.rolled_back:
            head = (
                f"{self.version}: {self.failure} on {self.target}; rolled back to {self.current or 'nothing'}"
            )
        elif self.marker is not None:
            head = f"{self.version}: {self.failure} on {self.target}; NOT rolled back (marker {self.marker})"
        else:
            how = "uploaded and verified" if self.uploaded else "already on the device, verified"
            head = f"{self.version} is current on {self.target} ({how})"
        parts = [head]
        if self.previous and not self.rolled_back and self.previous != self.current:
            parts.append(f"previous: {self.previous}")
        if self.pruned:
            parts.append("pruned: " + ", ".join(self.pruned))
        parts.append(f"{self.seconds:.1f} s")
        return "; ".join(parts)


# --------------------------------------------------------------------------------------------------------------
# the local side: bundle -> version name, tar stream, checksums
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Payload:
    model: str
    version: str
    files: dict[str, bytes]
    """manifest.json, its manifest.sha256, every file the manifest lists, and SHA256SUMS."""
    sums_sha256: str


def _manifest_bytes(path: Path) -> bytes:
    """manifest.json's bytes, read as `load_bundle` reads them (a folder, a tar of its files or of the folder)."""
    from edge_ser.bundle.load import MAX_FILE_BYTES, MAX_TOTAL_BYTES
    from edge_ser.bundle.manifest import MANIFEST_NAME
    from edge_ser.bundle.read import open_source
    from edge_ser.limits import MAX_MANIFEST_BYTES

    with open_source(path, str(path), MAX_FILE_BYTES, MAX_TOTAL_BYTES) as source:
        if MANIFEST_NAME not in source.names():
            raise ConfigError(f"bundle {path}: manifest.json not found")
        return source.read(MANIFEST_NAME, MAX_MANIFEST_BYTES)


def _payload(bundle_path: str | os.PathLike[str]) -> _Payload:
    from edge_ser.bundle import MANIFEST_SUM_NAME, load_bundle, manifest_sum_line
    from edge_ser.bundle.fusion import FusionBundle

    path = Path(bundle_path)
    bundle = load_bundle(path)  # BundleError if it does not verify
    raw = _manifest_bytes(path)
    if json.loads(raw) != bundle.manifest:
        raise ConfigError(f"bundle {path}: manifest.json changed while it was being read")
    extra: dict[str, bytes] = {}
    if isinstance(bundle, FusionBundle):  # shipped self-contained: its branches in sub-folders
        raw, extra, _ = fusion_files(bundle)
    version = version_name(source_name(path), raw, bundle.name)
    files: dict[str, bytes] = {"manifest.json": raw, MANIFEST_SUM_NAME: manifest_sum_line(raw)}
    for name in bundle.manifest["files"]:
        if "/" in name or "\n" in name or name in ("manifest.json", MANIFEST_SUM_NAME, SUMS_NAME):
            raise ConfigError(f"bundle {path}: file name {name!r} cannot be deployed")
        files[name] = bundle.files[name]
    files.update(extra)
    # the sums come from the (verified) manifests, not from the bytes about to be sent; first boot writes the same
    sums = sha256sums(raw, files.get)
    files[SUMS_NAME] = sums
    return _Payload(bundle.name, version, files, hashlib.sha256(sums).hexdigest())


def _tar_bundle(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar of `files` at its top level (regular files, mode 0644, owner 0)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = int(time.time())
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------------------
# the SSH side
# --------------------------------------------------------------------------------------------------------------


def _printable(text: str) -> str:
    """`text` (a device's output, or ssh's) with each control character (`edge_ser.text.is_control`: escape, carriage
    return, bidirectional overrides, ...) but newline and tab shown as \\xNN / \\uNNNN: what a device prints cannot
    clear the operator's screen or rewrite the lines of a report, and stays readable as what it was."""
    return "".join(
        (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        if ch not in "\n\t" and is_control(ch)
        else ch
        for ch in text.replace("\r\n", "\n")
    )


def _tail(text: str, n: int = 12) -> str:
    lines = [ln for ln in _printable(text).strip().splitlines() if ln.strip()]
    return "\n    ".join(lines[-n:])


class _Ssh:
    """Runs shell scripts on the target through the `ssh` binary, over one multiplexed connection."""

    def __init__(
        self,
        target: Target,
        *,
        identity: str | None,
        options: Sequence[str],
        connect_timeout: float,
        multiplex: bool,
    ) -> None:
        self.target = target
        self.name = str(target)
        self.ssh = shutil.which("ssh")
        if self.ssh is None:
            raise DeployError(self.name, "connect", "the OpenSSH client (ssh) is not installed here")
        base = [self.ssh, "-o", "BatchMode=yes"]
        for o in options:  # before our defaults: ssh keeps the first value of an option, so the user's win
            base += ["-o", o]
        base += [
            "-o",
            f"ConnectTimeout={max(1, round(connect_timeout))}",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=4",
        ]
        if target.port:
            base += ["-p", str(target.port)]
        if identity:
            base += ["-i", str(Path(identity).expanduser()), "-o", "IdentitiesOnly=yes"]
        self.base = base
        self.multiplex = multiplex
        self._dir: str | None = None
        self._control: str | None = None

    def __enter__(self) -> _Ssh:
        if self.multiplex:
            self._dir = tempfile.mkdtemp(prefix="edge-ser-ssh-")
            control = os.path.join(self._dir, "cm")
            log = os.path.join(self._dir, "master.log")
            with open(log, "wb") as err:  # a file, not a pipe: the backgrounded master keeps its stderr open
                rc = subprocess.run(
                    [*self.base, "-o", "ControlMaster=yes", "-o", f"ControlPath={control}",
                     "-o", "ControlPersist=120", "-N", "-f", "--", self.target.destination],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, timeout=120, check=False,
                    start_new_session=True,
                ).returncode  # fmt: skip
            if rc != 0:
                msg = Path(log).read_text(errors="replace")
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None
                raise DeployError(
                    self.name,
                    "connect",
                    f"ssh failed (exit {rc}): {_tail(msg) or 'no message'}{self._hint(msg)}",
                )
            self._control = control
        return self

    def _hint(self, stderr: str) -> str:
        """What to do about an ssh failure whose cause has a known fix (an unknown host key)."""
        if "Host key verification failed" not in stderr:
            return ""
        return (
            f"\n  {self.target.host}'s host key is not in your known_hosts (ssh runs with BatchMode=yes, so it "
            "cannot ask): log in once by hand to accept it, or add -o StrictHostKeyChecking=accept-new "
            "(deploy/README.md); a key that changed needs `ssh-keygen -R HOST` first"
        )

    def __exit__(self, *exc) -> None:
        if self._control is not None:
            subprocess.run([*self.base, "-o", f"ControlPath={self._control}", "-O", "exit", "--",
                            self.target.destination], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30, check=False, start_new_session=True)  # fmt: skip
            self._control = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def run(
        self,
        script: str,
        step: str,
        *,
        data: bytes | None = None,
        timeout: float = 300,
        check: bool = True,
        fresh: bool = False,
    ) -> subprocess.CompletedProcess:
        """Run `script` with `sh -c` on the target; a non-zero exit raises DeployError(step) when `check`.

        `fresh`: a new connection of its own, not the shared one (which may have died with the failure being
        recovered from). ssh runs in a session of its own, so a Ctrl-C reaches this process only: it decides
        what to stop (subprocess.run kills the ssh client) and what to run next (the rollback).
        """
        cmd = list(self.base)
        if fresh:
            cmd += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
        elif self._control is not None:
            cmd += ["-o", "ControlMaster=no", "-o", f"ControlPath={self._control}"]
        cmd += ["--", self.target.destination, "sh -c " + shlex.quote(script)]
        try:
            cp = subprocess.run(
                cmd,
                input=data if data is not None else b"",
                capture_output=True,
                timeout=timeout,
                check=False,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            raise DeployError(self.name, step, f"no answer within {timeout:g} s") from None
        cp.stdout = _printable(cp.stdout.decode(errors="replace"))
        cp.stderr = _printable(cp.stderr.decode(errors="replace"))
        if cp.returncode == 255:
            raise DeployError(
                self.name,
                step,
                f"ssh failed (exit 255): {_tail(cp.stderr) or 'connection lost'}{self._hint(cp.stderr)}",
            )
        if check and cp.returncode != 0:
            out = _tail(cp.stderr + "\n" + cp.stdout)
            raise DeployError(
                self.name,
                step,
                f"failed on the device (exit {cp.returncode}): {out or 'no output'}",
                exit_status=cp.returncode,
            )
        return cp


# --------------------------------------------------------------------------------------------------------------
# device scripts (POSIX sh)
# --------------------------------------------------------------------------------------------------------------


def _vars(**kv: str) -> str:
    return "".join(f"{k}={shlex.quote(str(v))}\n" for k, v in kv.items())


_PROBE = r"""
for c in sha256sum tar ln mv readlink timeout; do
    command -v "$c" >/dev/null 2>&1 || { echo "'$c' is not installed on the device (coreutils, tar)" >&2; exit 90; }
done
mkdir -p "$R/versions" || { echo "cannot create $R/versions as $(id -un)" >&2; exit 90; }
[ -w "$R/versions" ] || { echo "$R/versions is not writable by $(id -un) (install.sh --deploy-user)" >&2; exit 90; }
# the switch writes ROOT itself (its lock file, the marker, the current link): checked before any upload
[ -w "$R" ] || { echo "$R is not writable by $(id -un): the switch writes its lock file, the marker and the current link there (owner $(stat -c %U "$R" 2>/dev/null || echo ?); install.sh --deploy-user USER makes it USER's)" >&2; exit 90; }
if [ -e "$R/current" ] && [ ! -L "$R/current" ]; then
    echo "$R/current exists and is not a symbolic link: move it away first" >&2; exit 90
fi
echo "uid=$(id -u)"
[ -x "$A" ] && echo "bootcheck=1"
have=0
if [ -d "$R/versions/$V" ] && [ -f "$R/versions/$V/SHA256SUMS" ]; then
    s=$(sha256sum < "$R/versions/$V/SHA256SUMS" | cut -d' ' -f1)
    if [ "$s" = "$SUMS" ] && (cd "$R/versions/$V" && sha256sum -c SHA256SUMS >/dev/null 2>&1); then have=1; fi
fi
echo "have=$have"
exit 0
"""

_UPLOAD = r"""
umask 022
rm -rf "$I" && mkdir "$I" && tar -x --no-same-owner -f - -C "$I" || { rm -rf "$I"; exit 4; }
cd "$I" || exit 4
s=$(sha256sum < SHA256SUMS | cut -d' ' -f1)
if [ "$s" != "$SUMS" ]; then
    echo "SHA256SUMS: FAILED (the checksum list itself was damaged in transit)" >&2
    cd / && rm -rf "$I"; exit 3
fi
if ! out=$(sha256sum -c SHA256SUMS 2>&1); then
    printf '%s\n' "$out" | grep -v ': OK$' >&2
    cd / && rm -rf "$I"; exit 3
fi
cd "$R/versions" || exit 4
# -T: rename(2) itself; a V another deploy made meanwhile is never entered (plain mv put I inside it)
if [ -e "$V" ]; then mv -T "$V" ".old-$V-$$" || exit 4; fi
if ! mv -T "$I" "$V"; then
    # another deploy of the same bundle put V in place after the check above: kept if it checks as ours did
    if [ -f "$V/SHA256SUMS" ] && [ "$(sha256sum < "$V/SHA256SUMS" | cut -d' ' -f1)" = "$SUMS" ] \
        && (cd "$V" && sha256sum -c SHA256SUMS >/dev/null 2>&1); then
        rm -rf "$I" ".old-$V-$$"; exit 0
    fi
    exit 4
fi
# the copy V replaced: removing it is tidying, not the upload (V is in place and checked)
rm -rf ".old-$V-$$" || true
"""


def activate_script() -> bytes:
    """The on-device switch / rollback script, `edge_ser_deploy/edge-ser-activate`, as this edge-ser ships it."""
    return resources.files("edge_ser_deploy").joinpath(ACTIVATE_NAME).read_bytes()


def _facts(text: str) -> dict[str, str]:
    """The key=value lines of a device script's output (the last of a repeated key wins)."""
    return dict(ln.split("=", 1) for ln in text.splitlines() if "=" in ln)


def _activate(
    ssh: _Ssh, root: str, step: str, *args: str, fresh: bool = False, check: bool = True, before: str = ""
) -> subprocess.CompletedProcess:
    """Run edge-ser-activate with `args` on the device: this host's copy, piped to `sh -s` (see the docstring);
    `before`: shell lines run first, in the same connection."""
    argv = " ".join(shlex.quote(a) for a in ("--root", root, *args))
    return ssh.run(f"{before}sh -s -- {argv}", step, data=activate_script(), timeout=_SCRIPT_TIMEOUT, check=check,
                   fresh=fresh)  # fmt: skip


def _bounded(script: str, seconds: float, pidfile: str) -> str:
    """`script` under the device's coreutils `timeout`: its whole process group gets TERM after `seconds` and
    KILL 10 s later, so a hung restart or health check cannot hold the deploy. `timeout` leads its own process
    group and its id is kept in `pidfile` while it runs: a rollback stops it there (_STOP_INFLIGHT) when the
    deploy was interrupted or lost its connection, which would otherwise leave it running on the device."""
    # the command waits (at most 5 s) until its id is in `pidfile`: otherwise a deploy interrupted just after the
    # command started could look for the file before the shell wrote it, and leave the command running
    wait = (
        f"i=0; while [ ! -s {shlex.quote(pidfile)} ] && [ $i -lt 50 ]; do "
        "sleep 0.1 2>/dev/null || sleep 1; i=$((i + 1)); done\n"
    )
    return (
        _vars(F=pidfile)
        + f"timeout -k 10 {seconds:g} sh -c {shlex.quote(wait + script)} </dev/null & p=$!\n"
        + 'echo "$p" >"$F" 2>/dev/null\nwait "$p"; rc=$?\nrm -f "$F"\nexit "$rc"\n'
    )


_STOP_INFLIGHT = r"""
if [ -f "$F" ]; then
    p=$(cat "$F" 2>/dev/null)
    case $p in
        '' | *[!0-9]*) ;;
        *) [ "$(cat "/proc/$p/comm" 2>/dev/null)" = timeout ] && kill -s TERM -- "-$p" 2>/dev/null ;;
    esac
    rm -f "$F"
fi
"""


def _env(root: str, version: str, service: str) -> str:
    return (
        _vars(EDGE_SER_ROOT=root, EDGE_SER_CURRENT=f"{root}/current", EDGE_SER_VERSION=version,
              EDGE_SER_VERSION_DIR=f"{root}/versions/{version}", EDGE_SER_SERVICE=service)
        + "export EDGE_SER_ROOT EDGE_SER_CURRENT EDGE_SER_VERSION EDGE_SER_VERSION_DIR EDGE_SER_SERVICE\n"
    )  # fmt: skip


def _default_health(root: str, service: str | None, wait: float) -> str:
    s = _vars(R=root, E=DEVICE_EDGE_SER)
    s += '[ -x "$E" ] || E=edge-ser\n'
    s += '"$E" info "$R/current" || { echo "edge-ser info $R/current failed" >&2; exit 1; }\n'
    if service is None:
        return s
    return _vars(S=service) + _SERVICE_STATE + s + (f"sleep {wait:g}\n" if wait > 0 else "") + _STAYED_UP


# the service must stay up through the health window, not just be active once: a crash-looping unit
# (Restart=on-failure) is `active` for a moment in every cycle. systemd counts its automatic restarts (NRestarts)
# and stamps each activation (ActiveEnterTimestampMonotonic): both are read as the health check starts (right
# after the restart) and must be unchanged, and the unit active, at the end of the window
_SERVICE_STATE = """st() { systemctl show -p NRestarts -p ActiveEnterTimestampMonotonic "$S" 2>/dev/null | sort | tr '\\n' ' '; }
st0=$(st)
"""
_STAYED_UP = """state=$(systemctl is-active "$S" 2>&1)
if [ "$state" != active ]; then
    echo "service $S is $state" >&2; systemctl status --no-pager -n 20 "$S" >&2; exit 1
fi
st1=$(st)
if [ "$st0" != "$st1" ]; then
    echo "service $S restarted during the health check (it is not staying up: crash loop?): $st0-> $st1" >&2
    systemctl status --no-pager -n 20 "$S" >&2; exit 1
fi
"""


# --------------------------------------------------------------------------------------------------------------
# deploy
# --------------------------------------------------------------------------------------------------------------


def _check_options(
    root: str, keep: int, service: str, *, restart_timeout: float, health_timeout: float
) -> str:
    """ROOT without its trailing '/'; ConfigError for a bad root, keep, service or timeout (nothing sent yet)."""
    root = str(root).rstrip("/") or "/"
    if not root.startswith("/"):
        raise ConfigError(f"deploy: --root {root!r} must be an absolute path on the device")
    if any(not c.isprintable() for c in root):
        raise ConfigError(f"deploy: --root {root!r} has control characters")
    if keep < 0:
        raise ConfigError(f"deploy: --keep {keep} must be >= 0 (0: never prune)")
    if not re.fullmatch(r"[A-Za-z0-9@._:-]+", service):
        raise ConfigError(f"deploy: service name {service!r} has characters a systemd unit name cannot have")
    for opt, value in (("--restart-timeout", restart_timeout), ("--health-timeout", health_timeout)):
        if not 0 < value <= 86400:
            raise ConfigError(f"deploy: {opt} {value:g} must be in (0, 86400] seconds")
    return root


def _probe(ssh: _Ssh, root: str, payload: _Payload) -> tuple[str, bool, bool]:
    """(SSH user's uid, whether the version is already there and verifies, whether the boot check is installed)."""
    cp = ssh.run(
        _vars(R=root, V=payload.version, SUMS=payload.sums_sha256, A=DEVICE_ACTIVATE) + _PROBE, "probe"
    )
    facts = _facts(cp.stdout)
    return facts.get("uid", ""), facts.get("have") == "1", facts.get("bootcheck") == "1"


def _upload(ssh: _Ssh, root: str, payload: _Payload, say: Callable[[str], None]) -> None:
    """Stream the bundle to ROOT/versions/<version> and check its sha256s there (DeployError if wrong)."""
    v, name = payload.version, ssh.name
    incoming = f"{root}/versions/.incoming-{v}-{secrets.token_hex(4)}"
    data = _tar_bundle(payload.files)
    say(f"{name}: uploading {len(payload.files)} files ({len(data) / 1e3:.0f} KB) and checking them there")
    cp = ssh.run(_vars(R=root, V=v, I=incoming, SUMS=payload.sums_sha256) + _UPLOAD, "upload", data=data,
                 timeout=max(300.0, len(data) / 100e3), check=False)  # fmt: skip
    if cp.returncode == 3:
        raise DeployError(name, "device verify", "sha256 mismatch after the upload (upload removed): "
                          + (_tail(cp.stderr) or "?"))  # fmt: skip
    if cp.returncode != 0:
        raise DeployError(name, "upload", f"failed on the device (exit {cp.returncode}): "
                          + (_tail(cp.stderr + "\n" + cp.stdout) or "no output"))  # fmt: skip


def _health_script(
    root: str, version: str, service: str, health_cmd: str | None, systemd_checked: bool, wait: float
) -> str:
    """The health check's device script: `health_cmd`, else `edge-ser info` (+ is-active under systemd)."""
    env = _env(root, version, service)
    if health_cmd is not None:
        return env + health_cmd
    return env + _default_health(root, service if systemd_checked else None, wait)


class _StepFailed(Exception):
    """A restart or health check ran and failed (non-zero exit or its device-side timeout); str: what failed."""


_STAGE_NAMES = {"switch": "switch", "restart": "restart", "health": "health check", "commit": "commit"}


def _exit_text(what: str, cp: subprocess.CompletedProcess, seconds: float) -> str:
    if cp.returncode in _TIMED_OUT:
        return f"the {what} did not finish within {seconds:g} s (stopped on the device)"
    out = _tail(cp.stderr + "\n" + cp.stdout, 6)
    return f"the {what} failed (exit {cp.returncode})" + (f": {out}" if out else "")


@dataclass
class _Rollout:
    """One deploy's device side after the upload: switch, restart, health check, commit, and the way back.

    `switch_and_verify` raises whatever stops it; `recover(exc)` then undoes the switch over a fresh connection
    and returns the error to raise (DeployRolledBack, DeployStranded, or DeployError when nothing was switched).
    """

    ssh: _Ssh
    root: str
    version: str
    service: str
    restart: bool
    restart_line: str
    stop_line: str | None
    """Stops the service when no version is left to run (systemd only); None: leave it."""
    health_script: str
    restart_timeout: float
    health_timeout: float
    keep: int
    bootcheck: bool
    say: Callable[[str], None]
    timed: Callable[[str, float], None]
    make_result: Callable[..., DeployResult]
    previous: str | None = None
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    stage: str = "switch"
    activated: bool = False
    """The device answered that `current` now points at the new version (and the marker is written)."""
    refused: bool = False
    """The device refused the switch (exit 1 / 75 of `activate`): nothing was switched, nothing to undo."""
    output: str = ""
    pruned: tuple[str, ...] = ()

    @property
    def new(self) -> str:
        return f"versions/{self.version}"

    @property
    def marker(self) -> str:
        return f"{self.root}/{MARKER_NAME}"

    @property
    def inflight(self) -> str:
        """Process group id of this deploy's running restart or health check, on the device."""
        return f"{self.root}/.inflight-{self.token}"

    def run_restart(
        self, version: str, step: str, *, fresh: bool = False, line: str | None = None
    ) -> subprocess.CompletedProcess | None:
        """The restart command (or `line`) for `version`, bounded by restart_timeout; None without restart."""
        if not self.restart:
            return None
        t = time.perf_counter()
        script = _env(self.root, version, self.service) + (line or self.restart_line)
        cp = self.ssh.run(_bounded(script, self.restart_timeout, self.inflight), step,
                          timeout=self.restart_timeout + _GUARD, check=False, fresh=fresh)  # fmt: skip
        self.timed(step, t)
        return cp

    def check_health(self) -> subprocess.CompletedProcess:
        t = time.perf_counter()
        cp = self.ssh.run(_bounded(self.health_script, self.health_timeout, self.inflight), "health",
                          timeout=self.health_timeout + _GUARD, check=False)  # fmt: skip
        self.timed("health", t)
        self.output = (cp.stdout + cp.stderr).strip()
        return cp

    def verify_in_place(self, *, repaired: bool) -> None:
        """The version is current already: health check only, after a restart when its files were repaired
        (re-uploaded over a damaged copy). Nothing to switch, so nothing to roll back: DeployError on failure."""
        name = self.ssh.name
        if not repaired:
            self.say(f"{name}: {self.version} is already current: no switch, no restart")
        else:
            self.say(f"{name}: {self.version} is current and was damaged on the device: repaired, restarting")
            rc = self.run_restart(self.version, "restart")
            if rc is not None and rc.returncode != 0:
                raise DeployError(
                    name,
                    "restart",
                    f"{self.version} (current): {_exit_text('restart', rc, self.restart_timeout)}",
                )
        hc = self.check_health()
        if hc.returncode != 0:
            why = _exit_text("health check", hc, self.health_timeout)
            raise DeployError(
                name, "health", f"{self.version} (already current) fails its health check: {why}"
            )
        self.say(f"{name}: health check passed")

    def _switch(self) -> None:
        t = time.perf_counter()
        ttl = int(self.restart_timeout + self.health_timeout + 2 * _GUARD + 2 * _SCRIPT_TIMEOUT)
        by = f"edge-ser deploy from {socket.gethostname()} pid {os.getpid()}"
        cp = _activate(self.ssh, self.root, "switch", "activate", self.version, "--token", self.token,
                       "--ttl", str(ttl), "--by", by, check=False)  # fmt: skip
        self.timed("switch", t)
        if cp.returncode != 0 or _facts(cp.stdout).get("switched") != "1":
            self.refused = True
            why = _tail(cp.stderr + "\n" + cp.stdout, 4) or f"exit {cp.returncode}"
            raise DeployError(self.ssh.name, "switch", f"refused on the device: {why}; nothing switched, "
                              f"{self.root}/current is still {self.previous or 'absent'}")  # fmt: skip
        self.activated = True
        self.say(f"{self.ssh.name}: {self.root}/current -> {self.new} (was {self.previous or 'none'}); "
                 f"marker {self.marker} until it passes its health check")  # fmt: skip

    def switch_and_verify(self) -> None:
        """activate (marker + switch), restart, health check, commit (marker removed, old versions pruned)."""
        self.stage = "switch"
        self._switch()
        self.stage = "restart"
        rc = self.run_restart(self.version, "restart")
        if rc is not None:
            if rc.returncode != 0:
                self.output = (rc.stdout + rc.stderr).strip()
                raise _StepFailed(_exit_text("restart", rc, self.restart_timeout))
            self.say(f"{self.ssh.name}: service restarted")
        self.stage = "health"
        hc = self.check_health()
        if hc.returncode != 0:
            raise _StepFailed(_exit_text("health check", hc, self.health_timeout))
        self.say(f"{self.ssh.name}: health check passed")
        self.stage = "commit"
        t = time.perf_counter()
        cp = _activate(
            self.ssh, self.root, "commit", "commit", "--token", self.token, "--keep", str(self.keep)
        )
        self.timed("commit", t)
        self.pruned = tuple(ln.split("=", 1)[1] for ln in cp.stdout.splitlines() if ln.startswith("pruned="))
        if self.pruned:
            self.say(f"{self.ssh.name}: pruned {', '.join(self.pruned)}")

    # --- the way back -----------------------------------------------------------------------------------------

    def _failure(self, exc: BaseException) -> str:
        what = _STAGE_NAMES.get(self.stage, self.stage)
        if isinstance(exc, _StepFailed):
            return str(exc)
        if isinstance(exc, KeyboardInterrupt):
            sig = f" ({exc.args[0]})" if exc.args else " (Ctrl-C)"
            return f"interrupted{sig} during the {what}"
        if isinstance(exc, DeployError) and exc.exit_status == _EXIT_BUSY:
            return f"another deploy (or the device's boot check) took the device over before the {what}: {exc.detail}"
        if isinstance(exc, DeployError) and exc.exit_status is not None:  # the connection was fine
            return f"the {what} failed: {exc.detail}"
        if isinstance(exc, DeployError):
            return f"connection lost during the {what}: {exc.detail}"
        return f"{type(exc).__name__} during the {what}: {exc}"

    def _rollback(self) -> subprocess.CompletedProcess:
        """`edge-ser-activate rollback` over fresh connections (the shared one may be what failed), retried."""
        last: DeployError | None = None
        for attempt in range(_ROLLBACK_ATTEMPTS):
            if attempt:
                time.sleep(2.0)
            try:
                return _activate(self.ssh, self.root, "rollback", "rollback", "--token", self.token, fresh=True,
                                 check=False, before=_vars(F=self.inflight) + _STOP_INFLIGHT)  # fmt: skip
            except DeployError as e:  # ssh exit 255, or no answer
                last = e
                self._say_on_the_way_back(
                    f"{self.ssh.name}: rollback attempt {attempt + 1} of {_ROLLBACK_ATTEMPTS}: {e.detail}"
                )
        assert last is not None
        raise last

    def _say_on_the_way_back(self, line: str) -> None:
        """`say`, whose failure cannot stop the rollback: the log that failed may be what is being recovered from
        (a terminal that hung up with the SIGHUP that interrupted the deploy fails every later write)."""
        # the rollback matters more than its progress line
        try:
            self.say(line)
        except Exception:
            pass

    def recover(self, exc: BaseException) -> DeployError:
        """Undo the switch after `exc`; the returned error says what was switched and what was restored."""
        failure, name = self._failure(exc), self.ssh.name
        interrupted = isinstance(exc, KeyboardInterrupt)
        self._say_on_the_way_back(f"{name}: {self.version}: {failure}: rolling back")
        try:
            cp = self._rollback()
        except KeyboardInterrupt:
            return self._stranded(failure, "the rollback was interrupted", True)
        except DeployError as e:
            return self._stranded(
                failure, f"the rollback could not reach the device ({e.detail})", interrupted
            )
        facts = _facts(cp.stdout)
        restored = facts.get("current") or None
        if (
            cp.returncode == _EXIT_BUSY
            or facts.get("note") == "stale"
            or (facts.get("note") == "nothing-pending" and restored != self.previous)
        ):
            why = _tail(cp.stderr, 3) or f"current is {restored or 'absent'}"
            return DeployError(name, self.stage, f"{self.version}: {failure}\n  another deploy (or the device's "
                               f"boot check) took the device over meanwhile; left alone: {why}")  # fmt: skip
        if cp.returncode != 0:
            why = f"the rollback failed on the device (exit {cp.returncode}): {_tail(cp.stderr, 4)}"
            return self._stranded(failure, why, interrupted)
        if not self.activated and facts.get("note") == "nothing-pending":
            return DeployError(name, self.stage, f"{self.version}: {failure}; nothing was switched: "
                               f"{self.root}/current is still {restored or 'absent'}")  # fmt: skip
        back = self._after_rollback(restored, facts.get("note", ""))
        switched = f"switched {self.root}/current from {self.previous or 'nothing'} to {self.new}"
        res = self.make_result(current=restored, rolled_back=True, restarted=self.restart, failure=failure,
                               health_output=self.output)  # fmt: skip
        return DeployRolledBack(name, self.stage, f"{self.version}: {failure}\n  {switched}; {back}", res,
                                interrupted=interrupted)  # fmt: skip

    def _after_rollback(self, restored: str | None, note: str) -> str:
        """Restart the service on the restored version (stop it when none is left); what was done, as text."""
        if restored is None:
            head = "no previous version"
            if note == "previous-missing":
                head = f"the previous version {self.previous} is gone from the device"
            back = f"{head}: {self.root}/current removed"
            if self.stop_line is None or not self.restart:
                return back
            stop = self.stop_line
            cp = self._quietly(lambda: self.run_restart(self.version, "rollback stop", fresh=True, line=stop))
            if isinstance(cp, subprocess.CompletedProcess) and cp.returncode == 0:
                return back + "; service stopped"
            return back + f"; stopping the service failed too ({_outcome(cp)})"
        back = f"rolled back to {restored}"
        version = restored.rstrip("/").rsplit("/", 1)[-1]
        cp = self._quietly(lambda: self.run_restart(version, "rollback restart", fresh=True))
        if cp is None:
            return back
        if isinstance(cp, subprocess.CompletedProcess) and cp.returncode == 0:
            return back + " and restarted the service"
        return back + f" (but its restart failed too: {_outcome(cp)})"

    @staticmethod
    def _quietly(
        run: Callable[[], subprocess.CompletedProcess | None],
    ) -> subprocess.CompletedProcess | str | None:
        """run(), or the text of the DeployError / interrupt that stopped it (the rollback is done already)."""
        try:
            return run()
        except DeployError as e:
            return e.detail
        except KeyboardInterrupt:
            return "interrupted"

    def _stranded(self, failure: str, why: str, interrupted: bool) -> DeployStranded:
        if self.activated:
            state = f"{self.root}/current is still {self.new} (unverified)"
            switched = f"switched {self.root}/current from {self.previous or 'nothing'} to {self.new}"
        else:
            state = f"{self.root}/current is {self.new} (unverified) or still {self.previous or 'absent'}"
            switched = f"the switch of {self.root}/current to {self.new} was under way"
        later = (
            "the device rolls it back at its next start after a reboot, and the next `edge-ser deploy` to it "
            f"resolves it (marker {self.marker})"
            if self.bootcheck
            else f"this device has no boot check ({DEVICE_ACTIVATE}: re-run its install script), so only the next "
            f"`edge-ser deploy` to it resolves it (marker {self.marker})"
        )
        res = self.make_result(current=self.new if self.activated else None, restarted=self.restart,
                               failure=failure, marker=self.marker, health_output=self.output)  # fmt: skip
        msg = f"{self.version}: {failure}\n  {switched}; {why}: {state}; {later}"
        return DeployStranded(self.ssh.name, self.stage, msg, res, interrupted=interrupted)


def _outcome(cp: subprocess.CompletedProcess | str | None) -> str:
    if isinstance(cp, subprocess.CompletedProcess):
        return f"exit {cp.returncode}: {_tail(cp.stderr, 3)}" if cp.returncode else "done"
    return str(cp)


def _resolve_pending(ssh: _Ssh, root: str, rollout: _Rollout, say: Callable[[str], None]) -> str | None:
    """ROOT/current's target after resolving what earlier deploys left: a boot-time rollback is reported, a
    pending activation (an interrupted deploy) rolled back and the service restarted on the restored version."""
    st = _facts(_activate(ssh, root, "probe", "status").stdout)
    name, marker = ssh.name, f"{root}/{MARKER_NAME}"
    if st.get("rolled_back_new"):
        say(f"{name}: the device rolled back {st['rolled_back_new']} to {st.get('rolled_back_to') or 'nothing'} "
            f"at {st.get('rolled_back_at', '?')}: {st.get('rolled_back_reason', '?')}")  # fmt: skip
    if st.get("pending") != "1":
        return st.get("current") or None
    if st.get("pending_ok") != "1":
        raise DeployError(name, "probe", f"{marker} is unreadable ({st.get('pending_error', '?')}): current "
                          f"({st.get('current') or 'absent'}) is unverified and the version before it unknown. "
                          f"On the device: {DEVICE_ACTIVATE} --root {root} rollback --to VERSION (or commit "
                          "--force to keep current), then deploy again")  # fmt: skip
    age, ttl = st.get("pending_age", "?"), st.get("pending_ttl", "")
    when = "before the device restarted" if age == "reboot" else f"{age} s ago"
    by, back = st.get("pending_by") or "?", st.get("pending_previous") or "nothing"
    if age.isdigit() and ttl.isdigit() and int(age) <= int(ttl):  # its deploy may well be running right now
        say(f"{name}: {marker}: {st.get('pending_new')} was switched to {when} by {by} and is not verified yet, "
            f"within the {ttl} s its deploy allowed itself: another deploy is probably still running on this device. "
            f"Taking the device over: rolling it back to {back} (that deploy's commit will find its activation gone "
            "and leave this one alone)")  # fmt: skip
    else:
        said = f"its deploy allowed itself {ttl} s" if ttl.isdigit() else "its deploy never came back"
        say(f"{name}: {marker}: {st.get('pending_new')} was switched to {when} by {by} and never verified (an "
            f"interrupted deploy: {said}): rolling it back to {back}")  # fmt: skip
    cur = _facts(_activate(ssh, root, "probe", "rollback").stdout).get("current") or None
    if cur is not None:
        cp = rollout.run_restart(cur.rstrip("/").rsplit("/", 1)[-1], "probe restart")
        if cp is not None and cp.returncode != 0:
            say(f"{name}: warning: restarting the service on {cur} failed ({_outcome(cp)}); deploying anyway")
    say(f"{name}: current is {cur or 'absent'} again")
    return cur


def deploy(
    bundle_path: str | os.PathLike[str],
    target: str,
    *,
    port: int | None = None,
    root: str = DEFAULT_ROOT,
    service: str = DEFAULT_SERVICE,
    identity: str | None = None,
    health_cmd: str | None = None,
    health_wait: float | None = None,
    health_timeout: float = DEFAULT_HEALTH_TIMEOUT,
    restart_timeout: float = DEFAULT_RESTART_TIMEOUT,
    ssh_options: Sequence[str] = (),
    restart: bool = True,
    restart_cmd: str | None = None,
    keep: int = DEFAULT_KEEP,
    connect_timeout: float = 15.0,
    multiplex: bool = True,
    log: Callable[[str], None] | None = None,
) -> DeployResult:
    """Deploy the bundle at `bundle_path` to `target` (`user@host[:port]`); see the module docstring.

    Returns the DeployResult of a healthy deploy. Raises DeployRolledBack (with `.result`) when a step after the
    switch failed, timed out, lost the connection or was interrupted (KeyboardInterrupt) and the previous version
    was restored; DeployStranded when the rollback could not be done (the device keeps the pending marker);
    DeployError for any other failed step (nothing switched); BundleError when the bundle does not verify here;
    ConfigError for bad arguments.
    """
    t_start = time.perf_counter()
    tgt = parse_target(target, port)
    name = str(tgt)
    root = _check_options(root, keep, service, restart_timeout=restart_timeout, health_timeout=health_timeout)
    systemd_checked = restart and restart_cmd is None
    if not restart and restart_cmd is not None:
        raise ConfigError("deploy: --restart-cmd with --no-restart: nothing would run it; give one of them")
    # the wait is part of the default check after a systemctl restart; elsewhere it was dropped without a word
    if health_wait not in (None, 0) and not (health_cmd is None and systemd_checked):
        why = "--health-cmd" if health_cmd is not None else "--restart-cmd" if restart else "--no-restart"
        raise ConfigError(
            f"deploy: --health-wait waits for the service restarted by systemctl before the default health check; "
            f"with {why} nothing would wait (put a sleep into --health-cmd)"
        )
    if health_wait is None:
        health_wait = DEFAULT_HEALTH_WAIT
    if not 0 <= health_wait <= 86400:  # also nan
        raise ConfigError(f"deploy: --health-wait {health_wait:g} must be in 0..86400 seconds")
    if identity and not Path(identity).expanduser().is_file():
        raise ConfigError(f"deploy: --identity {identity}: no such key file here")
    if health_cmd is None and systemd_checked and health_wait >= health_timeout:
        raise ConfigError(
            f"deploy: --health-wait {health_wait:g} must be below --health-timeout {health_timeout:g}"
        )
    say = log or (lambda s: None)
    steps: list[tuple[str, float]] = []

    def timed(step: str, t0: float) -> None:
        steps.append((step, time.perf_counter() - t0))

    t0 = time.perf_counter()
    payload = _payload(bundle_path)
    v = payload.version
    timed("verify", t0)
    say(f"{name}: bundle {bundle_path} verified here: version {v}")

    with _Ssh(tgt, identity=identity, options=ssh_options, connect_timeout=connect_timeout,
              multiplex=multiplex) as ssh:  # fmt: skip
        t0 = time.perf_counter()
        uid, have, bootcheck = _probe(ssh, root, payload)
        sudo = "" if uid == "0" else "sudo -n "
        unit = shlex.quote(service)
        uploaded = False

        def result(**kw) -> DeployResult:
            base = dict(target=name, version=v, root=root, version_dir=f"{root}/versions/{v}",
                        previous=rollout.previous, current=f"versions/{v}", uploaded=uploaded,
                        switched=rollout.activated, restarted=restart and rollout.activated, healthy=False,
                        health_output=rollout.output, pruned=rollout.pruned)  # fmt: skip
            base.update(kw)
            return DeployResult(**base, seconds=time.perf_counter() - t_start, steps=tuple(steps))

        rollout = _Rollout(
            ssh=ssh, root=root, version=v, service=service, restart=restart,
            restart_line=restart_cmd if restart_cmd is not None else f"{sudo}systemctl restart {unit}",
            stop_line=f"{sudo}systemctl stop {unit}" if systemd_checked else None,
            health_script=_health_script(root, v, service, health_cmd, systemd_checked, health_wait),
            restart_timeout=restart_timeout, health_timeout=health_timeout, keep=keep, bootcheck=bootcheck,
            say=say, timed=timed, make_result=result,
        )  # fmt: skip
        if not bootcheck:
            say(f"{name}: note: no {DEVICE_ACTIVATE} on the device (installed before the boot check existed?): "
                "re-run its install script, so an interrupted deploy is rolled back at its next boot")  # fmt: skip
        rollout.previous = _resolve_pending(ssh, root, rollout, say)
        timed("probe", t0)
        in_place = rollout.previous is not None and _same_version(rollout.previous, v)

        if have:
            say(f"{name}: {root}/versions/{v} is already there and verifies: upload skipped")
        else:
            t0 = time.perf_counter()
            _upload(ssh, root, payload, say)
            timed("upload + device verify", t0)
            uploaded = True
            say(f"{name}: sha256 of every file verified on the device")

        if in_place:
            rollout.verify_in_place(repaired=uploaded)
            return result(current=rollout.previous, healthy=True, restarted=restart and uploaded)
        try:
            rollout.switch_and_verify()
        except BaseException as e:  # noqa: BLE001 - every failure after the switch began rolls back, Ctrl-C too
            if rollout.refused:
                raise
            raise rollout.recover(e) from e
        return result(healthy=True)


def _same_version(link_target: str, version: str) -> bool:
    return link_target.rstrip("/").rsplit("/", 1)[-1] == version


# --------------------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------------------


def add_deploy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path, help="bundle folder or .tar (verified here before anything is sent)")
    p.add_argument("target", help="user@host or user@host:port (the SSH destination)")
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help="SSH port (default: the target's, else 22; a different one in the target is refused)",
    )
    p.add_argument("--identity", "-i", default=None, metavar="FILE", help="SSH private key file")
    p.add_argument("--ssh-option", "-o", action="append", default=[], metavar="OPTION",
                   help="an ssh -o option, e.g. StrictHostKeyChecking=accept-new (repeatable)")  # fmt: skip
    p.add_argument(
        "--root",
        default=DEFAULT_ROOT,
        metavar="DIR",
        help=f"bundle folder on the device (default {DEFAULT_ROOT})",
    )
    p.add_argument("--service", default=DEFAULT_SERVICE, help=f"systemd service (default {DEFAULT_SERVICE})")
    p.add_argument("--no-restart", action="store_true", help="switch the link but do not restart the service")
    p.add_argument("--restart-cmd", default=None,
                   help="device shell command instead of `[sudo -n] systemctl restart SERVICE`")  # fmt: skip
    p.add_argument(
        "--restart-timeout",
        type=float,
        default=DEFAULT_RESTART_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds the restart may take before it counts as failed and is rolled back "
        f"(default {DEFAULT_RESTART_TIMEOUT:g})",
    )
    p.add_argument(
        "--health-cmd",
        default=None,
        help="device shell command whose exit status is the health check (default: `edge-ser info "
        "ROOT/current` and, after --health-wait, `systemctl is-active SERVICE` and no restart since); sees $EDGE_SER_CURRENT",
    )
    p.add_argument(
        "--health-wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"seconds the restarted service must stay up before the default check (default {DEFAULT_HEALTH_WAIT:g}; "
        "refused with --health-cmd, --restart-cmd or --no-restart, where nothing would wait)",
    )
    p.add_argument(
        "--health-timeout",
        type=float,
        default=DEFAULT_HEALTH_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds the health check (with --health-wait) may take before it counts as failed and is rolled "
        f"back (default {DEFAULT_HEALTH_TIMEOUT:g})",
    )
    p.add_argument("--keep", type=int, default=DEFAULT_KEEP, metavar="N",
                   help=f"versions kept on the device (default {DEFAULT_KEEP}; 0: never prune)")  # fmt: skip
    p.add_argument(
        "--no-multiplex", action="store_true", help="one SSH connection per step (no ControlMaster)"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="print only the result")


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the command line like Ctrl-C (KeyboardInterrupt), so a killed deploy rolls back."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    old = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def cmd_deploy(args: argparse.Namespace) -> int:
    """Exit codes: 0 deployed, 1 rolled back (130 when interrupted), 3 NOT rolled back (device unreachable), 2
    any other error (nothing switched)."""

    def log(s: str) -> None:
        print(f"edge-ser deploy: {s}", file=sys.stderr, flush=True)

    try:
        with _signals_interrupt():
            res = deploy(
                args.bundle, args.target, port=args.port, root=args.root, service=args.service,
                identity=args.identity, health_cmd=args.health_cmd, health_wait=args.health_wait,
                health_timeout=args.health_timeout, restart_timeout=args.restart_timeout,
                ssh_options=args.ssh_option, restart=not args.no_restart, restart_cmd=args.restart_cmd,
                keep=args.keep, multiplex=not args.no_multiplex, log=None if args.quiet else log,
            )  # fmt: skip
    except DeployRolledBack as e:
        print(f"edge-ser deploy: ROLLED BACK: {e}", file=sys.stderr)
        if e.result.health_output:
            # the output of the step that failed: the restart's, or the health check's (which ran only after a
            # restart that succeeded)
            what = "restart" if e.step == "restart" else "health check"
            print(f"  {what} output:\n    " + _tail(e.result.health_output, 20), file=sys.stderr)
        return 130 if e.interrupted else 1
    except DeployStranded as e:
        print(f"edge-ser deploy: NOT ROLLED BACK: {e}", file=sys.stderr)
        return 3
    print(res.summary())
    return 0
