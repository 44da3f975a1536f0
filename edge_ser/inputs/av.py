"""The audio-visual input kind: clip pre-processing of the audio-visual model, shared by training (converters)
and the device: numpy only (OpenCV for the face crop and video decoding, imported when used).

A clip becomes two tensors (see `converters/models/av_cnn.py`):

- faces [frames, face_size, face_size] float32 in [0, 1]: `frames` video frames, evenly spaced over the clip
  (`sample_frame_indices`), each cropped to a grey face by `crop_fn` (the Haar cropper of
  `edge_ser.vision.face`, e.g. `FaceCropper(...).crop_or_center`; by default a numpy centre crop), / 255.
  The 1/255 scaling happens here, not in the model graph.
- audio [segments, n_mfcc] float32: the waveform split into `segments` non-overlapping equal parts, the
  frame-averaged MFCCs of each (`audio_segments`). Standardisation is inside the model.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_ser.audio.stream import FILE_WINDOW_SECONDS, LONG_FILE_SECONDS
from edge_ser.errors import ConfigError, VideoFormatError
from edge_ser.features.condition import condition
from edge_ser.features.spec import FeatureSpec
from edge_ser.features.vector import feature_frames, vector_from_frames
from edge_ser.inputs.base import (
    AUDIO_EXTENSIONS,
    FileWindow,
    InputKind,
    Inputs,
    face_found,
    nested_feature_spec,
    shape_of,
    softmax_row,
)
from edge_ser.limits import MAX_AUDIO_SEGMENTS, MAX_FACE_FRAMES, MAX_FACE_SIZE, MIN_FACE_SIZE
from edge_ser.schema import Checker, config_from_dict
from edge_ser.vision.face import FaceCrop, crop_pixels_checked
from edge_ser.vision.video import VIDEO_EXTENSIONS, sample_frame_indices

if TYPE_CHECKING:
    from edge_ser.vision.face import FaceCropSpec

SCHEMA_VERSION = 1

CropFn = Callable[[np.ndarray], FaceCrop | np.ndarray]
"""A face crop: a BGR or grey frame to a `FaceCrop` (`FaceCropper.crop_or_center`) or a uint8 [S, S] array."""


def av_feature_spec() -> FeatureSpec:
    """The AV model's audio front end: 16 kHz, 32 ms FFT / 10 ms hop, 64 mel bands, 40 MFCCs."""
    return FeatureSpec(sample_rate=16000, n_fft=512, hop_length=160, n_mels=64, n_mfcc=40)


@dataclass(frozen=True)
class AVInputSpec:
    """Shape of the AV model's inputs and the audio front end; travels in bundle manifests as JSON."""

    frames: int = 6
    face_size: int = 64
    segments: int = 6
    feature_spec: FeatureSpec = field(default_factory=av_feature_spec)
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        c = Checker("AVInputSpec", error=ConfigError)
        c.integer(self.frames, "frames", 1, MAX_FACE_FRAMES)
        c.integer(self.face_size, "face_size", MIN_FACE_SIZE, MAX_FACE_SIZE)
        c.integer(self.segments, "segments", 1, MAX_AUDIO_SEGMENTS)
        if not isinstance(self.feature_spec, FeatureSpec):
            raise ConfigError(
                f"AVInputSpec.feature_spec must be a FeatureSpec, got {type(self.feature_spec)}"
            )
        if self.feature_spec.n_mfcc < 1:
            raise ConfigError("AVInputSpec.feature_spec.n_mfcc must be >= 1")
        if self.schema != SCHEMA_VERSION:
            raise ConfigError(
                f"AVInputSpec.schema={self.schema!r}: this edge-ser reads schema {SCHEMA_VERSION}"
            )

    @property
    def n_mfcc(self) -> int:
        return self.feature_spec.n_mfcc

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-clip input shapes by ONNX input name."""
        return {"faces": (self.frames, self.face_size, self.face_size), "audio": (self.segments, self.n_mfcc)}

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["feature_spec"] = self.feature_spec.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AVInputSpec:
        """Rebuild from `to_dict()` output; missing keys take defaults, unknown keys are an error."""
        return config_from_dict(cls, d, feature_spec=nested_feature_spec("AVInputSpec"))


def audio_segments(y: np.ndarray, sr: int, spec: FeatureSpec, segments: int = 6) -> np.ndarray:
    """[segments, n_mfcc] float32: per non-overlapping equal segment, MFCCs averaged over its frames.

    `y` is mono at `spec.sample_rate` (resample first). The last len(y) % segments samples are dropped so the
    segments are equal; a segment shorter than one frame (n_fft) is zero-padded at the end to n_fft.
    The MFCCs follow `spec` (mel bank, top_db clip per segment, DCT norm, lifter).
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ConfigError(f"audio must be mono [n], got shape {y.shape}")
    if int(sr) != spec.sample_rate:
        raise ConfigError(f"audio at {sr} Hz; the spec expects {spec.sample_rate} Hz (resample first)")
    if segments < 1:
        raise ConfigError(f"segments={segments} must be >= 1")
    y = condition(y.astype(np.float32, copy=False), spec)  # DC and level, as the spec says
    n = y.shape[0] // segments
    out = np.empty((segments, spec.n_mfcc), dtype=np.float32)
    for i in range(segments):
        seg = y[i * n : (i + 1) * n]
        if seg.shape[0] < spec.n_fft:
            seg = np.pad(seg, (0, spec.n_fft - seg.shape[0]))
        # the clip vector's MFCC block: the same code path as every other feature in the project
        mel, chroma = feature_frames(seg, sr=spec.sample_rate, spec=spec)
        out[i] = vector_from_frames(mel, chroma, spec)[spec.layout["mfcc"]]
    return out


@functools.lru_cache(maxsize=4)
def default_cropper(face_size: int = 64) -> CropFn:
    """The one face crop training and the device share: `FaceCropper.crop_or_center` (Haar face, or the
    centred-square fallback when no face is found), built once per face size (loading the cascade costs ms)."""
    from edge_ser.vision.face import FaceCropper, FaceCropSpec

    return FaceCropper(FaceCropSpec(size=face_size)).crop_or_center


def clip_inputs(
    frames: Sequence[np.ndarray],
    y: np.ndarray,
    sr: int,
    spec: AVInputSpec | None = None,
    crop_fn: CropFn | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One clip -> (faces [frames, S, S] float32 in [0, 1], audio [segments, n_mfcc] float32).

    `frames`: the clip's decoded video frames (any length >= 1; grey or BGR). `crop_fn(frame)` must return
    a uint8 [S, S] grey face, or an object whose `.image` is one (so `FaceCropper(...).crop_or_center`,
    which returns a `FaceCrop`, plugs in as is); None uses `default_cropper`, the shared Haar crop.
    """
    spec = spec or AVInputSpec()
    if len(frames) < 1:
        raise ConfigError("a clip needs at least one video frame")
    crop = crop_fn or default_cropper(spec.face_size)
    faces = np.empty((spec.frames, spec.face_size, spec.face_size), dtype=np.float32)
    for j, i in enumerate(sample_frame_indices(len(frames), spec.frames)):
        faces[j] = face_pixels(crop(frames[int(i)]), spec)
    audio = audio_segments(y, sr, spec.feature_spec, spec.segments)
    return faces, audio


def face_pixels(face: Any, spec: AVInputSpec, source: str = "crop_fn") -> np.ndarray:
    """A crop (a FaceCrop or a uint8 [S, S] array) as float32 pixels in [0, 1], checked; `source` names where it
    came from in the error ("crop_fn", or "face crops" the caller gave: the message said "crop_fn returned shape"
    for crops given to `predict_audio`, whose caller had passed no crop_fn)."""
    face = crop_pixels_checked(face, spec.face_size, source)
    return face.astype(np.float32) / np.float32(255.0)


def file_inputs(
    path: str | os.PathLike,
    spec: AVInputSpec | None = None,
    crop_fn: CropFn | None = None,
    *,
    audio: str | os.PathLike | None = None,
    names: Sequence[str] = ("faces", "audio"),
    crops: Sequence[Any] | None = None,
) -> dict[str, np.ndarray]:
    """A clip file -> the model inputs `names` asks for, {"faces": [frames, S, S], "audio": [segments, n_mfcc]}.

    `path` is a video (its `spec.frames` sampled frames are decoded; its audio track is read through ffmpeg
    unless `audio` names a separate audio file) or, when only "audio" is wanted, an audio file. Video and
    audio decoding live in `edge_ser.vision.video` and `edge_ser.audio`; the pre-processing is `clip_inputs`.
    `crops`: the video's face crops when the caller has them already (`file_crops`).
    """
    from edge_ser.audio import load
    from edge_ser.audio.container import load_container_audio

    spec = spec or AVInputSpec()
    path = Path(path)
    sr = spec.feature_spec.sample_rate
    is_video = path.suffix.lower() in VIDEO_EXTENSIONS
    out: dict[str, np.ndarray] = {}
    if "audio" in names:
        if audio is not None:
            y, _ = load(audio, sr=sr)
        elif is_video:
            y, _ = load_container_audio(path, sr=sr)
        else:
            y, _ = load(path, sr=sr)
        out["audio"] = audio_segments(y, sr, spec.feature_spec, spec.segments)
    if "faces" in names:
        crops = file_crops(path, spec, crop_fn) if crops is None else crops
        out["faces"] = np.stack([face_pixels(c, spec) for c in crops])
    return out


def file_crops(
    path: str | os.PathLike, spec: AVInputSpec | None = None, crop_fn: CropFn | None = None
) -> list:
    """A video's `spec.frames` sampled frames through the face crop (FaceCrops, which say whether a face was
    found, with the default crop): the faces input of `file_inputs` before it is scaled."""
    from edge_ser.vision.video import read_sampled

    spec = spec or AVInputSpec()
    path = Path(path)
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        raise ConfigError(
            f"{path}: the model needs face frames, so a video file ({', '.join(VIDEO_EXTENSIONS)})"
        )
    frames = read_sampled(path, spec.frames).frames  # sample_frame_indices(k, k) keeps them all
    crop = crop_fn or default_cropper(spec.face_size)
    return [crop(frame) for frame in frames]


class AVKind(InputKind):
    """Inputs "faces" [batch, frames, S, S] and/or "audio" [batch, segments, n_mfcc] (manifest blocks
    `av_input`: the AVInputSpec, and `face_crop`: the FaceCropSpec, with a faces input)."""

    name = "av"
    blocks = ("av_input", "face_crop")

    def __init__(
        self, spec: AVInputSpec, input_names: Sequence[str], crop: FaceCropSpec | None = None
    ) -> None:
        from edge_ser.vision.face import FaceCropSpec

        names = tuple(input_names)
        if not names or any(n not in ("faces", "audio") for n in names):
            raise ConfigError(f"an audio-visual model takes 'faces' and/or 'audio', got {list(names)}")
        self.spec, self.input_names = spec, names
        self.crop = crop if crop is not None or "faces" not in names else FaceCropSpec(size=spec.face_size)

    @classmethod
    def check_manifest(cls, c: Checker, manifest: Mapping[str, Any], inputs: list[dict[str, Any]]) -> None:
        from edge_ser.vision.face import FaceCropSpec

        names = [io_["name"] for io_ in inputs]
        av = c.get(manifest, "av_input", "", dict)
        if av is None:
            return
        spec = c.build("av_input", AVInputSpec.from_dict, av)
        if spec is None:
            return
        if spec.feature_spec != FeatureSpec.from_dict(manifest["feature_spec"]):
            c.problem(
                "av_input.feature_spec", "differs from the manifest's feature_spec (they must be the same)"
            )
        known = [n for n in names if n in spec.shapes]
        if not known:
            c.problem("av_input", f"the model has no 'faces' or 'audio' input (inputs: {names})")
        for n in known:
            if shape_of(inputs, n)[1:] != list(spec.shapes[n]):
                c.problem(
                    f"model.inputs[{names.index(n)}].shape",
                    f"input {n!r} is {inputs[names.index(n)]['shape']!r}, but av_input gives "
                    f"[batch, {', '.join(map(str, spec.shapes[n]))}]",
                )
        crop = c.get(manifest, "face_crop", "", dict, required="faces" in names)
        crop_spec = None if crop is None else c.build("face_crop", FaceCropSpec.from_dict, crop)
        if crop_spec is not None:
            if crop_spec.size != spec.face_size:
                c.problem("face_crop.size", f"{crop_spec.size} but av_input.face_size is {spec.face_size}")

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> AVKind:
        from edge_ser.vision.face import FaceCropSpec

        crop = manifest.get("face_crop")
        return cls(
            AVInputSpec.from_dict(manifest["av_input"]),
            [io_["name"] for io_ in manifest["model"]["inputs"]],
            None if crop is None else FaceCropSpec.from_dict(crop),
        )

    def manifest_blocks(self) -> dict[str, Any]:
        out: dict[str, Any] = {"av_input": self.spec.to_dict()}
        if self.crop is not None:
            out["face_crop"] = self.crop.to_dict()
        return out

    @property
    def feature_spec(self) -> FeatureSpec:
        return self.spec.feature_spec

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        return {n: self.spec.shapes[n] for n in self.input_names}

    @property
    def standardized_input(self) -> str | None:
        """The audio MFCCs (the face pixels are already in [0, 1])."""
        return "audio" if "audio" in self.input_names else None

    @property
    def faces(self) -> int:
        return self.spec.frames if "faces" in self.input_names else 0

    @property
    def face_crop(self) -> FaceCropSpec | None:
        return self.crop

    @property
    def mode(self) -> str:
        return {("faces", "audio"): "fused", ("faces",): "video"}.get(self.input_names, "audio")

    @property
    def file_extensions(self) -> tuple[str, ...]:
        return VIDEO_EXTENSIONS if self.faces else AUDIO_EXTENSIONS + VIDEO_EXTENSIONS

    def cropper(self) -> CropFn:
        """The bundle's face crop (Haar face, or the centred square when none is found), built once."""
        if "_cropper" not in self.__dict__:
            from edge_ser.vision.face import FaceCropper

            self._cropper = FaceCropper(self.crop).crop_or_center
        return self._cropper

    def enough_faces(self, faces: Sequence[Any] | None, min_share: float) -> bool:
        """Whether a window's crops found a face often enough (`min_share` of them) to trust the faces input."""
        found = [bool(getattr(f, "found", False)) for f in (faces or [])]
        return len(found) == self.faces and sum(found) >= min_share * len(found)

    def window_inputs(self, window: np.ndarray, faces: Sequence[Any] | None = None) -> Inputs:
        """The window's audio segments, and (faces input) its crops: the `faces` crops spread over the window
        (FaceCrops or uint8 [S, S]; fewer or more are resampled to `frames`), or black frames when none."""
        out: Inputs = {}
        if "audio" in self.input_names:
            out["audio"] = audio_segments(
                window, self.sample_rate, self.spec.feature_spec, self.spec.segments
            )[None]
        if "faces" in self.input_names:
            k, size = self.spec.frames, self.spec.face_size
            if faces:
                idx = np.linspace(0, len(faces) - 1, k).round().astype(int) if len(faces) != k else range(k)
                crops = [face_pixels(faces[i], self.spec, "face crops") for i in idx]
                out["faces"] = np.stack(crops)[None]
            else:
                out["faces"] = np.zeros((1, k, size, size), np.float32)
        return {n: out[n] for n in self.input_names}

    def windows_inputs(
        self, windows: Iterable[Any], where: str, *, measure: bool = True
    ) -> Iterator[FileWindow]:
        """As `InputKind.windows_inputs` (audio windows, no frames: long audio given to `predict_audio`); with a
        faces input, each window's black frames are marked `face_found=False`."""
        for w in super().windows_inputs(windows, where, measure=measure):
            yield dataclasses.replace(w, face_found=False) if self.faces else w

    def file_inputs(self, path: str | os.PathLike[str]) -> Inputs:
        """A video (its sampled frames through the bundle's face crop, its audio track) or, for an audio-only
        model, an audio file too."""
        return self._file_clip(path)[0]

    def _file_clip(self, path: str | os.PathLike[str]) -> tuple[Inputs, bool | None]:
        """`file_inputs` and whether the crops found a face (`face_found`; None without a faces input)."""
        crops = file_crops(path, self.spec, self.cropper()) if self.faces else None
        clip = file_inputs(path, self.spec, names=self.input_names, crops=crops)
        return {n: clip[n][None] for n in self.input_names}, None if crops is None else face_found(crops)

    def file_windows(
        self,
        path: str | os.PathLike[str],
        *,
        window_seconds: float = FILE_WINDOW_SECONDS,
        long_seconds: float = LONG_FILE_SECONDS,
    ) -> Iterator[FileWindow]:
        """As `InputKind.file_windows`; with faces, a long video's windows take their `frames` face crops
        from the frames shown in the window (decoded once, in order), and the whole-file clip is `file_inputs`."""
        if not self.faces:
            yield from super().file_windows(path, window_seconds=window_seconds, long_seconds=long_seconds)
            return
        from edge_ser.inputs.base import AUDIO_EXTENSIONS
        from edge_ser.vision.video import VIDEO_EXTENSIONS, iter_frames, probe_video

        if (
            Path(path).suffix.lower() in AUDIO_EXTENSIONS
        ):  # it said "not a video file OpenCV can open (RIFF...)"
            raise VideoFormatError(
                f"{path}: an audio file; this bundle fuses faces with the sound of videos "
                f"({', '.join(VIDEO_EXTENSIONS)}): for audio alone use its audio branch (bundles/av_cnn_audio) or a "
                "late-fusion bundle (bundles/av_fusion answers on audio alone)"
            )

        info = probe_video(path)
        if info.frame_count and info.frame_count / info.fps <= long_seconds:
            inputs, found = self._file_clip(path)
            yield FileWindow(0.0, info.frame_count / info.fps, inputs, True, face_found=found)
            return
        frames = _FramePicker(iter_frames(path), info.fps, self.spec.frames, self.cropper())
        if "audio" not in self.input_names:  # faces only: the video's frames make the windows
            yield from frames.windows(window_seconds, self)
            return
        from edge_ser.audio.stream import file_windows

        sr = self.sample_rate
        for w in file_windows(path, sr, window_seconds=window_seconds, long_seconds=long_seconds):
            self.check_clip(w.samples.size, str(path))
            if w.whole:  # the audio track is short although the video is not: one clip
                inputs, found = self._file_clip(path)
                yield FileWindow(0.0, w.end, inputs, True, w.source_rate, face_found=found)
                return
            crops = frames.crops(w.start, w.end)
            inputs = self.window_inputs(w.samples, crops)
            yield FileWindow(w.start, w.end, inputs, False, w.source_rate, face_found=face_found(crops))

    def combine(self, logits: np.ndarray) -> np.ndarray:
        return softmax_row(logits)

    def describe(self) -> list[str]:
        av, fs, lines = self.spec, self.spec.feature_spec, []
        if "faces" in self.input_names:
            c = self.crop
            lines.append(
                f"faces: {av.frames} frames evenly spaced over the clip, Haar face crop {c.size}x{c.size} "
                f"grey (detect width {c.detect_width}, margin {c.margin}, equalise {c.equalize}), / 255"
            )
        if "audio" in self.input_names:
            lines.append(
                f"audio: {av.segments} equal segments x {fs.n_mfcc} MFCCs (frame means) at {fs.sample_rate} Hz, "
                f"n_fft {fs.n_fft}, hop {fs.hop_length}, {fs.n_mels} mel bands {fs.fmin:g}-{fs.fmax_hz:g} Hz"
                + (", DC removed" if fs.remove_dc else "")
                + (f", level set to {fs.level_dbfs:g} dBFS" if fs.level_dbfs is not None else "")
            )
        return lines


class _FramePicker:
    """Face crops of the frames shown in a stretch of a video, for windows in time order: the frames are
    decoded once, in order, and only the `k` per window that `sample_frame_indices` picks are cropped."""

    def __init__(self, frames: Iterator[np.ndarray], fps: float, k: int, crop: CropFn) -> None:
        self._frames, self.fps, self.k, self.crop = enumerate(frames), fps, k, crop
        self._next: tuple[int, np.ndarray] | None = None
        self.ended = False
        self.last = -1
        """Index of the last frame decoded."""

    def crops(self, start: float, end: float) -> list[Any]:
        """The k crops of the frames in [start, end) s (fewer, or none, where the video has ended)."""
        f0, f1 = (
            int(round(start * self.fps)),
            max(int(round(end * self.fps)), int(round(start * self.fps)) + 1),
        )
        wanted = set((f0 + sample_frame_indices(f1 - f0, self.k)).tolist())
        out = []
        while not self.ended:
            if self._next is None:
                self._next = next(self._frames, None)
                if self._next is None:
                    self.ended = True
                    break
            i, frame = self._next
            if i >= f1:
                break
            self._next, self.last = None, i
            if i in wanted:
                out.append(self.crop(frame))
        return out

    def windows(self, window_seconds: float, kind: AVKind) -> Iterator[FileWindow]:
        """Windows made by the frames alone (a faces-only model); a last window under half a window is left out."""
        t = 0.0
        while not self.ended:
            crops = self.crops(t, t + window_seconds)
            if not crops:
                return
            end = min(t + window_seconds, (self.last + 1) / self.fps)
            if end - t < window_seconds / 2:
                return
            inputs = kind.window_inputs(np.zeros(0, np.float32), crops)
            yield FileWindow(t, end, inputs, face_found=face_found(crops))
            t += window_seconds


KIND = AVKind

__all__ = [
    "KIND",
    "AVInputSpec",
    "AVKind",
    "audio_segments",
    "av_feature_spec",
    "clip_inputs",
    "default_cropper",
    "face_pixels",
    "file_crops",
    "file_inputs",
]
