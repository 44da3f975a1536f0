"""`edge-ser deploy` for real: a throw-away OpenSSH server on 127.0.0.1, deploys to a temporary ROOT.

The fixture starts Debian's `sshd` (openssh-server; scripts/system-packages.sh installs it) as the current user on
a free port with its own host key, a fresh client key in its AuthorizedKeysFile and `StrictModes no`, so the
deploy runs the real ssh client, the real remote shell, tar and `sha256sum -c`. A fake restart command (appends
to a log) and a health command that runs this repo's `edge-ser info` stand in for systemd. Skips with the
reason when sshd or ssh-keygen is missing, or sshd cannot start.
"""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_ser.errors import ConfigError
from edge_ser_deploy import deploy as dep
from edge_ser_deploy.deploy import DeployError, DeployRolledBack, deploy, parse_target

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"
SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SshServer:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.user = getpass.getuser()
        self.key = tmp / "id_ed25519"
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> None:
        t = self.tmp
        kg = shutil.which("ssh-keygen")
        if kg is None or shutil.which("ssh") is None:
            pytest.skip("OpenSSH client (ssh, ssh-keygen) not installed: apt-get install openssh-client")
        subprocess.run([kg, "-q", "-t", "ed25519", "-N", "", "-f", str(t / "host_ed25519")], check=True)
        subprocess.run([kg, "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        shutil.copy(str(self.key) + ".pub", t / "authorized_keys")
        if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        log = t / "sshd.log"
        for _ in range(3):
            self.port = _free_port()
            cfg = t / "sshd_config"
            cfg.write_text(
                f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {t / 'host_ed25519'}\n"
                f"AuthorizedKeysFile {t / 'authorized_keys'}\nStrictModes no\nPermitRootLogin prohibit-password\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                f"PidFile {t / 'sshd.pid'}\nLogLevel ERROR\nMaxStartups 50\nMaxSessions 50\n"
            )
            chk = subprocess.run([SSHD, "-t", "-f", str(cfg)], capture_output=True, text=True, check=False)
            if chk.returncode != 0:
                pytest.skip(f"sshd rejects the test configuration: {chk.stderr.strip()}")
            with open(log, "wb") as err:
                self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                                             stderr=err)  # fmt: skip
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            if self.proc.poll() is None:
                break
        if self.proc is None or self.proc.poll() is not None:
            pytest.skip(f"sshd could not start: {log.read_text(errors='replace').strip()[-500:]}")
        r = subprocess.run(["ssh", *self.args(), "--", f"{self.user}@127.0.0.1", "true"], capture_output=True, text=True,
                           timeout=30, check=False)  # fmt: skip
        if r.returncode != 0:
            self.stop()
            pytest.skip(f"cannot log in to the test sshd as {self.user}: {r.stderr.strip()[-500:]}")

    @property
    def destination(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def options(self) -> list[str]:
        return [
            "StrictHostKeyChecking=no",
            f"UserKnownHostsFile={self.tmp / 'known_hosts'}",
            "LogLevel=ERROR",
        ]

    def args(self) -> list[str]:
        a = ["-p", str(self.port), "-i", str(self.key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
        for o in self.options():
            a += ["-o", o]
        return a

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if SSHD is None:
        pytest.skip("sshd (Debian openssh-server) not installed: scripts/system-packages.sh installs it")
    server = SshServer(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()


HEALTH_OK = (
    f'PYTHONPATH={shlex.quote(str(REPO))} {shlex.quote(sys.executable)} -m edge_ser info "$EDGE_SER_CURRENT"'
)


def _deploy(sshd: SshServer, root: Path, bundle: str, **kw):
    kw.setdefault("restart_cmd", f'echo "$EDGE_SER_VERSION" >> {shlex.quote(str(root))}.restarts')
    kw.setdefault("health_cmd", HEALTH_OK)
    return deploy(BUNDLES / bundle, sshd.destination, root=str(root), identity=str(sshd.key),
                  ssh_options=sshd.options(), **kw)  # fmt: skip


def _restarts(root: Path) -> list[str]:
    p = Path(f"{root}.restarts")
    return p.read_text().split() if p.exists() else []


def _version(bundle: str) -> str:
    return dep._payload(BUNDLES / bundle).version


def test_deploy_then_idempotent_redeploy(sshd, tmp_path):
    root = tmp_path / "bundles"
    t0 = time.perf_counter()
    res = _deploy(sshd, root, "av_cnn_audio")
    first_s = time.perf_counter() - t0
    v = _version("av_cnn_audio")
    assert res.ok and res.uploaded and res.switched and res.restarted and not res.rolled_back
    assert res.version == v and v.startswith("av_cnn_audio-") and len(v) == len("av_cnn_audio-") + 12
    assert res.previous is None
    assert os.readlink(root / "current") == f"versions/{v}"
    assert "av_cnn_audio" in res.health_output  # edge-ser info ran on the deployed copy
    vdir = root / "versions" / v
    for name in ("manifest.json", "model.onnx", "weights.esq", "SHA256SUMS"):
        assert (vdir / name).is_file()
    ok = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=vdir, capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0 and ok.stdout.count(": OK") == 6, ok.stdout
    from edge_ser.bundle import load_bundle

    assert load_bundle(root / "current").name == "av_cnn_audio"
    assert not list((root / "versions").glob(".incoming-*"))
    assert _restarts(root) == [v]
    print(f"first deploy {first_s:.2f} s; steps {res.steps}")

    # the same bundle again: nothing uploaded, no switch, no restart, still healthy
    again = _deploy(sshd, root, "av_cnn_audio")
    assert again.ok and not again.uploaded and not again.switched and not again.restarted
    assert again.previous == again.current == f"versions/{v}"
    assert os.readlink(root / "current") == f"versions/{v}"
    assert _restarts(root) == [v]

    # damaged on the device: the next deploy notices (sha256) and uploads it again
    (vdir / "weights.esq").write_bytes(b"garbage")
    healed = _deploy(sshd, root, "av_cnn_audio")
    assert healed.ok and healed.uploaded
    assert load_bundle(root / "current").name == "av_cnn_audio"


def test_failed_health_check_rolls_back(sshd, tmp_path):
    root = tmp_path / "bundles"
    v1, v2 = _version("av_cnn_audio"), _version("av_cnn")
    assert _deploy(sshd, root, "av_cnn_audio").ok
    with pytest.raises(DeployRolledBack) as ei:
        _deploy(sshd, root, "av_cnn", health_cmd="echo unhealthy >&2; false")
    e = ei.value
    assert e.step == "health" and str(sshd.destination).split(":")[0] in str(e)
    assert "unhealthy" in str(e) and f"rolled back to versions/{v1}" in str(e)
    r = e.result
    assert r.rolled_back and not r.ok and r.version == v2
    assert r.previous == r.current == f"versions/{v1}"
    assert os.readlink(root / "current") == f"versions/{v1}"
    assert (root / "versions" / v2).is_dir()  # kept for inspection (pruned later)
    assert _restarts(root) == [v1, v2, v1]  # deploy, new version, rollback restart
    assert not [p for p in root.iterdir() if p.name.startswith(".current.tmp")]

    # the command line: exit code 1, says ROLLED BACK
    from edge_ser.cli import main

    argv = ["deploy", str(BUNDLES / "av_cnn"), sshd.destination, "--root", str(root), "-i", str(sshd.key),
            "--restart-cmd", "true", "--health-cmd", "false", "-q"]  # fmt: skip
    for o in sshd.options():
        argv += ["-o", o]
    assert main(argv) == 1
    assert os.readlink(root / "current") == f"versions/{v1}"
    # and a healthy deploy through the command line succeeds (the upload is reused: it verified)
    argv[argv.index("--health-cmd") + 1] = HEALTH_OK
    argv += ["--keep", "2", "--no-multiplex"]
    assert main(argv) == 0
    assert os.readlink(root / "current") == f"versions/{v2}"
    # a third version with keep=2: the oldest (v1) goes, current and previous stay
    v3 = _version("laq_mlp_emodb")
    res = _deploy(sshd, root, "laq_mlp_emodb", keep=2)
    assert res.ok and res.pruned == (v1,) and res.previous == f"versions/{v2}"
    assert sorted(p.name for p in (root / "versions").iterdir()) == sorted([v2, v3])
    assert os.readlink(root / "current") == f"versions/{v3}"


def test_failed_restart_without_previous_removes_current(sshd, tmp_path):
    root = tmp_path / "bundles"
    with pytest.raises(DeployRolledBack) as ei:
        _deploy(sshd, root, "av_cnn_audio", restart_cmd="echo no such unit >&2; exit 5")
    e = ei.value
    assert "the restart failed (exit 5)" in str(e) and "no such unit" in str(e)
    assert e.result.current is None and "no previous version" in str(e)
    assert not os.path.lexists(root / "current")


def test_corrupted_upload_is_caught_on_the_device(sshd, tmp_path, monkeypatch):
    root = tmp_path / "bundles"
    v1 = _version("av_cnn_audio")
    assert _deploy(sshd, root, "av_cnn_audio").ok
    real_tar = dep._tar_bundle

    def damaged(files):  # one flipped byte in weights.esq on the way to the device
        files = dict(files)
        w = bytearray(files["weights.esq"])
        w[len(w) // 2] ^= 0xFF
        files["weights.esq"] = bytes(w)
        return real_tar(files)

    monkeypatch.setattr(dep, "_tar_bundle", damaged)
    with pytest.raises(DeployError) as ei:
        _deploy(sshd, root, "av_cnn")
    msg = str(ei.value)
    assert ei.value.step == "device verify" and "sha256 mismatch" in msg and "weights.esq: FAILED" in msg
    assert "127.0.0.1" in msg
    assert os.readlink(root / "current") == f"versions/{v1}"  # untouched
    assert not (root / "versions" / _version("av_cnn")).exists()
    assert not list((root / "versions").glob(".incoming-*"))  # the upload was removed
    assert _restarts(root) == [v1]


def test_unreachable_host_names_host_and_step(tmp_path):
    if shutil.which("ssh") is None:
        pytest.skip("OpenSSH client not installed")
    port = _free_port()  # nothing listens there
    with pytest.raises(DeployError) as ei:
        deploy(BUNDLES / "av_cnn_audio", f"nobody@127.0.0.1:{port}", root=str(tmp_path), connect_timeout=5,
               ssh_options=["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"])  # fmt: skip
    assert ei.value.step == "connect" and f"127.0.0.1:{port}" in str(ei.value)


def test_bad_bundle_is_refused_before_connecting(tmp_path):
    from edge_ser.errors import BundleError

    bad = tmp_path / "b"
    shutil.copytree(BUNDLES / "av_cnn_audio", bad)
    (bad / "weights.esq").write_bytes(b"x")
    with pytest.raises(BundleError):
        deploy(bad, "nobody@192.0.2.1", root="/tmp/x")


def test_parse_target():
    assert parse_target("pi@raspberrypi.local") == dep.Target("pi", "raspberrypi.local", None)
    assert parse_target("pi@10.0.0.2:2222") == dep.Target("pi", "10.0.0.2", 2222)
    assert parse_target("root@[::1]:22").host == "::1"
    assert parse_target("host", port=2200) == dep.Target(None, "host", 2200)
    for bad in ("pi@", "pi@host:99999", "pi@host:x", "-oProxyCommand=x", "a b@host"):
        with pytest.raises(ConfigError):
            parse_target(bad)
