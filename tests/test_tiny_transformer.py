"""tiny_transformer (converters.models.tiny_transformer): conv stem + explicit self-attention on log-Mel patches."""

from __future__ import annotations

import pytest
import torch
from _lms_models import engines_match_torch, one_thread, perturb_norms, two_bit_bundle_round_trip  # noqa: F401

from converters.export.onnx_export import export_model
from converters.models.counts import count_model, count_params, dense_rows
from converters.models.tiny_transformer import tiny_transformer


def test_shapes_params_and_flops():
    x = torch.randn(3, 1, 128, 64)
    got = []
    for w in (1.0, 0.5):
        m = tiny_transformer(width=w).eval()
        assert m.cfg.tokens == 16 and m.cfg.token_features == m.cfg.ch(16) * 32
        assert m(x).shape == (3, 7)
        c = count_model(m)
        rows, flops = dense_rows(m, c), c.dense_flops
        other = (
            sum(
                p.numel()
                for n, p in m.named_parameters()
                if p.ndim == 1 and "norm" in n or "stem.1" in n or "stem.4" in n
            )
            + m.pos.numel()
        )
        assert sum(r["params"] for r in rows) + other == count_params(m)
        got.append((m.cfg.d, count_params(m), flops))
    assert got == [(48, 66_263, 5_025_703), (24, 17_199, 1_431_511)]  # the docstring table
    # the attention products: 2 * heads * N * N * dk each, per layer
    attn = [r.flops for r in count_model(tiny_transformer()).layers if r.op == "MatMul" and r.layer is None]
    assert attn == [2 * 3 * 16 * 16 * 16] * 4  # q@k^T and att@v in each of the 2 layers
    m = tiny_transformer(n_mels=40, segment_frames=25, num_classes=4, heads=2, layers=1, dim=32)
    assert m.cfg.grid == (10, 7) and m(torch.randn(2, 1, 40, 25)).shape == (2, 4)
    with pytest.raises(ValueError, match="width"):
        tiny_transformer(width=5)


def test_attention_matches_torch_multihead_attention():
    """The explicit attention is standard MHA: same q/k/v/out weights in nn.MultiheadAttention, same output."""
    from converters.models.tiny_transformer import SelfAttention

    torch.manual_seed(0)
    d, h, n = 24, 3, 5
    att = SelfAttention(d, h, n).eval()
    ref = torch.nn.MultiheadAttention(d, h, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([att.q.weight, att.k.weight, att.v.weight]))
        ref.in_proj_bias.copy_(torch.cat([att.q.bias, att.k.bias, att.v.bias]))
        ref.out_proj.weight.copy_(att.out.weight)
        ref.out_proj.bias.copy_(att.out.bias)
        x = torch.randn(4, n, d)
        torch.testing.assert_close(att(x), ref(x, x, x, need_weights=False)[0], rtol=1e-5, atol=1e-5)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    m = tiny_transformer(n_mels=32, segment_frames=32, num_classes=3, width=0.5, dropout=0.0).train()
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

    M, T = 40, 30  # 8 tokens of 10 * C values
    torch.manual_seed(1)
    model = tiny_transformer(n_mels=M, segment_frames=T, width=0.5).eval()
    perturb_norms(model)
    model.set_normalization(-40.0, 12.0)
    proto = export_model(model)
    ops = {n.op_type for n in proto.graph.node}
    assert ops <= set(SUPPORTED_OPS), ops - set(SUPPORTED_OPS)
    assert {"LayerNormalization", "MatMul", "Softmax", "Gemm", "Transpose", "Reshape", "ReduceMean"} <= ops
    assert not ops & {"Shape", "Gather", "Concat", "Sqrt", "Pow", "Erf"}
    names = {t.name for t in proto.graph.initializer}
    assert {"blocks.0.attn.q.weight", "proj.weight", "classifier.weight", "pos"} <= names  # Gemm keeps names
    g, w = graph_json(proto), initializers(proto)
    ints = {k: v for k, v in w.items() if v.dtype.kind in "iu"}
    assert count_graph(g, w, constants=ints).dense_flops == count_model(model).dense_flops

    engines_match_torch(model, proto, "tiny_transformer", (M, T))


def test_two_bit_bundle_round_trip(tmp_path):
    pytest.importorskip("onnx")
    from converters.quant.bitplan import quantizable_layers
    from edge_ser.inputs.patches import LMSSpec

    spec = LMSSpec(n_mels=40, win_length=400, hop_length=160, n_fft=512, segment_frames=32)
    torch.manual_seed(0)
    model = tiny_transformer(n_mels=40, segment_frames=32, num_classes=3, width=0.5).eval()
    perturb_norms(model)
    model.set_normalization(-40.0, 15.0)
    layers = list(quantizable_layers(model))
    assert layers[:3] == ["stem.0", "stem.3", "proj"] and layers[-1] == "classifier" and len(layers) == 16
    # convs and Linears at 2 bits; LayerNorms, BatchNorms and `pos` stay float32
    b, frozen = two_bit_bundle_round_trip(model, tmp_path, spec)
    rows = b.manifest["layers"]
    assert [r["name"] for r in rows] == layers and all(r["bits"] == 2 and r["flops"] for r in rows)
    attn = sum(r.flops for r in count_model(frozen).layers if r.op == "MatMul" and r.layer is None)
    assert (
        sum(r["flops"] for r in rows) + attn
        == count_model(frozen).dense_flops
        == b.manifest["flops"]["dense_flops"]
    )
