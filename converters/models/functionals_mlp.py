"""A small MLP on the 88 eGeMAPS-layout functionals (`edge_ser.inputs.functionals`).

88 -> 64 -> 32 -> n_classes with ReLU and dropout, ~8K weights: the functionals already summarise the clip, so
a classifier this size is what the literature's SVM baselines correspond to (Schuller et al. 2009; Eyben et
al. 2016). Standardisation (per-value mean and std of the training split) is in the graph as `mean` / `std`
buffers, exactly as in `laq_mlp`, so LAQ + QAT, export and the device engines treat it like that model.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from converters.models.laq_mlp import LaqMLP
from converters.quant.bitplan import BitPlan
from edge_ser.errors import ConfigError


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


class FunctionalsEnsemble(nn.Module):
    """K functionals MLPs trained apart (one seed each) on the same rows, behind one standardisation, their
    logits averaged: a seed ensemble as one graph (Sub, Div, K x Gemm-Relu-Gemm-Relu-Gemm, Add, Div), so LAQ's
    per-member codes, the packed file and every engine see ordinary layers (`members.<i>.features.0` ...)."""

    def __init__(self, members: Sequence[LaqMLP]) -> None:
        super().__init__()
        if not members:
            raise ConfigError("FunctionalsEnsemble needs at least one member")
        first = members[0]
        for i, m in enumerate(members[1:], 1):
            if not (torch.equal(m.mean, first.mean) and torch.equal(m.std, first.std)):
                raise ConfigError(
                    f"FunctionalsEnsemble: member {i} standardises its input differently from member 0 "
                    "(members must be trained on the same rows)"
                )
        self.register_buffer("mean", first.mean.detach().clone())
        self.register_buffer("std", first.std.detach().clone())
        self.members = nn.ModuleList(
            nn.Sequential(OrderedDict(features=m.features, classifier=m.classifier)) for m in members
        )

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample input shape by input name: the clip's functionals."""
        return {"functionals": (int(self.mean.numel()),)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        out = self.members[0](z)
        for m in self.members[1:]:
            out = out + m(z)
        return out / len(self.members)


def member_key(i: int, layer: str) -> str:
    """The ensemble's name of member `i`'s layer `layer` (a `LaqMLP` layer name: features.0, classifier)."""
    return f"members.{i}.{layer}"


def ensemble_plan(plans: Sequence[BitPlan]) -> BitPlan:
    """One bit plan for the ensemble: each member's own plan under its layer names (average bits over all)."""
    bits, params = {}, {}
    for i, p in enumerate(plans):
        bits.update({member_key(i, n): b for n, b in p.bits.items()})
        params.update({member_key(i, n): c for n, c in p.params.items()})
    methods = sorted({p.method for p in plans})
    return BitPlan(bits, params, f"{'/'.join(methods)} per member", {"members": len(plans)})


def ensemble_codes(
    codes: Sequence[Mapping[str, tuple[np.ndarray, np.ndarray]]],
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The members' LAQ codes under the ensemble's layer names."""
    return {member_key(i, n): qs for i, c in enumerate(codes) for n, qs in c.items()}
