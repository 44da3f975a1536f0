"""A small MLP on the 88 eGeMAPS-layout functionals (`edge_ser.inputs.functionals`).

88 -> 64 -> 32 -> n_classes with ReLU and dropout, ~8K weights: the functionals already summarise the clip, so
a classifier this size is what the literature's SVM baselines correspond to (Schuller et al. 2009; Eyben et
al. 2016). Standardisation (per-value mean and std of the training split) is in the graph as `mean` / `std`
buffers, exactly as in `laq_mlp`, so LAQ + QAT, export and the device engines treat it like that model.
"""

from __future__ import annotations

from collections.abc import Sequence

from converters.models.laq_mlp import LaqMLP


class FunctionalsMLP(LaqMLP):
    """`LaqMLP` (standardise, Linear+ReLU+Dropout blocks, linear classifier) whose input is `functionals`."""

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample input shape by input name: the clip's functionals."""
        return {"functionals": (int(self.mean.numel()),)}


def functionals_mlp(
    num_classes: int = 7,
    in_features: int = 88,
    hidden: Sequence[int] = (64, 32),
    dropout: float = 0.3,
    **kwargs,
) -> FunctionalsMLP:
    """88 -> 64 -> 32 -> classes (~8K parameters for 7 classes)."""
    return FunctionalsMLP(in_features, num_classes, hidden=hidden, dropout=dropout, **kwargs)
