"""The numpy pYIN F0 tracker against the truth (synthetic tones and glides) and against librosa.pyin (real EMODB
speech and the same synthetic signals).

Tolerances, and why:
- pitch: median |error| < 50 cents (half a semitone) on frames both trackers call voiced. librosa reports F0 on
  a 10-cent grid (its pitch bins), so identical tracks differ by up to 5 cents; 50 cents leaves room for
  genuinely different choices between nearby dips while still catching any systematic error (a frame offset,
  a wrong lag, a missing parabolic refinement) long before it reaches a semitone. Measured: about 3 cents.
- voicing: the two decisions agree on >= 85 % of frames. Our Viterbi runs over each frame's candidate dips
  instead of librosa's 2 x 502 pitch bins (docs/features.md), so decisions can differ at voicing onsets and
  offsets, which are a few frames per syllable. Measured: about 95 %.
- gross errors: < 5 % of the frames voiced in both are more than 20 % (316 cents) apart, the usual gross pitch
  error definition (octave or fifth jumps). Measured: 0 %.
- against the truth: median |error| < 10 cents on steady tones and a glide, >= 95 % of their frames voiced, and
  white noise has a voicing probability <= 0.011 everywhere. Its voicing *decision* is < 30 % voiced, not
  0: pYIN's decoder prefers a voiced state with the no-dip mass (0.01) over an unvoiced bin ((1 - v) / 502)
  whenever the lowest dips of a few frames line up, which in noise they sometimes do (librosa.pyin calls
  0-10 % of the same noise voiced; ours 9-28 %). Use `voiced_prob` where that matters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_ser.audio import load
from edge_ser.errors import ConfigError
from edge_ser.features.pitch import pyin

SR = 16000
HOP = 160
EMODB_CLIPS = (
    "03a01Fa",
    "08a02Tb",
    "09a05Lc",
    "10b03Tb",
    "11b10Nc",
    "13a05Nb",
    "14a05Aa",
    "15a04Ab",
    "16a04Lc",
)
"""Nine clips: every emotion, both sexes, nine of the ten speakers."""


def _voice(f0: np.ndarray, seed: int = 0) -> np.ndarray:
    """A harmonic signal following the per-sample F0 contour `f0` (5 harmonics, 1/k amplitudes, a little noise)."""
    phase = 2 * np.pi * np.cumsum(f0) / SR
    y = sum(np.sin(k * phase) / k for k in range(1, 6))
    return 0.3 * y + 0.003 * np.random.default_rng(seed).standard_normal(f0.size)


def _cents(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1200 * np.abs(np.log2(a / b))


def _compare(y: np.ndarray, librosa) -> tuple[np.ndarray, int, int]:
    """(cents on frames voiced in both, frames agreeing on voicing, frames) for ours vs librosa.pyin."""
    ours = pyin(y, sr=SR, fmin=55, fmax=1000, frame_length=1024, hop_length=HOP)
    f0, voiced, _ = librosa.pyin(y, sr=SR, fmin=55, fmax=1000, frame_length=1024, hop_length=HOP)
    assert ours.f0.shape == f0.shape
    both = voiced & ours.voiced
    return _cents(ours.f0[both], f0[both]), int(np.sum(voiced == ours.voiced)), f0.size


@pytest.mark.parametrize("f", [80.0, 150.0, 220.0, 440.0])
def test_steady_tones(f: float) -> None:
    t = pyin(_voice(np.full(SR, f)), sr=SR)
    inner = slice(5, -5)  # the first and last frames are half padding
    assert t.voiced[inner].mean() >= 0.95
    assert np.median(_cents(t.f0[inner][t.voiced[inner]], f)) < 10
    assert np.all((t.voiced_prob >= 0) & (t.voiced_prob <= 1))
    assert np.median(t.periodicity[inner][t.voiced[inner]]) > 0.9  # a clean tone is almost all harmonic


def test_glide_and_noise() -> None:
    n = 2 * SR
    truth = 120.0 * (300.0 / 120.0) ** (np.arange(n) / n)  # an exponential glide 120 -> 300 Hz over 2 s
    t = pyin(_voice(truth), sr=SR)
    centres = np.minimum(np.arange(t.f0.size) * HOP, n - 1)
    inner = slice(5, -5)
    v = t.voiced[inner]
    assert v.mean() >= 0.95
    assert np.median(_cents(t.f0[inner][v], truth[centres][inner][v])) < 10
    noise = pyin(0.1 * np.random.default_rng(1).standard_normal(SR), sr=SR)
    assert noise.voiced_prob.max() <= 0.011  # nothing but the no-dip mass: the probability says unvoiced
    assert noise.voiced.mean() < 0.30  # the decoder still strings some random dips together (see the doc)
    assert np.all(np.isnan(noise.f0[~noise.voiced])) and np.all(noise.periodicity[~noise.voiced] == 0)


def test_agrees_with_librosa_on_synthetic_speechlike_signals() -> None:
    librosa = pytest.importorskip("librosa", reason="librosa is the reference (test extra)")
    n = 2 * SR
    contour = 180 + 40 * np.sin(2 * np.pi * 1.5 * np.arange(n) / SR)  # vibrato-like 140-220 Hz
    gate = (np.sin(2 * np.pi * 2.0 * np.arange(n) / SR) > -0.3).astype(float)  # voiced 60 % of the time
    y = _voice(contour) * gate + 0.01 * np.random.default_rng(2).standard_normal(n)
    cents, agree, frames = _compare(y, librosa)
    assert np.median(cents) < 50 and agree / frames >= 0.85 and np.mean(cents > 316) < 0.05


@pytest.mark.data
def test_agrees_with_librosa_on_emodb(emodb_dir: Path) -> None:
    librosa = pytest.importorskip("librosa", reason="librosa is the reference (test extra)")
    all_cents, agree, frames = [], 0, 0
    for name in EMODB_CLIPS:
        y, _ = load(emodb_dir / f"{name}.wav", sr=SR)
        c, a, n = _compare(y.astype(np.float64), librosa)
        all_cents.append(c)
        agree, frames = agree + a, frames + n
    cents = np.concatenate(all_cents)
    assert cents.size > 500, "too few frames voiced in both to compare"
    assert np.median(cents) < 50, f"median pitch difference {np.median(cents):.1f} cents"
    assert agree / frames >= 0.85, f"voicing agrees on {agree / frames:.1%} of frames"
    assert np.mean(cents > 316) < 0.05, f"gross errors on {np.mean(cents > 316):.1%} of frames"


def test_silence_gate_drops_hum_in_pauses() -> None:
    """A 700 Hz hum 60 dB below a voice, alone in the pauses (RAVDESS' pauses hold one): without the gate pYIN
    tracks it as voice; with it the pauses are unvoiced and the voice's own frames keep their F0."""
    t = np.arange(3 * SR) / SR
    hum = 0.3e-3 * np.sin(2 * np.pi * 700.0 * t)
    voice = np.where((t > 1.0) & (t < 2.0), _voice(np.full(t.size, 150.0)), 0.0)
    y = voice + hum
    plain, gated = pyin(y, sr=SR), pyin(y, sr=SR, silence_db=40.0)
    times = plain.times
    pause = (times < 0.9) | (times > 2.1)
    inner = (times > 1.1) & (times < 1.9)
    assert plain.voiced[pause].mean() > 0.5 and np.nanmedian(plain.f0[pause]) > 600  # the defect
    assert not gated.voiced[pause].any()
    assert gated.voiced[inner].all() and np.allclose(gated.f0[inner], plain.f0[inner])
    with pytest.raises(ConfigError, match="silence_db"):
        pyin(y, sr=SR, silence_db=-10.0)


def test_bad_arguments_are_config_errors() -> None:
    y = np.zeros(SR)
    with pytest.raises(ConfigError, match="fmin"):
        pyin(y, sr=SR, fmin=20, frame_length=512)  # a 50 ms period does not fit a 32 ms frame
    with pytest.raises(ConfigError, match="fmax"):
        pyin(y, sr=SR, fmin=100, fmax=9000)
    with pytest.raises(ConfigError, match="mono"):
        pyin(np.zeros((2, SR)), sr=SR)


def test_fft_length_is_the_smallest_fast_one_and_the_difference_is_exact() -> None:
    """pYIN's FFT pair runs at 2^k or 3 * 2^k (not the next power of two); the difference function it gives is
    the direct one: no circular wrap reaches the lags kept."""
    from edge_ser.features.pitch import difference, fast_length

    assert [fast_length(n) for n in (1, 3, 5, 1025, 1316, 1537)] == [1, 3, 6, 1536, 1536, 2048]
    rng = np.random.default_rng(0)
    padded, n, hop, lags = rng.standard_normal(700), 256, 64, 120
    d, head, tail = difference(padded, frame_length=n, hop_length=hop, max_lag=lags)
    for t in range(d.shape[0]):
        x = padded[t * hop : t * hop + n]
        for tau in (0, 1, 37, lags):
            # the squared difference over the overlap plus the energy of the frame's last tau samples
            want = np.sum((x[: n - tau] - x[tau:]) ** 2) + np.sum(x[n - tau :] ** 2)
            r0 = np.dot(x, x)
            assert abs(d[t, tau] - want) <= 1e-9 * max(1.0, r0)
            assert abs(head[t, tau] - np.sum(x[: n - tau] ** 2)) <= 1e-9 * r0
            assert abs(tail[t, tau] - np.sum(x[tau:] ** 2)) <= 1e-9 * r0


def test_voiced_share_tells_a_voice_from_broadband_noise_not_from_a_hum() -> None:
    """The voice gate's voicing test (docs/live.md, "A gate that hears voicing"): a glide with harmonics is voiced,
    white and pink-like noise at any level are not, a hum is (it is periodic), and silence, a DC offset and a
    hop shorter than a frame have no voiced frames."""
    from edge_ser.features.pitch import voiced_share

    t = np.arange(SR // 2) / SR
    glide = sum(np.sin(2 * np.pi * k * np.cumsum(120 + 80 * t) / SR) / k for k in range(1, 6))
    assert voiced_share(0.01 * glide, sr=SR) == 1.0
    rng = np.random.default_rng(0)
    white = rng.standard_normal(t.size)
    brown = np.cumsum(white)  # 1/f^2: as low-pitched as noise gets, the hardest for a period detector
    spectrum = np.fft.rfft(white)
    spectrum[1:] /= np.sqrt(np.arange(1, spectrum.size))
    pink = np.fft.irfft(spectrum, white.size)  # 1/f: a fan, a ventilated room
    for noise in (white, pink, brown - brown.mean()):
        assert voiced_share(0.3 * noise / np.abs(noise).max(), sr=SR) < 0.05
    assert voiced_share(0.05 * np.sin(2 * np.pi * 100 * t) + 0.02 * np.sin(2 * np.pi * 200 * t), sr=SR) == 1.0
    assert voiced_share(np.zeros(t.size), sr=SR) == 0.0
    assert voiced_share(np.full(t.size, 0.3), sr=SR) == 0.0
    assert voiced_share(0.01 * glide[:100], sr=SR) == 0.0
    # a pause in the middle: only its voiced half counts
    half = np.concatenate([0.01 * glide[: t.size // 2], np.zeros(t.size // 2)])
    assert 0.4 < voiced_share(half, sr=SR) < 0.6
    with pytest.raises(ConfigError, match="mono"):
        voiced_share(np.zeros((2, SR)), sr=SR)
    with pytest.raises(ConfigError, match="fmin"):
        voiced_share(np.zeros(SR), sr=SR, fmin=20.0)
