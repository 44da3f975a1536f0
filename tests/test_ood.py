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


def _speechlike(seconds: float = 2.0, sr: int = 16000) -> np.ndarray:
    from tests.test_condition import speechlike

    return speechlike(seconds, sr)


def _whistle(seconds: float = 2.0, sr: int = 16000) -> np.ndarray:
    """A 7 kHz tone: after the front end sets its level, all of its energy sits in the top mel bands, where
    speech has little, so those standardised inputs are far beyond anything in training. (White noise was the
    example while the bundle's mel bank reached 8 kHz, where EMODB's bands were empty; since the bank ends at
    7.2 kHz, white noise looks like loud fricatives and is rightly not flagged.)"""
    t = np.arange(int(seconds * sr)) / sr
    return (0.05 * np.sin(2 * np.pi * 7000.0 * t)).astype(np.float32)


def test_prediction_and_json_carry_the_flag(tmp_path: Path) -> None:
    from edge_ser.audio.wav import write_wav
    from edge_ser.recognizer import Recognizer

    rec = Recognizer(LAQ, "numpy")
    assert not rec.predict_audio(_speechlike(), 16000).ood
    odd = rec.predict_audio(_whistle(), 16000)
    assert odd.ood and json.loads(json.dumps(odd.to_dict()))["ood"] is True
    p = tmp_path / "whistle.wav"
    write_wav(p, _whistle(), 16000, subtype="FLOAT")
    assert rec.predict_file(p).ood


def test_live_result_carries_the_flag() -> None:
    from edge_ser.live.pipeline import LivePipeline

    b = load_bundle(LAQ)
    pipe = LivePipeline(b, load_engine(b, "numpy"))
    assert b.input_kind.sample_rate == 16000
    assert not pipe.step(2.0, _speechlike()).ood
    r = pipe.step(4.0, _whistle())
    assert r.speech and r.ood and r.to_dict()["ood"] is True


def test_clean_training_audio_is_almost_never_flagged(emodb_dir: Path) -> None:
    from edge_ser.recognizer import Recognizer

    files = sorted(emodb_dir.glob("*.wav"))[::5]
    for engine in ("onnxruntime", "tflite-int8"):
        preds = Recognizer(LAQ, engine).predict_files(files)
        assert np.mean([p.ood for p in preds]) <= 0.02, engine


def test_a_narrower_band_than_the_models_is_flagged(tmp_path: Path) -> None:
    """An 8 kHz recording has nothing above 4 kHz; the 16 kHz model's band reaches 8 kHz: flagged, for a clip,
    a file and every window of a long file. 16 kHz and above are not."""
    from edge_ser.audio.polyphase import resample
    from edge_ser.audio.wav import write_wav
    from edge_ser.recognizer import Recognizer

    rec = Recognizer(LAQ, "numpy")
    y = _speechlike()
    assert rec.predict_audio(resample(y, 16000, 8000), 8000).ood
    assert not rec.predict_audio(resample(y, 16000, 48000), 48000).ood
    short = write_wav(tmp_path / "phone.wav", resample(y, 16000, 8000), 8000)
    wide = write_wav(tmp_path / "usb.wav", resample(y, 16000, 44100), 44100)
    long = write_wav(tmp_path / "long.wav", np.tile(resample(y, 16000, 8000), 20), 8000)  # 40 s: windows
    p_short, p_wide, p_long = rec.predict_files([short, wide, long])
    assert p_short.ood and not p_wide.ood
    assert p_long.windows and all(w.ood for w in p_long.windows) and p_long.ood


def test_clamp_to_training_range_leaves_a_bundle_without_normalization_alone() -> None:
    """A bundle that records no normalisation (face_fer) has no training range: no engine clamps its input, so
    `clamp_to_training_range` gives it back as it came (it raised "input(s) ['face'] missing; the model takes
    ['face']", the None of `normalized_input` having been used as the input's name)."""
    from edge_ser.engines.base import clamp_to_training_range

    b = load_bundle(ROOT / "bundles" / "face_fer")
    assert b.normalized_input is None
    x = np.random.default_rng(0).uniform(-5, 300, (2, 1, 48, 48)).astype(np.float32)
    np.testing.assert_array_equal(clamp_to_training_range(b, x), x)
    e = load_engine(b, "numpy")
    np.testing.assert_allclose(e.predict(clamp_to_training_range(b, x)), e.predict(x), rtol=0, atol=0)


def test_clamp_to_training_range_clamps_the_normalized_input(laq) -> None:
    from edge_ser.engines.base import clamp_to_training_range

    b, mean, std = laq
    got = clamp_to_training_range(b, np.stack([mean, mean + 1000 * std]))
    np.testing.assert_allclose(got, np.stack([mean, mean + OOD_Z * std]), rtol=1e-6)


def test_clamp_to_training_range_of_a_model_with_two_inputs() -> None:
    """av_cnn takes faces and audio and normalises the audio: its audio rows alone are clamped (it raised
    "input(s) ['faces'] missing", the other input being asked for)."""
    from edge_ser.engines.base import clamp_to_training_range

    b = load_bundle(ROOT / "bundles" / "av_cnn")
    norm = b.manifest["normalization"]
    mean, std = (np.broadcast_to(np.asarray(norm[k], np.float32), (6, 40)) for k in ("mean", "std"))
    got = clamp_to_training_range(b, np.stack([mean, mean + 1000 * std]))
    np.testing.assert_allclose(got, np.stack([mean, mean + OOD_Z * std]), rtol=1e-6)
