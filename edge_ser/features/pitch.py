"""F0 tracking in numpy: probabilistic YIN (pYIN) with a voicing decision and a voicing probability.

YIN (de Cheveigné & Kawahara, JASA 2002) finds the period as the first dip of the cumulative-mean-normalised
difference function d'(tau); pYIN (Mauch & Dixon, ICASSP 2014) replaces its single threshold by a Beta(2, 18)
prior over 100 thresholds, which turns each dip into a probability, and decodes pitch and voicing with a
Viterbi pass. The observation model here follows librosa 0.11's `pyin` (our reference in tests; never a device
dependency), with two economies that keep it Pi-sized:

- the difference function of every frame comes from one batched FFT and cumulative sums (no loop over frames);
- the Viterbi pass runs over each frame's candidate periods (its first `MAX_CANDIDATES` dips plus the global
  minimum) and one unvoiced state, instead of librosa's 2 x ~500 pitch bins: the transition weights are the
  same triangle over 0.1-semitone bins (at most `MAX_TRANSITION_RATE` octaves per second) and the same
  voiced/unvoiced switch probability, so only the loop of a few states per frame is sequential.

Frames are centred (frame t is centred on sample t * hop, zero padding), as in librosa and the STFT here.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from edge_ser.errors import ConfigError
from edge_ser.features.spectral import check_audio, frame

N_THRESHOLDS = 100
"""Thresholds of the pYIN prior (librosa's default)."""
BETA_PARAMETERS = (2.0, 18.0)
"""Beta(a, b) prior over the thresholds: mean 0.1, YIN's usual fixed threshold (pYIN paper, librosa)."""
BOLTZMANN_PARAMETER = 2.0
"""Prior that favours earlier dips (shorter periods are less likely octave errors downwards)."""
NO_TROUGH_PROB = 0.01
"""Probability mass given to the global minimum at thresholds with no dip below them."""
SWITCH_PROB = 0.01
"""Voiced <-> unvoiced transition probability per frame (librosa's default)."""
MAX_TRANSITION_RATE = 35.92
"""Largest F0 change the decoder allows, in octaves per second (librosa's default)."""
RESOLUTION = 0.1
"""Pitch bin width in semitones for the transition model and the unvoiced observation (librosa's default)."""
MAX_CANDIDATES = 8
"""Dips kept per frame (shortest periods first), plus the frame's lowest dip when it is not among them."""


@dataclass(frozen=True)
class PitchTrack:
    """One clip's F0 track, a value per frame (frame t centred on sample t * hop)."""

    f0: np.ndarray
    """F0 in Hz [frames] float64, NaN where unvoiced."""
    voiced: np.ndarray
    """Voicing decision [frames] bool."""
    voiced_prob: np.ndarray
    """pYIN's voicing probability [frames] in [0, 1] (before decoding)."""
    periodicity: np.ndarray
    """Normalised autocorrelation at the chosen period [frames] in [0, 1] (0 where unvoiced): the harmonic
    part of the frame's energy, for HNR."""
    hop_length: int
    sample_rate: int

    @property
    def times(self) -> np.ndarray:
        """Frame centres in seconds."""
        return np.arange(self.f0.size) * self.hop_length / self.sample_rate


def _beta_probs() -> np.ndarray:
    """Probability of each of the N_THRESHOLDS threshold intervals under Beta(2, 18) (closed-form CDF)."""
    a, b = BETA_PARAMETERS
    if (a, b) != (2.0, 18.0):  # pragma: no cover - the closed form below is for integer a = 2
        raise ConfigError("only the Beta(2, 18) prior is implemented")
    x = np.linspace(0.0, 1.0, N_THRESHOLDS + 1)
    # regularised incomplete beta I_x(2, b) = 1 - (1 - x)^b (1 + b x)
    cdf = 1.0 - (1.0 - x) ** b * (1.0 + b * x)
    return np.diff(cdf)


_BETA = _beta_probs()
_THRESHOLDS = np.linspace(0.0, 1.0, N_THRESHOLDS + 1)[1:]


def fast_length(n: int) -> int:
    """The smallest length >= n of the form 2^k or 3 * 2^k, which pocketfft transforms fastest: for the 1,316
    samples a 1024-sample frame and 291 lags need, 1,536 instead of the next power of two, 2,048, makes the pYIN
    FFT pair ~1.9x faster per 3 s window (7.3 -> 3.8 ms, measured side by side; 5-smooth 1,350 was 4.2 ms)."""
    two = 1 << max(0, (int(n) - 1).bit_length())
    return three if (three := 3 * (two // 4)) >= n else two


def lag_products(frames: np.ndarray, max_lag: int) -> np.ndarray:
    """r[t, tau] = sum_j frames[t, j] * frames[t, j + tau] over each frame alone (no wrap), tau = 0..max_lag:
    one FFT pair for all frames [T, N] -> [T, max_lag + 1] float64."""
    n = fast_length(frames.shape[1] + max_lag + 1)  # >= N + max_lag: no circular wrap into the lags kept
    spec = np.fft.rfft(frames, n, axis=1)
    return np.fft.irfft(spec.real**2 + spec.imag**2, n, axis=1)[:, : max_lag + 1]


def centred(y: np.ndarray, frame_length: int) -> np.ndarray:
    """`y` [n] with frame_length // 2 zeros on each side (float64): frame t of it, hop by hop, is centred on sample
    t * hop of `y`, as pyin frames a clip."""
    half = frame_length // 2
    padded = np.zeros(y.size + 2 * half)
    padded[half : half + y.size] = y
    return padded


def difference(
    padded: np.ndarray,
    *,
    frame_length: int,
    hop_length: int,
    max_lag: int,
    products: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YIN's difference function of every frame of `padded`, batched: one FFT pair and one cumulative sum.

    Frame t is padded[t * hop : t * hop + frame_length] (N samples), integrated over the whole frame as librosa
    0.11's `pyin` does: d[t, tau] = 2 (r(0) - r(tau)) - sum_{j < tau} x_j^2, which is the squared difference over
    the frame's overlap with itself shifted by tau plus the energy of the frame's last tau samples (librosa keeps
    that term; keeping it too is what makes our voicing decisions agree with the reference).

    `products`: the frames' `lag_products`, when the caller has them (`WindowLags`); else computed here.

    Returns:
        d [T, max_lag + 1]; and the energies of x[:N - tau] and x[tau:] ([T, max_lag + 1] each), which make
        r(tau) / sqrt(head * tail) the normalised autocorrelation.
    """
    frames = frame(padded, frame_length=frame_length, hop_length=hop_length)
    T, N = frames.shape
    if products is None:
        r = lag_products(frames, max_lag)
    elif products.shape != (T, max_lag + 1):
        raise ConfigError(
            f"difference: products must be [{T}, {max_lag + 1}] for these frames, got {products.shape}"
        )
    else:
        r = products
    c = np.concatenate([[0.0], np.cumsum(padded * padded)])
    starts = np.arange(T)[:, None] * hop_length
    lags = np.arange(max_lag + 1)[None, :]
    total = c[starts + N] - c[starts]  # [T, 1]
    head = total - (c[starts + N] - c[starts + N - lags])  # energy of x[:N - tau]
    tail = total - (c[starts + lags] - c[starts])  # energy of x[tau:]
    d = 2.0 * (r[:, :1] - r) - (c[starts + lags] - c[starts])
    np.maximum(d, 0.0, out=d)  # FFT rounding can dip a hair below zero
    return d, head, tail


def cmnd(d: np.ndarray) -> np.ndarray:
    """Cumulative-mean-normalised difference d'[T, L] (d'[:, 0] = 1), YIN's step 3."""
    out = np.ones_like(d)
    tau = np.arange(1, d.shape[1])
    mean = np.cumsum(d[:, 1:], axis=1) / tau
    out[:, 1:] = d[:, 1:] / np.maximum(mean, np.finfo(np.float64).tiny)
    return out


def _parabolic(y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Sub-sample offset of the minimum at column idx of each row of y: the vertex of the parabola through
    three points, 0 when it falls outside them or at the edges (librosa's rule)."""
    rows = np.arange(y.shape[0])[:, None]
    i = np.clip(idx, 1, y.shape[1] - 2)
    left, mid, right = y[rows, i - 1], y[rows, i], y[rows, i + 1]
    a = right + left - 2.0 * mid
    b = 0.5 * (right - left)
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(np.abs(b) < np.abs(a), -b / a, 0.0)
    return np.where((idx >= 1) & (idx <= y.shape[1] - 2), shift, 0.0)


_POS_PRIOR = (1.0 - math.exp(-BOLTZMANN_PARAMETER)) * np.exp(-BOLTZMANN_PARAMETER * np.arange(MAX_CANDIDATES))
with np.errstate(divide="ignore"):
    _NORM = 1.0 / (1.0 - np.exp(-BOLTZMANN_PARAMETER * np.arange(MAX_CANDIDATES + 1)))
_USED = int(np.searchsorted(np.cumsum(_BETA), 1.0 - 1e-9)) + 1
"""Thresholds that carry prior mass (Beta(2, 18) puts < 1e-9 above ~0.7): the rest would add nothing."""


def _candidates(dn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's candidate lags (column index into dn) and their pYIN probabilities, [T, K] each.

    dn is d' restricted to lags min_lag..max_lag ([T, L]). Candidates are the frame's first K dips in lag order;
    absent ones have probability 0. At threshold s, the dips below s are ranked by lag and a Boltzmann prior
    picks among them (weighted by the Beta prior of s); thresholds with no dip below them give NO_TROUGH_PROB
    of their mass to the lowest dip (librosa 0.11's `pyin`, step by step).
    """
    T, L = dn.shape
    trough = np.zeros((T, L), bool)
    trough[:, 1:-1] = (dn[:, 1:-1] < dn[:, :-2]) & (dn[:, 1:-1] <= dn[:, 2:])
    trough[:, 0] = dn[:, 0] < dn[:, 1]
    K = MAX_CANDIDATES
    idx = np.argsort(~trough, axis=1, kind="stable")[:, :K]  # the first K dips, in lag order
    valid = np.take_along_axis(trough, idx, axis=1)
    # ... and the lowest dip, wherever it is (a noisy frame can have more than K dips before its period)
    lowest = np.argmin(np.where(trough, dn, np.inf), axis=1)
    extra_col = ~np.any(valid & (idx == lowest[:, None]), axis=1) & trough.any(axis=1)
    idx = np.concatenate([idx, lowest[:, None]], axis=1)
    valid = np.concatenate([valid, extra_col[:, None]], axis=1)
    height = np.where(valid, np.take_along_axis(dn, idx, axis=1), np.inf)
    below = height[:, :, None] < _THRESHOLDS[None, None, :_USED]  # [T, K + 1, S]
    pos = np.cumsum(below, axis=1) - 1
    n_below = np.minimum(below.sum(axis=1), MAX_CANDIDATES)  # [T, S]
    prior = np.where(below, _POS_PRIOR[np.clip(pos, 0, K - 1)] * _NORM[n_below][:, None, :], 0.0)
    prob = prior @ _BETA[:_USED]
    rows = np.arange(T)
    low_col = np.argmin(height, axis=1)
    n_no = np.searchsorted(_THRESHOLDS, height[rows, low_col], side="right")
    extra = NO_TROUGH_PROB * np.concatenate([[0.0], np.cumsum(_BETA)])[np.minimum(n_no, N_THRESHOLDS)]
    prob[rows, low_col] += np.where(valid.any(axis=1), extra, 0.0)
    # a dip at the shortest lag is fmax itself, where librosa's pitch bins end: its probability falls out of
    # the voiced states there (it still ranks the other dips and can be the lowest), and so it does here
    prob[idx == 0] = 0.0
    return idx, np.where(valid, prob, 0.0)


def _viterbi(log_emit: np.ndarray, log_trans: np.ndarray, log_start: np.ndarray) -> np.ndarray:
    """Most likely state per frame: log_emit [T, S], log_trans [T-1, S, S] (from, to), log_start [S]."""
    T, S = log_emit.shape
    back = np.zeros((T, S), np.int64)
    score = log_start + log_emit[0]
    for t in range(1, T):  # a few states per frame: the only sequential part
        cand = score[:, None] + log_trans[t - 1]
        back[t] = np.argmax(cand, axis=0)
        score = cand[back[t], np.arange(S)] + log_emit[t]
    path = np.empty(T, np.int64)
    path[-1] = int(np.argmax(score))
    for t in range(T - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def _lags(y: np.ndarray, sr: int, fmin: float, fmax: float, frame_length: int, who: str) -> tuple[int, int]:
    """`who`'s input and F0 range checked (ConfigError naming it); the lags of fmax and fmin in samples."""
    check_audio(y)
    if y.ndim != 1:
        raise ConfigError(f"{who}: expects mono audio [n], got shape {y.shape}")
    return lag_range(sr, fmin, fmax, frame_length, who)


def lag_range(sr: int, fmin: float, fmax: float, frame_length: int, who: str = "pyin") -> tuple[int, int]:
    """The lags of fmax and fmin in samples, for frames of `frame_length` at `sr` Hz (ConfigError naming `who`
    when the range is empty or a frame cannot hold fmin's period)."""
    if not 0 < fmin < fmax <= sr / 2:
        raise ConfigError(f"{who}: need 0 < fmin < fmax <= sr/2, got fmin={fmin}, fmax={fmax}, sr={sr}")
    min_lag = max(1, int(math.floor(sr / fmax)))
    max_lag = int(math.ceil(sr / fmin))
    if max_lag >= frame_length - 1 or min_lag + 2 > max_lag:
        raise ConfigError(
            f"{who}: a frame of {frame_length} samples cannot hold the {max_lag}-sample period of fmin={fmin} Hz: "
            "raise frame_length or fmin"
        )
    return min_lag, max_lag


def pyin(
    y: np.ndarray,
    *,
    sr: int,
    fmin: float = 55.0,
    fmax: float = 1000.0,
    frame_length: int = 1024,
    hop_length: int = 160,
    silence_db: float | None = None,
    products: np.ndarray | None = None,
) -> PitchTrack:
    """F0, voicing and voicing probability of a mono clip `y [n]` at `sr` Hz (probabilistic YIN).

    Args:
        fmin, fmax: the F0 search range in Hz (eGeMAPS: 55-1000 Hz).
        frame_length: samples per analysis frame (64 ms at 16 kHz); it must hold the period of fmin.
        hop_length: samples between frame centres (10 ms at 16 kHz).
        silence_db: frames whose energy is more than this many dB below the clip's loudest frame are unvoiced
            (Praat's silence threshold, on frame energy): hum or whine in a recording's pauses is periodic, and
            pYIN alone calls it voiced at its own pitch. None: no gate (librosa's `pyin`).
        products: the `lag_products` of the clip's frames (zero-padded and centred, as here), when the caller
            has them (`WindowLags.products`, for a live window); else computed here.
    """
    min_lag, max_lag = _lags(y, sr, fmin, fmax, frame_length, "pyin")
    if silence_db is not None and not 0 < silence_db < 200:
        raise ConfigError(
            f"pyin: silence_db must be a positive level difference in dB or None, got {silence_db}"
        )
    d, head, tail = difference(
        centred(y, frame_length),
        frame_length=frame_length,
        hop_length=hop_length,
        max_lag=max_lag,
        products=products,
    )
    dn = cmnd(d)[:, min_lag : max_lag + 1]
    idx, prob = _candidates(dn)
    if silence_db is not None:
        energy = head[:, 0]  # each frame's energy
        prob[energy < energy.max() * 10.0 ** (-silence_db / 10.0)] = 0.0
    T, K = idx.shape
    period = min_lag + idx + _parabolic(dn, idx)
    f0_cand = sr / period
    present = prob > 0
    # pYIN's observation model: voiced bins carry their dip probability, each unvoiced bin (1 - v) / n_bins
    n_bins = int(math.floor(12 / RESOLUTION * math.log2(fmax / fmin))) + 1
    voiced_prob = np.clip(prob.sum(axis=1), 0.0, 1.0)
    log_emit = np.log(np.concatenate([prob, ((1.0 - voiced_prob) / n_bins)[:, None]], axis=1) + 1e-300)
    # transitions: a triangle over 0.1-semitone bins, at most MAX_TRANSITION_RATE octaves per second, as librosa
    half_width = int(round(MAX_TRANSITION_RATE * 12 * hop_length / sr)) * int(math.ceil(1 / RESOLUTION)) // 2
    top = 1.0 / (half_width + 1)  # the triangle's peak once a row is normalised
    if T > 1:
        cents = 1200.0 * np.log2(f0_cand)
        steps = np.round((cents[:-1, :, None] - cents[1:, None, :]) / (100.0 * RESOLUTION))
        tri = np.maximum(0.0, 1.0 - np.abs(steps) / (half_width + 1)) * top
        log_trans = np.empty((T - 1, K + 1, K + 1))
        with np.errstate(divide="ignore"):
            log_trans[:, :K, :K] = np.log(tri * (1.0 - SWITCH_PROB))
        log_trans[:, :K, K] = log_trans[:, K, :K] = math.log(SWITCH_PROB * top)
        log_trans[:, K, K] = math.log((1.0 - SWITCH_PROB) * top)
        log_trans[:, :K, :][~present[:-1]] = -np.inf  # no path through a candidate that is not there
        log_trans[:, :, :K] = np.where(present[1:, None, :], log_trans[:, :, :K], -np.inf)
        path = _viterbi(log_emit, log_trans, np.zeros(K + 1))
    else:
        path = np.array([int(np.argmax(log_emit[0]))])
    voiced = path < K
    rows = np.arange(T)
    chosen = np.minimum(path, K - 1)
    f0 = np.where(voiced, f0_cand[rows, chosen], np.nan)
    lag = min_lag + idx[rows, chosen]
    h, t = head[rows, lag], tail[rows, lag]
    r = 0.5 * (h + t - (d[rows, lag] - (head[rows, 0] - h)))  # the overlap's own difference
    acf = r / np.sqrt(np.maximum(h * t, 1e-30))
    periodicity = np.where(voiced, np.clip(acf, 0.0, 1.0), 0.0)
    return PitchTrack(
        f0=f0,
        voiced=voiced,
        voiced_prob=voiced_prob,
        periodicity=periodicity,
        hop_length=hop_length,
        sample_rate=sr,
    )


class WindowLags:
    """pYIN's lag products for the windows of a live stream, each frame transformed once while it stays in view.

    A live window shares all but its newest hop with the window before it, yet pYIN transforms every frame again
    (its FFT pair is a third of the functionals' time). The frames are of the *conditioned* window,
    x = (y - offset) * gain, whose offset and gain change from window to window, but a lag product is a
    quadratic form in the samples: for one frame of u = y - ref (the frame centred by the offset `ref` of the
    window that transformed it) and delta = offset - ref,

        r_x(tau) = gain^2 [r_u(tau) - delta (sum_{j < N - tau} z_j + sum_{j >= tau} z_j) - delta^2 (N - tau)],

    with z = y - offset this window's centred samples. So each frame's r_u and ref are kept, matched to the next
    window by content (a frame is reused only where the two windows hold the same samples), and mapped. Keeping
    the products of centred samples (not of y) keeps a large DC offset's m^2 N out of the FFT's rounding; a frame
    whose energy the map would mostly cancel (one nearly constant about its offset) is transformed again, as are
    the frames that reach into pyin's zero padding at either end. The products equal pyin's own up to rounding
    (pyin transforms the float32 conditioned samples, this the float64 ones). Frames line up from window to
    window only when the stream moves by whole hops: with another hop nothing is reused (still correct).
    """

    CANCELLED = 1e-6
    """A mapped frame whose energy is below this share of the terms that made it is transformed again."""

    def __init__(self, *, sr: int, fmin: float, fmax: float, frame_length: int, hop_length: int) -> None:
        _, self.max_lag = lag_range(sr, fmin, fmax, frame_length, "WindowLags")
        if hop_length < 1:
            raise ConfigError(f"WindowLags: hop_length must be >= 1, got {hop_length}")
        self.frame_length, self.hop_length = frame_length, hop_length
        self._counts = {"reused": 0, "computed": 0}  # shared with the `for_clip` copies
        self.reset()

    @property
    def frames(self) -> tuple[int, int, int]:
        """(frame_length, hop_length, max_lag): what a caller's pyin frames must be for these products."""
        return self.frame_length, self.hop_length, self.max_lag

    @property
    def reused(self) -> int:
        """Frames whose products came from an earlier window (this one's and its `for_clip` copies')."""
        return self._counts["reused"]

    @property
    def computed(self) -> int:
        """Frames transformed (this one's and its `for_clip` copies')."""
        return self._counts["computed"]

    def reset(self) -> None:
        """Forget the last window (the next one is transformed whole)."""
        self._y: np.ndarray = np.zeros(0, np.float32)
        self._first = 0  # the frame of _y whose products are _raw's first row
        self._raw = np.zeros((0, self.max_lag + 1))  # products of each frame's u = y - ref
        self._ref = np.zeros(0)  # ... and its ref
        self._moved = 0

    def moved(self, n: int) -> None:
        """The stream moved on by `n` samples since the last window (`feed`): the next window, or a clip, ends at
        its newest sample, which tells where it starts relative to the last window."""
        self._moved += int(n)

    def for_clip(self) -> WindowLags:
        """A copy for another clip of the stream that ends at its newest sample (an utterance that just ended):
        it reuses this one's last window where the clip holds the same samples, and this one keeps that window
        (not the clip) for the next. Its counts add to this one's."""
        return copy.copy(self)

    def _shift(self, y: np.ndarray) -> int | None:
        """Where `y` starts relative to the last window (a multiple of the hop; negative when `y` starts before
        it), None if they do not share samples there: the place `moved` implies first, then the places in the
        last window whose sample is `y`'s first; each verified over the whole overlap."""
        prev, hop = self._y, self.hop_length
        hint, self._moved = prev.size + self._moved - y.size, 0
        if prev.size == 0 or y.size == 0:
            return None
        tried = [hint] if hint % hop == 0 and -y.size < hint < prev.size else []
        tried += [int(s) for s in np.flatnonzero(prev[::hop] == y[0])[:4] * hop]
        for s in tried:
            a, b = max(0, -s), max(0, s)  # the overlap starts at y[a] and prev[b]
            m = min(y.size - a, prev.size - b)
            if np.array_equal(y[a : a + m], prev[b : b + m]):
                return s
        return None

    def _count(self, reused: int, computed: int) -> None:
        self._counts["reused"] += reused
        self._counts["computed"] += computed

    def products(self, y: np.ndarray, offset: float, gain: float) -> np.ndarray:
        """The lag products [T, max_lag + 1] of pyin's frames of x = (y - offset) * gain (`conditioned`'s map of
        the raw window `y`): what `pyin(x, products=...)` would compute itself."""
        N, hop, half, L = self.frame_length, self.hop_length, self.frame_length // 2, self.max_lag
        y = np.asarray(y)
        z = y.astype(np.float64) - offset
        frames = frame(centred(z * gain, N), frame_length=N, hop_length=hop)
        T = frames.shape[0]
        lo = -(-half // hop)  # frames lo..hi lie wholly inside the window (no padding)
        hi = min(T - 1, (y.size - N + half) // hop) if y.size + half >= N else lo - 1
        if hi < lo:  # a window shorter than a frame or two: all padding
            self._count(0, T)
            self._y, self._first, self._raw, self._ref = y.copy(), 0, np.zeros((0, L + 1)), np.zeros(0)
            return lag_products(frames, L)
        out = np.empty((T, L + 1))
        edge = np.r_[0:lo, hi + 1 : T]
        if edge.size:
            out[edge] = lag_products(frames[edge], L)
        inner = np.arange(lo, hi + 1)
        starts = inner * hop - half
        raw, ref = np.empty((inner.size, L + 1)), np.full(inner.size, float(offset))
        have = np.zeros(inner.size, bool)
        shift = self._shift(y)
        if shift is not None:  # the frames the last window held, mapped to this window's offset
            src = inner + shift // hop - self._first
            have = (src >= 0) & (src < self._raw.shape[0])
            raw[have], ref[have] = self._raw[src[have]], self._ref[src[have]]
            r = raw[have]
            delta = (offset - ref[have])[:, None]
            if np.any(delta):
                c = np.concatenate([[0.0], np.cumsum(z)])
                runs = np.lib.stride_tricks.sliding_window_view(c, L + 1)  # runs[i] = c[i : i + L + 1]
                s = starts[have]
                head = runs[s + N - L][:, ::-1] - c[s, None]  # sum of z_j, j < N - tau
                tail = c[s + N, None] - runs[s]  # sum of z_j, j >= tau
                r = raw[have] - delta * (head + tail) - delta * delta * (N - np.arange(L + 1))
                size = raw[have, 0] + np.abs(delta[:, 0] * (head[:, 0] + tail[:, 0])) + delta[:, 0] ** 2 * N
                ok = r[:, 0] >= self.CANCELLED * size
                have[np.flatnonzero(have)[~ok]] = False
                r = r[ok]
            out[lo : hi + 1][have] = r
        fresh = ~have
        if fresh.any():  # the others: products of this window's centred samples (ref = offset)
            raw[fresh] = lag_products(z[starts[fresh, None] + np.arange(N)], L)
            ref[fresh] = offset
            out[lo : hi + 1][fresh] = raw[fresh]
        self._count(int(have.sum()), int(fresh.sum()) + edge.size)
        self._y, self._first, self._raw, self._ref = y.copy(), lo, raw, ref
        out[lo : hi + 1] *= gain * gain
        return out


VOICED_DIP = 0.25
"""A frame is voiced for the voice gate when its deepest YIN dip in the F0 range is below this (docs/live.md, "A gate
that hears voicing"): no frame of steady pink noise reaches it, most frames of speech do."""


class VoicedFrames(NamedTuple):
    """`voiced_frames`' answer, a value per frame [T] (none when the clip is shorter than one frame)."""

    voiced: np.ndarray
    """bool: the frame's YIN dip is below the threshold."""
    energy: np.ndarray
    """The frame's energy (sum of squares, DC offset removed)."""
    starts: np.ndarray
    """The frame's first sample."""
    size: int
    """Samples per frame."""
    period: np.ndarray
    """The lag (samples) of the frame's deepest dip in the F0 range: its period when it is voiced."""


def voiced_frames(
    y: np.ndarray,
    *,
    sr: int,
    fmin: float = 60.0,
    fmax: float = 500.0,
    frame_seconds: float = 0.04,
    hop_seconds: float = 0.01,
    dip: float = VOICED_DIP,
) -> VoicedFrames:
    """Which of `y`'s frames are voiced: their cumulative-mean-normalised difference (YIN) dips below `dip` at a
    period of fmin-fmax Hz (no decoding, no F0), with each frame's energy, which the difference function gives.
    `y` mono at `sr` Hz; its DC offset is removed, and a frame without energy is unvoiced."""
    n_frame = int(round(frame_seconds * sr))
    min_lag, max_lag = _lags(y, sr, fmin, fmax, n_frame, "voiced_frames")
    hop = max(1, int(round(hop_seconds * sr)))
    if y.size < n_frame:
        none = np.zeros(0, np.int64)
        return VoicedFrames(np.zeros(0, bool), np.zeros(0), none, n_frame, none)
    x = np.asarray(y, dtype=np.float64)
    x = x - x.mean()
    d, head, _ = difference(x, frame_length=n_frame, hop_length=hop, max_lag=max_lag)
    dn = cmnd(d)[:, min_lag:]
    at = dn.argmin(axis=1)
    deepest = dn[np.arange(at.size), at]
    energy = head[:, 0]  # head at lag 0: the whole frame
    voiced = (deepest < dip) & (energy > np.finfo(np.float64).tiny * n_frame)
    starts = np.arange(voiced.size, dtype=np.int64) * hop
    return VoicedFrames(voiced, energy, starts, n_frame, at + min_lag)


def voiced_share(y: np.ndarray, *, sr: int, **kw: float) -> float:
    """The share of `y`'s frames that are voiced (`voiced_frames`, same options): the live voice gate's voicing
    test. It tells speech from steady broadband noise (a fan, pink noise), not from a hum or music, which are
    voiced. 0.0 when `y` is shorter than one frame."""
    voiced = voiced_frames(y, sr=sr, **kw).voiced
    return float(voiced.mean()) if voiced.size else 0.0


def voiced_at_least(y: np.ndarray, *, sr: int, share: float, chunk_seconds: float = 1.0, **kw: float) -> bool:
    """Whether at least `share` of `y`'s frames are voiced (`voiced_share(y) >= share`, each chunk's DC removed
    on its own), found a chunk of frames at a time and stopping once it is known: a clip of speech is usually
    settled within its first second, at a quarter of `voiced_share`'s cost on a 4 s clip."""
    frame = int(round(kw.get("frame_seconds", 0.04) * sr))
    hop = max(1, int(round(kw.get("hop_seconds", 0.01) * sr)))
    total = 1 + (y.size - frame) // hop if y.size >= frame else 0
    need = share * total
    if need <= 0:
        return True
    per = max(1, int(round(chunk_seconds * sr / hop)))  # frames per chunk
    count = 0
    for first in range(0, total, per):
        start = first * hop
        seg = y[start : start + (min(per, total - first) - 1) * hop + frame]
        count += int(voiced_frames(seg, sr=sr, **kw).voiced.sum())
        if count >= need:
            return True
    return False


__all__ = [
    "VOICED_DIP",
    "PitchTrack",
    "VoicedFrames",
    "WindowLags",
    "centred",
    "cmnd",
    "difference",
    "lag_products",
    "lag_range",
    "pyin",
    "voiced_at_least",
    "voiced_frames",
    "voiced_share",
]
