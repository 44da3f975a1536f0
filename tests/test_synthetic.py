"""The synthetic data set: deterministic, balanced, written idempotently, and learnable by a tiny model."""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter

import numpy as np
import pytest

from converters.data import (
    LOADERS,
    SyntheticSpec,
    generate,
    label_index,
    load_dataset,
    load_synthetic,
    stratified_split,
    write,
)
from converters.data.synthetic import SPEC_FILE
from edge_ser.audio.wav import read_wav
from edge_ser.errors import ConfigError, DatasetError

SMALL = SyntheticSpec(n_per_class=2, duration=0.8, n_speakers=3, seed=11)


@pytest.fixture(scope="module")
def default_set() -> tuple[list, float]:
    """The default spec's clips and the CPU seconds generating them took."""
    start = time.process_time()
    clips = generate(SyntheticSpec())
    return clips, time.process_time() - start


def test_spec_validation():
    for bad in (
        {"n_per_class": 0},
        {"sr": 100},
        {"duration": 0.1},
        {"n_speakers": 0},
        {"seed": -1},
        {"labels": ()},
        {"labels": ("happy", "happy")},
        {"labels": ("happy", "grumpy")},
    ):
        with pytest.raises(ConfigError):
            SyntheticSpec(**bad)
    spec = SyntheticSpec(labels=["sad", "calm", "surprise"])
    assert spec.labels == ("sad", "calm", "surprise") and SyntheticSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ConfigError):
        SyntheticSpec.from_dict({"n_per_class": 3, "colour": "red"})


def test_default_set_shape_and_balance(default_set):
    clips, _ = default_set
    spec = SyntheticSpec()
    assert len(clips) == 7 * 30
    assert Counter(label for _, label, _ in clips) == {name: 30 for name in spec.labels}
    assert Counter(speaker for _, _, speaker in clips) == {f"s{i:02d}": 35 for i in range(1, 7)}
    assert Counter((label, speaker) for _, label, speaker in clips) == {
        (label, f"s{i:02d}"): 5 for label in spec.labels for i in range(1, 7)
    }
    for y, _, _ in clips:
        assert y.dtype == np.float32 and y.shape == (24000,) and np.all(np.isfinite(y))
        assert 0.01 < np.abs(y).max() <= 0.9


def test_deterministic_for_a_seed():
    a, b = generate(SMALL), generate(SMALL)
    assert [y.tobytes() for y, _, _ in a] == [y.tobytes() for y, _, _ in b]
    assert [(lab, spk) for _, lab, spk in a] == [(lab, spk) for _, lab, spk in b]
    other = generate(SyntheticSpec(n_per_class=2, duration=0.8, n_speakers=3, seed=12))
    assert all(not np.array_equal(x, y) for (x, _, _), (y, _, _) in zip(a, other, strict=True))
    # clip i of a class does not depend on how many clips there are
    more = generate(SyntheticSpec(n_per_class=3, duration=0.8, n_speakers=3, seed=11))
    assert np.array_equal(more[0][0], a[0][0]) and np.array_equal(more[3][0], a[2][0])


def test_write_load_round_trip_and_idempotency(tmp_path):
    root = tmp_path / "synthetic"
    records = write(SMALL, root)
    assert len(records) == 14 and {r.dataset for r in records} == {"synthetic"}
    assert Counter(r.label for r in records) == {name: 2 for name in SMALL.labels}
    assert sorted(p.name for p in root.glob("*.wav")) == sorted(r.source.name for r in records)
    assert (root / "s01_neutral_000.wav").is_file() and (root / "s02_boredom_001.wav").is_file()
    state = json.loads((root / SPEC_FILE).read_text())
    assert state["spec"] == SMALL.to_dict() and len(state["files"]) == 14

    clips = generate(SMALL)
    y, sr = read_wav(root / "s01_neutral_000.wav")
    assert sr == SMALL.sr and np.max(np.abs(y[:, 0] - clips[0][0])) <= 1 / 32767
    assert load_synthetic(root) == records == load_dataset("synthetic", root) == LOADERS["synthetic"](root)

    # same spec again: nothing is rewritten; identical bytes in another folder
    stamps = {p.name: p.stat().st_mtime_ns for p in root.iterdir()}
    assert write(SMALL, root) == records
    assert {p.name: p.stat().st_mtime_ns for p in root.iterdir()} == stamps
    write(SMALL, tmp_path / "copy")
    assert all((tmp_path / "copy" / p.name).read_bytes() == p.read_bytes() for p in root.glob("*.wav"))

    # a damaged file is rewritten, the others are left alone
    damaged = root / "s01_neutral_000.wav"
    damaged.write_bytes(b"RIFF")
    write(SMALL, root)
    assert damaged.read_bytes() == (tmp_path / "copy" / damaged.name).read_bytes()
    assert (root / "s02_boredom_001.wav").stat().st_mtime_ns == stamps["s02_boredom_001.wav"]

    # a different spec regenerates and drops the previous spec's files
    smaller = SyntheticSpec(n_per_class=1, duration=0.8, n_speakers=3, seed=11, labels=("sad", "angry"))
    records = write(smaller, root)
    assert sorted(r.source.name for r in records) == ["s01_angry_000.wav", "s01_sad_000.wav"]
    assert sorted(p.name for p in root.glob("*.wav")) == ["s01_angry_000.wav", "s01_sad_000.wav"]


def test_load_synthetic_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_synthetic(tmp_path / "missing")
    with pytest.raises(DatasetError, match="no valid files"):
        load_synthetic(tmp_path)


# ---------------------------------------------------------------------------------- learnability
def _features(y: np.ndarray, sr: int) -> np.ndarray:
    """Per-clip features: log-energy stats, zero crossings, coarse log spectrum, pitch stats, rhythm."""
    y = y.astype(np.float64)
    frames = np.lib.stride_tricks.sliding_window_view(y, int(0.025 * sr))[:: int(0.010 * sr)]
    energy = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-10)
    active = energy > energy.max() - 30
    e = energy[active]
    zcr = np.mean(np.abs(np.diff(np.sign(frames[active]), axis=1)) > 0, axis=1)
    spec = np.abs(np.fft.rfft(frames[active] * np.hanning(frames.shape[1]), n=512, axis=1)) ** 2
    freq = np.fft.rfftfreq(512, 1 / sr)
    edges = np.geomspace(80, sr / 2, 13)
    bands = np.stack([spec[:, (freq >= lo) & (freq < hi)].sum(1) for lo, hi in itertools.pairwise(edges)], 1)
    logb = 10 * np.log10(bands + 1e-10)
    centroid = (spec * freq).sum(1) / (spec.sum(1) + 1e-12)
    # pitch: compressed autocorrelation of 40 ms frames, first lag within 90% of the best (no octave errors)
    pf = np.lib.stride_tricks.sliding_window_view(y, int(0.04 * sr))[:: int(0.010 * sr)]
    pe = 10 * np.log10(np.mean(pf**2, axis=1) + 1e-10)
    pf = pf[pe > pe.max() - 20]
    n = pf.shape[1]
    pf = (pf - pf.mean(1, keepdims=True)) * np.hanning(n)
    ac = np.fft.irfft(np.abs(np.fft.rfft(pf, n=2 * n, axis=1)) ** 0.67, axis=1)[:, :n] / (n - np.arange(n))
    lo, hi = int(sr / 500), int(sr / 60)
    lag = lo + np.argmax(ac[:, lo:hi] >= 0.9 * ac[:, lo:hi].max(1, keepdims=True), axis=1)
    f0 = 12 * np.log2(sr / lag)
    # rhythm: modulation spectrum of the energy contour in three bands
    mod = np.abs(np.fft.rfft((energy - energy.mean()) * np.hanning(energy.size), n=256)) ** 2
    mf = np.fft.rfftfreq(256, 0.010)
    rhythm = np.log([mod[(mf >= a) & (mf < b)].sum() + 1e-9 for a, b in [(1, 3), (3, 5), (5, 8)]])
    return np.concatenate(
        [
            [e.mean(), e.std(), np.percentile(e, 90), active.mean(), energy.max()],
            [zcr.mean(), zcr.std(), np.log(centroid.mean()), centroid.std() / 1000],
            logb.mean(0) - logb.mean(),
            [
                np.median(f0),
                f0.std(),
                np.percentile(f0, 90) - np.percentile(f0, 10),
                np.median(np.abs(np.diff(f0))),
            ],
            rhythm - rhythm.mean(),
        ]
    )


def _logistic_regression(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float = 0.1) -> np.ndarray:
    """Multinomial logistic regression by full-batch gradient descent; returns [features + 1, classes]."""
    x = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros((x.shape[1], n_classes))
    target = np.eye(n_classes)[y]
    for _ in range(800):
        z = x @ w
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        w -= 0.5 * (x.T @ (p - target) / len(x) + l2 * np.vstack([w[:-1], np.zeros((1, n_classes))]))
    return w


def test_a_tiny_model_learns_it_well_above_chance(default_set):
    clips, _ = default_set
    spec = SyntheticSpec()
    x = np.stack([_features(y, spec.sr) for y, _, _ in clips])
    speakers = np.array([s for _, _, s in clips])
    for s in set(speakers):  # per-speaker feature normalisation, as speech emotion systems do
        m = speakers == s
        x[m] = (x[m] - x[m].mean(0)) / (x[m].std(0) + 1e-9)
    index = label_index(label for _, label, _ in clips)
    y = np.array([index[label] for _, label, _ in clips])
    split = stratified_split(y, fractions=(0.7, 0.0, 0.3), seed=0)
    w = _logistic_regression(x[split.train], y[split.train], len(index))
    pred = np.argmax(np.hstack([x[split.test], np.ones((split.test.size, 1))]) @ w, axis=1)
    accuracy = float(np.mean(pred == y[split.test]))
    chance = 1 / len(index)
    print(f"synthetic: logistic regression test accuracy {accuracy:.3f} (chance {chance:.3f})")
    assert accuracy >= 2.5 * chance
    assert accuracy < 0.98, "the classes should overlap a little, not be trivially separable"


def test_a_synth_stopped_while_writing_clips_can_be_run_again(tmp_path, monkeypatch, capsys):
    """`edge-ser synth DIR` stopped (Ctrl-C) after some clips were written and before spec.json left a folder that
    the same command then refused ("holds other files and no synthetic data set"): spec.json is written first, so
    the rerun finishes the set, and a rerun with another spec removes the stopped run's clips."""
    import pytest

    import converters.data.synthetic as synthetic
    from edge_ser.cli import main

    real, calls = synthetic.write_wav, []

    def stop_at_third(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(synthetic, "write_wav", stop_at_third)
    out = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt):
        synthetic.write(synthetic.SyntheticSpec(n_per_class=3), out)
    assert len(list(out.glob("*.wav"))) == 2
    monkeypatch.setattr(synthetic, "write_wav", real)
    assert main(["synth", str(out), "--n-per-class", "2"]) == 0, capsys.readouterr().err
    assert len(list(out.glob("*.wav"))) == 14  # 7 classes x 2, none of the stopped run's left over
    assert len(synthetic.load_synthetic(out)) == 14


def test_write_makes_each_clip_as_it_writes_it(tmp_path, monkeypatch):
    """`write` made the whole set in memory before writing a clip (13 GB for 1,000 clips per class of 30 s), its
    progress bar still until then, and a Ctrl-C while clips were being made had written none of them."""
    import converters.data.synthetic as synthetic

    real, made = synthetic._clip, []

    def stop_at_fourth(*a, **k):
        made.append(1)
        if len(made) == 4:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(synthetic, "_clip", stop_at_fourth)
    with pytest.raises(KeyboardInterrupt):
        write(SMALL, tmp_path / "s")
    assert len(list((tmp_path / "s").glob("*.wav"))) == 3
    monkeypatch.setattr(synthetic, "_clip", real)
    assert len(write(SMALL, tmp_path / "s")) == 14
