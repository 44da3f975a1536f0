"""The LAQ paper's clip feature vector: mean MFCC + mean mel power + mean chroma (180-d), from ONE STFT.

librosa's recipe computes the STFT twice and rebuilds both filter banks on every call; here one complex STFT
feeds all three blocks, the banks are cached, and the MFCC mean is taken before the DCT (the DCT is linear,
so mean(DCT(x_t)) == DCT(mean(x_t))). `frame_features` + `vector_from_frames` are also what the streaming
extractor uses, so a clip and a live window go through the same code.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from edge_ser.errors import ConfigError
from edge_ser.features import filters
from edge_ser.features.condition import condition
from edge_ser.features.spec import FeatureSpec
from edge_ser.features.spectral import (
    WORKSPACE,
    abs_power,
    check_audio,
    melspectrogram,
    power_to_db,
    stft_frames,
    work_dtype,
)


@dataclass(frozen=True)
class FilterBanks:
    """Filter banks of one spec, transposed for time-major products ([t, bins] @ [bins, bands])."""

    mel: filters.BandedBank
    chroma_t: np.ndarray
    dct_t: np.ndarray


@functools.lru_cache(maxsize=16)
def filter_banks(spec: FeatureSpec, dtype: type) -> FilterBanks:
    mel = filters.mel_banded(
        sr=spec.sample_rate,
        n_fft=spec.n_fft,
        n_mels=spec.n_mels,
        fmin=spec.fmin,
        fmax=spec.fmax,
        htk=spec.htk,
        norm=spec.mel_norm,
        dtype=dtype,
    )
    if spec.n_chroma:
        chroma = filters.chroma(
            sr=spec.sample_rate, n_fft=spec.n_fft, n_chroma=spec.n_chroma, tuning=spec.tuning, dtype=dtype
        )
    else:  # a spec without chroma (MFCC + mel): an empty bank, no 12-bin folding to divide by
        chroma = np.zeros((0, spec.n_fft // 2 + 1), dtype)
    # float64 DCT for every dtype: it is tiny, and float32 rounding of c0 on silence would reach 1e-3.
    dct = filters.dct_matrix(max(spec.n_mfcc, 1), spec.n_mels, norm=spec.dct_norm, dtype=np.float64)[
        : spec.n_mfcc
    ]
    if spec.lifter > 0:
        n = np.arange(1, 1 + spec.n_mfcc)
        dct = dct * (1 + (spec.lifter / 2) * np.sin(np.pi * n / spec.lifter))[:, None]
    return FilterBanks(mel, np.ascontiguousarray(chroma.T), np.ascontiguousarray(dct.T))


def frame_features(
    stft: np.ndarray, spec: FeatureSpec, *, dtype: type = np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame mel power [t, n_mels] and max-normalised chroma [t, n_chroma] from a complex STFT [t, bins].

    Products run in `dtype` (float32 by default: the filter banks themselves are float32 in librosa).
    """
    banks = filter_banks(spec, dtype)
    power = abs_power(stft, 2.0, out=WORKSPACE.get("power", stft.shape, dtype))
    mel = banks.mel.apply(power)
    if not spec.n_chroma:
        return mel, np.zeros((mel.shape[0], 0), mel.dtype)
    mag = power if spec.chroma_power == 2.0 else np.sqrt(power, out=WORKSPACE.get("mag", power.shape, dtype))
    raw = mag @ banks.chroma_t
    return mel, filters.normalize(raw, np.inf, axis=-1)


def vector_from_frames(mel: np.ndarray, chroma: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """The clip vector [spec.dim] from per-frame mel power [t, n_mels] and chroma [t, n_chroma].

    The top_db clip of the dB mel spectrogram is taken over these t frames, as librosa does over a clip.
    """
    if mel.shape[0] == 0:
        raise ConfigError("no frames to summarise (the clip is shorter than one frame)")
    mel_db = power_to_db(mel, top_db=spec.top_db)
    mfcc_mean = mel_db.mean(axis=0, dtype=np.float64) @ filter_banks(spec, mel.dtype.type).dct_t
    mel_mean = mel_db.mean(axis=0) if spec.mel_db else mel.mean(axis=0)
    return np.concatenate([mfcc_mean, mel_mean, chroma.mean(axis=0)]).astype(np.float32)


def feature_frames(
    y: np.ndarray, *, sr: int, spec: FeatureSpec = FeatureSpec()
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame mel power and chroma of a mono clip `y [n]` sampled at `sr` (must equal spec.sample_rate)."""
    check_audio(y)
    if y.ndim != 1:
        raise ConfigError(f"expected mono audio of shape [n], got shape {y.shape}: downmix first")
    if int(sr) != spec.sample_rate:
        raise ConfigError(
            f"audio is at {sr} Hz but the FeatureSpec expects {spec.sample_rate} Hz: "
            "resample with edge_ser.audio.resample (or load with edge_ser.audio.load(path, sr=...))"
        )
    X = stft_frames(y, **spec.stft_kwargs(), scratch=True)
    return frame_features(X, spec, dtype=work_dtype(y))


def feature_vector(y: np.ndarray, *, sr: int, spec: FeatureSpec = FeatureSpec()) -> np.ndarray:
    """The mean [MFCC, mel, chroma] vector [spec.dim] (180-d by default) of a mono clip `y [n]` at `sr` Hz,
    conditioned first as the spec says (DC, level: `edge_ser.features.condition`)."""
    check_audio(y)
    mel, chroma = feature_frames(condition(np.asarray(y), spec), sr=sr, spec=spec)
    return vector_from_frames(mel, chroma, spec)


def conditioned_log_mel_db(y: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """The log-Mel spectrogram in dB [shape=(n_mels, frames)] of a mono clip `y [n]` at spec.sample_rate,
    conditioned first as the spec says (DC, level), clipped spec.top_db below its maximum: what the sequence
    (`edge_ser.inputs.sequence.log_mel_db`) and patch (`edge_ser.inputs.patches.lms_frames`) kinds are made of.
    The callers check the rate and shape."""
    S = melspectrogram(
        y=condition(y, spec),
        sr=spec.sample_rate,
        **spec.stft_kwargs(),
        n_mels=spec.n_mels,
        fmin=spec.fmin,
        fmax=spec.fmax,
        htk=spec.htk,
        norm=spec.mel_norm,
    )
    return power_to_db(S, top_db=spec.top_db)
