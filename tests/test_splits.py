"""Splits: stratified 80/10/10 and speaker-independent (LOSO, group k-fold), deterministic and disjoint."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from converters.data import Split, group_kfold, leave_one_speaker_out, load_emodb, stratified_split
from edge_ser.errors import ConfigError

PARTS = ("train", "val", "test")


def _labels() -> np.ndarray:
    """EMODB-like class sizes plus a class of 3 and one of 1, shuffled."""
    sizes = {
        "angry": 127,
        "boredom": 81,
        "disgust": 46,
        "fear": 69,
        "happy": 71,
        "sad": 62,
        "neutral": 79,
        "tiny": 3,
        "single": 1,
    }
    labels = np.array([name for name, n in sizes.items() for _ in range(n)])
    return labels[np.random.default_rng(7).permutation(labels.size)]


def _speakers(n_speakers: int = 8, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Unequal numbers of utterances per speaker, each with a few of 5 classes."""
    rng = np.random.default_rng(seed)
    speakers, labels = [], []
    for s in range(n_speakers):
        n = int(rng.integers(15, 60))
        speakers += [f"spk{s:02d}"] * n
        labels += list(rng.choice(["a", "b", "c", "d", "e"], n))
    return np.array(speakers), np.array(labels)


def _check_partition(split: Split, n: int) -> None:
    allidx = np.concatenate([split.train, split.val, split.test])
    assert np.array_equal(np.sort(allidx), np.arange(n)), "parts must be disjoint and cover every index"


def _check_groups_disjoint(split: Split, groups: np.ndarray) -> None:
    sides = [set(groups[getattr(split, p)]) for p in PARTS]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])


# -------------------------------------------------------------------------------------------- stratified
def test_stratified_fractions_cover_and_classes():
    labels = _labels()
    split = stratified_split(labels, seed=0)
    _check_partition(split, labels.size)
    n_classes = np.unique(labels).size
    for part, f in zip(PARTS, (0.8, 0.1, 0.1), strict=True):
        assert abs(getattr(split, part).size - f * labels.size) <= n_classes, part
    for name, count in Counter(labels).items():
        per_part = [int(np.sum(labels[getattr(split, p)] == name)) for p in PARTS]
        assert sum(per_part) == count
        if count >= 3:
            assert min(per_part) >= 1, f"class {name} missing from a part: {per_part}"
        for got, f in zip(per_part, (0.8, 0.1, 0.1), strict=True):
            assert abs(got - f * count) <= 1.0 or count < 5  # largest remainder; tiny classes get >= 1 each
    assert dict(
        zip(PARTS, (int(np.sum(labels[getattr(split, p)] == "single")) for p in PARTS), strict=True)
    ) == {
        "train": 1,
        "val": 0,
        "test": 0,
    }


def test_stratified_is_deterministic_for_a_seed():
    labels = _labels()
    a, b, c = (
        stratified_split(labels, seed=5),
        stratified_split(labels, seed=5),
        stratified_split(labels, seed=6),
    )
    assert a == b and a.to_dict() == b.to_dict()
    assert a != c and not np.array_equal(a.test, c.test)
    assert a.sizes() == c.sizes()  # the allocation depends only on the class sizes


def test_stratified_other_fractions_and_int_labels():
    labels = np.repeat(np.arange(4), 25)
    split = stratified_split(labels, fractions=(0.7, 0.0, 0.3), seed=1)
    assert split.val.size == 0 and split.sizes() == {"train": 72, "val": 0, "test": 28}
    _check_partition(split, labels.size)


@pytest.mark.parametrize(
    "fractions", [(0.8, 0.1), (0.8, 0.1, 0.2), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1), (0.8, float("nan"), 0.2)]
)
def test_stratified_bad_fractions(fractions):
    with pytest.raises(ConfigError):
        stratified_split(["a", "b", "c"], fractions=fractions)


def test_stratified_empty_labels():
    with pytest.raises(ConfigError):
        stratified_split([])


def test_split_json_round_trip_and_validation():
    split = stratified_split(_labels(), seed=2)
    again = Split.from_dict(json.loads(json.dumps(split.to_dict())))
    assert again == split and again.train.dtype == np.int64
    with pytest.raises(ConfigError, match="missing"):
        Split.from_dict({"train": [0], "test": [1]})
    with pytest.raises(ConfigError, match="overlap"):
        Split([0, 1], [1], [2])
    with pytest.raises(ConfigError):
        Split([0.5], [], [1])
    with pytest.raises(ConfigError):
        Split([-1], [], [1])
    assert Split.from_dict({"train": [2, 0], "val": [], "test": [1]}).train.tolist() == [0, 2]


# ------------------------------------------------------------------------------------------------ LOSO
def _check_loso(
    speakers: np.ndarray, labels: np.ndarray | None, val_speakers: int
) -> list[tuple[str, Split]]:
    folds = list(leave_one_speaker_out(speakers, labels, val_speakers=val_speakers, seed=0))
    names = sorted(set(speakers))
    assert [name for name, _ in folds] == names  # each speaker is the test speaker exactly once, in order
    for name, split in folds:
        _check_partition(split, speakers.size)
        _check_groups_disjoint(split, speakers)
        assert set(speakers[split.test]) == {name}
        assert len(set(speakers[split.val])) == val_speakers
        assert len(set(speakers[split.train])) == len(names) - 1 - val_speakers
    return folds


def test_loso_generated_speakers():
    speakers, labels = _speakers()
    folds = _check_loso(speakers, None, 1)
    _check_loso(speakers, labels, 2)
    _check_loso(speakers, None, 0)
    again = list(leave_one_speaker_out(speakers, val_speakers=1, seed=0))
    assert all(a == b for (_, a), (_, b) in zip(folds, again, strict=True))
    val_of = [tuple(sorted(set(speakers[s.val]))) for _, s in folds]
    other = [tuple(sorted(set(speakers[s.val]))) for _, s in leave_one_speaker_out(speakers, seed=1)]
    assert val_of != other  # the seed picks which speakers serve as validation
    assert Counter(v for (v,) in val_of) == {name: 1 for name in set(speakers)}  # each speaker validates once


def test_loso_prefers_val_speakers_covering_all_classes():
    speakers = np.array(["a"] * 4 + ["b"] * 4 + ["c"] * 4 + ["d"] * 4)
    labels = np.array(["x", "y", "x", "y"] + ["x"] * 4 + ["x", "y", "x", "y"] + ["y"] * 4)
    for name, split in leave_one_speaker_out(speakers, labels, val_speakers=1, seed=0):
        if name in ("b", "d"):
            assert set(labels[split.val]) == {"x", "y"}


def test_loso_bad_args():
    speakers, labels = _speakers(4)
    with pytest.raises(ConfigError):
        next(leave_one_speaker_out(speakers, val_speakers=3))
    with pytest.raises(ConfigError):
        next(leave_one_speaker_out(["only"] * 5))
    with pytest.raises(ConfigError):
        next(leave_one_speaker_out(speakers, labels[:-1]))
    with pytest.raises(ConfigError):
        next(leave_one_speaker_out([]))
    with pytest.raises(ConfigError):
        next(leave_one_speaker_out(speakers, val_speakers=-1))


# ------------------------------------------------------------------------------------------ group k-fold
def test_group_kfold_generated():
    speakers, _ = _speakers(11)
    folds = group_kfold(speakers, k=4, seed=0)
    assert len(folds) == 4
    sizes = Counter(speakers)
    for i, split in enumerate(folds):
        _check_partition(split, speakers.size)
        _check_groups_disjoint(split, speakers)
        assert np.array_equal(split.val, folds[(i + 1) % 4].test)
    tests = [frozenset(speakers[s.test]) for s in folds]
    assert sorted(g for t in tests for g in t) == sorted(sizes)  # every group is tested exactly once
    totals = [s.test.size for s in folds]
    assert max(totals) - min(totals) <= max(sizes.values())  # greedy largest-first keeps folds balanced
    assert group_kfold(speakers, k=4, seed=0) == folds


def test_group_kfold_seed_breaks_ties_and_no_val():
    groups = np.repeat([f"g{i}" for i in range(12)], 10)  # equal sizes, like RAVDESS actors
    a, b = group_kfold(groups, k=3, seed=0), group_kfold(groups, k=3, seed=1)
    assert all(s.test.size == 40 for s in a)
    assert [set(groups[s.test]) for s in a] != [set(groups[s.test]) for s in b]
    two = group_kfold(groups, k=2, with_val=False)
    assert all(s.val.size == 0 and s.train.size == 60 for s in two)
    _check_groups_disjoint(two[0], groups)


@pytest.mark.parametrize("kwargs", [{"k": 13}, {"k": 2}, {"k": 1, "with_val": False}, {"k": 2.5}])
def test_group_kfold_bad_args(kwargs):
    groups = np.repeat([f"g{i}" for i in range(12)], 3)
    with pytest.raises(ConfigError):
        group_kfold(groups, **kwargs)


# ---------------------------------------------------------------------------------------- real EMODB
@pytest.mark.data
def test_speaker_independent_on_emodb(emodb_dir):
    records = load_emodb(emodb_dir)
    speakers = np.array([r.speaker for r in records])
    labels = np.array([r.label for r in records])
    folds = _check_loso(speakers, labels, 1)
    assert len(folds) == 10
    for _, split in folds:
        assert set(labels[split.val]) == set(labels)  # every EMODB speaker has every emotion
    for split in group_kfold(speakers, k=5, seed=0):
        _check_partition(split, speakers.size)
        _check_groups_disjoint(split, speakers)
        assert len(set(speakers[split.test])) == 2
    strat = stratified_split(labels, seed=0)
    assert strat.sizes() == {"train": 428, "val": 54, "test": 53}  # largest remainder per class


def test_a_speaker_split_refuses_files_with_no_speaker_beside_named_ones():
    """Files that name no speaker are pooled as "unknown": beside named speakers that group can be the same
    people, so `--split speaker` (and zoo's LOSO) refuse, saying how to name the files; all unknown stays the
    one-speaker error, which now says the naming rule too."""
    from converters.data.splits import check_named_speakers
    from converters.pipeline import split_indices

    y = np.arange(12) % 3
    mixed = ["spk03"] * 4 + ["spk08"] * 4 + ["unknown"] * 4
    with pytest.raises(ConfigError, match="mine: 4 of 12 files name no speaker"):
        split_indices(y, mixed, "speaker", k=3, name="mine")
    split_indices(y, mixed, "random")  # a random split does not depend on the speakers
    check_named_speakers(["unknown"] * 3)  # one pooled group alone: the speaker count says what is wrong
    with pytest.raises(ConfigError, match="<speaker>_<anything>"):
        split_indices(y, ["unknown"] * 12, "speaker", k=2)
