"""Late fusion of calibrated branch posteriors: a weighted product of experts with the class prior divided out.

Each branch i (an audio bundle, a face bundle, ...) gives a posterior p_i(c | x_i) over its labels. The rule:

    log p(c | x_1..x_n) = sum_i w_i log q_i(c | x_i) - (sum_i w_i - 1) log prior(c) + const,
    q_i = softmax(log p_i / T_i)            (temperature scaling, Guo et al. 2017)

renormalised over the classes. A branch trained with another class prior pi_i (a face model trained on
FER-2013's skewed classes) has that prior divided out instead: log p = log prior + sum_i w_i (log q_i - log pi_i),
which is the line above when every pi_i is the prior. With w_i = 1 this is Bayes' rule for modalities that are conditionally
independent given the class: p(c | x_1, x_2) ~ p(x_1 | c) p(x_2 | c) p(c) = p(c | x_1) p(c | x_2) / p(c) (Kittler
et al. 1998, "the product rule"; Hinton 2002, products of experts). The weights temper a branch that is
over- or under-confident beyond what one temperature fixes; weights (1, 0) give the first branch alone.

A branch that is missing at a moment (no face in view) is simply left out of the sum: its weight acts as 0
and the prior term shrinks with it, so audio alone gives exactly the calibrated audio posterior. There is no
separate fallback path. docs/fusion.md says why and how the numbers in a bundle were chosen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from edge_ser.engines.base import softmax
from edge_ser.errors import ConfigError
from edge_ser.limits import MAX_NAME_CHARS
from edge_ser.schema import Checker

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100.0
"""Temperatures a manifest may give (outside, a branch is either a hard argmax or flat)."""
MAX_WEIGHT = 10.0
"""Largest branch weight a manifest may give."""
PROB_FLOOR = 1e-12
"""Probabilities are floored here before the log, so a branch's zero never vetoes a class outright."""
BRANCH_SOURCE_KEYS = ("path", "manifest_sha256")
"""Keys of a manifest branch that say where its bundle is (read by `edge_ser.bundle.fusion`)."""


@dataclass(frozen=True)
class BranchRule:
    """One branch's part in the fusion: its name, temperature, weight and how its labels map to the fused ones."""

    name: str
    temperature: float = 1.0
    """Divides the branch's log posterior before renormalising (> 1 softens an over-confident branch)."""
    weight: float = 1.0
    """Its exponent in the product of experts beside other branches (0: ignored there); a branch alone counts at 1."""
    label_map: dict[str, str | None] = field(default_factory=dict)
    """Branch label -> fused label it adds to (None: dropped); a label not named here maps to itself."""
    prior: tuple[float, ...] | None = None
    """The class prior (over the fused labels) the branch was trained with, when it differs from the rule's
    (a face model trained on FER-2013's skewed classes); None: the rule's prior."""

    def __post_init__(self) -> None:
        c = Checker(f"fusion branch {self.name!r}", error=ConfigError)
        c.text(self.name, "name", max_len=MAX_NAME_CHARS)
        c.number(self.temperature, "temperature", lo=MIN_TEMPERATURE, hi=MAX_TEMPERATURE)
        c.number(self.weight, "weight", lo=0.0, hi=MAX_WEIGHT)
        c.of(self.label_map, "label_map", dict)
        for k, v in self.label_map.items():
            c.of(v, f"label_map.{k}", (str, type(None)))
        if self.prior is not None:
            check_prior(c, self.prior, "prior")

    @classmethod
    def from_dict(cls, d: Any) -> BranchRule:
        """A branch of a manifest's `fusion.branches` (its `path` and `manifest_sha256` are the bundle's)."""
        c = Checker("fusion branch", error=ConfigError)
        c.mapping(d, "", ("name",), ("temperature", "weight", "label_map", "prior", *BRANCH_SOURCE_KEYS))
        prior = d.get("prior")
        return cls(
            name=d["name"],
            temperature=d.get("temperature", 1.0),
            weight=d.get("weight", 1.0),
            label_map=d.get("label_map") or {},
            prior=None if prior is None else tuple(c.of(prior, "prior", list)),
        )

    def projection(self, branch_labels: Sequence[str], labels: Sequence[str]) -> np.ndarray:
        """[branch classes, fused classes] 0/1 matrix: which fused label each branch label adds to.

        Raises ConfigError when a fused label receives no branch label (the branch could say nothing of it), or
        when `label_map` names a label the branch does not have or maps one to a label the fusion does not have
        (a misspelt entry did nothing: 'calm' -> 'nuetral' dropped calm without a word)."""
        unknown = [k for k in self.label_map if k not in branch_labels]
        if unknown:
            raise ConfigError(
                f"fusion branch {self.name!r}: label_map names {unknown}, not labels of the branch "
                f"{list(branch_labels)}"
            )
        nowhere = {k: v for k, v in self.label_map.items() if v is not None and v not in labels}
        if nowhere:
            raise ConfigError(
                f"fusion branch {self.name!r}: label_map maps {nowhere} to labels the fusion does not have "
                f"{list(labels)} (null drops a label)"
            )
        m = np.zeros((len(branch_labels), len(labels)))
        for i, lab in enumerate(branch_labels):
            target = self.label_map.get(lab, lab)
            if target is not None and target in labels:
                m[i, list(labels).index(target)] = 1.0
        empty = [labels[j] for j in range(len(labels)) if not m[:, j].any()]
        if empty:
            raise ConfigError(
                f"fusion branch {self.name!r}: fused label(s) {empty} get no probability from the branch's "
                f"labels {list(branch_labels)} (add them to its label_map)"
            )
        return m

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["prior"] = None if self.prior is None else list(self.prior)
        return d


@dataclass(frozen=True)
class FusionRule:
    """The product-of-experts rule over `labels`: one BranchRule per branch and the class prior it divides out."""

    labels: tuple[str, ...]
    branches: tuple[BranchRule, ...]
    prior: tuple[float, ...]
    """The class prior p(c) the branches were trained with (their training label shares)."""

    def __post_init__(self) -> None:
        c = Checker("fusion", error=ConfigError)
        check_prior(c, self.prior, "prior", len(self.labels))
        for b in self.branches:
            if b.prior is not None:
                check_prior(c, b.prior, f"branches[{b.name}].prior", len(self.labels))
        names = [b.name for b in self.branches]
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"fusion branches need distinct names, got {names}")
        if len(self.branches) > 1 and not any(b.weight for b in self.branches):
            # with every branch present the fused answer was the prior, whatever they said
            raise ConfigError(f"fusion: every branch weight is 0 ({names}); at least one must count")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.branches)

    def branch(self, name: str) -> BranchRule:
        return self.branches[self.names.index(name)]

    def with_params(self, temperatures: Mapping[str, float], weights: Mapping[str, float]) -> FusionRule:
        """A copy with new temperatures and / or weights (by branch name; others kept)."""
        bs = tuple(
            replace(
                b,
                temperature=float(temperatures.get(b.name, b.temperature)),
                weight=float(weights.get(b.name, b.weight)),
            )
            for b in self.branches
        )
        return FusionRule(self.labels, bs, self.prior)

    def fuse(self, posteriors: Mapping[str, np.ndarray | None]) -> np.ndarray:
        """Fused probabilities [classes] (or [rows, classes]) from the branches' posteriors over the fused
        labels (already projected), each [classes] or [rows, classes], or None when the branch is missing."""
        log_prior = np.log(np.asarray(self.prior, dtype=np.float64))
        total: Any = log_prior
        given = [b for b in self.branches if posteriors.get(b.name) is not None]
        # a branch alone counts at weight 1, its own weight 0 too: a face weighted 0 beside the audio it did not
        # help is still all there is to go on when the audio is missing (it gave the prior, whatever the face)
        present = [b for b in given if b.weight != 0] if len(given) > 1 else given
        for b in present:
            own = log_prior if b.prior is None else np.log(np.asarray(b.prior, dtype=np.float64))
            # a branch alone is its calibrated posterior (weight 1: marginalising the missing cue out leaves it);
            # the weights temper evidence that two cues share, and with one cue there is none to temper (at the
            # shipped weight 2, audio alone read 'sad 0.998' for a calibrated 0.953)
            w = 1.0 if len(present) == 1 else b.weight
            total = total + w * (calibrated_log(posteriors[b.name], b.temperature) - own)
        return softmax_log(total)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's `fusion` block without the branches' paths (`edge_ser.bundle.fusion` adds them)."""
        return {"branches": [b.to_dict() for b in self.branches], "prior": list(self.prior)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], labels: Sequence[str]) -> FusionRule:
        """The rule of a manifest's `fusion` block (labels: the manifest's `labels`); ConfigError naming the field."""
        c = Checker("fusion", error=ConfigError)
        c.mapping(d, "", ("branches", "prior"), None)
        branches = c.of(d["branches"], "branches", list)
        prior = c.of(d["prior"], "prior", list)
        for i, v in enumerate(prior):
            c.number(v, f"prior[{i}]", positive=True)
        rules = tuple(BranchRule.from_dict(b) for b in branches)
        return cls(tuple(labels), rules, tuple(float(v) for v in prior))


def check_prior(c: Checker, prior: Any, path: str, n: int | None = None) -> None:
    """A class prior: `n` positive finite numbers summing to 1 (within 1e-3)."""
    values = c.of(list(prior) if isinstance(prior, tuple) else prior, path, list)
    if n is not None and len(values) != n:
        c.problem(path, f"has {len(values)} values for {n} labels")
    for i, v in enumerate(values):
        c.number(v, f"{path}[{i}]", positive=True)
    if abs(sum(values) - 1) > 1e-3:
        c.problem(path, f"must sum to 1, sums to {sum(values):.6g}")


def calibrated_log(p: np.ndarray, temperature: float) -> np.ndarray:
    """log softmax(log p / T): a posterior [.., classes] temperature-scaled, as log probabilities."""
    lp = np.log(np.maximum(np.asarray(p, dtype=np.float64), PROB_FLOOR)) / float(temperature)
    return lp - _logsumexp(lp)


def softmax_log(z: np.ndarray) -> np.ndarray:
    """Probabilities from unnormalised log probabilities [.., classes]."""
    return softmax(np.asarray(z, dtype=np.float64))


def _logsumexp(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=-1, keepdims=True)
    return m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


__all__ = ["BranchRule", "FusionRule", "calibrated_log", "softmax_log"]
