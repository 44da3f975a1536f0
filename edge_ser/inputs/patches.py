"""Log-Mel patches: the LMS parameters (M mels, window L, hop H, segment T), the per-clip log-mel matrix, its
overlapping segments, utterance-level voting over segment predictions, and the `patches` input kind.

Research context (issue text): SqueezeNet v1.1 on log-Mel patches reached 88.22 +- 1.87 % on EMODB once the
LMS parameters were searched (M 128-256, L 127/255/511, H 16/32, T), against 64.78 % with M 40, L 400, H 160,
T 3 s; the parameters are hyper-parameters to sweep, so they live in one dataclass that travels with the model.

Device side (numpy only): a bundle's `lms_input` block is an `LMSSpec` plus the vote (`PatchesKind`), and
`edge-ser predict` / the live runtime turn a clip (a window) into patches with `clip_segments` and vote with
`utterance_vote`, exactly as training did; the model runs once on all of a clip's patches.

The log-mel itself is `edge_ser.features` (the one numpy front end shared by host and device):
`FeatureSpec` expresses win_length < n_fft directly (the window is zero-padded to n_fft, as in librosa), so
`lms_frames` is `power_to_db(melspectrogram(y, **FeatureSpec.stft_kwargs(), ...))` with nothing reimplemented
(`edge_ser.features.vector.conditioned_log_mel_db`, which the sequence kind's frames share).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_ser.engines.base import softmax
from edge_ser.errors import ConfigError
from edge_ser.features import FeatureSpec
from edge_ser.features.spec import without_conditioning_off
from edge_ser.features.vector import conditioned_log_mel_db
from edge_ser.inputs.base import InputKind, Inputs, shape_of
from edge_ser.limits import MAX_N_FFT, MAX_N_MELS, MAX_PATCH_VALUES, MAX_SEGMENT_FRAMES
from edge_ser.schema import Checker, config_from_dict

VOTES = ("mean_prob", "majority")


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


@dataclass(frozen=True)
class LMSSpec:
    """Log-Mel patch parameters (the SqueezeNet LMS hyper-parameters)."""

    sample_rate: int = 16000
    """Rate (Hz) audio is resampled to before analysis."""
    n_mels: int = 128
    """M: mel bands (rows of a patch)."""
    win_length: int = 255
    """L: analysis window in samples (Hann), zero-padded to n_fft."""
    hop_length: int = 32
    """H: frame step in samples (2 ms at 16 kHz)."""
    n_fft: int | None = None
    """FFT size in samples (>= win_length); None means the next power of two >= win_length.

    The FFT gives n_fft // 2 + 1 bins, so M mels need n_fft well above 2 * M: with the next power of two, L 255
    (n_fft 256, 129 bins) and M 128 leaves some low mel bands without an FFT bin (edge_ser.features warns
    "Empty filters"; those rows sit at the top_db floor), and L 127 cannot have M 128 at all. Set n_fft
    explicitly (e.g. 1024 or 2048: the L-sample window is zero-padded, as in librosa) for M 128-256."""
    segment_frames: int = 64
    """T: frames per patch (columns)."""
    segment_hop: int | None = None
    """Frames between the starts of consecutive patches; None means segment_frames // 2 (50 % overlap)."""
    fmin: float = 0.0
    fmax: float | None = None
    """Upper mel edge in Hz; None means sample_rate / 2."""
    top_db: float | None = 80.0
    """Clip the dB log-mel this far below its per-clip maximum (librosa's default)."""
    remove_dc: bool = False
    """Subtract each clip's mean first (`edge_ser.features.condition`; off in bundles made before issue 17)."""
    level_dbfs: float | None = None
    """Scale each clip to this RMS level (dBFS) first, after `remove_dc`; None: as recorded."""

    def __post_init__(self) -> None:
        """Typed and bounded (`edge_ser.limits`); the STFT/mel part is checked by the FeatureSpec it becomes."""
        c = Checker("LMSSpec", error=ConfigError)
        c.integer(self.win_length, "win_length", 16, MAX_N_FFT)
        if self.n_fft is not None:
            c.integer(self.n_fft, "n_fft", self.win_length, MAX_N_FFT)
        c.integer(self.n_mels, "n_mels", 1, MAX_N_MELS)
        c.integer(self.segment_frames, "segment_frames", 1, MAX_SEGMENT_FRAMES)
        if self.segment_hop is not None:
            c.integer(self.segment_hop, "segment_hop", 1, MAX_SEGMENT_FRAMES)
        if self.n_mels * self.segment_frames > MAX_PATCH_VALUES:
            c.problem(
                "segment_frames",
                f"patches of {self.n_mels} x {self.segment_frames} values are larger than {MAX_PATCH_VALUES:,}",
            )
        try:
            self.feature_spec()
        except ConfigError as e:
            raise ConfigError(str(e).replace("FeatureSpec", "LMSSpec", 1)) from None

    @property
    def fft_size(self) -> int:
        """The n_fft actually used: n_fft, or the next power of two >= win_length."""
        return self.n_fft if self.n_fft is not None else _next_pow2(self.win_length)

    @property
    def hop(self) -> int:
        """Frames between patch starts."""
        return self.segment_hop if self.segment_hop is not None else max(1, self.segment_frames // 2)

    @property
    def fmax_hz(self) -> float:
        return float(self.sample_rate) / 2 if self.fmax is None else float(self.fmax)

    @property
    def patch_shape(self) -> tuple[int, int, int]:
        """Per-sample model input shape (1, M, T)."""
        return (1, self.n_mels, self.segment_frames)

    @property
    def segment_seconds(self) -> float:
        return self.segment_frames * self.hop_length / self.sample_rate

    def feature_spec(self) -> FeatureSpec:
        """The equivalent edge_ser FeatureSpec (STFT + mel part; MFCC / chroma fields are unused here)."""
        return FeatureSpec(
            sample_rate=self.sample_rate,
            n_fft=self.fft_size,
            hop_length=self.hop_length,
            win_length=self.win_length,
            n_mels=self.n_mels,
            fmin=self.fmin,
            fmax=self.fmax,
            n_mfcc=0,
            n_chroma=0,
            top_db=self.top_db,
            remove_dc=self.remove_dc,
            level_dbfs=self.level_dbfs,
        )

    def to_dict(self) -> dict[str, Any]:
        """Every field, except the conditioning ones when off (`without_conditioning_off`)."""
        return without_conditioning_off(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LMSSpec:
        """Rebuild from `to_dict()` output; missing keys take defaults, unknown keys are an error."""
        return config_from_dict(cls, d)

    def __str__(self) -> str:
        return (
            f"LMSSpec(M={self.n_mels}, L={self.win_length}, H={self.hop_length}, n_fft={self.fft_size}, "
            f"T={self.segment_frames}, hop={self.hop}, sr={self.sample_rate})"
        )


def lms_frames(y: np.ndarray, sr: int, spec: LMSSpec) -> np.ndarray:
    """Log-mel in dB, time-major [shape=(frames, M)] float32, of a mono clip `y` [shape=(n,)] at `sr` Hz.

    Power mel spectrogram (Slaney mel bank, Hann window of L samples centred in an n_fft FFT, centred frames
    with zero padding) -> `power_to_db(ref=1, top_db=spec.top_db)`, all from `edge_ser.features`.
    """
    if sr != spec.sample_rate:
        raise ConfigError(f"lms_frames: audio is at {sr} Hz, the LMSSpec expects {spec.sample_rate} Hz")
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ConfigError(f"lms_frames: expects mono audio [n], got shape {y.shape}")
    # DC and level when the spec asks for them; the feature spec's top_db is the LMSSpec's
    return np.ascontiguousarray(conditioned_log_mel_db(y, spec.feature_spec()).T, dtype=np.float32)


def segments(lms: np.ndarray, spec: LMSSpec, *, pad_value: float | None = None) -> np.ndarray:
    """Overlapping patches [shape=(n_seg, 1, M, T)] float32 of a log-mel `lms` [shape=(frames, M)].

    Patches start every `spec.hop` frames; a clip shorter than T is padded at the end with `pad_value`
    (default: the clip's minimum, i.e. the top_db floor / silence), and a last partial patch is added (also
    padded) when the regular grid would leave more than half a hop of frames uncovered.
    """
    lms = np.asarray(lms, dtype=np.float32)
    if lms.ndim != 2 or lms.shape[1] != spec.n_mels:
        raise ConfigError(f"segments: expects [frames, {spec.n_mels}], got shape {lms.shape}")
    if lms.shape[0] == 0:
        raise ConfigError("segments: empty log-mel (0 frames)")
    T, hop = spec.segment_frames, spec.hop
    fill = float(lms.min()) if pad_value is None else float(pad_value)
    n = lms.shape[0]
    starts = list(range(0, max(n - T, 0) + 1, hop))
    tail = n - (starts[-1] + T)
    if tail > hop // 2:
        starts.append(starts[-1] + hop)
    need = starts[-1] + T
    if need > n:
        lms = np.concatenate([lms, np.full((need - n, spec.n_mels), fill, np.float32)])
    out = np.stack([lms[s : s + T].T for s in starts])  # [n_seg, M, T]
    return np.ascontiguousarray(out[:, None])


def clip_segments(y: np.ndarray, sr: int, spec: LMSSpec) -> np.ndarray:
    """`segments(lms_frames(y, sr, spec), spec)`: the patches of one clip [shape=(n_seg, 1, M, T)]."""
    return segments(lms_frames(y, sr, spec), spec)


def segment_dataset(
    clips: list[np.ndarray], labels: np.ndarray, sr: int, spec: LMSSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segment every clip: (X [shape=(N, 1, M, T)], y [N] segment labels, utterance_index [N])."""
    X, y, idx = [], [], []
    for i, (clip, lab) in enumerate(zip(clips, np.asarray(labels), strict=True)):
        s = clip_segments(clip, sr, spec)
        X.append(s)
        y.append(np.full(len(s), lab, np.int64))
        idx.append(np.full(len(s), i, np.int64))
    return np.concatenate(X), np.concatenate(y), np.concatenate(idx)


def utterance_vote(
    segment_logits: np.ndarray, utterance_index: np.ndarray, how: str = "mean_prob"
) -> tuple[np.ndarray, np.ndarray]:
    """Combine segment predictions per utterance.

    Args:
        segment_logits: [shape=(N, classes)] logits of N segments.
        utterance_index: [shape=(N,)] int, the utterance each segment came from.
        how: "mean_prob" (average softmax probabilities) or "majority" (most frequent segment argmax; ties go
            to the class with the higher mean probability).

    Returns:
        (utterances [U] sorted unique ids, scores [U, classes]): mean probabilities, or for "majority" the
        vote fractions plus 1e-6 x mean probability (so argmax breaks ties). Predicted class = scores.argmax(1).
    """
    if how not in VOTES:
        raise ConfigError(f"utterance_vote: how={how!r} must be one of {VOTES}")
    z = np.asarray(segment_logits, dtype=np.float64)
    idx = np.asarray(utterance_index)
    if z.ndim != 2 or idx.shape != (z.shape[0],):
        raise ConfigError(f"utterance_vote: logits {z.shape} and utterance_index {idx.shape} do not match")
    utts, inv = np.unique(idx, return_inverse=True)
    counts = np.bincount(inv, minlength=len(utts)).astype(np.float64)[:, None]
    prob = np.zeros((len(utts), z.shape[1]))
    np.add.at(prob, inv, softmax(z, axis=1))
    prob /= counts
    if how == "mean_prob":
        return utts, prob
    votes = np.zeros_like(prob)
    np.add.at(votes, (inv, z.argmax(1)), 1.0)
    return utts, votes / counts + 1e-6 * prob


class PatchesKind(InputKind):
    """Input "lms" [batch, 1, M, T]: a clip's overlapping log-Mel patches, voted per utterance (manifest block
    `lms_input`: the LMSSpec fields plus `vote`)."""

    name = "patches"
    blocks = ("lms_input",)
    input_names = ("lms",)

    def __init__(self, spec: LMSSpec, vote: str = "mean_prob") -> None:
        if vote not in VOTES:
            raise ConfigError(f"vote={vote!r} must be one of {VOTES}")
        self.spec, self.vote = spec, vote

    @classmethod
    def check_manifest(cls, c: Checker, manifest: Mapping[str, Any], inputs: list[dict[str, Any]]) -> None:
        block = c.get(manifest, "lms_input", "", dict)
        if block is None:
            return
        d = dict(block)
        vote = d.pop("vote", "mean_prob")
        if vote not in VOTES:
            c.problem("lms_input.vote", f"{vote!r} is not one of {list(VOTES)}")
            return
        spec = c.build("lms_input", LMSSpec.from_dict, d)
        if spec is None:
            return
        got = shape_of(inputs, "lms")
        if got is None:
            c.problem("lms_input", f"the model has no 'lms' input (inputs: {[x['name'] for x in inputs]})")
        elif got[1:] != list(spec.patch_shape):
            i = [x["name"] for x in inputs].index("lms")
            c.problem(
                f"model.inputs[{i}].shape",
                f"'lms' is {got}, but lms_input gives [batch, {', '.join(map(str, spec.patch_shape))}]",
            )

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> PatchesKind:
        d = dict(manifest["lms_input"])
        vote = d.pop("vote", "mean_prob")
        return cls(LMSSpec.from_dict(d), vote)

    def manifest_blocks(self) -> dict[str, Any]:
        return {"lms_input": {**self.spec.to_dict(), "vote": self.vote}}

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate

    @property
    def feature_spec(self) -> FeatureSpec:
        return self.spec.feature_spec()

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"lms": self.spec.patch_shape}

    def window_inputs(self, window: np.ndarray, faces: Sequence[Any] | None = None) -> Inputs:
        return {"lms": clip_segments(window, self.sample_rate, self.spec).astype(np.float32)}

    def combine(self, logits: np.ndarray) -> np.ndarray:
        """The clip's patches voted by the bundle's rule (the clip is one utterance)."""
        z = np.asarray(logits)
        _, scores = utterance_vote(z, np.zeros(len(z), np.int64), self.vote)
        return scores[0]

    def describe(self) -> list[str]:
        s = self.spec
        return [
            f"log-Mel patches: {s} at {s.sample_rate} Hz (mel {s.fmin:g}-{s.fmax_hz:g} Hz), "
            f"{s.segment_seconds * 1e3:.0f} ms each; the model runs on all of a clip's patches, voted by {self.vote}"
            + (", DC removed" if s.remove_dc else "")
            + (f", level set to {s.level_dbfs:g} dBFS" if s.level_dbfs is not None else "")
        ]


KIND = PatchesKind

__all__ = [
    "KIND",
    "VOTES",
    "PatchesKind",
    "LMSSpec",
    "clip_segments",
    "lms_frames",
    "segment_dataset",
    "segments",
    "utterance_vote",
]
