"""A minimal ONNX (protobuf) reader: the graph a bundle's model.onnx holds, with numpy and the standard library.

`read_onnx_graph(data)` returns the graph in the dict form every device-side consumer reads (the numpy
engine, the FLOP counter, the profiler), and that the host exporter reads back from its own export:

    {"opset": 17,
     "inputs":  [{"name": "features", "shape": [None, 180], "dtype": "float32"}],   # None: an open axis
     "outputs": [{"name": "logits", "shape": [None, 7], "dtype": "float32"}],
     "initializers": ["mean", "std", "features.0.weight", ...],   # float32 tensors (a bundle's weights)
     "constants": {"/Constant_output_0": {"dtype": "int64", "shape": [2], "values": [-1, 512]}},
     "tensors": {name: {"dims", "data_type", "external", "location"}},   # every initializer as stored
     "nodes": [{"op": "Gemm", "domain": "", "name": "/fc/Gemm", "inputs": [...], "outputs": [...],
                "attrs": {"transB": 1, "alpha": 1.0}}]}

It is the one source of the graph: a bundle's manifest no longer carries a copy of it (older bundles that do
are read, and the copy is ignored). `check_graph` checks what an engine relies on: names defined before use,
each defined once, the graph outputs produced, sizes within limits. Attributes of type INT, FLOAT, STRING,
INTS, FLOATS and STRINGS are decoded; the others read as `UNSUPPORTED_ATTR`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np

from edge_ser.errors import BundleError
from edge_ser.schema import Checker

_ONNX_FLOAT, _ONNX_INT64 = 1, 7
ONNX_DTYPE_NAMES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
                    10: "float16", 11: "float64", 16: "bfloat16"}  # fmt: skip
MAX_NODES = 100_000
"""Nodes a graph may have (the largest zoo model has a few hundred)."""
MAX_ATTR_VALUES = 4096
"""Values one list attribute may have (kernel shapes and pads have a handful)."""
MAX_CONSTANT_VALUES = 1 << 16
"""Values one inline int64 constant may have (Reshape shapes have a few)."""


class _Unsupported:
    def __repr__(self) -> str:
        return "<tensor/graph attribute>"


UNSUPPORTED_ATTR = _Unsupported()
"""Value of an ONNX attribute this reader does not decode (TENSOR, GRAPH, SPARSE_TENSOR, TYPE_PROTO...);
an engine that meets it refuses the node (the exporter turns Constant nodes into initializers)."""


def _varint(buf: bytes, i: int, where: str) -> tuple[int, int]:
    result = shift = 0
    for _ in range(10):
        if i >= len(buf):
            raise BundleError(f"{where}: truncated protobuf (varint past the end)")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
    raise BundleError(f"{where}: malformed protobuf (varint longer than 10 bytes)")


def _fields(buf: bytes, where: str) -> Iterator[tuple[int, int, Any]]:
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i, where)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise BundleError(f"{where}: malformed protobuf (field number 0)")
        if wt == 0:
            v, i = _varint(buf, i, where)
        elif wt == 1 or wt == 5:
            size = 8 if wt == 1 else 4
            if i + size > n:
                raise BundleError(f"{where}: truncated protobuf (fixed field past the end)")
            v = buf[i : i + size]
            i += size
        elif wt == 2:
            length, i = _varint(buf, i, where)
            if i + length > n:
                raise BundleError(f"{where}: truncated protobuf (field of {length} bytes past the end)")
            v = buf[i : i + length]
            i += length
        else:
            raise BundleError(f"{where}: malformed protobuf (wire type {wt})")
        yield num, wt, v


def _str(v: Any, wt: int, where: str) -> str:
    if wt != 2:
        raise BundleError(f"{where}: malformed protobuf (string field with wire type {wt})")
    try:
        return bytes(v).decode("utf-8")
    except UnicodeDecodeError as e:
        raise BundleError(f"{where}: malformed protobuf (string is not UTF-8)") from e


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _ints(v: Any, wt: int, where: str) -> list[int]:
    """A repeated int64 field: one varint, or a packed run of them."""
    if wt == 0:
        return [_signed(v)]
    if wt != 2:
        raise BundleError(f"{where}: malformed protobuf (int field with wire type {wt})")
    out, i = [], 0
    while i < len(v):
        x, i = _varint(v, i, where)
        out.append(_signed(x))
    return out


def _floats(v: Any, wt: int, where: str) -> list[float]:
    if wt == 5:
        return [struct.unpack("<f", v)[0]]
    if wt != 2 or len(v) % 4:
        raise BundleError(f"{where}: malformed protobuf (float field)")
    return [float(x) for x in np.frombuffer(bytes(v), dtype="<f4")]


def read_onnx_graph(data: bytes, *, source: str = "model.onnx") -> dict[str, Any]:
    """The graph of an ONNX ModelProto (see the module doc for the form), structurally read.

    Raises:
        BundleError: naming `source`, when `data` is not a well-formed ONNX model, an initializer is neither
            float32 nor an inline int64 constant, or a graph input is not float32.
    """
    graph, opset = _model_parts(data, source)
    inputs, outputs, tensors, nodes = _graph_parts(graph, source)
    initializers, constants = _split_initializers(tensors, source)
    real_inputs = [x for x in inputs if x["name"] not in tensors]
    for x in real_inputs + outputs:
        if x["dtype"] != "float32":
            raise BundleError(f"{source}: graph input/output {x['name']!r} is {x['dtype']}, expected float32")
    return {
        "opset": opset,
        "inputs": real_inputs,
        "outputs": outputs,
        "initializers": initializers,
        "constants": constants,
        "tensors": tensors,
        "nodes": nodes,
    }


def _model_parts(data: bytes, where: str) -> tuple[bytes, int]:
    """A ModelProto's one graph (its bytes) and the opset of its default ONNX domain."""
    graph = None
    opset = None
    for num, wt, v in _fields(data, where):
        if num == 7 and wt == 2:
            if graph is not None:
                raise BundleError(f"{where}: two graphs in one model")
            graph = v
        elif num == 8 and wt == 2:  # opset_import
            domain, version = "", None
            for n2, w2, v2 in _fields(v, where):
                if n2 == 1:
                    domain = _str(v2, w2, where)
                elif n2 == 2 and w2 == 0:
                    version = _signed(v2)
            if domain in ("", "ai.onnx"):
                opset = version
    if graph is None:
        raise BundleError(f"{where}: not an ONNX model (no graph)")
    if opset is None:
        raise BundleError(f"{where}: no opset_import for the default ONNX domain")
    return graph, opset


def _graph_parts(graph: bytes, where: str) -> tuple[list, list, dict[str, dict[str, Any]], list]:
    """A GraphProto's inputs, outputs, initializers (by name) and nodes, in file order."""
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    tensors: dict[str, dict[str, Any]] = {}
    nodes: list[dict[str, Any]] = []
    for num, wt, v in _fields(graph, where):
        if num == 1 and wt == 2:
            if len(nodes) >= MAX_NODES:
                raise BundleError(f"{where}: more than {MAX_NODES} nodes")
            nodes.append(_read_node(v, where))
        elif num == 5 and wt == 2:
            t = _read_tensor(v, where)
            if t["name"] in tensors:
                raise BundleError(f"{where}: initializer {t['name']!r} appears twice")
            tensors[t["name"]] = t
        elif num in (11, 12) and wt == 2:
            (inputs if num == 11 else outputs).append(_read_value_info(v, where))
        elif num == 15:
            raise BundleError(f"{where}: sparse initializers are not supported")
    return inputs, outputs, tensors, nodes


def _split_initializers(tensors: dict[str, dict[str, Any]], where: str) -> tuple[list[str], dict[str, Any]]:
    """The float32 initializers (weights) by name, and the inline int64 ones as constants (their values are
    removed from `tensors`); any other initializer is refused."""
    initializers, constants = [], {}
    for name, t in tensors.items():
        vals = t.pop("values", None)
        if t["data_type"] == _ONNX_FLOAT:
            initializers.append(name)
        elif t["data_type"] == _ONNX_INT64 and vals is not None:
            constants[name] = {
                "dtype": "int64",
                "shape": list(t["dims"]),
                "values": vals.reshape(-1).tolist(),
            }
        else:
            kind = ONNX_DTYPE_NAMES.get(t["data_type"], t["data_type"])
            raise BundleError(
                f"{where}: initializer {name!r} is {kind}{' (external)' if t['external'] else ''}: a bundle graph "
                "holds float32 weights and inline int64 shape constants only"
            )
    return initializers, constants


def _read_value_info(buf: bytes, where: str) -> dict[str, Any]:
    """A ValueInfoProto: name, element type and shape (dim_value -> int, dim_param or unknown -> None)."""
    name, elem, shape = "", 0, []
    for num, wt, v in _fields(buf, where):
        if num == 1:
            name = _str(v, wt, where)
        elif num == 2 and wt == 2:  # TypeProto
            for n2, w2, v2 in _fields(v, where):
                if n2 == 1 and w2 == 2:  # tensor_type
                    for n3, w3, v3 in _fields(v2, where):
                        if n3 == 1 and w3 == 0:
                            elem = v3
                        elif n3 == 2 and w3 == 2:  # TensorShapeProto
                            shape = [_read_dim(v4, w4, where) for n4, w4, v4 in _fields(v3, where) if n4 == 1]
    return {"name": name, "shape": shape, "dtype": ONNX_DTYPE_NAMES.get(elem, f"type {elem}")}


def _read_dim(buf: Any, wt: int, where: str) -> int | None:
    if wt != 2:
        raise BundleError(f"{where}: malformed protobuf (shape dimension with wire type {wt})")
    for num, w, v in _fields(buf, where):
        if num == 1 and w == 0:
            return _signed(v)
    return None


def _read_node(buf: bytes, where: str) -> dict[str, Any]:
    node: dict[str, Any] = {"op": "", "domain": "", "name": "", "inputs": [], "outputs": [], "attrs": {}}
    for num, wt, v in _fields(buf, where):
        if num == 1:
            node["inputs"].append(_str(v, wt, where))
        elif num == 2:
            node["outputs"].append(_str(v, wt, where))
        elif num == 3:
            node["name"] = _str(v, wt, where)
        elif num == 4:
            node["op"] = _str(v, wt, where)
        elif num == 7:
            node["domain"] = _str(v, wt, where)
        elif num == 5 and wt == 2:
            name, value = _read_attr(v, where)
            node["attrs"][name] = value
    return node


def _read_attr(buf: bytes, where: str) -> tuple[str, Any]:
    name, atype = "", 0
    f = i = s = None
    floats: list[float] = []
    ints: list[int] = []
    strings: list[str] = []
    for num, wt, v in _fields(buf, where):
        if num == 1:
            name = _str(v, wt, where)
        elif num == 20 and wt == 0:
            atype = v
        elif num == 2:
            f = _floats(v, wt, where)[0] if wt == 5 else None
        elif num == 3 and wt == 0:
            i = _signed(v)
        elif num == 4:
            s = _str(v, wt, where) if wt == 2 else None
        elif num == 7:
            floats += _floats(v, wt, where)
        elif num == 8:
            ints += _ints(v, wt, where)
        elif num == 9:
            strings.append(_str(v, wt, where))
    value: Any = {1: f, 2: i, 3: s, 6: floats, 7: ints, 8: strings}.get(atype, UNSUPPORTED_ATTR)
    if value is None:
        value = UNSUPPORTED_ATTR
    return name, value


def _read_tensor(buf: bytes, where: str) -> dict[str, Any]:
    """A TensorProto: name, dims, data type, where its data is, and (inline int64, within the limit) values."""
    t: dict[str, Any] = {
        "name": "",
        "dims": [],
        "data_type": 0,
        "external": False,
        "location": None,
        "values": None,
    }
    raw = None
    int64_data: list[int] = []
    for num, wt, v in _fields(buf, where):
        if num == 1:
            t["dims"] += _ints(v, wt, where)
        elif num == 2 and wt == 0:
            t["data_type"] = v
        elif num == 7:
            int64_data += _ints(v, wt, where)
        elif num == 8:
            t["name"] = _str(v, wt, where)
        elif num == 9 and wt == 2:
            raw = bytes(v)
        elif num == 13 and wt == 2:
            key, value = _external_key(v, where)
            t["location"] = value if key == "location" else t["location"]
        elif num == 14 and wt == 0:
            t["external"] = v == 1
    if any(d < 0 for d in t["dims"]):
        raise BundleError(f"{where}: initializer {t['name']!r} has negative dims {t['dims']}")
    if not t["external"] and t["data_type"] == _ONNX_INT64:
        t["values"] = _int64_values(t, raw, int64_data, where)
    return t


def _external_key(buf: bytes, where: str) -> tuple[str, str]:
    """One StringStringEntryProto of a tensor's external_data: (key, value)."""
    key = value = ""
    for n2, w2, v2 in _fields(buf, where):
        if n2 == 1:
            key = _str(v2, w2, where)
        elif n2 == 2:
            value = _str(v2, w2, where)
    return key, value


def _int64_values(
    t: dict[str, Any], raw: bytes | None, int64_data: list[int], where: str
) -> np.ndarray | None:
    """An inline int64 tensor's values in its shape (None when its data does not fit its dims), refused above
    MAX_CONSTANT_VALUES before any of it is decoded."""
    count = math.prod(t["dims"])
    if count > MAX_CONSTANT_VALUES:
        raise BundleError(
            f"{where}: int64 initializer {t['name']!r} has {count} values (at most {MAX_CONSTANT_VALUES})"
        )
    if raw is not None and len(raw) == 8 * count:
        return np.frombuffer(raw, dtype="<i8").astype(np.int64).reshape(t["dims"])
    if len(int64_data) == count:
        return np.asarray(int64_data, dtype=np.int64).reshape(t["dims"])
    return None


def check_graph(graph: dict[str, Any], c: Checker) -> None:
    """What an engine relies on: opset in range, unique names, every node input defined before use (a graph
    input, initializer, constant or earlier output), every name defined once, attributes decoded and small,
    and every graph output produced. Problems go to `c` (its `where` names the model file)."""
    c.integer(graph["opset"], "opset", 1, 1000)
    for what in ("inputs", "outputs"):
        names = [x["name"] for x in graph[what]]
        if not names:
            c.problem(what, "the graph has none")
        c.unique(names, what)
        for x in graph[what]:
            if not x["name"] or not 1 <= len(x["shape"]) <= 8:
                c.problem(f"{what}[{x['name']!r}]", f"needs a name and 1 to 8 axes, got shape {x['shape']}")
    defined = {x["name"] for x in graph["inputs"]} | set(graph["tensors"])
    if not graph["nodes"]:
        c.problem("nodes", "the graph has none")
    for i, node in enumerate(graph["nodes"]):
        _check_node(c, i, node, defined)
    for x in graph["outputs"]:
        if x["name"] not in defined:
            c.problem("outputs", f"{x['name']!r} is not produced by any node")


def _check_node(c: Checker, i: int, node: dict[str, Any], defined: set[str]) -> None:
    """One node: an op type, an output, inputs defined before it, outputs defined nowhere else (added to
    `defined`), attributes finite and of bounded length."""
    p = f"node {i} ({node['op'] or '?'})"
    if not node["op"]:
        c.problem(p, "has no op type")
    if not any(node["outputs"]):
        c.problem(p, "names no output")
    for nm in node["inputs"]:
        if nm and nm not in defined:
            c.problem(p, f"input {nm!r} is not a graph input, initializer or an output of an earlier node")
    for nm in node["outputs"]:
        if nm and nm in defined:
            c.problem(p, f"output {nm!r} is already defined (each name is assigned once)")
        if nm:
            defined.add(nm)
    for k, v in node["attrs"].items():
        if isinstance(v, list) and len(v) > MAX_ATTR_VALUES:
            c.problem(p, f"attribute {k!r} has {len(v)} values (at most {MAX_ATTR_VALUES})")
        if isinstance(v, float) and not math.isfinite(v):
            c.problem(p, f"attribute {k!r} is {v}")


__all__ = ["MAX_NODES", "ONNX_DTYPE_NAMES", "UNSUPPORTED_ATTR", "check_graph", "read_onnx_graph"]
