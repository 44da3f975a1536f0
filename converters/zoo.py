"""The model zoo: every model on the same data set and splits, as one sweep objective (`zoo_objective`).

Models and their input:
  rf, svm            clip feature vectors (`converters.pipeline.prepare`, the LAQ MLP's), scikit-learn
  laq_mlp            the same feature vectors
  small_cnn          log-Mel patches (`converters.lms_train`), segment training, utterance voting
  squeezenet_lms     log-Mel patches
  tiny_transformer   log-Mel patches

A point (a dict, so `converters.sweep` can run grids of it, resumably, on Ray or serially) names the model,
the split (`random`: stratified 80/10/10 with `seed`; `loso`: speaker `fold` left out, one validation speaker)
and, for patch models, the LMS parameters (M, L, H, n_fft, T) and training knobs. With `laq` set (a
`converters.compress` recipe such as "sensitivity@1.75") the trained model is also compressed, written as a
bundle and measured: packed KB (weights.esq), FLOPs (edge_ser.flops on the bundle graph), host latency
(onnxruntime, one thread, batch 1). The LMS grid search is this objective with model squeezenet_lms.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from converters.checks import check_counts
from converters.registry import MODELS as MODEL_REGISTRY
from converters.registry import build as build_registered
from converters.registry import model_names
from edge_ser.errors import ConfigError

FEATURE_MODELS = model_names(command="zoo", kind="vector")
"""Clip-vector models (`_run_features`): the scikit-learn baselines, and torch models with `set_normalization`."""
LMS_MODELS = model_names(command="zoo", kind="patches", family="torch")
"""Log-Mel patch models (`_run_lms`)."""
MODELS = tuple(n for n in model_names(command="zoo") if n in FEATURE_MODELS + LMS_MODELS)
"""The models the zoo can train, in the registry's order (its default list): a model registered for "zoo" whose
input kind has no data path here is refused by name (docs/input-kinds.md), not fed clip vectors."""
SPLITS = ("random", "loso")

BEST_LMS: dict[str, Any] = {"M": 128, "L": 255, "H": 32, "n_fft": 1024, "T": 128, "seg_hop": 128, "batch": 32}
"""The log-Mel setting (and its batch: 4 clips' worth of patches) the EMODB search chose
before 2026-12-05; the zoo's patch models all use it. The search chose it on its splits' test accuracy; rerun
choosing by validation (benchmarks/results/lms_sweep.md) it chooses T 64 (53.0 % test over 10 splits, against this
setting's 53.4 %). Moving to it means retraining the patch models (README)."""

RECOMMENDED: dict[str, dict[str, Any]] = {
    n: dict(MODEL_REGISTRY[n].defaults) for n in MODELS if MODEL_REGISTRY[n].defaults
}
"""Per-model point values `edge-ser zoo` and benchmarks/zoo.py start from (the registry's defaults: the laq_mlp
ones are its TrainConfig defaults and the QAT length its LAQ table used; the LMS ones come from the sweeps)."""


_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


def _check_type(key: str, value: Any, annotation: str) -> None:
    """ConfigError unless `value` fits the field's annotation ("int", "float | None", ...): a value of the wrong
    kind (`--set epochs=abc`) failed every point alone, each failure stored and kept; now it stops the run first."""
    names = [part.strip() for part in annotation.split("|")]
    if (value is None and "None" in names) or not set(names) <= {*_TYPES, "None"}:
        return  # None where allowed; or a kind this check does not know (left to the field's own use)
    kinds = tuple(k for n in names for k in _TYPES.get(n, ()))
    if isinstance(value, bool) and bool not in kinds:  # True is an int to Python, not to a point
        kinds = ()
    if not isinstance(value, kinds):
        raise ConfigError(f"zoo: point key {key}={value!r} must be {' or '.join(names)}")


@dataclass(frozen=True)
class ZooPoint:
    """One zoo run; every field is a point key (unknown keys are an error, so a typo cannot be silently
    ignored and still get its own point id)."""

    model: str
    data: str = "emodb"
    root: str | None = None
    files: str | None = None
    """A folder data set's files as listed, hashed (`converters.pipeline.files_fingerprint`): only in the point's
    id, so renamed or replaced files compute again."""
    split: str = "random"
    seed: int = 0
    """Random split seed and training seed (loso: training seed and the validation speaker order)."""
    fold: int = 0
    """loso: index of the left-out speaker in sorted order."""
    # log-Mel patches (patch models)
    M: int = 128
    L: int = 255
    H: int = 32
    n_fft: int = 1024
    T: int = 64
    seg_hop: int | None = None
    # training (torch models)
    width: float = 0.5
    epochs: int = 40
    patience: int = 12
    lr: float = 1e-3
    batch: int = 64
    augment: bool = True
    vote: str = "mean_prob"
    # compression and measurement
    laq: str = ""
    """A compress() recipe (e.g. "sensitivity@1.75"); empty = float only."""
    qat_epochs: int = 15
    calibration: int = 1024
    """Rows the sensitivity allocation scores plans on (patch models; feature models use all rows)."""
    # front end: unset keys keep the settings the zoo's earlier points ran with, so their ids stay valid
    sample_rate: int | None = None
    """Analysis rate (Hz); None: FeatureSpec's own (22.05 kHz) for feature models, LMSSpec's (16 kHz) for patches."""
    remove_dc: bool = False
    """Subtract each clip's mean before analysis (`edge_ser.features.condition`)."""
    level_dbfs: float | None = None
    """Scale each clip to this RMS level before analysis; None: as recorded."""

    def __post_init__(self) -> None:
        if self.model in MODEL_REGISTRY and self.model not in MODELS:  # registered, but no data path here
            e = MODEL_REGISTRY[self.model]
            raise ConfigError(
                f"zoo: {self.model} ({e.family} model, input kind {e.input_kind!r}) has no training path in the zoo; "
                f"it trains {', '.join(MODELS)}"
            )
        if self.model not in MODELS:
            raise ConfigError(f"zoo: model {self.model!r} is not one of {', '.join(MODELS)}")
        if self.split not in SPLITS:
            raise ConfigError(f"zoo: split {self.split!r} must be one of {SPLITS}")
        # epochs 0 reported the untrained model's figures as a trained one's, batch 0 failed every point alone
        # after its features were made, patience 0 trained one epoch; qat_epochs 0 is no QAT
        check_counts(
            "zoo: ", self, {"epochs": 1, "patience": 1, "batch": 1, "qat_epochs": 0, "calibration": 1}
        )
        if not self.lr > 0:
            raise ConfigError(f"zoo: lr={self.lr!r} must be > 0")
        if self.laq and MODEL_REGISTRY[self.model].family != "torch":
            raise ConfigError(f"zoo: {self.model} has no weights to quantize; drop laq={self.laq!r}")
        # the front end's own checks now, so a bad M / T / n_fft / sample_rate stops the run before any point
        # trains (`T: 5000` failed every point alone, each failure stored and kept)
        try:
            self.lms_spec() if self.model in LMS_MODELS else self.feature_spec()
        except ConfigError as e:
            raise ConfigError(f"zoo: {e}") from None

    @classmethod
    def from_point(cls, point: dict) -> ZooPoint:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(point) - names)
        if unknown:
            raise ConfigError(f"zoo: unknown point keys {unknown}; known: {sorted(names)}")
        if "model" not in point:
            raise ConfigError("zoo: a point needs a model")
        for f in dataclasses.fields(cls):
            if f.name in point:
                _check_type(f.name, point[f.name], str(f.type))
        return cls(**point)

    def feature_spec(self):
        """The clip-vector FeatureSpec of a feature model's point."""
        from edge_ser.features import FeatureSpec

        rate = {} if self.sample_rate is None else {"sample_rate": self.sample_rate}
        return FeatureSpec(**rate, remove_dc=self.remove_dc, level_dbfs=self.level_dbfs)

    def lms_spec(self):
        from edge_ser.inputs.patches import LMSSpec

        rate = {} if self.sample_rate is None else {"sample_rate": self.sample_rate}
        return LMSSpec(
            **rate,
            remove_dc=self.remove_dc,
            level_dbfs=self.level_dbfs,
            n_mels=self.M,
            win_length=self.L,
            hop_length=self.H,
            n_fft=self.n_fft,
            segment_frames=self.T,
            segment_hop=self.seg_hop,
        )

    def train_config(self):
        from converters.train import TrainConfig

        return TrainConfig(
            epochs=self.epochs,
            patience=self.patience,
            lr=self.lr,
            batch_size=self.batch,
            seed=self.seed,
            threads=1,
            channels_last=self.model in LMS_MODELS,
        )


def accuracy_block(p: ZooPoint, sp, **figures: float) -> dict:
    """A bundle's accuracy block for a zoo point: its figures, the data set and the split they were measured on
    (`converters.export.bundle.build_bundle` refuses figures without them)."""
    kind = "random" if p.split == "random" else "leave-one-speaker-out"
    split = {"kind": kind, "seed": p.seed, **({} if p.split == "random" else {"fold": p.fold})}
    block = {**figures, "dataset": p.data, "split": {**split, "sizes": sp.sizes()}}
    if (
        p.data == "synthetic" and p.root is None
    ):  # the zoo trains on the default set: eval rebuilds it from this
        from converters.data.synthetic import SyntheticSpec
        from converters.pipeline import synthetic_record

        block["synthetic"] = synthetic_record(SyntheticSpec())
    return block


def split_for(p: ZooPoint, y: np.ndarray, speakers) -> tuple[Any, str]:
    """The point's split of a data set and a short description of it."""
    from converters.data.splits import check_named_speakers, leave_one_speaker_out
    from converters.pipeline import split_indices

    if p.split == "random":
        return split_indices(y, list(speakers), "random", seed=p.seed), f"random seed {p.seed}"
    check_named_speakers(speakers, f"zoo: {p.data}")
    n_speakers = len(set(map(str, speakers)))
    if n_speakers < 3:
        raise ConfigError(
            f"zoo: {p.data} has {n_speakers} speaker(s); --split loso needs at least 3 (test, val and train "
            "speakers): use --split random, or `edge-ser train --split speaker --folds 2`"
        )
    folds = list(leave_one_speaker_out(list(speakers), [str(v) for v in y]))
    if not 0 <= p.fold < len(folds):
        raise ConfigError(
            f"zoo: {p.data} has {n_speakers} speakers; loso fold {p.fold} needs at least {p.fold + 1} "
            f"(--folds {n_speakers} or fewer)"
        )
    speaker, sp = folds[p.fold]
    val = sorted({str(speakers[i]) for i in sp.val})  # which speaker chose the epoch (a review: unsaid)
    return sp, f"speaker {speaker} left out, validation speaker(s) {', '.join(val) or 'none'}"


def build_model(p: ZooPoint, n_classes: int, n_features: int | None = None):
    """The torch model of a point, from the registry (patch models take the point's M, T and width; ZooPoint
    admits only MODELS, the clip-vector and the patch models)."""
    if p.model in FEATURE_MODELS:
        model = build_registered(p.model, num_classes=n_classes, in_features=n_features)
        if not hasattr(model, "set_normalization"):  # the clip-vector path standardises in the model
            raise ConfigError(
                f"zoo: {p.model} takes clip vectors but has no set_normalization(mean, std), which the zoo's "
                "clip-vector path sets from the training rows"
            )
        return model
    return build_registered(p.model, num_classes=n_classes, n_mels=p.M, segment_frames=p.T, width=p.width)


def voted_uar(model, ps, rows: np.ndarray, vote: str, classes) -> float:
    """UAR of a patch model over the utterances of patch `rows`, voted as its accuracy is (`utterance_vote`)."""
    from converters.evaluate import index_metrics
    from converters.train import predict
    from edge_ser.inputs.patches import utterance_vote

    ids, scores = utterance_vote(predict(model, ps.X[rows], batch_size=512), ps.utt[rows], vote)
    return index_metrics(ps.clip_y[ids], scores.argmax(1), classes).uar


def model_flops(model) -> int:
    """Per-input conv / dense / matmul FLOPs of the model's exported graph (patch models: per patch), by
    `edge_ser.flops`: the figure the zoo table has always reported (the AV seed's convention)."""
    from converters.models.counts import count_model

    return int(count_model(model).dense_flops)


def _median_ms(fn, repeats: int = 30, inner: int = 5) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) * 1e3 / inner)
    return statistics.median(samples)


def bundle_figures(bundle_dir: Path, sample: np.ndarray, utterance: np.ndarray | None = None) -> dict:
    """Packed size, graph FLOPs and onnxruntime latency (1 thread, batch 1; and one utterance's patches)."""
    from edge_ser.bundle import load_bundle
    from edge_ser.engines import load_engine

    b = load_bundle(bundle_dir)
    eng = load_engine(b, "onnxruntime", threads=1)
    x1 = np.ascontiguousarray(sample[None], dtype=np.float32)
    out = {
        "packed_kb": (bundle_dir / "weights.esq").stat().st_size / 1000,  # KB = 1000 bytes, as laq_table
        "bundle_flops": int(b.manifest["flops"]["flops"]) if "flops" in b.manifest else None,
        "latency_ms": _median_ms(lambda: eng.predict(x1)),
    }
    if utterance is not None:
        xu = np.ascontiguousarray(utterance, dtype=np.float32)
        out["utterance_latency_ms"] = _median_ms(lambda: eng.predict(xu), repeats=15, inner=2)
    return out


def run_point(p: ZooPoint, *, bundle_out: str | Path | None = None, progress: bool = False) -> dict:
    """Train (and with `p.laq`, compress, bundle and measure) one point; returns its metrics.

    `bundle_out` keeps the bundle there (needs `p.laq`); otherwise it is built in a temporary folder.
    """
    import torch

    torch.set_num_threads(1)  # the same arithmetic in every process, so serial and Ray runs agree
    if bundle_out is not None and not p.laq:
        raise ConfigError("zoo: writing a bundle needs a laq recipe")
    if p.model in LMS_MODELS:  # ZooPoint admits only MODELS: these two paths
        return _run_lms(p, bundle_out, progress)
    return _run_features(p, bundle_out, progress)


def zoo_objective(point: dict) -> dict:
    """The sweep objective: `run_point(ZooPoint.from_point(point))`."""
    return run_point(ZooPoint.from_point(point))


def _compress(p: ZooPoint, model, Xtr, ytr, Xva, yva, train_kwargs=None, calibration=None):
    from dataclasses import replace

    from converters.compress import compress
    from converters.quant import LaqConfig
    from converters.quant.qat import QAT_DEFAULTS

    qcfg = replace(QAT_DEFAULTS, threads=1, epochs=p.qat_epochs, batch_size=p.batch, patience=p.qat_epochs)
    laq = LaqConfig(lazy=calibration is not None, calibration=calibration)
    return compress(
        p.laq, model, Xtr, ytr, Xva, yva, laq=laq, qat_config=qcfg, seed=p.seed, train_kwargs=train_kwargs
    )


def _bundle(p: ZooPoint, c, labels, kind, acc: dict, out: str | Path | None, sample, utterance=None) -> dict:
    from converters.export.bundle import build_bundle

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(out) if out is not None else Path(tmp) / "bundle"
        build_bundle(
            path,
            c.model,
            c.plan,
            c.codes,
            name=p.model,
            labels=list(labels),
            kind=kind,
            accuracy=acc,
            extra={"zoo_point": dataclasses.asdict(p)},
        )
        return bundle_figures(path, sample, utterance)


def _run_features(p: ZooPoint, bundle_out, progress: bool) -> dict:
    from converters.evaluate import index_metrics
    from converters.featurize import FeatureCache, default_cache_dir
    from converters.pipeline import prepare
    from converters.train import accuracy, predict, seed_everything, train_classifier
    from edge_ser.inputs.vector import VectorKind

    spec = p.feature_spec()
    prep = prepare(p.data, p.root, spec=spec, cache=FeatureCache(default_cache_dir()), progress=False)
    sp, where = split_for(p, prep.y, [r.speaker for r in prep.records])
    Xtr, ytr, Xva, yva, Xte, yte = prep.parts(sp)
    t0 = time.perf_counter()
    if MODEL_REGISTRY[p.model].family == "classical":
        from converters.classical import fit_classical

        fit = fit_classical(p.model, Xtr, ytr, Xva, yva, seed=p.seed)
        x1 = Xte[:1]
        return {
            "acc": fit.accuracy(Xte, yte),
            "uar": index_metrics(yte, fit.predict(Xte), prep.classes).uar,
            "val_acc": max(s["val_acc"] for s in fit.val_scores),
            "params": fit.stored_values,
            "choice": fit.choice,
            "latency_ms": _median_ms(lambda: fit.predict(x1), repeats=15, inner=3),
            "seconds": time.perf_counter() - t0,
            "split": where,
        }
    import torch

    seed_everything(p.seed)
    model = build_model(p, len(prep.classes), prep.X.shape[1])
    model.set_normalization(torch.as_tensor(Xtr.mean(0)), torch.as_tensor(Xtr.std(0)))
    res = train_classifier(model, Xtr, ytr, Xva, yva, p.train_config(), progress=progress)
    out = {
        "acc": accuracy(res.model, Xte, yte),
        "uar": index_metrics(yte, predict(res.model, Xte).argmax(1), prep.classes).uar,
        "val_acc": res.best_val_acc,
        "params": sum(q.numel() for q in res.model.parameters()),
        "flops": model_flops(res.model),
        "best_epoch": res.best_epoch,
        "split": where,
    }
    if p.laq:
        c = _compress(p, res.model, Xtr, ytr, Xva, yva)
        out.update(
            laq_acc=accuracy(c.model, Xte, yte),
            laq_uar=index_metrics(yte, predict(c.model, Xte).argmax(1), prep.classes).uar,
            bits=c.plan.average_bits,
            plan=dict(c.plan.bits),
        )
        out.update(
            _bundle(
                p,
                c,
                prep.classes,
                VectorKind(spec),
                accuracy_block(
                    p,
                    sp,
                    test=out["laq_acc"],
                    test_uar=out["laq_uar"],
                    test_float=out["acc"],
                    test_float_uar=out["uar"],
                ),
                bundle_out,
                Xte[0].astype(np.float32),
            )
        )
    out["seconds"] = time.perf_counter() - t0
    return out


def _run_lms(p: ZooPoint, bundle_out, progress: bool) -> dict:
    from converters.lms_train import (
        SpecAugment,
        evaluate,
        load_clips,
        patch_set,
        split_parts,
        train_lms,
        training_kwargs,
    )
    from converters.train import seed_everything
    from edge_ser.inputs.patches import PatchesKind

    clips = load_clips(p.data, p.root)
    spec = p.lms_spec()
    ps = patch_set(clips, spec)
    sp, where = split_for(p, clips.y, clips.speakers)
    seed_everything(p.seed)
    model = build_model(p, len(clips.classes))
    aug = SpecAugment() if p.augment else None
    t0 = time.perf_counter()
    run = train_lms(model, ps, sp, p.train_config(), vote=p.vote, augment=aug, progress=progress)
    flops = model_flops(run.model)
    tr, va, te = split_parts(ps, sp)
    out = {
        "acc": run.test_acc,
        "uar": voted_uar(run.model, ps, te, p.vote, clips.classes),
        "val_acc": run.val_acc,
        "segment_acc": run.test_segment_acc,
        "params": sum(q.numel() for q in run.model.parameters()),
        "flops": flops,
        "utterance_flops": int(round(flops * ps.patches_per_clip)),
        "patches_per_clip": ps.patches_per_clip,
        "best_epoch": run.best_epoch,
        "epochs_run": run.epochs_run,
        "split": where,
    }
    if p.laq:
        c = _compress(
            p,
            run.model,
            ps.X[tr],
            ps.y[tr],
            ps.X[va],
            ps.y[va],
            train_kwargs=training_kwargs(ps, va, p.vote, aug),
            calibration=p.calibration,
        )
        laq_acc, laq_seg = evaluate(c.model, ps, te, p.vote)
        out.update(
            laq_acc=laq_acc,
            laq_uar=voted_uar(c.model, ps, te, p.vote, clips.classes),
            laq_segment_acc=laq_seg,
            bits=c.plan.average_bits,
            plan=dict(c.plan.bits),
        )
        first = ps.rows([int(sp.test[0])])
        out.update(
            _bundle(
                p,
                c,
                clips.classes,
                PatchesKind(spec),
                accuracy_block(
                    p,
                    sp,
                    test=laq_acc,
                    test_uar=out["laq_uar"],
                    test_float=run.test_acc,
                    test_float_uar=out["uar"],
                ),
                bundle_out,
                ps.X[first[0]],
                ps.X[first],
            )
        )
    out["seconds"] = time.perf_counter() - t0
    return out


__all__ = [
    "FEATURE_MODELS",
    "LMS_MODELS",
    "MODELS",
    "RECOMMENDED",
    "ZooPoint",
    "run_point",
    "accuracy_block",
    "split_for",
    "voted_uar",
    "zoo_objective",
]
