"""Your own capture into the live pipeline: push audio chunks, get a result per hop.

`Recognizer.stream` reads a microphone or a file itself. An app that already captures audio (its own PortAudio
callback, a WebRTC track, a socket) pushes what it has instead:

    session = rec.session(sr=48000)               # the rate of the chunks you push
    for chunk in my_capture():                    # any size: 20 ms, 0.5 s, ...; int16 or float; [n] or [n, ch]
        for r in session.push(chunk):             # 0 or more LiveResults: one per completed hop
            print(r.t, r.label, r.confidence)
    session.finish()                              # at the end: the resampler's last few ms

The results are those `edge-ser run` would give on the same audio (the same window, hop, voice gate, smoothing and
speaker learning: `LivePipeline`), so silence between utterances neither gets an emotion nor joins the speaker
statistics, as it would if each chunk went through `predict_audio`. Channels are averaged to mono (the loudest
channel when they cancel, with one InputWarning: `edge_ser.audio.channels.Downmix`) and the audio is resampled to the bundle's rate by the streaming filter the microphone path uses.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_ser.audio.channels import Downmix
from edge_ser.audio.polyphase import Resampler
from edge_ser.audio.wav import MAX_FLOAT_PEAK, MAX_SR, MIN_SR
from edge_ser.errors import AudioFormatError, ConfigError, InputWarning
from edge_ser.features.spectral import check_audio
from edge_ser.live.pipeline import SlidingWindow

if TYPE_CHECKING:
    from edge_ser.live.pipeline import LivePipeline
    from edge_ser.live.result import LiveResult

INT_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0}
"""Integer sample types a chunk may have, and the value of full scale."""
MAX_CHUNK_CHANNELS = 64
"""More channels than this in a [frames, channels] chunk means a [channels, frames] one (torchaudio's layout)."""


def int16_in_int32(x: np.ndarray, where: str) -> str | None:
    """A warning when int32 samples all fit int16 (`np.frombuffer(..., np.int16).astype(np.int32)`, a capture
    API's int32 of 16-bit audio): scaled by int32's full scale they sit 96 dB down, under every gate, and were
    classified (or gated) as near silence without a word. None for other samples, and for digital silence."""
    if x.dtype != np.int32 or not x.size:
        return None
    peak = int(np.max(np.abs(x.astype(np.int64))))
    if not 0 < peak <= 32768:
        return None
    return (
        f"{where}: int32 samples all within the int16 range (peak {peak}, {20 * np.log10(peak / 2**31):.0f} dBFS "
        "at int32's full scale): int16 samples stored as int32? give them as int16 (.astype(np.int16)) or as "
        "floats / 32768"
    )


def mono_samples(
    x: np.ndarray, where: str, error: type[Exception] = AudioFormatError, downmix: Downmix | None = None
) -> np.ndarray:
    """Float samples [frames] or [frames, channels] as mono float32, channels averaged (`downmix`, default a new
    `Downmix(where)`: the loudest channel when they cancel): the one check of audio given in memory (a pushed chunk,
    `predict_audio`, `enroll`). `error` naming `where` for another shape, a [channels, frames] block (which averaging
    would have cut to a few samples) and floats not scaled to [-1, 1]."""
    if x.ndim not in (1, 2):
        raise error(f"{where}: audio is [frames] or [frames, channels], got shape {x.shape}")
    if x.ndim == 2 and not 1 <= x.shape[1] <= MAX_CHUNK_CHANNELS:
        raise error(
            f"{where}: audio of shape {x.shape} would be {x.shape[1]} channels; give [frames] or [frames, channels] "
            "(transpose a [channels, frames] array: .T)"
        )
    peak = float(np.max(np.abs(x[np.isfinite(x)]), initial=0.0)) if x.dtype.kind == "f" else 0.0
    if peak > MAX_FLOAT_PEAK:
        raise error(
            f"{where}: float samples up to {peak:.6g}; audio is scaled to [-1, 1] and more than "
            f"{MAX_FLOAT_PEAK:g} means wrongly scaled data (integer samples given as floats? divide by 32768)"
        )
    x = x.astype(np.float32, copy=False)
    return (downmix or Downmix(where))(x) if x.ndim == 2 else x


def samples_array(
    chunk: Any, where: str, error: type[Exception] = AudioFormatError, what: str = "the chunk"
) -> np.ndarray:
    """`chunk` (`what`: a pushed chunk, or `y` of `predict_audio` and `enroll`) as an array; `error` for what
    numpy cannot make one of (a ragged list of frames: its ValueError reached the caller, of push and of
    predict_audio / enroll). Samples in the other byte order come back in this machine's: big-endian int16 (RTP's
    L16, `np.frombuffer(payload, ">i2")`) was refused as "int16 or int32, got dtype >i2". Raw bytes (PyAudio's
    `stream.read`, a socket's payload) are refused saying how to read them: they were refused as "got dtype
    |S1920" (bytes) or "uint8" (bytearray), which did not say that the bytes were the problem."""
    if isinstance(chunk, (bytes, bytearray)) or (isinstance(chunk, memoryview) and chunk.itemsize == 1):
        raise error(
            f"{where}: {what} is {type(chunk).__name__} ({len(chunk)} bytes), not samples: read them as the "
            "samples they hold first, e.g. np.frombuffer(data, np.int16) for 16-bit PCM (and .reshape(-1, "
            "channels) for interleaved channels)"
        )
    try:
        x = np.asarray(chunk)
    except (ValueError, TypeError) as e:
        raise error(
            f"{where}: {what} is not an array of samples ({type(chunk).__name__} numpy cannot read as one: {e})"
        ) from None
    return x if x.dtype.isnative else x.astype(x.dtype.newbyteorder("="))


def mono_float(chunk: Any, where: str = "push", downmix: Downmix | None = None) -> np.ndarray:
    """A chunk as mono float32 in [-1, 1]: float samples as they are, int16 / int32 scaled by full scale, a
    [frames, channels] block averaged over its channels (`mono_samples`, with `downmix`: a session's, which warns
    once). AudioFormatError for anything else."""
    x = samples_array(chunk, where)
    if x.dtype in INT_SCALE:
        x = x.astype(np.float32) / np.float32(INT_SCALE[x.dtype])
    elif x.dtype.kind != "f":
        raise AudioFormatError(
            f"{where}: samples must be float (in [-1, 1]), int16 or int32, got dtype {x.dtype}"
        )
    x = mono_samples(x, where, downmix=downmix)
    return check_audio(x, name=f"{where}: the chunk") if x.size else x  # NaN or inf: refused


class AudioSession:
    """The live pipeline fed by pushed audio: `push(chunk)` returns the results of the hops it completes.

    Args:
        pipeline: the `LivePipeline` (its bundle, engine, config, speaker statistics and smoothing).
        sample_rate: the rate of the pushed chunks, Hz (resampled to the bundle's).
        channels: the channel count of the [frames, channels] chunks to come, if known; without it the first 2-D
            chunk pushed sets it, when it has more frames than channels. A first 2-D chunk that does not (`[2, 2]`,
            `[2, 48]`, `[1, 2]`) is refused (AudioFormatError: give channels=): `[2, 48]` is as likely 48 frames of
            stereo laid out [channels, frames] (torchaudio's layout, 1 ms chunks) as 2 frames of 48 channels, and
            read as the latter it set a session of 48 channels that took every such chunk as 2 samples, silently.
            A later 2-D chunk whose first axis is that count and whose second is not is a [channels, frames] one and
            is refused (AudioFormatError: transpose it), not read as many channels.
    """

    def __init__(self, pipeline: LivePipeline, sample_rate: int, channels: int | None = None) -> None:
        if channels is not None and (
            isinstance(channels, bool)
            or not isinstance(channels, (int, np.integer))
            or not 1 <= channels <= MAX_CHUNK_CHANNELS
        ):
            raise ConfigError(
                f"session: channels must be an integer in 1..{MAX_CHUNK_CHANNELS}, got {channels!r}"
            )
        if (  # a whole float (48e3, a rate from a device's float info) as predict_audio and enroll take it
            isinstance(sample_rate, (float, np.floating))
            and np.isfinite(sample_rate)
            and sample_rate == int(sample_rate)
        ):
            sample_rate = int(sample_rate)
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
            raise ConfigError(f"session: sample_rate must be an integer in Hz, got {sample_rate!r}")
        if not MIN_SR <= int(sample_rate) <= MAX_SR:
            raise ConfigError(
                f"session: sample_rate {sample_rate} Hz is outside {MIN_SR}..{MAX_SR} Hz (a rate in kHz?)"
            )
        if not pipeline.kind.hears:
            raise ConfigError(
                f"{pipeline.bundle.root}: this bundle reads faces only; a session takes audio "
                "(use Recognizer.stream with a camera, or predict_audio with faces=...)"
            )
        if (
            pipeline.needs_faces
            and pipeline.fallback is None
            and not pipeline.kind.enough_faces(None, pipeline.config.min_faces)
        ):  # early fusion (av_cnn); a late-fusion bundle answers on audio alone by itself
            warnings.warn(
                f"{pipeline.bundle.root}: this bundle fuses faces with the audio and a session pushes audio only: "
                "every answer is the fused model on black frames; give fallback= an audio-only bundle with the same "
                "labels (for av_cnn: its audio branch, av_cnn_audio), or use a late-fusion bundle, which answers on "
                "audio alone (av_fusion)",
                InputWarning,
                stacklevel=3,
            )
        self.pipeline = pipeline
        narrow = pipeline.set_source_rate(int(sample_rate), pushed=True)
        self._notes: tuple[str, ...] = (narrow,) if narrow else ()
        """Notes for the first result (as `stream` gives them): a band narrower than the model's."""
        self.sample_rate = int(sample_rate)
        self._resampler = (
            None if self.sample_rate == pipeline.sr else Resampler(self.sample_rate, pipeline.sr)
        )
        config = pipeline.config
        self.hop_n = max(1, int(round(config.hop * pipeline.sr)))
        self._window = SlidingWindow(int(round(config.window * pipeline.sr)))
        self._pending = np.zeros(0, np.float32)
        self._downmix = Downmix("the input (pushed chunks)")  # one warning a session when the channels cancel
        self._samples = 0  # samples at the bundle's rate that went into hops: the stream time
        self._int_warned = False  # int16 samples given as int32 (`int16_in_int32`), said once
        self._declared = channels is not None  # given by the caller: any other count is refused
        self.channels: int | None = None if channels is None else int(channels)
        """Channels of the [frames, channels] chunks: given, or set by the first 2-D chunk that was read."""

    @property
    def t(self) -> float:
        """Stream time in seconds: the audio at the bundle's rate that has gone into hops."""
        return self._samples / self.pipeline.sr

    def push(self, chunk: Any) -> list[LiveResult]:
        """Add a chunk of audio (any length; float in [-1, 1], int16 or int32; [frames] or [frames, channels]) and
        return the results of the hops it completes, in time order (none until the first window is full).

        Raises:
            AudioFormatError: a chunk that is not audio (`mono_float`), a 2-D chunk laid out [channels, frames]:
                its second axis is not the session's channel count (`channels`) and its first is, or a first 2-D
                chunk, without `channels`, with no more frames than channels (its layout cannot be told).
        """
        chunk = samples_array(chunk, "push")
        shape = chunk.shape
        if (
            len(shape) == 2
            and self.channels is None
            and 2 <= shape[1] <= MAX_CHUNK_CHANNELS
            and shape[0] <= shape[1]
        ):
            raise AudioFormatError(
                f"push: a first chunk of shape {shape} does not tell its layout: {shape[0]} frame(s) of {shape[1]} "
                f"channels, or {shape[1]} frames of {shape[0]} channel(s) laid out [channels, frames]; give the "
                "session its channel count (rec.session(sr, channels=N)) or push [frames] / [frames, channels]"
            )
        if len(shape) == 2 and self.channels is not None and shape[1] != self.channels:
            if shape[0] == self.channels:
                raise AudioFormatError(
                    f"push: a chunk of shape {shape} in a session of {self.channels} channels is [channels, frames]; "
                    "give [frames, channels] (transpose it: .T)"
                )
            if self._declared:
                raise AudioFormatError(
                    f"push: a chunk of shape {shape} has {shape[1]} channels; the session was given channels="
                    f"{self.channels} (chunks are [frames, channels])"
                )
        if not self._int_warned:  # once a session, as the downmix warns
            note = int16_in_int32(chunk, "push")
            if note:
                warnings.warn(note, InputWarning, stacklevel=2)
                self._int_warned = True
        x = mono_float(chunk, downmix=self._downmix)
        if len(shape) == 2 and self.channels is None:
            self.channels = int(shape[1])  # the first 2-D chunk read sets the layout of the ones to come
        if self._resampler is not None:
            x = self._resampler.feed(x)
        return self._hops(x)

    def finish(self) -> list[LiveResult]:
        """The end of the audio: the resampler's last samples (the filter holds back a few ms), and the results of
        the hops they complete. A part of a hop left over is dropped, as at the end of a file; an utterance still
        open joins the speaker statistics, as at the end of a run; audio shorter than one window (no result yet)
        is classified once as it is, with a note; push() after finish() starts the filter again."""
        if self._resampler is None:
            out: list[LiveResult] = []
        else:
            tail = self._resampler.finish()
            self._resampler = Resampler(self.sample_rate, self.pipeline.sr)
            out = self._hops(tail)
        part = self._window.filled
        if part.size < self._window.size and part.size >= self.hop_n:
            # the audio ended before the first window was full: no decision had been made, and the sentence was
            # neither classified nor learnt (a push-to-talk app sending one short sentence got nothing); it is
            # classified as it is, once, and its sentence learnt
            note = (
                f"the session held {part.size / self.pipeline.sr:.1f} s of audio, less than one "
                f"{self._window.size / self.pipeline.sr:g} s window: classified as it is"
            )
            out.append(self.pipeline.step(self.t, part, notes=(*self._notes, note)))
            self._notes = ()
        self.pipeline.finish_utterance()  # a sentence still going at the end joins the speaker statistics
        return out

    def _hops(self, x: np.ndarray) -> list[LiveResult]:
        """Append samples at the bundle's rate; step the pipeline on every hop they complete."""
        self._pending = np.concatenate([self._pending, x]) if self._pending.size else x
        out = []
        while self._pending.size >= self.hop_n:
            hop, self._pending = self._pending[: self.hop_n], self._pending[self.hop_n :]
            self.pipeline.feed(hop)
            full = self._window.add(hop)
            self._samples += hop.size
            if full:
                out.append(self.pipeline.step(self.t, self._window.samples, notes=self._notes))
                self._notes = ()
        return out


__all__ = ["AudioSession", "int16_in_int32", "mono_float", "samples_array"]
