"""Streaming feature extraction: feed audio in chunks of any size, get the frames the batch functions give.

State machine in the style of kaldi-native-fbank's OnlineFbank: `accept_waveform` -> new frames,
`input_finished` -> the last (right-padded) frames, `reset` -> a clean state. Each frame is computed once,
when its last sample arrives; a growable buffer keeps appends amortised O(1), even for 1-sample chunks.
"""

from __future__ import annotations

import numpy as np

from edge_ser.errors import AudioFormatError, ConfigError
from edge_ser.features.spec import FeatureSpec
from edge_ser.features.spectral import abs_power, power_to_db, stft_frames
from edge_ser.features.vector import filter_banks, frame_features

KINDS = ("power", "melspectrogram", "log_mel", "mfcc", "chroma", "frames")


class StreamingFeatures:
    """Incremental STFT front end for one mono stream; yields time-major frames [k, dim].

    kind: "power" (|STFT|^2, 1 + n_fft//2 bins), "melspectrogram" (mel power), "log_mel" (dB), "mfcc",
    "chroma", or "frames" (mel power and chroma side by side, what `vector_from_frames` summarises).
    "log_mel" and "mfcc" equal the batch functions with top_db=None: a top_db clip needs the maximum over a
    whole clip, which a stream does not have yet; `vector_from_frames` applies it per classified window.
    """

    def __init__(
        self, spec: FeatureSpec = FeatureSpec(), kind: str = "frames", *, dtype: type = np.float32
    ) -> None:
        if kind not in KINDS:
            raise ConfigError(f"kind must be one of {KINDS}, got {kind!r}")
        if dtype not in (np.float32, np.float64):
            raise ConfigError(f"dtype must be float32 or float64, got {dtype}")
        self.spec = spec
        self.kind = kind
        self.dtype = dtype
        self._pad = spec.n_fft // 2 if spec.center else 0
        self.reset()

    @property
    def dim(self) -> int:
        s = self.spec
        return {
            "power": s.n_fft // 2 + 1,
            "melspectrogram": s.n_mels,
            "log_mel": s.n_mels,
            "mfcc": s.n_mfcc,
            "chroma": s.n_chroma,
            "frames": s.n_mels + s.n_chroma,
        }[self.kind]

    def reset(self) -> None:
        """Forget all audio: the next sample is the start of a new stream."""
        self._data = np.zeros(4 * self.spec.n_fft, dtype=self.dtype)
        self._start = 0  # first sample of the next frame, in padded coordinates within _data
        self._end = 0
        self._head: list[np.ndarray] = []  # samples held back until the left padding can be built
        self._n_head = 0
        self._head_done = self._pad == 0 or self.spec.pad_mode == "constant"
        if self._head_done:
            self._append(np.zeros(self._pad, dtype=self.dtype))
        self._tail = np.zeros(0, dtype=self.dtype)  # the last pad+1 samples, for the right padding
        self.num_samples = 0
        self.num_frames = 0
        self.finished = False

    def _append(self, x: np.ndarray) -> None:
        n = x.shape[0]
        if self._end + n > self._data.shape[0]:
            live = self._data[self._start : self._end]
            cap = max(self._data.shape[0], 2 * (live.shape[0] + n))
            data = np.empty(cap, dtype=self.dtype) if cap > self._data.shape[0] else self._data
            data[: live.shape[0]] = live  # overlapping copy is safe: numpy buffers the move
            self._data, self._start, self._end = data, 0, live.shape[0]
        self._data[self._end : self._end + n] = x
        self._end += n

    def _emit(self) -> np.ndarray:
        s = self.spec
        avail = self._end - self._start
        k = 0 if avail < s.n_fft else 1 + (avail - s.n_fft) // s.hop_length
        if k == 0:
            return np.zeros((0, self.dim), dtype=self.dtype)
        span = self._data[self._start : self._start + (k - 1) * s.hop_length + s.n_fft]
        X = stft_frames(span, **{**s.stft_kwargs(), "center": False}, scratch=True)
        self._start += k * s.hop_length
        self.num_frames += k
        return self._convert(X)

    def _convert(self, X: np.ndarray) -> np.ndarray:
        if self.kind == "power":
            return abs_power(X, 2.0).astype(self.dtype)
        mel, chroma = frame_features(X, self.spec, dtype=self.dtype)
        if self.kind == "melspectrogram":
            return mel
        if self.kind == "chroma":
            return chroma
        if self.kind == "frames":
            return np.concatenate([mel, chroma], axis=1)
        log_mel = power_to_db(mel, top_db=None)
        if self.kind == "log_mel":
            return log_mel
        return (log_mel.astype(np.float64) @ filter_banks(self.spec, self.dtype).dct_t).astype(self.dtype)

    def accept_waveform(self, chunk: np.ndarray, sample_rate: int | None = None) -> np.ndarray:
        """Add mono samples [n] (any n >= 0); return the frames [k, dim] completed by them (k may be 0)."""
        if self.finished:
            raise ConfigError("input_finished() was called: call reset() before feeding a new stream")
        if sample_rate is not None and int(sample_rate) != self.spec.sample_rate:
            raise ConfigError(
                f"chunk is at {sample_rate} Hz but the stream expects {self.spec.sample_rate} Hz"
            )
        chunk = np.asarray(chunk)
        if chunk.ndim != 1 or not np.issubdtype(chunk.dtype, np.floating):
            raise AudioFormatError(
                f"chunks must be 1-D floating-point arrays, got shape {chunk.shape} dtype {chunk.dtype}"
            )
        if not np.isfinite(chunk).all():
            raise AudioFormatError("chunk has NaN or inf samples")
        chunk = chunk.astype(self.dtype, copy=False)
        self.num_samples += chunk.shape[0]
        if self._pad:
            self._tail = np.concatenate([self._tail, chunk[-(self._pad + 1) :]])[-(self._pad + 1) :]
        if not self._head_done:
            self._head.append(chunk)
            self._n_head += chunk.shape[0]
            if self._n_head <= self._pad:
                return np.zeros((0, self.dim), dtype=self.dtype)
            head = np.concatenate(self._head)
            self._head, self._head_done = [], True
            left = np.pad(head[: self._pad + 1], (self._pad, 0), mode=self.spec.pad_mode)[: self._pad]
            self._append(left)
            chunk = head
        self._append(chunk)
        return self._emit()

    def input_finished(self) -> np.ndarray:
        """End of stream: right-pad (when centred) and return the remaining frames [k, dim]."""
        if self.finished:
            return np.zeros((0, self.dim), dtype=self.dtype)
        self.finished = True
        if not self._head_done:
            # A stream shorter than the padding: the batch transform on what we hold is the definition.
            if self._n_head == 0:
                return np.zeros((0, self.dim), dtype=self.dtype)
            X = stft_frames(np.concatenate(self._head), **self.spec.stft_kwargs(), scratch=True)
            self.num_frames += X.shape[0]
            return self._convert(X)
        if self._pad:
            right = np.pad(self._tail, (0, self._pad), mode=self.spec.pad_mode)[-self._pad :]
            self._append(right.astype(self.dtype, copy=False))
        return self._emit()
