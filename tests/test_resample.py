"""The polyphase resampler: lengths as scipy's resample_poly, passband accuracy, aliasing, no time shift."""

from __future__ import annotations

import math

import numpy as np
import pytest

import edge_ser.audio.polyphase as rs  # noqa: E402
from edge_ser.audio import resample
from edge_ser.errors import ConfigError

signal = pytest.importorskip("scipy.signal")

RATIOS = [
    (16000, 22050),
    (22050, 16000),
    (44100, 16000),
    (48000, 16000),
    (8000, 16000),
    (16000, 8000),
    (16000, 48000),
    (48000, 44100),
    (11025, 16000),
    (96000, 8000),
]


def tone(freq: float, sr: int, seconds: float = 0.25, n: int | None = None) -> np.ndarray:
    """A sine starting at phase 0.3 rad; `n` samples, or `seconds` long."""
    n = int(seconds * sr) if n is None else n
    return np.sin(2 * np.pi * freq * np.arange(n) / sr + 0.3)


def middle(y: np.ndarray, sr: int, margin: float = 0.03) -> np.ndarray:
    """Drop `margin` seconds at each end, where the filter sees the zero padding."""
    m = int(margin * sr)
    return y[m:-m]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 31, 100, 441, 1001, 4799])
@pytest.mark.parametrize(("orig", "target"), [*RATIOS, (3, 2), (2, 3), (7, 1), (1, 7)])
def test_length_matches_resample_poly(n, orig, target):
    g = math.gcd(orig, target)
    expected = signal.resample_poly(np.zeros(n), target // g, orig // g).shape[0]
    assert expected == -(-n * target // orig)
    out = resample(np.random.default_rng(n).standard_normal(n), orig * 1000, target * 1000)
    assert out.shape == (expected,)
    assert np.isfinite(out).all()


@pytest.mark.parametrize(("orig", "target"), [(16000, 22050), (44100, 16000), (48000, 16000), (8000, 16000)])
@pytest.mark.parametrize("quality", ["hq", "fast"])
def test_passband_sine_matches_ideal(orig, target, quality):
    out = resample(tone(1000, orig), orig, target, quality=quality)
    ideal = tone(1000, target, n=out.size)
    assert np.abs(middle(out - ideal, target)).max() < 1e-3


def test_round_trip_8k_16k_8k():
    x = tone(1000, 8000, seconds=0.5)
    back = resample(resample(x, 8000, 16000), 16000, 8000)
    assert back.shape == x.shape
    assert np.abs(middle(back - x, 8000)).max() < 1e-3


def test_passband_edge_is_flat():
    # 7 kHz is inside the "hq" passband (90 % of 8 kHz) for 44.1k -> 16k
    out = resample(tone(7000, 44100), 44100, 16000)
    assert np.abs(middle(out - tone(7000, 16000, n=out.size), 16000)).max() < 1e-3


def _alias_db(freq: float, orig: int, target: int, quality: str) -> float:
    out = resample(tone(freq, orig), orig, target, quality=quality)
    return 20 * np.log10(np.abs(middle(out, target)).max() + 1e-30)


@pytest.mark.parametrize(
    ("freq", "orig", "target"),
    [
        (10000, 44100, 16000),  # would alias to 6 kHz
        (8200, 44100, 16000),  # just above the target Nyquist: aliases to 7.8 kHz
        (9000, 48000, 16000),
        (4500, 16000, 8000),
        (11500, 22050, 16000),
        (23000, 48000, 44100),  # above 22.05 kHz
    ],
)
def test_tones_above_target_nyquist_are_removed(freq, orig, target):
    assert _alias_db(freq, orig, target, "hq") <= -80
    assert _alias_db(freq, orig, target, "fast") <= -60


def test_better_anti_aliasing_than_resample_poly_near_nyquist():
    x = tone(8200, 44100)
    ours = np.abs(middle(resample(x, 44100, 16000), 16000)).max()
    scipy = np.abs(middle(signal.resample_poly(x, 160, 441), 16000)).max()
    assert ours < 1e-4 < scipy


def test_upsampling_leaves_no_images():
    # 16k -> 48k of a 3 kHz tone: anything left after removing the tone is an image or filter error
    out = resample(tone(3000, 16000), 16000, 48000)
    assert np.abs(middle(out - tone(3000, 48000, n=out.size), 48000)).max() < 1e-3


@pytest.mark.parametrize(("orig", "target"), [(16000, 22050), (22050, 16000), (16000, 48000), (48000, 16000)])
def test_click_stays_in_place(orig, target):
    t0 = 0.1  # seconds; lands on a sample at both rates
    x = np.zeros(int(0.2 * orig))
    x[round(t0 * orig)] = 1.0
    out = resample(x, orig, target)
    assert int(np.argmax(out)) == round(t0 * target)


@pytest.mark.parametrize(("orig", "target"), [(16000, 22050), (44100, 16000)])
def test_chirp_has_no_time_shift(orig, target):
    def chirp(sr):
        t = np.arange(int(0.3 * sr)) / sr
        return signal.chirp(t, f0=100, t1=0.3, f1=3000) * np.hanning(t.size)

    out = resample(chirp(orig), orig, target)
    ref = chirp(target)
    xc = np.correlate(out, ref, mode="full")
    assert int(np.argmax(xc)) - (ref.size - 1) == 0
    assert np.abs(out - ref).max() < 2e-3


def test_same_delay_as_resample_poly():
    # scipy compensates the delay too: on a band-limited signal both agree closely
    x = np.hanning(800) * tone(440, 16000, seconds=0.05)
    ours = resample(x, 16000, 22050)
    theirs = signal.resample_poly(x, 441, 320)
    assert np.abs(ours - theirs).max() < 5e-3


def test_multichannel_equals_per_channel():
    x = np.random.default_rng(0).standard_normal((3001, 3))
    out = resample(x, 44100, 16000)
    assert out.shape == (-(-3001 * 160 // 441), 3)
    for c in range(3):
        np.testing.assert_allclose(out[:, c], resample(x[:, c], 44100, 16000), rtol=0, atol=1e-12)
    np.testing.assert_allclose(resample(x.T, 44100, 16000, axis=1), out.T, rtol=0, atol=1e-12)
    np.testing.assert_allclose(resample(x.T, 44100, 16000, axis=-1), out.T, rtol=0, atol=1e-12)


def test_dtype_is_kept():
    x = tone(440, 16000)
    assert resample(x, 16000, 22050).dtype == np.float64
    out32 = resample(x.astype(np.float32), 16000, 22050)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, resample(x, 16000, 22050), atol=1e-5)


def test_equal_rates_return_a_copy():
    x = np.random.default_rng(0).standard_normal((100, 2)).astype(np.float32)
    out = resample(x, 16000, 16000)
    np.testing.assert_array_equal(out, x)
    assert out is not x and not np.shares_memory(out, x)


def test_empty_input():
    assert resample(np.zeros(0), 16000, 22050).shape == (0,)
    assert resample(np.zeros((0, 2)), 16000, 8000).shape == (0, 2)


def test_awkward_ratio_uses_gather_path_and_is_accurate():
    up, down = 16001, 16000
    assert not rs._use_block(up, down, "hq")
    out = resample(tone(1000, 16000, seconds=0.1), 16000, 16001)
    assert out.shape == (-(-1600 * 16001 // 16000),)
    assert np.abs(middle(out - tone(1000, 16001, n=out.size), 16001)).max() < 1e-3


def test_gather_and_on_the_fly_paths_match_block_path(monkeypatch):
    x = np.random.default_rng(1).standard_normal((2001, 2))
    block = resample(x, 16000, 22050)
    monkeypatch.setattr(rs, "_BLOCK_BUDGET", 0)
    gathered = resample(x, 16000, 22050)
    monkeypatch.setattr(rs, "_BANK_BUDGET", 0)
    on_the_fly = resample(x, 16000, 22050)
    np.testing.assert_allclose(gathered, block, rtol=0, atol=1e-12)
    np.testing.assert_allclose(on_the_fly, block, rtol=0, atol=1e-12)


def test_long_input_is_chunked_identically(monkeypatch):
    x = np.random.default_rng(2).standard_normal((20000, 2))
    whole = resample(x, 44100, 16000)
    monkeypatch.setattr(rs, "_FRAME_ELEMS", 5000)
    np.testing.assert_allclose(resample(x, 44100, 16000), whole, rtol=0, atol=1e-12)
    np.testing.assert_allclose(resample(x[:, 1], 44100, 16000), whole[:, 1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("quality", ["hq", "fast"])
@pytest.mark.parametrize(("up", "down"), [(441, 320), (160, 441), (1, 3), (2, 1), (147, 160)])
def test_filter_meets_its_stopband_spec(quality, up, down):
    d = rs._design(up, down, quality)
    h = rs._prototype(d, np.arange(2 * d.half + 1)) / up
    spectrum = np.abs(np.fft.rfft(h, 1 << 16))
    f = np.linspace(0, 1, spectrum.size) * max(up, down)  # in units of the lower Nyquist
    stop = 20 * np.log10(spectrum[f >= 1.0].max())
    assert stop <= (-80 if quality == "hq" else -60)
    passband = spectrum[f <= rs.QUALITIES[quality].passband]
    assert np.abs(passband - 1).max() < 1e-3


@pytest.mark.parametrize("bad", [0, -16000, 16000.0, "16000", True, None, 1.5])
def test_bad_rates_raise_config_error(bad):
    x = np.zeros(10)
    with pytest.raises(ConfigError, match="orig_sr must be a positive int"):
        resample(x, bad, 16000)
    with pytest.raises(ConfigError, match="target_sr must be a positive int"):
        resample(x, 16000, bad)


def test_numpy_int_rates_are_fine():
    assert resample(np.zeros(10), np.int64(16000), np.int32(8000)).shape == (5,)


@pytest.mark.parametrize("bad", [np.zeros(10, dtype=np.int16), np.zeros(10, dtype=np.complex64), ["a"]])
def test_non_float_samples_raise_config_error(bad):
    with pytest.raises(ConfigError):
        resample(bad, 16000, 8000)


def test_bad_quality_and_axis_raise_config_error():
    with pytest.raises(ConfigError, match="quality"):
        resample(np.zeros(10), 16000, 8000, quality="best")
    with pytest.raises(ConfigError, match="axis"):
        resample(np.zeros((10, 2)), 16000, 8000, axis=2)
    with pytest.raises(ConfigError):
        resample(np.float64(1.0), 16000, 8000)
