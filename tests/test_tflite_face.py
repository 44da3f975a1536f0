"""TFLite for the face bundle (`bundles/face_fer`): depthwise convs, MaxPool with padding and the pixel input
through the ONNX-graph route, the int8 weights holding the LAQ codes (depthwise ones on TFLite's channel axis
3), and the one command `python -m converters.export.tflite_bundle BUNDLE --data fer2013` on a small FER-2013
tree (calibration from its train images / 255)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="tensorflow-cpu (the tf-export extra) is not installed")

from converters.export import onnx_tflite as ot  # noqa: E402
from converters.export import tflite_bundle as tb  # noqa: E402
from converters.export.tflite_export import int8_weights, op_names, run_tflite  # noqa: E402
from edge_ser.bundle import load_bundle  # noqa: E402
from edge_ser.errors import ConfigError  # noqa: E402

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


def _faces(n: int, seed: int) -> np.ndarray:
    """Smooth random "faces" in [0, 1]: [n, 1, 48, 48]."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 1, (n, 1, 12, 12)).repeat(4, axis=2).repeat(4, axis=3)
    return a.astype(np.float32)


def _fp32_matches_onnxruntime(model, side: int, rows: int, tol: float):
    """`model` exported to ONNX ([1, side, side] input), traced (parity with onnxruntime within `tol`), converted
    to fp32 TFLite and run on `rows` random inputs against onnxruntime; returns (the ONNX proto, the TFLite model)."""
    import onnxruntime as ort

    from converters.export.onnx_export import to_onnx

    proto = to_onnx(model, {"x": (1, side, side)})
    g = ot.graph_from_onnx(proto)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    t = ot.trace(g)
    assert ot.check_parity(t, lambda x: sess.run(None, x)[0]) <= tol
    m32 = ot.convert(t, "fp32")
    x = {
        next(iter(g.inputs)): np.random.default_rng(1)
        .standard_normal((rows, 1, side, side))
        .astype(np.float32)
    }
    want = sess.run(None, x)[0]
    assert np.abs(run_tflite(m32, x) - want).max() <= tol * np.abs(want).max()
    return proto, m32


def test_depthwise_conv_and_padded_maxpool_match_onnxruntime() -> None:
    """A float graph with a depthwise conv (multiplier 2), a padded stride-2 MaxPool (ONNX pads with -inf: a
    mirrored edge gives the same max) and a refused grouped (not depthwise) conv."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.Conv2d(4, 8, 3, padding=1, groups=4),
        torch.nn.BatchNorm2d(8),
        torch.nn.MaxPool2d(3, 2, padding=1),
        torch.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 3),
    ).eval()
    with torch.no_grad():
        model[2].running_mean.normal_(0, 0.3)
        model[2].running_var.uniform_(0.5, 1.5)
    proto, m32 = _fp32_matches_onnxruntime(model, 12, 5, 1e-4)
    assert "DEPTHWISE_CONV_2D" in op_names(m32) and "MIRROR_PAD" in op_names(m32)

    bad = ot.graph_from_onnx(proto)
    bad.params = dict(bad.params)
    conv = next(n for n in bad.nodes if n["op"] == "Conv" and (n.get("attrs") or {}).get("group", 1) == 4)
    w = bad.params[conv["inputs"][1]]
    bad.params[conv["inputs"][1]] = np.concatenate([w, w], axis=1)  # 2 input channels per group
    with pytest.raises(ConfigError, match="depthwise"):
        ot.trace(bad)


def test_antialiased_blur_matches_onnxruntime() -> None:
    """The anti-aliased face model's downsampling (max pool 3/1, then AveragePool 2/1 with zero pads counted
    and AveragePool 2/2): a padded count_include_pad AveragePool becomes a zero pad and a VALID average."""
    import torch

    from converters.models.face_cnn import blur_down

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(3, 1, padding=1),
        blur_down(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 6 * 6, 3),  # every blurred value (edges too) reaches a logit
    ).eval()
    _, m32 = _fp32_matches_onnxruntime(model, 11, 3, 1e-5)
    assert "AVERAGE_POOL_2D" in op_names(m32) and "PAD" in op_names(m32)


def test_face_bundle_converts_with_its_codes() -> None:
    b = load_bundle(BUNDLES / "face_fer")
    g = ot.bundle_graph(b)
    assert g.ranges["face"] == (0.0, 1.0)
    t = ot.trace(g)
    x = {"face": _faces(6, seed=1)}
    want = ot.reference_logits(b)(x)
    m32 = ot.convert(t, "fp32")
    assert np.abs(run_tflite(m32, x) - want).max() <= 1e-4 * np.abs(want).max()
    m8 = ot.convert(t, "int8", {"face": _faces(48, seed=2)})
    scale, zp = m8.input_quant["face"]
    assert abs(scale - 1 / 255) < 1e-6 and zp == -128  # pixels / 255 are exact in int8
    w8 = int8_weights(m8)
    dw = [la for la in t.layers if la.kind == "dwconv2d"]
    assert dw and all(la.codes is not None for la in t.layers)
    for la in t.layers:
        q, s, z, dim = w8[la.name]
        np.testing.assert_array_equal(q, la.codes)
        np.testing.assert_array_equal(s, la.scales)
        assert not z.any() and dim == (3 if la.kind == "dwconv2d" else 0)
    y8 = run_tflite(m8, x)
    assert np.mean(y8.argmax(1) == want.argmax(1)) >= 4 / 6


def _fer_tree(root: Path, per_class: int = 3) -> Path:
    import cv2

    rng = np.random.default_rng(0)
    for split in ("train", "validation"):
        for label in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"):
            d = root / split / label
            d.mkdir(parents=True)
            for i in range(per_class):
                img = (_faces(1, int(rng.integers(1 << 30)))[0, 0] * 255).astype(np.uint8)
                cv2.imwrite(str(d / f"{split}_{label}_{i}.png"), img)
    return root


def test_tflite_bundle_cli_on_a_face_bundle(tmp_path: Path, monkeypatch) -> None:
    """The one command: FER-2013 train images -> fp32 / fp16 / int8 in the bundle, model.onnx and weights.esq
    unchanged, the manifest's tflite block naming input "face"."""
    monkeypatch.setenv("EDGE_SER_CACHE", str(tmp_path / "cache"))
    fer = _fer_tree(tmp_path / "fer2013")
    dst = tmp_path / "face_fer"
    shutil.copytree(BUNDLES / "face_fer", dst)
    before = {n: (dst / n).read_bytes() for n in ("model.onnx", "weights.esq")}
    assert tb.main([str(dst), "--data", "fer2013", "--data-root", str(fer), "--max-rows", "16"]) == 0
    assert {n: (dst / n).read_bytes() for n in before} == before
    manifest = json.loads((dst / "manifest.json").read_text())
    v = manifest["tflite"]["variants"]
    assert set(v) == {"fp32", "fp16", "int8"}
    assert v["int8"]["inputs"]["face"]["dtype"] == "int8"
    b = load_bundle(dst)
    assert {"tflite-fp32", "tflite-fp16", "tflite-int8"} <= set(b.manifest["tflite"]["variants"]) | {
        f"tflite-{k}" for k in v
    }
    with pytest.raises(ConfigError, match="fer2013"):
        tb.main([str(dst), "--data", "emodb", "--data-root", str(fer)])
