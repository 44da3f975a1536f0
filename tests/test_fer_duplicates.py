"""benchmarks/fer_duplicates.py: the copies of Training images among PublicTest are found by their pixels."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def test_a_picture_is_the_same_in_any_file_and_scores_are_per_class(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    import fer_duplicates as fd

    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (48, 48), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), face, [cv2.IMWRITE_PNG_COMPRESSION, 0])
    cv2.imwrite(str(tmp_path / "b.png"), face, [cv2.IMWRITE_PNG_COMPRESSION, 9])  # other bytes, same pixels
    cv2.imwrite(str(tmp_path / "c.png"), 255 - face)
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "b.png").read_bytes()
    digest = fd.pixel_digest
    assert digest(tmp_path / "a.png") == digest(tmp_path / "b.png") != digest(tmp_path / "c.png")
    true = np.array(["happy", "happy", "happy", "sad"])
    pred = np.array(["happy", "happy", "sad", "happy"])
    s = fd.scores(true, pred, ["neutral", "happy", "sad"])  # neutral absent: not in the UAR
    assert s == {"n": 4, "accuracy": 0.5, "uar": pytest.approx((2 / 3 + 0) / 2)}
