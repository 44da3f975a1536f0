"""Reading one image file: the one `cv2.imread` of the device code (`predict` on images, image folders played as
a video), with the decoder's complaints named and a truncated file refused."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from edge_ser.errors import VideoFormatError
from edge_ser.fileio import check_regular_file
from edge_ser.native_log import native_messages_named
from edge_ser.vision._cv2 import import_cv2


def read_image(path: str | os.PathLike[str], *, grey: bool = False, what: str = "an image") -> np.ndarray:
    """The image at `path` as BGR uint8 [h, w, 3] (grey: [h, w]). VideoFormatError naming the file when it cannot be
    decoded, or is a truncated JPEG: libjpeg then returns the rows it got over grey and says only "Premature end of
    JPEG file" on stderr, without a name, so half a face was classified as a found face. Other decoder notes are
    passed on with the file's name."""
    cv2 = import_cv2(f"reading {what}")
    path = Path(path)
    check_regular_file(path, error=VideoFormatError)
    with native_messages_named(path, show=False) as said:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    cut = [ln for ln in said if "premature end" in ln.lower()]
    if cut:
        raise VideoFormatError(f"{path}: the image is truncated (the decoder says: {cut[0].strip()})")
    if image is not None and _jpeg_cut_short(path):  # off the main thread the decoder's words are not caught
        raise VideoFormatError(f"{path}: the image is truncated (a JPEG without its end marker)")
    for ln in said:
        print(f"{path}: {ln}", file=sys.stderr)
    if image is None:
        raise VideoFormatError(f"{path}: cannot be read as {what} (damaged, or not an image)")
    return image


def _jpeg_cut_short(path: Path) -> bool:
    """Whether `path` is a JPEG (it starts with FF D8) whose last 4 KB hold no end-of-image marker (FF D9): a file
    cut short. Trailing bytes after the marker (some cameras add them) are allowed within those 4 KB."""
    with open(path, "rb") as fh:
        if fh.read(2) != b"\xff\xd8":
            return False
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - 4096))
        return b"\xff\xd9" not in fh.read()


__all__ = ["read_image"]
