"""The `sequence` input kind (MFCC frame windows) and the TIM-Net-like model on it: the spec, the windows, the
graph on both engines, the quantizer on Conv1d, and a bundle trained on synthetic speech, run through
`Recognizer.predict_audio` at 44.1 kHz on the numpy engine and onnxruntime against torch."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch
from _lms_models import one_thread  # noqa: F401
from _signals import voiced

from edge_ser.errors import ConfigError
from edge_ser.features import FeatureSpec, mfcc
from edge_ser.inputs import input_kind, kind_class
from edge_ser.inputs.sequence import (
    SequenceKind,
    SequenceSpec,
    clip_windows,
    log_mel_db,
    sequence_feature_spec,
    window_starts,
)

SMALL = SequenceSpec(frames=40, hop=20)
"""Windows of 40 frames (0.4 s) so the tests run on short clips."""


def test_spec_round_trip_and_checks():
    spec = SequenceSpec(
        feature_spec=dataclasses.replace(sequence_feature_spec(), level_dbfs=-26.0), frames=120
    )
    d = spec.to_dict()
    assert SequenceSpec.from_dict(d) == spec and d["feature_spec"]["level_dbfs"] == -26.0
    assert spec.shape == (120, 39) and spec.window_hop == 60 and spec.window_seconds == pytest.approx(2.4)
    with pytest.raises(ConfigError, match="frames"):
        SequenceSpec(frames=0)
    with pytest.raises(ConfigError, match="vote"):
        SequenceSpec(vote="median")
    with pytest.raises(ConfigError, match="n_mfcc"):
        SequenceSpec(feature_spec=dataclasses.replace(sequence_feature_spec(), n_mfcc=0))
    with pytest.raises(ConfigError, match="unknown"):
        SequenceSpec.from_dict({"frame": 10})
    assert kind_class("sequence") is SequenceKind


def test_windows_short_clip_is_centred_on_its_floor_and_long_clips_are_covered():
    sr = 16000
    short = voiced(sr, int(0.25 * sr)).astype(np.float32)  # 26 frames < 40
    db = log_mel_db(short, sr, SMALL.feature_spec)
    w = clip_windows(short, sr, SMALL)
    assert w.shape == (1, 40, 39) and w.dtype == np.float32
    n = db.shape[1]
    left = (40 - n) // 2
    # the clip's own frames are the MFCCs of its log-Mel (one DCT), the pad frames those of its quietest value
    fs = SMALL.feature_spec
    np.testing.assert_allclose(
        w[0, left : left + n], mfcc(S=db, n_mfcc=39, norm=fs.dct_norm).T, rtol=1e-5, atol=1e-4
    )
    floor = mfcc(S=np.full((fs.n_mels, 1), db.min(), np.float32), n_mfcc=39, norm=fs.dct_norm)[:, 0]
    np.testing.assert_allclose(w[0, 0], floor, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(w[0, -1], floor, rtol=1e-5, atol=1e-4)
    # a long clip: windows every 20 frames and one ending at the last frame, none padded
    assert window_starts(101, SMALL) == [0, 20, 40, 60, 61]
    assert window_starts(40, SMALL) == [0] and window_starts(100, SMALL) == [0, 20, 40, 60]
    long = voiced(sr, sr).astype(np.float32)
    wl = clip_windows(long, sr, SMALL)
    full = mfcc(S=log_mel_db(long, sr, fs), n_mfcc=39, norm=fs.dct_norm).T
    starts = window_starts(full.shape[0], SMALL)
    assert wl.shape == (len(starts), 40, 39)
    for k, s in enumerate(starts):
        np.testing.assert_allclose(wl[k], full[s : s + 40], rtol=1e-5, atol=1e-4)


def test_conditioning_comes_first():
    """With the recipe's level, a clip 20 dB quieter gives the same windows."""
    spec = SequenceSpec(
        feature_spec=dataclasses.replace(sequence_feature_spec(), remove_dc=True, level_dbfs=-26.0), frames=40
    )
    y = voiced(16000, 8000).astype(np.float32)
    np.testing.assert_allclose(
        clip_windows(0.1 * y + 0.01, 16000, spec), clip_windows(y, 16000, spec), atol=2e-3
    )


def _tiny(frames: int = 40, classes: int = 3):
    from converters.models.timnet import timnet

    torch.manual_seed(0)
    model = timnet(num_classes=classes, frames=frames, filters=8, dilations=3).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # non-trivial BatchNorm statistics and affine parameters
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        model.fusion.copy_(torch.rand(model.fusion.shape, generator=g))
    model.set_normalization(torch.linspace(-200, 5, 39), torch.linspace(60, 2, 39))
    return model


def test_model_graph_runs_on_onnxruntime_and_numpy_engine():
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort
    from _graph_engine import numpy_engine

    from converters.export.onnx_export import export_model, graph_json
    from edge_ser.engines.numpy_engine import SUPPORTED_OPS

    model = _tiny()
    proto = export_model(model)
    ops = {n["op"] for n in graph_json(proto)["nodes"]}
    assert "Pad" in ops and "Conv" in ops and ops <= set(SUPPORTED_OPS)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    eng = numpy_engine(proto, 3, name="timnet")
    rng = np.random.default_rng(0)
    for batch in (1, 4):
        x = (rng.normal(0, 1, (batch, 40, 39)) * np.linspace(60, 2, 39) + np.linspace(-200, 5, 39)).astype(
            np.float32
        )
        with torch.no_grad():
            ref = model(torch.as_tensor(x)).numpy()
        assert np.abs(ref).max() > 1e-2
        np.testing.assert_allclose(sess.run(None, {"mfcc": x})[0], ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(eng.run({"mfcc": x})["logits"], ref, rtol=1e-4, atol=1e-4)


def test_backward_branch_sees_the_future_and_forward_the_past():
    """The forward blocks are causal and the backward ones anti-causal (TIM-Net's reversed stack)."""
    model = _tiny()
    x = torch.randn(1, 8, 40)  # [batch, filters, frames]
    with torch.no_grad():
        base_f, base_b = model.fwd[0](x), model.bwd[0](x)
        y = x.clone()
        y[..., 20] += 5.0
        f, b = model.fwd[0](y), model.bwd[0](y)
    assert torch.equal(f[..., :20], base_f[..., :20]) and not torch.equal(f[..., 20:], base_f[..., 20:])
    assert torch.equal(b[..., 21:], base_b[..., 21:]) and not torch.equal(b[..., :21], base_b[..., :21])


def test_quantizer_on_conv1d_layers():
    """Every Conv1d (and the classifier) is a LAQ layer; 2-bit QAT forward == frozen model == codes x scales."""
    from converters.quant import BitPlan, attach, freeze, quantizable_layers
    from converters.quant.quantizers import dequantize

    model = _tiny()
    layers = quantizable_layers(model)
    convs = [n for n, m in layers.items() if isinstance(m, torch.nn.Conv1d)]
    assert len(convs) == 2 + 2 * 2 * 3 and list(layers)[-1] == "classifier"
    plan = BitPlan.uniform(model, 2)
    attach(model, plan)
    frozen, codes = freeze(model, plan)
    x = torch.randn(3, 40, 39) * 30 - 100
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), frozen(x).numpy(), rtol=1e-5, atol=1e-5)
    w = dict(frozen.named_modules())["fwd.1.conv2.conv"].weight
    q, s = codes["fwd.1.conv2.conv"]
    assert q.shape == tuple(w.shape) == (8, 8, 2) and set(np.unique(q)) <= {-1, 0, 1}
    assert torch.equal(dequantize(torch.as_tensor(q), torch.as_tensor(s)), w.detach())


@pytest.fixture(scope="module")
def synthetic_records(tmp_path_factory):
    from converters.data.synthetic import SyntheticSpec, write

    spec = SyntheticSpec(n_per_class=6, duration=1.2, n_speakers=3, labels=("neutral", "happy", "angry"))
    return write(spec, tmp_path_factory.mktemp("synthetic"))


def test_bundle_round_trip_trained_on_synthetic_speech(synthetic_records, tmp_path):
    """`train_timnet_fold` on synthetic speech (a few steps, 2-bit QAT) -> bundle -> load, verify ->
    Recognizer.predict_audio at 44.1 kHz on numpy and onnxruntime == the frozen torch model."""
    pytest.importorskip("onnxruntime")
    import edge_ser
    from converters.seq_train import TimNetTrainConfig, train_timnet_fold
    from edge_ser.audio import resample
    from edge_ser.bundle import load_bundle
    from edge_ser.engines.base import clamp_to_training_range

    recs = sorted(synthetic_records, key=lambda r: r.source.name)
    by = {s: [r for r in recs if r.speaker == s] for s in ("s01", "s02", "s03")}
    spec = SequenceSpec(
        feature_spec=dataclasses.replace(sequence_feature_spec(), level_dbfs=-26.0), frames=60
    )
    cfg = TimNetTrainConfig(
        spec=spec, filters=8, dilations=3, epochs=2, patience=2, batch=8, qat_epochs=1, laq="qat-2",
        speeds=(0.9, 1.0),
    )  # fmt: skip
    acc = {"dataset": "synthetic", "split": {"kind": "speakers", "test": "s03"}}
    res = train_timnet_fold(by["s01"], by["s02"], by["s03"], cfg, bundle_out=tmp_path / "b", accuracy=acc)
    assert res.bits == 2.0 and res.packed_kb > 0 and 0 <= res.quant.uar <= 1 and res.float.n == len(by["s03"])
    assert set(res.summary()) >= {"uar", "war", "q_uar", "q_war", "packed_kb", "params"}
    probs = res.probabilities
    assert set(probs) == {"val", "test", "q_val", "q_test"}
    assert probs["test"].shape == (len(by["s03"]), 3) and probs["q_val"].shape == (len(by["s02"]), 3)
    np.testing.assert_allclose(probs["q_test"].sum(1), 1.0, atol=1e-6)
    assert np.mean(
        probs["q_test"].argmax(1) == [res.classes.index(r.label) for r in by["s03"]]
    ) == pytest.approx(res.quant.accuracy)  # the voted clip decisions the metrics counted
    b = load_bundle(tmp_path / "b")
    assert isinstance(b.input_kind, SequenceKind) and b.input_kind.spec == spec
    assert input_kind(b.manifest).input_shapes == {"mfcc": (60, 39)}
    assert b.manifest["accuracy"]["test"] == pytest.approx(res.quant.uar)
    y16 = edge_ser.audio.load(recs[-1].source, sr=16000)[0]
    y44 = resample(np.concatenate([y16, y16]), 16000, 44100)  # 2.4 s: several windows, voted
    x = b.input_kind.audio_inputs(y44, 44100)["mfcc"]
    assert x.shape[0] > 1
    with torch.no_grad():
        ref = res.compressed.model(torch.as_tensor(clamp_to_training_range(b, x))).numpy()
    want = b.input_kind.combine(ref)
    for engine in ("numpy", "onnxruntime"):
        got = edge_ser.Recognizer(b, engine).predict_audio(y44, 44100)
        np.testing.assert_allclose(list(got.probabilities.values()), want, rtol=1e-4, atol=1e-4)
        assert got.label == b.labels[int(np.argmax(want))]


def test_manifest_checks_the_input_shape(synthetic_records):
    from edge_ser.schema import Checker

    kind = SequenceKind(SMALL)
    manifest = {"feature_spec": SMALL.feature_spec.to_dict(), **kind.manifest_blocks()}
    c = Checker("m", collect=True)
    SequenceKind.check_manifest(c, manifest, [{"name": "mfcc", "shape": ["batch", 40, 39]}])
    assert not c.problems
    c = Checker("m", collect=True)
    SequenceKind.check_manifest(c, manifest, [{"name": "mfcc", "shape": ["batch", 39, 40]}])
    assert any("sequence_input gives [batch, 40, 39]" in p for p in c.problems)
    c = Checker("m", collect=True)
    SequenceKind.check_manifest(c, {**manifest, "feature_spec": FeatureSpec().to_dict()}, [])
    assert any("differs" in p for p in c.problems) and any("no 'mfcc' input" in p for p in c.problems)


def test_speaker_norm_standardises_each_speaker_and_speed_on_its_own(synthetic_records):
    """`speaker_norm`: every (speaker, speed) group's frames standardised by the group's own statistics, as the
    functionals rows' transductive norm; refused for raw windows and for a bundle that could not record it."""
    from converters.seq_train import TimNetTrainConfig, record_windows, train_timnet_fold, window_set

    recs = sorted(synthetic_records, key=lambda r: r.source.name)
    spec = SequenceSpec(
        feature_spec=dataclasses.replace(sequence_feature_spec(), level_dbfs=-26.0), frames=30
    )
    classes = ("neutral", "happy", "angry")
    plain = window_set(recs, classes, spec, (0.9, 1.0))
    ws = window_set(recs, classes, spec, (0.9, 1.0), speaker_norm=True)
    assert ws.X.shape == plain.X.shape and np.array_equal(ws.utt, plain.utt)
    speaker = np.array([recs[i].speaker for i in ws.utt])
    sizes = [len(record_windows(r, spec, s)) for r in recs for s in (0.9, 1.0)]
    speed = np.concatenate([np.full(n, s) for n, s in zip(sizes, [0.9, 1.0] * len(recs), strict=True)])
    for s in ("s01", "s02", "s03"):
        for v in (0.9, 1.0):
            frames = ws.X[(speaker == s) & (speed == v)].reshape(-1, ws.X.shape[-1])
            np.testing.assert_allclose(frames.mean(0), 0.0, atol=1e-3)
            np.testing.assert_allclose(frames.std(0), 1.0, atol=1e-2)
    assert not np.allclose(plain.X.reshape(-1, 39).mean(0), 0.0, atol=1e-2)  # the raw MFCCs are not
    with pytest.raises(ConfigError, match="raw sample windows"):
        window_set(recs, classes, spec, raw=True, speaker_norm=True)
    cfg = TimNetTrainConfig(spec=spec, filters=8, dilations=3, epochs=1, laq="", speaker_norm=True)
    with pytest.raises(ConfigError, match="bundle_out must be None"):
        train_timnet_fold(recs[:6], recs[6:9], recs[9:12], cfg, bundle_out="x")


def test_config_refuses_a_misspelt_recipe_before_any_training():
    """It was refused by `compress` only after the whole float training."""
    from converters.seq_train import TimNetTrainConfig

    with pytest.raises(ConfigError, match="unknown recipe 'sensitivty@2'"):
        TimNetTrainConfig(laq="sensitivty@2")
    assert TimNetTrainConfig(laq="").laq == "" and TimNetTrainConfig(laq="qat-2").laq == "qat-2"


def test_fold_refuses_a_clip_in_two_parts(synthetic_records):
    """Validation picks the epoch: a test clip among the validation records chose the model on the test, silently."""
    from converters.seq_train import TimNetTrainConfig, train_timnet_fold

    recs = sorted(synthetic_records, key=lambda r: r.source.name)
    cfg = TimNetTrainConfig(filters=4, dilations=2, epochs=1, laq="")
    with pytest.raises(ConfigError, match=f"{recs[8].source.name} is in both records_val and records_test"):
        train_timnet_fold(recs[:6], recs[6:9], recs[8:12], cfg)
    with pytest.raises(ConfigError, match="in both records_train and records_test"):
        train_timnet_fold(recs[:6], recs[6:9], recs[:1], cfg)


@pytest.mark.parametrize(
    ("options", "why"),
    [({"laq": ""}, "trains the float model only"), ({"model": "serct_lite"}, "no device input kind")],
)
def test_fold_refuses_a_bundle_out_it_would_not_write(synthetic_records, tmp_path, options, why):
    """bundle_out was ignored without a word when no bundle is made (float only, or serct_lite)."""
    from converters.seq_train import TimNetTrainConfig, train_timnet_fold

    recs = sorted(synthetic_records, key=lambda r: r.source.name)
    cfg = TimNetTrainConfig(filters=4, dilations=2, epochs=1, **options)
    with pytest.raises(ConfigError, match=why):
        train_timnet_fold(recs[:6], recs[6:9], recs[9:12], cfg, bundle_out=tmp_path / "b")
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"epochs": 0}, "epochs=0 must be an integer >= 1"),
        ({"patience": 0}, "patience=0 must be an integer >= 1"),
        ({"batch": 0}, "batch=0 must be an integer >= 1"),
        ({"qat_epochs": -1}, "qat_epochs=-1 must be an integer >= 0"),
        ({"lr": 0.0}, "lr=0.0 must be > 0"),
        ({"filters": 0}, "filters=0 must be an integer >= 1"),
        ({"dropout": 1.0}, "dropout=1.0 must be in"),
        ({"model": "serct_lite", "serct_channels": 0}, "bad sizes"),
    ],
)
def test_config_refuses_bad_sizes_when_made(options, said):
    """epochs or patience 0 reported the untrained model's figures as a trained one's, batch 0 was a
    ZeroDivisionError, a bad model size a ValueError after every training clip's windows were made."""
    from converters.seq_train import TimNetTrainConfig

    with pytest.raises(ConfigError, match=re.escape(said)):
        TimNetTrainConfig(**options)
