"""The evaluation protocol: fold generators, UAR / WAR over folds, and the speaker-independence table's runner
(no test-fold information reaches model or knob selection; rows are pluggable; finished points are reused)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from converters.data import speaker_group_folds, stratified_kfold
from converters.data.synthetic import SyntheticSpec
from converters.data.synthetic import write as write_synthetic
from converters.evaluate import index_metrics
from converters.featurize import FeatureCache
from converters.protocol import PROTOCOLS, Fold, Protocol, summarise
from converters.si_eval import (
    EARLY_PRIOR_WEIGHT,
    INPUTS,
    ROW_FIELDS,
    Fitted,
    FoldData,
    InputData,
    Row,
    SITable,
    fit_laq_mlp,
    fit_sklearn,
    fold_inputs,
    functionals_input,
    functionals_mfcc_input,
    run_fold,
    vector_input,
    with_corpus,
)
from converters.speaker_norm import NormMode, online, prior
from converters.sweep import Grid, Sweep
from converters.train import TrainConfig
from edge_ser.errors import ConfigError


def _corpus(n_speakers: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """EMODB-like: speakers with 35-70 clips over 7 classes, one speaker missing a class."""
    rng = np.random.default_rng(seed)
    speakers, labels = [], []
    for s in range(n_speakers):
        n = int(rng.integers(35, 70))
        classes = list("abcdefg") if s else list("abcdef")
        speakers += [f"{s + 3:02d}"] * n
        labels += list(rng.choice(classes, n))
    return np.array(speakers), np.array(labels)


def _sides(fold: Fold, speakers: np.ndarray) -> tuple[set, set, set]:
    return tuple(set(speakers[getattr(fold.split, p)]) for p in ("train", "val", "test"))


# -------------------------------------------------------------------------------------------------- folds
def test_loso_protocol_holds_out_each_speaker_once_with_a_different_val_speaker():
    speakers, labels = _corpus()
    folds = PROTOCOLS["emodb-loso"].folds(speakers, labels)
    assert len(folds) == 10
    assert sorted(f.test_speakers[0] for f in folds) == sorted(set(speakers))
    for f in folds:
        train, val, test = _sides(f, speakers)
        assert len(test) == 1 and len(val) == 1 and len(train) == 8
        assert not (test & (train | val)) and not (val & train)
        assert f.split.sizes()["train"] + f.split.sizes()["val"] + f.split.sizes()["test"] == len(speakers)
        assert f.name == f"test {f.test_speakers[0]}, val {f.val_speakers[0]}"


def test_speaker_pairs_protocol_six_folds_of_two_actors_val_the_next_pair():
    speakers = np.repeat([f"{a:02d}" for a in range(1, 13)], 60)
    labels = np.tile(np.resize(np.arange(8), 60), 12)
    folds = PROTOCOLS["ravdess-pairs"].folds(speakers, labels)
    assert len(folds) == 6
    assert [f.test_speakers for f in folds] == [(f"{a:02d}", f"{a + 1:02d}") for a in range(1, 13, 2)]
    assert [f.val_speakers for f in folds] == [f.test_speakers for f in folds[1:] + folds[:1]]
    for f in folds:
        train, val, test = _sides(f, speakers)
        assert len(train) == 8 and not (test & (train | val)) and not (val & train)
        assert sorted(int(a) % 2 for a in test) == [0, 1]  # one male (odd) and one female (even) actor


def test_ravdess_leave_one_actor_out_twelve_folds_ten_training_actors():
    speakers = np.repeat([f"{a:02d}" for a in range(1, 13)], 60)
    labels = np.tile(np.resize(np.arange(8), 60), 12)
    folds = PROTOCOLS["ravdess-loao"].folds(speakers, labels)
    assert len(folds) == 12 and PROTOCOLS["ravdess-loao"].speaker_independent
    assert [f.test_speakers for f in folds] == [(f"{a:02d}",) for a in range(1, 13)]
    for f in folds:
        train, val, test = _sides(f, speakers)
        assert len(test) == 1 and len(val) == 1 and len(train) == 10
        assert not (test & (train | val)) and not (val & train)


def test_stratified_kfold_partitions_each_seed_and_keeps_class_shares():
    speakers, labels = _corpus()
    folds = PROTOCOLS["emodb-10fold-x3"].folds(speakers, labels)
    assert len(folds) == 30
    for seed in range(3):
        mine = folds[10 * seed : 10 * seed + 10]
        tests = np.concatenate([f.split.test for f in mine])
        assert np.array_equal(np.sort(tests), np.arange(len(labels)))  # every clip tested once per seed
        for f in mine:
            assert not set(f.split.val) & set(f.split.test)
            for c, n in Counter(labels).items():
                assert abs(int(np.sum(labels[f.split.test] == c)) - n / 10) <= 1  # stratified test folds
                # val is a stratified ninth of the training part
                assert abs(int(np.sum(labels[f.split.val] == c)) - 0.1 * n) <= 2
    assert not np.array_equal(folds[0].split.test, folds[10].split.test)  # seeds differ


def test_fold_generators_refuse_what_they_cannot_do():
    speakers, labels = _corpus(n_speakers=2)
    with pytest.raises(ConfigError, match="val_speakers"):
        PROTOCOLS["emodb-loso"].folds(speakers, labels)  # test + val + train need three speakers
    with pytest.raises(ConfigError, match="at least 3"):
        speaker_group_folds(speakers, [[s] for s in sorted(set(speakers))])
    three = np.array(["a", "b", "c", "c"])
    with pytest.raises(ConfigError, match="in no group: c"):
        speaker_group_folds(three, [["a"], ["b"], ["d"]])
    with pytest.raises(ConfigError, match="in two groups: a"):
        speaker_group_folds(three, [["a"], ["a", "b"], ["c"]])
    with pytest.raises(ConfigError, match="cannot be cut into pairs"):
        Protocol("p", "x", "speaker-pairs").folds(np.array(["a", "b", "c"]), [0, 1, 2])
    with pytest.raises(ConfigError, match="k=1"):
        stratified_kfold(labels, k=1)
    with pytest.raises(ConfigError, match="kind"):
        Protocol("p", "x", "random")
    fold = Fold("leaky", PROTOCOLS["emodb-loso"].folds(*_corpus())[0].split)
    with pytest.raises(ConfigError, match="also in training"):
        fold.check(np.zeros(len(_corpus()[0]), dtype=str))  # every clip the same speaker: test is in train


def test_protocol_round_trip():
    for p in PROTOCOLS.values():
        assert Protocol.from_dict(p.to_dict()) == p
    assert (
        not PROTOCOLS["emodb-10fold-x3"].speaker_independent and PROTOCOLS["emodb-loso"].speaker_independent
    )


# -------------------------------------------------------------------------------------------------- metrics
def test_uar_war_on_a_hand_made_example():
    # class a: 4 clips, 3 right; class b: 1 clip, right; class c: 5 clips, 1 right.
    true = [0, 0, 0, 0, 1, 2, 2, 2, 2, 2]
    pred = [0, 0, 0, 1, 1, 2, 0, 0, 0, 0]
    m = index_metrics(true, pred, ["a", "b", "c"])
    assert m.accuracy == pytest.approx(5 / 10)
    assert m.uar == pytest.approx((3 / 4 + 1 + 1 / 5) / 3)
    assert m.recall == pytest.approx({"a": 0.75, "b": 1.0, "c": 0.2})
    other = index_metrics([0, 1], [0, 0], ["a", "b", "c"])  # c absent: not counted in UAR
    assert other.uar == pytest.approx(0.5)
    s = summarise([m, other])
    assert s.uar == pytest.approx((m.uar + 0.5) / 2)
    assert s.uar_std == pytest.approx(np.std([m.uar, 0.5], ddof=1))
    assert s.war == pytest.approx((0.5 + 0.5) / 2) and s.n_folds == 2
    assert s.pooled.matrix.sum() == 12


# --------------------------------------------------------------------------------------------------- runner
def _blobs(seed: int = 0) -> InputData:
    """5 speakers x 3 classes, separable once each speaker's own offset is removed; column 0 = the row id."""
    rng = np.random.default_rng(seed)
    X, y, spk = [], [], []
    for s in range(5):
        offset = rng.normal(0, 3, 4)
        for c in range(3):
            X.append(offset + np.eye(4)[c] * 3 + rng.normal(0, 0.5, (8, 4)))
            y += [c] * 8
            spk += [f"s{s}"] * 8
    X = np.concatenate(X)
    X = np.concatenate([np.arange(len(X))[:, None], X], axis=1).astype(np.float32)
    return InputData("blobs", X, np.array(y), np.array(spk), ("a", "b", "c"))


def test_fit_sees_only_train_and_val_rows_and_never_a_test_speaker():
    data = _blobs()
    seen: list[FoldData] = []

    def spy_fit(fd: FoldData) -> Fitted:
        seen.append(fd)
        assert not hasattr(fd, "X_test") and not hasattr(fd, "y_test")
        inner = fit_sklearn("logreg")(
            FoldData(fd.X_train[:, 1:], fd.y_train, fd.X_val[:, 1:], fd.y_val, fd.classes)
        )
        return Fitted(lambda X: inner.predict(X[:, 1:]), 32.0, None, 0)

    row = Row("spy", "blobs", spy_fit)
    folds = Protocol("p", "blobs", "loso").folds(data.speakers, data.y)
    for fold in folds:
        out = run_fold(row, data, fold, NormMode.parse("none"))
        fd = seen[-1]
        ids = set(fd.X_train[:, 0].astype(int)) | set(fd.X_val[:, 0].astype(int))
        assert ids == set(fold.split.train) | set(fold.split.val)
        assert not ids & set(fold.split.test)
        assert not set(fold.test_speakers) & (set(fd.train_speakers) | set(fd.val_speakers))
        assert set(out["norms"]) == {"none"}


def test_augmented_copies_join_the_training_rows_only_each_copy_normalised_on_its_own():
    """InputData.copies (e.g. speed-perturbed clips): the fit sees the training speakers' copies after their
    clean rows, never a validation or test speaker's; under a per-speaker norm each (speaker, copy) is
    standardised by its own statistics, so a copy shifted as a whole arrives as its clean rows."""
    data = _blobs()
    shift = np.zeros_like(data.X)
    shift[:, 1:] = 5.0  # the copy: every feature moved, as a new voice would move it
    data.copies = np.stack([data.X + shift])
    seen: list[FoldData] = []

    def spy_fit(fd: FoldData) -> Fitted:
        seen.append(fd)
        return Fitted(lambda X: np.zeros(len(X), dtype=np.int64), 32.0, None, 0)

    fold = Protocol("p", "blobs", "loso").folds(data.speakers, data.y)[0]
    run_fold(Row("spy", "blobs", spy_fit), data, fold, NormMode.parse("none"))
    fd = seen[-1]
    n_train = len(fold.split.train)
    assert len(fd.X_train) == 2 * n_train and len(fd.X_val) == len(fold.split.val)
    np.testing.assert_array_equal(fd.y_train, np.tile(data.y[fold.split.train], 2))
    np.testing.assert_allclose(fd.X_train[n_train:, 1:], fd.X_train[:n_train, 1:] + 5.0)
    assert set(fd.X_train[:, 0].astype(int)) == set(fold.split.train)  # no val or test row, clean or copy

    run_fold(Row("spy", "blobs", spy_fit), data, fold, NormMode.parse("transductive"))
    fd = seen[-1]
    np.testing.assert_allclose(fd.X_train[n_train:, 1:], fd.X_train[:n_train, 1:], atol=1e-5)
    with pytest.raises(ConfigError, match="copies"):
        InputData("bad", data.X, data.y, data.speakers, data.classes, copies=data.X[None, :5])


def test_early_views_are_the_training_rows_as_the_device_standardises_them_after_k_clips():
    """InputData.early_views: under a per-speaker norm the fit also sees the training clips standardised by the
    training prior updated with k of their speaker's clips (what online-N scores the test speaker with), after
    the transductive rows; validation rows are untouched, and without a per-speaker norm nothing is added."""
    data = replace(_blobs(), early_views=(1, 4))
    seen: list[FoldData] = []

    def spy_fit(fd: FoldData) -> Fitted:
        seen.append(fd)
        return Fitted(lambda X: np.zeros(len(X), dtype=np.int64), 32.0, None, 0)

    fold = Protocol("p", "blobs", "loso").folds(data.speakers, data.y)[0]
    s, n_train = fold.split, len(fold.split.train)
    run_fold(Row("spy", "blobs", spy_fit), data, fold, NormMode.parse("transductive"))
    fd = seen[-1]
    assert len(fd.X_train) == 3 * n_train and len(fd.X_val) == len(s.val)
    np.testing.assert_array_equal(fd.y_train, np.tile(data.y[s.train], 3))
    base = prior(data.X, data.speakers, s.train, prior_weight=EARLY_PRIOR_WEIGHT)
    for i, k in enumerate((1, 4), start=1):
        want = online(data.X, data.speakers, s.train, base, k, seed=1000 + k, orders=1)[0]
        np.testing.assert_allclose(fd.X_train[i * n_train : (i + 1) * n_train], want, rtol=1e-6)
    # one clip barely moves the prior: each speaker's own offset is still in its rows, unlike the transductive ones
    early, transductive_rows = fd.X_train[n_train : 2 * n_train, 1:], fd.X_train[:n_train, 1:]
    assert np.abs(early - transductive_rows).mean() > 0.5

    run_fold(Row("spy", "blobs", spy_fit), data, fold, NormMode.parse("none"))
    assert len(seen[-1].X_train) == n_train


def test_another_corpus_joins_every_folds_training_rows_only_in_this_corpus_classes():
    """`with_corpus`: the other corpus's clips of this corpus's classes (re-indexed, speakers named by corpus)
    and their copies are training rows in every fold, never validation or test; under a per-speaker norm each
    of its speakers is standardised by its own statistics, so a corpus offset as a whole arrives as if absent."""
    data = _blobs()
    rng = np.random.default_rng(1)
    X = data.X.copy()
    X[:, 1:] += 7.0  # another recording set-up: every feature moved
    X[:, 0] += 1000  # row ids apart from this corpus's
    other = InputData(
        "blobs2", X, data.y[::-1].copy(), data.speakers, ("c", "b", "x"),
        copies=np.stack([X + rng.normal(0, 0.01, X.shape).astype(np.float32)]),
    )  # fmt: skip
    both = with_corpus(data, other, "other", "blobs_both")
    e = both.extra
    keep = np.isin(np.array(other.classes)[other.y], data.classes)  # "x" is not one of ours
    assert len(e.y) == int(keep.sum()) and e.classes == data.classes and e.copies.shape[1] == len(e.y)
    assert [data.classes[v] for v in e.y] == [other.classes[v] for v in other.y[keep]]
    assert all(s.startswith("other:") for s in e.speakers)
    seen: list[FoldData] = []

    def spy_fit(fd: FoldData) -> Fitted:
        seen.append(fd)
        return Fitted(lambda X: np.zeros(len(X), dtype=np.int64), 32.0, None, 0)

    for fold in Protocol("p", "blobs", "loso").folds(both.speakers, both.y):
        n_train = len(fold.split.train)
        run_fold(Row("spy", "blobs", spy_fit), both, fold, NormMode.parse("none"))
        fd = seen[-1]
        assert len(fd.X_train) == n_train + 2 * len(e.y) and len(fd.X_val) == len(fold.split.val)
        np.testing.assert_array_equal(fd.y_train[n_train:], np.tile(e.y, 2))
        assert set(np.rint(fd.X_train[n_train:, 0]).astype(int)) == {int(i) for i in e.X[:, 0]}
        assert set(e.speakers) <= set(fd.train_speakers)
        assert not set(fd.val_speakers) & set(e.speakers)
    fold = Protocol("p", "blobs", "loso").folds(both.speakers, both.y)[0]
    run_fold(Row("spy", "blobs", spy_fit), both, fold, NormMode.parse("transductive"))
    fd, n_train = seen[-1], len(fold.split.train)
    mine = fd.X_train[:n_train, 1:]
    theirs = fd.X_train[n_train : n_train + len(e.y), 1:]
    assert abs(theirs.mean() - mine.mean()) < 0.1  # the +7 offset is gone with each speaker's own statistics
    with pytest.raises(ConfigError, match="no clip"):
        with_corpus(data, replace(other, classes=("x", "y", "z")), "other", "none_shared")
    with pytest.raises(ConfigError, match="both corpora"):
        replace(data, extra=InputData("same", data.X, data.y, data.speakers, data.classes))


def test_speaker_norm_lifts_uar_and_online_prior_is_chosen_on_validation():
    data = _blobs()
    data.X = data.X[:, 1:]  # drop the id column: normalisation acts on features
    fold = Protocol("p", "blobs", "loso").folds(data.speakers, data.y)[0]
    row = Row("logreg", "blobs", fit_sklearn("logreg"))
    none = run_fold(row, data, fold, NormMode.parse("none"))["norms"]["none"]
    out = run_fold(row, data, fold, NormMode.parse("transductive"), online_clips=(1, 20))
    assert set(out["norms"]) == {"transductive", "online-1", "online-20"}
    assert out["norms"]["transductive"]["uar"] > none["uar"]
    assert out["norms"]["transductive"]["uar"] >= 0.9
    for n in ("online-1", "online-20"):
        fig = out["norms"][n]
        assert fig["prior_weight"] in (1.0, 3.0, 10.0, 30.0) and set(fig["val_uar"]) == {
            "1.0",
            "3.0",
            "10.0",
            "30.0",
        }
        assert sum(map(sum, fig["confusion"])) == 3 * len(fold.split.test)  # three seeded orders pooled


def _synthetic(tmp_path: Path):
    root = tmp_path / "synth"
    spec = SyntheticSpec(
        n_per_class=6, n_speakers=3, duration=0.8, labels=("neutral", "angry", "sad"), seed=2
    )
    write_synthetic(spec, root)
    cache = FeatureCache(tmp_path / "cache")
    return {"vector": lambda dataset, r=None: vector_input(dataset, root, cache=cache)}


def test_si_table_rows_on_synthetic_data_resume_without_retraining(tmp_path: Path):
    inputs = _synthetic(tmp_path)
    calls = Counter()

    def counted(name, fit):
        def wrapper(fd):
            calls[name] += 1
            return fit(fd)

        return wrapper

    rows = [
        Row("logreg", "vector", counted("logreg", fit_sklearn("logreg"))),
        Row("svm", "vector", counted("svm", fit_sklearn("svm"))),
    ]
    protocol = Protocol("synthetic-loso", "synthetic", "loso")
    table = SITable(rows, [protocol], inputs=inputs)
    points = table.points(["none", "transductive"], online_clips=[1])
    assert len(points) == 2 * 2 * 3  # rows x norms x folds (3 speakers)
    narrow = Row("logreg", "vector", fit_sklearn("logreg"), protocols=("other",))  # a row for other protocols
    only_t = Row("svm", "vector", fit_sklearn("svm"), norms=("transductive",))  # ... and one norm only
    assert [
        (p["row"], p["norm"])
        for p in SITable([narrow, only_t], [protocol], inputs=inputs).points(["none", "transductive"])
    ] == [("svm", "transductive")] * 3
    sweep = Sweep(
        "si",
        table.objective,
        Grid(points=points, fixed={"v": 1, "seed": 0}),
        tmp_path,
        backend="serial",
        progress=False,
    )
    res = sweep.run()
    assert not res.errors, res.errors
    out = table.assemble(res.records)
    assert {(r["model"], r["norm"]) for r in out} == {
        (m, n) for m in ("logreg", "svm") for n in ("none", "transductive", "online-1")
    }
    for r in out:
        assert list(r)[: len(ROW_FIELDS)] == list(ROW_FIELDS)
        assert r["n_folds"] == 3 and r["complete"] and len(r["folds"]) == 3
        assert 0 <= r["uar"] <= 1 and 0 <= r["war"] <= 1 and r["dataset"] == "synthetic"
        assert r["protocol"] == "synthetic-loso" and r["input"] == "vector"
        assert np.asarray(r["confusion"]).sum() == (3 if r["norm"] == "online-1" else 1) * 18
    svm = next(r for r in out if r["model"] == "svm")
    assert svm["bits"] == 32 and svm["packed_kb"] == pytest.approx(4 * svm["params"] / 1000, rel=0.01)
    assert calls == {"logreg": 6, "svm": 6}
    again = Sweep(
        "si",
        table.objective,
        Grid(points=points, fixed={"v": 1, "seed": 0}),
        tmp_path,
        backend="serial",
        progress=False,
    )
    assert table.assemble(again.run().records) == out
    assert calls == {"logreg": 6, "svm": 6}  # nothing retrained


def test_several_training_seeds_pool_into_each_folds_figure(tmp_path: Path):
    """si_table --seed 0,1,2: each fold trained once per seed, and the fold's figure is its seeds' confusions
    pooled (the mean of their UARs, the test rows being the same); a fold missing a seed leaves the row partial,
    and one seed gives the row exactly as before (no `seeds` key)."""

    def fit(fd: FoldData) -> Fitted:  # seed 0 predicts the label (row id % 3), any other seed class 0
        return Fitted(
            lambda X: np.asarray(X[:, 0] % 3, np.int64) if fd.seed == 0 else np.zeros(len(X), np.int64),
            32.0,
            None,
            0,
        )

    data = replace(_blobs(), y=np.arange(len(_blobs().y)) % 3)  # column 0 (the row id) % 3 is the label
    table = SITable(
        [Row("m", "blobs", fit)], [Protocol("p", "blobs", "loso")], inputs={"blobs": lambda d, r=None: data}
    )
    points = [{**p, "seed": s} for p in table.points(["none"]) for s in (0, 1)]
    res = Sweep("seeds", table.objective, Grid(points=points, fixed={"v": 1}), tmp_path, backend="serial",
                progress=False).run()  # fmt: skip
    (row,) = table.assemble(res.records)
    assert row["seeds"] == [0, 1] and row["complete"] and row["n_folds"] == 5
    for f in row["folds"]:
        assert f["seeds"] == [0, 1] and f["seed_uar"][0] == 1.0 and f["seed_uar"][1] == pytest.approx(1 / 3)
        assert (
            f["uar"] == pytest.approx(np.mean(f["seed_uar"]), abs=1e-6)
            and np.sum(f["confusion"]) == f["n"] == 2 * 24
        )
    assert row["uar"] == pytest.approx(2 / 3)
    partial = table.assemble(
        [r for r in res.records if not (r["point"]["fold"] == 0 and r["point"]["seed"] == 1)]
    )
    assert not partial[0]["complete"]
    (one,) = table.assemble([r for r in res.records if r["point"]["seed"] == 0])
    assert "seeds" not in one and one["uar"] == 1.0 and "seeds" not in one["folds"][0]


def test_a_seed_asked_for_but_missing_everywhere_leaves_the_row_partial(tmp_path: Path):
    """si_table --seed 0,1 whose seed-1 points all failed: the records hold seed 0 in every fold, which alone looks
    like a complete one-seed row; against the seeds asked for it is partial. A point given twice is partial too
    (its confusion would count twice in the pooled fold)."""

    def fit(fd: FoldData) -> Fitted:
        return Fitted(lambda X: np.asarray(X[:, 0] % 3, np.int64), 32.0, None, 0)

    data = replace(_blobs(), y=np.arange(len(_blobs().y)) % 3)
    table = SITable(
        [Row("m", "blobs", fit)], [Protocol("p", "blobs", "loso")], inputs={"blobs": lambda d, r=None: data}
    )
    points = [{**p, "seed": s} for p in table.points(["none"]) for s in (0, 1)]
    res = Sweep("seeds", table.objective, Grid(points=points, fixed={"v": 1}), tmp_path, backend="serial",
                progress=False).run()  # fmt: skip
    seed0 = [r for r in res.records if r["point"]["seed"] == 0]
    (found,) = table.assemble(seed0)  # no seeds asked: the seeds found decide, as before
    assert found["complete"] and "seeds" not in found
    (asked,) = table.assemble(seed0, seeds=[0, 1])
    assert not asked["complete"] and asked["uar"] == found["uar"]
    (both,) = table.assemble(res.records, seeds=[0, 1])
    assert both["complete"] and both["seeds"] == [0, 1]
    (twice,) = table.assemble(res.records + [res.records[0]], seeds=[0, 1])
    assert not twice["complete"]


def test_laq_mlp_rows_report_bits_and_the_real_packed_size(tmp_path: Path):
    data = _synthetic(tmp_path)["vector"]("synthetic")
    fold = Protocol("p", "synthetic", "loso").folds(data.speakers, data.y)[0]
    quick = TrainConfig(epochs=3, patience=2)
    fp = run_fold(Row("laq_mlp", "vector", fit_laq_mlp("fp32", quick)), data, fold, NormMode.parse("none"))
    # qat-2 (every layer at 2 bits) stands in for the table's sensitivity@2.0: the same compress/QAT/pack path
    # without the bit search, which quantises the 169k-weight model ~90 times
    low = Row("laq_mlp", "vector", fit_laq_mlp("qat-2", quick, quick), "qat-2")
    q = run_fold(low, data, fold, NormMode.parse("none"))
    assert low.key == "laq_mlp@qat-2"
    assert fp["bits"] == 32 and fp["packed_kb"] > 4 * fp["params"] / 1000  # float32 weights + header
    assert q["bits"] <= 2.0 and q["packed_kb"] < fp["packed_kb"] / 8 and q["params"] == fp["params"]
    assert set(q["info"]["plan"].values()) == {2}

    # the fitted model's logits (for late fusion) give its decisions, on the rows fold_inputs gives the fit
    fd, X = fold_inputs(data, fold, NormMode.parse("none"))
    fitted = fit_laq_mlp("qat-2", quick, quick)(fd)
    z = fitted.scores(X[fold.split.test])
    assert z.shape == (len(fold.split.test), len(data.classes))
    np.testing.assert_array_equal(z.argmax(1), fitted.predict(X[fold.split.test]))


def test_an_own_model_without_input_shapes_is_a_config_error_before_training(monkeypatch):
    """A plain MLP registered as a ModelEntry for `fit_laq_mlp(model=...)`: without `input_shapes()` (which
    the ONNX export sizing the packed file needs, docs/input-kinds.md) every fold trained in full, then died
    with `AttributeError: 'MyMLP' object has no attribute 'input_shapes'`; now a one-line ConfigError naming
    the model and what it lacks, before any training."""
    import sys
    import types

    import torch

    import converters.train
    from converters.registry import MODELS, ModelEntry

    class MyMLP(torch.nn.Module):
        def __init__(self, in_features: int, num_classes: int) -> None:
            super().__init__()
            self.register_buffer("mean", torch.zeros(in_features))
            self.register_buffer("std", torch.ones(in_features))
            self.net = torch.nn.Sequential(
                torch.nn.Linear(in_features, 16), torch.nn.ReLU(), torch.nn.Linear(16, num_classes)
            )

        def set_normalization(self, mean, std) -> None:
            self.mean.copy_(mean)
            self.std.copy_(std)

        def forward(self, x):
            return self.net((x - self.mean) / self.std)

    module = types.ModuleType("my_models")
    module.my_mlp = lambda in_features, num_classes: MyMLP(in_features, num_classes)
    monkeypatch.setitem(sys.modules, "my_models", module)
    monkeypatch.setitem(MODELS, "my_mlp", ModelEntry("my_mlp", "my_models:my_mlp", "vector", "my own MLP"))

    def no_training(*args, **kwargs):
        raise AssertionError("trained before the model was checked")

    monkeypatch.setattr(converters.train, "train_classifier", no_training)
    rng = np.random.default_rng(0)
    fd = FoldData(
        rng.normal(size=(12, 5)),
        np.arange(12) % 3,
        rng.normal(size=(6, 5)),
        np.arange(6) % 3,
        ("a", "b", "c"),
    )
    with pytest.raises(ConfigError, match=r"model 'my_mlp' \(MyMLP\) has no input_shapes\(\)") as e:
        fit_laq_mlp("fp32", model="my_mlp")(fd)
    assert "\n" not in str(e.value) and "set_normalization" not in str(e.value)


def test_a_new_input_and_model_are_one_entry_each(tmp_path: Path):
    """How the functionals kind or a temporal model joins: an input loader and a Row, nothing else."""
    inputs = _synthetic(tmp_path)

    def frames(dataset, root=None):  # e.g. MFCC sequences [n, frames, d]: here the clip vector split in 4
        d = inputs["vector"](dataset)
        return InputData("frames", d.X[:, :176].reshape(len(d.X), 4, 44), d.y, d.speakers, d.classes)

    def fit_mean_of_frames(fd: FoldData) -> Fitted:
        inner = fit_sklearn("logreg")(
            FoldData(fd.X_train.mean(1), fd.y_train, fd.X_val.mean(1), fd.y_val, fd.classes)
        )
        return Fitted(lambda X: inner.predict(X.mean(1)), 32.0, inner.packed_kb, inner.params)

    table = SITable(
        [Row("frame_pool", "frames", fit_mean_of_frames)],
        [Protocol("synthetic-loso", "synthetic", "loso")],
        inputs={**inputs, "frames": frames},
    )
    (point,) = table.points(["transductive"], online_clips=[5], limit_folds=1)
    out = table.objective({**point, "seed": 0})
    assert set(out["norms"]) == {"transductive", "online-5"} and out["params"] > 0
    assert table.rows["frame_pool+frames"].key == "frame_pool+frames"


def test_functionals_mfcc_input_is_the_functionals_then_the_mfcc_means_of_the_same_clips(tmp_path: Path):
    root = tmp_path / "synthetic"
    write_synthetic(SyntheticSpec(n_per_class=2, n_speakers=2, duration=0.8, labels=("neutral", "sad")), root)
    cache = FeatureCache(tmp_path / "cache")
    f = functionals_input("synthetic", root, cache=cache)
    v = vector_input("synthetic", root, cache=cache)
    both = functionals_mfcc_input("synthetic", root, cache=cache)
    assert both.X.shape == (len(f.X), f.X.shape[1] + 40)
    np.testing.assert_array_equal(both.X[:, : f.X.shape[1]], f.X)
    np.testing.assert_array_equal(both.X[:, f.X.shape[1] :], v.X[:, :40])
    assert list(both.speakers) == list(f.speakers) and list(both.y) == list(f.y)
    assert "functionals_mfcc" in INPUTS


def test_what_a_fit_sees_does_not_depend_on_the_test_speakers_audio():
    """Audit: the variance floors and constant-feature mask of the per-speaker standardisation came from every row,
    the test speaker's included, so the test speaker's audio moved training features (up to 2 standard deviations
    on a RAVDESS fold). The floors now come from the fold's training and validation rows."""
    from dataclasses import replace as dc_replace

    data = _blobs()
    rng = np.random.default_rng(1)
    # a feature each speaker holds nearly still (its variance is floored, the floor relative to the pooled one)
    still = np.array([3.0 * int(s[1:]) for s in data.speakers]) + rng.normal(0, 1e-3, len(data.X))
    data = dc_replace(data, X=np.concatenate([data.X, still[:, None].astype(np.float32)], axis=1))
    fold = Protocol("p", "blobs", "loso").folds(data.speakers, data.y)[0]
    test = fold.split.test
    X2 = data.X.copy()
    X2[test, -1] = rng.normal(0, 50, len(test))  # the test speaker moves it a lot: the pooled variance grows
    a, _ = fold_inputs(data, fold, NormMode.parse("transductive"))
    b, _ = fold_inputs(dc_replace(data, X=X2), fold, NormMode.parse("transductive"))
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.X_val, b.X_val)


def test_the_other_corpus_rows_do_not_depend_on_the_fold_or_its_test_speaker():
    """`functionals_ext_aug_both`: the other corpus's rows are the same in every fold (floors from its own rows), the
    corpus's own rows are what they are without it, and the test speaker's audio (clips and copies) moves no
    training row, the other corpus's included (as `test_what_a_fit_sees_does_not_depend_on_the_test_speakers_audio`
    checks for the corpus alone)."""
    rng = np.random.default_rng(2)
    base = _blobs()
    still = np.array([3.0 * int(s[1:]) for s in base.speakers]) + rng.normal(0, 1e-3, len(base.X))
    X = np.concatenate([base.X, still[:, None]], axis=1).astype(np.float32)
    data = replace(base, X=X, copies=np.stack([X + rng.normal(0, 0.1, X.shape).astype(np.float32)]))
    other = replace(data, X=data.X + 5.0, copies=data.copies + 5.0)
    both = with_corpus(data, other, "other", "blobs_both")
    n_extra = 2 * len(both.extra.y)
    norm = NormMode.parse("transductive")
    extra_rows = []
    for fold in Protocol("p", "blobs", "loso").folds(data.speakers, data.y):
        alone, X_alone = fold_inputs(data, fold, norm)
        fd, X_both = fold_inputs(both, fold, norm)
        np.testing.assert_array_equal(fd.X_train[:-n_extra], alone.X_train)
        np.testing.assert_array_equal(fd.X_val, alone.X_val)
        np.testing.assert_array_equal(X_both, X_alone)  # the test rows too
        extra_rows.append(fd.X_train[-n_extra:])
        test = fold.split.test
        X2, C2 = data.X.copy(), data.copies.copy()
        X2[test, -1] = rng.normal(0, 50, len(test))
        C2[:, test, -1] = rng.normal(0, 50, len(test))
        moved = replace(both, X=X2, copies=C2)
        fd2, _ = fold_inputs(moved, fold, norm)
        np.testing.assert_array_equal(fd2.X_train, fd.X_train)
        np.testing.assert_array_equal(fd2.X_val, fd.X_val)
    for rows in extra_rows[1:]:
        np.testing.assert_array_equal(rows, extra_rows[0])


def _with_level(data: InputData, seed: int) -> InputData:
    """`data` with a feature constant by construction: a level of -26 dB that varies only by float rounding
    (each draw of the rounding is another rerun's features)."""
    level = -26.0 * (1 + np.random.default_rng(seed).normal(0, 3e-8, len(data.X)))
    return replace(data, X=np.concatenate([data.X, level[:, None]], axis=1).astype(np.float32))


def test_a_none_row_does_not_hang_on_the_float_rounding_of_a_constant_feature():
    """Audit, defect 2: the `none` rows' scalers blew a constant feature's rounding noise up to unit variance,
    so a rerun moved a row by 0.6 points. The scale is now floored at a fraction of |mean|, as `SpeakerNorm`'s is."""
    fit = fit_laq_mlp("fp32")
    fold = Protocol("p", "blobs", "loso").folds(_blobs().speakers, _blobs().y)[0]
    outs = []
    for seed in (0, 1):
        data = _with_level(_blobs(), seed)
        fd, X = fold_inputs(data, fold, NormMode.parse("none"))
        outs.append(fit(fd).predict(X[fold.split.test]))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_floored_std_keeps_real_spread_and_floors_rounding():
    from edge_ser.features.speaker_norm import RESOLUTION, floored_std

    std = floored_std([-26.0, 5.0, 0.0], [8e-7, 0.5, 0.0])
    np.testing.assert_allclose(std, [26 * RESOLUTION, 0.5, 1e-6])


def test_the_baselines_scaler_leaves_a_constant_feature_near_zero():
    """The same floor in the scikit-learn rows' scaler (they had StandardScaler: the rounding at unit variance)."""
    pytest.importorskip("sklearn")
    from converters.classical import make_pipeline

    X = _with_level(_blobs(), 0).X
    scale = make_pipeline("logreg").fit(X, _blobs().y).named_steps["scale"]
    z = scale.transform(X)
    assert np.abs(z[:, -1]).max() < 1e-2
    np.testing.assert_allclose(z[:, 1:-1].std(0), 1.0, rtol=1e-5)


def test_mixup_rows_mix_in_float_training_and_qat_and_choose_the_epoch_on_unmixed_validation(monkeypatch):
    """`mixup_rows`: ser_emodb's and ser_ravdess's 2-bit recipes with mixup (alpha MIXUP_ALPHA) given to the float
    training and to every QAT run, the validation UAR (on the unmixed rows) still choosing the epoch; the rows
    without it give no mixup."""
    import converters.compress as compress_mod
    import converters.train as train_mod
    from converters.si_eval import MIXUP_ALPHA, mixup_rows

    seen: dict[str, dict] = {}

    class Stop(Exception):
        pass

    def fake_train(net, Xt, yt, Xv, yv, cfg, *, progress=True, **kw):
        seen["float"] = {**kw, "balanced": cfg.class_balanced}
        return SimpleNamespace(model=net, best_epoch=1)

    def fake_compress(recipe, model, *a, train_kwargs=None, **kw):
        seen["qat"] = dict(train_kwargs or {})
        raise Stop

    monkeypatch.setattr(train_mod, "train_classifier", fake_train)
    monkeypatch.setattr(compress_mod, "compress", fake_compress)
    data = _blobs()
    fold = Protocol("p", "blobs", "loso").folds(data.speakers, data.y)[0]
    fd, _ = fold_inputs(data, fold, NormMode.parse("transductive"))
    rows = {r.key: r for r in mixup_rows()}
    assert set(rows) == {
        "functionals_mlp_mix@sensitivity@2.0+functionals_ext_aug",
        "functionals_mlp_bal_mix@sensitivity@2.0+functionals_ext_aug",
    }
    for key, row in rows.items():
        with pytest.raises(Stop):
            row.fit(replace(fd, X_train=fd.X_train.astype(np.float32)))
        assert seen["float"]["mixup"] == MIXUP_ALPHA and seen["qat"]["mixup"] == MIXUP_ALPHA
        assert seen["float"]["balanced"] == ("_bal_" in key)
        logits = np.eye(len(fd.classes))[fd.y_val]  # the validation rows, classified exactly
        assert seen["float"]["val_accuracy"](logits) == seen["qat"]["val_accuracy"](logits) == 1.0
    with pytest.raises(Stop):
        fit_laq_mlp("sensitivity@2.0", model="functionals_mlp")(fd)
    assert "mixup" not in seen["float"] and "mixup" not in seen["qat"]
    with pytest.raises(ConfigError, match="mixup must be >= 0"):
        fit_laq_mlp(mixup=-0.1)
