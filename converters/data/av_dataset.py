"""Audio-visual training arrays, built through the device's own pre-processing
(`edge_ser.inputs.av.clip_inputs` with the shared Haar face crop, MFCC segments from `edge_ser.features`, audio
read and resampled by `edge_ser.audio`), exactly as the live runtime will see them.

- `synthetic_av_arrays`: the built-in synthetic set. Clip k of class c pairs the k-th synthetic speech clip of
  c (converters.data.synthetic) with the k-th drawn face clip of c (converters.data.synthetic_av); both carry
  class information, so fusion can be tested for real.
- `paired_av_arrays`: RAVDESS speech clips paired by class with FER-2013 faces (`converters.data.paired_av`).
  Real speech and real faces, but THE PAIRS ARE SYNTHETIC (paired by label only): the video branch measures
  expression recognition on one jittered still image per clip, not video. Each 48x48 face is shown at video
  scale (`SceneSpec`) so the Haar cascade really runs; `faces_found` reports how often it fires.
- `audio_arrays` / `emodb_audio_arrays`: the audio branch's input for any speech corpus (e.g. EMODB).

`ClipCache` keeps audio segments per clip and face crops per (clip, face image) in memory: neither depends on
the split, so cross-validation folds compute each once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from converters.data.labels import class_order
from converters.data.paired_av import AVPair, PairedAVSpec, pair_frames
from converters.data.records import Record
from converters.data.synthetic import SyntheticSpec, generate
from converters.data.synthetic_av import SyntheticAVSpec, generate_faces
from edge_ser.errors import ConfigError
from edge_ser.inputs.av import AVInputSpec, audio_segments, clip_inputs


@dataclass
class AVArrays:
    """Model inputs for N clips: faces [N, 6, 64, 64] in [0, 1], audio [N, 6, n_mfcc], labels and speakers."""

    faces: np.ndarray
    audio: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    speakers: list[str]
    faces_found: float
    """Fraction of sampled frames in which the Haar cascade found a face (the rest used the fallback)."""
    found: np.ndarray | None = None
    """Per clip and frame [N, frames] bool: did the cascade find the face (None when not recorded)."""


def synthetic_av_arrays(n_per_class: int = 20, seed: int = 0, spec: AVInputSpec | None = None) -> AVArrays:
    """The synthetic audio-visual set as arrays, deterministic for a seed."""
    from edge_ser.vision.face import FaceCropper, FaceCropSpec

    spec = spec or AVInputSpec()
    sr = spec.feature_spec.sample_rate
    speech = generate(SyntheticSpec(n_per_class=n_per_class, sr=sr, seed=seed))
    faces = generate_faces(SyntheticAVSpec(n_per_class=n_per_class, frames=spec.frames, seed=seed))
    classes = tuple(dict.fromkeys(label for _, label, _ in speech))
    by_class: dict[str, list] = {c: [f for f, label in faces if label == c] for c in classes}
    cropper = FaceCropper(FaceCropSpec(size=spec.face_size))
    found = total = 0

    def crop(frame):
        nonlocal found, total
        out = cropper.crop_or_center(frame)
        found += out.found
        total += 1
        return out

    F, A, y, speakers, seen = [], [], [], [], {c: 0 for c in classes}
    for wave, label, speaker in speech:
        frames = by_class[label][seen[label]]
        seen[label] += 1
        f, a = clip_inputs(list(frames), wave, sr, spec, crop)
        F.append(f)
        A.append(a)
        y.append(classes.index(label))
        speakers.append(speaker)
    return AVArrays(np.stack(F), np.stack(A), np.array(y), classes, speakers, found / max(total, 1))


# ------------------------------------------------------------------ real signals: RAVDESS + FER-2013, EMODB
@dataclass(frozen=True)
class SceneSpec:
    """How a FER-2013 face crop is shown as a video frame before the shared Haar crop.

    FER-2013 images are tight 48x48 face crops. Fed as they are, the cascade (24x24 window, frames never
    upscaled) finds a face in only ~20% of them; a camera frame shows a face at a larger scale with
    background around it. So each jittered 48x48 frame is upscaled to `face` x `face` pixels (INTER_CUBIC)
    and pasted at the centre of a `width` x `height` grey frame whose flat background is the mean of the
    face image's border pixels. The default, a 144-pixel face in a 320x240 frame, is a webcam close-up at
    the cropper's default detection width (320: no downscale before detection).
    """

    width: int = 320
    height: int = 240
    face: int = 144

    def __post_init__(self) -> None:
        for name in ("width", "height", "face"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 8:
                raise ConfigError(f"SceneSpec.{name}={v!r} must be an integer >= 8")
        if self.face > min(self.width, self.height):
            raise ConfigError(
                f"SceneSpec.face={self.face} does not fit in a {self.width}x{self.height} frame"
            )


def scene_frame(face: np.ndarray, scene: SceneSpec) -> np.ndarray:
    """One grey uint8 face image [h, w] shown in a `scene.height` x `scene.width` grey uint8 frame."""
    import cv2

    face = np.asarray(face)
    if face.ndim != 2 or face.dtype != np.uint8:
        raise ConfigError(f"scene_frame needs a grey uint8 image [h, w], got {face.dtype} {face.shape}")
    border = np.concatenate([face[0], face[-1], face[1:-1, 0], face[1:-1, -1]])
    out = np.full((scene.height, scene.width), round(float(border.mean())), np.uint8)
    big = cv2.resize(face, (scene.face, scene.face), interpolation=cv2.INTER_CUBIC)
    top, left = (scene.height - scene.face) // 2, (scene.width - scene.face) // 2
    out[top : top + scene.face, left : left + scene.face] = big
    return out


@dataclass
class ClipCache:
    """In-memory cache for the paired set: audio segments per clip, face crops per (clip, face image).

    Neither depends on the split, and a clip meets at most three face images (one per split part), so the
    folds of a cross-validation compute each only once. Faces are kept as uint8 (exactly the crop's pixels).
    """

    audio: dict = field(default_factory=dict)
    faces: dict = field(default_factory=dict)
    hits: int = 0
    misses: int = 0


def _audio_key(path: Path, spec: AVInputSpec) -> tuple:
    return (str(path), spec.feature_spec.digest(), spec.segments)


def _load_audio(path: Path, spec: AVInputSpec) -> np.ndarray:
    """The clip as mono float32 at the spec's rate: edge_ser's WAV reader, downmix and polyphase resampler."""
    from edge_ser.audio import load

    y, _ = load(path, sr=spec.feature_spec.sample_rate)
    return y


def clip_audio(
    path: str | Path, spec: AVInputSpec | None = None, cache: ClipCache | None = None
) -> np.ndarray:
    """[segments, n_mfcc] float32 audio input of one file (`edge_ser.inputs.av.audio_segments`), cached."""
    spec = spec or AVInputSpec()
    path = Path(path)
    key = _audio_key(path, spec)
    if cache is not None and key in cache.audio:
        cache.hits += 1
        return cache.audio[key]
    sr = spec.feature_spec.sample_rate
    a = audio_segments(_load_audio(path, spec), sr, spec.feature_spec, spec.segments)
    if cache is not None:
        cache.misses += 1
        cache.audio[key] = a
    return a


def paired_av_arrays(
    pairs: Sequence[AVPair],
    spec: AVInputSpec | None = None,
    paired_spec: PairedAVSpec | None = None,
    *,
    scene: SceneSpec | None = SceneSpec(),
    classes: Sequence[str] | None = None,
    cache: ClipCache | None = None,
    progress: bool = False,
) -> AVArrays:
    """Model inputs for paired RAVDESS + FER-2013 clips (`converters.data.paired_av`): SYNTHETIC pairs.

    Per pair: the face's jittered frames (`paired_av.pair_frames`), each shown at video scale (`scene`;
    None = the raw 48x48 crops), then `edge_ser.inputs.av.clip_inputs` with the shared Haar crop
    (`FaceCropper(...).crop_or_center`) and the clip's waveform read and resampled by `edge_ser.audio.load`.
    `paired_spec` None = `PairedAVSpec()`. `classes` fixes the label order (default: `class_order` of the
    pairs' labels). `faces_found` is the fraction of frames in which the cascade found a face, `found` the
    per-frame flags [N, frames]. With a `cache`, a (clip, face image) seen before is not recomputed.
    """
    from edge_ser.vision.face import FaceCropper, FaceCropSpec

    spec = spec or AVInputSpec()
    paired_spec = paired_spec or PairedAVSpec()
    pairs = list(pairs)
    if not pairs:
        raise ConfigError("paired_av_arrays: no pairs")
    classes = tuple(classes) if classes is not None else class_order(p.label for p in pairs)
    unknown = sorted({p.label for p in pairs} - set(classes))
    if unknown:
        raise ConfigError(f"paired_av_arrays: labels {unknown} are not in classes {list(classes)}")
    sr = spec.feature_spec.sample_rate
    cropper = FaceCropper(FaceCropSpec(size=spec.face_size))
    flags: list[bool] = []

    def crop(frame):
        out = cropper.crop_or_center(frame)
        flags.append(bool(out.found))
        return out

    n = len(pairs)
    F = np.empty((n, spec.frames, spec.face_size, spec.face_size), np.float32)
    A = np.empty((n, spec.segments, spec.n_mfcc), np.float32)
    found = np.empty((n, spec.frames), bool)
    for i, p in enumerate(tqdm(pairs, desc="paired AV", unit="clip", disable=None if progress else True)):
        fkey = (str(p.audio), str(p.image), spec.frames, spec.face_size, paired_spec, scene)
        akey = _audio_key(p.audio, spec)
        if cache is not None and fkey in cache.faces and akey in cache.audio:
            cache.hits += 1
            faces_u8, found[i] = cache.faces[fkey]
            F[i] = faces_u8.astype(np.float32) / np.float32(255.0)  # the same division as clip_inputs
            A[i] = cache.audio[akey]
            continue
        frames = pair_frames(p, paired_spec)
        if scene is not None:
            frames = np.stack([scene_frame(f, scene) for f in frames])
        flags.clear()
        f, a = clip_inputs(list(frames), _load_audio(p.audio, spec), sr, spec, crop)
        F[i], A[i], found[i] = f, a, flags
        if cache is not None:
            cache.misses += 1
            cache.faces[fkey] = (np.rint(f * np.float32(255.0)).astype(np.uint8), found[i].copy())
            cache.audio.setdefault(akey, a)
    y = np.array([classes.index(p.label) for p in pairs], dtype=np.int64)
    return AVArrays(F, A, y, classes, [p.speaker for p in pairs], float(found.mean()), found)


@dataclass
class AudioArrays:
    """Audio-branch inputs for N clips: audio [N, segments, n_mfcc] float32, labels, classes and speakers."""

    audio: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    speakers: list[str]


def audio_arrays(
    records: Sequence[Record],
    spec: AVInputSpec | None = None,
    *,
    cache: ClipCache | None = None,
    progress: bool = False,
) -> AudioArrays:
    """The av_cnn audio input of every record (`clip_audio`), labels in `class_order`."""
    spec = spec or AVInputSpec()
    records = list(records)
    if not records:
        raise ConfigError("audio_arrays: no records")
    classes = class_order(r.label for r in records)
    it = tqdm(records, desc="audio", unit="clip", disable=None if progress else True)
    audio = np.stack([clip_audio(r.source, spec, cache) for r in it])
    y = np.array([classes.index(r.label) for r in records], dtype=np.int64)
    return AudioArrays(audio, y, classes, [r.speaker for r in records])


def emodb_audio_arrays(
    root: str | Path | None = None,
    spec: AVInputSpec | None = None,
    *,
    cache: ClipCache | None = None,
    progress: bool = False,
) -> AudioArrays:
    """The av_cnn audio input for every EMODB record (7 classes, 10 speakers); root None = `find_dataset`.

    EMODB is 22.05 kHz: `edge_ser.audio.load` resamples it to the spec's 16 kHz (polyphase), as on the device.
    """
    from converters.data.loaders import load_dataset

    return audio_arrays(load_dataset("emodb", root), spec, cache=cache, progress=progress)
