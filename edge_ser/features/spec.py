"""FeatureSpec: every parameter of the audio front end, as a frozen dataclass that travels in bundles as JSON."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from edge_ser.errors import ConfigError
from edge_ser.features.filters import WINDOWS
from edge_ser.features.spectral import PAD_MODES
from edge_ser.limits import (
    MAX_CHROMA,
    MAX_HOP,
    MAX_LIFTER,
    MAX_N_FFT,
    MAX_N_MELS,
    MAX_SAMPLE_RATE,
    MAX_SPECTRUM_RATE,
    MAX_TOP_DB,
    MIN_SAMPLE_RATE,
    spectrum_rate,
)
from edge_ser.schema import Checker, config_from_dict

SCHEMA_VERSION = 1


CONDITIONING_OFF = {"remove_dc": False, "level_dbfs": None}
"""Conditioning fields and their "off" values, left out of a spec's `to_dict` (`without_conditioning_off`)."""


def without_conditioning_off(d: dict[str, Any]) -> dict[str, Any]:
    """`d` (a spec's fields) without the conditioning fields that are off: a spec that conditions nothing
    serialises (and hashes, for the feature cache) exactly as before those fields existed."""
    return {k: v for k, v in d.items() if not (k in CONDITIONING_OFF and v == CONDITIONING_OFF[k])}


@dataclass(frozen=True)
class FeatureSpec:
    """Audio front-end parameters; the defaults are the LAQ paper's librosa recipe (180-d mean vector).

    The 180-d vector is mean-over-frames of [MFCC (n_mfcc), mel power (n_mels), chroma (n_chroma)], all from
    one STFT. Chroma uses the magnitude spectrogram (`chroma_power=1`), as the recipe passes |STFT| as `S`.
    """

    sample_rate: int = 22050
    """Rate (Hz) audio is resampled to before analysis; librosa.load's default, and EMODB's native rate here."""
    n_fft: int = 2048
    """FFT size in samples (93 ms at 22.05 kHz)."""
    hop_length: int = 512
    """Frame step in samples (23 ms at 22.05 kHz)."""
    win_length: int | None = None
    """Window length in samples; None means n_fft."""
    window: str = "hann"
    center: bool = True
    """Pad n_fft//2 samples at both ends so frame t is centred on sample t*hop_length."""
    pad_mode: str = "constant"
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    """Upper mel edge in Hz; None means sample_rate / 2."""
    htk: bool = False
    mel_norm: str | None = "slaney"
    n_mfcc: int = 40
    dct_norm: str | None = "ortho"
    lifter: float = 0.0
    top_db: float | None = 80.0
    """Clip the dB mel spectrogram this far below its maximum before the DCT (per clip / window)."""
    n_chroma: int = 12
    tuning: float = 0.0
    chroma_power: float = 1.0
    """Exponent of |STFT| fed to the chroma filters: 1 as in the LAQ recipe, 2 as in chroma_stft(y=...)."""
    mel_db: bool = False
    """Average mel bands in dB instead of power (the recipe averages power)."""
    remove_dc: bool = False
    """Subtract each clip's (live window's) mean before features (`edge_ser.features.condition`)."""
    level_dbfs: float | None = None
    """Scale each clip (live window) to this RMS level in dBFS before features, so the microphone's gain does
    not reach the model; None: as recorded (bundles made before issue 17)."""
    schema: int = field(default=SCHEMA_VERSION)

    def __post_init__(self) -> None:
        """Every field typed and bounded (`edge_ser.limits`): a spec that passes can be computed on a Pi."""
        c = Checker("FeatureSpec", error=ConfigError)
        c.integer(self.sample_rate, "sample_rate", MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)
        c.integer(self.n_fft, "n_fft", 16, MAX_N_FFT)
        c.integer(self.hop_length, "hop_length", 1, MAX_HOP)
        if self.win_length is not None:
            c.integer(self.win_length, "win_length", 1, self.n_fft)
        c.choice(self.window, "window", WINDOWS)
        c.choice(self.pad_mode, "pad_mode", PAD_MODES)
        c.of(self.center, "center", bool)
        c.integer(self.n_mels, "n_mels", 1, min(MAX_N_MELS, self.n_fft // 2 + 1))
        c.integer(self.n_mfcc, "n_mfcc", 0, self.n_mels)
        c.integer(self.n_chroma, "n_chroma", 0, MAX_CHROMA)
        c.number(self.fmin, "fmin", lo=0, hi=self.sample_rate / 2)
        if self.fmax is not None:
            c.number(self.fmax, "fmax", lo=0, hi=self.sample_rate / 2)
        if not self.fmin < self.fmax_hz:
            c.problem("fmin", f"need fmin < fmax, got fmin={self.fmin!r} and fmax={self.fmax_hz!r}")
        c.of(self.htk, "htk", bool)
        if self.mel_norm is not None and self.mel_norm != "slaney":
            c.number(self.mel_norm, "mel_norm", positive=True)  # an L^p norm of each filter
        c.choice(self.dct_norm, "dct_norm", ("ortho", None))
        c.number(self.lifter, "lifter", lo=0, hi=MAX_LIFTER)
        if self.top_db is not None:
            c.number(self.top_db, "top_db", lo=0, hi=MAX_TOP_DB)
        c.number(self.tuning, "tuning", lo=-0.5, hi=0.5)
        if self.chroma_power not in (1, 2) or isinstance(self.chroma_power, bool):
            c.problem("chroma_power", f"must be 1 (magnitude) or 2 (power), got {self.chroma_power!r}")
        c.of(self.mel_db, "mel_db", bool)
        c.of(self.remove_dc, "remove_dc", bool)
        if self.level_dbfs is not None:
            c.number(self.level_dbfs, "level_dbfs", lo=-60, hi=0)
        if self.schema != SCHEMA_VERSION:
            c.problem(
                "schema", f"this edge-ser reads FeatureSpec schema {SCHEMA_VERSION}, got {self.schema!r}"
            )
        rate = spectrum_rate(self.sample_rate, self.hop_length, self.n_fft)
        if rate > MAX_SPECTRUM_RATE:
            c.problem(
                "hop_length",
                f"{self.hop_length} with n_fft {self.n_fft} at {self.sample_rate} Hz makes {rate:,.0f} STFT values "
                f"per second of audio (at most {MAX_SPECTRUM_RATE:,}): raise hop_length",
            )

    @property
    def fmax_hz(self) -> float:
        return float(self.sample_rate) / 2 if self.fmax is None else float(self.fmax)

    @property
    def dim(self) -> int:
        """Length of the mean feature vector (180 for the defaults)."""
        return self.n_mfcc + self.n_mels + self.n_chroma

    @property
    def layout(self) -> dict[str, slice]:
        """Where each block sits in the feature vector."""
        a, b = self.n_mfcc, self.n_mfcc + self.n_mels
        return {"mfcc": slice(0, a), "mel": slice(a, b), "chroma": slice(b, b + self.n_chroma)}

    @property
    def hop_seconds(self) -> float:
        return self.hop_length / self.sample_rate

    def stft_kwargs(self) -> dict[str, Any]:
        """The STFT arguments in the spelling of `stft`, `melspectrogram`, `mfcc` and `chroma_stft`."""
        return {
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "win_length": self.win_length,
            "window": self.window,
            "center": self.center,
            "pad_mode": self.pad_mode,
        }

    def n_frames(self, n_samples: int) -> int:
        """Number of STFT frames for a clip of `n_samples` samples."""
        if self.center:
            return 1 + n_samples // self.hop_length
        return 0 if n_samples < self.n_fft else 1 + (n_samples - self.n_fft) // self.hop_length

    def to_dict(self) -> dict[str, Any]:
        """Every field, except the conditioning ones when off (`without_conditioning_off`)."""
        return without_conditioning_off(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSpec:
        """Rebuild from `to_dict()` output; missing keys take defaults, unknown keys are an error."""
        return config_from_dict(cls, d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"FeatureSpec JSON is not valid: {e}") from e
        if not isinstance(d, dict):
            raise ConfigError(f"FeatureSpec JSON must be an object, got {type(d).__name__}")
        return cls.from_dict(d)

    def digest(self) -> str:
        """Short content hash of the spec, used as a cache key."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def __str__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.to_dict().items() if k != "schema")
        return f"FeatureSpec({fields})"
