"""The functionals front end (88 eGeMAPS-layout values) and its input kind: the spec, values that must come out of
known signals, the feature cache, and a real bundle (functionals_mlp through LAQ + QAT) run by Recognizer at
44.1 kHz on the numpy and onnxruntime engines against torch."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edge_ser.errors import ConfigError
from edge_ser.features.egemaps import DIM, FunctionalsSpec, descriptors, functionals, names

SR = 16000


def _vowel(
    f0: float, seconds: float = 1.0, formants=(700.0, 1200.0, 2600.0), jitter: float = 0.0
) -> np.ndarray:
    """A glottal pulse train at f0 (periods perturbed by `jitter`, relative) through three formant resonators."""
    scipy_signal = pytest.importorskip("scipy.signal", reason="scipy builds the test vowel")
    rng = np.random.default_rng(0)
    n = int(seconds * SR)
    x = np.zeros(n)
    t = 0.0
    while t < n:
        x[int(t)] = 1.0
        t += SR / f0 * (1.0 + jitter * rng.standard_normal())
    for f in formants:
        r = np.exp(-np.pi * 80.0 / SR)  # 80 Hz bandwidth
        x = scipy_signal.lfilter([1.0], [1.0, -2 * r * np.cos(2 * np.pi * f / SR), r * r], x)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def _value(v: np.ndarray, name: str) -> float:
    return float(v[names().index(name)])


def test_spec_round_trip_and_checks() -> None:
    spec = FunctionalsSpec()
    assert FunctionalsSpec.from_dict(spec.to_dict()) == spec
    # a manifest from before the F0 silence gate reads as it was computed: no gate
    assert FunctionalsSpec.from_dict({}) == FunctionalsSpec(silence_db=None, bounded_cv=False) != spec
    off = FunctionalsSpec(remove_dc=False, level_dbfs=None)
    assert off.to_dict()["remove_dc"] is False and FunctionalsSpec.from_dict(off.to_dict()) == off
    assert spec.digest() != off.digest() and len(names()) == DIM == spec.dim == len(set(names()))
    assert spec.feature_spec().sample_rate == SR and spec.feature_spec().window == "hamming"
    for bad, field in (
        ({"sample_rate": 8000}, "sample_rate"),
        ({"fmin": 500.0, "fmax": 400.0}, "fmin"),
        ({"fmin": 30.0}, "f0_frame_length"),
        ({"level_dbfs": 5.0}, "level_dbfs"),
        ({"silence_db": -3.0}, "silence_db"),
        ({"hop": 3}, "unknown"),
    ):
        with pytest.raises(ConfigError, match=field):
            FunctionalsSpec.from_dict(bad)


def test_known_signals_give_known_values() -> None:
    v = functionals(_vowel(200.0), sr=SR)
    assert v.shape == (DIM,) and v.dtype == np.float32 and np.all(np.isfinite(v))
    assert _value(v, "F0semitoneFrom27.5Hz_sma3nz_amean") == pytest.approx(12 * np.log2(200 / 27.5), abs=0.2)
    assert _value(v, "F0semitoneFrom27.5Hz_sma3nz_stddevNorm") < 0.01  # a steady pitch
    assert _value(v, "F1frequency_sma3nz_amean") == pytest.approx(700, rel=0.15)
    assert _value(v, "F2frequency_sma3nz_amean") == pytest.approx(1200, rel=0.15)
    assert _value(v, "F3frequency_sma3nz_amean") == pytest.approx(2600, rel=0.15)
    assert _value(v, "jitterLocal_sma3nz_amean") < 0.01
    assert _value(v, "HNRdBACF_sma3nz_amean") > 10  # a pulse train is all harmonic
    assert _value(v, "VoicedSegmentsPerSec") == pytest.approx(1.0, abs=0.01)  # one voiced run in 1 s
    assert _value(v, "equivalentSoundLevel_dBp") == pytest.approx(-26, abs=1.5)  # conditioned to -26 dBFS
    rough = functionals(_vowel(200.0, jitter=0.03), sr=SR)
    assert _value(rough, "jitterLocal_sma3nz_amean") > 3 * _value(v, "jitterLocal_sma3nz_amean")
    high = functionals(_vowel(300.0), sr=SR)
    assert _value(high, "F0semitoneFrom27.5Hz_sma3nz_amean") - _value(
        v, "F0semitoneFrom27.5Hz_sma3nz_amean"
    ) == pytest.approx(12 * np.log2(1.5), abs=0.3)


def test_silence_and_short_clips_are_finite() -> None:
    for y in (np.zeros(SR, np.float32), np.zeros(600, np.float32), 1e-3 * np.ones(SR, np.float32)):
        v = functionals(y, sr=SR)
        assert np.all(np.isfinite(v)) and _value(v, "VoicedSegmentsPerSec") == 0
    d = descriptors(_vowel(150.0), sr=SR)
    assert d.voiced.sum() > 80 and set(d.lld) >= {"F0", "loudness", "jitterLocal", "F3bandwidth"}
    with pytest.raises(ConfigError, match="16000 Hz"):
        functionals(np.zeros(SR, np.float32), sr=22050)


def test_cache_computes_each_file_once(tmp_path: Path) -> None:
    from converters.featurize import FeatureCache, functionals_matrix
    from edge_ser.audio import load, write_wav

    paths = [write_wav(tmp_path / f"{f}.wav", _vowel(f), SR) for f in (120.0, 240.0)]
    cache = FeatureCache(tmp_path / "cache")
    X = functionals_matrix(paths, cache=cache)
    assert X.shape == (2, DIM) and cache.misses == 2 and cache.hits == 0
    again = functionals_matrix(paths, cache=cache)
    assert cache.hits == 2 and np.array_equal(X, again)
    assert np.array_equal(X[0], functionals(load(paths[0])[0], sr=SR))


def test_noisy_copies_are_seeded_cached_and_noisy(tmp_path: Path) -> None:
    from converters.featurize import FeatureCache, functionals_matrix, noisy_functionals_matrix
    from edge_ser.audio import write_wav

    paths = [write_wav(tmp_path / f"{f}.wav", _vowel(f), SR) for f in (120.0, 240.0)]
    cache = FeatureCache(tmp_path / "cache")
    N = noisy_functionals_matrix(paths, copies=2, snr_db=(20.0, 30.0), cache=cache)
    assert N.shape == (2, 2, DIM) and cache.misses == 4
    assert np.array_equal(N, noisy_functionals_matrix(paths, copies=2, snr_db=(20.0, 30.0), cache=cache))
    assert cache.hits == 4
    assert np.array_equal(
        N, noisy_functionals_matrix(paths, copies=2, snr_db=(20.0, 30.0))
    )  # same without it
    clean = functionals_matrix(paths)
    assert not np.allclose(N[0], clean) and not np.allclose(N[0], N[1])
    # the pause gate keeps the voiced frames' F0 where it was: 20-30 dB of white noise leaves the mean F0
    f0 = names().index("F0semitoneFrom27.5Hz_sma3nz_amean")
    assert np.allclose(N[:, :, f0], clean[:, f0], atol=0.5)


def test_stddevnorm_is_bounded_where_descriptors_cross_zero() -> None:
    """Bounded CV (std / sqrt(mean^2 + std^2)) for every descriptor but F0 and loudness; eGeMAPS' std / |mean|
    (the legacy spec) is unbounded for MFCCs and slopes near a zero mean."""
    rng = np.random.default_rng(3)
    y = (_vowel(150.0, seconds=1.5) + 0.02 * rng.standard_normal(int(1.5 * SR))).astype(np.float32)
    new = functionals(y, sr=SR)
    old = functionals(y, sr=SR, spec=FunctionalsSpec.from_dict({}))
    cv = [
        i for i, n in enumerate(names()) if n.endswith("stddevNorm") and not n.startswith(("F0", "loudness"))
    ]
    assert np.all((new[cv] >= 0) & (new[cv] <= 1))
    # where the old value is small, the new one is the same CV, squashed: cv / sqrt(1 + cv^2)
    small = [i for i in cv if old[i] < 0.2]
    assert small and np.allclose(new[small], old[small] / np.sqrt(1 + old[small] ** 2), rtol=0.05, atol=1e-3)


@pytest.mark.parametrize(
    ("model_name", "members"), [("functionals_mlp", 1), ("functionals_mlp", 2), ("functionals_linear", 1)]
)
def test_bundle_runs_on_every_engine_like_torch(tmp_path: Path, model_name: str, members: int) -> None:
    """Train functionals_mlp (or the linear functionals_linear) on synthetic clips, LAQ + QAT, bundle it (one
    model, or a seed ensemble as one graph, `FunctionalsEnsemble`); Recognizer at 44.1 kHz == torch."""
    torch = pytest.importorskip("torch", reason="the host pipeline needs torch")
    pytest.importorskip("onnxruntime", reason="the onnxruntime engine")
    import edge_ser
    from converters.compress import compress
    from converters.data.synthetic import SyntheticSpec, generate
    from converters.export.bundle import build_bundle
    from converters.registry import build
    from converters.train import TrainConfig, predict, seed_everything, train_classifier
    from edge_ser.audio import resample
    from edge_ser.bundle import load_bundle
    from edge_ser.engines.base import clamp_to_training_range
    from edge_ser.inputs import input_kind
    from edge_ser.inputs.functionals import FunctionalsKind

    clips = generate(
        SyntheticSpec(n_per_class=5, sr=SR, duration=1.0, seed=3, labels=("neutral", "happy", "sad"))
    )
    labels = sorted({lab for _, lab, _ in clips})
    kind = FunctionalsKind(FunctionalsSpec())
    X = np.stack([kind.audio_inputs(y, SR)["functionals"][0] for y, _, _ in clips])
    y = np.array([labels.index(lab) for _, lab, _ in clips])
    val = np.arange(len(y)) % 5 == 0
    from converters.models.functionals_mlp import FunctionalsEnsemble

    fitted = []
    for seed in range(members):
        seed_everything(seed)
        model = build(model_name, num_classes=len(labels))
        model.set_normalization(torch.as_tensor(X[~val].mean(0)), torch.as_tensor(X[~val].std(0)))
        fp = train_classifier(
            model, X[~val], y[~val], X[val], y[val], TrainConfig(seed=seed, epochs=30), progress=False
        ).model
        fitted.append(compress("laq-paper", fp, X[~val], y[~val], X[val], y[val], seed=seed))
    c = fitted[0]
    if members > 1:
        model, plan, codes = FunctionalsEnsemble.from_members([(f.model, f.plan, f.codes) for f in fitted])
        c = SimpleNamespace(model=model, plan=plan, codes=codes)
    path = build_bundle(
        tmp_path / "b",
        c.model,
        c.plan,
        c.codes,
        name="functionals_mlp",
        labels=labels,
        kind=kind,
        accuracy={"test": 0.0, "dataset": "synthetic", "split": {"kind": "random", "seed": 0}},
    )
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["functionals_input"] == kind.spec.to_dict()
    assert len(manifest["normalization"]["mean"]) == DIM and manifest["bitplan"]["average_bits"] < 8
    per_member = 1 if model_name == "functionals_linear" else 3  # the linear model: its classifier only
    assert len(manifest["layers"]) == per_member * members  # an ensemble: every member's own layers
    bundle = load_bundle(path)  # verifies the manifest, the files and the kind's block
    assert isinstance(bundle.input_kind, FunctionalsKind) and isinstance(
        input_kind(manifest), FunctionalsKind
    )
    for wave, _, _ in clips[:4]:
        y44 = resample(wave, SR, 44100)
        x = kind.audio_inputs(y44, 44100)["functionals"]
        ref = torch.softmax(torch.as_tensor(predict(c.model, clamp_to_training_range(bundle, x))), 1)[
            0
        ].numpy()
        for engine in ("numpy", "onnxruntime"):
            p = edge_ser.Recognizer(bundle, engine).predict_audio(y44, 44100)
            got = np.array([p.probabilities[lab] for lab in labels])
            np.testing.assert_allclose(got, ref, atol=1e-4, err_msg=engine)
            assert p.label == labels[int(np.argmax(ref))]


def test_manifest_with_a_wrong_input_size_is_refused(tmp_path: Path) -> None:
    from edge_ser.inputs.functionals import FunctionalsKind
    from edge_ser.schema import Checker

    manifest = {"functionals_input": FunctionalsSpec().to_dict()}
    c = Checker("m", collect=True)
    FunctionalsKind.check_manifest(c, manifest, [{"name": "functionals", "shape": [None, 87]}])
    assert c.problems and "87" in c.problems[0]
    c = Checker("m", collect=True)
    FunctionalsKind.check_manifest(c, manifest, [{"name": "functionals", "shape": ["batch", 88]}])
    assert not c.problems


def test_extended_layout_appends_to_the_88_and_reads_its_own_descriptors() -> None:
    """The extended spec's first 88 values are the 88 exactly; the 239 after them are named, finite and move with
    the signal (a jittery vowel's F0 contour has a larger frame-to-frame change than a steady one's)."""
    from edge_ser.features.egemaps import EXTENDED_DIM, extended_names, extended_summary

    ext = FunctionalsSpec(extended=True)
    assert ext.dim == EXTENDED_DIM == 327 == len(ext.names()) == len(set(ext.names()))
    assert ext.names()[:DIM] == names() and ext.names()[DIM:] == extended_names()
    assert ext.digest() != FunctionalsSpec().digest() and "extended (327)" in str(ext)
    assert FunctionalsSpec.from_dict(ext.to_dict()) == ext
    assert FunctionalsSpec.from_dict(FunctionalsSpec().to_dict()).extended is False
    with pytest.raises(ConfigError, match="extended"):
        FunctionalsSpec.from_dict({**ext.to_dict(), "extended": "yes"})

    steady, rough = _vowel(200.0), _vowel(200.0, jitter=0.03)
    v = functionals(steady, sr=SR, spec=ext)
    assert v.shape == (EXTENDED_DIM,) and v.dtype == np.float32 and np.all(np.isfinite(v))
    np.testing.assert_array_equal(v[:DIM], functionals(steady, sr=SR))

    def value(x: np.ndarray, name: str) -> float:
        return float(x[ext.names().index(name)])

    r = functionals(rough, sr=SR, spec=ext)
    delta = "F0semitoneFrom27.5Hz_sma3nz_meanAbsDelta"
    assert value(r, delta) > 2 * value(v, delta) > 0
    lo, hi = value(v, "loudness_sma3_percentile10.0"), value(v, "loudness_sma3_percentile90.0")
    assert lo <= hi and value(v, "loudness_sma3_stddev") >= 0
    assert value(v, "mfcc5_sma3_amean") != 0 and value(v, "mfcc12_sma3_stddev") > 0
    # the statistics of the non-pause frames' smoothed contours of speech-like audio, by numpy and scipy here
    from _signals import voiced
    from scipy import stats

    y = voiced(SR, 2 * SR, seed=3).astype(np.float32)
    v, d = functionals(y, sr=SR, spec=ext), descriptors(y, sr=SR, spec=ext)
    act = np.ones(d.voiced.size, bool) if d.active is None else d.active
    for n in ("loudness", "spectralFlux", "mfcc5", "mfcc12"):
        x = np.asarray(d.lld[n], np.float64)
        c = np.convolve(x, np.ones(3), "same") / np.r_[2, np.full(x.size - 2, 3), 2]  # openSMILE's sma3
        c = c[act]
        want = {
            "stddev": c.std(),
            "percentile10.0": np.percentile(c, 10),
            "percentile90.0": np.percentile(c, 90),
            "skewness": stats.skew(c),
            "kurtosis": stats.kurtosis(c, fisher=False),
            "meanAbsDelta": np.abs(np.diff(c)).mean(),
            "stddevDelta": np.diff(c).std(),
        }
        if n.startswith("mfcc"):
            want["amean"] = c.mean()
        for f, w in want.items():
            assert value(v, f"{n}_sma3_{f}") == pytest.approx(w, rel=1e-5, abs=1e-5), (n, f)
    for y in (np.zeros(SR, np.float32), np.zeros(600, np.float32)):  # no voiced frame: zeros, not NaN
        assert np.all(np.isfinite(functionals(y, sr=SR, spec=ext)))
    with pytest.raises(ConfigError, match="mfcc5"):  # descriptors of the 88's spec lack MFCC 5-12
        extended_summary(descriptors(steady, sr=SR))


def test_extended_kind_checks_its_width() -> None:
    from edge_ser.inputs.functionals import FunctionalsKind
    from edge_ser.schema import Checker

    kind = FunctionalsKind(FunctionalsSpec(extended=True))
    assert kind.input_shapes == {"functionals": (327,)} and "327" in kind.describe()[0]
    manifest = kind.manifest_blocks()
    c = Checker("m", collect=True)
    FunctionalsKind.check_manifest(c, manifest, [{"name": "functionals", "shape": [None, 88]}])
    assert c.problems and "327" in c.problems[0]
    c = Checker("m", collect=True)
    FunctionalsKind.check_manifest(c, manifest, [{"name": "functionals", "shape": [None, 327]}])
    assert not c.problems


def test_speed_perturbed_copies_move_pitch_and_are_cached(tmp_path: Path) -> None:
    """Speed 0.9 plays the clip slower and lower (sox's `speed`): F0 falls by 12 log2(0.9) semitones; the
    copies are cached per (file, spec, factor) and a factor outside 0.5-2 is refused."""
    from converters.featurize import FeatureCache, speed_functionals_matrix
    from edge_ser.audio import write_wav

    path = write_wav(tmp_path / "v.wav", _vowel(200.0), SR)
    cache = FeatureCache(tmp_path / "cache")
    X = speed_functionals_matrix([path], factors=(0.9, 1.1), cache=cache)
    assert X.shape == (2, 1, DIM) and cache.misses == 2
    clean = functionals(_vowel(200.0), sr=SR)
    f0 = names().index("F0semitoneFrom27.5Hz_sma3nz_amean")
    assert X[0, 0, f0] - clean[f0] == pytest.approx(12 * np.log2(0.9), abs=0.3)
    assert X[1, 0, f0] - clean[f0] == pytest.approx(12 * np.log2(1.1), abs=0.3)
    again = speed_functionals_matrix([path], factors=(0.9, 1.1), cache=cache)
    np.testing.assert_array_equal(again, X)
    assert cache.hits == 2
    with pytest.raises(ConfigError, match="speed factor"):
        speed_functionals_matrix([path], factors=(3.0,))


def test_functionals_baseline_reports_the_sample_std_over_folds(monkeypatch) -> None:
    """benchmarks/functionals_baseline.py: UAR / WAR over the folds are the mean and the *sample* std
    (`converters.protocol.mean_std`, docs/protocol.md "Metrics", as every other table); it reported numpy's
    population std (ddof 0), 5 % smaller over 10 folds."""
    import statistics

    import benchmarks.functionals_baseline as fb

    accuracies = iter([0.5, 0.9, 0.6, 0.8])  # one test fold each: 4 speakers, one C in the grid

    def fake_metrics(y, pred, classes):
        acc = next(accuracies) if len(y) == 2 else 0.5  # the test fold has 2 rows, validation 4
        return SimpleNamespace(uar=acc, accuracy=acc / 2)

    class Fixed:
        def fit(self, X, y):
            return self

        def predict(self, X):
            return np.zeros(len(X))

    monkeypatch.setattr(fb, "C_GRID", (1.0,))
    monkeypatch.setattr(fb, "make", lambda kind, c: Fixed())
    monkeypatch.setattr(fb, "metrics", fake_metrics)
    monkeypatch.setattr(
        fb,
        "leave_one_speaker_out",
        lambda speakers, y, val_speakers, seed: [
            (s, SimpleNamespace(train=np.arange(0), val=np.arange(4), test=np.arange(2))) for s in "abcd"
        ],
    )
    r = fb.loso(np.zeros((8, 3)), np.zeros(8), np.array(list("aabbccdd")), "logreg", ("x",))
    fold = [0.5, 0.9, 0.6, 0.8]
    assert r["uar"] == pytest.approx(statistics.fmean(fold))
    assert r["uar_std"] == pytest.approx(statistics.stdev(fold))  # ddof 1: 0.183, not 0.158
    assert r["war_std"] == pytest.approx(statistics.stdev([a / 2 for a in fold]))


def test_cropped_copies_cut_to_a_stretch_of_the_speech_seeded_and_cached(tmp_path: Path) -> None:
    """`cropped_functionals_matrix` (docs/protocol.md, "Utterance length"): fixed lengths give the functionals of the
    clip cut from `lead` before its speech to that much of it; training copies draw a length from `shortest` to
    all of it, seeded; both cached; a clip without speech is used whole; bad lengths are refused."""
    from converters.featurize import FeatureCache, cropped_functionals_matrix
    from edge_ser.audio import load, write_wav
    from edge_ser.audio.pauses import speech_span

    room = (1e-4 * np.random.default_rng(1).standard_normal(SR)).astype(np.float32)
    speech = np.concatenate([room, _vowel(140.0, 2.5), room])
    paths = [write_wav(tmp_path / "a.wav", speech, SR), write_wav(tmp_path / "quiet.wav", room, SR)]
    cache = FeatureCache(tmp_path / "cache")
    fixed = cropped_functionals_matrix(paths, lengths=(1.0,), lead=0.2, cache=cache)
    y = load(paths[0])[0]
    a, _ = speech_span(y, SR)
    assert np.array_equal(fixed[0, 0], functionals(y[a - int(0.2 * SR) : a + SR], sr=SR))
    assert np.array_equal(fixed[0, 1], functionals(load(paths[1])[0], sr=SR))  # no speech: whole
    copies = cropped_functionals_matrix(paths, copies=3, cache=cache)
    assert copies.shape == (3, 2, DIM) and cache.misses == 2 + 6
    assert (
        np.array_equal(copies, cropped_functionals_matrix(paths, copies=3, cache=cache)) and cache.hits == 6
    )
    assert np.array_equal(copies, cropped_functionals_matrix(paths, copies=3))  # the same without the cache
    assert not np.allclose(copies[0, 0], copies[1, 0])  # drawn lengths differ
    assert not np.array_equal(copies, cropped_functionals_matrix(paths, copies=3, seed=1))
    with pytest.raises(ConfigError, match="lengths"):
        cropped_functionals_matrix(paths, lengths=(0.0,))
