"""The AV seed CNN (converters.models.av_cnn): counts, shapes, a short training run, ONNX export."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from converters.export.onnx_export import export_model
from converters.models.av_cnn import (
    AVCNN,
    FRAME_FUSIONS,
    MODES,
    AVConfig,
    av_cnn,
)
from converters.models.counts import count_model, count_params, dense_rows


def conv_flops(yh: int, yw: int, ci: int, co: int, kh: int, kw: int) -> int:
    """The AV seed convention: 2*Yh*Yw*Ci*Co*Kh*Kw + Yh*Yw*Co."""
    return 2 * yh * yw * ci * co * kh * kw + yh * yw * co


def dense_flops(i: int, o: int) -> int:
    return 2 * i * o + o


def count_flops(model) -> tuple[list[dict], int]:
    """(conv / dense / matmul rows, their FLOPs) of the model's exported graph, by edge_ser.flops."""
    c = count_model(model)
    return dense_rows(model, c), c.dense_flops


def _inputs(m: AVCNN, n: int, seed: int = 0) -> list:
    g = torch.Generator().manual_seed(seed)
    shapes = m.input_shapes()
    return [torch.rand((n, *shapes[k]), generator=g) for k in m.input_names]


def test_counts_fused_by_hand() -> None:
    m = av_cnn()
    rows, total = count_flops(m)
    by = {r["name"]: r for r in rows}
    # conv1: 6 frames as channels, valid 3x3 -> 62x62x16
    assert by["video.0"]["params"] == 6 * 16 * 9 + 16 == 880
    assert by["video.0"]["flops"] == conv_flops(62, 62, 6, 16, 3, 3) == 6_703_936
    assert by["video.3"]["flops"] == conv_flops(29, 29, 16, 32, 3, 3)
    assert by["video.6"]["flops"] == conv_flops(12, 12, 32, 64, 3, 3)
    # audio: Conv1d 40->16 k5 'same' over 6 segments
    assert by["audio.0"]["params"] == 40 * 16 * 5 + 16 == 3216
    assert by["audio.0"]["flops"] == conv_flops(6, 1, 40, 16, 5, 1) == 38_496
    assert by["audio.2"]["flops"] == conv_flops(6, 1, 16, 32, 5, 1)
    # dense: (64*6*6 + 32*6) -> 16 -> 7
    assert by["head.0"]["params"] == 2496 * 16 + 16 == 39_952
    assert by["head.0"]["flops"] == dense_flops(2496, 16)
    assert by["head.3"]["params"] == 16 * 7 + 7
    assert by["head.3"]["flops"] == dense_flops(16, 7)
    assert total == sum(r["flops"] for r in rows) == 19_948_663
    assert count_params(m) == sum(r["params"] for r in rows) == 69_895
    # the seed reported ~0.06 M / 0.014 GFLOPs; this design is the closest of the alternatives
    assert 0.05e6 < count_params(m) < 0.08e6 and 0.01e9 < total < 0.025e9


def test_counts_single_branch_and_alternatives() -> None:
    audio = av_cnn("audio")
    rows, total = count_flops(audio)
    assert [r["name"] for r in rows] == ["audio.0", "audio.2", "head.0", "head.3"]
    assert rows[2]["flops"] == dense_flops(192, 16) and count_params(audio) == 3216 + 2592 + 3088 + 119
    video = av_cnn("video")
    rows, total = count_flops(video)
    assert rows[-2]["params"] == 2304 * 16 + 16 and count_params(video) == 880 + 4640 + 18496 + 36880 + 119
    shared = av_cnn(frame_fusion="shared")
    rows, total = count_flops(shared)
    assert rows[0]["params"] == 1 * 16 * 9 + 16 and rows[0]["flops"] == 6 * conv_flops(62, 62, 1, 16, 3, 3)
    assert count_params(shared) == 253_495 and total == 86_100_823
    same = av_cnn(video_padding=1)
    assert count_params(same) == 98_567 and count_flops(same)[1] == 26_273_815
    assert count_flops(av_cnn(frame_fusion="shared", video_padding=1))[1] == 121_874_455


@pytest.mark.parametrize("fusion", FRAME_FUSIONS)
@pytest.mark.parametrize("mode", MODES)
def test_forward_shapes(mode: str, fusion: str) -> None:
    m = av_cnn(mode, frame_fusion=fusion).eval()
    assert m(*_inputs(m, 3)).shape == (3, 7)
    with pytest.raises(TypeError):
        m(*_inputs(m, 3), torch.zeros(3, 1))


def test_normalization_buffers() -> None:
    m = av_cnn("audio").eval()
    x = _inputs(m, 4)[0]
    mean, std = torch.rand(40), torch.rand(40) + 0.5
    m.set_normalization(mean, std)
    ref = av_cnn("audio").eval()
    ref.load_state_dict({**m.state_dict(), "mean": torch.zeros(40), "std": torch.ones(40)})
    torch.testing.assert_close(m(x), ref((x - mean) / std))
    with pytest.raises(ValueError):
        av_cnn("video").set_normalization(mean, std)


def _separable(n: int, seed: int) -> tuple:
    """Random tensors whose class shows in both inputs: a brighter face quadrant and a shifted MFCC block."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    faces = torch.rand((n, 6, 64, 64), generator=g) * 0.5
    audio = torch.randn((n, 6, 40), generator=g)
    for c in range(3):
        faces[y == c, :, 32 * (c % 2) : 32 * (c % 2) + 32, 32 * (c // 2) : 32 * (c // 2) + 32] += 0.5
        audio[y == c, :, 10 * c : 10 * c + 10] += 2.0
    return faces, audio, y


def test_short_training_learns() -> None:
    torch.manual_seed(0)
    faces, audio, y = _separable(30, seed=0)
    m = AVCNN(AVConfig(num_classes=3, dropout=0.0))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    m.train()
    for _ in range(12):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(m(faces, audio), y)
        loss.backward()
        opt.step()
    m.eval()
    faces, audio, y = _separable(30, seed=1)  # held-out draw
    with torch.no_grad():
        acc = (m(faces, audio).argmax(1) == y).float().mean().item()
    assert acc > 0.8, acc  # chance is 1/3


def _numpy_engine_run(proto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """Run the exported graph with the numpy engine's op builders (what a bundle's NumpyEngine executes)."""
    from converters.export.onnx_export import graph_json, initializers
    from edge_ser.engines import numpy_engine as ne

    g = graph_json(proto)
    env = {**initializers(proto), **feeds}
    params = dict(initializers(proto))
    for node in g["nodes"]:
        fn = ne._OPS[node["op"]](ne._Node(node, g["opset"], params))
        res = fn(*[env[i] if i else None for i in node["inputs"]])
        env[node["outputs"][0]] = res[0] if isinstance(res, tuple) else res
    return env[g["outputs"][0]["name"]]


@pytest.mark.parametrize("fusion", FRAME_FUSIONS)
@pytest.mark.parametrize("mode", MODES)
def test_onnx_export(mode: str, fusion: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    from edge_ser.engines.numpy_engine import SUPPORTED_OPS

    torch.manual_seed(1)
    m = av_cnn(mode, frame_fusion=fusion).eval()
    if mode != "video":
        m.set_normalization(torch.randn(40), torch.rand(40) + 0.5)
    proto = export_model(m)
    names = [i.name for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    assert names == list(m.input_names)
    ops = {n.op_type for n in proto.graph.node}
    assert ops <= set(SUPPORTED_OPS), ops - set(SUPPORTED_OPS)
    assert not ops & {"Shape", "Gather", "Constant"}
    xs = _inputs(m, 5, seed=2)  # batch 5 != the export batch 1: the batch axis is dynamic
    feeds = {k: x.numpy() for k, x in zip(m.input_names, xs, strict=True)}
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], feeds)[0]
    with torch.no_grad():
        want = m(*xs).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    np.testing.assert_allclose(
        _numpy_engine_run(proto, feeds), want, rtol=1e-5, atol=1e-5 * np.abs(want).max()
    )
