"""Clip pre-processing of the audio-visual model, shared by training (converters) and the device: numpy only.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_ser.errors import ConfigError
from edge_ser.features.spec import FeatureSpec
from edge_ser.features.vector import feature_frames, vector_from_frames

SCHEMA_VERSION = 1

CropFn = Callable[[np.ndarray], np.ndarray]


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
        for name in ("frames", "face_size", "segments"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"AVInputSpec.{name}={v!r}: must be a positive integer")
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
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"AVInputSpec: unknown field(s) {unknown}; known: {sorted(names)}")
        d = dict(d)
        if "feature_spec" in d and not isinstance(d["feature_spec"], FeatureSpec):
            if not isinstance(d["feature_spec"], dict):
                raise ConfigError("AVInputSpec.feature_spec must be an object")
            d["feature_spec"] = FeatureSpec.from_dict(d["feature_spec"])
        try:
            return cls(**d)
        except TypeError as e:
            raise ConfigError(f"AVInputSpec: {e}") from e


def sample_frame_indices(n_frames: int, k: int = 6) -> np.ndarray:
    """k frame indices, one at the centre of each of k equal spans of the clip (int64, non-decreasing).

    With n_frames < k some frames repeat (each span still maps to the frame under its centre).
    """
    if n_frames < 1:
        raise ConfigError(f"a clip needs at least one frame, got n_frames={n_frames}")
    if k < 1:
        raise ConfigError(f"k={k} must be >= 1")
    i = np.arange(k, dtype=np.int64)
    return ((2 * i + 1) * int(n_frames)) // (2 * k)


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
    y = y.astype(np.float32, copy=False)
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
        faces[j] = _face_pixels(crop(frames[int(i)]), spec)
    audio = audio_segments(y, sr, spec.feature_spec, spec.segments)
    return faces, audio


def _face_pixels(face: Any, spec: AVInputSpec) -> np.ndarray:
    """A crop_fn result (a FaceCrop or a uint8 [S, S] array) as float32 pixels in [0, 1], checked."""
    face = np.asarray(getattr(face, "image", face))  # FaceCrop (edge_ser.vision.face) or an array
    if face.shape != (spec.face_size, spec.face_size):
        raise ConfigError(
            f"crop_fn returned shape {face.shape}; expected ({spec.face_size}, {spec.face_size}) grey"
        )
    if face.dtype != np.uint8:
        raise ConfigError(f"crop_fn must return uint8 pixels, got {face.dtype}")
    return face.astype(np.float32) / np.float32(255.0)


def file_inputs(
    path: str | os.PathLike,
    spec: AVInputSpec | None = None,
    crop_fn: CropFn | None = None,
    *,
    audio: str | os.PathLike | None = None,
    names: Sequence[str] = ("faces", "audio"),
) -> dict[str, np.ndarray]:
    """A clip file -> the model inputs `names` asks for, {"faces": [frames, S, S], "audio": [segments, n_mfcc]}.

    `path` is a video (its `spec.frames` sampled frames are decoded; its audio track is read through ffmpeg
    unless `audio` names a separate audio file) or, when only "audio" is wanted, an audio file. Video and
    audio decoding live in `edge_ser.vision.video` and `edge_ser.audio`; the pre-processing is `clip_inputs`.
    """
    from edge_ser.audio import load
    from edge_ser.audio.container import load_container_audio
    from edge_ser.vision.video import VIDEO_EXTENSIONS, read_sampled

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
        if not is_video:
            raise ConfigError(
                f"{path}: the model needs face frames, so a video file ({', '.join(VIDEO_EXTENSIONS)})"
            )
        frames = read_sampled(path, spec.frames).frames  # sample_frame_indices(k, k) keeps them all
        crop = crop_fn or default_cropper(spec.face_size)
        faces = np.empty((spec.frames, spec.face_size, spec.face_size), dtype=np.float32)
        for j, frame in enumerate(frames):
            faces[j] = _face_pixels(crop(frame), spec)
        out["faces"] = faces
    return out
