"""TFLite export of the audio-visual CNN (av_cnn) and the TFLite engine on its two-input bundle.

Models: av_cnn in each mode, frozen (`converters.quant.qat.freeze`) at a bit plan mixing 1, 2, 4 and 8 bits
and one float (32-bit) layer; the fused one is first trained briefly on the synthetic audio-visual set (real
pre-processing: Haar face crops in [0, 1], 6 x 40 frame-averaged MFCCs), so its logits have real margins.
Each is exported to fp32, fp16 and int8 (calibrated on the synthetic clips) and compared with the torch model:
  fp32  max |logit diff| <= 1e-4 * max |torch logit|, same class on every clip   (measured <= 5e-7)
  fp16  <= 3e-3 relative, same class on every clip                                (measured <= 6e-4)
  int8  same class as fp32 on most clips (reported; asserted >= INT8_AGREEMENT)
A wrong flatten order (TFLite's NHWC vs torch's (C, H, W)) or a wrong weight layout would move the fp32
logits by far more than 1e-4, so the fp32 parity is the layout test. The int8 model's weights, read back
through the interpreter, are exactly the frozen QAT codes and scales (in TFLite's layout), the fp32 model's
exactly float32(codes) * scales.
"""

from __future__ import annotations

import copy
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
torch = pytest.importorskip("torch", reason="the host pipeline needs torch")
pytest.importorskip("onnx")
if importlib.util.find_spec("tensorflow") is None:
    pytest.skip("TFLite export needs tensorflow (edge-ser[tf-export])", allow_module_level=True)
pytest.importorskip("ai_edge_litert", reason="running .tflite models needs ai-edge-litert")

from converters.data.av_dataset import AVArrays, synthetic_av_arrays  # noqa: E402
from converters.export.bundle import build_bundle  # noqa: E402
from converters.export.tflite_export import (  # noqa: E402
    VARIANTS,
    TFLiteModel,
    export_tflite,
    int8_weights,
    interpreter,
    layer_weights,
    normalized_input,
    op_names,
    run_tflite,
    standardize_inputs,
)
from converters.models import av_cnn  # noqa: E402
from converters.quant import BitPlan, freeze  # noqa: E402
from edge_ser.bundle import Bundle, load_bundle, write_bundle  # noqa: E402
from edge_ser.engines import load_engine  # noqa: E402
from edge_ser.errors import BundleError, ConfigError  # noqa: E402
from edge_ser.inputs.av import (
    AVInputSpec,  # noqa: E402
    AVKind,  # noqa: E402
)

MODES = ("fused", "audio", "video")
BITS = {"video.0": 8, "video.3": 4, "video.6": 2, "audio.0": 4, "audio.2": 1, "head.0": 2, "head.3": 32}
"""Mixed bits: every width class (1 = sign * mean, 2..8 symmetric) and one float layer (no codes)."""
REL_TOL = {"fp32": 1e-4, "fp16": 3e-3}
INT8_AGREEMENT = 0.8
"""int8 vs fp32: same class on at least this share of the clips (measured: see the printed report)."""


@dataclass
class Case:
    mode: str
    model: torch.nn.Module  # frozen
    plan: BitPlan
    codes: dict[str, tuple[np.ndarray, np.ndarray]]
    raw: dict[str, np.ndarray]  # raw model inputs of every clip
    ref: np.ndarray  # torch logits of `raw`
    exports: dict[str, TFLiteModel]


def _raw(data: AVArrays, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {n: getattr(data, n).astype(np.float32) for n in names}


@pytest.fixture(scope="module")
def data() -> AVArrays:
    return synthetic_av_arrays(n_per_class=3)  # 21 clips, ~2 s


def _model(mode: str, data: AVArrays, train_steps: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = av_cnn(mode)
    if mode != "video":
        a = data.audio
        model.set_normalization(torch.as_tensor(a.mean((0, 1))), torch.as_tensor(a.std((0, 1))))
    xs = [torch.as_tensor(v) for v in _raw(data, model.input_names).values()]
    y = torch.as_tensor(data.y)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(train_steps):  # full batch: enough for clear logit margins, not for accuracy
        model.train()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(*xs), y).backward()
        opt.step()
    return model.eval()


def _case(mode: str, data: AVArrays, train_steps: int) -> Case:
    model = _model(mode, data, train_steps)
    plan = BitPlan.uniform(model, 8, method="test")
    for layer in plan.bits:
        plan = plan.with_bits(layer, BITS[layer])
    frozen, codes = freeze(model, plan)
    raw = _raw(data, frozen.input_names)
    with torch.no_grad():
        ref = frozen(*(torch.as_tensor(a) for a in raw.values())).numpy()
    cal = standardize_inputs(frozen, raw)
    exports = {
        v: export_tflite(frozen, v, calibration=cal if v == "int8" else None, codes=codes) for v in VARIANTS
    }
    return Case(mode, frozen, plan, codes, raw, ref, exports)


@pytest.fixture(scope="module")
def cases(data: AVArrays) -> dict[str, Case]:
    return {mode: _case(mode, data, train_steps=12 if mode == "fused" else 0) for mode in MODES}


@pytest.fixture(params=MODES)
def case(request, cases: dict[str, Case]) -> Case:
    return cases[request.param]


# --------------------------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------------------------


def test_variants_match_torch(case: Case) -> None:
    graph_in = standardize_inputs(case.model, case.raw)
    want = case.ref.argmax(1)
    scale = float(np.abs(case.ref).max())
    got = {v: run_tflite(case.exports[v], graph_in) for v in VARIANTS}
    for v in VARIANTS:
        err = float(np.abs(got[v] - case.ref).max())
        same = got[v].argmax(1) == want
        print(
            f"{case.mode} {v}: {len(case.exports[v].data)} B; max |diff| {err:.3g} = {err / scale:.2g} of max "
            f"|logit|; same class as torch on {same.sum()}/{len(same)}"
        )
        assert got[v].shape == case.ref.shape and got[v].dtype == np.float32
        if v in REL_TOL:
            assert err <= REL_TOL[v] * scale, f"{case.mode} {v}: {err:.3g} > {REL_TOL[v]} * {scale:.3g}"
            assert same.all(), f"{case.mode} {v}: {int((~same).sum())} clips changed class"
    agree = float((got["int8"].argmax(1) == got["fp32"].argmax(1)).mean())
    print(f"{case.mode} int8 vs fp32: same class on {agree:.1%} of {len(want)} synthetic clips")
    assert agree >= INT8_AGREEMENT, f"{case.mode} int8: same class as fp32 on only {agree:.1%}"


def test_int8_holds_the_qat_codes(case: Case) -> None:
    """Every coded layer's int8 weight IS the frozen codes (TFLite layout) and scales; fp32 is codes * scales."""
    layers = dict(case.model.named_modules())
    weights = int8_weights(case.exports["int8"])
    floats = layer_weights(case.exports["fp32"])
    assert set(weights) == set(floats) == {n for n in BITS if n in layers}  # every layer, coded or not
    assert set(case.codes) == {n for n in weights if BITS[n] <= 8}
    for name, (q, s) in case.codes.items():
        data, scales, zero_points, dim = weights[name]
        tfl = _tflite_layout(q)
        assert data.dtype == np.int8 and data.shape == tfl.shape, name
        assert np.array_equal(data, tfl), name
        assert np.array_equal(scales, s.astype(np.float32)) and dim == 0 and not zero_points.any(), name
        assert np.abs(data).max() <= max(1, 2 ** (BITS[name] - 1) - 1), name  # b-bit codes, one byte each
        w = layers[name].weight.detach().numpy()
        grid = data.astype(np.float32) * scales.reshape((-1,) + (1,) * (data.ndim - 1))
        assert np.array_equal(grid, _tflite_layout(w)), name  # the dequantized int8 weight is the QAT weight
        assert np.array_equal(floats[name], _tflite_layout(w)), name
    for name in set(weights) - set(case.codes):  # the float layer: the converter's own int8 grid
        assert np.array_equal(floats[name], _tflite_layout(layers[name].weight.detach().numpy())), name


def _tflite_layout(a: np.ndarray) -> np.ndarray:
    """torch weight layout -> TFLite's: Conv2d OIHW -> OHWI, Conv1d OIK -> O1KI, Linear unchanged."""
    a = np.asarray(a)
    if a.ndim == 4:
        return a.transpose(0, 2, 3, 1)
    if a.ndim == 3:
        return a.transpose(0, 2, 1)[:, None]
    return a


def test_inputs_by_name_in_onnx_layout(cases: dict[str, Case]) -> None:
    shapes = {"faces": [-1, 6, 64, 64], "audio": [-1, 6, 40]}
    for mode, c in cases.items():
        names = c.model.input_names
        assert normalized_input(c.model) == (None if mode == "video" else "audio")
        for v, m in c.exports.items():
            it = interpreter(m)
            ins = {d["name"]: d for d in it.get_input_details()}
            assert m.inputs == names and set(ins) == set(names), (mode, v, list(ins))
            for n in names:
                assert list(ins[n]["shape_signature"]) == shapes[n], (mode, v, n)
            (out,) = it.get_output_details()
            assert out["name"] == "logits" and list(out["shape_signature"]) == [-1, 7]
        q = c.exports["int8"].input_quant
        assert set(q) == set(names)
        if "faces" in q:  # [0, 1] on a 1/255 grid: the camera's 8-bit pixels exactly
            assert np.isclose(q["faces"][0], 1 / 255, rtol=1e-5) and q["faces"][1] == -128
    ops = op_names(cases["fused"].exports["int8"])
    assert ops.count("CONV_2D") == 5 and ops.count("FULLY_CONNECTED") == 2 and "CONCATENATION" in ops
    assert ops[-2:] == ["FULLY_CONNECTED", "FULLY_CONNECTED"]


def test_export_refuses_what_it_cannot_do(cases: dict[str, Case], data: AVArrays) -> None:
    c = cases["fused"]
    graph_in = standardize_inputs(c.model, c.raw)
    with pytest.raises(ConfigError, match="frame_fusion='shared' is not supported"):
        export_tflite(av_cnn(frame_fusion="shared").eval(), "fp32")
    with pytest.raises(ConfigError, match=r"takes 2 inputs \['faces', 'audio'\]; pass \{name: array\}"):
        export_tflite(c.model, "int8", calibration=graph_in["audio"])
    with pytest.raises(ConfigError, match=r"calibration: inputs \['audio'\], the model takes"):
        export_tflite(c.model, "int8", calibration={"audio": graph_in["audio"]})
    with pytest.raises(ConfigError, match=r"'faces' spans \[0, 255\], the model takes values in \[0, 1\]"):
        export_tflite(c.model, "int8", calibration={**graph_in, "faces": graph_in["faces"] * 255})
    with pytest.raises(ConfigError, match="'audio' looks like raw features"):
        export_tflite(c.model, "int8", calibration=c.raw)
    with pytest.raises(ConfigError, match=r"input 'audio' must be float32 \[n, 6, 40\]"):
        export_tflite(c.model, "int8", calibration={**graph_in, "audio": graph_in["audio"][:, :, :20]})
    with pytest.raises(ConfigError, match="different numbers of rows"):
        export_tflite(c.model, "int8", calibration={**graph_in, "audio": graph_in["audio"][:5]})
    q, s = c.codes["video.3"]
    with pytest.raises(ConfigError, match="'video.3' weight is not float32"):
        export_tflite(c.model, "fp32", codes={"video.3": (q, s * 2)})
    with pytest.raises(ConfigError, match="not a Linear or Conv layer"):
        export_tflite(c.model, "fp32", codes={"video.1": (q, s)})


def test_flatten_order_is_checked(cases: dict[str, Case], monkeypatch: pytest.MonkeyPatch) -> None:
    """Flattening the channels-last activation as it is (TFLite's NHWC order, not torch's (C, H, W)) is caught
    by the export's own TF-vs-torch check before anything is converted."""
    from converters.export import tflite_export

    real = tflite_export._tf_step

    def nhwc_flatten(tf, step, h):
        if step.op == "flatten":
            return tf.reshape(h, [-1, int(np.prod(h.shape[1:]))])
        return real(tf, step, h)

    monkeypatch.setattr(tflite_export, "_tf_step", nhwc_flatten)
    for mode in MODES:
        with pytest.raises(ConfigError, match="away from the torch forward"):
            export_tflite(cases[mode].model, "fp32")


# --------------------------------------------------------------------------------------------------------------
# the engine on a two-input bundle
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(cases: dict[str, Case], tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """The fused model's bundle with its TFLite variants (`tflite_variants` on the raw calibration inputs)."""
    c = cases["fused"]
    path = build_bundle(
        tmp_path_factory.mktemp("av") / "b",
        c.model,
        c.plan,
        c.codes,
        name="av_cnn",
        labels=["neutral", "happy", "sad", "angry", "fear", "disgust", "boredom"],
        kind=AVKind(AVInputSpec(), c.model.input_names),
        accuracy={"test": 0.5, "dataset": "synthetic", "split": {"kind": "unit"}},
        tflite_calibration=c.raw,
    )
    return load_bundle(path)


def test_manifest_tflite_block(bundle: Bundle, cases: dict[str, Case]) -> None:
    block = bundle.manifest["tflite"]
    assert block["normalization_in_graph"] is False
    assert bundle.manifest["normalization"]["input"] == "audio"
    for v, spec in block["variants"].items():
        assert list(spec["inputs"]) == ["faces", "audio"] and "input" not in spec
        m = cases["fused"].exports[v]
        if v == "int8":
            for n in ("faces", "audio"):
                assert (spec["inputs"][n]["scale"], spec["inputs"][n]["zero_point"]) == m.input_quant[n]
        else:
            assert spec["inputs"] == {"faces": {"dtype": "float32"}, "audio": {"dtype": "float32"}}


def test_engine_runs_the_av_model(bundle: Bundle, cases: dict[str, Case]) -> None:
    c = cases["fused"]
    scale = float(np.abs(c.ref).max())
    ys = {}
    for v in VARIANTS:
        e = load_engine(bundle, f"tflite-{v}", threads=1)
        ys[v] = e.predict(c.raw)  # raw MFCCs: the engine standardises "audio", feeds "faces" as is
        if v in REL_TOL:
            assert np.abs(ys[v] - c.ref).max() <= REL_TOL[v] * scale, v
        d = e.describe()
        assert "inputs faces " in d and ", audio " in d and "normalisation by the engine (of 'audio')" in d
    # the engine and run_tflite quantize the same way: identical int8 logits
    np.testing.assert_array_equal(
        ys["int8"], run_tflite(c.exports["int8"], standardize_inputs(c.model, c.raw))
    )
    assert "(scale 0.003922, zero point -128)" in load_engine(bundle, "tflite-int8").describe()


def test_engine_inputs(bundle: Bundle, cases: dict[str, Case]) -> None:
    c = cases["fused"]
    for v in VARIANTS:
        e = load_engine(bundle, f"tflite-{v}")
        whole = e.predict(c.raw)
        one = e.predict({n: a[3] for n, a in c.raw.items()})  # one clip, no batch axis
        np.testing.assert_allclose(one, whole[3:4], rtol=1e-5, atol=1e-5 * float(np.abs(whole).max()))
        np.testing.assert_array_equal(e.predict({n: a[:0] for n, a in c.raw.items()}), np.zeros((0, 7)))
        np.testing.assert_array_equal(e.predict(c.raw), whole)  # back to n after 1 and 0 rows
        with pytest.raises(ConfigError, match=r"takes 2 inputs \['faces', 'audio'\]; pass a dict"):
            e.predict(c.raw["audio"])
        with pytest.raises(ConfigError, match=r"input\(s\) \['faces'\] missing"):
            e.predict({"audio": c.raw["audio"]})
        with pytest.raises(ConfigError, match=r"input 'faces' has shape \[21, 6, 32, 32\], the model takes "
                                              r"\['n', 6, 64, 64\]"):  # fmt: skip
            e.predict({**c.raw, "faces": c.raw["faces"][:, :, :32, :32]})
        with pytest.raises(ConfigError, match="different numbers of rows"):
            e.predict({**c.raw, "audio": c.raw["audio"][:4]})
        with pytest.raises(ConfigError, match="with a batch axis, or none"):
            e.predict({**c.raw, "audio": c.raw["audio"][0]})


def _edit_tflite(data: bytes, edit) -> bytes:
    from tensorflow.lite.tools import flatbuffer_utils as fb

    obj = fb.read_model_from_bytearray(bytearray(data))
    edit(obj.subgraphs[0])
    return bytes(fb.convert_object_to_bytearray(obj))


def test_engine_matches_inputs_by_name(bundle: Bundle, cases: dict[str, Case], tmp_path: Path) -> None:
    """Reordered input tensors run the same; an input the manifest does not name is refused."""
    c = cases["fused"]
    m, files = copy.deepcopy(bundle.manifest), dict(bundle.files)
    m.pop("files")

    def reorder(sg) -> None:
        sg.inputs = sg.inputs[::-1]

    files["model_int8.tflite"] = _edit_tflite(bundle.read("model_int8.tflite"), reorder)
    b = load_bundle(write_bundle(tmp_path / "reordered", manifest=m, files=files))
    e = load_engine(b, "tflite-int8")
    assert [d["name"] for d in e.interpreter.get_input_details()] == ["audio", "faces"]
    np.testing.assert_array_equal(e.predict(c.raw), load_engine(bundle, "tflite-int8").predict(c.raw))

    def rename(sg) -> None:
        sg.tensors[int(sg.inputs[0])].name = b"video"

    files["model_int8.tflite"] = _edit_tflite(bundle.read("model_int8.tflite"), rename)
    b = load_bundle(write_bundle(tmp_path / "renamed", manifest=m, files=files))
    with pytest.raises(
        BundleError,
        match=r"\(model_int8.tflite\): the model's inputs \['audio', 'video'\] do not match the manifest's "
        r"model.inputs \['faces', 'audio'\] \(matched by name; not found: \['faces'\]\)",
    ):
        load_engine(b, "tflite-int8")

    m["tflite"]["variants"]["int8"]["inputs"]["faces"]["zero_point"] = 0
    files["model_int8.tflite"] = bundle.read("model_int8.tflite")
    b = load_bundle(write_bundle(tmp_path / "zp", manifest=m, files=files))
    with pytest.raises(
        BundleError, match=r"the model's input 'faces' 'faces' has zero_point -128, the manifest"
    ):
        load_engine(b, "tflite-int8")
