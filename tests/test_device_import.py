"""edge_ser (the device runtime) imports and works with only the device packages: host packages are blocked."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

HOST_ONLY = (
    "torch",
    "tensorflow",
    "librosa",
    "numba",
    "llvmlite",
    "onnx",
    "scipy",
    "sklearn",
    "converters",
    "ai_edge_torch",
    "litert_torch",
    "keras",
)

SCRIPT = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys
    BLOCKED = set(sys.argv[1].split(","))

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked host-only package imported by the device runtime: {name}")
            return None

    sys.meta_path.insert(0, Blocker())
    import numpy as np
    import edge_ser
    names = [m.name for m in pkgutil.walk_packages(edge_ser.__path__, "edge_ser.")
             if m.name != "edge_ser.__main__"]
    for name in names:
        importlib.import_module(name)
    from edge_ser.audio import load, write_wav
    from edge_ser.features import FeatureSpec, StreamingFeatures, feature_vector, mfcc
    sr = 16000
    t = np.arange(sr) / sr
    y = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    path = sys.argv[2] + "/tone.wav"
    write_wav(path, y, sr)
    z, zsr = load(path, sr=22050)
    v = feature_vector(z, sr=zsr)
    assert v.shape == (180,) and np.isfinite(v).all()
    st = StreamingFeatures(FeatureSpec(sample_rate=sr), "mfcc")
    assert st.accept_waveform(y).shape[1] == 40
    from edge_ser.cli import build_parser
    build_parser()
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not leaked, leaked
    print("OK", len(names), "modules")
    """
)


def test_edge_ser_imports_without_host_packages(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(HOST_ONLY), str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("OK")


def test_cli_help_works_without_host_packages(tmp_path: Path) -> None:
    """`edge-ser --help` and `edge-ser train --help` need no torch; `train` without torch says what to install."""
    blocker = textwrap.dedent(
        """
        import importlib.abc, runpy, sys
        class B(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "librosa", "tensorflow"):
                    raise ImportError(f"No module named {name!r}")
        sys.meta_path.insert(0, B())
        sys.argv = ["edge-ser"] + sys.argv[1:]
        runpy.run_module("edge_ser", run_name="__main__")
        """
    )
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "EDGE_SER_CACHE": str(tmp_path / "cache")}
    for args in (["--help"], ["train", "--help"], ["features", "--help"]):
        proc = subprocess.run(
            [sys.executable, "-c", blocker, *args], capture_output=True, text=True, env=env, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        assert "usage: edge-ser" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-c", blocker, "train", "--data", "synthetic"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "pip install '.[host]'" in proc.stderr and "Traceback" not in proc.stderr


def test_host_commands_without_tqdm_say_how_to_install_it(monkeypatch, capsys) -> None:
    """Device review: a checkout installed with the device extra only (no tqdm) ran eval, features and data into a
    ModuleNotFoundError traceback; they now say what is missing and how to install it, as train says torch."""
    import importlib.util

    from edge_ser.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tqdm" else real(name, *a)
    )
    assert main(["data", "emodb"]) == 2
    err = capsys.readouterr().err
    assert "tqdm is not installed" in err and "pip install tqdm" in err and "Traceback" not in err


def test_torch_commands_without_tqdm_say_how_to_install_it(monkeypatch, capsys) -> None:
    """Device review: a device install given torch alone (what train's message names) ran model, train, laq,
    zoo into tqdm's ModuleNotFoundError traceback; they say tqdm is missing, as eval does."""
    import importlib.util

    from edge_ser.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tqdm" else real(name, *a)
    )
    assert main(["model", "laq_mlp"]) == 2
    out = capsys.readouterr()
    assert "edge-ser model: error: tqdm is not installed" in out.err and "pip install tqdm" in out.err
    assert out.out == ""


def test_torch_commands_without_onnx_say_so_before_training(monkeypatch, capsys) -> None:
    """Device review: with torch and tqdm but no onnx, `edge-ser train` trained the whole model, then failed counting
    its FLOPs (an ONNX export) with nothing saved; the torch commands say onnx is missing before any work."""
    import importlib.util

    from edge_ser.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a)
    )
    assert main(["model", "laq_mlp"]) == 2
    out = capsys.readouterr()
    assert "edge-ser model: error: onnx is not installed" in out.err and "pip install onnx" in out.err
    assert out.out == ""
