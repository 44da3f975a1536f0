"""The feature cache: keyed by file content and FeatureSpec; a second run does no audio work."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _signals import voiced

import converters.featurize as featurize
from converters.featurize import FeatureCache, extract
from edge_ser.audio import write_wav
from edge_ser.features import FeatureSpec, file_vector


@pytest.fixture()
def wavs(tmp_path: Path) -> list[Path]:
    out = []
    for i in range(4):
        out.append(
            write_wav(tmp_path / "audio" / f"clip{i}.wav", voiced(16000, 12000 + 1000 * i, seed=i), 16000)
        )
    return out


def test_second_run_does_no_audio_work(wavs, tmp_path, monkeypatch) -> None:
    cache = FeatureCache(tmp_path / "cache")
    spec = FeatureSpec(sample_rate=16000)
    X1, s1 = extract(wavs, spec, cache=cache, progress=False)
    assert (s1.hits, s1.misses) == (0, 4)
    np.testing.assert_array_equal(X1[2], file_vector(wavs[2], spec))

    def no_audio(*a, **k):
        raise AssertionError("audio was decoded on a cached run")

    monkeypatch.setattr(featurize, "file_vector", no_audio)
    X2, s2 = extract(wavs, spec, cache=cache, progress=False)
    assert (s2.hits, s2.misses) == (4, 0)
    np.testing.assert_array_equal(X1, X2)


def test_key_is_content_and_spec(wavs, tmp_path) -> None:
    cache = FeatureCache(tmp_path / "cache")
    spec = FeatureSpec(sample_rate=16000)
    extract(wavs, spec, cache=cache, progress=False)
    moved = tmp_path / "moved.wav"
    shutil.copy(wavs[0], moved)  # same bytes, other name: hit
    assert extract([moved], spec, cache=cache, progress=False)[1].hits == 1
    write_wav(wavs[1], voiced(16000, 9000, seed=99), 16000)  # edited file: miss
    assert extract([wavs[1]], spec, cache=cache, progress=False)[1].misses == 1
    other = FeatureSpec(sample_rate=16000, n_mfcc=20)  # other spec: miss
    X, st = extract(wavs, other, cache=cache, progress=False)
    assert st.misses == 4 and X.shape == (4, other.dim)


def test_damaged_entry_is_recomputed(wavs, tmp_path) -> None:
    cache = FeatureCache(tmp_path / "cache")
    spec = FeatureSpec(sample_rate=16000)
    X1, _ = extract(wavs[:1], spec, cache=cache, progress=False)
    (entry,) = list((tmp_path / "cache").rglob("*.npy"))
    entry.write_bytes(b"\x93NUMPY garbage")
    X2, st = extract(wavs[:1], spec, cache=cache, progress=False)
    assert st.misses == 1
    np.testing.assert_array_equal(X1, X2)
    assert not list((tmp_path / "cache").rglob("*.tmp"))
