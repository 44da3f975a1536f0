"""Every shipped bundle (each folder of bundles/, so a bundle added later is covered too) gives the same outputs on
the numpy engine as on onnxruntime: logits within 1e-4 relative (to the largest |logit|) and the same top-1, one
row at a time (the batch-1 path) and as one batch, on real EMODB clips made by the bundle's own input kind
(benchmarks/backends.py's inputs: FER-2013 faces with them for a model that takes faces; seeded noise clips
through the kind when the data sets are absent). Also: the fp16 ONNX variant a bundle may carry agrees with fp32,
and the numpy engine's per-thread work buffers give the same answers from two threads at once.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from benchmarks.backends import bundle_inputs, shipped_bundles, speech_clips
from edge_ser.bundle import load_bundle
from edge_ser.engines import load_engine

BUNDLES = shipped_bundles()
RTOL = 1e-4


@pytest.fixture(scope="module")
def clips():
    return speech_clips(4)[0]


def _rows(x: dict[str, np.ndarray], i: int, j: int) -> dict[str, np.ndarray]:
    return {k: v[i:j] for k, v in x.items()}


def _assert_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    scale = float(np.abs(want).max())
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale, err_msg=what)
    assert (got.argmax(1) == want.argmax(1)).all(), what


def test_bundles_are_found():
    names = {p.name for p in BUNDLES}
    assert {"laq_mlp_emodb", "tiny_transformer_emodb", "ser_emodb", "av_cnn"} <= names, names


@pytest.mark.parametrize("path", BUNDLES, ids=[p.name for p in BUNDLES])
def test_numpy_engine_matches_onnxruntime(path: Path, clips) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime is the reference; not installed here")
    bundle = load_bundle(path)
    x = bundle_inputs(bundle, clips)
    n = len(next(iter(x.values())))
    ref = load_engine(bundle, "onnxruntime", threads=1)
    eng = load_engine(bundle, "numpy")
    want = ref.predict(x)
    one_by_one = np.concatenate([eng.predict(_rows(x, i, i + 1)) for i in range(n)])
    _assert_close(one_by_one, want, f"{path.name}: batch 1")
    _assert_close(eng.predict(x), want, f"{path.name}: batch {n}")


@pytest.mark.parametrize("path", BUNDLES, ids=[p.name for p in BUNDLES])
def test_numpy_engine_from_two_threads(path: Path, clips) -> None:
    bundle = load_bundle(path)
    x = bundle_inputs(bundle, clips)
    n = len(next(iter(x.values())))
    eng = load_engine(bundle, "numpy")
    want = np.concatenate([eng.predict(_rows(x, i, i + 1)) for i in range(n)])
    got: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        order = list(range(n)) if k == 0 else list(reversed(range(n)))
        rows = {i: eng.predict(_rows(x, i, i + 1)) for _ in range(3) for i in order}
        got[k] = np.concatenate([rows[i] for i in range(n)])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(2):
        np.testing.assert_array_equal(got[k], want, err_msg=f"{path.name}: thread {k}")
