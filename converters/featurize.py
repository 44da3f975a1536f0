"""Clip features for a list of records, with an on-disk cache keyed by file content and FeatureSpec.

A second run over the same files and spec reads one small .npy per file and does no audio work. Keys are
sha256(file bytes) and FeatureSpec.digest(), so renaming or moving a data set keeps its cache, and editing a
file or a spec parameter misses it.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from edge_ser.features import FeatureSpec, file_vector
from edge_ser.fileio import atomic_write, atomic_writer


def default_cache_dir() -> Path:
    """$EDGE_SER_CACHE, else $XDG_CACHE_HOME/edge-ser, else ~/.cache/edge-ser."""
    if os.environ.get("EDGE_SER_CACHE"):
        return Path(os.environ["EDGE_SER_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "edge-ser"


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class FeatureCache:
    """Per-file feature vectors stored as `<root>/features/<spec digest>/<sha[:2]>/<sha>.npy`."""

    root: Path = field(default_factory=default_cache_dir)
    hits: int = 0
    misses: int = 0

    def _path(self, spec: FeatureSpec, digest: str) -> Path:
        return Path(self.root) / "features" / spec.digest() / digest[:2] / f"{digest}.npy"

    def get(self, spec: FeatureSpec, digest: str) -> np.ndarray | None:
        path = self._path(spec, digest)
        try:
            vec = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None  # absent, or a damaged entry (recomputed and overwritten)
        return vec if vec.shape == (spec.dim,) else None

    def put(self, spec: FeatureSpec, digest: str, vec: np.ndarray) -> None:
        path = self._path(spec, digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        spec_file = path.parent.parent / "spec.json"
        if not spec_file.exists():
            atomic_write(spec_file, spec.to_json(), permissions=None)
        with atomic_writer(path, fsync=False, permissions=None) as fh:  # a cache: a lost entry is recomputed
            np.save(fh, np.asarray(vec, dtype=np.float32), allow_pickle=False)


@dataclass(frozen=True)
class ExtractStats:
    """What an extraction did: files, cache hits/misses and wall time in seconds."""

    files: int
    hits: int
    misses: int
    seconds: float


def extract(
    paths: Sequence[str | os.PathLike] | Iterable,
    spec: FeatureSpec = FeatureSpec(),
    *,
    cache: FeatureCache | None = None,
    progress: bool = True,
    desc: str = "features",
) -> tuple[np.ndarray, ExtractStats]:
    """Feature vectors [len(paths), spec.dim] for audio files (or records with a `.source`), cached when given."""
    paths = [Path(getattr(p, "source", p)) for p in paths]
    out = np.empty((len(paths), spec.dim), dtype=np.float32)
    hits = misses = 0
    t0 = time.perf_counter()
    for i, path in enumerate(
        tqdm(paths, desc=desc, unit="file", disable=None if progress else True, leave=False)
    ):
        if cache is None:
            out[i] = file_vector(path, spec)
            misses += 1
            continue
        digest = file_digest(path)
        vec = cache.get(spec, digest)
        if vec is None:
            vec = file_vector(path, spec)
            cache.put(spec, digest, vec)
            misses += 1
        else:
            hits += 1
        out[i] = vec
    if cache is not None:
        cache.hits += hits
        cache.misses += misses
    return out, ExtractStats(len(paths), hits, misses, time.perf_counter() - t0)
