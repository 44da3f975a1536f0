"""benchmarks/face_detect.py: the rule that chooses face_fer's Haar search, and the bundle rewrite that ships it."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("cv2")

from benchmarks.face_detect import choose, set_face_crop  # noqa: E402
from edge_ser.bundle import load_bundle  # noqa: E402
from edge_ser.vision.face import FaceCropSpec  # noqa: E402

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


def _scores(**rows: tuple[float, float]) -> dict[FaceCropSpec, dict]:
    """Candidate searches keyed by scale factor name ("s110" = 1.10) -> (agreement all, agreement found)."""
    return {
        FaceCropSpec(scale_factor=int(k[1:]) / 100): {"agreement": a, "agreement_found": f}
        for k, (a, f) in rows.items()
    }


def test_choose_takes_the_best_all_image_agreement() -> None:
    train = _scores(s110=(0.78, 0.873), s105=(0.80, 0.872), s103=(0.79, 0.870))
    assert choose(FaceCropSpec(scale_factor=1.1), train).scale_factor == 1.05


def test_choose_breaks_a_tie_by_the_cheaper_search() -> None:
    """Within 0.3 point of the best, the coarser pyramid (fewer windows) wins."""
    train = _scores(s110=(0.78, 0.873), s105=(0.799, 0.872), s103=(0.801, 0.860))
    assert choose(FaceCropSpec(scale_factor=1.1), train).scale_factor == 1.05


def test_choose_refuses_a_search_that_frames_found_faces_worse() -> None:
    """More than 1.0 point less agreement where the face is found is out, however many faces it finds."""
    train = _scores(s110=(0.78, 0.873), s105=(0.79, 0.870), s103=(0.85, 0.85))
    assert choose(FaceCropSpec(scale_factor=1.1), train).scale_factor == 1.05


def test_set_face_crop_rewrites_only_the_manifest(tmp_path: Path) -> None:
    """The shipped face bundle gets the new search and a record of the old one; every other file is kept byte
    for byte, the manifest is re-signed (the bundle loads), and the kind crops with the new search."""
    dst = tmp_path / "face_fer"
    shutil.copytree(BUNDLES / "face_fer", dst)
    before = {p.name: p.read_bytes() for p in dst.iterdir() if not p.name.startswith("manifest")}
    old = load_bundle(dst).input_kind.face_crop
    new = replace(old, scale_factor=1.08, min_neighbors=4)
    figures = {"agreement": 0.8, "agreement_found": 0.87, "found_rate": 0.86}
    set_face_crop(dst, new, figures, "python benchmarks/face_detect.py --write")
    assert {p.name: p.read_bytes() for p in dst.iterdir() if not p.name.startswith("manifest")} == before
    b = load_bundle(dst)
    assert b.input_kind.face_crop == new
    record = json.loads((dst / "manifest.json").read_text())["accuracy"]["face_crop_choice"]
    assert record["before"] == old.to_dict()
    assert record["publictest_agreement"] == 0.8
    assert list(tmp_path.iterdir()) == [dst]  # no temp file left behind
