"""Channels to mono: the one down-mix of every audio path (`edge_ser.audio.load`, the block stream of long files and
`run --audio-file`, pushed chunks and audio given in memory: `edge_ser.live.session.mono_samples`).

Mono is the channel mean, unless the channels cancel: anti-phase stereo (one channel's polarity inverted, a wiring
or phase fault: `np.stack([y, -y], 1)`) averages to zeros, and was reported as digital silence ("the input is
muted"). When the channels are loud but their mean is more than CANCEL_DB below the loudest of them, the loudest
channel alone is taken instead, with one InputWarning naming the file (or "the input"). numpy only.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from edge_ser.errors import InputWarning

CANCEL_DB = 30.0
"""How far (dB) below its loudest channel the channel mean must be for the channels to be taken as cancelling."""
LOUD_DBFS = -70.0
"""A block whose loudest channel is below this level (dBFS, RMS) is too quiet to tell cancelling from silence."""


def _power(y: np.ndarray) -> np.ndarray:
    """Mean square of each column of [frames, channels] (of [frames]: a scalar), in float64, without a copy."""
    return np.einsum("i...,i...->...", y, y, dtype=np.float64) / max(1, y.shape[0])


class Downmix:
    """[frames, channels] -> [frames], called block after block for one file or stream (`where` names it): the
    channel mean in the samples' float type, or the loudest channel when the channels cancel (warned once)."""

    def __init__(self, where: str | os.PathLike) -> None:
        self.where = os.fspath(where)
        self.warned = False
        self.message: str | None = None
        """The warning's text once given (the live runner shows it in a result's notes too)."""

    def __call__(self, y: np.ndarray) -> np.ndarray:
        if y.ndim == 1:
            return y
        if y.shape[1] == 1:
            return np.ascontiguousarray(y[:, 0])
        mean = y.mean(axis=1, dtype=y.dtype)
        power = _power(y)
        loudest = int(np.argmax(power))
        top = float(power[loudest])
        if top > 10 ** (LOUD_DBFS / 10) and float(_power(mean)) < top * 10 ** (-CANCEL_DB / 10):
            if not self.warned:
                self.warned = True
                rest = float(_power(mean))
                below = (  # exact anti-phase leaves nothing: "282 dB below" said nothing useful
                    "silent"
                    if rest < top * 1e-12
                    else f"{10 * np.log10(top / rest):.0f} dB below the loudest channel"
                )
                self.message = (
                    f"{self.where}: the {y.shape[1]} channels cancel when averaged (their mean is {below}: one "
                    f"channel's polarity is inverted, a wiring or phase fault); channel {loudest} alone is used instead"
                )
                warnings.warn(self.message, InputWarning, stacklevel=3)
            return np.ascontiguousarray(y[:, loudest])
        return mean


def to_mono(y: np.ndarray, where: str | os.PathLike) -> np.ndarray:
    """[frames] or [frames, channels] -> [frames], as `Downmix(where)` (a whole clip: the warning once)."""
    return Downmix(where)(y)


__all__ = ["CANCEL_DB", "Downmix", "to_mono"]
