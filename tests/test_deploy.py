"""`edge-ser deploy` for real: a throw-away OpenSSH server on 127.0.0.1, deploys to a temporary ROOT.

The fixture starts Debian's `sshd` (openssh-server; scripts/system-packages.sh installs it) as the current user on
a free port with its own host key, a fresh client key in its AuthorizedKeysFile and `StrictModes no` (tests/_sshd.py,
the same server as test_ansible.py's), so the deploy runs the real ssh client, the real remote shell, tar and
`sha256sum -c`. A fake restart command (appends to a log) and a health command that runs this repo's `edge-ser info`
stand in for systemd. Skips with the reason when sshd or ssh-keygen is missing, or sshd cannot start.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from _sshd import SshServer, free_port

from edge_ser.errors import ConfigError
from edge_ser_deploy import deploy as dep
from edge_ser_deploy.deploy import DeployError, DeployRolledBack, DeployStranded, deploy, parse_target

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = SshServer(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


HEALTH_OK = (
    f'PYTHONPATH={shlex.quote(str(REPO))} {shlex.quote(sys.executable)} -m edge_ser info "$EDGE_SER_CURRENT"'
)


def _deploy(sshd: SshServer, root: Path, bundle: str, **kw):
    kw.setdefault("restart_cmd", f'echo "$EDGE_SER_VERSION" >> {shlex.quote(str(root))}.restarts')
    kw.setdefault("health_cmd", HEALTH_OK)
    return deploy(BUNDLES / bundle, sshd.destination, root=str(root), identity=str(sshd.key),
                  ssh_options=sshd.ssh_options(), **kw)  # fmt: skip


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
    for name in ("manifest.json", "manifest.sha256", "model.onnx", "weights.esq", "SHA256SUMS"):
        assert (vdir / name).is_file()
    ok = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=vdir, capture_output=True, text=True, check=False
    )
    shipped = sorted(p.name for p in vdir.iterdir() if p.name != "SHA256SUMS")  # every file of the bundle
    assert ok.returncode == 0 and ok.stdout.count(": OK") == len(shipped) >= 5, ok.stdout
    assert all(f"{name}: OK" in ok.stdout for name in shipped), ok.stdout
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


VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
"""What edge-ser-activate accepts as a version name (its name_ok)."""


def test_version_names_say_which_bundle(tmp_path, monkeypatch):
    """ser_emodb and ser_ravdess are both `functionals_mlp`: on a device (ROOT/versions, the `current` link, a
    deploy's report, a rollback message) their versions are told apart by the bundle folder's name, not by a
    hash alone. The same bundle gets the same name however it is given (folder, `.`, a .tar); a folder called
    `bundle` (training's out/<run>/bundle) keeps the model's name, as every version was named before."""
    import tarfile

    emodb, ravdess = _version("ser_emodb"), _version("ser_ravdess")
    sha = emodb.rsplit("-", 1)[1]
    assert re.fullmatch(r"ser_emodb-[0-9a-f]{12}", emodb), emodb
    assert re.fullmatch(r"ser_ravdess-[0-9a-f]{12}", ravdess), ravdess
    assert _version("ser_emodb") == emodb  # idempotent: a second deploy finds it on the device
    monkeypatch.chdir(BUNDLES / "ser_emodb")
    assert dep._payload(".").version == dep._payload(f"{BUNDLES}/ser_emodb/").version == emodb
    packed = tmp_path / "ser_emodb.tar"
    with tarfile.open(packed, "w") as tf:
        for f in sorted((BUNDLES / "ser_emodb").iterdir()):
            tf.add(f, arcname=f.name)
    assert dep._payload(packed).version == emodb
    of_folder = tmp_path / "ser_emodb_folder.tar"  # `tar -cf b.tar ser_emodb`: the files in one folder
    with tarfile.open(of_folder, "w") as tf:
        tf.add(BUNDLES / "ser_emodb", arcname="ser_emodb")
    assert dep._payload(of_folder).version == f"ser_emodb_folder-{sha}"
    renamed = {
        "bundle": f"functionals_mlp-{sha}",
        "-my ser (v2)!": f"my_ser_v2-{sha}",
        "x" * 90: f"{'x' * 64}-{sha}",
    }
    for i, (folder, expect) in enumerate(renamed.items()):
        copy = tmp_path / str(i) / folder
        shutil.copytree(BUNDLES / "ser_emodb", copy)
        assert dep._payload(copy).version == expect and VERSION_NAME.fullmatch(expect)


def test_a_device_with_old_style_version_names_keeps_working(sshd, tmp_path, monkeypatch):
    """A device an older edge-ser deployed to has `current` -> versions/functionals_mlp-<sha12> (the model's name,
    whatever the bundle). Rollback reads that link as it is: a failed deploy goes back to the old-style name and
    restarts it; a good deploy of the same bundle switches to its new name (previous: the old one), and deploying
    it again changes nothing; pruning treats the old-style name as any other version."""
    import hashlib

    root = tmp_path / "bundles"
    emodb, ravdess = _version("ser_emodb"), _version("ser_ravdess")
    old = f"functionals_mlp-{emodb.rsplit('-', 1)[1]}"
    with monkeypatch.context() as m:  # as versions were named before
        m.setattr(
            dep, "version_name", lambda name, raw, model: f"{model}-{hashlib.sha256(raw).hexdigest()[:12]}"
        )
        assert _deploy(sshd, root, "ser_emodb").version == old
    assert os.readlink(root / "current") == f"versions/{old}"

    with pytest.raises(DeployRolledBack) as ei:
        _deploy(sshd, root, "ser_ravdess", health_cmd="echo unhealthy >&2; false")
    assert ei.value.step == "health" and ravdess in str(ei.value)
    assert f"rolled back to versions/{old}" in str(ei.value) and ei.value.result.current == f"versions/{old}"
    assert os.readlink(root / "current") == f"versions/{old}" and _restarts(root) == [old, ravdess, old]

    res = _deploy(sshd, root, "ser_emodb", keep=1)
    assert res.ok and res.switched and res.version == emodb and res.previous == f"versions/{old}"
    assert res.pruned == (ravdess,)  # keep 1: the current and the previous (old-style) version stay
    assert sorted(p.name for p in (root / "versions").iterdir()) == sorted([emodb, old])
    again = _deploy(sshd, root, "ser_emodb", keep=1)
    assert again.ok and not again.uploaded and not again.switched and again.current == f"versions/{emodb}"
    assert _restarts(root) == [old, ravdess, old, emodb]


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
    for o in sshd.ssh_options():
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
    port = free_port()  # nothing listens there
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


def test_a_bundle_without_manifest_sha256_is_refused_with_a_true_account_and_the_fix(tmp_path):
    """The message says which bundles lack manifest.sha256 without naming a release that does not exist (it
    said 'before edge-ser 0.2' while edge-ser is 0.1.0), and the fix it gives works."""
    from edge_ser import __version__
    from edge_ser.bundle import load_bundle
    from edge_ser.errors import BundleError

    old = tmp_path / "old"
    shutil.copytree(BUNDLES / "av_cnn_audio", old)
    (old / "manifest.sha256").unlink()
    with pytest.raises(BundleError) as ei:
        deploy(old, "nobody@192.0.2.1", root="/tmp/x")
    msg = str(ei.value)
    assert "manifest.sha256 is missing" in msg and "before 2026-12-02" in msg
    for named in re.findall(r"edge-ser (\d+\.\d+(?:\.\d+)?)", msg):  # a release it names is one that exists
        assert tuple(map(int, named.split("."))) <= tuple(map(int, __version__.split(".")[:3]))
    fix = re.search(r"`(sha256sum manifest\.json > manifest\.sha256)`", msg)
    assert fix is not None, msg
    subprocess.run(fix.group(1), shell=True, cwd=old, check=True)
    assert load_bundle(old).name


def test_a_fusion_bundle_ships_self_contained(sshd, tmp_path):
    """av_fusion refers to its branch bundles beside it (../av_fn_audio, ../face_fer): it is shipped with each
    branch in a sub-folder, every file checked on the device, and the deployed copy predicts as the original.
    (It shipped its manifest alone and rolled back.)"""
    from edge_ser.recognizer import Recognizer

    root = tmp_path / "bundles"
    res = _deploy(sshd, root, "av_fusion")
    assert res.ok and res.uploaded and res.version.startswith("av_fusion-")
    vdir = root / "versions" / res.version
    assert (vdir / "audio" / "weights.esq").is_file() and (vdir / "face" / "model.onnx").is_file()
    ok = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=vdir, capture_output=True, text=True, check=False
    )
    assert (
        ok.returncode == 0 and "audio/manifest.json: OK" in ok.stdout and "face/weights.esq: OK" in ok.stdout
    )
    y = np.sin(np.linspace(0, 2000, 48000)).astype(np.float32) * 0.2
    here = Recognizer(BUNDLES / "av_fusion", "numpy").predict_audio(y, 16000).probabilities
    there = Recognizer(root / "current", "numpy").predict_audio(y, 16000).probabilities
    assert there == pytest.approx(here, rel=1e-6, abs=1e-7)
    assert not _deploy(sshd, root, "av_fusion").uploaded  # the same bundle again: nothing to send


def test_options_checked_here_and_the_users_ssh_options_win(tmp_path):
    """A negative --health-wait and a missing --identity are refused before connecting; the user's `-o` options
    come before edge-ser's defaults on the ssh command line (ssh keeps an option's first value)."""
    for kw, says in (
        ({"health_wait": -5.0}, "--health-wait -5"),
        ({"identity": str(tmp_path / "k")}, "no such key"),
    ):
        with pytest.raises(ConfigError, match=says):
            deploy(BUNDLES / "av_cnn_audio", "nobody@192.0.2.1", root="/tmp/x", **kw)
    if shutil.which("ssh") is None:
        pytest.skip("no ssh client here")
    ssh = dep._Ssh(dep.Target("pi", "h", None), identity=None, options=["ConnectTimeout=3"], connect_timeout=15,
                   multiplex=False)  # fmt: skip
    opts = [ssh.base[i + 1] for i, a in enumerate(ssh.base) if a == "-o"]
    assert opts.index("ConnectTimeout=3") < opts.index("ConnectTimeout=15")


def test_options_that_would_do_nothing_are_refused(tmp_path):
    """--health-wait with --health-cmd, --restart-cmd or --no-restart, and --restart-cmd with --no-restart, were
    dropped without a word (the health check ran at once, the restart command never): refused before connecting,
    naming the option that makes them moot. The command line's --health-wait is no longer always given."""
    for kw, says in (
        ({"health_wait": 30.0, "health_cmd": "true"}, "with --health-cmd nothing would wait"),
        ({"health_wait": 30.0, "restart_cmd": "true"}, "with --restart-cmd nothing would wait"),
        ({"health_wait": 30.0, "restart": False}, "with --no-restart nothing would wait"),
        ({"restart_cmd": "true", "restart": False}, "--restart-cmd with --no-restart"),
    ):
        with pytest.raises(ConfigError, match=says):
            deploy(BUNDLES / "av_cnn_audio", "nobody@192.0.2.1", root="/tmp/x", **kw)
    # 0 (no wait) says nothing that is not so
    with pytest.raises(ConfigError, match="no such key"):
        deploy(
            BUNDLES / "av_cnn_audio",
            "nobody@192.0.2.1",
            health_wait=0,
            health_cmd="true",
            identity="/nonexistent",
        )
    from edge_ser.cli import build_parser

    args = build_parser().parse_args(["deploy", "b", "pi@h", "--health-cmd", "true"])
    assert args.health_wait is None


def test_parse_target():
    assert parse_target("pi@raspberrypi.local") == dep.Target("pi", "raspberrypi.local", None)
    assert parse_target("pi@10.0.0.2:2222") == dep.Target("pi", "10.0.0.2", 2222)
    assert parse_target("root@[::1]:22").host == "::1"
    assert parse_target("host", port=2200) == dep.Target(None, "host", 2200)
    for bad in ("pi@", "pi@host:99999", "pi@host:x", "-oProxyCommand=x", "a b@host"):
        with pytest.raises(ConfigError):
            parse_target(bad)


def test_parse_target_refuses_a_port_given_twice_differently_and_an_empty_user():
    """`pi@host:22 --port 23` is refused naming both ports (it used to take 23 without a word); the same port
    twice is fine. `@host` is refused (it used to drop the empty user and log in as the local one)."""
    assert parse_target("pi@host:22", port=22) == dep.Target("pi", "host", 22)
    assert parse_target("pi@[::1]:2222", port=2222).port == 2222
    for text, port in (("pi@host:22", 23), ("pi@[::1]:22", 2222)):
        with pytest.raises(ConfigError, match=rf"port {text.rsplit(':', 1)[1]} but --port says {port}"):
            parse_target(text, port=port)
    for bad in ("@host", "@host:22", "@[::1]:22"):
        with pytest.raises(ConfigError, match="empty user name"):
            parse_target(bad)
    with pytest.raises(ConfigError, match="empty user name"):
        parse_target("@host", port=22)


# --------------------------------------------------------------------------------------------------------------
# every failure after the switch rolls back (issue 16): each failure point against the real sshd
# --------------------------------------------------------------------------------------------------------------

KILL_OWN_SESSION = (
    # walk up from this shell to the sshd process serving the connection and kill it: the connection drops
    # mid-command, as when the network or the device goes away (for the ssh client: exit 255)
    'p=$$; while [ "$p" -gt 1 ]; do case $(cat /proc/$p/comm) in sshd*) kill -9 "$p"; exit 0;; esac; '
    "p=$(sed 's/.*) //' /proc/$p/stat | cut -d' ' -f2); done; exit 0"
)


def _only_for(version: str, cmd: str, otherwise: str = "true") -> str:
    """A device command that runs `cmd` for `version` (the one being deployed) and `otherwise` for the rest."""
    return f'if [ "$EDGE_SER_VERSION" = {version} ]; then {cmd}; else {otherwise}; fi'


def _no_process(needle: str, within: float = 60.0) -> bool:
    """True once no process's command line contains `needle` (hang guard: `within` seconds)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = False
        for d in Path("/proc").iterdir():
            if d.name.isdigit() and d.name != str(os.getpid()):
                try:
                    found = found or needle.encode() in (d / "cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    pass
        if not found:
            return True
        time.sleep(0.2)
    return False


def _clean(root: Path) -> None:
    """No marker, no temporary link, no leftover in-flight file."""
    assert not (root / "pending").exists()
    assert not [
        p.name for p in root.iterdir() if p.name.startswith((".current.tmp", ".pending.tmp", ".inflight"))
    ]


@pytest.mark.parametrize("multiplex", [True, False], ids=["multiplexed", "one-connection-per-step"])
def test_connection_dropped_mid_health_check_rolls_back(sshd, tmp_path, multiplex):
    root = tmp_path / "bundles"
    v1, v2 = _version("av_cnn_audio"), _version("av_cnn")
    assert _deploy(sshd, root, "av_cnn_audio").ok
    with pytest.raises(DeployRolledBack) as ei:
        _deploy(sshd, root, "av_cnn", health_cmd=_only_for(v2, KILL_OWN_SESSION), multiplex=multiplex)
    msg = str(ei.value)
    assert (
        ei.value.step == "health" and "connection lost during the health check" in msg and "exit 255" in msg
    )
    assert f"switched {root}/current from versions/{v1} to versions/{v2}" in msg
    assert f"rolled back to versions/{v1} and restarted the service" in msg
    assert os.readlink(root / "current") == f"versions/{v1}"
    assert _restarts(root) == [v1, v2, v1]
    _clean(root)


def test_connection_dropped_mid_restart_rolls_back(sshd, tmp_path):
    root = tmp_path / "bundles"
    v1, v2 = _version("av_cnn_audio"), _version("av_cnn")
    assert _deploy(sshd, root, "av_cnn_audio").ok
    restart = f'echo "$EDGE_SER_VERSION" >> {shlex.quote(str(root))}.restarts; ' + _only_for(
        v2, KILL_OWN_SESSION
    )
    with pytest.raises(DeployRolledBack) as ei:
        _deploy(sshd, root, "av_cnn", restart_cmd=restart)
    assert ei.value.step == "restart" and "connection lost during the restart" in str(ei.value)
    assert os.readlink(root / "current") == f"versions/{v1}"
    assert _restarts(root) == [v1, v2, v1]
    _clean(root)


def test_a_failed_restarts_output_is_labelled_as_the_restarts(sshd, tmp_path, capsys):
    """The command line shows what the failed step printed under that step's name: a failed restart's output is
    the restart's (no health check ran), a failed health check's the health check's."""
    from edge_ser.cli import main

    root = tmp_path / "bundles"
    argv = ["deploy", str(BUNDLES / "av_cnn_audio"), sshd.destination, "--root", str(root), "-i", str(sshd.key),
            "--restart-cmd", "echo unit failed to start >&2; exit 3", "--health-cmd", HEALTH_OK, "-q"]  # fmt: skip
    for o in sshd.ssh_options():
        argv += ["-o", o]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "ROLLED BACK" in err and "restart output:\n    unit failed to start" in err
    assert "health check output" not in err
    argv[argv.index("--restart-cmd") + 1] = "true"
    argv[argv.index("--health-cmd") + 1] = "echo model will not load >&2; exit 4"
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "health check output:\n    model will not load" in err and "restart output" not in err


def test_restart_fails_rolls_back_to_previous(sshd, tmp_path):
    root = tmp_path / "bundles"
    v1, v2 = _version("av_cnn_audio"), _version("av_cnn")
    assert _deploy(sshd, root, "av_cnn_audio").ok
    restart = f'echo "$EDGE_SER_VERSION" >> {shlex.quote(str(root))}.restarts; ' + _only_for(
        v2, "echo unit failed >&2; exit 3"
    )
    with pytest.raises(DeployRolledBack) as ei:
        _deploy(sshd, root, "av_cnn", restart_cmd=restart)
    e = ei.value
    assert e.step == "restart" and "the restart failed (exit 3): unit failed" in str(e)
    assert (
        e.result.rolled_back and e.result.current == f"versions/{v1}" and "restart failed" in e.result.failure
    )
    assert os.readlink(root / "current") == f"versions/{v1}" and _restarts(root) == [v1, v2, v1]
    _clean(root)


@pytest.mark.parametrize("step", ["restart", "health"])
def test_timeouts_roll_back_and_stop_the_command_on_the_device(sshd, tmp_path, step):
    root = tmp_path / "bundles"
    v1, v2 = _version("av_cnn_audio"), _version("av_cnn")
    assert _deploy(sshd, root, "av_cnn_audio").ok
    nap = "sleep 971" if step == "restart" else "sleep 972"
    log = f'echo "$EDGE_SER_VERSION" >> {shlex.quote(str(root))}.restarts'
    kw = (
        {"restart_cmd": f"{log}; " + _only_for(v2, nap), "restart_timeout": 2.0}
        if step == "restart"
        else {"health_cmd": _only_for(v2, nap, HEALTH_OK), "health_timeout": 2.0}
    )
    with pytest.raises(DeployRolledBack) as ei:
        _deploy(sshd, root, "av_cnn", **kw)
    what = "restart" if step == "restart" else "health check"
    assert ei.value.step == step and f"the {what} did not finish within 2 s" in str(ei.value)
    assert f"rolled back to versions/{v1}" in str(ei.value)
    assert os.readlink(root / "current") == f"versions/{v1}" and _restarts(root) == [v1, v2, v1]
    assert _no_process(nap)  # stopped on the device, not left behind
    _clean(root)


def test_any_exception_after_the_switch_rolls_back(sshd, tmp_path):
    root = tmp_path / "bundles"
    v1 = _version("av_cnn_audio")
    assert _deploy(sshd, root, "av_cnn_audio").ok

    def log(line: str) -> None:  # a caller's callback that raises right after the restart
        if line.endswith("service restarted"):
            raise RuntimeError("log sink full")

    with pytest.raises(DeployRolledBack) as ei:
        _deploy(sshd, root, "av_cnn", log=log)
    assert "RuntimeError during the restart: log sink full" in str(ei.value)
    assert isinstance(ei.value.__cause__, RuntimeError)
    assert os.readlink(root / "current") == f"versions/{v1}"
    _clean(root)


def test_a_log_sink_that_stays_broken_still_rolls_back(sshd, tmp_path):
    """SIGHUP rolls back (the operator's terminal went away), but the rollback's own first message went to the same
    dead terminal: its OSError escaped before the rollback ran, leaving the unverified version current. A log
    callback that fails on every call from some point on no longer stops the way back."""
    root = tmp_path / "bundles"
    v1 = _version("av_cnn_audio")
    assert _deploy(sshd, root, "av_cnn_audio").ok
    dead = []

    def log(line: str) -> None:  # the terminal hangs up after the switch: every later write fails
        if dead or line.endswith("service restarted"):
            dead.append(line)
            raise OSError(5, "Input/output error")

    with pytest.raises(DeployRolledBack) as ei:
        _deploy(sshd, root, "av_cnn", log=log)
    assert "OSError during the restart" in str(ei.value) and f"rolled back to versions/{v1}" in str(ei.value)
    assert os.readlink(root / "current") == f"versions/{v1}"
    _clean(root)


def test_previous_version_deleted_meanwhile(sshd, tmp_path):
    root = tmp_path / "bundles"
    v1, v2 = _version("av_cnn_audio"), _version("av_cnn")
    assert _deploy(sshd, root, "av_cnn_audio").ok
    gone = f"rm -rf {shlex.quote(str(root / 'versions' / v1))}; echo broken >&2; exit 1"
    with pytest.raises(DeployRolledBack) as ei:
        _deploy(sshd, root, "av_cnn", health_cmd=_only_for(v2, gone))
    msg = str(ei.value)
    assert f"the previous version versions/{v1} is gone from the device: {root}/current removed" in msg
    assert not os.path.lexists(root / "current")  # the unverified version does not stay current
    assert _restarts(root) == [v1, v2]
    _clean(root)


def _cli_argv(sshd: SshServer, root: Path, bundle: str, *extra: str) -> list[str]:
    argv = ["deploy", str(BUNDLES / bundle), sshd.destination, "--root", str(root), "-i", str(sshd.key),
            "--restart-cmd", f'echo "$EDGE_SER_VERSION" >> {shlex.quote(str(root))}.restarts', *extra]  # fmt: skip
    for o in sshd.ssh_options():
        argv += ["-o", o]
    return argv


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(
    "sig",
    [
        pytest.param(signal.SIGINT, id="ctrl-c"),
        pytest.param(signal.SIGTERM, id="sigterm"),
    ],
)
def test_interrupted_deploy_rolls_back(sshd, tmp_path, sig):
    """Ctrl-C (SIGINT to the command's process group, as a terminal sends it) or SIGTERM during a slow health
    check: the command line rolls back, says so and exits with 130; the health check stops on the device."""
    root = tmp_path / "bundles"
    v1, v2 = _version("av_cnn_audio"), _version("av_cnn")
    assert _deploy(sshd, root, "av_cnn_audio").ok
    started = tmp_path / "health-started"
    nap = f"sleep {973 + int(sig)}"
    health = _only_for(v2, f"touch {shlex.quote(str(started))}; {nap}")
    argv = _cli_argv(sshd, root, "av_cnn", "--health-cmd", health, "--health-timeout", "600")
    code = "import sys; from edge_ser.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # as a terminal starts a foreground job: SIGINT at its default. A runner that starts the tests in the
    # background without job control (CI) has SIGINT ignored, the child inherits that, and Python then installs
    # no KeyboardInterrupt handler: Ctrl-C would reach a process that was told to ignore it (as with nohup)
    p = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env, start_new_session=True, preexec_fn=_default_sigint)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert started.exists(), p.communicate(timeout=60)
        os.killpg(p.pid, sig)
        out, err = p.communicate(timeout=180)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 130, err
    assert "ROLLED BACK" in err and f"interrupted ({'SIGTERM' if sig == signal.SIGTERM else 'Ctrl-C'})" in err
    assert f"rolled back to versions/{v1} and restarted the service" in err
    assert os.readlink(root / "current") == f"versions/{v1}" and _restarts(root) == [v1, v2, v1]
    assert _no_process(nap)
    _clean(root)


def _strand(tmp: Path, root: Path, logs: list[str]) -> tuple[str, str, DeployStranded]:
    """Deploy v1, then v2 to a device that vanishes during v2's health check (its sshd and the connection are
    killed): the rollback cannot reach it. Returns (v1, v2, the error)."""
    v1, v2 = _version("av_cnn_audio"), _version("av_cnn")
    (tmp / "sshd-gone").mkdir()
    server = SshServer(tmp / "sshd-gone")
    server.start()
    try:
        assert _deploy(server, root, "av_cnn_audio").ok
        vanish = f"kill {server.proc.pid}; {KILL_OWN_SESSION}"
        with pytest.raises(DeployStranded) as ei:
            _deploy(
                server, root, "av_cnn", health_cmd=_only_for(v2, vanish), connect_timeout=5, log=logs.append
            )
    finally:
        server.stop()
    return v1, v2, ei.value


def test_rollback_unreachable_leaves_marker_that_the_boot_check_acts_on(tmp_path):
    root = tmp_path / "bundles"
    logs: list[str] = []
    v1, v2, e = _strand(tmp_path, root, logs)
    msg = str(e)
    assert e.step == "health" and "the rollback could not reach the device" in msg
    assert f"{root}/current is still versions/{v2} (unverified)" in msg
    assert f"marker {root}/pending" in msg and "next `edge-ser deploy`" in msg
    assert e.result.marker == f"{root}/pending" and not e.result.rolled_back
    assert sum("rollback attempt" in ln for ln in logs) == 3  # it tried, over fresh connections
    assert os.readlink(root / "current") == f"versions/{v2}"
    marker = (root / "pending").read_text()
    assert f"previous=versions/{v1}\n" in marker and f"new=versions/{v2}\n" in marker

    # the device restarts: its start script's boot check rolls the unverified version back
    script = REPO / "edge_ser_deploy" / "edge-ser-activate"
    (root / "pending").write_text(re.sub(r"(?m)^boot=.*$", "boot=before-the-reboot", marker))
    r = subprocess.run(["sh", str(script), "--root", str(root), "boot-check"], capture_output=True, text=True,
                       timeout=60, check=False)  # fmt: skip
    assert r.returncode == 0 and "rolling back" in r.stderr, r.stderr
    assert os.readlink(root / "current") == f"versions/{v1}" and not (root / "pending").exists()


def test_next_deploy_resolves_an_interrupted_one(tmp_path):
    root = tmp_path / "bundles"
    v1, v2, _ = _strand(tmp_path, root, [])
    assert (root / "pending").exists() and os.readlink(root / "current") == f"versions/{v2}"
    (tmp_path / "sshd-back").mkdir()
    server = SshServer(tmp_path / "sshd-back")  # the device is back
    server.start()
    try:
        logs: list[str] = []
        res = _deploy(server, root, "av_cnn", log=logs.append)
    finally:
        server.stop()
    said = "\n".join(logs)
    # the stranded deploy's marker is still within its time-to-live: for all the device knows it is still running
    assert f"{root}/pending: versions/{v2} was switched to" in said and "not verified yet" in said
    assert "another deploy is probably still running" in said and "(an interrupted deploy" not in said
    assert f"current is versions/{v1} again" in said
    assert res.ok and res.previous == f"versions/{v1}" and os.readlink(root / "current") == f"versions/{v2}"
    assert _restarts(root) == [v1, v2, v1, v2]  # ..., the restart on the restored v1, then v2 verified
    _clean(root)


def test_unreadable_marker_stops_the_deploy_with_the_way_out(sshd, tmp_path):
    root = tmp_path / "bundles"
    v1 = _version("av_cnn_audio")
    assert _deploy(sshd, root, "av_cnn_audio").ok
    (root / "pending").write_text("not a marker\n")
    with pytest.raises(DeployError) as ei:
        _deploy(sshd, root, "av_cnn")
    msg = str(ei.value)
    assert (
        ei.value.step == "probe" and f"{root}/pending is unreadable" in msg and "rollback --to VERSION" in msg
    )
    assert os.readlink(root / "current") == f"versions/{v1}" and _restarts(root) == [v1]


def test_concurrent_deploys_one_wins_the_other_says_so(sshd, tmp_path):
    """Deploy A is in its health check when deploy B starts: B treats A's marker as interrupted, rolls it back
    and deploys; A's commit then finds its marker gone and fails without touching what B left."""
    import threading

    root = tmp_path / "bundles"
    v1, v2, v3 = _version("av_cnn_audio"), _version("av_cnn"), _version("laq_mlp_emodb")
    assert _deploy(sshd, root, "av_cnn_audio").ok
    started, go = tmp_path / "a-started", tmp_path / "a-go"
    wait = f"touch {shlex.quote(str(started))}; while [ ! -f {shlex.quote(str(go))} ]; do sleep 0.1; done"
    errors: list[BaseException] = []

    def deploy_a() -> None:
        try:
            _deploy(sshd, root, "av_cnn", health_cmd=_only_for(v2, wait))
        except BaseException as e:  # noqa: BLE001 - looked at below
            errors.append(e)

    a = threading.Thread(target=deploy_a)
    a.start()
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and a.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert started.exists(), errors
        logs_b: list[str] = []
        b = _deploy(sshd, root, "laq_mlp_emodb", log=logs_b.append)
        assert b.ok and b.previous == f"versions/{v1}"
    finally:
        go.touch()
        a.join(timeout=300)
    assert len(errors) == 1 and type(errors[0]) is DeployError, errors
    assert errors[0].step == "commit" and "took the device over" in str(errors[0])
    # the connection was fine: the loser says another deploy took over, not that it lost its connection
    assert "connection lost" not in str(errors[0]) and "exit 75" in str(errors[0]), str(errors[0])
    said = " ".join(" ".join(logs_b).split())
    assert "another deploy is probably still running" in said and "(an interrupted deploy" not in said, said
    assert os.readlink(root / "current") == f"versions/{v3}"
    assert _restarts(root) == [v1, v2, v1, v3]
    _clean(root)


def test_timeout_options(tmp_path, sshd):
    for kw in ({"restart_timeout": 0}, {"health_timeout": -1}, {"health_wait": 10, "health_timeout": 5}):
        with pytest.raises(ConfigError):
            deploy(BUNDLES / "av_cnn_audio", "nobody@192.0.2.1", root="/tmp/x", restart=True, **kw)
    # the command line: a restart that outlives --restart-timeout is rolled back (exit 1)
    from edge_ser.cli import main

    root = tmp_path / "bundles"
    v1, v2 = _version("av_cnn_audio"), _version("av_cnn")
    assert main(_cli_argv(sshd, root, "av_cnn_audio", "--health-cmd", HEALTH_OK, "-q")) == 0
    argv = _cli_argv(sshd, root, "av_cnn", "--health-cmd", HEALTH_OK, "--restart-timeout", "1.5", "-q")
    argv[argv.index("--restart-cmd") + 1] += "; " + _only_for(v2, "sleep 979")
    assert main(argv) == 1
    assert os.readlink(root / "current") == f"versions/{v1}" and _no_process("sleep 979")


def _fake_systemd(tmp: Path, restarts_per_show: int) -> dict[str, str]:
    """A PATH with a `systemctl` that reports the unit active and, on each `show`, NRestarts grown by
    `restarts_per_show` (a unit crash-looping under Restart=on-failure: active for a moment in every cycle), and
    an `edge-ser` whose `info` passes."""
    bin_ = tmp / "bin"
    bin_.mkdir()
    n = tmp / "nrestarts"
    (bin_ / "systemctl").write_text(
        "#!/bin/sh\n"
        f"N={shlex.quote(str(n))}\n"
        "case $1 in\n"
        "  is-active) echo active ;;\n"
        '  show) c=$(cat "$N" 2>/dev/null || echo 0); c=$((c + '
        + str(restarts_per_show)
        + ')); echo "$c" >"$N"\n'
        '        echo "NRestarts=$c"; echo "ActiveEnterTimestampMonotonic=$((1000 + c))" ;;\n'
        "  status) echo 'edge-ser.service: activating (auto-restart)' ;;\n"
        "esac\n"
    )
    (bin_ / "edge-ser").write_text("#!/bin/sh\necho ok\n")
    for f in bin_.iterdir():
        f.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}"}


@pytest.mark.parametrize("restarts", [0, 1])
def test_the_default_health_check_requires_the_service_to_stay_up(tmp_path, restarts):
    """`systemctl is-active` once passed a crash-looping unit that happened to be up at that moment; the default
    health check now also needs systemd's restart count and activation time unchanged over the window."""
    if Path(dep.DEVICE_EDGE_SER).exists():
        pytest.skip(f"{dep.DEVICE_EDGE_SER} exists here: the fake edge-ser would not run")
    env = _fake_systemd(tmp_path, restarts)
    r = subprocess.run(["sh", "-c", dep._default_health(str(tmp_path), "edge-ser", 0)], env=env,
                       capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    if restarts == 0:
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode == 1 and "service edge-ser restarted during the health check" in r.stderr, (
            r.stderr
        )


def test_the_probe_checks_root_itself_is_writable_before_anything_is_uploaded(tmp_path):
    """A ROOT owned by root with versions/ writable by the SSH user passed the probe: 1.5 MB were uploaded, then
    the switch failed with 'cannot create or read the lock file' and left the upload behind. The probe (run here
    for real, as an unprivileged user) now refuses such a ROOT, naming it and the user."""
    import pwd

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the probe as another user")
    nobody = pwd.getpwnam("nobody")
    base = Path(
        tempfile.mkdtemp(prefix="edge-ser-probe-", dir="/tmp")
    )  # pytest's tmp is 0700: not for nobody
    try:
        _probe_as(nobody, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _probe_as(nobody, base: Path) -> None:
    base.chmod(0o755)
    root = base / "bundles"
    (root / "versions").mkdir(parents=True)
    root.chmod(0o755)  # root's
    os.chown(root / "versions", nobody.pw_uid, nobody.pw_gid)
    script = dep._vars(R=str(root), V="v-0123456789ab", SUMS="0" * 64, A="/nonexistent") + dep._PROBE
    r = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
                        "sh", "-c", script], capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert r.returncode == 90 and f"{root} is not writable by nobody" in r.stderr, r.stderr
    assert "lock file" in r.stderr and "--deploy-user" in r.stderr
    os.chown(
        root, nobody.pw_uid, nobody.pw_gid
    )  # the deploy user's, as install.sh makes it: the probe passes
    r = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
                        "sh", "-c", script], capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert r.returncode == 0 and "have=0" in r.stdout, r.stderr


def test_an_unknown_host_key_says_how_to_accept_it(sshd, tmp_path):
    """`Host key verification failed` (BatchMode=yes cannot ask) came as ssh's bare words: the error now names the
    README's way, -o StrictHostKeyChecking=accept-new, or a first login by hand."""
    known = tmp_path / "known_hosts"
    known.write_text("")
    opts = ["StrictHostKeyChecking=yes", f"UserKnownHostsFile={known}", "LogLevel=ERROR"]
    with pytest.raises(DeployError) as ei:
        deploy(BUNDLES / "av_cnn_audio", sshd.destination, root=str(tmp_path / "bundles"), identity=str(sshd.key),
               ssh_options=opts, connect_timeout=10)  # fmt: skip
    msg = str(ei.value)
    assert "Host key verification failed" in msg and "-o StrictHostKeyChecking=accept-new" in msg, msg
    assert "127.0.0.1's host key is not in your known_hosts" in msg
    assert not (tmp_path / "bundles").exists()


def test_device_output_cannot_drive_the_local_terminal(tmp_path, monkeypatch):
    """What a device prints (its stderr in an error, its key=value facts, a health check's output) reaches the
    operator's terminal with its control characters escaped: a compromised or hostile device cannot clear the
    screen, retitle the window or rewrite lines to make a failed deploy read as a success."""
    fake = tmp_path / "ssh"
    fake.write_text(
        "#!/bin/sh\n"
        "printf 'current=versions/a\\033[2J\\033]0;owned\\007\\n'\n"
        "printf 'boom\\033[1A\\r\\033[Khealth check passed\\342\\200\\256\\n' >&2\n"
        "exit 7\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    ssh = dep._Ssh(parse_target("pi@host"), identity=None, options=(), connect_timeout=5, multiplex=False)
    cp = ssh.run("true", "probe", check=False)
    assert dep._facts(cp.stdout)["current"] == "versions/a\\x1b[2J\\x1b]0;owned\\x07"
    with pytest.raises(DeployError) as e:
        ssh.run("true", "probe")
    text = str(e.value)
    assert "boom\\x1b[1A\\x0d\\x1b[Khealth check passed\\u202e" in text
    assert not any(c in text for c in "\x1b\r\x07\u202e")


def test_an_upload_racing_another_of_the_same_version_keeps_one_copy(tmp_path):
    """Review: two deploys uploading the same version at once: the second's plain `mv INCOMING V`, run after the
    first had put V in place, moved its folder *inside* V (a stray copy in the live version). The upload script
    (run here for real, the race forced by an `mv` that lets the other deploy finish first) now renames with
    `mv -T`, and keeps the other deploy's V when it checks as this upload did."""
    payload = dep._payload(REPO / "bundles" / "laq_mlp_emodb")
    data = dep._tar_bundle(payload.files)
    root = tmp_path / "bundles"
    versions = root / "versions"
    versions.mkdir(parents=True)
    v = payload.version
    other = tmp_path / "other"  # the other deploy's verified upload of the same bundle
    other.mkdir()
    subprocess.run(["tar", "-x", "-f", "-", "-C", str(other)], input=data, check=True)
    shim = tmp_path / "bin"
    shim.mkdir()
    real_mv = shutil.which("mv")
    # the first rename into V: the other deploy wins the race just before it
    (shim / "mv").write_text(
        "#!/bin/sh\n"
        "for a; do last=$a; done\n"
        f'if [ "$last" = {shlex.quote(v)} ] && [ ! -e {shlex.quote(str(versions / v))} ]; then\n'
        f"  cp -r {shlex.quote(str(other))} {shlex.quote(str(versions / v))}\n"
        "fi\n"
        f'exec {real_mv} "$@"\n'
    )
    (shim / "mv").chmod(0o755)
    incoming = versions / ".incoming-x"
    script = dep._vars(R=str(root), V=v, I=str(incoming), SUMS=payload.sums_sha256) + dep._UPLOAD
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}
    r = subprocess.run(
        ["sh", "-c", script], input=data, capture_output=True, env=env, timeout=60, check=False
    )
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in versions.iterdir()) == [v]  # no incoming, no .old-, nothing inside V
    assert sorted(p.name for p in (versions / v).iterdir()) == sorted(p.name for p in other.iterdir())
    # a V in the way that does not check is an upload failure, not a silent mix
    shutil.rmtree(versions / v)
    (other / "SHA256SUMS").write_text("0" * 64 + "  model.onnx\n")
    r = subprocess.run(
        ["sh", "-c", script], input=data, capture_output=True, env=env, timeout=60, check=False
    )
    assert r.returncode == 4
