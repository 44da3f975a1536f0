"""Engines: onnxruntime and numpy agree with each other and with a plain numpy reference; selection and providers.

Bundles are built with the helpers of tests/test_bundle.py (real onnx graphs, real .esq weights).
"""

from __future__ import annotations

import gc
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bundle import LABELS, Kit, io_spec, mlp_kit, mlp_reference, quantized, raw

from edge_ser.bundle import load_bundle
from edge_ser.engines import ENGINES, Engine, available_engines, load_engine
from edge_ser.engines.numpy_engine import SUPPORTED_OPS, NumpyEngine
from edge_ser.engines.onnxrt import OnnxRuntimeEngine
from edge_ser.errors import BundleError, ConfigError, MissingDependencyError, ProviderWarning

REPO = Path(__file__).resolve().parents[1]
HINT = "pip install onnxruntime (or the 'device' extra from an edge-ser checkout: pip install '.[device]')"
GRAPH_ENGINES = (
    "onnxruntime",
    "numpy",
)  # the engines that run model.onnx (tflite: tests/test_tflite_engine.py)


def close(a: np.ndarray, b: np.ndarray, rel: float = 1e-5) -> None:
    """Equal within `rel` of the largest magnitude (logits near 0 make a per-element rtol meaningless)."""
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(float(np.abs(b).max()), 1e-6)
    err = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
    assert err <= rel * scale, f"max abs diff {err:.3g} > {rel:g} * {scale:.3g}"


# --------------------------------------------------------------------------------------------------------------
# graphs
# --------------------------------------------------------------------------------------------------------------


def cnn2d_kit(seed: int = 1) -> Kit:
    """2-D convs (padding, stride, dilation, groups), BatchNorm, pools, global pool, Flatten, Concat, Gemm."""
    rng = np.random.default_rng(seed)
    t = [
        quantized(rng, "c1.weight", (4, 2, 3, 3), 4, scale=0.2),
        raw("c1.bias", rng.normal(size=4) * 0.1),
        raw("bn.scale", rng.uniform(0.5, 1.5, 4)),
        raw("bn.bias", rng.normal(size=4) * 0.1),
        raw("bn.mean", rng.normal(size=4) * 0.1),
        raw("bn.var", rng.uniform(0.5, 2.0, 4)),
        quantized(rng, "c2.weight", (6, 4, 3, 2), 3, scale=0.2),
        raw("c2.bias", rng.normal(size=6) * 0.1),
        quantized(rng, "c3.weight", (4, 6, 2, 2), 8, scale=0.02),
        quantized(rng, "c4.weight", (4, 2, 1, 3), 1, scale=0.3),
        raw("c4.bias", rng.normal(size=4) * 0.1),
        quantized(rng, "fc.weight", (7, 6 + 16 + 36 + 36 + 16), 2, scale=0.1),
        raw("fc.bias", rng.normal(size=7) * 0.1),
        raw("clip.min", np.float32(-0.25)),
        raw("clip.max", np.float32(0.5)),
    ]
    nodes = [
        ("Conv", ["x", "c1.weight", "c1.bias"], ["a1"], {"pads": [1, 1, 1, 1], "strides": [1, 1]}),
        ("BatchNormalization", ["a1", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["a2"], {"epsilon": 1e-3}),
        ("Relu", ["a2"], ["a3"], {}),
        ("MaxPool", ["a3"], ["p1"], {"kernel_shape": [2, 2], "strides": [2, 2]}),  # [n,4,6,5]
        (
            "Conv",
            ["p1", "c2.weight", "c2.bias"],
            ["b1"],
            {"strides": [2, 1], "pads": [1, 0, 1, 1]},
        ),  # [n,6,3,5]
        ("Conv", ["b1", "c3.weight"], ["b2"], {"dilations": [2, 1]}),  # [n,4,1,4]
        ("Conv", ["b2", "c4.weight", "c4.bias"], ["b3"], {"group": 2, "pads": [0, 1, 0, 1]}),  # [n,4,1,4]
        ("GlobalAveragePool", ["b1"], ["g1"], {}),
        ("Flatten", ["g1"], ["f1"], {}),  # [n,6]
        ("Flatten", ["b3"], ["f2"], {"axis": 1}),  # [n,16]
        ("AveragePool", ["p1"], ["q1"], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
        ("Flatten", ["q1"], ["f3"], {}),  # [n,36]
        (
            "AveragePool",
            ["p1"],
            ["q2"],
            {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1},
        ),
        ("Flatten", ["q2"], ["f4"], {}),  # [n,36]
        ("MaxPool", ["a3"], ["p2"], {"kernel_shape": [3, 3], "strides": [3, 3], "pads": [1, 1, 0, 1]}),
        ("Flatten", ["p2"], ["f5"], {}),  # [n, 4*4*4 = 64]? (12+1-3)//3+1=4, (10+2-3)//3+1=4 -> 64
        ("Concat", ["f1", "f2", "f3", "f4"], ["cat"], {"axis": 1}),
        ("Concat", ["cat", "f2"], ["cat2"], {"axis": -1}),
        ("Gemm", ["cat2", "fc.weight", "fc.bias"], ["logits"], {"transB": 1, "alpha": 0.5, "beta": 2.0}),
        ("Sigmoid", ["logits"], ["sig"], {}),
        ("Tanh", ["b1"], ["th"], {}),
        ("LeakyRelu", ["b2"], ["lr"], {"alpha": 0.2}),
        ("Clip", ["a1", "clip.min", "clip.max"], ["cl"], {}),
        ("Clip", ["a1", "", "clip.max"], ["cl2"], {}),
        ("GlobalMaxPool", ["a1"], ["gm"], {}),
    ]
    rank2 = ["f5", "cat2", "sig"]
    rank4 = ["a2", "p1", "b1", "b2", "b3", "q1", "q2", "p2", "th", "lr", "cl", "cl2", "gm"]
    return Kit(
        nodes,
        [io_spec("x", [None, 2, 12, 10])],
        [io_spec("logits", [None, 7])] + _extra_outputs(rank2, 2) + _extra_outputs(rank4, 4),
        t,
        bits={"c1": 4, "c2": 3, "c3": 8, "c4": 1, "fc": 2},
    )


def cnn1d_kit(seed: int = 2) -> Kit:
    """1-D convs (SAME_UPPER, stride), pools, Reshape by constant, Transpose, MatMul, Softmax, shape ops."""
    rng = np.random.default_rng(seed)
    t = [
        quantized(rng, "c1.weight", (8, 3, 5), 2, scale=0.3),
        raw("c1.bias", rng.normal(size=8) * 0.1),
        quantized(rng, "c2.weight", (8, 8, 4), 5, scale=0.05),
        quantized(rng, "fc.weight", (24, 7), 6, scale=0.05),  # MatMul [in, out]
        raw("fc.bias", rng.normal(size=7) * 0.1),
        raw("scale", rng.uniform(0.5, 1.5, (1, 8, 1))),
    ]
    consts = {
        "shape0": np.array([0, -1], np.int64),
        "ax1": np.array([1], np.int64),
        "perm_shape": np.array([-1, 8, 3], np.int64),
    }
    nodes = [
        ("Conv", ["x", "c1.weight", "c1.bias"], ["a1"], {"pads": [2, 2], "strides": [2]}),  # [n,8,10]
        ("Relu", ["a1"], ["a2"], {}),
        ("MaxPool", ["a2"], ["p1"], {"kernel_shape": [2], "strides": [2]}),  # [n,8,5]
        (
            "AveragePool",
            ["p1"],
            ["q1"],
            {"kernel_shape": [3], "pads": [1, 1], "count_include_pad": 1},
        ),  # [n,8,5]
        ("Mul", ["q1", "scale"], ["q2"], {}),
        ("Conv", ["q2", "c2.weight"], ["b1"], {"auto_pad": "SAME_UPPER", "strides": [2]}),  # [n,8,3]
        ("Reshape", ["b1", "shape0"], ["r1"], {}),  # [n,24]
        ("Reshape", ["r1", "perm_shape"], ["r2"], {}),  # [n,8,3]
        ("Transpose", ["r2"], ["r3"], {"perm": [0, 2, 1]}),  # [n,3,8]
        ("Transpose", ["r3"], ["r4"], {"perm": [0, 2, 1]}),  # [n,8,3]
        ("Flatten", ["r4"], ["r5"], {}),  # [n,24]
        ("MatMul", ["r5", "fc.weight"], ["m1"], {}),
        ("Add", ["m1", "fc.bias"], ["m2"], {}),
        ("Unsqueeze", ["m2", "ax1"], ["u1"], {}),  # [n,1,7]
        ("Squeeze", ["u1", "ax1"], ["s1"], {}),
        ("Identity", ["s1"], ["i1"], {}),
        ("Dropout", ["i1"], ["logits"], {}),
        ("Softmax", ["logits"], ["probs"], {"axis": -1}),
        ("Softmax", ["a1"], ["sm1"], {"axis": 1}),
        ("ReduceMean", ["a1"], ["rm"], {"axes": [2], "keepdims": 0}),
        ("Sub", ["rm", "c1.bias"], ["d1"], {}),
        ("Div", ["d1", "c1.bias"], ["d2"], {}),
    ]
    rank2 = ["probs", "rm", "d2"]
    rank3 = ["a1", "p1", "q1", "b1", "r3", "sm1"]
    return Kit(
        nodes,
        [io_spec("x", [None, 3, 20])],
        [io_spec("logits", [None, 7])] + _extra_outputs(rank2, 2) + _extra_outputs(rank3, 3),
        t,
        constants=consts,
        bits={"c1": 2, "c2": 5, "fc": 6},
    )


def _extra_outputs(names: list[str], rank: int) -> list[dict[str, Any]]:
    """Intermediate tensors exposed as graph outputs (symbolic dims), to compare every op, not just the logits."""
    return [io_spec(n, [None] + [f"{n}_{j}" for j in range(1, rank)]) for n in names]


_TMP: list[Path] = []


def _load(kit: Kit, path: Path | None) -> Any:
    """Write the kit as a bundle (under `path`, or a temp dir) and load it back, verified."""

    if path is None:
        path = Path(tempfile.mkdtemp(prefix="edge-ser-test-"))
        _TMP.append(path)
    return load_bundle(kit.write(path / "b"))


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Any:
    yield
    import shutil

    for p in _TMP:
        shutil.rmtree(p, ignore_errors=True)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Kit, Any]:
    kit = mlp_kit()
    return kit, _load(kit, tmp_path_factory.mktemp("mlp"))


# --------------------------------------------------------------------------------------------------------------
# agreement
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("in_graph", [True, False])
def test_mlp_engines_agree_with_reference(tmp_path: Path, in_graph: bool) -> None:
    kit = mlp_kit(seed=3, in_graph=in_graph)
    b = _load(kit, tmp_path)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, b.feature_spec.dim)).astype(np.float32) * 2 + 0.5
    ref = mlp_reference(kit, x)
    outs = {}
    for name in GRAPH_ENGINES:
        e = load_engine(b, name)
        assert isinstance(e, Engine) and e.name == name
        y = e.predict(x)
        assert y.dtype == np.float32 and y.shape == (16, len(LABELS))
        close(y, ref)
        outs[name] = y
    close(outs["numpy"], outs["onnxruntime"])


@pytest.mark.parametrize(
    "make,shape", [(cnn2d_kit, (5, 2, 12, 10)), (cnn1d_kit, (6, 3, 20))], ids=["2d", "1d"]
)
def test_conv_graphs_numpy_matches_onnxruntime(tmp_path: Path, make: Any, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=shape).astype(np.float32)
    kit = make()
    b = _load(kit, tmp_path)
    npe = load_engine(b, "numpy")
    ore = load_engine(b, "onnxruntime")
    assert isinstance(npe, NumpyEngine) and isinstance(ore, OnnxRuntimeEngine)
    got = npe.run({"x": x})
    want = dict(zip(ore.output_names, ore.session.run(None, {"x": x}), strict=True))
    assert set(got) == set(want) and len(want) == len(kit.outputs)
    for name, value in want.items():
        assert got[name].dtype == np.float32, name
        close(got[name], value, rel=2e-6)  # float32 rounding only: a wrong op is off by far more
    close(npe.predict(x), ore.predict(x))


def test_engine_keeps_weights_alive(mlp: Any) -> None:
    """The OrtValues handed to onnxruntime must outlive the Bundle object that made them."""
    kit, b = mlp
    e = load_engine(load_bundle(b.root), "onnxruntime")
    gc.collect()
    x = np.random.default_rng(1).normal(size=(3, 180)).astype(np.float32)
    close(e.predict(x), mlp_reference(kit, x))


def test_predict_inputs(mlp: Any) -> None:
    kit, b = mlp
    x = np.random.default_rng(2).normal(size=(4, 180))
    for name in GRAPH_ENGINES:
        e = load_engine(b, name)
        one = e.predict(x[0])  # one sample without a batch axis, float64 given
        assert one.shape == (1, 7) and one.dtype == np.float32
        close(one[0], mlp_reference(kit, x[:1])[0])
        close(e.predict({"features": x}), mlp_reference(kit, x))
        with pytest.raises(
            ConfigError, match=r"input 'features' has shape \[4, 90\], the model takes \['n', 180\]"
        ):
            e.predict(x[:, :90])
        with pytest.raises(ConfigError, match="missing"):
            e.predict({"feats": x})
        with pytest.raises(ConfigError, match="numeric"):
            e.predict(np.array([["a"] * 180]))


# --------------------------------------------------------------------------------------------------------------
# what the numpy engine refuses
# --------------------------------------------------------------------------------------------------------------


def _one_op_kit(op: str, attrs: dict[str, Any]) -> Kit:
    rng = np.random.default_rng(0)
    t = [quantized(rng, "fc.weight", (7, 180), 2), raw("fc.bias", np.zeros(7))]
    nodes = [
        ("Gemm", ["features", "fc.weight", "fc.bias"], ["t0"], {"transB": 1}),
        (op, ["t0"], ["t1"], attrs),
        ("Relu", ["t1"], ["logits"], {}),
    ]
    return Kit(nodes, [io_spec("features", [None, 180])], [io_spec("logits", [None, 7])], t)


def test_unknown_op(tmp_path: Path) -> None:
    b = _load(_one_op_kit("FancyNorm", {}), tmp_path)  # verifies: model.onnx and manifest agree
    with pytest.raises(
        BundleError, match=r"graph node 1 \(FancyNorm\): op 'FancyNorm' is not supported by the numpy"
    ):
        load_engine(b, "numpy")
    with pytest.raises(BundleError, match="model.onnx: onnxruntime cannot load it"):
        load_engine(b, "onnxruntime")


def test_bad_attribute_named(tmp_path: Path) -> None:
    b = _load(_one_op_kit("Softmax", {"axis": 1}), tmp_path)
    assert load_engine(b, "numpy").predict(np.zeros((1, 180), np.float32)).shape == (1, 7)
    b.graph["nodes"][1]["attrs"]["axis"] = "one"  # after verification: the engine's own check
    with pytest.raises(
        BundleError, match=r"graph node 1 \(Softmax\): attribute axis='one' must be an integer"
    ):
        NumpyEngine(b)


def test_missing_input_named(mlp: Any) -> None:
    _, b0 = mlp
    b = load_bundle(b0.root)
    b.graph["nodes"][2]["inputs"][0] = "ghost"  # bypasses load-time checks on purpose
    with pytest.raises(BundleError, match=r"graph node 2 \(Gemm\): input 'ghost' is not defined"):
        NumpyEngine(b)


def test_maxpool_ceil_mode_refused_by_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    t = [quantized(rng, "fc.weight", (7, 2 * 3), 2), raw("fc.bias", np.zeros(7))]
    nodes = [
        ("MaxPool", ["x"], ["p"], {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}),
        ("Flatten", ["p"], ["f"], {}),
        ("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], {"transB": 1}),
    ]
    b = _load(Kit(nodes, [io_spec("x", [None, 1, 3, 5])], [io_spec("logits", [None, 7])], t), tmp_path)
    with pytest.raises(BundleError, match=r"graph node 0 \(MaxPool\): ceil_mode=1 is not supported"):
        load_engine(b, "numpy")
    assert load_engine(b, "onnxruntime").predict(np.zeros((2, 1, 3, 5), np.float32)).shape == (2, 7)


@pytest.mark.parametrize("nd", [1, 2])
def test_avgpool_matches_onnxruntime_on_every_window(nd: int) -> None:
    """The numpy AveragePool (separable window sums on a flat padded buffer) against onnxruntime: kernels 1-3,
    strides 1-3, pads 0-1, padding counted or not, odd and even sides, twice per node (its run plan reused)."""
    import itertools

    from onnx import TensorProto, helper

    from edge_ser.engines.numpy_engine import _avgpool, _Node

    rng = np.random.default_rng(nd)
    for k, s, p, counted, side in itertools.product((1, 2, 3), (1, 2, 3), (0, 1), (0, 1), (5, 6)):
        if 2 * p > k:
            continue
        shape = (2, 3, *([side] * nd))
        attrs = {
            "kernel_shape": [k] * nd,
            "strides": [s] * nd,
            "pads": [p] * 2 * nd,
            "count_include_pad": counted,
        }
        graph = helper.make_graph(
            [helper.make_node("AveragePool", ["x"], ["y"], **attrs)],
            "pool",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        pool = _avgpool(
            _Node({"op": "AveragePool", "inputs": ["x"], "outputs": ["y"], "attrs": attrs}, 17, {})
        )
        for _ in range(2):
            x = rng.standard_normal(shape).astype(np.float32)
            np.testing.assert_allclose(pool(x), sess.run(None, {"x": x})[0], atol=1e-6, err_msg=str(attrs))


def test_a_batchnorm_of_too_few_inputs_after_a_conv_is_a_node_error_not_a_type_error() -> None:
    """A Conv + BatchNormalization pair is folded only when the BN has its 5 inputs; one with 4 (a malformed
    graph) is left to `_batchnorm`, which names what is wrong (the fold called `_bn_affine` with 3 of 4 stats)."""
    from edge_ser.engines.numpy_engine import _batchnorm, _fold_batchnorm, _Node, _NodeError

    params = {n: np.ones(2, np.float32) for n in ("s", "b", "m")} | {"w": np.ones((2, 1, 1, 1), np.float32)}
    conv = {"op": "Conv", "inputs": ["x", "w"], "outputs": ["c"], "attrs": {}}
    bn = {"op": "BatchNormalization", "inputs": ["c", "s", "b", "m"], "outputs": ["y"], "attrs": {}}
    assert _fold_batchnorm(conv, bn, 17, params) is None
    with pytest.raises(_NodeError):
        _batchnorm(_Node(bn, 17, params))


def test_supported_ops_listed() -> None:
    required = {"Sub", "Add", "Mul", "Div", "Gemm", "MatMul", "Relu", "Sigmoid", "Tanh", "Softmax", "Flatten",
                "Reshape", "Identity", "Concat", "Conv", "MaxPool", "AveragePool", "GlobalAveragePool",
                "BatchNormalization", "Dropout", "Clip"}  # fmt: skip
    assert required <= set(SUPPORTED_OPS)


@pytest.fixture(scope="module")
def conv_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("conv")
    return {"2d": cnn2d_kit().write(root / "2d"), "1d": cnn1d_kit().write(root / "1d")}


ATTR_VALUES = st.one_of(
    st.integers(-2, 6),
    st.lists(st.integers(-2, 6), max_size=5),
    st.sampled_from(["", "VALID", "SAME_LOWER", "SAME_UPPER", "x", 0.5, -1.5, [0.5, 1]]),
)


@settings(
    max_examples=250, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
@given(data=st.data())
def test_fuzz_node_attributes(conv_dirs: dict[str, Path], data: Any) -> None:
    """Whatever a node's attributes say, the numpy engine fails with BundleError naming the node, never a raw error."""
    which = data.draw(st.sampled_from(sorted(conv_dirs)))
    b = load_bundle(conv_dirs[which])
    nodes = b.graph["nodes"]  # the graph read from model.onnx, changed after the load-time checks
    for _ in range(data.draw(st.integers(1, 3))):
        node = nodes[data.draw(st.integers(0, len(nodes) - 1))]
        key = data.draw(
            st.sampled_from(
                sorted(node["attrs"]) + ["axis", "pads", "strides", "kernel_shape", "group", "auto_pad"]
            )
        )
        node["attrs"][key] = data.draw(ATTR_VALUES)
    shape = (2, 2, 12, 10) if which == "2d" else (2, 3, 20)
    try:
        y = NumpyEngine(b).predict(np.ones(shape, np.float32))
    except BundleError as e:
        assert "graph node" in str(e) or "returned shape" in str(e), e
        return
    assert y.shape == (2, 7)


# --------------------------------------------------------------------------------------------------------------
# selection, threads, providers, missing onnxruntime
# --------------------------------------------------------------------------------------------------------------


def test_selection(mlp: Any) -> None:
    _, b = mlp
    avail = available_engines()
    assert set(avail) == set(ENGINES) and avail["onnxruntime"] is None and avail["numpy"] is None
    assert load_engine(b).name == "onnxruntime"
    assert load_engine(b, "auto").name == "onnxruntime"
    assert load_engine(str(b.root), "numpy").name == "numpy"  # a path is loaded and verified
    assert load_engine(b.root, "ONNXRuntime").name == "onnxruntime"
    with pytest.raises(ConfigError, match="engine 'tensorflow' is not known"):
        load_engine(b, "tensorflow")
    with pytest.raises(BundleError, match="has no TFLite model"):  # this bundle has no TFLite variants
        load_engine(b, "tflite")
    with pytest.raises(ConfigError, match="threads=0"):
        load_engine(b, threads=0)
    with pytest.raises(ConfigError, match="provider 'MetalExecutionProvider' is not supported"):
        load_engine(b, providers=["MetalExecutionProvider"])
    with pytest.raises(BundleError, match="does not exist"):
        load_engine(b.root.parent / "nope")


def test_threads(mlp: Any) -> None:
    _, b = mlp
    e = load_engine(b, "onnxruntime", threads=1)
    opts = e.session.get_session_options()
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
    assert "threads 1" in e.describe()


def test_missing_providers_reported_cpu_runs(mlp: Any) -> None:
    kit, b = mlp
    wanted = ["CUDAExecutionProvider", "TensorrtExecutionProvider"]
    if any(p in ort.get_available_providers() for p in wanted):
        pytest.skip("this machine has CUDA/TensorRT")
    x = np.random.default_rng(3).normal(size=(2, 180)).astype(np.float32)
    for name in GRAPH_ENGINES:
        with pytest.warns(
            ProviderWarning, match="TensorrtExecutionProvider.*CUDAExecutionProvider.*running on"
        ):
            e = load_engine(b, name, providers=["tensorrt", "CUDAExecutionProvider"])
        assert set(e.missing_providers) == set(wanted)
        assert e.providers == ("CPUExecutionProvider",)
        d = e.describe()
        assert "TensorrtExecutionProvider" in d and "CUDAExecutionProvider" in d and "CPU" in d
        close(e.predict(x), mlp_reference(kit, x))
    e = load_engine(b, "onnxruntime", providers=["cpu"])
    assert e.missing_providers == () and "not available" not in e.describe()


def test_missing_onnxruntime(mlp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, b = mlp
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    avail = available_engines()
    assert avail["numpy"] is None
    assert avail["onnxruntime"] is not None and HINT in avail["onnxruntime"]
    with pytest.raises(MissingDependencyError) as ei:
        load_engine(b, "onnxruntime")
    assert HINT in str(ei.value) and "onnxruntime" in str(ei.value)
    assert isinstance(ei.value, ImportError) and ei.value.extra == "device"
    with pytest.raises(MissingDependencyError, match=r"pip install onnxruntime .*pip install '\.\[device\]'"):
        OnnxRuntimeEngine(b)
    e = load_engine(b, "auto")
    assert e.name == "numpy"


def test_device_runs_bundle_without_onnx_or_onnxruntime(mlp: Any, tmp_path: Path) -> None:
    """On a device with neither onnx nor onnxruntime (nor torch), a bundle loads, verifies and runs (numpy)."""
    kit, b = mlp
    x = np.random.default_rng(4).normal(size=(3, 180)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "ref.npy", mlp_reference(kit, x))
    script = textwrap.dedent(
        """
        import importlib.abc, sys
        BLOCKED = {"onnx", "onnxruntime", "torch", "tensorflow", "librosa", "scipy"}
        class Blocker(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"No module named {name!r}")
        sys.meta_path.insert(0, Blocker())
        import numpy as np
        from edge_ser.engines import available_engines, load_engine
        from edge_ser.errors import MissingDependencyError
        d = sys.argv[2]
        assert available_engines()["onnxruntime"].startswith("pip install"), available_engines()
        e = load_engine(sys.argv[1])
        assert e.name == "numpy", e.name
        y = e.predict(np.load(d + "/x.npy"))
        ref = np.load(d + "/ref.npy")
        assert np.abs(y - ref).max() <= 1e-5 * np.abs(ref).max(), np.abs(y - ref).max()
        try:
            load_engine(sys.argv[1], "onnxruntime")
        except MissingDependencyError as err:
            print("OK", err)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(b.root), str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("OK") and HINT in proc.stdout
