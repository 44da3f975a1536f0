"""Ops added to the numpy engine, against onnxruntime on random inputs: LayerNormalization and Pad (+ their FLOP rules)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from _graph_engine import graph_bundle
from onnx import TensorProto, helper, numpy_helper

from converters.export.onnx_export import graph_json, initializers
from edge_ser.engines.numpy_engine import SUPPORTED_OPS, NumpyEngine
from edge_ser.flops import LAYERNORM_FLOPS, count_graph


def _layernorm_model(shape, axis, *, bias=True, epsilon=None, stats=False):
    """x [None, *shape[1:]] -> LayerNormalization(axis) -> y (and Mean, InvStdDev when `stats`)."""
    rng = np.random.default_rng(len(shape) * 10 + axis)
    norm = shape[axis:]
    inits = [numpy_helper.from_array(rng.uniform(0.5, 1.5, norm).astype(np.float32), "scale")]
    ins = ["x", "scale"]
    if bias:
        inits.append(numpy_helper.from_array(rng.normal(0, 0.1, norm).astype(np.float32), "b"))
        ins.append("b")
    outs = ["y", "mean", "inv"] if stats else ["y"]
    attrs = {"axis": axis} | ({"epsilon": epsilon} if epsilon is not None else {})
    node = helper.make_node("LayerNormalization", ins, outs, **attrs)
    dims = ["batch", *shape[1:]]
    stat_dims = ["batch", *shape[1:axis], *([1] * (len(shape) - axis))] if axis > 0 else [1] * len(shape)
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)]
    if stats:
        outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, stat_dims) for n in ("mean", "inv")]
    g = helper.make_graph(
        [node], "ln", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)], outputs, inits
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


@pytest.mark.parametrize(
    "shape,axis,bias,epsilon,stats",
    [
        ((3, 5, 16), -1, True, None, False),  # the transformer's case: [B, tokens, d] over d
        ((3, 5, 16), 1, True, 1e-3, False),  # over the last two axes, scale [5, 16]
        ((4, 7), 1, False, None, True),  # no bias; Mean and InvStdDev outputs too
        ((2, 3, 4, 5), 2, True, 1e-6, True),
    ],
)
def test_layernorm_matches_onnxruntime(shape, axis, bias, epsilon, stats):
    assert "LayerNormalization" in SUPPORTED_OPS
    proto = _layernorm_model(shape, axis, bias=bias, epsilon=epsilon, stats=stats)
    g, w = graph_json(proto), initializers(proto)
    eng = NumpyEngine(graph_bundle(proto, shape[-1], name="ln", graph=g))
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    x = (rng.normal(3.0, 2.0, shape) * rng.uniform(0.1, 10, shape[-1])).astype(np.float32)
    want = sess.run(None, {"x": x})
    got = eng.run({"x": x})
    for name, ref in zip(eng.output_names, want, strict=True):
        assert got[name].dtype == np.float32 and got[name].shape == ref.shape, name
        np.testing.assert_allclose(got[name], ref, rtol=1e-5, atol=1e-5, err_msg=name)

    c = count_graph(g, w)
    (row,) = c.layers
    assert row.flops == LAYERNORM_FLOPS * int(np.prod(shape[1:])) and row.out_shapes[0] == (1, *shape[1:])
    if stats:  # the counter's Mean / InvStdDev shapes, at batch 1
        assert row.out_shapes[1:] == ((1, *want[1].shape[1:]),) * 2


def test_layernorm_refuses_bad_nodes():
    from edge_ser.errors import BundleError

    proto = _layernorm_model((2, 8), -1)
    g = graph_json(proto)
    g["nodes"][0]["attrs"]["stash_type"] = 0
    with pytest.raises(BundleError, match="stash_type"):
        NumpyEngine(graph_bundle(proto, 8, name="ln", graph=g))


def _pad_model(shape, pads, *, mode="constant", value=None, axes=None, opset=17):
    """x [None, *shape[1:]] -> Pad(pads from an initializer, optional constant_value and axes) -> y."""
    inits = [numpy_helper.from_array(np.asarray(pads, dtype=np.int64), "pads")]
    ins = ["x", "pads"]
    if value is not None or axes is not None:
        ins.append("value" if value is not None else "")
        if value is not None:
            inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), "value"))
    if axes is not None:
        ins.append("axes")
        inits.append(numpy_helper.from_array(np.asarray(axes, dtype=np.int64), "axes"))
    node = helper.make_node("Pad", ins, ["y"], mode=mode)
    g = helper.make_graph(
        [node],
        "pad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *shape[1:]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [f"d{i}" for i in range(len(shape))])],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8 if opset < 19 else 9
    onnx.checker.check_model(m)
    return m


@pytest.mark.parametrize(
    "shape,pads,mode,value,axes,opset",
    [
        ((2, 3, 10), [0, 0, 4, 0, 0, 0], "constant", None, None, 17),  # the causal conv's left pad
        ((2, 3, 10), [0, 0, 0, 0, 0, 8], "constant", None, None, 17),  # the anti-causal right pad
        ((2, 3, 10), [0, 1, 2, 0, 2, 3], "constant", -7.5, None, 17),
        ((2, 3, 10), [0, 0, 3, 0, 0, -2], "constant", None, None, 17),  # a negative pad crops
        ((2, 4, 6), [0, 0, 2, 0, 1, 3], "reflect", None, None, 17),
        ((2, 4, 6), [0, 0, 2, 0, 1, 3], "edge", None, None, 17),
        ((2, 3, 10), [2, 1], "constant", 1.5, [-1], 18),  # axes input
    ],
)
def test_pad_matches_onnxruntime(shape, pads, mode, value, axes, opset):
    assert "Pad" in SUPPORTED_OPS
    proto = _pad_model(shape, pads, mode=mode, value=value, axes=axes, opset=opset)
    g, w = graph_json(proto), initializers(proto)
    eng = NumpyEngine(graph_bundle(proto, 1, name="pad", graph=g))
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(0, 1, shape).astype(np.float32)
    (want,) = sess.run(None, {"x": x})
    got = eng.run({"x": x})["y"]
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    (row,) = count_graph(g, w).layers  # the FLOP counter's Pad shape rule, at batch 1
    assert row.out_shapes[0] == (1, *want.shape[1:]) and row.flops == 0


def test_pad_refuses_unknown_modes():
    from edge_ser.errors import BundleError

    proto = _pad_model((2, 3, 4), [0, 0, 1, 0, 0, 1])
    g = graph_json(proto)
    g["nodes"][0]["attrs"]["mode"] = "mirror"
    with pytest.raises(BundleError, match="mode"):
        NumpyEngine(graph_bundle(proto, 1, name="pad", graph=g))


def _single_node_model(op, shape, attrs, weights=()):
    """x [batch, *shape[1:]] -> one `op` node (inputs x and the named float initializers, in order) -> y."""
    inits = [numpy_helper.from_array(v, name) for name, v in weights]
    node = helper.make_node(op, ["x", *(name for name, _ in weights)], ["y"], **attrs)
    return _graph_model([node], inits, ["batch", *shape[1:]], [f"d{i}" for i in range(len(shape))])


def _graph_model(nodes, inits, x_dims, y_dims):
    """A checked opset-17 model of `nodes`: input x, output y."""
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_dims)],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def _same_as_onnxruntime(proto, shape):
    """The numpy engine's y against onnxruntime's, on a batch of `shape` and on its first row alone."""
    eng = NumpyEngine(graph_bundle(proto, 1, name="op"))
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).normal(0, 1, shape).astype(np.float32)
    for rows in (x, x[:1]):
        (want,) = sess.run(None, {"x": rows})
        for _ in range(2):  # the second call reuses this thread's work buffers
            got = eng.run({"x": rows})["y"]
            assert got.dtype == np.float32 and got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


@pytest.mark.parametrize(
    "shape,out_ch,group,attrs,bias",
    [
        ((2, 16, 12, 12), 16, 16, {"pads": [1, 1, 1, 1]}, True),  # face_fer's depthwise 3x3
        ((2, 6, 3, 3), 12, 6, {"pads": [1, 1, 1, 1]}, True),  # a small map: one matrix per channel
        ((2, 4, 2, 3), 4, 4, {"pads": [1, 1, 1, 1], "strides": [2, 1]}, False),  # small, strided
        ((2, 4, 11, 9), 8, 4, {"pads": [1, 0, 2, 1], "strides": [2, 2], "dilations": [2, 1]}, False),  # x2
        ((2, 6, 10, 10), 18, 6, {"auto_pad": "SAME_LOWER", "strides": [2, 1]}, True),  # multiplier 3
        ((2, 5, 17), 5, 5, {"kernel_shape": [5], "pads": [4, 3], "dilations": [2]}, True),  # 1-D
        ((2, 3, 5, 6, 7), 6, 3, {"pads": [1, 0, 1, 1, 0, 1], "strides": [1, 2, 1]}, True),  # 3-D, x2
        (
            (2, 8, 9, 9),
            12,
            4,
            {"pads": [1, 2, 0, 1], "strides": [2, 2], "dilations": [1, 2]},
            True,
        ),  # grouped
        ((2, 6, 9, 8), 4, 2, {"pads": [1, 1, 1, 1]}, False),  # grouped, 3 in / 2 out per group
        (
            (2, 3, 8, 9),
            5,
            1,
            {"kernel_shape": [3, 3], "pads": [1, 0, 2, 1], "dilations": [1, 2]},
            True,
        ),  # dense
        ((2, 3, 11), 4, 1, {"kernel_shape": [4], "auto_pad": "SAME_UPPER"}, False),  # dense 1-D, even kernel
        ((2, 8, 7, 7), 16, 1, {"strides": [2, 2]}, True),  # 1x1, stride 2 (the shortcut)
        ((2, 8, 7, 7), 16, 1, {"strides": [2, 3]}, False),  # 1x1, strided, no bias
        ((2, 8, 7, 7), 16, 1, {"auto_pad": "SAME_UPPER"}, False),  # 1x1 under auto_pad
    ],
)
def test_grouped_and_depthwise_conv_match_onnxruntime(shape, out_ch, group, attrs, bias):
    nd = len(shape) - 2
    kernel = attrs.pop("kernel_shape", [1] * nd if group == 1 else [3] * nd)
    rng = np.random.default_rng(0)
    w = [("w", rng.normal(0, 0.5, (out_ch, shape[1] // group, *kernel)).astype(np.float32))]
    if bias:
        w.append(("b", rng.normal(0, 0.5, out_ch).astype(np.float32)))
    proto = _single_node_model("Conv", shape, {"group": group, "kernel_shape": kernel, **attrs}, w)
    _same_as_onnxruntime(proto, shape)


@pytest.mark.parametrize(
    "shape,attrs",
    [
        ((2, 16, 24, 24), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),  # face_fer's
        ((2, 3, 3, 3), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
        (
            (2, 4, 9, 11),
            {"kernel_shape": [2, 3], "strides": [1, 2], "pads": [0, 1, 1, 0], "dilations": [2, 1]},
        ),
        ((2, 4, 13), {"kernel_shape": [4], "strides": [3], "auto_pad": "SAME_UPPER"}),
        ((2, 2, 5, 6, 7), {"kernel_shape": [1, 3, 2], "strides": [1, 2, 2]}),
        ((1, 2, 7, 8), {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 1, 1]}),  # no tap sees all
        ((1, 3, 10), {"kernel_shape": [3], "strides": [1], "pads": [2, 2], "dilations": [2]}),
    ],
)
def test_maxpool_matches_onnxruntime(shape, attrs):
    _same_as_onnxruntime(_single_node_model("MaxPool", shape, attrs), shape)


def _residual_model(kind: str):
    """x [batch, 4, 6, 6] -> conv -> Add (a residual or a broadcast constant) -> Relu -> y; `kind` picks where
    the Add's other addend comes from: "input" (x itself), "later" (a second conv computed after the first),
    "const" (a [1, 4, 1, 1] initializer, broadcast)."""
    rng = np.random.default_rng(3)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.3, (4, 4, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(0, 0.3, 4).astype(np.float32), "b"),
        numpy_helper.from_array(rng.normal(0, 0.3, (4, 4, 1, 1)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(0, 1, (1, 4, 1, 1)).astype(np.float32), "c"),
    ]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["a"], pads=[1, 1, 1, 1])]
    if kind == "later":
        nodes.append(helper.make_node("Conv", ["x", "w2"], ["s"]))
    other = {"input": "x", "later": "s", "const": "c"}[kind]
    nodes += [helper.make_node("Add", ["a", other], ["r"]), helper.make_node("Relu", ["r"], ["y"])]
    return _graph_model(nodes, inits, ["batch", 4, 6, 6], ["batch", 4, 6, 6])


@pytest.mark.parametrize(
    "kind,plan",
    [
        ("input", ["Conv+Add+Relu"]),
        ("const", ["Conv+Add+Relu"]),  # broadcast: a new array, not in place
        ("later", ["Conv", "Conv+Add+Relu"]),  # the conv that runs last takes the Add
    ],
)
def test_residual_add_fused_into_the_conv(kind, plan):
    proto = _residual_model(kind)
    _same_as_onnxruntime(proto, (2, 4, 6, 6))
    eng = NumpyEngine(graph_bundle(proto, 1, name="op"))
    assert [step[1] for step in eng._plan] == plan


def test_failing_node_is_named_after_the_fast_path_fails():
    from edge_ser.errors import BundleError

    proto = _single_node_model("Conv", (1, 4, 6, 6), {}, [("w", np.ones((2, 4, 3, 3), np.float32))])
    eng = NumpyEngine(graph_bundle(proto, 1, name="op"))
    with pytest.raises(BundleError, match=r"graph node 0 \(Conv\): input has 3 channels"):
        eng.run({"x": np.ones((1, 3, 6, 6), np.float32)})


def _separable_model(dw_bias: bool, pw_attrs: dict):
    """x [batch, 4, h, w] -> depthwise 3x3 (x2 multiplier) -> 1x1 conv -> y: a separable conv."""
    rng = np.random.default_rng(5)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.4, (8, 1, 3, 3)).astype(np.float32), "wd"),
        numpy_helper.from_array(rng.normal(0, 0.4, (5, 8, 1, 1)).astype(np.float32), "wp"),
        numpy_helper.from_array(rng.normal(0, 0.4, 5).astype(np.float32), "bp"),
    ]
    dw_in = ["x", "wd"]
    if dw_bias:
        inits.append(numpy_helper.from_array(rng.normal(0, 0.4, 8).astype(np.float32), "bd"))
        dw_in.append("bd")
    nodes = [
        helper.make_node("Conv", dw_in, ["d"], group=4, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["d", "wp", "bp"], ["y"], **pw_attrs),
    ]
    return _graph_model(nodes, inits, ["batch", 4, "h", "w"], ["batch", 5, "h", "w"])


@pytest.mark.parametrize(
    "dw_bias,pw_attrs,plan",
    [
        (False, {}, ["Conv+Conv"]),  # face_fer's blocks
        (True, {}, ["Conv+Conv"]),  # the depthwise bias moves into the 1x1 bias
        (False, {"strides": [2, 2]}, ["Conv", "Conv"]),  # a strided 1x1 is not fused
    ],
)
@pytest.mark.parametrize("hw", [(7, 6), (3, 3)])  # (3, 3): the depthwise as one matrix per channel
def test_separable_conv_fused_into_one_op(dw_bias, pw_attrs, plan, hw):
    proto = _separable_model(dw_bias, pw_attrs)
    _same_as_onnxruntime(proto, (2, 4, *hw))
    eng = NumpyEngine(graph_bundle(proto, 1, name="op"))
    assert [step[1] for step in eng._plan] == plan


def _standardised_conv_model(group: int, bn: bool = False):
    """x [batch, 2, 6, 7] -> Sub(mean) -> Div(Identity(mean)) -> Conv (pads 1, stride 2) -> y: a model that
    standardises its input, the std an Identity of a constant (as torch's exporter writes equal constants).
    With `bn` an inference BatchNormalization after the Conv (tiny_transformer_emodb's stem)."""
    rng = np.random.default_rng(7)
    inits = [
        numpy_helper.from_array(np.array(0.4, np.float32), "mean"),
        numpy_helper.from_array(rng.normal(0, 0.4, (4, 2 // group, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(0, 0.4, 4).astype(np.float32), "b"),
    ]
    nodes = [
        helper.make_node("Identity", ["mean"], ["std"]),
        helper.make_node("Sub", ["x", "mean"], ["c"]),
        helper.make_node("Div", ["c", "std"], ["z"]),
        helper.make_node(
            "Conv", ["z", "w", "b"], ["a" if bn else "y"], pads=[1, 1, 1, 1], strides=[2, 2], group=group
        ),
    ]
    if bn:
        for name, v in (
            ("s", rng.uniform(0.5, 1.5, 4)),
            ("beta", rng.normal(0, 0.3, 4)),
            ("mu", rng.normal(0, 0.3, 4)),
            ("var", rng.uniform(0.5, 2.0, 4)),
        ):
            inits.append(numpy_helper.from_array(v.astype(np.float32), name))
        nodes.append(helper.make_node("BatchNormalization", ["a", "s", "beta", "mu", "var"], ["y"]))
    return _graph_model(nodes, inits, ["batch", 2, 6, 7], ["batch", 4, "h", "w"])


@pytest.mark.parametrize("group", [1, 2])
def test_standardisation_folded_into_the_first_conv(group):
    proto = _standardised_conv_model(group)
    _same_as_onnxruntime(proto, (2, 2, 6, 7))  # the border: padding holds the mean, i.e. a standardised 0
    eng = NumpyEngine(graph_bundle(proto, 1, name="op"))
    assert [step[1] for step in eng._plan] == ["Sub+Div+Conv"]  # the Identity ran once, at load
    assert "std" in eng.params and all(step[1] != "Identity" for step in eng.steps)


@pytest.mark.parametrize("group", [1, 2])
def test_batchnorm_after_a_standardised_conv_is_folded_too(group):
    """A review: docs/accelerators.md says a Conv whose only consumer is an inference BatchNormalization becomes
    one Conv, but a Conv that had the input's standardisation folded in kept its BatchNormalization as a step of
    its own (tiny_transformer_emodb's stem: ~25 us a call). Both fold into the one Conv."""
    proto = _standardised_conv_model(group, bn=True)
    _same_as_onnxruntime(proto, (2, 2, 6, 7))
    eng = NumpyEngine(graph_bundle(proto, 1, name="op"))
    assert [step[1] for step in eng._plan] == ["Sub+Div+Conv+BatchNormalization"]


@pytest.mark.parametrize("trans_b,alpha,bias", [(1, 1.0, True), (0, 0.5, False)])
def test_classifier_head_as_one_gemm(trans_b, alpha, bias):
    """GlobalAveragePool -> Flatten -> Gemm (a CNN's head) as one GEMM on the unpooled map."""
    rng = np.random.default_rng(9)
    w = rng.normal(0, 0.5, (3, 6) if trans_b else (6, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w")]
    gemm_in = ["f", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.normal(0, 0.5, 3).astype(np.float32), "c"))
        gemm_in.append("c")
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", gemm_in, ["y"], transB=trans_b, alpha=alpha),
    ]
    proto = _graph_model(nodes, inits, ["batch", 6, 3, 4], ["batch", 3])
    _same_as_onnxruntime(proto, (2, 6, 3, 4))
    eng = NumpyEngine(graph_bundle(proto, 3, name="op"))
    assert [step[1] for step in eng._plan] == ["GlobalAveragePool+Flatten+Gemm"]
