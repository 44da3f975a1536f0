"""Deterministic test signals shared by the feature tests (no data set needed)."""

from __future__ import annotations

import numpy as np


def voiced(sr: int, n: int, seed: int = 0) -> np.ndarray:
    """A speech-like signal: harmonics of a gliding pitch under a syllable envelope, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    f0 = 140 + 40 * np.sin(2 * np.pi * 1.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    harmonics = sum((0.7**k) * np.sin(k * phase) for k in range(1, 12) if k * 180 < sr / 2)
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.3 * env * harmonics + 0.01 * rng.standard_normal(n)).astype(np.float64)


def clip(kind: str, sr: int, seed: int = 0) -> np.ndarray:
    """Named test clips: 'short' (< n_fft), 'odd' (odd length), 'silence', 'noise' (full scale), 'voiced'."""
    rng = np.random.default_rng(seed)
    if kind == "short":
        return voiced(sr, 1001, seed)
    if kind == "odd":
        return voiced(sr, int(0.7 * sr) | 1, seed)
    if kind == "silence":
        return np.zeros(int(0.5 * sr))
    if kind == "noise":
        return rng.uniform(-1.0, 1.0, int(0.5 * sr))
    if kind == "voiced":
        return voiced(sr, sr, seed)
    raise ValueError(kind)


CLIPS = ("short", "odd", "silence", "noise", "voiced")
RATES = (8000, 16000, 22050, 44100, 48000)


def hum(seconds: float, sr: int = 16000, f0: float = 100.0, dbfs: float = -40.0) -> np.ndarray:
    """A mains-like hum: `f0` and 4 harmonics (amplitude 1/k) at `dbfs` RMS, float32: voiced and steady."""
    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    return (y * (10 ** (dbfs / 20) / np.sqrt(np.mean(y**2)))).astype(np.float32)
