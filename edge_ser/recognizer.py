"""The Python API: emotion recognition with one bundle, from files, from audio in memory, or live.

    from edge_ser import Recognizer

    rec = Recognizer("bundles/laq_mlp_emodb")               # engine="auto", threads=1
    print(rec.predict_file("clip.wav"))                      # "happy 0.61 (neutral 0.22, sad 0.09)"
    result = rec.predict_audio(y, sr=44100)                  # any rate: resampled to the bundle's
    for live in rec.stream(mic="USB", seconds=60):           # the same pipeline as `edge-ser run`
        print(live.t, live.label, live.confidence)

Every bundle kind works the same way: what the model takes (a clip vector, log-Mel patches, face crops and
MFCC segments, ...) is the bundle's input kind's business (`edge_ser.inputs`). `edge-ser predict` and
`edge-ser run` are thin wrappers over this class.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_ser.errors import ConfigError

if TYPE_CHECKING:
    from edge_ser.bundle import Bundle
    from edge_ser.live.capture import CaptureSettings
    from edge_ser.live.pipeline import PipelineConfig
    from edge_ser.live.result import LiveResult
    from edge_ser.live.run import LiveRunner


@dataclass(frozen=True)
class Prediction:
    """One clip's result: the label, every label's probability, and where the time went (milliseconds)."""

    label: str
    probabilities: dict[str, float]
    """Probability by label, in the bundle's label order."""
    source: str | None = None
    """The file it came from (None for audio given in memory)."""
    timings: dict[str, float] = field(default_factory=dict)
    """"features" and "inference" in ms (a batch of files shares one inference time)."""

    @property
    def confidence(self) -> float:
        """The probability of `label`."""
        return self.probabilities[self.label]

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The k most probable labels with their probabilities, most probable first."""
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]

    def __str__(self) -> str:
        (first, p), *rest = self.top(3)
        others = ", ".join(f"{lab} {q:.2f}" for lab, q in rest)
        return f"{first} {p:.2f}" + (f" ({others})" if others else "")


class Recognizer:
    """A bundle on an engine, ready to classify files, audio arrays and live streams.

    Args:
        bundle: a loaded `Bundle`, or the path of a bundle folder or `.tar` (loaded and verified).
        engine: "auto" (onnxruntime if installed, else numpy), "onnxruntime", "numpy", "tflite", "tflite-int8"...
        threads: inference threads (1 by default: predictable latency beside capture and features).
        providers: onnxruntime execution providers to ask for ("cuda", "tensorrt"); CPU runs otherwise.

    Raises:
        BundleError: the bundle does not load or verify. MissingDependencyError: the engine is not installed.
    """

    def __init__(
        self,
        bundle: Bundle | str | os.PathLike[str],
        engine: str = "auto",
        threads: int | None = 1,
        *,
        providers: Sequence[str] | None = None,
    ) -> None:
        from edge_ser.bundle import load_bundle
        from edge_ser.engines import load_engine

        self.bundle = bundle if hasattr(bundle, "manifest") else load_bundle(bundle)
        self.engine = load_engine(self.bundle, engine, threads=threads, providers=providers)
        self.kind = self.bundle.input_kind

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.bundle.labels)

    @property
    def sample_rate(self) -> int:
        """The rate the model's features are computed at (inputs at other rates are resampled to it)."""
        return self.kind.sample_rate

    def describe(self) -> str:
        return f"{self.bundle.describe()}; {self.engine.describe()}"

    # -- clips ---------------------------------------------------------------------------------------------

    def predict_file(self, path: str | os.PathLike[str]) -> Prediction:
        """Classify one file (audio; a video for a model that takes faces)."""
        return self.predict_files([path])[0]

    def predict_files(self, paths: Iterable[str | os.PathLike[str]]) -> list[Prediction]:
        """Classify several files with one engine call (the inference time is the batch's)."""
        paths = [Path(p) for p in paths]
        if not paths:
            return []
        t0 = time.perf_counter()
        clips = [self.kind.file_inputs(p) for p in paths]
        features_ms = (time.perf_counter() - t0) * 1e3 / len(paths)
        return self._run(clips, [str(p) for p in paths], features_ms)

    def predict_audio(self, y: np.ndarray, sr: int, faces: Sequence[Any] | None = None) -> Prediction:
        """Classify a mono clip `y` [n] (float, in [-1, 1]) recorded at `sr` Hz; a model that takes faces
        also wants the clip's face crops (`FaceCrop`s or uint8 [S, S] grey images, any number: they are spread
        over the model's frames; none means black frames)."""
        y = np.asarray(y)
        if y.dtype.kind not in "f":
            raise ConfigError(f"predict_audio: y must be float samples in [-1, 1], got dtype {y.dtype}")
        t0 = time.perf_counter()
        x = self.kind.audio_inputs(y, int(sr), faces)
        return self._run([x], [None], (time.perf_counter() - t0) * 1e3)[0]

    def _run(
        self, clips: list[dict[str, np.ndarray]], sources: list[str | None], features_ms: float
    ) -> list[Prediction]:
        rows = [len(next(iter(c.values()))) for c in clips]
        x = {n: np.concatenate([c[n] for c in clips]) for n in self.kind.input_names}
        t0 = time.perf_counter()
        logits = self.engine.predict(x)
        inference_ms = (time.perf_counter() - t0) * 1e3
        out, start = [], 0
        for n, src in zip(rows, sources, strict=True):
            p = self.kind.combine(logits[start : start + n])
            start += n
            k = int(np.argmax(p))
            out.append(
                Prediction(
                    label=self.labels[k],
                    probabilities={lab: float(v) for lab, v in zip(self.labels, p, strict=True)},
                    source=src,
                    timings={"features": features_ms, "inference": inference_ms},
                )
            )
        return out

    # -- live ----------------------------------------------------------------------------------------------

    def runner(
        self,
        capture: CaptureSettings | None = None,
        config: PipelineConfig | None = None,
        *,
        fallback: Recognizer | Bundle | str | os.PathLike[str] | None = None,
        outputs: Sequence[Any] = (),
        stop: Any = None,
        seconds: float | None = None,
        keep: int = 10_000,
    ) -> LiveRunner:
        """The live loop over `capture` (default: the default microphone, and camera 0 for a model that takes
        faces), ready to `run()` into `outputs` or to iterate with `results()`.

        Args:
            config: window, hop, smoothing, voice gate (`edge_ser.live.pipeline.PipelineConfig`).
            fallback: an audio-only bundle (or Recognizer) used when a faces model sees no face.
            stop: an object with `is_set()` (e.g. a threading.Event) that ends the loop when set.
            seconds: stop after this much stream time. keep: updates whose stage times the statistics keep.
        """
        from edge_ser.live.capture import CaptureSettings, open_capture
        from edge_ser.live.pipeline import LivePipeline
        from edge_ser.live.run import LiveRunner

        fb = None
        if fallback is not None:
            threads = getattr(self.engine, "threads", 1)
            fb = (
                fallback
                if isinstance(fallback, Recognizer)
                else Recognizer(fallback, self.engine.name, threads)
            )
        pipeline = LivePipeline(self.bundle, self.engine, config, fallback=None if fb is None else fb.engine)
        audio, frames, tracker = open_capture(capture or CaptureSettings(), self.kind)
        return LiveRunner(
            pipeline, audio, frames, outputs, tracker, stop=stop, max_seconds=seconds, keep=keep
        )

    def stream(
        self,
        mic: int | str | None = None,
        camera: int | str | None = None,
        *,
        audio_file: str | os.PathLike[str] | None = None,
        video_file: str | os.PathLike[str] | None = None,
        realtime: bool = True,
        config: PipelineConfig | None = None,
        fallback: Recognizer | Bundle | str | os.PathLike[str] | None = None,
        capture: CaptureSettings | None = None,
        stop: Any = None,
        seconds: float | None = None,
    ) -> Iterator[LiveResult]:
        """Live results, one per hop (0.5 s by default), from a microphone (and a camera for a model that takes
        faces) or from files: `for r in rec.stream(): print(r.label)`. Leaving the loop stops the capture.

        `mic`, `camera`, `audio_file`, `video_file` and `realtime` (files paced in real time, or as fast as
        possible) override the same fields of `capture` (`edge_ser.live.capture.CaptureSettings`).
        """
        from dataclasses import replace

        from edge_ser.live.capture import CaptureSettings

        given = {"mic": mic, "camera": camera, "audio_file": audio_file, "video_file": video_file}
        settings = replace(
            capture or CaptureSettings(),
            realtime=realtime,
            **{k: v for k, v in given.items() if v is not None},
        )
        return self.runner(settings, config, fallback=fallback, stop=stop, seconds=seconds).results()

    def __repr__(self) -> str:
        return f"<Recognizer {self.describe()}>"


__all__ = ["Prediction", "Recognizer"]
