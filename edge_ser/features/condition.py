"""Clip conditioning before any feature: DC offset removed and level set, so the microphone's gain and offset
do not reach the model (issue 17). Part of the FeatureSpec, so training and the device condition alike.

`remove_dc` subtracts the clip's (or live window's) mean; `level_dbfs` then scales it so that its RMS is that
many dB below full scale. The gain is bounded to +-MAX_GAIN_DB, and a clip quieter than SILENCE_DBFS is left as
it is (amplifying digital silence or dither by 60 dB would only make noise look like speech).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edge_ser.features.spec import FeatureSpec

MAX_GAIN_DB = 40.0
SILENCE_DBFS = -90.0


def gain_for(rms: float, spec: FeatureSpec) -> float:
    """The gain that brings a clip of this RMS (about its mean, when DC is removed) to `spec.level_dbfs`: 1.0
    when the spec sets no level or the clip is silence, else bounded to +-MAX_GAIN_DB."""
    if spec.level_dbfs is None:
        return 1.0
    level = 20.0 * np.log10(max(rms, 1e-12))
    if level < SILENCE_DBFS:
        return 1.0
    return float(10.0 ** (np.clip(spec.level_dbfs - level, -MAX_GAIN_DB, MAX_GAIN_DB) / 20.0))


class Conditioned(NamedTuple):
    """A conditioned clip and the affine map that made it: `x == (y - offset) * gain`, computed in y's float type."""

    x: np.ndarray
    offset: float
    """The DC offset removed (0.0 when the spec keeps it), as the float type subtracted it."""
    gain: float
    """The gain applied (1.0 when the spec sets no level or the clip is silence), as the float type applied it."""


def conditioned(y: np.ndarray, spec: FeatureSpec) -> Conditioned:
    """`condition(y, spec)` with the offset and gain it used: a caller that keeps work done on the raw samples
    (pYIN's lag products of a sliding window's shared frames) maps it to the conditioned clip with them."""
    if not spec.remove_dc and spec.level_dbfs is None:
        return Conditioned(y, 0.0, 1.0)
    dtype = y.dtype if y.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    out = np.asarray(y, dtype=dtype)
    offset = dtype.type(0.0)
    if spec.remove_dc and out.size:
        offset = dtype.type(np.mean(out, dtype=np.float64))
        out = out - offset
    gain = dtype.type(1.0)
    if spec.level_dbfs is not None:
        rms = float(np.sqrt(np.mean(np.square(out, dtype=np.float64)))) if out.size else 0.0
        g = gain_for(rms, spec)
        if g != 1.0:
            gain = dtype.type(g)
            out = out * gain
    return Conditioned(out, float(offset), float(gain))


def condition(y: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """`y` with its DC removed (`spec.remove_dc`) and scaled to `spec.level_dbfs` RMS; `y` itself when the
    spec asks for neither (no copy)."""
    return conditioned(y, spec).x


__all__ = ["MAX_GAIN_DB", "SILENCE_DBFS", "Conditioned", "condition", "conditioned", "gain_for"]
