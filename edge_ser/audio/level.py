"""The level of a stretch of audio, and the level below which the live runtime and `predict` call it silence."""

from __future__ import annotations

import math

import numpy as np

SILENCE_DB = -45.0
"""RMS level (dBFS) below which a window or a clip holds no speech: the live voice gate's default (`--vad-db`),
and the level under which `predict` marks a clip `silent` and enrolment leaves a window out."""


def level_db(x: np.ndarray) -> float:
    """RMS level in dBFS (-inf for digital silence)."""
    if x.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return 20 * math.log10(rms) if rms > 0 else -math.inf


GATE_SECONDS = 0.5
"""The stretch of audio the live voice gate judges: the live pipeline's default hop (`PipelineConfig.hop`)."""


def loudest_db(x: np.ndarray, sr: int, seconds: float = GATE_SECONDS) -> float:
    """The level (dBFS) of the loudest `seconds` of `x` after removing its DC offset (windows hopping by half
    that, the last ending at the clip's end; the whole of a shorter `x`): what the live voice gate would see at
    the clip's loudest. A clip's plain RMS counts its pauses, so a quietly recorded utterance with a second of
    silence around it (a third of RAVDESS's clips) fell below the gate although its speech reaches it."""
    x = np.asarray(x, dtype=np.float64)
    # a DC offset is no sound (the features remove it): a constant clip is digital silence
    x = x - x.mean() if x.size else x
    n = max(1, int(round(seconds * sr)))
    if x.size <= n:
        return level_db(x)
    starts = np.unique(np.append(np.arange(0, x.size - n + 1, max(1, n // 2)), x.size - n))
    power = np.concatenate([[0.0], np.cumsum(np.square(x))])
    mean = float(np.max((power[starts + n] - power[starts]) / n))
    return 20 * math.log10(math.sqrt(mean)) if mean > 0 else -math.inf


CLIPPED_LEVEL = 0.95
"""|sample| at or above this is taken as at full scale (`clipped_share`): a clipped stretch's flat top, a little
rounded by resampling to the model's rate."""
BEYOND_FULL_SCALE = 1.5
"""A clip peaking above this is float audio beyond full scale (used as it is, with a warning), not clipped PCM whose
flat tops resampling rounded over 1 (a hard-clipped 44.1 or 48 kHz file peaks at ~1.2 at the model's rate)."""


def clipped_share(y: np.ndarray) -> float:
    """The share of the samples of `y` (float, full scale 1) at or above CLIPPED_LEVEL of full scale in magnitude.
    Audio beyond BEYOND_FULL_SCALE is measured against its own peak: a clean float file with peaks of 8.0 has many
    samples between 0.95 and 1 that are not flat tops (a review found it marked "clipped: 9 %")."""
    y = np.abs(np.asarray(y))
    if not y.size:
        return 0.0
    peak = float(np.max(y[np.isfinite(y)], initial=0.0))
    full = peak if peak > BEYOND_FULL_SCALE else 1.0
    return float(np.count_nonzero(y >= CLIPPED_LEVEL * full)) / y.size


__all__ = [
    "BEYOND_FULL_SCALE", "CLIPPED_LEVEL", "GATE_SECONDS", "SILENCE_DB", "clipped_share", "level_db", "loudest_db",
]  # fmt: skip
