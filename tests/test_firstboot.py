"""First-boot cloud-init files (edge_ser_deploy/firstboot.py): generated, parsed back, checked with cloud-init itself.

cloud-init's own checks run when the `cloud-init` binary is installed (Debian's package; scripts/system-
packages.sh installs it) and skip with the reason otherwise: `cloud-init schema --config-file user-data`,
network-config through `cloud-init devel net-convert` (and `--schema-type network-config` on cloud-init >= 23),
and `netplan generate` when netplan.io is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from edge_ser.errors import BundleError, ConfigError
from edge_ser_deploy.firstboot import FirstBoot, cmd_firstboot, generate, read_ssh_keys, validate, wpa_psk

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "av_cnn_audio"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKq2B8tuE4nIp1iPUOxk8Uj0O9E3d0gkHVRn0WkE0kQz test@host"


@pytest.fixture
def wheelhouse(tmp_path):
    wh = tmp_path / "wh"
    wh.mkdir()
    (wh / "requirements.lock").write_text(LOCK_HEADER + "numpy==2.2.6 --hash=sha256:" + "0" * 64 + "\n")
    return wh


LOCK_HEADER = (
    "# edge-ser wheelhouse lock for pi-trixie: Raspberry Pi OS Trixie 64-bit (Debian 13), Python 3.13\n"
)


def _fb(**kw) -> FirstBoot:
    base = {"hostname": "pi-kitchen", "ssh_keys": (KEY,), "wifi_ssid": "Home Net", "wifi_password": "correct horse",
            "country": "GB"}  # fmt: skip
    return FirstBoot(**{**base, **kw})


def test_generate_and_parse(tmp_path, wheelhouse):
    out = tmp_path / "boot"
    out.mkdir()
    written = generate(_fb(), out, wheelhouse=wheelhouse, bundle=BUNDLE)
    assert set(written) == {"user-data", "network-config", "meta-data", "wheelhouse", "bundle"}
    ud_text = (out / "user-data").read_text()
    assert ud_text.startswith("#cloud-config\n")
    ud = yaml.safe_load(ud_text)
    assert ud["hostname"] == "pi-kitchen"
    login = ud["users"][0]
    assert (
        login["ssh_authorized_keys"] == [KEY] and login["lock_passwd"] is True and ud["ssh_pwauth"] is False
    )
    assert {"python3-venv", "libportaudio2"} <= set(ud["packages"])
    files = {f["path"]: f["content"] for f in ud["write_files"]}
    assert "EDGE_SER_BUNDLE=/opt/edge-ser/bundles/current" in files["/etc/edge-ser/config.env"]
    assert "[Service]" in files["/etc/systemd/system/edge-ser.service"]
    script = files["/usr/local/sbin/edge-ser-firstboot"]
    assert "--no-index --find-links" in script and "requirements.lock" in script and "sha256sum -c" in script
    assert "systemctl enable --now edge-ser.service" in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)  # the script parses
    assert ud["runcmd"] == [["/usr/local/sbin/edge-ser-firstboot"]]

    net = yaml.safe_load((out / "network-config").read_text())["network"]
    wlan = net["wifis"]["wlan0"]
    assert net["version"] == 2 and wlan["regulatory-domain"] == "GB"
    # the passphrase is stored as its WPA PSK (IEEE 802.11i test vector checks wpa_psk below)
    assert wlan["access-points"]["Home Net"]["password"] == wpa_psk("Home Net", "correct horse")
    assert "correct horse" not in (out / "network-config").read_text()

    md = yaml.safe_load((out / "meta-data").read_text())
    assert md["local-hostname"] == "pi-kitchen" and md["instance-id"].startswith("edge-ser-pi-kitchen-")
    assert (out / "edge-ser" / "bundle" / "manifest.json").is_file()
    assert (out / "edge-ser" / "wheelhouse" / "requirements.lock").is_file()
    assert not list(out.glob(".*"))  # no temporary files left


def test_wpa_psk_reference_vector():
    # IEEE 802.11i-2004 annex H.4.1, test case 1
    assert wpa_psk("IEEE", "password") == "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"


def test_first_boot_switches_with_the_shared_script(tmp_path, wheelhouse):
    """The first-boot script switches ROOT/current with edge-ser-activate (installed from the package, the same
    bytes `edge-ser deploy` pipes to a device), not with its own copy of the switch."""
    from edge_ser_deploy.deploy import activate_script

    out = tmp_path / "boot"
    out.mkdir()
    generate(_fb(), out, wheelhouse=wheelhouse, bundle=BUNDLE)
    files = {f["path"]: f for f in yaml.safe_load((out / "user-data").read_text())["write_files"]}
    assert files["/opt/edge-ser/bin/edge-ser-activate"]["content"] == activate_script().decode()
    assert files["/opt/edge-ser/bin/edge-ser-activate"]["permissions"] == "0755"
    script = files["/usr/local/sbin/edge-ser-firstboot"]["content"]
    assert (
        '/opt/edge-ser/bin/edge-ser-activate --root "$ROOT" --by firstboot activate "$V" --commit' in script
    )
    assert "ln -s" not in script and ".current.tmp" not in script


def test_first_boot_gives_the_login_user_the_bundles_so_deploy_works(tmp_path, wheelhouse):
    """`edge-ser deploy` logs in as the login user (root login is off) and writes ROOT/versions, ROOT/current and
    ROOT/pending without sudo (its probe needs `[ -w ROOT/versions ]`): the first-boot script gives that user the
    bundle folder, group edge-ser (the service reads it), as `deploy/pi/install.sh --deploy-user` does; it used
    to give it to edge-ser alone. bundles_layout() as written in the script runs under bash with `install` and
    `chown` replaced by stubs that log their arguments (changing owners needs root) and do the rest for real."""
    import shlex

    out = tmp_path / "boot"
    out.mkdir()
    generate(_fb(user="lab"), out, wheelhouse=wheelhouse, bundle=BUNDLE)
    ud = yaml.safe_load((out / "user-data").read_text())
    assert ud["users"][0]["name"] == "lab" and ud["disable_root"] is True
    script = _script(out)
    assert "DEPLOY_USER=lab" in script.splitlines()
    assert "edge-ser:edge-ser" not in script and "-o edge-ser" not in script
    # run twice, as the script does: before the install and after root wrote the version and the link
    assert script.count("\nbundles_layout\n") == 2

    bin_ = tmp_path / "stubs"
    bin_.mkdir()
    log = tmp_path / "calls.log"
    (bin_ / "install").write_text(
        "#!/bin/bash\n"
        f'echo "install $*" >> {shlex.quote(str(log))}\n'
        'args=(); while [ $# -gt 0 ]; do case $1 in -o|-g) shift;; *) args+=("$1");; esac; shift; done\n'
        'exec /usr/bin/install "${args[@]}"\n'
    )
    (bin_ / "chown").write_text(f'#!/bin/sh\necho "chown $*" >> {shlex.quote(str(log))}\n')
    for f in bin_.iterdir():
        f.chmod(0o755)
    prefix = tmp_path / "opt" / "edge-ser"
    root = prefix / "bundles"
    fn = _function(script, "bundles_layout")
    cmd = (f"set -euo pipefail\nPATH={shlex.quote(str(bin_))}:$PATH\nPREFIX={shlex.quote(str(prefix))}\n"
           f"ROOT={shlex.quote(str(root))}\nDEPLOY_USER=lab\n{fn}bundles_layout\n")  # fmt: skip
    subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60, check=True)
    calls = log.read_text().splitlines()
    assert f"install -d -o lab -g edge-ser -m 0755 {root} {root}/versions" in calls
    assert f"chown -R lab:edge-ser {root}" in calls
    # PREFIX and PREFIX/bin are root's (the unit runs PREFIX/bin/edge-ser-activate as root): no owner given
    assert f"install -d -m 0755 {prefix} {prefix}/bin" in calls
    assert (root / "versions").is_dir() and (root / "versions").stat().st_mode & 0o777 == 0o755


def test_no_wifi_no_network_config_and_urls(tmp_path):
    out = tmp_path / "boot"
    out.mkdir()
    (out / "network-config").write_text("stale")
    fb = _fb(wifi_ssid=None, wifi_password=None, country=None, wheelhouse_url="https://example.org/wh/",
             bundle_url="https://example.org/b.tar")  # fmt: skip
    written = generate(fb, out)
    assert set(written) == {"user-data", "meta-data"} and not (out / "network-config").exists()
    script = {f["path"]: f["content"] for f in yaml.safe_load((out / "user-data").read_text())["write_files"]}[
        "/usr/local/sbin/edge-ser-firstboot"]  # fmt: skip
    assert "WH_URL=https://example.org/wh/" in script and "BUNDLE_URL=https://example.org/b.tar" in script


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"hostname": "Pi_Kitchen"}, "--hostname 'Pi_Kitchen'"),
        ({"hostname": "-pi"}, "--hostname '-pi'"),
        ({"country": None}, "--country is required"),
        ({"country": "GBR"}, "--country 'GBR'"),
        ({"wifi_password": "short"}, "8..63"),
        ({"wifi_ssid": "x" * 33}, "1..32 bytes"),
        ({"ssh_keys": ("not a key",)}, "not an OpenSSH public key"),
        ({"user": "root"}, "--user 'root'"),
    ],
)
def test_bad_input_clear_error(tmp_path, wheelhouse, kw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        generate(_fb(**kw), tmp_path, wheelhouse=wheelhouse, bundle=BUNDLE)
    assert not (tmp_path / "user-data").exists()


def test_a_fusion_bundle_goes_on_the_card_self_contained(tmp_path, wheelhouse):
    """av_fusion's branches are folders beside it: the boot partition gets one folder with the branches inside,
    which loads on its own (it got the manifest alone)."""
    from edge_ser.bundle import load_bundle

    fusion = Path(__file__).resolve().parents[1] / "bundles" / "av_fusion"
    generate(_fb(), tmp_path, wheelhouse=wheelhouse, bundle=fusion)
    copied = load_bundle(tmp_path / "edge-ser" / "bundle")
    assert set(copied.branches) == {"audio", "face"} and (tmp_path / "edge-ser" / "bundle" / "face").is_dir()


def test_bad_files_clear_error(tmp_path, wheelhouse):
    with pytest.raises(ConfigError, match="no such file"):
        read_ssh_keys([tmp_path / "missing.pub"])
    priv = tmp_path / "id"
    priv.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="private key"):
        read_ssh_keys([priv])
    with pytest.raises(ConfigError, match="--out .*no such folder"):
        generate(_fb(), tmp_path / "nope", wheelhouse=wheelhouse, bundle=BUNDLE)
    with pytest.raises(ConfigError, match="requirements.lock"):
        generate(_fb(), tmp_path, wheelhouse=tmp_path, bundle=BUNDLE)
    bad = tmp_path / "bad_bundle"
    shutil.copytree(BUNDLE, bad)
    with open(bad / "weights.esq", "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 1]))
    with pytest.raises(BundleError):
        generate(_fb(), tmp_path, wheelhouse=wheelhouse, bundle=bad)


needs_cloud_init = pytest.mark.skipif(shutil.which("cloud-init") is None,
                                      reason="cloud-init not installed (apt-get install cloud-init)")  # fmt: skip


@needs_cloud_init
def test_cloud_init_schema_accepts_generated(tmp_path, wheelhouse):
    out = tmp_path / "boot"
    out.mkdir()
    generate(_fb(timezone="Europe/London", env=(("EDGE_SER_WEB_PORT", "8080"),)), out, wheelhouse=wheelhouse,
             bundle=BUNDLE)  # fmt: skip
    done = validate(out)
    assert any("schema --config-file user-data" in d for d in done)
    assert any("net-convert" in d for d in done)
    if shutil.which("netplan"):
        assert any("netplan generate" in d for d in done)


@needs_cloud_init
def test_cloud_init_schema_rejects_bad(tmp_path):
    (tmp_path / "user-data").write_text("#cloud-config\nhostname: 5\nruncmd: 3\n")
    with pytest.raises(ConfigError, match="runcmd"):
        validate(tmp_path)


@needs_cloud_init
@pytest.mark.skipif(shutil.which("netplan") is None, reason="netplan.io not installed")
def test_netplan_rejects_bad_network_config(tmp_path):
    (tmp_path / "user-data").write_text("#cloud-config\nhostname: x\n")
    (tmp_path / "network-config").write_text(
        "network:\n  version: 2\n  wifis:\n    wlan0:\n      access-points:\n        x:\n          passwd: s\n"
    )
    with pytest.raises(ConfigError, match="passwd"):
        validate(tmp_path)


def test_cli(tmp_path, wheelhouse, capsys):
    import argparse

    from edge_ser_deploy.firstboot import add_firstboot_args

    key = tmp_path / "id.pub"
    key.write_text(KEY + "\n")
    out = tmp_path / "boot"
    out.mkdir()
    p = argparse.ArgumentParser()
    add_firstboot_args(p)
    args = p.parse_args(["--hostname", "pi-hall", "--ssh-key", str(key), "--wifi-ssid", "S", "--wifi-password",
                         "password1", "--country", "gb", "--wheelhouse", str(wheelhouse), "--bundle-path",
                         str(BUNDLE), "--out", str(out)])  # fmt: skip
    assert cmd_firstboot(args) == 0
    text = capsys.readouterr().out
    assert "wrote" in text and ("checked: cloud-init" in text or "not validated" in text)
    ud = yaml.safe_load((out / "user-data").read_text())
    paths = {f["path"] for f in ud["write_files"]}
    if (REPO / "deploy" / "systemd" / "edge-ser-start").is_file():
        assert "/opt/edge-ser/bin/edge-ser-start" in paths


def test_cli_refuses_what_the_device_would_get_wrong(tmp_path, wheelhouse, monkeypatch):
    """Wi-Fi without a password is an open network only when asked (it was written silently); an unknown
    timezone and an EDGE_SER_BUNDLE override (it cut out deploy's `current` link) are refused."""
    import argparse

    from edge_ser_deploy.firstboot import add_firstboot_args

    monkeypatch.delenv("EDGE_SER_WIFI_PASSWORD", raising=False)
    key = tmp_path / "id.pub"
    key.write_text(KEY + "\n")
    p = argparse.ArgumentParser()
    add_firstboot_args(p)
    base = ["--hostname", "pi-hall", "--ssh-key", str(key), "--wheelhouse", str(wheelhouse), "--bundle-path",
            str(BUNDLE), "--out", str(tmp_path)]  # fmt: skip
    for extra, says in (
        (["--wifi-ssid", "LAB", "--country", "GB"], "without --wifi-password"),
        (
            ["--wifi-ssid", "LAB", "--country", "GB", "--wifi-open", "--wifi-password", "password1"],
            "choose one",
        ),
        (["--timezone", "Mars/Olympus"], "not in the tz database"),
        (["--env", "EDGE_SER_BUNDLE=/x"], "--env EDGE_SER_BUNDLE"),
    ):
        with pytest.raises(ConfigError, match=says):
            cmd_firstboot(p.parse_args([*base, *extra]))
    assert not (tmp_path / "user-data").exists()
    assert cmd_firstboot(p.parse_args([*base, "--wifi-ssid", "LAB", "--country", "GB", "--wifi-open"])) == 0


# --- control characters, download pins and the Wi-Fi secret on the device -------------------------------------

CONTROLS = ["\n", "\r", "\0", "\x1b[31m", "\x85", "\u2028", "\u2029", "\u202e", "\t", "\x7f"]
"""A newline above all (one more line in a YAML / wpa_supplicant / config.env / authorized_keys file), then
CR, NUL, an escape sequence, NEL, the Unicode line and paragraph separators, a bidi override, TAB, DEL."""


@pytest.mark.parametrize("ctrl", CONTROLS, ids=repr)
@pytest.mark.parametrize(
    "field, value, option",
    [
        ("hostname", "pi{}x", "--hostname"),
        ("user", "edge{}x", "--user"),
        ("wifi_ssid", "Home{}Net", "--wifi-ssid"),
        ("wifi_password", "correct{}horse", "--wifi-password"),
        ("country", "G{}B", "--country"),
        ("timezone", "Europe/London{}", "--timezone"),
        ("env", (("EDGE_SER_MIC", "USB{}EDGE_SER_BUNDLE=/tmp/evil"),), "--env EDGE_SER_MIC="),
        ("env", (("EDGE{}_X", "1"),), "--env"),
        ("ssh_keys", (KEY + "{}ssh-rsa AAAAB3NzaC1yc2E attacker",), "--ssh-key"),
        ("wheelhouse_url", "https://example.org/wh/{}x", "--wheelhouse-url"),
        ("bundle_url", "https://example.org/b.tar{}", "--bundle-url"),
    ],
)
def test_control_characters_are_refused_naming_the_option(tmp_path, wheelhouse, ctrl, field, value, option):
    if isinstance(value, str):
        bad = value.format(ctrl)
    elif field == "env":
        bad = tuple((k.format(ctrl), v.format(ctrl)) for k, v in value)
    else:
        bad = tuple(v.format(ctrl) for v in value)
    kw = {field: bad}
    local = {"wheelhouse": wheelhouse, "bundle": BUNDLE}
    if field == "wheelhouse_url":
        local.pop("wheelhouse")
    if field == "bundle_url":
        local.pop("bundle")
    with pytest.raises(ConfigError) as e:
        generate(_fb(**kw), tmp_path, **local)
    assert str(e.value).startswith(option), str(e.value)
    assert "control characters" in str(e.value) or field == "country"  # '--country': not two letters either
    assert not (tmp_path / "user-data").exists() and not (tmp_path / "network-config").exists()
    if field == "wifi_password":
        assert "correct" not in str(e.value)  # the secret is not echoed


def test_ssh_key_file_with_a_hidden_line_break_is_refused_but_crlf_is_fine(tmp_path):
    """str.splitlines() would split at NEL, U+2028, \\x0b or \\x1c and make one tampered line two keys."""
    for sep in ("\x85", "\u2028", "\x0b", "\x1c", "\r"):
        f = tmp_path / "k.pub"
        f.write_text(KEY + sep + "ssh-rsa AAAAB3NzaC1yc2E attacker\n", newline="")
        with pytest.raises(
            ConfigError, match=r"--ssh-key .*k\.pub: the key line contains control characters"
        ):
            read_ssh_keys([f])
    f.write_text(KEY + "\r\n# a comment\r\n\r\n", newline="")
    assert read_ssh_keys([f]) == (KEY,)
    # a byte-order mark (Notepad's "UTF-8 with BOM"): it was refused as "not an OpenSSH public key line:
    # '\ufeffssh-ed25519 ...'"; only a leading one goes, one inside the file is still refused
    f.write_bytes(b"\xef\xbb\xbf" + (KEY + "\r\n").encode())
    assert read_ssh_keys([f]) == (KEY,)
    f.write_bytes((KEY + "\n\ufeff" + KEY + "\n").encode())
    with pytest.raises(ConfigError, match="not an OpenSSH public key line"):
        read_ssh_keys([f])


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"wheelhouse_url": "http://example.org/wh/"}, r"--wheelhouse-url 'http://example.org/wh/': plain http .*--wheelhouse-sha256"),
        ({"bundle_url": "http://example.org/b.tar"}, r"--bundle-url 'http://example.org/b.tar': plain http .*--bundle-sha256"),
        ({"bundle_url": "ftp://example.org/b.tar"}, r"--bundle-url 'ftp://example.org/b.tar': must be an https:// URL"),
        ({"bundle_url": "file:///etc/shadow"}, r"--bundle-url 'file:///etc/shadow': must be an https:// URL"),
        ({"bundle_url": "https:///b.tar"}, r"--bundle-url 'https:///b.tar': must be an https:// URL"),
        ({"bundle_url": "https://e.org/b.tar", "bundle_sha256": "ab" * 31}, r"--bundle-sha256 'abab.*64 lower-case hex"),
        ({"bundle_url": "https://e.org/b.tar", "bundle_sha256": "AB" * 32}, r"--bundle-sha256 .*64 lower-case hex"),
        ({"bundle_url": "https://e.org/b.tar", "wheelhouse_sha256": "0" * 64}, r"--wheelhouse-sha256 given without --wheelhouse-url"),
        ({"env": (("EDGE_SER_MIC", "USB\\"),)}, r"--env EDGE_SER_MIC='USB\\\\': ends with a backslash"),
        ({"timezone": "../../etc/passwd"}, r"--timezone '\.\./\.\./etc/passwd': must be a tz database name"),
    ],
)  # fmt: skip
def test_urls_need_https_or_a_pin_and_env_timezone_are_checked(tmp_path, wheelhouse, kw, message):
    local = {} if "wheelhouse_url" in kw else {"wheelhouse": wheelhouse}
    if "bundle_url" not in kw:
        local["bundle"] = BUNDLE
    with pytest.raises(ConfigError, match=message):
        generate(_fb(**kw), tmp_path, **local)
    assert not (tmp_path / "user-data").exists()


def _script(out: Path) -> str:
    ud = yaml.safe_load((out / "user-data").read_text())
    return {f["path"]: f["content"] for f in ud["write_files"]}["/usr/local/sbin/edge-ser-firstboot"]


def _function(script: str, name: str) -> str:
    """One shell function of the first-boot script, as it is written there."""
    import re

    m = re.search(rf"^{name}\(\) {{\n.*?^}}\n", script, re.M | re.S)
    assert m, f"no {name}() in the first-boot script"
    return m.group(0)


def _name_on_device(script: str, bundle: Path, tmp: Path) -> str:
    """The version name the first-boot script gives `bundle` on the device: its Python step (SHA256SUMS and the
    name) run as the script runs it, on a staged copy, with the script's BUNDLE_NAME."""
    import re
    import shlex
    import sys

    step = re.search(r'^"\$VENV/bin/python" - "\$STAGE" "\$STAGE.version" "\$BUNDLE_NAME" <<\'PY\'\n(.*?)^PY\n',
                     script, re.M | re.S)  # fmt: skip
    assert step, "no version-naming step in the first-boot script"
    name = shlex.split(re.search(r"^BUNDLE_NAME=(.*)$", script, re.M).group(1) or "''")
    stage = tmp / "stage"
    shutil.copytree(bundle, stage)
    subprocess.run([sys.executable, "-", str(stage), str(tmp / "version"), *name], input=step.group(1), text=True,
                   check=True, timeout=60)  # fmt: skip
    return (tmp / "version").read_text()


@pytest.mark.parametrize("bundle", ["ser_emodb", "ser_ravdess", "av_fusion"])
def test_first_boot_names_the_version_as_deploy_does(tmp_path, wheelhouse, bundle):
    """The device names the bundle's version from the --bundle-path folder, with edge_ser_deploy/naming.py itself
    (written into the script: the device has no edge_ser_deploy): ser_emodb-<sha12> and ser_ravdess-<sha12>, as
    `edge-ser deploy` names them, not functionals_mlp-<sha12> for both (a fusion bundle: the name of the
    self-contained copy, as deploy ships it)."""
    from edge_ser_deploy.deploy import _payload

    out = tmp_path / "boot"
    out.mkdir()
    generate(_fb(), out, wheelhouse=wheelhouse, bundle=REPO / "bundles" / bundle)
    got = _name_on_device(_script(out), out / "edge-ser" / "bundle", tmp_path)
    assert got == _payload(REPO / "bundles" / bundle).version and got.startswith(f"{bundle}-")


def test_first_boot_from_a_url_names_the_version_after_the_file(tmp_path):
    """--bundle-url: the .tar's file name labels the version (query left out), the same name deploy gives that
    .tar; a URL whose file is called bundle.tar falls back to the model's name, as deploy does."""
    from edge_ser_deploy.deploy import _payload

    ser = REPO / "bundles" / "ser_emodb"
    sha = _payload(ser).version.rsplit("-", 1)[1]
    for url, expect in (("https://example.org/dl/ser_emodb.tar?sig=abc", f"ser_emodb-{sha}"),
                        ("https://example.org/dl/bundle.tar", f"functionals_mlp-{sha}")):  # fmt: skip
        out = tmp_path / expect
        out.mkdir()
        generate(_fb(wheelhouse_url="https://example.org/wh/", bundle_url=url), out)
        assert _name_on_device(_script(out), ser, out) == expect


def test_http_downloads_are_checked_against_their_pins_on_the_device(tmp_path):
    """The script's own fetch() (real bash, real curl, a real HTTP server): a pinned sha256 that matches passes,
    one that does not fails and leaves no file; the pins and https-only redirects are in the script."""
    import hashlib
    import http.server
    import threading

    www = tmp_path / "www"
    www.mkdir()
    payload = b"bundle bytes\n" * 100
    (www / "b.tar").write_bytes(payload)
    good = hashlib.sha256(payload).hexdigest()
    out = tmp_path / "boot"
    out.mkdir()
    generate(_fb(wheelhouse_url="http://127.0.0.1/wh/", wheelhouse_sha256="1" * 64,
                 bundle_url="http://127.0.0.1/b.tar", bundle_sha256=good), out)  # fmt: skip
    script = _script(out)
    assert f"BUNDLE_SHA256={good}" in script and "WH_SHA256=" + "1" * 64 in script
    assert "--require-hashes -r" in script and "--proto-redir =https" in script
    # pip resolves the page's relative links (index.html: href="FILE") inside the folder, with or without a '/'
    assert '--find-links "${WH_URL%/}/" --require-hashes' in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)

    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(www))  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/b.tar"
        fetch = _function(script, "fetch")
        for pin, ok in ((good, True), ("0" * 64, False), ("", True)):
            dest = tmp_path / "got.tar"
            dest.unlink(missing_ok=True)
            r = subprocess.run(["bash", "-c", f"set -euo pipefail\n{fetch}fetch \"$1\" \"$2\" \"$3\"", "x", url,
                                str(dest), pin], capture_output=True, text=True, timeout=60)  # fmt: skip
            assert (r.returncode == 0) == ok, r.stderr
            assert dest.exists() == ok
            if ok:
                assert dest.read_bytes() == payload
            else:
                assert "does not match its pinned sha256" in r.stderr
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_first_boot_removes_the_wifi_secret_from_the_boot_partition(tmp_path, wheelhouse):
    """forget_wifi_secret() as written in the script, run by bash on a copy of the device's layout: the
    network-config on the (world-readable FAT) boot partition goes, the seed (user-data, meta-data) stays, and
    the netplan file cloud-init wrote (0644 before cloud-init 23.1) and cloud-init.log become root-only."""
    root = tmp_path / "device"
    boot = root / "boot" / "firmware"
    boot.mkdir(parents=True)
    generate(_fb(boot_mount=str(boot)), boot, wheelhouse=wheelhouse, bundle=BUNDLE)
    psk = wpa_psk("Home Net", "correct horse")
    assert psk in (boot / "network-config").read_text()
    user_data = (boot / "user-data").read_text()
    assert psk not in user_data and "correct horse" not in user_data  # only network-config holds the secret
    netplan = root / "etc" / "netplan" / "50-cloud-init.yaml"
    netplan.parent.mkdir(parents=True)
    netplan.write_text("network: {}\n")
    netplan.chmod(0o644)
    log = root / "var" / "log" / "cloud-init.log"
    log.parent.mkdir(parents=True)
    log.write_text(f"Applying network configuration from ds bringup=False: {{'password': '{psk}'}}\n")
    log.chmod(0o640)
    fn = _function(_script(boot), "forget_wifi_secret")
    # the device's /etc and /var/log under tmp_path: never this machine's
    fn = fn.replace(" /etc/", f" {root}/etc/").replace(" /var/log/", f" {root}/var/log/")
    assert "/etc/" not in fn.replace(f"{root}/etc/", "")
    cmd = f"set -euo pipefail\nBOOT={boot}\n{fn}forget_wifi_secret\nforget_wifi_secret\n"  # runs twice
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60, check=True)
    assert "removed" in r.stdout
    assert not (boot / "network-config").exists()
    assert (boot / "user-data").is_file() and (boot / "meta-data").is_file()  # the NoCloud seed stays valid
    assert netplan.stat().st_mode & 0o777 == 0o600 and log.stat().st_mode & 0o777 == 0o600


@needs_cloud_init
def test_legal_but_awkward_values_survive_cloud_init_and_netplan(tmp_path, wheelhouse):
    """Quotes, '#', ':', a trailing backslash, non-ASCII: legal in an SSID and a passphrase, so they are kept
    and must come back exactly from the YAML cloud-init reads (and pass its checks and netplan's)."""
    out = tmp_path / "boot"
    out.mkdir()
    ssid, pw = 'Café "Net" #1: x\\', 'pa"ss #word\\ 1'
    generate(_fb(wifi_ssid=ssid, wifi_password=pw, wifi_plaintext=True, timezone="America/Argentina/Buenos_Aires",
                 env=(("EDGE_SER_EXTRA_ARGS", "--threads 2 --hop 0.25 # not a comment"),)), out,
             wheelhouse=wheelhouse, bundle=BUNDLE)  # fmt: skip
    validate(out)
    aps = yaml.safe_load((out / "network-config").read_text())["network"]["wifis"]["wlan0"]["access-points"]
    assert aps == {ssid: {"password": pw}}


def test_the_deploy_readme_uses_first_boot_where_it_works_and_deploys_as_its_user():
    """deploy/README.md: every `edge-ser firstboot` it quotes installs a wheelhouse for an OS that runs cloud-init
    (Raspberry Pi OS Bookworm does not: its steps use install.sh), and the Pi table deploys to ser-01 as the
    user first boot creates (the README deployed as pi@, a user first boot never makes)."""
    import re
    import shlex

    from edge_ser_deploy.deploy import parse_target

    text = (REPO / "deploy" / "README.md").read_text().replace("\\\n", " ")
    commands = [c for c in re.findall(r"edge-ser firstboot [^`\n]*", text) if " --wheelhouse " in c]
    assert len(commands) >= 2
    for cmd in commands:
        argv = shlex.split(cmd.replace("...", "x"))
        wh = argv[argv.index("--wheelhouse") + 1]
        assert "bookworm" not in wh, f"first boot cannot set up Raspberry Pi OS Bookworm: {cmd}"
    targets = re.findall(r"`edge-ser deploy \S+ (\S+@ser-01\.local)`", text)
    assert targets and {parse_target(t).user for t in targets} == {
        FirstBoot.__dataclass_fields__["user"].default
    }
    bookworm = [ln for ln in text.splitlines() if ln.startswith("| 4'. Bookworm")]
    assert bookworm and "deploy/pi/install.sh" in bookworm[0]
    # the login that runs it (Bookworm's user is the one set in Imager; no image has `pi` any more), which step 5
    # deploys as
    assert '--deploy-user "$USER"' in bookworm[0]


_RUN_FIRSTBOOT = """
import argparse, sys
import edge_ser_deploy.firstboot as fb
assert fb.__file__.startswith(sys.argv[1]), fb.__file__
p = argparse.ArgumentParser()
fb.add_firstboot_args(p)
sys.exit(fb.cmd_firstboot(p.parse_args(sys.argv[2:])))
"""


@pytest.mark.parametrize("packaged", [True, False], ids=["package-data", "stripped"])
def test_firstboot_from_an_installed_package_writes_the_full_unit_or_says_what_is_lost(
    tmp_path, wheelhouse, packaged
):
    """edge-ser installed as a package (no deploy/ beside it) wrote a cut-down unit without a word: no
    edge-ser-start, so the --env MIC / CAMERA / WEB_PORT / ENGINE / EXTRA_ARGS settings were ignored, and no
    watchdog. The unit and edge-ser-start now ship inside edge_ser_deploy; an install without them warns, naming
    what the device loses."""
    import os
    import sys

    site = tmp_path / "site"
    shutil.copytree(
        REPO / "edge_ser_deploy", site / "edge_ser_deploy", ignore=shutil.ignore_patterns("__pycache__")
    )
    if not packaged:
        (site / "edge_ser_deploy" / "edge-ser.service").unlink()
    key = tmp_path / "id.pub"
    key.write_text(KEY + "\n")
    out = tmp_path / "boot"
    out.mkdir()
    argv = ["--hostname", "pi-hall", "--ssh-key", str(key), "--wheelhouse", str(wheelhouse), "--bundle-path",
            str(BUNDLE), "--out", str(out), "--no-validate", "--env", "EDGE_SER_MIC=USB"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}"}
    r = subprocess.run([sys.executable, "-c", _RUN_FIRSTBOOT, str(site), *argv], capture_output=True, text=True,
                       env=env, timeout=120, check=False, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    files = {f["path"]: f["content"] for f in yaml.safe_load((out / "user-data").read_text())["write_files"]}
    unit = files["/etc/systemd/system/edge-ser.service"]
    if packaged:
        assert unit == (REPO / "deploy" / "systemd" / "edge-ser.service").read_text()
        assert "WatchdogSec=" in unit and "ExecStart=/opt/edge-ser/bin/edge-ser-start" in unit
        assert (
            files["/opt/edge-ser/bin/edge-ser-start"]
            == (REPO / "deploy" / "systemd" / "edge-ser-start").read_text()
        )
        assert "WARNING" not in r.stderr
    else:
        assert "/opt/edge-ser/bin/edge-ser-start" not in files
        said = " ".join(r.stderr.split())
        assert "WARNING" in said and "EDGE_SER_MIC" in said and "EDGE_SER_EXTRA_ARGS" in said, said
        assert "no watchdog" in said


@pytest.mark.parametrize(
    "lock, message",
    [
        ("# edge-ser wheelhouse lock for jetpack6: NVIDIA JetPack 6\nnumpy==2.2.6\n",
         "built for jetpack6 (requirements.lock's header), but these first-boot files are for pi-trixie"),
        ("# edge-ser wheelhouse lock for pi-bookworm: x\nnumpy==2.2.6\n", "built for pi-bookworm"),
        (LOCK_HEADER + "# generated by: x\n", "pins no packages (an empty lock)"),
        ("", "does not start with '# edge-ser wheelhouse lock for pi-trixie:'"),
        ("numpy==2.2.6\n", "not known to be built for this image (pi-trixie)"),
    ],
    ids=["jetpack6", "bookworm", "empty", "blank-file", "no-header"],
)  # fmt: skip
def test_a_wheelhouse_for_another_target_or_an_empty_one_is_refused(tmp_path, wheelhouse, lock, message):
    """firstboot took any folder with a requirements.lock: a JetPack 6 (cp310) wheelhouse or an empty lock went
    onto the card and failed on the device's first boot. The lock's header must name the image's target."""
    (wheelhouse / "requirements.lock").write_text(lock)
    out = tmp_path / "boot"
    out.mkdir()
    with pytest.raises(ConfigError) as ei:
        generate(_fb(), out, wheelhouse=wheelhouse, bundle=BUNDLE)
    assert f"--wheelhouse {wheelhouse}: " in str(ei.value) and message in str(ei.value), str(ei.value)
    assert "scripts/wheelhouse.py --target pi-trixie" in str(ei.value)
    assert list(out.iterdir()) == []  # refused before anything was written


def test_the_lock_header_firstboot_reads_is_the_one_scripts_wheelhouse_writes(tmp_path):
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("_wheelhouse_script", REPO / "scripts" / "wheelhouse.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    try:
        spec.loader.exec_module(mod)
        from edge_ser_deploy.firstboot import check_wheelhouse

        for target in ("pi-trixie", "jetpack6"):
            (tmp_path / "requirements.lock").write_text(
                mod.render_lock([], mod.TARGETS[target], "x") + "a==1\n"
            )
            if target == "pi-trixie":
                check_wheelhouse(tmp_path)
            else:
                with pytest.raises(ConfigError, match="built for jetpack6"):
                    check_wheelhouse(tmp_path)
    finally:
        sys.modules.pop(spec.name, None)


@pytest.mark.parametrize("bundle", ["av_cnn_audio", "av_fusion"])
def test_first_boot_writes_the_sha256sums_deploy_writes(tmp_path, wheelhouse, bundle):
    """The first-boot script built SHA256SUMS from the manifest's own files: for a fusion bundle ({} there) it left
    out every branch file, so the first `edge-ser deploy` of the same bundle found a different SHA256SUMS and said
    the version 'was damaged on the device: repaired'. Both now write it with edge_ser_deploy/sums.py: byte for
    byte the same, and every shipped file passes `sha256sum -c`."""
    from edge_ser_deploy.deploy import _payload

    out = tmp_path / "boot"
    out.mkdir()
    generate(_fb(), out, wheelhouse=wheelhouse, bundle=REPO / "bundles" / bundle)
    payload = _payload(REPO / "bundles" / bundle)
    assert _name_on_device(_script(out), out / "edge-ser" / "bundle", tmp_path) == payload.version
    stage = tmp_path / "stage"
    assert (stage / "SHA256SUMS").read_bytes() == payload.files["SHA256SUMS"]
    r = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=stage, capture_output=True, text=True, check=False
    )
    shipped = sorted(
        str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file() and p.name != "SHA256SUMS"
    )
    assert r.returncode == 0 and sorted(ln.rsplit(": ", 1)[0] for ln in r.stdout.splitlines()) == shipped, (
        r.stdout
    )


def test_a_full_boot_partition_gives_one_clear_message_and_leaves_nothing(tmp_path, wheelhouse):
    """On a boot partition too small for the bundle, firstboot printed shutil.Error's raw list of (src, dst,
    why) tuples and left the wheelhouse it had copied. A real small tmpfs here: one message (what, why, how much
    is needed and free) and nothing of this run left on it."""
    import os

    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs")
    boot = tmp_path / "boot"
    boot.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(boot)], capture_output=True,
                      check=False).returncode != 0:  # fmt: skip
        pytest.skip("cannot mount a tmpfs here")
    try:
        with pytest.raises(ConfigError) as ei:
            generate(_fb(), boot, wheelhouse=wheelhouse, bundle=BUNDLE)
        msg = str(ei.value)
        assert msg.startswith(f"--out {boot}: could not copy the bundle ({BUNDLE}") and "MB free" in msg, msg
        assert "No space left on device" in msg and "removed what this run had copied (wheelhouse)" in msg
        assert "[(" not in msg and "\n" not in msg  # no list of tuples
        assert list(boot.iterdir()) == []
    finally:
        subprocess.run(["umount", str(boot)], check=False)


def test_a_new_bundle_or_wheelhouse_under_the_same_name_is_a_new_instance(tmp_path, wheelhouse):
    """The instance-id hashed user-data and network-config only: a card written again with another bundle (or
    wheelhouse) in a folder of the same name kept its instance-id, so a device that had booted from it ran
    nothing again (runcmd is per instance) and kept the old bundle. The same files again: byte-identical."""

    def card(bundle_src: Path, wh: Path) -> tuple[str, dict[str, bytes]]:
        out = tmp_path / "card"
        out.mkdir(exist_ok=True)
        bundle = tmp_path / "src" / "mybundle"
        shutil.rmtree(bundle.parent, ignore_errors=True)
        shutil.copytree(bundle_src, bundle)
        generate(_fb(), out, wheelhouse=wh, bundle=bundle)
        files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
        return yaml.safe_load((out / "meta-data").read_text())["instance-id"], files

    first, files = card(BUNDLE, wheelhouse)
    assert card(BUNDLE, wheelhouse) == (first, files)  # the same configuration: the same bytes
    other_bundle, _ = card(REPO / "bundles" / "ser_emodb", wheelhouse)
    assert other_bundle != first
    wh2 = tmp_path / "wh2"
    shutil.copytree(wheelhouse, wh2)
    (wh2 / "extra-1.0-py3-none-any.whl").write_bytes(b"wheel")
    other_wheelhouse, _ = card(BUNDLE, wh2)
    assert other_wheelhouse not in (first, other_bundle)


def test_a_read_only_boot_partition_is_named_as_such_before_anything_is_written(tmp_path, wheelhouse):
    """A read-only --out gave "could not copy the  (., 5.4 MB) there: Read-only file system; ... free space on
    the partition" (the size of the current folder, the advice for a full one), or with URLs only a bare
    "[Errno 30] ... .user-data.xxxx.tmp". Now one message before anything is written."""
    import os

    boot = tmp_path / "boot"
    boot.mkdir()
    mounted = False
    if os.geteuid() == 0:
        mount = ["mount", "--bind", str(boot), str(boot)]
        if (
            shutil.which("mount") is None
            or subprocess.run(mount, capture_output=True, check=False).returncode
        ):
            pytest.skip("cannot bind-mount read-only here")
        mounted = True
        subprocess.run(["mount", "-o", "remount,bind,ro", str(boot)], capture_output=True, check=False)
    else:
        boot.chmod(0o555)
    try:
        if os.access(boot, os.W_OK):
            pytest.skip("could not make the folder read-only here")
        for kw in ({"wheelhouse": wheelhouse, "bundle": BUNDLE}, {}):
            fb = (
                _fb()
                if kw
                else _fb(wheelhouse_url="https://h.example/wh/", bundle_url="https://h.example/b.tar")
            )
            with pytest.raises(ConfigError) as ei:
                generate(fb, boot, **kw)
            assert str(ei.value).startswith(f"--out {boot}: cannot write there (mounted read-only"), ei.value
    finally:
        if mounted:
            subprocess.run(["umount", str(boot)], check=False)
        else:
            boot.chmod(0o755)


def test_a_hidden_network_is_probed_for_by_name(tmp_path, wheelhouse, monkeypatch):
    """A network that does not broadcast its SSID could not be configured: without netplan's `hidden: true`
    (wpa_supplicant's scan_ssid=1) the device never finds it and comes up without a network. --wifi-hidden, for
    a network with a passphrase or an open one; without --wifi-ssid it is refused."""
    import argparse

    from edge_ser_deploy.firstboot import add_firstboot_args

    monkeypatch.delenv("EDGE_SER_WIFI_PASSWORD", raising=False)
    p = argparse.ArgumentParser()
    add_firstboot_args(p)
    key = tmp_path / "id.pub"
    key.write_text(KEY + "\n")
    out = tmp_path / "boot"
    out.mkdir()
    base = ["--hostname", "pi-01", "--ssh-key", str(key), "--wheelhouse", str(wheelhouse), "--bundle-path",
            str(BUNDLE), "--out", str(out), "--wifi-ssid", "Lab", "--country", "GB", "--wifi-hidden"]  # fmt: skip
    for extra, ap in ((["--wifi-password", "password1"], {"password": wpa_psk("Lab", "password1"), "hidden": True}),
                      (["--wifi-open"], {"hidden": True})):  # fmt: skip
        assert cmd_firstboot(p.parse_args([*base, *extra, "--no-validate"])) == 0
        aps = yaml.safe_load((out / "network-config").read_text())["network"]["wifis"]["wlan0"][
            "access-points"
        ]
        assert aps == {"Lab": ap}
        if shutil.which("cloud-init") and shutil.which("netplan"):
            validate(out)
    with pytest.raises(ConfigError, match="--wifi-hidden given without --wifi-ssid"):
        generate(
            _fb(wifi_ssid=None, wifi_password=None, wifi_hidden=True),
            out,
            wheelhouse=wheelhouse,
            bundle=BUNDLE,
        )


def test_cloud_init_files_that_do_not_fit_give_one_message_and_leave_nothing(
    tmp_path, wheelhouse, monkeypatch
):
    """A boot partition with room for the wheelhouse and the bundle but not for user-data / meta-data gave a bare
    "[Errno 28] No space left on device" and left edge-ser/ (and a user-data without its meta-data) on the card.
    The partition fills up at meta-data here (the real small tmpfs is the test above)."""
    import errno

    import edge_ser_deploy.firstboot as fbmod

    real = fbmod.atomic_write

    def full_at_meta_data(path, *a, **kw):
        if Path(path).name == "meta-data":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(fbmod, "atomic_write", full_at_meta_data)
    out = tmp_path / "boot"
    out.mkdir()
    with pytest.raises(ConfigError) as ei:
        generate(_fb(), out, wheelhouse=wheelhouse, bundle=BUNDLE)
    msg = str(ei.value)
    assert msg.startswith(f"--out {out}: could not write the cloud-init files") and "No space left" in msg, (
        msg
    )
    assert "removed what this run had copied (wheelhouse, bundle, user-data, network-config)" in msg, msg
    assert list(out.iterdir()) == []


def test_a_rerun_keeps_the_live_version_and_a_failure_is_logged(tmp_path):
    """Review: a rerun of the first-boot script removed ROOT/versions/V before moving the new copy in, so the live
    version (`current` points into it) was gone for a moment and for good if the move failed; a download left
    STAGE.tar behind when the script stopped; and a failing step ended the log with no word of what failed.
    install_version() as written in the script, run by bash on a device layout."""
    import shlex

    script = _script_of(tmp_path)
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    assert 'trap \'rm -rf -- "$STAGE" "$STAGE.tar" "$STAGE.version"\' EXIT' in script
    fn = _function(script, "install_version")
    root = tmp_path / "device"
    (root / "versions").mkdir(parents=True)

    def stage(text: str) -> Path:
        st = Path(subprocess.run(["mktemp", "-d", str(root / "versions" / ".incoming-XXXXXX")],
                                 capture_output=True, text=True, check=True).stdout.strip())  # fmt: skip
        (st / "model.onnx").write_text(text)
        subprocess.run("sha256sum model.onnx > SHA256SUMS", shell=True, cwd=st, check=True)
        return st

    def install(st: Path) -> subprocess.CompletedProcess:
        cmd = f"set -Eeuo pipefail\nROOT={shlex.quote(str(root))}\n{fn}install_version {shlex.quote(str(st))} v1\n"
        return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)

    assert install(stage("one")).returncode == 0
    live = root / "versions" / "v1"
    inode = live.stat().st_ino
    again = install(stage("one"))  # the rerun: the same bundle, kept where it is
    assert again.returncode == 0 and "v1 is installed already; kept" in again.stdout
    assert live.stat().st_ino == inode and (live / "model.onnx").read_text() == "one"
    (live / "model.onnx").write_text("torn")  # the same name, but its files no longer check: replaced
    assert install(stage("one")).returncode == 0 and (live / "model.onnx").read_text() == "one"
    assert live.stat().st_ino != inode
    assert sorted(p.name for p in (root / "versions").iterdir()) == ["v1"]  # no stage, no .old- folder left

    # a failing step says so in the log (the ERR trap, as the script sets it)
    trap = next(line for line in script.splitlines() if line.startswith("trap ") and "ERR" in line)
    r = subprocess.run(["bash", "-c", f"set -Eeuo pipefail\n{trap}\ntrue\nfalse\necho never\n"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode != 0 and "never" not in r.stdout
    assert "edge-ser firstboot: FAILED (exit 1) at line 4: false" in r.stderr


def _script_of(tmp_path: Path) -> str:
    """The first-boot script of a default card (bundle and wheelhouse by URL: nothing to copy)."""
    out = tmp_path / "boot"
    out.mkdir()
    generate(_fb(wheelhouse_url="https://example.org/wh/", bundle_url="https://example.org/b.tar"), out)
    return _script(out)
