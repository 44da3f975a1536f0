"""Synthetic audio-visual arrays built through the device's own pre-processing (Haar crop, MFCC segments)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2", reason="the face crop needs opencv")

from converters.data.av_dataset import synthetic_av_arrays  # noqa: E402
from edge_ser.inputs.av import AVInputSpec  # noqa: E402


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


# --------------------------------------------------------------- real signals: RAVDESS + FER-2013, EMODB
from converters.data.av_dataset import (  # noqa: E402
    ClipCache,
    SceneSpec,
    audio_arrays,
    emodb_audio_arrays,
    paired_av_arrays,
    scene_frame,
)
from edge_ser.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def few_pairs(datasets):
    from converters.data import group_kfold, load_fer2013, load_ravdess
    from converters.data.paired_av import pair_ravdess_fer

    rav, fer = datasets / "ravdess_speech", datasets / "fer2013"
    if not (rav.is_dir() and fer.is_dir()):
        pytest.skip("RAVDESS speech or FER-2013 not found in the data sets folder")
    speech = load_ravdess(rav)
    split = group_kfold([r.speaker for r in speech], k=6, seed=0)[0]
    pairs = pair_ravdess_fer(speech, split, load_fer2013(fer, "train"), load_fer2013(fer, "validation"))
    by_part = {p: [q for q in pairs if q.part == p] for p in ("train", "val", "test")}
    return by_part["train"][::60] + by_part["test"][::40]  # 7 + 3 clips, several classes


def test_scene_frame_places_the_face_and_validates() -> None:
    face = np.full((48, 48), 200, np.uint8)
    face[0, :] = face[-1, :] = face[:, 0] = face[:, -1] = 50
    f = scene_frame(face, SceneSpec(width=320, height=240, face=144))
    assert f.shape == (240, 320) and f.dtype == np.uint8
    assert f[0, 0] == 50  # background = mean of the face's border
    assert f[120, 160] == 200  # the face at the centre
    with pytest.raises(ConfigError):
        SceneSpec(width=100, height=100, face=144)
    with pytest.raises(ConfigError):
        scene_frame(face.astype(np.float32), SceneSpec())


@pytest.mark.data
def test_paired_arrays_real_pairs(few_pairs) -> None:
    spec = AVInputSpec()
    classes = ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise")
    a = paired_av_arrays(few_pairs, spec, classes=classes)
    n = len(few_pairs)
    assert a.faces.shape == (n, 6, 64, 64) and a.faces.dtype == np.float32
    assert a.audio.shape == (n, 6, 40) and a.audio.dtype == np.float32
    assert 0.0 <= a.faces.min() and a.faces.max() <= 1.0 and np.isfinite(a.audio).all()
    assert a.classes == classes and a.y.dtype == np.int64
    assert [classes[i] for i in a.y] == [p.label for p in few_pairs]
    assert a.speakers == [p.speaker for p in few_pairs]
    assert a.found.shape == (n, 6) and a.found.dtype == bool
    assert a.faces_found == pytest.approx(a.found.mean())
    assert a.faces_found >= 0.4  # at video scale the Haar cascade fires on most FER faces (~79% overall)
    # deterministic, and a cache returns exactly the same arrays without recomputing
    cache = ClipCache()
    b = paired_av_arrays(few_pairs, spec, classes=classes, cache=cache)
    c = paired_av_arrays(few_pairs, spec, classes=classes, cache=cache)
    assert cache.misses == n and cache.hits == n
    for x in (b, c):
        np.testing.assert_array_equal(a.faces, x.faces)
        np.testing.assert_array_equal(a.audio, x.audio)
        np.testing.assert_array_equal(a.found, x.found)
    # raw 48x48 frames run the same crop path (the cascade rarely fires at that size)
    raw = paired_av_arrays(few_pairs[:2], spec, classes=classes, scene=None)
    assert raw.faces.shape == (2, 6, 64, 64) and 0.0 <= raw.faces_found <= 1.0
    np.testing.assert_array_equal(raw.audio, a.audio[:2])
    with pytest.raises(ConfigError):
        paired_av_arrays(few_pairs, spec, classes=("happy",))


@pytest.mark.data
def test_emodb_audio_arrays(emodb_dir) -> None:
    from converters.data import load_emodb
    from edge_ser.audio import load
    from edge_ser.inputs.av import audio_segments

    spec = AVInputSpec()
    records = load_emodb(emodb_dir)[::107][:5]
    a = audio_arrays(records, spec)
    assert a.audio.shape == (5, 6, 40) and a.audio.dtype == np.float32
    assert a.speakers == [r.speaker for r in records]
    assert [a.classes[i] for i in a.y] == [r.label for r in records]
    y, sr = load(records[0].source, sr=16000)  # edge_ser's reader and resampler, 22.05 -> 16 kHz
    np.testing.assert_array_equal(a.audio[0], audio_segments(y, sr, spec.feature_spec, 6))
    full = emodb_audio_arrays(emodb_dir, spec)
    assert full.audio.shape == (535, 6, 40) and len(full.classes) == 7 and len(set(full.speakers)) == 10
