"""Synthetic room reverberation for training copies and for tests: a device's microphone hears the room.

A room impulse response (RIR) here is Polack's stochastic model (Polack 1993; the model behind the synthetic
RIRs of Ko et al., "A study on data augmentation of reverberant speech for robust speech recognition", ICASSP
2017): a direct path, then after a short pre-delay a Gaussian tail whose amplitude decays by 60 dB in RT60
seconds. The direct-to-reverberant energy ratio (DRR) sets how far the talker is from the microphone (0 dB:
about a metre in a living room; -6 dB: across the room). No measured RIRs are shipped or downloaded.

    h = room_impulse_response(0.6, 0.0, 16000, np.random.default_rng(0))
    wet = reverberate(y, h)          # same length and RMS as y
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_ser.errors import AudioFormatError, ConfigError

LN_1000 = float(np.log(1000.0))
"""A 60 dB energy decay is a 1000x amplitude decay: exp(-ln(1000) t / RT60)."""


@dataclass(frozen=True)
class RoomSpec:
    """The rooms a set of reverberant copies is drawn from: RT60 (s) and DRR (dB) uniform in their ranges."""

    rt60: tuple[float, float] = (0.2, 1.0)
    drr_db: tuple[float, float] = (-6.0, 6.0)
    predelay_ms: float = 2.0

    def __post_init__(self) -> None:
        lo, hi = self.rt60
        if not 0.05 <= lo <= hi <= 3.0:
            raise ConfigError(f"RoomSpec.rt60 {self.rt60}: use 0.05 <= low <= high <= 3 s")
        if not -40.0 <= self.drr_db[0] <= self.drr_db[1] <= 40.0:
            raise ConfigError(f"RoomSpec.drr_db {self.drr_db}: use -40 <= low <= high <= 40 dB")
        if self.predelay_ms < 0:
            raise ConfigError(f"RoomSpec.predelay_ms {self.predelay_ms}: must be >= 0")

    def draw(self, rng: np.random.Generator) -> tuple[float, float]:
        """One room: (RT60 s, DRR dB)."""
        return float(rng.uniform(*self.rt60)), float(rng.uniform(*self.drr_db))


def room_impulse_response(
    rt60: float, drr_db: float, sr: int, rng: np.random.Generator, *, predelay_ms: float = 2.0
) -> np.ndarray:
    """A synthetic RIR [n] (float64, peak 1): a unit direct path, then from `predelay_ms` a Gaussian tail decaying
    60 dB in `rt60` seconds, scaled so that direct / tail energy is `drr_db`. Length 1.2 x RT60."""
    if rt60 <= 0 or sr <= 0:
        raise ConfigError(f"room_impulse_response: rt60 ({rt60}) and sr ({sr}) must be > 0")
    n = int(sr * rt60 * 1.2) + 1
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-LN_1000 * t / rt60)
    tail[: int(round(predelay_ms * 1e-3 * sr)) + 1] = 0.0
    tail *= 10 ** (-drr_db / 20) / np.sqrt(np.sum(tail**2))
    tail[0] = 1.0
    return tail / np.max(np.abs(tail))


def reverberate(y: np.ndarray, h: np.ndarray) -> np.ndarray:
    """`y` convolved with the RIR `h`, cut to the length of `y` and brought back to its RMS (a room does not
    change the level a recording is normalised to), float32 in [-1, 1]."""
    y = np.asarray(y, np.float64)
    h = np.asarray(h, np.float64)
    n = 1 << max(int(len(y) + len(h) - 2).bit_length(), 1)  # linear convolution, no wrap-around
    wet = np.fft.irfft(np.fft.rfft(y, n) * np.fft.rfft(h, n), n)[: len(y)]
    rms_in = float(np.sqrt(np.mean(y * y))) if y.size else 0.0
    rms_out = float(np.sqrt(np.mean(wet * wet))) if wet.size else 0.0
    if rms_out > 0:
        wet *= rms_in / rms_out
    return np.clip(wet, -1.0, 1.0).astype(np.float32)


def parse_room(text: str) -> tuple[float, float]:
    """`RT60` or `RT60,DRR` (seconds, dB; DRR 0 when left out) -> (rt60, drr_db), checked as a `RoomSpec`."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        rt60 = float(parts[0])
        drr = float(parts[1]) if len(parts) > 1 else 0.0
    except ValueError:
        raise ConfigError(
            f"--room {text!r}: give RT60 in seconds, optionally ',DRR' in dB (e.g. 0.6 or 0.6,0)"
        ) from None
    if len(parts) > 2:
        raise ConfigError(f"--room {text!r}: at most two values, RT60 and DRR")
    if not 0.05 <= rt60 <= 3.0:  # also refuses nan
        raise ConfigError(f"--room {text!r}: RT60 must be 0.05-3 s (a living room is ~0.5 s)")
    if not -40.0 <= drr <= 40.0:
        raise ConfigError(
            f"--room {text!r}: DRR must be -40 to +40 dB (0 dB: about a metre from the microphone)"
        )
    return rt60, drr


def reverberant_records(
    records: list, rt60: float, drr_db: float, out_dir: Path, *, seed: int = 0, progress: bool = False
) -> list:
    """Copies of `records` whose audio is heard in one synthetic room (RT60, DRR; each file its own impulse
    response, seeded by the seed and its position), written as float WAV files under `out_dir`: what
    `edge-ser eval --room` scores. Labels, speakers and any face image or video stay as they are."""
    from dataclasses import replace

    from tqdm.auto import tqdm

    from edge_ser.audio import load
    from edge_ser.audio.wav import write_wav

    RoomSpec(rt60=(rt60, rt60), drr_db=(drr_db, drr_db))
    out = []
    for i, r in enumerate(tqdm(records, desc="room copies", unit="file", disable=None if progress else True)):
        try:
            y, sr = load(r.source, mono=True)
        except AudioFormatError:  # left as it is: the evaluation skips it with its own warning
            out.append(r)
            continue
        h = room_impulse_response(rt60, drr_db, sr, np.random.default_rng([seed, i, 17]))
        path = write_wav(
            Path(out_dir) / f"{i:05d}_{Path(r.source).stem}.wav", reverberate(y, h), sr, subtype="FLOAT"
        )
        out.append(replace(r, source=path))
    return out


__all__ = ["RoomSpec", "parse_room", "reverberant_records", "reverberate", "room_impulse_response"]
