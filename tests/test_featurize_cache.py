"""The feature cache: keyed by file content and FeatureSpec; a second run does no audio work."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from _signals import voiced

import converters.featurize as featurize
from converters.featurize import FeatureCache, extract
from converters.recipe import DEFAULT_SPEC
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


def _clips(folder: Path) -> dict[str, Path]:
    """Speech-like clips, one of digital silence, one shorter than a frame at the host recipe's 16 kHz (1000
    samples at 22.05 kHz: 726 once resampled), and the shortest at 22.05 kHz that makes one frame (2048)."""
    return {
        "good0": write_wav(folder / "good0.wav", voiced(16000, 12000, seed=0), 16000),
        "silent": write_wav(folder / "silent.wav", np.zeros(16000, np.float32), 16000),
        "good1": write_wav(folder / "good1.wav", voiced(16000, 13000, seed=1), 16000),
        "short": write_wav(folder / "short.wav", voiced(22050, 1000, seed=2), 22050),
        "frame": write_wav(folder / "frame.wav", voiced(22050, 2822, seed=3), 22050),
    }


def test_silent_and_short_clips_are_skipped_naming_each(tmp_path) -> None:
    """Digital silence and clips shorter than one analysis frame were learnt from (the short one with a bare
    stft warning that named no file), though predict marks the first 'no speech' and refuses the second."""
    from edge_ser.audio import load
    from edge_ser.errors import AudioFormatError, InputWarning

    clips = _clips(tmp_path / "audio")
    assert load(clips["short"], sr=DEFAULT_SPEC.sample_rate)[0].size == 726
    assert load(clips["frame"], sr=DEFAULT_SPEC.sample_rate)[0].size == DEFAULT_SPEC.n_fft  # kept: one frame
    paths = list(clips.values())
    cache = FeatureCache(tmp_path / "cache")
    for run in range(2):  # computed, then from the cache: refused alike
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            X, stats = extract(paths, DEFAULT_SPEC, cache=cache, progress=False, strict=False)
        said = [str(w.message) for w in caught]
        assert all(issubclass(w.category, InputWarning) for w in caught), said  # no bare n_fft warning
        assert len(said) == 2
        assert f"skipped {clips['silent']}: digital silence" in said[0]
        assert (
            f"skipped {clips['short']}: 45.4 ms of audio (726 samples at the model's 16000 Hz) is too short"
            in said[1]
        )
        assert stats.kept == (0, 2, 4) and [p for p, _ in stats.skipped] == [clips["silent"], clips["short"]]
        assert (stats.hits, stats.misses) == ((0, 3) if run == 0 else (3, 0))
        np.testing.assert_array_equal(X[1], file_vector(clips["good1"], DEFAULT_SPEC))
    with pytest.warns(InputWarning, match="short.wav"):  # silence kept when asked; a short clip never
        X, stats = extract(paths, DEFAULT_SPEC, progress=False, strict=False, keep_silent=True)
    assert stats.kept == (0, 1, 2, 4) and X.shape == (4, DEFAULT_SPEC.dim)
    with pytest.raises(AudioFormatError, match="silent.wav: digital silence"):
        extract(paths, DEFAULT_SPEC, progress=False)  # strict: every path has its row, or an error


def test_a_constant_offset_clip_is_digital_silence(tmp_path, capsys) -> None:
    """A clip holding one nonzero value throughout (a DC offset, which the features remove) was learnt as its
    folder's label and predicted with no mark; it is digital silence to training and to predict alike."""
    from edge_ser.cli import main
    from edge_ser.errors import InputWarning

    good = write_wav(tmp_path / "good.wav", voiced(16000, 16000, seed=1), 16000)
    dc = write_wav(tmp_path / "dc.wav", np.full(16000, 0.01, np.float32), 16000)
    with pytest.warns(
        InputWarning, match=r"dc.wav: digital silence: every sample is the same value \(0.01\)"
    ):
        _, stats = extract([good, dc], DEFAULT_SPEC, progress=False, strict=False)
    assert stats.kept == (0,)
    bundle = Path(__file__).resolve().parents[1] / "bundles" / "ser_emodb"
    assert main(["predict", str(bundle), str(dc)]) == 0
    assert "[no speech: digital silence]" in capsys.readouterr().out


def test_many_skips_are_counted_in_one_warning(tmp_path) -> None:
    from edge_ser.errors import InputWarning

    silent = [write_wav(tmp_path / f"s{i:02d}.wav", np.zeros(4000, np.float32), 16000) for i in range(13)]
    short = [write_wav(tmp_path / f"t{i}.wav", voiced(16000, 500, seed=i), 16000) for i in range(2)]
    with pytest.warns(InputWarning) as caught:
        X, stats = extract([*silent, *short], DEFAULT_SPEC, progress=False, strict=False)
    said = [str(w.message) for w in caught]
    assert X.shape == (0, DEFAULT_SPEC.dim) and len(stats.skipped) == 15
    assert len(said) == featurize.NAMED_SKIPS + 1 and all("s0" in s or "s1" in s for s in said[:-1])
    assert "skipped 5 more file(s) (3 digital silence, 2 too short), e.g. " in said[-1]


def test_prepare_keeps_labels_and_speakers_with_their_rows(tmp_path) -> None:
    """`edge-ser train --data DIR`: the skipped clips leave the records with their rows, so labels, speakers
    and features stay aligned."""
    from converters.pipeline import prepare

    for cls, seed in (("angry", 0), ("sad", 10)):
        for spk in ("a", "b"):
            for i in range(2):
                write_wav(tmp_path / cls / f"{spk}_{i}.wav", voiced(16000, 9000, seed=seed + i), 16000)
    write_wav(tmp_path / "angry" / "a_silent.wav", np.zeros(16000, np.float32), 16000)
    write_wav(tmp_path / "sad" / "b_short.wav", voiced(16000, 726, seed=5), 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the loader's toy-data notes; the skips are tested above
        prep = prepare(str(tmp_path), spec=DEFAULT_SPEC, progress=False)
    names = [r.source.name for r in prep.records]
    assert len(names) == 8 == len(prep.X) == len(prep.y) and "a_silent.wav" not in names
    assert sorted(p.name for p, _ in prep.skipped) == ["a_silent.wav", "b_short.wav"]
    for r, row, label in zip(prep.records, prep.X, prep.y, strict=True):
        np.testing.assert_array_equal(row, file_vector(r.source, DEFAULT_SPEC))
        assert prep.classes[label] == r.label and r.speaker == r.source.name[0]


def test_functionals_matrix_refuses_a_silent_clip(tmp_path) -> None:
    """Its rows are paired with the records' labels by every caller: a clip it cannot learn from is an error
    naming the file, never a row dropped out of step."""
    from converters.featurize import functionals_matrix
    from edge_ser.errors import AudioFormatError

    good = write_wav(tmp_path / "good.wav", voiced(16000, 9000), 16000)
    silent = write_wav(tmp_path / "silent.wav", np.zeros(9000, np.float32), 16000)
    with pytest.raises(AudioFormatError, match="silent.wav: digital silence"):
        functionals_matrix([good, silent])
