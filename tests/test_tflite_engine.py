"""TFLite engine: real .tflite models of a bundle's MLP (built here with tensorflow), run through the engine.

The bundle is the laq_mlp miniature of tests/test_bundle.py (real model.onnx + weights.esq); the .tflite files
are a Keras Dense-ReLU-Dense with the same dequantized weights, converted to fp32, fp16 (float16 weights) and
full int8 (int8 input and output, representative data set). They take the standardised feature vector, as the
host exporter's do. The manifest checks of the `tflite` block need neither tensorflow nor an interpreter.
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnx")  # the bundle's model.onnx is built with onnx.helper

from test_bundle import Kit, mlp_kit, mlp_reference, raw_write

from edge_ser.bundle import Bundle, load_bundle, write_bundle
from edge_ser.engines import ENGINES, Engine, available_engines, engines_for, load_engine
from edge_ser.engines.tflite import HINT, TFLiteEngine
from edge_ser.errors import BundleError, ConfigError, InferenceError, MissingDependencyError

VARIANTS = ("fp32", "fp16", "int8")
INTERPRETER_MODULES = (
    "ai_edge_litert",
    "ai_edge_litert.interpreter",
    "tflite_runtime",
    "tflite_runtime.interpreter",
)


def close(a: np.ndarray, b: np.ndarray, rel: float) -> None:
    """Equal within `rel` of the largest magnitude of `b`."""
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(float(np.abs(b).max()), 1e-6)
    err = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
    assert err <= rel * scale, f"max abs diff {err:.3g} > {rel:g} * {scale:.3g}"


def raw_features(kit: Kit, n: int, seed: int) -> np.ndarray:
    """Raw feature rows whose standardised values are N(0, 1), as real features are after the z-score."""
    norm = kit.normalization
    z = np.random.default_rng(seed).normal(size=(n, len(norm["mean"])))
    return (np.asarray(norm["mean"]) + z * np.asarray(norm["std"])).astype(np.float32)


def standardise(kit: Kit, x: np.ndarray) -> np.ndarray:
    norm = kit.normalization
    return (x - np.asarray(norm["mean"], np.float32)) / np.asarray(norm["std"], np.float32)


# --------------------------------------------------------------------------------------------------------------
# fixtures: the .tflite models and bundles
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kit() -> Kit:
    return mlp_kit(seed=5)  # ONNX with normalisation in the graph; the TFLite models without


@pytest.fixture(scope="module")
def models(kit: Kit) -> dict[str, Any]:
    """.tflite bytes per variant, "int8_io" (the int8 model's manifest I/O), "fp32_norm", "fp32_b1"."""
    pytest.importorskip("ai_edge_litert")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = pytest.importorskip("tensorflow")
    from ai_edge_litert.interpreter import Interpreter

    w = kit.weights()
    w1, b1 = w["features.0.weight"].T, w["features.0.bias"]
    w2, b2 = w["features.2.weight"].T, w["features.2.bias"]
    d = w1.shape[0]
    mean = np.asarray(kit.normalization["mean"], np.float32)
    std = np.asarray(kit.normalization["std"], np.float32)

    def keras_mlp(*, batch_size: int | None = None, normalise: bool = False) -> Any:
        inp = tf.keras.Input(shape=(d,), batch_size=batch_size, name="features")
        h = tf.keras.layers.Lambda(lambda t: (t - mean) / std)(inp) if normalise else inp
        l1 = tf.keras.layers.Dense(w1.shape[1], activation="relu")
        l2 = tf.keras.layers.Dense(w2.shape[1])
        m = tf.keras.Model(inp, l2(l1(h)))
        l1.set_weights([w1, b1])
        l2.set_weights([w2, b2])
        return m

    calib = np.random.default_rng(123).normal(size=(200, 1, d)).astype(np.float32)  # standardised features

    def convert(m: Any, variant: str) -> bytes:
        c = tf.lite.TFLiteConverter.from_keras_model(m)
        if variant == "fp16":
            c.optimizations = [tf.lite.Optimize.DEFAULT]
            c.target_spec.supported_types = [tf.float16]
        elif variant == "int8":
            c.optimizations = [tf.lite.Optimize.DEFAULT]
            c.representative_dataset = lambda: ([row] for row in calib)
            c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            c.inference_input_type = tf.int8
            c.inference_output_type = tf.int8
        return bytes(c.convert())

    mlp = keras_mlp()
    out: dict[str, Any] = {v: convert(mlp, v) for v in VARIANTS}
    it = Interpreter(model_content=out["int8"])

    def int8(det: dict[str, Any]) -> dict[str, Any]:
        scale, zp = det["quantization"]
        return {"dtype": "int8", "scale": float(scale), "zero_point": int(zp)}

    (inp,) = it.get_input_details()
    assert inp["name"] == "serving_default_features:0"  # the converter's name: the engine accepts it too
    out["int8_io"] = {"inputs": {"features": int8(inp)}, "output": int8(it.get_output_details()[0])}
    out["fp32_norm"] = convert(keras_mlp(normalise=True), "fp32")  # takes raw features
    out["fp32_b1"] = convert(keras_mlp(batch_size=1), "fp32")  # declares a fixed batch of 1
    return out


FLOAT_IO = {"inputs": {"features": {"dtype": "float32"}}, "output": {"dtype": "float32"}}


def tflite_parts(
    kit: Kit, models: dict[str, Any], variants: tuple[str, ...] = VARIANTS, *, in_graph: bool = False
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Manifest and files of a bundle carrying `variants` (the host exporter's layout)."""
    m, files = kit.manifest(), kit.files()
    block: dict[str, Any] = {"normalization_in_graph": in_graph, "variants": {}}
    for v in variants:
        name = f"model_{v}.tflite"
        io = copy.deepcopy(models["int8_io"]) if v == "int8" else copy.deepcopy(FLOAT_IO)
        block["variants"][v] = {"file": name, **io}
        files[name] = models["fp32_norm"] if in_graph else models[v]
    m["tflite"] = block
    return m, files


def make_bundle(path: Path, kit: Kit, models: dict[str, Any], *args: Any, **kw: Any) -> Bundle:
    m, files = tflite_parts(kit, models, *args, **kw)
    return load_bundle(write_bundle(path, manifest=m, files=files))


@pytest.fixture(scope="module")
def bundle(kit: Kit, models: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return make_bundle(tmp_path_factory.mktemp("tfl") / "b", kit, models)


# --------------------------------------------------------------------------------------------------------------
# numbers
# --------------------------------------------------------------------------------------------------------------


def test_variants_match_numpy_reference(kit: Kit, bundle: Bundle) -> None:
    x = raw_features(kit, 400, seed=1)
    ref = mlp_reference(kit, x)
    for variant, rel in (("fp32", 1e-5), ("fp16", 1e-2)):
        e = load_engine(bundle, f"tflite-{variant}")
        assert isinstance(e, TFLiteEngine) and isinstance(e, Engine) and e.name == f"tflite-{variant}"
        y = e.predict(x)
        assert y.dtype == np.float32 and y.shape == (400, 7)
        close(y, ref, rel)
    e = load_engine(bundle, "tflite-int8")
    y = e.predict(x)
    assert y.dtype == np.float32 and y.shape == (400, 7)
    same = float((y.argmax(1) == ref.argmax(1)).mean())
    assert same >= 0.95, same
    # Post-training int8: on most rows a step or two of the output scale (~1/150 of the logit range); rows
    # that push the hidden ReLU or a logit past the range seen in calibration (200 samples) saturate there,
    # up to ~12% of the range here (checked: the hidden tensor clips; the engine's (de)quantization is exact).
    err = np.abs(y.astype(np.float64) - ref) / np.abs(ref).max()
    assert err.mean() <= 0.01 and err.max() <= 0.2, (err.mean(), err.max())
    assert "ai_edge_litert.interpreter.Interpreter" in e.describe() and "int8" in e.describe()


def test_normalisation_is_applied(kit: Kit, bundle: Bundle, models: dict[str, Any], tmp_path: Path) -> None:
    """The engine standardises raw features for models that take standardised ones, and only for those."""
    from ai_edge_litert.interpreter import Interpreter

    x = raw_features(kit, 8, seed=2)
    it = Interpreter(model_content=models["fp32"])
    it.resize_tensor_input(0, list(x.shape))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], standardise(kit, x))
    it.invoke()
    by_hand = it.get_tensor(it.get_output_details()[0]["index"])
    e = load_engine(bundle, "tflite-fp32")
    np.testing.assert_allclose(e.predict(x), by_hand, rtol=1e-6, atol=1e-6)
    assert "normalisation by the engine" in e.describe()

    # a variant with the normalisation in its graph is fed the raw features
    b = make_bundle(tmp_path / "b", kit, models, ("fp32",), in_graph=True)
    e = load_engine(b, "tflite")
    close(e.predict(x), mlp_reference(kit, x), 1e-5)
    assert "normalisation in the graph" in e.describe()


def test_batches(kit: Kit, bundle: Bundle) -> None:
    x = raw_features(kit, 64, seed=3)
    for variant in VARIANTS:
        e = load_engine(bundle, variant=variant, engine="tflite")
        rows = np.concatenate([e.predict(x[i]) for i in range(len(x))])  # [d] -> [1, classes]
        assert rows.shape == (64, 7)
        whole = e.predict(x)
        np.testing.assert_allclose(whole, rows, rtol=1e-5, atol=1e-5 * float(np.abs(rows).max()))
        np.testing.assert_array_equal(e.predict(x[:1]), rows[:1])  # back to one row after 64
        np.testing.assert_allclose(
            e.predict(x[5:8]), rows[5:8], rtol=1e-5, atol=1e-5 * float(np.abs(rows).max())
        )
        np.testing.assert_array_equal(e.predict(x), whole)
        assert e.predict(x[:0]).shape == (0, 7)
        assert "input resized to n rows" in e.describe()


def test_fixed_batch_model(
    kit: Kit, models: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model declaring batch 1 is resized too; if it refused, the engine would run it one row at a time."""
    m, files = tflite_parts(kit, models, ("fp32",))
    files["model_fp32.tflite"] = models["fp32_b1"]
    b = load_bundle(write_bundle(tmp_path / "b", manifest=m, files=files))
    x = raw_features(kit, 16, seed=4)
    ref = mlp_reference(kit, x)
    e = load_engine(b, "tflite")
    assert "[1, 180]" in e.describe()
    close(e.predict(x), ref, 1e-5)
    assert "input resized" in e.describe()

    e = load_engine(b, "tflite")

    def refuse(*_: Any, **__: Any) -> None:
        raise RuntimeError("cannot resize")

    monkeypatch.setattr(e.interpreter, "resize_tensor_input", refuse)
    close(e.predict(x), ref, 1e-5)
    close(e.predict(x[:1]), ref[:1], 1e-5)
    assert "one invoke per row" in e.describe()

    dyn = load_engine(make_bundle(tmp_path / "c", kit, models, ("fp32",)), "tflite")
    monkeypatch.setattr(dyn.interpreter, "resize_tensor_input", refuse)
    with pytest.raises(
        BundleError, match=r"TFLite variant 'fp32' \(model_fp32.tflite\): cannot run a batch of 16"
    ):
        dyn.predict(x)


def test_threads(kit: Kit, bundle: Bundle) -> None:
    x = raw_features(kit, 64, seed=5)
    for variant in VARIANTS:
        ys = []
        for threads in (1, 2):
            e = load_engine(bundle, f"tflite-{variant}", threads=threads)
            assert e.threads == threads and f"threads {threads}" in e.describe()
            ys.append(e.predict(x))
        np.testing.assert_allclose(ys[0], ys[1], rtol=1e-5, atol=1e-5 * float(np.abs(ys[0]).max()))
    assert "threads default" in load_engine(bundle, "tflite").describe()
    with pytest.raises(ConfigError, match="threads=0"):
        load_engine(bundle, "tflite", threads=0)


def test_predict_inputs(kit: Kit, bundle: Bundle) -> None:
    x = raw_features(kit, 4, seed=6)
    for variant in VARIANTS:
        e = load_engine(bundle, f"tflite-{variant}")
        np.testing.assert_array_equal(e.predict({"features": x}), e.predict(x))
        np.testing.assert_array_equal(e.predict(x.astype(np.float64)), e.predict(x))
        with pytest.raises(
            ConfigError, match=r"input 'features' has shape \[4, 90\], the model takes \['n', 180\]"
        ):
            e.predict(x[:, :90])
        with pytest.raises(ConfigError, match="missing"):
            e.predict({"feats": x})
        with pytest.raises(ConfigError, match="numeric"):
            e.predict(np.array([["a"] * 180]))
    bad = x.copy()
    bad[1, 3] = np.nan
    for variant in VARIANTS:  # a NaN never reaches a model, let alone a probability
        with pytest.raises(InferenceError, match="input 'features': NaN or infinite values in 1 of 4"):
            load_engine(bundle, f"tflite-{variant}").predict(bad)


def test_int8_input_overflowing_its_grid_saturates() -> None:
    """A finite input so large that x / scale overflows float32 (a face input of 3e38, scale 1/255) is
    saturated and flagged like any out-of-range value: it was refused as "NaN or inf values" (it is neither),
    with a numpy overflow warning, while a NaN or inf is still refused."""
    import warnings

    from edge_ser.engines.tflite import _Tensor

    t = _Tensor("faces", 0, np.dtype(np.int8), (-1, 4), (4,), np.float32(1 / 255), -128)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q, saturated = t.quantize(np.array([[3e38, -3e38, 0.6, 0.0], [0.0, 0.2, 0.4, 1.0]], np.float32))
    assert q.tolist() == [[127, -128, 25, -128], [-128, -77, -26, 127]] and saturated.tolist() == [
        True,
        False,
    ]
    for bad in (np.nan, np.inf):
        with pytest.raises(ConfigError, match="input 'faces' has NaN or inf values"):
            t.quantize(np.array([[bad, 0.0, 0.0, 0.0]], np.float32))


# --------------------------------------------------------------------------------------------------------------
# selection and errors
# --------------------------------------------------------------------------------------------------------------


def test_variant_selection(kit: Kit, bundle: Bundle, models: dict[str, Any], tmp_path: Path) -> None:
    assert "tflite" in ENGINES
    assert load_engine(bundle, "tflite").name == "tflite-int8"
    assert load_engine(bundle, " TFLite-FP16 ").name == "tflite-fp16"
    assert load_engine(bundle, "tflite", variant="fp32").name == "tflite-fp32"
    assert load_engine(bundle, "tflite-fp32", variant="fp32").name == "tflite-fp32"
    assert load_engine(bundle.root, "tflite-int8").name == "tflite-int8"  # a path is loaded and verified
    assert load_engine(bundle).name == "onnxruntime"  # auto never picks TFLite
    assert TFLiteEngine(bundle).name == "tflite-int8" and TFLiteEngine(bundle, "fp16").variant == "fp16"
    no_int8 = make_bundle(tmp_path / "a", kit, models, ("fp32", "fp16"))
    assert load_engine(no_int8, "tflite").name == "tflite-fp16"
    only_fp32 = make_bundle(tmp_path / "b", kit, models, ("fp32",))
    assert load_engine(only_fp32, "tflite").name == "tflite-fp32"

    with pytest.raises(BundleError, match=r"has no TFLite variant 'int8'; it has \['fp32', 'fp16'\]"):
        load_engine(no_int8, "tflite-int8")
    with pytest.raises(BundleError, match=r"has no TFLite variant 'fp16'; it has \['fp32'\]"):
        load_engine(only_fp32, "tflite", variant="fp16")
    with pytest.raises(ConfigError, match="disagree"):
        load_engine(bundle, "tflite-int8", variant="fp16")
    with pytest.raises(ConfigError, match="only the tflite engine has variants"):
        load_engine(bundle, "onnxruntime", variant="int8")
    with pytest.raises(ConfigError, match="only the tflite engine has variants"):
        load_engine(bundle, "tflite", variant="int4")
    with pytest.raises(ConfigError, match=r"engine 'tflite-int4' is not known; choose from .*'tflite-int8'"):
        load_engine(bundle, "tflite-int4")


def test_bundle_without_tflite(kit: Kit, tmp_path: Path) -> None:
    b = load_bundle(kit.write(tmp_path / "b"))
    for name in ("tflite", "tflite-int8"):
        with pytest.raises(
            BundleError, match=r"has no TFLite model \(no 'tflite' block in manifest.json; files "
        ):
            load_engine(b, name)
    assert engines_for(b) == ["onnxruntime", "numpy"]


def test_manifest_disagrees_with_model(kit: Kit, models: dict[str, Any], tmp_path: Path) -> None:
    """The quantization, dtype and file the manifest describes are checked against the interpreter's view."""
    cases = [
        (lambda v: v["int8"]["inputs"]["features"].update(scale=v["int8"]["inputs"]["features"]["scale"] * 1.5),
         "input 'features'", "scale"),
        (lambda v: v["int8"]["output"].update(zero_point=(v["int8"]["output"]["zero_point"] + 7) % 100),
         "output", "zero_point"),
        (lambda v: v["int8"].update(copy.deepcopy(FLOAT_IO)), "input 'features'",
         "dtype int8, the manifest says float32"),
        (lambda v: v["fp32"].update(copy.deepcopy(v["int8"]) | {"file": "model_fp32.tflite"}), "input 'features'",
         "dtype float32, the manifest says int8"),
    ]  # fmt: skip
    for i, (mutate, what, fragment) in enumerate(cases):
        m, files = tflite_parts(kit, models)
        mutate(m["tflite"]["variants"])
        b = load_bundle(write_bundle(tmp_path / f"b{i}", manifest=m, files=files))
        variant = "fp32" if i == 3 else "int8"
        with pytest.raises(BundleError) as ei:
            load_engine(b, f"tflite-{variant}")
        msg = str(ei.value)
        assert msg.startswith(f"bundle {b.source}: TFLite variant {variant!r} (model_{variant}.tflite)"), msg
        assert f"the model's {what}" in msg and fragment in msg, msg

    # labels that do not match the model's outputs; a file that is not a TFLite model
    m, files = tflite_parts(kit, models, ("fp32",))
    m["labels"] = m["labels"][:6]
    m["model"]["outputs"] = [{"name": "logits", "shape": [None, 6], "dtype": "float32"}]
    b = load_bundle(
        raw_write(tmp_path / "labels", m, files), verify=False
    )  # (model.onnx says 7: not checked)
    with pytest.raises(BundleError, match=r"output .* has shape \[-1, 7\] .*expected \[batch, 6\]"):
        load_engine(b, "tflite")
    m, files = tflite_parts(kit, models, ("fp32",))
    files["model_fp32.tflite"] = b"TFL3 but not really a flatbuffer" * 4
    b = load_bundle(write_bundle(tmp_path / "junk", manifest=m, files=files))
    with pytest.raises(BundleError, match=r"\(model_fp32.tflite\): the TFLite interpreter cannot load it"):
        load_engine(b, "tflite")


def _hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError


def test_interpreter_missing(
    kit: Kit, bundle: Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert available_engines()["tflite"] is None
    _hide(monkeypatch, *INTERPRETER_MODULES, "tensorflow")
    assert (
        available_engines()["tflite"]
        == HINT
        == "pip install ai-edge-litert (or the 'tflite' extra from an edge-ser checkout: pip install '.[tflite]')"
    )
    assert available_engines()["onnxruntime"] is None and available_engines()["numpy"] is None
    for call in (lambda: load_engine(bundle, "tflite"), lambda: TFLiteEngine(bundle, "fp32")):
        with pytest.raises(MissingDependencyError) as ei:
            call()
        msg = str(ei.value)
        assert "pip install ai-edge-litert" in msg and "ai-edge-litert" in msg, msg
        assert "ai_edge_litert.interpreter" in msg and "tensorflow" in msg, msg  # what was tried
        assert ei.value.extra == "tflite"
    assert engines_for(bundle) == ["onnxruntime", "numpy"]
    # a bundle without TFLite variants is a BundleError even here: installing a runtime would not help
    with pytest.raises(BundleError, match="has no TFLite model"):
        load_engine(load_bundle(kit.write(tmp_path / "plain")), "tflite")


def test_tensorflow_lite_is_the_last_resort(
    kit: Kit, bundle: Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hide(monkeypatch, *INTERPRETER_MODULES)
    x = raw_features(kit, 5, seed=7)
    e = load_engine(bundle, "tflite-fp32")
    assert "interpreter tensorflow.lite.Interpreter" in e.describe()
    close(e.predict(x), mlp_reference(kit, x), 1e-5)


def test_available_engines_and_engines_for(bundle: Bundle) -> None:
    assert available_engines() == {"onnxruntime": None, "numpy": None, "tflite": None}
    names = ["onnxruntime", "numpy", "tflite-fp32", "tflite-fp16", "tflite-int8"]
    assert engines_for(bundle) == names and engines_for(str(bundle.root)) == names
    for name in names:
        assert load_engine(bundle, name).name == name


# --------------------------------------------------------------------------------------------------------------
# the manifest's tflite block (no tensorflow or interpreter needed)
# --------------------------------------------------------------------------------------------------------------


def _fake_parts(kit: Kit) -> tuple[dict[str, Any], dict[str, bytes]]:
    fake = {"fp32": b"a", "fp16": b"b", "int8": b"c", "fp32_norm": b"d"}
    fake["int8_io"] = {
        "inputs": {"features": {"dtype": "int8", "scale": 0.0312, "zero_point": -3}},
        "output": {"dtype": "int8", "scale": 0.141, "zero_point": 12},
    }
    return tflite_parts(kit, fake)


def test_manifest_tflite_block_checked(kit: Kit, tmp_path: Path) -> None:
    m, files = _fake_parts(kit)
    b = load_bundle(write_bundle(tmp_path / "ok", manifest=m, files=files))  # .tflite bytes are not parsed
    assert b.manifest["tflite"]["variants"]["int8"]["inputs"]["features"]["zero_point"] == -3

    def v(name: str) -> Any:
        return lambda m: m["tflite"]["variants"][name]

    def vin(name: str) -> Any:
        return lambda m: m["tflite"]["variants"][name]["inputs"]["features"]

    cases = [
        (lambda m: m.update(tflite=[1]), "tflite: must be a mapping, got list"),
        (lambda m: m["tflite"].pop("normalization_in_graph"), "tflite.normalization_in_graph: missing (required)"),
        (lambda m: m["tflite"].update(normalization_in_graph="no"), "tflite.normalization_in_graph: must be true or false"),
        (lambda m: m["tflite"].update(variants={}), "tflite.variants: must list at least one variant"),
        (lambda m: m["tflite"]["variants"].update(int4=v("int8")(m)), "tflite.variants['int4']: 'int4' is not a TFLite variant"),
        (lambda m: m["tflite"]["variants"].update(fp16="model_fp16.tflite"), "tflite.variants['fp16']: must be a mapping"),
        (lambda m: v("fp16")(m).update(file="model_fp8.tflite"), "tflite.variants['fp16'].file: 'model_fp8.tflite' is not listed in files"),
        (lambda m: v("fp16")(m).update(file="../model_fp16.tflite"), "is not a valid bundle file name"),
        (lambda m: v("fp16")(m).update(file="model.onnx"), "'model.onnx' is not a .tflite model"),
        (lambda m: v("fp32")(m).pop("output"), "tflite.variants['fp32'].output: missing (required)"),
        (lambda m: vin("fp32")(m).update(dtype="uint8"), "tflite.variants['fp32'].inputs['features'].dtype: 'uint8' is not supported"),
        (lambda m: vin("fp32")(m).update(scale=0.1), "a float32 tensor is not quantized, but has ['scale']"),
        (lambda m: vin("int8")(m).pop("scale"), "tflite.variants['int8'].inputs['features']: an int8 tensor needs its quantization"),
        (lambda m: vin("int8")(m).update(scale=0), "tflite.variants['int8'].inputs['features'].scale: must be > 0, got 0"),
        (lambda m: v("int8")(m)["output"].update(scale=-0.5), "tflite.variants['int8'].output.scale: must be > 0"),
        (lambda m: v("int8")(m)["output"].update(scale="0.1"), "tflite.variants['int8'].output.scale: must be a finite number"),
        (lambda m: vin("int8")(m).update(zero_point=128), "['features'].zero_point: must be between -128 and 127, got 128"),
        (lambda m: vin("int8")(m).update(zero_point=1.5), "['features'].zero_point: must be an integer, got number 1.5"),
        (lambda m: vin("int8")(m).update(zero_point=True), "['features'].zero_point: must be an integer, got boolean"),
        (lambda m: v("fp32")(m).update(input=v("fp32")(m).pop("inputs")["features"]),
         "tflite.variants['fp32'].input: is the old single-input form; list every model input by name: \"inputs\": {'features': {...}}"),
        (lambda m: v("fp32")(m).pop("inputs"), "tflite.variants['fp32'].inputs: missing (required)"),
        (lambda m: v("fp32")(m).update(inputs={}), "inputs: must have one entry per model input ['features']; missing ['features']"),
        (lambda m: v("fp32")(m)["inputs"].update(audio={"dtype": "float32"}), "missing [], not model inputs ['audio']"),
        (lambda m: v("fp32")(m)["inputs"].update(features="float32"), "tflite.variants['fp32'].inputs['features']: must be a mapping"),
        (lambda m: m["normalization"].update(mean=[0.0] * 7, std=[1.0] * 7),
         "tflite.normalization_in_graph: is false, but the 7 normalization values cannot normalise 'features'"),
    ]  # fmt: skip
    for i, (mutate, fragment) in enumerate(cases):
        m, files = _fake_parts(kit)
        mutate(m)
        with pytest.raises(BundleError) as ei:
            write_bundle(tmp_path / f"b{i}", manifest=m, files=files)
        msg = str(ei.value)
        assert msg.startswith(f"bundle {tmp_path / f'b{i}'}: manifest.json: "), msg
        assert fragment in msg, f"case {i}: {fragment!r} not in {msg!r}"
        # the device refuses the same manifest (written without checks)
        with pytest.raises(BundleError, match="manifest.json"):
            load_bundle(raw_write(tmp_path / f"raw{i}", m, files))
