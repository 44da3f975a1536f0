"""Anti-aliased rational-ratio resampling in pure numpy: a Kaiser-windowed sinc run as a polyphase filter.

The filter is zero-phase (its delay is compensated) and the output length is ceil(n * target_sr / orig_sr),
as with scipy.signal.resample_poly, so the two can be swapped; the stopband starts at the lower Nyquist.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import NamedTuple

import numpy as np

from edge_ser.errors import ConfigError


class _Quality(NamedTuple):
    atten_db: float  # stopband attenuation the Kaiser design aims for (a few dB above the promise)
    passband: float  # passband edge as a fraction of the lower Nyquist; the stopband starts at 1.0


# "hq": >= 80 dB stopband, flat to 90 % of the lower Nyquist; "fast": >= 60 dB, flat to 80 %,
# ~2.5x fewer taps.
QUALITIES = {"hq": _Quality(86.0, 0.90), "fast": _Quality(64.0, 0.80)}

# Largest dense block matrix (window x outputs per block) the block-matmul path may cache, in elements.
_BLOCK_BUDGET = 1 << 20
# Input frames copied per matmul in the block path, in elements (bounds memory on long recordings).
_FRAME_ELEMS = 1 << 21
# Largest polyphase bank (up x taps) worth caching; beyond it taps are computed per chunk of output.
_BANK_BUDGET = 1 << 21
# Output samples per chunk in the gather path (bounds its temporary [chunk, taps] arrays).
_GATHER_ELEMS = 1 << 18


class _Design(NamedTuple):
    up: int
    down: int
    half: int  # filter half-length at the upsampled rate; the prototype has 2 * half + 1 taps
    cutoff: float  # cutoff as a fraction of the upsampled Nyquist
    beta: float  # Kaiser window shape
    taps: int  # taps per polyphase branch


@functools.lru_cache(maxsize=64)
def _design(up: int, down: int, quality: str) -> _Design:
    """Kaiser-formula design of the prototype low-pass for an up/down ratio (already reduced by their gcd)."""
    q = QUALITIES[quality]
    a = q.atten_db
    beta = 0.1102 * (a - 8.7) if a > 50 else 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    scale = max(up, down)
    width = (1.0 - q.passband) / scale  # transition width, fraction of the upsampled Nyquist
    n_taps = (a - 7.95) / (2.285 * math.pi * width) + 1
    half = math.ceil(n_taps / 2)
    cutoff = (1.0 + q.passband) / 2 / scale
    taps = -(-(2 * half + 1) // up)
    return _Design(up, down, half, cutoff, beta, taps)


def _prototype(d: _Design, j: np.ndarray) -> np.ndarray:
    """Prototype taps at integer positions j (0 .. 2*half) of the upsampled grid, gain `up`; zero outside."""
    m = j.astype(np.float64) - d.half
    inside = np.abs(m) <= d.half
    r = np.where(inside, m / d.half, 0.0)
    w = np.i0(d.beta * np.sqrt(1.0 - r * r)) / np.i0(d.beta)
    h = d.up * d.cutoff * np.sinc(d.cutoff * m) * w
    return np.where(inside, h, 0.0)


@functools.lru_cache(maxsize=8)
def _bank(up: int, down: int, quality: str) -> np.ndarray:
    """Polyphase bank [up, taps] in float64: bank[p, i] = h[p + i * up] (branch p holds every up-th tap)."""
    d = _design(up, down, quality)
    j = np.arange(d.taps * up).reshape(d.taps, up).T
    bank = _prototype(d, j)
    bank.setflags(write=False)
    return bank


def _periods(up: int, down: int, taps: int) -> int:
    """Ratio periods per matmul block: enough for a block to span ~ taps/2 input samples (small ratios)."""
    return max(1, -(-taps // (2 * down)))


@functools.lru_cache(maxsize=16)
def _block(up: int, down: int, quality: str, dtype: str, periods: int) -> tuple[np.ndarray, int]:
    """Dense W [window, periods*up]: one block of outputs = x[b*periods*down + start :][:window] @ W.

    Output k sits at upsampled time k*down and uses x[q_k - i] with branch p_k,
    where (q_k, p_k) = divmod(k*down + half, up).
    """
    d = _design(up, down, quality)
    bank = _bank(up, down, quality)
    r = np.arange(periods * up)
    q, p = np.divmod(r * down + d.half, up)
    start = int(q[0]) - (d.taps - 1)
    window = int(q[-1]) - start + 1
    w = np.zeros((window, r.size), dtype=np.float64)
    i = np.arange(d.taps)
    rows = (q[:, None] - i[None, :] - start).ravel()
    w[rows, np.repeat(r, d.taps)] = bank[p[:, None], i[None, :]].ravel()
    w = w.astype(dtype)
    w.setflags(write=False)
    return w, start


def _use_block(up: int, down: int, quality: str) -> bool:
    """The block matmul is fastest everywhere; ratios like 16001/16000 make its matrix too big to cache."""
    taps = _design(up, down, quality).taps
    g = _periods(up, down, taps)
    return g * up * (g * down + taps) <= _BLOCK_BUDGET


def _resample_block(x: np.ndarray, n_out: int, up: int, down: int, quality: str) -> np.ndarray:
    """x [channels, n] -> [channels, n_out] with one BLAS matmul over blocks of whole ratio periods."""
    g = _periods(up, down, _design(up, down, quality).taps)
    w, start = _block(up, down, quality, x.dtype.str, g)
    window, per_block = w.shape
    hop = g * down
    c, n = x.shape
    blocks = -(-n_out // per_block)
    left = max(0, -start)
    right = max(0, (blocks - 1) * hop + start + window - n)
    xp = np.zeros((c, left + n + right), dtype=x.dtype)
    xp[:, left : left + n] = x
    frames = np.lib.stride_tricks.as_strided(
        xp[:, start + left :],
        shape=(c, blocks, window),
        strides=(xp.strides[0], hop * xp.strides[1], xp.strides[1]),
        writeable=False,
    )
    out = np.empty((c, blocks, per_block), dtype=x.dtype)
    step = max(1, _FRAME_ELEMS // (c * window))
    for b0 in range(0, blocks, step):
        # overlapping rows are not BLAS-able, so copy them: ~ window / hop input samples per input sample
        chunk = np.ascontiguousarray(frames[:, b0 : b0 + step])
        np.matmul(chunk, w, out=out[:, b0 : b0 + step])
    return out.reshape(c, blocks * per_block)[:, :n_out]


def _resample_gather(x: np.ndarray, n_out: int, up: int, down: int, quality: str) -> np.ndarray:
    """x [channels, n] -> [channels, n_out] gathering each output's input window; for awkward ratios."""
    d = _design(up, down, quality)
    t = d.taps
    i = np.arange(t)
    bank = _bank(up, down, quality)[:, ::-1].astype(x.dtype) if up * t <= _BANK_BUDGET else None
    c, n = x.shape
    left = t - 1
    q_last = ((n_out - 1) * down + d.half) // up
    xp = np.zeros((c, left + max(n, q_last + 1)), dtype=x.dtype)
    xp[:, left : left + n] = x
    win = np.lib.stride_tricks.sliding_window_view(xp, t, axis=-1)  # win[:, q] = x[q - t + 1 .. q]
    out = np.empty((c, n_out), dtype=x.dtype)
    step = max(1, _GATHER_ELEMS // t)
    for k0 in range(0, n_out, step):
        k = np.arange(k0, min(n_out, k0 + step), dtype=np.int64)
        q, p = np.divmod(k * down + d.half, up)
        if bank is not None:
            h = bank[p]
        else:
            h = _prototype(d, p[:, None] + i[::-1][None, :] * up).astype(x.dtype)
        out[:, k0 : k0 + k.size] = np.einsum("kt,ckt->ck", h, win[:, q])
    return out


def _check_rate(name: str, value: object) -> int:
    """A sample rate must be a positive int (not bool, not float); returns it as int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) <= 0:
        raise ConfigError(f"{name} must be a positive int, got {value!r} ({type(value).__name__})")
    return int(value)


def resample(
    y: np.ndarray, orig_sr: int, target_sr: int, *, axis: int = 0, quality: str = "hq"
) -> np.ndarray:
    """Resample float `y` along `axis` from orig_sr to target_sr Hz ([n] or [n, channels]; any ndim works).

    Output length is ceil(n * target_sr / orig_sr), no time shift, same float dtype;
    equal rates return a copy.
    """
    orig_sr = _check_rate("orig_sr", orig_sr)
    target_sr = _check_rate("target_sr", target_sr)
    if quality not in QUALITIES:
        raise ConfigError(f"quality must be one of {sorted(QUALITIES)}, got {quality!r}")
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.floating):
        raise ConfigError(f"resample needs float samples, got dtype {y.dtype}")
    if y.ndim == 0:
        raise ConfigError("resample needs an array with a time axis, got a scalar")
    if not -y.ndim <= axis < y.ndim:
        raise ConfigError(f"axis {axis} is out of range for an array of shape {y.shape}")
    if orig_sr == target_sr:
        return y.copy()
    g = math.gcd(orig_sr, target_sr)
    up, down = target_sr // g, orig_sr // g
    dtype = y.dtype
    if dtype not in (np.float32, np.float64):
        y = y.astype(np.float32 if dtype.itemsize < 4 else np.float64)
    moved = np.moveaxis(y, axis, -1)
    lead = moved.shape[:-1]
    n = moved.shape[-1]
    n_out = -(-n * up // down)
    x = moved.reshape(math.prod(lead), n)
    if n == 0 or x.shape[0] == 0:
        out = np.zeros((x.shape[0], n_out), dtype=dtype)
    elif _use_block(up, down, quality):
        out = _resample_block(x, n_out, up, down, quality)
    else:
        out = _resample_gather(x, n_out, up, down, quality)
    return np.ascontiguousarray(np.moveaxis(out.reshape(*lead, n_out), -1, axis), dtype=dtype)


class Resampler:
    """Streaming `resample` of one mono float32 stream: `feed` blocks of any size, `finish` at the end; the
    concatenated output equals `resample(whole, orig_sr, target_sr)` (same filter, same phase, same length).

    It computes whole ratio periods as soon as their input has arrived and keeps only the filter's left
    context between calls, so memory is O(block + filter), whatever the stream's length.
    """

    def __init__(self, orig_sr: int, target_sr: int, *, quality: str = "hq") -> None:
        self.orig_sr = _check_rate("orig_sr", orig_sr)
        self.target_sr = _check_rate("target_sr", target_sr)
        if quality not in QUALITIES:
            raise ConfigError(f"quality must be one of {sorted(QUALITIES)}, got {quality!r}")
        self.quality = quality
        g = math.gcd(self.orig_sr, self.target_sr)
        self.up, self.down = self.target_sr // g, self.orig_sr // g
        d = _design(self.up, self.down, quality)
        self._half = d.half
        # outputs are computed in whole ratio periods (the block path's blocks), so a stream lines up with
        # the whole-file computation block for block
        periods = _periods(self.up, self.down, d.taps)
        self._p_out, self._p_in = periods * self.up, periods * self.down
        self._context = -(-(d.taps - 1) // self._p_in)  # periods of input kept for the filter's left side
        self._block = _use_block(self.up, self.down, quality)
        self._buf = np.zeros(0, np.float32)
        self._b0 = 0  # absolute index of _buf[0], a multiple of _p_in
        self._n_in = 0  # samples fed so far
        self._k = 0  # next output index (a multiple of _p_out until finish)
        self.finished = False

    def _compute(self, k_end: int) -> np.ndarray:
        """Outputs [self._k, k_end) from the buffered input (zeros after it), then drop unneeded input."""
        if k_end <= self._k:
            return np.zeros(0, np.float32)
        j0 = self._b0 // self._p_in
        skip = self._k - j0 * self._p_out
        x = self._buf[None, :]
        n_out = k_end - j0 * self._p_out
        core = _resample_block if self._block else _resample_gather
        out = core(x, n_out, self.up, self.down, self.quality)[0, skip:] if x.shape[1] else None
        if out is None:
            out = np.zeros(n_out - skip, np.float32)
        self._k = k_end
        keep = max(0, k_end // self._p_out - self._context) * self._p_in
        if keep > self._b0:
            self._buf = self._buf[keep - self._b0 :].copy()
            self._b0 = keep
        return np.ascontiguousarray(out, dtype=np.float32)

    def feed(self, x: np.ndarray) -> np.ndarray:
        """The output samples that the input so far fully determines (float32 [k], possibly empty)."""
        if self.finished:
            raise ConfigError("Resampler: feed() after finish()")
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 1:
            raise ConfigError(f"Resampler takes mono blocks [n], got shape {x.shape}")
        if self.up == self.down:
            self._n_in += x.size
            return x.copy()
        self._buf = np.concatenate([self._buf, x]) if self._buf.size else x.copy()
        self._n_in += x.size
        # output k needs input up to (k*down + half) // up: ready while k*down + half < n_in*up
        ready = max(0, -(-(self._n_in * self.up - self._half) // self.down))
        return self._compute(ready // self._p_out * self._p_out)

    def finish(self) -> np.ndarray:
        """The last outputs (the input ends here: zeros after it, as `resample` pads)."""
        if self.finished:
            return np.zeros(0, np.float32)
        self.finished = True
        if self.up == self.down:
            return np.zeros(0, np.float32)
        return self._compute(-(-self._n_in * self.up // self.down))

    @property
    def samples_in(self) -> int:
        """Input samples fed so far."""
        return self._n_in
