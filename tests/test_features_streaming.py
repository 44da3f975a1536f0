"""The streaming extractor yields exactly the batch frames, whatever the chunking, doing work only once."""

from __future__ import annotations

import numpy as np
import pytest
from _signals import clip

from edge_ser.errors import AudioFormatError, ConfigError
from edge_ser.features import (
    FeatureSpec,
    StreamingFeatures,
    chroma_stft,
    feature_frames,
    feature_vector,
    melspectrogram,
    mfcc,
    power_to_db,
    stft,
    vector_from_frames,
)

SPEC = FeatureSpec(sample_rate=16000, n_fft=512, hop_length=160, n_mels=40, n_mfcc=13)


def _batch(kind: str, y: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """The batch function's output for `kind`, time-major."""
    kw = spec.stft_kwargs()
    sr = spec.sample_rate
    if kind == "power":
        return (np.abs(stft(y, **kw)) ** 2).T
    if kind == "melspectrogram":
        return melspectrogram(y=y, sr=sr, n_mels=spec.n_mels, **kw).T
    if kind == "log_mel":
        return power_to_db(melspectrogram(y=y, sr=sr, n_mels=spec.n_mels, **kw), top_db=None).T
    if kind == "mfcc":
        S = power_to_db(melspectrogram(y=y, sr=sr, n_mels=spec.n_mels, **kw), top_db=None)
        return mfcc(S=S, n_mfcc=spec.n_mfcc).T
    if kind == "chroma":
        return chroma_stft(S=np.abs(stft(y, **kw)), sr=sr, n_fft=spec.n_fft).T
    mel, chroma = feature_frames(y, sr=sr, spec=spec)
    return np.concatenate([mel, chroma], axis=1)


def _stream(st: StreamingFeatures, y: np.ndarray, sizes) -> np.ndarray:
    out, i = [], 0
    for n in sizes:
        if i >= len(y):
            break
        out.append(st.accept_waveform(y[i : i + n]))
        i += n
    if i < len(y):
        out.append(st.accept_waveform(y[i:]))
    out.append(st.input_finished())
    return np.concatenate(out)


@pytest.mark.parametrize("chunk", [1, 7, 160, 4096])
@pytest.mark.parametrize("kind", ["power", "melspectrogram", "log_mel", "mfcc", "chroma", "frames"])
def test_chunked_equals_batch_float64(kind: str, chunk: int) -> None:
    y = clip("voiced", 16000)[:8011]  # odd length, not a multiple of the hop
    st = StreamingFeatures(SPEC, kind, dtype=np.float64)
    got = _stream(st, y, [chunk] * (len(y) // chunk + 1))
    ref = _batch(kind, y, SPEC)
    assert got.shape == ref.shape == (SPEC.n_frames(len(y)), st.dim)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
    assert st.num_frames == got.shape[0] and st.num_samples == len(y)


@pytest.mark.filterwarnings("ignore:n_fft=")
@pytest.mark.parametrize("pad_mode", ["constant", "reflect", "edge", "symmetric"])
@pytest.mark.parametrize("n", [1, 100, 256, 257, 300, 3001])
def test_padding_modes_and_short_streams(pad_mode: str, n: int) -> None:
    spec = FeatureSpec(sample_rate=16000, n_fft=512, hop_length=128, n_mels=32, n_mfcc=13, pad_mode=pad_mode)
    y = clip("noise", 16000)[:n].astype(np.float64)
    ref = _batch("frames", y, spec)
    rng = np.random.default_rng(n)
    sizes = rng.integers(1, 200, size=n)
    st = StreamingFeatures(spec, "frames", dtype=np.float64)
    got = _stream(st, y, sizes)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


def test_uncentered_stream() -> None:
    spec = FeatureSpec(sample_rate=16000, n_fft=400, hop_length=160, n_mels=40, center=False)
    y = clip("voiced", 16000)[:5000]
    got = _stream(StreamingFeatures(spec, "melspectrogram", dtype=np.float64), y, [333] * 20)
    np.testing.assert_allclose(got, _batch("melspectrogram", y, spec), rtol=1e-9)


def test_float32_stream_and_window_vector() -> None:
    """float32 streaming (the device path) matches float32 batch; a window vector from streamed frames is
    the clip vector when the window is the whole clip."""
    spec = FeatureSpec()
    y = clip("voiced", 22050).astype(np.float32)
    st = StreamingFeatures(spec, "frames")
    frames = _stream(st, y, [512] * 100)
    assert frames.dtype == np.float32
    mel, chroma = frames[:, : spec.n_mels], frames[:, spec.n_mels :]
    np.testing.assert_allclose(
        vector_from_frames(mel, chroma, spec), feature_vector(y, sr=22050, spec=spec), rtol=1e-5, atol=1e-4
    )


def test_work_only_for_new_frames() -> None:
    """Each call emits exactly the frames its samples completed; nothing is recomputed."""
    st = StreamingFeatures(SPEC, "power", dtype=np.float64)
    y = clip("voiced", 16000)
    emitted = 0
    for i in range(0, 4000, 160):
        emitted += st.accept_waveform(y[i : i + 160]).shape[0]
        # frames whose last sample has arrived (centre padding counts as arrived at the start)
        ready = max(0, 1 + (i + 160 + SPEC.n_fft // 2 - SPEC.n_fft) // SPEC.hop_length)
        assert emitted == st.num_frames == ready


def test_state_machine_errors_and_reset() -> None:
    st = StreamingFeatures(SPEC, "mfcc")
    with pytest.raises(ConfigError, match="expects 16000"):
        st.accept_waveform(np.zeros(10, np.float32), sample_rate=8000)
    with pytest.raises(AudioFormatError):
        st.accept_waveform(np.zeros((10, 2), np.float32))
    with pytest.raises(AudioFormatError):
        st.accept_waveform(np.array([0.0, np.nan]))
    st.accept_waveform(np.zeros(1000, np.float32))
    st.input_finished()
    with pytest.raises(ConfigError, match="reset"):
        st.accept_waveform(np.zeros(10, np.float32))
    st.reset()
    y = clip("voiced", 16000).astype(np.float32)[:3000]
    a = _stream(st, y, [100] * 30)
    st.reset()
    b = _stream(st, y, [100] * 30)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError):
        StreamingFeatures(SPEC, "spectral_flux")
