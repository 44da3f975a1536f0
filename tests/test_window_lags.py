"""pYIN's lag products reused across a live stream's windows (`WindowLags`): the products and the functionals they
give equal those computed from scratch, a frame is reused only where two windows hold the same samples, and the
functionals kind's live front end uses them.

Tolerance: the reused path maps float64 raw products to the window's conditioning, while pyin transforms the
float32 conditioned samples, so the two agree to float32 rounding: products within 1e-6 of the window's largest
frame energy, functionals within 1e-4 relative (measured: 1e-6 on RAVDESS speech with a DC offset).
"""

from __future__ import annotations

import numpy as np
import pytest

from edge_ser.errors import ConfigError
from edge_ser.features.condition import conditioned
from edge_ser.features.egemaps import FunctionalsSpec, functionals
from edge_ser.features.pitch import WindowLags, centred, lag_products, pyin
from edge_ser.features.spectral import frame
from edge_ser.inputs.functionals import FunctionalsKind
from tests._signals import voiced

SR = 16000
WINDOW, HOP = 3 * SR, SR // 2
SPEC = FunctionalsSpec(extended=True)


def _stream(seconds: float = 7.0, offset: float = 0.02) -> np.ndarray:
    """Speech-like audio with pauses and a DC offset (so the offset part of the map is exercised), float32."""
    y = voiced(SR, int(seconds * SR), seed=3)
    y[int(2.2 * SR) : int(3.1 * SR)] = 0.0  # a pause: the window's loudest frame and pause gate move
    return (y + offset).astype(np.float32)


def _own_products(x: np.ndarray) -> np.ndarray:
    """The lag products pyin computes itself for the conditioned clip x."""
    frames = frame(
        centred(x, SPEC.f0_frame_length), frame_length=SPEC.f0_frame_length, hop_length=SPEC.hop_length
    )
    return lag_products(frames, SPEC.window_lags().max_lag)


def _windows(y: np.ndarray) -> list[np.ndarray]:
    return [y[end - WINDOW : end] for end in range(WINDOW, y.size + 1, HOP)]


def _replay(windows: list[np.ndarray]) -> WindowLags:
    """Each window of a stream, in order, through one WindowLags: its functionals equal those from scratch."""
    lags = SPEC.window_lags()
    for w in windows:
        lags.moved(HOP)
        reused = functionals(w, sr=SR, spec=SPEC, lags=lags)
        np.testing.assert_allclose(reused, functionals(w, sr=SR, spec=SPEC), rtol=1e-4, atol=1e-4)
    return lags


def test_products_of_a_sliding_window_equal_pyins_own_and_are_reused() -> None:
    lags = SPEC.window_lags()
    for i, w in enumerate(_windows(_stream())):
        lags.moved(HOP)
        c = conditioned(w, SPEC.feature_spec())
        got = lags.products(w, c.offset, c.gain)
        want = _own_products(np.asarray(c.x, np.float64))
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * want[:, 0].max())
        if i == 0:
            assert lags.reused == 0
    # every window after the first transforms only its new hop and the frames that reach into the padding
    n = len(_windows(_stream()))
    frames_per_window = 1 + WINDOW // SPEC.hop_length
    new_per_window = HOP // SPEC.hop_length + 2 * (-(-SPEC.f0_frame_length // 2 // SPEC.hop_length))
    assert lags.computed <= frames_per_window + (n - 1) * (new_per_window + 1)
    assert lags.reused + lags.computed == n * frames_per_window


def test_functionals_with_reused_products_equal_those_from_scratch() -> None:
    windows = _windows(_stream())
    lags = _replay(windows)
    assert lags.reused > 0
    # pyin's track is the same, frame by frame
    w = windows[-1]
    c = conditioned(w, SPEC.feature_spec())
    x = np.asarray(c.x, np.float64)
    kw = dict(
        sr=SR, fmin=SPEC.fmin, fmax=SPEC.fmax, frame_length=SPEC.f0_frame_length, silence_db=SPEC.silence_db
    )
    a = pyin(x, **kw)
    b = pyin(x, **kw, products=lags.products(w, c.offset, c.gain))
    np.testing.assert_array_equal(a.voiced, b.voiced)
    np.testing.assert_allclose(a.f0, b.f0, rtol=1e-6)


def test_a_frame_is_reused_only_where_the_windows_hold_the_same_samples() -> None:
    y = _stream()
    other = _stream(offset=0.0) * np.float32(0.5) + np.float32(0.001)
    lags = SPEC.window_lags()
    w1, w2 = y[:WINDOW], y[HOP : HOP + WINDOW]
    lags.products(w1, 0.0, 1.0)
    # the stream says it moved by a hop, but the window is another stream's: nothing is reused
    lags.moved(HOP)
    before = lags.reused
    z = other[HOP : HOP + WINDOW]
    np.testing.assert_allclose(lags.products(z, 0.0, 1.0), _own_products(z.astype(np.float64)), atol=1e-9)
    assert lags.reused == before
    # a window that moved without a hint (a caller that does not feed) is still matched by its content
    lags.products(w1, 0.0, 1.0)
    before = lags.reused
    np.testing.assert_allclose(lags.products(w2, 0.0, 1.0), _own_products(w2.astype(np.float64)), atol=1e-9)
    assert lags.reused > before
    # a hint that is wrong (not a whole number of frames) is not taken: the window is found by its content
    lags.products(w1, 0.0, 1.0)
    lags.moved(HOP + 7)
    assert lags._shift(w2) == HOP


def test_the_stream_position_finds_a_window_its_first_sample_cannot() -> None:
    """A window that starts in digital silence matches the last one at every silent hop; `moved` says where."""
    y = _stream()
    y[: 2 * SR] = 0.0
    w1, w2 = y[:WINDOW], y[HOP : HOP + WINDOW]
    blind, told = SPEC.window_lags(), SPEC.window_lags()
    for lags in (blind, told):
        lags.products(w1, 0.0, 1.0)
    told.moved(HOP)
    for lags in (blind, told):
        np.testing.assert_allclose(
            lags.products(w2, 0.0, 1.0), _own_products(w2.astype(np.float64)), atol=1e-9
        )
    assert (
        blind.reused == 0 and told.reused == 293 - HOP // SPEC.hop_length
    )  # the inner frames less the new hop


@pytest.mark.parametrize("n", [0, 300, 1100, 1600])
def test_windows_shorter_than_a_few_frames_are_transformed_whole(n: int) -> None:
    lags = SPEC.window_lags()
    y = _stream(1.0)[:n]
    for _ in range(2):
        got = lags.products(y, 0.01, 2.0)
        want = _own_products((y.astype(np.float64) - 0.01) * 2.0)
        np.testing.assert_allclose(got, want, atol=1e-9)


def test_lags_for_other_frames_are_refused() -> None:
    wrong = WindowLags(sr=SR, fmin=SPEC.fmin, fmax=SPEC.fmax, frame_length=2048, hop_length=SPEC.hop_length)
    with pytest.raises(ConfigError, match="spec.window_lags"):
        functionals(_stream(1.0), sr=SR, spec=SPEC, lags=wrong)
    other_range = FunctionalsSpec(extended=True, fmin=60.0).window_lags()
    with pytest.raises(
        ConfigError, match=r"\(1024, 160, 267\) samples are not the spec's \(1024, 160, 291\)"
    ):
        functionals(_stream(1.0), sr=SR, spec=SPEC, lags=other_range)
    with pytest.raises(ConfigError, match="WindowLags: a frame of 1024 samples cannot hold"):
        WindowLags(sr=SR, fmin=5.0, fmax=SPEC.fmax, frame_length=1024, hop_length=160)


def test_the_functionals_live_front_end_reuses_and_matches_window_inputs() -> None:
    kind = FunctionalsKind(SPEC)
    front = kind.live(WINDOW / SR)
    for w in _windows(_stream()):
        front.feed(w[-HOP:])
        got = front.inputs(w)["functionals"]
        want = kind.window_inputs(w)["functionals"]
        assert got.shape == want.shape == (1, SPEC.dim) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert front.lags.reused > 0


def test_a_clip_that_ends_now_reuses_the_last_window_and_leaves_it_for_the_next() -> None:
    y = _stream()
    lags = SPEC.window_lags()
    lags.products(y[:WINDOW], 0.0, 1.0)
    lags.moved(HOP)  # the stream moved on by a hop; an utterance of 2.5 s ends at its newest sample
    end = WINDOW + HOP
    clip = y[end - int(2.5 * SR) : end]
    got = lags.for_clip().products(clip, 0.003, 1.5)
    np.testing.assert_allclose(got, _own_products((clip.astype(np.float64) - 0.003) * 1.5), rtol=0, atol=1e-6)
    assert lags.reused > 150  # the copy's count adds to the stream's
    # the next window still finds the last one, not the clip: it reuses as much as without the clip
    plain = SPEC.window_lags()
    for w in (y[:WINDOW], y[HOP:end]):
        plain.products(w, 0.0, 1.0)
    before = lags.reused
    lags.products(y[HOP:end], 0.0, 1.0)
    assert lags.reused - before == plain.reused > 0


def test_a_clip_longer_than_the_window_reuses_the_part_it_shares() -> None:
    y = _stream()
    lags = SPEC.window_lags()
    end = y.size - y.size % HOP
    lags.products(y[end - WINDOW : end], 0.0, 1.0)
    clip = y[end - 5 * SR : end]  # an utterance of 5 s ends now: it starts 2 s before the last window
    np.testing.assert_allclose(
        lags.for_clip().products(clip, 0.0, 1.0), _own_products(clip.astype(np.float64)), atol=1e-9
    )
    assert lags.reused > 250


def test_a_constant_window_is_silence_with_the_products_reused_too() -> None:
    """A muted microphone with a DC offset: every conditioned sample is 0, so pyin hears nothing; the map must not
    leave rounding noise that pyin's scale-free dips would read as pitch."""
    y = _stream()
    y[: 4 * SR] = np.float32(0.02)
    windows = _windows(y[: 5 * SR])
    assert _replay(windows).reused > 0  # constant windows, then speech coming in
    f0 = [i for i, n in enumerate(SPEC.names()) if n.startswith("F0semitone")]
    lags = SPEC.window_lags()
    for w in windows[:3]:  # wholly constant: no pitch from the reused products either
        lags.moved(HOP)
        assert not functionals(w, sr=SR, spec=SPEC, lags=lags)[f0].any()
    assert functionals(windows[-1], sr=SR, spec=SPEC)[f0[0]] > 0  # the speech that comes in has a pitch


@pytest.mark.parametrize(("offset", "speech_db"), [(0.3, -70.0), (0.9, -64.0), (0.1, -80.0)])
def test_a_large_dc_offset_over_quiet_speech_keeps_its_precision(offset: float, speech_db: float) -> None:
    y = _stream(offset=0.0).astype(np.float64)
    y *= 10 ** (speech_db / 20) / np.sqrt(np.mean(y**2))
    y = (y + offset).astype(np.float32)
    assert _replay(_windows(y)).reused > 0


def test_the_live_front_ends_utterance_inputs_match_window_inputs_and_reuse() -> None:
    kind = FunctionalsKind(SPEC)
    front = kind.live(WINDOW / SR)
    y = _stream()
    for w in _windows(y):
        front.feed(w[-HOP:])
        front.inputs(w)
    clip = y[y.size - y.size % HOP - int(2.0 * SR) : y.size - y.size % HOP]
    before = front.lags.reused
    np.testing.assert_allclose(
        front.utterance_inputs(clip)["functionals"],
        kind.window_inputs(clip)["functionals"],
        rtol=1e-4,
        atol=1e-4,
    )
    assert front.lags.reused - before > 100


def test_the_side_by_side_benchmark_replays_a_stream_both_ways() -> None:
    from benchmarks.window_lags import replay

    r = replay(_stream(4.5))
    assert r["windows"] == 4 and r["fresh_ms"] > 0 and r["reused_ms"] > 0
    assert r["max_rel_diff"] < 1e-4 and r["windows_over_1e-5"] == 0
    assert 0.5 < r["frames_reused"] < 1


def test_the_live_pipeline_learns_an_utterance_through_the_front_end() -> None:
    """The update that closes an utterance computes no window (the gate is shut) but the utterance's features,
    which reuse the last window's frames."""
    from pathlib import Path

    from edge_ser.bundle import load_bundle
    from edge_ser.engines import load_engine
    from edge_ser.live.pipeline import LivePipeline

    bundle = load_bundle(Path(__file__).resolve().parents[1] / "bundles" / "ser_ravdess")
    pipeline = LivePipeline(bundle, load_engine(bundle, "numpy"))
    y = np.concatenate([_stream(4.0), np.zeros(2 * SR, np.float32)])
    learnt = []
    for end in range(HOP, y.size + 1, HOP):
        pipeline.feed(y[end - HOP : end])
        before = (pipeline.front.lags.reused, pipeline.speaker_clips())
        r = pipeline.step(end / SR, y[max(0, end - WINDOW) : end])
        if not r.speech and pipeline.speaker_clips() != before[1]:
            learnt.append(pipeline.front.lags.reused - before[0])
    assert learnt and min(learnt) > 100  # each utterance (the stream has a pause) reused frames
