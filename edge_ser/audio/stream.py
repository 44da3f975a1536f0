"""Audio files read block by block: a WAV, another audio format (soundfile) or the audio track of a video
(ffmpeg), as mono float32 blocks at the file's own rate, so a file of any length costs a block of memory.

    with open_blocks("long.wav") as s:          # AudioFormatError naming the file if it is not usable
        for block in s:                         # mono float32 [k] at s.sample_rate
            ...

Mono is the channel mean (as `edge_ser.audio.load` takes it; the loudest channel when the channels cancel:
`edge_ser.audio.channels.Downmix`); the rate change is the caller's
(`edge_ser.audio.polyphase.Resampler` streams it with the same filter as `resample`). Only regular files are
opened: a FIFO or a device is refused before anything waits on it.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from edge_ser.audio.channels import Downmix
from edge_ser.audio.level import clipped_share
from edge_ser.audio.not_audio import decode_problem
from edge_ser.audio.wav import BLOCK_FRAMES, MAX_SR, MIN_SR, WavCodecError, WavReader
from edge_ser.errors import AudioFormatError, ConfigError, MissingDependencyError
from edge_ser.fileio import check_regular_file
from edge_ser.native_log import native_messages_named

WAV_SUFFIXES = (".wav", ".wave")


class BlockStream:
    """Mono float32 blocks of one file at `sample_rate` (iterate once); `close()` (or `with`) frees it."""

    sample_rate: int
    path: Path

    def __iter__(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file (and stop a decoder process)."""

    def __enter__(self) -> BlockStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _WavBlocks(BlockStream):
    def __init__(self, path: Path, frames: int) -> None:
        self.path, self._frames = path, frames
        self._r = WavReader(path)
        self.sample_rate = self._r.sample_rate
        self._mono = Downmix(path)

    def __iter__(self) -> Iterator[np.ndarray]:
        for y in self._r.blocks(self._frames):
            yield self._mono(y)

    def close(self) -> None:
        self._r.close()


class _SoundFileBlocks(BlockStream):
    """FLAC, Ogg, MP3... through soundfile (libsndfile), checked as `edge_ser.audio.load` checks them."""

    def __init__(self, path: Path, frames: int) -> None:
        try:
            import soundfile
        except ImportError:
            raise MissingDependencyError("soundfile", "device", "non-WAV audio") from None
        check_regular_file(path, error=AudioFormatError)  # libsndfile would block on a FIFO
        self.path, self._frames = path, frames
        try:
            with native_messages_named(path):
                self._f = soundfile.SoundFile(str(path))
        except (RuntimeError, OSError, ValueError, TypeError) as e:  # LibsndfileError is a RuntimeError
            raise AudioFormatError(f"{path}: cannot decode audio: {decode_problem(path, e)}") from None
        self.sample_rate = int(self._f.samplerate)
        self._mono = Downmix(path)
        if not (MIN_SR <= self.sample_rate <= MAX_SR):
            self._f.close()
            raise AudioFormatError(
                f"{path}: sample rate {self.sample_rate} Hz is outside the allowed range {MIN_SR}..{MAX_SR} Hz"
            )

    def __iter__(self) -> Iterator[np.ndarray]:
        done = 0
        while True:
            try:
                with native_messages_named(self.path):
                    y = self._f.read(self._frames, dtype="float32", always_2d=True)
            except (RuntimeError, OSError, ValueError) as e:
                raise AudioFormatError(f"{self.path}: cannot decode audio at frame {done}: {e}") from None
            if y.shape[0] == 0:
                break
            _check_finite(self.path, y.reshape(-1), done * y.shape[1])
            done += y.shape[0]
            yield self._mono(y)
        if done == 0:
            raise AudioFormatError(f"{self.path}: no audio: the file holds 0 frames")

    def close(self) -> None:
        self._f.close()


class _FFmpegBlocks(BlockStream):
    """The first audio track of a video or an audio-only container (M4A, AAC...), decoded by an ffmpeg process to
    f32le on a pipe, every channel, made mono by `Downmix` (the command and its choices: `edge_ser.audio.container`)."""

    def __init__(self, path: Path, frames: int) -> None:
        from edge_ser.audio import container

        container.check_input(path)
        self.path, self._bytes = path, frames * 4
        exe = container.resolve_ffmpeg(path, None)
        self._err = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                container.ffmpeg_command(exe, path), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=self._err,
            )  # fmt: skip
        except OSError as e:
            self._err.close()
            raise container.FFmpegNotFoundError(
                f"{path}: cannot run ffmpeg {exe}: {e.strerror or e}; " + container.install_hint()
            ) from None
        first = self._proc.stdout.read(self._bytes)  # ffmpeg reports its output stream before any data
        if not first:
            code = self._proc.wait()
            if code != 0:
                err = self._stderr()
                self.close()
                raise container.ffmpeg_failure(path, code, err)
        try:
            self.sample_rate, self._channels = container.output_format(path, self._stderr())
        except AudioFormatError:
            self.close()
            raise
        self._first, self._bytes = first, self._bytes * self._channels
        self._mono = Downmix(path)

    def _stderr(self) -> str:
        self._err.seek(0)
        return self._err.read(1 << 20).decode("utf-8", "replace")

    def __iter__(self) -> Iterator[np.ndarray]:
        raw, done, carry, frame = self._first, 0, b"", 4 * self._channels
        while raw:
            raw = carry + raw
            cut = len(raw) - len(raw) % frame
            y = np.frombuffer(raw[:cut], dtype="<f4").astype(np.float32)
            carry = raw[cut:]
            _check_finite(self.path, y, done)
            done += y.size
            if y.size:
                yield self._mono(y.reshape(-1, self._channels))
            raw = self._proc.stdout.read(self._bytes)
        code = self._proc.wait()
        if code != 0:
            raise AudioFormatError(f"{self.path}: ffmpeg failed (exit code {code}): {self._stderr()[-1200:]}")
        if carry:
            raise AudioFormatError(
                f"{self.path}: ffmpeg wrote a partial {self._channels}-channel frame at the end"
            )
        if done == 0:
            raise AudioFormatError(f"{self.path}: the audio stream decodes to 0 samples")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._err.close()


def _check_finite(path: Path, y: np.ndarray, first_index: int) -> None:
    bad = ~np.isfinite(y)
    if bad.any():
        raise AudioFormatError(
            f"{path}: non-finite samples (NaN or inf) in the decoded audio; "
            f"first at sample index {first_index + int(np.flatnonzero(bad)[0])}"
        )


def uses_ffmpeg(path: str | os.PathLike) -> bool:
    """Whether `path` is read through ffmpeg, by its extension: a video's sound track or an audio-only container
    (M4A, AAC...: `edge_ser.audio.container.AUDIO_CONTAINER_EXTENSIONS`)."""
    from edge_ser.audio.container import AUDIO_CONTAINER_EXTENSIONS
    from edge_ser.vision.video import VIDEO_EXTENSIONS

    return Path(path).suffix.lower() in AUDIO_CONTAINER_EXTENSIONS + VIDEO_EXTENSIONS


def open_blocks(path: str | os.PathLike, *, frames: int = BLOCK_FRAMES) -> BlockStream:
    """The audio of `path` as mono float32 blocks of up to `frames` samples at its own rate: a WAV through
    `WavReader`, the first audio track of a video or an audio-only container (M4A, AAC...) through ffmpeg
    (`uses_ffmpeg`), anything else through soundfile."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in WAV_SUFFIXES:
        try:
            return _WavBlocks(path, frames)
        except WavCodecError:  # mu-law, A-law, ADPCM: libsndfile decodes them
            return _SoundFileBlocks(path, frames)
    if uses_ffmpeg(path):
        return _FFmpegBlocks(path, frames)
    return _SoundFileBlocks(path, frames)


def has_sound_track(path: str | os.PathLike) -> bool:
    """Whether the media file `path` has an audio track to read (its first block decodes); False for a video
    without one. MissingDependencyError when a video needs ffmpeg and there is none (the caller decides whether
    that is an error)."""
    from edge_ser.audio.container import NoAudioStreamError

    try:
        open_blocks(path, frames=1024).close()
    except NoAudioStreamError:
        return False
    return True


LONG_FILE_SECONDS = 30.0
"""A file up to this long is one clip; a longer one is cut into windows (`file_windows`)."""
FILE_WINDOW_SECONDS = 3.0
"""Window length (and hop: windows do not overlap) of a long file, the live loop's default window."""


class Resampled:
    """A file's mono audio at `sr` Hz in blocks, for a file of any length: a file up to `long_seconds` is
    resampled in one go (exactly `edge_ser.audio.load(path, sr=sr)`; `whole` is True), a longer one block by
    block with the streaming `Resampler` (the same samples up to float32 rounding), holding a block at a time.

    The header is read and checked, and the first `long_seconds` decoded, when it is built. `measure_clipping`: a
    whole file's share of samples at full scale is counted as recorded (`source_clipped`), before resampling
    rounds its flat tops; only `file_windows` asks (feature extraction and live playback do not pay for it).
    """

    def __init__(
        self, path: str | os.PathLike, sr: int, *, long_seconds: float = LONG_FILE_SECONDS,
        frames: int = BLOCK_FRAMES, measure_clipping: bool = False,
    ) -> None:  # fmt: skip
        from edge_ser.audio.polyphase import Resampler, resample

        self.path, self.sample_rate = Path(path), int(sr)
        self._s = open_blocks(path, frames=frames)
        try:
            src = self.source_rate = self._s.sample_rate
            self._blocks = iter(self._s)
            self._head: list[np.ndarray] = []
            n, limit = 0, int(long_seconds * src)
            for b in self._blocks:
                self._head.append(b)
                n += b.size
                if n > limit:
                    break
            else:
                y = np.concatenate(self._head) if self._head else np.zeros(0, np.float32)
                self.source_clipped: float | None = clipped_share(y) if measure_clipping else None
                self._head = [resample(y, src, self.sample_rate) if src != self.sample_rate else y]
                self.whole = True
                self.duration: float | None = self._head[0].size / self.sample_rate
                self._s.close()
                return
        except BaseException:
            self._s.close()
            raise
        self.whole = False
        self.source_clipped = None
        self.duration = None  # not known until the end of a long file (its header may be all there is)
        self._rs = Resampler(src, self.sample_rate)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.whole:
            yield from self._head
            self._head = []
            return
        for b in itertools.chain(self._drain_head(), self._blocks):
            out = self._rs.feed(b)
            if out.size:
                yield out
        last = self._rs.finish()
        if last.size:
            yield last

    def _drain_head(self) -> Iterator[np.ndarray]:
        while self._head:
            yield self._head.pop(0)

    def close(self) -> None:
        self._s.close()

    def __enter__(self) -> Resampled:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AudioWindow(NamedTuple):
    """One stretch of a file's audio at the analysis rate, and the rate the file was recorded at; a whole file's
    share of samples at full scale as recorded (`clipped`, None when not measured: resampling overshoots a clipped
    file's flat tops, so they are counted before it)."""

    start: float
    end: float
    samples: np.ndarray
    whole: bool
    source_rate: int
    clipped: float | None = None


def file_windows(
    path: str | os.PathLike,
    sr: int,
    *,
    window_seconds: float = FILE_WINDOW_SECONDS,
    long_seconds: float = LONG_FILE_SECONDS,
) -> Iterator[AudioWindow]:
    """(start s, end s, mono float32 samples at `sr`, whole, the file's own rate) of a file: the whole file as
    one clip (whole True) when it lasts at most `long_seconds` (exactly as `edge_ser.audio.load`), else
    consecutive windows of `window_seconds` (streamed through `Resampled`); a last stretch shorter than half a
    window joins the window before it (`cut_windows`). Memory: two windows plus a block, whatever the file's
    length.
    """
    if not 0 < window_seconds <= long_seconds:
        raise ConfigError(f"window_seconds={window_seconds} must be in (0, long_seconds={long_seconds}]")
    with Resampled(path, sr, long_seconds=long_seconds, measure_clipping=True) as stream:
        src = int(stream.source_rate)
        if stream.whole:
            y = next(iter(stream))
            yield AudioWindow(0.0, y.size / sr, y, True, src, stream.source_clipped)
            return
        yield from cut_windows(stream, sr, window_seconds, src)


def cut_windows(
    blocks: Iterable[np.ndarray], sr: int, window_seconds: float, source_rate: int
) -> Iterator[AudioWindow]:
    """Consecutive `window_seconds` windows of a stream of mono blocks at `sr` Hz: a long file's windows
    (`file_windows`), and those of long audio given in memory (`Recognizer.predict_audio`), so both are cut alike.
    A last stretch of at least half a window is a window of its own; a shorter one joins the window before it (it
    was left out: the last second of a 40 s file was never classified, and the file's duration read 39 s)."""
    win = int(round(window_seconds * sr))
    pending = np.zeros(0, np.float32)
    held: AudioWindow | None = (
        None  # the newest full window, kept until it is known whether a short tail follows
    )
    t = 0
    for b in blocks:
        pending = np.concatenate([pending, b])
        while pending.size >= win:
            if held is not None:
                yield held
            held = AudioWindow(t / sr, (t + win) / sr, pending[:win], False, source_rate)
            t += win
            pending = pending[win:]
    if held is not None and pending.size < win / 2:
        if pending.size:
            held = AudioWindow(
                held.start,
                (t + pending.size) / sr,
                np.concatenate([held.samples, pending]),
                False,
                source_rate,
            )
        yield held
        return
    if held is not None:
        yield held
    if pending.size >= win / 2:
        yield AudioWindow(t / sr, (t + pending.size) / sr, pending, False, source_rate)


__all__ = [
    "AudioWindow",
    "Resampled",
    "FILE_WINDOW_SECONDS",
    "LONG_FILE_SECONDS",
    "WAV_SUFFIXES",
    "BlockStream",
    "cut_windows",
    "file_windows",
    "has_sound_track",
    "open_blocks",
    "uses_ffmpeg",
]
