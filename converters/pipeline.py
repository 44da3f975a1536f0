"""The host job as functions: records -> cached features -> split -> train -> evaluate -> summary.

The CLI's `train` and `demo` commands and the tests call these, so there is one path from data to model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converters.data import (
    LOADERS,
    Record,
    Split,
    SyntheticSpec,
    class_order,
    group_kfold,
    load_dataset,
    load_folder,
    load_synthetic,
    stratified_split,
)
from converters.data import write as write_synthetic
from converters.data.synthetic import SPEC_FILE as SYNTHETIC_SPEC_FILE
from converters.featurize import ExtractStats, FeatureCache, default_cache_dir, extract
from edge_ser.errors import ConfigError
from edge_ser.features import FeatureSpec
from edge_ser.fileio import atomic_write


@dataclass
class Prepared:
    """A data set ready to train on: records, feature matrix, integer labels and the class order."""

    name: str
    records: list[Record]
    X: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    stats: ExtractStats

    def parts(self, split: Split) -> tuple[np.ndarray, ...]:
        """(X_train, y_train, X_val, y_val, X_test, y_test) of a split."""
        return tuple(a[idx] for idx in (split.train, split.val, split.test) for a in (self.X, self.y))


def load_records(
    data: str,
    root: str | os.PathLike | None = None,
    *,
    synthetic: SyntheticSpec | None = None,
    cache_dir: Path | None = None,
) -> tuple[str, list[Record]]:
    """Resolve `data` (a data set name, 'synthetic', or a folder-per-class path) to its records."""
    if data == "synthetic" and root is not None and (Path(root) / SYNTHETIC_SPEC_FILE).is_file():
        return "synthetic", load_synthetic(root)
    if data == "synthetic":
        spec = synthetic or SyntheticSpec()
        folder = Path(root) if root else (cache_dir or default_cache_dir()) / "synthetic" / f"seed{spec.seed}"
        return "synthetic", write_synthetic(spec, folder)
    if data in LOADERS:
        return data, load_dataset(data, root)
    path = Path(data)
    if path.is_dir() and (path / SYNTHETIC_SPEC_FILE).is_file():
        return "synthetic", load_synthetic(path)
    if path.is_dir():
        return path.name, load_folder(path)
    raise ConfigError(
        f"--data {data!r} is neither a data set name ({', '.join(sorted(LOADERS))}) nor a folder"
    )


def prepare(
    data: str,
    root: str | os.PathLike | None = None,
    *,
    spec: FeatureSpec = FeatureSpec(),
    cache: FeatureCache | None = None,
    synthetic: SyntheticSpec | None = None,
    progress: bool = True,
) -> Prepared:
    """Load records and their feature vectors (through the cache when given)."""
    name, records = load_records(data, root, synthetic=synthetic, cache_dir=cache.root if cache else None)
    X, stats = extract(records, spec, cache=cache, progress=progress, desc=f"features {name}")
    classes = class_order(r.label for r in records)
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[r.label] for r in records], dtype=np.int64)
    return Prepared(name, records, X, y, classes, stats)


def make_split(
    prepared: Prepared, kind: str = "random", *, seed: int = 0, fold: int = 0, k: int = 5
) -> Split:
    """`split_indices` of a prepared data set."""
    return split_indices(prepared.y, [r.speaker for r in prepared.records], kind, seed=seed, fold=fold, k=k)


def split_indices(
    y: np.ndarray, speakers: list[str], kind: str = "random", *, seed: int = 0, fold: int = 0, k: int = 5
) -> Split:
    """'random': stratified 80/10/10 (the papers' protocol); 'speaker': fold `fold` of speaker group k-fold."""
    if kind == "random":
        return stratified_split(y, seed=seed)
    if kind == "speaker":
        folds = group_kfold(speakers, k=k, seed=seed)
        if not 0 <= fold < len(folds):
            raise ConfigError(f"--fold {fold} is out of range for {len(folds)} folds")
        return folds[fold]
    raise ConfigError(f"split must be 'random' or 'speaker', got {kind!r}")


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    """Confusion counts [true, predicted]."""
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def write_json(path: Path, payload: dict) -> None:
    """Write JSON atomically (temp file, then rename)."""
    atomic_write(path, json.dumps(payload, indent=2) + "\n")
