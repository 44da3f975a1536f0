"""`edge-ser deploy BUNDLE user@host`: put a bundle on a device over SSH, switch to it, check it, roll back.

    edge-ser deploy bundles/av_cnn pi@raspberrypi.local
    edge-ser deploy out/laq/bundle jetson@10.0.0.7:2222 --identity ~/.ssh/fleet --keep 3

Steps (each failure is a `DeployError` naming the host and the step):

1. **verify** the bundle here (`load_bundle`); its version is `<model>-<first 12 hex of sha256(manifest.json)>`.
2. **connect**: one SSH connection, shared by the later steps (OpenSSH connection multiplexing).
3. **probe** the device: `ROOT/versions` is created and writable, `ROOT/current` (if any) is a symbolic link
   (its target is the *previous* version), and whether `ROOT/versions/<version>` already exists and verifies
   (then the upload is skipped: a second deploy of the same bundle is idempotent).
4. **upload**: a tar of the files, plus a `SHA256SUMS` file made from the manifest here, streamed over SSH into
   `ROOT/versions/.incoming-<version>-<random>` (`tar -x` on the device).
5. **device verify**: `sha256sum -c SHA256SUMS` on the device (coreutils, no Python needed), and the sums file's
   own sha256 against the one computed here. A mismatch removes the upload and fails; on success the folder is
   renamed to `ROOT/versions/<version>`.
6. **switch** `ROOT/current` atomically: `ln -sfn versions/<version> .current.tmp.PID` then
   `mv -T .current.tmp.PID current` (rename(2): a reader sees the old or the new link, never none).
7. **restart** the service (`systemctl restart SERVICE`, through `sudo -n` when the SSH user is not root; or
   `restart_cmd`; or nothing with `restart=False`).
8. **health** check (default: `edge-ser info ROOT/current` on the device, then after `health_wait` seconds
   `systemctl is-active SERVICE` when the service was restarted with systemctl; or `health_cmd`). On failure
   `current` is switched back to the previous version the same atomic way, the service restarted again, and
   `DeployRolledBack` raised (the CLI exits with 1 and says so).
9. **prune**: only the `keep` most recently deployed versions stay (never the current or the previous one).

Remote commands (restart, health) see `EDGE_SER_ROOT`, `EDGE_SER_CURRENT` (= ROOT/current), `EDGE_SER_VERSION`,
`EDGE_SER_VERSION_DIR` and `EDGE_SER_SERVICE` in their environment. The device needs a POSIX shell, GNU
coreutils (`sha256sum`, `ln`, `mv -T`) and `tar`: Raspberry Pi OS and JetPack's Ubuntu have them.

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
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge_ser.errors import ConfigError, EdgeSerError

DEFAULT_ROOT = "/opt/edge-ser/bundles"
DEFAULT_SERVICE = "edge-ser"
DEFAULT_KEEP = 5
DEFAULT_HEALTH_WAIT = 5.0
DEVICE_EDGE_SER = "/opt/edge-ser/venv/bin/edge-ser"
"""Where the install scripts put the `edge-ser` command; the default health check falls back to PATH."""
SUMS_NAME = "SHA256SUMS"

_VERSION_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_EXIT_PREFLIGHT = 90


class DeployError(EdgeSerError):
    """A deploy step failed; the message names the target, the step and what went wrong."""

    def __init__(self, target: str, step: str, message: str) -> None:
        super().__init__(f"deploy to {target}: {step}: {message}")
        self.target = target
        self.step = step


class DeployRolledBack(DeployError):
    """The health check failed and `current` was switched back to the previous version (see `result`)."""

    def __init__(self, target: str, message: str, result: DeployResult) -> None:
        super().__init__(target, "health", message)
        self.result = result


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
    """`user@host`, `user@host:port`, `user@[v6addr]:port` or `host`; `port` (if given) wins."""
    s = str(text).strip()
    user, _, hostport = s.rpartition("@")
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
    seconds: float = 0.0
    steps: tuple[tuple[str, float], ...] = field(default=())
    """(step, seconds) in the order run."""

    @property
    def ok(self) -> bool:
        return self.healthy and not self.rolled_back

    def summary(self) -> str:
        if self.rolled_back:
            head = f"{self.version} failed its health check on {self.target}; rolled back to {self.current}"
        else:
            how = "uploaded and verified" if self.uploaded else "already on the device (verified)"
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
    """manifest.json, every file the manifest lists, and SHA256SUMS."""
    sums_sha256: str


def _manifest_bytes(path: Path) -> bytes:
    if path.is_dir():
        return (path / "manifest.json").read_bytes()
    with tarfile.open(path, mode="r:*") as tf:
        for m in tf:
            if m.name.removeprefix("./") == "manifest.json" and m.isfile():
                f = tf.extractfile(m)
                if f is not None:
                    return f.read()
    raise ConfigError(f"bundle {path}: manifest.json not found")


def _payload(bundle_path: str | os.PathLike[str]) -> _Payload:
    from edge_ser.bundle import load_bundle

    path = Path(bundle_path)
    bundle = load_bundle(path)  # BundleError if it does not verify
    raw = _manifest_bytes(path)
    if json.loads(raw) != bundle.manifest:
        raise ConfigError(f"bundle {path}: manifest.json changed while it was being read")
    model = _VERSION_SAFE.sub("_", bundle.name).strip("._-") or "bundle"
    version = f"{model}-{hashlib.sha256(raw).hexdigest()[:12]}"
    files: dict[str, bytes] = {"manifest.json": raw}
    for name in bundle.manifest["files"]:
        if "/" in name or "\n" in name or name in ("manifest.json", SUMS_NAME):
            raise ConfigError(f"bundle {path}: file name {name!r} cannot be deployed")
        files[name] = bundle.files[name]
    # the sums come from the (verified) manifest, not from the bytes about to be sent
    lines = [f"{hashlib.sha256(raw).hexdigest()}  manifest.json"]
    lines += [f"{e['sha256']}  {n}" for n, e in bundle.manifest["files"].items()]
    sums = ("\n".join(lines) + "\n").encode()
    files[SUMS_NAME] = sums
    return _Payload(model, version, files, hashlib.sha256(sums).hexdigest())


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


def _tail(text: str, n: int = 12) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
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
        base = [
            self.ssh,
            "-o",
            "BatchMode=yes",
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
        for o in options:
            base += ["-o", o]
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
                ).returncode  # fmt: skip
            if rc != 0:
                msg = Path(log).read_text(errors="replace")
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None
                raise DeployError(
                    self.name, "connect", f"ssh failed (exit {rc}): {_tail(msg) or 'no message'}"
                )
            self._control = control
        return self

    def __exit__(self, *exc) -> None:
        if self._control is not None:
            subprocess.run([*self.base, "-o", f"ControlPath={self._control}", "-O", "exit", "--",
                            self.target.destination], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30, check=False)  # fmt: skip
            self._control = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def run(
        self, script: str, step: str, *, data: bytes | None = None, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess:
        """Run `script` with `sh -c` on the target; a non-zero exit raises DeployError(step) when `check`."""
        cmd = list(self.base)
        if self._control is not None:
            cmd += ["-o", "ControlMaster=no", "-o", f"ControlPath={self._control}"]
        cmd += ["--", self.target.destination, "sh -c " + shlex.quote(script)]
        try:
            cp = subprocess.run(
                cmd,
                input=data if data is not None else b"",
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DeployError(self.name, step, f"no answer within {timeout:g} s") from None
        cp.stdout = cp.stdout.decode(errors="replace")
        cp.stderr = cp.stderr.decode(errors="replace")
        if cp.returncode == 255:
            raise DeployError(
                self.name, step, f"ssh failed (exit 255): {_tail(cp.stderr) or 'connection lost'}"
            )
        if check and cp.returncode != 0:
            out = _tail(cp.stderr + "\n" + cp.stdout)
            raise DeployError(
                self.name, step, f"failed on the device (exit {cp.returncode}): {out or 'no output'}"
            )
        return cp


# --------------------------------------------------------------------------------------------------------------
# device scripts (POSIX sh)
# --------------------------------------------------------------------------------------------------------------


def _vars(**kv: str) -> str:
    return "".join(f"{k}={shlex.quote(str(v))}\n" for k, v in kv.items())


_PROBE = r"""
for c in sha256sum tar ln mv readlink; do
    command -v "$c" >/dev/null 2>&1 || { echo "'$c' is not installed on the device (coreutils, tar)" >&2; exit 90; }
done
mkdir -p "$R/versions" || { echo "cannot create $R/versions as $(id -un)" >&2; exit 90; }
[ -w "$R/versions" ] || { echo "$R/versions is not writable by $(id -un) (install.sh --deploy-user)" >&2; exit 90; }
if [ -e "$R/current" ] && [ ! -L "$R/current" ]; then
    echo "$R/current exists and is not a symbolic link: move it away first" >&2; exit 90
fi
echo "uid=$(id -u)"
[ -L "$R/current" ] && echo "current=$(readlink "$R/current")"
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
if [ -e "$V" ]; then mv "$V" ".old-$V-$$"; fi
mv "$I" "$V" && rm -rf ".old-$V-$$"
"""

_SWITCH = r"""
cd "$R" || exit 1
[ -d "$TARGET" ] || { echo "$R/$TARGET does not exist" >&2; exit 1; }
touch "$TARGET"
ln -sfn "$TARGET" ".current.tmp.$$" && mv -T ".current.tmp.$$" current || { rm -f ".current.tmp.$$"; exit 1; }
echo "current=$(readlink current)"
[ "$KEEP" -gt 0 ] || exit 0
cd "$R/versions" || exit 0
find . -maxdepth 1 \( -name '.incoming-*' -o -name '.old-*' \) -mmin +60 -exec rm -rf {} + 2>/dev/null
n=0
CURV=${TARGET##*/}
PREVV=${PREV##*/}
for v in $(ls -1t); do
    [ -d "$v" ] || continue
    n=$((n + 1))
    [ "$n" -le "$KEEP" ] && continue
    [ "$v" = "$CURV" ] || [ "$v" = "$PREVV" ] && continue
    rm -rf -- "$v" && echo "pruned=$v"
done
exit 0
"""

_UNLINK = r"""
cd "$R" && rm -f current
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
    if service is not None:
        s += _vars(S=service)
        if wait > 0:
            s += f"sleep {wait:g}\n"
        s += 'state=$(systemctl is-active "$S" 2>&1)\n'
        s += '[ "$state" = active ] || { echo "service $S is $state" >&2; systemctl status --no-pager -n 20 "$S" >&2; exit 1; }\n'
    return s


# --------------------------------------------------------------------------------------------------------------
# deploy
# --------------------------------------------------------------------------------------------------------------


def _check_options(root: str, keep: int, service: str) -> str:
    """ROOT without its trailing '/'; ConfigError for a bad root, keep or service before anything is sent."""
    root = str(root).rstrip("/") or "/"
    if not root.startswith("/"):
        raise ConfigError(f"deploy: --root {root!r} must be an absolute path on the device")
    if keep < 0:
        raise ConfigError(f"deploy: keep {keep} must be >= 0 (0: never prune)")
    if not re.fullmatch(r"[A-Za-z0-9@._:-]+", service):
        raise ConfigError(f"deploy: service name {service!r} has characters a systemd unit name cannot have")
    return root


def _probe(ssh: _Ssh, root: str, payload: _Payload) -> tuple[str, str | None, bool]:
    """(SSH user's uid, target of ROOT/current or None, whether the version is already there and verifies)."""
    cp = ssh.run(_vars(R=root, V=payload.version, SUMS=payload.sums_sha256) + _PROBE, "probe")
    facts = dict(ln.split("=", 1) for ln in cp.stdout.splitlines() if "=" in ln)
    return facts.get("uid", ""), facts.get("current") or None, facts.get("have") == "1"


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


def _roll_back(
    ssh: _Ssh,
    root: str,
    previous: str | None,
    switch: Callable[[str, str], tuple[str, tuple[str, ...]]],
    restart: Callable[[str, str], subprocess.CompletedProcess | None],
) -> tuple[str | None, str]:
    """Switch ROOT/current back to `previous` and restart (or remove it): (new current, what was done)."""
    if previous is None:
        ssh.run(_vars(R=root) + _UNLINK, "rollback")
        return None, f"no previous version: {root}/current removed"
    current, _ = switch(previous, "rollback")
    rc = restart("rollback restart", previous.rstrip("/").rsplit("/", 1)[-1])
    back = f"rolled back to {current}"
    if rc is not None and rc.returncode != 0:
        back += f" (but its restart failed too, exit {rc.returncode}: {_tail(rc.stderr, 3)})"
    elif rc is not None:
        back += " and restarted the service"
    return current, back


def deploy(
    bundle_path: str | os.PathLike[str],
    target: str,
    *,
    port: int | None = None,
    root: str = DEFAULT_ROOT,
    service: str = DEFAULT_SERVICE,
    identity: str | None = None,
    health_cmd: str | None = None,
    health_wait: float = DEFAULT_HEALTH_WAIT,
    health_timeout: float = 300.0,
    ssh_options: Sequence[str] = (),
    restart: bool = True,
    restart_cmd: str | None = None,
    keep: int = DEFAULT_KEEP,
    connect_timeout: float = 15.0,
    multiplex: bool = True,
    log: Callable[[str], None] | None = None,
) -> DeployResult:
    """Deploy the bundle at `bundle_path` to `target` (`user@host[:port]`); see the module docstring.

    Returns the DeployResult of a healthy deploy. Raises DeployRolledBack (with `.result`) when the health check
    failed and the previous version was restored, DeployError for any other failed step, BundleError when the
    bundle does not verify here, ConfigError for bad arguments.
    """
    t_start = time.perf_counter()
    tgt = parse_target(target, port)
    name = str(tgt)
    root = _check_options(root, keep, service)
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
        uid, previous, have = _probe(ssh, root, payload)
        timed("probe", t0)
        new_target = f"versions/{v}"
        already = have and previous is not None and _same_version(previous, v)

        uploaded = False
        if have:
            say(f"{name}: {root}/{new_target} is already there and verifies: upload skipped")
        else:
            t0 = time.perf_counter()
            _upload(ssh, root, payload, say)
            timed("upload + device verify", t0)
            uploaded = True
            say(f"{name}: sha256 of every file verified on the device")

        sudo = "" if uid == "0" else "sudo -n "
        restart_line = (
            restart_cmd if restart_cmd is not None else f"{sudo}systemctl restart {shlex.quote(service)}"
        )
        systemd_checked = restart and restart_cmd is None
        health_script = _health_script(root, v, service, health_cmd, systemd_checked, health_wait)

        def switch(to: str, step: str, prune: int = 0) -> tuple[str, tuple[str, ...]]:
            t = time.perf_counter()
            cp = ssh.run(_vars(R=root, TARGET=to, KEEP=str(prune), PREV=previous or "") + _SWITCH, step)
            timed(step, t)
            facts = [ln.split("=", 1) for ln in cp.stdout.splitlines() if "=" in ln]
            cur = next((val for k, val in facts if k == "current"), to)
            return cur, tuple(val for k, val in facts if k == "pruned")

        def do_restart(step: str, version: str) -> subprocess.CompletedProcess | None:
            if not restart:
                return None
            t = time.perf_counter()
            cp = ssh.run(
                _env(root, version, service) + restart_line, step, timeout=health_timeout, check=False
            )
            timed(step, t)
            return cp

        switched = False
        pruned: tuple[str, ...] = ()
        health_out, healthy, failed_step = "", False, "health"
        if already:
            say(f"{name}: {v} is already current: no switch, no restart")
            current = previous
        else:
            current, pruned = switch(new_target, "switch", prune=keep)
            switched = True
            say(f"{name}: {root}/current -> {current} (was {previous or 'none'})")
            if pruned:
                say(f"{name}: pruned {', '.join(pruned)}")
            rc = do_restart("restart", v)
            if rc is not None and rc.returncode != 0:
                failed_step = "restart"
                health_out = (rc.stdout + rc.stderr).strip() or f"restart command exit {rc.returncode}"
                hc_rc = rc.returncode
            elif rc is not None:
                say(f"{name}: service restarted")
        if failed_step == "health":
            t0 = time.perf_counter()
            hc = ssh.run(health_script, "health", check=False, timeout=health_timeout)
            timed("health", t0)
            health_out = (hc.stdout + hc.stderr).strip()
            healthy = hc.returncode == 0
            hc_rc = hc.returncode

        def result(**kw) -> DeployResult:
            base = dict(target=name, version=v, root=root, version_dir=f"{root}/{new_target}",
                        previous=previous, current=current, uploaded=uploaded, switched=switched,
                        restarted=restart and switched, healthy=healthy, health_output=health_out,
                        pruned=pruned)  # fmt: skip
            base.update(kw)
            return DeployResult(**base, seconds=time.perf_counter() - t_start, steps=tuple(steps))

        if not healthy:
            why = _tail(health_out, 6) or f"exit {hc_rc}"
            if not switched:
                raise DeployError(name, "health", f"{v} (already current) fails its health check: {why}")
            what = "the restart failed" if failed_step == "restart" else "failed its health check"
            say(f"{name}: {v} {what} (exit {hc_rc}): rolling back")
            current, back = _roll_back(ssh, root, previous, switch, do_restart)
            res = result(current=current, rolled_back=True, restarted=restart)
            raise DeployRolledBack(name, f"{v} {what} (exit {hc_rc}): {why}\n  {back}", res)
        say(f"{name}: health check passed")
        return result()


def _same_version(link_target: str, version: str) -> bool:
    return link_target.rstrip("/").rsplit("/", 1)[-1] == version


# --------------------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------------------


def add_deploy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path, help="bundle folder or .tar (verified here before anything is sent)")
    p.add_argument("target", help="user@host or user@host:port (the SSH destination)")
    p.add_argument("--port", type=int, default=None, help="SSH port (default: the target's, else 22)")
    p.add_argument("--identity", "-i", default=None, help="SSH private key file")
    p.add_argument("--ssh-option", "-o", action="append", default=[], metavar="OPTION",
                   help="an ssh -o option, e.g. StrictHostKeyChecking=accept-new (repeatable)")  # fmt: skip
    p.add_argument(
        "--root", default=DEFAULT_ROOT, help=f"bundle folder on the device (default {DEFAULT_ROOT})"
    )
    p.add_argument("--service", default=DEFAULT_SERVICE, help=f"systemd service (default {DEFAULT_SERVICE})")
    p.add_argument("--no-restart", action="store_true", help="switch the link but do not restart the service")
    p.add_argument("--restart-cmd", default=None,
                   help="device shell command instead of `[sudo -n] systemctl restart SERVICE`")  # fmt: skip
    p.add_argument(
        "--health-cmd",
        default=None,
        help="device shell command whose exit status is the health check (default: `edge-ser info "
        "ROOT/current` and, after --health-wait, `systemctl is-active SERVICE`); sees $EDGE_SER_CURRENT",
    )
    p.add_argument(
        "--health-wait",
        type=float,
        default=DEFAULT_HEALTH_WAIT,
        help=f"seconds the restarted service must stay up before the check (default {DEFAULT_HEALTH_WAIT:g})",
    )
    p.add_argument("--keep", type=int, default=DEFAULT_KEEP,
                   help=f"versions kept on the device (default {DEFAULT_KEEP}; 0: never prune)")  # fmt: skip
    p.add_argument(
        "--no-multiplex", action="store_true", help="one SSH connection per step (no ControlMaster)"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="print only the result")


def cmd_deploy(args: argparse.Namespace) -> int:
    def log(s: str) -> None:
        print(f"edge-ser deploy: {s}", file=sys.stderr, flush=True)

    try:
        res = deploy(
            args.bundle, args.target, port=args.port, root=args.root, service=args.service,
            identity=args.identity, health_cmd=args.health_cmd, health_wait=args.health_wait,
            ssh_options=args.ssh_option, restart=not args.no_restart, restart_cmd=args.restart_cmd,
            keep=args.keep, multiplex=not args.no_multiplex, log=None if args.quiet else log,
        )  # fmt: skip
    except DeployRolledBack as e:
        print(f"edge-ser deploy: ROLLED BACK: {e}", file=sys.stderr)
        if e.result.health_output:
            print("  health check output:\n    " + _tail(e.result.health_output, 20), file=sys.stderr)
        return 1
    print(res.summary())
    return 0
