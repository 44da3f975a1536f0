"""Audio input for edge-ser: a strict numpy WAV reader/writer, a polyphase resampler and `load` on top.

Only numpy is imported here; soundfile is imported inside `load`, and only for non-WAV files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

from edge_ser.audio.channels import to_mono
from edge_ser.audio.not_audio import decode_problem
from edge_ser.audio.polyphase import resample
from edge_ser.audio.wav import MAX_SR, MIN_SR, WavCodecError, read_wav, write_wav
from edge_ser.errors import AudioFormatError, ConfigError, MissingDependencyError
from edge_ser.fileio import check_regular_file
from edge_ser.native_log import native_messages_named

__all__ = ["load", "read_wav", "resample", "write_wav"]

_WAV_SUFFIXES = (".wav", ".wave")


def _read_other(path: Path) -> tuple[np.ndarray, int]:
    """Non-WAV audio (FLAC, Ogg, MP3...) via soundfile, as float32 [n, channels]; its errors become ours."""
    try:
        import soundfile
    except ImportError:
        raise MissingDependencyError("soundfile", "device", "non-WAV audio") from None
    check_regular_file(path, error=AudioFormatError)  # libsndfile would block on a FIFO
    try:
        with native_messages_named(path):  # libsndfile's mpg123 notes name the file
            y, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError, TypeError) as e:  # LibsndfileError is a RuntimeError
        raise AudioFormatError(f"{path}: cannot decode audio: {decode_problem(path, e)}") from None
    if not (MIN_SR <= sr <= MAX_SR):
        raise AudioFormatError(
            f"{path}: sample rate {sr} Hz is outside the allowed range {MIN_SR}..{MAX_SR} Hz"
        )
    if y.shape[0] == 0:
        raise AudioFormatError(f"{path}: no audio: the file holds 0 frames")
    bad = ~np.isfinite(y)
    if bad.any():
        first = int(np.flatnonzero(bad.reshape(-1))[0])
        raise AudioFormatError(
            f"{path}: {int(np.count_nonzero(bad))} non-finite samples (NaN or inf); "
            f"first at sample index {first}"
        )
    return y, int(sr)


def load(
    path: str | os.PathLike,
    *,
    sr: int | None = None,
    mono: bool = True,
    dtype: DTypeLike = np.float32,
) -> tuple[np.ndarray, int]:
    """Read an audio file as float samples in [-1, 1] and its sample rate in Hz.

    Shape [n] when `mono` (the channel mean, or the loudest channel when the channels cancel:
    `edge_ser.audio.channels`), else [n, channels]; resampled to `sr` Hz when given.
    WAV goes through `read_wav`; a video's sound track and audio-only containers (M4A, AAC, MKA, WebM audio...:
    `edge_ser.audio.stream.uses_ffmpeg`) through ffmpeg; other formats need
    soundfile. Bad files raise AudioFormatError; no ffmpeg for a file that needs it, FFmpegNotFoundError.
    """
    if sr is not None and (isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0):
        raise ConfigError(f"load: sr must be a positive int or None, got {sr!r}")
    out_dtype = np.dtype(dtype)
    if not np.issubdtype(out_dtype, np.floating):
        raise ConfigError(f"load: dtype must be a float type, got {out_dtype}")
    from edge_ser.audio.container import load_container_audio
    from edge_ser.audio.stream import uses_ffmpeg

    path = Path(path)
    if uses_ffmpeg(path):
        y, file_sr = load_container_audio(path, mono=False)
    elif path.suffix.lower() in _WAV_SUFFIXES:
        try:
            y, file_sr = read_wav(path)
        except WavCodecError:  # mu-law (telephone), A-law, ADPCM: libsndfile decodes them
            y, file_sr = _read_other(path)
    else:
        y, file_sr = _read_other(path)
    if out_dtype != y.dtype:
        y = y.astype(out_dtype)
    if mono:
        y = to_mono(y, path)
    if sr is not None and sr != file_sr:
        y = resample(y, file_sr, sr, axis=0)
        file_sr = int(sr)
    return np.ascontiguousarray(y), file_sr
