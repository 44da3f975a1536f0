"""Feature vectors of audio files of any length: `file_vector` (what `edge-ser features` and the feature cache
compute), a file up to 30 s loaded whole, a longer one streamed."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from edge_ser.audio.stream import Resampled
from edge_ser.errors import ConfigError
from edge_ser.features.condition import gain_for
from edge_ser.features.spec import FeatureSpec
from edge_ser.features.spectral import power_to_db
from edge_ser.features.streaming import StreamingFeatures
from edge_ser.features.vector import feature_vector, filter_banks


def file_vector(path: str | os.PathLike, spec: FeatureSpec = FeatureSpec()) -> np.ndarray:
    """The feature vector of an audio file of any length (mono, resampled to spec.sample_rate).

    A file up to 30 s is loaded whole (`feature_vector` of `load`); a longer one is streamed twice, a block at
    a time: the first pass finds the mel peak the top_db clip is taken from, the second sums the clipped dB
    frames, so the vector is the one `feature_vector` gives for the whole file (up to float rounding) while
    memory stays at one block.
    """
    with Resampled(path, spec.sample_rate) as s:
        if s.whole:
            return feature_vector(next(iter(s)), sr=spec.sample_rate, spec=spec)
    return _streamed_vector(path, spec)


def _conditioning(path: str | os.PathLike, spec: FeatureSpec) -> tuple[float, float]:
    """(mean, gain) of a whole file for `edge_ser.features.condition`, in one streamed pass ((0, 1) when the
    spec conditions nothing)."""
    if not spec.remove_dc and spec.level_dbfs is None:
        return 0.0, 1.0
    n, total, squares = 0, 0.0, 0.0
    with Resampled(path, spec.sample_rate) as s:
        for b in s:
            n += b.size
            total += float(np.sum(b, dtype=np.float64))
            squares += float(np.sum(np.square(b, dtype=np.float64)))
    mean = total / n if (n and spec.remove_dc) else 0.0
    rms = float(np.sqrt(max(0.0, squares / n - mean * mean))) if n else 0.0  # RMS about `mean`
    return mean, gain_for(rms, spec)


def _streamed_frames(
    path: str | os.PathLike, spec: FeatureSpec, mean: float = 0.0, gain: float = 1.0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(mel power [k, n_mels], chroma [k, n_chroma]) of a file's frames, block by block, with `mean` removed
    and scaled by `gain` (the whole file's conditioning, `_conditioning`)."""
    frames = StreamingFeatures(spec, "frames")
    with Resampled(path, spec.sample_rate) as s:
        for b in s:
            if mean or gain != 1.0:
                b = (b - np.float32(mean)) * np.float32(gain)
            f = frames.accept_waveform(b)
            if f.shape[0]:
                yield f[:, : spec.n_mels], f[:, spec.n_mels :]
    f = frames.input_finished()
    if f.shape[0]:
        yield f[:, : spec.n_mels], f[:, spec.n_mels :]


def _streamed_vector(path: str | os.PathLike, spec: FeatureSpec) -> np.ndarray:
    """`vector_from_frames` of all a file's frames, in two streamed passes (see `file_vector`)."""
    n, peak = 0, 0.0
    mel_sum = np.zeros(spec.n_mels, np.float64)
    chroma_sum = np.zeros(spec.n_chroma, np.float64)
    cond = _conditioning(path, spec)
    for mel, chroma in _streamed_frames(path, spec, *cond):
        n += mel.shape[0]
        peak = max(peak, float(mel.max()))
        mel_sum += mel.sum(axis=0, dtype=np.float64)
        chroma_sum += chroma.sum(axis=0, dtype=np.float64)
    if n == 0:
        raise ConfigError(f"{path}: no frames to summarise")
    floor = None
    if spec.top_db is not None:  # power_to_db(ref=1, amin=1e-10) clips at its maximum - top_db
        floor = 10.0 * np.log10(max(1e-10, peak)) - spec.top_db
    db_sum = np.zeros(spec.n_mels, np.float64)
    for mel, _ in _streamed_frames(path, spec, *cond):
        db = power_to_db(mel, top_db=None)
        if floor is not None:
            db = np.maximum(db, floor)
        db_sum += db.sum(axis=0, dtype=np.float64)
    mel_db_mean = db_sum / n
    mfcc_mean = mel_db_mean @ filter_banks(spec, np.float32).dct_t
    mel_mean = mel_db_mean if spec.mel_db else mel_sum / n
    return np.concatenate([mfcc_mean, mel_mean, chroma_sum / n]).astype(np.float32)


__all__ = ["file_vector"]
