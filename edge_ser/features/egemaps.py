"""Prosodic and voice-quality functionals in the layout of eGeMAPS v02 (88 values per clip), in numpy.

Definitions follow Eyben et al., "The Geneva Minimalistic Acoustic Parameter Set (GeMAPS) for Voice Research
and Affective Computing", IEEE TAC 7(2), 2016, and the parameters of openSMILE's published configuration
(`config/gemaps/v01b/GeMAPSv01b_core.{lld,func}.conf.inc`, `config/egemaps/v02/*`: 20 ms Hamming frames every
10 ms, 26 mel bands 20-8000 Hz, LPC order 11 at 11 kHz, 3-frame smoothing, the functionals and their order).
The code is our own: openSMILE is not used (its wheel is under a research-only licence) and its values are not
reproduced exactly. Where we differ, docs/features.md says how (F0 is pYIN, not subharmonic summation; jitter
and shimmer come from waveform peaks; HNR from YIN's difference function; MFCCs use the project's dB/ortho DCT).

    spec = FunctionalsSpec()                      # 16 kHz, 10 ms hop, F0 55-1000 Hz, DC removed, -26 dBFS
    v = functionals(y, sr=16000, spec=spec)       # [88] float32, names() says what each value is

Every value is finite: a clip with no voiced frame gets 0 for its voiced-frame statistics (as openSMILE does).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_ser.errors import ConfigError
from edge_ser.features import filters
from edge_ser.features.condition import conditioned
from edge_ser.features.pitch import PitchTrack, WindowLags, lag_range, pyin
from edge_ser.features.spec import FeatureSpec
from edge_ser.features.spectral import check_audio, frame, mfcc, power_to_db, stft_frames
from edge_ser.limits import MAX_HOP, MAX_N_FFT
from edge_ser.schema import Checker, config_from_dict

SCHEMA_VERSION = 1
CODE_VERSION = 2
"""Bumped when the functionals' arithmetic changes in a way the spec does not name (2: period marks on the clip
low-passed at 4 kHz)."""
LEGACY = {"silence_db": None, "bounded_cv": False}
"""What a spec written before a field existed computed: a manifest without the field reads as this."""
F0_REFERENCE_HZ = 27.5
"""F0 is given in semitones above 27.5 Hz (A0), as eGeMAPS does."""
FORMANT_RATE = 11000
"""LPC for formants runs on the spectrum up to FORMANT_RATE / 2 = 5.5 kHz (openSMILE resamples to 11 kHz)."""
LPC_ORDER = 11
PRE_EMPHASIS = 0.97
"""Pre-emphasis (1 - 0.97 z^-1) applied to the spectrum before LPC, as Praat and most formant trackers do, so
the glottal source's -12 dB/octave tilt does not take a pole of its own."""
MAX_BANDWIDTH = 1000.0
"""Poles broader than this (Hz) are spectral shaping, not formants (a common rule, e.g. in Praat scripts)."""
N_FORMANTS = 3
LOUDNESS_BANDS = (26, 20.0, 8000.0)
"""Mel bands, lowest and highest edge (Hz) for loudness and MFCC (openSMILE's cMelspec settings)."""
SLOPE_RELATIVE = 0.1
"""Peaks2's relThresh: a rise or fall counts when it spans 10 % of the contour's range."""
HNR_LIMIT_DB = 40.0

_FUNCS10 = (
    "amean",
    "stddevNorm",
    "percentile20.0",
    "percentile50.0",
    "percentile80.0",
    "pctlrange0-2",
    "meanRisingSlope",
    "stddevRisingSlope",
    "meanFallingSlope",
    "stddevFallingSlope",
)
_ALL_FRAMES = ("spectralFlux", "mfcc1", "mfcc2", "mfcc3", "mfcc4")
_VOICED = (
    "jitterLocal",
    "shimmerLocaldB",
    "HNRdBACF",
    "logRelF0-H1-H2",
    "logRelF0-H1-A3",
    "F1frequency",
    "F1bandwidth",
    "F1amplitudeLogRelF0",
    "F2frequency",
    "F2bandwidth",
    "F2amplitudeLogRelF0",
    "F3frequency",
    "F3bandwidth",
    "F3amplitudeLogRelF0",
)
_SPECTRAL_V = ("alphaRatioV", "hammarbergIndexV", "slopeV0-500", "slopeV500-1500", "spectralFluxV")
_MFCC_V = ("mfcc1V", "mfcc2V", "mfcc3V", "mfcc4V")
_SPECTRAL_UV = ("alphaRatioUV", "hammarbergIndexUV", "slopeUV0-500", "slopeUV500-1500", "spectralFluxUV")
_TEMPORAL = (
    "loudnessPeaksPerSec",
    "VoicedSegmentsPerSec",
    "MeanVoicedSegmentLengthSec",
    "StddevVoicedSegmentLengthSec",
    "MeanUnvoicedSegmentLength",
    "StddevUnvoicedSegmentLength",
)


def names() -> list[str]:
    """The 88 value names in order, spelled as openSMILE's eGeMAPSv02 output names them (so a reader can
    look each up in Eyben et al. 2016); docs/features.md describes them."""
    out = [f"F0semitoneFrom27.5Hz_sma3nz_{f}" for f in _FUNCS10]
    out += [f"loudness_sma3_{f}" for f in _FUNCS10]
    out += [f"{n}_sma3_{f}" for n in _ALL_FRAMES for f in ("amean", "stddevNorm")]
    out += [f"{n}_sma3nz_{f}" for n in _VOICED + _SPECTRAL_V + _MFCC_V for f in ("amean", "stddevNorm")]
    out += [f"{n}_sma3nz_amean" for n in _SPECTRAL_UV]
    out += list(_TEMPORAL)
    out += ["equivalentSoundLevel_dBp"]
    return out


DIM = 88
"""Values per clip of the eGeMAPS v02 layout."""

EXTRA_STATS = (
    "stddev",
    "percentile10.0",
    "percentile90.0",
    "skewness",
    "kurtosis",
    "meanAbsDelta",
    "stddevDelta",
)
"""The distribution and dynamics statistics the extended layout adds per descriptor (ComParE-style functionals:
Schuller et al., Interspeech 2013; Eyben's openSMILE book): the eGeMAPS layout keeps only mean, CV and, for F0
and loudness, percentiles and slopes, which leaves out the shape and the frame-to-frame movement of the
spectral and voice-quality contours."""
_EXTRA_VOICED = ("F0", *(n for n in _VOICED))
"""Descriptors summarised over voiced frames in the extended layout (F0 and the 14 voice-quality / formant ones)."""
_EXTRA_ACTIVE = ("loudness", "alphaRatio", "hammarbergIndex", "slope0-500", "slope500-1500", "spectralFlux",
                 "mfcc1", "mfcc2", "mfcc3", "mfcc4")  # fmt: skip
"""Descriptors summarised over every non-pause frame in the extended layout."""
EXTRA_MFCC = tuple(f"mfcc{k}" for k in range(5, 13))
"""Cepstral detail beyond eGeMAPS' MFCC 1-4 in the extended layout: MFCC 5-12 of the same 26-band mel spectrum,
each summarised by its mean and `EXTRA_STATS` over non-pause frames."""
EXTENDED_DIM = (
    DIM
    + len(EXTRA_STATS) * (len(_EXTRA_VOICED) + len(_EXTRA_ACTIVE))
    + (1 + len(EXTRA_STATS)) * len(EXTRA_MFCC)
)
"""Values per clip of the extended layout: the 88, 7 statistics of 25 descriptors, and the mean and 7 statistics
of MFCC 5-12 (327)."""


def extended_names() -> list[str]:
    """The 239 values the extended layout appends to `names()`, in order (openSMILE-style spelling)."""
    voiced = ["F0semitoneFrom27.5Hz" if n == "F0" else n for n in _EXTRA_VOICED]
    out = [f"{n}_sma3nz_{f}" for n in voiced for f in EXTRA_STATS]
    out += [f"{n}_sma3_{f}" for n in _EXTRA_ACTIVE for f in EXTRA_STATS]
    out += [f"{n}_sma3_{f}" for n in EXTRA_MFCC for f in ("amean", *EXTRA_STATS)]
    return out


@dataclass(frozen=True)
class FunctionalsSpec:
    """The clip-functionals front end: frames, F0 range and conditioning. Defaults follow eGeMAPS at 16 kHz
    and the project's recipe (DC removed, level -26 dBFS: `edge_ser.features.condition`, applied first)."""

    sample_rate: int = 16000
    """Rate (Hz) audio is resampled to; at least 11025 (formants and the 1-5 kHz bands need 5.5 kHz)."""
    hop_length: int = 160
    """Samples between frames (10 ms at 16 kHz, eGeMAPS' step)."""
    win_length: int = 320
    """Hamming window of the spectral descriptors (20 ms at 16 kHz, eGeMAPS' frame25 level)."""
    n_fft: int = 512
    """FFT size of the spectral descriptors (the window is zero-padded to it)."""
    f0_frame_length: int = 1024
    """Samples per F0 frame (64 ms at 16 kHz; eGeMAPS uses 60 ms); YIN integrates over half of it."""
    fmin: float = 55.0
    """Lowest F0 searched (Hz; eGeMAPS' minPitch)."""
    fmax: float = 1000.0
    """Highest F0 searched (Hz; eGeMAPS' maxPitch)."""
    silence_db: float | None = 40.0
    """Frames more than this many dB below the clip's loudest are pauses: never voiced (`pitch.pyin`'s silence
    gate) and left out of the loudness, all-frame and unvoiced functionals. Without it, hum in RAVDESS' pauses
    was tracked as voice at ~700 Hz, and a microphone's noise floor in the pauses (where the studio corpus has
    ~-96 dBFS) moved the unvoiced spectra and loudness percentiles by tens of training standard deviations.
    None: every frame counts (eGeMAPS; bundles whose manifest predates the field read as None)."""
    bounded_cv: bool = True
    """stddevNorm of every descriptor but F0 and loudness as std / sqrt(mean^2 + std^2), bounded in [0, 1]
    (`_mean_rcv`); False: eGeMAPS' std / |mean|, unbounded for the descriptors that cross zero."""
    remove_dc: bool = True
    """Subtract the clip's (window's) mean first."""
    level_dbfs: float | None = -26.0
    """Scale the clip (window) to this RMS level first; None: as recorded."""
    extended: bool = False
    """Append `EXTRA_STATS` of 25 descriptors and MFCC 5-12 to the 88 (327 values, `extended_names()`): more
    speaker-independent UAR for the 2-bit MLP (docs/features.md); False: eGeMAPS' 88 (bundles whose manifest
    predates the field read as False)."""
    schema: int = field(default=SCHEMA_VERSION)

    def __post_init__(self) -> None:
        c = Checker("FunctionalsSpec", error=ConfigError)
        c.integer(self.sample_rate, "sample_rate", 11025, 96000)
        c.integer(self.hop_length, "hop_length", 1, MAX_HOP)
        c.integer(self.n_fft, "n_fft", 64, MAX_N_FFT)
        c.integer(self.win_length, "win_length", 16, self.n_fft)
        c.integer(self.f0_frame_length, "f0_frame_length", 64, MAX_N_FFT)
        c.number(self.fmin, "fmin", lo=20, hi=2000)
        c.number(self.fmax, "fmax", lo=40, hi=min(2000.0, self.sample_rate / 2))
        if not self.fmin < self.fmax:
            c.problem("fmin", f"need fmin < fmax, got {self.fmin!r} and {self.fmax!r}")
        need = self.f0_frame_length // 2 + math.ceil(self.sample_rate / self.fmin) + 2
        if self.f0_frame_length < need:
            c.problem(
                "f0_frame_length",
                f"{self.f0_frame_length} samples cannot hold half a frame plus the period of fmin={self.fmin} Hz "
                f"at {self.sample_rate} Hz (need {need}): raise it or fmin",
            )
        if self.hop_length * 4 > self.win_length * 8 or self.sample_rate / self.hop_length > 1000:
            c.problem(
                "hop_length",
                f"{self.hop_length} is too small or too large for {self.win_length}-sample frames",
            )
        if self.silence_db is not None:
            c.number(self.silence_db, "silence_db", lo=1, hi=120)
        c.of(self.bounded_cv, "bounded_cv", bool)
        c.of(self.remove_dc, "remove_dc", bool)
        c.of(self.extended, "extended", bool)
        if self.level_dbfs is not None:
            c.number(self.level_dbfs, "level_dbfs", lo=-60, hi=0)
        if self.schema != SCHEMA_VERSION:
            c.problem(
                "schema", f"this edge-ser reads FunctionalsSpec schema {SCHEMA_VERSION}, got {self.schema!r}"
            )

    @property
    def dim(self) -> int:
        """Values per clip (88, eGeMAPS v02's layout; 327 extended)."""
        return EXTENDED_DIM if self.extended else DIM

    def names(self) -> list[str]:
        return names() + (extended_names() if self.extended else [])

    def feature_spec(self) -> FeatureSpec:
        """The STFT / mel part as a FeatureSpec (what a bundle's `feature_spec` records; its MFCCs are c0-c4)."""
        return FeatureSpec(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window="hamming",
            n_mels=LOUDNESS_BANDS[0],
            fmin=LOUDNESS_BANDS[1],
            fmax=min(LOUDNESS_BANDS[2], self.sample_rate / 2),
            htk=True,
            mel_norm=None,
            n_mfcc=5,
            lifter=22.0,
            top_db=None,
            n_chroma=0,
            remove_dc=self.remove_dc,
            level_dbfs=self.level_dbfs,
        )

    def window_lags(self) -> WindowLags:
        """A live stream's cache of pYIN's lag products for this spec's frames (see `descriptors`)."""
        return WindowLags(
            sr=self.sample_rate,
            fmin=self.fmin,
            fmax=self.fmax,
            frame_length=self.f0_frame_length,
            hop_length=self.hop_length,
        )

    def to_dict(self) -> dict[str, Any]:
        """Every field (the conditioning ones too: this spec has no bundles from before they existed)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FunctionalsSpec:
        """Rebuild from `to_dict()`; missing keys take defaults, unknown keys are an error. A spec written
        written before a field existed reads as it was computed (`LEGACY`: no F0 silence gate, eGeMAPS' CV)."""
        if isinstance(d, dict):
            d = {**{k: v for k, v in LEGACY.items() if k not in d}, **d}
        return config_from_dict(cls, d)

    def to_json(self) -> str:
        return json.dumps({"kind": "functionals", **self.to_dict()}, sort_keys=True)

    def digest(self) -> str:
        """Short content hash, the feature cache's key (with CODE_VERSION: a change of the arithmetic that the
        spec does not name must not reuse cached values)."""
        return hashlib.sha256(f"{self.to_json()} code {CODE_VERSION}".encode()).hexdigest()[:16]

    def __str__(self) -> str:
        return (
            f"FunctionalsSpec({self.sample_rate} Hz, hop {self.hop_length}, F0 {self.fmin:g}-{self.fmax:g} Hz"
            + (f", pauses below -{self.silence_db:g} dB" if self.silence_db is not None else "")
            + (", bounded CV" if self.bounded_cv else "")
            + (", DC removed" if self.remove_dc else "")
            + (f", {self.level_dbfs:g} dBFS" if self.level_dbfs is not None else "")
            + (f", extended ({EXTENDED_DIM})" if self.extended else "")
            + ")"
        )


# -- low-level descriptors -------------------------------------------------------------------------------------


def _band(freqs: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (freqs >= lo) & (freqs <= hi)


def _db(x: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(x, 1e-12))


def _slope_weights(freqs: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Bins of [lo, hi] Hz and the weights that turn their dB values into a least-squares slope (dB/Hz)."""
    sel = _band(freqs, lo, hi)
    f = freqs[sel]
    w = (f - f.mean()) / np.sum((f - f.mean()) ** 2)
    return sel, w


def spectral_descriptors(power: np.ndarray, sr: int, n_fft: int) -> dict[str, np.ndarray]:
    """Per-frame alpha ratio, Hammarberg index, spectral slopes 0-500 / 500-1500 Hz and spectral flux (0-5 kHz)
    of a power spectrogram [T, 1 + n_fft // 2] (eGeMAPS' definitions; dB, dB and dB/Hz)."""
    freqs = filters.fft_frequencies(sr=sr, n_fft=n_fft)
    low, high = power[:, _band(freqs, 50, 1000)].sum(1), power[:, (freqs > 1000) & (freqs <= 5000)].sum(1)
    out = {"alphaRatio": _db(high) - _db(low)}
    out["hammarbergIndex"] = _db(power[:, _band(freqs, 0, 2000)].max(1)) - _db(
        power[:, (freqs > 2000) & (freqs <= 5000)].max(1)
    )
    db = _db(power)
    for lo, hi in ((0, 500), (500, 1500)):
        sel, w = _slope_weights(freqs, lo, hi)
        out[f"slope{lo}-{hi}"] = db[:, sel] @ w
    band = power[:, _band(freqs, 0, 5000)]
    norm = band / np.maximum(band.sum(1, keepdims=True), 1e-20)
    flux = np.zeros(power.shape[0])
    flux[1:] = np.sum(np.diff(norm, axis=0) ** 2, axis=1)
    out["spectralFlux"] = flux
    return out


def _equal_loudness(f: np.ndarray) -> np.ndarray:
    """Hermansky's (1990, PLP) equal-loudness weight at frequency f (Hz), as in openSMILE's cPlp doAud."""
    w2 = (2 * np.pi * f) ** 2
    return (w2 + 56.8e6) * w2**2 / ((w2 + 6.3e6) ** 2 * (w2 + 0.38e9))


def mel_descriptors(power: np.ndarray, spec: FunctionalsSpec) -> dict[str, np.ndarray]:
    """Loudness (sum of equal-loudness weighted, cube-root compressed mel band powers) and MFCC 1-4 (1-12 for an
    `extended` spec) from the 26-band HTK mel spectrum of a power spectrogram [T, bins] (the project's mel and
    MFCC code; each coefficient is the same whatever the count computed)."""
    fs = spec.feature_spec()
    bank = filters.mel(
        sr=fs.sample_rate, n_fft=fs.n_fft, n_mels=fs.n_mels, fmin=fs.fmin, fmax=fs.fmax, htk=True, norm=None,
        dtype=np.float64,
    )  # fmt: skip
    mel = power @ bank.T  # [T, 26]
    centres = filters.mel_frequencies(fs.n_mels + 2, fmin=fs.fmin, fmax=fs.fmax_hz, htk=True)[1:-1]
    loud = np.sum((mel * _equal_loudness(centres)) ** 0.33, axis=1)
    last = 12 if spec.extended else 4
    cc = mfcc(
        S=power_to_db(mel.T, top_db=None), n_mfcc=max(fs.n_mfcc, last + 1), lifter=fs.lifter, norm=fs.dct_norm
    )
    out = {"loudness": loud}
    for k in range(1, last + 1):
        out[f"mfcc{k}"] = cc[k]
    return out


def _levinson(r: np.ndarray, order: int) -> np.ndarray:
    """LPC polynomials a [T, order + 1] (a[:, 0] = 1) from autocorrelations r [T, >= order + 1], batched."""
    T = r.shape[0]
    a = np.zeros((T, order + 1))
    a[:, 0] = 1.0
    err = r[:, 0].copy()
    for i in range(1, order + 1):
        acc = r[:, i] + np.sum(a[:, 1:i] * r[:, i - 1 : 0 : -1], axis=1)
        k = -acc / np.maximum(err, 1e-20)
        a[:, 1:i] = a[:, 1:i] + k[:, None] * a[:, i - 1 : 0 : -1]
        a[:, i] = k
        err = err * (1.0 - k * k)
    return a


def formants(power: np.ndarray, sr: int, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """F1-F3 centre frequencies and bandwidths (Hz) [T, 3] each, NaN where not found, by LPC of order 11 on the
    pre-emphasised 0-5.5 kHz part of each frame's power spectrum (openSMILE resamples the spectrum to 11 kHz the
    same way); poles of 50-5450 Hz narrower than MAX_BANDWIDTH, lowest first.

    The spectrum up to FORMANT_RATE / 2 is the spectrum of the frame resampled to FORMANT_RATE, so its inverse
    FFT is that signal's autocorrelation; roots of the LPC polynomial come from batched companion matrices.
    """
    T = power.shape[0]
    out_f = np.full((T, N_FORMANTS), np.nan)
    out_b = np.full((T, N_FORMANTS), np.nan)
    if T == 0:
        return out_f, out_b
    k = int(round(FORMANT_RATE / 2 / (sr / n_fft)))
    fs = 2 * k * sr / n_fft
    w = np.pi * np.arange(k + 1) / k
    emphasis = (
        1.0 + PRE_EMPHASIS**2 - 2.0 * PRE_EMPHASIS * np.cos(w)
    )  # |1 - a z^-1|^2: flattens the glottal tilt
    r = np.fft.irfft(power[:, : k + 1] * emphasis, n=2 * k, axis=1)[:, : LPC_ORDER + 1]
    r[:, 0] *= 1.0 + 1e-9  # a whisper of white noise keeps the recursion stable on pure tones
    a = _levinson(r, LPC_ORDER)
    comp = np.zeros((T, LPC_ORDER, LPC_ORDER))
    comp[:, 0, :] = -a[:, 1:]
    comp[:, np.arange(1, LPC_ORDER), np.arange(LPC_ORDER - 1)] = 1.0
    ok = np.all(np.isfinite(comp), axis=(1, 2))
    roots = np.zeros((T, LPC_ORDER), complex)
    if ok.any():
        roots[ok] = np.linalg.eigvals(comp[ok])
    freq = np.angle(roots) * fs / (2 * np.pi)
    bw = -np.log(np.maximum(np.abs(roots), 1e-12)) * fs / np.pi
    keep = (roots.imag > 0) & (freq > 50.0) & (freq < 5450.0) & (bw < MAX_BANDWIDTH)
    order = np.argsort(np.where(keep, freq, np.inf), axis=1)[:, :N_FORMANTS]
    f_sorted = np.take_along_axis(np.where(keep, freq, np.nan), order, axis=1)
    b_sorted = np.take_along_axis(np.where(keep, bw, np.nan), order, axis=1)
    n = min(N_FORMANTS, f_sorted.shape[1])
    out_f[:, :n], out_b[:, :n] = f_sorted[:, :n], b_sorted[:, :n]
    return out_f, out_b


def harmonic_descriptors(
    y: np.ndarray, track: PitchTrack, spec: FunctionalsSpec, formant_hz: np.ndarray
) -> dict[str, np.ndarray]:
    """H1-H2, H1-A3 and F1-F3 amplitudes relative to H1 (dB) of the voiced frames, from the magnitude spectrum
    of each F0 frame (Hann, f0_frame_length): a harmonic's level is the peak within one bin of k * F0."""
    T = track.f0.size
    out = {n: np.full(T, np.nan) for n in ("H1-H2", "H1-A3", "F1amp", "F2amp", "F3amp")}
    v = np.flatnonzero(track.voiced)
    if v.size == 0:
        return out
    n = spec.f0_frame_length
    half = n // 2
    padded = np.zeros(y.size + 2 * half)
    padded[half : half + y.size] = y
    frames = frame(padded, frame_length=n, hop_length=spec.hop_length)[v]
    mag = np.abs(np.fft.rfft(frames * filters.window("hann", n, n, dtype=np.float64), axis=1))
    df = spec.sample_rate / n
    f0 = track.f0[v]

    def level(k: np.ndarray) -> np.ndarray:
        """dB level of harmonic k [V] (k >= 1) of each voiced frame; NaN beyond the spectrum."""
        centre = np.round(k * f0 / df).astype(np.int64)
        idx = np.clip(centre[:, None] + np.arange(-1, 2)[None, :], 0, mag.shape[1] - 1)
        peak = np.take_along_axis(mag, idx, axis=1).max(1)
        return np.where(centre < mag.shape[1] - 1, 20.0 * np.log10(np.maximum(peak, 1e-10)), np.nan)

    h1 = level(np.ones(v.size))
    out["H1-H2"][v] = h1 - level(np.full(v.size, 2.0))
    for i in range(N_FORMANTS):
        fi = formant_hz[v, i]
        k = np.where(np.isfinite(fi), np.maximum(np.round(fi / f0), 1.0), 1.0)
        rel = level(k) - h1
        rel = np.where(np.isfinite(fi), rel, np.nan)
        out[f"F{i + 1}amp"][v] = rel
        if i == 2:
            out["H1-A3"][v] = -rel
    return out


def _peak_marks(y: np.ndarray, track: PitchTrack) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Glottal-period marks of the voiced runs: each next mark is the largest sample 0.9-1.1 periods after the
    last (openSMILE's searchRangeRel 0.1). Returns mark positions (samples, parabola-refined), their peak values,
    and the run each belongs to."""
    hop, sr = track.hop_length, track.sample_rate
    pos: list[float] = []
    amp: list[float] = []
    run: list[int] = []
    voiced = track.voiced
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]])))
    f0 = track.f0.tolist()
    for r, (a, b) in enumerate(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True)):
        start, stop = a * hop, min(y.size - 2, (b - 1) * hop + hop // 2)
        period = sr / f0[a]
        if stop - start < 2 * period:
            continue
        seg = y[start : stop + 2].tolist()  # plain floats: the loop below is per period, keep it cheap
        p = max(range(int(period)), key=seg.__getitem__)
        while True:
            t = min(b - 1, max(a, round((p + start) / hop)))
            period = sr / f0[t]
            lo, hi = p + int(0.9 * period), p + math.ceil(1.1 * period) + 1
            if hi + start > stop:
                break
            q = max(range(lo, hi), key=seg.__getitem__)
            y0, y1, y2 = seg[q - 1], seg[q], seg[q + 1]
            den = y0 - 2 * y1 + y2
            shift = 0.5 * (y0 - y2) / den if den < 0 else 0.0
            pos.append(start + q + shift)
            amp.append(y1 - 0.25 * (y0 - y2) * shift)
            run.append(r)
            p = q
    return np.asarray(pos), np.asarray(amp), np.asarray(run, np.int64)


MARK_BAND_HZ = 4000.0
"""Period marks are found on the clip low-passed here: the largest sample of the raw waveform moves with its
content near the top of the band, so a recording resampled from another rate (its top ~10 % filtered away)
moved the marks and shifted jitter by up to 19 within-speaker standard deviations (EMODB, 16 vs 22.05 kHz);
below 4 kHz every capture at >= 16 kHz is the same, and the glottal peaks stay sharp."""


def _lowpass(y: np.ndarray, sr: int, cutoff: float, taps: int = 129) -> np.ndarray:
    """Zero-phase windowed-sinc low-pass (Hann, `taps` odd): no delay, so mark positions stay in place."""
    n = np.arange(taps) - taps // 2
    h = 2 * cutoff / sr * np.sinc(2 * cutoff / sr * n) * np.hanning(taps)
    return np.convolve(y, h / h.sum(), mode="same")


def jitter_shimmer(y: np.ndarray, track: PitchTrack, window_s: float = 0.06) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame local jitter (mean |L_i - L_{i-1}| / mean L) and local shimmer in dB (mean |20 log10(A_{i+1} /
    A_i)|) over the periods within +-window_s / 2 of each voiced frame (eGeMAPS' 60 ms F0 frame); NaN where
    fewer than two period pairs fall in the window."""
    T = track.f0.size
    jit, shim = np.full(T, np.nan), np.full(T, np.nan)
    pos, amp, run = _peak_marks(_lowpass(np.asarray(y, np.float64), track.sample_rate, MARK_BAND_HZ), track)
    if pos.size < 3:
        return jit, shim
    length = np.diff(pos)
    same = run[1:] == run[:-1]
    # pairs of consecutive periods (i-1, i) inside one run
    pair = same[1:] & same[:-1]
    dlen = np.where(pair, np.abs(np.diff(length)), 0.0)
    lsum = np.where(pair, length[1:], 0.0)
    ratio = np.abs(20.0 * np.log10(np.maximum(amp[1:], 1e-9) / np.maximum(amp[:-1], 1e-9)))
    ratio = np.where(same & (amp[1:] > 0) & (amp[:-1] > 0), ratio, 0.0)
    centre = pos[2:]  # where pair i is anchored
    c_pair = np.concatenate([[0.0], np.cumsum(pair)])
    c_dlen, c_lsum = np.concatenate([[0.0], np.cumsum(dlen)]), np.concatenate([[0.0], np.cumsum(lsum)])
    ok_sh = same & (amp[1:] > 0) & (amp[:-1] > 0)
    c_sh, c_shn = np.concatenate([[0.0], np.cumsum(ratio)]), np.concatenate([[0.0], np.cumsum(ok_sh)])
    t = np.arange(T) * track.hop_length
    w = window_s * track.sample_rate / 2
    lo, hi = np.searchsorted(centre, t - w), np.searchsorted(centre, t + w)
    npair = c_pair[hi] - c_pair[lo]
    with np.errstate(divide="ignore", invalid="ignore"):
        j = (c_dlen[hi] - c_dlen[lo]) / (c_lsum[hi] - c_lsum[lo])
        lo2, hi2 = np.searchsorted(pos[1:], t - w), np.searchsorted(pos[1:], t + w)
        nsh = c_shn[hi2] - c_shn[lo2]
        s = (c_sh[hi2] - c_sh[lo2]) / nsh
    good = track.voiced & (npair >= 2)
    jit[good] = j[good]
    good_s = track.voiced & (nsh >= 2)
    shim[good_s] = s[good_s]
    return jit, shim


def _sma3(x: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """openSMILE's 3-frame moving average; with `valid` (the 'nz' contours) only valid neighbours are averaged
    and invalid frames stay NaN."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x) if valid is None else (valid & np.isfinite(x))
    v = np.where(ok, x, 0.0)
    num = v + np.concatenate([[0.0], v[:-1]]) + np.concatenate([v[1:], [0.0]])
    o = ok.astype(np.float64)
    den = o + np.concatenate([[0.0], o[:-1]]) + np.concatenate([o[1:], [0.0]])
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    return np.where(ok, out, np.nan)


@dataclass(frozen=True)
class Descriptors:
    """A clip's low-level descriptors, one value per 10 ms frame (NaN where a voiced-only one is absent)."""

    lld: dict[str, np.ndarray]
    voiced: np.ndarray
    energy: np.ndarray
    """Mean square of each 20 ms frame (for the equivalent sound level)."""
    hop_seconds: float
    duration: float
    active: np.ndarray | None = None
    """Frames that are not pauses (within `FunctionalsSpec.silence_db` of the loudest); None: every frame."""


def descriptors(
    y: np.ndarray, *, sr: int, spec: FunctionalsSpec = FunctionalsSpec(), lags: WindowLags | None = None
) -> Descriptors:
    """The low-level descriptors of a mono clip `y [n]` at `sr` Hz (= spec.sample_rate), conditioned first.
    `lags`: a live stream's `WindowLags` (built from this spec's pYIN frames), so that the frames `y` shares with
    the stream's last window are not transformed again (the same values up to rounding)."""
    check_audio(y)
    if y.ndim != 1:
        raise ConfigError(f"functionals: expects mono audio [n], got shape {y.shape}")
    if int(sr) != spec.sample_rate:
        raise ConfigError(
            f"functionals: audio is at {sr} Hz, the FunctionalsSpec expects {spec.sample_rate} Hz"
        )
    fs = spec.feature_spec()
    if lags is not None:
        max_lag = lag_range(spec.sample_rate, spec.fmin, spec.fmax, spec.f0_frame_length, "functionals")[1]
        if lags.frames != (want := (spec.f0_frame_length, spec.hop_length, max_lag)):
            raise ConfigError(
                f"functionals: the WindowLags frames (length, hop, largest lag) {lags.frames} samples are not the "
                f"spec's {want}: build it with spec.window_lags()"
            )
    c = conditioned(np.asarray(y), fs)
    x = np.asarray(c.x, dtype=np.float64)
    X = stft_frames(x, **fs.stft_kwargs())
    power = X.real**2 + X.imag**2
    track = pyin(
        x,
        sr=sr,
        fmin=spec.fmin,
        fmax=spec.fmax,
        frame_length=spec.f0_frame_length,
        hop_length=spec.hop_length,
        silence_db=spec.silence_db,
        products=None if lags is None else lags.products(np.asarray(y), c.offset, c.gain),
    )
    T = min(power.shape[0], track.f0.size)
    power = power[:T]
    voiced = track.voiced[:T]
    lld: dict[str, np.ndarray] = {}
    lld["F0"] = np.where(
        voiced, 12.0 * np.log2(np.where(voiced, track.f0[:T], 1.0) / F0_REFERENCE_HZ), np.nan
    )
    lld.update(mel_descriptors(power, spec))
    lld.update(spectral_descriptors(power, sr, spec.n_fft))
    jit, shim = jitter_shimmer(x, track)
    lld["jitterLocal"], lld["shimmerLocaldB"] = jit[:T], shim[:T]
    p = np.clip(track.periodicity[:T], 1e-4, 1 - 1e-4)
    hnr = np.clip(10.0 * np.log10(p / (1.0 - p)), -HNR_LIMIT_DB, HNR_LIMIT_DB)
    lld["HNRdBACF"] = np.where(voiced, hnr, np.nan)
    f_hz = np.full((T, N_FORMANTS), np.nan)
    b_hz = np.full((T, N_FORMANTS), np.nan)
    if voiced.any():
        f_hz[voiced], b_hz[voiced] = formants(power[voiced], sr, spec.n_fft)
    harm = harmonic_descriptors(x, track, spec, np.vstack([f_hz, np.full((track.f0.size - T, 3), np.nan)]))
    lld["logRelF0-H1-H2"], lld["logRelF0-H1-A3"] = harm["H1-H2"][:T], harm["H1-A3"][:T]
    for i in range(N_FORMANTS):
        lld[f"F{i + 1}frequency"] = f_hz[:, i]
        lld[f"F{i + 1}bandwidth"] = b_hz[:, i]
        lld[f"F{i + 1}amplitudeLogRelF0"] = harm[f"F{i + 1}amp"][:T]
    half = spec.win_length // 2
    padded = np.zeros(x.size + 2 * half)
    padded[half : half + x.size] = x
    energy = np.mean(frame(padded, frame_length=spec.win_length, hop_length=spec.hop_length)[:T] ** 2, axis=1)
    active = None
    if spec.silence_db is not None and energy.size:
        active = energy >= energy.max() * 10.0 ** (-spec.silence_db / 10.0)
    return Descriptors(lld, voiced, energy, spec.hop_length / sr, y.size / sr, active)


# -- functionals -----------------------------------------------------------------------------------------------


def _zigzag(x: np.ndarray, delta: float) -> list[int]:
    """Indices of alternating extrema of x, each move at least `delta` (Peaks2's relative threshold)."""
    if x.size < 2 or delta <= 0:
        return []
    piv: list[int] = []
    trend, lo, hi, last = 0, 0, 0, 0
    for i in range(1, x.size):
        v = x[i]
        if trend == 0:
            lo = i if v < x[lo] else lo
            hi = i if v > x[hi] else hi
            if x[hi] - x[lo] >= delta:
                first, last = (lo, hi) if hi > lo else (hi, lo)
                piv.append(first)
                trend = 1 if hi > lo else -1
        elif trend == 1:
            if v > x[last]:
                last = i
            elif x[last] - v >= delta:
                piv.append(last)
                trend, last = -1, i
        else:
            if v < x[last]:
                last = i
            elif v - x[last] >= delta:
                piv.append(last)
                trend, last = 1, i
    if trend != 0:
        piv.append(last)
    return piv


def _slopes(x: np.ndarray, runs: list[np.ndarray], hop_s: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Rising and falling slopes (units per second) between the alternating extrema of each run of x, and the
    number of peaks (interior maxima)."""
    finite = x[np.isfinite(x)]
    if finite.size < 2:
        return np.zeros(0), np.zeros(0), 0
    delta = SLOPE_RELATIVE * float(finite.max() - finite.min())
    rise: list[float] = []
    fall: list[float] = []
    peaks = 0
    for idx in runs:
        v = x[idx]
        piv = _zigzag(v, delta)
        for a, b in zip(piv[:-1], piv[1:], strict=False):
            s = (v[b] - v[a]) / ((idx[b] - idx[a]) * hop_s)
            (rise if s > 0 else fall).append(abs(s))
        peaks += sum(1 for k in range(1, len(piv) - 1) if v[piv[k]] > v[piv[k - 1]])
    return np.asarray(rise), np.asarray(fall), peaks


def _mean_cv(v: np.ndarray) -> tuple[float, float]:
    """Arithmetic mean and coefficient of variation (std / |mean|; openSMILE's stddevNorm), 0 for no values."""
    if v.size == 0:
        return 0.0, 0.0
    m = float(np.mean(v))
    return m, float(np.std(v) / abs(m)) if abs(m) > 1e-10 else 0.0


def _mean_rcv(v: np.ndarray) -> tuple[float, float]:
    """Arithmetic mean and the bounded coefficient of variation std / sqrt(mean^2 + std^2) = CV / sqrt(1 + CV^2),
    in [0, 1]: our stddevNorm for every descriptor but F0 and loudness. MFCCs, spectral slopes, HNR and
    H1-H2 cross zero, where std / |mean| is unbounded: resampling one RAVDESS clip moved its mfcc3V mean near
    0 and that value from 1 to 22 training standard deviations. For a descriptor far from 0 it is CV, squashed."""
    if v.size == 0:
        return 0.0, 0.0
    m, sd = float(np.mean(v)), float(np.std(v))
    rms = math.hypot(m, sd)
    return m, sd / rms if rms > 1e-10 else 0.0


def _ms(v: np.ndarray) -> tuple[float, float]:
    return (float(np.mean(v)), float(np.std(v))) if v.size else (0.0, 0.0)


def _ten(x: np.ndarray, runs: list[np.ndarray], hop_s: float) -> tuple[list[float], int]:
    """The ten F0 / loudness functionals of contour x over the frames of `runs`, and its peak count."""
    v = x[np.concatenate(runs)] if runs else np.zeros(0)
    if v.size == 0:
        return [0.0] * 10, 0
    mean, cv = _mean_cv(v)
    p20, p50, p80 = (float(q) for q in np.percentile(v, [20, 50, 80]))
    rise, fall, peaks = _slopes(x, runs, hop_s)
    return [mean, cv, p20, p50, p80, p80 - p20, *_ms(rise), *_ms(fall)], peaks


def _runs(mask: np.ndarray) -> list[np.ndarray]:
    """Frame indices of each run of True in mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [np.arange(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _shape_stats(S: np.ndarray) -> np.ndarray:
    """`EXTRA_STATS` [k, 7] of each row of S [k, t] (contours over the same selected frames, in time order);
    zeros below 3 frames. One batched pass per descriptor group: per row it cost ~4x more."""
    k, t = S.shape
    if t < 3:
        return np.zeros((k, len(EXTRA_STATS)))
    sd = S.std(axis=1)
    z = (S - S.mean(axis=1, keepdims=True)) / (sd[:, None] + 1e-9)
    p10, p90 = np.percentile(S, [10, 90], axis=1)
    delta = np.diff(S, axis=1)
    moments = ((z**3).mean(axis=1), (z**4).mean(axis=1), np.abs(delta).mean(axis=1), delta.std(axis=1))
    return np.stack([sd, p10, p90, *moments], axis=1)


def _group_stats(contours: list[np.ndarray], frames: np.ndarray, *, mean: bool = False) -> np.ndarray:
    """[k, 7] (`mean`: [k, 8], the mean first) of smoothed contours over `frames`, each over its finite values
    there: contours finite on every selected frame share one batched pass, the others go one by one."""
    M = np.stack(contours)[:, frames]
    finite = np.isfinite(M)
    full = finite.all(axis=1)
    out = np.zeros((len(contours), len(EXTRA_STATS)))
    if full.any():
        out[full] = _shape_stats(M[full])
    for i in np.flatnonzero(~full):
        out[i] = _shape_stats(M[i, finite[i]][None])[0]
    if not mean:
        return out
    means = np.array([float(np.mean(M[i, finite[i]])) if finite[i].any() else 0.0 for i in range(len(M))])
    return np.column_stack([means, out])


def extended_summary(d: Descriptors) -> np.ndarray:
    """The 239 values the extended layout appends [239] float64: `EXTRA_STATS` of F0 and the voice-quality
    descriptors over voiced frames, of loudness, the spectral ones and MFCC 1-4 over non-pause frames, and the
    mean and `EXTRA_STATS` of MFCC 5-12 over non-pause frames (the same 3-frame smoothing and frame selections as
    the 88). Needs descriptors of an `extended` spec (they hold MFCC 5-12)."""
    missing = [n for n in EXTRA_MFCC if n not in d.lld]
    if missing:
        raise ConfigError(
            f"functionals: the extended layout needs {', '.join(missing)}; compute the descriptors with an "
            "extended FunctionalsSpec"
        )
    voiced = d.voiced
    act = np.ones(voiced.size, bool) if d.active is None else d.active
    parts = [
        _group_stats([_sma3(d.lld[n], voiced) for n in _EXTRA_VOICED], voiced),
        _group_stats([_sma3(d.lld[n]) for n in _EXTRA_ACTIVE], act),
        _group_stats([_sma3(d.lld[n]) for n in EXTRA_MFCC], act, mean=True),
    ]
    return np.concatenate([p.ravel() for p in parts])


def summarise(d: Descriptors, *, bounded_cv: bool = True, extended: bool = False) -> np.ndarray:
    """The functionals [88] (or [327] `extended`) float64 of a clip's descriptors, in `names()` (+
    `extended_names()`) order (`bounded_cv`: see FunctionalsSpec)."""
    lld, voiced, hop = d.lld, d.voiced, d.hop_seconds
    cv = _mean_rcv if bounded_cv else _mean_cv
    T = voiced.size
    v_runs, u_runs = _runs(voiced), _runs(~voiced)
    f0 = _sma3(lld["F0"], voiced)
    f0_funcs, _ = _ten(f0, v_runs, hop)
    act = np.ones(T, bool) if d.active is None else d.active
    loud = _sma3(lld["loudness"])
    loud_funcs, loud_peaks = _ten(loud, _runs(act), hop)
    out = f0_funcs + loud_funcs
    for n in _ALL_FRAMES:
        out += cv(_sma3(lld[n])[act])
    uv = ~voiced & act
    spectral_names = ("alphaRatio", "hammarbergIndex", "slope0-500", "slope500-1500", "spectralFlux")
    for n in _VOICED:
        s = _sma3(lld[n], voiced)
        out += cv(s[np.isfinite(s)])
    for n in (*spectral_names, "mfcc1", "mfcc2", "mfcc3", "mfcc4"):
        s = _sma3(lld[n], voiced)
        out += cv(s[np.isfinite(s)])
    for n in spectral_names:
        s = _sma3(lld[n], uv)
        out.append(_mean_cv(s[np.isfinite(s)])[0])
    dur = max(d.duration, 1e-9)
    v_len = np.array([len(r) * hop for r in v_runs])
    u_len = np.array([len(r) * hop for r in u_runs])
    out += [loud_peaks / dur, len(v_runs) / dur, *_ms(v_len), *_ms(u_len)]
    out.append(10.0 * math.log10(max(float(np.mean(d.energy)) if d.energy.size else 0.0, 1e-12)))
    vec = np.asarray(out, dtype=np.float64)
    if vec.size != DIM:  # pragma: no cover - the layout is fixed
        raise AssertionError(f"functionals: built {vec.size} values, the layout has {DIM}")
    if extended:
        vec = np.concatenate([vec, extended_summary(d)])
    return np.nan_to_num(vec, nan=0.0, posinf=0.0, neginf=0.0)


def functionals(
    y: np.ndarray, *, sr: int, spec: FunctionalsSpec = FunctionalsSpec(), lags: WindowLags | None = None
) -> np.ndarray:
    """The eGeMAPS-layout functionals [spec.dim] float32 (88, or 327 `extended`) of a mono clip `y [n]` at `sr`
    Hz (= spec.sample_rate); `lags` as in `descriptors`."""
    d = descriptors(y, sr=sr, spec=spec, lags=lags)
    return summarise(d, bounded_cv=spec.bounded_cv, extended=spec.extended).astype(np.float32)


__all__ = [
    "DIM",
    "EXTENDED_DIM",
    "EXTRA_MFCC",
    "EXTRA_STATS",
    "Descriptors",
    "FunctionalsSpec",
    "descriptors",
    "extended_names",
    "extended_summary",
    "formants",
    "functionals",
    "jitter_shimmer",
    "names",
    "spectral_descriptors",
    "summarise",
]
