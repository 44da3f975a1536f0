"""Where the live loop's audio and frames come from: a microphone and a camera, or files in their place.

`CaptureSettings` says which (and how: device, size, rate, pacing); `open_capture` builds the sources for a
bundle's input kind: audio at the kind's rate (a microphone opened at a rate it supports and resampled; for a
face-only model, silence as long as the video, as the loop's clock), and a camera (or video file) plus a face
tracker only when the model takes faces. `edge-ser run` and `Recognizer.stream` both go through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_ser.errors import ConfigError
from edge_ser.inputs import InputKind


@dataclass(frozen=True)
class CaptureSettings:
    """The live sources: the default microphone and camera 0 unless files are given."""

    mic: int | str | None = None
    """Microphone: a PortAudio device index or part of its name; None: the default input."""
    channels: int = 1
    """Microphone channels captured (mixed down to mono)."""
    mic_rate: int | None = None
    """Rate the microphone is opened at; None: the model's if the device takes it, else one it supports
    (the audio is resampled to the model's rate either way; see `edge_ser.live.mic`)."""
    audio_file: str | Path | None = None
    """A WAV file instead of the microphone."""
    camera: int | str | None = None
    """Camera: index, /dev/videoN, a GStreamer pipeline or an RTSP URL; None: camera 0."""
    width: int = 640
    height: int = 480
    fps: float | None = None
    """Camera frame rate; None: the camera's own."""
    video_file: str | Path | None = None
    """A video file or a folder of images instead of the camera."""
    image_fps: float = 25.0
    """Frame rate of an image folder."""
    realtime: bool = True
    """Files are played in real time (True) or as fast as the loop takes them (reproducible)."""
    face_every: int = 5
    """A full face detection every k-th crop (a scaled search around the last face in between)."""

    def __post_init__(self) -> None:
        if self.channels < 1:
            raise ConfigError(f"channels={self.channels} must be >= 1")
        if self.mic_rate is not None and self.mic_rate < 1:
            raise ConfigError(f"mic_rate={self.mic_rate} must be >= 1 Hz (or None: choose)")
        if self.face_every < 1:
            raise ConfigError(f"face_every={self.face_every} must be >= 1")


def _device(value: int | str | None) -> int | str | None:
    """A device given as text: "2" is index 2, anything else a name (or a pipeline / URL)."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


def open_capture(settings: CaptureSettings, kind: InputKind) -> tuple[Any, Any, Any]:
    """(audio source, frame source or None, face tracker or None) for a model of this input kind.

    Nothing is started here: the live loop starts the sources and stops them at the end.
    """
    s = settings
    frames = _frames(s) if kind.faces else None
    if not kind.hears:  # a face-only model: silence as long as the video keeps the loop's clock
        from edge_ser.live.files import SilenceSource

        if s.audio_file is not None:
            raise ConfigError(f"{s.audio_file}: this bundle takes faces only, so there is no audio to play")
        duration = frames.frame_count / frames.fps if getattr(frames, "frame_count", 0) else None
        audio = SilenceSource(duration, kind.sample_rate, realtime=s.realtime)
    elif s.audio_file is not None:
        from edge_ser.live.files import WavSource

        audio = WavSource(Path(s.audio_file), kind.sample_rate, realtime=s.realtime)
    else:
        from edge_ser.live.mic import MicConfig, MicSource

        audio = MicSource(
            MicConfig(
                device=_device(s.mic), rate=kind.sample_rate, capture_rate=s.mic_rate, channels=s.channels
            )
        )
    if frames is None:
        return audio, None, None
    from edge_ser.live.face_track import FaceTracker, TrackSpec

    return audio, frames, FaceTracker(kind.face_crop, TrackSpec(every=s.face_every))


def _frames(s: CaptureSettings) -> Any:
    """The frame source: the video file (or image folder) when given, else the camera."""
    if s.video_file is not None:
        from edge_ser.live.files import VideoFileSource

        video = Path(s.video_file)
        return VideoFileSource(video, fps=s.image_fps if video.is_dir() else None, realtime=s.realtime)
    from edge_ser.live.camera import CameraConfig, CameraSource

    source = _device(s.camera if s.camera is not None else 0)
    return CameraSource(CameraConfig(source=source, width=s.width, height=s.height, fps=s.fps))


__all__ = ["CaptureSettings", "open_capture"]
