"""The live pipeline's per-update step: an audio window (+ the face crops of the same window) -> LiveResult.

Per update: the voice-activity gate on the window's level; features through `edge_ser.features` (the
clip vector for a feature-vector bundle, from streamed frames; the 6 MFCC segments for an audio-visual one,
by the same `audio_segments` training used; for a log-Mel patch bundle (`lms_input`, e.g. squeezenet_lms)
the window's overlapping patches [n, 1, M, T], by the same `clip_segments` training and `edge-ser predict`
used); the face crops of the window for the faces input; inference on the bundle's engine (one batch of
all the window's patches for a patch bundle); the window's probabilities (softmax of the logits, or for a
patch bundle the bundle's `utterance_vote` over its patches, the window being the utterance); smoothing of
the probabilities. Silence is reported as "silence", not as an emotion.

The pipeline's audio rate `sr` is the rate its front end analyses at (the LMSSpec's for a patch bundle,
the feature spec's otherwise): sources deliver audio at that rate (a file is resampled when loaded, the
microphone is opened at it), so the features never resample.

An audio-visual bundle falls back to audio-only when fewer than `min_faces` of the window's crops found a
face: with an audio-only companion engine (`fallback`) it runs that, and says so in the result; without one
it runs the fused model on the centred crops (the training fallback) and says that instead.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_ser.engines.base import softmax
from edge_ser.errors import ConfigError
from edge_ser.live.result import SILENCE, LiveResult, StageTimes

SMOOTHING = ("ema", "majority", "none")


@dataclass(frozen=True)
class PipelineConfig:
    """Window and hop (seconds), smoothing, voice-activity gate and face fallback settings."""

    window: float = 3.0
    hop: float = 0.5
    smoothing: str = "ema"
    ema_alpha: float = 0.5
    """Weight of the newest window in the EMA (1 = no smoothing)."""
    majority_k: int = 5
    vad_db: float = -45.0
    """Absolute gate: a window quieter than this (RMS, dBFS) is silence."""
    vad_margin_db: float = 10.0
    """Relative gate: a window must also be this far above the tracked noise floor."""
    min_faces: float = 0.5
    """Fraction of a window's face crops that must have found a face to use the video input."""

    def __post_init__(self) -> None:
        if not 0.2 <= self.window <= 30:
            raise ConfigError(f"window={self.window} s must be in 0.2..30")
        if not 0.05 <= self.hop <= self.window:
            raise ConfigError(f"hop={self.hop} s must be in 0.05..window ({self.window})")
        if self.smoothing not in SMOOTHING:
            raise ConfigError(f"smoothing={self.smoothing!r} must be one of {SMOOTHING}")
        if not 0 < self.ema_alpha <= 1:
            raise ConfigError(f"ema_alpha={self.ema_alpha} must be in (0, 1]")
        if self.majority_k < 1:
            raise ConfigError(f"majority_k={self.majority_k} must be >= 1")
        if not 0 <= self.min_faces <= 1:
            raise ConfigError(f"min_faces={self.min_faces} must be in 0..1")


def level_db(x: np.ndarray) -> float:
    """RMS level in dBFS (-inf for digital silence)."""
    if x.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return 20 * math.log10(rms) if rms > 0 else -math.inf


class VadGate:
    """Energy gate: open when the level is above `vad_db` and `vad_margin_db` above the noise floor.

    The floor follows quiet windows quickly (down at once) and loud ones slowly (up 0.5 dB per window), so
    a long utterance does not raise it much and a noisy room raises it over a few seconds.
    """

    def __init__(self, vad_db: float = -45.0, margin_db: float = 10.0) -> None:
        self.vad_db, self.margin_db = vad_db, margin_db
        self.floor = -90.0

    def __call__(self, db: float) -> bool:
        if not math.isfinite(
            db
        ):  # digital silence (a file's pause, a muted input): the floor is as low as it gets
            self.floor = -90.0
            return False
        self.floor = db if db < self.floor else min(db, self.floor + 0.5)
        return db >= self.vad_db and db >= self.floor + self.margin_db


class Smoother:
    """EMA of probabilities, majority vote over the last k arg-maxes (as one-hot shares), or none."""

    def __init__(self, kind: str, n: int, alpha: float = 0.5, k: int = 5) -> None:
        self.kind, self.n, self.alpha = kind, n, alpha
        self._ema: np.ndarray | None = None
        self._votes: deque[int] = deque(maxlen=k)

    def reset(self) -> None:
        self._ema = None
        self._votes.clear()

    def __call__(self, p: np.ndarray) -> np.ndarray:
        if self.kind == "none":
            return p
        if self.kind == "ema":
            self._ema = p.copy() if self._ema is None else self.alpha * p + (1 - self.alpha) * self._ema
            return self._ema
        self._votes.append(int(np.argmax(p)))
        return np.bincount(np.asarray(self._votes), minlength=self.n) / len(self._votes)


class LivePipeline:
    """Bundle + engine (+ optional audio-only fallback engine) -> `step(...)` per window."""

    def __init__(self, bundle, engine, config: PipelineConfig | None = None, *, fallback=None) -> None:
        self.bundle, self.engine, self.fallback = bundle, engine, fallback
        self.config = config or PipelineConfig()
        self.labels = tuple(bundle.labels)
        self.av = bundle.av_input
        self.lms = bundle.lms_input
        """The LMSSpec of a log-Mel patch bundle (None for the others): patches + utterance vote per window."""
        self.names = bundle.input_names
        self.sr = self.lms.sample_rate if self.lms is not None else bundle.feature_spec.sample_rate
        self.gate = VadGate(self.config.vad_db, self.config.vad_margin_db)
        c = self.config
        self.smoother = Smoother(c.smoothing, len(self.labels), c.ema_alpha, c.majority_k)
        if fallback is not None and tuple(fallback.bundle.labels) != self.labels:
            raise ConfigError(
                f"fallback bundle {fallback.bundle.source} has labels {list(fallback.bundle.labels)}, "
                f"the main bundle {list(self.labels)}: they must be the same"
            )
        self._stream = None
        self._frames: deque[np.ndarray] = deque()
        if self.av is None and self.lms is None:
            from edge_ser.features.streaming import StreamingFeatures

            self._stream = StreamingFeatures(bundle.feature_spec, "frames")
            self._max_frames = int(round(c.window * self.sr / bundle.feature_spec.hop_length)) + 1

    @property
    def needs_faces(self) -> bool:
        return "faces" in self.names

    def feed(self, chunk: np.ndarray) -> None:
        """New mono samples at the bundle's rate (feature-vector bundles stream their frames from these)."""
        if self._stream is None or chunk.size == 0:
            return
        new = self._stream.accept_waveform(np.asarray(chunk, dtype=np.float32))
        for row in new:
            self._frames.append(row)
        while len(self._frames) > self._max_frames:
            self._frames.popleft()

    def step(
        self,
        t: float,
        window: np.ndarray,
        faces: Sequence | None = None,
        *,
        capture_ms: float = 0.0,
        face_ms: float = 0.0,
        notes: tuple[str, ...] = (),
        overflows: int = 0,
        frame_size: tuple[int, int] | None = None,
    ) -> LiveResult:
        """Classify the window ending at stream time `t` (seconds); `faces` are the window's FaceCrops."""
        t0 = time.perf_counter()
        # the gate looks at the newest hop: "is someone speaking now", not "was there speech in the window"
        db = level_db(window[-max(1, int(round(self.config.hop * self.sr))) :])
        speech = self.gate(db)
        n = len(self.labels)
        box = None
        if faces and getattr(faces[-1], "found", False) and faces[-1].box is not None:
            box = tuple(int(v) for v in faces[-1].box)  # the newest crop's face, if it has one
        mode = (
            "fused" if self.names == ("faces", "audio") else "video" if self.names == ("faces",) else "audio"
        )
        if not speech:
            self.smoother.reset()
            total = capture_ms + face_ms + (time.perf_counter() - t0) * 1e3
            return LiveResult(
                t,
                self.labels,
                (),
                (0.0,) * n,
                SILENCE,
                0.0,
                False,
                db,
                mode,
                None,
                box,
                frame_size,
                overflows,
                StageTimes(capture_ms, 0.0, face_ms, 0.0, total),
                notes,
            )
        tf = time.perf_counter()
        x = self._inputs(window)
        features_ms = (time.perf_counter() - tf) * 1e3
        fallback = None
        engine = self.engine
        if self.needs_faces:
            found = [bool(getattr(f, "found", False)) for f in (faces or [])]
            enough = len(found) == self.av.frames and sum(found) >= self.config.min_faces * len(found)
            if enough or faces:
                x["faces"] = self._faces(faces)
            if not enough:
                if self.fallback is not None and "audio" in x:
                    engine, mode = self.fallback, "audio"
                    x = {"audio": x["audio"]}
                    fallback = "no face: audio-only model"
                else:
                    fallback = "no face: fused model on the centre crop (no audio-only fallback bundle)"
                    if "faces" not in x:
                        x["faces"] = np.zeros(
                            (self.av.frames, self.av.face_size, self.av.face_size), np.float32
                        )
        ti = time.perf_counter()
        logits = engine.predict(x)
        inference_ms = (time.perf_counter() - ti) * 1e3
        p = self._probs(logits)
        s = self.smoother(p)
        k = int(np.argmax(s))
        total = capture_ms + face_ms + (time.perf_counter() - t0) * 1e3
        return LiveResult(
            t,
            self.labels,
            tuple(map(float, p)),
            tuple(map(float, s)),
            self.labels[k],
            float(s[k]),
            True,
            db,
            mode,
            fallback,
            box,
            frame_size,
            overflows,
            StageTimes(capture_ms, features_ms, face_ms, inference_ms, total),
            notes,
        )

    def _probs(self, logits: np.ndarray) -> np.ndarray:
        """The window's class probabilities [classes] from the engine's output.

        A patch bundle's output is one row of logits per patch: combined by the bundle's vote, as `edge-ser
        predict` combines a clip's patches (the window is one utterance). Otherwise: softmax of the one row.
        """
        if self.lms is not None:
            from edge_ser.lms_input import utterance_vote

            _, scores = utterance_vote(logits, np.zeros(len(logits), np.int64), self.bundle.lms_vote)
            return scores[0]
        return softmax(np.asarray(logits)[0].astype(np.float64))

    def _inputs(self, window: np.ndarray) -> dict[str, np.ndarray]:
        if self.lms is not None:  # log-Mel patches of the window, as training and `edge-ser predict` cut them
            from edge_ser.lms_input import clip_segments

            return {self.bundle.input_name: clip_segments(window, self.sr, self.lms).astype(np.float32)}
        if self.av is None:
            from edge_ser.features.vector import vector_from_frames

            spec = self.bundle.feature_spec
            if self._frames:
                frames = np.stack(self._frames)
            else:  # nothing streamed (e.g. a caller that only passes windows): frame the window itself
                from edge_ser.features.vector import feature_frames

                mel, chroma = feature_frames(window, sr=self.sr, spec=spec)
                return {self.names[0]: vector_from_frames(mel, chroma, spec)[None].astype(np.float32)}
            mel, chroma = frames[:, : spec.n_mels], frames[:, spec.n_mels :]
            return {self.names[0]: vector_from_frames(mel, chroma, spec)[None].astype(np.float32)}
        out = {}
        if "audio" in self.names:
            from edge_ser.av_input import audio_segments

            out["audio"] = audio_segments(window, self.sr, self.av.feature_spec, self.av.segments)
        return out

    def _faces(self, faces: Sequence) -> np.ndarray:
        from edge_ser.av_input import _face_pixels

        k = self.av.frames
        idx = np.linspace(0, len(faces) - 1, k).round().astype(int) if len(faces) != k else range(k)
        return np.stack([_face_pixels(faces[i], self.av) for i in idx])
