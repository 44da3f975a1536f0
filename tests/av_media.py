"""Real media files for the video and audio-visual tests: drawn faces written with cv2.VideoWriter, and a
synthetic speech track muxed in with ffmpeg (tests that need ffmpeg skip when none is found)."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import numpy as np
import pytest

from converters.data.synthetic import SyntheticSpec, generate
from converters.data.synthetic_av import SyntheticAVSpec, generate_faces
from edge_ser.audio import write_wav
from edge_ser.audio.container import FFmpegNotFoundError, find_ffmpeg

FPS = 25.0
N_FRAMES = 30  # 1.2 s at 25 fps
SIZE = (160, 120)  # width, height
AUDIO_SR = 48000  # RAVDESS's rate
AAC_FRAME = 1024
"""Samples per AAC frame: an encoder pads the last one. Debian's ffmpeg 5.1 keeps that padding (silence at the
end of the decoded track, up to one frame), newer builds trim it by the mp4's edit list."""
DURATION = N_FRAMES / FPS


@functools.cache
def face_frames(label: str = "happy", seed: int = 1) -> np.ndarray:
    """[N_FRAMES, h, w, 3] uint8 BGR drawn faces that the Haar cascade finds (read-only).

    The drawn face drifts a little every frame (the generator is made for 6-frame clips); over 30 frames
    "happy" seed 1 stays detectable in every frame, seed 0 is lost after frame 20.
    """
    frames = generate_faces(
        SyntheticAVSpec(n_per_class=1, frames=N_FRAMES, frame_size=SIZE, seed=seed, labels=(label,))
    )
    out = frames[0][0]
    out.setflags(write=False)
    return out


@functools.cache
def speech(label: str = "happy", seed: int = 0) -> np.ndarray:
    """DURATION s of synthetic speech at AUDIO_SR, float32 (read-only)."""
    spec = SyntheticSpec(
        n_per_class=1, sr=AUDIO_SR, duration=DURATION, n_speakers=1, seed=seed, labels=(label,)
    )
    y = generate(spec)[0][0]
    y.setflags(write=False)
    return y


def ffmpeg_or_skip() -> str:
    try:
        return find_ffmpeg()
    except FFmpegNotFoundError as e:
        pytest.skip(f"no ffmpeg: {e}")


def write_video(path: Path, frames: np.ndarray | None = None, fourcc: str = "mp4v", fps: float = FPS) -> Path:
    """A real video file of `frames` (default: the drawn faces) through cv2.VideoWriter, no audio."""
    import cv2

    frames = face_frames() if frames is None else frames
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"cv2.VideoWriter cannot write {path} with {fourcc}"
    for frame in frames:
        writer.write(np.ascontiguousarray(frame))
    writer.release()
    return path


def write_speech(path: Path, y: np.ndarray | None = None, sr: int = AUDIO_SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_wav(path, speech() if y is None else y, sr)


def mux(ffmpeg: str, video: Path, audio: Path, out: Path, codec: str = "aac") -> Path:
    """`out` = the video stream of `video` (copied) + `audio` encoded with `codec`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [ffmpeg, "-y", "-v", "error", "-i", str(video), "-i", str(audio), "-map", "0:v:0", "-map", "1:a:0"]
    cmd += ["-c:v", "copy", "-c:a", codec, str(out)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return out
