"""ONNX export: the float graph, its weight-free bundle form, its JSON mirror, and a QDQ int8 variant.

- `to_onnx`: torch -> ONNX (opset 17, dynamic batch, input "features" or named inputs, output "logits"), with the
  standardisation inside the graph, so the device feeds raw feature vectors.
- `externalize`: the same graph with every initializer's bytes removed and marked as external data in
  "weights.esq"; a bundle ships this (a few hundred bytes) and the device supplies the tensors unpacked from
  the packed file (onnxruntime's add_external_initializers).
- `export_model`: `to_onnx` with the model's own input shapes and fix-ups: how every model is exported.
- `fold_integer_constants`: a fix-up that evaluates integer shape arithmetic (e.g. the pads of `F.pad`).
- `graph_json`: the graph as the device reads it (the device's own ONNX reader on the serialized model).
- `qdq`: quantized weights stored as INT4 / INT8 initializers + per-channel DequantizeLinear, as onnxruntime
  runs it, for users who want one self-contained ONNX file.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from edge_ser.errors import ConfigError

OPSET = 17
INPUT, OUTPUT = "features", "logits"


def _onnx():
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - the host extra installs it
        from edge_ser.errors import MissingDependencyError

        raise MissingDependencyError("onnx", "host", "ONNX export") from e
    return onnx


def to_onnx(model: nn.Module, in_shape: tuple[int, ...] | Mapping[str, tuple[int, ...]]):
    """Export an eval-mode torch model to an onnx.ModelProto with a dynamic batch axis.

    `in_shape` is the per-sample shape of the one input "features", or {input name: per-sample shape} in the
    order of the model's forward arguments (e.g. av_cnn's {"faces": (6, 64, 64), "audio": (6, 40)}).
    Constant nodes become initializers: the numpy engine and the weight-free bundle form expect every
    constant tensor to be one. BatchNorm layers stay BatchNormalization nodes (not folded into the conv).
    """
    onnx = _onnx()
    model = model.eval()
    shapes = dict(in_shape) if isinstance(in_shape, Mapping) else {INPUT: tuple(in_shape)}
    args = tuple(torch.zeros((1, *s)) for s in shapes.values())
    axes = {n: {0: "batch"} for n in (*shapes, OUTPUT)}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice; dynamo needs onnxscript
        torch.onnx.export(
            model,
            args,
            buf,
            input_names=list(shapes),
            output_names=[OUTPUT],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
            # PRESERVE (the model is in eval mode already): EVAL would also run the exporter's eval peephole,
            # which folds a BatchNorm into the Conv before it under a new initializer name, so a quantized
            # conv weight would neither keep its `<layer>.weight` name nor stay on its b-bit grid
            training=torch.onnx.TrainingMode.PRESERVE,
        )
    proto = onnx.load_from_string(buf.getvalue())
    _constants_to_initializers(proto)
    onnx.checker.check_model(proto)
    return proto


def _constants_to_initializers(proto) -> None:
    """Move Constant nodes (e.g. Reshape target shapes) into the graph's initializers."""
    g = proto.graph
    keep = []
    for n in g.node:
        if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value":
            t = type(n.attribute[0].t)()
            t.CopyFrom(n.attribute[0].t)
            t.name = n.output[0]
            g.initializer.append(t)
        else:
            keep.append(n)
    del g.node[:]
    g.node.extend(keep)


def fold_integer_constants(proto) -> int:
    """Evaluate, in place, every node computed from integer initializers alone (shape arithmetic the legacy
    exporter leaves unfolded when it does not run in EVAL mode: e.g. the pads of `F.pad`, built by
    ConstantOfShape / Concat / Slice / Cast), making its outputs initializers; returns how many were folded.
    Float initializers (weights) are never inputs to a folded node, so weights keep their names and grids."""
    onnx = _onnx()
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    g = proto.graph
    known = {t.name: numpy_helper.to_array(t) for t in g.initializer if t.data_type == onnx.TensorProto.INT64}
    folded: dict[str, np.ndarray] = {}
    keep = []
    for node in g.node:  # nodes are in topological order, so one pass folds whole chains
        ins = [i for i in node.input if i]
        if ins and all(i in known for i in ins):
            outs = ReferenceEvaluator(node).run(None, {i: known[i] for i in ins})
            for name, value in zip(node.output, outs, strict=True):
                known[name] = folded[name] = np.asarray(value)
        else:
            keep.append(node)
    if not folded:
        return 0
    used = {i for n in keep for i in n.input} | {o.name for o in g.output}
    del g.node[:]
    g.node.extend(keep)
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in folded.items() if k in used)
    unused = [t for t in g.initializer if t.name not in used and t.data_type == onnx.TensorProto.INT64]
    for t in unused:
        g.initializer.remove(t)
    return len(folded)


def initializers(proto) -> dict[str, np.ndarray]:
    """The graph's initializers as numpy arrays, by name."""
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}


def externalize(proto, location: str = "weights.esq"):
    """A copy of the model whose float initializers carry no bytes, only an external-data reference to `location`.

    int64 initializers (Reshape target shapes) stay inline: onnxruntime's shape inference must read them when
    it builds the graph (see `edge_ser.bundle.load`).
    """
    onnx = _onnx()
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    for t in out.graph.initializer:
        if t.data_type == onnx.TensorProto.INT64:
            continue
        nbytes = int(np.prod(t.dims, dtype=np.int64)) * 4
        if t.data_type != onnx.TensorProto.FLOAT:
            raise ConfigError(f"initializer {t.name!r} is not float32; bundles carry float graphs")
        t.ClearField("raw_data")
        t.ClearField("float_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        del t.external_data[:]
        for k, v in (("location", location), ("offset", "0"), ("length", str(nbytes))):
            e = t.external_data.add()
            e.key, e.value = k, v
    return out


def graph_json(proto) -> dict:
    """The graph in the form every device-side consumer reads (the numpy engine, the FLOP counter), read from
    the serialized model by the device's own reader (`edge_ser.bundle.read_onnx_graph`: one implementation)."""
    from edge_ser.bundle.onnx_reader import read_onnx_graph

    return read_onnx_graph(proto.SerializeToString(), source=f"{proto.graph.name or 'model'}.onnx")


def export_model(model: nn.Module):
    """The one export route: `to_onnx(model, model.input_shapes())`, then the model's own `onnx_fixups(proto)`
    when it has one (squeezenet_lms rewrites its ceil-mode pools), checked by onnx."""
    proto = to_onnx(model, model.input_shapes())
    fixups = getattr(model, "onnx_fixups", None)
    if fixups is not None:
        fixups(proto)
        _onnx().checker.check_model(proto)
    return proto


def _pack_int4(q: np.ndarray) -> bytes:
    """ONNX INT4 raw data: two's-complement nibbles, element 2i in the low 4 bits of byte i (ONNX spec)."""
    nib = (np.asarray(q, dtype=np.int8).ravel() & 0x0F).astype(np.uint8)
    if nib.size % 2:
        nib = np.append(nib, np.uint8(0))
    return (nib[0::2] | (nib[1::2] << 4)).tobytes()


def qdq(
    proto, codes: dict[str, tuple[np.ndarray, np.ndarray]], weight_names: dict[str, str], bits: dict[str, int]
):
    """Replace each quantized float weight W by integer codes + per-channel scales -> DequantizeLinear -> W.

    Layers at <= 4 bits are stored as INT4 (two codes a byte; opset 21, which onnxruntime >= 1.20 runs),
    the others as INT8. `codes`: layer -> (int8 codes, float32 scales); `weight_names`: layer -> initializer.
    """
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(proto)
    g = out.graph
    int4 = any(bits[k] <= 4 for k in codes)
    keep = [t for t in g.initializer if t.name not in {weight_names[k] for k in codes}]
    new_inits, new_nodes = [], []
    for layer, (q, sc) in codes.items():
        w = weight_names[layer]
        if bits[layer] <= 4:
            qt = helper.make_tensor(f"{w}_quantized", TensorProto.INT4, q.shape, _pack_int4(q), raw=True)
            zp = helper.make_tensor(
                f"{w}_zero_point", TensorProto.INT4, sc.shape, _pack_int4(np.zeros(sc.shape)), raw=True
            )
        else:
            qt = numpy_helper.from_array(q.astype(np.int8), f"{w}_quantized")
            zp = numpy_helper.from_array(np.zeros(sc.shape, np.int8), f"{w}_zero_point")
        new_inits += [qt, numpy_helper.from_array(sc.astype(np.float32), f"{w}_scale"), zp]
        new_nodes.append(
            helper.make_node(
                "DequantizeLinear",
                [f"{w}_quantized", f"{w}_scale", f"{w}_zero_point"],
                [w],
                axis=0,
                name=f"{w}_dequantize",
            )
        )
    del g.initializer[:]
    g.initializer.extend(keep + new_inits)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(new_nodes + nodes)
    if int4:
        for op in out.opset_import:
            if op.domain in ("", "ai.onnx"):
                op.version = max(op.version, 21)
        out.ir_version = max(out.ir_version, 10)
    onnx.checker.check_model(out)
    return out
