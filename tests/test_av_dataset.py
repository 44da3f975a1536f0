"""Synthetic audio-visual arrays built through the device's own pre-processing (Haar crop, MFCC segments)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2", reason="the face crop needs opencv")

from converters.data.av_dataset import synthetic_av_arrays  # noqa: E402
from edge_ser.av_input import AVInputSpec  # noqa: E402


def test_arrays_shapes_determinism_and_faces() -> None:
    spec = AVInputSpec()
    a = synthetic_av_arrays(3, seed=0, spec=spec)
    assert a.faces.shape == (21, 6, 64, 64) and a.faces.dtype == np.float32
    assert a.audio.shape == (21, 6, 40) and a.audio.dtype == np.float32
    assert 0.0 <= a.faces.min() and a.faces.max() <= 1.0
    assert len(a.classes) == 7 and np.bincount(a.y).tolist() == [3] * 7
    assert a.faces_found >= 0.9  # the drawn faces pass the real Haar cascade
    b = synthetic_av_arrays(3, seed=0, spec=spec)
    np.testing.assert_array_equal(a.faces, b.faces)
    np.testing.assert_array_equal(a.audio, b.audio)
    c = synthetic_av_arrays(3, seed=1, spec=spec)
    assert not np.array_equal(a.audio, c.audio)
