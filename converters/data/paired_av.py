"""A paired audio-visual set from real signals: RAVDESS speech clips, each shown with a FER-2013 face.

No audio-visual emotion corpus is available here, so each RAVDESS speech clip is paired, deterministically
and by class, with one FER-2013 face image of the same emotion, shown as the clip's frames with small
jitter (shift, scale, brightness) as a real face moves between video frames. THE PAIRS ARE SYNTHETIC: every
report made from this set must say so.

Disjointness: the pairing takes a speaker split of the RAVDESS clips; test clips draw faces only from
FER-2013's validation folder (PublicTest), train and validation clips from disjoint halves of its train folder,
so no face image appears on two sides of a split (and no actor, because the split is by speaker). With
`val_faces="publictest"` validation clips draw instead from one seeded half of PublicTest and test clips from
the other: for a face model trained on all of FER-2013 train, whose validation faces must be unseen too. RAVDESS "calm"
has no FER class: it is dropped (default) or merged into neutral.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converters.data.records import Record
from converters.data.splits import Split
from edge_ser.errors import ConfigError, DatasetError

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class PairedAVSpec:
    """How clips and faces are paired and how the frames are jittered."""

    frames: int = 6
    seed: int = 0
    calm: str = "drop"
    """RAVDESS 'calm' has no FER class: "drop" the clips or merge them into "neutral"."""
    shift: float = 0.04
    """Largest frame-to-frame shift, as a fraction of the image side."""
    scale: float = 0.05
    """Largest zoom in or out, as a fraction."""
    brightness: float = 0.08
    """Largest brightness change, as a fraction of full scale."""
    val_faces: str = "fer-train"
    """Where validation faces come from: "fer-train" (a half of FER train; test = all of PublicTest) or
    "publictest" (a seeded half of PublicTest; test = the other half), for face models trained on FER train."""

    def __post_init__(self) -> None:
        if self.calm not in ("drop", "neutral"):
            raise ConfigError(f"PairedAVSpec.calm must be 'drop' or 'neutral', got {self.calm!r}")
        if not 1 <= self.frames <= 64:
            raise ConfigError(f"PairedAVSpec.frames must be in 1..64, got {self.frames}")
        if self.val_faces not in ("fer-train", "publictest"):
            raise ConfigError(
                f"PairedAVSpec.val_faces must be 'fer-train' or 'publictest', got {self.val_faces!r}"
            )


@dataclass(frozen=True)
class AVPair:
    """One paired clip: the speech file, the face image shown, the label, the actor and the split part."""

    audio: Path
    image: Path
    label: str
    speaker: str
    part: str


def _stable_int(*parts: object) -> int:
    """A seed from text, stable across runs and machines (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "little")


def _pools(
    fer_train: list[Record], fer_val: list[Record], seed: int, val_faces: str = "fer-train"
) -> dict[str, dict[str, list[Path]]]:
    """Face pools per split part and class: train from a half of FER train; val from its other half and test
    from FER val, or (`val_faces="publictest"`) val and test from disjoint seeded halves of FER val."""
    pools: dict[str, dict[str, list[Path]]] = {p: defaultdict(list) for p in PARTS}
    for r in sorted(fer_train, key=lambda r: str(r.source)):
        part = "train" if _stable_int(seed, "fer-half", r.source.name) % 2 == 0 else "val"
        if part == "train" or val_faces == "fer-train":
            pools[part][r.label].append(r.source)
    for r in sorted(fer_val, key=lambda r: str(r.source)):
        half = _stable_int(seed, "publictest-half", r.source.name) % 2
        part = "test" if val_faces == "fer-train" or half == 0 else "val"
        pools[part][r.label].append(r.source)
    return pools


def pair_ravdess_fer(
    speech: list[Record],
    split: Split,
    fer_train: list[Record],
    fer_val: list[Record],
    spec: PairedAVSpec = PairedAVSpec(),
) -> list[AVPair]:
    """Pair every speech clip of `split` (indices into `speech`) with a same-class face from its part's pool."""
    pools = _pools(fer_train, fer_val, spec.seed, spec.val_faces)
    part_of = {int(i): p for p in PARTS for i in getattr(split, p)}
    pairs = []
    for i, r in enumerate(speech):
        if i not in part_of:
            continue
        label = r.label
        if label == "calm":
            if spec.calm == "drop":
                continue
            label = "neutral"
        part = part_of[i]
        pool = pools[part].get(label)
        if not pool:
            raise DatasetError(f"paired AV set: no FER-2013 face of class {label!r} for the {part} part")
        image = pool[_stable_int(spec.seed, "pick", r.source.name) % len(pool)]
        pairs.append(AVPair(r.source, image, label, r.speaker, part))
    return pairs


def jittered_frames(image: np.ndarray, n: int, rng: np.random.Generator, spec: PairedAVSpec) -> np.ndarray:
    """`n` frames [n, h, w] uint8 of one grey face, each shifted, zoomed and brightened a little (cv2 affine)."""
    import cv2

    img = np.asarray(image)
    if img.ndim != 2 or img.dtype != np.uint8:
        raise ConfigError(f"jittered_frames needs a grey uint8 image [h, w], got {img.dtype} {img.shape}")
    h, w = img.shape
    out = np.empty((n, h, w), np.uint8)
    for k in range(n):
        s = 1.0 + rng.uniform(-spec.scale, spec.scale)
        dx, dy = rng.uniform(-spec.shift, spec.shift, 2) * (w, h)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, s)
        m[:, 2] += (dx, dy)
        frame = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        gain = 255.0 * rng.uniform(-spec.brightness, spec.brightness)
        out[k] = np.clip(frame.astype(np.float32) + gain, 0, 255).astype(np.uint8)
    return out


def pair_frames(pair: AVPair, spec: PairedAVSpec = PairedAVSpec()) -> np.ndarray:
    """The jittered frames [frames, h, w] uint8 of a pair; deterministic for (seed, clip)."""
    import cv2

    image = cv2.imread(str(pair.image), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise DatasetError(f"{pair.image}: cannot be read as an image")
    rng = np.random.default_rng(_stable_int(spec.seed, "jitter", pair.audio.name))
    return jittered_frames(image, spec.frames, rng, spec)
