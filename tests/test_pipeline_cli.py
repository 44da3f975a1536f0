"""The host job through the CLI: synthetic data -> cached features -> laq_mlp -> accuracy well above chance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="training needs the host extra (torch)")

from edge_ser.cli import main  # noqa: E402


def test_demo_learns_synthetic_data(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--cache", str(tmp_path / "cache"), "--quiet", "--threads", "1"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_clips"] == 210 and len(summary["classes"]) == 7
    # 7 balanced classes: chance is 1/7 = 0.143. A model that learned the data is far above it.
    assert summary["test_accuracy"] >= 0.4, summary["test_accuracy"]
    assert summary["val_accuracy"] >= 0.4
    assert (out / "model.pt").stat().st_size > 100_000
    split = json.loads((out / "split.json").read_text())
    assert len(split["train"]) + len(split["val"]) + len(split["test"]) == 210
    # second run: every feature comes from the cache
    rc = main(["demo", "--out", str(out), "--cache", str(tmp_path / "cache"), "--quiet", "--epochs", "2"])
    assert rc == 0
    again = json.loads((out / "summary.json").read_text())
    assert (again["cache_hits"], again["cache_misses"]) == (210, 0)


def test_features_and_data_commands(tmp_path: Path, capsys) -> None:
    synth = tmp_path / "synth"
    assert main(["synth", str(synth), "--n-per-class", "3", "--speakers", "2"]) == 0
    assert main(["data", str(synth)]) == 0
    assert "21 records" in capsys.readouterr().out
    npy = tmp_path / "X.npy"
    assert main(["features", str(synth), "--out", str(npy), "--cache", str(tmp_path / "c"), "-q"]) == 0
    import numpy as np

    assert np.load(npy).shape == (21, 180)
    assert len((tmp_path / "X.txt").read_text().split()) == 21


def test_cli_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["features", str(tmp_path / "missing.wav")]) == 2
    err = capsys.readouterr().err
    assert "missing.wav" in err and "no such file" in err
    bad = tmp_path / "bad.wav"
    bad.write_text("hello, not audio")
    assert main(["features", str(bad), "--no-cache", "-q"]) == 2
    assert "bad.wav" in capsys.readouterr().err
    assert main(["train", "--data", "nonesuch"]) == 2
    assert "nonesuch" in capsys.readouterr().err
    spec = tmp_path / "spec.json"
    spec.write_text('{"n_mfccs": 3}')
    assert main(["features", str(bad), "--spec", str(spec)]) == 2
    assert "unknown field" in capsys.readouterr().err


def test_same_seed_same_model(tmp_path: Path) -> None:
    """A run is reproducible: same data, seed and threads give bit-identical weights and accuracy."""
    import torch

    runs = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        args = ["demo", "--out", str(out), "--cache", str(tmp_path / "cache"), "-q", "--threads", "1", "--epochs", "15"]
        assert main(args) == 0
        state = torch.load(out / "model.pt", weights_only=False)["state_dict"]
        runs.append((json.loads((out / "summary.json").read_text())["test_accuracy"], state))
    assert runs[0][0] == runs[1][0]
    for name, tensor in runs[0][1].items():
        assert torch.equal(tensor, runs[1][1][name]), name
