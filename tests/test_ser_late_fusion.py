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


def _data(seed: int = 0, counts: tuple[int, ...] = (8, 8, 8)) -> InputData:
    """5 speakers x 3 classes (`counts` clips each); the features separate the classes only weakly once each
    speaker's offset is removed, so a second branch has something to add."""
    rng = np.random.default_rng(seed)
    X, y, spk = [], [], []
    for s in range(5):
        offset = rng.normal(0, 3, 4)
        for c, n in enumerate(counts):
            X.append(offset + np.eye(4)[c] * 0.6 + rng.normal(0, 1.0, (n, 4)))
            y += [c] * n
            spk += [f"s{s}"] * n
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


def test_a_temporal_branch_that_knows_only_its_prior_leaves_the_functionals_decision():
    """Its training shares are divided out, and the fused prior is uniform like the balanced functionals MLP's:
    a temporal model that outputs its class prior adds nothing, on skewed classes too."""
    data = _data(1, counts=(14, 7, 3))
    fold = Protocol("p", "blobs", "loso").folds(data.speakers, data.y)[0]
    shares = np.bincount(data.y[fold.split.train], minlength=3) / len(fold.split.train)
    r = lf.run_fold(data, fold, _temporal(data, fold, np.tile(shares, (len(data.y), 1))), fit=_fit())
    assert r["temporal"]["uar"] == pytest.approx(1 / 3)  # every clip the commonest class
    assert r["fused"]["confusion"] == r["functionals"]["confusion"]


def test_other_folds_or_missing_clips_are_refused():
    data = _data()
    folds = Protocol("p", "blobs", "loso").folds(data.speakers, data.y)
    probs = np.full((len(data.y), 3), 1 / 3)
    with pytest.raises(ConfigError, match="not the same folds"):
        lf.run_fold(data, folds[0], _temporal(data, folds[1], probs), fit=_fit())
    t = _temporal(data, folds[0], probs)
    t["test"].pop(data.info["clips"][folds[0].split.test[0]])
    with pytest.raises(ConfigError, match="other test clips"):
        lf.run_fold(data, folds[0], t, fit=_fit())


def test_the_fold_is_the_temporal_runs_own_and_says_whether_it_is_the_tables():
    data = _data()
    folds = Protocol("p", "blobs", "loso").folds(data.speakers, data.y)
    probs = np.full((len(data.y), 3), 1 / 3)
    same, is_table = lf.clip_fold(data, _temporal(data, folds[0], probs), folds[0])
    assert is_table and same.split == folds[0].split and same.name == folds[0].name
    other, is_table = lf.clip_fold(data, _temporal(data, folds[1], probs), folds[0])
    assert not is_table and other.name == folds[0].name
    np.testing.assert_array_equal(other.split.test, folds[1].split.test)
    assert len(other.split.train) == len(data.y) - len(folds[1].split.val) - len(folds[1].split.test)
    bad = _temporal(data, folds[0], probs)
    bad["val"]["nope.wav"] = probs[0]
    with pytest.raises(ConfigError, match="lacks"):
        lf.clip_fold(data, bad, folds[0])


def _run_file(path, protocol: str, fold: int, probabilities: bool = True):
    row = {"fold": fold, "uar": 0.5, "clips": {"val": ["a.wav"], "test": ["b.wav"]}}
    if probabilities:
        row["probabilities"] = {k: [[1.0, 0.0]] for k in ("val", "test", "q_val", "q_test")}
    path.write_text(json.dumps({"protocol": protocol, "classes": ["x", "y"], "rows": [row]}))
    return path


def test_runs_are_merged_by_fold_and_must_share_a_protocol_and_hold_probabilities(tmp_path):
    a = _run_file(tmp_path / "a.json", "emodb-10fold-x3", 0)
    b = _run_file(tmp_path / "b.json", "emodb-10fold-x3", 5)
    protocol, rows = lf.temporal_rows([a, b], "q")
    assert protocol == "emodb-10fold-x3" and sorted(rows) == [0, 5]
    np.testing.assert_array_equal(rows[5]["test"]["b.wav"], [1.0, 0.0])
    loso = _run_file(tmp_path / "c.json", "emodb-loso", 1)
    with pytest.raises(ConfigError, match="mix protocols"):
        lf.temporal_rows([a, loso], "q")
    old = _run_file(tmp_path / "old.json", "emodb-loso", 0, probabilities=False)
    with pytest.raises(ConfigError, match="no q clip probabilities"):
        lf.temporal_rows([old], "q")


def test_si_table_rows_of_a_split_temporal_run_and_of_the_fusion(tmp_path, monkeypatch):
    """benchmarks/si_table.py reads a temporal run split over two processes as one row per model (float, 2-bit)
    with the run's protocol and norm, partial while folds are missing, and the fusion's row with both sizes."""
    import benchmarks.si_table as si

    monkeypatch.setattr(si, "RESULTS", tmp_path)
    split_run = ("timnet_10fold_spknorm_a", "timnet_10fold_spknorm_b")
    monkeypatch.setattr(si, "TEMPORAL", {split_run: ("timnet", "mfcc frames")})
    cfg = {"laq": "sensitivity@2.0", "speaker_norm": True}
    for tag, folds in (("a", (0, 1)), ("b", (2,))):
        rows = [
            {"fold": k, "uar": 0.6 + k / 100, "war": 0.6, "q_uar": 0.5, "q_war": 0.5, "bits": 2.0, "packed_kb": 78.0,
             "params": 104_496}
            for k in folds
        ]  # fmt: skip
        run = {"protocol": "emodb-10fold-x3", "config": cfg, "folds_total": 30, "rows": rows}
        (tmp_path / f"timnet_10fold_spknorm_{tag}.json").write_text(json.dumps(run))
    fold = {
        "fused": {"uar": 0.9, "war": 0.9}, "functionals_bits": 1.5, "temporal_bits": 2.0, "functionals_kb": 8.0,
        "temporal_kb": 78.0, "functionals_params": 23_303, "temporal_params": 104_496,
    }  # fmt: skip
    fusion = {"protocol": "emodb-loso", "folds_total": 10, "folds": [fold] * 10}
    (tmp_path / "ser_late_fusion.json").write_text(json.dumps(fusion))
    rows = si.temporal_rows()
    fused = [r for r in rows if r["model"].startswith("late_fusion")]
    assert len(fused) == 1 and fused[0]["complete"] and fused[0]["packed_kb"] == 86.0
    assert fused[0]["bits"] == pytest.approx((1.5 * 23_303 + 2.0 * 104_496) / (23_303 + 104_496), abs=1e-4)
    timnet = [r for r in rows if r["model"].startswith("timnet")]
    assert [r["model"] for r in timnet] == ["timnet", "timnet@sensitivity@2.0"]
    for r in timnet:
        assert (r["protocol"], r["norm"], r["n_folds"], r["complete"]) == (
            "emodb-10fold-x3",
            "transductive",
            3,
            False,
        )
    assert timnet[0]["uar"] == pytest.approx(0.61)


def test_pooled_weights_use_only_the_other_folds_validation_clips_and_reproduce_each_folds_rule():
    """`evidence` fused with a flat rule gives the fold's own fused decision for any weights; the pooled choice
    for fold k reads the other folds' validation clips less fold k's test clips, so a temporal branch that is
    right everywhere except on fold k's test speaker is still chosen there, and then costs that fold."""
    data = _data(2)
    folds = Protocol("p", "blobs", "loso").folds(data.speakers, data.y)
    sure = np.full((len(data.y), 3), 0.05)
    sure[np.arange(len(data.y)), data.y] = 0.9
    fair = np.where(sure > 0.5, 0.5, 0.25)  # a branch right on every clip, but not sure of it
    fair[::4] = np.roll(fair[::4], 1, axis=1)  # and wrong on every 4th
    out = lf.branch_outputs(data, folds[0], _temporal(data, folds[0], fair), fit=_fit())
    rule = out["rule"]
    flat = lf.FusionRule(rule.labels, tuple(lf.BranchRule(b) for b in lf.BRANCHES), rule.prior)
    ev = lf.evidence(out)
    for w in ({"functionals": 1.0, "temporal": 0.5}, {"functionals": 0.25, "temporal": 1.0}):
        own = rule.with_params({}, w).fuse({b: out["post"][b]["val"] for b in lf.BRANCHES})
        np.testing.assert_allclose(flat.with_params({}, w).fuse(ev), own, atol=1e-6)
    outs = [lf.branch_outputs(data, f, _temporal(data, f, sure), fit=_fit()) for f in folds]
    weights, scores = lf.pooled_weights(outs, 0)
    assert weights["temporal"] > 0 and scores["uar"] == 1.0
    # the pool never holds fold 0's test clips: poison them in every other fold's validation part
    test0 = set(outs[0]["test_clips"])
    for out in outs[1:]:
        rows = [i for i, c in enumerate(out["val_clips"]) if c in test0]
        out["post"]["temporal"]["val"][rows] = np.roll(out["post"]["temporal"]["val"][rows], 1, axis=1)
    assert lf.pooled_weights(outs, 0)[1]["uar"] == 1.0
    r = lf.fuse_fold(outs[0], data.classes, weights)
    assert r["weights"] == weights and r["fused"]["uar"] == 1.0
