"""The roofline report: projected on a firmware profile, measured on the host, from the CLI, with its plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_ser.bundle import load_bundle
from edge_ser.profiles import load_profile, ridge_point
from edge_ser.roofline import build_report, write_report

ROOT = Path(__file__).resolve().parents[1]
AV = ROOT / "bundles" / "av_cnn"
cv2 = pytest.importorskip("cv2")


def test_projection_on_a_pi4_is_labelled_and_follows_the_roof(tmp_path):
    b = load_bundle(AV)
    r = build_report(b, load_profile("pi4"), engine="onnxruntime")
    assert not r.measured and r.profile == "pi4" and r.precision == "fp32"
    assert r.ridge == pytest.approx(ridge_point(load_profile("pi4"), "fp32"))
    # a projection puts every node exactly on its roof, so the model sits at or under the bound
    for p in r.layers:
        assert p.fraction == pytest.approx(1.0) or p.flops == 0
    assert r.fraction_of_bound <= 1.0 + 1e-9
    assert r.latency_ms == pytest.approx(sum(p.ms for p in r.layers))
    md = r.markdown()
    assert "Projection from counts, not a measurement" in md and "Counting convention" in md
    j, m, png = write_report(r, tmp_path / "pi4", "edge-ser bench ...")
    assert json.loads(j.read_text())["profile"] == "pi4"
    img = cv2.imread(str(png))
    assert img is not None and img.shape == (700, 1000, 3) and (img < 250).mean() > 0.02  # something drawn


def test_measured_on_the_host_from_the_cli(tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnxruntime")
    from edge_ser import hostbench
    from edge_ser.cli import main

    quick = hostbench.host_profile(quick=True, cache=tmp_path / "host.json")
    monkeypatch.setattr(
        "edge_ser.profiles.load_profile", lambda name: quick if name == "host" else load_profile(name)
    )
    out = tmp_path / "host"
    assert (
        main(["bench", str(AV), "--profile", "host", "--engine", "numpy", "--runs", "20", "--out", str(out)])
        == 0
    )
    text = capsys.readouterr().out
    assert "Measured on this machine" in text and "numpy's profiler" in text
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["measured"] and data["latency_ms"] > 0 and data["attained_gflops"] > 0
    convs = [p for p in data["layers"] if p["op"] == "Conv"]
    assert len(convs) == 5 and all(p["ms"] > 0 and p["gflops"] > 0 for p in convs)
    assert np.isclose(data["flops"], sum(p["flops"] for p in data["layers"]))
    assert out.with_suffix(".png").stat().st_size > 10_000 and "Made by" in out.with_suffix(".md").read_text()


def test_tflite_int8_on_a_profile_without_an_int8_roof_says_why():
    from edge_ser.profiles import ProfileError

    with pytest.raises(ProfileError, match="int8"):
        build_report(load_bundle(AV), _no_int8(), engine="tflite-int8")


def _no_int8():
    """The pi4 profile without its int8 roofline choice."""
    from edge_ser.profiles import Profile

    d = load_profile("pi4").to_dict()
    for choices in d["roofline"]["targets"].values():
        choices.pop("int8", None)
    return Profile.from_dict(d)
