"""The face crop of the audio-visual models: one function shared by the live runtime and training.

Pipeline (`FaceCropper.crop`): any accepted frame (BGR uint8 [h, w, 3], BGRA [h, w, 4], grey uint8 [h, w] or
[h, w, 1], or float in [0, 1] of those shapes) -> grey uint8 at full resolution -> a copy downscaled to
`detect_width` (INTER_AREA; never upscaled) -> OpenCV's bundled frontal-face Haar cascade
(`haarcascade_frontalface_default.xml`; when it finds nothing, `second_cascade` if the spec names one), faces
smaller than `min_face` x the detect frame's smaller side ignored -> the LARGEST face (ties: more neighbours)
-> its box mapped back to full resolution -> grown by `margin` x the box size on each side, kept square: if
it would leave the frame it is shifted back inside, and only if it is larger than the frame it is shrunk to
the frame's smaller side (never padded) -> that square cut from the full-resolution grey frame -> resized to
`size` x `size` with INTER_AREA (INTER_LINEAR only if the square is smaller than `size`) -> histogram-equalised
(`equalize`).

Fallback (`FaceCropper.crop_or_center`), used identically in training and on the device: when no face is
found, the largest centred square of the frame (side min(h, w)) goes through the same resize and
equalisation and the result is flagged `found=False` (`box=None`, `crop_box` = that square).

The default `detect_width` (320) keeps detection fast and free of the false positives a full-resolution
search finds on some frames (measured in docs/vision.md).

OpenCV 5 (opencv-python-headless 5.x) has no `cv2.CascadeClassifier` and its wheels ship no cascade files
(Haar cascades moved to opencv-contrib's xobjdetect); `FaceCropper` then raises MissingDependencyError.
It uses `cv2.CascadeClassifier` (OpenCV 4.x) or `cv2.xobjdetect.CascadeClassifier`, and the cascade file
from `cascade_path`, else $EDGE_SER_HAAR_CASCADE, else `cv2.data.haarcascades`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edge_ser.errors import ConfigError, MissingDependencyError
from edge_ser.schema import config_from_dict
from edge_ser.vision._cv2 import import_cv2

CASCADE_FILE = "haarcascade_frontalface_default.xml"
CASCADE_ENV = "EDGE_SER_HAAR_CASCADE"  # overrides the cascade file (OpenCV 5 wheels ship none)


@dataclass(frozen=True)
class FaceCropSpec:
    """How faces are found and cut out; goes into bundle manifests, so training and device agree.

    size: side of the output crop in pixels. detect_width: the grey frame is downscaled to this width before
    detection (0 = detect at full resolution; frames narrower than this are not upscaled). scale_factor,
    min_neighbors: passed to `detectMultiScale`. min_face: smallest face, as a fraction of the detect frame's
    smaller side. margin: fraction of the face box added on each side. equalize: histogram-equalise the crop.
    second_cascade: "" or the file name of a second OpenCV Haar cascade (in the first one's folder, e.g.
    "haarcascade_frontalface_alt2.xml") tried only when the first finds no face: FER-2013 faces in a scene are
    found 79 % of the time by the default cascade, 84 % with alt2 as the second (docs/face.md).
    """

    size: int = 64
    detect_width: int = 320
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_face: float = 0.15
    margin: float = 0.15
    equalize: bool = True
    second_cascade: str = ""

    def __post_init__(self) -> None:
        if not (isinstance(self.size, int) and not isinstance(self.size, bool) and 8 <= self.size <= 1024):
            raise ConfigError(f"FaceCropSpec.size={self.size!r} must be an integer in 8..1024")
        dw = self.detect_width
        if not (isinstance(dw, int) and not isinstance(dw, bool) and (dw == 0 or 48 <= dw <= 8192)):
            raise ConfigError(f"FaceCropSpec.detect_width={dw!r} must be 0 (full resolution) or 48..8192")
        if not 1.01 <= float(self.scale_factor) <= 2.0:
            raise ConfigError(f"FaceCropSpec.scale_factor={self.scale_factor!r} must be in 1.01..2.0")
        mn = self.min_neighbors
        if not (isinstance(mn, int) and not isinstance(mn, bool) and 0 <= mn <= 50):
            raise ConfigError(f"FaceCropSpec.min_neighbors={mn!r} must be an integer in 0..50")
        if not 0.0 <= float(self.min_face) < 1.0:
            raise ConfigError(f"FaceCropSpec.min_face={self.min_face!r} must be in [0, 1)")
        if not 0.0 <= float(self.margin) <= 1.0:
            raise ConfigError(f"FaceCropSpec.margin={self.margin!r} must be in 0..1")
        if not isinstance(self.equalize, bool):
            raise ConfigError(f"FaceCropSpec.equalize={self.equalize!r} must be true or false")
        sc = self.second_cascade
        if not isinstance(sc, str) or (sc and (os.path.basename(sc) != sc or not sc.endswith(".xml"))):
            raise ConfigError(
                f"FaceCropSpec.second_cascade={sc!r} must be empty or a cascade file name (*.xml, no folder)"
            )

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FaceCropSpec:
        """Inverse of to_dict; ConfigError on unknown fields."""
        return config_from_dict(cls, data)


@dataclass(frozen=True)
class FaceCrop:
    """One cut-out face.

    image: uint8 [size, size] grey crop. box: the detected face (x, y, w, h) in full-resolution pixels, None
    for the centre fallback. crop_box: the square (x, y, w, h) actually cut out (face box + margin, kept in
    the frame). neighbors: the cascade's neighbour count for the face (a confidence), None if not found.
    found: False only for the `crop_or_center` fallback.
    """

    image: np.ndarray
    box: tuple[int, int, int, int] | None
    crop_box: tuple[int, int, int, int]
    neighbors: int | None = None
    found: bool = True


def _cv2() -> Any:
    return import_cv2("face detection")


def _cascade_class(cv2: Any) -> Any:
    """cv2.CascadeClassifier (OpenCV 4.x) or cv2.xobjdetect.CascadeClassifier (OpenCV 5 with contrib)."""
    cls = getattr(cv2, "CascadeClassifier", None)
    if cls is None:
        cls = getattr(getattr(cv2, "xobjdetect", None), "CascadeClassifier", None)
    if cls is None:
        raise MissingDependencyError(
            f"opencv-python-headless<5 (OpenCV {getattr(cv2, '__version__', '?')} has no CascadeClassifier: "
            "OpenCV 5 moved Haar cascades to opencv-contrib's xobjdetect)",
            "device",
            "Haar face detection",
        )
    return cls


def _haar_dir(cv2: Any) -> str:
    data = getattr(cv2, "data", None)
    return getattr(data, "haarcascades", "") or ""


def _load_cascade(cv2: Any, path: str) -> Any:
    """A Haar cascade from its XML file; ConfigError naming the file when it is missing or unreadable."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise ConfigError(f"FaceCropper: Haar cascade file {path} is missing or empty")
    try:
        cascade = _cascade_class(cv2)(path)
    except (cv2.error, SystemError) as exc:  # malformed XML surfaces as SystemError in opencv 4.x
        raise ConfigError(f"FaceCropper: Haar cascade file {path} could not be loaded: {exc}") from exc
    if cascade.empty():
        raise ConfigError(f"FaceCropper: Haar cascade file {path} could not be loaded")
    return cascade


def check_frame(frame: Any) -> np.ndarray:
    """The frame as a numpy array of an accepted shape and dtype; ConfigError naming the shape otherwise."""
    if not isinstance(frame, np.ndarray):
        raise ConfigError(f"face crop: expected a numpy image array, got {type(frame).__name__}")
    shape = frame.shape
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and shape[2] not in (1, 3, 4)):
        raise ConfigError(
            f"face crop: frame of shape {shape} must be [h, w] grey, [h, w, 1], [h, w, 3] BGR or [h, w, 4] BGRA"
        )
    if shape[0] < 1 or shape[1] < 1:
        raise ConfigError(f"face crop: frame of shape {shape} is empty")
    if frame.dtype == np.uint8:
        return frame
    if np.issubdtype(frame.dtype, np.floating):
        if not np.isfinite(frame).all():
            raise ConfigError(f"face crop: float frame of shape {shape} has NaN or infinite values")
        lo, hi = float(frame.min()), float(frame.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise ConfigError(
                f"face crop: float frame of shape {shape} must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}]"
            )
        return frame
    raise ConfigError(
        f"face crop: frame of shape {shape} has dtype {frame.dtype}; use uint8 or float in [0, 1]"
    )


def to_grey(frame: np.ndarray) -> np.ndarray:
    """Validate a frame and return it as contiguous grey uint8 [h, w] (float [0, 1] is scaled by 255, rounded)."""
    frame = check_frame(frame)
    if frame.dtype != np.uint8:
        frame = np.clip(np.rint(frame.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        return np.ascontiguousarray(frame)
    cv2 = _cv2()
    code = cv2.COLOR_BGR2GRAY if frame.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
    return cv2.cvtColor(np.ascontiguousarray(frame), code)


def center_box(height: int, width: int) -> tuple[int, int, int, int]:
    """The fallback crop: the largest centred square (x, y, side, side) of a height x width frame."""
    side = min(height, width)
    return ((width - side) // 2, (height - side) // 2, side, side)


def grow_box(
    box: tuple[int, int, int, int], margin: float, height: int, width: int
) -> tuple[int, int, int, int]:
    """Face box + margin on each side, as a square kept inside the frame by shifting (shrunk only if too big)."""
    x, y, w, h = box
    cx, cy = x + w / 2.0, y + h / 2.0
    side = round(max(w, h) * (1.0 + 2.0 * margin))
    side = max(1, min(side, height, width))
    x0 = round(cx - side / 2.0)
    y0 = round(cy - side / 2.0)
    x0 = min(max(x0, 0), width - side)
    y0 = min(max(y0, 0), height - side)
    return (x0, y0, side, side)


class FaceCropper:
    """Finds the largest frontal face in a frame and cuts it out as a `FaceCropSpec.size` square grey crop.

    The Haar cascade is loaded once, here; one cropper is not meant to be shared between threads.
    """

    def __init__(
        self, spec: FaceCropSpec | None = None, cascade_path: str | os.PathLike | None = None
    ) -> None:
        self.spec = spec if spec is not None else FaceCropSpec()
        if not isinstance(self.spec, FaceCropSpec):
            raise ConfigError(f"FaceCropper: spec must be a FaceCropSpec, got {type(self.spec).__name__}")
        cv2 = _cv2()
        self._cv2 = cv2
        _cascade_class(cv2)  # fail early, before looking for the file, when this OpenCV has no Haar cascades
        if cascade_path is None:
            cascade_path = os.environ.get(CASCADE_ENV) or os.path.join(_haar_dir(cv2), CASCADE_FILE)
        self.cascade_path = os.fspath(cascade_path)
        self._cascades = (_load_cascade(cv2, self.cascade_path),)
        if self.spec.second_cascade:
            second = os.path.join(os.path.dirname(self.cascade_path), self.spec.second_cascade)
            self._cascades += (_load_cascade(cv2, second),)

    def run_cascades(
        self, image: np.ndarray, min_side: int, max_side: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`detectMultiScale2` of the first cascade that finds a face in `image` (a second one runs only when
        the first finds none): boxes and neighbour counts in `image`'s pixels, sizes in min_side..max_side."""
        spec, extra = self.spec, {} if max_side is None else {"maxSize": (max_side, max_side)}
        for cascade in self._cascades:
            objects, counts = cascade.detectMultiScale2(
                image,
                scaleFactor=float(spec.scale_factor),
                minNeighbors=int(spec.min_neighbors),
                minSize=(min_side, min_side),
                **extra,
            )
            if len(objects):
                break
        return objects, counts

    def detect(self, frame: np.ndarray) -> list[tuple[tuple[int, int, int, int], int]]:
        """All faces as ((x, y, w, h) in full-resolution pixels, neighbours), largest first."""
        return self.detect_grey(to_grey(frame))

    def detect_grey(self, grey: np.ndarray) -> list[tuple[tuple[int, int, int, int], int]]:
        """`detect` on a grey frame (the face tracker searches a region of one)."""
        cv2, spec = self._cv2, self.spec
        height, width = grey.shape
        small, scale = grey, 1.0
        if spec.detect_width and width > spec.detect_width:
            scale = width / spec.detect_width
            small_h = max(1, round(height / scale))
            small = cv2.resize(grey, (spec.detect_width, small_h), interpolation=cv2.INTER_AREA)
        objects, counts = self.run_cascades(small, int(spec.min_face * min(small.shape)))
        faces = []
        for (x, y, w, h), n in zip(
            np.asarray(objects).reshape(-1, 4), np.asarray(counts).reshape(-1), strict=True
        ):
            x0, y0 = round(x * scale), round(y * scale)
            x1, y1 = min(width, round((x + w) * scale)), min(height, round((y + h) * scale))
            if x1 > x0 and y1 > y0:
                faces.append(((x0, y0, x1 - x0, y1 - y0), int(n)))
        faces.sort(key=lambda f: (f[0][2] * f[0][3], f[1]), reverse=True)
        return faces

    def cut(self, grey: np.ndarray, crop_box: tuple[int, int, int, int]) -> np.ndarray:
        """The crop box of a grey frame resized to `size` (and equalised): the crop itself."""
        cv2, size = self._cv2, self.spec.size
        x, y, w, h = crop_box
        patch = grey[y : y + h, x : x + w]
        # INTER_AREA; linear only when a tiny frame has to be upscaled
        interp = cv2.INTER_AREA if w >= size else cv2.INTER_LINEAR
        out = cv2.resize(np.ascontiguousarray(patch), (size, size), interpolation=interp)
        return cv2.equalizeHist(out) if self.spec.equalize else out

    def crop(self, frame: np.ndarray) -> FaceCrop | None:
        """The largest face as a FaceCrop, or None when no face is found."""
        grey = to_grey(frame)
        faces = self.detect_grey(grey)
        if not faces:
            return None
        box, neighbors = faces[0]
        crop_box = grow_box(box, float(self.spec.margin), *grey.shape)
        return FaceCrop(self.cut(grey, crop_box), box, crop_box, neighbors, True)

    def crop_or_center(self, frame: np.ndarray) -> FaceCrop:
        """The face crop, or the documented fallback: the largest centred square, same resize and equalisation,
        flagged found=False."""
        grey = to_grey(frame)
        faces = self.detect_grey(grey)
        if faces:
            box, neighbors = faces[0]
            crop_box = grow_box(box, float(self.spec.margin), *grey.shape)
            return FaceCrop(self.cut(grey, crop_box), box, crop_box, neighbors, True)
        crop_box = center_box(*grey.shape)
        return FaceCrop(self.cut(grey, crop_box), None, crop_box, None, False)


def crop_pixels_checked(face: Any, size: int, source: str = "face crops") -> np.ndarray:
    """A FaceCrop, or a uint8 [size, size] grey crop, as its uint8 image; ConfigError saying what is expected and
    how to make it otherwise. `source` names where the crops came from ("face crops" given by the caller, or
    "crop_fn" when the caller gave the function)."""
    img = np.asarray(getattr(face, "image", face))
    if img.shape == (size, size) and img.dtype == np.uint8:
        return img
    return_or_are = "must return" if source == "crop_fn" else "must be"
    raise ConfigError(
        f"{source} {return_or_are} uint8 [{size}, {size}] grey images (or FaceCrops), got {img.dtype} "
        f"{list(img.shape)}: make them from video frames with the bundle's own crop, "
        f"edge_ser.vision.face.FaceCropper(kind.face_crop).crop_or_center(frame) (`recognizer.kind.cropper()` "
        "is that function)"
    )
