"""Cheap face crops for the live loop: a full Haar detection every k-th frame, a small-region one in between.

Haar detection is the known bottleneck on a Pi 4 (hundreds of ms on a full-resolution frame). Three things
keep it cheap here, each on top of `FaceCropper` (the crop training used, so crops stay identical):
- detection runs on a downscaled grey frame (`FaceCropSpec.detect_width`, 320 px by default);
- between full detections (every `every`-th frame), the cascade runs only on a region around the last face
  (`search` x its size), which is a fraction of the frame;
- when that fails too, the last face box is held for up to `hold` frames, and no longer than `hold_seconds`
  of stream time when the caller gives frame times (a blink, a turned head), while what it shows still looks
  like the face last found there (`HOLD_MIN_CORRELATION`), then the tracker reports no face
  and the pipeline falls back. The time limit matters at low crop rates: av_fusion crops one frame a second, so
  3 held frames would feed the face model an empty box for 3 s after the face left; now at most 1 s.
The crop itself is `FaceCropper`'s: the same margin, resize and equalisation as in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_ser.errors import ConfigError
from edge_ser.vision.face import FaceCrop, FaceCropper, FaceCropSpec, center_box, grow_box, to_grey

HOLD_MIN_CORRELATION = 0.4
"""How alike (normalised correlation of the grey crops) a held box must stay to the face last found in it."""


@dataclass(frozen=True)
class TrackSpec:
    """How often to run the full detector, how far around the last face to look, how long to hold it."""

    every: int = 5
    search: float = 2.0
    hold: int = 3
    hold_seconds: float = 1.0
    """The longest a lost face is held when `track` is given frame times: one missed detection at the bundles'
    crop rates (av_cnn every 0.5 s, face_fer and av_fusion every 1 s), not seconds of a face that left."""

    def __post_init__(self) -> None:
        if not (isinstance(self.every, int) and self.every >= 1):
            raise ConfigError(f"TrackSpec.every={self.every!r} must be an integer >= 1")
        if not 1.0 <= float(self.search) <= 8.0:
            raise ConfigError(f"TrackSpec.search={self.search!r} must be in 1..8")
        if not (isinstance(self.hold, int) and self.hold >= 0):
            raise ConfigError(f"TrackSpec.hold={self.hold!r} must be an integer >= 0")
        if not 0.0 <= float(self.hold_seconds) <= 10.0:
            raise ConfigError(f"TrackSpec.hold_seconds={self.hold_seconds!r} must be in 0..10")


@dataclass
class TrackStats:
    """How each frame's face was obtained, for reports."""

    full: int = 0
    region: int = 0
    held: int = 0
    lost: int = 0


class FaceTracker:
    """`track(frame) -> FaceCrop` (found=False with the centred crop when there is no face)."""

    def __init__(self, spec: FaceCropSpec | None = None, track: TrackSpec | None = None) -> None:
        self.cropper = FaceCropper(spec)
        self.track_spec = track or TrackSpec()
        self.stats = TrackStats()
        self._box: tuple[int, int, int, int] | None = None
        self._since_full = 0
        self._missed = 0
        self._seen_at: float | None = None
        self._last: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the last face (e.g. after the camera reconnects)."""
        self._box, self._since_full, self._missed, self._seen_at = None, 0, 0, None
        self._last: np.ndarray | None = None

    def _may_hold(self, t: float | None) -> bool:
        """Whether the last box may stand for a face not found now: `hold` frames, and with frame times no longer
        than `hold_seconds` after it was last seen."""
        if self._box is None or self._missed >= self.track_spec.hold:
            return False
        return t is None or self._seen_at is None or t - self._seen_at <= self.track_spec.hold_seconds

    def track(self, frame: np.ndarray, t: float | None = None) -> FaceCrop:
        """The face crop of `frame` (`t`: its stream time in seconds, when known, for the hold limit)."""
        grey = to_grey(frame)
        spec = self.track_spec
        box = None
        if self._box is None or self._since_full >= spec.every - 1:
            self._since_full = 0
            self.stats.full += 1
            box = self._largest(grey, (0, 0, grey.shape[1], grey.shape[0]))
        else:
            self._since_full += 1
            self.stats.region += 1
            box = self._largest(grey, self._region(grey.shape))
            if box is None:  # moved beyond the region (120 px between crops a second apart): look everywhere
                self._since_full = 0
                self.stats.full += 1
                box = self._largest(grey, (0, 0, grey.shape[1], grey.shape[0]))
        if box is not None:
            self._box, self._missed, self._seen_at = box, 0, t
        elif self._may_hold(t) and self._still_there(grey):
            self._missed += 1
            self.stats.held += 1
            box = self._box
        else:
            self.reset()
            self.stats.lost += 1
            crop_box = center_box(*grey.shape)
            return FaceCrop(self.cropper.cut(grey, crop_box), None, crop_box, None, False)
        crop_box = grow_box(box, float(self.cropper.spec.margin), *grey.shape)
        image = self.cropper.cut(grey, crop_box)
        if self._missed == 0:
            self._last = image  # the face as last found, which a held box must still look like
        return FaceCrop(image, box, crop_box, None, True)

    def _still_there(self, grey: np.ndarray) -> bool:
        """Whether the last box still shows the face last found there (normalised correlation of the two crops of
        at least HOLD_MIN_CORRELATION): a blink or a turned head keeps it, an empty scene does not (docs/vision.md,
        "Holding a face the cascade misses"), an empty scene does not. A held box was
        taken as a face whatever it showed, so for up to a second after a face left, the background was classified
        as one."""
        if self._last is None:
            return False
        box = grow_box(self._box, float(self.cropper.spec.margin), *grey.shape)
        a = self.cropper.cut(grey, box).astype(np.float64).ravel()
        b = self._last.astype(np.float64).ravel()
        a, b = a - a.mean(), b - b.mean()
        norm = float(np.sqrt((a @ a) * (b @ b)))
        return norm > 0 and float(a @ b) / norm >= HOLD_MIN_CORRELATION

    __call__ = track

    def _region(self, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """(x, y, w, h): the last face box grown to `search` times its size, clipped to the frame."""
        x, y, w, h = self._box
        s = float(self.track_spec.search)
        cx, cy = x + w / 2, y + h / 2
        x0, y0 = max(0, int(cx - s * w / 2)), max(0, int(cy - s * h / 2))
        x1, y1 = min(shape[1], int(cx + s * w / 2)), min(shape[0], int(cy + s * h / 2))
        return x0, y0, x1 - x0, y1 - y0

    def _largest(
        self, grey: np.ndarray, region: tuple[int, int, int, int]
    ) -> tuple[int, int, int, int] | None:
        """The largest face inside `region` (x, y, w, h) in frame pixels, or None."""
        x0, y0, w, h = region
        if w < 24 or h < 24:
            return None
        roi = np.ascontiguousarray(grey[y0 : y0 + h, x0 : x0 + w])
        if self._box is None or (w, h) == (grey.shape[1], grey.shape[0]):
            faces = self.cropper.detect_grey(roi)  # the full detection, exactly as FaceCropper does it
        else:
            faces = self._detect_scaled(roi, self._box[2])
        if not faces:
            return None
        (x, y, fw, fh), _ = faces[0]
        return x + x0, y + y0, fw, fh

    def _detect_scaled(self, roi: np.ndarray, face_w: int) -> list:
        """Detect in a region scaled so the last face is about TARGET_FACE pixels wide: the cascade then
        scans a ~(search * TARGET_FACE)-pixel image whatever the face's size in the frame."""
        cv2 = self.cropper._cv2
        scale = max(1.0, face_w / TARGET_FACE)
        small = roi
        if scale > 1.0:
            size = (max(24, round(roi.shape[1] / scale)), max(24, round(roi.shape[0] / scale)))
            small = cv2.resize(roi, size, interpolation=cv2.INTER_AREA)
        side = max(24, int(0.6 * face_w / scale))  # faces from 0.6x to 1.6x the last one
        big = max(side + 1, int(1.6 * face_w / scale))
        objects, counts = self.cropper.run_cascades(small, side, big)
        faces = []
        for (x, y, w, h), n in zip(
            np.asarray(objects).reshape(-1, 4), np.asarray(counts).reshape(-1), strict=True
        ):
            faces.append(((round(x * scale), round(y * scale), round(w * scale), round(h * scale)), int(n)))
        faces.sort(key=lambda f: (f[0][2] * f[0][3], f[1]), reverse=True)
        return faces


TARGET_FACE = 48
"""Face width (pixels) the region search scales to: twice the cascade's 24-pixel window."""
