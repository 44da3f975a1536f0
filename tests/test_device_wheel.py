"""The device wheel scripts/wheelhouse.py builds: edge_ser alone (no host code, no workstation tools), its
firmware profiles inside, and a CLI that lists only what a device can run and works with numpy alone."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "wheelhouse_for_wheel_test", REPO / "scripts" / "wheelhouse.py"
)
wh = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = wh  # its dataclasses look their module up
_spec.loader.exec_module(wh)

DEVICE_COMMANDS = {"info", "predict", "run", "bench", "slim"}
HOST_COMMANDS = {
    "train",
    "laq",
    "demo",
    "model",
    "features",
    "data",
    "synth",
    "sweep",
    "zoo",
    "eval",
    "deploy",
    "firstboot",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not wh._local_setuptools_ok():
        pytest.skip("needs setuptools >= 77 here to build the wheel offline")
    return wh.build_project_wheel(REPO, tmp_path_factory.mktemp("wheel") / "out", "https://pypi.org/simple")


def test_the_wheel_holds_edge_ser_only(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        dist = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = z.read(f"{dist}/entry_points.txt").decode()
        metadata = z.read(f"{dist}/METADATA").decode()
    assert {n.split("/")[0] for n in names} == {"edge_ser", dist}
    assert not any(n.startswith(("converters/", "edge_ser_deploy/")) for n in names)
    assert not any(n.startswith(("edge_ser/deploy", "edge_ser/firstboot")) for n in names)
    assert "edge_ser/recognizer.py" in names and "edge_ser/inputs/patches.py" in names
    assert "edge_ser/py.typed" in names  # PEP 561: the hints reach the users' type checkers
    profiles = {Path(n).stem for n in names if n.startswith("edge_ser/profiles/firmware/")}
    assert {"pi4", "pi5", "orin-nano-8gb"} <= profiles
    assert "[console_scripts]" in entry_points and "edge_ser.commands" not in entry_points
    requires = [
        ln for ln in metadata.splitlines() if ln.startswith("Requires-Dist:") and "extra ==" not in ln
    ]
    assert requires == ["Requires-Dist: numpy>=2.0"]  # tqdm, torch, onnx: host only


def test_the_installed_wheel_runs_with_numpy_alone(wheel: Path, tmp_path: Path) -> None:
    """Unpacked as pip would install it, with numpy the only other package on the path: `--help` lists the
    device commands and nothing else, `info` verifies a shipped bundle and `predict` runs it on the numpy
    engine (firmware profiles found inside the package)."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    only_numpy = tmp_path / "numpy-only"
    only_numpy.mkdir()
    import numpy

    np_dir = Path(numpy.__file__).parent
    for d in np_dir.parent.iterdir():  # numpy and its vendored libraries (numpy.libs), nothing else
        if d.name == "numpy" or d.name.startswith("numpy.libs") or d.name.startswith("numpy-"):
            (only_numpy / d.name).symlink_to(d)
    code = (
        "import sys; sys.path[:0] = [sys.argv.pop(1), sys.argv.pop(1)]; from edge_ser.cli import main; "
        "raise SystemExit(main(sys.argv[1:]))"
    )

    def edge_ser(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-S", "-c", code, str(site), str(only_numpy), *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        )

    helped = edge_ser("--help")
    assert helped.returncode == 0, helped.stderr
    listed = {ln.split()[0] for ln in helped.stdout.splitlines() if ln.startswith("    ") and ln.split()}
    assert DEVICE_COMMANDS <= listed and not (HOST_COMMANDS & listed), helped.stdout
    # device review: a host or workstation command was argparse's "invalid choice" with the usage line
    for command, install in (("train", "pip install '.[host]'"), ("deploy", "pip install .")):
        told = edge_ser(command, "--data", "synthetic")
        assert told.returncode == 2 and told.stdout == "", told.stdout
        assert told.stderr.count("\n") == 1 and told.stderr.startswith(f"edge-ser {command}: error: a "), (
            told.stderr
        )
        assert "not installed here (this install has info, predict" in told.stderr and install in told.stderr
    info = edge_ser("info", str(REPO / "bundles" / "laq_mlp_emodb"))
    assert info.returncode == 0, info.stderr
    assert "this bundle can run here with: numpy" in info.stdout and "onnxruntime  missing" in info.stdout
    wav = tmp_path / "tone.wav"
    t = numpy.arange(16000) / 16000
    from edge_ser.audio import write_wav

    write_wav(wav, (0.3 * numpy.sin(2 * numpy.pi * 220 * t)).astype(numpy.float32), 16000)
    predicted = edge_ser("predict", str(REPO / "bundles" / "laq_mlp_emodb"), str(wav), "--engine", "numpy")
    assert predicted.returncode == 0, predicted.stderr
    assert "tone.wav:" in predicted.stdout and "(numpy: 1 file(s)" in predicted.stdout
    profiles = subprocess.run(
        [sys.executable, "-S", "-c", "import sys; sys.path[:0] = sys.argv[1:3]; from edge_ser.profiles import "
         "available_profiles, profile_dirs; print(available_profiles(), profile_dirs())", str(site),
         str(only_numpy)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert profiles.returncode == 0, profiles.stderr
    assert "'pi5'" in profiles.stdout and str(site / "edge_ser" / "profiles" / "firmware") in profiles.stdout


def test_provided_commands_are_those_the_providers_register() -> None:
    """edge_ser.cli.PROVIDED_COMMANDS (what a device install says of a missing command) names each provider of
    pyproject's `edge_ser.commands` and exactly the commands its `register` adds."""
    import argparse

    import tomllib

    from converters.cli import register as host
    from edge_ser.cli import PROVIDED_COMMANDS
    from edge_ser_deploy.cli import register as deploy

    groups = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    assert set(groups["edge_ser.commands"]) == set(PROVIDED_COMMANDS)
    for name, register in (("host", host), ("deploy", deploy)):
        sub = argparse.ArgumentParser().add_subparsers()
        register(sub)
        assert set(sub.choices) == set(PROVIDED_COMMANDS[name])
    assert set(HOST_COMMANDS) == {c for names in PROVIDED_COMMANDS.values() for c in names}


def test_a_missing_providers_command_says_what_to_install(monkeypatch, capsys) -> None:
    """With no command providers installed (the device wheel), `edge-ser zoo` and `edge-ser firstboot` say in one
    line what they are and how to install them; an unknown name is still argparse's error."""
    import edge_ser.cli as cli

    monkeypatch.setattr(cli, "installed_commands", lambda: [])
    assert cli.main(["zoo", "--data", "synthetic"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "edge-ser zoo: error: a host command (training, data sets, evaluation), not installed here (this install "
        "has info, predict, run, bench, slim); on a workstation, from an edge-ser checkout: pip install '.[host]'\n"
    )
    assert cli.main(["firstboot"]) == 2
    assert "edge-ser firstboot: error: a workstation command (deploy tools)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["trian"])
    assert "invalid choice: 'trian'" in capsys.readouterr().err
