"""A real OpenSSH server on 127.0.0.1 for tests (Debian openssh-server), run as the current user.

`SshServer(tmp).start()` writes a host key, a client key and an sshd_config under `tmp`, starts `sshd -D` on a
free port (another one if sshd cannot start there: a port found free can be taken before sshd binds it; three
tries) and checks a login works. The sessions' HOME is an empty folder under `tmp` (sshd_config SetEnv),
as on a fresh device: the login shell (bash -c, which sshd runs for every command) then sources none of this
user's dotfiles -- a ~/.bashrc that runs e.g. `pyenv init` cost ~0.1 s of CPU per SSH command, several seconds
per ansible-playbook run. Every failure is a pytest skip with the reason (sshd missing, rejected
config, cannot start or log in). `stop()` ends only the sshd it started.

How a client reaches it: `options()` is ssh's command-line flags (`-o Key=Val` pairs, host key not kept) as
Ansible's ansible_ssh_common_args takes them; `ssh_options()` the bare `Key=Val` values as `edge-ser deploy`
takes them (its ssh_options=, its -o), host key kept in `tmp`/known_hosts; `destination` is `user@127.0.0.1:port`
and `args()` a whole `ssh` command line's flags for it (the login check's).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SshServer:
    def __init__(self, tmp: Path) -> None:
        self.dir = Path(tmp)
        self.user = getpass.getuser()
        self.port = 0  # chosen by start()
        self.key = self.dir / "client_key"
        self.proc: subprocess.Popen | None = None

    def start(self) -> SshServer:
        if SSHD is None:
            pytest.skip("sshd (Debian openssh-server) not installed: scripts/system-packages.sh installs it")
        if not (shutil.which("ssh") and shutil.which("ssh-keygen")):
            pytest.skip("OpenSSH client (ssh, ssh-keygen) not installed: apt-get install openssh-client")
        t = self.dir
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(t / name)], check=True)
        (t / "authorized_keys").write_text((t / "client_key.pub").read_text())
        (t / "home").mkdir(exist_ok=True)
        os.chmod(t / "authorized_keys", 0o600)
        if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory
        cfg, log = t / "sshd_config", t / "sshd.log"
        for _ in range(3):
            self.port = free_port()
            cfg.write_text(
                f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {t / 'host_key'}\n"
                f"AuthorizedKeysFile {t / 'authorized_keys'}\nPasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
                f"StrictModes no\nUsePAM no\nPidFile {t / 'sshd.pid'}\nLogLevel ERROR\nMaxStartups 50\n"
                f"MaxSessions 50\nSubsystem sftp internal-sftp\nSetEnv HOME={t / 'home'}\n"
            )
            chk = subprocess.run([SSHD, "-t", "-f", str(cfg)], check=False, capture_output=True, text=True)
            if chk.returncode != 0:
                pytest.skip(f"sshd rejects the test configuration: {chk.stderr.strip()}")
            with open(log, "wb") as f:
                self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stdout=f, stderr=f)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                    break
                except OSError:
                    time.sleep(0.05)
            if self.proc.poll() is None:
                break
        if self.proc.poll() is not None:
            pytest.skip(f"sshd could not start: {log.read_text(errors='replace').strip()[-500:]}")
        r = subprocess.run(["ssh", *self.args(), "--", f"{self.user}@127.0.0.1", "true"], check=False,
                           capture_output=True, text=True, timeout=30)  # fmt: skip
        if r.returncode != 0:
            self.stop()
            pytest.skip(f"cannot log in to the test sshd as {self.user}: {r.stderr.strip()[-500:]}")
        return self

    @staticmethod
    def options() -> list[str]:
        return ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR"]  # fmt: skip

    @property
    def destination(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def ssh_options(self) -> list[str]:
        return [
            "StrictHostKeyChecking=no",
            f"UserKnownHostsFile={self.dir / 'known_hosts'}",
            "LogLevel=ERROR",
        ]

    def args(self) -> list[str]:
        a = ["-p", str(self.port), "-i", str(self.key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
        for o in self.ssh_options():
            a += ["-o", o]
        return a

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
