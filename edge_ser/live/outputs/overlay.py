"""OpenCV overlay: face box, label + confidence and per-class bars drawn onto the camera frame.

Two layers. `draw_overlay(frame, result)` is pure drawing on a BGR uint8 array: it needs no display and is
what the tests check pixel by pixel. `OverlayWindow` shows the drawing with `cv2.imshow`, but only when a
display exists: a $DISPLAY or $WAYLAND_DISPLAY on Linux *and* an OpenCV built with a GUI backend. The
device's opencv-python-headless has none; the window then says so once and every `emit` is a no-op, so the
same command line works on a headless Pi, over SSH and on a desktop.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from edge_ser.errors import ConfigError
from edge_ser.live.outputs._palette import LABEL_COLORS, label_color
from edge_ser.live.outputs.base import OutputError
from edge_ser.live.result import LiveResult
from edge_ser.vision._cv2 import import_cv2

BLANK_SIZE = (640, 480)
"""(width, height) of the dark canvas drawn on when there is no camera frame (audio-only)."""


@dataclass(frozen=True)
class OverlayLayout:
    """Where `draw_overlay` puts things on a frame of a given size, in frame pixels (x, y, w, h).

    box: the face box scaled to this frame (None without a face). panel: the bars' background. bars: one
    track per class, in label order; a bar fills the left `prob * w` pixels of its track. scale: the font
    and line scale (1.0 at 480 px height).
    """

    box: tuple[int, int, int, int] | None
    panel: tuple[int, int, int, int]
    bars: tuple[tuple[int, int, int, int], ...]
    scale: float


def overlay_layout(width: int, height: int, result: LiveResult) -> OverlayLayout:
    """The layout of `result` on a `width` x `height` frame (see OverlayLayout)."""
    s = max(height / 480.0, 0.35)
    box = None
    if result.face_box is not None:
        x, y, w, h = result.face_box
        fw, fh = result.frame_size if result.frame_size is not None else (width, height)
        sx, sy = width / max(fw, 1), height / max(fh, 1)  # the drawing frame may be a resized preview
        box = (round(x * sx), round(y * sy), round(w * sx), round(h * sy))
    n = len(result.labels)
    row = max(int(20 * s), 10)
    pad = max(int(6 * s), 3)
    name_w = int(90 * s)
    panel_w = min(max(int(260 * s), 120), width)
    panel_h = min(n * row + 2 * pad, height)
    px, py = 0, height - panel_h
    bar_x = px + pad + name_w
    bar_w = max(panel_w - name_w - 2 * pad, 10)
    bars = tuple((bar_x, py + pad + i * row + row // 6, bar_w, max(row - row // 3, 4)) for i in range(n))
    return OverlayLayout(box=box, panel=(px, py, panel_w, panel_h), bars=bars, scale=s)


def _check_frame(frame: Any) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        what = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ConfigError(f"overlay frame must be a BGR uint8 array of shape (height, width, 3), got {what}")
    return frame


def blank_frame(size: tuple[int, int] | None = None) -> np.ndarray:
    """A dark BGR canvas of `size` = (width, height) (default BLANK_SIZE) for when there is no camera."""
    w, h = size or BLANK_SIZE
    return np.full((h, w, 3), 24, np.uint8)


def draw_overlay(frame: np.ndarray, result: LiveResult) -> np.ndarray:
    """Draw `result` onto `frame` in place and return it.

    frame: np.ndarray [shape=(height, width, 3), dtype=uint8], BGR (a camera frame or `blank_frame()`).
    Draws the face box in the label's colour with "label 0.81" above it, a header line (label, confidence,
    mode, speech/silence) at the top left, and a translucent panel of per-class bars (smoothed
    probabilities) at the bottom left, the reported label's bar in its colour, the others grey.
    """
    cv2 = import_cv2("drawing the live overlay")
    img = _check_frame(frame)
    h, w = img.shape[:2]
    lay = overlay_layout(w, h, result)
    s = lay.scale
    font = cv2.FONT_HERSHEY_SIMPLEX
    thick = max(round(2 * s), 1)
    color = label_color(result.label)
    text = (
        result.label if not result.probs else f"{result.label} {result.confidence:.2f}"
    )  # silence, no result

    if lay.box is not None:
        x, y, bw, bh = lay.box
        cv2.rectangle(img, (x, y), (x + bw, y + bh), color, thick + 1)
        (tw, th), base = cv2.getTextSize(text, font, 0.7 * s, thick)
        ty = y - 6 if y - th - base - 6 >= 0 else y + bh + th + 6
        cv2.rectangle(img, (x, ty - th - base), (x + tw + 4, ty + base // 2), color, -1)
        cv2.putText(img, text, (x + 2, ty - base // 2), font, 0.7 * s, (0, 0, 0), thick, cv2.LINE_AA)

    mode = result.mode + (f" ({result.fallback})" if result.fallback else "")
    header = f"{text} | {mode}" + (f" | {'speech' if result.speech else 'silence'}" if result.hears else "")
    org = (int(8 * s), int(28 * s))
    cv2.putText(
        img, header, org, font, 0.75 * s, (0, 0, 0), thick + 2, cv2.LINE_AA
    )  # outline: readable on any frame
    cv2.putText(img, header, org, font, 0.75 * s, color, thick, cv2.LINE_AA)

    if lay.bars:
        px, py, pw, ph = lay.panel
        roi = img[py : py + ph, px : px + pw]
        roi[:] = (roi.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken to 40 %: bars stay readable
        small = 0.45 * s
        for i, (name, (bx, by, bw, bh)) in enumerate(zip(result.labels, lay.bars, strict=True)):
            p = result.smoothed[i] if i < len(result.smoothed) else 0.0
            p = min(max(float(p), 0.0), 1.0) if np.isfinite(p) else 0.0
            on = name == result.label
            cv2.rectangle(img, (bx, by), (bx + bw - 1, by + bh - 1), (70, 70, 70), 1)
            fill = round(p * bw)
            if fill > 0:
                cv2.rectangle(
                    img,
                    (bx, by),
                    (bx + fill - 1, by + bh - 1),
                    label_color(name) if on else (200, 200, 200),
                    -1,
                )
            cv2.putText(
                img,
                name[:10],
                (px + int(6 * s), by + bh - 1),
                font,
                small,
                (255, 255, 255) if on else (200, 200, 200),
                1,
                cv2.LINE_AA,
            )
    return img


def display_status(environ: dict[str, str] | None = None) -> tuple[bool, str]:
    """Whether `cv2.imshow` can open a window here, and why not: (True, "") or (False, reason).

    Checks, without opening anything: cv2 importable; OpenCV built with a GUI backend (its build information
    says "GUI: NONE" for opencv-python-headless); on Linux and other X11/Wayland systems, $DISPLAY or
    $WAYLAND_DISPLAY set (GTK would otherwise print an error and may end the process).
    """
    env = os.environ if environ is None else environ
    try:
        cv2 = import_cv2("the overlay window")
    except ImportError as e:
        return False, str(e)
    m = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    if m is not None and m.group(1).upper() == "NONE":
        return False, (
            "this OpenCV has no GUI support (opencv-python-headless); "
            "install opencv-python instead for a window"
        )
    if sys.platform not in ("win32", "darwin") and not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        return False, "no display ($DISPLAY and $WAYLAND_DISPLAY are unset)"
    return True, ""


class OverlayWindow:
    """An `Output` that shows each result drawn over the latest camera frame in an OpenCV window.

    The pipeline hands frames over with `update_frame(frame)` (any thread; the latest one wins); `emit`
    draws on a copy of it, or on a dark canvas of the result's frame size without one. Pressing q or Esc,
    or closing the window, sets `quit_requested` for the main loop to read. Without a display the window is
    off: `available` is False, `reason` says why, one notice goes to `notice_stream`, and `emit` only checks
    that the output is open. Call `emit` from the main thread: some GUI backends (Cocoa, Qt) require it.
    """

    def __init__(
        self, title: str = "edge-ser", *, enabled: bool | None = None, notice_stream: TextIO | None = None
    ) -> None:
        self.title = title
        self._notice_stream = notice_stream if notice_stream is not None else sys.stderr
        self._lock = threading.Lock()
        self._frame: np.ndarray | None = None
        self._opened = False
        self._closed = False
        self.quit_requested = False
        self.last_image: np.ndarray | None = None
        """The last composed image (drawn even when no window shows it), for snapshots and tests."""
        if enabled is False:
            self.available, self.reason = False, "disabled"
        else:
            self.available, self.reason = display_status()
            if not self.available:
                self._notice(self.reason)

    def _notice(self, reason: str) -> None:
        try:
            print(f"edge-ser: overlay window off: {reason}", file=self._notice_stream, flush=True)
        except (OSError, ValueError):
            pass

    def update_frame(self, frame: np.ndarray) -> None:
        """Keep `frame` (BGR uint8, not copied: do not modify it afterwards) as the next background."""
        _check_frame(frame)
        with self._lock:
            self._frame = frame

    def render(self, result: LiveResult) -> np.ndarray:
        """The image `emit` shows for `result`: a copy of the latest frame (or a blank canvas) drawn on."""
        with self._lock:
            base = self._frame
        img = base.copy() if base is not None else blank_frame(result.frame_size)
        return draw_overlay(img, result)

    def emit(self, result: LiveResult) -> None:
        if self._closed:
            raise OutputError("overlay window is closed")
        if not self.available:
            return
        img = self.render(result)
        self.last_image = img
        cv2 = import_cv2("the overlay window")
        try:
            cv2.imshow(self.title, img)
            self._opened = True
            key = cv2.waitKey(1) & 0xFF  # also lets the GUI backend repaint
            if key in (ord("q"), 27):
                self.quit_requested = True
            elif cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                self.quit_requested = True  # the user closed the window
        except cv2.error as e:  # a backend that fails at run time: say so once, keep the pipeline going
            self.available, self.reason = False, f"cv2.imshow failed: {str(e).strip().splitlines()[-1]}"
            self._notice(self.reason)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._opened:
            cv2 = import_cv2("the overlay window")
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass  # the window is already gone


__all__ = [
    "BLANK_SIZE",
    "LABEL_COLORS",
    "OverlayLayout",
    "OverlayWindow",
    "blank_frame",
    "display_status",
    "draw_overlay",
    "label_color",
    "overlay_layout",
]
