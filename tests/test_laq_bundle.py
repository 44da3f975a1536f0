"""End to end: train -> LAQ -> QAT -> bundle, and the device engines reproduce the torch QAT model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the host pipeline needs torch")
pytest.importorskip("onnx", reason="ONNX export needs the host extra")

from converters.compress import compress  # noqa: E402
from converters.export.bundle import build_bundle  # noqa: E402
from converters.featurize import FeatureCache  # noqa: E402
from converters.models import laq_mlp  # noqa: E402
from converters.pipeline import make_split, prepare  # noqa: E402
from converters.train import TrainConfig, predict, seed_everything, train_classifier  # noqa: E402
from edge_ser.bundle import load_bundle  # noqa: E402
from edge_ser.engines import load_engine  # noqa: E402
from edge_ser.features import FeatureSpec  # noqa: E402
from edge_ser.inputs.vector import VectorKind  # noqa: E402


def _compressed(prep, recipe: str):
    split = make_split(prep, "random", seed=0)
    X, y = prep.X, prep.y
    seed_everything(0)
    model = laq_mlp(X.shape[1], len(prep.classes))
    model.set_normalization(torch.as_tensor(X[split.train].mean(0)), torch.as_tensor(X[split.train].std(0)))
    fp = train_classifier(
        model,
        X[split.train],
        y[split.train],
        X[split.val],
        y[split.val],
        TrainConfig(seed=0, epochs=80),
        progress=False,
    ).model
    c = compress(recipe, fp, X[split.train], y[split.train], X[split.val], y[split.val])
    c.info["float_model"] = fp
    return c, split


def _check_engines(bundle_path: Path, c, X_test: np.ndarray) -> None:
    from edge_ser.engines.base import clamp_to_training_range

    bundle = load_bundle(bundle_path)
    # engines clamp inputs beyond +-OOD_Z training std (tiny synthetic splits have such test rows): so does the reference
    ref = predict(c.model, clamp_to_training_range(bundle, X_test.astype(np.float32)))
    for engine in ("onnxruntime", "numpy"):
        logits = load_engine(bundle, engine).predict(X_test.astype(np.float32))
        assert np.array_equal(logits.argmax(1), ref.argmax(1)), f"{engine}: a test clip changed class"
        rel = np.abs(logits - ref).max() / np.abs(ref).max()
        assert rel < 1e-4, f"{engine}: logits differ by {rel:.2e} relative"


@pytest.mark.data
def test_emodb_bundle_matches_torch_on_every_test_clip(emodb_dir: Path, tmp_path: Path) -> None:
    spec = FeatureSpec()
    prep = prepare("emodb", emodb_dir, spec=spec, cache=FeatureCache(tmp_path / "cache"), progress=False)
    c, split = _compressed(prep, "laq-paper")
    X_test = prep.X[split.test]
    for as_tar in (False, True):
        path = build_bundle(
            tmp_path / ("b.tar" if as_tar else "b"),
            c.model,
            c.plan,
            c.codes,
            name="laq_mlp",
            labels=list(prep.classes),
            kind=VectorKind(spec),
            as_tar=as_tar,
            accuracy={
                "test": c.accuracy(X_test, prep.y[split.test]),
                "dataset": "emodb",
                "split": {"kind": "random", "seed": 0, "sizes": split.sizes()},
            },
        )
        _check_engines(path, c, X_test)
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["bitplan"]["average_bits"] == pytest.approx(c.plan.average_bits)
    assert manifest["feature_spec"] == spec.to_dict() and manifest["labels"] == list(prep.classes)
    assert len(manifest["normalization"]["mean"]) == 180
    assert [r["flops"] for r in manifest["layers"]] == [
        2 * 180 * 512 + 512,
        2 * 512 * 128 + 128,
        2 * 128 * 64 + 64,
        2 * 64 * 7 + 7,
    ]
    assert {"model.onnx", "weights.esq"} <= set(manifest["files"])
    # the packed file really stores b bits per weight: within 5% + 2 KB of the ideal size
    ideal = c.plan.weight_bytes + 4 * 711 + 4 * 711 + 4 * 360  # codes + scales + biases + mean/std
    assert (tmp_path / "b" / "weights.esq").stat().st_size <= ideal * 1.05 + 2048


@pytest.mark.data
def test_onnx_exports_match_torch_on_emodb(emodb_dir: Path, tmp_path: Path) -> None:
    """fp32 ONNX vs the float model, and the INT4/INT8 QDQ ONNX vs the QAT model, on real EMODB features."""
    ort = pytest.importorskip("onnxruntime")
    from converters.export.onnx_export import qdq, to_onnx

    prep = prepare("emodb", emodb_dir, cache=FeatureCache(tmp_path / "cache"), progress=False)
    c, split = _compressed(prep, "laq-paper")
    X = prep.X[split.test].astype(np.float32)

    def run(proto) -> np.ndarray:
        sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        return sess.run(None, {"features": X})[0]

    for model in (c.info["float_model"], c.model):  # the float model, and the QAT model with grid weights
        ref = predict(model, X)
        got = run(to_onnx(model, (180,)))
        assert np.array_equal(got.argmax(1), ref.argmax(1))
        assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()
    q = qdq(to_onnx(c.model, (180,)), c.codes, {k: f"{k}.weight" for k in c.codes}, c.plan.bits)
    ref = predict(c.model, X)
    got = run(q)
    assert np.array_equal(got.argmax(1), ref.argmax(1))
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()
    assert len(q.SerializeToString()) < 0.25 * len(to_onnx(c.model, (180,)).SerializeToString())


def test_synthetic_bundle_every_recipe_family(tmp_path: Path) -> None:
    spec = FeatureSpec()
    prep = prepare(
        "synthetic", tmp_path / "synth", spec=spec, cache=FeatureCache(tmp_path / "cache"), progress=False
    )
    for recipe in ("qat-1", "sensitivity", "fp32"):
        c, split = _compressed(prep, recipe)
        path = build_bundle(
            tmp_path / recipe,
            c.model,
            c.plan,
            c.codes,
            name="laq_mlp",
            labels=list(prep.classes),
            kind=VectorKind(spec),
            accuracy={"test": 0.0, "dataset": "synthetic", "split": {"kind": "random", "seed": 0}},
        )
        _check_engines(path, c, prep.X[split.test])


def test_laq_says_each_of_its_own_warnings_once():
    """`laq --tflite` reads the data again for the TFLite calibration, so every "skipped <file>" of step 1 came a
    second time after step 5 (a review, a folder with one broken WAV). `cmd_laq` runs in `each_warning_once`:
    our warnings (InputWarning, DatasetWarning) once per text, others as they come; the previous showwarning
    after."""
    import warnings

    from converters.data.scan import DatasetWarning
    from converters.zoo_cli import each_warning_once as said_once
    from edge_ser.errors import InputWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        before = warnings.showwarning
        with said_once():
            for _ in range(2):
                warnings.warn("data: skipped a.wav: truncated", InputWarning, stacklevel=1)
                warnings.warn("data: class x: no file", DatasetWarning, stacklevel=1)
                warnings.warn("data: skipped b.wav: truncated", InputWarning, stacklevel=1)
                warnings.warn("something else", UserWarning, stacklevel=1)
        assert warnings.showwarning is before
        warnings.warn(
            "data: skipped a.wav: truncated", InputWarning, stacklevel=1
        )  # a new command says it again
    said = [str(w.message) for w in caught]
    assert said.count("data: skipped a.wav: truncated") == 2 and said.count("data: class x: no file") == 1
    assert said.count("data: skipped b.wav: truncated") == 1 and said.count("something else") == 2
