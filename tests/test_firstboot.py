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
    (wh / "requirements.lock").write_text("numpy==2.2.6 --hash=sha256:" + "0" * 64 + "\n")
    return wh


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
