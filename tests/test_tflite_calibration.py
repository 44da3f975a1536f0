"""int8 calibration pieces of the ONNX-graph route (issue 20): an input range set apart from the calibration
rows (the first layer's int32 bias requantized), the output's top narrowed to the runner-up logits, and the
held-out-like augmented copies of training clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="tensorflow-cpu (the tf-export extra) is not installed")

from converters.export import onnx_tflite as ot  # noqa: E402
from converters.export import tflite_bundle as tb  # noqa: E402
from converters.export.tflite_export import _Flat, run_tflite  # noqa: E402
from edge_ser.bundle import load_bundle  # noqa: E402
from edge_ser.errors import ConfigError  # noqa: E402

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


@pytest.fixture(scope="module")
def ser() -> ot.Traced:
    return ot.trace(ot.bundle_graph(load_bundle(BUNDLES / "ser_emodb")))


def _rows(n: int, seed: int) -> np.ndarray:
    width = load_bundle(BUNDLES / "ser_emodb").manifest["model"]["inputs"][0]["shape"][1]
    return np.random.default_rng(seed).standard_normal((n, width)).astype(np.float32)


def _tensor(m, name: str):
    f = _Flat.read(m.data)
    return f, next(t for t in f.sg.tensors if t.name.decode() == name)


def test_input_range_is_set_and_the_bias_follows(ser: ot.Traced) -> None:
    cal = {"functionals": _rows(200, 0)}
    m8 = ot.convert(ser, "int8", cal, input_ranges={"functionals": (-8.0, 12.0)})
    s, z = m8.input_quant["functionals"]
    assert s == pytest.approx(20.0 / 255, rel=1e-6)
    assert (-128 - z) * s == pytest.approx(-8.0, abs=s)
    first = ser.layers[0].name  # the first Gemm on the input: features.0, or branches.0.features.0 of a pair
    assert first.endswith("features.0")
    f, bt = _tensor(m8, f"{first}.bias")
    _, wt = _tensor(m8, f"{first}.weight")
    ws = np.asarray(wt.quantization.scale, np.float64)
    np.testing.assert_allclose(np.asarray(bt.quantization.scale, np.float64), s * ws, rtol=1e-6)
    la = {la.name: la for la in ser.layers}[first]
    b = np.frombuffer(bytes(f.obj.buffers[bt.buffer].data), "<i4").astype(np.float64) * s * ws
    assert np.abs(b - la.bias).max() <= (s * ws).max()
    x = _rows(64, 1)
    y32, y8 = run_tflite(ot.convert(ser, "fp32"), x), run_tflite(m8, x)
    assert np.mean(y8.argmax(1) == y32.argmax(1)) >= 0.9


def test_input_range_needs_weight_op_readers() -> None:
    t = ot.trace(ot.bundle_graph(load_bundle(BUNDLES / "face_fer")))
    x = {"face": np.random.default_rng(0).uniform(0, 1, (8, 1, 48, 48)).astype(np.float32)}
    with pytest.raises(ConfigError, match="weight ops"):
        ot.convert(t, "int8", x, input_ranges={"face": (0.0, 2.0)})


def test_output_ceiling_follows_the_runner_up(ser: ot.Traced) -> None:
    cal = {"functionals": _rows(200, 0)}
    y = ser.concrete(cal["functionals"])["logits"].numpy()
    second = float(np.sort(y, 1)[:, -2].max())
    for margin in (1.0, None):
        m8 = ot.convert(ser, "int8", cal, ceiling_margin=margin)
        s, z = m8.output_quant
        hi = (127 - z) * s
        if margin is None:
            assert hi == pytest.approx(float(y.max()), abs=2 * s)
        else:
            assert hi == pytest.approx(second + margin, abs=2 * s)


def test_augmented_clips_are_made_from_the_training_clip(tmp_path: Path) -> None:
    from edge_ser.audio import write_wav

    t = np.arange(16000) / 16000.0
    y = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    p = tmp_path / "a.wav"
    write_wav(p, y, 16000)
    out = tb.augmented_clips([p, p], every=2)
    assert len(out) == len(tb.AUGMENTS)  # every 2nd clip: one, under each augmentation
    rates = [sr for _, sr in out]
    assert rates == [a.rate for a in tb.AUGMENTS]
    (y8, _), (quiet, _), (loud, _) = out
    assert len(y8) == 8000
    assert np.sqrt(np.mean(quiet**2)) < 0.2 * np.sqrt(np.mean(y**2))
    assert np.abs(loud).max() == pytest.approx(10 * np.abs(y).max(), rel=1e-3)


def test_the_benchmark_refuses_a_bundle_it_does_not_know(capsys) -> None:
    """`benchmarks/tflite_calibration.py --bundles nosuch` ended in a KeyError traceback: it is a usage error."""
    from benchmarks.tflite_calibration import main

    for given in ("nosuch", "ser_emodb,nosuch", ","):
        with pytest.raises(SystemExit) as e:
            main(["--bundles", given])
        err = capsys.readouterr().err
        assert e.value.code == 2 and "--bundles: " in err and "choose from ser_emodb, ser_ravdess" in err
