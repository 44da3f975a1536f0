"""Reading one image file: the one `cv2.imread` of the device code (`predict` on images, image folders played as
a video), with the decoder's complaints named, a truncated file refused, and an image too large to decode on the
device (an "image bomb": a few hundred KB of PNG that decodes to gigabytes) refused from its header before any
pixel is decoded (`image_size`, `edge_ser.limits.MAX_IMAGE_PIXELS`)."""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import numpy as np

from edge_ser.errors import VideoFormatError
from edge_ser.fileio import check_regular_file
from edge_ser.limits import MAX_IMAGE_PIXELS
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
    if check_image_size(path) is None:
        # OpenCV picks its decoder by content: a Sun raster, BigTIFF or JPEG 2000 named .png was decoded to 52
        # megapixels past the size check; a file whose size cannot be read first is not decoded
        head = _head(path)
        if not head:
            raise VideoFormatError(f"{path}: empty file (0 bytes)")
        kind = _signature(head)
        if kind:
            # a JPEG with no frame header was called "not a ... JPEG ... image" while it starts as one
            raise VideoFormatError(
                f"{path}: starts as a {kind} image but its header gives no size (damaged or cut short); "
                "not decoded"
            )
        raise VideoFormatError(
            f"{path}: not a PNG, JPEG, BMP, PNM, WebP or TIFF image by its header (starts with "
            f"{head!r}); only those are decoded, their size checked first"
        )
    try:
        with native_messages_named(path, show=False) as said:
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    except (cv2.error, MemoryError) as e:  # "Insufficient memory", a header the decoder refuses, ...
        why = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise VideoFormatError(f"{path}: cannot be decoded as {what}: {why}") from None
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


def check_image_size(path: str | os.PathLike[str], limit: int | None = None) -> tuple[int, int] | None:
    """The image's (width, height) from its header, or None for a format `image_size` does not parse;
    VideoFormatError naming the file and its size when it holds more than `limit` pixels (`MAX_IMAGE_PIXELS`)."""
    limit = MAX_IMAGE_PIXELS if limit is None else limit
    size = image_size(path)
    if size is not None and size[0] * size[1] > limit:
        w, h = size
        raise VideoFormatError(
            f"{path}: the image is {w}x{h} ({w * h / 1e6:.0f} megapixels); at most {limit / 1e6:g} megapixels "
            f"are decoded (edge_ser.limits.MAX_IMAGE_PIXELS: it would take {3 * w * h / 2**20:,.0f} MB or more)"
        )
    return size


def _head(path: Path, n: int = 12) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _signature(head: bytes) -> str | None:
    """The format `image_size` parses a file starting with `head` as ("PNG", "JPEG", ...), or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8"):
        return "JPEG"
    if head.startswith(b"BM"):
        return "BMP"
    if head[:1] == b"P" and head[1:2] in b"1234567" and len(head) > 1:
        return "PNM"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[:4] in (b"II*\0", b"MM\0*"):
        return "TIFF"
    return None


_HEAD = 64 << 10
"""Bytes of a file `image_size` reads at most: a JPEG's frame header follows its EXIF block (up to 64 KB)."""


def image_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(width, height) as the header of a PNG, JPEG, BMP, PNM (P1-P7), WebP or TIFF file declares it, read without
    decoding; None for another format or a header that cannot be parsed (the decoder then judges the file)."""
    with open(path, "rb") as fh:
        head = fh.read(_HEAD)
    kind = _signature(head)
    try:
        if kind == "PNG" and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if kind == "JPEG":
            return _jpeg_size(path)
        if kind == "BMP" and len(head) >= 26:
            (header,) = struct.unpack("<I", head[14:18])
            if header == 12:  # BITMAPCOREHEADER
                return struct.unpack("<HH", head[18:22])
            w, h = struct.unpack("<ii", head[18:26])
            return abs(w), abs(h)
        if kind == "PNM":
            return _pnm_size(head)
        if kind == "WebP":
            return _webp_size(head)
        if kind == "TIFF":
            return _tiff_size(path, "<" if head[:2] == b"II" else ">")
    except (struct.error, ValueError, IndexError):
        return None
    return None


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
"""JPEG start-of-frame markers (SOF0-SOF15 but DHT C4, JPG C8 and DAC CC): they hold the frame's size."""


def _jpeg_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """The size in a JPEG's first start-of-frame segment, walking the segments before it by their lengths."""
    with open(path, "rb") as fh:
        fh.seek(2)
        for _ in range(1000):
            b = fh.read(1)
            while b and b != b"\xff":  # stray bytes between segments
                b = fh.read(1)
            while b == b"\xff":  # fill bytes
                b = fh.read(1)
            if not b:
                return None
            marker = b[0]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # segments without a length
                continue
            if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before them
                return None
            seg = fh.read(2)
            if len(seg) < 2:
                return None
            (n,) = struct.unpack(">H", seg)
            if n < 2:
                return None
            if marker in _SOF:
                data = fh.read(5)
                if len(data) < 5:
                    return None
                h, w = struct.unpack(">HH", data[1:5])
                return w, h
            fh.seek(n - 2, os.SEEK_CUR)
    return None


def _pnm_size(head: bytes) -> tuple[int, int] | None:
    """Width and height of a PBM/PGM/PPM header (whitespace-separated, '#' comments) or a PAM (P7) one."""
    if head[1:2] == b"7":
        fields = dict(
            ln.split(None, 1)
            for ln in head.split(b"ENDHDR")[0].splitlines()[1:]
            if len(ln.split(None, 1)) == 2
        )
        return int(fields[b"WIDTH"]), int(fields[b"HEIGHT"])
    words: list[bytes] = []
    for ln in head[2:].splitlines():
        words += ln.split(b"#", 1)[0].split()
        if len(words) >= 2:
            return int(words[0]), int(words[1])
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    """The canvas of a WebP: lossy (VP8), lossless (VP8L) or extended (VP8X)."""
    chunk = head[12:16]
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and head[20:21] == b"\x2f":
        (bits,) = struct.unpack("<I", head[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None


def _tiff_size(path: str | os.PathLike[str], order: str) -> tuple[int, int] | None:
    """ImageWidth (256) and ImageLength (257) of a TIFF's first directory (the page `imread` reads)."""
    with open(path, "rb") as fh:
        fh.seek(4)
        (offset,) = struct.unpack(order + "I", fh.read(4))
        fh.seek(offset)
        (count,) = struct.unpack(order + "H", fh.read(2))
        found: dict[int, int] = {}
        for _ in range(min(count, 4096)):
            entry = fh.read(12)
            if len(entry) < 12:
                break
            tag, kind = struct.unpack(order + "HH", entry[:4])
            if tag in (256, 257):
                fmt = order + ("H" if kind == 3 else "I")
                found[tag] = struct.unpack(fmt, entry[8 : 8 + struct.calcsize(fmt)])[0]
        if 256 in found and 257 in found:
            return found[256], found[257]
    return None


def _jpeg_cut_short(path: Path) -> bool:
    """Whether `path` is a JPEG (it starts with FF D8) whose last 4 KB hold no end-of-image marker (FF D9): a file
    cut short. Trailing bytes after the marker (some cameras add them) are allowed within those 4 KB."""
    with open(path, "rb") as fh:
        if fh.read(2) != b"\xff\xd8":
            return False
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - 4096))
        return b"\xff\xd9" not in fh.read()


__all__ = ["check_image_size", "image_size", "read_image"]
