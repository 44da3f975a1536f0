"""A float ONNX graph on the numpy engine without building a bundle: the parts of a Bundle the engine reads."""

from __future__ import annotations

from types import SimpleNamespace

from converters.export.onnx_export import graph_json, initializers
from edge_ser.engines.numpy_engine import NumpyEngine


class GraphBundle(SimpleNamespace):
    """What NumpyEngine reads from a Bundle, for a float graph (no packed weights, no build_bundle)."""

    def dequantized(self):
        return self.weights

    def constants(self):
        return {}


def graph_bundle(proto, num_classes: int, *, name: str = "test", graph: dict | None = None) -> GraphBundle:
    """`proto` (an onnx.ModelProto with its weights inline) as a bundle-like object; `graph` overrides the
    graph read from it (a test that damages a node on purpose)."""
    g = graph if graph is not None else graph_json(proto)
    return GraphBundle(
        graph=g,
        weights=initializers(proto),
        manifest={"model": {"name": name, "inputs": g["inputs"], "outputs": g["outputs"]}},
        source="<test>",
        name=name,
        num_classes=num_classes,
        normalization=None,
        normalized_input=None,
    )


def numpy_engine(proto, num_classes: int, **kw) -> NumpyEngine:
    """The numpy engine over a float ONNX graph."""
    return NumpyEngine(graph_bundle(proto, num_classes, **kw))
