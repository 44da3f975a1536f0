"""Synthetic rooms (converters.reverb) and the reverberant training copies (converters.featurize)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters.reverb import RoomSpec, reverberate, room_impulse_response
from edge_ser.errors import ConfigError

SR = 16000


def _decay_db_per_s(h: np.ndarray, sr: int) -> float:
    """The slope of the Schroeder backward-integrated energy decay between -5 and -25 dB (ISO 3382's T20)."""
    edc = np.cumsum((h[1:] ** 2)[::-1])[::-1]
    db = 10 * np.log10(edc / edc[0])
    i, j = np.argmax(db <= -5), np.argmax(db <= -25)
    return float((db[j] - db[i]) / ((j - i) / sr))


@pytest.mark.parametrize("rt60", [0.3, 0.8])
def test_the_tail_decays_60_db_in_rt60(rt60: float) -> None:
    h = room_impulse_response(rt60, 0.0, SR, np.random.default_rng(0))
    assert len(h) == int(SR * rt60 * 1.2) + 1 and np.max(np.abs(h)) == pytest.approx(1.0)
    assert _decay_db_per_s(h, SR) == pytest.approx(-60.0 / rt60, rel=0.1)


@pytest.mark.parametrize("drr_db", [-6.0, 0.0, 6.0])
def test_direct_to_reverberant_ratio(drr_db: float) -> None:
    h = room_impulse_response(0.5, drr_db, SR, np.random.default_rng(1), predelay_ms=2.0)
    assert np.all(h[1 : int(0.002 * SR) + 1] == 0)  # nothing between the direct path and the pre-delay
    assert 10 * np.log10(h[0] ** 2 / np.sum(h[1:] ** 2)) == pytest.approx(drr_db, abs=1e-6)


def test_reverberate_is_a_linear_convolution_at_the_input_level() -> None:
    rng = np.random.default_rng(2)
    y = (0.1 * rng.standard_normal(4000)).astype(np.float32)
    h = room_impulse_response(0.2, 0.0, SR, rng)
    wet = reverberate(y, h)
    full = np.convolve(y.astype(np.float64), h)[: len(y)]
    full *= np.sqrt(np.mean(y.astype(np.float64) ** 2) / np.mean(full**2))
    assert wet.dtype == np.float32 and wet.shape == y.shape
    np.testing.assert_allclose(wet, full, atol=1e-5)
    assert np.sqrt(np.mean(wet.astype(np.float64) ** 2)) == pytest.approx(np.sqrt(np.mean(y**2.0)), rel=1e-4)
    assert not np.any(reverberate(np.zeros(100, np.float32), h))  # silence stays silent (no division by 0)


def test_room_spec_checks_its_ranges() -> None:
    assert RoomSpec().draw(np.random.default_rng(0)) == RoomSpec().draw(np.random.default_rng(0))  # seeded
    rng = np.random.default_rng(0)
    rt60, drr = np.array([RoomSpec(rt60=(0.3, 0.5), drr_db=(-2.0, 4.0)).draw(rng) for _ in range(200)]).T
    assert 0.3 <= rt60.min() < 0.31 and 0.49 < rt60.max() <= 0.5  # uniform over the ranges asked for
    assert -2.0 <= drr.min() < -1.9 and 3.9 < drr.max() <= 4.0 and abs(np.corrcoef(rt60, drr)[0, 1]) < 0.2
    with pytest.raises(ConfigError, match="rt60"):
        RoomSpec(rt60=(1.0, 0.5))
    with pytest.raises(ConfigError, match="drr_db"):
        RoomSpec(drr_db=(3.0, -3.0))
    with pytest.raises(ConfigError, match="rt60"):
        room_impulse_response(0.0, 0.0, SR, np.random.default_rng(0))


def test_reverberant_copies_are_seeded_cached_and_smear_the_voice(tmp_path: Path) -> None:
    """Each (file, copy) its own room, the same rooms on every call (cached or not); a room smears the pauses
    and the voice, so the copies differ from the clip and from each other."""
    from _signals import voiced

    from converters.featurize import FeatureCache, functionals_matrix, reverb_functionals_matrix
    from edge_ser.audio import write_wav

    def speech(seed: int) -> np.ndarray:  # two voiced stretches with a pause between them
        return np.concatenate([voiced(SR, SR, seed), np.zeros(SR // 3), voiced(SR, SR, seed + 7)]).astype(
            np.float32
        )

    paths = [write_wav(tmp_path / f"{i}.wav", speech(i), SR) for i in range(2)]
    cache = FeatureCache(tmp_path / "cache")
    R = reverb_functionals_matrix(paths, copies=2, cache=cache)
    assert R.shape[:2] == (2, 2) and cache.misses == 4
    np.testing.assert_array_equal(R, reverb_functionals_matrix(paths, copies=2, cache=cache))
    assert cache.hits == 4
    np.testing.assert_array_equal(R, reverb_functionals_matrix(paths, copies=2))  # the same without the cache
    clean = functionals_matrix(paths)
    assert np.all(np.isfinite(R)) and not np.allclose(R[0], clean) and not np.allclose(R[0], R[1])
    other = reverb_functionals_matrix(paths, copies=1, seed=1)
    assert not np.allclose(other[0], R[0])  # another seed, other rooms


def test_a_fixed_room_in_another_file_order_is_not_read_from_another_positions_cache(tmp_path: Path) -> None:
    """A room of fixed RT60 and DRR (benchmarks/reverb.py's test rooms) still draws each file's impulse response
    by its position: the cache key must say so, or a list in another order (a file added to a folder) reads the
    responses of other positions (a 219-unit difference from the values computed afresh)."""
    from _signals import voiced

    from converters.featurize import FeatureCache, reverb_functionals_matrix
    from edge_ser.audio import write_wav

    paths = [write_wav(tmp_path / f"{i}.wav", voiced(SR, SR, i), SR) for i in range(2)]
    room = RoomSpec(rt60=(0.4, 0.4), drr_db=(0.0, 0.0))
    cache = FeatureCache(tmp_path / "cache")
    reverb_functionals_matrix(paths, rooms=room, copies=1, seed=1, cache=cache)
    swapped = paths[::-1]
    cached = reverb_functionals_matrix(swapped, rooms=room, copies=1, seed=1, cache=cache)
    np.testing.assert_array_equal(cached, reverb_functionals_matrix(swapped, rooms=room, copies=1, seed=1))


def test_a_session_shares_one_room_per_copy(tmp_path: Path) -> None:
    """With session keys, the files of a session are in the same room with the same impulse response (the same
    audio gives the same copy); other sessions are other rooms; a key per file is required."""
    from _signals import voiced

    from converters.featurize import reverb_functionals_matrix
    from edge_ser.audio import write_wav

    y = np.concatenate([voiced(SR, SR, 3), np.zeros(SR // 3), voiced(SR, SR, 4)]).astype(np.float32)
    paths = [write_wav(tmp_path / f"{i}.wav", y, SR) for i in range(3)]
    R = reverb_functionals_matrix(paths, copies=2, sessions=["a", "a", "b"])
    np.testing.assert_array_equal(R[:, 0], R[:, 1])  # one session: the same room and response
    assert not np.allclose(R[:, 0], R[:, 2]) and not np.allclose(R[0], R[1])  # another session, another copy
    per_file = reverb_functionals_matrix(paths, copies=1)
    assert not np.allclose(per_file[0, 0], per_file[0, 1])  # without sessions every file has its own room
    with pytest.raises(ConfigError, match="session keys"):
        reverb_functionals_matrix(paths, sessions=["a"])


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--folds", "0,x"], "--folds 0,x: give fold indices as N or N,N,..."),
        (["--data", "emodb,savee"], "--data: unknown savee; known: emodb, ravdess"),
    ],
)
def test_reverb_benchmark_refuses_bad_folds_and_data_before_any_features(
    argv, said, monkeypatch, capsys
) -> None:
    """A review: a word in --folds was a ValueError traceback, an unknown --data a KeyError."""
    import sys

    from benchmarks import reverb

    monkeypatch.setattr(reverb, "run", lambda *a: (_ for _ in ()).throw(AssertionError("ran")))
    monkeypatch.setattr(sys, "argv", ["benchmarks/reverb.py", *argv])
    with pytest.raises(SystemExit) as exit_:
        reverb.main()
    assert exit_.value.code == 2 and said in capsys.readouterr().err
