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


__all__ = ["SILENCE_DB", "level_db"]
