"""Accelerators: the TensorRT placement table (benchmarks/trt_ops.py) covers every op the engines run, the fp16
ONNX copy a bundle may carry agrees with fp32 on the CPU and is what a GPU provider runs, and CUDA / TensorRT
providers asked for by name fall back to the CPU with a ProviderWarning naming them."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest

from benchmarks.backends import bundle_inputs, shipped_bundles, speech_clips
from benchmarks.trt_ops import RELEASES, TRT_OPS, placement, report, segments
from edge_ser.bundle import load_bundle
from edge_ser.bundle.manifest import ONNX_FP16_NAME, validate_manifest
from edge_ser.engines.numpy_engine import SUPPORTED_OPS
from edge_ser.errors import BundleError, ProviderWarning

REPO = Path(__file__).resolve().parents[1]
SMALL = REPO / "bundles" / "av_cnn_audio"
MLP = REPO / "bundles" / "ser_emodb"  # an MLP bundle: no fp16 copy (a GPU has nothing to win on it)
GPU = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


def test_trt_table_covers_every_engine_op():
    missing = [op for op in SUPPORTED_OPS if op not in TRT_OPS]
    assert not missing, f"give these ops a TensorRT verdict in benchmarks/trt_ops.py: {missing}"
    assert all(set(v) == set(RELEASES) for v in TRT_OPS.values())


@pytest.mark.parametrize("path", shipped_bundles(), ids=lambda p: p.name)
def test_trt_placement_of_shipped_bundles(path: Path):
    row = report(path)
    g = load_bundle(path).graph
    consts = set(g["initializers"]) | set(g.get("constants") or {})
    for release in RELEASES:
        p = row[release]
        assert p["tensorrt_nodes"] + sum(p["fallback"].values()) == row["nodes"] == len(g["nodes"])
        why = placement(g, release, consts)
        for node, w in zip(g["nodes"], why, strict=True):
            if node["op"] == "LayerNormalization":  # native in TensorRT from 8.6: falls back on 8.5 only
                assert (w is not None) == (release == "8.5")
        assert p["tensorrt_subgraphs"] == segments(why) >= (1 if p["tensorrt_nodes"] else 0)


def test_segments_count_runs_of_supported_nodes():
    assert segments([None, None, "x", None, "x", "x", None]) == 3
    assert segments(["x"]) == 0 and segments([None]) == 1


@pytest.fixture(scope="module")
def fp16_bundle(tmp_path_factory):
    pytest.importorskip("onnx", reason="the fp16 converter needs onnx (host side)")
    pytest.importorskip("onnxruntime", reason="onnxruntime checks the fp16 copy against fp32")
    from converters.export.onnx_fp16 import add_onnx_fp16

    clips = speech_clips(4)[0]
    x = bundle_inputs(load_bundle(SMALL), clips)
    out = tmp_path_factory.mktemp("half") / "av_cnn_audio"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        path, checked = add_onnx_fp16(SMALL, x, out=out)
    return load_bundle(path), x, checked


def test_fp16_copy_matches_fp32_on_the_cpu(fp16_bundle):
    import onnxruntime as ort

    from edge_ser.engines import load_engine

    bundle, x, checked = fp16_bundle
    block = bundle.manifest["onnx_fp16"]
    assert block["file"] == ONNX_FP16_NAME and ONNX_FP16_NAME in bundle.files
    assert block["checked"] == checked and checked["top1_agreement"] == 1.0 and checked["max_rel_diff"] < 1e-2
    fp32 = load_engine(bundle, "onnxruntime", threads=1)
    assert fp32.model_file == "model.onnx"  # the CPU runs the fp32 graph
    sess = ort.InferenceSession(bundle.read(ONNX_FP16_NAME), providers=["CPUExecutionProvider"])
    assert [i.type for i in sess.get_inputs()] == ["tensor(float)"] and sess.get_outputs()[
        0
    ].type == "tensor(float)"
    got = sess.run(None, fp32.adapt(x))[0]
    want = fp32.predict(x)
    assert (got.argmax(1) == want.argmax(1)).all()
    np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2 * np.abs(want).max())


def test_gpu_provider_runs_the_fp16_copy(fp16_bundle):
    import onnxruntime as ort

    from edge_ser.engines import load_engine
    from edge_ser.engines.onnxrt import fp16_file

    bundle, x, _ = fp16_bundle
    assert fp16_file(bundle, ["CUDAExecutionProvider", "CPUExecutionProvider"]) == ONNX_FP16_NAME
    assert fp16_file(bundle, ["CPUExecutionProvider"]) is None
    assert fp16_file(load_bundle(MLP), ["CUDAExecutionProvider", "CPUExecutionProvider"]) is None
    if any(p in ort.get_available_providers() for p in GPU):
        e = load_engine(bundle, "onnxruntime", providers=["cuda"])
        assert e.model_file == ONNX_FP16_NAME and ONNX_FP16_NAME in e.describe()
        return
    # no GPU here: the request is named in a warning, the fp32 graph runs on the CPU, and answers as before
    with pytest.warns(ProviderWarning, match=r"CUDAExecutionProvider.*running on \['CPUExecutionProvider'\]"):
        e = load_engine(bundle, "onnxruntime", providers=["cuda", "tensorrt"])
    assert e.model_file == "model.onnx" and e.providers == ("CPUExecutionProvider",)
    assert set(e.missing_providers) == set(GPU) and ONNX_FP16_NAME not in e.describe()
    np.testing.assert_array_equal(e.predict(x), load_engine(bundle, "onnxruntime").predict(x))


def test_manifest_checks_the_fp16_block(fp16_bundle):
    bundle, _, _ = fp16_bundle
    good = copy.deepcopy(bundle.manifest)
    validate_manifest(good)
    for change, field in (
        (lambda m: m["files"].pop(ONNX_FP16_NAME), "is not listed in files"),
        (lambda m: m["onnx_fp16"].update(file="model.onnx"), "must be an .onnx file of its own"),
        (lambda m: m["onnx_fp16"]["checked"].update(top1_agreement=1.5), "top1_agreement"),
    ):
        bad = copy.deepcopy(good)
        change(bad)
        with pytest.raises(BundleError, match=field):
            validate_manifest(bad)
