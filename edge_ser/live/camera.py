"""The camera: `cv2.VideoCapture` read on its own thread, newest frame wins, reconnecting with back-off.

Sources (`CameraConfig.source`) and the OpenCV backend each one gets with `backend="auto"`:

    0, "0"                       camera index          CAP_V4L2 on Linux, CAP_ANY elsewhere
    "/dev/video0", "/dev/v4l/..." V4L2 device path     CAP_V4L2 on Linux
    "... ! appsink"              GStreamer pipeline    CAP_GSTREAMER (any string containing '!')
    "rtsp://", "http(s)://", ... network stream        CAP_FFMPEG, with open/read timeouts
    "clip.mp4"                   a file                CAP_FFMPEG (read as fast as it decodes and reopened
                                                       at its end, like a camera that comes back; use
                                                       `edge_ser.live.files.VideoFileSource` for paced,
                                                       reproducible playback)

The reader thread does nothing but `cap.read()` and hand the frame to a one-slot holder
(`edge_ser.live.sources.LatestFrame`): a consumer slower than the camera gets the newest frame and the ones
it missed are counted in `dropped`, so latency never builds up in a queue. Capture stamps `t` with the
monotonic clock (seconds since `start()`).

Losing the camera is not fatal: a failed open, or `max_read_failures` consecutive failed reads, releases
the capture, sets `healthy` False and retries after an exponential back-off (`retry_initial` doubling to
`retry_max`, `edge_ser.live.backoff.Backoff`); the first good frame sets `healthy` again and resets the
back-off. A camera whose read hangs (a driver or network stream that stops delivering without an error: V4L2
waits 10 s per read, a pipeline may wait for ever) is not healthy either once `stall_timeout` seconds pass
without a frame, as a stalled microphone is not: the live loop then drops its last face instead of classifying
that frozen face for as long as the read hangs, and says "camera lost" and "camera back" when frames come again.
A frame that is no image (empty, a raw buffer, packed YUYV of two channels) counts as a failed read, its reason
kept for the note. What is an error at `start()`: no OpenCV (MissingDependencyError), a GStreamer pipeline on an
OpenCV built without GStreamer (ConfigError: pip's opencv wheels are; use the distribution's
python3-opencv), a file path that does not exist (VideoFormatError).

Pi camera / Jetson CSI: `gstreamer_pipeline_for_pi` (libcamerasrc) and `gstreamer_pipeline_for_jetson_csi`
(nvarguscamerasrc) build the pipeline strings. They are documented here but cannot be tested on a machine
without the cameras.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from edge_ser.errors import ConfigError, VideoFormatError
from edge_ser.live.backoff import Backoff
from edge_ser.live.sources import Frame, LatestFrame
from edge_ser.schema import config_from_dict
from edge_ser.vision._cv2 import import_cv2
from edge_ser.vision.face import check_frame

BACKENDS = ("auto", "v4l2", "gstreamer", "ffmpeg", "any")
URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


@dataclass(frozen=True)
class CameraConfig:
    """Camera settings.

    source: camera index, V4L2 device path, GStreamer pipeline, stream URL or file (see the module
    docstring). width / height / fps: asked of the device (None: its default); a device may pick the
    nearest mode it has, see `CameraSource.actual`. fourcc: pixel format asked of a V4L2 camera, e.g.
    "MJPG" (most USB webcams reach 720p at 30 fps only in MJPG). backend: "auto" or one of v4l2, gstreamer,
    ffmpeg, any. retry_initial / retry_factor / retry_max: reconnection back-off in seconds.
    open_timeout / read_timeout: seconds before a network stream's open or read gives up (FFmpeg).
    max_read_failures: consecutive failed reads after which the camera counts as lost. stall_timeout: seconds
    without a frame after which an open camera counts as lost (its read hangs).
    """

    source: int | str = 0
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    fourcc: str | None = None
    backend: str = "auto"
    retry_initial: float = 0.5
    retry_factor: float = 2.0
    retry_max: float = 8.0
    open_timeout: float = 5.0
    read_timeout: float = 5.0
    max_read_failures: int = 3
    stall_timeout: float = 2.0

    def __post_init__(self) -> None:
        if isinstance(self.source, bool) or not isinstance(self.source, (int, str)):
            raise ConfigError(f"CameraConfig.source must be an index or a string, got {self.source!r}")
        if isinstance(self.source, str) and not self.source.strip():
            raise ConfigError("CameraConfig.source is an empty string")
        for name in ("width", "height"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
                raise ConfigError(f"CameraConfig.{name} (--{name}) must be a positive int or None, got {v!r}")
        if self.fps is not None and (
            isinstance(self.fps, bool) or not isinstance(self.fps, (int, float)) or not self.fps > 0
        ):
            raise ConfigError(f"CameraConfig.fps (--fps) must be > 0 or None, got {self.fps!r}")
        if self.fourcc is not None and (not isinstance(self.fourcc, str) or len(self.fourcc) != 4):
            raise ConfigError(f"CameraConfig.fourcc must be 4 characters (e.g. 'MJPG'), got {self.fourcc!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"CameraConfig.backend must be one of {BACKENDS}, got {self.backend!r}")
        for name in ("open_timeout", "read_timeout", "stall_timeout"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ConfigError(f"CameraConfig.{name} must be > 0 seconds, got {v!r}")
        if (
            isinstance(self.max_read_failures, bool)
            or not isinstance(self.max_read_failures, int)
            or self.max_read_failures < 1
        ):
            raise ConfigError(
                f"CameraConfig.max_read_failures must be a positive int, got {self.max_read_failures!r}"
            )
        self.make_backoff()  # validates the back-off settings

    def make_backoff(self) -> Backoff:
        return Backoff(self.retry_initial, self.retry_factor, self.retry_max)

    @property
    def kind(self) -> str:
        """ "index", "device", "gstreamer", "url" or "file" (what `source` is taken to be)."""
        return source_kind(self.source)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CameraConfig:
        """Inverse of `to_dict`; missing keys take their defaults, unknown keys are a ConfigError."""
        return config_from_dict(cls, d, what="settings")


def source_kind(source: int | str) -> str:
    """What a camera source is: "index", "device", "gstreamer", "url" or "file"."""
    if isinstance(source, int) or source.strip().isdigit():
        return "index"
    s = source.strip()
    if "!" in s:
        return "gstreamer"
    if s.lower().startswith(URL_SCHEMES):
        return "url"
    if s.startswith("/dev/"):
        return "device"
    return "file"


def resolve_backend(config: CameraConfig, cv2: Any) -> tuple[int | str, int, str]:
    """(what to pass to VideoCapture, the API preference, the backend's name) for `config`."""
    kind = config.kind
    target: int | str = int(config.source) if kind == "index" else str(config.source).strip()
    name = config.backend
    if name == "auto":
        if kind in ("index", "device"):
            name = "v4l2" if sys.platform.startswith("linux") else "any"
        elif kind == "gstreamer":
            name = "gstreamer"
        else:
            name = "ffmpeg"
    api = {
        "v4l2": cv2.CAP_V4L2,
        "gstreamer": cv2.CAP_GSTREAMER,
        "ffmpeg": cv2.CAP_FFMPEG,
        "any": cv2.CAP_ANY,
    }[name]
    registry = getattr(cv2, "videoio_registry", None)
    if api != cv2.CAP_ANY and registry is not None and not registry.hasBackend(api):
        if name == "gstreamer":
            raise ConfigError(
                f"camera {target!r}: a GStreamer pipeline needs OpenCV built with GStreamer, and this OpenCV "
                f"({cv2.__version__}) is not (pip's opencv-python wheels never are). On a Pi or Jetson use the "
                "distribution's build: sudo apt-get install python3-opencv (and a venv with "
                "--system-site-packages), or on a Pi give the camera as /dev/videoN through libcamerify"
            )
        if name != "ffmpeg" or kind != "file":
            raise ConfigError(
                f"camera {target!r}: this OpenCV ({cv2.__version__}) has no {name} video backend"
            )
        api, name = cv2.CAP_ANY, "any"
    return target, api, name


def _fraction(fps: float) -> str:
    f = Fraction(fps).limit_denominator(1001)
    return f"{f.numerator}/{f.denominator}"


def gstreamer_pipeline_for_pi(
    width: int = 1280, height: int = 720, fps: float = 30, *, camera_name: str | None = None
) -> str:
    """GStreamer pipeline for a Raspberry Pi camera (CSI, libcamera stack: Bookworm, Pi 4/5) to BGR frames.

    Needs gstreamer1.0-libcamera and an OpenCV built with GStreamer (apt's python3-opencv). `appsink
    drop=true max-buffers=1` keeps only the newest frame, as the reader thread does. `camera_name` picks a
    camera when there are two (Pi 5), as listed by `libcamera-hello --list-cameras`.
    """
    name = f' camera-name="{camera_name}"' if camera_name else ""
    return (
        f"libcamerasrc{name} ! video/x-raw,width={int(width)},height={int(height)},framerate={_fraction(fps)} "
        "! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false"
    )


def gstreamer_pipeline_for_jetson_csi(
    width: int = 1280, height: int = 720, fps: float = 30, *, sensor_id: int = 0, flip_method: int = 0
) -> str:
    """GStreamer pipeline for a CSI camera on a Jetson (Argus: nvarguscamerasrc) to BGR frames.

    The ISP delivers NV12 in NVMM (GPU) memory; nvvidconv converts it to BGRx in CPU memory and videoconvert
    drops the x (OpenCV's appsink wants BGR). flip_method 0..7 rotates/flips in nvvidconv (2 = 180 degrees).
    JetPack's OpenCV is built with GStreamer.
    """
    return (
        f"nvarguscamerasrc sensor-id={int(sensor_id)} ! video/x-raw(memory:NVMM),width={int(width)},"
        f"height={int(height)},framerate={_fraction(fps)},format=NV12 ! nvvidconv flip-method={int(flip_method)} "
        "! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false"
    )


def _unusable(image: Any) -> str | None:
    """Why a frame the capture gave is not an image the face crop takes (empty, a raw buffer, two channels of
    packed YUYV, ...), else None. Such a frame counts as a failed read: one of them ended the whole run with the
    face crop's error."""
    try:
        check_frame(image)
    except ConfigError as e:
        return str(e).removeprefix("face crop: ")
    return None


class CameraSource:
    """Frames from a camera as a `FrameSource`: a reader thread, newest frame wins, reconnects with back-off.

    `read(timeout)` returns `Frame(image, seq, t)` (BGR uint8 [h, w, 3]) or None. Use as a context manager or
    start()/stop().
    """

    def __init__(self, config: CameraConfig | int | str | None = None) -> None:
        if config is None:
            config = CameraConfig()
        elif not isinstance(config, CameraConfig):
            config = CameraConfig(source=config)
        self.config = config
        self._holder = LatestFrame()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = config.make_backoff()
        self._healthy = False
        self._t0 = 0.0
        self._frame_at = 0.0  # monotonic time of the newest frame (the reader thread's)
        self.opens = 0
        """Successful opens of the capture (1 + reconnections)."""
        self.failed_attempts = 0
        """Opens that failed, and captures lost after opening, in total."""
        self.last_error: str | None = None
        self.last_reason: str | None = None
        """Why the last open or capture failed, without the source's name or the retry (None once frames come)."""
        self.actual: tuple[int, int, float] | None = None
        """(width, height, fps) the device reported after the last open (it may differ from what was asked)."""
        self.backend_name: str | None = None

    # ------------------------------------------------------------------ public
    def start(self) -> CameraSource:
        """Check the source and start the reader thread. Does not wait for the camera: a camera that is not
        there yet is retried in the background (`healthy` stays False)."""
        if self._thread is not None and self._thread.is_alive():
            return self
        cv2 = import_cv2("the camera")
        target, api, name = resolve_backend(self.config, cv2)
        if self.config.kind == "file" and not Path(str(target)).exists():
            raise VideoFormatError(
                f"camera source {target}: no such file (and not a device, URL or pipeline)"
            )
        self.backend_name = name
        self._stop.clear()
        self._holder.reopen()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, args=(cv2, target, api), name=f"camera {target}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the reader thread and release the camera; True when the thread has ended. A read blocked in
        the driver ends within `read_timeout` (network) or the driver's own timeout; `timeout` bounds the
        wait (default read_timeout + 1 s); the thread is a daemon, so a stuck one cannot hold up exit."""
        self._stop.set()
        self._holder.close()
        thread = self._thread
        if thread is None:
            return True
        thread.join(self.config.read_timeout + 1.0 if timeout is None else timeout)
        self._healthy = False
        return not thread.is_alive()

    def read(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet returned, waiting up to `timeout` s (None: until one comes or stop());
        None on timeout, after stop(), or while the camera is lost."""
        if self._stop.is_set():
            return None
        return self._holder.get(timeout)

    def __enter__(self) -> CameraSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ reader thread
    def _open(self, cv2: Any, target: int | str, api: int) -> Any:
        cfg = self.config
        params: list[int] = []
        if api == cv2.CAP_FFMPEG:
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(cfg.open_timeout * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(cfg.read_timeout * 1000),
            ]  # fmt: skip
        cap = cv2.VideoCapture(target, api, params) if params else cv2.VideoCapture(target, api)
        if not cap.isOpened():
            cap.release()
            return None
        if cfg.kind in ("index", "device"):
            if cfg.fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*cfg.fourcc))
            if cfg.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
            if cfg.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
            if cfg.fps:
                cap.set(cv2.CAP_PROP_FPS, cfg.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fewer driver buffers queued: less latency
        self.actual = (
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            float(cap.get(cv2.CAP_PROP_FPS)),
        )
        return cap

    def _lost(self, why: str) -> None:
        self._healthy = False
        self.failed_attempts += 1
        self.last_reason = why
        self.last_error = f"camera {self.config.source!r} ({self.backend_name}): {why}; retrying in {self._backoff.peek():.1f} s"

    def _run(self, cv2: Any, target: int | str, api: int) -> None:
        cfg = self.config
        while not self._stop.is_set():
            try:
                cap = self._open(cv2, target, api)
            except cv2.error as exc:  # a malformed pipeline or URL: reported, retried like a missing camera
                cap = None
                self._lost(f"cannot open: {exc}")
            else:
                if cap is None:
                    self._lost("cannot open")
            if cap is None:
                if self._backoff.wait(self._stop):
                    break
                continue
            self.opens += 1
            failures = 0
            unusable = None  # why the last frame read was not an image (shape, dtype), else None
            try:
                while not self._stop.is_set():
                    ok, image = cap.read()
                    unusable = _unusable(image) if ok and image is not None else None
                    if ok and image is not None and unusable is None:
                        failures = 0
                        self._frame_at = time.monotonic()
                        if not self._healthy or self.last_error is not None:
                            self._healthy = True
                            self._backoff.reset()
                            self.last_error = self.last_reason = None
                        self._holder.put(image, time.monotonic() - self._t0)
                        continue
                    failures += 1
                    if failures >= cfg.max_read_failures:
                        break
            except cv2.error as exc:
                self.last_error = f"read failed: {exc}"
            finally:
                cap.release()
            if self._stop.is_set():
                break
            if unusable is not None:
                self._lost(f"{failures} frames in a row were not images: {unusable}")
            else:
                self._lost(f"no frame in {failures} reads (disconnected, or the end of a file)")
            if self._backoff.wait(self._stop):
                break
        self._healthy = False

    # ------------------------------------------------------------------ state
    @property
    def healthy(self) -> bool:
        """True while frames are coming; False before the first frame, while reconnecting, and while an open
        camera has given no frame for `stall_timeout` s (its read hangs; `last_error` says so)."""
        if not self._healthy:
            return False
        idle = time.monotonic() - self._frame_at
        if idle <= self.config.stall_timeout:
            return True
        self.last_reason = f"no frame for {idle:.1f} s (the camera stalled)"
        self.last_error = f"camera {self.config.source!r} ({self.backend_name}): {self.last_reason}"
        return False

    @property
    def finished(self) -> bool:
        """A camera never runs out (False); see `healthy`."""
        return False

    @property
    def dropped(self) -> int:
        """Frames captured but replaced by a newer one before any read() took them."""
        return self._holder.dropped

    @property
    def frames(self) -> int:
        """Frames captured so far."""
        return self._holder.seq

    @property
    def retry_attempts(self) -> int:
        """Failed attempts since the last good frame (the back-off's exponent)."""
        return self._backoff.attempts

    def __repr__(self) -> str:
        return f"CameraSource({self.config.source!r}, {self.backend_name}, {'healthy' if self._healthy else 'not healthy'})"
