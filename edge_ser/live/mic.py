"""The microphone: sounddevice (PortAudio) input stream -> `AudioRing` -> mono float32 at the model's rate.

The PortAudio callback runs on a real-time thread every `blocksize` samples. It only counts PortAudio's
input-overflow flag and copies the block, all its channels, into the ring: no array allocation, no lock, no
model work, and it never raises (an exception in the callback would abort the stream; one is counted in
`callback_errors` instead). Everything else happens on the consumer's side of the ring, in `read()`: the
channel mean (as `edge_ser.audio.load` takes it for a file), the rate change from the capture rate to
`MicConfig.rate` (`edge_ser.audio.polyphase.Resampler`, the file path's filter streamed: the same samples
as `resample` of the whole recording), then features and inference. Overflows, from PortAudio (the callback
was late) and from the ring (the consumer was late), are counted and reported in `overflows`, never fatal.

The capture rate (`choose_capture_rate`): `MicConfig.capture_rate` when given (`edge-ser run --mic-rate`;
refused -> ConfigError below); otherwise the model's rate if the device takes it (no conversion), else the
device's default rate, else the first of `PREFERRED_RATES` that `sd.check_input_settings` accepts. So a
48 kHz-only USB microphone is opened at 48 kHz and its audio resampled to the bundle's 16 kHz. The rate used
is the one the open stream reports (`stream.samplerate`), which PortAudio may set to another than the one asked
(`capture_note` says so): audio taken as the asked rate would be resampled wrongly, its pitch and tempo off.

Errors at `start()`, each naming the device:
- sounddevice missing -> MissingDependencyError (pip extra); PortAudio missing (sounddevice raises
  OSError 'PortAudio library not found' at import) -> `PortAudioMissingError` with the apt command.
- a device name/index no input device matches -> ConfigError listing the input devices (unless
  `wait_for_device`: then the source starts unhealthy and retries, for a USB mic plugged in after boot).
- a forced capture rate the device refuses -> ConfigError listing the common rates it accepts (probed with
  `sd.check_input_settings`) and its default rate; too many channels -> ConfigError with its maximum.
- a device that refuses every common rate (gone, busy, its sound server down) or fails to open for any
  other reason -> `DeviceUnavailableError`.

Losing the device while running (unplugged USB mic, PulseAudio restarted) is not an error: the stream's
finished callback, an inactive stream or `stall_timeout` seconds without a callback set `healthy` False,
and `maintain()` (called by every `read()`) restarts the stream on an exponential back-off
(`edge_ser.live.backoff`). When the device cannot be found on a retry, PortAudio is re-initialised so a
re-plugged device is seen again (sounddevice caches the device list at import; this uses its private
`_terminate`/`_initialize`, and would also close any other PortAudio stream of this process). A retry first
tries only the rate the device was captured at (`reopen_rate`): while the device or its sound server is gone,
probing every rate made each retry ~22 failed opens, and PortAudio's ALSA layer writes ~3 lines to stderr for
each (320 lines in a 7 s PulseAudio outage, a review); the whole search runs again when the device refuses that
rate as a rate (another microphone came back) and every FULL_SEARCH_EVERY failed retries.

sounddevice is imported only when a microphone is started, so the rest of the device runtime works
without PortAudio.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edge_ser.audio.polyphase import Resampler
from edge_ser.errors import ConfigError, EdgeSerError, MissingDependencyError, install_hint
from edge_ser.live.backoff import Backoff, RetryTimer
from edge_ser.live.ring import AudioRing
from edge_ser.live.sources import wait_for_samples
from edge_ser.schema import config_from_dict

COMMON_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
"""Rates probed when a device refuses the one asked for, to say which it does take."""

PREFERRED_RATES = (48000, 44100, 32000, 24000, 22050, 16000, 11025, 8000, 96000, 88200)
"""Capture rates tried, in order, when the device takes neither the model's rate nor its own default:
the usual rates of USB microphones first, highest first (a rate below the model's leaves its top band
empty), 96/88.2 kHz last (twice the work for nothing)."""

RESAMPLE_QUALITY = "hq"
"""The streaming resampler's filter: the one `edge_ser.audio.load` uses for files."""

PORTAUDIO_HINT = (
    "sudo apt-get install libportaudio2   (Raspberry Pi OS / Debian / Ubuntu / Jetson Linux; "
    "sounddevice's Linux wheels do not bundle PortAudio)"
)


class PortAudioMissingError(MissingDependencyError):
    """sounddevice is installed but the PortAudio C library is not; the message gives the apt command."""

    def __init__(self, detail: str = "") -> None:
        msg = (
            "the PortAudio library is not installed (needed by sounddevice for the microphone"
            + (f"; {detail}" if detail else "")
            + f"): {PORTAUDIO_HINT}; sounddevice itself: {install_hint('sounddevice', 'device')}"
        )
        super(MissingDependencyError, self).__init__(msg)  # skip the parent: its text is about pip only
        self.package = "libportaudio2"
        self.extra = "device"


def _which(device: int | str | None) -> str:
    """A microphone as the user asked for it: "the default microphone" when none was named (not "None")."""
    return "the default microphone" if device is None else f"microphone {device!r}"


class DeviceUnavailableError(EdgeSerError, OSError):
    """A capture device exists (or may) but cannot be opened now: busy, unplugged, driver error."""


def import_sounddevice() -> Any:
    """The sounddevice module, or a typed error saying what to install (see the module docstring)."""
    try:
        import sounddevice
    except OSError as exc:  # raised by sounddevice's import when ctypes cannot find libportaudio
        if "portaudio" in str(exc).lower():
            raise PortAudioMissingError(str(exc)) from exc
        raise
    except ImportError as exc:
        raise MissingDependencyError("sounddevice", "device", "the microphone") from exc
    return sounddevice


@dataclass(frozen=True)
class MicConfig:
    """Microphone settings.

    device: PortAudio device index, a substring of its name (e.g. "USB", "pulse"), or None for the default
    input. rate: sample rate in Hz that `read` delivers (the model's rate, e.g. 16000). capture_rate: the
    rate asked of the device; None chooses one it supports (see the module docstring); audio captured at
    another rate than `rate` is resampled on the consumer's side. channels: channels captured (averaged to
    mono on the consumer's side). blocksize: samples per callback (512 at 16 kHz = 32 ms;
    0 lets PortAudio choose, with variable block sizes). latency: PortAudio's suggested input latency,
    "low", "high" or seconds; None is sounddevice's default ("high", the robust choice on a Pi).
    ring_seconds: audio the ring holds before the oldest is overwritten. retry_initial / retry_max:
    back-off in seconds between reconnection attempts. stall_timeout: seconds without a callback after
    which a running stream counts as lost. wait_for_device: a device not found at start() is retried
    instead of raising ConfigError.
    """

    device: int | str | None = None
    rate: int = 16000
    capture_rate: int | None = None
    channels: int = 1
    blocksize: int = 512
    latency: float | str | None = None
    ring_seconds: float = 10.0
    retry_initial: float = 0.5
    retry_max: float = 8.0
    stall_timeout: float = 2.0
    wait_for_device: bool = False

    def __post_init__(self) -> None:
        def positive_int(name: str, value: object, allow_zero: bool = False) -> None:
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer))
                or value < (0 if allow_zero else 1)
            ):
                raise ConfigError(
                    f"MicConfig.{name} must be a {'non-negative' if allow_zero else 'positive'} int, got {value!r}"
                )

        positive_int("rate", self.rate)
        if self.capture_rate is not None:
            positive_int("capture_rate", self.capture_rate)
        positive_int("channels", self.channels)
        positive_int("blocksize", self.blocksize, allow_zero=True)
        if self.device is not None and (
            isinstance(self.device, bool) or not isinstance(self.device, (int, str))
        ):
            raise ConfigError(f"MicConfig.device must be an index, a name or None, got {self.device!r}")
        if self.latency is not None and not (
            self.latency in ("low", "high")
            or (
                isinstance(self.latency, (int, float))
                and not isinstance(self.latency, bool)
                and self.latency > 0
            )
        ):
            raise ConfigError(
                f"MicConfig.latency must be 'low', 'high', seconds > 0 or None, got {self.latency!r}"
            )
        for name in ("ring_seconds", "stall_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"MicConfig.{name} must be > 0 seconds, got {value!r}")
        if self.ring_samples < max(self.blocksize, 1) * 2:
            raise ConfigError(
                f"MicConfig.ring_seconds={self.ring_seconds} holds {self.ring_samples} samples, fewer than two "
                f"blocks of {self.blocksize}"
            )
        Backoff(self.retry_initial, 2.0, self.retry_max)  # validates the back-off settings

    @property
    def ring_samples(self) -> int:
        """Capacity of the ring in samples at the model's rate (ring_seconds x rate)."""
        return round(self.ring_seconds * self.rate)

    def ring_capacity(self, capture_rate: int) -> int:
        """Capacity of the ring in samples at `capture_rate`: ring_seconds of audio, at least two blocks."""
        return max(round(self.ring_seconds * capture_rate), 2 * max(self.blocksize, 1))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MicConfig:
        """Inverse of `to_dict`; missing keys take their defaults, unknown keys are a ConfigError."""
        return config_from_dict(cls, d, what="settings")


def _describe(info: dict[str, Any], hostapi: str = "") -> str:
    api = f", {hostapi}" if hostapi else ""
    return f"'{info['name']}' (device {info['index']}{api})"


def list_input_devices(sd: Any) -> str:
    """One line per input device: index, name, input channels, default rate."""
    lines = []
    try:
        devices = sd.query_devices()
    except Exception as exc:  # noqa: BLE001 (PortAudio errors have no common base we can rely on)
        return f"(cannot list devices: {exc})"
    for d in devices:
        if d["max_input_channels"] > 0:
            lines.append(
                f"  {d['index']}: {d['name']} ({d['max_input_channels']} ch, {d['default_samplerate']:.0f} Hz)"
            )
    return "\n".join(lines) if lines else "  (none: no input device is visible to PortAudio)"


def supported_rates(
    sd: Any, device: int | str | None, channels: int, rates: tuple[int, ...] = COMMON_RATES
) -> list[int]:
    """The rates in `rates` the device accepts for `channels` float32 input (by `sd.check_input_settings`)."""
    ok = []
    for r in rates:
        try:
            sd.check_input_settings(device=device, channels=channels, dtype="float32", samplerate=r)
        except Exception:  # noqa: BLE001 (PortAudioError or ValueError: refused)
            continue
        ok.append(r)
    return ok


def _refusal(sd: Any, info: dict[str, Any], channels: int, rate: int) -> Exception | None:
    """None when the device takes `channels` float32 channels at `rate` Hz, else sounddevice's error."""
    try:
        sd.check_input_settings(device=info["index"], channels=channels, dtype="float32", samplerate=rate)
    except (ValueError, sd.PortAudioError) as exc:
        return exc
    return None


def choose_capture_rate(sd: Any, info: dict[str, Any], config: MicConfig) -> tuple[int, str]:
    """(rate to open device `info` at, why that one), by the order in the module docstring.

    Raises ConfigError (too many channels; a forced rate refused, listing the rates it takes) or
    DeviceUnavailableError (it refuses every rate: gone, busy, its sound server down).
    """
    channels = config.channels
    default = int(round(float(info.get("default_samplerate") or 0)))
    if config.capture_rate is not None:
        candidates = [(config.capture_rate, "the rate asked for")]
    else:
        candidates = [(config.rate, "the model's rate")]
        if default > 0:
            candidates.append((default, "the device's default rate"))
        candidates += [(r, "the first common rate it takes") for r in PREFERRED_RATES]
    first_err: Exception | None = None
    for rate, why in candidates:
        err = _refusal(sd, info, channels, rate)
        if err is None:
            return rate, why
        first_err = first_err or err
    hostapi = ""
    try:
        hostapi = sd.query_hostapis(info["hostapi"])["name"]
    except Exception:  # noqa: BLE001
        pass
    desc = _describe(info, hostapi)
    max_ch = int(info["max_input_channels"])
    if channels > max_ch:
        raise ConfigError(
            f"microphone {desc}: {channels} channels asked, it has at most {max_ch} ({first_err}); "
            f"set MicConfig.channels (--channels) <= {max_ch}"
        )
    rates = supported_rates(sd, info["index"], channels)
    if not rates:  # refuses everything: the device is gone or busy, not misconfigured
        raise DeviceUnavailableError(
            f"microphone {desc} cannot be opened at any common rate ({first_err}): is it still connected, "
            "is its sound server running, is another program holding it?"
        )
    forced = candidates[0][0]
    raise ConfigError(
        f"microphone {desc} refuses {forced} Hz ({first_err}). Of the common rates "
        f"{', '.join(map(str, COMMON_RATES))} Hz it accepts: {', '.join(map(str, rates))} Hz; its "
        f"default rate is {default} Hz. Set the capture rate (--mic-rate, MicConfig.capture_rate) to one of "
        "these, or leave it unset to let edge-ser choose."
    )


class _DeviceNotFound(Exception):
    pass


FULL_SEARCH_EVERY = 8
"""A retry after a loss tries only the rate the device was captured at; every this many failed retries it runs the
whole rate search (`choose_capture_rate`) anyway, in case the device came back refusing that rate in a way
PortAudio does not call a rate error."""


def _rate_refused(err: Exception) -> bool:
    """Whether PortAudio refused a setting as a sample rate (paInvalidSampleRate, -9997): the device is there and
    takes other rates; any other refusal (-9985 device unavailable, -9993 illegal device combination while the
    sound server is down) means it is not there."""
    return "-9997" in str(err) or "Invalid sample rate" in str(err)


def reopen_rate(sd: Any, info: dict[str, Any], config: MicConfig, rate: int) -> bool:
    """Whether a lost device may be opened again at `rate`, the rate it was captured at, with one probe
    (`_refusal`). False when it refuses `rate` as a rate: the caller runs the whole search. Raises
    DeviceUnavailableError for any other refusal: it is still gone, and probing other rates would only repeat
    that (each failed probe writes PortAudio's lines to stderr)."""
    err = _refusal(sd, info, config.channels, rate)
    if err is None:
        return True
    if _rate_refused(err):
        return False
    raise DeviceUnavailableError(f"microphone {_describe(info)}: cannot be opened at {rate} Hz again ({err})")


def _not_found(device: int | str | None, exc: Exception) -> str:
    """Why `device` was not found, in our words: PortAudio says "Error querying device 7", and sounddevice's
    message for a name lists every device (which our error lists again, below it), and "Error querying device -1"
    when there is no default input device."""
    if isinstance(device, int):
        return f"there is no device {device}" + (" (indices start at 0)" if device < 0 else "")
    if device is None:  # PortAudio: "Error querying device -1", its index for "no default input device"
        return (
            "there is no default input device (connect a microphone, or check that the sound server, PulseAudio "
            "or PipeWire, runs and this user may use it)"
        )
    text = str(exc).split("\n", 1)[0].rstrip(":")
    return text or "not found"


RATE_TOLERANCE = 0.005
"""A stream reporting a rate within this fraction of the one asked is taken at the asked rate: under 9 cents of
pitch, and a hardware clock's odd rate (44117.6 Hz for 44100) would make the resampler's ratio, and its cost,
enormous."""


def _opened_rate(stream: Any, asked: int) -> int:
    """The rate an open stream runs at (`stream.samplerate`, PortAudio's stream info, to the nearest Hz); `asked`
    when it is within RATE_TOLERANCE of that, or the stream says nothing usable."""
    try:
        rate = float(stream.samplerate)
    except (AttributeError, TypeError, ValueError):
        return asked
    if not np.isfinite(rate) or rate < 1 or abs(rate - asked) <= RATE_TOLERANCE * asked:
        return asked
    return int(round(rate))


class MicSource:
    """Live microphone audio as an `AudioSource`: mono float32 at `config.rate` Hz through an `AudioRing`.

    Use as a context manager (`with MicSource(cfg) as mic:`) or start()/stop(). `read()` returns the new
    samples; `maintain()` (called by `read`) restarts a lost stream with back-off.
    """

    def __init__(self, config: MicConfig | None = None) -> None:
        self.config = config or MicConfig()
        cfg = self.config
        # Consumer side: the ring holds capture-rate samples, all channels; `read` averages and resamples.
        self._capture_rate = cfg.capture_rate or cfg.rate  # until start() chooses
        self.capture_reason = "not opened yet"
        self.ring = AudioRing(cfg.ring_capacity(self._capture_rate), cfg.channels)
        self._resampler = self._make_resampler(self._capture_rate)
        self._pending = np.zeros(0, np.float32)  # resampled samples not returned yet
        self._returned = 0  # samples returned by read() since creation
        self._lost_seconds = 0.0  # audio lost in rings replaced by a rate change
        self._retry = RetryTimer(Backoff(cfg.retry_initial, 2.0, cfg.retry_max))
        self._lock = threading.Lock()  # serialises start/stop/restart (never taken by the callback)
        self._stream: Any = None
        self._generation = 0  # incremented by every open, to ignore a finished callback of an old stream
        self._running = False  # between start() and stop()
        self._healthy = False
        self._stopping = False
        self._done = threading.Event()
        # Written by the callback only:
        self._input_overflows = 0
        self._callback_errors = 0
        self._blocks = 0
        # Consumer-side bookkeeping:
        self._seen_blocks = 0
        self._seen_at = 0.0
        self.restarts = 0
        self._failed_reopens = 0  # retries since the last open that worked (_reconnect)
        self.device_name: str | None = None
        self.last_error: str | None = None

    # ------------------------------------------------------------------ callback (PortAudio thread)
    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """Count overflows, copy the block (every channel) into the ring. No array allocation, no lock,
        never raises; the channel mean and the rate change are the consumer's (`read`)."""
        try:
            if status and status.input_overflow:
                self._input_overflows += 1
            self._blocks += 1
            self.ring.write(indata)
        except Exception:  # noqa: BLE001 (raising here would abort the stream)
            self._callback_errors += 1

    def _finished(self, generation: int) -> None:
        """sounddevice's finished_callback: the stream stopped; unexpected unless we are stopping it.
        `generation` tells a late call from an old stream (ignored) from one of the current stream."""
        if not self._stopping and generation == self._generation:
            self._healthy = False
            self.last_error = (
                f"microphone {self.device_name or self.config.device!r}: stream stopped unexpectedly"
            )

    # ------------------------------------------------------------------ open / close
    def _resolve(self, sd: Any) -> dict[str, Any]:
        try:
            info = sd.query_devices(self.config.device, "input")
        except (ValueError, sd.PortAudioError) as exc:
            raise _DeviceNotFound(_not_found(self.config.device, exc)) from None
        if not info or info.get("max_input_channels", 0) < 1:
            raise _DeviceNotFound(f"device {self.config.device!r} has no input channels")
        return info

    def _use_rate(self, rate: int) -> None:
        """Capture at `rate` from the next stream on: a new ring and resampler when it changes. Audio of the
        old rate still in the ring is converted (and the old resampler finished) first, so nothing read so
        far changes and the stream time stays continuous. Consumer side (start, or maintain via read)."""
        if rate == self._capture_rate:
            return
        self._convert(None)
        if self._resampler is not None:
            self._pending = np.concatenate([self._pending, self._resampler.finish()])
        self._lost_seconds += self.ring.lost_samples / self._capture_rate
        self._capture_rate = rate
        self.ring = AudioRing(self.config.ring_capacity(rate), self.config.channels)
        self._resampler = self._make_resampler(rate)

    def _make_resampler(self, capture_rate: int) -> Resampler | None:
        if capture_rate == self.config.rate:
            return None
        return Resampler(capture_rate, self.config.rate, quality=RESAMPLE_QUALITY)

    def _convert(self, want: int | None) -> None:
        """Consumer side: take captured samples from the ring (channel mean), resample them and append them
        to the pending output, until `want` samples are pending or the ring is empty (None: all there is).
        Taking only what `want` needs leaves the rest in the ring, where a consumer that falls behind is
        counted as overflows and lost samples, instead of piling up here."""
        while True:
            if want is None:
                x = self.ring.read_new()
            else:
                need = want - self._pending.size
                if need <= 0:
                    return
                x = self.ring.read_new(-(-need * self._capture_rate // self.config.rate))
            if not x.size:
                return
            y = x if self._resampler is None else self._resampler.feed(x)
            if y.size:
                self._pending = np.concatenate([self._pending, y]) if self._pending.size else y
            if want is None:
                return

    def _open(self, keep_rate: int | None = None) -> None:
        """Find the device, check the settings, open and start the stream (raises on failure). `keep_rate`: the
        rate it was captured at before a loss, tried alone first (`reopen_rate`)."""
        sd = import_sounddevice()
        cfg = self.config
        try:
            info = self._resolve(sd)
        except _DeviceNotFound:
            self._reinit_portaudio(sd)  # a re-plugged USB device only shows up after a rescan
            info = self._resolve(sd)
        if keep_rate is not None and reopen_rate(sd, info, cfg, keep_rate):
            rate = keep_rate  # capture_reason stays as it was
        else:
            rate, self.capture_reason = choose_capture_rate(sd, info, cfg)
        self._use_rate(rate)
        self.device_name = str(info["name"])
        self._generation += 1
        generation = self._generation
        kwargs: dict[str, Any] = {}
        if cfg.latency is not None:
            kwargs["latency"] = cfg.latency
        try:
            stream = sd.InputStream(
                device=info["index"],
                samplerate=rate,
                channels=cfg.channels,
                dtype="float32",
                blocksize=cfg.blocksize,
                callback=self._callback,
                finished_callback=lambda: self._finished(generation),
                **kwargs,
            )
            # the rate PortAudio opened it at, which may not be the one asked (its stream info): the ring and the
            # resampler take that one, before any callback runs
            opened = _opened_rate(stream, rate)
            if opened != rate:
                self._use_rate(opened)
                self.capture_reason = (
                    f"{self.capture_reason}; PortAudio opened it at {opened} Hz, not the {rate} Hz asked"
                )
            stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise DeviceUnavailableError(
                f"microphone {_describe(info)}: cannot open the input stream: {exc}"
            ) from None
        self._stream = stream
        self._healthy = True
        self._seen_blocks = self._blocks
        self._seen_at = time.monotonic()
        self.last_error = None

    @staticmethod
    def _reinit_portaudio(sd: Any) -> None:
        term, init = getattr(sd, "_terminate", None), getattr(sd, "_initialize", None)
        if term is None or init is None:
            return
        try:
            term()
            init()
        except Exception:  # noqa: BLE001 (best effort; the next retry tries again)
            pass

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        self._stopping = True
        try:
            stream.abort()
        except Exception:  # noqa: BLE001 (a vanished device may fail to abort; closing is what matters)
            pass
        try:
            stream.close()
        except Exception:  # noqa: BLE001
            pass
        self._stopping = False

    # ------------------------------------------------------------------ public
    def start(self) -> MicSource:
        """Open the device and start capturing (raises the errors listed in the module docstring)."""
        with self._lock:
            if self._running:
                return self
            self._done.clear()
            try:
                self._open()
            except (_DeviceNotFound, DeviceUnavailableError) as exc:
                if not self.config.wait_for_device:
                    if isinstance(exc, DeviceUnavailableError):
                        raise
                    raise ConfigError(
                        f"{_which(self.config.device)}: {exc}. Input devices:\n"
                        + list_input_devices(import_sounddevice())
                    ) from None
                self._lost(f"{_which(self.config.device)} not available ({exc}); waiting for it")
            self._running = True
            return self

    def stop(self) -> None:
        """Stop capturing and close the device; samples already in the ring can still be read."""
        with self._lock:
            self._running = False
            self._healthy = False
            self._done.set()
            self._close()

    def restart(self) -> None:
        """Close the stream and open it again; raises if the device cannot be opened."""
        with self._lock:
            self._close()
            self._open()
            self.restarts += 1

    def _reconnect(self) -> None:
        """`restart` after a loss: the rate it was captured at alone first, the whole search every
        FULL_SEARCH_EVERY failed retries (module docstring)."""
        full = self._failed_reopens % FULL_SEARCH_EVERY == FULL_SEARCH_EVERY - 1 or self.device_name is None
        with self._lock:
            self._close()
            try:
                self._open(None if full else self._capture_rate)
            except Exception:
                self._failed_reopens += 1
                raise
            self._failed_reopens = 0
            self.restarts += 1

    def _lost(self, why: str) -> None:
        self._healthy = False
        self.last_error = why
        self._retry.failed()

    def maintain(self) -> bool:
        """Check the stream and, when it is lost and the back-off allows, restart it. Never raises;
        returns `healthy`. Cheap (a flag, PortAudio's is-active and a clock read): called by every read."""
        if not self._running:
            return False
        now = time.monotonic()
        if self._healthy:
            stream = self._stream
            try:
                active = stream is not None and stream.active
            except Exception:  # noqa: BLE001
                active = False
            if not active:
                self._lost(self.last_error or f"microphone {self.device_name!r}: stream is no longer active")
            elif self._blocks != self._seen_blocks:
                self._seen_blocks, self._seen_at = self._blocks, now
            elif now - self._seen_at > self.config.stall_timeout:
                self._lost(
                    f"microphone {self.device_name!r}: no audio for {now - self._seen_at:.1f} s (device stalled or gone)"
                )
        elif self._retry.due():
            try:
                self._reconnect()
            except Exception as exc:  # noqa: BLE001 (any failure: stay unhealthy and retry later)
                delay = self._retry.failed()
                self.last_error = f"{exc if str(exc) else type(exc).__name__}; retrying in {delay:.1f} s"
            else:
                self._retry.succeeded()
        return self._healthy

    def read(
        self, max_samples: int | None = None, *, min_samples: int = 0, timeout: float | None = None
    ) -> np.ndarray:
        """New samples since the last read (mono float32 [k] at `config.rate`, k <= max_samples), after
        waiting up to `timeout` s (None: until stop()) for at least `min_samples`. Averages the channels and
        resamples from the capture rate here, on the caller's thread; restarts a lost stream on the way."""
        if max_samples is not None and (
            isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer)) or max_samples < 0
        ):
            raise ConfigError(
                f"MicSource.read: max_samples must be a non-negative int or None, got {max_samples!r}"
            )
        self.maintain()
        want = None if max_samples is None else int(max_samples)
        min_samples = min(min_samples, want) if want is not None else min_samples
        deadline = None if timeout is None else time.monotonic() + timeout
        self._convert(want)
        while min_samples > 0 and self._pending.size < min_samples and self._running:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            ring = self.ring  # a rate change (in maintain) replaces it: wait in slices and look again
            short = min_samples - self._pending.size
            need = max(1, min(-(-short * self._capture_rate // self.config.rate), ring.capacity))
            poll = max(self.config.blocksize, 256) / self._capture_rate / 2
            wait_for_samples(
                ring, need, 0.5 if left is None else min(left, 0.5), poll=poll, done=self._done,
                tick=self.maintain,
            )  # fmt: skip
            self._convert(want)
            if self._done.is_set():
                break
        out = self._pending if want is None else self._pending[:want]
        self._pending = self._pending[out.size :]
        self._returned += out.size
        return np.ascontiguousarray(out, dtype=np.float32)

    def skip_to_end(self) -> None:
        """Drop the audio captured but not read yet (for a consumer that only wants what comes next)."""
        self._convert(None)
        self._returned += self._pending.size
        self._pending = np.zeros(0, np.float32)

    def __enter__(self) -> MicSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ state
    @property
    def rate(self) -> int:
        """The rate `read` delivers (the model's)."""
        return self.config.rate

    @property
    def capture_rate(self) -> int:
        """The rate the device is opened at (chosen by `start`; see the module docstring)."""
        return self._capture_rate

    @property
    def source_rate(self) -> int:
        """The rate the audio was recorded at: the capture rate (a band narrower than the model's is flagged)."""
        return self._capture_rate

    @property
    def capture_note(self) -> str:
        """One line for banners and result notes: the device, its capture rate and the conversion."""
        cfg = self.config
        ch = f"{cfg.channels} ch averaged to mono, " if cfg.channels > 1 else ""
        name = self.device_name or cfg.device or "default input"
        if self._resampler is None:
            return f"microphone {name!r}: {self._capture_rate} Hz ({self.capture_reason}), {ch}no resampling"
        low = (
            f"; captured below the model's rate, nothing above {self._capture_rate // 2} Hz"
            if self._capture_rate < cfg.rate
            else ""
        )
        return (
            f"microphone {name!r}: captured at {self._capture_rate} Hz ({self.capture_reason}), {ch}"
            f"resampled to {cfg.rate} Hz (polyphase, {RESAMPLE_QUALITY}){low}"
        )

    @property
    def channel_note(self) -> str | None:
        """The ring's note on channels that cancel (`AudioRing.channel_note`), once they did."""
        return self.ring.channel_note

    @property
    def healthy(self) -> bool:
        """True while the stream runs and delivers audio."""
        return self._healthy

    @property
    def finished(self) -> bool:
        """A microphone never runs out (False); see `healthy` for a lost device."""
        return False

    @property
    def input_overflows(self) -> int:
        """Blocks PortAudio flagged with input overflow (the callback ran late: audio lost in the driver)."""
        return self._input_overflows

    @property
    def overflows(self) -> int:
        """Overflow events: PortAudio's input overflows plus ring overflows (the consumer fell behind by
        more than ring_seconds)."""
        return self._input_overflows + self.ring.overflows

    @property
    def lost_samples(self) -> int:
        """Samples (at the capture rate) overwritten in the ring before the consumer read them."""
        return self.ring.lost_samples

    @property
    def callback_errors(self) -> int:
        """Exceptions caught in the audio callback (0 unless something is badly wrong)."""
        return self._callback_errors

    @property
    def blocks(self) -> int:
        """Callbacks run so far."""
        return self._blocks

    @property
    def stream_time(self) -> float:
        """Seconds of audio the consumer has been through (samples returned / rate + samples lost / capture
        rate). Time while the device was gone is not counted: this is the time of the audio, not of the wall
        clock."""
        return (
            self._returned / self.config.rate
            + self._lost_seconds
            + self.ring.lost_samples / self._capture_rate
        )

    def __repr__(self) -> str:
        state = "healthy" if self._healthy else ("stopped" if not self._running else "lost")
        rates = f"{self._capture_rate} -> {self.config.rate} Hz"
        return f"MicSource({self.device_name or self.config.device!r}, {rates}, {state})"
