"""The microphone: sounddevice (PortAudio) input stream -> mono float32 `AudioRing`.

The PortAudio callback runs on a real-time thread every `blocksize` samples. It only counts PortAudio's
input-overflow flag, down-mixes the block into a preallocated mono scratch buffer (channels summed with
`np.add.reduce(..., out=)` and scaled in place) and copies it into the ring: no array allocation, no lock, no
model work, and it never raises (an exception in the callback would abort the stream; one is counted in
`callback_errors` instead). Everything else (features, inference) happens on the consumer's side of the
ring. Overflows, from PortAudio (the callback was late) and from the ring (the consumer was late), are
counted and reported in `overflows`, never fatal.

Errors at `start()`, each naming the device:
- sounddevice missing -> MissingDependencyError (pip extra); PortAudio missing (sounddevice raises
  OSError 'PortAudio library not found' at import) -> `PortAudioMissingError` with the apt command.
- a device name/index no input device matches -> ConfigError listing the input devices (unless
  `wait_for_device`: then the source starts unhealthy and retries, for a USB mic plugged in after boot).
- a rate the device refuses -> ConfigError listing the common rates it accepts (probed with
  `sd.check_input_settings`) and its default rate; too many channels -> ConfigError with its maximum.
- a device that refuses every common rate (gone, busy, its sound server down) or fails to open for any
  other reason -> `DeviceUnavailableError`.

Losing the device while running (unplugged USB mic, PulseAudio restarted) is not an error: the stream's
finished callback, an inactive stream or `stall_timeout` seconds without a callback set `healthy` False,
and `maintain()` (called by every `read()`) restarts the stream on an exponential back-off
(`edge_ser.live.backoff`). When the device cannot be found on a retry, PortAudio is re-initialised so a
re-plugged device is seen again (sounddevice caches the device list at import; this uses its private
`_terminate`/`_initialize`, and would also close any other PortAudio stream of this process).

sounddevice is imported only when a microphone is started, so the rest of the device runtime works
without PortAudio.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edge_ser.errors import ConfigError, EdgeSerError, MissingDependencyError
from edge_ser.live.backoff import Backoff, RetryTimer
from edge_ser.live.ring import AudioRing
from edge_ser.live.sources import wait_for_samples
from edge_ser.schema import config_from_dict

COMMON_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
"""Rates probed when a device refuses the one asked for, to say which it does take."""

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
            + f"): {PORTAUDIO_HINT}; sounddevice itself comes with pip install 'edge-ser[device]'"
        )
        super(MissingDependencyError, self).__init__(msg)  # skip the parent: its text is about pip only
        self.package = "libportaudio2"
        self.extra = "device"


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
    input. rate: sample rate in Hz asked of the device (the model's rate, e.g. 16000). channels: channels
    captured (down-mixed to mono by averaging). blocksize: samples per callback (512 at 16 kHz = 32 ms;
    0 lets PortAudio choose, with variable block sizes). latency: PortAudio's suggested input latency,
    "low", "high" or seconds; None is sounddevice's default ("high", the robust choice on a Pi).
    ring_seconds: audio the ring holds before the oldest is overwritten. retry_initial / retry_max:
    back-off in seconds between reconnection attempts. stall_timeout: seconds without a callback after
    which a running stream counts as lost. wait_for_device: a device not found at start() is retried
    instead of raising ConfigError.
    """

    device: int | str | None = None
    rate: int = 16000
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
        """Capacity of the ring in samples (ring_seconds x rate)."""
        return round(self.ring_seconds * self.rate)

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


class _DeviceNotFound(Exception):
    pass


class MicSource:
    """Live microphone audio as an `AudioSource`: mono float32 at `config.rate` Hz through an `AudioRing`.

    Use as a context manager (`with MicSource(cfg) as mic:`) or start()/stop(). `read()` returns the new
    samples; `maintain()` (called by `read`) restarts a lost stream with back-off.
    """

    def __init__(self, config: MicConfig | None = None) -> None:
        self.config = config or MicConfig()
        cfg = self.config
        self.ring = AudioRing(cfg.ring_samples, 1)
        # Mono scratch for the down-mix: one block; larger blocks (blocksize=0) are done in slices of it.
        self._scratch = np.zeros(max(cfg.blocksize, 1024), dtype=np.float32)
        self._inv_channels = np.float32(1.0 / cfg.channels)
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
        self.device_name: str | None = None
        self.last_error: str | None = None

    # ------------------------------------------------------------------ callback (PortAudio thread)
    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """Count overflows, down-mix, copy into the ring. No array allocation, no lock, never raises."""
        try:
            if status and status.input_overflow:
                self._input_overflows += 1
            self._blocks += 1
            if indata.shape[1] == 1:
                self.ring.write(indata)
                return
            scratch = self._scratch
            size = scratch.shape[0]
            start = 0
            while start < frames:
                m = min(size, frames - start)
                mono = scratch[:m]
                np.add.reduce(indata[start : start + m], axis=1, out=mono)
                np.multiply(mono, self._inv_channels, out=mono)
                self.ring.write(mono)
                start += m
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
            raise _DeviceNotFound(str(exc)) from None
        if not info or info.get("max_input_channels", 0) < 1:
            raise _DeviceNotFound(f"device {self.config.device!r} has no input channels")
        return info

    def _check(self, sd: Any, info: dict[str, Any]) -> None:
        """sd.check_input_settings, turned into a ConfigError that says what the device does accept."""
        cfg = self.config
        dev = info["index"]
        try:
            sd.check_input_settings(device=dev, channels=cfg.channels, dtype="float32", samplerate=cfg.rate)
            return
        except (ValueError, sd.PortAudioError) as exc:
            err = exc
        hostapi = ""
        try:
            hostapi = sd.query_hostapis(info["hostapi"])["name"]
        except Exception:  # noqa: BLE001
            pass
        desc = _describe(info, hostapi)
        max_ch = int(info["max_input_channels"])
        if cfg.channels > max_ch:
            raise ConfigError(
                f"microphone {desc}: {cfg.channels} channels asked, it has at most {max_ch} ({err}); "
                f"set MicConfig.channels <= {max_ch}"
            )
        rates = supported_rates(sd, dev, cfg.channels)
        if not rates:  # refuses everything: the device is gone or busy, not misconfigured
            raise DeviceUnavailableError(
                f"microphone {desc} cannot be opened at any common rate ({err}): is it still connected, "
                "is its sound server running, is another program holding it?"
            )
        default = float(info.get("default_samplerate") or 0)
        if cfg.rate not in rates:
            raise ConfigError(
                f"microphone {desc} refuses {cfg.rate} Hz ({err}). Of the common rates "
                f"{', '.join(map(str, COMMON_RATES))} Hz it accepts: {', '.join(map(str, rates))} Hz; its "
                f"default rate is {default:.0f} Hz. Set the microphone rate (MicConfig.rate) to one of these."
            )
        raise ConfigError(f"microphone {desc}: settings refused ({err})")

    def _open(self) -> None:
        """Find the device, check the settings, open and start the stream (raises on failure)."""
        sd = import_sounddevice()
        cfg = self.config
        try:
            info = self._resolve(sd)
        except _DeviceNotFound:
            self._reinit_portaudio(sd)  # a re-plugged USB device only shows up after a rescan
            info = self._resolve(sd)
        self._check(sd, info)
        self.device_name = str(info["name"])
        self._generation += 1
        generation = self._generation
        kwargs: dict[str, Any] = {}
        if cfg.latency is not None:
            kwargs["latency"] = cfg.latency
        try:
            stream = sd.InputStream(
                device=info["index"],
                samplerate=cfg.rate,
                channels=cfg.channels,
                dtype="float32",
                blocksize=cfg.blocksize,
                callback=self._callback,
                finished_callback=lambda: self._finished(generation),
                **kwargs,
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
                        f"microphone {self.config.device!r}: {exc}. Input devices:\n"
                        + list_input_devices(import_sounddevice())
                    ) from None
                self._lost(f"microphone {self.config.device!r} not available ({exc}); waiting for it")
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
                self.restart()
            except Exception as exc:  # noqa: BLE001 (any failure: stay unhealthy and retry later)
                delay = self._retry.failed()
                self.last_error = f"{exc if str(exc) else type(exc).__name__}; retrying in {delay:.1f} s"
            else:
                self._retry.succeeded()
        return self._healthy

    def read(
        self, max_samples: int | None = None, *, min_samples: int = 0, timeout: float | None = None
    ) -> np.ndarray:
        """New samples since the last read (mono float32 [k], k <= max_samples), after waiting up to
        `timeout` s (None: until stop()) for at least `min_samples`. Restarts a lost stream on the way."""
        self.maintain()
        if min_samples > 0 and self._running:
            poll = max(self.config.blocksize, 256) / self.config.rate / 2
            wait_for_samples(
                self.ring,
                min(min_samples, self.ring.capacity),
                timeout,
                poll=poll,
                done=self._done,
                tick=self.maintain,
            )
        return self.ring.read_new(max_samples)

    def __enter__(self) -> MicSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ state
    @property
    def rate(self) -> int:
        return self.config.rate

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
        """Samples overwritten in the ring before the consumer read them."""
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
        """Seconds of audio the consumer has been through (ring cursor / rate). Time while the device was
        gone is not counted: this is the time of the audio, not of the wall clock."""
        return self.ring.read_pos / self.config.rate

    def __repr__(self) -> str:
        state = "healthy" if self._healthy else ("stopped" if not self._running else "lost")
        return f"MicSource({self.device_name or self.config.device!r}, {self.config.rate} Hz, {state})"
