"""benchmarks/ship_ser.py's recipe choice: inner folds of speaker pairs, the variant with the best mean of clean
+ noisy validation UAR, and the row bookkeeping the nested evaluation (benchmarks/ship_ser_nested.py) relies on."""

from __future__ import annotations

import numpy as np
import pytest

import benchmarks.ship_ser as ship
from converters.speaker_norm import transductive


def test_inner_folds_pair_sorted_speakers_and_cover_each_once():
    assert ship.inner_folds(["12", "01", "03", "02"]) == [["01", "02"], ["03", "12"]]
    odd = ship.inner_folds([f"{i:02d}" for i in range(1, 12)])  # a leave-one-out fold of RAVDESS: 11 actors
    assert [len(f) for f in odd] == [2, 2, 2, 2, 3]
    assert sorted(s for f in odd for s in f) == [f"{i:02d}" for i in range(1, 12)]


def _rows(n_speakers: int = 4, clips: int = 6, views: int = 5, dim: int = 3) -> ship.Rows:
    rng = np.random.default_rng(0)
    n = n_speakers * clips
    spk = np.repeat([f"{i:02d}" for i in range(n_speakers)], clips)
    y = np.tile(np.arange(clips) % 3, n_speakers)
    X = rng.normal(size=(views * n, dim)).astype(np.float32)
    spk_all, copy_of = np.tile(spk, views), np.repeat(np.arange(views), n)
    groups = np.char.add(np.char.add(spk_all, "#"), copy_of.astype(str))
    return ship.Rows(X, transductive(X, groups), np.tile(y, views), spk_all, copy_of, groups, ["a", "b", "c"])


def test_choose_variant_takes_the_best_mean_of_clean_and_noisy_and_the_earlier_on_a_tie(monkeypatch):
    rows = _rows()
    seen: list[tuple] = []
    table = {  # (clean, noisy) validation UAR per variant, the same on every fold
        (0, False, False): (0.9, 0.1),  # best clean, poor noisy: mean 0.5
        (2, True, False): (0.6, 0.6),  # mean 0.6
        (2, True, True): (0.7, 0.5),  # mean 0.6 too: a tie, so the earlier one wins
    }

    def fake_stage1(r, variant, val_spk, recipe, log=True):
        seen.append((variant, tuple(val_spk)))
        clean, noisy = table[variant]
        return {"figures": {"val_uar": clean, "val_uar_noisy": noisy}}

    monkeypatch.setattr(ship, "stage1", fake_stage1)
    choice = ship.choose_variant(rows, list(table), "sensitivity@2.0")
    assert choice["chosen"] == (2, True, False)
    assert choice["folds"] == [["00", "01"], ["02", "03"]]
    assert choice["mean"][(0, False, False)] == pytest.approx(0.5)
    assert {fold for _, fold in seen} == {("00", "01"), ("02", "03")}  # every variant on every inner fold
    assert len(seen) == len(table) * 2


def test_rows_variants_subsets_and_dropped_classes():
    rows = _rows()
    speed = rows.copy_of > ship.NOISY_COPIES
    np.testing.assert_array_equal(rows.speed_rows, speed)
    np.testing.assert_array_equal(rows.trained_on((0, False, False)), rows.copy_of == 0)
    np.testing.assert_array_equal(rows.trained_on((2, True, False)), np.ones(len(rows.y), bool))
    np.testing.assert_array_equal(rows.trained_on((2, False, True)), ~speed)
    sub = rows.subset(rows.spk != "02")
    assert sub.speakers() == ["00", "01", "03"]
    np.testing.assert_array_equal(sub.Z, rows.Z[rows.spk != "02"])  # per (speaker, copy): unchanged
    dropped = rows.without_class("b")
    assert dropped.classes == ["a", "c"] and set(dropped.y.tolist()) == {0, 1}
    keep = rows.y != 1
    np.testing.assert_allclose(dropped.Z, transductive(rows.X[keep], rows.groups[keep]))
