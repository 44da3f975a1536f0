"""The audio track of a video container (MP4, MOV, AVI, MKV, WebM...), or of an audio-only one (M4A, AAC, MKA, WebM
audio, 3GP/AMR, WMA: `AUDIO_CONTAINER_EXTENSIONS`), through an ffmpeg subprocess.

`load_container_audio(path, sr=...)` runs

    ffmpeg -i <path> -map 0:a:0 -vn -sn -dn -c:a pcm_f32le -f f32le pipe:1

and reads interleaved float32 samples from the pipe, at the track's own sample rate and channel count (read from
ffmpeg's report of its output stream). Choices, and why:

- The first audio stream (`0:a:0`) only; a file without one raises AudioFormatError naming the file and the
  streams it does have.
- Down-mix to mono in edge-ser, not ffmpeg: `edge_ser.audio.channels.Downmix`, the one down-mix of a WAV, a FLAC
  and pushed chunks (the channel mean; the loudest channel when the channels cancel, anti-phase stereo that
  ffmpeg's `-ac 1` averaged to silence), so a clip's level does not depend on where its audio came from.
- The rate change, when `sr` is given, is `edge_ser.audio.resample` (not ffmpeg's swresample), the same
  resampler a WAV goes through, so the features of one clip do not depend on its container either.

ffmpeg is found as: $EDGE_SER_FFMPEG (a path to the binary), else `ffmpeg` on PATH, else the static binary
of the `imageio-ffmpeg` package if it is installed. None of them: FFmpegNotFoundError (a
MissingDependencyError) saying how to get one. numpy + the standard library only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from edge_ser.audio.channels import to_mono
from edge_ser.audio.polyphase import resample
from edge_ser.audio.wav import MAX_SR, MIN_SR
from edge_ser.errors import AudioFormatError, ConfigError, MissingDependencyError
from edge_ser.fileio import check_regular_file

FFMPEG_ENV = "EDGE_SER_FFMPEG"
AUDIO_CONTAINER_EXTENSIONS = (".m4a", ".m4b", ".aac", ".mka", ".weba", ".3gp", ".amr", ".wma")
"""Audio-only files libsndfile does not read and ffmpeg does: phone voice recorders' M4A (AAC in MP4; .m4b an
audiobook's), raw AAC (ADTS), Matroska audio, WebM audio (Opus or Vorbis from a browser's MediaRecorder), 3GP / AMR
voice notes, Windows Media Audio. `edge_ser.audio.load` and `open_blocks` read them as a video's sound track
(`edge_ser.audio.stream.uses_ffmpeg`)."""
DEFAULT_TIMEOUT = 120.0  # seconds; a 4 s clip decodes in ~30 ms
_STDERR_TAIL = 1200  # characters of ffmpeg's stderr quoted in an error

_OUTPUT_RATE = re.compile(
    r"Output #0.*?Stream #\d+:\d+.*?Audio: pcm_f32le[^\n]*?(\d+) Hz, ([^,\n]+),[^\n]*?(\d+) kb/s", re.DOTALL
)
_LAYOUT_CHANNELS = re.compile(r"(\d+) channels")
_STREAM = re.compile(r"^\s*Stream #0:\d+\S*: (\w+): (.*)$", re.MULTILINE)


class FFmpegNotFoundError(MissingDependencyError):
    """No ffmpeg binary was found; the message says which file needed it and how to install one."""

    def __init__(self, message: str) -> None:
        super(MissingDependencyError, self).__init__(message)  # skip the parent: its text is about pip extras
        self.package = "ffmpeg"
        self.extra = ""


def install_hint() -> str:
    return (
        "install one (`sudo apt-get install ffmpeg`, or `pip install imageio-ffmpeg`, which ships a static "
        f"binary), or point ${FFMPEG_ENV} at an ffmpeg binary, or give the clip's audio as a separate WAV file"
    )


def find_ffmpeg() -> str:
    """Path of the ffmpeg binary: $EDGE_SER_FFMPEG, else `ffmpeg` on PATH, else imageio-ffmpeg's binary.

    FFmpegNotFoundError when none is found, or when $EDGE_SER_FFMPEG names something that is not an
    executable file.
    """
    env = os.environ.get(FFMPEG_ENV, "").strip()
    if env:
        exe = Path(env).expanduser()
        if exe.is_file() and os.access(exe, os.X_OK):
            return str(exe)
        raise FFmpegNotFoundError(
            f"${FFMPEG_ENV}={env} is not an executable ffmpeg binary; " + install_hint()
        )
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg
    except ImportError:
        pass
    else:
        try:
            return str(imageio_ffmpeg.get_ffmpeg_exe())
        except RuntimeError:  # the package is installed but has no binary for this platform
            pass
    raise FFmpegNotFoundError("ffmpeg not found (no ffmpeg on PATH, no imageio-ffmpeg); " + install_hint())


class NoAudioStreamError(AudioFormatError):
    """A media file that holds no audio stream (a silent video): for a fusion bundle a modality not present,
    for a model that needs the audio an error."""


def input_streams(stderr: str) -> list[tuple[str, str]]:
    """(kind, description) of each stream of input #0 that ffmpeg reported, e.g. ('Video', 'h264 ...'): the one
    reading of ffmpeg's stream list (`edge_ser.vision.video.media_streams` too)."""
    head = stderr.split("Output #0", 1)[0].split("Stream mapping:", 1)[0]
    return [(kind, desc.strip()) for kind, desc in _STREAM.findall(head)]


def ffmpeg_failure(path: Path, code: int, stderr: str) -> AudioFormatError:
    """The most specific AudioFormatError for an ffmpeg run that failed."""
    streams = input_streams(stderr)
    if "Input #0" in stderr and not any(kind == "Audio" for kind, _ in streams):
        found = "; ".join(f"{kind}: {desc.split(',')[0]}" for kind, desc in streams) or "none"
        return NoAudioStreamError(f"{path}: no audio stream in this file (streams: {found})")
    if "Invalid data found when processing input" in stderr or "moov atom not found" in stderr:
        return AudioFormatError(
            f"{path}: ffmpeg cannot read this file: not a media file, or truncated/damaged "
            f"(ffmpeg: {stderr.strip()[-_STDERR_TAIL:]})"
        )
    return AudioFormatError(f"{path}: ffmpeg failed (exit code {code}): {stderr.strip()[-_STDERR_TAIL:]}")


def check_input(path: Path) -> None:
    """Reject a missing, directory, non-regular (FIFO, device: ffmpeg would block on it) or empty input up
    front, with a clearer message than ffmpeg's."""
    if check_regular_file(path, error=AudioFormatError).st_size == 0:
        raise AudioFormatError(f"{path}: empty file (0 bytes)")


def resolve_ffmpeg(path: Path, ffmpeg: str | os.PathLike | None) -> str | os.PathLike:
    """The given ffmpeg binary, else `find_ffmpeg()`'s, its not-found error naming the file that needed it."""
    if ffmpeg is not None:
        return ffmpeg
    try:
        return find_ffmpeg()
    except FFmpegNotFoundError as e:
        raise FFmpegNotFoundError(f"{path}: cannot read the audio track: {e}") from None


def ffmpeg_command(ffmpeg: str | os.PathLike, path: Path) -> list[str]:
    """The ffmpeg command that writes the first audio track of `path` to stdout as interleaved f32le, every channel
    (`output_format` reads how many from ffmpeg's report)."""
    return [
        os.fspath(ffmpeg), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info",
        "-i", str(path), "-map", "0:a:0", "-vn", "-sn", "-dn",
        "-c:a", "pcm_f32le", "-f", "f32le", "pipe:1",
    ]  # fmt: skip


def _run_ffmpeg(path: Path, ffmpeg: str | os.PathLike, timeout: float) -> subprocess.CompletedProcess:
    """Decode the first audio track to mono f32le on stdout; a failed launch or timeout is a typed error."""
    cmd = ffmpeg_command(ffmpeg, path)
    try:
        return subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise FFmpegNotFoundError(
            f"{path}: ffmpeg binary {ffmpeg} does not exist; " + install_hint()
        ) from None
    except PermissionError:
        raise FFmpegNotFoundError(
            f"{path}: ffmpeg binary {ffmpeg} is not executable; " + install_hint()
        ) from None
    except subprocess.TimeoutExpired:
        raise AudioFormatError(
            f"{path}: ffmpeg did not finish decoding the audio within {timeout} s"
        ) from None


def output_format(path: Path, stderr: str) -> tuple[int, int]:
    """The sample rate and channel count ffmpeg reports for its output stream, the rate checked against the range a
    WAV may have. The channels: from the layout's name ('mono', 'stereo', '6 channels'), else from the bit rate
    (32 bits a sample: '5.1, flt, 8467 kb/s' at 44100 Hz is 6)."""
    found = _OUTPUT_RATE.search(stderr)
    if found is None:
        raise AudioFormatError(
            f"{path}: could not read the sample rate and channels from ffmpeg's report: "
            f"{stderr.strip()[-_STDERR_TAIL:]}"
        )
    file_sr, layout, kbps = int(found.group(1)), found.group(2).strip(), int(found.group(3))
    if not MIN_SR <= file_sr <= MAX_SR:
        raise AudioFormatError(f"{path}: audio sample rate {file_sr} Hz is outside {MIN_SR}..{MAX_SR} Hz")
    named = {"mono": 1, "stereo": 2}.get(layout)
    n = _LAYOUT_CHANNELS.fullmatch(layout)
    by_rate = kbps * 1000 / (32 * file_sr)
    channels = named or (int(n.group(1)) if n else round(by_rate))
    if channels < 1 or (named is None and n is None and abs(by_rate - channels) > 0.05):
        raise AudioFormatError(
            f"{path}: could not tell the channel count of ffmpeg's output ({layout}, {kbps} kb/s at {file_sr} Hz)"
        )
    return file_sr, channels


def _samples(path: Path, raw: bytes, channels: int = 1) -> np.ndarray:
    """ffmpeg's raw f32le output as float32 [n, channels], rejecting partial, empty or non-finite audio."""
    if len(raw) % (4 * channels):
        raise AudioFormatError(
            f"{path}: ffmpeg wrote {len(raw)} bytes, not a whole number of {channels}-channel float32 frames"
        )
    y = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if y.size == 0:
        raise AudioFormatError(f"{path}: the audio stream decodes to 0 samples")
    bad = ~np.isfinite(y)
    if bad.any():
        raise AudioFormatError(
            f"{path}: {int(bad.sum())} non-finite samples (NaN or inf) in the decoded audio; "
            f"first at sample index {int(np.flatnonzero(bad)[0])}"
        )
    return y.reshape(-1, channels)


def load_container_audio(
    path: str | os.PathLike,
    *,
    sr: int | None = None,
    ffmpeg: str | os.PathLike | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    mono: bool = True,
) -> tuple[np.ndarray, int]:
    """The first audio track of a media file as mono float32 [n] in [-1, 1] (`edge_ser.audio.channels.Downmix`;
    [n, channels] with mono=False) and its sample rate in Hz.

    `sr`: resample to this rate with `edge_ser.audio.resample` (None keeps the track's rate). `ffmpeg`: the
    binary to run (default `find_ffmpeg()`). Raises AudioFormatError naming the file (missing, no audio
    stream, unreadable, empty or non-finite audio, ffmpeg failure with its stderr tail, timeout) and
    FFmpegNotFoundError when there is no ffmpeg.
    """
    if sr is not None and (isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0):
        raise ConfigError(f"load_container_audio: sr must be a positive int or None, got {sr!r}")
    path = Path(path)
    check_input(path)
    ffmpeg = resolve_ffmpeg(path, ffmpeg)
    proc = _run_ffmpeg(path, ffmpeg, timeout)
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise ffmpeg_failure(path, proc.returncode, stderr)
    file_sr, channels = output_format(path, stderr)
    y = _samples(path, proc.stdout, channels)
    if mono:
        y = to_mono(y, path)
    if sr is not None and int(sr) != file_sr:
        y = resample(y, file_sr, int(sr), axis=0)
        file_sr = int(sr)
    return np.ascontiguousarray(y), file_sr
