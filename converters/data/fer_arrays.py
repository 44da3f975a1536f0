"""FER-2013 as arrays: every image of a split decoded once into uint8 [n, 48, 48], cached outside the repo.

Decoding 28,709 JPEGs takes a while on a Pi-class CPU and repeated training runs need the same pixels, so
`fer_arrays(root, split)` writes `<cache>/fer2013_<split>_<key>.npz` (the key hashes the sorted file names and
sizes) and reads it back on the next call. Labels are indices into `FER_LABELS`, the project's class order
(`converters.data.labels.class_order`) of FER's seven classes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converters.data.labels import FER2013, class_order
from converters.data.loaders import load_fer2013
from converters.featurize import default_cache_dir
from edge_ser.errors import DatasetError
from edge_ser.fileio import atomic_writer

FER_LABELS: tuple[str, ...] = class_order(FER2013.values())
"""neutral, happy, sad, angry, fear, disgust, surprise: the output order of every face model here."""
FER_SIDE = 48


@dataclass(frozen=True)
class FerArrays:
    """One split: images uint8 [n, 48, 48], labels int64 [n] (indices into `labels`), file stems [n]."""

    images: np.ndarray
    labels: np.ndarray
    names: np.ndarray
    label_names: tuple[str, ...] = FER_LABELS


def _key(records) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(f"{r.label}/{Path(r.source).name}:{os.path.getsize(r.source)}\n".encode())
    return h.hexdigest()[:16]


def _decode(path: Path) -> np.ndarray:
    from edge_ser.vision._cv2 import import_cv2

    cv2 = import_cv2("reading FER-2013 images")
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise DatasetError(f"{path}: not a readable image")
    if img.shape != (FER_SIDE, FER_SIDE):
        img = cv2.resize(img, (FER_SIDE, FER_SIDE), interpolation=cv2.INTER_AREA)
    return img


def fer_arrays(
    root: str | os.PathLike, split: str = "train", cache: str | os.PathLike | None = None
) -> FerArrays:
    """FER-2013 `split` (train / validation = PublicTest) of the tree at `root` as arrays, cached in `cache`
    (default: `converters.featurize.default_cache_dir()`)."""
    records = sorted(load_fer2013(root, split=split), key=lambda r: (r.label, Path(r.source).name))
    index = {name: i for i, name in enumerate(FER_LABELS)}
    folder = Path(cache) if cache is not None else default_cache_dir()
    path = folder / f"fer2013_{split}_{_key(records)}.npz"
    if path.is_file():
        with np.load(path) as z:
            return FerArrays(z["images"], z["labels"], z["names"])
    images = np.stack([_decode(Path(r.source)) for r in records])
    labels = np.array([index[r.label] for r in records], dtype=np.int64)
    names = np.array([Path(r.source).stem for r in records])
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path, "wb") as fh:
        np.savez(fh, images=images, labels=labels, names=names)
    return FerArrays(images, labels, names)
