"""The Python API: emotion recognition with one bundle, from files, from audio in memory, or live.

    from edge_ser import Recognizer

    rec = Recognizer("bundles/laq_mlp_emodb")               # engine="auto", threads=1
    print(rec.predict_file("clip.wav"))                      # "happy 0.61 (neutral 0.22, sad 0.09)" + its marks
    result = rec.predict_audio(y, sr=44100)                  # any rate: resampled to the bundle's
    for live in rec.stream(mic="USB", seconds=60):           # the same pipeline as `edge-ser run`
        print(live.t, live.label, live.confidence)

Every bundle kind works the same way: what the model takes (a clip vector, log-Mel patches, face crops and
MFCC segments, ...) is the bundle's input kind's business (`edge_ser.inputs`). `edge-ser predict` and
`edge-ser run` are thin wrappers over this class.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_ser.audio.container import FFmpegNotFoundError
from edge_ser.audio.level import SILENCE_DB, clipped_share, loudest_db
from edge_ser.audio.pauses import bundle_keep, trim_pauses
from edge_ser.audio.stream import FILE_WINDOW_SECONDS, LONG_FILE_SECONDS
from edge_ser.errors import (
    AudioFormatError,
    ConfigError,
    EdgeSerError,
    InferenceError,
    VideoFormatError,
)
from edge_ser.inputs.base import CLIPPED_NOTE, FileWindow, clip_voiced, has_voice, narrower_band
from edge_ser.inputs.fusion import FusionKind
from edge_ser.speaker import (
    MIN_SPEECH_S,
    active_adapters,
    clips_held,
    held,
    joins_statistics,
    learn_clip,
    learn_inputs,
)

if TYPE_CHECKING:
    from edge_ser.bundle import Bundle, FusionBundle
    from edge_ser.live.capture import CaptureSettings
    from edge_ser.live.pipeline import LivePipeline, PipelineConfig
    from edge_ser.live.result import LiveResult
    from edge_ser.live.run import LiveRunner
    from edge_ser.live.session import AudioSession


UNREADABLE = (AudioFormatError, VideoFormatError, FFmpegNotFoundError)
"""What makes one file of a batch unreadable here (skipped with `on_bad_file`, the others classified): a damaged
or foreign file, and an M4A or a video's sound track on a machine without ffmpeg (it stopped the whole batch)."""


BATCH_ROWS = 32
"""Model input rows (clips, windows, log-Mel patches) gathered for one engine call: bounds the inputs and the
engine's activations held at once (a clip or window is never split, so one with more rows runs alone)."""


LEARN_CACHE_BYTES = 256 * 1024 * 1024
"""Model inputs of whole files that `learn_files` keeps for the classifying pass (beyond it: computed again)."""


@dataclass(frozen=True)
class WindowPrediction:
    """One window of a long file: its time span in seconds from the file's start, label and probabilities."""

    start: float
    end: float
    label: str
    probabilities: dict[str, float]
    ood: bool = False
    """Some model input was beyond the range the model was trained on (clamped; see `Prediction.ood`)."""
    face_found: bool | None = None
    """Whether a face was found in the window's frames (None: no frame searched), as `Prediction.face_found`."""
    level_db: float | None = None
    """The window's loudest half second in dBFS (None: no audio), as `Prediction.level_db`."""

    @property
    def confidence(self) -> float:
        """The probability of `label`."""
        return self.probabilities[self.label]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times rounded to ms, `level_db` None when not finite)."""
        level = self.level_db
        return {"start": round(self.start, 3), "end": round(self.end, 3), "label": self.label,
                "confidence": self.confidence, "probabilities": self.probabilities, "ood": self.ood,
                "face_found": self.face_found,
                "level_db": round(level, 2) if level is not None and math.isfinite(level) else None}  # fmt: skip


@dataclass(frozen=True)
class Prediction:
    """One clip's result: the label, every label's probability, and where the time went (milliseconds).

    A file longer than the long-file limit (30 s) is predicted per window (`windows`, 3 s each, with their
    times); its `probabilities` are then the mean of the windows' (those with speech, or with a face:
    `counted_windows`) and `label` their argmax (docs/input-kinds.md, "Long files")."""

    label: str
    probabilities: dict[str, float]
    """Probability by label, in the bundle's label order."""
    source: str | None = None
    """The file it came from (None for audio given in memory)."""
    timings: dict[str, float] = field(default_factory=dict)
    """"features" and "inference" in ms; a file classified in a batch with others has its share of the batch's
    inference time (by input rows), so the files' times add up to the engine's."""
    windows: tuple[WindowPrediction, ...] = ()
    """Per-window results of a long file, in time order (empty: the file was one clip)."""
    duration: float | None = None
    """Seconds of audio (or video) predicted, when known."""
    ood: bool = False
    """Out of range: some standardised model input was beyond +-OOD_Z training standard deviations (it was
    clamped there), or an int8 engine had to saturate it. The label is then a guess about audio unlike the
    training data (another band, level or microphone): treat it with suspicion (`edge_ser.engines.base`)."""
    level_db: float | None = None
    """The level in dBFS of the audio's loudest half second (`edge_ser.audio.level.loudest_db`: what the live
    voice gate judges; -inf: digital silence, null in JSON), None when not known (images, videos, a model that
    takes no audio). It was the whole clip's RMS until 2026-12-05, which counts the pauses: 235 of RAVDESS's
    720 clips were marked silent (105 under this measure: RAVDESS is recorded quietly)."""
    face_found: bool | None = None
    """Whether the face search found a face in the image or video (in any of the frames it looked at); None when
    it searched none (audio, or faces given in memory). False: a face model classified the fallback centre
    crops, and a fusion bundle heard the audio alone."""

    clipped: float | None = None
    """The share of the clip's samples at full scale (`edge_ser.audio.level.clipped_share`): above CLIPPED_NOTE
    (1 %) the audio was driven into clipping (marked by `predict`: a distorted clip the model never heard the like
    of); None when not measured (a long file, images)."""
    has_voice: bool | None = None
    """Whether the clip holds some voice (at least 1 % of its frames voiced, `edge_ser.inputs.base.clip_voiced`);
    False: noise, hiss, clicks or silence, answered as the model would answer anything (marked "no speech" by
    `predict`); None when not tested (a long file, images, a model that takes no audio). Until 2026-12-06 only
    the level was said, and white noise at -20 dBFS read "fear 1.00" unmarked. A steady tone is voiced."""
    fused: bool = False
    """Made by a fusion bundle (`FusionKind`), which answers a video without a sound track from its face branch
    alone: `marks()` and str() then say so, as `edge-ser predict` does (they said it only given `fused=True`)."""

    @property
    def silent(self) -> bool:
        """No speech loud enough for the live voice gate: even the loudest half second is below its default
        (`SILENCE_DB`, -45 dBFS). The model still answers, but about silence, noise or very quiet speech: the
        live runtime would not have asked it (`--vad-db` lowers its gate)."""
        return self.level_db is not None and self.level_db < SILENCE_DB

    def to_dict(self) -> dict[str, Any]:
        """The prediction as JSON-ready values (`edge-ser predict --json`)."""
        return {
            "file": self.source, "label": self.label, "confidence": self.confidence,
            "probabilities": self.probabilities, "ood": self.ood, "silent": self.silent, "has_voice": self.has_voice,
            "clipped": None if self.clipped is None else round(self.clipped, 4),
            "level_db": round(self.level_db, 2) if self.level_db is not None and math.isfinite(self.level_db) else None,
            "duration": self.duration, "face_found": self.face_found,
            "timings": self.timings, "windows": [w.to_dict() for w in self.windows],
        }  # fmt: skip

    @property
    def confidence(self) -> float:
        """The probability of `label`."""
        return self.probabilities[self.label]

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The k most probable labels with their probabilities, most probable first."""
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]

    def marks(self, fused: bool | None = None) -> list[str]:
        """What the label should not be trusted for (`prediction_marks`): what `edge-ser predict` prints after it,
        `predict --json` carries as "marks" and str() ends with. `fused`: the prediction of a fusion bundle
        (default: the prediction's own `fused`)."""
        return prediction_marks(self, self.fused if fused is None else fused)

    def __str__(self) -> str:
        """ "happy 0.61 (neutral 0.22, sad 0.09)", then each mark as `predict` prints it: `  [no speech: ...]`."""
        (first, p), *rest = self.top(3)
        others = ", ".join(f"{lab} {q:.2f}" for lab, q in rest)
        return f"{first} {p:.2f}" + (f" ({others})" if others else "") + marks_text(self.marks())


LONG_CLIP_NOTE_S = 10.0
"""A file read as one clip (up to LONG_FILE_SECONDS) longer than this is marked `long`: the shipped bundles' training
clips are 2-5 s, and a user review's 29.9 s file of nine utterances read "disgust 0.98" unmarked, while the same
audio past 30 s, windowed, read "calm 0.39"."""


def counted_windows(windows: Sequence[WindowPrediction], kind: Any) -> list[WindowPrediction]:
    """The windows a long file's label is the mean of (and its `ood` the any of): all, but for a face-only model
    those with a face and for an audio-only model those with speech (loudest half second at or above
    `SILENCE_DB`, as `--windows` marks the others "no speech"), when there are any. The others are guesses about
    an empty frame or about silence: a video with faces 20 of 40 s read "surprise" from its empty windows, and a
    recording with a long pause took its pause's "sad 1.00" windows into its mean and an out-of-range mark."""
    if not kind.hears:
        keep = [w for w in windows if w.face_found]
    elif not kind.faces:
        keep = [w for w in windows if w.level_db is None or w.level_db >= SILENCE_DB]
    else:
        keep = []
    return keep or list(windows)


def marks_text(marks: Iterable[str]) -> str:
    """Marks as the text view prints them after the label: `  [mark]` each (str(Prediction), `edge-ser predict`)."""
    return "".join(f"  [{m}]" for m in marks)


def _no_sound(r: Prediction) -> bool:
    """Whether a prediction heard no audio at all: no level for the clip, nor for any of its windows."""
    return r.level_db is None and all(w.level_db is None for w in r.windows or ())


def prediction_marks(r: Prediction, fused: bool = False) -> list[str]:
    """What the label should not be trusted for: no speech in the file, no face in view (answered from the audio
    alone when there was audio, else from the centre of the frame), no sound track (a fusion bundle), a clip too
    short or too long to read as one utterance, clipping, or input beyond the training range.
    The one rule for str(Prediction), `edge-ser predict`'s text and `predict --json`'s "marks", so a reader of
    `label` is told as a reader of the text is. `fused`: a fusion bundle (`FusionKind`), which answers a video
    without a sound track from its face branch alone; that is said too (av_cnn refuses such a video, and sets no
    level for one it reads)."""
    from edge_ser.live.run import SHORT_SPEECH_S  # the live package is not loaded for files and arrays

    marks = []
    if fused and _no_sound(r):
        marks.append("no sound track: " + ("nothing heard" if r.face_found is False else "the face alone"))
    if r.face_found is False:
        marks.append(
            "no face found: " + ("audio alone" if r.level_db is not None else "the centre of the frame")
        )
    if r.silent:
        if r.level_db == float("-inf"):
            marks.append("no speech: digital silence")
        else:  # silence, noise or very quiet speech: the live gate would stay closed
            marks.append(
                f"too quiet: {r.level_db:.1f} dBFS at its loudest, below the live voice gate's {SILENCE_DB:g} dBFS"
            )
    elif getattr(r, "has_voice", None) is False:  # loud enough, but no voice in it: the label is about noise
        marks.append("no speech: no voiced sound (noise, hiss or clicks)")
    duration = getattr(r, "duration", None)
    if duration is not None and duration < SHORT_SPEECH_S and r.level_db is not None and not r.silent:
        marks.append(
            f"short: {duration:.2f} s, under {SHORT_SPEECH_S:g} s: a word or a short phrase reads far less reliably "
            "than a sentence (docs/live.md)"
        )
    if duration is not None and duration > LONG_CLIP_NOTE_S and not r.windows and r.level_db is not None:
        marks.append(
            f"long: {duration:.1f} s read as one clip (training clips are a few seconds): a file of several "
            f"utterances blurs them, cut it into utterances (past {LONG_FILE_SECONDS:g} s a file is read in "
            f"{FILE_WINDOW_SECONDS:g} s windows)"
        )
    if (getattr(r, "clipped", None) or 0.0) > CLIPPED_NOTE:
        marks.append(f"clipped: {100 * r.clipped:.0f} % of its samples at full scale, distorted audio")
    if r.ood:
        marks.append("out of range: unlike the training audio, the label is a guess")
    return marks


def speech_enough(level: float, whole: bool, gate: float = SILENCE_DB) -> bool:
    """Whether audio at `level` dBFS joins the speaker statistics: a window when it reaches the voice gate, a whole
    clip (a recording the user chose) unless it is digital silence."""
    return level >= gate or (whole and level > -math.inf)


TEACH_MIN_S = MIN_SPEECH_S
"""A whole clip shorter than this teaches nothing about its speaker (`clip_teaches`; the one rule, `MIN_SPEECH_S`)."""


def clip_teaches(y: np.ndarray, sr: int, level: float | None = None, voice: bool | None = None) -> bool:
    """Whether a whole clip (a file up to 30 s, audio given in memory) joins the speaker statistics: at least
    TEACH_MIN_S long, not digital silence, and at least WHOLE_CLIP_VOICING of its frames voiced, so noise and hiss
    teach nothing. The one rule for `enroll`, `enroll_file`, `predict_audio` and files classified or learnt
    (`level`: its `loudest_db` when known)."""
    if np.shape(y)[0] < TEACH_MIN_S * sr:
        return False
    level = loudest_db(y, sr) if level is None else level
    return speech_enough(level, True) and (has_voice(y, sr) if voice is None else voice)


def float_samples(y: Any, sr: Any, where: str) -> tuple[np.ndarray, int]:
    """(y, sr) checked as the API takes audio in memory: float samples scaled to [-1, 1] (more than
    MAX_FLOAT_PEAK means integer samples stored as floats, as the WAV reader refuses them), mono [n] or
    [n, channels] (averaged to mono, as a file's channels are), and a positive integer rate; ConfigError naming
    `where` otherwise."""
    from edge_ser.audio.wav import MAX_SR, MIN_SR
    from edge_ser.live.session import INT_SCALE, int16_in_int32, mono_samples, samples_array

    if y is None:  # av_fusion's predict_audio(None, None, faces): "got dtype object"
        raise ConfigError(
            f"{where}: y is None: give the audio, float samples in [-1, 1] (or int16 / int32), [n] or "
            "[n, channels], and its rate sr (only a face-only bundle's predict_audio takes none)"
        )
    y = samples_array(y, where, ConfigError, "y")  # a ragged list raised numpy's bare ValueError
    note = int16_in_int32(y, where)
    if note:
        import warnings

        from edge_ser.errors import InputWarning

        warnings.warn(note, InputWarning, stacklevel=3)
    if y.dtype in INT_SCALE:  # int16 / int32 samples scaled by full scale, as `push` takes them
        y = y.astype(np.float32) / np.float32(INT_SCALE[y.dtype])
    elif y.dtype.kind not in "f":
        raise ConfigError(
            f"{where}: y must be float samples in [-1, 1] (or int16 / int32), got dtype {y.dtype}"
        )
    raw_peak = float(np.max(np.abs(y[np.isfinite(y)]), initial=0.0))
    y = mono_samples(y, where, ConfigError)  # as a pushed chunk: channels averaged, scale and layout checked
    if (
        isinstance(sr, bool)
        or not isinstance(sr, (int, np.integer, float))
        or not MIN_SR <= sr <= MAX_SR  # also refuses nan and inf
        or sr != int(sr)
    ):
        raise ConfigError(
            f"{where}: sr must be the sample rate in Hz, an integer in {MIN_SR}..{MAX_SR}, got {sr!r}"
            + (" (a rate in kHz?)" if isinstance(sr, (int, float)) and 0 < sr < MIN_SR else "")
        )
    peak = raw_peak
    if peak > 1.0:  # as the WAV reader says of a float file (predict_file warned, predict_audio did not)
        import warnings

        from edge_ser.errors import InputWarning

        warnings.warn(
            f"{where}: float samples beyond full scale (peak {peak:.6g} > 1); they are used as they are, but the "
            "model was trained on audio in [-1, 1]",
            InputWarning,
            stacklevel=3,
        )
    return y, int(sr)


def _rows(inputs: dict[str, np.ndarray]) -> int:
    """Rows (the batch axis) of one clip's model inputs."""
    return len(next(iter(inputs.values())))


SPEAKER_SCHEMA = "edge-ser-speaker"
"""The `schema` of a file written by `Recognizer.save_speaker`."""
SPEAKER_VERSION = 1
"""The `version` of the speaker file format this edge-ser writes and reads."""
SPEAKER_FILE_LIMIT = 16 * 1024 * 1024
"""Largest speaker file read (a few KB per adapting branch in practice)."""


class Recognizer:
    """A bundle on an engine, ready to classify files, audio arrays and live streams.

    Args:
        bundle: a loaded `Bundle` (or `FusionBundle`), or the path of a bundle folder or `.tar` (loaded and
            verified).
        engine: "auto" (onnxruntime if installed, else numpy), "onnxruntime", "numpy", "tflite", "tflite-int8"...
        threads: inference threads (1 by default: predictable latency beside capture and features); onnxruntime
            and TFLite take it, the numpy engine does not (its matrix products use numpy's BLAS threads: set
            OPENBLAS_NUM_THREADS=1, or OMP_NUM_THREADS, before Python starts for one).
        providers: onnxruntime execution providers to ask for ("cuda", "tensorrt"); CPU runs otherwise.
        adapt: a bundle that records a speaker normalisation (`speaker_norm`) keeps running statistics of the
            speaker over the clips it classifies (files, arrays, live windows with speech); False keeps the
            training prior. `reset_speaker()` starts a new speaker, `enroll()` adds known clips first.
        delegate: a TFLite delegate library for the tflite engine (`edge_ser.engines.tflite.load_delegate`).

    Threads: one recognizer may classify from several threads at once (`predict_*`, `enroll*`); their features
    are computed in parallel and their engine calls made one at a time (a TFLite interpreter is not thread-safe).
    A live `stream` / `runner` / `session` makes its engine calls under the same lock (a fallback Recognizer's
    under that one's), so it may run beside `predict_*` on the same recognizer: its windows and the other
    threads' calls then take turns on the engine, and they share the speaker statistics.

    Raises:
        BundleError: the bundle does not load or verify. MissingDependencyError: the engine is not installed.
        DelegateError: the delegate is missing or cannot be loaded.
    """

    def __init__(
        self,
        bundle: Bundle | FusionBundle | str | os.PathLike[str],
        engine: str = "auto",
        threads: int | None = 1,
        *,
        providers: Sequence[str] | None = None,
        adapt: bool = True,
        delegate: str | os.PathLike[str] | None = None,
    ) -> None:
        from edge_ser.bundle import load_bundle
        from edge_ser.engines import load_engine
        from edge_ser.speaker import SpeakerAdapter

        if not hasattr(bundle, "manifest") and not isinstance(bundle, (str, os.PathLike)):
            raise ConfigError(
                f"Recognizer: bundle must be a Bundle or the path of a bundle folder or .tar, got {type(bundle).__name__}"
            )
        # "" (an unset variable) was loaded as the working folder: "bundle : manifest.json is missing"
        self.bundle: Bundle | FusionBundle = (
            load_bundle(_given(bundle, "Recognizer: bundle"))
            if isinstance(bundle, (str, os.PathLike))
            else bundle
        )
        """The loaded bundle (a `FusionBundle` for a fusion bundle's folder)."""
        self.engine = load_engine(
            self.bundle, engine, threads=threads, providers=providers, delegate=delegate
        )
        self.kind = self.bundle.input_kind
        # a fusion bundle's predictions say a missing sound track (`Prediction.fused`)
        self._fused = isinstance(self.kind, FusionKind)
        if not isinstance(adapt, (bool, np.bool_)):  # "no" or "off" would be truthy: adapting
            raise ConfigError(f"Recognizer: adapt must be True or False, got {adapt!r}")
        self.speaker = SpeakerAdapter(self.bundle.manifest, enabled=adapt)
        # fingerprints of the files whose clips joined the statistics (enroll_file, predict_files): none twice
        self._enrolled: set[str] = set()
        self.files_known = 0
        """Files the last `predict_files` / `learn_files` did not learn again: their bytes were in the statistics."""
        self.files_learnt = 0
        """Files the last `predict_files` / `learn_files` added to the speaker statistics: some clip of theirs joined
        them (not an image or a silent video, whose model inputs reach no statistics; not a file skipped)."""
        if hasattr(self.engine, "set_adapt"):  # a fusion bundle: its branches keep their own statistics
            self.engine.set_adapt(adapt)
        # one engine call at a time, with the out-of-range flags it leaves on the engine: a TFLite interpreter is
        # not thread-safe (two threads raised its RuntimeError), and another thread's call replaced the flags
        self._engine_lock = threading.Lock()
        self._mark_speaker_base(None)

    def reset_speaker(self) -> None:
        """A new speaker (or session): the speaker statistics go back to the training prior (a fusion bundle's
        branches' too)."""
        self.speaker.reset()
        self._enrolled.clear()
        if hasattr(self.engine, "reset_speakers"):
            self.engine.reset_speakers()
        self._mark_speaker_base(None)

    def _mark_speaker_base(self, source: str | None) -> None:
        """Remember the statistics the session grows from (the prior, or a speaker file whose bytes have digest
        `source`), so that `save_speaker(merge=True)` can tell this session's clips from the file's."""
        self._speaker_base = (source, {name: a.state() for name, a in self._adapters().items()})

    def enroll(self, y: np.ndarray, sr: int) -> bool:
        """Add a clip of the user (as `predict_audio` takes it: float samples in [-1, 1] or int16 / int32, at `sr`
        Hz) to the speaker statistics without classifying it, its pause cut as `predict_audio` cuts it
        (`keep_pause`). Audio longer than 30 s is taken as a file is (`enroll_file`: its voiced 3 s windows).
        Silence, noise and hiss tell nothing about the speaker and are left out (`clip_teaches`): returns whether
        anything was added. ConfigError when the bundle has no speaker normalisation (as `enroll_file`)."""
        self._need_adapters("enrol")
        y, sr = float_samples(y, sr, "enroll")
        if y.size:  # as predict_audio: a NaN glitch is an error, not silence
            from edge_ser.features.spectral import check_audio

            check_audio(y, name="enroll: audio")
        if y.shape[0] > LONG_FILE_SECONDS * sr:  # as enroll_file: each voiced 3 s window (it was one clip)
            return self._enroll_windows(self._memory_audio_windows(y, sr), vad_db=SILENCE_DB, share=None) > 0
        if not clip_teaches(y, sr):
            return False
        clip, rate = self._trimmed(y, sr)  # as predict_audio classifies it
        learn_clip(self.kind, self.speaker, self.engine, clip, rate)
        return True

    def _need_adapters(self, what: str) -> None:
        """ConfigError when this bundle keeps no speaker statistics (nothing to `what`)."""
        if not self._adapters():
            raise ConfigError(
                f"{self.bundle.root}: this bundle has no speaker normalisation, so there is nothing to {what}"
            )

    def enroll_file(
        self, path: str | os.PathLike[str], *, vad_db: float = SILENCE_DB, voicing: float | None = None
    ) -> int:
        """Add a recording of the user to the speaker statistics: the whole file as one clip up to 30 s (as the
        bundle's training speakers were measured: every clip), else each 3 s window
        (`edge_ser.audio.stream.file_windows`) whose loudest half second reaches `vad_db` dBFS, the live voice
        gate's level (`loudest_db`, as `learn_files` decides) and is voiced as the live gate asks of a hop
        (`voiced_share` >= `voicing`, default the live gate's `VOICING_DEFAULT`; 0: level only), so the pauses and
        the fan noise of a long recording are left out. A
        silent file adds nothing. A folder enrols every audio file in it (searched recursively, sorted), as
        `edge-ser run --enroll DIR`; a file in it that cannot be read is skipped with an InputWarning naming it. A
        file already enrolled into the current statistics (the same bytes: in this session, or in a speaker file
        they were loaded from) is not added again; one that added no clip is not recorded as enrolled. A file that
        fails part way (AudioFormatError) adds nothing: the statistics are left as they were. Returns the clips
        added."""
        from edge_ser.audio.stream import file_windows

        share = None if voicing is None else float(voicing)
        if share is not None and not 0 <= share <= 1:
            raise ConfigError(f"voicing {voicing} must be a share of a window's frames in 0..1 (0: off)")
        self._need_adapters("enrol")
        path = _given(path, "enroll_file")  # "" is ".": it enrolled every audio file under the working folder
        if path.is_dir():
            from edge_ser.fileio import find_files
            from edge_ser.inputs.base import AUDIO_EXTENSIONS

            files = find_files(
                [Path(path)], AUDIO_EXTENSIONS, error=AudioFormatError, what="media files", skip_hidden=True
            )
            if not files:
                import warnings

                from edge_ser.errors import InputWarning

                warnings.warn(
                    f"enroll_file: {path} holds no audio file ({'/'.join(AUDIO_EXTENSIONS)}): nothing enrolled",
                    InputWarning,
                    stacklevel=2,
                )
            added = 0
            for f in files:
                try:
                    added += self.enroll_file(f, vad_db=vad_db, voicing=voicing)
                except AudioFormatError as e:
                    import warnings

                    from edge_ser.errors import InputWarning

                    warnings.warn(f"enroll_file: skipped {e}", InputWarning, stacklevel=2)
            return added
        mark = _fingerprint(path)
        if mark in self._enrolled:
            return 0
        added = self._enroll_windows(file_windows(path, self.sample_rate), vad_db=vad_db, share=share)
        self._remember(mark, added > 0)  # a silent file joined nothing: enrolling it again may (voicing=0)
        return added

    def _enroll_windows(self, windows: Iterable[Any], *, vad_db: float, share: float | None) -> int:
        """Add the voiced ones of a recording's windows (`edge_ser.audio.stream.AudioWindow`s at the model's
        rate: a whole clip, or a long recording's 3 s windows) to the speaker statistics; the clips added. A whole
        clip needs `clip_teaches`; a window the live gate's level `vad_db` and voicing `share` (None: the gate's
        default; 0: level only). A recording that fails part way (AudioFormatError) adds nothing."""
        from edge_ser.features.pitch import voiced_at_least
        from edge_ser.live.pipeline import VOICING_DEFAULT

        share = VOICING_DEFAULT if share is None else share
        before = {name: a.state() for name, a in self._adapters().items()}
        added = 0
        try:
            for w in windows:
                rate = self.sample_rate
                if w.whole:
                    # a whole clip (a recording the user chose) needs some voice in it, not the live gate's share:
                    # its pauses count too (RAVDESS's clips: 1.9-77 % of frames voiced); noise and hiss have none.
                    # voicing 0 (a whisperer's --vad-voicing 0): the level alone, not digital silence
                    level = loudest_db(w.samples, rate)
                    if not (
                        clip_teaches(w.samples, rate, level) if share > 0 else speech_enough(level, True)
                    ):
                        continue
                elif not speech_enough(loudest_db(w.samples, rate), False, vad_db) or not (
                    share <= 0 or voiced_at_least(w.samples, sr=rate, share=share)
                ):
                    continue
                samples = self._trimmed(w.samples, rate)[0] if w.whole else w.samples
                learn_clip(self.kind, self.speaker, self.engine, samples, rate)
                added += 1
        except AudioFormatError:
            for name, a in self._adapters().items():  # damaged after a good start: none of it counts
                a.set_state(before[name])
            raise
        return added

    def enrolled(self, path: str | os.PathLike[str]) -> bool:
        """Whether the file (by its bytes) is among those enrolled into the current statistics."""
        return _fingerprint(path) in self._enrolled

    def _file_mark(self, path: str | os.PathLike[str] | None) -> str | None:
        """A file's fingerprint when its clips may join the speaker statistics (None: in-memory audio, or a file
        the reader will say it cannot read), or "" when its bytes are there already (enrolled, or learnt by an
        earlier run whose speaker file was loaded: the same files predicted again had piled up 4, 12, 16, 20
        clips), counted in `files_known`. Only a recognizer that adapts asks."""
        if path is None:
            return None
        try:
            mark = _fingerprint(path)
        except AudioFormatError:
            return None  # the reader says why when it opens the file
        if mark in self._enrolled:
            self.files_known += 1
            return ""
        return mark

    def _remember(self, mark: str | None, joined: bool) -> None:
        """Record a file's fingerprint (`_file_mark`) as learnt when some clip of it joined the speaker statistics:
        an image or a video without sound teaches a fusion bundle's audio branch nothing, and was recorded all the
        same (then counted in `files_known` when given again, and saved as enrolled)."""
        if mark and joined:
            self._enrolled.add(mark)

    def _learns_clip(self, src: str | None, w: FileWindow) -> bool:
        """Whether a file's whole clip, classified, updates the speaker statistics: it teaches (`_learns`) and its
        bytes are not there yet; counted in `files_learnt` and recorded only when it reaches some (`_joins`)."""
        if not (self.adapting and _learns(w)):
            return False
        mark = self._file_mark(src)
        if mark == "":
            return False
        joined = self._joins(w)
        self.files_learnt += joined
        self._remember(mark, joined)
        return True

    def _adapters(self) -> dict[str, Any]:
        """The speaker statistics this recognizer keeps, by name: "bundle", and a fusion bundle's branches."""
        return active_adapters(self.speaker, self.engine)

    @property
    def speaker_clips(self) -> int | None:
        """Clips the speaker statistics hold (a fusion bundle: its adapting branches'), None if none adapt."""
        return clips_held(self._adapters())

    def save_speaker(self, path: str | os.PathLike[str], *, merge: bool = False) -> Path:
        """Write the current speaker's statistics to `path` (JSON, written atomically), so a later session can
        start from them (`load_speaker`) instead of the training prior.

        `merge`: when `path` has changed since this recognizer loaded it (another session saved the same speaker
        meanwhile; or it was made after this session started from the prior), the clips this session learnt
        since it loaded the file (or since `reset_speaker`) are added to what the file holds now, instead of
        replacing it; the folder is locked while the file is read and written. The statistics here become the
        merged ones. Without it, the last session to save wins."""
        from edge_ser.fileio import atomic_write, folder_lock

        self._need_adapters("save")
        if Path(path).is_dir():
            raise ConfigError(
                f"{path}: is a folder; give the speaker file's name, e.g. {Path(path) / 'speaker.json'}"
            )
        try:  # a folder that does not exist yet is made, as the CLI's --speaker-file does
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"{path}: cannot make its folder ({e.strerror or e})") from None
        try:  # a read-only folder or a full disk: said with the path given, not the temporary file's
            if not merge:
                atomic_write(path, self._speaker_json())
                return Path(path)
            with folder_lock(Path(path).parent):
                raw = Path(path).read_bytes() if Path(path).is_file() else None
                source, base = self._speaker_base
                if raw is not None and _digest(raw) != source:
                    self._absorb_into(raw, f"speaker file {path}", base)
                text = self._speaker_json()
                atomic_write(path, text)
        except OSError as e:
            raise ConfigError(f"{path}: cannot save the speaker file ({e.strerror or e})") from None
        self._mark_speaker_base(_digest(text.encode()))
        return Path(path)

    def _absorb_into(self, raw: bytes, where: str, base: dict[str, Any]) -> None:
        """Replace the statistics here by those of the speaker file `raw` plus the clips this session learnt
        beyond `base`; the enrolled files of both are kept. ConfigError (nothing changed) when `raw` is not a
        speaker file of this bundle's prior."""
        adapters = self._adapters()
        ours = {name: a.state() for name, a in adapters.items()}
        saved, enrolled = self._speaker_doc(raw, where)
        try:
            for name, a in adapters.items():
                a.set_state(saved[name], f"{where}: statistics.{name}")
                a.absorb(base[name], ours[name])
        except Exception:
            for name, a in adapters.items():
                a.set_state(ours[name])
            raise
        self._enrolled |= set(enrolled)

    def _speaker_json(self) -> str:
        """The speaker file's text for the current statistics."""
        doc = {
            "schema": SPEAKER_SCHEMA,
            "version": SPEAKER_VERSION,
            "bundle": self.bundle.name,
            "bundle_folder": Path(
                self.bundle.root
            ).name,  # the model's name is shared by bundles of other priors
            "statistics": {name: a.state() for name, a in self._adapters().items()},
            "enrolled": sorted(self._enrolled),  # so a restart with the same --enroll adds nothing twice
        }
        return json.dumps(doc, indent=1) + "\n"

    def load_speaker(self, path: str | os.PathLike[str]) -> int:
        """Restore the speaker statistics saved by `save_speaker`; the clips they hold. ConfigError naming the
        file when it is not such a file or was saved with a bundle of another training prior."""
        from edge_ser.fileio import read_regular_file

        where = f"speaker file {path}"
        raw = read_regular_file(path, limit=SPEAKER_FILE_LIMIT, error=ConfigError)
        saved, enrolled = self._speaker_doc(raw, where)
        for name, a in self._adapters().items():
            try:
                a.set_state(saved[name], f"{where}: statistics.{name}")
            except ConfigError as e:
                folder, here = json.loads(raw).get("bundle_folder"), Path(self.bundle.root).name
                if folder == here and saved[name].get("prior") != a.prior_id:
                    # a bundle refit or re-shipped under its name: "saved with bundle ser_emodb, this is
                    # ser_emodb" said nothing of why, nor of a way on
                    hint = (
                        f"; it was saved with a bundle also named {here} but of another training prior (refit or "
                        f"re-shipped since?), so they do not fit this one: move {path} away to start from the "
                        "training prior, and enrol the speaker again"
                    )
                else:
                    hint = (
                        f"; it was saved with bundle {folder}, this is {here}"
                        if folder and folder != here
                        else ""
                    )
                raise ConfigError(f"{e}{hint}") from None
        self._enrolled = set(enrolled)
        self._mark_speaker_base(_digest(raw))
        return self.speaker_clips or 0

    def _speaker_doc(self, raw: bytes, where: str) -> tuple[dict[str, Any], list[str]]:
        """A speaker file's statistics by this recognizer's adapter names, and its enrolled fingerprints;
        ConfigError naming `where` when it is not a speaker file for these adapters (the priors are checked
        by `set_state`)."""
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise ConfigError(f"{where}: not JSON ({e})") from None
        if not isinstance(doc, dict) or doc.get("schema") != SPEAKER_SCHEMA:
            raise ConfigError(f"{where}: not an edge-ser speaker file (schema {SPEAKER_SCHEMA!r})")
        if doc.get("version") != SPEAKER_VERSION:
            raise ConfigError(
                f"{where}: version {doc.get('version')!r}; this edge-ser reads version {SPEAKER_VERSION} (written by "
                "another edge-ser?)"
            )
        self._need_adapters("load")
        saved, adapters = doc.get("statistics"), self._adapters()
        if isinstance(saved, dict) and len(saved) == len(adapters) == 1 and set(saved) != set(adapters):
            # one adapting model on both sides under other names (av_fn_audio's "bundle" is av_fusion's "audio"
            # branch): the same statistics if the priors match, which set_state checks
            saved = {next(iter(adapters)): next(iter(saved.values()))}
        if not isinstance(saved, dict) or set(saved) != set(adapters):
            have = sorted(saved) if isinstance(saved, dict) else saved
            raise ConfigError(f"{where}: holds statistics for {have}, this bundle keeps {sorted(adapters)}")
        enrolled = doc.get("enrolled", [])  # absent in files written before 2026-12-05
        if not isinstance(enrolled, list) or not all(
            isinstance(m, str) and len(m) == FINGERPRINT_CHARS for m in enrolled
        ):
            raise ConfigError(f"{where}: enrolled must be a list of file fingerprints")
        for name in adapters:
            if not isinstance(saved[name], dict):
                raise ConfigError(f"{where}: statistics.{name} must be a mapping")
        return saved, enrolled

    @property
    def labels(self) -> tuple[str, ...]:
        """The bundle's labels, in the order of `Prediction.probabilities`."""
        return tuple(self.bundle.labels)

    @property
    def sample_rate(self) -> int:
        """The rate the model's features are computed at (inputs at other rates are resampled to it)."""
        return self.kind.sample_rate

    def describe(self) -> str:
        """One line: the bundle (name, source, labels, inputs, headline accuracy) and the engine it runs on."""
        return f"{self.bundle.describe()}; {self.engine.describe()}"

    # -- clips ---------------------------------------------------------------------------------------------

    def predict_file(self, path: str | os.PathLike[str]) -> Prediction:
        """Classify one file (audio; a video for a model that takes faces)."""
        return list(self._predict_paths([_given(path, "predict_file")], None, False, None))[0]

    def predict_files(
        self, paths: Iterable[str | os.PathLike[str]], *, learn_first: bool = False
    ) -> list[Prediction]:
        """Classify files of any length, in order: short files up to BATCH_ROWS input rows per engine call (each
        file's inference time is its share of the batch's), a long file window by window (streamed: memory holds
        a batch of windows, not the file). `learn_first`: see `iter_predict_files`."""
        return list(self._predict_paths(_path_list(paths, "predict_files"), None, learn_first, None))

    def iter_predict_files(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        on_bad_file: Callable[[Path, EdgeSerError], None] | None = None,
        learn_first: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[Prediction]:
        """`predict_files` as an iterator: each file's result as soon as it (or its batch) is done.

        A file that cannot be read (AudioFormatError, VideoFormatError) raises, unless `on_bad_file` is given:
        then it is called with the path and the error, and the file is skipped (no result for it).

        `learn_first` (offline use, a bundle with speaker normalisation that adapts): every file first joins the
        speaker statistics (unlabelled; `learn_files`), then each is classified with those statistics, which do
        not move while classifying (they are held while the iterator is open). The result then no longer depends
        on the files' order (a folder sorted by class would otherwise drag the statistics class by class), and
        every file gets the statistics the last one would: the per-speaker normalisation papers report
        (docs/protocol.md, `transductive`). Without it, the statistics learn file by file in order, as in a live
        session. `progress(done, total)` is called after each file of that first pass, which yields nothing.
        """
        yield from self._predict_paths(
            _path_list(paths, "iter_predict_files"), on_bad_file, learn_first, progress
        )

    def _predict_paths(
        self,
        paths: list[Path],
        on_bad_file: Callable[[Path, EdgeSerError], None] | None,
        learn_first: bool,
        progress: Callable[[int, int], None] | None,
    ) -> Iterator[Prediction]:
        """`iter_predict_files` on paths already checked (`_path_list`, naming the method the caller called)."""
        learnt: dict[int, tuple[FileWindow, float]] = {}
        self.files_known = self.files_learnt = 0
        if learn_first and self.adapting:
            learnt = self.learn_files(paths, progress=progress)
            # held per engine call, never across a yield: the iterator may be resumed on another thread
            yield from self._iter_predict(paths, on_bad_file, learnt, frozen=True)
            return
        yield from self._iter_predict(paths, on_bad_file, learnt)

    def learn_files(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[int, tuple[FileWindow, float]]:
        """Add every window of the files (the clips `iter_predict_files` would classify) to the speaker
        statistics without classifying them; unreadable files are left to the classifying pass. Returns the
        whole-file windows by position with their feature time in ms, kept (up to LEARN_CACHE_BYTES of inputs)
        so that pass need not compute their features again. `progress(done, total)` after each file."""
        kept: dict[int, tuple[FileWindow, float]] = {}
        cached = 0
        paths = _path_list(paths, "learn_files")
        self.files_known = self.files_learnt = 0
        for i, path in enumerate(paths):
            if progress is not None and i:
                progress(i, len(paths))
            mark = self._file_mark(path)
            if mark == "":
                continue  # its clips are in the statistics already (a speaker file of an earlier run)
            t0 = time.perf_counter()
            before = {name: a.state() for name, a in self._adapters().items()}
            joined = False
            try:
                for w in self._file_windows(path):
                    if not _learns(w):
                        continue  # silence tells nothing about the speaker (and would drag the statistics)
                    joins = self._joins(w)
                    joined = joined or joins
                    learn_inputs(self.speaker, self.engine, w.inputs)
                    self._remember(mark, joins)  # once a clip of it has joined the statistics
                    size = sum(np.asarray(v).nbytes for v in w.inputs.values())
                    if w.whole and cached + size <= LEARN_CACHE_BYTES:
                        kept[i] = (w, (time.perf_counter() - t0) * 1e3)
                        cached += size
            except UNREADABLE:
                # damaged after a good start (a NaN at minute 5): none of it counts, as in enroll_file; its first
                # windows stayed in the statistics of a file then reported as skipped
                for name, a in self._adapters().items():
                    a.set_state(before[name])
                if mark:
                    self._enrolled.discard(mark)
                kept.pop(i, None)
                continue
            self.files_learnt += joined
        if progress is not None and paths:
            progress(len(paths), len(paths))
        return kept

    @property
    def adapting(self) -> bool:
        """True when speaker statistics learn from the clips classified (a fusion bundle: any branch's)."""
        return any(a.enabled for a in self._adapters().values())

    @contextlib.contextmanager
    def frozen_speaker(self) -> Iterator[None]:
        """Inside the block the speaker statistics are used as they are, not updated by the clips classified."""
        with held(self._adapters().values()):
            yield

    def _iter_predict(
        self,
        paths: list[Path],
        on_bad_file: Callable[[Path, EdgeSerError], None] | None,
        learnt: dict[int, tuple[FileWindow, float]],
        *,
        frozen: bool = False,
    ) -> Iterator[Prediction]:
        """Each file's result in order; `frozen`: no clip joins the speaker statistics."""
        batch: list[tuple[str, FileWindow, float]] = []
        for i, path in enumerate(paths):
            t0 = time.perf_counter()
            if i in learnt:  # its features were computed by learn_files
                batch.append((str(path), *learnt.pop(i)))
                if sum(_rows(w.inputs) for _, w, _ in batch) >= BATCH_ROWS:
                    yield from self._run_clips(batch, frozen)
                    batch = []
                continue
            try:
                windows = self._file_windows(path)
                first = next(windows)
            except UNREADABLE as e:
                if on_bad_file is None:
                    raise
                on_bad_file(path, e)
                continue
            if first.whole:
                batch.append((str(path), first, (time.perf_counter() - t0) * 1e3))
                if sum(_rows(w.inputs) for _, w, _ in batch) >= BATCH_ROWS:
                    yield from self._run_clips(batch, frozen)
                    batch = []
                continue
            yield from self._run_clips(batch, frozen)
            batch = []
            mark = None if frozen or not self.adapting else self._file_mark(path)
            hold = frozen or (self.adapting and mark == "")  # learnt once, not again
            joined: list[bool] = []
            try:
                watched = self._watch_joins(itertools.chain([first], windows), joined)
                long = self._predict_long(str(path), watched, t0, hold)
            except UNREADABLE as e:  # damaged after a good start: its first windows stay in the statistics
                self._remember(mark, not hold and any(joined))
                if on_bad_file is None:
                    raise
                on_bad_file(path, e)
                continue
            joins = self.adapting and not hold and any(joined)
            self.files_learnt += joins
            self._remember(mark, joins)
            yield long
        yield from self._run_clips(batch, frozen)

    def _joins(self, w: FileWindow) -> bool:
        """Whether a file's window, if it teaches (`_learns`), reaches some speaker statistics (`joins_statistics`)."""
        return joins_statistics(self.speaker, self.engine, w.inputs)

    def _watch_joins(self, windows: Iterable[FileWindow], joined: list[bool]) -> Iterator[FileWindow]:
        """`windows` as they are, appending to `joined` whether each one would join the speaker statistics (a long
        file's: its windows are not kept, so they are looked at as they pass)."""
        for w in windows:
            joined.append(_learns(w) and self._joins(w))
            yield w

    def _run_clips(
        self, batch: list[tuple[str, FileWindow, float]], frozen: bool = False
    ) -> list[Prediction]:
        if not batch:
            return []
        learn = [not frozen and self._learns_clip(src, w) for src, w, _ in batch]
        out = self._run(
            [w.inputs for _, w, _ in batch],
            [src for src, _, _ in batch],
            [ms for _, _, ms in batch],
            learn=learn,
        )
        return [
            replace(
                p,
                duration=w.end,
                ood=p.ood or self.narrower(w.source_rate),
                level_db=w.level_db,
                face_found=w.face_found,
                has_voice=w.has_voice,
                clipped=w.clipped,
            )
            for p, (_, w, _) in zip(out, batch, strict=True)
        ]

    def _predict_long(
        self, source: str | None, windows: Iterable[FileWindow], t0: float, frozen: bool = False
    ) -> Prediction:
        """Per-window predictions of a long file, BATCH_ROWS input rows per engine call; the summary is the
        mean of the probabilities of the windows `counted_windows` keeps. `frozen`: no window joins the speaker
        statistics."""
        results: list[WindowPrediction] = []
        inference_ms = 0.0
        pending: list[FileWindow] = []

        def flush() -> None:
            nonlocal inference_ms
            if not pending:
                return
            preds = self._run(
                [w.inputs for w in pending],
                [source] * len(pending),
                [0.0] * len(pending),
                learn=[_learns(w) and not frozen for w in pending],
            )
            inference_ms += sum(p.timings["inference"] for p in preds)
            results.extend(
                WindowPrediction(
                    w.start,
                    w.end,
                    p.label,
                    p.probabilities,
                    p.ood or self.narrower(w.source_rate),
                    w.face_found,
                    w.level_db,
                )
                for w, p in zip(pending, preds, strict=True)
            )
            pending.clear()

        levels, found = [], []
        for w in windows:
            levels.append(w.level_db)
            found.append(w.face_found)
            if pending and sum(_rows(x.inputs) for x in pending) + _rows(w.inputs) > BATCH_ROWS:
                flush()
            pending.append(w)
        flush()
        counted = counted_windows(results, self.kind)
        mean = np.mean([list(w.probabilities.values()) for w in counted], axis=0)
        k = int(np.argmax(mean))
        total_ms = (time.perf_counter() - t0) * 1e3
        return Prediction(
            label=self.labels[k],
            probabilities={lab: float(v) for lab, v in zip(self.labels, mean, strict=True)},
            source=source,
            timings={"features": total_ms - inference_ms, "inference": inference_ms},
            windows=tuple(results),
            duration=results[-1].end,
            ood=any(w.ood for w in counted),
            level_db=None if None in levels else max(levels),
            face_found=None if all(f is None for f in found) else any(found),
            fused=self._fused,
        )

    def narrower(self, source_rate: int | None) -> bool:
        """True when audio recorded at `source_rate` Hz lacks part of the band the model was trained on (an
        8 kHz telephone clip has nothing above 4 kHz; a 16 kHz model's band reaches 8 kHz): its prediction is
        flagged out of range, as the model never saw such a spectrum."""
        return narrower_band(self.kind, source_rate)

    def predict_audio(
        self, y: np.ndarray | None, sr: int | None, faces: Sequence[Any] | None = None
    ) -> Prediction:
        """Classify a clip `y` [n] or [n, channels] (float in [-1, 1], or int16 / int32) recorded at `sr` Hz; a
        model that takes faces
        also wants the clip's face crops (`FaceCrop`s or uint8 [S, S] grey images, a list or one [k, S, S]
        array, any number: they are spread over the model's frames; none means black frames). A face-only model
        ignores the audio and needs the crops; faces given to a model that takes none are ignored with a
        warning. Silence, noise and hiss do not join the speaker statistics (`clip_teaches`); the result's
        `level_db` is the clip's loudest half second (`silent` below the voice gate).

        Audio longer than the long-file limit (30 s), without faces, is predicted per 3 s window as a file is
        (`windows`; `probabilities` their mean), so the same samples give `predict_file`'s answer; it used to be
        one clip of any length (78 s gave another label than the file, for 5x the memory). For a stream of your
        own capture, use `session`. A face-only model also takes `y` and `sr` None."""
        if y is None and not self.kind.hears:  # "the audio is ignored": it was refused as "dtype object"
            y, sr = np.zeros(0, np.float32), self.sample_rate if sr is None else sr
        y, sr = float_samples(y, sr, "predict_audio")
        # before resampling, which would spread one NaN over many samples; empty audio is refused here, by name
        # (it failed deep in the features, or said "0.0 ms is too short"); a face-only model takes none
        if y.size or self.kind.hears:
            from edge_ser.features.spectral import check_audio

            check_audio(y, name="predict_audio: audio")
        faces = _face_list(faces)
        if faces is not None and self.kind.face_crop is None:
            import warnings

            from edge_ser.errors import InputWarning

            warnings.warn(
                f"predict_audio: {self.bundle.root.name} takes no faces; the {len(faces)} given are ignored",
                InputWarning,
                stacklevel=2,
            )
            faces = None
        if not self.kind.hears and not faces:
            raise ConfigError(
                f"{self.bundle.root}: this bundle reads faces only: give faces=[crop, ...] (the audio is ignored: "
                "predict_audio(None, None, faces))"
            )
        t0 = time.perf_counter()
        if faces is None and y.shape[0] > LONG_FILE_SECONDS * sr:
            return self._predict_long(None, self._memory_windows(y, sr), t0)
        level = loudest_db(y, sr) if self.kind.hears else None
        clip, rate = self._trimmed(y, sr) if faces is None else (y, sr)
        x = self.kind.audio_inputs(clip, rate, faces)
        voice = None if level is None else clip_voiced(y, sr, level)  # clip_teaches, and said in the result
        learn = level is None or not self.adapting or clip_teaches(y, sr, level, voice)
        p = self._run([x], [None], [(time.perf_counter() - t0) * 1e3], learn=[learn])[0]
        return replace(
            p,
            duration=y.shape[0] / sr if y.ndim else None,
            ood=p.ood or self.narrower(sr),
            level_db=level,
            has_voice=voice,
            clipped=None if level is None else clipped_share(y),
            face_found=self.kind.given_face_found(faces),
        )

    @property
    def keep_pause(self) -> float | None:
        """Seconds of pause a whole clip keeps before and after its speech (the manifest's `pauses` block,
        `edge_ser.audio.pauses`); None when the bundle has none or its model takes faces (the faces are timed by
        the audio)."""
        return bundle_keep(self.bundle.manifest, self.kind)

    def _trimmed(self, y: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
        """A whole clip (and its rate) with its pauses cut to `keep_pause`, at the model's rate as a file is cut,
        so that `predict_audio` at any rate gives `predict_file`'s answer; (y, sr) themselves without the block."""
        keep = self.keep_pause
        if keep is None:
            return y, sr
        if sr != self.sample_rate:
            from edge_ser.audio import resample

            y, sr = resample(np.asarray(y, dtype=np.float32), sr, self.sample_rate), self.sample_rate
        return trim_pauses(y, sr, keep), sr

    def _file_windows(self, path: Path) -> Iterator[FileWindow]:
        """The kind's windows of a file (`InputKind.file_windows`), a whole clip with its pauses cut to
        `keep_pause` (its `level_db` still the whole file's); a long file's windows are not cut."""
        if self.keep_pause is None:
            return self.kind.file_windows(path)
        return self._cut_windows(path)

    def _cut_windows(self, path: Path) -> Iterator[FileWindow]:
        from edge_ser.audio.stream import file_windows

        for w in file_windows(path, self.sample_rate):
            if not w.whole:
                yield from self.kind.windows_inputs([w], str(path))
                continue
            cut = w._replace(samples=self._trimmed(w.samples, self.sample_rate)[0])
            level = loudest_db(w.samples, self.sample_rate)
            # whether it holds voice (the result says so), and so may teach the speaker statistics: clip_teaches
            voice = clip_voiced(w.samples, self.sample_rate, level)
            teaches = clip_teaches(w.samples, self.sample_rate, level, voice) if self.adapting else None
            clipped = w.clipped if w.clipped is not None else clipped_share(w.samples)  # as recorded
            for fw in self.kind.windows_inputs([cut], str(path), measure=False):
                yield replace(fw, level_db=level, teaches=teaches, has_voice=voice, clipped=clipped)

    def _memory_windows(self, y: np.ndarray, sr: int) -> Iterator[FileWindow]:
        """Long audio in memory as a long file's windows, each with its inputs and its loudest half second."""
        yield from self.kind.windows_inputs(self._memory_audio_windows(y, sr), "predict_audio")

    def _memory_audio_windows(self, y: np.ndarray, sr: int) -> Iterator[Any]:
        """Long audio in memory cut as a long file is (`edge_ser.audio.stream.cut_windows`, at the bundle's
        rate)."""
        from edge_ser.audio import resample
        from edge_ser.audio.stream import FILE_WINDOW_SECONDS, cut_windows

        rate = self.sample_rate
        y = np.asarray(y, dtype=np.float32)
        at_rate = y if sr == rate else resample(y, sr, rate)
        yield from cut_windows([at_rate], rate, FILE_WINDOW_SECONDS, sr)

    def _run(
        self,
        clips: list[dict[str, np.ndarray]],
        sources: list[str | None],
        features_ms: Sequence[float],
        *,
        learn: Sequence[bool] | None = None,
    ) -> list[Prediction]:
        """`_run_batch`, except that the clips whose `learn` is False (silence) are classified with the speaker
        statistics held (they do not join them); the clips keep their order, so each learning clip still
        updates the statistics before the ones after it are classified."""
        if learn is None or all(learn):
            return self._run_batch(clips, sources, features_ms)
        out: list[Prediction] = []
        for joins, group in itertools.groupby(range(len(clips)), key=lambda i: bool(learn[i])):
            idx = list(group)
            with contextlib.nullcontext() if joins else self.frozen_speaker():
                out += self._run_batch(
                    [clips[i] for i in idx], [sources[i] for i in idx], [features_ms[i] for i in idx]
                )
        return out

    def _run_batch(
        self, clips: list[dict[str, np.ndarray]], sources: list[str | None], features_ms: Sequence[float]
    ) -> list[Prediction]:
        """The clips through the engine in one call; each result carries its own feature time (`features_ms`, per
        clip) and its share of the call's inference time by input rows."""
        clips = [
            self.speaker(c) for c in clips
        ]  # per clip, in order: each joins the statistics, then uses them
        rows = [len(next(iter(c.values()))) for c in clips]
        x = {n: np.concatenate([c[n] for c in clips]) for n in self.kind.input_names}
        with self._engine_lock:
            t0 = time.perf_counter()
            try:
                logits = self.engine.predict(x)
            except InferenceError as e:
                raise InferenceError(f"{_culprits(self.engine, clips, sources)}: {e}") from None
            inference_ms = (time.perf_counter() - t0) * 1e3
            flagged = _last_ood(self.engine, len(logits))
        out, start = [], 0
        for n, src, feat_ms in zip(rows, sources, features_ms, strict=True):
            p = self.kind.combine(logits[start : start + n])
            ood = bool(flagged[start : start + n].any())
            start += n
            k = int(np.argmax(p))
            out.append(
                Prediction(
                    label=self.labels[k],
                    probabilities={lab: float(v) for lab, v in zip(self.labels, p, strict=True)},
                    source=src,
                    timings={"features": feat_ms, "inference": inference_ms * n / max(sum(rows), 1)},
                    ood=ood,
                    fused=self._fused,
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
        from edge_ser.live.run import LiveRunner

        if seconds is not None and not (isinstance(seconds, (int, float)) and seconds > 0):
            raise ConfigError(f"seconds: the stream time to stop after must be > 0, got {seconds!r}")
        _settings(capture, CaptureSettings, "capture")
        pipeline = self._live_pipeline(config, fallback)
        audio, frames, tracker = open_capture(capture or CaptureSettings(), self.kind)
        return LiveRunner(
            pipeline, audio, frames, outputs, tracker, stop=stop, max_seconds=seconds, keep=keep
        )

    def session(
        self,
        sr: int | None = None,
        config: PipelineConfig | None = None,
        *,
        fallback: Recognizer | Bundle | str | os.PathLike[str] | None = None,
        sample_rate: int | None = None,
        channels: int | None = None,
    ) -> AudioSession:
        """The live pipeline fed by your own capture: `session.push(chunk)` (int16 or float, mono or
        [frames, channels], at `sr` Hz, any chunk size) returns a `LiveResult` per completed hop, as
        `stream` would on the same audio (the voice gate, smoothing and speaker learning of `config`). Use it, not
        `predict_audio` on each chunk, for a stream: silence between utterances then neither gets an emotion nor
        joins the speaker statistics (`edge_ser.live.session`). `sample_rate` is the same as `sr` (its first
        name; `sr` is what `predict_audio` and `enroll` call it). `channels`, the channel count of the chunks if
        known (else the first 2-D chunk with more frames than channels sets it, and a first one with fewer, or
        square, is refused as ambiguous), lets `push` refuse a [channels, frames] chunk from the first one
        on (AudioFormatError: transpose it) instead of reading [2, 32] as 32 channels of 2 frames."""
        from edge_ser.live.session import AudioSession

        if (sr is None) == (sample_rate is None):
            raise ConfigError("session: give the rate of the chunks you will push, once: session(sr=48000)")
        return AudioSession(
            self._live_pipeline(config, fallback), sr if sample_rate is None else sample_rate, channels
        )

    def _live_pipeline(
        self, config: PipelineConfig | None, fallback: Recognizer | Bundle | str | os.PathLike[str] | None
    ) -> LivePipeline:
        """The `LivePipeline` of `runner` and `session`: this recognizer's engine and speaker statistics, and the
        audio-only fallback's (a bundle or path is loaded on this one's engine)."""
        from edge_ser.live.pipeline import LivePipeline, PipelineConfig

        _settings(config, PipelineConfig, "config")
        fb = fallback
        if fb is not None and not isinstance(fb, Recognizer):
            fb = Recognizer(fb, self.engine.name, getattr(self.engine, "threads", 1))
        return LivePipeline(
            self.bundle, self.engine, config, speaker=self.speaker,
            fallback=None if fb is None else fb.engine, fallback_speaker=None if fb is None else fb.speaker,
            engine_lock=self._engine_lock, fallback_lock=None if fb is None else fb._engine_lock,
        )  # fmt: skip

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

        An audio file shorter than one window gives one result on the audio it holds, with a note, as
        `predict_file` and `session(...).finish()` decide on a short clip; one shorter than a hop raises ConfigError.
        """
        from edge_ser.live.capture import CaptureSettings

        _settings(capture, CaptureSettings, "capture")
        # "no" or "off" would be truthy: paced in real time (adapt= is checked the same way)
        if not isinstance(realtime, (bool, np.bool_)):
            raise ConfigError(f"stream: realtime must be True or False, got {realtime!r}")
        for name, path in (("audio_file", audio_file), ("video_file", video_file)):
            if path is not None:
                _given(path, f"stream: {name}")  # "" was the working folder: ".: is a directory"
        given = {"mic": mic, "camera": camera, "audio_file": audio_file, "video_file": video_file}
        settings = replace(
            capture or CaptureSettings(),
            realtime=realtime,
            **{k: v for k, v in given.items() if v is not None},
        )
        runner = self.runner(settings, config, fallback=fallback, stop=stop, seconds=seconds)
        runner.classify_short = True  # a file shorter than one window: one result on what it held
        return _whole_file_checked(runner, settings.audio_file)

    def __repr__(self) -> str:
        return f"<Recognizer {self.describe()}>"


FINGERPRINT_CHARS = 32
"""Hex characters of an enrolled file's fingerprint (SHA-256 of its bytes, truncated)."""


def _digest(raw: bytes) -> str:
    """A speaker file's contents, for telling whether another session has saved it since it was read."""
    import hashlib

    return hashlib.sha256(raw).hexdigest()


def _settings(value: Any, kind: type, name: str) -> None:
    """ConfigError when `value` (the `name` argument of a live method) is neither None nor a `kind`: a dict of its
    fields raised a bare AttributeError ("'dict' object has no attribute 'vad_voicing'") or TypeError deep inside."""
    if value is not None and not isinstance(value, kind):
        raise ConfigError(
            f"{name} must be a {kind.__name__} ({kind.__module__}), got {type(value).__name__}: "
            f"{name}={kind.__name__}(...)"
        )


def _given(path: str | bytes | os.PathLike[str], where: str) -> Path:
    """A path the caller gave, as a Path; ConfigError for an empty one (an unset variable), which Path reads as
    the working folder "."; ConfigError naming the type for anything that is no path (None: os.fsdecode's bare
    TypeError)."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise ConfigError(f"{where}: a path must be a str or os.PathLike, got {type(path).__name__}")
    text = os.fsdecode(path)
    if not text:
        raise ConfigError(f"{where}: an empty path (an unset variable?)")
    return Path(text)


def _path_list(paths: Any, where: str) -> list[Path]:
    """The files a file method was given, as Paths checked by `_given` (errors naming `where`, the method called);
    one path alone is one file (a str would otherwise be iterated letter by letter; bytes: a name as the OS gives
    it)."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    # predict_files(3): "'int' object is not iterable", naming no method
    elif not isinstance(paths, Iterable):
        raise ConfigError(
            f"{where}: paths must be a path or an iterable of paths, got {type(paths).__name__}"
        )
    return [_given(p, where) for p in paths]


def _fingerprint(path: str | os.PathLike[str]) -> str:
    """A file's content fingerprint, read in blocks (an enrolment file can be long); AudioFormatError when it
    cannot be read (as `file_windows` would say)."""
    import hashlib

    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise AudioFormatError(f"{path}: cannot read ({e.strerror or e})") from None
    return h.hexdigest()[:FINGERPRINT_CHARS]


def _learns(w: FileWindow) -> bool:
    """Whether a file's window joins the speaker statistics (`learn_files`, and classifying file by file): not
    silence (a whole file of digital silence, a window of a long file below the voice gate), which tells nothing
    about the speaker."""
    if w.teaches is not None:
        return w.teaches
    if w.whole and (w.end - w.start < TEACH_MIN_S or w.has_voice is False):  # clip_teaches' rule
        return False
    return w.level_db is None or speech_enough(w.level_db, w.whole)


def _face_list(faces: Any) -> list[Any] | None:
    """`faces` as a list: one [S, S] image or a [k, S, S] array of them become a list of crops, and so does one
    FaceCrop (what `kind.cropper()(frame)` returns: it was a bare TypeError "'FaceCrop' object is not iterable");
    anything else that is not a sequence is a ConfigError saying what is taken."""
    if faces is None:
        return None
    if hasattr(faces, "image") and hasattr(faces, "found"):  # one FaceCrop
        return [faces]
    if not isinstance(faces, np.ndarray):
        try:
            return list(faces)
        except TypeError:
            raise ConfigError(
                f"faces: expected FaceCrops or uint8 [S, S] grey crops (one, a list, or a [k, S, S] array), got "
                f"{type(faces).__name__}"
            ) from None
    if faces.ndim == 2:
        return [faces]
    if faces.ndim == 3 and faces.shape[1] != faces.shape[2] and faces.shape[2] in (3, 4):
        # one colour crop [S, S, 3] was taken as S crops of [S, 3], and the error named that shape
        raise ConfigError(
            f"faces: an array of shape {faces.shape} is one colour image, not [k, S, S] grey crops; give it "
            "as grey (cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY))"
        )
    if faces.ndim == 3:
        return list(faces)
    raise ConfigError(f"faces: expected [S, S] or [k, S, S] grey crops, got an array of shape {faces.shape}")


def _whole_file_checked(runner: LiveRunner, audio_file: Any) -> Iterator[LiveResult]:
    """The runner's results; when an audio file ended before it gave any result (shorter than one hop: a file
    shorter than one window is classified as it is, `LiveRunner.classify_short`), ConfigError saying so, instead
    of an empty stream."""
    from edge_ser.live.run import too_short

    yield from runner.results()
    why = too_short(audio_file, runner.pipeline.config.hop, runner.stats, unit="hop")
    if why is not None:
        raise ConfigError(
            f"{why}; give a shorter PipelineConfig(hop=...) or classify it whole with predict_file"
        )


def _last_ood(engine: Any, rows: int) -> np.ndarray:
    """Per input row of the engine's last call, whether it was out of range (all False for an engine without
    the shared input adapter)."""
    flags = getattr(getattr(engine, "adapt", None), "last_ood", None)
    if flags is None or len(flags) != rows:
        return np.zeros(rows, dtype=bool)
    return np.asarray(flags, dtype=bool)


def _culprits(engine: Any, clips: list[dict[str, np.ndarray]], sources: list[str | None]) -> str:
    """The files of a batch whose own inference fails (run one by one, only after the batch failed)."""
    bad = []
    for c, src in zip(clips, sources, strict=True):
        try:
            engine.predict(c)
        except InferenceError:
            bad.append(str(src))
    return ", ".join(dict.fromkeys(bad)) or ", ".join(dict.fromkeys(map(str, sources)))


__all__ = ["BATCH_ROWS", "Prediction", "Recognizer", "WindowPrediction"]
