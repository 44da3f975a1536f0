"""Inputs beyond what the model saw are flagged (`ood`) and clamped, on every engine and in every result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_ser.bundle import load_bundle
from edge_ser.engines import load_engine
from edge_ser.engines.base import OOD_Z

ROOT = Path(__file__).resolve().parents[1]
LAQ = ROOT / "bundles" / "laq_mlp_emodb"
EMODB = ROOT.parent / "shared" / "datasets" / "emodb" / "wav"


@pytest.fixture(scope="module")
def laq():
    b = load_bundle(LAQ)
    norm = b.manifest["normalization"]
    return b, np.asarray(norm["mean"], np.float32), np.asarray(norm["std"], np.float32)


@pytest.mark.parametrize("engine", ["numpy", "onnxruntime", "tflite-fp32"])
def test_far_input_is_flagged_and_clamped(laq, engine: str) -> None:
    b, mean, std = laq
    e = load_engine(b, engine)
    x = np.stack(
        [mean, mean + 1000 * std, mean - 3 * std]
    )  # row 1: a full-band clip through a band-limited model
    logits = e.predict(x)
    assert e.adapt.last_ood.tolist() == [False, True, False]
    at_bound = np.stack([mean, mean + OOD_Z * std, mean - 3 * std])
    np.testing.assert_allclose(logits, e.predict(at_bound), rtol=1e-5, atol=1e-5)  # clamped to +-OOD_Z
    assert not e.adapt.last_ood.any()


def test_int8_saturation_is_never_silent(laq) -> None:
    """Within +-OOD_Z but beyond the int8 input range: the TFLite int8 engine flags the row it saturates."""
    b, mean, std = laq
    e = load_engine(b, "tflite-int8")
    q = b.manifest["tflite"]["variants"]["int8"]["inputs"]["features"]
    top = (127 - q["zero_point"]) * q["scale"]  # largest representable standardised value
    if b.manifest["tflite"]["normalization_in_graph"]:
        pytest.skip("this bundle quantizes raw features")
    z = top + 3 * q["scale"]  # three int8 steps beyond the top: saturates, but is not clamped at +-OOD_Z
    assert z < OOD_Z
    x = np.stack([mean, mean + z * std])
    e.predict(x)
    assert e.adapt.last_ood.tolist() == [False, True]


def test_prediction_and_json_carry_the_flag(tmp_path: Path) -> None:
    from edge_ser.audio.wav import write_wav
    from edge_ser.recognizer import Recognizer

    rec = Recognizer(LAQ, "numpy")
    rng = np.random.default_rng(0)
    y = (0.05 * rng.normal(size=32000)).astype(np.float32)
    assert not rec.predict_audio(y, 16000).ood
    loud = rec.predict_audio(y * 1000, 16000)  # +60 dB: power means 10^6 times the training range
    assert loud.ood and json.loads(json.dumps(loud.to_dict()))["ood"] is True
    p = tmp_path / "loud.wav"
    write_wav(p, y * 60, 16000, subtype="FLOAT")
    assert rec.predict_file(p).ood


def test_live_result_carries_the_flag() -> None:
    from edge_ser.live.pipeline import LivePipeline

    b = load_bundle(LAQ)
    pipe = LivePipeline(b, load_engine(b, "numpy"))
    from edge_ser.audio.polyphase import resample

    sr = b.input_kind.sample_rate  # noise made at 16 kHz: band-limited like the training audio
    y = resample((0.05 * np.random.default_rng(1).normal(size=32000)).astype(np.float32), 16000, sr)
    assert not pipe.step(2.0, y).ood
    r = pipe.step(4.0, y * 1000)
    assert r.speech and r.ood and r.to_dict()["ood"] is True


@pytest.mark.skipif(not EMODB.is_dir(), reason="EMODB not found at ../shared/datasets/emodb")
def test_clean_training_audio_is_almost_never_flagged() -> None:
    from edge_ser.recognizer import Recognizer

    files = sorted(EMODB.glob("*.wav"))[::5]
    for engine in ("onnxruntime", "tflite-int8"):
        preds = Recognizer(LAQ, engine).predict_files(files)
        assert np.mean([p.ood for p in preds]) <= 0.02, engine
