"""The input-kind protocol: what a kind of model input must say and do, and what every kind shares.

A kind owns, for the bundles whose model takes its input:
- its manifest block(s) (`blocks`): how they are checked (`check_manifest`), read (`from_manifest`) and
  written (`manifest_blocks`);
- its sample rate: every audio input is resampled to it before any feature;
- how a file or an audio clip becomes the model's inputs (`file_inputs`, `audio_inputs`), and a live window
  (`window_inputs`, or a `live()` front end that keeps state between windows);
- how the model's output rows become one probability per label (`combine`).

The bundle, `edge-ser predict`, the live loop, the benchmarks and the exporter ask the kind; nothing else
branches on what kind of input a bundle takes.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from edge_ser.audio.container import AUDIO_CONTAINER_EXTENSIONS
from edge_ser.audio.level import clipped_share
from edge_ser.audio.stream import FILE_WINDOW_SECONDS, LONG_FILE_SECONDS
from edge_ser.engines.base import softmax
from edge_ser.errors import AudioFormatError, ConfigError

if TYPE_CHECKING:
    from edge_ser.features.spec import FeatureSpec
    from edge_ser.schema import Checker
    from edge_ser.vision.face import FaceCropSpec

AUDIO_EXTENSIONS = (
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", *AUDIO_CONTAINER_EXTENSIONS,
)  # fmt: skip
"""Audio files `edge-ser predict` picks from a folder and the data set loaders read: WAV through edge-ser's own
reader (`edge_ser.audio.wav`); FLAC, Ogg (Vorbis or Opus: .oga, .opus), MP3 and AIFF through soundfile (libsndfile
1.1+ decodes MP3; AIFF and AIFF-C are Apple's PCM formats); the audio-only containers libsndfile does not read (M4A,
AAC, MKA, WebM audio...: `edge_ser.audio.container.AUDIO_CONTAINER_EXTENSIONS`) through ffmpeg. A folder-per-class
data set counts the files it ignores for their extension (`converters.data.scan.skip_ignored`)."""

Inputs = dict[str, np.ndarray]
"""Model inputs by name, each with its rows axis first."""


@dataclass(frozen=True)
class FileWindow:
    """The model inputs of one stretch of a file: the whole file (`whole`), or one window of a long file."""

    start: float
    """Seconds from the start of the file."""
    end: float
    inputs: Inputs
    whole: bool = False
    """True when this is the whole file as one clip (a file no longer than the long-file limit)."""
    source_rate: int | None = None
    """The rate the file was recorded at (a rate below twice the model's band means a narrower band)."""
    level_db: float | None = None
    """The level in dBFS of the audio's loudest half second (`edge_ser.audio.level.loudest_db`, what the live
    voice gate would see; -inf: digital silence); None when the inputs are not made from audio."""
    face_found: bool | None = None
    """Whether the face search found a face in any of the frames the inputs were cropped from (False: the model
    saw the fallback centre crops, or a fusion bundle left its face branch out); None when no frame was searched."""
    teaches: bool | None = None
    """Whether the window may join the speaker statistics (`edge_ser.recognizer.clip_teaches`: voiced, not noise),
    when the caller asked; None: decided by `level_db` alone."""
    clipped: float | None = None
    """The share of a whole clip's samples at full scale (`clipped_share`); None when not measured."""
    has_voice: bool | None = None
    """Whether a whole clip holds some voice (`has_voice`: at least WHOLE_CLIP_VOICING of its frames voiced; False
    for noise, hiss, clicks and digital silence); None when not tested (a long file's window, no audio)."""


class LiveFrontEnd:
    """The per-stream part of a kind in the live loop: `feed` sees every new chunk of audio (at the kind's
    rate), `inputs` makes the model inputs of the newest window. This default keeps no state and calls the
    kind's `window_inputs`; a kind that can reuse work between overlapping windows returns its own."""

    def __init__(self, kind: InputKind) -> None:
        self.kind = kind

    def feed(self, chunk: np.ndarray) -> None:
        """New mono samples (none of the kinds so far needs them but the streaming clip vector)."""

    def inputs(self, window: np.ndarray, faces: Sequence[Any] | None = None) -> Inputs:
        return self.kind.window_inputs(window, faces)

    def frames_reused(self) -> tuple[int, int] | None:
        """(frames whose work came from an earlier window, frames computed) so far, for a front end that reuses
        work between windows (the functionals' pYIN products); None for one that does not."""
        return None

    def utterance_inputs(self, y: np.ndarray) -> Inputs:
        """The model inputs of another clip of the stream that ends at its newest sample (an utterance that just
        ended, no faces): `window_inputs` of it, with whatever the front end keeps reused but not replaced."""
        return self.kind.window_inputs(np.asarray(y, dtype=np.float32))


class InputKind(ABC):
    """One kind of model input (see the module doc). Instances are immutable descriptions of one bundle's
    input, built by `from_manifest` (device) or by the host exporter."""

    name: ClassVar[str]
    """The kind's name: "vector", "patches", "av", ..."""
    blocks: ClassVar[tuple[str, ...]] = ()
    """Manifest keys this kind owns; the first one marks a bundle as being of this kind (none: the default
    kind, for manifests with no kind block)."""

    input_names: tuple[str, ...]
    """The model inputs this kind feeds, in the model's order."""

    # -- the manifest ------------------------------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def check_manifest(cls, c: Checker, manifest: Mapping[str, Any], inputs: list[dict[str, Any]]) -> None:
        """Check this kind's blocks against the model inputs (`model.inputs`) and the feature spec; every
        problem goes to `c` with its field path."""

    @classmethod
    @abstractmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> InputKind:
        """The kind of a manifest that `check_manifest` passed."""

    @abstractmethod
    def manifest_blocks(self) -> dict[str, Any]:
        """This kind's manifest blocks, for the exporter (the inverse of `from_manifest`)."""

    # -- what the device needs ---------------------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        """The rate (Hz) every audio input is resampled to before features: the feature spec's."""
        return self.feature_spec.sample_rate

    @property
    @abstractmethod
    def feature_spec(self) -> FeatureSpec:
        """The audio front end, as the manifest's `feature_spec` records it."""

    @property
    @abstractmethod
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per model input its shape without the rows axis (what the exporter checks the model against)."""

    @property
    def standardized_input(self) -> str | None:
        """The input a model of this kind standardises inside its graph (its `mean` / `std`), if any."""
        return self.input_names[0]

    @property
    def faces(self) -> int:
        """Face crops one decision takes (0: the model sees no faces)."""
        return 0

    @property
    def hears(self) -> bool:
        """Whether the model takes audio (False: a face-only model, which the live loop runs on a silent clock
        and gates on a face in view instead of speech)."""
        return True

    @property
    def face_crop(self) -> FaceCropSpec | None:
        """How the device crops faces for this model (None without a faces input)."""
        return None

    @property
    def mode(self) -> str:
        """What the model listens to / looks at, for results: "audio", "video" or "fused"."""
        return "audio"

    @property
    def file_extensions(self) -> tuple[str, ...]:
        """The files `edge-ser predict` picks from a folder."""
        return AUDIO_EXTENSIONS

    @abstractmethod
    def window_inputs(self, window: np.ndarray, faces: Sequence[Any] | None = None) -> Inputs:
        """The model inputs of one mono clip or live window [n] float32 at `sample_rate` (and, for a kind
        with faces, the window's face crops); rows first."""

    @property
    def min_samples(self) -> int:
        """The shortest clip (samples at `sample_rate`) the model gives a meaningful answer for: one analysis
        frame (`feature_spec.n_fft`). Shorter clips are refused (`check_clip`), not padded into a guess."""
        return self.feature_spec.n_fft

    def given_face_found(self, faces: Sequence[Any] | None) -> bool | None:
        """`face_found` of a clip given in memory with `faces`: False when the model takes faces and no crop given
        shows one: none given (an AV model then sees black frames, a fusion answers from the audio alone), or only
        FaceCrops with `found` False (the cropper's centre fallback: a fusion leaves its face branch out, a face
        model reads the centre of the frame; they were reported None, though the crop says it); else None (a kind
        without faces, or crops the caller made as images: whether they show a face is theirs to say)."""
        return False if self.faces and not faces_in_view(faces) else None

    def check_clip(self, n: int, where: str = "audio") -> None:
        """AudioFormatError when a clip of `n` samples at `sample_rate` is too short for the model (or empty)."""
        check_clip_length(n, self.sample_rate, self.min_samples, where)

    def audio_inputs(self, y: np.ndarray, sr: int, faces: Sequence[Any] | None = None) -> Inputs:
        """The model inputs of a mono clip `y` at `sr` Hz (resampled to `sample_rate` first)."""
        from edge_ser.audio import resample

        y = np.asarray(y, dtype=np.float32)
        if y.ndim != 1:
            raise ConfigError(f"{self.name} input: audio must be mono [n], got shape {y.shape}")
        if int(sr) != self.sample_rate:
            y = resample(y, int(sr), self.sample_rate)
        self.check_clip(y.size)
        return self.window_inputs(y, faces)

    def file_inputs(self, path: str | os.PathLike[str]) -> Inputs:
        """The model inputs of one file as one clip (audio, resampled to `sample_rate`); the whole file is
        read, so for a file of any length use `file_windows`."""
        from edge_ser.audio import load

        y, _ = load(Path(path), sr=self.sample_rate, mono=True)
        self.check_clip(y.size, str(path))
        return self.window_inputs(y)

    def file_windows(
        self,
        path: str | os.PathLike[str],
        *,
        window_seconds: float = FILE_WINDOW_SECONDS,
        long_seconds: float = LONG_FILE_SECONDS,
    ) -> Iterator[FileWindow]:
        """The model inputs of a file of any length: one clip (`whole`) up to `long_seconds`, else one per
        `window_seconds` window with its start and end times (docs/input-kinds.md, "Long files"). The file is
        streamed: memory holds one window, not the file."""
        from edge_ser.audio.stream import file_windows

        windows = file_windows(
            path, self.sample_rate, window_seconds=window_seconds, long_seconds=long_seconds
        )
        yield from self.windows_inputs(windows, str(path))

    def windows_inputs(
        self, windows: Iterable[Any], where: str, *, measure: bool = True
    ) -> Iterator[FileWindow]:
        """The model inputs of audio windows at the kind's rate (`edge_ser.audio.stream.AudioWindow`s: a file's,
        or long audio given in memory cut the same way), each with its loudest half second; `where` names the
        audio in errors. `measure`: a whole clip's voicing and clipping too (False: the caller measures them on
        the clip as recorded, before its pauses were cut)."""
        from edge_ser.audio.level import loudest_db

        for w in windows:
            self.check_clip(w.samples.size, where)
            inputs = self.window_inputs(w.samples)
            level = loudest_db(w.samples, self.sample_rate)
            whole = w.whole and measure
            voice = clip_voiced(w.samples, self.sample_rate, level) if whole else None
            clipped = None
            if whole:  # as recorded when the file's own samples were measured (AudioWindow.clipped)
                clipped = w.clipped if w.clipped is not None else clipped_share(w.samples)
            yield FileWindow(
                w.start, w.end, inputs, w.whole, w.source_rate, level, clipped=clipped, has_voice=voice
            )

    def live(self, window_seconds: float) -> LiveFrontEnd:
        """A front end for one live stream of `window_seconds` windows."""
        return LiveFrontEnd(self)

    @abstractmethod
    def combine(self, logits: np.ndarray) -> np.ndarray:
        """One clip's (or window's) probabilities [classes] float64 from the model's output rows [rows, classes]."""

    @abstractmethod
    def describe(self) -> list[str]:
        """Lines for `edge-ser info`: what the model takes and how it is made."""


NARROW_BAND = 0.9
"""A recording whose Nyquist frequency is below this share of the model's top mel edge is flagged (`ood`)."""


def narrower_band(kind: InputKind, source_rate: int | None) -> bool:
    """True when audio recorded at `source_rate` Hz lacks part of the band `kind`'s model was trained on (an 8 kHz
    telephone clip or headset has nothing above 4 kHz; a 16 kHz model's band reaches 8 kHz): its predictions are
    flagged out of range, as the model never saw such a spectrum and resampling cannot restore it."""
    if source_rate is None or not kind.hears:
        return False
    return source_rate / 2 < NARROW_BAND * kind.feature_spec.fmax_hz


WHOLE_CLIP_VOICING = 0.01
"""Share of voiced frames a whole clip (a file up to 30 s, audio given in memory, a video's sound track) needs to be
taken as speech: it accepted any sound that was not digital silence, so 20 s of -30 dBFS noise or -75 dBFS hiss
joined the statistics as a clip of the speaker, and a video's faint room noise outvoted its face. Every EMODB and
RAVDESS clip has at least 1.9 % voiced frames (with its pauses), white noise 0 %."""


def has_voice(y: np.ndarray, sr: int) -> bool:
    """Whether audio holds speech enough to count as heard: at least WHOLE_CLIP_VOICING of its frames voiced
    (`edge_ser.features.pitch.voiced_at_least`, usually settled within its first second)."""
    from edge_ser.features.pitch import voiced_at_least

    return voiced_at_least(y, sr=sr, share=WHOLE_CLIP_VOICING)


CLIPPED_NOTE = 0.01
"""A clip with more than this share of its samples at full scale is marked clipped (`predict`): speech peaks
touch it for a sample or two, clipping holds it (speech driven 50x into clipping: 45 % of its samples)."""


def clip_voiced(y: np.ndarray, sr: int, level: float) -> bool:
    """Whether a whole clip at loudest level `level` dBFS holds some voice: not digital silence, and `has_voice`
    (a few ms per clip). Predictions carry it, so noise is not answered as if it were speech without a word."""
    return level > float("-inf") and has_voice(y, sr)


def faces_in_view(faces: Sequence[Any] | None) -> list[Any]:
    """The crops that show a face: FaceCrops with `found`, or images given as they are (a caller's own crops)."""
    return [f for f in (faces or []) if getattr(f, "found", True)]


def face_found(crops: Sequence[Any]) -> bool | None:
    """`FileWindow.face_found` of face crops: whether any shows a face (`faces_in_view`); None when there are
    none."""
    return bool(faces_in_view(crops)) if len(crops) else None


def check_clip_length(n: int, sample_rate: int, min_samples: int, where: str = "audio") -> None:
    """AudioFormatError naming `where` when a clip of `n` samples at `sample_rate` Hz is shorter than
    `min_samples` (one analysis frame: `InputKind.min_samples`). One rule for the device, which refuses such a
    clip (`InputKind.check_clip`), and for training, which skips it (`converters.featurize.extract`): a clip
    the model cannot answer for is not one to learn from either."""
    if n < min_samples:
        sr = sample_rate
        raise AudioFormatError(
            f"{where}: {n / sr * 1e3:.1f} ms of audio ({n} samples at the model's {sr} Hz) is too short: the model "
            f"needs at least {min_samples / sr * 1e3:.1f} ms ({min_samples} samples, one analysis frame)"
        )


def softmax_row(logits: np.ndarray) -> np.ndarray:
    """The probabilities of a one-row output (the clip-level kinds' `combine`)."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] != 1:
        raise ConfigError(f"expected the logits of one clip [1, classes], got shape {list(z.shape)}")
    return softmax(z[0])


def shape_of(inputs: list[dict[str, Any]], name: str) -> list[int | None] | None:
    """The manifest shape of model input `name` with None for open axes (None when there is no such input)."""
    for io_ in inputs:
        if io_["name"] == name:
            return [d if isinstance(d, int) else None for d in io_["shape"]]
    return None


__all__ = [
    "AUDIO_EXTENSIONS",
    "FileWindow",
    "InputKind",
    "Inputs",
    "LiveFrontEnd",
    "check_clip_length",
    "shape_of",
    "softmax_row",
]


def nested_feature_spec(owner: str) -> Callable[[Any], FeatureSpec]:
    """The reader of a FeatureSpec nested in an input spec's JSON (`owner`.feature_spec): a FeatureSpec as
    given, a dict rebuilt, anything else a ConfigError naming `owner`."""

    from edge_ser.features.spec import FeatureSpec

    def read(v: Any) -> FeatureSpec:
        if isinstance(v, FeatureSpec):
            return v
        if not isinstance(v, dict):
            raise ConfigError(f"{owner}.feature_spec must be an object")
        return FeatureSpec.from_dict(v)

    return read
