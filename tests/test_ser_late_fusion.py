"""benchmarks/ser_late_fusion.py: the functionals branch and a temporal branch's stored clip probabilities,
calibrated and fused on the validation speaker only, and refused when the folds are not the same."""

from __future__ import annotations

import json

import numpy as np
import pytest

import benchmarks.ser_late_fusion as lf
from converters.protocol import Protocol
from converters.si_eval import InputData, fit_laq_mlp
from converters.train import TrainConfig
from edge_ser.errors import ConfigError


def _data(seed: int = 0) -> InputData:
    """5 speakers x 3 classes x 8 clips; the features separate the classes only weakly once each speaker's offset
    is removed, so a second branch has something to add."""
    rng = np.random.default_rng(seed)
    X, y, spk = [], [], []
    for s in range(5):
        offset = rng.normal(0, 3, 4)
        for c in range(3):
            X.append(offset + np.eye(4)[c] * 0.6 + rng.normal(0, 1.0, (8, 4)))
            y += [c] * 8
            spk += [f"s{s}"] * 8
    X = np.concatenate(X).astype(np.float32)
    clips = [f"c{i:03d}.wav" for i in range(len(X))]
    return InputData("blobs", X, np.array(y), np.array(spk), ("a", "b", "c"), {"clips": clips})


def _temporal(data: InputData, fold, probs: np.ndarray) -> dict:
    names = data.info["clips"]
    return {
        "fold": 0,
        "test_speaker": fold.test_speakers[0],
        "val_speaker": ",".join(fold.val_speakers),
        "packed_kb": 1.0,
        "bits": 2.0,
        **{p: {names[i]: probs[i] for i in getattr(fold.split, p)} for p in ("val", "test")},
    }


def _fit():
    quick = TrainConfig(epochs=3, patience=2)
    return fit_laq_mlp("qat-2", quick, quick, model="functionals_mlp", balanced=True)


def test_a_sure_temporal_branch_is_chosen_on_validation_and_lifts_the_test_speaker():
    data = _data()
    fold = Protocol("p", "blobs", "loso").folds(data.speakers, data.y)[0]
    sure = np.full((len(data.y), 3), 0.05)
    sure[np.arange(len(data.y)), data.y] = 0.9  # a temporal model right on every clip
    r = lf.run_fold(data, fold, _temporal(data, fold, sure), fit=_fit())
    assert r["temporal"]["uar"] == 1.0
    assert r["weights"]["temporal"] > 0  # chosen on the validation speaker, where it is right too
    assert r["fused"]["uar"] >= r["functionals"]["uar"] and r["fused"]["uar"] == 1.0
    assert r["functionals_bits"] <= 2.0 and r["temporal_kb"] == 1.0


def test_a_flat_temporal_branch_leaves_the_functionals_decision():
    data = _data(1)
    fold = Protocol("p", "blobs", "loso").folds(data.speakers, data.y)[0]
    flat = np.full((len(data.y), 3), 1 / 3)
    r = lf.run_fold(data, fold, _temporal(data, fold, flat), fit=_fit())
    assert r["temporal"]["uar"] == pytest.approx(1 / 3)  # every clip the first class
    assert r["fused"]["uar"] == pytest.approx(r["functionals"]["uar"])


def test_other_folds_or_missing_clips_are_refused():
    data = _data()
    folds = Protocol("p", "blobs", "loso").folds(data.speakers, data.y)
    probs = np.full((len(data.y), 3), 1 / 3)
    with pytest.raises(ConfigError, match="not the same folds"):
        lf.run_fold(data, folds[0], _temporal(data, folds[1], probs), fit=_fit())
    t = _temporal(data, folds[0], probs)
    t["test"].pop(data.info["clips"][folds[0].split.test[0]])
    with pytest.raises(ConfigError, match="no test probabilities"):
        lf.run_fold(data, folds[0], t, fit=_fit())


def test_a_run_without_clip_probabilities_is_named(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"classes": ["a"], "rows": [{"fold": 0, "uar": 0.5}]}))
    with pytest.raises(ConfigError, match="no q clip probabilities"):
        lf.temporal_rows(path, "q")
