"""A video Record -> the audio-visual model's inputs, through the same pre-processing as the device.

`record_clip` decodes what one clip needs: the `spec.frames` frames that `sample_frame_indices` picks
(`edge_ser.vision.video.read_sampled`, one decode pass) and the audio, mono at
`spec.feature_spec.sample_rate`. The audio comes from the record's `source` when that is an audio file
(e.g. the RAVDESS `03-...wav` or SAVEE `AudioData` twin of the video, via `edge_ser.audio.load`), else from
the video container through ffmpeg (`edge_ser.audio.container.load_container_audio`); either way the rate
change is `edge_ser.audio.resample`. `record_inputs` then runs `edge_ser.inputs.av.clip_inputs` with the
shared Haar crop, exactly as the live runtime does.

Passing only the k sampled frames to `clip_inputs` gives the same faces as passing all of them:
`sample_frame_indices(k, k)` is 0..k-1, so it takes the frames as they are.
"""

from __future__ import annotations

import numpy as np

from converters.data.loaders import AUDIO_EXTENSIONS
from converters.data.records import Record
from edge_ser.audio import load
from edge_ser.audio.container import load_container_audio
from edge_ser.errors import AudioFormatError, ConfigError
from edge_ser.inputs.av import AVInputSpec, CropFn, clip_inputs
from edge_ser.vision.video import read_sampled


def record_audio(record: Record, sr: int) -> np.ndarray:
    """The record's audio as mono float32 [n] at `sr` Hz: its audio `source`, else its video's audio track.

    A video record whose loader found no audio for it (meta audio="none", e.g. a RAVDESS video-only clip
    without its 03 WAV) raises AudioFormatError saying so, before ffmpeg is run.
    """
    if record.source.suffix.lower() in AUDIO_EXTENSIONS:
        y, _ = load(record.source, sr=sr)
        return y
    if record.get("audio") == "none":
        expected = record.get("expected_audio")
        wanted = f" (expected {expected} under the data set folder)" if expected else ""
        raise AudioFormatError(
            f"{record.source}: {record.dataset} clip has no audio: the video has no audio track and no "
            f"matching audio file was found{wanted}"
        )
    y, _ = load_container_audio(record.source, sr=sr)
    return y


def record_clip(record: Record, spec: AVInputSpec | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(frames uint8 [spec.frames, h, w, 3] BGR, audio float32 [n], sample rate) of one video record."""
    spec = spec or AVInputSpec()
    if record.video is None:
        raise ConfigError(f"{record.source}: record of {record.dataset} has no video (Record.video is None)")
    sr = spec.feature_spec.sample_rate
    frames = read_sampled(record.video, spec.frames).frames
    return frames, record_audio(record, sr), sr


def record_inputs(
    record: Record, spec: AVInputSpec | None = None, crop_fn: CropFn | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(faces [frames, S, S] float32 in [0, 1], audio [segments, n_mfcc] float32) of one video record.

    `crop_fn` as in `clip_inputs` (None: the shared Haar crop `default_cropper(spec.face_size)`).
    """
    spec = spec or AVInputSpec()
    frames, y, sr = record_clip(record, spec)
    return clip_inputs(list(frames), y, sr, spec, crop_fn)
