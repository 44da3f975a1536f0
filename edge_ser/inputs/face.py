"""The `face` input kind: one grey face crop per model row, k crops voted (numpy; OpenCV for the crop).

A face-expression model (bundles/face_fer) takes input "face" [batch, 1, S, S] float32 in [0, 1]: a
`FaceCropper` crop (the manifest's `face_crop` block: Haar face + margin, resized to S) / 255; any other
scaling is inside the model graph. One decision takes `face_input.k` crops (the frames of a live window, or of a
video spread evenly over it; an image gives one) and `combine` votes them: the mean of their probabilities
(`vote` "mean_prob") or the most frequent arg-max ("majority", ties to the higher mean probability).

Audio is never read: `window_inputs(window, faces)` uses the crops only, so a late-fusion bundle can call it on
the same window it gives its audio branch. docs/face.md has the model, the crop geometry and the figures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_ser.audio.stream import FILE_WINDOW_SECONDS, LONG_FILE_SECONDS
from edge_ser.engines.base import softmax
from edge_ser.errors import ConfigError, VideoFormatError
from edge_ser.features.spec import FeatureSpec
from edge_ser.fileio import check_regular_file
from edge_ser.inputs.base import AUDIO_EXTENSIONS, FileWindow, InputKind, Inputs, face_found, shape_of
from edge_ser.limits import MAX_FACE_FRAMES, MAX_FACE_SIZE, MIN_FACE_SIZE
from edge_ser.schema import Checker, config_from_dict
from edge_ser.vision.face import crop_pixels_checked
from edge_ser.vision.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

if TYPE_CHECKING:
    from edge_ser.vision.face import FaceCropSpec

VOTES = ("mean_prob", "majority")
MIN_ZOOM, MAX_ZOOM, MAX_VIEWS = 0.5, 2.0, 4
"""FaceInputSpec.views: the zooms a bundle may ask for, and how many."""


@dataclass(frozen=True)
class FaceInputSpec:
    """size: the crop side S; k: crops per decision (> 0); vote: how their probabilities combine; mirror: also
    run each crop's mirror image and average the two probabilities before the vote (a label-preserving flip the
    model was trained with: test-time augmentation for 2x the model time); views: zooms about the crop's centre
    also run and averaged the same way (e.g. (0.9, 1.1): the crop seen 10 % closer and 10 % further, for 3x the
    model time; the device's face box jitters in scale, docs/face.md)."""

    size: int = 48
    k: int = 3
    vote: str = "mean_prob"
    mirror: bool = False
    views: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        c = Checker("FaceInputSpec", error=ConfigError)
        c.integer(self.size, "size", MIN_FACE_SIZE, MAX_FACE_SIZE)
        c.integer(self.k, "k", 1, MAX_FACE_FRAMES)
        if self.vote not in VOTES:
            raise ConfigError(f"FaceInputSpec.vote={self.vote!r} must be one of {', '.join(VOTES)}")
        if not isinstance(self.mirror, bool):
            raise ConfigError(f"FaceInputSpec.mirror={self.mirror!r} must be true or false")
        zooms = self.views if isinstance(self.views, tuple) else ()
        ok = zooms == self.views and len(zooms) <= MAX_VIEWS and len(set(zooms)) == len(zooms)
        if not ok or not all(
            isinstance(z, (int, float)) and not isinstance(z, bool) and MIN_ZOOM <= z <= MAX_ZOOM and z != 1
            for z in zooms
        ):
            raise ConfigError(
                f"FaceInputSpec.views={self.views!r} must be up to {MAX_VIEWS} distinct zooms in "
                f"[{MIN_ZOOM}, {MAX_ZOOM}], none of them 1"
            )

    @property
    def rows_per_crop(self) -> int:
        """Model rows one crop takes: itself and each view, each with its mirror when `mirror`."""
        return (1 + len(self.views)) * (2 if self.mirror else 1)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "views": list(self.views)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FaceInputSpec:
        return config_from_dict(cls, d, views=lambda v: tuple(v) if isinstance(v, list) else v)


def zoomed(x: np.ndarray, zoom: float) -> np.ndarray:
    """Crops [n, 1, S, S] float32 seen `zoom` times closer about their centre (> 1 magnifies; < 1 shows more, the
    border continued outward), bilinear, the same size."""
    from edge_ser.vision._cv2 import import_cv2

    cv2 = import_cv2("zooming face crops")
    size = x.shape[-1]
    m = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), 0.0, float(zoom))
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i, 0] = cv2.warpAffine(
            x[i, 0], m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    return out


def crop_pixels(face: Any, size: int) -> np.ndarray:
    """A FaceCrop (or a uint8 [S, S] grey crop) as float32 [1, S, S] in [0, 1], checked."""
    img = crop_pixels_checked(face, size)
    return (img.astype(np.float32) / np.float32(255.0))[None]


def vote(probs: np.ndarray, rule: str) -> np.ndarray:
    """One probability row from per-crop rows [k, classes]: their mean, or (majority) one-hot-ish counts."""
    mean = probs.mean(axis=0)
    if rule == "mean_prob" or probs.shape[0] == 1:
        return mean
    counts = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1]).astype(np.float64)
    best = np.flatnonzero(counts == counts.max())
    winner = best[np.argmax(mean[best])]
    out = counts / counts.sum()
    out[winner] += 1e-9  # ties go to the higher mean probability
    return out / out.sum()


class FaceKind(InputKind):
    """Input "face" [batch, 1, S, S]; manifest blocks `face_input` (FaceInputSpec) and `face_crop` (FaceCropSpec)."""

    name = "face"
    blocks = ("face_input", "face_crop")
    input_names = ("face",)

    def __init__(self, spec: FaceInputSpec, crop: FaceCropSpec | None = None) -> None:
        from edge_ser.vision.face import FaceCropSpec

        self.spec = spec
        self.crop = crop if crop is not None else FaceCropSpec(size=spec.size)
        if self.crop.size != spec.size:
            raise ConfigError(f"face_crop.size {self.crop.size} differs from face_input.size {spec.size}")

    # -- manifest --------------------------------------------------------------------------------------------
    @classmethod
    def check_manifest(cls, c: Checker, manifest: Mapping[str, Any], inputs: list[dict[str, Any]]) -> None:
        from edge_ser.vision.face import FaceCropSpec

        block = c.get(manifest, "face_input", "", dict)
        spec = None if block is None else c.build("face_input", FaceInputSpec.from_dict, block)
        crop = c.get(manifest, "face_crop", "", dict, required=True)
        crop_spec = None if crop is None else c.build("face_crop", FaceCropSpec.from_dict, crop)
        if spec is None:
            return
        if crop_spec is not None and crop_spec.size != spec.size:
            c.problem("face_crop.size", f"{crop_spec.size} but face_input.size is {spec.size}")
        if shape_of(inputs, "face") != [None, 1, spec.size, spec.size] or len(inputs) != 1:
            c.problem(
                "model.inputs", f"a face model takes one input 'face' [batch, 1, {spec.size}, {spec.size}]"
            )

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> FaceKind:
        from edge_ser.vision.face import FaceCropSpec

        return cls(
            FaceInputSpec.from_dict(manifest["face_input"]), FaceCropSpec.from_dict(manifest["face_crop"])
        )

    def manifest_blocks(self) -> dict[str, Any]:
        return {"face_input": self.spec.to_dict(), "face_crop": self.crop.to_dict()}

    # -- what the device needs ---------------------------------------------------------------------------------
    @property
    def feature_spec(self) -> FeatureSpec:
        """No audio feature: the default spec, recorded because every manifest has one."""
        return FeatureSpec()

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"face": (1, self.spec.size, self.spec.size)}

    @property
    def standardized_input(self) -> str | None:
        return None  # pixels / 255 here; the model maps them to its own range in the graph

    @property
    def faces(self) -> int:
        return self.spec.k

    @property
    def hears(self) -> bool:
        return False

    @property
    def face_crop(self) -> FaceCropSpec:
        return self.crop

    @property
    def mode(self) -> str:
        return "video"

    @property
    def min_samples(self) -> int:
        return 0  # audio is not used

    @property
    def file_extensions(self) -> tuple[str, ...]:
        return IMAGE_EXTENSIONS + VIDEO_EXTENSIONS

    def cropper(self):
        """The bundle's face crop (`FaceCropper.crop_or_center`), built once."""
        if "_cropper" not in self.__dict__:
            from edge_ser.vision.face import FaceCropper

            self._cropper = FaceCropper(self.crop).crop_or_center
        return self._cropper

    def enough_faces(self, faces: Sequence[Any] | None, min_share: float) -> bool:
        """Whether at least `min_share` of the window's crops found a face (the live loop's test)."""
        found = [bool(getattr(f, "found", False)) for f in (faces or [])]
        return bool(found) and sum(found) >= min_share * len(found)

    def window_inputs(self, window: np.ndarray, faces: Sequence[Any] | None = None) -> Inputs:
        """The crops of a window (audio ignored): those that found a face when any did, else all given; at most
        k, evenly spread; black when there are none (as the audio-visual kind does). Each of `views` adds the crops
        zoomed (rows [crops, crops at views[0], ...]); with `mirror`, the mirror images of all those follow them
        (rows [..., mirrors...]); `combine` averages each crop's rows."""
        crops = list(faces or [])
        found = [f for f in crops if getattr(f, "found", True)]
        crops = found or crops
        size, k = self.spec.size, self.spec.k
        if not crops:
            x = np.zeros((1, 1, size, size), np.float32)
        else:
            if len(crops) > k:
                crops = [crops[i] for i in np.linspace(0, len(crops) - 1, k).round().astype(int)]
            x = np.stack([crop_pixels(f, size) for f in crops])
        if self.spec.views:
            x = np.concatenate([x, *(zoomed(x, z) for z in self.spec.views)])
        if self.spec.mirror:
            x = np.concatenate([x, np.ascontiguousarray(x[..., ::-1])])
        return {"face": x}

    def image_inputs(self, image: np.ndarray) -> Inputs:
        """One frame or photo (grey or BGR) -> its crop as the model's input [1, 1, S, S]."""
        return self.window_inputs(np.zeros(0, np.float32), [self.cropper()(image)])

    def file_inputs(self, path: str | os.PathLike[str]) -> Inputs:
        """An image (its face crop) or a video (k frames spread over it, each cropped)."""
        return self.window_inputs(np.zeros(0, np.float32), self.file_crops(path))

    def file_crops(self, path: str | os.PathLike[str]) -> list[Any]:
        """The face crops `file_inputs` classifies: an image's one, or those of k frames spread over a video
        (`FaceCrop`s, `found` False where the search fell back to the centre)."""
        path = Path(path)
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            from edge_ser.vision.video import read_sampled

            crop = self.cropper()
            return [crop(f) for f in read_sampled(path, self.spec.k).frames]
        from edge_ser.vision.image import read_image

        check_regular_file(
            path, error=VideoFormatError
        )  # a missing file is that first, whatever its extension
        if (
            path.suffix.lower() in AUDIO_EXTENSIONS
        ):  # it said "not a readable image", leaving videos unmentioned
            raise VideoFormatError(
                f"{path}: an audio file; this bundle reads faces: images ({', '.join(IMAGE_EXTENSIONS)}) or "
                f"videos ({', '.join(VIDEO_EXTENSIONS)})"
            )
        image = read_image(path, what=f"an image ({', '.join(IMAGE_EXTENSIONS)})")
        return [self.cropper()(image)]

    def file_windows(
        self,
        path: str | os.PathLike[str],
        *,
        window_seconds: float = FILE_WINDOW_SECONDS,
        long_seconds: float = LONG_FILE_SECONDS,
    ) -> Iterator[FileWindow]:
        """An image or a short video as one decision; a long video as `window_seconds` windows of k crops."""
        path = Path(path)
        video = path.suffix.lower() in VIDEO_EXTENSIONS
        if video:
            from edge_ser.inputs.av import _FramePicker
            from edge_ser.vision.video import iter_frames, probe_video

            info = probe_video(path)
        if not video or (info.frame_count and info.frame_count / info.fps <= long_seconds):
            crops = self.file_crops(path)
            end = info.frame_count / info.fps if video else 0.0
            inputs = self.window_inputs(np.zeros(0, np.float32), crops)
            yield FileWindow(0.0, end, inputs, True, face_found=face_found(crops))
            return
        yield from _FramePicker(iter_frames(path), info.fps, self.spec.k, self.cropper()).windows(
            window_seconds, self
        )

    def combine(self, logits: np.ndarray) -> np.ndarray:
        z = np.asarray(logits, dtype=np.float64)
        if z.ndim != 2 or z.shape[0] < 1:
            raise ConfigError(
                f"expected the logits of one or more crops [rows, classes], got {list(z.shape)}"
            )
        p = np.stack([softmax(r) for r in z])
        per = self.spec.rows_per_crop
        if per > 1:  # rows [mirror][view][crop]: each crop's views and mirrors averaged before the vote
            if len(p) % per:
                raise ConfigError(
                    f"face: expected {per} rows per crop (its views and mirrors), got {len(p)} rows"
                )
            p = p.reshape(per, len(p) // per, p.shape[1]).mean(axis=0)
        return vote(p, self.spec.vote)

    def describe(self) -> list[str]:
        c = self.crop
        return [
            f"face: {self.spec.k} crop(s) per decision"
            + (
                f", each also zoomed x{', x'.join(f'{z:g}' for z in self.spec.views)}"
                if self.spec.views
                else ""
            )
            + (" (each with its mirror image)" if self.spec.mirror else "")
            + f" voted by {self.spec.vote}; Haar face crop {c.size}x{c.size} "
            f"grey (detect width {c.detect_width}, scale factor {c.scale_factor:g}, min neighbours {c.min_neighbors}, "
            f"min face {c.min_face:g}, margin {c.margin}, equalise {c.equalize}"
            + (f", then {c.second_cascade} where the first finds none" if c.second_cascade else "")
            + f"), / 255; images ({', '.join(IMAGE_EXTENSIONS)}) give one crop"
        ]


KIND = FaceKind

__all__ = ["IMAGE_EXTENSIONS", "KIND", "FaceInputSpec", "FaceKind", "crop_pixels", "vote"]
