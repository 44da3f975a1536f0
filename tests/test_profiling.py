"""Per-node times from the engines that can give them, lined up with the bundle's graph nodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_ser.bundle import load_bundle
from edge_ser.engines import load_engine
from edge_ser.engines.profiling import node_times

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "av_cnn"


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    return {
        "faces": rng.random((1, 6, 64, 64), dtype=np.float32),
        "audio": rng.random((1, 6, 40), dtype=np.float32),
    }


@pytest.mark.parametrize("engine", ["numpy", "onnxruntime"])
def test_every_conv_and_gemm_gets_time(engine, inputs):
    if engine == "onnxruntime":
        pytest.importorskip("onnxruntime")
    b = load_bundle(BUNDLE)
    times = node_times(load_engine(b, engine, threads=1), inputs, repeats=5)
    nodes = b.graph["nodes"]
    assert set(times) == set(range(len(nodes)))
    for i, n in enumerate(nodes):
        if n["op"] in ("Conv", "Gemm"):
            assert times[i] > 0, (i, n["op"])  # fused kernels are attributed to their conv / dense node
    assert all(v >= 0 for v in times.values())


def test_tflite_has_no_per_node_times(inputs):
    pytest.importorskip("ai_edge_litert")
    assert node_times(load_engine(load_bundle(BUNDLE), "tflite-int8"), inputs) is None
