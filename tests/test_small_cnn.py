"""small_cnn (converters.models.small_cnn): the small 2-D CNN baseline on log-Mel patches."""

from __future__ import annotations

import pytest
import torch
from _lms_models import engines_match_torch, one_thread, perturb_norms, two_bit_bundle_round_trip  # noqa: F401

from converters.export.onnx_export import export_model
from converters.models.counts import count_model, count_params, dense_rows
from converters.models.small_cnn import small_cnn


def test_shapes_params_and_flops():
    x = torch.randn(3, 1, 128, 64)
    got = []
    for w in (1.0, 0.5):
        m = small_cnn(width=w).eval()
        assert m(x).shape == (3, 7)
        c = count_model(m)
        rows, flops = dense_rows(m, c), c.dense_flops
        bn = sum(p.numel() for n, p in m.named_parameters() if n.startswith("features.") and p.ndim == 1)
        assert sum(r["params"] for r in rows) + bn == count_params(m)
        got.append((count_params(m), flops))
    assert got == [(60_855, 49_546_119), (15_455, 12_976_583)]  # the docstring table
    m = small_cnn(n_mels=16, segment_frames=16, num_classes=4)  # 16: the smallest side (four 2/2 pools)
    assert m(torch.randn(2, 1, 16, 16)).shape == (2, 4)
    with pytest.raises(ValueError, match="16"):
        small_cnn(segment_frames=15)
    with pytest.raises(ValueError, match="width"):
        small_cnn(width=0)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    m = small_cnn(n_mels=32, segment_frames=32, num_classes=3, width=0.5).train()
    m.set_normalization(-40.0, 12.0)
    x = torch.randn(4, 1, 32, 32) * 12 - 40
    torch.nn.functional.cross_entropy(m(x), torch.tensor([0, 1, 2, 0])).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_onnx_parity_onnxruntime_and_numpy_engine_and_flops():
    pytest.importorskip("onnxruntime")
    from converters.export.onnx_export import graph_json, initializers
    from edge_ser.engines.numpy_engine import SUPPORTED_OPS
    from edge_ser.flops import count_graph

    M, T = 40, 37  # odd T: floor-mode pools drop the last column
    torch.manual_seed(1)
    model = small_cnn(n_mels=M, segment_frames=T, width=0.5).eval()
    perturb_norms(model)
    model.set_normalization(-40.0, 12.0)
    proto = export_model(model)
    ops = {n.op_type for n in proto.graph.node}
    assert ops <= set(SUPPORTED_OPS), ops - set(SUPPORTED_OPS)
    assert {"Conv", "BatchNormalization", "MaxPool", "GlobalAveragePool", "Gemm"} <= ops  # BN not folded
    names = {t.name for t in proto.graph.initializer}
    assert {"features.0.weight", "classifier.weight"} <= names
    g, w = graph_json(proto), initializers(proto)
    assert count_graph(g, w).dense_flops == count_model(model).dense_flops == 2_241_095

    engines_match_torch(model, proto, "small_cnn", (M, T))


def test_two_bit_bundle_round_trip(tmp_path):
    pytest.importorskip("onnx")
    from converters.quant.bitplan import quantizable_layers
    from edge_ser.inputs.patches import LMSSpec

    spec = LMSSpec(n_mels=40, win_length=400, hop_length=160, n_fft=512, segment_frames=32)
    torch.manual_seed(0)
    model = small_cnn(n_mels=40, segment_frames=32, num_classes=3, width=0.5).eval()
    perturb_norms(model)
    model.set_normalization(-40.0, 15.0)
    assert list(quantizable_layers(model)) == [f"features.{i}" for i in (0, 4, 8, 12)] + ["classifier"]
    b, frozen = two_bit_bundle_round_trip(model, tmp_path, spec)
    layers = {r["name"]: r for r in b.manifest["layers"]}
    assert all(r["bits"] == 2 and r["flops"] for r in layers.values())
    assert sum(r["flops"] for r in layers.values()) == count_model(frozen).dense_flops
