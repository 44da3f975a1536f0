"""A small MLP on the 88 eGeMAPS-layout functionals (`edge_ser.inputs.functionals`).

88 -> 64 -> 32 -> n_classes with ReLU and dropout, ~8K weights: the functionals already summarise the clip, so
a classifier this size is what the literature's SVM baselines correspond to (Schuller et al. 2009; Eyben et
al. 2016). Standardisation (per-value mean and std of the training split) is in the graph as `mean` / `std`
buffers, exactly as in `laq_mlp`, so LAQ + QAT, export and the device engines treat it like that model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from converters.models.laq_mlp import LaqMLP
from converters.quant.bitplan import BitPlan
from converters.quant.quantizers import dequantize
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


def functionals_linear(num_classes: int = 7, in_features: int = 88, **kwargs) -> FunctionalsMLP:
    """A linear classifier on the standardised functionals (no hidden layer): the 2-bit counterpart of the
    logistic-regression baseline, which is 1-2 points above the 2-bit MLP on the 327 extended functionals
    (docs/protocol.md, "A 2-bit linear model"). 327 x 7 weights + 7 biases."""
    kwargs.pop("hidden", None)
    return FunctionalsMLP(in_features, num_classes, hidden=(), **kwargs)


class _Branch(nn.Module):
    """One ensemble member without its standardisation (the ensemble standardises once for all members)."""

    def __init__(self, features: nn.Sequential, classifier: nn.Linear) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(z))


class FunctionalsEnsemble(nn.Module):
    """K functionals MLPs trained apart (one seed each), run side by side on the input standardised once, their
    logits averaged: `branches.<i>.features.*` / `branches.<i>.classifier` are member i's own layers, at its own
    bit widths, and the 1 / K of the average is folded into the classifiers' scales and biases. The ONNX graph is
    K Gemm / Relu chains from one input and an Add of their logits; the packed file stores each member's layers
    as that member stored them, so the ensemble's average bits are its members' (no zeros, no promoted widths).
    Built by `from_members` from the members' LAQ codes."""

    def __init__(
        self, in_features: int, num_classes: int, hidden: Sequence[int], members: int, dropout: float = 0.3
    ) -> None:
        super().__init__()
        if members < 2:
            raise ConfigError(f"FunctionalsEnsemble needs at least 2 members, got {members}")
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("std", torch.ones(in_features))
        self.members = members
        self.branches = nn.ModuleList()
        for _ in range(members):
            m = FunctionalsMLP(in_features, num_classes, hidden=hidden, dropout=dropout)
            self.branches.append(_Branch(m.features, m.classifier))

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample input shape by input name: the clip's functionals."""
        return {"functionals": (int(self.mean.numel()),)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        out = self.branches[0](z)
        for branch in self.branches[1:]:
            out = out + branch(z)
        return out

    @classmethod
    def from_members(
        cls, members: Sequence[tuple[LaqMLP, BitPlan, Mapping[str, tuple[np.ndarray, np.ndarray]]]]
    ) -> tuple[FunctionalsEnsemble, BitPlan, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """(model, bit plan, codes) of the ensemble of frozen members given as (model, plan, codes): member i's
        layer `name` becomes `branches.<i>.<name>` with its own codes and bits (the classifier's scales and bias
        divided by K, which averages the logits)."""
        if len(members) < 2:
            raise ConfigError(f"FunctionalsEnsemble needs at least 2 members, got {len(members)}")
        first = members[0][0]
        linears = [n for n, m in first.named_modules() if isinstance(m, nn.Linear)]
        for i, (m, _, codes) in enumerate(members):
            if not (torch.equal(m.mean, first.mean) and torch.equal(m.std, first.std)):
                raise ConfigError(
                    f"FunctionalsEnsemble: member {i} standardises its input differently from member 0 "
                    "(members must be trained on the same rows)"
                )
            missing = [n for n in linears if n not in codes]
            if missing or [n for n, x in m.named_modules() if isinstance(x, nn.Linear)] != linears:
                raise ConfigError(
                    f"FunctionalsEnsemble: member {i} is not a fully quantized MLP of member 0's layout "
                    f"(layers without codes: {missing})"
                )
        k = len(members)
        hidden = [first.get_submodule(n).out_features for n in linears[:-1]]
        model = cls(int(first.mean.numel()), first.classifier.out_features, hidden, k).eval()
        model.mean.copy_(first.mean)
        model.std.copy_(first.std)
        bits: dict[str, int] = {}
        params: dict[str, int] = {}
        codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for i, (member, plan, member_codes) in enumerate(members):
            for name in linears:
                own = f"branches.{i}.{name}"
                q, s = member_codes[name]
                bias = member.get_submodule(name).bias.detach()
                if name == "classifier":  # the average's 1 / k, exact on the codes
                    s, bias = np.asarray(s, np.float32) / np.float32(k), bias / k
                codes[own] = (np.asarray(q), np.asarray(s, np.float32))
                bits[own], params[own] = plan.bits[name], plan.params[name]
                layer = model.get_submodule(own)
                with torch.no_grad():
                    layer.weight.copy_(
                        dequantize(torch.as_tensor(codes[own][0]), torch.as_tensor(codes[own][1]))
                    )
                    layer.bias.copy_(bias)
        methods = "/".join(sorted({p.method for _, p, _ in members}))
        return (
            model,
            BitPlan(bits, params, f"{methods} per member, {k}-member ensemble", {"members": k}),
            codes,
        )
