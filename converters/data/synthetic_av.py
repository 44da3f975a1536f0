"""A small deterministic synthetic audio-visual set: cartoon frontal faces whose expression carries the class.

Faces are drawn with numpy/opencv so they pass through the REAL face crop (`edge_ser.vision.FaceCropper`,
OpenCV's frontal-face Haar cascade): a skin-tone oval head with radial shading and hair on a gradient
background, shaded eye sockets with whites, dark irises/pupils and lash lines, eyebrows, a nose bridge with
side shadows and nostrils, and a mouth. The class sets the mouth (corner curve up or down, open for fear,
surprise and anger), the brows (height and angle) and the eye openness; every clip draws its own identity
(skin, hair, face shape), position, scale, small rotation and lighting from the seed, and each of its frames
moves a little and gets fresh sensor noise while the expression builds up. Audio for the AV set comes from
`converters.data.synthetic` (same labels); it is not duplicated here.

Haar detection rate (`FaceCropper()` defaults, opencv 4.14; seed 1, 10 clips x 3 frames x 7 default classes
per size): 160x120 99.5%, 240x180 99.5%, 320x240 99.0%, 640x480 99.0% (overall 99.3% of 840 frames);
`face_image` over all 9 labels at those sizes: 98.9% (surprise 95%, the lowest). Raised brows, very wide
eyes and a tall open mouth are what the cascade misses, so those are kept moderate. The default set
(7 x 20 clips x 6 frames, 160x120) takes ~3.5 s to draw on one core.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from converters.data.labels import LABELS
from edge_ser.errors import ConfigError
from edge_ser.schema import config_from_dict

GENERATOR_VERSION = 1  # bump whenever the drawing changes

ALL_LABELS: tuple[str, ...] = LABELS  # every label a face can be drawn for: the shared set


@dataclass(frozen=True)
class _Expression:
    """One class's face: class means; each clip varies around them."""

    curve: float  # mouth corner lift, fraction of face half-height (+ smile, - frown)
    open: float  # mouth opening height, fraction of face half-height
    width: float  # mouth half-width, fraction of face half-height
    brow_y: float  # brow raise, fraction of face half-height (+ up)
    brow_tilt: float  # inner-end lift, fraction of face half-height (+ inner up = worried, - = angry V)
    eye_open: float  # eye opening, 1 = normal


_EXPRESSIONS: dict[str, _Expression] = {
    # curve, open, width, brow_y, brow_tilt, eye_open (see _Expression)
    "neutral": _Expression(0.00, 0.00, 0.22, 0.00, 0.00, 1.00),
    "calm": _Expression(0.04, 0.00, 0.20, 0.00, 0.00, 0.70),
    "happy": _Expression(0.16, 0.05, 0.30, 0.03, 0.00, 0.75),  # broad smile, eyes narrowed
    "sad": _Expression(-0.14, 0.00, 0.18, -0.02, 0.12, 0.75),  # corners down, inner brows up
    "angry": _Expression(-0.04, 0.12, 0.28, -0.08, -0.14, 0.90),  # open wide mouth, brows down in a V
    "fear": _Expression(-0.05, 0.14, 0.18, 0.05, 0.10, 1.25),  # open mouth, raised worried brows, wide eyes
    "disgust": _Expression(-0.10, 0.04, 0.20, -0.06, -0.05, 0.55),
    "surprise": _Expression(0.00, 0.14, 0.16, 0.06, 0.00, 1.25),  # round open mouth, high brows
    "boredom": _Expression(-0.02, 0.00, 0.17, -0.04, 0.00, 0.45),  # flat mouth, heavy lids
}


@dataclass(frozen=True)
class SyntheticAVSpec:
    """What to generate: clips per class, frames per clip, frame size (width, height), seed and the classes."""

    n_per_class: int = 20
    frames: int = 6
    frame_size: tuple[int, int] = (160, 120)
    seed: int = 0
    labels: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fear", "disgust", "boredom")

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "frame_size", tuple(self.frame_size))
        if not (isinstance(self.n_per_class, int) and self.n_per_class >= 1):
            raise ConfigError(f"SyntheticAVSpec.n_per_class={self.n_per_class!r} must be an integer >= 1")
        if not (isinstance(self.frames, int) and 1 <= self.frames <= 1000):
            raise ConfigError(f"SyntheticAVSpec.frames={self.frames!r} must be an integer in 1..1000")
        w_h = self.frame_size
        if not (len(w_h) == 2 and all(isinstance(v, int) and 64 <= v <= 4096 for v in w_h)):
            raise ConfigError(f"SyntheticAVSpec.frame_size={w_h!r} must be (width, height), each 64..4096")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise ConfigError(f"SyntheticAVSpec.seed={self.seed!r} must be a non-negative integer")
        unknown = [name for name in self.labels if name not in _EXPRESSIONS]
        if not self.labels or unknown or len(set(self.labels)) != len(self.labels):
            raise ConfigError(
                f"SyntheticAVSpec.labels={self.labels!r} must be distinct names from {ALL_LABELS}"
            )

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        d = asdict(self)
        d["labels"] = list(self.labels)
        d["frame_size"] = list(self.frame_size)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> SyntheticAVSpec:
        """Inverse of to_dict; ConfigError on unknown fields."""
        return config_from_dict(cls, data, labels=tuple, frame_size=tuple)


def _cv2():
    from edge_ser.vision._cv2 import import_cv2

    return import_cv2("drawing synthetic faces")


@dataclass(frozen=True)
class _Clip:
    """One clip's identity, pose and lighting (face coordinates are fractions of the face half-height)."""

    expr: _Expression
    cx: float  # face centre, fraction of frame width / height
    cy: float
    scale: float  # face half-height, fraction of frame height
    angle: float  # degrees
    aspect: float  # head half-width / half-height
    skin: tuple[float, float, float]  # BGR
    hair: tuple[float, float, float]
    bg0: tuple[float, float, float]
    bg1: tuple[float, float, float]
    bg_angle: float
    gain: float
    light: float  # side lighting slope
    noise: float
    eye_dx: float
    eye_y: float


def _sample_clip(label: str, rng: np.random.Generator) -> _Clip:
    base = _EXPRESSIONS[label]

    def jit(v: float, sd: float) -> float:
        return float(v + rng.normal(0, sd))

    expr = _Expression(
        curve=jit(base.curve, 0.02),
        open=max(0.0, jit(base.open, 0.02)),
        width=jit(base.width, 0.02),
        brow_y=jit(base.brow_y, 0.015),
        brow_tilt=jit(base.brow_tilt, 0.015),
        eye_open=max(0.35, jit(base.eye_open, 0.08)),
    )
    tone = rng.uniform(0.55, 1.0)
    skin = (
        float(150 * tone + rng.normal(0, 8)),
        float(180 * tone + rng.normal(0, 8)),
        float(225 * tone + rng.normal(0, 6)),
    )
    hair_v = rng.uniform(15, 90)
    hair = (hair_v * rng.uniform(0.6, 1.0), hair_v * rng.uniform(0.7, 1.0), hair_v * rng.uniform(0.8, 1.2))
    return _Clip(
        expr=expr,
        cx=rng.uniform(0.42, 0.58),
        cy=rng.uniform(0.45, 0.55),
        scale=rng.uniform(0.30, 0.40),
        angle=rng.normal(0, 4.0),
        aspect=rng.uniform(0.72, 0.82),
        skin=skin,
        hair=tuple(float(v) for v in hair),
        bg0=tuple(float(v) for v in rng.uniform(20, 235, 3)),
        bg1=tuple(float(v) for v in rng.uniform(20, 235, 3)),
        bg_angle=rng.uniform(0, 2 * np.pi),
        gain=rng.uniform(0.75, 1.15),
        light=rng.uniform(-0.25, 0.25),
        noise=rng.uniform(1.0, 6.0),
        eye_dx=rng.uniform(0.30, 0.36),
        eye_y=rng.uniform(-0.18, -0.10),
    )


def _render(
    c: _Clip,
    rng: np.random.Generator,
    size: tuple[int, int],
    intensity: float = 1.0,
    shift: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Draw one BGR uint8 frame of a clip; intensity scales the expression (0 = neutral face)."""
    cv2 = _cv2()
    width, height = size
    ss = 2  # supersampling
    W, H = width * ss, height * ss
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    # background: a linear gradient between two colours
    d = (np.cos(c.bg_angle) * (xx / W - 0.5) + np.sin(c.bg_angle) * (yy / H - 0.5)) + 0.5
    img = np.asarray(c.bg0, np.float32) * (1 - d[..., None]) + np.asarray(c.bg1, np.float32) * d[..., None]
    s = c.scale * H  # face half-height in supersampled pixels
    cx, cy = (c.cx + shift[0]) * W, (c.cy + shift[1]) * H
    e = c.expr
    neutral = _EXPRESSIONS["neutral"]

    def mix(a: float, b: float) -> float:
        return float(b + (a - b) * intensity)

    curve, mouth_open = mix(e.curve, neutral.curve), mix(e.open, 0.0)
    mouth_w, brow_y = mix(e.width, neutral.width), mix(e.brow_y, 0.0)
    brow_tilt, eye_open = mix(e.brow_tilt, 0.0), mix(e.eye_open, 1.0)

    def P(x: float, y: float) -> tuple[int, int]:  # face coords -> pixel (x right, y down)
        return round(cx + x * s), round(cy + y * s)

    def L(v: float) -> int:
        return max(1, round(v * s))

    skin = np.asarray(c.skin, np.float32)
    # hair behind the head
    cv2.ellipse(img, P(0, -0.12), (L(c.aspect * 1.12), L(1.02)), 0, 180, 360, c.hair, -1, cv2.LINE_AA)
    # head with radial shading (bright centre, darker rim)
    mask = np.zeros((H, W), np.float32)
    cv2.ellipse(mask, P(0, 0), (L(c.aspect), L(1.0)), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    r2 = ((xx - cx) / (c.aspect * s)) ** 2 + ((yy - cy - 0.05 * s) / s) ** 2
    shade = np.clip(1.08 - 0.35 * r2, 0.55, 1.1)[..., None]
    img = img * (1 - mask[..., None]) + (skin * shade) * mask[..., None]
    # hair fringe over the forehead
    cv2.ellipse(img, P(0, -0.62), (L(c.aspect * 0.98), L(0.42)), 0, 180, 360, c.hair, -1, cv2.LINE_AA)
    dark = tuple(float(v) for v in skin * 0.55)
    shadow = tuple(float(v) for v in skin * 0.72)
    socket = tuple(float(v) for v in skin * 0.6)
    sclera = tuple(float(v) for v in np.minimum(skin * 0.45 + 95.0, 200.0))  # whites stay darker than cheeks
    for side in (-1, 1):
        ex, ey = side * c.eye_dx, c.eye_y
        # eye socket shadow
        cv2.ellipse(
            img, P(ex, ey - 0.02), (L(0.17), L(0.06 + 0.05 * eye_open)), 0, 0, 360, socket, -1, cv2.LINE_AA
        )
        # eye white, iris, pupil
        eh = 0.065 * eye_open
        cv2.ellipse(img, P(ex, ey), (L(0.12), L(eh)), 0, 0, 360, sclera, -1, cv2.LINE_AA)
        ir = min(0.06, eh * 0.95)
        cv2.ellipse(img, P(ex, ey), (L(0.06), L(ir)), 0, 0, 360, (40, 45, 60), -1, cv2.LINE_AA)
        cv2.ellipse(img, P(ex, ey), (L(0.025), L(min(0.025, ir))), 0, 0, 360, (5, 5, 5), -1, cv2.LINE_AA)
        # upper lid / lash line
        cv2.ellipse(img, P(ex, ey), (L(0.125), L(eh)), 0, 180, 360, (20, 20, 25), L(0.025), cv2.LINE_AA)
        # eyebrow: inner end at x=0.12, outer end at x=0.48
        by = ey - 0.17 - brow_y
        # the tilt mostly drops the outer end (raising the inner end into the forehead hides it from Haar)
        inner, outer = P(side * 0.13, by - 0.4 * brow_tilt), P(side * 0.50, by + 0.02 + 0.6 * brow_tilt)
        mid = P(side * 0.31, by - 0.04 + 0.1 * brow_tilt)
        pts = np.array([inner, mid, outer], np.int32)
        cv2.polylines(img, [pts], False, c.hair, L(0.06), cv2.LINE_AA)
    # nose: side shadows, bright bridge, nostrils
    for side in (-1, 1):
        cv2.line(img, P(side * 0.07, c.eye_y + 0.05), P(side * 0.09, 0.22), shadow, L(0.04), cv2.LINE_AA)
        cv2.ellipse(img, P(side * 0.06, 0.26), (L(0.035), L(0.02)), 0, 0, 360, dark, -1, cv2.LINE_AA)
    cv2.line(
        img,
        P(0, c.eye_y + 0.02),
        P(0, 0.2),
        tuple(float(v) for v in np.minimum(skin * 1.15, 255)),
        L(0.05),
        cv2.LINE_AA,
    )
    # mouth: corners lifted by `curve`, opened by `open`
    my = 0.50
    xs = np.linspace(-mouth_w, mouth_w, 21)
    lift = curve * (xs / mouth_w) ** 2
    upper = np.stack([xs, my - lift - mouth_open * 0.5 * (1 - (xs / mouth_w) ** 2)], 1)
    lower = np.stack([xs, my - lift + mouth_open * (1 - (xs / mouth_w) ** 2)], 1)
    lip = (70.0, 70.0, 150.0)
    if mouth_open > 0.015:
        poly = np.concatenate([upper, lower[::-1]])
        pix = np.array([P(x, y) for x, y in poly], np.int32)
        cv2.fillPoly(img, [pix], (25, 20, 45), cv2.LINE_AA)
        cv2.polylines(img, [pix], True, lip, L(0.03), cv2.LINE_AA)
    else:
        pix = np.array([P(x, y) for x, y in upper], np.int32)
        cv2.polylines(img, [pix], False, lip, L(0.045), cv2.LINE_AA)
    # rotate about the face centre, light, downsample, noise
    rot = cv2.getRotationMatrix2D((cx, cy), c.angle, 1.0)
    img = cv2.warpAffine(img, rot, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    img = img * (c.gain * (1 + c.light * (xx / W - 0.5) * 2))[..., None]
    img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    img = img + rng.normal(0, c.noise, img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def face_image(label: str, rng: np.random.Generator, size: tuple[int, int] = (160, 120)) -> np.ndarray:
    """One random face of a class as BGR uint8 [height, width, 3]; size is (width, height)."""
    if label not in _EXPRESSIONS:
        raise ConfigError(f"face_image: unknown label {label!r}; expected one of {ALL_LABELS}")
    return _render(_sample_clip(label, rng), rng, tuple(size))


def generate_faces(spec: SyntheticAVSpec | None = None) -> list[tuple[np.ndarray, str]]:
    """(frames [frames, H, W, 3] uint8 BGR, label) for every clip, in class order then clip index.

    Clip (label, i) draws from rng([seed, ALL_LABELS.index(label), i]), so it does not depend on which other
    labels or how many clips are generated."""
    spec = spec if spec is not None else SyntheticAVSpec()
    out = []
    for label in spec.labels:
        for i in range(spec.n_per_class):
            rng = np.random.default_rng([spec.seed, ALL_LABELS.index(label), i, 7919])
            clip = _sample_clip(label, rng)
            drift = rng.normal(0, 0.01, 2)
            frames = []
            for t in range(spec.frames):
                k = t / max(1, spec.frames - 1)
                intensity = 0.7 + 0.3 * k
                shift = (
                    float(drift[0] * t + rng.normal(0, 0.004)),
                    float(drift[1] * t + rng.normal(0, 0.004)),
                )
                frames.append(_render(clip, rng, spec.frame_size, intensity, shift))
            out.append((np.stack(frames), label))
    return out
