"""Segment-level training on log-Mel patches with utterance-level evaluation (squeezenet_lms and friends).

A clip becomes overlapping patches (`edge_ser.inputs.patches.clip_segments`, the device's own code); the model is
trained on patches with the clip's label, validation picks the epoch by the *utterance* accuracy of voted
patch predictions (what the device reports), and test accuracy is utterance-level too.

    clips = load_clips("emodb")                       # 535 clips at 16 kHz, labels, speakers
    ps = patch_set(clips, LMSSpec(n_mels=128, win_length=255, hop_length=32, n_fft=1024, segment_frames=64))
    run = train_lms(squeezenet_lms(width=0.5), ps, split, TrainConfig(epochs=40), augment=SpecAugment())
    run.test_acc                                      # utterance-level, mean-probability vote
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from converters.data.splits import Split
from converters.train import TrainConfig, predict, train_classifier
from edge_ser.errors import ConfigError
from edge_ser.inputs.patches import LMSSpec, segment_dataset, utterance_vote


@dataclass(frozen=True)
class ClipSet:
    """Mono clips at one rate with their labels: what LMS patches are cut from."""

    name: str
    clips: tuple[np.ndarray, ...]
    y: np.ndarray
    classes: tuple[str, ...]
    speakers: tuple[str, ...]
    sample_rate: int

    def __len__(self) -> int:
        return len(self.clips)


@lru_cache(maxsize=4)
def load_clips(data: str = "emodb", root: str | None = None, sample_rate: int = 16000) -> ClipSet:
    """Every clip of a data set as float32 mono at `sample_rate`: `data` is a data set's name, 'synthetic' or a
    folder of one's own, resolved by `converters.pipeline.load_records` as the feature-vector models' data is
    (so a zoo of both kinds of model runs on the same files; `load_dataset` took names only, and `zoo --data
    FOLDER` failed every log-Mel model).

    Resampling is `edge_ser.audio.load` (polyphase), as on the device. Cached per process.
    """
    from converters.data.labels import class_order
    from converters.pipeline import load_records
    from edge_ser.audio import load

    name, records = load_records(data, root)
    records = list(records)
    if not records:
        raise ConfigError(f"load_clips: data set {data!r} has no clips")
    classes = tuple(class_order(r.label for r in records))
    clips = tuple(load(r.source, sr=sample_rate)[0] for r in records)
    y = np.array([classes.index(r.label) for r in records], dtype=np.int64)
    return ClipSet(name, clips, y, classes, tuple(r.speaker for r in records), sample_rate)


@dataclass(frozen=True)
class PatchSet:
    """Patches of every clip: X [N, 1, M, T] float32, y [N] (the clip's label), utt [N] (clip index)."""

    spec: LMSSpec
    X: np.ndarray
    y: np.ndarray
    utt: np.ndarray
    clip_y: np.ndarray
    classes: tuple[str, ...]

    def rows(self, clips: np.ndarray) -> np.ndarray:
        """Indices of the patches of the given clips (sorted by clip, then time)."""
        return np.flatnonzero(np.isin(self.utt, np.asarray(clips)))

    @property
    def patches_per_clip(self) -> float:
        return len(self.X) / len(self.clip_y)


_PATCHES: dict[tuple, PatchSet] = {}


def patch_set(clips: ClipSet, spec: LMSSpec) -> PatchSet:
    """`segment_dataset` of every clip; cached per (clip set, spec) in this process (the last few)."""
    if clips.sample_rate != spec.sample_rate:
        raise ConfigError(
            f"patch_set: clips are at {clips.sample_rate} Hz, the spec at {spec.sample_rate} Hz"
        )
    key = (id(clips), clips.name, len(clips), spec)
    if key not in _PATCHES:
        X, y, utt = segment_dataset(list(clips.clips), clips.y, clips.sample_rate, spec)
        while len(_PATCHES) >= 3:
            _PATCHES.pop(next(iter(_PATCHES)))
        _PATCHES[key] = PatchSet(spec, X, y, utt, clips.y, clips.classes)
    return _PATCHES[key]


@dataclass(frozen=True)
class SpecAugment:
    """SpecAugment-style masking of training patches (Park et al. 2019): `freq_masks` bands of up to
    `freq_width` mel rows and `time_masks` spans of up to `time_width` frames are set to the patch mean.

    Widths are fractions of M and T. Masking only, no time warping: on 2 s utterances cut into short patches
    the masks are the part that regularises; the draw is from the training loop's seeded generator."""

    freq_masks: int = 2
    freq_width: float = 0.15
    time_masks: int = 2
    time_width: float = 0.15

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        b, _, m, t = x.shape
        x = x.clone()
        fill = x.mean(dim=(1, 2, 3), keepdim=True).expand_as(x)
        for size, n, width, axis in (
            (m, self.freq_masks, self.freq_width, 2),
            (t, self.time_masks, self.time_width, 3),
        ):
            w_max = max(1, int(round(width * size)))
            for _ in range(n):
                w = torch.randint(0, w_max + 1, (b,), generator=gen)
                start = (torch.rand(b, generator=gen) * (size - w + 1).float()).long()
                pos = torch.arange(size)
                mask = (pos[None, :] >= start[:, None]) & (pos[None, :] < (start + w)[:, None])  # [b, size]
                shape = (b, 1, size, 1) if axis == 2 else (b, 1, 1, size)
                mask = mask.view(shape).expand_as(x)
                x = torch.where(mask, fill, x)
        return x

    def to_dict(self) -> dict:
        return asdict(self)


def vote_accuracy(logits: np.ndarray, utt: np.ndarray, clip_y: np.ndarray, how: str = "mean_prob") -> float:
    """Utterance accuracy of segment logits [N, classes] voted per utterance (`utterance_vote`)."""
    ids, scores = utterance_vote(logits, utt, how)
    return float((scores.argmax(1) == clip_y[ids]).mean())


@dataclass
class LMSRun:
    """One trained LMS model and its utterance-level figures."""

    model: nn.Module
    val_acc: float
    test_acc: float
    test_segment_acc: float
    best_epoch: int
    epochs_run: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def split_parts(ps: PatchSet, split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patch row indices of the split's train, val and test clips."""
    return ps.rows(split.train), ps.rows(split.val), ps.rows(split.test)


def evaluate(
    model: nn.Module, ps: PatchSet, rows: np.ndarray, vote: str = "mean_prob"
) -> tuple[float, float]:
    """(utterance accuracy, segment accuracy) of `model` on the patches `rows`."""
    logits = predict(model, ps.X[rows], batch_size=512)
    seg = float((logits.argmax(1) == ps.y[rows]).mean())
    return vote_accuracy(logits, ps.utt[rows], ps.clip_y, vote), seg


def training_kwargs(
    ps: PatchSet, val_rows: np.ndarray, vote: str = "mean_prob", augment: Callable | None = None
) -> dict:
    """`train_classifier` keyword arguments for LMS training: utterance-vote validation and augmentation."""
    utt = ps.utt[val_rows]
    return {"val_accuracy": lambda logits: vote_accuracy(logits, utt, ps.clip_y, vote), "augment": augment}


def train_lms(
    model: nn.Module,
    ps: PatchSet,
    split: Split,
    config: TrainConfig = TrainConfig(epochs=40, patience=12, batch_size=64),
    *,
    vote: str = "mean_prob",
    augment: Callable | None = None,
    progress: bool = False,
) -> LMSRun:
    """Set the model's input normalisation from the training patches, train on patches, choose the epoch by
    utterance-level validation accuracy, report utterance-level test accuracy."""
    tr, va, te = split_parts(ps, split)
    if len(tr) == 0 or len(va) == 0:
        raise ConfigError("train_lms: the split needs training and validation clips")
    t0 = time.perf_counter()
    if hasattr(model, "set_normalization"):
        Xtr = ps.X[tr]
        model.set_normalization(float(Xtr.mean()), float(Xtr.std()))
    res = train_classifier(
        model,
        ps.X[tr],
        ps.y[tr],
        ps.X[va],
        ps.y[va],
        config,
        progress=progress,
        **training_kwargs(ps, va, vote, augment),
    )
    test_acc, test_seg = evaluate(res.model, ps, te, vote) if len(te) else (float("nan"), float("nan"))
    return LMSRun(
        res.model,
        res.best_val_acc,
        test_acc,
        test_seg,
        res.best_epoch,
        res.epochs_run,
        time.perf_counter() - t0,
        res.history,
    )


__all__ = [
    "ClipSet",
    "LMSRun",
    "PatchSet",
    "SpecAugment",
    "evaluate",
    "load_clips",
    "patch_set",
    "split_parts",
    "train_lms",
    "training_kwargs",
    "vote_accuracy",
]
