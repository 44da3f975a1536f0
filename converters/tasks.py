"""What `edge-ser train` / `laq` work on, whatever the model: inputs by index, labels, speakers, a model to build.

A `Task` hides the difference between the feature-vector model (laq_mlp: one [n, 180] matrix from the
feature cache) and the audio-visual one (av_cnn: faces [n, 6, 64, 64] and/or audio [n, 6, 40] made by the
device's own clip pre-processing), so one train -> LAQ -> QAT -> bundle path serves both.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from converters.data import Split
from converters.data.av_dataset import AVArrays, synthetic_av_arrays
from converters.featurize import FeatureCache
from converters.models import av_cnn, laq_mlp
from converters.models.av_cnn import MODES
from converters.pipeline import Prepared, make_split, split_indices
from converters.train import Inputs
from edge_ser.errors import ConfigError
from edge_ser.features import FeatureSpec
from edge_ser.fileio import atomic_writer
from edge_ser.inputs.av import AVInputSpec, AVKind
from edge_ser.inputs.base import InputKind
from edge_ser.inputs.vector import VectorKind

AV_DATA = ("synthetic-av",)
"""Audio-visual data sets av_cnn trains on (built-in: drawn faces + synthetic speech, paired by class)."""

SEED_AV = {"params": 60_000, "gflops": 0.014, "mb": 0.93, "cpu_ms": (188, 200)}
"""The AV seed paper's reported figures for its fused model."""


@dataclass
class Task:
    """Data as model inputs plus the model to train on them."""

    name: str
    """Data set name, for reports."""
    model_name: str
    y: np.ndarray
    classes: tuple[str, ...]
    speakers: list[str]
    spec: FeatureSpec | AVInputSpec
    """The input spec (for the summary)."""
    inputs: Callable[[np.ndarray], Inputs]
    """Model inputs of the clips at these indices (an array, or a tuple for a multi-input model)."""
    make_model: Callable[[np.ndarray], nn.Module]
    """A fresh model, normalised on the clips at these (training) indices."""
    data_line: str
    input_names: tuple[str, ...]
    """The model's input names, in the order `inputs` gives them (the bundle's and the engines')."""
    info: dict = field(default_factory=dict)
    """Data-set figures for the summary (cache hits, seconds, face detection rate)."""
    kind: InputKind | None = None
    """The model's input kind, which its bundle records (`edge_ser.inputs`)."""
    prepared: Prepared | None = None
    """The files the task was made from (its splits are drawn over every listed file); None for data made in
    memory."""

    def engine_inputs(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """The clips at `idx` as the device engines take them: {input name: float32 array}."""
        x = self.inputs(idx)
        xs = x if isinstance(x, tuple) else (x,)
        return {n: np.asarray(a, dtype=np.float32) for n, a in zip(self.input_names, xs, strict=True)}

    def parts(self, split: Split) -> tuple:
        """(X_train, y_train, X_val, y_val, X_test, y_test)."""
        return tuple(
            x for idx in (split.train, split.val, split.test) for x in (self.inputs(idx), self.y[idx])
        )

    def split(self, kind: str = "random", *, seed: int = 0, fold: int = 0, k: int = 5) -> Split:
        """'random': stratified 80/10/10 (the papers' protocol); 'speaker': fold `fold` of speaker group k-fold.
        A task made from files (`prepared`) draws it over every listed file, as `edge-ser eval --split` does."""
        if self.prepared is not None:
            return make_split(self.prepared, kind, seed=seed, fold=fold, k=k)
        return split_indices(self.y, self.speakers, kind, seed=seed, fold=fold, k=k, name=self.name)


def feature_task(prep: Prepared, spec: FeatureSpec) -> Task:
    """laq_mlp on cached clip feature vectors."""

    def make(train: np.ndarray) -> nn.Module:
        model = laq_mlp(spec.dim, len(prep.classes))
        x = prep.X[train]
        model.set_normalization(torch.as_tensor(x.mean(0)), torch.as_tensor(x.std(0)))
        return model

    line = (
        f"{prep.name}, {len(prep.records)} clips, {len(prep.classes)} classes ({', '.join(prep.classes)}); "
        f"features {prep.X.shape} in {prep.stats.seconds:.2f} s "
        f"(cache: {prep.stats.hits} hits, {prep.stats.misses} computed)"
        + (
            f"; {len(prep.skipped)} file(s) skipped (undecodable, silent or too short)"
            if prep.skipped
            else ""
        )
    )
    return Task(
        prep.name,
        "laq_mlp",
        prep.y,
        prep.classes,
        [r.speaker for r in prep.records],
        spec,
        lambda idx: prep.X[idx],
        make,
        line,
        ("features",),
        {
            "cache_hits": prep.stats.hits,
            "cache_misses": prep.stats.misses,
            "feature_seconds": prep.stats.seconds,
            "skipped_files": len(prep.skipped),
        },
        VectorKind(spec),
        prep,
    )


def av_task(arrays: AVArrays, name: str, mode: str = "fused", spec: AVInputSpec | None = None) -> Task:
    """av_cnn (mode fused, audio or video) on audio-visual arrays."""
    if mode not in MODES:
        raise ConfigError(f"--mode {mode!r}: must be one of {', '.join(MODES)}")
    spec = spec or AVInputSpec()
    d = arrays

    def inputs(idx: np.ndarray) -> Inputs:
        return {"fused": (d.faces[idx], d.audio[idx]), "video": d.faces[idx], "audio": d.audio[idx]}[mode]

    def make(train: np.ndarray) -> nn.Module:
        model = av_cnn(
            mode,
            frames=spec.frames,
            face_size=spec.face_size,
            segments=spec.segments,
            n_mfcc=spec.n_mfcc,
            num_classes=len(d.classes),
        )
        if mode != "video":
            a = d.audio[train]
            model.set_normalization(torch.as_tensor(a.mean((0, 1))), torch.as_tensor(a.std((0, 1))))
        return model

    line = (
        f"{name}, {len(d.y)} clips, {len(d.classes)} classes ({', '.join(d.classes)}); faces "
        f"{tuple(d.faces.shape)} (Haar face found in {d.faces_found:.1%} of frames), audio {tuple(d.audio.shape)}"
    )
    names = {"fused": ("faces", "audio"), "video": ("faces",), "audio": ("audio",)}[mode]
    info = {"faces_found": d.faces_found}
    return Task(
        name,
        f"av_cnn[{mode}]",
        d.y,
        d.classes,
        d.speakers,
        spec,
        inputs,
        make,
        line,
        names,
        info,
        AVKind(spec, names),
    )


def model_line(model: nn.Module, name: str) -> str:
    """Parameters and FLOPs per input of a model (its exported graph counted by edge_ser.flops), with the AV
    seed's reported figures for the fused av_cnn."""
    from converters.models.counts import count_model, count_params

    params, dense = count_params(model), count_model(model).dense_flops
    gflops = dense / 1e9
    seed = (
        f"; the seed reports ~{SEED_AV['params'] / 1e6:.2f} M and {SEED_AV['gflops']} GFLOPs "
        "(`edge-ser model av_cnn` explains the difference)"
        if name == "av_cnn[fused]"
        else ""
    )
    # a small model in whole FLOPs: laq_mlp's 333,383 printed as "0.0003 GFLOPs", a tenth below the 334,447 the
    # demo's roofline line then gave (which also counts the element-wise ops)
    flops = f"{gflops:.4f} GFLOPs" if gflops >= 0.01 else f"{dense:,} FLOPs (dense layers)"
    return f"{name}: {params:,} parameters, {flops} per input{seed}"


# ------------------------------------------------------------------------------------------------ AV cache


def _cache_key(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def cached_av_arrays(
    cache: FeatureCache | None, key: dict, build: Callable[[], AVArrays]
) -> tuple[AVArrays, float, bool]:
    """`build()` once per key, kept as .npz in the feature cache; returns (arrays, seconds, from_cache)."""
    t0 = time.perf_counter()
    path = None if cache is None else Path(cache.root) / "av" / f"{_cache_key(**key)}.npz"
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = AVArrays(
                    z["faces"],
                    z["audio"],
                    z["y"],
                    tuple(str(c) for c in z["classes"]),
                    [str(s) for s in z["speakers"]],
                    float(z["faces_found"]),
                )
            return arrays, time.perf_counter() - t0, True
        except (OSError, KeyError, ValueError):
            pass  # a damaged cache entry is rebuilt below
    arrays = build()
    if path is not None:
        with atomic_writer(path, fsync=False, permissions=None) as fh:  # a cache: a lost entry is rebuilt
            np.savez(
                fh,
                faces=arrays.faces,
                audio=arrays.audio,
                y=arrays.y,
                classes=np.array(arrays.classes),
                speakers=np.array(arrays.speakers),
                faces_found=np.float64(arrays.faces_found),
            )
    return arrays, time.perf_counter() - t0, False


def synthetic_av_task(
    mode: str = "fused", *, n_per_class: int = 40, seed: int = 0, cache: FeatureCache | None = None
) -> Task:
    """The built-in synthetic audio-visual set (drawn faces + synthetic speech) as an av_cnn task."""
    spec = AVInputSpec()
    key = {"data": "synthetic-av", "n": n_per_class, "seed": seed, "spec": spec.to_dict(), "v": 1}
    arrays, seconds, hit = cached_av_arrays(
        cache, key, lambda: synthetic_av_arrays(n_per_class, seed=seed, spec=spec)
    )
    task = av_task(arrays, "synthetic-av", mode, spec)
    task.data_line += f"; built in {seconds:.2f} s" + (" (from cache)" if hit else "")
    task.info.update(seconds=seconds, cache_hits=int(hit), cache_misses=int(not hit))
    return task
