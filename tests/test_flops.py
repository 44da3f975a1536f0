"""The FLOP / byte counter (edge_ser.flops): hand-computed figures, av_cnn's own count, stored-bit bytes, onnx-tool.

Every expected number below is worked out by hand from the convention in `edge_ser.flops.CONVENTION`
(conv / dense = 2 * MACs + 1 per output for a bias; element-wise ops 1 per output element; pooling 1 per
window element per output; weights at their stored bits; activations float32 read + written).

The independent counter is onnx-tool (pinned in requirements/test.txt), run on the same ONNX graph. Its
conventions differ from ours, and the tests pin each difference (onnx_tool/node.py, version 1.0.1):

- it counts MACs, not FLOPs: a Conv / Gemm costs out * (Ci / groups) * K MACs, NOT times 2;
- it adds the bias as one MAC per output (ADD_MACS), as we add it as one FLOP: so for a Conv / Gemm with a
  bias, ours = 2 * onnx-tool - outputs (the bias is not doubled in ours);
- Relu (CMP_MACS), MaxPool (prod(kernel) per output) and Sub / Add (ADD_MACS) cost what ours do;
- Div costs DIV_MACS = 4 per element (a reciprocal's x86 latency), ours 1;
- its "memory" is every initializer's bytes (at float32, its element size) + every node's OUTPUT bytes; ours
  also counts each node's activation INPUTS read, and weights at their stored (b-bit) width.
"""

from __future__ import annotations

import itertools
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from edge_ser.bundle import load_bundle
from edge_ser.errors import ConfigError
from edge_ser.flops import (
    CONVENTION,
    SUPPORTED_OPS,
    GraphCountError,
    WeightInfo,
    convention,
    count,
    count_graph,
    held_weight_infos,
    stored_bytes,
    weight_infos,
)
from edge_ser.inputs.vector import VectorKind

REPO = Path(__file__).resolve().parents[1]
AV_BUNDLE = REPO / "bundles" / "av_cnn"


# --------------------------------------------------------------------------------------------------------------
# hand-built graph JSON (numpy only: what a device has)
# --------------------------------------------------------------------------------------------------------------


def _node(op, inputs, outputs, **attrs):
    return {"op": op, "inputs": list(inputs), "outputs": list(outputs), "attrs": attrs}


def _graph(inputs, outputs, nodes, initializers, constants=None):
    g = {
        "opset": 17,
        "inputs": [{"name": n, "shape": s, "dtype": "float32"} for n, s in inputs.items()],
        "outputs": [{"name": n, "shape": s, "dtype": "float32"} for n, s in outputs.items()],
        "initializers": list(initializers),
        "nodes": nodes,
    }
    if constants:
        g["constants"] = {
            k: {"dtype": "int64", "shape": [len(v)], "values": list(v)} for k, v in constants.items()
        }
    return g


MLP = (180, 512, 128, 64, 7)
MLP_LAYERS = ("features.0", "features.3", "features.6", "classifier")  # as torch names LaqMLP's layers


def _mlp_graph() -> tuple[dict, dict[str, tuple[int, ...]]]:
    """The LAQ MLP as our exporter writes it: Sub, Div (standardise), then Gemm (transB=1) + Relu blocks."""
    nodes = [_node("Sub", ["features", "mean"], ["sub"]), _node("Div", ["sub", "std"], ["x0"])]
    shapes = {"mean": (180,), "std": (180,)}
    for j, (layer, (i, o)) in enumerate(zip(MLP_LAYERS, itertools.pairwise(MLP), strict=True)):
        shapes[f"{layer}.weight"], shapes[f"{layer}.bias"] = (o, i), (o,)
        out = f"g{j}" if j < 3 else "logits"
        nodes.append(_node("Gemm", [f"x{j}", f"{layer}.weight", f"{layer}.bias"], [out], transB=1))
        if j < 3:
            nodes.append(_node("Relu", [out], [f"x{j + 1}"]))
    return _graph({"features": [None, 180]}, {"logits": [None, 7]}, nodes, shapes), shapes


def test_laq_mlp_hand_counted_float32():
    g, shapes = _mlp_graph()
    c = count_graph(g, {k: WeightInfo(s) for k, s in shapes.items()})
    dense = [2 * 180 * 512 + 512, 2 * 512 * 128 + 128, 2 * 128 * 64 + 64, 2 * 64 * 7 + 7]
    assert dense == [184_832, 131_200, 16_448, 903]
    assert [r.flops for r in c.layers if r.op == "Gemm"] == dense
    assert c.dense_flops == 333_383
    # + Sub 180 + Div 180 + Relu 512 + 128 + 64
    assert c.flops == 333_383 + 180 + 180 + 512 + 128 + 64 == 334_447
    params = 180 * 512 + 512 + 512 * 128 + 128 + 128 * 64 + 64 + 64 * 7 + 7
    assert params == 167_047
    assert c.weight_bytes == 4 * (params + 2 * 180) == 669_628
    # activations (float32) read + written per node: Sub 180+180, Div 180+180, Gemm 180+512, Relu 512+512,
    # Gemm 512+128, Relu 128+128, Gemm 128+64, Relu 64+64, Gemm 64+7
    assert c.activation_bytes == 4 * (360 + 360 + 692 + 1024 + 640 + 256 + 192 + 128 + 71) == 14_892
    assert c.intensity == pytest.approx(334_447 / (669_628 + 14_892))
    assert c.input_shapes == {"features": (1, 180)}
    assert c.by_layer()["features.0"].out_shapes == ((1, 512),)
    assert c.by_layer()["features.3"].in_shapes == ((1, 512),)


def test_laq_mlp_bytes_at_stored_bits():
    g, shapes = _mlp_graph()
    bits = {"features.0": 2, "features.3": 3, "features.6": 4, "classifier": 8}
    w = {k: WeightInfo(s, bits.get(k.removesuffix(".weight"), 32) if k.endswith(".weight") else 32)
         for k, s in shapes.items()}  # fmt: skip
    c = count_graph(g, w)
    layer = c.by_layer()
    # codes ceil(n * b / 8) + 4 bytes of scale per output channel; + the float32 bias
    assert layer["features.0"].weight_bytes == 512 * 180 * 2 // 8 + 4 * 512 + 4 * 512 == 27_136
    assert layer["features.3"].weight_bytes == 128 * 512 * 3 // 8 + 4 * 128 + 4 * 128 == 25_600
    assert layer["features.6"].weight_bytes == 64 * 128 * 4 // 8 + 4 * 64 + 4 * 64 == 4_608
    assert layer["classifier"].weight_bytes == 7 * 64 + 4 * 7 + 4 * 7 == 504
    assert [layer[k].bits for k in MLP_LAYERS] == [2, 3, 4, 8]
    assert c.weight_bytes == 27_136 + 25_600 + 4_608 + 504 + 2 * 4 * 180 == 59_288  # + mean, std
    assert c.flops == 334_447  # FLOPs do not depend on the storage


def _small_cnn_graph() -> tuple[dict, dict[str, tuple[int, ...]]]:
    """[1, 3, 16, 16] -> conv 3x3 8 (pad 1) -> relu -> maxpool 2 -> conv 3x3 16 (stride 2, pad 1, groups 2)
    -> relu -> flatten -> dense 10."""
    shapes = {"c1.weight": (8, 3, 3, 3), "c1.bias": (8,), "c2.weight": (16, 4, 3, 3), "c2.bias": (16,),
              "fc.weight": (10, 256), "fc.bias": (10,)}  # fmt: skip
    nodes = [
        _node("Conv", ["x", "c1.weight", "c1.bias"], ["y1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        _node("Relu", ["y1"], ["r1"]),
        _node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        _node("Conv", ["p1", "c2.weight", "c2.bias"], ["y2"], group=2, strides=[2, 2], pads=[1, 1, 1, 1]),
        _node("Relu", ["y2"], ["r2"]),
        _node("Flatten", ["r2"], ["f"], axis=1),
        _node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], transB=1),
    ]
    return _graph({"x": [None, 3, 16, 16]}, {"logits": [None, 10]}, nodes, shapes), shapes


# conv1: 8 x 16 x 16 = 2048 outputs, 3 * 9 MACs each; conv2: 16 x 4 x 4 = 256 outputs ((8 + 2 - 3) // 2 + 1 = 4),
# (8 / 2 groups) * 9 MACs each; dense 256 -> 10
SMALL_CNN_FLOPS = [
    2 * 2048 * 3 * 9 + 2048,  # conv1 = 112,640
    2048,  # relu
    512 * 4,  # maxpool: 8 x 8 x 8 outputs x 4 window elements
    2 * 256 * 4 * 9 + 256,  # conv2 = 18,688
    256,  # relu
    0,  # flatten
    2 * 256 * 10 + 10,  # dense = 5,130
]
SMALL_CNN_WEIGHT_BYTES = 4 * (8 * 27 + 8 + 16 * 36 + 16 + 2560 + 10)  # float32: 13,544
# read + written per node: conv1 768 + 2048, relu 2048 + 2048, pool 2048 + 512, conv2 512 + 256, relu 256 + 256,
# flatten 256 + 256, dense 256 + 10
SMALL_CNN_ACTIVATION_BYTES = 4 * (2816 + 4096 + 2560 + 768 + 512 + 512 + 266)  # 46,120


def test_small_cnn_hand_counted():
    g, shapes = _small_cnn_graph()
    c = count_graph(g, {k: WeightInfo(s) for k, s in shapes.items()})
    assert [r.flops for r in c.layers] == SMALL_CNN_FLOPS
    assert c.flops == sum(SMALL_CNN_FLOPS) == 140_810
    assert c.dense_flops == 112_640 + 18_688 + 5_130 == 136_458
    assert c.weight_bytes == SMALL_CNN_WEIGHT_BYTES == 13_544
    assert c.activation_bytes == SMALL_CNN_ACTIVATION_BYTES == 46_120
    assert [r.out_shapes[0] for r in c.layers] == [
        (1, 8, 16, 16), (1, 8, 16, 16), (1, 8, 8, 8), (1, 16, 4, 4), (1, 16, 4, 4), (1, 256), (1, 10),
    ]  # fmt: skip
    assert [r.layer for r in c.layers] == ["c1", None, None, "c2", None, None, "fc"]
    # batch 4: everything but the weights scales by 4
    c4 = count_graph(g, {k: WeightInfo(s) for k, s in shapes.items()}, batch=4)
    assert c4.flops == 4 * c.flops and c4.activation_bytes == 4 * c.activation_bytes
    assert c4.weight_bytes == c.weight_bytes


# a graph touching every other rule; per node: expected output shape and FLOPs (by hand)
ZOO_WEIGHTS = {
    "bn.s": (4,), "bn.b": (4,), "bn.m": (4,), "bn.v": (4,),
    "w1": (8, 2, 3, 3), "b1": (8,), "wm": (8, 6), "wg": (12, 3), "bg": (3,),
}  # fmt: skip
ZOO_CONSTANTS = {"shape": [1, 8], "ax1": [1]}
ZOO = [
    # op, inputs, outputs, attrs, out shape, FLOPs
    ("BatchNormalization", ["x", "bn.s", "bn.b", "bn.m", "bn.v"], ["bn"], {}, (1, 4, 10, 10), 2 * 400),
    # grouped dilated conv: padded 14, span 2 * 2 + 1 = 5 -> 10; 800 outputs x (4 / 2) x 9 MACs
    ("Conv", ["bn", "w1", "b1"], ["c"], {"group": 2, "dilations": [2, 2], "pads": [2, 2, 2, 2]},
     (1, 8, 10, 10), 2 * 800 * 2 * 9 + 800),
    # ceil_mode: ceil((10 - 3) / 2) + 1 = 5 (the last window starts at 8 < 10: kept); 200 outputs x 9
    ("AveragePool", ["c"], ["a"], {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
     (1, 8, 5, 5), 200 * 9),
    ("GlobalAveragePool", ["a"], ["gap"], {}, (1, 8, 1, 1), 200),
    ("Reshape", ["gap", "shape"], ["flat"], {}, (1, 8), 0),
    ("MatMul", ["flat", "wm"], ["mm"], {}, (1, 6), 2 * 8 * 6),
    ("Transpose", ["a"], ["t"], {"perm": [0, 2, 3, 1]}, (1, 5, 5, 8), 0),
    ("MatMul", ["t", "wm"], ["mm2"], {}, (1, 5, 5, 6), 2 * 25 * 8 * 6),
    ("ReduceMean", ["mm2"], ["red"], {"axes": [1, 2], "keepdims": 0}, (1, 6), 150),
    ("Add", ["mm", "red"], ["add"], {}, (1, 6), 6),
    ("Unsqueeze", ["add", "ax1"], ["u"], {}, (1, 1, 6), 0),
    ("Squeeze", ["u", "ax1"], ["sq"], {}, (1, 6), 0),
    ("Concat", ["sq", "mm"], ["cat"], {"axis": 1}, (1, 12), 0),
    # 2 * 12 * 3 MACs + 3 bias + 3 for alpha != 1
    ("Gemm", ["cat", "wg", "bg"], ["gm"], {"alpha": 0.5}, (1, 3), 2 * 12 * 3 + 3 + 3),
    ("Sum", ["gm", "gm", "gm"], ["s3"], {}, (1, 3), 2 * 3),
    ("Softmax", ["s3"], ["sm"], {"axis": -1}, (1, 3), 3 * 3),
    ("Sigmoid", ["sm"], ["y"], {}, (1, 3), 3),
]  # fmt: skip


def _zoo_graph() -> dict:
    nodes = [_node(op, i, o, **a) for op, i, o, a, _, _ in ZOO]
    return _graph({"x": [None, 4, 10, 10]}, {"y": [None, 3]}, nodes, ZOO_WEIGHTS, ZOO_CONSTANTS)


def test_every_rule_hand_counted():
    c = count_graph(_zoo_graph(), {k: WeightInfo(s) for k, s in ZOO_WEIGHTS.items()})
    assert [r.op for r in c.layers] == [z[0] for z in ZOO]
    assert [r.out_shapes[0] for r in c.layers] == [z[4] for z in ZOO]
    assert [r.flops for r in c.layers] == [z[5] for z in ZOO]
    assert c.flops == 35_148
    # constants (Reshape shape, axes) are shape metadata: no bytes, not activations
    reshape = c.layers[4]
    assert reshape.weight_bytes == 0 and reshape.activation_bytes == 4 * (8 + 8) and reshape.weights == ()
    assert c.layers[0].weight_bytes == 4 * 16 and c.layers[0].in_shapes == ((1, 4, 10, 10),)


def test_zoo_shapes_match_onnxruntime():
    """Shape inference against onnxruntime running the same graph (every intermediate made an output)."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.random(s, dtype=np.float32) + 0.5, k) for k, s in ZOO_WEIGHTS.items()
    ]
    inits += [numpy_helper.from_array(np.asarray(v, np.int64), k) for k, v in ZOO_CONSTANTS.items()]
    nodes = [helper.make_node(op, i, o, **a) for op, i, o, a, _, _ in ZOO]
    outs = [helper.make_tensor_value_info(z[2][0], TensorProto.FLOAT, None) for z in ZOO]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4, 10, 10])
    model = helper.make_model(
        helper.make_graph(nodes, "zoo", [x], outs, inits), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": rng.random((1, 4, 10, 10), dtype=np.float32)})
    assert [tuple(a.shape) for a in got] == [z[4] for z in ZOO]


def test_stored_bytes_rule():
    assert stored_bytes((7, 3), 3) == math.ceil(21 * 3 / 8) + 4 * 7 == 36  # padded to a whole byte
    assert stored_bytes((16, 6, 3, 3), 1) == 864 // 8 + 64
    assert stored_bytes((5,), 32) == 20 and stored_bytes((5,), 16) == 10
    with pytest.raises(GraphCountError, match="bits=12"):
        stored_bytes((4,), 12)
    from edge_ser.packed import Tensor

    codes, scales = np.ones((7, 3), np.int8), np.full(7, 0.5, np.float32)
    assert WeightInfo.of(Tensor.quantized("w", codes, scales, 3)).nbytes == stored_bytes((7, 3), 3)
    half = Tensor.quantized("w", codes, scales, 3, scale_bits=16)  # float16 scales: 2 bytes per channel
    assert WeightInfo.of(half).nbytes == stored_bytes((7, 3), 3) - 2 * 7 == half.payload_bytes()


def test_errors_name_the_node_and_the_problem():
    g, shapes = _small_cnn_graph()
    w = {k: WeightInfo(s) for k, s in shapes.items()}
    bad = json.loads(json.dumps(g))
    bad["nodes"][1]["op"] = "Swish"
    with pytest.raises(GraphCountError, match=r"graph node 1 \(Swish\): op 'Swish' is not supported .*Conv"):
        count_graph(bad, w)
    assert issubclass(GraphCountError, ConfigError) and "Gemm" in SUPPORTED_OPS
    with pytest.raises(GraphCountError, match="'fc.bias' of the graph has no weight entry"):
        count_graph(g, {k: v for k, v in w.items() if k != "fc.bias"})
    bad = json.loads(json.dumps(g))
    bad["nodes"][6]["attrs"] = {}  # no transB: [1, 256] x [10, 256]
    with pytest.raises(
        GraphCountError, match=r"graph node 6 \(Gemm\): A \[1, 256\] and B \[10, 256\] do not"
    ):
        count_graph(bad, w)
    with pytest.raises(
        GraphCountError, match=r"graph node 0 \(Conv\): input has 3 channels, the weight expects 4"
    ):
        count_graph(g, {**w, "c1.weight": WeightInfo((8, 4, 3, 3))})
    with pytest.raises(
        GraphCountError, match=r"input 'x': shape \[1, 4, 16, 16\] does not fit .*\[None, 3, 16, 16\]"
    ):
        count_graph(g, w, {"x": (1, 4, 16, 16)})
    with pytest.raises(GraphCountError, match="not graph inputs"):
        count_graph(g, w, {"faces": (1, 3, 16, 16)})
    free = {**g, "inputs": [{"name": "x", "shape": [None, 3, None, None], "dtype": "float32"}]}
    with pytest.raises(GraphCountError, match=r"dynamic axes \[2, 3\] besides the batch; give its shape"):
        count_graph(free, w)
    with pytest.raises(
        GraphCountError, match=r"graph node 2 \(MaxPool\): spatial axis 0 of size 1 .* smaller"
    ):
        count_graph(free, w, {"x": (1, 3, 1, 1)})
    runtime = _graph(
        {"x": [None, 6], "s": [3]}, {"y": [None, 2, 3]}, [_node("Reshape", ["x", "s"], ["y"])], []
    )
    with pytest.raises(GraphCountError, match=r"Reshape shape \(input 's'\) is computed at run time"):
        count_graph(runtime, {})
    dyn = _graph({"x": [None, 6]}, {"y": [None, 2, 3]}, [_node("Reshape", ["x", "s"], ["y"])], [])
    ok = count_graph(dyn, {}, constants={"s": np.array([-1, 2, 3])})
    assert ok.layers[0].out_shapes == ((1, 2, 3),)
    with pytest.raises(GraphCountError, match=r"graph output 'y': shape inference gives \[1, 3, 2\]"):
        count_graph(dyn, {}, constants={"s": np.array([-1, 3, 2])})


def test_report_states_the_convention():
    g, shapes = _small_cnn_graph()
    c = count_graph(g, {k: WeightInfo(s) for k, s in shapes.items()})
    text = c.report()
    assert CONVENTION in text and "140,810" in text and str(c) == text
    s = c.summary()
    assert s["convention"] == CONVENTION and s["flops"] == 140_810 and s["weight_bytes"] == 13_544
    assert s["by_op"]["Conv"] == {"nodes": 2, "flops": 131_328, "weight_bytes": 896 + 2368,
                                  "activation_bytes": 4 * (2816 + 768)}  # fmt: skip
    assert json.loads(json.dumps(c.to_dict()))["layers"][0]["flops"] == 112_640
    assert "2*Yh*Yw*(Ci/groups)*Co*Kh*Kw + Yh*Yw*Co" in CONVENTION and "2*in*out + out" in CONVENTION


# --------------------------------------------------------------------------------------------------------------
# a shipped LAQ bundle: bytes at stored bits, checked against the .esq file itself
# --------------------------------------------------------------------------------------------------------------


def _esq_block_bytes(data: bytes) -> dict[str, int]:
    """Per tensor, scales + payload lengths, read straight from the .esq tensor table (docs/packed-format.md)."""
    header = struct.Struct("<8sHHIQIIQQQQ32s")
    entry = struct.Struct("<HBBIQQQQ")
    magic, _, _, _, _, n, _, table_at, _, _, _, _ = header.unpack_from(data, 0)
    assert magic == b"EDGESERQ"
    out, pos = {}, table_at
    for _ in range(n):
        name_len, _, ndim, _, _, sc_len, _, pl_len = entry.unpack_from(data, pos)
        name_at = pos + entry.size + 8 * ndim
        out[data[name_at : name_at + name_len].decode()] = sc_len + pl_len
        pos += -(-(entry.size + 8 * ndim + name_len) // 8) * 8
    return out


@pytest.mark.skipif(not AV_BUNDLE.is_dir(), reason="bundles/av_cnn is not in this checkout")
def test_shipped_av_bundle_bytes_at_stored_bits():
    b = load_bundle(AV_BUNDLE)
    c = count(b)
    on_disk = _esq_block_bytes((AV_BUNDLE / "weights.esq").read_bytes())
    assert set(on_disk) == set(b.graph["initializers"])
    assert (
        c.weight_bytes
        == sum(on_disk.values())
        == sum(t.payload_bytes() for t in b.weights().tensors.values())
    )
    assert c.weight_bytes == 16_160  # vs 4 * 69,975 = 279,900 bytes at float32
    for r in c.layers:
        assert r.weight_bytes == sum(on_disk[w] for w in r.weights)
    # video.3 is 3-bit: 32 * 16 * 9 * 3 bits = 1,728 bytes + 32 scales * 4 + 32 biases * 4
    layer = c.by_layer()
    assert layer["video.3"].bits == 3 and layer["video.3"].weight_bytes == 1728 + 128 + 128
    assert {k: r.bits for k, r in layer.items()} == b.manifest["bitplan"]["bits"]
    # the manifest's per-layer figures (written by the exporter before this counter existed) agree
    assert {r["name"]: (r["flops"], r["bytes"]) for r in b.manifest["layers"]} == {
        k: (r.flops, r.weight_bytes) for k, r in layer.items()
    }
    assert c.dense_flops == 19_948_663 and c.flops == 20_142_887
    assert c.activation_bytes == 1_903_580
    assert c.intensity == pytest.approx(20_142_887 / (16_160 + 1_903_580))


@pytest.mark.skipif(not AV_BUNDLE.is_dir(), reason="bundles/av_cnn is not in this checkout")
def test_module_docstring_example_is_av_cnns_count():
    """The example at the top of edge_ser.flops shows av_cnn's totals; it said 16,774 weight bytes after the
    bundle's count had become 16,160 (a review): it must print what count() gives."""
    import re

    import edge_ser.flops as flops_module

    shown = re.search(r"round\(c\.intensity, 2\)\n\s+\(([^)]*)\)", flops_module.__doc__)
    assert shown, "the docstring's example output is missing"
    c = count(load_bundle(AV_BUNDLE))
    got = (c.flops, c.dense_flops, c.weight_bytes, c.activation_bytes, round(c.intensity, 2))
    assert tuple(float(v) for v in shown.group(1).split(",")) == got


SHIPPED = sorted(p.parent for p in (REPO / "bundles").glob("*/model.onnx"))


def _independent_recount(path: Path) -> list[tuple[str, int]]:
    """(op, FLOPs) per node from the ONNX file itself: onnx's own shape inference (batch 1) and the convention
    written out again here, not edge_ser.flops's rules: an independent check of the shipped bundles."""
    onnx = pytest.importorskip("onnx")
    m = onnx.load(str(path), load_external_data=False)
    for i in m.graph.input:
        for d in i.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.dim_value = 1
    m = onnx.shape_inference.infer_shapes(m)
    shape = {t.name: list(t.dims) for t in m.graph.initializer}
    for vi in [*m.graph.input, *m.graph.value_info, *m.graph.output]:
        shape[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    copies = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Identity", "Dropout"}
    per_element = {"BatchNormalization": 2, "LayerNormalization": 7, "Softmax": 3, "LogSoftmax": 3}
    out = []
    for n in m.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        y = math.prod(shape[n.output[0]])
        bias = y if len(n.input) > 2 and n.input[2] else 0
        if n.op_type == "Conv":  # Ci / groups from the input, kernel from the weight
            x, w = shape[n.input[0]], shape[n.input[1]]
            f = 2 * y * (x[1] // attrs.get("group", 1)) * math.prod(w[2:]) + bias
        elif n.op_type == "Gemm":
            a = shape[n.input[0]]
            f = 2 * y * (a[0] if attrs.get("transA", 0) else a[1]) + bias
        elif n.op_type == "MatMul":
            f = 2 * y * shape[n.input[0]][-1]
        elif n.op_type in ("MaxPool", "AveragePool"):
            f = y * math.prod(attrs["kernel_shape"])
        elif n.op_type.startswith(("Global", "Reduce")):
            f = math.prod(shape[n.input[0]])
        elif n.op_type in per_element:
            f = per_element[n.op_type] * y
        else:
            f = 0 if n.op_type in copies else y
        out.append((n.op_type, f))
    return out


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_bundles_per_node_flops_match_an_independent_recount(path):
    """Every shipped bundle (grouped and depthwise convs in face_fer, LayerNorm / attention MatMul / Softmax /
    ReduceMean in the tiny transformer, pools, MLPs), node by node, and the manifest's totals."""
    b = load_bundle(path)
    c = count(b)
    assert [(r.op, r.flops) for r in c.layers] == _independent_recount(path / "model.onnx")
    assert b.manifest["flops"]["flops"] == c.flops and b.manifest["flops"]["weight_bytes"] == c.weight_bytes


def test_convention_states_the_scale_bytes_the_counter_uses():
    """The counter takes a packed tensor's scales as stored (float16: 2 bytes), and the text must say so."""
    assert "4 bytes per output-channel scale" not in CONVENTION
    assert "4 bytes as float32, 2 as float16" in CONVENTION and convention() == CONVENTION


@pytest.mark.skipif(not AV_BUNDLE.is_dir(), reason="bundles/av_cnn is not in this checkout")
def test_counting_weights_as_an_engine_holds_them():
    """An engine unpacks the b-bit codes at load: float32 engines read 4 bytes a weight, int8 kernels 1 byte +
    a float32 scale per output channel (biases int32), with int8 activations."""
    b = load_bundle(AV_BUNDLE)
    stored, f32 = count(b), count(b, held_bytes=4)
    n_values = sum(math.prod(t.shape) for t in b.weights().tensors.values())
    assert f32.flops == stored.flops and f32.weight_bytes == 4 * n_values == 279_900
    assert f32.activation_bytes == stored.activation_bytes and "float32: 4 bytes a value" in f32.convention
    i8 = count(b, held_bytes=1, activation_bytes=1)
    infos = held_weight_infos(weight_infos(b.weights()), 1)
    conv = infos["video.3.weight"]
    assert conv.nbytes == 32 * 16 * 9 + 4 * 32 and infos["video.3.bias"].nbytes == 4 * 32
    assert i8.weight_bytes == sum(w.nbytes for w in infos.values())
    assert i8.activation_bytes * 4 == stored.activation_bytes and "activations int8" in i8.convention
    with pytest.raises(GraphCountError, match="held_bytes=3"):
        held_weight_infos(weight_infos(b.weights()), 3)


# --------------------------------------------------------------------------------------------------------------
# host side: exported torch models, av_cnn's own count, the bundle manifest, onnx-tool
# --------------------------------------------------------------------------------------------------------------


def _export(model, shapes):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from converters.export.onnx_export import graph_json, initializers, to_onnx

    proto = to_onnx(model.eval(), shapes)
    arrays = initializers(proto)
    ints = {k: v for k, v in arrays.items() if v.dtype.kind in "iu"}
    return proto, count_graph(graph_json(proto), weight_infos(arrays), constants=ints)


def _small_cnn_torch():
    torch = pytest.importorskip("torch")
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2), nn.ReLU(), nn.Flatten(1), nn.Linear(256, 10),
    )  # fmt: skip


def test_exported_models_match_the_hand_counts():
    from converters.models import laq_mlp

    _, c = _export(laq_mlp(), (180,))
    assert (c.flops, c.dense_flops, c.weight_bytes, c.activation_bytes) == (334_447, 333_383, 669_628, 14_892)
    _, c = _export(_small_cnn_torch(), {"x": (3, 16, 16)})
    assert [r.flops for r in c.layers] == SMALL_CNN_FLOPS
    assert (c.weight_bytes, c.activation_bytes) == (SMALL_CNN_WEIGHT_BYTES, SMALL_CNN_ACTIVATION_BYTES)


AV_VARIANTS = [
    {"mode": "fused"},
    {"mode": "audio"},
    {"mode": "video"},
    {"mode": "fused", "video_padding": 1},
    {"mode": "fused", "frame_fusion": "shared"},  # Reshape [B*6, 1, 64, 64] with an int64 constant shape
    {"mode": "video", "frame_fusion": "shared", "video_padding": 1},
]


@pytest.mark.parametrize("variant", AV_VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
def test_av_cnn_layers_by_the_convention(variant):
    """Every conv / dense layer of av_cnn's exported graph costs 2*MAC + one op per output (the bias), from
    the node's own shapes: the one counter that `edge-ser model`, the zoo and the manifests use."""
    from converters.models.av_cnn import av_cnn

    model = av_cnn(**variant)
    proto, c = _export(model, model.input_shapes())
    modules = dict(model.named_modules())
    for name, r in c.by_layer().items():
        w = modules[name].weight
        out = math.prod(r.out_shapes[0])
        macs = out * math.prod(
            w.shape[1:]
        )  # per output: in channels (/ groups) x kernel taps, or in_features
        assert r.flops == 2 * macs + out, (name, r.flops, macs)
    assert c.dense_flops == sum(r.flops for r in c.by_layer().values())


def test_av_cnn_default_totals():
    from converters.models.av_cnn import av_cnn

    got = {}
    for mode in ("fused", "audio", "video"):
        model = av_cnn(mode)
        _, c = _export(model, model.input_shapes())
        got[mode] = (c.flops, c.dense_flops, c.weight_bytes, c.activation_bytes)
    # fused = video + audio branches + head (16 from 2496 inputs), at float32 weights
    assert got == {
        "fused": (20_142_887, 19_948_663, 279_900, 1_903_580),
        "audio": (76_583, 75_799, 36_380, 13_148),
        "video": (20_066_567, 19_873_111, 244_060, 1_870_748),
    }


def test_bundle_manifest_carries_the_counts(tmp_path):
    """build_bundle writes layers (FLOPs, stored bytes) and the `flops` block from this counter; the device
    recounts the same from the loaded bundle."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from converters.export.bundle import build_bundle
    from converters.models import laq_mlp
    from converters.quant import BitPlan, freeze
    from edge_ser.features import FeatureSpec

    torch.manual_seed(0)
    model = laq_mlp()
    plan = BitPlan.uniform(model, 4, method="test")
    for layer, bits in zip(MLP_LAYERS, (2, 3, 1, 8), strict=True):
        plan = plan.with_bits(layer, bits)
    frozen, codes = freeze(model.eval(), plan)
    path = build_bundle(
        tmp_path / "b", frozen, plan, codes, name="laq_mlp", labels=[f"c{i}" for i in range(7)],
        kind=VectorKind(FeatureSpec()), accuracy={"test": 0.5, "dataset": "unit", "split": {"kind": "unit"}})  # fmt: skip
    b = load_bundle(path)
    m = b.manifest
    c = count(b)
    assert m["flops"] == json.loads(json.dumps(c.summary()))
    assert m["flops"]["convention"] == CONVENTION and m["flops"]["flops"] == 334_447
    expect_bytes = [
        512 * 180 * 2 // 8 + 4 * 512 + 4 * 512,
        128 * 512 * 3 // 8 + 4 * 128 + 4 * 128,
        64 * 128 * 1 // 8 + 4 * 64 + 4 * 64,
        7 * 64 + 4 * 7 + 4 * 7,
    ]
    assert [r["bytes"] for r in m["layers"]] == expect_bytes
    assert [r["flops"] for r in m["layers"]] == [184_832, 131_200, 16_448, 903]
    assert [r["out_shape"] for r in m["layers"]] == [[1, 512], [1, 128], [1, 64], [1, 7]]
    assert m["flops"]["weight_bytes"] == sum(expect_bytes) + 2 * 4 * 180
    assert m["flops"]["weight_bytes"] == sum(_esq_block_bytes((path / "weights.esq").read_bytes()).values())


def _onnx_tool_profile(proto, shapes):
    onnx_tool = pytest.importorskip("onnx_tool")
    g = onnx_tool.Model(proto, {"verbose": False}).graph
    g.graph_reorder_nodes()
    g.shape_infer({k: np.zeros((1, *s), np.float32) for k, s in shapes.items()})
    g.profile()
    by_op: dict[str, int] = {}
    for node in g.nodemap.values():
        by_op[node.op_type] = by_op.get(node.op_type, 0) + int(node.macs[0])
    return int(g.macs[0]), by_op, int(g.memory), int(g.params)


def _bias_outputs(c, op):
    """Output elements of the `op` nodes that have a bias (a third input)."""
    return sum(math.prod(r.out_shapes[0]) for r in c.layers if r.op == op and len(r.weights) == 2)


@pytest.mark.parametrize("which", ["laq_mlp", "small_cnn"])
def test_cross_check_with_onnx_tool(which):
    """onnx-tool on the same ONNX graph: its numbers are pinned and every difference explained by convention."""
    from converters.models import laq_mlp

    if which == "laq_mlp":
        shapes = {"features": (180,)}
        proto, c = _export(laq_mlp(), shapes["features"])
        # MACs: Gemm 180*512 + 512 + 512*128 + 128 + 128*64 + 64 + 64*7 + 7 (bias as 1 MAC) = 167,047;
        # Sub 180; Div 4 x 180 = 720; Relu 512 + 128 + 64 = 704
        expect = (168_651, {"Sub": 180, "Div": 720, "Gemm": 167_047, "Relu": 704})
        # memory: 167,407 float32 initializers (weights, biases, mean, std) + node outputs
        # 180 + 180 + 512 + 512 + 128 + 128 + 64 + 64 + 7 = 1,775 float32
        memory, params = 4 * 167_407 + 4 * 1_775, 167_407
    else:
        shapes = {"x": (3, 16, 16)}
        proto, c = _export(_small_cnn_torch(), shapes)
        # Conv (2048 * 27 + 2048) + (256 * 36 + 256) = 66,816; Gemm 2560 + 10; Relu 2304; MaxPool 512 * 4
        expect = (73_738, {"Conv": 66_816, "Relu": 2_304, "MaxPool": 2_048, "Flatten": 0, "Gemm": 2_570})
        # outputs 2048 + 2048 + 512 + 256 + 256 + 256 + 10 = 5,386 float32
        memory, params = SMALL_CNN_WEIGHT_BYTES + 4 * 5_386, 3_386
    macs, by_op, ot_memory, ot_params = _onnx_tool_profile(proto, shapes)
    assert (macs, by_op) == expect
    assert (ot_memory, ot_params) == (memory, params)

    ours = {op: d["flops"] for op, d in c.by_op().items()}
    for op, theirs in by_op.items():
        if op in ("Conv", "Gemm", "MatMul"):  # MACs (bias as one) vs 2 * MACs + bias
            assert ours[op] == 2 * theirs - _bias_outputs(c, op)
        elif op == "Div":  # DIV_MACS = 4 per element vs our 1
            assert ours[op] * 4 == theirs
        else:  # Relu, MaxPool, Sub, Flatten: the same convention
            assert ours[op] == theirs
    # bytes: the same float32 weights; onnx-tool counts outputs written, we also count inputs read
    assert ot_params * 4 == c.weight_bytes
    written = 4 * sum(math.prod(s) for r in c.layers for s in r.out_shapes)
    assert ot_memory == c.weight_bytes + written
    assert c.activation_bytes > written


def test_one_rule_says_ops_or_flops_by_precision() -> None:
    """Review: edge_ser/profiles/profile.py (`_unit_of`, `Profile.__str__`) and edge_ser/roofline.py each kept a copy
    of "an integer precision counts OPs, a float one FLOPs"; the rule is `op_name` here (its rate `rate_unit`), the
    one both use."""
    import re

    from edge_ser import flops, roofline
    from edge_ser.profiles import profile

    assert roofline.op_name is flops.op_name
    for precision, op in (("int8", "OP"), ("int4", "OP"), ("fp32", "FLOP"), ("fp16", "FLOP")):
        assert flops.op_name(precision) == op and flops.rate_unit(precision) == f"G{op}/s"
    for module in (profile, roofline):
        source = Path(module.__file__).read_text()
        assert not re.search(r"startswith\(.int.\)", source), module.__name__
