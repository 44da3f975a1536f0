"""AV clip pre-processing (edge_ser.inputs.av): frame sampling, MFCC segments, spec round trip, clip tensors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_ser.errors import ConfigError
from edge_ser.features import FeatureSpec, mfcc
from edge_ser.inputs.av import (
    AVInputSpec,
    audio_segments,
    av_feature_spec,
    clip_inputs,
)
from edge_ser.vision.video import sample_frame_indices

SR = 16000


def _tone(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize(
    "n, k, want",
    [
        (60, 6, [5, 15, 25, 35, 45, 55]),
        (6, 6, [0, 1, 2, 3, 4, 5]),
        (1, 6, [0, 0, 0, 0, 0, 0]),
        (3, 6, [0, 0, 1, 1, 2, 2]),
        (7, 6, [0, 1, 2, 4, 5, 6]),
        (10, 1, [5]),
    ],
)
def test_sample_frame_indices(n: int, k: int, want: list[int]) -> None:
    got = sample_frame_indices(n, k)
    assert got.dtype == np.int64 and got.tolist() == want


def test_sample_frame_indices_properties() -> None:
    for n in range(1, 200):
        idx = sample_frame_indices(n, 6)
        assert idx.shape == (6,) and idx.min() >= 0 and idx.max() < n
        assert np.all(np.diff(idx) >= 0)
        if n >= 6:
            assert len(set(idx.tolist())) == 6  # distinct when there are enough frames
    with pytest.raises(ConfigError):
        sample_frame_indices(0)
    with pytest.raises(ConfigError):
        sample_frame_indices(5, 0)


def test_audio_segments_matches_manual_mfcc() -> None:
    spec = av_feature_spec()
    y = _tone(2.0)
    got = audio_segments(y, SR, spec, segments=6)
    assert got.shape == (6, 40) and got.dtype == np.float32
    n = y.size // 6
    for i in range(6):
        m = mfcc(
            y=y[i * n : (i + 1) * n],
            sr=SR,
            n_mfcc=40,
            n_fft=spec.n_fft,
            hop_length=spec.hop_length,
            n_mels=spec.n_mels,
            norm=spec.dct_norm,
            mel_norm=spec.mel_norm,
        )  # the spec's top_db is 80, mfcc's default
        np.testing.assert_allclose(got[i], m.mean(axis=-1), rtol=1e-5, atol=1e-4)


def test_audio_segments_short_clip_padded() -> None:
    spec = av_feature_spec()
    y = _tone(0.1)  # 1600 samples: 266-sample segments, shorter than n_fft=512
    got = audio_segments(y, SR, spec)
    seg = np.pad(y[:266], (0, spec.n_fft - 266))
    m = mfcc(y=seg, sr=SR, n_mfcc=40, n_fft=512, hop_length=160, n_mels=64)
    assert got.shape == (6, 40) and np.all(np.isfinite(got))
    np.testing.assert_allclose(got[0], m.mean(axis=-1), rtol=1e-5, atol=1e-4)
    assert np.all(np.isfinite(audio_segments(np.zeros(3, np.float32), SR, spec)))


def test_audio_segments_errors() -> None:
    spec = av_feature_spec()
    with pytest.raises(ConfigError, match="resample"):
        audio_segments(_tone(0.5), 22050, spec)
    with pytest.raises(ConfigError, match="mono"):
        audio_segments(np.zeros((2, 1000), np.float32), SR, spec)


def test_av_input_spec_round_trip() -> None:
    spec = AVInputSpec()
    assert spec.feature_spec.sample_rate == 16000 and spec.n_mfcc == 40
    d = json.loads(json.dumps(spec.to_dict()))
    assert AVInputSpec.from_dict(d) == spec
    other = AVInputSpec(frames=4, face_size=48, segments=3, feature_spec=FeatureSpec(sample_rate=16000))
    assert AVInputSpec.from_dict(json.loads(json.dumps(other.to_dict()))) == other
    assert AVInputSpec.from_dict({}) == spec
    assert spec.shapes == {"faces": (6, 64, 64), "audio": (6, 40)}
    with pytest.raises(ConfigError, match="unknown"):
        AVInputSpec.from_dict({**d, "bogus": 1})
    with pytest.raises(ConfigError):
        AVInputSpec(frames=0)


def test_default_crop_is_the_shared_face_crop() -> None:
    """With no crop_fn, frames go through FaceCropper.crop_or_center: the same path as the live runtime."""
    pytest.importorskip("cv2")
    from edge_ser.vision.face import FaceCropper

    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(8)]  # no face: the fallback
    faces, _ = clip_inputs(frames, _tone(1.0), SR)
    ref = FaceCropper().crop_or_center
    for j, i in enumerate(sample_frame_indices(8, 6)):
        crop = ref(frames[int(i)])
        assert not crop.found
        np.testing.assert_array_equal(faces[j], crop.image.astype(np.float32) / 255.0)


def test_clip_inputs() -> None:
    frames = [np.full((90, 120), i, np.uint8) for i in range(30)]
    seen = []

    def crop(f: np.ndarray) -> np.ndarray:
        seen.append(int(f[0, 0]))
        return np.full((64, 64), 255, np.uint8)

    faces, audio = clip_inputs(frames[:4], _tone(1.0), SR, AVInputSpec(), crop)
    assert faces.shape == (6, 64, 64) and faces.dtype == np.float32
    assert audio.shape == (6, 40) and audio.dtype == np.float32
    assert seen == sample_frame_indices(4, 6).tolist() and np.all(faces == 1.0)

    class _Crop:  # the shape of edge_ser.vision.face.FaceCrop
        image = np.zeros((64, 64), np.uint8)

    faces, _ = clip_inputs(frames, _tone(1.0), SR, crop_fn=lambda f: _Crop())
    assert np.all(faces == 0.0)
    with pytest.raises(ConfigError, match="crop_fn"):
        clip_inputs(frames, _tone(1.0), SR, crop_fn=lambda f: np.zeros((32, 32), np.uint8))
