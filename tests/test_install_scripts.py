"""deploy/pi/install.sh and deploy/jetson/install.sh: syntax, shellcheck, and the plan their --dry-run prints.

--dry-run changes nothing (no root needed) and prints every command (`RUN ...`) and file (`WRITE ...`); the tests
check the plan: system packages, the service user, the venv, the offline wheelhouse install, the config file,
the systemd unit, and on a Jetson the onnxruntime-gpu choice made from the L4T release file and the wheelhouse.
Also edge_ser.live.sdnotify against a real datagram socket.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
SCRIPTS = [DEPLOY / "pi" / "install.sh", DEPLOY / "jetson" / "install.sh", DEPLOY / "lib" / "common.sh"]


def _dry(script: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, "EDGE_SER_PREFIX": "/opt/edge-ser", **(env or {})}
    return subprocess.run(["bash", str(script), *args, "--dry-run"], capture_output=True, text=True, env=e,
                          timeout=60, check=False)  # fmt: skip


def test_syntax_and_shellcheck():
    posix = [DEPLOY / "systemd" / "edge-ser-start", DEPLOY / "lib" / "edge-ser-activate"]
    for s in [*SCRIPTS, *posix]:
        r = subprocess.run(["bash", "-n", str(s)], capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed")
    r = subprocess.run(["shellcheck", "-x", *map(str, SCRIPTS), *map(str, posix)],
                       capture_output=True, text=True, check=False)  # fmt: skip
    assert r.returncode == 0, r.stdout


def _common_plan(out: str, wh: Path) -> None:
    assert "apt-get install" in out or "system packages already installed" in out
    assert "/opt/edge-ser/venv/bin/pip install --no-index --find-links " + str(wh) in out
    assert "WRITE /etc/edge-ser/config.env" in out and "EDGE_SER_BUNDLE=/opt/edge-ser/bundles/current" in out
    assert "WRITE /etc/systemd/system/edge-ser.service" in out
    for line in ("Restart=on-failure", "WatchdogSec=", "StartLimitBurst=", "User=edge-ser"):
        assert line in out
    assert "RUN systemctl enable edge-ser.service" in out
    assert "install -d -m 0755 -o dev -g edge-ser /opt/edge-ser/bundles" in out
    assert "WRITE /etc/sudoers.d/edge-ser-deploy" in out and "NOPASSWD" in out
    # the switch / rollback script the unit's boot check runs (ExecStartPre as root, before edge-ser info)
    assert "install -m 0755 " in out and "/lib/edge-ser-activate /opt/edge-ser/bin/edge-ser-activate" in out
    assert "ExecStartPre=+/opt/edge-ser/bin/edge-ser-start --boot-check" in out


def test_pi_dry_run_plan(tmp_path):
    wh = tmp_path / "wheelhouse"
    wh.mkdir()
    r = _dry(DEPLOY / "pi" / "install.sh", str(wh), "--deploy-user", "dev", "--pi-camera")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    _common_plan(out, wh)
    assert f"-r {wh}/requirements.lock" in out
    assert "libcamerasrc" in out  # the CSI camera pipeline went into the config
    if "apt-get install" in out:
        assert "gstreamer1.0-libcamera" in out and "python3-opencv" in out
    # a GStreamer camera: the distribution's OpenCV (pip's has no GStreamer), seen through the venv, checked
    assert "-m venv --system-site-packages /opt/edge-ser/venv" in out
    assert "pip uninstall -y opencv-python-headless opencv-python" in out
    assert "CHECK /opt/edge-ser/venv/bin/python: import cv2, GStreamer: YES" in out
    usb = _dry(DEPLOY / "pi" / "install.sh", str(wh), "--deploy-user", "dev")  # camera 0: pip's OpenCV stays
    assert usb.returncode == 0, usb.stderr
    assert "--system-site-packages" not in usb.stdout and "opencv" not in usb.stdout


def test_jetson_dry_run_without_and_with_gpu_wheel(tmp_path):
    wh = tmp_path / "wheelhouse"
    wh.mkdir()
    (wh / "requirements.lock").write_text("numpy==2.2.6\nonnxruntime==1.22.0\nsounddevice==0.5.2\n")
    rel = tmp_path / "nv_tegra_release"
    rel.write_text("# R36 (release), REVISION: 4.3, GCID: 1, BOARD: generic, EABI: aarch64, DATE: x\n")
    env = {"L4T_RELEASE_FILE": str(rel)}
    r = _dry(DEPLOY / "jetson" / "install.sh", str(wh), "--deploy-user", "dev", env=env)
    assert r.returncode == 0, r.stderr
    assert "L4T 36.4.3 (JetPack 6)" in r.stderr
    assert "onnxruntime-gpu wheel was not found" in r.stderr and "pypi.jetson-ai-lab.dev/jp6" in r.stderr
    _common_plan(r.stdout, wh)
    assert f"-r {wh}/requirements.lock" in r.stdout  # the CPU onnxruntime from the lock

    py = subprocess.run(["python3", "-c", "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')"],
                        capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    gpu = wh / f"onnxruntime_gpu-1.23.0-{py}-{py}-linux_aarch64.whl"
    gpu.write_bytes(b"")
    r = _dry(DEPLOY / "jetson" / "install.sh", str(wh), "--deploy-user", "dev", env=env)
    assert r.returncode == 0, r.stderr
    assert "NVIDIA GPU build" in r.stderr and "not found" not in r.stderr
    assert f"--no-deps {gpu}" in r.stdout and "pip uninstall -y onnxruntime" in r.stdout
    _common_plan(r.stdout, wh)


def test_scripts_refuse_bad_usage(tmp_path):
    r = subprocess.run(["bash", str(DEPLOY / "pi" / "install.sh"), "--bogus"], capture_output=True, text=True,
                       check=False)  # fmt: skip
    assert r.returncode != 0 and "unknown option --bogus" in r.stderr


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    """A datagram socket standing for systemd's NOTIFY_SOCKET, with a 2 s watchdog for this process."""
    from edge_ser.live import sdnotify

    path = str(tmp_path / "notify")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    sdnotify.reset()
    try:
        yield srv
    finally:
        srv.close()
        sdnotify.reset()


def test_sdnotify_ready_and_watchdog(notify_socket, monkeypatch):
    from edge_ser.live import sdnotify

    srv = notify_socket
    sdnotify.ping(now=100.0)
    assert srv.recv(64) == b"READY=1"
    assert srv.recv(64) == b"WATCHDOG=1"
    sdnotify.ping(now=100.2)  # rate-limited: nothing within interval / 4
    sdnotify.ping(now=100.6)
    assert srv.recv(64) == b"WATCHDOG=1"
    srv.settimeout(0.1)
    with pytest.raises(TimeoutError):
        srv.recv(64)
    sdnotify.reset()
    monkeypatch.delenv("NOTIFY_SOCKET")
    sdnotify.ping()  # outside systemd: a no-op
    assert sdnotify.notify("READY=1") is False
    sdnotify.reset()


def test_enrolment_keeps_the_watchdog_fed_before_the_loop(tmp_path, notify_socket):
    """Review: the unit's watchdog (WatchdogSec=30, Type=simple: armed from the start) was first fed by the live
    loop, so an `--enroll` of many files on a Pi that took longer was killed before the loop began. Each enrolled
    file now sends WATCHDOG=1 (rate-limited), and READY=1 still only from the loop."""
    from edge_ser.cli.common import enroll_files
    from edge_ser.live import sdnotify

    class Rec:
        def enrolled(self, f):
            return False

        def enroll_file(self, f, **gate):
            return 1

    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(3):
        (clips / f"c{i}.wav").write_bytes(b"")
    srv = notify_socket
    assert enroll_files(Rec(), [clips]).startswith("enrolled 3 clip(s)")
    assert srv.recv(64) == b"WATCHDOG=1"  # the first file; the rest within interval / 4
    sdnotify.ping(now=1e9)  # the loop: READY=1 now, then its own ping
    assert srv.recv(64) == b"READY=1"
    assert srv.recv(64) == b"WATCHDOG=1"


def _functions(tmp: Path, script: str) -> subprocess.CompletedProcess:
    """Run `script` in bash with deploy/lib/common.sh sourced, for real (no --dry-run), under PREFIX/ETC in `tmp`."""
    env = dict(os.environ, EDGE_SER_PREFIX=str(tmp / "opt"), EDGE_SER_ETC=str(tmp / "etc"))
    return subprocess.run(["bash", "-c", f'set -euo pipefail; . "$0"; {script}', str(DEPLOY / "lib" / "common.sh")],
                          capture_output=True, text=True, env=env, timeout=120, check=False)  # fmt: skip


def _sees_system_packages(venv: Path) -> bool:
    """Whether the venv's Python has its base installation's site-packages on sys.path."""
    code = (
        "import sys; print(any(p.startswith(sys.base_prefix) and p.endswith(('site-packages', 'dist-packages'))"
        " for p in sys.path))"
    )
    r = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True)
    return r.stdout.strip() == "True"


def test_a_rerun_with_another_camera_converges_the_venv_and_config_env(tmp_path):
    """install.sh run again with --pi-camera left the venv without system site packages (ensure_venv kept an
    existing venv as it was) after system_opencv had removed pip's OpenCV: no OpenCV at all; and config.env kept
    its old camera. Now the venv's include-system-site-packages follows the camera each run, and config.env's
    EDGE_SER_CAMERA follows a camera option (the rest of the file kept); without one, the configured camera stays."""
    import sys

    venv = tmp_path / "opt" / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    cfg = venv / "pyvenv.cfg"
    assert "include-system-site-packages = false" in cfg.read_text()
    r = _functions(tmp_path, "VENV_ARGS=(--system-site-packages); PYTHON=false ensure_venv")
    assert r.returncode == 0, r.stderr
    assert "include-system-site-packages false -> true" in r.stderr
    assert "include-system-site-packages = true" in cfg.read_text() and _sees_system_packages(venv)
    r = _functions(tmp_path, "VENV_ARGS=(); ensure_venv")  # the camera dropped again: pip's OpenCV comes back
    assert r.returncode == 0 and "include-system-site-packages = false" in cfg.read_text(), r.stderr
    assert cfg.read_text().count("include-system-site-packages") == 1 and not _sees_system_packages(venv)

    etc = tmp_path / "etc"
    r = _functions(tmp_path, "write_config /b 0")
    assert r.returncode == 0 and "EDGE_SER_CAMERA=0\n" in (etc / "config.env").read_text(), r.stderr
    (etc / "config.env").write_text((etc / "config.env").read_text() + "EDGE_SER_MINE=kept\n")  # an edit
    pipe = "libcamerasrc ! video/x-raw,width=640 ! videoconvert ! appsink"
    r = _functions(tmp_path, f"CAMERA_GIVEN=1; write_config /b '{pipe}'")
    text = (etc / "config.env").read_text()
    assert r.returncode == 0 and f"EDGE_SER_CAMERA={pipe}\n" in text and "EDGE_SER_MINE=kept\n" in text, (
        r.stderr
    )
    assert text.count("EDGE_SER_CAMERA=") == 1 and "EDGE_SER_CAMERA '0' -> 'libcamerasrc" in r.stderr
    r = _functions(tmp_path, "configured_camera")
    assert r.stdout.strip() == pipe

    # a re-run of install.sh without a camera option: the configured camera, and the venv made for it
    wh = tmp_path / "wh"
    wh.mkdir()
    r = _dry(DEPLOY / "pi" / "install.sh", str(wh), "--deploy-user", "dev", env={"EDGE_SER_ETC": str(etc)})
    assert r.returncode == 0, r.stderr
    assert f"EDGE_SER_CAMERA={pipe} from {etc}/config.env" in r.stderr
    assert "pip uninstall -y opencv-python-headless" in r.stdout


def test_the_dry_run_prints_the_plan_a_real_run_would_follow(tmp_path):
    """--dry-run printed `WRITE .../config.env` and `RUN systemctl restart` always, where a real run keeps an
    existing config.env and restarts nothing until a bundle is deployed: it now prints what a run would do."""
    wh = tmp_path / "wh"
    wh.mkdir()
    prefix, etc = tmp_path / "opt", tmp_path / "etc"
    env = {"EDGE_SER_PREFIX": str(prefix), "EDGE_SER_ETC": str(etc)}
    fresh = _dry(DEPLOY / "pi" / "install.sh", str(wh), "--deploy-user", "dev", env=env)
    assert fresh.returncode == 0, fresh.stderr
    assert f"WRITE {etc}/config.env" in fresh.stdout and "RUN systemctl restart" not in fresh.stdout
    assert "no bundle yet: the service starts after the first `edge-ser deploy" in fresh.stderr

    etc.mkdir()
    (etc / "config.env").write_text("EDGE_SER_BUNDLE=/x\nEDGE_SER_CAMERA=0\n")
    (prefix / "bundles" / "versions" / "v1").mkdir(parents=True)
    (prefix / "bundles" / "current").symlink_to("versions/v1")
    again = _dry(DEPLOY / "pi" / "install.sh", str(wh), "--deploy-user", "dev", env=env)
    assert again.returncode == 0, again.stderr
    assert f"WRITE {etc}/config.env" not in again.stdout and f"{etc}/config.env exists: kept" in again.stderr
    assert "RUN systemctl restart edge-ser.service" in again.stdout
    assert (etc / "config.env").read_text() == "EDGE_SER_BUNDLE=/x\nEDGE_SER_CAMERA=0\n"  # a dry run


def test_a_deploy_user_that_does_not_exist_is_refused_before_anything_changes(tmp_path):
    """`install.sh --deploy-user nosuchuser` went through apt, the service user and the venv and then failed with
    a bare `install: invalid user`. Both scripts now check the user first (a dry run warns and goes on)."""
    import re

    r = _functions(tmp_path, "DEPLOY_USER=nosuchuser-edge; check_deploy_user")
    assert r.returncode == 1 and "--deploy-user nosuchuser-edge: no such user on this machine" in r.stderr
    assert "nothing was changed" in r.stderr
    r = _functions(tmp_path, "DEPLOY_USER=root; check_deploy_user")
    assert r.returncode == 0, r.stderr
    for script in (DEPLOY / "pi" / "install.sh", DEPLOY / "jetson" / "install.sh"):
        text = script.read_text()
        first_change = min(text.index(c) for c in ("\napt_install", "\nensure_user", "\nensure_layout"))
        assert re.search(r"\ncheck_deploy_user\n", text[:first_change]), script
    wh = tmp_path / "wh"
    wh.mkdir()
    dry = _dry(DEPLOY / "pi" / "install.sh", str(wh), "--deploy-user", "nosuchuser-edge")
    assert (
        dry.returncode == 0 and "no such user here (a real run stops before changing anything)" in dry.stderr
    )


def test_jetson_gpu_wheel_without_a_usable_lock_is_refused_before_anything_changes(tmp_path):
    """With NVIDIA's onnxruntime-gpu wheel, a wheelhouse without requirements.lock gave an empty filtered lock:
    pip installed nothing, exited 0, and the install said done without numpy, OpenCV or sounddevice. Now a
    missing lock (real run) or one listing nothing besides onnxruntime (any run) stops before any change."""
    py = subprocess.run(["python3", "-c", "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')"],
                        capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    wh = tmp_path / "wheelhouse"
    wh.mkdir()
    (wh / f"onnxruntime_gpu-1.23.0-{py}-{py}-linux_aarch64.whl").write_bytes(b"")
    rel = tmp_path / "nv_tegra_release"
    rel.write_text("# R36 (release), REVISION: 4.3, GCID: 1, BOARD: generic, EABI: aarch64, DATE: x\n")
    env = {"L4T_RELEASE_FILE": str(rel), "EDGE_SER_ETC": str(tmp_path / "etc")}
    (wh / "requirements.lock").write_text("# pinned\nonnxruntime==1.22.0\n")
    r = _dry(DEPLOY / "jetson" / "install.sh", str(wh), "--deploy-user", "dev", env=env)
    assert r.returncode == 1 and "requirements.lock lists nothing besides onnxruntime" in r.stderr
    assert "RUN" not in r.stdout
    # a real run (as "root": a stub `id`) without the lock stops before apt, the user or the venv
    (wh / "requirements.lock").unlink()
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "id").write_text('#!/bin/sh\n[ "$*" = -u ] && { echo 0; exit 0; }\nexec /usr/bin/id "$@"\n')
    (stub / "id").chmod(0o755)
    e = {
        **os.environ,
        **env,
        "EDGE_SER_PREFIX": str(tmp_path / "opt"),
        "PATH": f"{stub}:{os.environ['PATH']}",
    }
    r = subprocess.run(["bash", str(DEPLOY / "jetson" / "install.sh"), str(wh), "--deploy-user", "root"],
                       capture_output=True, text=True, env=e, timeout=60, check=False)  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert f"{wh}/requirements.lock not found" in r.stderr and "nothing was changed" in r.stderr
    assert not (tmp_path / "opt").exists()


def test_the_jetson_scripts_temp_lock_is_removed_however_the_run_ends(tmp_path):
    """jetson/install.sh made its filtered lock with mktemp but set the trap that removes it only before the pip
    step: a run that stopped in between (a missing package list, apt, the service user) left it in /tmp. The trap
    is now set where the file is made. Here the package list step fails (a stub `sed` that fails on it)."""
    py = subprocess.run(["python3", "-c", "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')"],
                        capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    wh = tmp_path / "wheelhouse"
    wh.mkdir()
    (wh / f"onnxruntime_gpu-1.23.0-{py}-{py}-linux_aarch64.whl").write_bytes(b"")
    (wh / "requirements.lock").write_text("numpy==2.2.6\nonnxruntime==1.22.0\n")
    rel = tmp_path / "nv_tegra_release"
    rel.write_text("# R36 (release), REVISION: 4.3, GCID: 1, BOARD: generic, EABI: aarch64, DATE: x\n")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    stub = tmp_path / "bin"
    stub.mkdir()
    sed = shutil.which("sed")
    (stub / "sed").write_text(f'#!/bin/sh\ncase "$*" in *apt-packages*) exit 3;; esac\nexec {sed} "$@"\n')
    (stub / "sed").chmod(0o755)
    env = {"L4T_RELEASE_FILE": str(rel), "EDGE_SER_ETC": str(tmp_path / "etc"), "TMPDIR": str(tmp)}
    r = _dry(DEPLOY / "jetson" / "install.sh", str(wh), "--deploy-user", "dev", env=env)
    assert r.returncode == 0 and "NVIDIA GPU build" in r.stderr, r.stderr
    assert list(tmp.iterdir()) == []
    r = _dry(DEPLOY / "jetson" / "install.sh", str(wh), "--deploy-user", "dev",
             env={**env, "PATH": f"{stub}:{os.environ['PATH']}"})  # fmt: skip
    assert r.returncode != 0 and "apt-get" not in r.stdout, r.stdout + r.stderr
    assert list(tmp.iterdir()) == []


def test_the_pi_script_names_a_dry_run_once_and_a_real_run_not_at_all(tmp_path):
    """pi/install.sh's `${DRY_RUN:+ }` added a space on every run (DRY_RUN is always set, 0 or 1): the device line
    of a real run ended in a stray space. It now tests the value, as jetson/install.sh does."""
    wh = tmp_path / "wh"
    wh.mkdir()
    r = _dry(
        DEPLOY / "pi" / "install.sh", str(wh), "--deploy-user", "dev", env={"EDGE_SER_ETC": str(tmp_path)}
    )
    assert r.returncode == 0, r.stderr
    assert f"; wheelhouse: {wh} (dry run)\n" in r.stderr, r.stderr
    for script in ("pi", "jetson"):
        text = (DEPLOY / script / "install.sh").read_text()
        assert "${DRY_RUN:+" not in text and """$([ "$DRY_RUN" = 1 ] && echo ' (dry run)')""" in text
    assert "Raspberry Pi OS (Bookworm or Trixie" in (DEPLOY / "pi" / "install.sh").read_text()
    readme = (DEPLOY / "README.md").read_text()  # the Jetson table had `--deploy-user $USER`, unquoted
    assert "--deploy-user $USER" not in readme and "scp -r deploy wheelhouse/jetpack6 " in readme


def test_the_sudoers_rule_is_validated_and_renamed_into_place(tmp_path):
    """The sudoers rule was written with `install -D` (not atomic) and never checked: a bad rule breaks every sudo
    on the device. Now: a temp file (mode 0440) in the same folder, `visudo -cf` when there is one, then mv."""
    stub = tmp_path / "bin"
    stub.mkdir()
    visudo = stub / "visudo"
    visudo.write_text('#!/bin/sh\necho "visudo $*" >>"$VISUDO_LOG"\ngrep -q NOPASSWD "$2"\n')
    visudo.chmod(0o755)
    sd = tmp_path / "sudoers.d"
    sd.mkdir()
    log = tmp_path / "visudo.log"
    path = os.environ["PATH"]
    rule = "dev ALL=(root) NOPASSWD: /usr/bin/systemctl restart edge-ser"
    r = _functions(
        tmp_path,
        f'export PATH={stub}:{path} VISUDO_LOG={log}; echo "{rule}" | write_sudoers {sd}/edge-ser-deploy',
    )
    assert r.returncode == 0, r.stderr
    f = sd / "edge-ser-deploy"
    assert f.read_text() == rule + "\n" and (f.stat().st_mode & 0o777) == 0o440
    assert f"visudo -cf {sd}/.edge-ser-deploy." in log.read_text()
    assert sorted(p.name for p in sd.iterdir()) == ["edge-ser-deploy"]
    # an invalid rule: refused, the temp file removed, the installed rule left as it was
    r = _functions(
        tmp_path,
        f"export PATH={stub}:{path} VISUDO_LOG={log}; echo 'garbage' | write_sudoers {sd}/edge-ser-deploy",
    )
    assert r.returncode == 1 and "is invalid (visudo -cf failed" in r.stderr
    assert f.read_text() == rule + "\n" and sorted(p.name for p in sd.iterdir()) == ["edge-ser-deploy"]


def test_no_deploy_user_at_all_is_refused_before_anything_changes(tmp_path):
    """Run as root (not through sudo) without --deploy-user: root-owned bundles, no sudoers rule and a hint
    naming an empty user. Now a clear error before any change (a dry run warns and goes on)."""
    r = _functions(tmp_path, "DEPLOY_USER=; check_deploy_user")
    assert (
        r.returncode == 1 and "run with --deploy-user NAME" in r.stderr and "nothing was changed" in r.stderr
    )
    assert not (tmp_path / "opt").exists()
    wh = tmp_path / "wh"
    wh.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "SUDO_USER"}
    dry = subprocess.run(["bash", str(DEPLOY / "pi" / "install.sh"), str(wh), "--dry-run"], capture_output=True,
                         text=True, env={**env, "EDGE_SER_PREFIX": "/opt/edge-ser"}, timeout=60, check=False)  # fmt: skip
    assert dry.returncode == 0 and "warning: run with --deploy-user NAME" in dry.stderr


def test_jetson_refuses_jetpack_5(tmp_path):
    """L4T R35 (JetPack 5) was accepted, but its Python 3.8 cannot run edge-ser (Python >= 3.10, numpy >= 2) and
    no jetpack5 wheelhouse exists: now refused, naming JetPack 6 (R36), before any change."""
    wh = tmp_path / "wheelhouse"
    wh.mkdir()
    (wh / "requirements.lock").write_text("numpy==2.2.6\n")
    rel = tmp_path / "nv_tegra_release"
    rel.write_text("# R35 (release), REVISION: 6.0, GCID: 1, BOARD: generic, EABI: aarch64, DATE: x\n")
    r = _dry(
        DEPLOY / "jetson" / "install.sh", str(wh), "--deploy-user", "dev", env={"L4T_RELEASE_FILE": str(rel)}
    )
    assert (
        r.returncode == 1
        and "L4T R35.6.0 is JetPack 5" in r.stderr
        and "needs JetPack 6 (L4T R36" in r.stderr
    )
    assert "RUN" not in r.stdout and "WRITE" not in r.stdout
    assert "JetPack 5 / 6" not in (DEPLOY / "README.md").read_text()


def test_a_gstreamer_camera_without_a_working_system_opencv_says_how_to_get_pip_opencv_back(tmp_path):
    """system_opencv uninstalls pip's OpenCV; when the system's does not import (bookworm: built against numpy 1)
    the warning said to set EDGE_SER_CAMERA=0 in config.env, which leaves the venv without cv2. It now says to
    run the install again with --camera 0 (pip_install_wheelhouse then reinstalls the lock's OpenCV)."""
    venv_bin = tmp_path / "opt" / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    for name, code in (("pip", 0), ("python", 1)):
        (venv_bin / name).write_text(f"#!/bin/sh\nexit {code}\n")
        (venv_bin / name).chmod(0o755)
    r = _functions(tmp_path, "system_opencv")
    assert r.returncode == 0, r.stderr
    assert (
        "run the install again with --camera 0" in r.stderr and "reinstalled from the wheelhouse" in r.stderr
    )
    assert "EDGE_SER_CAMERA=0 in" not in r.stderr
    # and that re-run does reinstall it: the lock from the wheelhouse, no OpenCV uninstall, no system packages
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "config.env").write_text("EDGE_SER_CAMERA=libcamerasrc ! videoconvert ! appsink\n")
    wh = tmp_path / "wh"
    wh.mkdir()
    env = {"EDGE_SER_ETC": str(etc)}
    again = _dry(DEPLOY / "pi" / "install.sh", str(wh), "--deploy-user", "dev", "--camera", "0", env=env)
    assert again.returncode == 0, again.stderr
    assert f"-r {wh}/requirements.lock" in again.stdout and "uninstall" not in again.stdout
    assert "--system-site-packages" not in again.stdout


def test_the_docs_never_tell_a_user_to_deploy_as_pi():
    """deploy/README.md said `--deploy-user pi`; current Raspberry Pi OS images have no `pi` user, so the install
    stopped at check_deploy_user. Every install example now passes the reader's own login ("$USER")."""
    import re

    docs = [REPO / "README.md", DEPLOY / "README.md", *SCRIPTS, *(REPO / "docs").glob("**/*.md")]
    for doc in docs:
        for line in doc.read_text().splitlines():
            if re.search(r"install\.sh .*--deploy-user \S", line):
                assert re.search(r'--deploy-user (USER|"\$USER"|\$USER)(\s|\]|$)', line), f"{doc}: {line}"


def _fake_venv(venv: Path, pip: str) -> None:
    """A venv stand-in: bin/python imports edge_ser when lib/edge_ser exists; bin/pip is the shell code `pip`."""
    (venv / "bin").mkdir(parents=True)
    (venv / "lib").mkdir()
    (venv / "lib" / "runtime").write_text("old\n")
    (venv / "lib" / "edge_ser").write_text("")
    py = '#!/bin/sh\nd=$(dirname "$0")/../lib\ncase "$*" in *"import edge_ser"*) [ -f "$d/edge_ser" ] ;; esac\n'
    for name, code in (("python", py), ("pip", f'#!/bin/sh\nd=$(dirname "$0")/../lib\n{pip}\n')):
        (venv / "bin" / name).write_text(code)
        (venv / "bin" / name).chmod(0o755)


def test_a_failed_runtime_upgrade_puts_the_previous_runtime_back(tmp_path):
    """install.sh pip-installed the wheelhouse into the live venv: a pip failing half way (a missing wheel, a full
    disk) left the device with a half-upgraded runtime and the service unable to start. The venv is now
    snapshotted first and restored when a step fails or the result cannot import edge_ser."""
    venv = tmp_path / "opt" / "venv"
    wh = tmp_path / "wh"
    wh.mkdir()
    (wh / "requirements.lock").write_text("numpy==2.2.6\n")
    # pip replaces part of the runtime, then fails (the second call, `--no-deps edge-ser`, never comes)
    _fake_venv(venv, 'echo half >"$d/runtime"; rm -f "$d/edge_ser"; exit 1')
    r = _functions(tmp_path, f"WHEELHOUSE={wh}; runtime_upgrade pip_install_wheelhouse; echo NOT-REACHED")
    assert r.returncode == 1 and "NOT-REACHED" not in r.stdout, r.stderr
    assert f"{venv} was restored to the runtime it had before this run" in r.stderr
    assert (venv / "lib" / "runtime").read_text() == "old\n" and (venv / "lib" / "edge_ser").exists()
    assert sorted(p.name for p in venv.parent.iterdir()) == ["venv"]  # no snapshot or broken copy left

    # pip "succeeds" but the runtime no longer imports edge_ser: put back too
    shutil.rmtree(venv)
    _fake_venv(venv, 'echo new >"$d/runtime"; rm -f "$d/edge_ser"')
    r = _functions(tmp_path, f"WHEELHOUSE={wh}; runtime_upgrade pip_install_wheelhouse")
    assert r.returncode == 1 and "cannot import edge_ser" in r.stderr and "was restored" in r.stderr
    assert (venv / "lib" / "runtime").read_text() == "old\n"

    # a good upgrade: kept, the snapshot removed
    shutil.rmtree(venv)
    _fake_venv(venv, 'echo new >"$d/runtime"')
    r = _functions(tmp_path, f"WHEELHOUSE={wh}; runtime_upgrade pip_install_wheelhouse")
    assert r.returncode == 0, r.stderr
    assert (venv / "lib" / "runtime").read_text() == "new\n"
    assert sorted(p.name for p in venv.parent.iterdir()) == ["venv"]

    # a run cut off during pip left its snapshot: the next run restores it before upgrading again
    snap = venv.parent / ".venv-previous"
    shutil.copytree(venv, snap, symlinks=True)
    (venv / "lib" / "runtime").write_text("half\n")
    shutil.rmtree(venv / "bin")
    _fake_venv(tmp_path / "v2", 'cat "$d/runtime" >>"$PIP_SAW"')
    shutil.copytree(tmp_path / "v2" / "bin", snap / "bin", dirs_exist_ok=True)
    saw = tmp_path / "saw"
    r = _functions(tmp_path, f"export PIP_SAW={saw}; WHEELHOUSE={wh}; runtime_upgrade pip_install_wheelhouse")
    assert r.returncode == 0 and "an earlier upgrade of" in r.stderr, r.stderr
    assert saw.read_text() == "new\nnew\n" and not snap.exists()


def test_both_install_scripts_change_the_venv_only_through_runtime_upgrade():
    """Every pip call of the install scripts runs inside the function they hand to runtime_upgrade."""
    import re

    for script, fn in (
        (DEPLOY / "pi" / "install.sh", "pi_runtime"),
        (DEPLOY / "jetson" / "install.sh", "jetson_runtime"),
    ):
        text = script.read_text()
        body = re.search(rf"\n{fn}\(\) \{{\n(.*?)\n\}}\n", text, re.S)
        assert body and f"\nruntime_upgrade {fn}\n" in text, script
        outside = text.replace(body.group(1), "")
        code = re.sub(r"#.*", "", outside).replace("python3-pip", "")
        assert not re.search(r"\bpip\b|pip_install|system_opencv\b", code), script
        assert "pip_install_wheelhouse" in body.group(1) and "system_opencv" in body.group(1)


def _as_root(tmp: Path) -> dict[str, str]:
    """The environment of a real (not --dry-run) install.sh run as "root" under tmp: a stub `id -u` says 0, and
    stubs of the commands that change the system (apt-get, useradd, usermod, systemctl) log and fail, so a check
    that did not stop the run shows in the log instead of touching this machine (the tests may run as root)."""
    stub = tmp / "bin"
    stub.mkdir(exist_ok=True)
    (stub / "id").write_text('#!/bin/sh\n[ "$*" = -u ] && { echo 0; exit 0; }\nexec /usr/bin/id "$@"\n')
    for cmd in ("apt-get", "useradd", "usermod", "systemctl"):
        (stub / cmd).write_text(f'#!/bin/sh\necho "{cmd} $*" >>"{tmp}/changes.log"\nexit 1\n')
    for f in stub.iterdir():
        f.chmod(0o755)
    return {**os.environ, "EDGE_SER_PREFIX": str(tmp / "opt"), "EDGE_SER_ETC": str(tmp / "etc"),
            "PATH": f"{stub}:{os.environ['PATH']}", "L4T_RELEASE_FILE": str(tmp / "no-l4t")}  # fmt: skip


def test_a_wheelhouse_without_a_lock_or_for_another_python_is_refused_before_anything_changes(tmp_path):
    """A mistyped wheelhouse folder (the README copies it to ~/pi-bookworm in one place and names ~/wheelhouse in
    another), or the pi-trixie wheelhouse (cp313) on a Bookworm Pi (Python 3.11), went through apt, the service
    user, the bundle folders and a new venv, and failed only at pip ("there was no runtime before to go back
    to"). Both scripts now check the lock, and the Python its first line names, before any change."""
    import sys

    env = _as_root(tmp_path)
    wh = tmp_path / "wh"
    wh.mkdir()
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    other = "3.13" if here != "3.13" else "3.11"
    for script in (DEPLOY / "pi" / "install.sh", DEPLOY / "jetson" / "install.sh"):
        r = subprocess.run(["bash", str(script), str(wh), "--deploy-user", "root"], capture_output=True, text=True,
                           env={**env, "PYTHON": sys.executable}, timeout=60, check=False)  # fmt: skip
        assert r.returncode == 1, r.stderr
        assert f"{wh}/requirements.lock not found: is {wh} a wheelhouse?" in r.stderr, r.stderr
        assert "scripts/wheelhouse.py --target TARGET" in r.stderr and "nothing was changed" in r.stderr
        assert not (tmp_path / "opt").exists() and not (tmp_path / "changes.log").exists()
    head = (
        "# edge-ser wheelhouse lock for {t}: Some OS (Debian, x), Python {v}, cp3 / manylinux_2_36_aarch64\n"
    )
    (wh / "requirements.lock").write_text(head.format(t="pi-trixie", v=other) + "numpy==2.4.6\n")
    for script in (DEPLOY / "pi" / "install.sh", DEPLOY / "jetson" / "install.sh"):
        r = subprocess.run(["bash", str(script), str(wh), "--deploy-user", "root"], capture_output=True, text=True,
                           env={**env, "PYTHON": sys.executable}, timeout=60, check=False)  # fmt: skip
        assert r.returncode == 1, r.stderr
        assert f"is for Python {other} (pi-trixie), this device's {sys.executable} is {here}" in r.stderr, (
            r.stderr
        )
        assert not (tmp_path / "opt").exists() and not (tmp_path / "changes.log").exists()
        dry = _dry(script, str(wh), "--deploy-user", "root", env={"PYTHON": sys.executable})
        assert dry.returncode == 0 and "a real run stops before changing anything" in dry.stderr, dry.stderr
    # the lock for this Python passes the check (the dry run plans the install)
    (wh / "requirements.lock").write_text(head.format(t="pi-bookworm", v=here) + "numpy==2.4.6\n")
    dry = _dry(DEPLOY / "pi" / "install.sh", str(wh), "--deploy-user", "root", env={"PYTHON": sys.executable})
    assert dry.returncode == 0 and "is for Python" not in dry.stderr and "warning: /" not in dry.stderr


def test_a_missing_ort_wheel_is_refused_before_anything_changes(tmp_path):
    """`jetson/install.sh --ort-wheel PATH` with a mistyped PATH went through apt, the service user and the venv
    and failed only inside the pip step; it is now refused first, naming the file (a dry run warns)."""
    import sys

    env = {**_as_root(tmp_path), "PYTHON": sys.executable}
    wh = tmp_path / "wh"
    wh.mkdir()
    (wh / "requirements.lock").write_text("numpy==2.2.6\nonnxruntime==1.23.2\n")
    gone = tmp_path / "onnxruntime_gpu-1.23.0-cp310-cp310-linux_aarch64.whl"
    r = subprocess.run(["bash", str(DEPLOY / "jetson" / "install.sh"), str(wh), "--deploy-user", "root",
                        "--ort-wheel", str(gone)], capture_output=True, text=True, env=env, timeout=60, check=False)  # fmt: skip
    assert r.returncode == 1 and f"--ort-wheel {gone}: no such file" in r.stderr, r.stderr
    assert "nothing was changed" in r.stderr
    assert not (tmp_path / "opt").exists() and not (tmp_path / "changes.log").exists()
    dry = _dry(DEPLOY / "jetson" / "install.sh", str(wh), "--deploy-user", "root", "--ort-wheel", str(gone))
    assert dry.returncode == 0 and "a real run stops before changing anything" in dry.stderr, dry.stderr


def test_a_package_removed_with_its_configuration_left_is_installed_again(tmp_path):
    """apt_install took `dpkg -s` succeeding for "installed", which it also does for a package removed with its
    configuration files left (status "deinstall ok config-files": alsa-utils or v4l-utils after `apt remove`):
    such a package was never installed again. Stubs of dpkg-query and dpkg answer as dpkg does."""
    stub = tmp_path / "bin"
    stub.mkdir()
    status = {"libportaudio2": "install ok installed", "libgomp1": "hold ok installed",
              "alsa-utils": "deinstall ok config-files"}  # fmt: skip
    cases = "".join(f'    *" {p}") printf "%s" "{s}" ;;\n' for p, s in status.items())
    (stub / "dpkg-query").write_text(f'#!/bin/sh\ncase "$*" in\n{cases}    *) exit 1 ;;\nesac\n')
    known = "|".join(status)  # dpkg -s knows every package in its database, removed ones included
    (stub / "dpkg").write_text(f"#!/bin/sh\ncase $2 in {known}) exit 0 ;; *) exit 1 ;; esac\n")
    for f in stub.iterdir():
        f.chmod(0o755)
    r = _functions(
        tmp_path,
        f"export PATH={stub}:$PATH; DRY_RUN=1; apt_install libportaudio2 libgomp1 alsa-utils v4l-utils",
    )
    assert r.returncode == 0, r.stderr
    assert "apt-get install -y -qq --no-install-recommends alsa-utils v4l-utils\n" in r.stdout, r.stdout
    r = _functions(tmp_path, f"export PATH={stub}:$PATH; DRY_RUN=1; apt_install libportaudio2 libgomp1")
    assert r.returncode == 0 and "apt-get" not in r.stdout and "already installed" in r.stderr, r.stdout
