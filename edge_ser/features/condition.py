"""Clip conditioning before any feature: DC offset removed and level set, so the microphone's gain and offset
do not reach the model (issue 17). Part of the FeatureSpec, so training and the device condition alike.

`remove_dc` subtracts the clip's (or live window's) mean; `level_dbfs` then scales it so that its RMS is that
many dB below full scale. The gain is bounded to +-MAX_GAIN_DB, and a clip quieter than SILENCE_DBFS is left as
it is (amplifying digital silence or dither by 60 dB would only make noise look like speech).
"""

from __future__ import annotations

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


def condition(y: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """`y` with its DC removed (`spec.remove_dc`) and scaled to `spec.level_dbfs` RMS; `y` itself when the
    spec asks for neither (no copy)."""
    if not spec.remove_dc and spec.level_dbfs is None:
        return y
    dtype = y.dtype if y.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    out = np.asarray(y, dtype=dtype)
    if spec.remove_dc and out.size:
        out = out - dtype.type(np.mean(out, dtype=np.float64))
    if spec.level_dbfs is not None:
        rms = float(np.sqrt(np.mean(np.square(out, dtype=np.float64)))) if out.size else 0.0
        g = gain_for(rms, spec)
        if g != 1.0:
            out = out * dtype.type(g)
    return out


__all__ = ["MAX_GAIN_DB", "SILENCE_DBFS", "condition", "gain_for"]
