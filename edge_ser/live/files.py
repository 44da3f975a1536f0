"""File sources: a WAV file as an `AudioSource`, a video file or an image folder as a `FrameSource`, so every
live run can be replayed without hardware.

Two modes, chosen by `realtime`:
- realtime=True: paced by the wall clock like the device it stands in for. `WavSource` pushes `chunk`
  samples into an `AudioRing` from a thread as each chunk's last sample "is recorded" (t0 + end / rate, an
  absolute schedule, so no drift builds up); `VideoFileSource` decodes on a thread and publishes each frame
  at t0 + index / fps into the same newest-wins holder the camera uses. A slow consumer therefore sees
  the same overflows and dropped frames it would see live.
- realtime=False: as fast as the consumer pulls, with no thread: each `read()` returns the next chunk
  (audio) or the next frame (video) synchronously. Nothing depends on timing, so a fast run is exactly
  reproducible: the pipeline decides the pace, and the same calls give the same data.

Timestamps are media time: audio `stream_time` = samples consumed / rate, a frame's `t` = index / fps.
Bad files raise the readers' typed errors (AudioFormatError, VideoFormatError) naming the file, except an image of a
folder played as frames that cannot be read: a blank frame (no face) in its place and an InputWarning; audio is
resampled to the wanted rate with `edge_ser.audio` (the same resampler training used).
"""

from __future__ import annotations

import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge_ser.errors import ConfigError, EdgeSerError, InputWarning, VideoFormatError
from edge_ser.live.ring import AudioRing
from edge_ser.live.sources import Frame, LatestFrame, wait_for_samples
from edge_ser.text import printable
from edge_ser.vision.video import IMAGE_EXTENSIONS, iter_frames, probe_video

DEFAULT_CHUNK = 512
"""Samples per chunk, the microphone's default block (32 ms at 16 kHz)."""


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class WavSource:
    """An audio file played as an `AudioSource`: mono float32 at `rate` Hz.

    path: a WAV file (other formats go through soundfile, see `edge_ser.audio.load`). rate: the rate the
    consumer wants (the file is resampled). realtime: pace by the wall clock (see the module docstring).
    chunk: samples per push (realtime) or per read() without max_samples (fast). ring_seconds: ring size
    in realtime mode.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        rate: int = 16000,
        *,
        realtime: bool = True,
        chunk: int = DEFAULT_CHUNK,
        ring_seconds: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self._rate = _positive_int("WavSource: rate", rate)
        self._setup(lambda: _Samples(self.path, self._rate), realtime, chunk, ring_seconds)  # header checked

    def _setup(self, samples: Callable[[], Any], realtime: bool, chunk: int, ring_seconds: float) -> None:
        """The settings checked, then the samples opened (`samples()`), then the ring and the player's state."""
        self.chunk = _positive_int("WavSource: chunk", chunk)
        if not (isinstance(ring_seconds, (int, float)) and ring_seconds > 0):
            raise ConfigError(f"WavSource: ring_seconds must be > 0, got {ring_seconds!r}")
        self.realtime = bool(realtime)
        self._audio = samples()
        self.ring = AudioRing(max(int(ring_seconds * self._rate), 2 * self.chunk), 1)
        self._pos = 0  # fast mode: samples handed out
        self._started = False
        self._stop = threading.Event()
        self._done = threading.Event()  # realtime: everything pushed, or stopped
        self._thread: threading.Thread | None = None
        self._error: EdgeSerError | None = None  # realtime: raised by the next read()

    # ------------------------------------------------------------------ public
    def start(self) -> WavSource:
        """Start playing (realtime: the clock starts now). Idempotent; `read` starts the source if needed."""
        if self._started:
            return self
        self._started = True
        if self.realtime:
            self._thread = threading.Thread(target=self._play, name=f"wav {self.path.name}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop pushing (realtime) and join the thread; what is in the ring can still be read."""
        self._stop.set()
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self._audio.close()

    def read(
        self, max_samples: int | None = None, *, min_samples: int = 0, timeout: float | None = None
    ) -> np.ndarray:
        """The next samples, mono float32 [k].

        Fast mode: exactly `max_samples` (default max(chunk, min_samples)) unless the file ends first; never
        waits. Realtime: the samples pushed since the last read (at most `max_samples`), waiting up to
        `timeout` s for `min_samples` (fewer only when the file ends or stop() is called).
        """
        self.start()
        if not self.realtime:
            n = max_samples if max_samples is not None else max(self.chunk, min_samples)
            out = self._audio.take(n)
            self._pos += out.shape[0]
            return out
        if min_samples > 0:
            wait_for_samples(
                self.ring,
                min(min_samples, self.ring.capacity),
                timeout,
                poll=self.chunk / self._rate / 2,
                done=self._done,
            )
        out = self.ring.read_new(max_samples)
        if out.size == 0 and self._error is not None and self._done.is_set():
            error, self._error = self._error, None
            raise error
        return out

    def __enter__(self) -> WavSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _play(self) -> None:
        """Realtime producer: push chunk k when its last sample is due (absolute schedule, no drift)."""
        rate, chunk = self._rate, self.chunk
        t0 = time.monotonic()
        end = 0
        try:
            while not self._stop.is_set():
                y = self._audio.take(chunk)
                if y.size == 0:
                    break
                end += y.size
                delay = t0 + end / rate - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                self.ring.write(y)
        except EdgeSerError as e:  # damage found further into the file: reported by the next read()
            self._error = e
        finally:
            self._done.set()

    # ------------------------------------------------------------------ state
    @property
    def rate(self) -> int:
        return self._rate

    @property
    def source_rate(self) -> int | None:
        """The rate the file was recorded at (None when not known): a band narrower than the model's is flagged."""
        return getattr(self._audio, "source_rate", None)

    @property
    def duration(self) -> float | None:
        """Length of the file in seconds when known before playing it (a file up to 30 s), else None."""
        return self._audio.duration

    @property
    def stream_time(self) -> float:
        """Seconds of audio consumed (returned or lost)."""
        return (self.ring.read_pos if self.realtime else self._pos) / self._rate

    @property
    def overflows(self) -> int:
        """Ring overflows (realtime, when the consumer falls behind by more than ring_seconds); 0 in fast mode."""
        return self.ring.overflows

    @property
    def healthy(self) -> bool:
        """A file does not disappear: always True."""
        return True

    @property
    def finished(self) -> bool:
        """Every sample has been pushed and read (or stop() was called and the ring is drained)."""
        if not self.realtime:
            return self._audio.exhausted
        return self._done.is_set() and self.ring.available == 0

    def __repr__(self) -> str:
        mode = "realtime" if self.realtime else "fast"
        length = "long" if self.duration is None else f"{self.duration:.2f} s"
        return f"WavSource({str(self.path)!r}, {self._rate} Hz, {length}, {mode})"


class SilenceSource(WavSource):
    """Silence played like a file: the live loop's clock for a model that takes no audio (a face model). It lasts
    `duration` seconds (a video file's length) or, with None, until stopped (a camera)."""

    def __init__(
        self, duration: float | None, rate: int = 16000, *, realtime: bool = True, chunk: int = DEFAULT_CHUNK
    ) -> None:
        if duration is not None and not (math.isfinite(duration) and duration >= 0):
            raise ConfigError(f"SilenceSource: duration must be >= 0 s or None, got {duration!r}")
        self.path = Path("(no audio)")
        self._rate = _positive_int("SilenceSource: rate", rate)
        self._setup(lambda: _Silence(duration, self._rate), realtime, chunk, 10.0)

    def __repr__(self) -> str:
        length = "until stopped" if self.duration is None else f"{self.duration:.2f} s"
        return f"SilenceSource({self._rate} Hz, {length}, {'realtime' if self.realtime else 'fast'})"


class _Silence:
    """`_Samples`' interface over zeros: `duration` seconds of them, or endless with None."""

    def __init__(self, duration: float | None, rate: int) -> None:
        self.duration = duration
        self._left = None if duration is None else int(round(duration * rate))

    def take(self, n: int) -> np.ndarray:
        k = n if self._left is None else min(n, self._left)
        if self._left is not None:
            self._left -= k
        return np.zeros(k, np.float32)

    @property
    def exhausted(self) -> bool:
        return self._left == 0

    def close(self) -> None:
        pass


class _Samples:
    """A file's mono samples at `rate`, decoded and resampled block by block as `take` asks for them
    (`edge_ser.audio.stream.Resampled`: a file up to 30 s exactly as `load` gives it)."""

    def __init__(self, path: Path, rate: int) -> None:
        from edge_ser.audio.stream import Resampled

        self._stream = Resampled(path, rate)
        self.duration = self._stream.duration
        self.source_rate = self._stream.source_rate
        self._blocks = iter(self._stream)
        self._buf = np.zeros(0, np.float32)
        self._ended = False

    def take(self, n: int) -> np.ndarray:
        """Up to `n` next samples (fewer only at the end of the file)."""
        while self._buf.size < n and not self._ended:
            b = next(self._blocks, None)
            if b is None:
                self._ended = True
                self._stream.close()
                break
            self._buf = np.concatenate([self._buf, b]) if self._buf.size else b
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    @property
    def exhausted(self) -> bool:
        """Every sample has been taken."""
        if not self._ended and self._buf.size == 0:  # look ahead: is there more?
            b = next(self._blocks, None)
            if b is None:
                self._ended = True
                self._stream.close()
            else:
                self._buf = b
        return self._ended and self._buf.size == 0

    def close(self) -> None:
        self._stream.close()


def _image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise VideoFormatError(
            f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder to play as a video"
        )
    return files


def _iter_images(files: list[Path], grey: bool, fps: float) -> Iterator[np.ndarray]:
    """The frames of an image folder in order. An image that cannot be read (damaged, truncated, not an image) is
    a blank frame in its place, which shows no face, with an InputWarning naming it: one bad file stopped the whole
    run, while `edge-ser predict` skips it; dropping it instead would move every later frame 1 / fps earlier. The
    folder is a VideoFormatError only when none of its images can be read."""
    from edge_ser.vision.image import read_image

    shape: tuple[int, ...] | None = None
    waiting = 0  # unreadable images before the first one that reads: their blank frames take its size
    for i, p in enumerate(files):
        try:
            image = read_image(p, grey=grey)
        except VideoFormatError as e:
            _unreadable_frame(e, i, fps)
            if shape is None:
                waiting += 1
                continue
            yield np.zeros(shape, np.uint8)
            continue
        shape = image.shape
        for _ in range(waiting):
            yield np.zeros(shape, np.uint8)
        waiting = 0
        yield image
    if shape is None:
        raise VideoFormatError(f"{files[0].parent}: none of its {len(files)} images can be read")


def _unreadable_frame(error: VideoFormatError, index: int, fps: float) -> None:
    """Warn once for an image of a frame folder that cannot be read, saying when it would have been shown."""
    warnings.warn(
        f"frame {index + 1} (at {index / fps:.2f} s) is played as a blank frame, without a face: "
        f"{printable(str(error))}",
        InputWarning,
        stacklevel=3,
    )


class VideoFileSource:
    """A video file, or a folder of images (sorted by name, so zero-pad the numbers), as a `FrameSource`.

    fps: frames per second; for a video None means the file's own rate, for an image folder it is required.
    realtime: pace by the wall clock (newest frame wins, as with a camera) or hand out every frame as fast
    as read() is called. grey: grey uint8 [h, w] frames instead of BGR [h, w, 3].
    Frames carry `t` = index / fps and `seq` = index + 1. An image of the folder that cannot be read is a blank
    frame in its place (no face; an InputWarning names it), so the frames after it keep their times.
    """

    def __init__(
        self, path: str | os.PathLike, *, fps: float | None = None, realtime: bool = True, grey: bool = False
    ) -> None:
        self.path = Path(path)
        if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0):
            raise ConfigError(f"VideoFileSource: fps (--image-fps) must be > 0 or None, got {fps!r}")
        self.realtime = bool(realtime)
        self.grey = bool(grey)
        self._files: list[Path] | None = None
        if self.path.is_dir():
            self._files = _image_files(self.path)
            if fps is None:
                raise ConfigError(
                    f"VideoFileSource: {self.path} is an image folder: give its frame rate (fps=...), "
                    "images carry none"
                )
            self.frame_count: int = len(self._files)
        else:
            info = probe_video(self.path)  # VideoFormatError naming the file when unusable
            fps = info.fps if fps is None else fps
            self.frame_count = info.frame_count  # declared (0: unknown)
        self.fps = float(fps)
        self._frames: Iterator[np.ndarray] | None = None
        self._index = 0  # frames decoded so far
        self._holder = LatestFrame()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: EdgeSerError | None = None  # realtime: raised by the next read()
        self._failed = False

    def _iter(self) -> Iterator[np.ndarray]:
        if self._files is not None:
            return _iter_images(self._files, self.grey, self.fps)
        return iter_frames(self.path, grey=self.grey)

    # ------------------------------------------------------------------ public
    def start(self) -> VideoFileSource:
        """Open the file (realtime: start the clock and the decoding thread). `read` calls it if needed."""
        if self._frames is not None:
            return self
        self._frames = self._iter()
        if self.realtime:
            self._thread = threading.Thread(target=self._play, name=f"video {self.path.name}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop decoding and join the thread."""
        self._stop.set()
        self._holder.close()
        if self._thread is not None:
            self._thread.join()
        self._done.set()

    def read(self, timeout: float | None = None) -> Frame | None:
        """Realtime: the newest frame due and not yet returned, waiting up to `timeout` s; None when none
        came or the file has ended. Fast: the next frame, at once; None at the end. A file with no frame that
        decodes raises its VideoFormatError here, once; one that stops short of its declared count plays the frames
        that decode (the reader warns)."""
        self.start()
        if self.realtime:
            frame = self._holder.get(timeout)
            if frame is None and self._error is not None and self._done.is_set():
                error, self._error = self._error, None
                raise error
            return frame
        if self._done.is_set():
            return None
        try:
            image = next(self._frames)  # type: ignore[arg-type]
        except StopIteration:
            self._done.set()
            return None
        except EdgeSerError:
            self._done.set()
            self._failed = True
            raise
        self._index += 1
        return Frame(image, self._index, (self._index - 1) / self.fps)

    def __enter__(self) -> VideoFileSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _play(self) -> None:
        """Realtime producer: decode frame i, publish it at t0 + i / fps."""
        t0 = time.monotonic()
        try:
            for image in self._frames:  # type: ignore[union-attr]
                delay = t0 + self._index / self.fps - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                if self._stop.is_set():
                    break
                self._holder.put(image, self._index / self.fps)
                self._index += 1
        except EdgeSerError as exc:
            self._failed = True
            self._error = exc
        finally:
            self._done.set()
            self._holder.close()

    # ------------------------------------------------------------------ state
    @property
    def healthy(self) -> bool:
        """False only after the file turned out unreadable (no frame decodes, or the decoder failed)."""
        return not self._failed

    @property
    def finished(self) -> bool:
        """Every frame has been decoded and the last one read (or dropped)."""
        return self._done.is_set() and not self._holder.has_new

    @property
    def dropped(self) -> int:
        """Frames replaced by a newer one before read() took them (realtime only)."""
        return self._holder.dropped

    @property
    def frames(self) -> int:
        """Frames decoded so far."""
        return self._index

    def __repr__(self) -> str:
        mode = "realtime" if self.realtime else "fast"
        return f"VideoFileSource({str(self.path)!r}, {self.fps:g} fps, {mode})"
