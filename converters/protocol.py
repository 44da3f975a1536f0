"""Evaluation protocols: which folds a figure is averaged over, and the UAR / WAR summary over them.

    folds = PROTOCOLS["emodb-loso"].folds(speakers, labels)      # 10 folds, one held-out speaker each
    summary = summarise([index_metrics(y[f.split.test], pred, classes) for f, pred in ...])

The protocols of the speaker-independence table (docs/protocol.md):

| name | folds | validation |
|---|---|---|
| `emodb-loso` | leave one speaker out (10) | another speaker (`leave_one_speaker_out`) |
| `emodb-10fold-x3` | stratified 10-fold, seeds 0, 1, 2 (30) | a stratified ninth of the training part |
| `ravdess-pairs` | 6 folds of 2 actors, RAVDESS actors 01-12 | the next pair of actors |
| `ravdess-loao` | leave one actor out (12), RAVDESS actors 01-12 | another actor (`leave_one_speaker_out`) |

Every speaker-independent protocol keeps the test speakers out of train and val, and val out of train
(`Fold.check`), so early stopping and knob choice never see the test speakers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from converters.data import Split, leave_one_speaker_out, speaker_group_folds, stratified_kfold
from converters.evaluate import Metrics
from edge_ser.errors import ConfigError
from edge_ser.schema import config_from_dict

KINDS = ("loso", "stratified", "speaker-pairs")


@dataclass(frozen=True, eq=False)
class Fold:
    """One train / val / test split of a protocol, named for reports ("test 03, val 08", "seed 1 fold 4")."""

    name: str
    split: Split
    test_speakers: tuple[str, ...] = ()
    val_speakers: tuple[str, ...] = ()

    def check(self, speakers: Sequence[str]) -> None:
        """ConfigError unless the test speakers are in neither train nor val and the val speakers not in train."""
        spk = np.asarray([str(s) for s in speakers])
        train, val, test = (set(spk[getattr(self.split, p)]) for p in ("train", "val", "test"))
        for what, a, b in (("test", test, train | val), ("val", val, train)):
            shared = sorted(a & b)
            if shared:
                raise ConfigError(f"fold {self.name}: {what} speaker(s) {', '.join(shared)} also in training")


@dataclass(frozen=True)
class Protocol:
    """How a data set is cut into folds.

    kind: "loso" (one speaker per fold, another for validation), "stratified" (k folds per seed, validation
    a stratified `val_fraction` of the training part: speaker-dependent) or "speaker-pairs" (consecutive
    sorted speakers in pairs, one pair per fold, the next pair for validation).
    """

    name: str
    dataset: str
    kind: str
    k: int = 10
    seeds: tuple[int, ...] = (0,)
    val_fraction: float = 1 / 9

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if self.kind not in KINDS:
            raise ConfigError(f"Protocol {self.name!r}: kind {self.kind!r} must be one of {KINDS}")
        if not self.seeds:
            raise ConfigError(f"Protocol {self.name!r}: needs at least one seed")

    @property
    def speaker_independent(self) -> bool:
        return self.kind != "stratified"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Protocol:
        return config_from_dict(cls, data, seeds=tuple)

    def describe(self) -> str:
        if self.kind == "loso":
            return "leave one speaker out; validation on another speaker"
        if self.kind == "speaker-pairs":
            return "one pair of speakers per fold (sorted, consecutive); validation on the next pair"
        seeds = ", ".join(map(str, self.seeds))
        return f"stratified {self.k}-fold x seeds {seeds}; validation a stratified part of training (speaker-dependent)"

    def folds(self, speakers: Sequence[str], labels: Sequence) -> list[Fold]:
        """Every fold of this protocol over records with these speakers and labels (deterministic)."""
        spk = np.asarray([str(s) for s in speakers])
        if len(spk) != len(labels):
            raise ConfigError(f"{self.name}: {len(labels)} labels for {len(spk)} speakers")
        if self.kind == "stratified":
            return [
                Fold(f"seed {seed} fold {i}", split)
                for seed in self.seeds
                for i, split in enumerate(
                    stratified_kfold(labels, k=self.k, seed=seed, val_fraction=self.val_fraction)
                )
            ]
        if self.kind == "loso":
            splits = [
                split
                for seed in self.seeds
                for _, split in leave_one_speaker_out(spk, labels, val_speakers=1, seed=seed)
            ]
        else:
            names = sorted(set(spk.tolist()))
            if len(names) % 2:
                raise ConfigError(f"{self.name}: {len(names)} speakers cannot be cut into pairs")
            splits = speaker_group_folds(spk, [names[i : i + 2] for i in range(0, len(names), 2)])
        out = []
        for split in splits:
            test = tuple(sorted(set(spk[split.test].tolist())))
            val = tuple(sorted(set(spk[split.val].tolist())))
            fold = Fold(f"test {'+'.join(test)}, val {'+'.join(val)}", split, test, val)
            fold.check(spk)
            out.append(fold)
        return out


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol("emodb-loso", "emodb", "loso"),
        Protocol("emodb-10fold-x3", "emodb", "stratified", k=10, seeds=(0, 1, 2)),
        Protocol("ravdess-pairs", "ravdess", "speaker-pairs"),
        Protocol("ravdess-loao", "ravdess", "loso"),
    )
}
"""The protocols of the speaker-independence table, by name."""


# ---------------------------------------------------------------------------------------------- summary
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (0 for one value) of the non-NaN values; (nan, nan) when there are none."""
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return math.nan, math.nan
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


@dataclass(frozen=True)
class Summary:
    """UAR and WAR over folds (mean and sample std of the per-fold figures), and the pooled confusion."""

    uar: float
    uar_std: float
    war: float
    war_std: float
    n_folds: int
    pooled: Metrics

    def to_dict(self) -> dict[str, Any]:
        return {
            "uar": _round(self.uar),
            "uar_std": _round(self.uar_std),
            "war": _round(self.war),
            "war_std": _round(self.war_std),
            "n_folds": self.n_folds,
            "recall": {c: _round(r) for c, r in self.pooled.recall.items()},
            "confusion": self.pooled.matrix.tolist(),
            "labels": list(self.pooled.classes),
        }


def _round(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), 6)


def summarise(per_fold: Sequence[Metrics]) -> Summary:
    """Mean and std over folds of each fold's UAR (mean per-class recall) and WAR (accuracy)."""
    if not per_fold:
        raise ConfigError("no folds to summarise")
    classes = per_fold[0].classes
    if any(m.classes != classes for m in per_fold):
        raise ConfigError("folds disagree on the class list")
    uar, uar_std = mean_std([m.uar for m in per_fold])
    war, war_std = mean_std([m.accuracy for m in per_fold])
    pooled = Metrics(classes, np.sum([m.matrix for m in per_fold], axis=0))
    return Summary(uar, uar_std, war, war_std, len(per_fold), pooled)


def fold_figures(m: Metrics) -> dict[str, Any]:
    """One fold's figures for a results file: UAR, WAR, per-class recall, confusion counts."""
    return {
        "uar": _round(m.uar),
        "war": _round(m.accuracy),
        "n": m.n,
        "recall": {c: _round(r) for c, r in m.recall.items()},
        "confusion": m.matrix.tolist(),
    }


__all__ = ["KINDS", "PROTOCOLS", "Fold", "Protocol", "Summary", "fold_figures", "mean_std", "summarise"]
