"""Every model the host side can train, by name: its constructor, its input kind and its defaults.

The one list of model names: the CLI's choices (`edge-ser train --model`, `edge-ser model NAME`), the zoo,
its sweeps and benchmarks read it. Constructors are "module:function" strings imported on first use, so reading
the registry needs no torch (the CLI builds its help on a machine without it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge_ser.errors import ConfigError

INPUT_LABELS = {
    "vector": "features",
    "patches": "log-Mel",
    "av": "faces + MFCC",
    "functionals": "eGeMAPS functionals",
    "sequence": "MFCC frames",
    "face": "face crop",
}
"""How a table names each input kind (the zoo's "input" column)."""


@dataclass(frozen=True)
class ModelEntry:
    """One model: how to build it, what it takes, what it is for."""

    name: str
    constructor: str
    """"module:function" of the factory (torch models take the kind's arguments, see `build`)."""
    input_kind: str
    """The `edge_ser.inputs` kind its bundles carry: "vector", "patches", "av", "functionals" or "sequence"."""
    summary: str
    family: str = "torch"
    """"torch" (trained, quantized and exported here) or "classical" (scikit-learn baselines, zoo only)."""
    commands: tuple[str, ...] = ("zoo", "model")
    """The commands that offer it: "train" (and laq), "zoo" (and its sweeps), "model"."""
    defaults: dict[str, Any] = field(default_factory=dict)
    """Zoo point values it starts from (`converters.zoo.ZooPoint` fields)."""

    def factory(self) -> Callable[..., Any]:
        module, _, attr = self.constructor.partition(":")
        return getattr(importlib.import_module(module), attr)


MODELS: dict[str, ModelEntry] = {
    e.name: e
    for e in (
        ModelEntry(
            "rf", "converters.classical:fit_classical", "vector", "random forest on the clip vector",
            family="classical", commands=("zoo",),
        ),
        ModelEntry(
            "svm", "converters.classical:fit_classical", "vector", "RBF SVM on the clip vector",
            family="classical", commands=("zoo",),
        ),
        ModelEntry(
            "laq_mlp", "converters.models.laq_mlp:laq_mlp", "vector",
            "the LAQ paper's MLP 180-512-128-64-N (N classes) on the clip vector", commands=("train", "zoo", "model"),
            defaults={"epochs": 300, "patience": 30, "batch": 32, "qat_epochs": 60},
        ),
        ModelEntry(
            "av_cnn", "converters.models.av_cnn:av_cnn", "av",
            "the audio-visual CNN: 6 face crops + 6 MFCC segments", commands=("train", "model"),
        ),
        ModelEntry(
            "small_cnn", "converters.models.small_cnn:small_cnn", "patches", "a small CNN on log-Mel patches",
            defaults={"width": 0.5},
        ),
        ModelEntry(
            "squeezenet_lms", "converters.models.squeezenet_lms:squeezenet_lms", "patches",
            "SqueezeNet v1.1 fire modules on log-Mel patches",
            defaults={"width": 0.25, "epochs": 40, "patience": 12},
        ),
        ModelEntry(
            "tiny_transformer", "converters.models.tiny_transformer:tiny_transformer", "patches",
            "a conv front end + 2 attention layers on log-Mel patches", defaults={"width": 1.0},
        ),
        ModelEntry(
            "functionals_mlp", "converters.models.functionals_mlp:functionals_mlp", "functionals",
            "an MLP 88-64-32 on the eGeMAPS-layout functionals", commands=("model",),
        ),
        ModelEntry(
            "functionals_linear", "converters.models.functionals_mlp:functionals_linear", "functionals",
            "a linear classifier on the functionals (the 2-bit logistic regression)", commands=("model",),
        ),
        ModelEntry(
            "timnet", "converters.models.timnet:timnet", "sequence",
            "TIM-Net-like bidirectional dilated convs with multi-scale fusion on MFCC frames",
            commands=("model",),
        ),
        ModelEntry(
            "face_cnn", "converters.models.face_cnn:face_cnn", "face",
            "a mini-Xception-like CNN on one 48x48 grey face crop (bundles/face_fer)", commands=("model",),
        ),
    )
}  # fmt: skip
"""The models, in the order tables list them."""


def entry(name: str) -> ModelEntry:
    """The registry entry of `name`; ConfigError listing the known names otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"model {name!r} is not known; choose from {', '.join(MODELS)}") from None


def model_names(
    *, command: str | None = None, kind: str | None = None, family: str | None = None
) -> tuple[str, ...]:
    """Names of the models a command offers / that take an input kind / of a family (all when None)."""
    return tuple(
        e.name
        for e in MODELS.values()
        if (command is None or command in e.commands)
        and (kind is None or e.input_kind == kind)
        and (family is None or e.family == family)
    )


def build(name: str, *, num_classes: int, **options: Any):
    """A fresh torch model by name, with its kind's arguments:

    vector: in_features; patches: n_mels, segment_frames, width; av: the `av_cnn` keywords (mode, frames, ...);
    functionals: in_features, hidden, dropout.
    sequence: the `timnet` keywords (n_mfcc, frames, filters, dilations, ...).
    """
    e = entry(name)
    if e.family != "torch":
        raise ConfigError(f"model {name!r} is a {e.family} baseline, not a torch model")
    if e.input_kind == "vector":
        return e.factory()(options.pop("in_features", 180), num_classes, **options)
    return e.factory()(num_classes=num_classes, **options)


__all__ = ["INPUT_LABELS", "MODELS", "ModelEntry", "build", "entry", "model_names"]
