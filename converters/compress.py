"""One entry point for every compression recipe the LAQ table compares, by name.

  fp32                  the trained float model
  ptq-<b>, qat-<b>      every layer at b bits (1..8): rounding only, or QAT at b bits
  laq-paper             the paper's importance ranking + greedy margin search, then QAT
  laq-qat               the paper's ranking and margins, candidates scored after a short QAT (then QAT)
  sensitivity           measured-sensitivity allocation at an average-bits budget, then QAT
A LAQ recipe may carry its knob after "@": "sensitivity@1.5" (budget 1.5 bits), "laq-paper@0.03"
(T_margin 0.03), so a sweep over it traces accuracy against average bits (a Pareto curve).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from converters.quant import BitPlan, LaqConfig, allocate, freeze, ptq, qat
from converters.quant.qat import QAT_DEFAULTS, check_scales
from converters.train import TrainConfig, accuracy
from edge_ser.errors import ConfigError

if TYPE_CHECKING:
    from converters.export.bundle import Packing

RECIPES = ("fp32", "ptq-<b>", "qat-<b>", "laq-paper", "laq-qat", "sensitivity")


@dataclass
class Compressed:
    """A compressed model: its plan, the frozen weights and codes, and where the time went."""

    recipe: str
    plan: BitPlan
    model: nn.Module
    codes: dict[str, tuple[np.ndarray, np.ndarray]]
    seconds: float
    info: dict = field(default_factory=dict)
    """Extras: "ptq_model" (rounding only, LAQ recipes), "qat_epoch" (the QAT epoch kept on validation)."""

    def accuracy(self, X: np.ndarray, y: np.ndarray) -> float:
        return accuracy(self.model, X, y)

    def packed_bytes(
        self,
        input_shape: tuple[int, ...] | dict[str, tuple[int, ...]] | None = None,
        packing: Packing | None = None,
    ) -> int:
        """Size of the real packed .esq file of this model (codes + scales + float biases and normalisation),
        written to a temporary folder; `input_shape`: per-sample shape(s), default the model's `input_shapes()`;
        `packing`: a `converters.export.bundle.Packing` (default: the default one; raw_bits 16 needs a model
        rounded by `round_raw_to_fp16`, scale_bits 16 one rounded by `round_scales_to_fp16`)."""
        import tempfile
        from pathlib import Path

        from converters.export.bundle import Packing, packed_tensors
        from converters.export.onnx_export import to_onnx
        from edge_ser.packed import write_esq

        packing = packing or Packing()
        proto = to_onnx(self.model, self.model.input_shapes() if input_shape is None else input_shape)
        tensors = packed_tensors(proto, self.plan, self.codes, packing.raw_bits, packing.scale_bits)
        with tempfile.TemporaryDirectory() as tmp:
            return write_esq(Path(tmp) / "w.esq", tensors, alignment=packing.alignment).stat().st_size


def parse_recipe(recipe: str) -> tuple[str, float | None]:
    """(kind, value) of a recipe string: ("fp32", None), ("ptq" | "qat", bits), or ("laq-paper" | "laq-qat" |
    "sensitivity", the knob after '@' or None); ConfigError saying what is wrong. `compress` and the commands (before
    any training is spent) read recipes through it."""
    if recipe == "fp32":
        return recipe, None
    m = re.fullmatch(r"(ptq|qat)-([1-8])", recipe)
    if m:
        return m.group(1), float(m.group(2))
    base, at, knob = recipe.partition("@")
    if base not in ("laq-paper", "laq-qat", "sensitivity"):
        raise ConfigError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)} (b = 1..8)")
    if not at:
        return base, None
    try:
        value = float(knob)
    except ValueError:
        raise ConfigError(f"recipe {recipe!r}: the value after '@' must be a number") from None
    low, high = (1.0, 8.0) if base == "sensitivity" else (0.0, 1.0)
    if not low <= value <= high:
        what = "average-bits budget" if base == "sensitivity" else "T_margin"
        raise ConfigError(f"recipe {recipe!r}: the {what} after '@' must be in {low:g}..{high:g}")
    return base, value


def check_recipe(recipe: str) -> str:
    """`recipe` if `compress` accepts it (ConfigError saying why not): checked before any training is spent."""
    parse_recipe(recipe)
    return recipe


def compress(
    recipe: str,
    model: nn.Module,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    laq: LaqConfig | None = None,
    qat_config: TrainConfig = QAT_DEFAULTS,
    seed: int = 0,
    log=None,
    train_kwargs: dict | None = None,
    qat_scales: str = "rule",
) -> Compressed:
    """Apply `recipe` (see module doc) to a trained float model.

    `train_kwargs` go to every QAT run's `train_classifier` (e.g. utterance-level `val_accuracy`, `augment`);
    `qat_scales`: the final QAT's scales, "rule" or "learned" (LSQ, `converters.quant.qat.attach`)."""
    check_scales(qat_scales, "qat_scales")  # before the allocation's minutes
    tk = dict(train_kwargs or {})
    t0 = time.perf_counter()
    qat_config = replace(qat_config, seed=seed)
    kind, value = parse_recipe(recipe)
    if qat_scales != "rule" and kind in ("fp32", "ptq"):
        raise ConfigError(
            f"recipe {recipe!r} has no QAT: qat_scales={qat_scales!r} needs a QAT recipe (qat-<b>, laq-paper, "
            "laq-qat, sensitivity)"
        )
    if kind == "fp32":
        plan = BitPlan.uniform(model, 32)
        frozen, codes = freeze(model, plan)
        return Compressed(recipe, plan, frozen, codes, time.perf_counter() - t0)
    if kind in ("ptq", "qat"):
        plan = BitPlan.uniform(model, int(value), recipe)  # "ptq-3" or "qat-2": rounding only, or trained
        if kind == "ptq":
            frozen, codes = freeze(model, plan)
            return Compressed(recipe, plan, frozen, codes, time.perf_counter() - t0)
        frozen, codes, result = qat(
            model, plan, X_train, y_train, X_val, y_val, qat_config, scales=qat_scales, **tk
        )
        return Compressed(
            recipe, plan, frozen, codes, time.perf_counter() - t0, {"qat_epoch": result.best_epoch}
        )
    cfg = replace(laq or LaqConfig(), method=kind)
    if value is not None:
        cfg = replace(cfg, budget=value) if kind == "sensitivity" else replace(cfg, t_margin=value)
    plan = allocate(model, cfg, X_train, y_train, X_val, y_val, log=log)
    frozen, codes, result = qat(
        model, plan, X_train, y_train, X_val, y_val, qat_config, scales=qat_scales, **tk
    )
    return Compressed(
        recipe,
        plan,
        frozen,
        codes,
        time.perf_counter() - t0,
        {"ptq_model": ptq(model, plan), "qat_epoch": result.best_epoch},
    )
