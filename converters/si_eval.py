"""Rows of the speaker-independence table: a model on an input, run fold by fold under a protocol and a norm.

A row is (model name, input name, fit function, bit recipe). The fit function gets a fold's training and
validation data only (`FoldData`: there is no test part in it) and returns a `Fitted` predictor with its
size; the runner (`run_fold`) scores it on the fold's test part afterwards. So a model, its early stopping,
its knobs, its LAQ allocation and QAT schedule can only be chosen on validation speakers.

    rows = {r.key: r for r in standard_rows()}
    data = vector_input("emodb")                      # InputData: X [n, d], y, speakers, classes
    out = run_fold(rows["svm"], data, fold, NormMode.parse("transductive"), online=(1, 5, 20))

Adding a model or an input is one entry: an `INPUTS` loader (data set name -> InputData, e.g. prosodic
functionals) and a `Row` whose fit takes that input's X (e.g. a temporal model on [n, frames, d]).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from converters.evaluate import Metrics, index_metrics
from converters.protocol import Fold, Protocol, fold_figures, summarise
from converters.speaker_norm import ORDERS, PRIOR_WEIGHTS, NormMode, device_views, online, prior, transductive
from edge_ser.errors import ConfigError


@dataclass
class InputData:
    """One input kind's model inputs for a data set: X [n, ...] (float32), labels, speakers, class names."""

    name: str
    X: np.ndarray
    y: np.ndarray
    speakers: np.ndarray
    classes: tuple[str, ...]
    info: dict = field(default_factory=dict)
    copies: np.ndarray | None = None
    """[k, n, ...] augmented views of every clip (e.g. speed-perturbed), added to the training rows only; each
    (speaker, copy) is normalised by its own statistics under a per-speaker norm. None: no augmentation."""
    early_views: tuple[int, ...] = ()
    """Under a per-speaker norm, for each k the training clips once more, each speaker standardised as the
    device does after k of its clips (the training prior, weight `EARLY_PRIOR_WEIGHT`, updated with k clips in
    a seeded order): training rows only. (): none."""
    extra: InputData | None = None
    """Another corpus's clips added to every fold's training rows only (never validation or test), already
    limited to this data's classes and indexed by them; its speakers carry their corpus in their name. Under a
    per-speaker norm each of its speakers (and each (speaker, copy)) is standardised by its own statistics, as
    a training speaker is. None: this corpus alone."""

    def __post_init__(self) -> None:
        n = len(self.X)
        if len(self.y) != n or len(self.speakers) != n:
            raise ConfigError(f"{self.name}: X, y and speakers must have one row per clip ({n})")
        if self.copies is not None and tuple(self.copies.shape[1:]) != tuple(self.X.shape):
            raise ConfigError(
                f"{self.name}: copies {self.copies.shape} must be [k, *X.shape] ({self.X.shape})"
            )
        if self.extra is not None:
            e = self.extra
            if e.classes != self.classes or tuple(e.X.shape[1:]) != tuple(self.X.shape[1:]):
                raise ConfigError(
                    f"{self.name}: the extra corpus {e.name} must have the same classes and row shape "
                    f"({self.classes}, {self.X.shape[1:]}), not ({e.classes}, {e.X.shape[1:]})"
                )
            shared = sorted(set(e.speakers.tolist()) & set(self.speakers.tolist()))
            if shared:
                raise ConfigError(f"{self.name}: speaker(s) {', '.join(shared[:5])} in both corpora")


@dataclass
class FoldData:
    """What a fit function may see of a fold: training and validation rows only, never the test part."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    classes: tuple[str, ...]
    seed: int = 0
    train_speakers: tuple[str, ...] = ()
    val_speakers: tuple[str, ...] = ()

    def val_uar(self, predicted: np.ndarray) -> float:
        """UAR of predicted class indices on the validation rows (the selection criterion)."""
        return uar(self.y_val, predicted, len(self.classes))


@dataclass
class Fitted:
    """A trained model of a fold: `predict(X) -> class indices`, and its size as the table reports it."""

    predict: Callable[[np.ndarray], np.ndarray]
    bits: float
    packed_kb: float | None
    params: int
    info: dict = field(default_factory=dict)
    scores: Callable[[np.ndarray], np.ndarray] | None = None
    """`scores(X) -> logits [n, classes]` where the model has them (the MLP rows; for late fusion)."""


Fit = Callable[[FoldData], Fitted]


@dataclass(frozen=True)
class Row:
    """A model on an input kind, with its bit recipe ("fp32", "sensitivity@2.0", ...)."""

    model: str
    input: str
    fit: Fit
    recipe: str = "fp32"
    protocols: tuple[str, ...] | None = None
    """The protocols this row runs on (None: every one)."""
    norms: tuple[str, ...] | None = None
    """The norms it runs with (None: every one asked for)."""

    @property
    def key(self) -> str:
        """A stable name: "svm", "laq_mlp", "laq_mlp@sensitivity@2.0", "+input" when not the clip vector."""
        name = self.model if self.recipe == "fp32" else f"{self.model}@{self.recipe}"
        return name if self.input == "vector" else f"{name}+{self.input}"


def uar(y_true: Sequence[int], predicted: Sequence[int], n_classes: int) -> float:
    """Mean per-class recall over the classes present in `y_true` (`converters.evaluate.Metrics.uar`)."""
    return index_metrics(y_true, predicted, [str(i) for i in range(n_classes)]).uar


# ---------------------------------------------------------------------------------------------- runner
def pooled(y: np.ndarray, predictions: Sequence[np.ndarray], classes: Sequence[str]) -> Metrics:
    """Metrics of several passes over the same rows (online clip orders), counts summed."""
    ms = [index_metrics(y, p, classes) for p in predictions]
    return Metrics(tuple(classes), np.sum([m.matrix for m in ms], axis=0))


def _online(
    fitted: Fitted, data: InputData, fold: Fold, clips: int, seed: int
) -> tuple[Metrics, dict[str, Any]]:
    """Score the test speakers after `clips` clips each; the prior weight is chosen on the val speakers."""
    s = fold.split
    scores = {}
    for w in PRIOR_WEIGHTS:
        base = prior(data.X, data.speakers, s.train, prior_weight=w)
        views = online(data.X, data.speakers, s.val, base, clips, seed=seed)
        scores[w] = pooled(data.y[s.val], [fitted.predict(v) for v in views], data.classes).uar
    best = max(PRIOR_WEIGHTS, key=lambda w: (scores[w], -w))  # ties: the lighter prior
    base = prior(data.X, data.speakers, s.train, prior_weight=best)
    views = online(data.X, data.speakers, s.test, base, clips, seed=seed)
    m = pooled(data.y[s.test], [fitted.predict(v) for v in views], data.classes)
    return m, {"prior_weight": best, "val_uar": {str(w): round(v, 6) for w, v in scores.items()}}


EARLY_PRIOR_WEIGHT = 3.0
"""The prior weight of the early views: the bundles' (benchmarks/ship_ser.py `PRIOR_WEIGHT`)."""


def early_views(data: InputData, rows: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    """The clips `rows` standardised as the device would after k of each speaker's clips, for each k of
    `data.early_views`: the prior of those clips, updated with k of the speaker's clips in one seeded order
    (`converters.speaker_norm.device_views`)."""
    base = prior(data.X, data.speakers, rows, prior_weight=EARLY_PRIOR_WEIGHT)
    return device_views(data.X, data.speakers, rows, base, data.early_views, seed=seed)


def fold_inputs(
    data: InputData,
    fold: Fold,
    norm: NormMode,
    *,
    seed: int = 0,
    speaker_norm: Callable[..., np.ndarray] = transductive,
) -> tuple[FoldData, np.ndarray]:
    """What a fit sees of a fold (training rows with their augmented copies, validation rows), and every
    clip's row normalised by `norm` (index it with `fold.split.test` for the test part)."""
    s = fold.split
    # the floors come from the seen rows, never from a test speaker's clips
    X, *copies = normalised_views(data, norm, s.seen, speaker_norm)
    spk = data.speakers
    X_train, y_train = X[s.train], data.y[s.train]
    if copies:  # augmented training views: training rows only
        X_train = np.concatenate([X_train, *(v[s.train] for v in copies)])
        y_train = np.tile(y_train, len(copies) + 1)
    if norm.per_speaker and data.early_views:
        early = early_views(data, s.train, seed)
        X_train = np.concatenate([X_train, *early])
        y_train = np.concatenate([y_train, *([data.y[s.train]] * len(early))])
    train_spk = set(spk[s.train].tolist())
    if data.extra is not None:  # another corpus: training rows only, in every fold
        X_extra, y_extra = extra_rows(data.extra, norm, speaker_norm)
        X_train, y_train = np.concatenate([X_train, X_extra]), np.concatenate([y_train, y_extra])
        train_spk |= set(data.extra.speakers.tolist())
    fd = FoldData(
        X_train, y_train, X[s.val], data.y[s.val], data.classes, seed,
        tuple(sorted(train_spk)), tuple(sorted(set(spk[s.val].tolist()))),
    )  # fmt: skip
    return fd, X


def normalised_views(
    data: InputData,
    norm: NormMode,
    floor_rows: np.ndarray | slice,
    speaker_norm: Callable[..., np.ndarray] = transductive,
) -> list[np.ndarray]:
    """`data.X`, then each of its copies, normalised by `norm`: under a per-speaker norm each speaker, and each
    (speaker, copy), is standardised by its own statistics, with the variance floors from the rows `floor_rows`."""
    copies = [] if data.copies is None else list(np.asarray(data.copies, dtype=np.float32))
    if not norm.per_speaker:
        return [np.asarray(data.X, dtype=np.float32), *copies]
    X, spk = np.asarray(data.X), data.speakers
    return [
        speaker_norm(X, spk, floor_from=X[floor_rows]),
        *(
            speaker_norm(c, np.char.add(spk.astype(str), f"#{k + 1}"), floor_from=c[floor_rows])
            for k, c in enumerate(copies)
        ),
    ]


def extra_rows(
    extra: InputData, norm: NormMode, speaker_norm: Callable[..., np.ndarray] = transductive
) -> tuple[np.ndarray, np.ndarray]:
    """An extra corpus's training rows: its clips and their copies (`normalised_views`, the floors from all of
    its own rows: none of them is ever tested)."""
    rows = normalised_views(extra, norm, slice(None), speaker_norm)
    return np.concatenate(rows), np.tile(extra.y, len(rows))


def run_fold(
    row: Row,
    data: InputData,
    fold: Fold,
    norm: NormMode,
    *,
    seed: int = 0,
    online_clips: Sequence[int] = (),
    speaker_norm: Callable[..., np.ndarray] = transductive,
) -> dict[str, Any]:
    """Fit `row` on the fold's train/val parts (normalised by `norm`) and score it on its test part.

    With a per-speaker norm, the same fitted model is also scored under online-N for each N of
    `online_clips` (only the test speakers' statistics differ; speaker-independent folds only). Returns
    {"norms": {norm name: fold figures}, "bits", "packed_kb", "params", "info"}.
    """
    fd, X = fold_inputs(data, fold, norm, seed=seed, speaker_norm=speaker_norm)
    fitted = row.fit(fd)
    s = fold.split
    test = index_metrics(data.y[s.test], fitted.predict(X[s.test]), data.classes)
    norms: dict[str, Any] = {"transductive" if norm.per_speaker else "none": fold_figures(test)}
    if norm.per_speaker and fold.test_speakers:
        for n in online_clips:
            m, extra = _online(fitted, data, fold, int(n), seed)
            norms[f"online-{n}"] = {**fold_figures(m), **extra, "orders": ORDERS}
    packed = None if fitted.packed_kb is None or math.isnan(fitted.packed_kb) else round(fitted.packed_kb, 3)
    return {
        "norms": norms,
        "bits": round(float(fitted.bits), 4),
        "packed_kb": packed,
        "params": int(fitted.params),
        "info": fitted.info,
    }


# --------------------------------------------------------------------------------------------- inputs
def si_vector_spec() -> Any:
    """The clip vector the table's vector rows were measured on: the default recipe (16 kHz, DC removed,
    -26 dBFS) with the mel bank to 8 kHz, as it stood when they ran (its finished points do not name the
    spec; the recipe's band edge moved to 7.2 kHz afterwards)."""
    import dataclasses

    from converters.recipe import DEFAULT_SPEC

    return dataclasses.replace(DEFAULT_SPEC, fmax=None)


def functionals_input(
    dataset: str,
    root: str | None = None,
    *,
    cache: Any = None,
    spec: Any = None,
    progress: bool | None = None,
) -> InputData:
    """The 88 eGeMAPS-layout functionals (`edge_ser.features.egemaps`, `FunctionalsSpec()`: 16 kHz, DC
    removed, -26 dBFS; or `spec`) of every clip, through the feature cache. `progress`: a progress bar (None:
    when stderr is a terminal; a cold cache of a few hundred clips takes minutes)."""
    from converters.data import class_order
    from converters.featurize import FeatureCache, functionals_matrix
    from converters.pipeline import load_records
    from edge_ser.features.egemaps import FunctionalsSpec

    name, records = load_records(dataset, root)
    spec = FunctionalsSpec() if spec is None else spec
    if progress is None:
        progress = sys.stderr.isatty()
    X = functionals_matrix(records, spec, cache=cache or FeatureCache(), progress=progress)
    classes = tuple(class_order(r.label for r in records))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[r.label] for r in records], dtype=np.int64)
    speakers = np.array([str(r.speaker) for r in records])
    input_name = "functionals_ext" if spec.extended else "functionals"
    info = {"spec": spec.to_dict(), "clips": [r.source.name for r in records]}
    return InputData(input_name, X.astype(np.float32), y, speakers, classes, info)


def functionals_ext_input(dataset: str, root: str | None = None, *, cache: Any = None) -> InputData:
    """The extended functionals (`FunctionalsSpec(extended=True)`: the 88, then 7 distribution and dynamics
    statistics of 25 descriptors, and MFCC 5-12; 327 values) of every clip, through the feature cache."""
    from edge_ser.features.egemaps import FunctionalsSpec

    return functionals_input(dataset, root, cache=cache, spec=FunctionalsSpec(extended=True))


def _ext_with_copies(
    name: str, dataset: str, root: str | None, cache: Any, copies_of: Callable[..., np.ndarray]
) -> InputData:
    """The extended functionals with `copies_of(records, spec, cache=, progress=)` as training copies."""
    from converters.featurize import FeatureCache
    from converters.pipeline import load_records
    from edge_ser.features.egemaps import FunctionalsSpec

    d = functionals_ext_input(dataset, root, cache=cache)
    _, records = load_records(dataset, root)
    spec = FunctionalsSpec.from_dict(d.info["spec"])
    copies = copies_of(records, spec, cache=cache or FeatureCache(), progress=True)
    return InputData(name, d.X, d.y, d.speakers, d.classes, d.info, np.asarray(copies, np.float32))


def functionals_ext_speed_input(dataset: str, root: str | None = None, *, cache: Any = None) -> InputData:
    """The extended functionals, with speed-perturbed training copies (`converters.featurize.SPEED_FACTORS`,
    0.9 and 1.1): validation and test rows stay the clips as recorded."""
    from converters.featurize import speed_functionals_matrix

    return _ext_with_copies("functionals_ext_speed", dataset, root, cache, speed_functionals_matrix)


def functionals_ext_aug_input(dataset: str, root: str | None = None, *, cache: Any = None) -> InputData:
    """The shipped ser_* training set: the extended functionals with the noisy and the speed-perturbed copies
    of every training clip (`converters.featurize.training_copies`, as benchmarks/ship_ser.py trains on);
    validation and test rows stay the clips as recorded."""
    from converters.featurize import training_copies

    return _ext_with_copies("functionals_ext_aug", dataset, root, cache, training_copies)


EARLY_VIEWS = (1, 2, 5, 10)
"""The clip counts of `functionals_ext_aug_early`'s early views (docs/protocol.md, "Training on the device's
early statistics")."""


OTHER_CORPUS = {"emodb": "ravdess", "ravdess": "emodb"}
"""The corpus `functionals_ext_aug_both` adds to each data set's training rows."""


def with_corpus(data: InputData, other: InputData, corpus: str, name: str) -> InputData:
    """`data` with `other`'s clips of `data`'s classes as extra training rows (`InputData.extra`), its labels
    re-indexed to `data.classes` and its speakers named "<corpus>:<speaker>"; a class of `data` the other
    corpus lacks is simply rarer in training (EMODB's boredom: no RAVDESS clip)."""
    index = {c: i for i, c in enumerate(data.classes)}
    keep = np.flatnonzero([other.classes[v] in index for v in other.y])
    if not len(keep):
        raise ConfigError(f"{name}: {corpus} has no clip of the classes {', '.join(data.classes)}")
    extra = InputData(
        f"{other.name}:{corpus}",
        other.X[keep],
        np.array([index[other.classes[v]] for v in other.y[keep]], dtype=np.int64),
        np.char.add(f"{corpus}:", other.speakers[keep].astype(str)),
        data.classes,
        {"corpus": corpus, "clips": int(len(keep)), "of": int(len(other.y))},
        None if other.copies is None else other.copies[:, keep],
    )
    return replace(data, name=name, extra=extra, info={**data.info, "extra": extra.info})


def functionals_ext_aug_both_input(dataset: str, root: str | None = None, *, cache: Any = None) -> InputData:
    """`functionals_ext_aug` with the other corpus (`OTHER_CORPUS`: EMODB <-> RAVDESS actors 01-12) as extra
    training rows in every fold: its clips of the shared classes and their copies, each of its speakers
    standardised by its own statistics. Validation and test stay this corpus's speakers; the other corpus is
    read from its default root (`EDGE_SER_DATA`)."""
    if dataset not in OTHER_CORPUS:
        raise ConfigError(
            f"functionals_ext_aug_both: no other corpus for {dataset!r} ({', '.join(OTHER_CORPUS)})"
        )
    d = functionals_ext_aug_input(dataset, root, cache=cache)
    other = functionals_ext_aug_input(OTHER_CORPUS[dataset], None, cache=cache)
    return with_corpus(d, other, OTHER_CORPUS[dataset], "functionals_ext_aug_both")


def functionals_ext_aug_early_input(dataset: str, root: str | None = None, *, cache: Any = None) -> InputData:
    """`functionals_ext_aug` with early views (`InputData.early_views`): the training clips also standardised
    as the device does after 1, 2, 5 and 10 clips of their speaker, so the first clips of a new speaker are
    not a distribution the model never saw."""
    d = functionals_ext_aug_input(dataset, root, cache=cache)
    return replace(d, name="functionals_ext_aug_early", early_views=EARLY_VIEWS)


def vector_input(
    dataset: str,
    root: str | None = None,
    *,
    spec: Any = None,
    classes: Sequence[str] | None = None,
    cache: Any = None,
) -> InputData:
    """The clip vector (`SI_VECTOR_SPEC` unless `spec`) through the feature cache (`cache`, default the
    user's `FeatureCache()`). `classes`: keep only clips of these labels (None: all)."""
    from converters.featurize import FeatureCache
    from converters.pipeline import prepare

    spec = si_vector_spec() if spec is None else spec
    p = prepare(dataset, root, spec=spec, cache=cache or FeatureCache(), progress=False)
    keep = (
        np.arange(len(p.records))
        if classes is None
        else np.flatnonzero(np.isin(np.array(p.classes)[p.y], classes))
    )
    names = tuple(p.classes) if classes is None else tuple(c for c in p.classes if c in set(classes))
    index = {c: i for i, c in enumerate(names)}
    y = np.array([index[p.classes[v]] for v in p.y[keep]], dtype=np.int64)
    speakers = np.array([str(p.records[i].speaker) for i in keep])
    return InputData(
        "vector",
        p.X[keep].astype(np.float32),
        y,
        speakers,
        names,
        {"spec": spec.to_dict(), "clips": len(keep)},
    )


# ----------------------------------------------------------------------------------------------- fits
def fit_sklearn(kind: str) -> Fit:
    """A scikit-learn baseline (`converters.classical`): knob chosen by validation UAR; size = its stored
    values as float32 (an estimate: these models are not packed)."""

    def fit(fd: FoldData) -> Fitted:
        from converters.classical import fit_classical

        n = len(fd.classes)
        f = fit_classical(
            kind, fd.X_train, fd.y_train, fd.X_val, fd.y_val, seed=fd.seed, score=lambda y, p: uar(y, p, n)
        )
        values = f.stored_values
        return Fitted(f.predict, 32.0, 4 * values / 1000, values, {"choice": f.choice, "val": f.val_scores})

    return fit


def fit_laq_mlp(
    recipe: str = "fp32",
    config: Any = None,
    qat_config: Any = None,
    model: str = "laq_mlp",
    *,
    balanced: bool = False,
    members: int = 1,
    mixup: float = 0.0,
) -> Fit:
    """The LAQ paper's MLP, early-stopped on validation UAR; then `converters.compress` `recipe` (LAQ + QAT,
    QAT also early-stopped on validation UAR). Size: the real packed .esq file of the result.
    `config` / `qat_config`: TrainConfig of the float training / of QAT (default: theirs). `model`: a vector
    MLP of the registry taking (num_classes, in_features) with in-graph standardisation (laq_mlp,
    functionals_mlp). Your own model registered as a `converters.registry.ModelEntry` must also have what the
    exporter needs (docs/input-kinds.md): `set_normalization(mean, std)` (the training split's statistics into
    its `mean` / `std` buffers) and `input_shapes()` (per-sample shape by input name, e.g. {"features": (88,)}):
    the row's size is the real packed file, written through an ONNX export of the model. A model lacking either
    is a ConfigError naming it, raised before any training. `balanced`: class-balanced cross-entropy in float
    training and QAT (`TrainConfig.class_balanced`). `members` > 1: a seed ensemble of that many models
    (`FunctionalsEnsemble`: the members side by side on one input, logits averaged), member k at seed (the
    fold's, or `config`'s) + 100 k, each chosen and compressed on its own. `mixup` > 0: mixup of that alpha in
    float training and QAT (`train_classifier(mixup=...)`; the epoch is still chosen on the unmixed validation
    rows)."""
    if members < 1:
        raise ConfigError(f"fit_laq_mlp: members must be >= 1, got {members}")
    if mixup < 0:
        raise ConfigError(f"fit_laq_mlp: mixup must be >= 0, got {mixup}")

    def fit(fd: FoldData) -> Fitted:
        from dataclasses import replace

        import torch

        from converters.compress import Compressed, compress
        from converters.models.functionals_mlp import FunctionalsEnsemble
        from converters.quant.qat import QAT_DEFAULTS
        from converters.registry import build
        from converters.train import TrainConfig, predict, seed_everything, train_classifier

        n = len(fd.classes)
        by_uar = {"val_accuracy": lambda logits: fd.val_uar(logits.argmax(1))}
        if mixup > 0:
            by_uar["mixup"] = mixup
        runs = []
        for k in range(members):
            seed = fd.seed + 100 * k
            seed_everything(seed)
            net = build(model, num_classes=n, in_features=fd.X_train.shape[1])
            lacks = [
                what
                for attr, what in (
                    ("set_normalization", "set_normalization(mean, std) (in-graph standardisation)"),
                    ("input_shapes", "input_shapes() (the ONNX export that sizes the packed file needs it)"),
                )
                if not callable(getattr(net, attr, None))
            ]
            if lacks:
                raise ConfigError(
                    f"fit_laq_mlp: model {model!r} ({type(net).__name__}) has no {' and no '.join(lacks)}; "
                    "see docs/input-kinds.md"
                )
            net.set_normalization(torch.as_tensor(fd.X_train.mean(0)), torch.as_tensor(fd.X_train.std(0)))
            base = config or TrainConfig(seed=fd.seed)
            cfg = replace(base, seed=base.seed + 100 * k, class_balanced=balanced)
            fp = train_classifier(
                net, fd.X_train, fd.y_train, fd.X_val, fd.y_val, cfg, progress=False, **by_uar
            )
            qat_kw = {"qat_config": replace(qat_config or QAT_DEFAULTS, class_balanced=balanced)}
            c = compress(
                recipe,
                fp.model,
                fd.X_train,
                fd.y_train,
                fd.X_val,
                fd.y_val,
                seed=seed,
                train_kwargs=by_uar,
                **qat_kw,
            )
            runs.append((fp, c))
        fp, c = runs[0]
        if members > 1:
            model_k, plan_k, codes_k = FunctionalsEnsemble.from_members(
                [(r.model, r.plan, r.codes) for _, r in runs]
            )
            c = Compressed(recipe, plan_k, model_k, codes_k, sum(r.seconds for _, r in runs))
        params = sum(int(t.numel()) for name, t in c.model.state_dict().items() if name.endswith("weight"))
        params += sum(int(t.numel()) for name, t in c.model.state_dict().items() if name.endswith("bias"))
        return Fitted(
            lambda X: predict(c.model, X).argmax(1),
            float(c.plan.average_bits),
            c.packed_bytes() / 1000,
            params,
            {"best_epoch": [f.best_epoch for f, _ in runs] if members > 1 else fp.best_epoch,
             "plan": dict(c.plan.bits)},
            scores=lambda X: predict(c.model, X),
        )  # fmt: skip

    return fit


def functionals_rows(
    input_name: str, baselines: Sequence[str] = ("logreg", "svm"), *, balanced: bool = False
) -> list[Row]:
    """The rows every functionals input gets: the scikit-learn `baselines`, then functionals_mlp float and at
    <= 2 bits ("sensitivity@2.0"); with `balanced`, trained with the class-balanced cross-entropy
    (`TrainConfig.class_balanced`) and named "functionals_mlp_bal"."""
    mlp = "functionals_mlp"
    name = "functionals_mlp_bal" if balanced else mlp
    return [
        *(Row(kind, input_name, fit_sklearn(kind)) for kind in baselines),
        Row(name, input_name, fit_laq_mlp(model=mlp, balanced=balanced)),
        Row(
            name, input_name, fit_laq_mlp("sensitivity@2.0", model=mlp, balanced=balanced), "sensitivity@2.0"
        ),
    ]


ENSEMBLE_MEMBERS = 3
"""Members of the seed-ensemble row (`ship_ser.py --members auto`'s model; not shipped: docs/protocol.md)."""
SPEAKER_INDEPENDENT = ("emodb-loso", "ravdess-pairs", "ravdess-loao")
"""The protocols with online-N figures (a test speaker never trained on)."""


def standard_rows() -> list[Row]:
    """The table's rows: two scikit-learn baselines and the MLP (float and at <= 2 bits) on the clip vector, the
    88 functionals and the extended functionals; logreg and the MLP on the extended functionals with
    speed-perturbed training copies (the SVM is left out there: 3x the training rows, and not shipped); the MLP
    with the class-balanced loss on those; the MLP with and without it on the shipped training set
    (`functionals_ext_aug`: the balanced row is the recipe of ser_emodb), and that row as a seed ensemble of
    `ENSEMBLE_MEMBERS` at 2 bits each (`ship_ser.py --members auto`; 3x the training, so only speaker-normalised and on the
    speaker-independent protocols); both 2-bit MLPs on that set with early views (`functionals_ext_aug_early`,
    speaker-normalised and speaker-independent only: the views are for online-N)."""
    return [
        Row("logreg", "vector", fit_sklearn("logreg")),
        Row("svm", "vector", fit_sklearn("svm")),
        Row("laq_mlp", "vector", fit_laq_mlp("fp32")),
        Row("laq_mlp", "vector", fit_laq_mlp("sensitivity@2.0"), "sensitivity@2.0"),
        *functionals_rows("functionals"),
        *functionals_rows("functionals_ext"),
        *functionals_rows("functionals_ext_speed", baselines=("logreg",)),
        *functionals_rows("functionals_ext_speed", baselines=(), balanced=True),
        *functionals_rows("functionals_ext_aug", baselines=()),
        *functionals_rows("functionals_ext_aug", baselines=(), balanced=True),
        *(
            Row(
                name,
                "functionals_ext_aug_early",
                fit_laq_mlp("sensitivity@2.0", model="functionals_mlp", balanced=name.endswith("_bal")),
                "sensitivity@2.0",
                protocols=SPEAKER_INDEPENDENT,
                norms=("transductive",),
            )
            for name in ("functionals_mlp", "functionals_mlp_bal")
        ),
        Row(
            f"functionals_mlp_bal_x{ENSEMBLE_MEMBERS}",
            "functionals_ext_aug",
            fit_laq_mlp("sensitivity@2.0", model="functionals_mlp", balanced=True, members=ENSEMBLE_MEMBERS),
            "sensitivity@2.0",
            protocols=("emodb-loso", "emodb-10fold-x3", "ravdess-pairs", "ravdess-loao"),
            norms=("transductive",),
        ),
    ]


def ablation_rows() -> list[Row]:
    """Rows run on request (`si_table.py --rows`): the functionals baselines and MLP on `functionals_mfcc`."""
    return functionals_rows("functionals_mfcc")


def corpus_rows() -> list[Row]:
    """Rows run on request (`si_table.py --rows`): both 2-bit MLPs (ser_emodb's and ser_ravdess's recipes)
    with the other corpus as extra training rows (`functionals_ext_aug_both`); speaker-normalised only."""
    return [
        Row(
            name,
            "functionals_ext_aug_both",
            fit_laq_mlp("sensitivity@2.0", model="functionals_mlp", balanced=name.endswith("_bal")),
            "sensitivity@2.0",
            norms=("transductive",),
        )
        for name in ("functionals_mlp", "functionals_mlp_bal")
    ]


MIXUP_ALPHA = 0.2
"""Mixup's alpha in `mixup_rows` (the temporal recipe's, `converters.seq_train`; fixed, not tuned)."""


def mixup_rows() -> list[Row]:
    """Rows run on request (`si_table.py --rows`): both 2-bit MLPs (ser_emodb's and ser_ravdess's recipes) on the
    shipped training set with mixup (alpha `MIXUP_ALPHA`) in float training and QAT; speaker-normalised only."""
    return [
        Row(
            f"{name}_mix",
            "functionals_ext_aug",
            fit_laq_mlp(
                "sensitivity@2.0", model="functionals_mlp", balanced=name.endswith("_bal"), mixup=MIXUP_ALPHA
            ),
            "sensitivity@2.0",
            protocols=SPEAKER_INDEPENDENT,
            norms=("transductive",),
        )
        for name in ("functionals_mlp", "functionals_mlp_bal")
    ]


def linear_rows() -> list[Row]:
    """Rows run on request (`si_table.py --rows`): a linear classifier (`functionals_linear`, no hidden layer) in
    place of the MLP, with the loss of each ser_* recipe (class-balanced as ser_emodb's, plain as ser_ravdess's),
    on the shipped training set, float and at <= 2 bits; speaker-normalised only (docs/protocol.md, "A 2-bit linear model")."""
    return [
        Row(
            name,
            "functionals_ext_aug",
            fit_laq_mlp(recipe, model="functionals_linear", balanced=name.endswith("_bal")),
            recipe,
            norms=("transductive",),
        )
        for name in ("functionals_linear", "functionals_linear_bal")
        for recipe in ("fp32", "sensitivity@2.0")
    ]


def functionals_mfcc_input(dataset: str, root: str | None = None, *, cache: Any = None) -> InputData:
    """An ablation input (host only, no device kind yet): the 88 functionals followed by the clip vector's
    `n_mfcc` MFCC means (MFCC 0..39 of the mean dB mel spectrum, `vector_input`), the same clips in the same
    order. Asks whether cepstral detail beyond eGeMAPS' MFCC 1-4 helps a speaker-independent model."""
    f = functionals_input(dataset, root, cache=cache)
    v = vector_input(dataset, root, classes=f.classes, cache=cache)
    if not (np.array_equal(f.speakers, v.speakers) and np.array_equal(f.y, v.y)):
        raise ConfigError(f"{dataset}: the functionals and the clip vector list different clips")
    n_mfcc = si_vector_spec().n_mfcc
    X = np.hstack([f.X, v.X[:, :n_mfcc]]).astype(np.float32)
    return InputData("functionals_mfcc", X, f.y, f.speakers, f.classes, {**f.info, "mfcc_means": n_mfcc})


INPUTS: dict[str, Callable[..., InputData]] = {
    "vector": vector_input,
    "functionals": functionals_input,
    "functionals_ext": functionals_ext_input,
    "functionals_ext_speed": functionals_ext_speed_input,
    "functionals_ext_aug": functionals_ext_aug_input,
    "functionals_ext_aug_early": functionals_ext_aug_early_input,
    "functionals_ext_aug_both": functionals_ext_aug_both_input,
    "functionals_mfcc": functionals_mfcc_input,
}
"""Input name -> loader (data set name, root) -> InputData. A new input kind is one entry."""


# ------------------------------------------------------------------------------------------------ table
TABLE_VERSION = 2
"""Part of every point's id: bump when the runner changes what a point means, so old lines are not reused.
2 (2026-12-06): the protocol audit's two defects mended (variance floors from the fold's seen rows; the `none`
rows' scalers floored), so every row is recomputed."""
INPUT_VERSIONS = {"vector": 2, "functionals": 2, "functionals_mfcc": 2}
"""Inputs whose points are versioned apart from TABLE_VERSION (the point's `v`): bump one when the code under it
changes its figures, so its rows are recomputed and the rest reused. 2 (2026-12-05): the clip-vector, 88-
functionals and functionals + MFCC rows were computed on 2026-12-02, before the functionals' pause gate and the
speaker statistics' constant-feature rule, and the LAQ rows before later QAT changes; rerun from a clone they
differed by up to 8 points, so the table quoted code that no longer exists."""
ROW_FIELDS = (
    "model", "input", "dataset", "protocol", "uar", "uar_std", "war", "war_std", "n_folds", "bits",
    "packed_kb", "params", "norm",
)  # fmt: skip
"""The fields every table row has (plus `folds`: per-fold figures, and the pooled `recall` / `confusion`)."""


class SITable:
    """Rows x protocols x norms as sweep points, one fold each, and the table rows assembled from them.

    `inputs` maps an input name to its loader (data set name, root) -> InputData; data and folds are loaded
    once per table. `objective(point)` runs one (row, protocol, fold, norm) for `converters.sweep.Sweep`, so
    finished points are kept in its JSONL and a re-run trains only the missing ones.
    """

    def __init__(
        self,
        rows: Sequence[Row],
        protocols: Sequence[Protocol],
        *,
        inputs: dict[str, Callable[..., InputData]] | None = None,
        roots: dict[str, str | None] | None = None,
    ) -> None:
        self.rows = {r.key: r for r in rows}
        self.protocols = {p.name: p for p in protocols}
        self.inputs = dict(INPUTS if inputs is None else inputs)
        self.roots = dict(roots or {})
        self._data: dict[tuple[str, str], InputData] = {}
        self._folds: dict[tuple[str, str], list[Fold]] = {}

    def data(self, input_name: str, dataset: str) -> InputData:
        key = (input_name, dataset)
        if key not in self._data:
            if input_name not in self.inputs:
                raise ConfigError(f"input {input_name!r} has no loader; known: {', '.join(self.inputs)}")
            self._data[key] = self.inputs[input_name](dataset, self.roots.get(dataset))
        return self._data[key]

    def folds(self, protocol: str, input_name: str) -> list[Fold]:
        key = (protocol, input_name)
        if key not in self._folds:
            p = self.protocols[protocol]
            d = self.data(input_name, p.dataset)
            self._folds[key] = p.folds(d.speakers, d.y)
        return self._folds[key]

    def points(
        self, norms: Sequence[str], online_clips: Sequence[int] = (), limit_folds: int | None = None
    ) -> list[dict]:
        """Sweep points in run order: protocol, row, norm, fold (so the first protocol finishes first)."""
        out = []
        for p in self.protocols.values():
            for key, row in self.rows.items():
                if row.protocols is not None and p.name not in row.protocols:
                    continue
                n = len(self.folds(p.name, row.input))
                for norm in norms:
                    if row.norms is not None and norm not in row.norms:
                        continue
                    on = (
                        list(online_clips)
                        if (NormMode.parse(norm).per_speaker and p.speaker_independent)
                        else []
                    )
                    version = {"v": INPUT_VERSIONS[row.input]} if row.input in INPUT_VERSIONS else {}
                    for i in range(n if limit_folds is None else min(n, limit_folds)):
                        point = {"row": key, "protocol": p.name, "norm": norm, "fold": i, "online": on}
                        out.append({**point, **version})
        return out

    def objective(self, point: dict) -> dict:
        row = self.rows[point["row"]]
        p = self.protocols[point["protocol"]]
        fold = self.folds(p.name, row.input)[point["fold"]]
        out = run_fold(
            row,
            self.data(row.input, p.dataset),
            fold,
            NormMode.parse(point["norm"]),
            seed=int(point.get("seed", 0)),
            online_clips=point.get("online", ()),
        )
        return {"fold_name": fold.name, **out}

    def assemble(self, records: Sequence[dict], seeds: Sequence[int] | None = None) -> list[dict]:
        """Table rows (ROW_FIELDS, `complete`, pooled recall / confusion, per-fold figures) of every
        (row, protocol, norm) with finished folds, from sweep records of this table. `seeds`: the training seeds
        the run asked for (a row is complete only with every one of them in every fold; None: the seeds found)."""
        groups: dict[tuple[str, str, str], list[dict]] = {}
        for r in records:
            p = r["point"]
            if r.get("error") or p["row"] not in self.rows or p["protocol"] not in self.protocols:
                continue
            for norm, fig in r["metrics"]["norms"].items():
                groups.setdefault((p["row"], p["protocol"], norm), []).append(
                    {**r["metrics"], **fig, "point": p}
                )
        return [self._row(key, proto, norm, figs, seeds) for (key, proto, norm), figs in groups.items()]

    def _row(
        self, key: str, proto: str, norm: str, figs: list[dict], asked: Sequence[int] | None = None
    ) -> dict:
        row, p = self.rows[key], self.protocols[proto]
        data = self.data(row.input, p.dataset)
        figs = sorted(figs, key=lambda f: (f["point"]["fold"], int(f["point"].get("seed", 0))))
        by_fold: dict[int, list[dict]] = {}
        for f in figs:
            by_fold.setdefault(f["point"]["fold"], []).append(f)
        seeds = sorted({int(f["point"].get("seed", 0)) for f in figs})
        # several training seeds: a fold's figure is its seeds' confusions pooled (as online orders are)
        fold_metrics = [
            Metrics(data.classes, np.sum([np.asarray(f["confusion"], dtype=np.int64) for f in fs], axis=0))
            for fs in by_fold.values()
        ]
        s = summarise(fold_metrics)
        kb = [f["packed_kb"] for f in figs if f["packed_kb"] is not None]
        out = {
            "model": row.model if row.recipe == "fp32" else f"{row.model}@{row.recipe}",
            "input": row.input,
            "dataset": p.dataset,
            "protocol": proto,
            **{k: v for k, v in s.to_dict().items() if k in ROW_FIELDS},
            "bits": round(float(np.mean([f["bits"] for f in figs])), 4),
            "packed_kb": round(float(np.mean(kb)), 3) if kb else None,
            "params": int(round(float(np.mean([f["params"] for f in figs])))),
            "norm": norm,
        }
        extra = ("prior_weight",)
        # every fold holds every seed asked for, once (a seed whose points all failed, or a point given twice, must
        # not leave a complete row)
        want = set(seeds if asked is None else (int(s) for s in asked))
        fold_seeds = [[int(f["point"].get("seed", 0)) for f in fs] for fs in by_fold.values()]
        every_seed = all(len(set(got)) == len(got) and set(got) >= want for got in fold_seeds)
        return {
            **{k: out[k] for k in ROW_FIELDS},
            "complete": s.n_folds == len(self.folds(proto, row.input)) and every_seed,
            **({"seeds": seeds} if len(seeds) > 1 else {}),
            "labels": list(data.classes),
            "recall": s.to_dict()["recall"],
            "confusion": s.pooled.matrix.tolist(),
            "folds": [
                (
                    {
                        "fold": fs[0]["fold_name"],
                        **{k: fs[0][k] for k in ("uar", "war", "n", "recall", "confusion")},
                        **{k: fs[0][k] for k in extra if k in fs[0]},
                    }
                    if len(seeds) == 1
                    else {
                        "fold": fs[0]["fold_name"],
                        **fold_figures(m),
                        "seeds": [int(f["point"].get("seed", 0)) for f in fs],
                        "seed_uar": [f["uar"] for f in fs],
                    }
                )
                for fs, m in zip(by_fold.values(), fold_metrics, strict=True)
            ],
        }


__all__ = [
    "INPUTS",
    "ROW_FIELDS",
    "SITable",
    "INPUT_VERSIONS",
    "TABLE_VERSION",
    "FoldData",
    "Fitted",
    "InputData",
    "Row",
    "fit_laq_mlp",
    "fold_inputs",
    "fit_sklearn",
    "pooled",
    "run_fold",
    "corpus_rows",
    "mixup_rows",
    "extra_rows",
    "normalised_views",
    "with_corpus",
    "standard_rows",
    "uar",
    "vector_input",
]
