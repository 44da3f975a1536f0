"""The paired RAVDESS + FER-2013 audio-visual set: deterministic, by class, disjoint in actors and images."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from converters.data import group_kfold, load_fer2013, load_ravdess
from converters.data.paired_av import PairedAVSpec, jittered_frames, pair_frames, pair_ravdess_fer
from edge_ser.errors import ConfigError


@pytest.fixture(scope="module")
def real(datasets: Path):
    rav, fer = datasets / "ravdess_speech", datasets / "fer2013"
    if not (rav.is_dir() and fer.is_dir()):
        pytest.skip("RAVDESS speech or FER-2013 not found in the data sets folder")
    speech = load_ravdess(rav)
    split = group_kfold([r.speaker for r in speech], k=4, seed=0)[0]
    return speech, split, load_fer2013(fer, "train"), load_fer2013(fer, "validation")


@pytest.mark.data
def test_pairs_are_by_class_disjoint_and_deterministic(real) -> None:
    speech, split, fer_train, fer_val = real
    pairs = pair_ravdess_fer(speech, split, fer_train, fer_val)
    assert pairs == pair_ravdess_fer(speech, split, fer_train, fer_val)  # deterministic
    assert len(pairs) == 720 - 96  # the 96 'calm' clips are dropped by default
    fer_label = {r.source: r.label for r in fer_train + fer_val}
    assert all(fer_label[p.image] == p.label for p in pairs)  # a face of the clip's own class
    by_part = {part: [p for p in pairs if p.part == part] for part in ("train", "val", "test")}
    speakers = {part: {p.speaker for p in ps} for part, ps in by_part.items()}
    images = {part: {p.image for p in ps} for part, ps in by_part.items()}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not speakers[a] & speakers[b], f"an actor is in {a} and {b}"
        assert not images[a] & images[b], f"a face image is in {a} and {b}"
    assert all("validation" in str(p.image) for p in by_part["test"])
    merged = pair_ravdess_fer(speech, split, fer_train, fer_val, PairedAVSpec(calm="neutral"))
    assert len(merged) == 720 and Counter(p.label for p in merged)["neutral"] == 48 + 96


@pytest.mark.data
def test_publictest_validation_faces_are_a_disjoint_half(real) -> None:
    speech, split, fer_train, fer_val = real
    pairs = pair_ravdess_fer(speech, split, fer_train, fer_val, PairedAVSpec(val_faces="publictest"))
    images = {part: {p.image for p in pairs if p.part == part} for part in ("train", "val", "test")}
    public = {r.source for r in fer_val}
    assert images["val"] <= public and images["test"] <= public  # faces a FER-train model never saw
    assert not images["train"] & public
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not images[a] & images[b], f"a face image is in {a} and {b}"
    default = pair_ravdess_fer(speech, split, fer_train, fer_val)
    assert [p.image for p in pairs if p.part == "train"] == [p.image for p in default if p.part == "train"]


@pytest.mark.data
def test_frames_are_jittered_views_of_the_face(real) -> None:
    speech, split, fer_train, fer_val = real
    pair = pair_ravdess_fer(speech, split, fer_train, fer_val)[0]
    frames = pair_frames(pair)
    assert frames.shape == (6, 48, 48) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, pair_frames(pair))
    diffs = [np.abs(frames[i].astype(int) - frames[0]).mean() for i in range(1, 6)]
    assert all(0 < d < 40 for d in diffs)  # moved a little, still the same face


def test_jitter_validates_and_is_seeded() -> None:
    img = (np.arange(48 * 48).reshape(48, 48) % 256).astype(np.uint8)
    a = jittered_frames(img, 4, np.random.default_rng(1), PairedAVSpec())
    b = jittered_frames(img, 4, np.random.default_rng(1), PairedAVSpec())
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError):
        jittered_frames(img.astype(np.float32), 2, np.random.default_rng(0), PairedAVSpec())
    with pytest.raises(ConfigError):
        PairedAVSpec(calm="keep")
    with pytest.raises(ConfigError):
        PairedAVSpec(val_faces="privatetest")
