"""Phased int8 (`converters.export.tflite_phases`): a FULLY_CONNECTED chain whose activations are carried as
int8 copies on shifted grids. The copies must keep the LAQ codes (tiled) with the scales divided by the input
copies, the device engine must quantize and average them as the manifest says, and the result must sit closer
to fp32 than plain int8 of the same calibration."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_ser.bundle import load_bundle
from edge_ser.bundle.manifest import TFLITE_PHASES, phase_offsets
from edge_ser.bundle.write import write_bundle
from edge_ser.errors import BundleError

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


@pytest.mark.parametrize("k", TFLITE_PHASES)
def test_phase_offsets_are_centred_and_one_step_apart(k: int) -> None:
    o = phase_offsets(k)
    assert len(o) == k and abs(float(o.sum())) < 1e-6
    assert np.allclose(np.diff(o), 1.0 / k) and o.min() > -0.5 and o.max() < 0.5
    # the mean of the k roundings is x on a grid k times finer: error <= half of step / k
    x = np.linspace(-3, 3, 10001)
    mean = np.mean([np.rint(x - off) + off for off in o], axis=0)
    assert np.abs(mean - x).max() <= 0.5 / k + 1e-9


def test_phase_offsets_refuse_other_counts() -> None:
    with pytest.raises(ValueError, match="phases must be one of"):
        phase_offsets(3)


def _edited(tmp_path: Path, name: str, edit) -> Path:
    """A copy of a shipped bundle with its manifest edited (written as a bundle: files and sums listed)."""
    b = load_bundle(BUNDLES / name)
    m = copy.deepcopy(b.manifest)
    edit(m)
    return write_bundle(tmp_path / "b", manifest=m, files=dict(b.files))


@pytest.mark.parametrize(
    ("variant", "phases", "message"),
    [
        ("int8", 3, r"tflite.variants\['int8'\].output.phases: must be one of \[1, 2, 4, 8\].*got 3"),
        ("int8", True, r"output.phases: must be one of"),
        (
            "fp32",
            2,
            r"tflite.variants\['fp32'\].output: a float32 tensor is not quantized, but has \['phases'\]",
        ),
    ],
)
def test_manifest_checks_phases(tmp_path: Path, variant: str, phases, message: str) -> None:
    def edit(m: dict) -> None:
        m["tflite"]["variants"][variant]["output"]["phases"] = phases

    with pytest.raises(BundleError, match=message):
        load_bundle(_edited(tmp_path, "ser_ravdess", edit))


@pytest.mark.parametrize("name", ["ser_emodb", "ser_ravdess"])
def test_shipped_functionals_bundles_ship_phased_int8(name: str) -> None:
    spec = load_bundle(BUNDLES / name).manifest["tflite"]["variants"]["int8"]
    assert spec["inputs"]["functionals"]["phases"] == 4 and spec["output"]["phases"] == 8


tflite = pytest.importorskip("edge_ser.engines.tflite")


def _width(bundle) -> int:
    """Values per row of a functionals bundle (88, or 327 for the extended layout)."""
    return int(bundle.manifest["model"]["inputs"][0]["shape"][1])


@pytest.mark.skipif(tflite.unavailable() is not None, reason=f"no TFLite interpreter: {tflite.unavailable()}")
def test_engine_quantizes_the_copies_and_averages_the_output() -> None:
    b = load_bundle(BUNDLES / "ser_ravdess")
    e = tflite.TFLiteEngine(b, "int8")
    (t,) = e._ins
    assert (t.phases, e._out.phases) == (4, 8)
    assert "4 phased copies" in e.describe()
    x = np.random.default_rng(0).standard_normal((5, _width(b))).astype(np.float32)
    q = e._prepare(x)["functionals"]
    std = e.adapt  # the engine standardises first: undo nothing, compare against its own standardised rows
    z = std(x)["functionals"]
    want = np.concatenate(
        [np.clip(np.rint(z / t.scale - o) + t.zero_point, -128, 127) for o in phase_offsets(t.phases)], 1
    )
    np.testing.assert_array_equal(q, want.astype(np.int8))
    assert e.predict(x).shape == (5, 8)
    assert e.predict(x[:1]).shape == (1, 8) and e.predict(x[:0]).shape == (0, 8)


@pytest.mark.skipif(tflite.unavailable() is not None, reason=f"no TFLite interpreter: {tflite.unavailable()}")
def test_engine_refuses_copies_the_model_does_not_have(tmp_path: Path) -> None:
    def edit(m: dict) -> None:
        m["tflite"]["variants"]["int8"]["inputs"]["functionals"]["phases"] = 2

    width = 2 * _width(load_bundle(BUNDLES / "ser_ravdess"))
    with pytest.raises(BundleError, match=rf"expected \[batch, {width}\].*2 phased copies"):
        tflite.TFLiteEngine(load_bundle(_edited(tmp_path, "ser_ravdess", edit)), "int8")


# ---------------------------------------------------------------------------------------------------------------
# the rewrite itself (needs tensorflow's flatbuffer schema)
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def converted():
    pytest.importorskip("tensorflow", reason="tensorflow-cpu (the tf-export extra) is not installed")
    from converters.export import onnx_tflite as ot

    b = load_bundle(BUNDLES / "ser_ravdess")
    t = ot.trace(ot.bundle_graph(b))
    rng = np.random.default_rng(1)
    cal = {"functionals": rng.standard_normal((400, _width(b))).astype(np.float32)}
    return b, t, ot.convert(t, "fp32"), ot.convert(t, "int8", cal)


def test_phased_weights_are_the_laq_codes_tiled(converted) -> None:
    from converters.export import tflite_bundle as tb
    from converters.export.tflite_export import int8_weights
    from converters.export.tflite_phases import Phasing

    _, t, _, m8 = converted
    p = tb.phased(m8, Phasing(4, 2, 8))
    assert p.input_phases == {"functionals": 4} and p.output_phases == 8
    w = int8_weights(p)
    for la in t.layers:  # ser_ravdess: features.0, features.3, classifier (of each member of an ensemble)
        q, s, zp, dim = w[la.name]
        k_out = 8 if la.name.endswith("classifier") else 2  # logits x8, hidden x2
        k_in = 4 if la.name.endswith("features.0") else 2  # the input x4
        np.testing.assert_array_equal(q, np.tile(la.codes, (k_out, k_in)))
        np.testing.assert_array_equal(s, np.tile(la.scales / np.float32(k_in), k_out))
        assert not zp.any() and dim == 0


def test_phased_int8_is_closer_to_fp32_than_plain(converted) -> None:
    from converters.export import tflite_bundle as tb
    from converters.export.tflite_export import run_tflite
    from converters.export.tflite_phases import Phasing

    b, _, m32, m8 = converted
    x = np.random.default_rng(2).standard_normal((3000, _width(b))).astype(np.float32)
    y32, y8 = run_tflite(m32, x), run_tflite(m8, x)
    same = run_tflite(tb.phased(m8, Phasing(1, 1, 1)), x)
    np.testing.assert_array_equal(same, y8)  # one copy everywhere: the plain model
    yp = run_tflite(tb.phased(m8, Phasing(4, 2, 8)), x)
    top = y32.argmax(1)
    # compare where the logits lie inside the output range (the floored ones saturate in both)
    lo = (-128 - m8.output_quant[1]) * m8.output_quant[0]
    inside = y32 > lo + m8.output_quant[0]
    err8, errp = np.abs(y8 - y32)[inside].mean(), np.abs(yp - y32)[inside].mean()
    assert errp < 0.6 * err8, (errp, err8)
    assert (yp.argmax(1) != top).sum() < (y8.argmax(1) != top).sum()


def test_only_fully_connected_chains_are_phased() -> None:
    pytest.importorskip("tensorflow", reason="tensorflow-cpu (the tf-export extra) is not installed")
    from converters.export.tflite_phases import Phasing, phase
    from edge_ser.errors import ConfigError

    b = load_bundle(BUNDLES / "tiny_transformer_emodb")
    data = b.files[b.manifest["tflite"]["variants"]["int8"]["file"]]
    with pytest.raises(ConfigError, match="phased int8: op .* is (?!FULLY_CONNECTED)"):
        phase(data, Phasing())
    with pytest.raises(ConfigError, match="hidden phases must be one of"):
        Phasing(4, 3, 8)


def test_phase_bundle_refuses_a_phased_variant(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason="tensorflow-cpu (the tf-export extra) is not installed")
    from converters.export.tflite_phases import phase_bundle
    from edge_ser.errors import ConfigError

    dst = tmp_path / "b"
    shutil.copytree(BUNDLES / "ser_emodb", dst)
    with pytest.raises(ConfigError, match="phased already"):
        phase_bundle(dst)


def test_the_command_says_a_refusal_in_one_line(tmp_path: Path, capsys) -> None:
    """`python -m converters.export.tflite_phases` on a bundle phased already (every shipped audio bundle), one
    without an int8 variant, or no bundle at all ended in a traceback; it is one line and exit status 2."""
    pytest.importorskip("tensorflow", reason="tensorflow-cpu (the tf-export extra) is not installed")
    from converters.export.tflite_phases import run

    dst = tmp_path / "b"
    shutil.copytree(BUNDLES / "ser_emodb", dst)
    for argv, said in (
        ([str(dst)], "its int8 variant is phased already"),
        ([str(tmp_path / "none")], "does not exist"),
        ([str(dst), "--hidden", "3"], "hidden phases must be one of"),
    ):
        assert run(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("python -m converters.export.tflite_phases: error: ")
        assert said in err[0]


def test_a_temporal_conv_graph_is_phased_too() -> None:
    """av_cnn_audio: EXPAND_DIMS, CONV_2D (channels last), RESHAPE, TRANSPOSE, FULLY_CONNECTED: the copies
    follow the channel axis through the layout ops, and the result sits closer to fp32 than plain int8."""
    pytest.importorskip("tensorflow", reason="tensorflow-cpu (the tf-export extra) is not installed")
    from converters.export import onnx_tflite as ot
    from converters.export import tflite_bundle as tb
    from converters.export.tflite_export import int8_weights, op_names, run_tflite
    from converters.export.tflite_phases import Phasing

    b = load_bundle(BUNDLES / "av_cnn_audio")
    t = ot.trace(ot.bundle_graph(b))
    rng = np.random.default_rng(3)
    shape = b.input_shapes[0][1:]
    cal = {"audio": rng.standard_normal((300, *shape)).astype(np.float32)}
    m32, m8 = ot.convert(t, "fp32"), ot.convert(t, "int8", cal, input_ranges={"audio": (-5.0, 5.0)})
    assert {"CONV_2D", "TRANSPOSE", "EXPAND_DIMS"} <= set(op_names(m8))
    assert m8.input_quant["audio"][0] == pytest.approx(10.0 / 255.0, rel=1e-6)  # set through EXPAND_DIMS
    p = tb.phased(m8, Phasing(4, 2, 8))
    w = int8_weights(p)
    conv = next(la for la in t.layers if la.kind != "dense")
    q, s, _, _ = w[conv.name]
    np.testing.assert_array_equal(q, np.tile(conv.codes, (2, 1, 1, 4)))  # out copies x2, input copies x4
    np.testing.assert_array_equal(s, np.tile(conv.scales / np.float32(4), 2))
    x = rng.standard_normal((2000, *shape)).astype(np.float32)
    y32, y8, yp = run_tflite(m32, x), run_tflite(m8, x), run_tflite(p, x)
    top = y32.argmax(1)
    assert np.abs(yp - y32).mean() < 0.6 * np.abs(y8 - y32).mean()
    assert (yp.argmax(1) != top).sum() < (y8.argmax(1) != top).sum()


@pytest.mark.parametrize("name", ["ser_emodb", "ser_ravdess", "av_cnn_audio", "laq_mlp_emodb"])
@pytest.mark.skipif(tflite.unavailable() is not None, reason=f"no TFLite interpreter: {tflite.unavailable()}")
def test_shipped_phased_int8_keeps_fp32_top1_on_in_range_rows(name: str) -> None:
    """Every phased bundle, without data: standardised rows inside the training range (N(0, 1), as the engine
    feeds the model), int8 against fp32. The real clips are measured by benchmarks/tflite_cross_corpus.py
    (>= 99.44 % on each bundle's corpus); noise rows have more near-ties, so the bar here is lower."""
    b = load_bundle(BUNDLES / name)
    assert b.manifest["tflite"]["variants"]["int8"]["output"]["phases"] == 8

    def engine(variant: str):
        e = tflite.TFLiteEngine(b, variant)
        e.adapt.norm_input, e.adapt.norm, e.adapt.range_input = None, None, None  # rows already standardised
        return e

    x = np.random.default_rng(5).standard_normal((600, *b.input_shapes[0][1:])).astype(np.float32)
    e8 = engine("int8")
    y32, y8 = engine("fp32").predict(x), e8.predict(x)
    assert not e8.adapt.last_ood.any()  # nothing saturated: the range holds N(0, 1) rows
    assert np.mean(y8.argmax(1) == y32.argmax(1)) >= 0.97


@pytest.mark.parametrize("name", ["ser_emodb", "tiny_transformer_emodb"])
@pytest.mark.skipif(tflite.unavailable() is not None, reason=f"no TFLite interpreter: {tflite.unavailable()}")
def test_int8_flags_a_row_only_when_more_than_a_share_of_it_saturates(name: str) -> None:
    """One value beyond the int8 range in a row is the calibration's own clipping: it flagged 35 of 60 of
    tiny_transformer_emodb's training clips out of range (16,384 values a patch), none on onnxruntime. A row is
    flagged when more than SATURATED_SHARE of its values saturate."""
    b = load_bundle(BUNDLES / name)
    e8 = tflite.TFLiteEngine(b, "int8")
    e8.adapt.norm_input, e8.adapt.norm, e8.adapt.range_input = None, None, None  # rows already standardised
    shape = b.input_shapes[0][1:]
    x = (0.3 * np.random.default_rng(1).standard_normal((3, *shape))).astype(np.float32)
    flat = x.reshape(3, -1)
    n = flat.shape[1]
    flat[1, 0] = 1e3  # one value far beyond the range
    flat[2, : int(np.ceil(2 * tflite.SATURATED_SHARE * n))] = 1e3  # 2 % of the row
    e8.predict(x)
    assert e8.adapt.last_ood.tolist() == [False, False, True]


def test_default_phasing_drops_hidden_copies_for_a_large_layer_writing_a_hidden_activation() -> None:
    """Hidden copies multiply every layer that writes a hidden activation: the shipped small MLPs keep them,
    a first layer or a hidden layer over HIDDEN_COPY_LIMIT weights (laq_mlp_emodb, the extended-functionals
    ser bundles) gets LEAN; the classifier's size never matters; face bundles stay plain int8."""
    tb = pytest.importorskip("converters.export.tflite_bundle", reason="the host's TFLite exporter")
    from types import SimpleNamespace

    def bundle(params: list[int], inputs=("functionals",)):
        plan = {"params": {f"l{i}": p for i, p in enumerate(params)}}
        return SimpleNamespace(manifest={"bitplan": plan}, input_names=list(inputs))

    limit = tb.HIDDEN_COPY_LIMIT
    assert tb.default_phasing(bundle([5632, 2048, 224])) == tb.FUNCTIONALS  # 88-64-32-7
    assert tb.default_phasing(bundle([327 * 64, 2048, 224])) == tb.LEAN  # 327-64-32-7
    assert tb.default_phasing(bundle([92160, 65536, 8192, 448])) == tb.LEAN  # laq_mlp
    assert tb.default_phasing(bundle([limit, limit, 10 * limit])) == tb.FUNCTIONALS
    assert tb.default_phasing(bundle([100, 100], inputs=("face",))) is None


@pytest.fixture(scope="module")
def ensemble_bundle(tmp_path_factory):
    """A 3-seed `FunctionalsEnsemble` bundle (members at 1, 3 and 2 bits, their chains side by side, logits
    summed by ADDs) and standardised rows around its training range."""
    torch = pytest.importorskip("torch", reason="the host pipeline needs torch")
    pytest.importorskip("tensorflow", reason="tensorflow-cpu (the tf-export extra) is not installed")
    from converters.export.bundle import build_bundle
    from converters.models.functionals_mlp import FunctionalsEnsemble, functionals_mlp
    from converters.quant.bitplan import BitPlan
    from converters.quant.qat import freeze
    from edge_ser.features.egemaps import FunctionalsSpec
    from edge_ser.inputs.functionals import FunctionalsKind

    kind = FunctionalsKind(FunctionalsSpec())
    (dim,) = kind.input_shapes["functionals"]
    members = []
    for seed, bits in ((0, 1), (1, 3), (2, 2)):
        torch.manual_seed(seed)
        m = functionals_mlp(num_classes=5, in_features=dim)
        m.set_normalization(torch.linspace(-1, 1, dim), torch.full((dim,), 0.5))
        plan = BitPlan.uniform(m, bits)
        members.append((*freeze(m.eval(), plan), plan))
    model, plan, codes = FunctionalsEnsemble.from_members([(m, p, c) for m, c, p in members])
    path = build_bundle(
        tmp_path_factory.mktemp("ens") / "b",
        model,
        plan,
        codes,
        name="functionals_mlp",
        labels=[f"c{i}" for i in range(5)],
        kind=kind,
        accuracy={"test": 0.0, "dataset": "synthetic", "split": {"kind": "random", "seed": 0}},
    )
    rows = np.random.default_rng(4).standard_normal((3000, dim)).astype(np.float32)
    return load_bundle(path), codes, rows


def test_a_seed_ensemble_is_phased_through_its_adds(ensemble_bundle) -> None:
    """Each member's chain reads the input copies and writes its logits as the output's copies; the ADDs sum
    them copy by copy. Every weight op keeps its member's LAQ codes (tiled), and phased int8 sits closer to
    fp32 than plain int8 of the same calibration."""
    from converters.export import tflite_bundle as tb
    from converters.export.tflite_export import int8_weights, op_names, run_tflite
    from converters.export.tflite_phases import FUNCTIONALS

    b, codes, rows = ensemble_bundle
    models = tb.convert_bundle(b, {"functionals": rows[:1000]}, variants=("fp32", "int8"))
    m32, m8 = models["fp32"], models["int8"]
    assert op_names(m8).count("ADD") == 2
    p = tb.phased(m8, FUNCTIONALS)
    w = int8_weights(p)
    assert sorted(w) == sorted(codes)
    for name, (q, s) in codes.items():
        k_out = 8 if name.endswith("classifier") else 2  # every member's logits carry the output's copies
        k_in = 4 if name.endswith("features.0") else 2
        got_q, got_s, zp, _ = w[name]
        np.testing.assert_array_equal(got_q, np.tile(q, (k_out, k_in)))
        np.testing.assert_allclose(got_s, np.tile(s / np.float32(k_in), k_out), rtol=1e-6)
        assert not zp.any()
    x = rows[1000:]
    y32, y8, yp = run_tflite(m32, x), run_tflite(m8, x), run_tflite(p, x)
    assert np.abs(yp - y32).mean() < 0.6 * np.abs(y8 - y32).mean()
    assert (yp.argmax(1) != y32.argmax(1)).sum() <= (y8.argmax(1) != y32.argmax(1)).sum()


def test_an_add_of_unlike_copies_is_refused() -> None:
    """An ADD whose sides carry different copy counts (here: the input, x4, plus a hidden activation, x2)
    cannot be summed copy by copy."""
    tf = pytest.importorskip("tensorflow", reason="tensorflow-cpu (the tf-export extra) is not installed")
    from converters.export.tflite_phases import FUNCTIONALS, phase
    from edge_ser.errors import ConfigError

    w = np.random.default_rng(5).standard_normal((6, 6)).astype(np.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="features")])
    def f(x):
        return {"logits": x + tf.nn.relu(tf.matmul(x, w) + 0.1)}

    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], tf.Module())
    cal = np.random.default_rng(6).standard_normal((50, 1, 6)).astype(np.float32)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ({"features": r} for r in cal)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    with pytest.raises(ConfigError, match="ADD op .* not carry the same copies"):
        phase(bytes(conv.convert()), FUNCTIONALS)
