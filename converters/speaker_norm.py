"""Speaker normalisation on the host, as a recipe switch: none / transductive / online-N.

- `none`: the features as extracted (the model standardises them with the training split's statistics).
- `transductive`: every speaker standardised by its own mean and variance over all its clips; for a test
  speaker that uses its unlabelled clips (labels never), as a system that sees a batch of a new speaker's
  recordings before answering could.
- `online-N`: training and validation speakers as in transductive; each test speaker's statistics come from
  its first N clips only, starting from the training prior (`SpeakerNorm`, weighted as `prior_weight`
  clips): the device's running statistics after N clips of enrolment. Every clip of the test speaker is
  then scored with those statistics. The clip order is seeded; `ORDERS` orders are pooled.

The arithmetic is `edge_ser.features.speaker_norm.SpeakerNorm`, the class the device runs: one
implementation. Inputs of more than 2 dimensions ([n, frames, d]) are normalised per feature over frames.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_ser.errors import ConfigError
from edge_ser.features.speaker_norm import SpeakerNorm

PRIOR_WEIGHTS = (1.0, 3.0, 10.0, 30.0)
"""Candidate prior weights (clips) for online-N; each fold picks one by the validation speakers' UAR."""
ORDERS = 3
"""Seeded clip orders per online-N evaluation (the N enrolment clips differ per order); pooled."""
_ONLINE = re.compile(r"online-(\d+)")


@dataclass(frozen=True)
class NormMode:
    """A normalisation switch: kind "none", "transductive" or "online" (with `clips` = N >= 1)."""

    kind: str = "none"
    clips: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("none", "transductive", "online"):
            raise ConfigError(f"norm {self.kind!r}: choose none, transductive or online-N")
        if (self.kind == "online") != (self.clips >= 1):
            raise ConfigError(f"norm {self.name}: online-N needs N >= 1 clips, the others none")

    @property
    def name(self) -> str:
        return f"online-{self.clips}" if self.kind == "online" else self.kind

    @property
    def per_speaker(self) -> bool:
        """Whether the model is trained on speaker-normalised features (transductive and online share it)."""
        return self.kind != "none"

    @classmethod
    def parse(cls, text: str) -> NormMode:
        """ "none", "transductive" or "online-N"."""
        m = _ONLINE.fullmatch(text)
        if m:
            return cls("online", int(m.group(1)))
        if text in ("none", "transductive"):
            return cls(text)
        raise ConfigError(f"norm {text!r}: choose none, transductive or online-N (N clips, e.g. online-5)")


def _frames(X: np.ndarray) -> np.ndarray:
    """[n, d] -> itself, [n, ..., d] -> [n * ..., d]: the rows statistics are taken over."""
    X = np.asarray(X)
    if X.ndim < 2:
        raise ConfigError(f"speaker normalisation needs [n, d] (or [n, ..., d]) inputs, got shape {X.shape}")
    return X.reshape(-1, X.shape[-1])


def _speakers(speakers: Sequence[str], n: int) -> np.ndarray:
    spk = np.asarray([str(s) for s in speakers])
    if spk.shape != (n,):
        raise ConfigError(f"{len(spk)} speakers for {n} clips")
    return spk


def prior(X: np.ndarray, speakers: Sequence[str], rows: np.ndarray, *, prior_weight: float) -> SpeakerNorm:
    """The training prior (`SpeakerNorm.from_speakers`) of the clips `rows` (the training part only)."""
    X = np.asarray(X)
    spk = _speakers(speakers, len(X))[rows]
    frames = _frames(X[rows])
    per_clip = frames.shape[0] // max(len(rows), 1)
    return SpeakerNorm.from_speakers(frames, np.repeat(spk, per_clip), prior_weight=prior_weight)


def transductive(
    X: np.ndarray, speakers: Sequence[str], *, floor_from: np.ndarray | None = None
) -> np.ndarray:
    """Every speaker's clips standardised by that speaker's own statistics (labels unused). Same shape, float32.
    `floor_from`: see `transductive_like`."""
    return transductive_like(X, speakers, [X], floor_from=floor_from)[0]


def transductive_like(
    X: np.ndarray,
    speakers: Sequence[str],
    views: Sequence[np.ndarray],
    *,
    floor_from: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Each of `views` (other renderings of X's clips, each X's shape: e.g. cut to their first second of speech)
    standardised per speaker by that speaker's statistics of X's clips: a device that knows its speaker hearing
    another utterance of theirs. float32 arrays, in the order of `views`.

    The variance floors and the constant-feature mask come from the pooled rows `floor_from` (default: X itself).
    An evaluation passes its training rows: pooled over X, they held the test speaker too (a small leak the
    protocol audit of 2026-12-06 measured: docs/protocol.md, "Audit")."""
    X = np.asarray(X, dtype=np.float64)
    spk = _speakers(speakers, len(X))
    views = [np.asarray(v, dtype=np.float64) for v in views]
    if any(v.shape != X.shape for v in views):
        raise ConfigError(f"views of shapes {[v.shape for v in views]} for clips of shape {X.shape}")
    out = [np.empty(X.shape, dtype=np.float32) for _ in views]
    pooled = _frames(X if floor_from is None else np.asarray(floor_from, dtype=np.float64))
    base = SpeakerNorm(pooled.mean(0), pooled.var(0), prior_weight=0.0)
    for s in np.unique(spk):
        rows = np.flatnonzero(spk == s)
        norm = base.reset().update(_frames(X[rows]))
        for o, v in zip(out, views, strict=True):
            o[rows] = norm.apply(_frames(v[rows])).reshape(v[rows].shape)
    return out


def online(
    X: np.ndarray,
    speakers: Sequence[str],
    rows: np.ndarray,
    base: SpeakerNorm,
    clips: int,
    *,
    seed: int = 0,
    orders: int = ORDERS,
) -> list[np.ndarray]:
    """X[rows] normalised as a device would after `clips` clips of each speaker, once per seeded clip order.

    For each speaker among `rows`: start from `base` (the prior), update with the first `clips` of its clips
    in a seeded order, then standardise all of its clips with those statistics. Returns `orders` arrays, each
    [len(rows), ...] in the order of `rows`.
    """
    X = np.asarray(X)
    rows = np.asarray(rows, dtype=np.int64)
    spk = _speakers(speakers, len(X))[rows]
    if clips < 1:
        raise ConfigError(f"online normalisation needs clips >= 1, got {clips}")
    out = []
    for o in range(orders):
        rng = np.random.default_rng(seed + o)
        Xo = np.empty((len(rows), *X.shape[1:]), dtype=np.float32)
        for s in np.unique(spk):
            mine = np.flatnonzero(spk == s)
            enrol = rows[rng.permutation(mine)[:clips]]
            norm = base.reset().update(_frames(X[enrol]))
            Xo[mine] = norm.apply(_frames(X[rows[mine]])).reshape(X[rows[mine]].shape)
        out.append(Xo)
    base.reset()
    return out


def device_views(
    X: np.ndarray,
    speakers: Sequence[str],
    rows: np.ndarray,
    base: SpeakerNorm,
    clips: Sequence[int],
    *,
    seed: int = 0,
) -> list[np.ndarray]:
    """Early views: X[rows] normalised as a device would after k clips of each speaker, for each k of `clips`,
    in one seeded clip order per k (seed 1000 + k + `seed`: other orders than online-N's scoring)."""
    return [online(X, speakers, rows, base, k, seed=seed + 1000 + k, orders=1)[0] for k in clips]


__all__ = ["ORDERS", "PRIOR_WEIGHTS", "NormMode", "device_views", "online", "prior", "transductive"]
