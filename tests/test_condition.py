"""Clip conditioning (DC offset removed, level set) makes the front end deaf to the microphone's gain, offset
and dead channels, identically for clips, long files and the live stream (issue 17)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from edge_ser.audio import load
from edge_ser.audio.wav import write_wav
from edge_ser.features import FeatureSpec
from edge_ser.features.condition import MAX_GAIN_DB, condition
from edge_ser.features.files import file_vector
from edge_ser.features.vector import feature_vector

SPEC = FeatureSpec(sample_rate=16000, remove_dc=True, level_dbfs=-26.0)


def speechlike(seconds: float = 2.0, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """Harmonics under a syllable-rate envelope, with pauses, below 4 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 20))
    env = np.clip(np.sin(2 * np.pi * 3 * t), 0, None) ** 2
    return (0.2 * y * env + 0.001 * rng.normal(size=t.size)).astype(np.float32)


def rms_dbfs(y: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(y - y.mean(), dtype=np.float64))))


def test_condition_sets_level_and_removes_dc() -> None:
    y = speechlike() * 0.05 + 0.1
    out = condition(y, SPEC)
    assert abs(float(out.mean())) < 1e-6
    assert rms_dbfs(out) == pytest.approx(-26.0, abs=1e-3)
    assert condition(y, FeatureSpec()) is y  # no conditioning asked: untouched, not copied


def test_gain_is_bounded_and_silence_left_alone() -> None:
    quiet = speechlike() * 1e-4  # ~ -100 dBFS: digital near-silence
    np.testing.assert_array_equal(condition(quiet, dataclasses.replace(SPEC, remove_dc=False)), quiet)
    soft = speechlike() * 10 ** (-60 / 20)  # ~ -82 dBFS: reaching -26 would need +56 dB
    assert rms_dbfs(condition(soft, SPEC)) == pytest.approx(rms_dbfs(soft) + MAX_GAIN_DB, abs=1e-3)


@pytest.mark.parametrize("change", ["-20 dB", "+20 dB", "DC 0.1", "stereo, dead channel"])
def test_feature_vector_ignores_gain_dc_and_dead_channels(change: str) -> None:
    y = speechlike()
    ref = feature_vector(y, sr=16000, spec=SPEC)
    z = {"-20 dB": y * 0.1, "+20 dB": y * 10, "DC 0.1": y + 0.1, "stereo, dead channel": (y + 0) / 2}[change]
    got = feature_vector(z.astype(np.float32), sr=16000, spec=SPEC)
    np.testing.assert_allclose(got, ref, rtol=2e-3, atol=2e-3 * np.abs(ref).max())
    # without conditioning the same change moves the features far
    plain = FeatureSpec(sample_rate=16000)
    a, b = feature_vector(y, sr=16000, spec=plain), feature_vector(z.astype(np.float32), sr=16000, spec=plain)
    assert np.abs(a - b).max() > 10 * np.abs(got - ref).max()


def test_old_specs_serialise_as_before() -> None:
    d = FeatureSpec().to_dict()
    assert "remove_dc" not in d and "level_dbfs" not in d
    assert FeatureSpec.from_dict(d) == FeatureSpec()
    d2 = SPEC.to_dict()
    assert d2["remove_dc"] is True and d2["level_dbfs"] == -26.0
    assert FeatureSpec.from_json(json.dumps(d2)) == SPEC


def test_long_file_is_conditioned_as_one_clip(tmp_path: Path) -> None:
    y = np.concatenate([speechlike(seconds=8.0, seed=i) for i in range(5)]) * 0.03 + 0.05  # 40 s: streamed
    p = tmp_path / "long.wav"
    write_wav(p, y, 16000, subtype="FLOAT")
    whole, _ = load(p, sr=16000, mono=True)
    np.testing.assert_allclose(
        file_vector(p, SPEC), feature_vector(whole, sr=16000, spec=SPEC), rtol=1e-3, atol=1e-4
    )


def test_live_windows_equal_clips() -> None:
    from edge_ser.inputs.vector import VectorKind

    kind = VectorKind(SPEC, "features", [None, SPEC.dim])
    front = kind.live(2.0)
    y = speechlike(seconds=2.0) * 0.02 + 0.05
    front.feed(y)
    np.testing.assert_array_equal(front.inputs(y)["features"], kind.window_inputs(y)["features"])


def test_log_mel_patches_condition_alike() -> None:
    """LMSSpec carries the same two fields: the log-Mel front end ignores gain and DC once they are on, and an
    LMSSpec without them serialises as before (the shipped log-Mel bundle's block is unchanged)."""
    from edge_ser.inputs.patches import LMSSpec, lms_frames

    spec = LMSSpec(n_fft=1024, remove_dc=True, level_dbfs=-26.0)
    y = speechlike()
    ref = lms_frames(y, 16000, spec)
    for z in (y * 0.1, y * 10, y + 0.1):
        np.testing.assert_allclose(lms_frames(z.astype(np.float32), 16000, spec), ref, atol=0.05)
    plain = LMSSpec(n_fft=1024)
    assert np.abs(lms_frames(y * 0.1, 16000, plain) - lms_frames(y, 16000, plain)).max() > 10
    assert "remove_dc" not in LMSSpec().to_dict() and "level_dbfs" not in LMSSpec().to_dict()
    assert LMSSpec.from_dict(spec.to_dict()) == spec
