"""`converters.face.FaceAugment`, the face model's training augmentation: zoom direction and law, determinism.

A bright disc on a dark square makes the zoom measurable: its area grows with the square of the zoom.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from converters.face import FaceAugment, augment_faces

STILL = {"rotation": 0.0, "shift": 0.0, "brightness": 0.0, "contrast": (1.0, 1.0)}
"""Every random change but the zoom (and the flip, which a centred disc does not see) switched off."""


def disc(batch: int, radius: float = 8.0, side: int = 48) -> torch.Tensor:
    yy, xx = np.mgrid[:side, :side] - (side - 1) / 2
    img = (np.hypot(yy, xx) <= radius).astype(np.float32)
    return torch.from_numpy(np.broadcast_to(img, (batch, 1, side, side)).copy())


def zooms(aug: FaceAugment, batch: int, seed: int = 0) -> np.ndarray:
    """The zoom of each augmented disc, from its area against the original's."""
    x = disc(batch)
    out = aug(x, torch.Generator().manual_seed(seed))
    return np.sqrt(out.sum((1, 2, 3)).numpy() / x[0].sum().item())


def test_zoom_above_one_enlarges_the_face_and_below_one_shrinks_it():
    for z in (0.5, 0.75, 1.3, 2.0):
        got = zooms(FaceAugment(scale=(z, z), **STILL), 4)
        assert got == pytest.approx(np.full(4, z), rel=0.06)


def test_log_uniform_zoom_is_as_likely_to_shrink_as_to_enlarge():
    lo, hi = 0.5, 2.0
    log = zooms(FaceAugment(scale=(lo, hi), log_scale=True, **STILL), 2000)
    lin = zooms(FaceAugment(scale=(lo, hi), **STILL), 2000)
    assert lo * 0.94 <= log.min() and log.max() <= hi * 1.06
    # log-uniform on [1/2, 2]: median zoom 1, half the faces smaller; uniform: median 1.25, a third smaller
    assert np.median(log) == pytest.approx(1.0, abs=0.06)
    assert np.mean(log < 0.97) == pytest.approx(0.5, abs=0.05)
    assert np.median(lin) == pytest.approx(1.25, abs=0.06)
    assert np.mean(lin < 0.97) == pytest.approx(0.31, abs=0.05)


def test_same_seed_same_batch_and_values_stay_in_range():
    x = torch.rand(8, 1, 48, 48, generator=torch.Generator().manual_seed(1))
    wide = FaceAugment(scale=(0.75, 1.3), log_scale=True)
    for aug in (augment_faces, wide):
        a, b = aug(x, torch.Generator().manual_seed(5)), aug(x, torch.Generator().manual_seed(5))
        assert torch.equal(a, b) and a.shape == x.shape
        assert 0.0 <= a.min() and a.max() <= 1.0
        assert not torch.equal(a, aug(x, torch.Generator().manual_seed(6)))


def test_the_recipe_is_the_default_instance():
    assert augment_faces == FaceAugment()
    assert augment_faces.scale == (0.9, 1.1) and not augment_faces.log_scale


@pytest.mark.parametrize("bad", [{"scale": (0.0, 1.0)}, {"scale": (1.2, 0.9)}, {"contrast": (1.2, 0.8)}])
def test_bad_ranges_are_refused(bad):
    with pytest.raises(ValueError, match="FaceAugment"):
        FaceAugment(**bad)
