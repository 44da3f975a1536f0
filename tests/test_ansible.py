"""The Ansible fleet playbook (deploy/ansible) against a real sshd on 127.0.0.1.

Two inventory hosts (`dev-a`, `dev-b`) reach the same sshd, each with its own bundle ROOT under a temp folder;
`edge_ser_manage_system: false` keeps the run rootless (no apt, user or systemd: a restart command that logs,
and the real health check, `python -m edge_ser info ROOT/current`). Proves: a good bundle reaches both hosts in
two batches (serial 1, then the rest) with `current` links switched; a bad bundle (a manifest this edge-ser
refuses, with correct checksums, so it uploads and verifies and only the health check fails) fails on the first
batch, is rolled back there and never reaches the second host. Skips when ansible-playbook or sshd is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from _sshd import SshServer

REPO = Path(__file__).resolve().parents[1]
PLAYBOOK = REPO / "deploy" / "ansible" / "site.yml"
GOOD = REPO / "bundles" / "av_cnn_audio"


def _ansible_playbook() -> str:
    exe = shutil.which("ansible-playbook") or str(Path(sys.executable).parent / "ansible-playbook")
    if not os.path.exists(exe):
        pytest.skip("ansible-playbook not installed: pip install ansible-core (requirements/test.txt)")
    return exe


_CONTROL_DIRS: list[str] = []


@pytest.fixture(autouse=True, scope="module")
def _remove_control_dirs():
    """The ssh control folders live outside pytest's tmp (see _env): remove them, or every run leaves some."""
    yield
    for d in _CONTROL_DIRS:
        shutil.rmtree(d, ignore_errors=True)


def _env(tmp: Path) -> dict[str, str]:
    cp = tempfile.mkdtemp(prefix="ans-cp-", dir="/tmp")  # short: ssh ControlPath has a 108-byte limit
    _CONTROL_DIRS.append(cp)
    cfg = tmp / "ansible.cfg"
    cfg.write_text("[defaults]\n")  # none of the user's settings
    return {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_PIPELINING": "True", "ANSIBLE_LOCAL_TEMP": str(tmp / "ans-local"),
            "ANSIBLE_REMOTE_TMP": str(tmp / "ans-remote"), "ANSIBLE_SSH_CONTROL_PATH_DIR": cp,
            "ANSIBLE_RETRY_FILES_ENABLED": "False", "ANSIBLE_CONFIG": str(cfg),
            "ANSIBLE_DEPRECATION_WARNINGS": "False"}  # fmt: skip


def test_syntax_check(tmp_path):
    exe = _ansible_playbook()
    r = subprocess.run([exe, "-i", str(PLAYBOOK.parent / "inventory.example.ini"), "--syntax-check",
                        str(PLAYBOOK)], check=False, capture_output=True, text=True, env=_env(tmp_path), timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_example_inventory_gives_each_group_the_wheelhouse_for_its_target(tmp_path):
    """inventory.example.ini: each device's edge_ser_wheelhouse is the folder scripts/wheelhouse.py writes for its
    target, wheelhouse/<target> in the repository (it said ../../dist/wheelhouse-pi-bookworm, written nowhere,
    and gave the Jetson the Pi's cp311 wheels with an edge_ser_target the role never read); every edge_ser_*
    variable it sets is one the role reads (defaults/main.yml)."""
    import re

    exe = str(Path(_ansible_playbook()).with_name("ansible"))
    inv = PLAYBOOK.parent / "inventory.example.ini"
    r = subprocess.run([exe, "edge_devices", "-i", str(inv), "-m", "ansible.builtin.debug", "-a",
                        '{"msg": "{{ edge_ser_wheelhouse }}"}'], check=False, capture_output=True, text=True,
                       env=_env(tmp_path), timeout=60, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    got = dict(re.findall(r'^(\S+) \| SUCCESS => \{\s*"msg": "([^"]*)"', r.stdout, re.M))
    want = {"pi-kitchen": "pi-bookworm", "pi-hall": "pi-bookworm", "jetson-lab": "jetpack6"}
    assert {h: os.path.normpath(p) for h, p in got.items()} == {
        h: str(REPO / "wheelhouse" / t) for h, t in want.items()
    }
    targets = subprocess.run([sys.executable, str(REPO / "scripts" / "wheelhouse.py"), "--help"], check=True,
                             capture_output=True, text=True, timeout=60).stdout  # fmt: skip
    assert all(t in targets for t in want.values())
    defaults = (PLAYBOOK.parent / "roles" / "edge_ser" / "defaults" / "main.yml").read_text()
    role_vars = set(re.findall(r"^(edge_ser_\w+):", defaults, re.M))
    inventory_vars = set(re.findall(r"\b(edge_ser_\w+)=", inv.read_text()))
    assert inventory_vars and inventory_vars <= role_vars, inventory_vars - role_vars


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    _ansible_playbook()
    server = SshServer(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


def _version(bundle: Path) -> str:
    """The version name `edge-ser deploy` and first boot give `bundle` (edge_ser_deploy.naming): the role must
    name it the same (the bad bundle's folder, `bad_bundle`, is not its model's name, so both halves count)."""
    from edge_ser_deploy.naming import source_name, version_name

    raw = (bundle / "manifest.json").read_bytes()
    return version_name(source_name(bundle), raw, json.loads(raw)["model"]["name"])


def _bad_bundle(tmp: Path) -> Path:
    """The good bundle with schema_version 2: every checksum is right, but this edge-ser refuses to load it."""
    bad = tmp / "bad_bundle"
    shutil.copytree(GOOD, bad)
    m = json.loads((bad / "manifest.json").read_text())
    m["schema_version"] = 2
    (bad / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")
    return bad


def _play(
    sshd: SshServer,
    tmp: Path,
    bundle: Path | str,
    cwd: Path | None = None,
    more: dict | None = None,
    limit: str | None = None,
    verbose: bool = False,
) -> subprocess.CompletedProcess:
    """ansible-playbook site.yml on dev-a and dev-b (or only the hosts `limit` names), run in `cwd` (default: this
    process's folder); `verbose`: with -v (each task's result in the output)."""
    inv = tmp / "inventory.ini"
    inv.write_text(
        "[edge_devices]\n"
        f"dev-a ansible_host=127.0.0.1 edge_ser_root={tmp / 'a' / 'bundles'} edge_ser_config_dir={tmp / 'a' / 'etc'}\n"
        f"dev-b ansible_host=127.0.0.1 edge_ser_root={tmp / 'b' / 'bundles'} edge_ser_config_dir={tmp / 'b' / 'etc'}\n"
    )
    py = sys.executable
    extra = {
        "ansible_port": sshd.port, "ansible_user": sshd.user, "ansible_ssh_private_key_file": str(sshd.key),
        "ansible_ssh_common_args": " ".join(sshd.options()), "ansible_python_interpreter": py,
        "edge_ser_manage_system": False, "edge_ser_become": False, "edge_ser_serial": [1, "100%"],
        "edge_ser_bundle": str(bundle), "edge_ser_health_retries": 0, "edge_ser_health_delay": 1,
        "edge_ser_restart_cmd": 'echo "$EDGE_SER_VERSION" >> "$EDGE_SER_ROOT/restarts.log"',
        "edge_ser_health_cmd": f'PYTHONPATH={REPO} {py} -m edge_ser info "$EDGE_SER_CURRENT" >/dev/null',
        "edge_ser_config": {"EDGE_SER_ARGS": "--engine numpy"},
    }  # fmt: skip
    extra.update(more or {})
    (tmp / "vars.json").write_text(json.dumps(extra))
    lim = (["--limit", limit] if limit else []) + (["-v"] if verbose else [])
    return subprocess.run([_ansible_playbook(), "-i", str(inv), "-e", f"@{tmp / 'vars.json'}", *lim, str(PLAYBOOK)],
                          check=False, capture_output=True, text=True, env=_env(tmp), timeout=120, cwd=cwd)  # fmt: skip


def _current(tmp: Path, host: str) -> str | None:
    link = tmp / host / "bundles" / "current"
    return os.readlink(link) if link.is_symlink() else None


def test_good_then_bad_bundle(sshd, tmp_path):
    good = _version(GOOD)
    r = _play(sshd, tmp_path, GOOD)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    for host in ("a", "b"):
        assert _current(tmp_path, host) == f"versions/{good}"
        vdir = tmp_path / host / "bundles" / "versions" / good
        sums = subprocess.run(
            ["sha256sum", "-c", "SHA256SUMS"], cwd=vdir, check=False, capture_output=True, text=True
        )
        assert sums.returncode == 0 and "manifest.json: OK" in sums.stdout
        assert (tmp_path / host / "bundles" / "restarts.log").read_text().split() == [good]
        env = (tmp_path / host / "etc" / "config.env").read_text()
        assert (
            f"EDGE_SER_BUNDLE={tmp_path / host / 'bundles'}/current" in env
            and "EDGE_SER_ARGS=--engine numpy" in env
        )
    # two batches: dev-a alone, then dev-b
    assert out.count("PLAY [Install edge-ser and roll out a bundle]") == 2, out[-4000:]

    bad_bundle = _bad_bundle(tmp_path)
    bad = _version(bad_bundle)
    r = _play(sshd, tmp_path, bad_bundle)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-4000:]
    assert f"{bad} failed its health check on dev-a; rolled back to versions/{good}" in " ".join(out.split())
    # dev-a: switched, failed, switched back (two restarts), the bad version left on disk for inspection
    assert _current(tmp_path, "a") == f"versions/{good}"
    assert (tmp_path / "a" / "bundles" / "restarts.log").read_text().split() == [good, bad, good]
    assert (tmp_path / "a" / "bundles" / "versions" / bad).is_dir()
    # dev-b: the second batch never ran
    assert _current(tmp_path, "b") == f"versions/{good}"
    assert not (tmp_path / "b" / "bundles" / "versions" / bad).exists()
    assert (tmp_path / "b" / "bundles" / "restarts.log").read_text().split() == [good]
    assert "dev-b" not in out.split("PLAY RECAP")[0].split("PLAY [")[-1]

    # no marker left behind by the rollback
    assert not (tmp_path / "a" / "bundles" / "pending").exists()

    # a roll-out interrupted after its switch (the host lost: no rescue runs) leaves dev-a on the bad version
    # with the marker; the next play resolves it with the same script before it rolls out
    act = REPO / "edge_ser_deploy" / "edge-ser-activate"
    r = subprocess.run(["sh", str(act), "--root", str(tmp_path / "a" / "bundles"), "activate", bad, "--by",
                        "a lost play"], check=False, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0 and _current(tmp_path, "a") == f"versions/{bad}", r.stderr
    r = _play(sshd, tmp_path, GOOD)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert (
        _current(tmp_path, "a") == f"versions/{good}"
        and not (tmp_path / "a" / "bundles" / "pending").exists()
    )
    assert "Roll back an activation an interrupted roll-out" in out

    # the rescue said "failed its health check; rolled back" and restarted the service even when nothing had been
    # switched (review finding): the current version, damaged on the device, is uploaded again (one restart) and
    # then fails its check; current stays where it was and the rescue adds no restart
    restarts = (tmp_path / "a" / "bundles" / "restarts.log").read_text().split()
    (tmp_path / "a" / "bundles" / "versions" / good / "weights.esq").write_bytes(b"damaged")
    r = _play(sshd, tmp_path, GOOD, more={"edge_ser_health_cmd": "false"})
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode != 0, out[-4000:]
    assert f"{good} failed on dev-a; nothing was switched: current is still versions/{good}" in out, out[
        -4000:
    ]
    assert "rolled back" not in out.split("Stop the roll-out")[-1]
    assert _current(tmp_path, "a") == f"versions/{good}"
    assert (tmp_path / "a" / "bundles" / "restarts.log").read_text().split() == [
        *restarts,
        good,
    ]  # the repair's


def test_a_relative_bundle_path_is_taken_from_the_folder_ansible_playbook_runs_in(sshd, tmp_path):
    """`-e edge_ser_bundle=bundles/av_cnn`, as deploy/README.md writes it, from the folder the command runs in
    (Ansible's file lookup alone looks in the role and playbook folders and failed); `.` is that folder itself,
    named as `edge-ser deploy .` names it. $PWD points elsewhere: the working folder counts, not the variable."""
    work = tmp_path / "work"
    shutil.copytree(GOOD, work / "bundles" / GOOD.name)
    good = _version(GOOD)
    env_pwd = os.environ.get("PWD")
    r = _play(sshd, tmp_path, f"bundles/{GOOD.name}", cwd=work)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert _current(tmp_path, "a") == _current(tmp_path, "b") == f"versions/{good}"
    assert env_pwd != str(work)

    other = _bad_bundle(tmp_path)  # refused by its health check: what matters here is the name it gets
    r = _play(sshd, tmp_path, ".", cwd=other)
    out = " ".join((r.stdout + r.stderr).split())
    assert f"{_version(other)} failed its health check on dev-a" in out, out[-4000:]
    assert _version(other).startswith("bad_bundle-")

    r = _play(sshd, tmp_path, "no/such/bundle", cwd=work)
    out = " ".join((r.stdout + r.stderr).split())
    assert (
        r.returncode != 0
        and "edge_ser_bundle no/such/bundle: no such folder or .tar on the controller" in out
    )


def test_the_bundle_folders_belong_to_the_login_user_when_the_inventory_names_none(sshd, tmp_path):
    """edge_ser_deploy_user defaulted to ansible_user, else root: a fleet reached without ansible_user (the
    controller's user name, ~/.ssh/config) got root-owned bundle folders, and every later `edge-ser deploy` by the
    login user was refused. The role now asks the device, without become."""
    play = tmp_path / "who.yml"
    play.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.include_role: {name: edge_ser, tasks_from: login_user}\n"
        "    - ansible.builtin.debug: {msg: 'owner={{ edge_ser_deploy_user }}'}\n"
    )
    inv = tmp_path / "inventory.ini"
    inv.write_text("[edge_devices]\ndev-a ansible_host=127.0.0.1\n")
    extra = {"ansible_port": sshd.port, "ansible_ssh_private_key_file": str(sshd.key),
             "ansible_ssh_common_args": " ".join(sshd.options()), "ansible_python_interpreter": sys.executable}  # fmt: skip
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = {**_env(tmp_path), "ANSIBLE_ROLES_PATH": str(PLAYBOOK.parent / "roles")}
    for more, owner in (([], sshd.user), (["-e", "edge_ser_deploy_user=edge"], "edge")):
        r = subprocess.run([_ansible_playbook(), "-i", str(inv), "-e", f"@{tmp_path / 'vars.json'}", *more, str(play)],
                           check=False, capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
        assert r.returncode == 0 and f"owner={owner}" in r.stdout, (r.stdout + r.stderr)[-3000:]


def test_a_service_that_does_not_stay_up_is_rolled_back(sshd, tmp_path):
    """`systemctl is-active` retried until it passed let a crash-looping unit through (active for a moment in
    every Restart=on-failure cycle). The role reads the unit's restart count and activation time right after the
    restart and again after the health window: here a state command that reports the unit active with one more
    restart at each look (a crash loop) fails the canary, which is rolled back; a steady one passes."""
    good = _version(GOOD)
    looping = (
        'n=$(cat "$EDGE_SER_ROOT/n" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$EDGE_SER_ROOT/n"; '
        'echo ActiveState=active; echo "NRestarts=$n"; echo ActiveEnterTimestampMonotonic=$((1000 + n))'
    )
    r = _play(sshd, tmp_path, GOOD, more={"edge_ser_state_cmd": looping, "edge_ser_stable_wait": 0})
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode != 0, out[-4000:]
    assert f"{good} failed its health check on dev-a; rolled back to no version" in out, out[-4000:]
    assert "did not stay up through the health window" in out and "NRestarts=1" in out, out[-4000:]
    assert _current(tmp_path, "a") is None and not (tmp_path / "b" / "bundles" / "versions").exists()

    steady = "echo ActiveState=active; echo NRestarts=0; echo ActiveEnterTimestampMonotonic=1000"
    r = _play(sshd, tmp_path, GOOD, more={"edge_ser_state_cmd": steady, "edge_ser_stable_wait": 0})
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert _current(tmp_path, "a") == _current(tmp_path, "b") == f"versions/{good}"


def test_the_role_lets_the_deploy_user_restart_the_service_as_install_sh_does(sshd, tmp_path):
    """`edge-ser deploy` restarts with `sudo -n systemctl restart edge-ser`: install.sh writes a sudoers rule for
    it, the role wrote none, so every deploy to a role-installed device failed at its restart. The role now writes
    the same rule (here into a temp file, and checked by a stand-in for `visudo -cf`, which logs what it checked),
    only when it manages the system."""
    import re

    visudo = tmp_path / "visudo"
    checked = tmp_path / "visudo.log"
    visudo.write_text(f'#!/bin/sh\n[ "$1" = -cf ] && cat "$2" >> {checked} && grep -q NOPASSWD "$2"\n')
    visudo.chmod(0o755)
    rule = tmp_path / "sudoers.d" / "edge-ser-deploy"
    rule.parent.mkdir()
    play = tmp_path / "sudo.yml"
    play.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.include_role: {name: edge_ser, tasks_from: sudoers}\n"
    )
    inv = tmp_path / "inventory.ini"
    inv.write_text("[edge_devices]\ndev-a ansible_host=127.0.0.1\n")
    extra = {"ansible_port": sshd.port, "ansible_user": sshd.user, "ansible_ssh_private_key_file": str(sshd.key),
             "ansible_ssh_common_args": " ".join(sshd.options()), "ansible_python_interpreter": sys.executable,
             "edge_ser_deploy_user": "dev", "edge_ser_sudoers_file": str(rule),
             "edge_ser_sudoers_validate": f"{visudo} -cf %s"}  # fmt: skip
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = {**_env(tmp_path), "ANSIBLE_ROLES_PATH": str(PLAYBOOK.parent / "roles")}
    r = subprocess.run([_ansible_playbook(), "-i", str(inv), "-e", f"@{tmp_path / 'vars.json'}", str(play)],
                       check=False, capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    dry = subprocess.run(["bash", str(REPO / "deploy" / "pi" / "install.sh"), str(tmp_path), "--deploy-user", "dev",
                          "--dry-run"], capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    want = re.search(r"WRITE /etc/sudoers.d/edge-ser-deploy \(mode 0440\)\n    \| (.*)\n", dry.stdout)
    assert want, dry.stdout + dry.stderr
    assert rule.read_text() == want.group(1) + "\n" == checked.read_text()
    assert oct(rule.stat().st_mode & 0o777) == "0o440"
    config = (PLAYBOOK.parent / "roles" / "edge_ser" / "tasks" / "config.yml").read_text()
    assert re.search(r"import_tasks: sudoers.yml\n\s+when: edge_ser_manage_system \| bool", config)


def _role_temp(out: str) -> list[Path]:
    """The controller temp folders a verbose play says the role made (the unpacked .tar, the upload staging), read
    from its tempfile tasks' results: not a listing of /tmp, which another run on the machine writes to as well."""
    return [Path(p) for p in re.findall(r'"path": "([^"]*/edge-ser-(?:bundle|upload)-[^"/]*)"', out)]


def test_temporary_folders_go_and_the_same_version_again_restarts_nothing(sshd, tmp_path, monkeypatch):
    """A .tar bundle was unpacked into /tmp/edge-ser-bundle-* on the controller and never removed, the upload's
    staging /tmp/edge-ser-upload-* stayed when the roll-out failed, and rolling out the version a device already
    runs restarted every device (edge-ser deploy restarts nothing then). The controller's temp folder is this
    test's own (TMPDIR), so what is left there is what the role left."""
    import tarfile

    ctl = tmp_path / "ctl-tmp"
    ctl.mkdir()
    tar = tmp_path / "av_cnn_audio.tar"
    with tarfile.open(tar, "w") as tf:
        for f in sorted(GOOD.iterdir()):
            tf.add(f, arcname=f.name)
    good = _version(GOOD)  # av_cnn_audio.tar is named as its folder is
    monkeypatch.setenv("TMPDIR", str(ctl))  # _play's environment: the controller's temp folder
    for _ in range(2):
        r = _play(sshd, tmp_path, tar, verbose=True)
        assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
        made = _role_temp(r.stdout)  # the unpacked .tar and the staging, in TMPDIR, and gone
        assert {p.name.rsplit("-", 1)[0] for p in made} == {"edge-ser-bundle", "edge-ser-upload"}, r.stdout[
            -4000:
        ]
        assert all(p.parent == ctl and not p.exists() for p in made) and list(ctl.iterdir()) == [], made
    for host in ("a", "b"):
        assert _current(tmp_path, host) == f"versions/{good}"
        assert (tmp_path / host / "bundles" / "restarts.log").read_text().split() == [good]  # once
    # a roll-out that fails after the staging was made (a version name the device cannot move the upload to)
    r = _play(sshd, tmp_path, tar, more={"edge_ser_bundle_version": "no/such"}, verbose=True)
    assert r.returncode != 0 and "Unpack, sha256sum -c and move" in r.stdout, (r.stdout + r.stderr)[-4000:]
    made = _role_temp(r.stdout)
    assert any(p.name.startswith("edge-ser-upload-") for p in made), r.stdout[
        -4000:
    ]  # made before the failure
    assert all(p.parent == ctl and not p.exists() for p in made) and list(ctl.iterdir()) == [], made


def test_an_unwritable_config_dir_is_named_before_anything_else(sshd, tmp_path):
    """With edge_ser_manage_system false the role still writes edge_ser_config_dir/config.env (default
    /etc/edge-ser), which a non-root SSH user cannot: it failed with the file module's words. The role checks
    first and names the variable (here a folder under a regular file, which no user can create)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    r = _play(sshd, tmp_path, GOOD, more={"edge_ser_config_dir": str(blocker / "etc")})
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode != 0, out[-4000:]
    assert (
        f"edge_ser_config_dir {blocker / 'etc'} (or its config.env) on dev-a cannot be written by" in out
    ), out[-4000:]
    assert not (tmp_path / "a" / "bundles").exists()  # nothing rolled out


def test_the_role_installs_the_apt_packages_the_install_scripts_install(tmp_path):
    """The role's apt list was its own, shorter one (no OpenBLAS, OpenMP, V4L or ALSA tools; no GStreamer on a
    Jetson). It now reads the scripts' lists (deploy/lib/apt-packages*.txt): evaluated here as the role does, for a
    Pi and a Jetson, and compared with what deploy/lib/common.sh's apt_packages gives the scripts."""
    exe = _ansible_playbook()
    role = PLAYBOOK.parent / "roles" / "edge_ser"
    play = tmp_path / "apt.yml"
    play.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.include_vars: {role / 'defaults' / 'main.yml'}\n"
        "    - ansible.builtin.debug:\n        msg: \"APT {{ edge_ser_apt_packages | join(' ') }}\"\n"
    )
    lib = REPO / "deploy" / "lib"

    def scripts(*lists: str) -> list[str]:
        cmd = f'set -e; . "$0"; apt_packages {" ".join(lists)}'
        r = subprocess.run(
            ["bash", "-c", cmd, str(lib / "common.sh")], capture_output=True, text=True, check=True
        )
        return r.stdout.split()

    for jetson, lists in (
        (False, ["apt-packages.txt"]),
        (True, ["apt-packages.txt", "apt-packages-jetson.txt"]),
    ):
        extra = json.dumps({"edge_ser_apt_list_dir": str(lib), "_es_jetson": jetson})
        r = subprocess.run([exe, "-i", "localhost,", "-e", extra, str(play)], check=False, capture_output=True,
                           text=True, env=_env(tmp_path), timeout=60)  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        role_list = next(line for line in r.stdout.splitlines() if '"msg": "APT ' in line).split('"APT ')[1]
        got = role_list.rstrip('"').split()
        want = scripts(*lists)
        assert got[: len(want)] == want and {"libopenblas0", "alsa-utils"} <= set(got), (got, want)
        assert ("gstreamer1.0-tools" in got) is jetson
    for script, lists in (
        ("pi", "apt-packages.txt"),
        ("jetson", "apt-packages-jetson.txt"),
    ):  # no list of their own
        text = (REPO / "deploy" / script / "install.sh").read_text()
        assert "apt_packages apt-packages.txt" in text and lists in text and "libportaudio2" not in text


def test_the_service_user_gets_the_home_the_install_scripts_give_it(tmp_path):
    """The scripts made the service user with home /opt/edge-ser (the prefix, not made by useradd), the role and
    first boot with /var/lib/edge-ser (the role created it). All three now use the prefix. The role sets it only
    when it creates the user, as the scripts: `usermod -d` on an existing user fails while the service runs as it,
    so a device the role installed before (home /var/lib/edge-ser) would have failed every later play."""
    from test_firstboot import _fb

    from edge_ser_deploy.firstboot import user_data

    exe = _ansible_playbook()
    role = PLAYBOOK.parent / "roles" / "edge_ser"
    play = tmp_path / "home.yml"
    play.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.include_vars: {role / 'defaults' / 'main.yml'}\n"
        '    - ansible.builtin.debug:\n        msg: "HOME {{ edge_ser_home }}"\n'
        # the user task's home, for a user that exists here (root) and one that does not
        "    - ansible.builtin.getent: {database: passwd, key: '{{ edge_ser_user }}', fail_key: false}\n"
        "    - ansible.builtin.debug:\n"
        '        msg: "{{ omit if ansible_facts.getent_passwd[edge_ser_user] else edge_ser_home }}"\n'
    )
    # debug's msg omitted: its default, "Hello world!"
    for user, want in (("root", "Hello world!"), ("edge-ser-no-such-user", "/opt/edge-ser")):
        r = subprocess.run([exe, "-i", "localhost,", "-e", json.dumps({"edge_ser_user": user, "ansible_python_interpreter": sys.executable}), str(play)],
                           check=False, capture_output=True, text=True, env=_env(tmp_path), timeout=60)  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        assert '"msg": "HOME /opt/edge-ser"' in r.stdout, r.stdout
        assert f'"msg": "{want}"' in r.stdout, r.stdout
    common = (REPO / "deploy" / "lib" / "common.sh").read_text()
    assert "PREFIX=${EDGE_SER_PREFIX:-/opt/edge-ser}" in common
    assert 'useradd --system --home-dir "$PREFIX" --no-create-home' in common
    (svc,) = (u for u in user_data(_fb())["users"] if u["name"] == "edge-ser")
    assert svc["homedir"] == "/opt/edge-ser" and svc["no_create_home"] is True
    install = (role / "tasks" / "install.yml").read_text()
    user_task = install.split("- name: Service user")[1].split("\n- name:")[0]
    assert "ansible.builtin.getent:" in install.split("- name: Service user")[0]
    assert 'home: "{{ omit if ansible_facts.getent_passwd[edge_ser_user] else edge_ser_home }}"' in user_task
    assert "create_home: false" in user_task


def test_config_env_keeps_edits_and_changes_only_the_keys_the_role_sets(sshd, tmp_path):
    """The role wrote config.env from its template on every run: an edit made on the device (a microphone, the
    web port) was lost at the next play. As the install scripts do, an existing file is now kept and only the
    edge_ser_config keys are set, each line only when its value differs (a run with nothing new changes nothing).
    Only dev-a is checked, so only dev-a is played (--limit): dev-b's batch would repeat the same tasks."""
    more = {"edge_ser_bundle": ""}
    r = _play(sshd, tmp_path, "", more=more, limit="dev-a")
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    cfg = tmp_path / "a" / "etc" / "config.env"
    assert not (tmp_path / "b").exists()  # the --limit held
    first = cfg.read_text()
    assert (
        "EDGE_SER_ARGS=--engine numpy\n" in first and f"EDGE_SER_ROOT={tmp_path / 'a' / 'bundles'}\n" in first
    )
    cfg.write_text(first + "EDGE_SER_MIC=USB Audio\n")  # the user's edit on the device

    def config_tasks(out: str) -> str:
        return "\n".join(block for block in out.split("TASK [") if block.startswith("edge_ser : config.env"))

    r = _play(sshd, tmp_path, "", more=more, limit="dev-a")  # the same settings again
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert cfg.read_text() == first + "EDGE_SER_MIC=USB Audio\n"
    assert "changed: [dev-a]" not in config_tasks(r.stdout) and "ok: [dev-a]" in config_tasks(r.stdout)

    r = _play(
        sshd,
        tmp_path,
        "",
        more={**more, "edge_ser_config": {"EDGE_SER_ARGS": "--engine onnxruntime"}},
        limit="dev-a",
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    text = cfg.read_text()
    assert "EDGE_SER_ARGS=--engine onnxruntime\n" in text and text.count("EDGE_SER_ARGS=") == 1
    assert "EDGE_SER_MIC=USB Audio\n" in text and "changed: [dev-a]" in config_tasks(r.stdout)


def test_a_new_config_env_has_the_keys_and_defaults_the_install_scripts_write(sshd, tmp_path):
    """The role's config.env had only EDGE_SER_ROOT, EDGE_SER_BUNDLE and edge_ser_config's keys: no
    EDGE_SER_WEB_PORT, EDGE_SER_ENGINE or EDGE_SER_EXTRA_ARGS (what edge-ser-start reads), so a device the role
    installed started without the web page and the scripts' --threads 2, unlike one deploy/pi/install.sh installed.
    A new one now has every key the scripts write, with their defaults (role variables, defaults/main.yml); a key
    edge_ser_config sets too is written once, with its value. Compared with the Pi script's --dry-run plan."""
    from test_install_scripts import DEPLOY, _dry

    wh = tmp_path / "wheelhouse"
    wh.mkdir()
    plan = _dry(DEPLOY / "pi" / "install.sh", str(wh), "--deploy-user", "dev",
                env={"EDGE_SER_ETC": str(tmp_path / "script-etc")})  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    block = plan.stdout.split(f"WRITE {tmp_path / 'script-etc'}/config.env (mode 0644)\n", 1)[1]
    script = {}
    for line in block.splitlines():
        if not line.startswith("    | "):
            break
        if re.match(r"    \| EDGE_SER_\w+=", line):
            key, value = line[6:].split("=", 1)
            script[key] = value
    assert {"EDGE_SER_WEB_PORT", "EDGE_SER_ENGINE", "EDGE_SER_EXTRA_ARGS"} <= set(script), script

    more = {"edge_ser_bundle": "", "edge_ser_config": {"EDGE_SER_ENGINE": "numpy", "EDGE_SER_ARGS": "x"}}
    r = _play(sshd, tmp_path, "", more=more, limit="dev-a")
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    text = (tmp_path / "a" / "etc" / "config.env").read_text()
    role = dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    root = tmp_path / "a" / "bundles"
    assert role == {**script, "EDGE_SER_BUNDLE": f"{root}/current", "EDGE_SER_ENGINE": "numpy",
                    "EDGE_SER_ROOT": str(root), "EDGE_SER_ARGS": "x"}  # fmt: skip
    assert text.count("EDGE_SER_ENGINE=") == 1
    assert script["EDGE_SER_WEB_PORT"] == "8000" and script["EDGE_SER_EXTRA_ARGS"] == "--threads 2"


def _runtime_play(
    tmp: Path, venv_files: dict[str, str], pip_does: str, more: dict | None = None
) -> subprocess.CompletedProcess:
    """The role's runtime.yml (its pip steps) on localhost, against a fake venv in `tmp`: bin/pip runs `pip_does`
    (shell) with the venv in $V; bin/python's `import edge_ser` succeeds while lib/edge_ser exists and lib/BROKEN
    does not, and its OpenCV check (`-c` naming cv2) while lib/cv2_gstreamer exists. `more`: extra variables."""
    venv = tmp / "venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    (venv / "lib").mkdir(exist_ok=True)
    for name, text in venv_files.items():
        (venv / "lib" / name).write_text(text)
    (venv / "bin" / "pip").write_text(
        f'#!/bin/sh\nV=$(dirname "$0")/..\necho "pip $*" >>"$V/../pip.log"\n{pip_does}\n'
    )
    (venv / "bin" / "python").write_text(
        '#!/bin/sh\nV=$(dirname "$0")/..\ncase "$*" in *cv2*) exec test -e "$V/lib/cv2_gstreamer";; esac\n'
        '[ -e "$V/lib/edge_ser" ] && [ ! -e "$V/lib/BROKEN" ]\n'
    )
    for exe in ("pip", "python"):
        (venv / "bin" / exe).chmod(0o755)
    role = PLAYBOOK.parent / "roles" / "edge_ser"
    play = tmp / "runtime.yml"
    play.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.include_role:\n        name: {role}\n        tasks_from: runtime.yml\n"
    )
    extra = {"edge_ser_venv": str(venv), "edge_ser_prefix": str(tmp), "edge_ser_wheelhouse_dest": str(tmp / "wh"),
             "_es_pip_needed": True, "_es_ort_wheel": "", "edge_ser_pip_packages": ["edge-ser"],
             "edge_ser_manage_system": False, "ansible_python_interpreter": sys.executable, **(more or {})}  # fmt: skip
    (tmp / "vars.json").write_text(json.dumps(extra))
    return subprocess.run([_ansible_playbook(), "-i", "localhost,", "-e", f"@{tmp / 'vars.json'}", str(play)],
                          check=False, capture_output=True, text=True, env=_env(tmp), timeout=120)  # fmt: skip


def _lib(tmp: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((tmp / "venv" / "lib").iterdir())}


@pytest.mark.parametrize(
    ("case", "pip_does"),
    [
        ("pip fails half way", 'case "$*" in *edge-ser*) echo half >"$V/lib/half"; exit 1;; esac'),
        ("pip succeeds, edge_ser no longer imports", 'echo x >"$V/lib/BROKEN"'),
    ],
)
def test_the_role_puts_the_previous_runtime_back_when_an_upgrade_fails(tmp_path, case, pip_does):
    """The role's pip changed the live venv with nothing to go back to (the install scripts restore a snapshot,
    runtime_upgrade): a failed upgrade now restores the venv as it was, fails the device naming it, and leaves no
    snapshot or half-upgraded copy behind."""
    before = {"edge_ser": "old"}
    r = _runtime_play(tmp_path, before, pip_does)
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode != 0, out[-3000:]
    assert "was restored to the runtime it had before this run" in out, out[-3000:]
    assert _lib(tmp_path) == before
    assert not (tmp_path / ".venv-previous").exists() and not (tmp_path / "venv.failed").exists()


def test_the_role_keeps_a_good_upgrade_and_restores_an_interrupted_one_first(tmp_path):
    """A good upgrade is kept and its snapshot dropped; a snapshot left by a run that was cut off is restored
    before pip runs (the venv it left may be the half-upgraded one)."""
    r = _runtime_play(
        tmp_path, {"edge_ser": "old"}, 'case "$*" in *edge-ser*) echo new >"$V/lib/edge_ser";; esac'
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert _lib(tmp_path) == {"edge_ser": "new\n"} and not (tmp_path / ".venv-previous").exists()
    snap = tmp_path / ".venv-previous"
    shutil.copytree(tmp_path / "venv", snap, symlinks=True)
    (tmp_path / "venv" / "lib" / "half").write_text("left by a cut-off run")
    r = _runtime_play(tmp_path, {}, "true")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "was interrupted: restoring" in r.stdout and _lib(tmp_path) == {"edge_ser": "new\n"}
    assert not snap.exists()


PI_CAMERA = "libcamerasrc ! video/x-raw,width=640,height=480,framerate=30/1 ! videoconvert ! appsink"


def _camera_facts(tmp: Path, config_env: str | None, more: dict) -> dict:
    """The role's camera.yml on localhost with config.env in tmp/etc (None: no file): its facts, as JSON."""
    etc = tmp / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "config.env").unlink(missing_ok=True)
    if config_env is not None:
        (etc / "config.env").write_text(config_env)
    play = tmp / "camera.yml"
    play.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.include_role:\n        name: {PLAYBOOK.parent / 'roles' / 'edge_ser'}\n"
        "        tasks_from: camera.yml\n"
        "    - ansible.builtin.debug:\n"
        "        msg: \"FACTS {{ {'camera': _es_camera, 'gst': _es_gst_camera | bool,"
        " 'packages': _es_camera_packages} | to_json }}\"\n"
    )
    (tmp / "vars.json").write_text(
        json.dumps({"edge_ser_config_dir": str(etc), "ansible_python_interpreter": sys.executable, **more})
    )
    r = subprocess.run([_ansible_playbook(), "-i", "localhost,", "-e", f"@{tmp / 'vars.json'}", str(play)],
                       check=False, capture_output=True, text=True, env=_env(tmp), timeout=60)  # fmt: skip
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    line = next(x for x in r.stdout.splitlines() if '"msg": "FACTS ' in x)
    return json.loads(json.loads(line.split('"msg": ', 1)[1])[len("FACTS ") :])


def test_the_role_gives_a_gstreamer_camera_the_system_opencv_as_the_install_scripts_do(tmp_path):
    """The role installed pip's OpenCV (no GStreamer) whatever the camera, so a fleet of Pi camera modules
    (`edge_ser_camera` a libcamerasrc pipeline) got a service that refused its camera; install.sh --pi-camera
    installs the libcamera plugins and python3-opencv, makes the venv with --system-site-packages and drops pip's
    wheel. The role now decides the camera as the scripts do (edge_ser_config's, else the existing config.env's,
    else edge_ser_camera) and installs what a pipeline needs."""
    lib = [
        "rpicam-apps-lite",
        "gstreamer1.0-libcamera",
        "gstreamer1.0-plugins-base",
        "gstreamer1.0-plugins-good",
    ]
    assert _camera_facts(tmp_path, None, {}) == {"camera": "0", "gst": False, "packages": []}
    assert _camera_facts(tmp_path, None, {"edge_ser_camera": PI_CAMERA}) == {
        "camera": PI_CAMERA, "gst": True, "packages": ["python3-opencv", *lib]
    }  # fmt: skip
    # a device configured with a Jetson CSI camera keeps it (a play that does not set one), as a script re-run
    jetson = "nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,height=720 ! nvvidconv ! appsink"
    got = _camera_facts(tmp_path, f"EDGE_SER_BUNDLE=x\nEDGE_SER_CAMERA={jetson}\n", {})
    assert got == {"camera": jetson, "gst": True, "packages": ["python3-opencv"]}
    # ... unless edge_ser_config sets the camera (that line is what config.yml writes)
    more = {"edge_ser_config": {"EDGE_SER_CAMERA": "0"}}
    assert _camera_facts(tmp_path, f"EDGE_SER_CAMERA={jetson}\n", more)["gst"] is False
    # a config.env without a camera line: the role's default
    assert (
        _camera_facts(tmp_path, "EDGE_SER_BUNDLE=x\n", {"edge_ser_camera": "/dev/video2"})["camera"]
        == "/dev/video2"
    )
    # the scripts' own list for --pi-camera is the role's default
    assert " ".join(lib) in (REPO / "deploy" / "pi" / "install.sh").read_text()
    install = (PLAYBOOK.parent / "roles" / "edge_ser" / "tasks" / "install.yml").read_text()
    assert "edge_ser_apt_packages + _es_camera_packages" in install
    assert "_es_jetson | bool or _es_gst_camera | bool" in install


def test_the_role_drops_pips_opencv_for_a_gstreamer_camera_and_warns_when_the_system_one_lacks_it(tmp_path):
    """With a GStreamer camera the runtime step uninstalls pip's opencv wheels (as common.sh's system_opencv) and
    warns, without failing, when the venv's OpenCV then has no GStreamer; with a USB camera it leaves OpenCV
    alone."""
    gst = {"_es_gst_camera": True, "_es_camera": PI_CAMERA}
    r = _runtime_play(tmp_path, {"edge_ser": "old"}, "true", more=gst)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    log = (tmp_path / "pip.log").read_text()
    assert "pip uninstall -y opencv-python-headless opencv-python" in log, log
    assert "the service will refuse the camera" in " ".join(r.stdout.split())
    (tmp_path / "pip.log").unlink()
    (tmp_path / "venv" / "lib" / "cv2_gstreamer").write_text("")
    r = _runtime_play(tmp_path, {"edge_ser": "old", "cv2_gstreamer": ""}, "true", more=gst)
    assert r.returncode == 0 and "refuse the camera" not in r.stdout, (r.stdout + r.stderr)[-3000:]
    (tmp_path / "pip.log").unlink()
    r = _runtime_play(tmp_path, {"edge_ser": "old"}, "true", more={"_es_gst_camera": False})
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "opencv" not in (tmp_path / "pip.log").read_text()


def test_the_restart_handler_waits_for_the_first_bundle(tmp_path):
    """The install notifies `Restart edge-ser` (pip, a new config.env, the unit), and the roll-out flushes the
    handlers before its switch: on a fresh device there is no ROOT/current yet, the unit's ExecStartPre
    (`edge-ser info ROOT/current`) fails, and `systemctl restart` failed the device before its first bundle was
    switched (an install without a bundle failed at the end of the play). As install.sh, the role now restarts only
    once a bundle is deployed. systemctl is a stand-in that fails a start without ROOT/current, as the unit does."""
    root = tmp_path / "bundles"
    root.mkdir()
    log = tmp_path / "systemctl.log"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "systemctl").write_text(
        '#!/bin/sh\necho "$*" >> "$LOG"\ncase $1 in\n'
        "  show) echo LoadState=loaded; echo ActiveState=inactive ;;\n"
        '  start|restart) [ -e "$ROOT/current" ] || { echo "Job for edge-ser.service failed" >&2; exit 1; } ;;\n'
        "esac\n"
    )
    (fake / "systemctl").chmod(0o755)
    handlers = PLAYBOOK.parent / "roles" / "edge_ser" / "handlers" / "main.yml"
    play = tmp_path / "handlers.yml"
    play.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n"
        f'  environment: {{PATH: "{fake}:{{{{ lookup(\'env\', \'PATH\') }}}}", LOG: "{log}", ROOT: "{root}"}}\n'
        "  tasks:\n"
        "    - name: an install step that changed something\n"
        "      ansible.builtin.command: 'true'\n      changed_when: true\n      notify: Restart edge-ser\n"
        f"  handlers:\n    - ansible.builtin.import_tasks: {handlers}\n"
    )
    extra = {"edge_ser_manage_system": True, "edge_ser_service": "edge-ser", "edge_ser_root": str(root),
             "ansible_python_interpreter": sys.executable}  # fmt: skip
    (tmp_path / "vars.json").write_text(json.dumps(extra))

    def run() -> subprocess.CompletedProcess:
        return subprocess.run([_ansible_playbook(), "-i", "localhost,", "-e", f"@{tmp_path / 'vars.json'}",
                               str(play)], check=False, capture_output=True, text=True, env=_env(tmp_path),
                              timeout=120)  # fmt: skip

    r = run()  # a fresh device: installed and enabled, nothing to start yet
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "it starts with the first roll-out" in r.stdout
    assert not log.exists() or not re.search(r"^(re)?start ", log.read_text(), re.M)
    (root / "versions" / "v1").mkdir(parents=True)
    (root / "current").symlink_to("versions/v1")
    r = run()  # a bundle is deployed: the change restarts the service
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert re.search(r"^(re)?start edge-ser$", log.read_text(), re.M), log.read_text()


def test_a_play_whose_paths_the_unit_file_does_not_use_is_refused(tmp_path):
    """deploy/systemd/edge-ser.service is copied as it is (/opt/edge-ser, /etc/edge-ser/config.env, User=edge-ser):
    a play setting edge_ser_config_dir, edge_ser_prefix or edge_ser_user otherwise wrote config.env and the venv
    where the unit never looks, and the service failed at its first start. The role now checks the unit against
    them before the install (main.yml imports unit_check.yml) and says what to do; the built-in template follows them."""
    role = PLAYBOOK.parent / "roles" / "edge_ser"
    main = (role / "tasks" / "main.yml").read_text()
    assert re.search(r"import_tasks: unit_check.yml\n  when: edge_ser_manage_system \| bool\n", main)
    assert (
        main.index("unit_check.yml") < main.index("install.yml") < main.index("config.yml")
    )  # before any write
    play = tmp_path / "unit.yml"
    play.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.include_role: {{name: {role}, tasks_from: unit_check}}\n"
    )
    unit = str(REPO / "deploy" / "systemd" / "edge-ser.service")

    def run(**more: str) -> subprocess.CompletedProcess:
        extra = {"edge_ser_unit_src": unit, "ansible_python_interpreter": sys.executable, **more}
        (tmp_path / "vars.json").write_text(json.dumps(extra))
        return subprocess.run([_ansible_playbook(), "-i", "localhost,", "-e", f"@{tmp_path / 'vars.json'}", str(play)],
                              check=False, capture_output=True, text=True, env=_env(tmp_path), timeout=120)  # fmt: skip

    r = run()  # the defaults are the unit's
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    for var, value in (("edge_ser_config_dir", "/srv/edge-ser/etc"), ("edge_ser_prefix", "/srv/edge-ser"),
                       ("edge_ser_user", "ser"), ("edge_ser_venv", "/srv/venv")):  # fmt: skip
        r = run(**{var: value})
        out = " ".join((r.stdout + r.stderr).split())
        assert r.returncode != 0 and f"{unit} does not match this play's" in out, out[-3000:]
        assert f"({value}" in out and "edge_ser_unit_src='' uses the role's built-in template" in out, out[
            -3000:
        ]
    r = run(edge_ser_unit_src="", edge_ser_config_dir="/srv/edge-ser/etc")  # the template: nothing to check
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    # the template's edge-ser-start runs PREFIX/venv: another venv is refused there too
    r = run(edge_ser_unit_src="", edge_ser_venv="/srv/venv")
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode != 0 and "edge_ser_venv (/srv/venv) must be edge_ser_prefix/venv" in out, out[-3000:]


def _local_play(
    tmp: Path, bundles: dict[str, Path | str], more: dict | None = None, args: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """site.yml, rootless as _play, on one host per entry of `bundles` (its edge_ser_bundle, a host variable as a
    group's would be), all in one batch, reached with the local connection; each host's ROOT and config folder
    under tmp/<host>. `args`: more ansible-playbook options (--check)."""
    inv = tmp / "inventory-local.ini"
    inv.write_text(
        "[edge_devices]\n"
        + "".join(
            f"{h} ansible_connection=local edge_ser_root={tmp / h / 'bundles'} "
            f"edge_ser_config_dir={tmp / h / 'etc'} edge_ser_bundle={b}\n"
            for h, b in bundles.items()
        )
    )
    py = sys.executable
    extra = {
        "ansible_python_interpreter": py, "edge_ser_manage_system": False, "edge_ser_become": False,
        "edge_ser_serial": ["100%"], "edge_ser_health_retries": 0, "edge_ser_health_delay": 1,
        "edge_ser_restart_cmd": 'echo "$EDGE_SER_VERSION" >> "$EDGE_SER_ROOT/restarts.log"',
        "edge_ser_health_cmd": f'PYTHONPATH={REPO} {py} -m edge_ser info "$EDGE_SER_CURRENT" >/dev/null',
        **(more or {}),
    }  # fmt: skip
    (tmp / "vars-local.json").write_text(json.dumps(extra))
    return subprocess.run([_ansible_playbook(), "-i", str(inv), "-e", f"@{tmp / 'vars-local.json'}", *args,
                           str(PLAYBOOK)], check=False, capture_output=True, text=True, env=_env(tmp), timeout=180)  # fmt: skip


def test_hosts_of_one_batch_each_get_their_own_bundle(tmp_path):
    """A fleet whose groups roll out different bundles (the Pis one, the Jetsons another) in one batch: the upload
    was packed once per batch (run_once) from the first host's bundle, so the second host got the first one's
    files under its own version name, which verified and passed its health check: a device ran another model
    than its inventory said, silently. Each host now gets its own bundle, a .tar one too."""
    import tarfile

    other = REPO / "bundles" / "ser_emodb"
    tar = tmp_path / f"{other.name}.tar"
    with tarfile.open(tar, "w") as tf:
        for f in sorted(other.iterdir()):
            tf.add(f, arcname=f.name)
    r = _local_play(tmp_path, {"pi": GOOD, "jetson": tar})
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    for host, bundle in (("pi", GOOD), ("jetson", other)):
        version = _version(bundle)
        assert os.readlink(tmp_path / host / "bundles" / "current") == f"versions/{version}"
        got = tmp_path / host / "bundles" / "versions" / version / "manifest.json"
        assert got.read_bytes() == (bundle / "manifest.json").read_bytes(), host


def test_a_second_run_of_the_same_bundle_changes_nothing(tmp_path):
    """Idempotence as a fleet's recap shows it: rolling out the bundle a device already runs reported 5 changes
    per device (the controller's staging folder, SHA256SUMS, manifest.sha256, the tar and their removal), so the
    recap could not tell a device that changed from one that did not. A .tar bundle (its unpacking) too."""
    import tarfile

    tar = tmp_path / f"{GOOD.name}.tar"
    with tarfile.open(tar, "w") as tf:
        for f in sorted(GOOD.iterdir()):
            tf.add(f, arcname=f.name)
    r = _local_play(tmp_path, {"dev-a": GOOD, "dev-b": tar})
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    recap = r.stdout.split("PLAY RECAP")[-1]
    assert re.search(r"dev-a\s*:.*changed=[1-9]", recap), recap  # the first run does change the devices
    r = _local_play(tmp_path, {"dev-a": GOOD, "dev-b": tar})
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    recap = r.stdout.split("PLAY RECAP")[-1]
    changed = re.findall(r"^TASK \[([^\]]*)\][^\n]*\n(?:[^\n]*\n)*?changed: ", r.stdout, re.M)
    assert re.findall(r"^(dev-[ab])\s*:.*changed=0 ", recap, re.M) == ["dev-a", "dev-b"], (recap, changed)
    for host in ("dev-a", "dev-b"):
        assert (tmp_path / host / "bundles" / "restarts.log").read_text().split() == [_version(GOOD)]


def test_check_mode_says_what_the_roll_out_would_do_and_changes_nothing(tmp_path, monkeypatch):
    """`ansible-playbook --check --diff` of the fleet failed on its canary: the probe and `edge-ser-activate
    status` were skipped in check mode and the next task read their missing output. They are read-only (the
    probe's mkdir is left out) and run in check mode now; the device is not touched, the controller keeps no temp
    folder, and the play says what it would do, a change only when the device would get one."""
    ctl = tmp_path / "ctl-tmp"
    ctl.mkdir()
    monkeypatch.setenv("TMPDIR", str(ctl))  # the controller's temp folder (the staging)
    r = _local_play(tmp_path, {"dev-a": GOOD}, args=("--check", "--diff"))
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 0, out[-4000:]
    version = _version(GOOD)
    assert f"would upload {version} and switch current from (none) to versions/{version}" in out, out[-4000:]
    assert not (tmp_path / "dev-a" / "bundles").exists() and list(ctl.iterdir()) == []
    assert re.search(r"dev-a\s*:.*changed=[1-9]", r.stdout.split("PLAY RECAP")[-1])

    r = _local_play(tmp_path, {"dev-a": GOOD})
    assert r.returncode == 0 and _current(tmp_path, "dev-a") == f"versions/{version}", r.stdout[-4000:]
    r = _local_play(tmp_path, {"dev-a": GOOD}, args=("--check",))
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 0 and f"versions/{version} is current and intact: nothing to do" in out, out[
        -4000:
    ]
    assert re.search(r"dev-a\s*:.*changed=0 ", r.stdout.split("PLAY RECAP")[-1]), out[-4000:]
    other = REPO / "bundles" / "ser_emodb"
    r = _local_play(tmp_path, {"dev-a": other}, args=("--check",))
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 0, out[-4000:]
    assert f"would upload {_version(other)} and switch current from versions/{version}" in out, out[-4000:]
    assert _current(tmp_path, "dev-a") == f"versions/{version}"
    assert [p.name for p in (tmp_path / "dev-a" / "bundles" / "versions").iterdir()] == [version]


def test_check_mode_on_a_new_device_reads_no_wheelhouse_or_venv_that_is_not_there(tmp_path):
    """`--check` of the install on a new device: the wheelhouse copy and the venv are only reported, not made, and
    the read-only tasks that run in check mode failed on them (`cd` into the missing wheelhouse; a Jetson's look
    for NVIDIA's wheel ran the missing venv's python). Those two tasks of install.yml, run as they are in --check
    with the wheelhouse and the venv missing (temp paths), now pass and leave nothing behind."""
    import yaml

    tasks = yaml.safe_load((PLAYBOOK.parent / "roles" / "edge_ser" / "tasks" / "install.yml").read_text())
    wanted = ("Checksum of the wheelhouse on the device", "NVIDIA's onnxruntime-gpu wheel (Jetson)")
    picked = [t for t in tasks if t["name"] in wanted]
    assert len(picked) == 2
    (tmp_path / "picked.yml").write_text(yaml.safe_dump(picked))
    play = tmp_path / "check.yml"
    play.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.import_tasks: {tmp_path / 'picked.yml'}\n"
        "    - ansible.builtin.debug: {msg: 'SUM=[{{ _es_wheelhouse_sum.stdout }}] ORT=[{{ _es_ort.stdout }}]'}\n"
    )
    extra = {"edge_ser_wheelhouse": "wh", "edge_ser_wheelhouse_dest": str(tmp_path / "opt" / "wheelhouse"),
             "edge_ser_venv": str(tmp_path / "opt" / "venv"), "edge_ser_ort_wheel": "", "_es_pip_needed": True,
             "_es_jetson": True, "ansible_python_interpreter": sys.executable}  # fmt: skip
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    r = subprocess.run([_ansible_playbook(), "-i", "localhost,", "-e", f"@{tmp_path / 'vars.json'}", "--check",
                        str(play)], check=False, capture_output=True, text=True, env=_env(tmp_path), timeout=60)  # fmt: skip
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert '"msg": "SUM=[] ORT=[]"' in r.stdout, r.stdout[-3000:]
    assert not (tmp_path / "opt").exists()


def test_the_built_in_unit_runs_edge_ser_with_the_settings_of_config_env(tmp_path):
    """The role's template unit (edge_ser_unit_src '', what the unit check says to use with other paths) ran
    `edge-ser run ${EDGE_SER_BUNDLE}` alone: the microphone, camera, engine, web page and extra options of
    config.env (edge_ser_mic, edge_ser_web_port, ...) did nothing, and edge-ser-start was not even installed. The
    template and config.env are rendered here for a prefix in a temp folder, and the unit's ExecStart (systemd's
    ${VAR} expansion done by hand) is run with its environment: edge-ser, a stand-in, must get those options."""
    import shlex
    import string

    role = PLAYBOOK.parent / "roles" / "edge_ser"
    prefix, etc = tmp_path / "opt", tmp_path / "etc"
    play = tmp_path / "unit.yml"
    play.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.include_vars: {role / 'defaults' / 'main.yml'}\n"
        f"    - ansible.builtin.template: {{src: {role / 'templates' / 'edge-ser.service.j2'}, dest: {tmp_path / 'unit'}}}\n"
        f"    - ansible.builtin.template: {{src: {role / 'templates' / 'config.env.j2'}, dest: {tmp_path / 'config.env'}}}\n"
    )  # fmt: skip
    extra = {"edge_ser_prefix": str(prefix), "edge_ser_config_dir": str(etc), "edge_ser_mic": "USB",
             "edge_ser_engine": "numpy", "ansible_python_interpreter": sys.executable}  # fmt: skip
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    r = subprocess.run([_ansible_playbook(), "-i", "localhost,", "-e", f"@{tmp_path / 'vars.json'}", str(play)],
                       check=False, capture_output=True, text=True, env=_env(tmp_path), timeout=60)  # fmt: skip
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    unit = (tmp_path / "unit").read_text()
    assert f"EnvironmentFile={etc}/config.env" in unit
    # what the role installs under the prefix (config.yml), and a stand-in edge-ser that prints its arguments
    (prefix / "bin").mkdir(parents=True)
    (prefix / "venv" / "bin").mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "systemd" / "edge-ser-start", prefix / "bin" / "edge-ser-start")
    (prefix / "venv" / "bin" / "edge-ser").write_text('#!/bin/sh\necho "ARGS $*"\n')
    for exe in (prefix / "bin" / "edge-ser-start", prefix / "venv" / "bin" / "edge-ser"):
        exe.chmod(0o755)
    env = {"PATH": os.environ["PATH"]}
    for line in (tmp_path / "config.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = value
    for line in unit.splitlines():
        if line.startswith("Environment="):
            env.update(item.split("=", 1) for item in line[len("Environment=") :].split())
    start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))[len("ExecStart=") :]
    argv = shlex.split(string.Template(start).safe_substitute(env))
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, timeout=30).stdout
    assert out.startswith(f"ARGS run {tmp_path / 'opt' / 'bundles'}/current --no-console"), out
    for option in (
        "--mic USB",
        "--engine numpy",
        "--web 8000 --web-host 0.0.0.0",
        "--threads 2",
        "--camera 0",
    ):
        assert option in out, (option, out)
    config = (role / "tasks" / "config.yml").read_text()
    start_task = config.split("- name: edge-ser-start")[1].split("\n- name:")[0]
    assert 'src: "{{ edge_ser_start_src }}"' in start_task and "edge_ser_unit_src" not in start_task
