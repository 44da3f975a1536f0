"""FeatureSpec: every parameter of the audio front end, as a frozen dataclass that travels in bundles as JSON."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from edge_ser.errors import ConfigError
from edge_ser.features.spectral import PAD_MODES
from edge_ser.schema import config_from_dict

SCHEMA_VERSION = 1


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
    schema: int = field(default=SCHEMA_VERSION)

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"FeatureSpec.{name}={getattr(self, name)!r}: {why}")

        if not (1000 <= self.sample_rate <= 768000):
            raise bad("sample_rate", "must be between 1000 and 768000 Hz")
        if self.n_fft < 16:
            raise bad("n_fft", "must be >= 16")
        if not (1 <= self.hop_length):
            raise bad("hop_length", "must be >= 1")
        if self.win_length is not None and not (1 <= self.win_length <= self.n_fft):
            raise bad("win_length", f"must be between 1 and n_fft={self.n_fft}")
        if self.pad_mode not in PAD_MODES:
            raise bad("pad_mode", f"must be one of {PAD_MODES}")
        if not (1 <= self.n_mels <= self.n_fft // 2 + 1):
            raise bad("n_mels", f"must be between 1 and n_fft//2+1={self.n_fft // 2 + 1}")
        if not (0 <= self.n_mfcc <= self.n_mels):
            raise bad("n_mfcc", f"must be between 0 and n_mels={self.n_mels}")
        if not (0 <= self.n_chroma <= 96):
            raise bad("n_chroma", "must be between 0 and 96")
        if not (0 <= self.fmin < self.fmax_hz <= self.sample_rate / 2):
            raise bad("fmin", f"need 0 <= fmin < fmax <= sample_rate/2, fmax={self.fmax_hz}")
        if self.top_db is not None and self.top_db < 0:
            raise bad("top_db", "must be >= 0 or None")
        if self.chroma_power not in (1.0, 2.0):
            raise bad("chroma_power", "must be 1 (magnitude) or 2 (power)")
        if self.schema != SCHEMA_VERSION:
            raise bad("schema", f"this edge-ser reads FeatureSpec schema {SCHEMA_VERSION}")

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
        return dataclasses.asdict(self)

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
