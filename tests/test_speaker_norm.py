"""Speaker normalisation: the device's running statistics (SpeakerNorm) and the host's none / transductive /
online-N modes built on it."""

from __future__ import annotations

import numpy as np
import pytest

from converters.speaker_norm import NormMode, online, prior, transductive
from edge_ser.errors import ConfigError
from edge_ser.features.speaker_norm import SpeakerNorm


def _speakers(n_speakers: int = 4, per: int = 30, d: int = 6, seed: int = 0, spread: float = 5.0):
    """Clips whose mean and scale depend on the speaker (what per-speaker normalisation removes)."""
    rng = np.random.default_rng(seed)
    X, spk = [], []
    for s in range(n_speakers):
        offset = rng.normal(0, spread, d)
        scale = rng.uniform(0.5, 3, d) if spread > 1 else rng.uniform(0.8, 1.5, d)
        X.append(offset + scale * rng.normal(0, 1, (per, d)))
        spk += [f"s{s}"] * per
    return np.concatenate(X), np.array(spk)


def test_running_statistics_equal_batch_statistics_in_any_chunking():
    X, _ = _speakers(1, 50)
    norm = SpeakerNorm(np.zeros(6), np.ones(6), prior_weight=0)
    for chunk in (X[:1], X[1:7], X[7:8], X[8:]):
        norm.update(chunk)
    assert norm.count == 50
    np.testing.assert_allclose(norm.mean, X.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(norm.var, X.var(0), rtol=1e-10)


def test_prior_counts_as_pseudo_clips():
    """With prior weight w the mean is (w * prior + sum x) / (w + n); the variance pools the prior's."""
    norm = SpeakerNorm([0.0], [4.0], prior_weight=3)
    norm.update([[2.0]])
    assert norm.mean[0] == pytest.approx(2.0 / 4)
    # M2 = 3 * 4 (prior) + 0 (one clip) + (2 - 0)^2 * 3 * 1 / 4
    assert norm.var[0] == pytest.approx((12 + 4 * 3 / 4) / 4)
    assert np.allclose(SpeakerNorm([1.0], [4.0], prior_weight=5).apply([3.0]), [1.0])  # before any clip


def test_transductive_equals_per_speaker_z_scores():
    X, spk = _speakers()
    Z = transductive(X, spk)
    for s in np.unique(spk):
        rows = spk == s
        expected = (X[rows] - X[rows].mean(0)) / X[rows].std(0)
        np.testing.assert_allclose(Z[rows], expected, rtol=1e-5, atol=1e-5)
    assert Z.dtype == np.float32 and Z.shape == X.shape


def test_transductive_on_frame_sequences_uses_every_frame_of_the_speaker():
    rng = np.random.default_rng(1)
    X = rng.normal(3, 2, (8, 5, 4))  # [clips, frames, d]
    spk = np.array(["a"] * 4 + ["b"] * 4)
    Z = transductive(X, spk)
    frames = X[:4].reshape(-1, 4)
    np.testing.assert_allclose(Z[:4], (X[:4] - frames.mean(0)) / frames.std(0), rtol=1e-5, atol=1e-5)


def test_online_after_all_clips_approaches_transductive():
    X, spk = _speakers(per=200, spread=1.0)
    train, test = np.flatnonzero(spk != "s3"), np.flatnonzero(spk == "s3")
    Z = transductive(X, spk)[test]
    base = prior(X, spk, train, prior_weight=5)
    errors = []
    for clips in (1, 20, 200):
        (view,) = online(X, spk, test, base, clips, orders=1)
        errors.append(float(np.abs(view - Z).mean()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.05  # 200 clips against a prior worth 5: within a few hundredths of the z-scores
    assert base.count == 0  # online() leaves the prior reset
    (exact,) = online(X, spk, test, prior(X, spk, train, prior_weight=0), 200, orders=1)
    np.testing.assert_allclose(exact, Z, rtol=1e-5, atol=1e-5)  # no prior, every clip: transductive


def test_online_orders_differ_and_are_seeded():
    X, spk = _speakers()
    base = prior(X, spk, np.flatnonzero(spk != "s0"), prior_weight=1)
    rows = np.flatnonzero(spk == "s0")
    a = online(X, spk, rows, base, 3, seed=4, orders=2)
    b = online(X, spk, rows, base, 3, seed=4, orders=2)
    assert len(a) == 2 and not np.allclose(a[0], a[1])
    np.testing.assert_array_equal(a[0], b[0])


def test_prior_is_the_mean_within_speaker_variance_of_training():
    X, spk = _speakers()
    norm = SpeakerNorm.from_speakers(X, spk)
    per = [X[spk == s].var(0) for s in np.unique(spk)]
    np.testing.assert_allclose(norm.prior_var, np.mean(per, axis=0))
    assert np.all(norm.prior_var < X.var(0))  # the pooled variance also holds the spread between speakers


def test_reset_forgets_the_speaker():
    norm = SpeakerNorm(np.zeros(3), np.ones(3), prior_weight=2)
    fresh = norm.apply(np.ones(3))
    norm.update(np.full((5, 3), 7.0))
    assert norm.count == 5 and not np.allclose(norm.apply(np.ones(3)), fresh)
    norm.reset()
    assert norm.count == 0
    np.testing.assert_array_equal(norm.apply(np.ones(3)), fresh)


def test_round_trip_and_bad_values_name_the_field():
    norm = SpeakerNorm([0.5, -1.0], [2.0, 0.25], prior_weight=4, var_floor=1e-3)
    again = SpeakerNorm.from_dict(norm.to_dict())
    assert again.to_dict() == norm.to_dict()
    x = np.array([[1.0, 2.0]])
    np.testing.assert_array_equal(again.apply(x), norm.apply(x))
    with pytest.raises(ConfigError, match="prior_var"):
        SpeakerNorm.from_dict({"prior_mean": [0.0]})
    with pytest.raises(ConfigError, match="prior_weight"):
        SpeakerNorm.from_dict({"prior_mean": [0.0], "prior_var": [1.0], "prior_weight": -1})
    with pytest.raises(ConfigError, match="prior_var has 2 values"):
        SpeakerNorm([0.0], [1.0, 1.0])
    with pytest.raises(ConfigError, match="3 values"):
        SpeakerNorm(np.zeros(3), np.ones(3)).update(np.ones(4))
    with pytest.raises(ConfigError, match="NaN"):
        SpeakerNorm(np.zeros(1), np.ones(1)).update([np.nan])


def test_constant_feature_is_not_divided_by_zero():
    norm = SpeakerNorm([0.0, 0.0], [1.0, 0.0], prior_weight=0).update(np.array([[1.0, 5.0], [3.0, 5.0]]))
    z = norm.apply([[2.0, 5.0]])
    assert np.all(np.isfinite(z)) and z[0, 1] == 0.0


def test_feature_constant_in_training_is_zero_whatever_it_reads():
    """A feature the prior says never moves (equivalent sound level after level normalisation: -26.02 +- 1e-6)
    is 0 for every clip, also one of another corpus where it reads -26.5; the others are standardised."""
    norm = SpeakerNorm([-26.02, 10.0], [1e-12, 4.0], prior_weight=3)
    assert norm.constant.tolist() == [True, False]
    z = norm.apply([[-26.5, 12.0], [-26.02 + 2e-6, 10.0]])
    assert z[:, 0].tolist() == [0.0, 0.0] and np.allclose(z[:, 1], [1.0, 0.0])
    assert norm.update([[-26.5, 12.0]]).apply([-25.0, 12.0])[0] == 0.0


def test_norm_modes_parse():
    assert [NormMode.parse(t).name for t in ("none", "transductive", "online-5")] == [
        "none",
        "transductive",
        "online-5",
    ]
    assert NormMode.parse("online-1").per_speaker and not NormMode.parse("none").per_speaker
    for bad in ("online-0", "online", "zscore"):
        with pytest.raises(ConfigError):
            NormMode.parse(bad)


def test_transductive_like_standardises_other_views_by_the_clips_statistics():
    """A speaker's short utterances are standardised by the statistics of its clips as recorded: the clips
    themselves come out as `transductive` gives them, and another view as (view - its speaker's mean) / std."""
    from converters.speaker_norm import transductive_like

    rng = np.random.default_rng(3)
    X = rng.normal(2.0, 3.0, size=(12, 4))
    spk = ["a"] * 5 + ["b"] * 7
    V = rng.normal(size=X.shape)
    same, other = transductive_like(X, spk, [X, V])
    np.testing.assert_array_equal(same, transductive(X, spk))
    for rows in (slice(0, 5), slice(5, 12)):
        want = (V[rows] - X[rows].mean(0)) / X[rows].std(0)
        np.testing.assert_allclose(other[rows], want, rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="views of shapes"):
        transductive_like(X, spk, [V[:3]])
