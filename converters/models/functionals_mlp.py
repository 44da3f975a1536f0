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


class FunctionalsEnsemble(FunctionalsMLP):
    """K functionals MLPs trained apart (one seed each) as ONE plain MLP: their first layers stacked, the later
    layers block-diagonal (member i's units only see member i's), then a fixed `average` layer (codes 1, scale
    1 / K; its bias the mean of the members' classifier biases) that averages their logits. A Linear / ReLU chain
    that the packed file, onnxruntime and the numpy engine run as one MLP; TFLite int8 does not take it yet (the
    converter leaves the classifier op without a bias tensor; docs/protocol.md). Built by `from_members` from the
    members' LAQ codes: every member's weights are exactly its own (a layer stores the widest of its members' bit
    widths, and at least 2 bits where it holds the block-diagonal zeros, which 1-bit codes cannot)."""

    def __init__(
        self, in_features: int, num_classes: int, hidden: Sequence[int], members: int, dropout: float = 0.3
    ) -> None:
        super().__init__(
            in_features, num_classes * members, hidden=[h * members for h in hidden], dropout=dropout
        )
        self.members = members
        self.average = nn.Linear(num_classes * members, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.average(super().forward(x))

    @classmethod
    def from_members(
        cls, members: Sequence[tuple[LaqMLP, BitPlan, Mapping[str, tuple[np.ndarray, np.ndarray]]]]
    ) -> tuple[FunctionalsEnsemble, BitPlan, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """(model, bit plan, codes) of the ensemble of frozen members given as (model, plan, codes)."""
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
        hidden = [first.get_submodule(n).out_features for n in linears[:-1]]
        k = len(members)
        n_classes = first.classifier.out_features
        model = cls(int(first.mean.numel()), n_classes, hidden, k).eval()
        model.mean.copy_(first.mean)
        model.std.copy_(first.std)
        shared = torch.stack([m.classifier.bias.detach() for m, _, _ in members]).mean(0)
        bits: dict[str, int] = {}
        codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for j, name in enumerate(linears):
            parts = [c[name] for _, _, c in members]
            widest = max(p.bits[name] for _, p, _ in members)
            if j == 0:  # every member reads the same input: rows stacked
                q = np.concatenate([q for q, _ in parts])
            else:  # member i's rows read only member i's units
                q = np.zeros((sum(p.shape[0] for p, _ in parts), sum(p.shape[1] for p, _ in parts)), np.int8)
                r = c = 0
                for p, _ in parts:
                    q[r : r + p.shape[0], c : c + p.shape[1]] = p
                    r, c = r + p.shape[0], c + p.shape[1]
                widest = max(widest, 2)
            codes[name] = (q, np.concatenate([s for _, s in parts]).astype(np.float32))
            bits[name] = widest
            layer = model.get_submodule(name)
            biases = [m.get_submodule(name).bias.detach() for m, _, _ in members]
            if j == len(linears) - 1:  # the classifiers: their mean bias moves to `average`, which TFLite
                biases = [b - shared for b in biases]  # would leave without a bias tensor if it were all zero
            with torch.no_grad():
                layer.weight.copy_(
                    dequantize(torch.as_tensor(codes[name][0]), torch.as_tensor(codes[name][1]))
                )
                layer.bias.copy_(torch.cat(biases))
        q = np.tile(np.eye(n_classes, dtype=np.int8), (1, k))  # logit c of every member, each x 1 / k
        codes["average"] = (q, np.full(n_classes, 1.0 / k, np.float32))
        bits["average"] = 2
        with torch.no_grad():
            model.average.weight.copy_(dequantize(torch.as_tensor(q), torch.as_tensor(codes["average"][1])))
            model.average.bias.copy_(shared)
        params = {n: int(model.get_submodule(n).weight.numel()) for n in bits}
        methods = "/".join(sorted({p.method for _, p, _ in members}))
        plan = BitPlan(bits, params, f"{methods} per member, {k}-seed ensemble", {"members": k})
        return model, plan, codes
