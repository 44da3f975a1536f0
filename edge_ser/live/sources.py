"""What the live pipeline needs from an audio source and from a frame source, so a microphone and a WAV
file (or a camera and a video file) are interchangeable, plus the two small pieces they share.

`AudioSource`: `MicSource` (edge_ser.live.mic), `WavSource` (edge_ser.live.files).
`FrameSource`: `CameraSource` (edge_ser.live.camera), `VideoFileSource` (edge_ser.live.files).

Time: every source counts `t` in seconds from its own start. Audio: `stream_time` is the consumer's
position in the sample stream (samples returned or lost / rate), so it follows the audio, not the wall
clock. Frames: a camera stamps each frame with the monotonic clock at capture, minus the start time; a file
stamps it with its position in the video (index / fps), so a fast (not real-time) run is reproducible.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from edge_ser.live.ring import AudioRing


class Frame(NamedTuple):
    """One video frame: `image` (BGR uint8 [h, w, 3], or grey [h, w]), `seq` (1, 2, ... in capture order,
    gaps are frames that were dropped), `t` (seconds since the source started)."""

    image: np.ndarray
    seq: int
    t: float


@runtime_checkable
class AudioSource(Protocol):
    """Mono float32 audio at `rate` Hz, read in order by one consumer."""

    @property
    def rate(self) -> int: ...

    @property
    def stream_time(self) -> float:
        """Seconds of audio the consumer has been through (returned or lost)."""
        ...

    @property
    def overflows(self) -> int:
        """Overflow events so far (audio lost because the driver or the consumer was late)."""
        ...

    @property
    def healthy(self) -> bool:
        """False while the device is gone and being retried."""
        ...

    @property
    def finished(self) -> bool:
        """True once a finite source (a file) has delivered everything; a microphone never finishes."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def read(
        self, max_samples: int | None = None, *, min_samples: int = 0, timeout: float | None = None
    ) -> np.ndarray:
        """New samples (mono float32 [k]); waits up to `timeout` s for at least `min_samples`."""
        ...


@runtime_checkable
class FrameSource(Protocol):
    """Frames in capture order; a slow consumer gets the newest frame (older ones are dropped)."""

    @property
    def healthy(self) -> bool: ...

    @property
    def finished(self) -> bool: ...

    @property
    def dropped(self) -> int:
        """Frames captured but never returned because a newer one replaced them."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def read(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet returned, waiting up to `timeout` s (None: forever); None if none came."""
        ...


class LatestFrame:
    """A one-slot holder: the producer `put`s each frame, the consumer `get`s the newest one it has not
    seen. A lock + condition guard the slot (the producer is a Python thread, not a real-time callback, so
    a lock is fine here); a frame replaced before anyone read it counts as dropped."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._seq = 0
        self._taken = 0  # seq of the last frame handed out
        self._closed = False
        self.dropped = 0

    @property
    def seq(self) -> int:
        """Frames put so far."""
        return self._seq

    @property
    def has_new(self) -> bool:
        """A frame is waiting that `get` has not returned yet."""
        frame = self._frame
        return frame is not None and frame.seq > self._taken

    def put(self, image: np.ndarray, t: float) -> int:
        """Publish a frame; returns its sequence number."""
        with self._cond:
            if self._frame is not None and self._frame.seq > self._taken:
                self.dropped += 1
            self._seq += 1
            self._frame = Frame(image, self._seq, t)
            self._cond.notify_all()
            return self._seq

    def get(self, timeout: float | None = None) -> Frame | None:
        """The newest frame newer than the last one returned; waits up to `timeout` s (None: until one
        comes or the holder is closed). None on timeout or when closed with nothing new."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._closed or (self._frame is not None and self._frame.seq > self._taken), timeout
            )
            frame = self._frame
            if not ok or frame is None or frame.seq <= self._taken:
                return None
            self._taken = frame.seq
            return frame

    def close(self) -> None:
        """No more frames: wake every waiting `get` (they return what is left, then None)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False


def wait_for_samples(
    ring: AudioRing,
    min_samples: int,
    timeout: float | None,
    *,
    poll: float,
    done: threading.Event | None = None,
    tick: Callable[[], object] | None = None,
) -> bool:
    """Poll `ring` until `min_samples` are available, `timeout` seconds pass or `done` is set; True when
    enough are there. `tick` is called at every poll (the microphone's `maintain`, so a source being
    waited on still reconnects).

    Polling (every `poll` s, about half an audio block) instead of a condition variable keeps the producer
    (the audio callback) free of locks and notifications.
    """
    if ring.available >= min_samples:
        return True
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if tick is not None:
            tick()
        if done is not None and done.is_set():
            return ring.available >= min_samples
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(poll, left))
        else:
            time.sleep(poll)
        if ring.available >= min_samples:
            return True
