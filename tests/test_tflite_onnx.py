"""The ONNX-graph route to TFLite (`converters.export.onnx_tflite`) on every model family the zoo ships: the
shipped bundles (MLPs, the log-Mel patch transformer with conv + BatchNorm, attention and LayerNorm, the
two-input AV CNN and its temporal 1D CNN) and the TIM-Net temporal model (dilated convs, gates) as a float
graph. fp32 must match onnxruntime within 1e-4 of max |logit| and the int8 weights must hold the LAQ codes
and scales. (The shipped variants themselves: tests/test_tflite_shipped.py, no tensorflow needed.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="tensorflow-cpu (the tf-export extra) is not installed")

from converters.export import onnx_tflite as ot  # noqa: E402
from converters.export.tflite_export import int8_weights, op_names, run_tflite  # noqa: E402
from edge_ser.bundle import load_bundle  # noqa: E402
from edge_ser.errors import ConfigError  # noqa: E402

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


def _inputs(g: ot.Graph, n: int, seed: int) -> dict[str, np.ndarray]:
    """Standardised graph inputs (faces in [0, 1])."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in g.inputs.items():
        lo_hi = g.ranges.get(name)
        a = rng.uniform(*lo_hi, (n, *shape)) if lo_hi else rng.standard_normal((n, *shape))
        out[name] = a.astype(np.float32)
    return out


def _rel(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(a - ref).max()) / float(np.abs(ref).max())


@pytest.mark.parametrize(
    "name", ["laq_mlp_emodb", "ser_emodb", "tiny_transformer_emodb", "av_cnn", "av_cnn_audio"]
)
def test_bundle_graph_converts_and_matches_onnxruntime(name: str) -> None:
    b = load_bundle(BUNDLES / name)
    g = ot.bundle_graph(b)
    t = ot.trace(g)
    ref = ot.reference_logits(b)
    x = _inputs(g, 6, seed=1)
    want = ref(x)

    m32 = ot.convert(t, "fp32")
    assert _rel(run_tflite(m32, x), want) <= 1e-4
    m16 = ot.convert(t, "fp16")
    assert _rel(run_tflite(m16, x), want) <= 5e-3
    assert "DEQUANTIZE" in op_names(m16)

    m8 = ot.convert(t, "int8", _inputs(g, 32, seed=2))
    assert set(m8.input_quant) == set(g.inputs) and m8.output_quant is not None
    w8 = int8_weights(m8)
    esq = b.weights().tensors
    coded = [la for la in t.layers if la.codes is not None]
    assert coded, "every shipped bundle has LAQ-coded layers"
    for la in coded:
        q, s, zp, dim = w8[la.name]
        np.testing.assert_array_equal(q, la.codes)
        np.testing.assert_array_equal(s, la.scales)
        assert not zp.any() and dim == 0
        if (
            la.kind == "dense"
        ):  # Gemm weights are the esq codes themselves, [out, in] = FULLY_CONNECTED's layout
            np.testing.assert_array_equal(q, esq[f"{la.name}.weight"].codes)
            np.testing.assert_array_equal(s, esq[f"{la.name}.weight"].scales)


def test_conv_batchnorm_fold_keeps_the_codes() -> None:
    """tiny_transformer's stem Conv + BatchNorm: one CONV_2D whose int8 codes are the LAQ codes (sign of the
    BN factor folded in) and whose scales are LAQ scale * |BN factor|."""
    b = load_bundle(BUNDLES / "tiny_transformer_emodb")
    t = ot.trace(ot.bundle_graph(b))
    stem = {la.name: la for la in t.layers}["stem.0"]
    e = b.weights().tensors["stem.0.weight"]
    codes_ohwi = e.codes.transpose(0, 2, 3, 1)
    assert np.array_equal(np.abs(stem.codes), np.abs(codes_ohwi))
    assert not np.array_equal(stem.scales, e.scales)  # the BN factor is in the scales
    m = ot.convert(t, "fp32")
    assert "MUL" not in op_names(m)[:6]  # no separate BatchNorm multiply after the stem convs


def test_timnet_temporal_graph_converts() -> None:
    """TIM-Net's dilated, padded temporal convs with BatchNorm, sigmoid gates, scale fusion (a MatMul with a
    constant) and Squeeze / Unsqueeze, from its float ONNX export."""
    import onnxruntime as ort
    import torch

    from converters.export.onnx_export import export_model
    from converters.models.timnet import timnet

    torch.manual_seed(0)
    model = timnet(frames=24, dilations=3).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 1.5)
    proto = export_model(model)
    g = ot.graph_from_onnx(proto)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    t = ot.trace(g)
    assert ot.check_parity(t, lambda x: sess.run(None, x)[0]) <= 1e-4
    x = _inputs(g, 8, seed=3)
    want = sess.run(None, x)[0]
    assert _rel(run_tflite(ot.convert(t, "fp32"), x), want) <= 1e-4
    m8 = ot.convert(t, "int8", _inputs(g, 32, seed=4))
    assert np.mean(run_tflite(m8, x).argmax(1) == want.argmax(1)) >= 0.75


def test_unsupported_op_is_named() -> None:
    b = load_bundle(BUNDLES / "laq_mlp_emodb")
    g = ot.bundle_graph(b)
    g.nodes = [dict(n) for n in g.nodes]
    g.nodes[-1]["op"] = "Einsum"
    with pytest.raises(ConfigError, match=r"Einsum.*not supported"):
        ot.trace(g)


def test_int8_needs_calibration() -> None:
    t = ot.trace(ot.bundle_graph(load_bundle(BUNDLES / "ser_emodb")))
    with pytest.raises(ConfigError, match="calibration"):
        ot.convert(t, "int8")
    with pytest.raises(ConfigError, match="calibration is for the int8"):
        ot.convert(t, "fp32", {"functionals": np.zeros((2, 88), np.float32)})
