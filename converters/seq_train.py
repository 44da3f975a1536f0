"""Training the temporal model (TIM-Net-like `timnet`) on MFCC windows, fold by fold, through LAQ + QAT.

A clip becomes windows of MFCC frames (`edge_ser.inputs.sequence.clip_windows`, the device's own code). The
model trains on windows with the clip's label and three augmentations:

- speed perturbation (Ko et al., Interspeech 2015): every training clip also at speeds 0.9 and 1.1, made by
  resampling it with `edge_ser.audio.resample` as if it had been recorded at 0.9 / 1.1 times the rate (tempo
  and pitch change together, as Kaldi's `sox speed`); the three copies are all training rows;
- SpecAugment masks (Park et al., Interspeech 2019) on the MFCC window: `converters.lms_train.SpecAugment`
  on the window seen as a [coefficients, frames] patch;
- mixup (Zhang et al., ICLR 2018) of each batch with itself (`train_classifier(mixup=...)`).

Validation picks the epoch (and QAT's) by the *UAR of voted windows* on the validation records:
`train_timnet_fold(train, val, test)` takes three record lists, refuses a clip in two of them, and never looks
at the test records until the model is fixed. Speaker independence is the caller's split: leave-one-speaker-out
(`benchmarks/timnet_loso.py`) validates on another speaker than the test one. Test figures are per clip (windows voted as the device votes them).

    result = train_timnet_fold(train_records, val_records, test_records, TimNetTrainConfig())
    result.float.uar, result.quant.uar, result.packed_kb
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from converters.checks import check_counts
from converters.data.records import Record
from converters.evaluate import Metrics, index_metrics, metrics
from converters.lms_train import SpecAugment
from converters.models.serct_lite import SerctLiteConfig
from converters.models.timnet import TimNetConfig
from converters.recipe import DEFAULT_CONDITIONING
from converters.train import TrainConfig, predict, seed_everything, train_classifier
from edge_ser.errors import ConfigError
from edge_ser.inputs.patches import utterance_vote
from edge_ser.inputs.sequence import SequenceKind, SequenceSpec, clip_windows, sequence_feature_spec


def default_sequence_spec() -> SequenceSpec:
    """The sequence kind with the host's default conditioning (DC removed, -26 dBFS: `converters.recipe`)."""
    return SequenceSpec(feature_spec=dataclasses.replace(sequence_feature_spec(), **DEFAULT_CONDITIONING))


@dataclass(frozen=True)
class TimNetTrainConfig:
    """Everything one fold's run depends on (model, augmentation, training, compression)."""

    spec: SequenceSpec = field(default_factory=default_sequence_spec)
    filters: int = 39
    dilations: int = 8
    dropout: float = 0.1
    epochs: int = 12
    """Float training epochs; each sees every clip at every speed (12 epochs = 36 passes over the clips)."""
    patience: int = 4
    batch: int = 32
    lr: float = 1e-3
    seed: int = 0
    speeds: tuple[float, ...] = (0.9, 1.0, 1.1)
    """Speed perturbation factors of the training clips (1.0 alone: none)."""
    spec_augment: bool = True
    mixup: float = 0.2
    """Beta(mixup, mixup) mixing weight; 0 turns mixup off."""
    laq: str = "sensitivity@2.0"
    """A `converters.compress` recipe for the quantized model; "" trains the float model only."""
    model: str = "timnet"
    """"timnet" (MFCC windows) or "serct_lite" (the same windows as raw conditioned samples,
    `converters.models.serct_lite`; host-only: no device input kind yet, so no bundle, its packed size from
    the compressed model's .esq)."""
    serct_channels: int = 16
    """serct_lite's conv channels (and 2 x 16 attention width); cut from the thesis's 512 to train on a CPU."""
    qat_epochs: int = 4
    calibration: int = 96
    """Training windows the sensitivity allocation scores each plan on (seeded subset)."""
    speaker_norm: bool = False
    """Standardise every speaker's MFCC frames by that speaker's own statistics (transductive, as the
    functionals rows' `transductive` norm; each speed copy of a speaker is its own group, and the validation and
    test speakers use their unlabelled clips). Off: the model's global standardisation alone."""

    def __post_init__(self) -> None:
        if not self.speeds or any(not 0.5 <= s <= 2.0 for s in self.speeds):
            raise ConfigError(f"TimNetTrainConfig.speeds={self.speeds!r}: factors must lie in [0.5, 2]")
        if self.mixup < 0:
            raise ConfigError(f"TimNetTrainConfig.mixup={self.mixup} must be >= 0")
        if self.model not in ("timnet", "serct_lite"):
            raise ConfigError(f"TimNetTrainConfig.model={self.model!r}: choose timnet or serct_lite")
        # epochs or patience 0 evaluated the untrained model as if trained; batch 0 was a ZeroDivisionError
        lows = {"epochs": 1, "patience": 1, "batch": 1, "calibration": 1, "qat_epochs": 0}
        check_counts("TimNetTrainConfig.", self, lows)
        if not self.lr > 0:
            raise ConfigError(f"TimNetTrainConfig.lr={self.lr!r} must be > 0")
        try:  # the model's own checks, before the windows of every training clip are made
            TimNetConfig(filters=self.filters, dilations=self.dilations, dropout=self.dropout)
            if self.model == "serct_lite":
                SerctLiteConfig(channels=self.serct_channels, dim=2 * self.serct_channels)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"TimNetTrainConfig: {e}") from None
        if self.laq:
            from converters.compress import check_recipe

            # a misspelt recipe was refused only after the whole float training, by `compress`
            check_recipe(self.laq)

    def train_config(self, epochs: int | None = None, lr: float | None = None) -> TrainConfig:
        e = self.epochs if epochs is None else epochs
        return TrainConfig(
            epochs=e,
            patience=self.patience if epochs is None else e,
            batch_size=self.batch,
            lr=self.lr if lr is None else lr,
            weight_decay=0.0 if epochs is not None else 1e-4,
            seed=self.seed,
            threads=1,
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["spec"] = self.spec.to_dict()
        return d


# ---------------------------------------------------------------------------------------------- windows


def speed_perturb(y: np.ndarray, sr: int, factor: float) -> np.ndarray:
    """`y` played `factor` times faster (tempo and pitch): resampled from sr * factor to sr Hz."""
    from edge_ser.audio import resample

    if factor == 1.0:
        return y
    return resample(y, int(round(sr * factor)), sr)


_AUDIO: dict[str, np.ndarray] = {}
_WINDOWS: dict[tuple, np.ndarray] = {}


def wave_windows(y: np.ndarray, sr: int, spec: SequenceSpec) -> np.ndarray:
    """The raw-sample windows [n, T * hop] float32 of a clip, aligned with `clip_windows`' MFCC windows: the
    conditioned clip (DC removed, level set) cut at the same frame starts, a short clip centred in silence."""
    from edge_ser.features.condition import condition
    from edge_ser.inputs.sequence import window_starts

    fs = spec.feature_spec
    if int(sr) != fs.sample_rate:
        raise ConfigError(f"audio at {sr} Hz; the sequence spec expects {fs.sample_rate} Hz (resample first)")
    x = np.asarray(condition(np.asarray(y, np.float32), fs), np.float32)
    hop, T = fs.hop_length, spec.frames
    n = 1 + x.size // hop  # centred frames, as the STFT counts them
    width = T * hop
    if n < T:
        left = (T - n) * hop // 2
        x = np.pad(x, (left, max(0, width - x.size - left)))
        n = T
    x = np.pad(x, (0, max(0, (n - 1) * hop + width - x.size)))
    return np.stack([x[s * hop : s * hop + width] for s in window_starts(n, spec)]).astype(np.float32)


def record_windows(
    record: Record, spec: SequenceSpec, speed: float = 1.0, *, raw: bool = False
) -> np.ndarray:
    """The MFCC windows [n, T, n_mfcc] (`raw`: sample windows [n, T * hop]) of one record's audio at one
    speed; audio and windows are cached in this process (a LOSO run featurises each clip once, not per fold)."""
    from edge_ser.audio import load

    sr = spec.feature_spec.sample_rate
    key = (str(record.source), spec, float(speed), raw)
    if key not in _WINDOWS:
        akey = f"{record.source}@{sr}"
        if akey not in _AUDIO:
            _AUDIO[akey] = load(record.source, sr=sr)[0]
        cut = wave_windows if raw else clip_windows
        _WINDOWS[key] = cut(speed_perturb(_AUDIO[akey], sr, speed), sr, spec)
    return _WINDOWS[key]


@dataclass(frozen=True)
class WindowSet:
    """Windows of several clips: X [N, T, n_mfcc], y [N] (the clip's label), utt [N] (clip index), clip_y [clips]."""

    X: np.ndarray
    y: np.ndarray
    utt: np.ndarray
    clip_y: np.ndarray


def window_set(
    records: Sequence[Record],
    classes: Sequence[str],
    spec: SequenceSpec,
    speeds: Sequence[float] = (1.0,),
    *,
    raw: bool = False,
    speaker_norm: bool = False,
) -> WindowSet:
    """Every window of every record at every speed (rows of one clip share its index in `records`).
    `speaker_norm`: each (speaker, speed) group's frames standardised by the group's own statistics
    (`converters.speaker_norm.transductive`)."""
    index = {c: i for i, c in enumerate(classes)}
    X, y, utt, group = [], [], [], []
    for i, r in enumerate(records):
        for s in speeds:
            w = record_windows(r, spec, s, raw=raw)
            X.append(w)
            y.append(np.full(len(w), index[r.label], np.int64))
            utt.append(np.full(len(w), i, np.int64))
            group.append(np.full(len(w), f"{r.speaker}#{s:g}"))
    clip_y = np.array([index[r.label] for r in records], dtype=np.int64)
    windows = np.concatenate(X)
    if speaker_norm:
        if raw:
            raise ConfigError("window_set: speaker_norm standardises MFCC frames, not raw sample windows")
        from converters.speaker_norm import transductive

        windows = transductive(windows, np.concatenate(group))
    return WindowSet(windows, np.concatenate(y), np.concatenate(utt), clip_y)


# ---------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class SequenceAugment:
    """SpecAugment masks on MFCC windows [B, T, n_mfcc]: the patch masks of `converters.lms_train.SpecAugment`
    with the coefficients as rows and the frames as columns."""

    masks: SpecAugment = SpecAugment(freq_masks=2, freq_width=0.1, time_masks=2, time_width=0.1)

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return self.masks(x.transpose(1, 2)[:, None], gen)[:, 0].transpose(1, 2)


def voted(logits: np.ndarray, ws: WindowSet) -> tuple[np.ndarray, np.ndarray]:
    """(clip indices, predicted class per clip) of window logits voted by mean probability."""
    ids, scores = utterance_vote(logits, ws.utt, "mean_prob")
    return ids, scores.argmax(1)


def clip_probabilities(model: nn.Module, ws: WindowSet) -> np.ndarray:
    """[clips, classes] each clip's windows' mean softmax probabilities (the vote), in record order (NaN for a
    clip without windows): what the metrics count and a late fusion with another clip-level model combines."""
    ids, scores = utterance_vote(predict(model, ws.X, batch_size=256), ws.utt, "mean_prob")
    out = np.full((len(ws.clip_y), scores.shape[1]), np.nan)
    out[ids] = scores
    return out


def probability_metrics(probs: np.ndarray, ws: WindowSet, classes: Sequence[str]) -> Metrics:
    """Per-clip UAR / accuracy / confusion of `clip_probabilities` on a window set (clips with windows)."""
    seen = ~np.isnan(probs[:, 0])
    return metrics(
        [classes[i] for i in ws.clip_y[seen]], [classes[i] for i in probs[seen].argmax(1)], classes
    )


def clip_metrics(model: nn.Module, ws: WindowSet, classes: Sequence[str]) -> Metrics:
    """Per-clip UAR / accuracy / confusion of a model on a window set."""
    return probability_metrics(clip_probabilities(model, ws), ws, classes)


def uar_of(ws: WindowSet, n_classes: int) -> Callable[[np.ndarray], float]:
    """`val_accuracy` for `train_classifier`: the UAR of the voted clips (early stopping on UAR, not accuracy)."""

    def uar(logits: np.ndarray) -> float:
        ids, pred = voted(logits, ws)
        return index_metrics(ws.clip_y[ids], pred, [str(c) for c in range(n_classes)]).uar

    return uar


@dataclass
class FoldResult:
    """One fold: the float and quantized models' per-clip metrics, sizes and times."""

    classes: tuple[str, ...]
    float: Metrics
    quant: Metrics | None
    params: int
    bits: float | None
    packed_kb: float | None
    best_epoch: int
    epochs_run: int
    seconds: float
    train_seconds: float
    model: nn.Module
    compressed: Any = None
    plan: dict[str, int] = field(default_factory=dict)
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-clip voted probabilities [clips, classes] in record order: "val" / "test" of the float model,
    "q_val" / "q_test" of the quantized one (for late fusion, `benchmarks/ser_late_fusion.py`)."""

    def summary(self) -> dict[str, Any]:
        """The figures as JSON-ready values (no models)."""
        out = {
            "uar": self.float.uar,
            "war": self.float.accuracy,
            "params": self.params,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "seconds": round(self.seconds, 1),
            "train_seconds": round(self.train_seconds, 1),
            "n_test": self.float.n,
            "confusion": self.float.matrix.tolist(),
        }
        if self.quant is not None:
            out.update(
                q_uar=self.quant.uar,
                q_war=self.quant.accuracy,
                bits=self.bits,
                packed_kb=self.packed_kb,
                q_confusion=self.quant.matrix.tolist(),
            )
        return out


def build_timnet(cfg: TimNetTrainConfig, n_classes: int) -> nn.Module:
    from converters.registry import build

    spec = cfg.spec
    if cfg.model == "serct_lite":
        from converters.models.serct_lite import serct_lite

        c = cfg.serct_channels
        return serct_lite(n_classes, frames=spec.frames, channels=c, dim=2 * c, dropout=cfg.dropout)
    return build(
        "timnet",
        num_classes=n_classes,
        n_mfcc=spec.n_mfcc,
        frames=spec.frames,
        filters=cfg.filters,
        dilations=cfg.dilations,
        dropout=cfg.dropout,
    )


def train_timnet_fold(
    records_train: Sequence[Record],
    records_val: Sequence[Record],
    records_test: Sequence[Record],
    config: TimNetTrainConfig | None = None,
    *,
    classes: Sequence[str] | None = None,
    bundle_out: str | Path | None = None,
    accuracy: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> FoldResult:
    """Train the float model on `records_train` (early stopping on the voted-clip UAR of `records_val`), then
    compress it by `config.laq` (allocation and QAT validated on `records_val` too), and measure both on
    `records_test` per clip. With a laq recipe the quantized model is bundled (to `bundle_out`, else a
    temporary folder) for its packed size; `accuracy` is the bundle's accuracy block (dataset and split)."""
    from converters.data.labels import class_order

    cfg = config or TimNetTrainConfig()
    say = log or (lambda _m: None)
    torch.set_num_threads(1)
    if not records_train or not records_val:
        raise ConfigError("train_timnet_fold: needs training and validation records")
    if cfg.speaker_norm and bundle_out is not None:
        raise ConfigError(
            "train_timnet_fold: a speaker-normalised model's bundle would not record its normalisation "
            "(the sequence kind has no speaker statistics yet); bundle_out must be None with speaker_norm"
        )
    if bundle_out is not None and (not cfg.laq or cfg.model == "serct_lite"):
        # the bundle is of the quantized sequence model: none was written, and nothing said so
        raise ConfigError(
            f"train_timnet_fold: bundle_out={str(bundle_out)!r} but no bundle would be written: "
            + ("serct_lite has no device input kind yet" if cfg.laq else "laq='' trains the float model only")
        )
    _check_disjoint(records_train=records_train, records_val=records_val, records_test=records_test)
    classes = tuple(classes or class_order(r.label for r in records_train))
    t0 = time.perf_counter()
    raw = cfg.model == "serct_lite"
    norm = cfg.speaker_norm
    tr = window_set(records_train, classes, cfg.spec, cfg.speeds, raw=raw, speaker_norm=norm)
    va = window_set(records_val, classes, cfg.spec, raw=raw, speaker_norm=norm)
    say(
        f"  windows: train {len(tr.y)} ({len(records_train)} clips x {len(cfg.speeds)} speeds), val {len(va.y)}"
    )
    seed_everything(cfg.seed)
    model = build_timnet(cfg, len(classes))
    if raw:
        model.set_normalization(float(tr.X.mean()), float(tr.X.std()))
    else:
        model.set_normalization(torch.as_tensor(tr.X.mean((0, 1))), torch.as_tensor(tr.X.std((0, 1))))
    kwargs = {
        "val_accuracy": uar_of(va, len(classes)),
        "augment": SequenceAugment() if cfg.spec_augment and not raw else None,
        "mixup": cfg.mixup,
    }
    t1 = time.perf_counter()
    res = train_classifier(model, tr.X, tr.y, va.X, va.y, cfg.train_config(), progress=False, **kwargs)
    train_seconds = time.perf_counter() - t1
    say(
        f"  float: best val UAR {res.best_val_acc:.3f} at epoch {res.best_epoch}/{res.epochs_run}, {train_seconds:.0f} s"
    )
    te = window_set(records_test, classes, cfg.spec, raw=raw, speaker_norm=norm)
    p_test = clip_probabilities(res.model, te)
    out = FoldResult(
        classes=classes,
        float=probability_metrics(p_test, te, classes),
        quant=None,
        params=sum(p.numel() for p in res.model.parameters()),
        bits=None,
        packed_kb=None,
        best_epoch=res.best_epoch,
        epochs_run=res.epochs_run,
        seconds=0.0,
        train_seconds=train_seconds,
        model=res.model,
        probabilities={"val": clip_probabilities(res.model, va), "test": p_test},
    )
    if cfg.laq:
        c = compress_timnet(cfg, res.model, tr, va, kwargs)
        out.compressed, out.bits, out.plan = c, c.plan.average_bits, dict(c.plan.bits)
        q_test = clip_probabilities(c.model, te)
        out.quant = probability_metrics(q_test, te, classes)
        out.probabilities.update(q_val=clip_probabilities(c.model, va), q_test=q_test)
        if raw:  # no device input kind for raw samples yet: the packed weights file alone
            out.packed_kb = c.packed_bytes() / 1000
        else:
            out.packed_kb = bundle_timnet(c, classes, cfg.spec, bundle_out, accuracy, out)
        say(f"  {cfg.laq}: {out.bits:.3f} bits, {out.packed_kb:.1f} KB, test UAR {out.quant.uar:.3f}")
    out.seconds = time.perf_counter() - t0
    return out


def _check_disjoint(**parts: Sequence[Record]) -> None:
    """ConfigError when one clip (by its file) is in two of the parts: validation picks the epoch, so a test clip
    among the validation records would choose the model on the test."""
    seen: dict[str, str] = {}
    for part, records in parts.items():
        for r in records:
            first = seen.setdefault(str(r.source), part)
            if first != part:
                raise ConfigError(
                    f"train_timnet_fold: {r.source} is in both {first} and {part}; the parts must be disjoint"
                )


def compress_timnet(cfg: TimNetTrainConfig, model: nn.Module, tr: WindowSet, va: WindowSet, kwargs: dict):
    """LAQ allocation (scored on `cfg.calibration` training windows) + QAT (validated like float training)."""
    from converters.compress import compress
    from converters.quant import LaqConfig

    qcfg = cfg.train_config(epochs=cfg.qat_epochs, lr=cfg.lr / 2)
    laq = LaqConfig(lazy=True, calibration=cfg.calibration)
    return compress(
        cfg.laq, model, tr.X, tr.y, va.X, va.y, laq=laq, qat_config=qcfg, seed=cfg.seed, train_kwargs=kwargs
    )


def bundle_timnet(
    c,
    classes: Sequence[str],
    spec: SequenceSpec,
    out: str | Path | None,
    accuracy: dict | None,
    fold: FoldResult,
) -> float:
    """Write the compressed model's bundle (to `out`, else a temporary folder); returns weights.esq in KB."""
    from converters.export.bundle import build_bundle

    acc = accuracy or {}
    if acc:
        acc = {"test": fold.quant.uar, "test_float": fold.float.uar, **acc}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(out) if out is not None else Path(tmp) / "bundle"
        build_bundle(
            path,
            c.model,
            c.plan,
            c.codes,
            name="timnet",
            labels=list(classes),
            kind=SequenceKind(spec),
            accuracy=acc,
        )
        return (path / "weights.esq").stat().st_size / 1000  # KB = 1000 bytes, as the zoo and laq_table


__all__ = [
    "FoldResult",
    "SequenceAugment",
    "TimNetTrainConfig",
    "WindowSet",
    "clip_metrics",
    "clip_probabilities",
    "probability_metrics",
    "default_sequence_spec",
    "record_windows",
    "speed_perturb",
    "train_timnet_fold",
    "wave_windows",
    "window_set",
]
