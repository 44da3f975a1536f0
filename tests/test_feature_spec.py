"""FeatureSpec: JSON round trip, validation with clear messages, derived values; vector basics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _signals import clip

from edge_ser.errors import AudioFormatError, ConfigError
from edge_ser.features import FeatureSpec, StreamingFeatures, feature_vector


def test_defaults_are_the_laq_recipe() -> None:
    spec = FeatureSpec()
    assert spec.dim == 180
    assert (spec.n_mfcc, spec.n_mels, spec.n_chroma) == (40, 128, 12)
    assert spec.layout["chroma"] == slice(168, 180)
    assert spec.n_frames(66150) == 130


def test_json_round_trip_and_digest() -> None:
    spec = FeatureSpec(sample_rate=16000, n_fft=512, hop_length=160, fmax=7600.0, htk=True)
    text = spec.to_json()
    assert json.loads(text)["sample_rate"] == 16000
    again = FeatureSpec.from_json(text)
    assert again == spec and again.digest() == spec.digest()
    assert FeatureSpec.from_dict({}) == FeatureSpec()
    assert FeatureSpec(n_mfcc=20).digest() != FeatureSpec().digest()
    assert "sample_rate=16000" in str(spec)


@pytest.mark.parametrize(
    "kwargs, phrase",
    [
        (dict(sample_rate=10), "sample_rate"),
        (dict(n_mels=2000), "n_mels"),
        (dict(n_mfcc=200), "n_mfcc"),
        (dict(fmin=5000.0, fmax=4000.0), "fmin"),
        (dict(pad_mode="wrap"), "pad_mode"),
        (dict(win_length=4096), "win_length"),
        (dict(top_db=-3.0), "top_db"),
        (dict(schema=99), "schema"),
    ],
)
def test_invalid_specs_name_the_field(kwargs: dict, phrase: str) -> None:
    with pytest.raises(ConfigError, match=phrase):
        FeatureSpec(**kwargs)


def test_from_dict_rejects_unknown_and_bad_json() -> None:
    with pytest.raises(ConfigError, match="unknown field"):
        FeatureSpec.from_dict({"n_mfccs": 40})
    with pytest.raises(ConfigError, match="not valid"):
        FeatureSpec.from_json("{nope")
    with pytest.raises(ConfigError, match="object"):
        FeatureSpec.from_json("[1, 2]")


def test_vector_checks_its_input() -> None:
    y = clip("voiced", 16000).astype(np.float32)
    with pytest.raises(ConfigError, match="resample"):
        feature_vector(y, sr=16000)  # default spec is 22.05 kHz
    with pytest.raises(ConfigError, match="mono"):
        feature_vector(np.stack([y, y]), sr=22050)
    with pytest.raises(AudioFormatError, match="non-finite"):
        feature_vector(np.array([0.0, np.inf] * 100, np.float32), sr=22050)
    with pytest.raises(AudioFormatError, match="floating"):
        feature_vector(np.zeros(1000, np.int16), sr=22050)
    with pytest.raises(AudioFormatError, match="empty"):
        feature_vector(np.zeros(0, np.float32), sr=22050)


def test_vector_is_reentrant_across_calls() -> None:
    """Scratch buffers are reused between calls: results must not depend on what ran before."""
    spec = FeatureSpec(sample_rate=16000)
    a, b = clip("voiced", 16000).astype(np.float32), clip("noise", 16000).astype(np.float32)
    va = feature_vector(a, sr=16000, spec=spec)
    feature_vector(b, sr=16000, spec=spec)
    np.testing.assert_array_equal(feature_vector(a, sr=16000, spec=spec), va)
    silent = feature_vector(np.zeros(8000, np.float32), sr=16000, spec=spec)
    assert np.isfinite(silent).all() and np.all(silent[spec.layout["chroma"]] == 0)


def test_spec_without_chroma_gives_mfcc_and_mel() -> None:
    """n_chroma=0 is a valid spec (MFCC + mel only): its vector and streamed frames are the chroma-full spec's
    without the chroma block (it raised ZeroDivisionError in the chroma filter bank)."""
    y = clip("voiced", 16000).astype(np.float32)
    full, bare = FeatureSpec(sample_rate=16000), FeatureSpec(sample_rate=16000, n_chroma=0)
    v = feature_vector(y, sr=16000, spec=bare)
    assert v.shape == (bare.dim,) == (168,)
    np.testing.assert_array_equal(v, feature_vector(y, sr=16000, spec=full)[: bare.dim])
    frames = StreamingFeatures(bare, "frames").accept_waveform(y)
    assert frames.shape[1] == bare.n_mels and frames.shape[0] > 0
    assert StreamingFeatures(bare, "chroma").accept_waveform(y).shape == (frames.shape[0], 0)
