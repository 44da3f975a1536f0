"""Label colours shared by the overlay (BGR for OpenCV) and the web page (CSS hex), so both agree."""

from __future__ import annotations

import zlib

from edge_ser.live.result import NO_AUDIO, NO_FACE, SILENCE

BGR = tuple[int, int, int]

LABEL_COLORS: dict[str, BGR] = {
    "angry": (40, 40, 230),
    "anger": (40, 40, 230),
    "happy": (0, 215, 255),
    "happiness": (0, 215, 255),
    "joy": (0, 215, 255),
    "sad": (200, 120, 20),
    "sadness": (200, 120, 20),
    "neutral": (190, 190, 190),
    "calm": (170, 170, 0),
    "fear": (180, 40, 160),
    "fearful": (180, 40, 160),
    "disgust": (40, 160, 40),
    "surprise": (0, 140, 255),
    "surprised": (0, 140, 255),
    "boredom": (140, 110, 90),
    SILENCE: (110, 110, 110),
    NO_FACE: (110, 110, 110),
    NO_AUDIO: (60, 60, 200),
}
"""BGR colour per common emotion label (EMODB, RAVDESS, CREMA-D names); others get a stable hashed colour."""


def label_color(label: str) -> BGR:
    """The BGR colour of `label` (case-insensitive): from LABEL_COLORS, else derived from crc32(label), so
    it is the same in every run and on every device (the web page's script computes the same)."""
    key = label.lower()
    if key in LABEL_COLORS:
        return LABEL_COLORS[key]
    h = zlib.crc32(label.encode("utf-8"))
    return (80 + (h & 0x7F), 80 + ((h >> 8) & 0x7F), 80 + ((h >> 16) & 0x7F))


def css_color(label: str) -> str:
    """`label_color(label)` as a CSS "#rrggbb" string."""
    b, g, r = label_color(label)
    return f"#{r:02x}{g:02x}{b:02x}"
