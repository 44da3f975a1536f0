"""MFCC frame sequences: the `sequence` input kind, for temporal models (TIM-Net-like dilated convolutions).

A clip becomes one or more windows of T MFCC frames, time-major, model input "mfcc" [batch, T, n_mfcc]:

- the clip is conditioned (DC, level: `edge_ser.features.condition`), then its log-Mel spectrogram in dB is
  computed over the whole clip (`melspectrogram` + `power_to_db`, so the top_db floor is the clip's own);
- a clip of at most T frames is ONE window, centred and padded on both sides with the clip's quietest
  log-Mel frame (its silence floor), as TIM-Net centres and zero-pads its clips; a longer clip gives windows
  every `hop` frames plus one ending at the clip's last frame, so every frame is seen and no window is padded;
- each window's MFCCs are `mfcc(S=...)` of its log-Mel frames (the DCT of `edge_ser.features`, one
  implementation), and the model's output rows are voted per clip (`utterance_vote`, mean probability).

Why windows rather than one crop or one long input: a fixed T keeps the exported graph static and the device's
cost per window known; a centre crop (TIM-Net's choice) would throw away the ends of long clips, and a T long
enough for EMODB's longest clip (9 s) would make every 3 s live window two-thirds padding. T = 150 frames
(3 s at a 20 ms hop) is the live loop's window, and most EMODB utterances fit in one window.

Frames are 25 ms long and 20 ms apart: TIM-Net's reference frames are 23 ms apart (librosa's hop of 512 at
22.05 kHz); a 10 ms hop would double the model's cost per second of audio, on the device and in training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_ser.errors import ConfigError
from edge_ser.features import FeatureSpec, mfcc
from edge_ser.features.vector import conditioned_log_mel_db
from edge_ser.inputs.base import InputKind, Inputs, nested_feature_spec, shape_of
from edge_ser.inputs.patches import VOTES, utterance_vote
from edge_ser.limits import MAX_PATCH_VALUES, MAX_SEGMENT_FRAMES
from edge_ser.schema import Checker, config_from_dict

SCHEMA_VERSION = 1
INPUT = "mfcc"
"""The model input this kind feeds."""


def sequence_feature_spec() -> FeatureSpec:
    """The sequence front end: 16 kHz, 25 ms Hann window in a 512-point FFT, 20 ms hop, 64 mel bands up to
    8 kHz, 39 MFCCs (TIM-Net's count), no chroma."""
    return FeatureSpec(
        sample_rate=16000, n_fft=512, win_length=400, hop_length=320, n_mels=64, n_mfcc=39, n_chroma=0
    )


@dataclass(frozen=True)
class SequenceSpec:
    """Windows of MFCC frames: the front end, the window length T and the hop between windows of long clips."""

    feature_spec: FeatureSpec = field(default_factory=sequence_feature_spec)
    """STFT, mel and MFCC parameters (`n_mfcc` is the model's feature axis) and the clip conditioning."""
    frames: int = 150
    """T: frames per window (3 s at a 20 ms hop)."""
    hop: int | None = None
    """Frames between window starts in a clip longer than T; None: T // 2."""
    vote: str = "mean_prob"
    """How a clip's windows are combined (`edge_ser.inputs.patches.utterance_vote`)."""
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        c = Checker("SequenceSpec", error=ConfigError)
        if not isinstance(self.feature_spec, FeatureSpec):
            c.problem("feature_spec", f"must be a FeatureSpec, got {type(self.feature_spec).__name__}")
        elif self.feature_spec.n_mfcc < 1:
            c.problem("feature_spec.n_mfcc", "must be >= 1 (the model's feature axis)")
        c.integer(self.frames, "frames", 1, MAX_SEGMENT_FRAMES)
        if self.hop is not None:
            c.integer(self.hop, "hop", 1, MAX_SEGMENT_FRAMES)
        c.choice(self.vote, "vote", VOTES)
        if self.frames * self.n_mfcc > MAX_PATCH_VALUES:
            c.problem(
                "frames", f"windows of {self.frames} x {self.n_mfcc} values exceed {MAX_PATCH_VALUES:,}"
            )
        if self.schema != SCHEMA_VERSION:
            c.problem(
                "schema", f"this edge-ser reads SequenceSpec schema {SCHEMA_VERSION}, got {self.schema!r}"
            )

    @property
    def n_mfcc(self) -> int:
        return self.feature_spec.n_mfcc if isinstance(self.feature_spec, FeatureSpec) else 0

    @property
    def window_hop(self) -> int:
        return self.hop if self.hop is not None else max(1, self.frames // 2)

    @property
    def shape(self) -> tuple[int, int]:
        """Per-window model input shape (T, n_mfcc)."""
        return (self.frames, self.n_mfcc)

    @property
    def window_seconds(self) -> float:
        return self.frames * self.feature_spec.hop_seconds

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["feature_spec"] = self.feature_spec.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SequenceSpec:
        """Rebuild from `to_dict()` output; missing keys take defaults, unknown keys are an error."""
        return config_from_dict(cls, d, feature_spec=nested_feature_spec("SequenceSpec"))


def log_mel_db(y: np.ndarray, sr: int, spec: FeatureSpec) -> np.ndarray:
    """The conditioned clip's log-Mel spectrogram in dB [shape=(n_mels, frames)] (top_db below its maximum)."""
    if int(sr) != spec.sample_rate:
        raise ConfigError(
            f"audio at {sr} Hz; the sequence spec expects {spec.sample_rate} Hz (resample first)"
        )
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ConfigError(f"audio must be mono [n], got shape {y.shape}")
    return conditioned_log_mel_db(y, spec)


def window_starts(n: int, spec: SequenceSpec) -> list[int]:
    """Start frames of a clip's windows: [0] up to T frames, else every `hop` plus one ending at the clip's end."""
    T = spec.frames
    if n <= T:
        return [0]
    starts = list(range(0, n - T + 1, spec.window_hop))
    if starts[-1] + T < n:
        starts.append(n - T)
    return starts


def windows(db: np.ndarray, spec: SequenceSpec) -> np.ndarray:
    """MFCC windows [shape=(n_windows, T, n_mfcc)] float32 of a clip's log-Mel dB [shape=(n_mels, frames)]."""
    fs, T = spec.feature_spec, spec.frames
    n = db.shape[-1]
    if n == 0:
        raise ConfigError("sequence windows: the clip has no frames")
    if n < T:  # centred, both sides at the clip's quietest frame (its silence floor)
        left = (T - n) // 2
        db = np.pad(db, ((0, 0), (left, T - n - left)), constant_values=float(db.min()))
    stack = np.stack([db[:, s : s + T] for s in window_starts(n, spec)])  # [w, n_mels, T]
    m = mfcc(S=stack, n_mfcc=fs.n_mfcc, norm=fs.dct_norm, lifter=fs.lifter)  # [w, n_mfcc, T]
    return np.ascontiguousarray(np.swapaxes(m, 1, 2), dtype=np.float32)


def clip_windows(y: np.ndarray, sr: int, spec: SequenceSpec) -> np.ndarray:
    """`windows(log_mel_db(y, sr, ...), spec)`: the model inputs of one mono clip [shape=(n_windows, T, n_mfcc)]."""
    return windows(log_mel_db(y, sr, spec.feature_spec), spec)


class SequenceKind(InputKind):
    """Input "mfcc" [batch, T, n_mfcc]: a clip's windows of MFCC frames, voted per clip (manifest block
    `sequence_input`: the SequenceSpec)."""

    name = "sequence"
    blocks = ("sequence_input",)
    input_names = (INPUT,)

    def __init__(self, spec: SequenceSpec | None = None) -> None:
        self.spec = spec or SequenceSpec()

    @classmethod
    def check_manifest(cls, c: Checker, manifest: Mapping[str, Any], inputs: list[dict[str, Any]]) -> None:
        block = c.get(manifest, "sequence_input", "", dict)
        if block is None:
            return
        spec = c.build("sequence_input", SequenceSpec.from_dict, block)
        if spec is None:
            return
        if spec.feature_spec != FeatureSpec.from_dict(manifest["feature_spec"]):
            c.problem(
                "sequence_input.feature_spec",
                "differs from the manifest's feature_spec (they must be the same)",
            )
        got = shape_of(inputs, INPUT)
        names = [x["name"] for x in inputs]
        if got is None:
            c.problem("sequence_input", f"the model has no {INPUT!r} input (inputs: {names})")
        elif got[1:] != list(spec.shape):
            c.problem(
                f"model.inputs[{names.index(INPUT)}].shape",
                f"{INPUT!r} is {got}, but sequence_input gives [batch, {spec.frames}, {spec.n_mfcc}]",
            )

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> SequenceKind:
        return cls(SequenceSpec.from_dict(manifest["sequence_input"]))

    def manifest_blocks(self) -> dict[str, Any]:
        return {"sequence_input": self.spec.to_dict()}

    @property
    def feature_spec(self) -> FeatureSpec:
        return self.spec.feature_spec

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        return {INPUT: self.spec.shape}

    def window_inputs(self, window: np.ndarray, faces: Sequence[Any] | None = None) -> Inputs:
        return {INPUT: clip_windows(window, self.sample_rate, self.spec)}

    def combine(self, logits: np.ndarray) -> np.ndarray:
        """The clip's windows voted by the spec's rule (the clip is one utterance)."""
        z = np.asarray(logits)
        _, scores = utterance_vote(z, np.zeros(len(z), np.int64), self.spec.vote)
        return scores[0]

    def describe(self) -> list[str]:
        s, fs = self.spec, self.spec.feature_spec
        return [
            f"MFCC sequences: windows of {s.frames} frames x {fs.n_mfcc} MFCCs ({s.window_seconds:.2f} s; hop "
            f"{s.window_hop} frames in longer clips, shorter clips centred on their silence floor) at "
            f"{fs.sample_rate} Hz, n_fft {fs.n_fft}, window {fs.win_length or fs.n_fft}, hop {fs.hop_length}, "
            f"{fs.n_mels} mel bands; windows voted by {s.vote}"
        ]


KIND = SequenceKind

__all__ = [
    "INPUT",
    "KIND",
    "SequenceKind",
    "SequenceSpec",
    "clip_windows",
    "log_mel_db",
    "sequence_feature_spec",
    "window_starts",
    "windows",
]
