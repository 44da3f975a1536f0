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


@pytest.mark.parametrize(
    "argv, name",
    [([], "fer_duplicates"), (["--engine", "numpy"], "fer_duplicates_numpy"), (["--bundle", "TRIAL"], None)],
)
def test_a_trial_run_gets_its_own_results(monkeypatch, tmp_path: Path, argv, name) -> None:
    """fer_duplicates.py wrote benchmarks/results/fer_duplicates.{md,json} whatever the --bundle or --engine: a
    trial replaced the shipped model's record. Now it is fer_duplicates_<bundle folder>[_<engine>]."""
    import shutil

    cv2 = pytest.importorskip("cv2")
    import fer_duplicates as fd

    import converters.data.loaders as loaders

    root = tmp_path / "fer2013"
    for split in ("train", "validation"):
        (root / split / "happy").mkdir(parents=True)
        cv2.imwrite(str(root / split / "happy" / "0.png"), np.full((48, 48), 128, np.uint8))
    # one PublicTest image that is not a copy, so neither row is empty
    cv2.imwrite(str(root / "validation" / "happy" / "1.png"), np.full((48, 48), 64, np.uint8))
    trial = tmp_path / "face_fer_trial"
    shutil.copytree(REPO / "bundles" / "face_fer", trial)
    monkeypatch.setattr(loaders, "find_dataset", lambda name: root)
    got: list[str] = []
    monkeypatch.setattr(fd, "write_results", lambda name, payload, md: got.append(name))
    argv = [str(trial) if a == "TRIAL" else a for a in argv]
    monkeypatch.setattr(sys, "argv", ["benchmarks/fer_duplicates.py", *argv])
    fd.main()
    assert got == [name or "fer_duplicates_face_fer_trial"]
