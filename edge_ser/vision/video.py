"""Video files -> frames through OpenCV's `VideoCapture` (numpy + opencv only: the device reads files too).

`probe_video` opens and checks a file and reports its size, frame rate and the frame count the container
declares; `iter_frames` yields every frame (the device's file source); `read_video` decodes them all;
`read_sampled` returns only the k frames `sample_frame_indices` picks, which is what the
audio-visual model consumes. Frames are BGR uint8 [h, w, 3] as OpenCV decodes them, or grey uint8 [h, w]
(`grey=True`, converted with `cv2.COLOR_BGR2GRAY`, the conversion `edge_ser.vision.face.to_grey` uses).

Validation before trust: a missing file, a directory, an empty file, an image, a file that is not a video,
one OpenCV cannot open (truncated MP4 whose index is gone, unknown codec; a file of a sound track alone is
`NoVideoStreamError`, its streams listed when ffmpeg is there to list them), frames larger than
`edge_ser.limits.MAX_IMAGE_PIXELS` (checked on opening, before a frame is decoded), a non-positive frame rate, zero
decodable frames raise VideoFormatError naming the file and what was wrong; a file that decodes to clearly fewer
frames than its container declares (truncated) is read with the frames that decode and an InputWarning. Images are refused by their first bytes (the
FFmpeg backend would open a JPEG as a one-frame video). OpenCV's FFmpeg backend is asked for by name when
this OpenCV has it, so every file goes through the same decoder whatever other backends are built in.

Frame count: `read_sampled` decodes to the end of the file and uses the number of frames that actually
decode, so it picks exactly the frames a full decode + `sample_frame_indices` would pick even when the
container's count is an estimate (Matroska/WebM derive it from duration x fps). A container count that is
off by at most `COUNT_TOLERANCE` is accepted; a larger shortfall is a truncated file, whose frames that decode are
used with an InputWarning naming it (it was refused: a user review's AVI made with `ffmpeg -shortest` declared 107
frames and decoded 89, and a face bundle skipped it while a speech bundle read its sound track).

Seek or decode-and-skip (`method`): `method="skip"` (decode every frame, `grab()` without `retrieve()` for
the ones not wanted) is the default; `method="seek"` only pays off for a few frames of a long file with
frequent key frames, and it trusts the container's count (measured in docs/vision.md).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_ser.errors import ConfigError, VideoFormatError
from edge_ser.fileio import open_regular_file
from edge_ser.limits import MAX_IMAGE_PIXELS
from edge_ser.native_log import native_messages_named
from edge_ser.vision._cv2 import import_cv2

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp")
"""Still images OpenCV reads: a face bundle's files (`predict`) and a folder played as a video (`run --video-file
DIR`) take the same list (they took two different ones: .tif in one, .pgm in the other)."""
METHODS = ("skip", "seek")
COUNT_TOLERANCE = (2, 0.05)
"""(frames, fraction): a decode may fall short of the container's count by max(frames, fraction x count)."""

# First bytes of single-image files, which OpenCV's FFmpeg backend would open as a one-frame "video".
_IMAGE_MAGIC = ((b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"), (b"BM", "a BMP image"))


class NoVideoStreamError(VideoFormatError):
    """A media file that holds no video stream (a sound track alone, e.g. `ffmpeg -i face.mp4 -vn a.mp4`): no
    frame to read a face from. A face bundle refuses it; a fusion bundle answers from its audio alone."""


def media_streams(path: str | os.PathLike[str], timeout: float = 20.0) -> list[str] | None:
    """The streams of a media file as ffmpeg lists them ('Audio: aac (LC)', 'Video: h264 ...'; a cover picture is
    not a video stream and is left out), or None when there is no ffmpeg to ask or it cannot say."""
    from edge_ser.audio.container import FFmpegNotFoundError, find_ffmpeg, input_streams

    try:
        cmd = [find_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(path)]
        said = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False).stderr
    except (FFmpegNotFoundError, OSError, subprocess.TimeoutExpired):
        return None
    text = said.decode("utf-8", "replace")
    if "Input #0" not in text:
        return None
    return [
        f"{kind}: {(desc.split(',')[0].split() or ['?'])[0]}"
        for kind, desc in input_streams(text)
        if "(attached pic)" not in desc
    ]


def _no_video_stream(path: Path) -> NoVideoStreamError | None:
    """NoVideoStreamError listing the file's streams when ffmpeg says it has no video stream, else None."""
    streams = media_streams(path)
    if streams is None or any(s.startswith("Video:") for s in streams):
        return None
    return NoVideoStreamError(
        f"{path}: no video stream (streams: {', '.join(streams) or 'none'}): there is no picture to read a "
        "face from"
    )


def sample_frame_indices(n_frames: int, k: int = 6) -> np.ndarray:
    """k frame indices, one at the centre of each of k equal spans of the clip (int64, non-decreasing).

    With n_frames < k some frames repeat (each span still maps to the frame under its centre).
    """
    if n_frames < 1:
        raise ConfigError(f"a clip needs at least one frame, got n_frames={n_frames}")
    if k < 1:
        raise ConfigError(f"k={k} must be >= 1")
    i = np.arange(k, dtype=np.int64)
    return ((2 * i + 1) * int(n_frames)) // (2 * k)


def _cv2() -> Any:
    return import_cv2("reading video files")


@dataclass(frozen=True)
class VideoInfo:
    """What a video file declares: frame size in pixels, frames per second, frame count (0 when the
    container does not say) and the codec's FourCC as text (e.g. 'FMP4', 'avc1', 'MJPG')."""

    path: Path
    width: int
    height: int
    fps: float
    frame_count: int
    codec: str

    @property
    def duration(self) -> float:
        """Declared length in seconds (frame_count / fps; 0.0 when the count is unknown)."""
        return self.frame_count / self.fps


@dataclass(frozen=True)
class VideoFrames:
    """Decoded frames of one file.

    frames: uint8 [k, h, w, 3] BGR, or [k, h, w] grey. indices: int64 [k], each frame's index in the file.
    n_frames: frames that decode in the whole file (counted, unless `read_sampled(method="seek")`, which
    takes the container's count). fps: frames per second. info: what the container declares.
    """

    frames: np.ndarray
    indices: np.ndarray
    n_frames: int
    fps: float
    info: VideoInfo

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def _kind(head: bytes) -> str | None:
    """'MP4/QuickTime', 'AVI', ... when the first bytes look like a video container, else None."""
    if head[4:8] == b"ftyp":
        return "MP4/QuickTime"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if head[:3] == b"FLV":
        return "FLV"
    if head[:4] == b"OggS":
        return "Ogg"
    return None


def _check_file(path: Path) -> bytes:
    """The file's first 16 bytes, after refusing a missing path, a directory, an empty file or an image."""
    try:
        with open_regular_file(path, error=VideoFormatError) as fh:  # a FIFO or device: refused, not opened
            head = fh.read(16)
    except OSError as e:
        raise VideoFormatError(f"{path}: cannot read: {e.strerror or e}") from None
    if not head:
        raise VideoFormatError(f"{path}: empty file (0 bytes)")
    for magic, what in _IMAGE_MAGIC:
        if head.startswith(magic):
            raise VideoFormatError(
                f"{path}: is {what}, not a video (a folder of images plays as a video, at `edge-ser run "
                "--image-fps`; `edge-ser predict` classifies one image)"
            )
    return head


def _open(path: Path) -> tuple[Any, VideoInfo]:
    """An opened cv2.VideoCapture and the file's VideoInfo, or VideoFormatError saying why not."""
    head = _check_file(path)
    cv2 = _cv2()
    registry = getattr(cv2, "videoio_registry", None)
    ffmpeg = registry is not None and registry.hasBackend(cv2.CAP_FFMPEG)
    with native_messages_named(path):  # FFmpeg's "[mov,mp4 @ 0x...] moov atom not found" names the file
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG if ffmpeg else cv2.CAP_ANY)
    if not cap.isOpened():
        cap.release()
        kind = _kind(head)
        backend = "" if ffmpeg else " (this OpenCV has no FFmpeg video backend)"
        if kind and (sound_only := _no_video_stream(path)):
            raise sound_only
        if kind:
            raise VideoFormatError(
                f"{path}: looks like {kind} but OpenCV cannot open it{backend}: the file is truncated or "
                "damaged (an MP4 cut short loses its 'moov' index), or uses a codec this OpenCV lacks"
            )
        raise VideoFormatError(f"{path}: not a video file OpenCV can open{backend} (starts with {head!r})")
    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    count = int(count) if np.isfinite(count) and 0 < count < 2**31 else 0  # negative/huge: not declared
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF
    codec = fourcc.to_bytes(4, "little").decode("latin-1").strip("\0 ") or "?"
    problem = None
    if width < 1 or height < 1:
        problem = f"has no picture (frame size {width}x{height})"
    elif width * height > MAX_IMAGE_PIXELS:  # one decoded frame would take 3 bytes a pixel, and more
        problem = (
            f"has frames of {width}x{height} ({width * height / 1e6:.0f} megapixels); at most "
            f"{MAX_IMAGE_PIXELS / 1e6:g} megapixels a frame are decoded (edge_ser.limits.MAX_IMAGE_PIXELS)"
        )
    elif not (np.isfinite(fps) and fps > 0):
        problem = f"declares a frame rate of {fps} fps; a video needs a positive frame rate"
    if problem:
        cap.release()
        if width < 1 or height < 1:
            sound_only = _no_video_stream(path)
            if sound_only:
                raise sound_only
        raise VideoFormatError(f"{path}: {problem}")
    return cap, VideoInfo(path, width, height, fps, count, codec)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Open a video file and report what it declares (nothing is decoded); VideoFormatError if unusable."""
    cap, info = _open(Path(path))
    cap.release()
    return info


def _convert(cv2: Any, frame: np.ndarray, grey: bool) -> np.ndarray:
    if frame.ndim == 2:  # some backends hand out grey frames already
        return frame if grey else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if grey else frame


def _no_frames(info: VideoInfo) -> VideoFormatError:
    said = f" although the container declares {info.frame_count}" if info.frame_count else ""
    return VideoFormatError(
        f"{info.path}: zero decodable frames{said} ({info.codec} {info.width}x{info.height}): the file is "
        "truncated or damaged, or its codec cannot be decoded by this OpenCV"
    )


def _check_count(info: VideoInfo, decoded: int) -> None:
    """Zero frames is an error; clearly fewer than declared (a truncated file) a warning, the frames that decode
    being used; small misses nothing."""
    if decoded == 0:
        raise _no_frames(info)
    frames, fraction = COUNT_TOLERANCE
    if info.frame_count and info.frame_count - decoded > max(frames, fraction * info.frame_count):
        import warnings

        from edge_ser.errors import InputWarning

        warnings.warn(
            f"{info.path}: truncated or damaged: the container declares {info.frame_count} frames but only "
            f"{decoded} decode; those {decoded} are used",
            InputWarning,
            stacklevel=3,
        )


def _read_all(cap: Any, info: VideoInfo, grey: bool) -> Iterator[np.ndarray]:
    """Yield the frames of an opened capture, release it, then check the count (see `_check_count`)."""
    cv2 = _cv2()
    n = 0
    try:
        while True:
            with native_messages_named(info.path):
                ok, frame = cap.read()
            if not ok or frame is None:
                break
            n += 1
            yield _convert(cv2, frame, grey)
    finally:
        cap.release()
    _check_count(info, n)


def iter_frames(path: str | os.PathLike, *, grey: bool = False) -> Iterator[np.ndarray]:
    """Yield every frame of a video file in order (BGR uint8 [h, w, 3], or grey [h, w]).

    The file is opened and checked on the first `next()`; zero frames raises VideoFormatError at the end of the
    iteration, a decode that ends clearly short of the container's count an InputWarning.
    """
    yield from _read_all(*_open(Path(path)), grey)


def read_video(path: str | os.PathLike, *, grey: bool = False) -> VideoFrames:
    """Decode every frame of a video file (mind the memory: 720p BGR is 2.7 MB a frame)."""
    cap, info = _open(Path(path))
    frames = list(_read_all(cap, info, grey))
    return VideoFrames(np.stack(frames), np.arange(len(frames), dtype=np.int64), len(frames), info.fps, info)


def _decode_skip(path: Path, k: int, grey: bool) -> VideoFrames:
    """One pass: grab() every frame, retrieve() only the wanted ones, count to the end of the file.

    The wanted indices come from the container's count; when the true count turns out different, the
    indices change, and the frames are taken in a second pass (rare: estimated counts, damaged files).
    """
    cap, info = _open(path)
    cv2 = _cv2()
    want = sample_frame_indices(info.frame_count, k) if info.frame_count else None
    wanted = set(want.tolist()) if want is not None else set()
    got: dict[int, np.ndarray] = {}
    n = 0
    try:
        while cap.grab():
            if n in wanted:
                ok, frame = cap.retrieve()
                if not ok or frame is None:
                    raise VideoFormatError(f"{path}: frame {n} of {info.frame_count} cannot be decoded")
                got[n] = _convert(cv2, frame, grey)
            n += 1
    finally:
        cap.release()
    _check_count(info, n)
    indices = sample_frame_indices(n, k)
    if want is None or not np.array_equal(indices, want):
        return _pick(path, info, indices, n, grey)
    return VideoFrames(np.stack([got[int(i)] for i in indices]), indices, n, info.fps, info)


def _pick(path: Path, info: VideoInfo, indices: np.ndarray, n: int, grey: bool) -> VideoFrames:
    """Decode from the start and keep the frames at `indices` (sorted, may repeat)."""
    cap, _ = _open(path)
    cv2 = _cv2()
    wanted = {int(i) for i in indices}
    got: dict[int, np.ndarray] = {}
    i = 0
    try:
        while len(got) < len(wanted) and cap.grab():
            if i in wanted:
                ok, frame = cap.retrieve()
                if ok and frame is not None:
                    got[i] = _convert(cv2, frame, grey)
            i += 1
    finally:
        cap.release()
    missing = sorted(wanted - set(got))
    if missing:
        raise VideoFormatError(f"{path}: frames {missing} of {n} cannot be decoded on a second pass")
    return VideoFrames(np.stack([got[int(j)] for j in indices]), indices, n, info.fps, info)


def _seek(path: Path, k: int, grey: bool) -> VideoFrames:
    """Seek to each sampled frame (CAP_PROP_POS_FRAMES) and read it; trusts the container's frame count."""
    cap, info = _open(path)
    if not info.frame_count:
        cap.release()
        return _decode_skip(path, k, grey)  # nothing to seek by: count by decoding
    cv2 = _cv2()
    indices = sample_frame_indices(info.frame_count, k)
    frames = []
    try:
        for j, i in enumerate(indices):
            if j and i == indices[j - 1]:
                # a clip shorter than k repeats a frame: seeking back to a one-frame file's only frame after
                # reading it fails, and the file was called truncated
                frames.append(frames[-1])
                continue
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
            ok, frame = cap.read()
            if not ok or frame is None:
                raise VideoFormatError(
                    f"{path}: frame {int(i)} of the {info.frame_count} the container declares cannot be "
                    "read after a seek (truncated file, or a wrong frame count: use method='skip')"
                )
            frames.append(_convert(cv2, frame, grey))
    finally:
        cap.release()
    return VideoFrames(np.stack(frames), indices, info.frame_count, info.fps, info)


def read_sampled(
    path: str | os.PathLike, k: int = 6, *, grey: bool = False, method: str = "skip"
) -> VideoFrames:
    """The k frames `sample_frame_indices(n_frames, k)` picks, without keeping the others.

    method "skip" (default): one decode pass counting every frame (exact count, see the module docstring
    for timings); "seek": seek to each frame, trusting the container's count (falls back to "skip" when
    the container declares none).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"read_sampled: k must be a positive int, got {k!r}")
    if method not in METHODS:
        raise ConfigError(f"read_sampled: method must be one of {METHODS}, got {method!r}")
    path = Path(path)
    import warnings

    with warnings.catch_warnings(record=True) as said:  # ours, said after the block: it would prefix them too
        warnings.simplefilter("always")
        with native_messages_named(path):  # the decoder's complaints about a damaged file name it
            out = _decode_skip(path, int(k), grey) if method == "skip" else _seek(path, int(k), grey)
    for w in said:
        warnings.warn(w.message, w.category, stacklevel=2)
    return out
