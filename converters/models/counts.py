"""How big and how costly a model is: its parameters, and its FLOPs counted on its exported graph.

FLOPs have one counter in this project, `edge_ser.flops`, which reads a graph (a bundle's on the device, the
export here): `count_model(model)` exports the model the way its bundle would be (`export_model`) and counts
that graph, so `edge-ser model`, the zoo and a bundle's manifest give the same figure by the same convention.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from edge_ser.flops import DENSE_OPS, GraphCount, count_graph


def count_params(model: nn.Module) -> int:
    """Trainable parameters (buffers such as the input mean / std are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_model(model: nn.Module) -> GraphCount:
    """The model's exported graph (batch 1, float32 weights) counted by `edge_ser.flops`."""
    from converters.export.onnx_export import export_model, graph_json, initializers

    was_training = model.training
    proto = export_model(model.eval())
    model.train(was_training)
    weights = {k: v for k, v in initializers(proto).items() if v.dtype == np.float32}
    return count_graph(graph_json(proto), weights)


def dense_rows(model: nn.Module, counts: GraphCount | None = None) -> list[dict[str, Any]]:
    """Per Conv / Gemm / MatMul node of the exported graph: name (the torch layer, or the node), op, input and
    output shape per sample, parameters (weight + bias of that layer) and FLOPs."""
    counts = counts if counts is not None else count_model(model)
    modules = dict(model.named_modules())
    rows = []
    for r in counts.layers:
        if r.op not in DENSE_OPS:
            continue
        m = modules.get(r.layer) if r.layer is not None else None
        rows.append(
            {
                "name": r.layer or r.name,
                "op": r.op,
                "in_shape": tuple(r.in_shapes[0][1:]) if r.in_shapes else (),
                "out_shape": tuple(r.out_shapes[0][1:]),
                "params": sum(p.numel() for p in m.parameters(recurse=False)) if m is not None else 0,
                "flops": r.flops,
            }
        )
    return rows


__all__ = ["count_model", "count_params", "dense_rows"]
