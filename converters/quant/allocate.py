"""Choosing a BitPlan for a trained model by name: "laq-paper", "laq-qat" or "sensitivity"."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from torch import nn

from converters.quant.bitplan import BitPlan
from converters.quant.laq import (
    METHODS,
    LaqWeights,
    cross_entropy,
    greedy_margin_search,
    layer_metrics,
    model_weights,
    sensitivity_allocation,
)
from converters.quant.qat import ptq, qat
from converters.train import TrainConfig, accuracy
from edge_ser.errors import ConfigError


@dataclass(frozen=True)
class LaqConfig:
    """How to allocate bits: the method and its knobs (see converters.quant.laq)."""

    method: str = "laq-paper"
    t_margin: float = 0.05
    """Accuracy drop (fraction, 0.05 = 5 points) the top-ranked layer may cost; later layers scale it by Imp.
    The paper gives no value; on EMODB's 54 validation clips one clip is 1.85 points, and 0.05 lands the
    paper's search near its reported 2 bits."""
    weights: LaqWeights = field(default_factory=LaqWeights)
    bins: int = 256
    budget: float = 1.75
    """Average-bits budget of the "sensitivity" method. 1.75 keeps laq_mlp's packed file under the paper's
    43 KB (codes + float32 scales, biases and normalisation); the allocation may land a little below it."""
    lazy: bool = False
    """"sensitivity": the lazy greedy (a few loss evaluations per step instead of one per layer; see
    `sensitivity_allocation`). For deep models such as squeezenet_lms."""
    calibration: int | None = None
    """"sensitivity": score plans on this many training rows (a seeded random subset) instead of all of them;
    segment-level data sets have tens of thousands of rows."""
    search_qat: TrainConfig = TrainConfig(epochs=15, lr=5e-4, weight_decay=0.0, patience=15)
    """The short QAT run that scores each candidate of "laq-qat"."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"LAQ method must be one of {METHODS}, got {self.method!r}")
        # as the recipes' '@' values are checked: 0.5 bits gave a 1-bit plan over budget, nan an 8-bit one, silently
        if not (isinstance(self.budget, (int, float)) and 1.0 <= self.budget <= 8.0):
            raise ConfigError(f"LaqConfig: budget {self.budget!r} must be an average of 1..8 bits")
        if not (isinstance(self.t_margin, (int, float)) and 0.0 <= self.t_margin <= 1.0):
            raise ConfigError(f"LaqConfig: t_margin {self.t_margin!r} must be a fraction in 0..1")

    def to_dict(self) -> dict:
        return asdict(self)


def allocate(
    model: nn.Module,
    cfg: LaqConfig,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    log: Callable[[str], None] | None = None,
) -> BitPlan:
    """A BitPlan for a trained float model, by cfg.method."""
    t0 = time.perf_counter()
    fp32 = BitPlan.uniform(model, 32)
    if cfg.method == "sensitivity":
        Xc, yc = X_train, y_train
        if cfg.calibration is not None and cfg.calibration < len(y_train):
            rows = np.sort(np.random.default_rng(0).choice(len(y_train), cfg.calibration, replace=False))
            Xc = tuple(x[rows] for x in X_train) if isinstance(X_train, (tuple, list)) else X_train[rows]
            yc = np.asarray(y_train)[rows]
        plan, trace = sensitivity_allocation(
            fp32, lambda p: cross_entropy(ptq(model, p), Xc, yc), cfg.budget, lazy=cfg.lazy, log=log
        )
        info = {"budget": cfg.budget, "trace": trace, "lazy": cfg.lazy, "calibration": cfg.calibration}
    else:
        metrics = layer_metrics(model_weights(model), cfg.weights, bins=cfg.bins)
        ranking = sorted(metrics, key=lambda n: -metrics[n]["importance"])
        importance = {n: m["importance"] for n, m in metrics.items()}
        if cfg.method == "laq-paper":

            def score(p: BitPlan) -> float:
                return accuracy(ptq(model, p), X_val, y_val)

        else:

            def score(p: BitPlan) -> float:
                return accuracy(
                    qat(model, p, X_train, y_train, X_val, y_val, cfg.search_qat)[0], X_val, y_val
                )

        baseline = accuracy(model, X_val, y_val)
        if log:
            log(
                f"  ranking: {', '.join(f'{n} ({importance[n]:.3f})' for n in ranking)}; val acc fp32 {baseline:.3f}"
            )
        plan, trace = greedy_margin_search(fp32, ranking, importance, score, baseline, cfg.t_margin, log=log)
        info = {
            "metrics": metrics,
            "ranking": ranking,
            "baseline_val_acc": baseline,
            "t_margin": cfg.t_margin,
            "weights": asdict(cfg.weights),
            "bins": cfg.bins,
            "trace": trace,
        }
    info["seconds"] = time.perf_counter() - t0
    return replace(plan, method=cfg.method, info=info)
