"""squeezenet_lms: LMS patches (edge_ser.inputs.patches) and SqueezeNet v1.1 (converters.models.squeezenet_lms)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from converters.export.onnx_export import export_model
from converters.models.counts import count_model, count_params, dense_rows
from converters.models.squeezenet_lms import squeezenet_lms
from edge_ser.errors import ConfigError
from edge_ser.inputs.patches import (
    LMSSpec,
    PatchesKind,
    lms_frames,
    segment_dataset,
    segments,
    utterance_vote,
)

SR = 16000


def _tone(seconds: float, f0: float = 440.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


# ----------------------------------------------------------------------------------------------- LMSSpec


def test_spec_defaults_and_derived():
    s = LMSSpec()
    assert s.fft_size == 256 and s.hop == 32 and s.patch_shape == (1, 128, 64)
    assert LMSSpec(win_length=511).fft_size == 512
    assert LMSSpec(win_length=256).fft_size == 256
    assert LMSSpec(win_length=400, n_mels=40).fft_size == 512
    assert LMSSpec(segment_hop=16).hop == 16
    fs = s.feature_spec()
    assert (fs.n_fft, fs.win_length, fs.hop_length, fs.n_mels) == (256, 255, 32, 128)


def test_spec_roundtrip_and_validation():
    s = LMSSpec(n_mels=64, win_length=127, hop_length=16, segment_frames=100, segment_hop=25, fmax=7000.0)
    assert LMSSpec.from_dict(s.to_dict()) == s
    assert LMSSpec.from_dict({}) == LMSSpec()
    assert "M=64" in str(s)
    with pytest.raises(ConfigError, match="unknown"):
        LMSSpec.from_dict({"bogus": 1})
    for bad in (
        {"n_fft": 128, "win_length": 255},
        {"hop_length": 0},
        {"n_mels": 200, "win_length": 255},  # 129 bins from n_fft 256
        {"segment_frames": 0},
        {"segment_hop": 0},
        {"fmin": 9000.0},
        {"top_db": -1.0},
        {"sample_rate": 10},
    ):
        with pytest.raises(ConfigError, match="LMSSpec"):
            LMSSpec(**bad)


# -------------------------------------------------------------------------------------------- lms_frames


@pytest.mark.filterwarnings("ignore:Empty filters")  # M 128 on n_fft 256: documented at LMSSpec.n_fft
@pytest.mark.parametrize(
    "M,L,H,n_fft", [(128, 255, 32, None), (64, 127, 16, None), (40, 400, 160, None), (256, 511, 16, 2048)]
)
def test_lms_frames_matches_librosa(M, L, H, n_fft):
    librosa = pytest.importorskip("librosa")
    spec = LMSSpec(n_mels=M, win_length=L, hop_length=H, n_fft=n_fft)
    y = _tone(0.5)
    ours = lms_frames(y, SR, spec)
    S = librosa.feature.melspectrogram(
        y=y.astype(np.float64),
        sr=SR,
        n_fft=spec.fft_size,
        hop_length=H,
        win_length=L,
        center=True,
        pad_mode="constant",
        n_mels=M,
        power=2.0,
    )
    ref = librosa.power_to_db(S, ref=1.0, top_db=80.0).T
    assert ours.shape == ref.shape == (1 + y.size // H, M) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() < 0.05  # dB; float32 front end against librosa's float64


def test_lms_frames_checks_rate_and_shape():
    with pytest.raises(ConfigError, match="Hz"):
        lms_frames(_tone(0.1), 22050, LMSSpec())
    with pytest.raises(ConfigError, match="mono"):
        lms_frames(np.zeros((2, 100), np.float32), SR, LMSSpec())


# ---------------------------------------------------------------------------------------------- segments


def test_segments_count_overlap_and_padding():
    spec = LMSSpec(n_mels=8, win_length=64, segment_frames=10, segment_hop=5)
    lms = np.arange(40 * 8, dtype=np.float32).reshape(40, 8)
    seg = segments(lms, spec)
    assert seg.shape == (7, 1, 8, 10)  # starts 0, 5, ..., 30
    np.testing.assert_array_equal(seg[1, 0], lms[5:15].T)
    np.testing.assert_array_equal(seg[6, 0], lms[30:40].T)
    # 43 frames: regular grid ends at 40, 3 frames uncovered > hop // 2 -> one padded tail patch
    seg = segments(np.ones((43, 8), np.float32), spec, pad_value=-80.0)
    assert seg.shape == (8, 1, 8, 10)
    assert (seg[-1, 0, :, :8] == 1).all() and (seg[-1, 0, :, 8:] == -80).all()
    # 41 frames: 1 uncovered <= hop // 2 -> dropped
    assert segments(np.ones((41, 8), np.float32), spec).shape[0] == 7
    # shorter than T: one patch, padded with the clip minimum
    short = np.full((4, 8), -3.0, np.float32)
    short[0] = -50.0
    seg = segments(short, spec)
    assert seg.shape == (1, 1, 8, 10) and (seg[0, 0, :, 4:] == -50).all()
    with pytest.raises(ConfigError):
        segments(np.ones((10, 7), np.float32), spec)


def test_segment_dataset_labels_and_index():
    spec = LMSSpec(n_mels=32, win_length=127, hop_length=64, segment_frames=16)
    X, y, idx = segment_dataset([_tone(0.3), _tone(0.1, 880.0)], np.array([2, 5]), SR, spec)
    assert X.shape[1:] == (1, 32, 16) and len(X) == len(y) == len(idx)
    assert set(y[idx == 0]) == {2} and set(y[idx == 1]) == {5}
    # 0.3 s = 76 frames: starts 0, 8, ..., 56 (end 72, 4 frames left, not > hop // 2 = 4): 8 patches
    # 0.1 s = 26 frames: starts 0, 8 (end 24, 2 left): 2 patches
    assert (idx == 0).sum() == 8 and (idx == 1).sum() == 2


# ------------------------------------------------------------------------------------------------ voting


def test_utterance_vote():
    logits = np.array([[5.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0], [0.0, 0.0, 1.0]])
    idx = np.array([7, 7, 7, 3, 3])
    utts, p = utterance_vote(logits, idx, "mean_prob")
    assert list(utts) == [3, 7] and np.allclose(p.sum(1), 1)
    assert list(p.argmax(1)) == [2, 0]  # one confident segment outweighs two weak ones
    utts, v = utterance_vote(logits, idx, "majority")
    assert list(v.argmax(1)) == [2, 1]  # two of three segments say class 1
    # a 1-1 tie goes to the higher mean probability
    _, v = utterance_vote(np.array([[3.0, 0.0], [0.0, 1.0]]), np.array([0, 0]), "majority")
    assert v.argmax(1)[0] == 0
    with pytest.raises(ConfigError):
        utterance_vote(logits, idx, "max")
    with pytest.raises(ConfigError):
        utterance_vote(logits, idx[:3])


# ------------------------------------------------------------------------------------------------- model


def test_model_shapes_and_width():
    x = torch.randn(3, 1, 128, 64)
    params = []
    for w in (1.0, 0.5, 0.25):
        m = squeezenet_lms(width=w).eval()
        assert m(x).shape == (3, 7)
        c = count_model(m)
        rows, flops = dense_rows(m, c), c.dense_flops
        assert sum(r["params"] for r in rows) == count_params(m)
        params.append((count_params(m), flops))
    assert params[0] == (724_935, 69_651_987)  # the docstring table
    assert params[0] > params[1] > params[2]
    m = squeezenet_lms(n_mels=40, segment_frames=25, num_classes=4)  # 25: the smallest side
    assert m(torch.randn(1, 1, 40, 25)).shape == (1, 4)
    with pytest.raises(ValueError, match="24"):
        squeezenet_lms(segment_frames=24)


def test_torchvision_layout_by_hand():
    """torchvision's squeezenet1_1(num_classes=7) has 726,087 parameters (not installable here: no CPU build);
    ours differs only by the first conv's 3 RGB input channels against our 1 log-Mel channel."""
    assert 726_087 - count_params(squeezenet_lms()) == 2 * 3 * 3 * 64


def test_tiny_training_lowers_loss():
    from converters.train import TrainConfig, train_classifier

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n, M, T = 24, 32, 25
    y = np.arange(n) % 2
    X = rng.normal(0, 1, (n, 1, M, T)).astype(np.float32)
    X[y == 1, :, : M // 2] += 3.0  # class 1 has energy in the low bands
    X = X * 10 - 40  # dB-like scale: standardisation inside the model must handle it
    model = squeezenet_lms(n_mels=M, segment_frames=T, num_classes=2, width=0.25, dropout=0.0)
    model.set_normalization(X.mean(), X.std())
    loss_fn = torch.nn.CrossEntropyLoss()

    def loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(loss_fn(model(torch.as_tensor(X)), torch.as_tensor(y)))

    before = loss()
    res = train_classifier(
        model, X, y, X, y, TrainConfig(epochs=15, batch_size=8, lr=3e-3, patience=100), progress=False
    )
    assert loss() < before
    assert res.best_val_acc > 0.5


# ------------------------------------------------------------------------------------------------ export


def test_onnx_parity_onnxruntime_and_numpy_engine():
    ort = pytest.importorskip("onnxruntime")
    from _graph_engine import numpy_engine

    from edge_ser.engines.numpy_engine import SUPPORTED_OPS

    M, T = 64, 31  # odd sizes exercise the ceil-mode pools
    torch.manual_seed(1)
    model = squeezenet_lms(n_mels=M, segment_frames=T, width=0.25).eval()
    with torch.no_grad():
        model.final_conv.weight.normal_(0, 0.3)  # non-trivial logits
        model.final_conv.bias.fill_(0.1)
    model.set_normalization(-40.0, 12.0)
    proto = export_model(model)
    ops = {n.op_type for n in proto.graph.node}
    assert ops <= set(SUPPORTED_OPS), ops - set(SUPPORTED_OPS)
    assert all(a.name != "ceil_mode" or a.i == 0 for n in proto.graph.node for a in n.attribute)
    x = (np.random.default_rng(0).normal(-40, 12, (3, 1, M, T))).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.as_tensor(x)).numpy()
    assert np.abs(ref).max() > 1e-2
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"lms": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)

    eng = numpy_engine(proto, 7, name="squeezenet_lms")
    got = eng.run({"lms": x})["logits"]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_flops_agree_with_graph_counter():
    from converters.export.onnx_export import graph_json, initializers
    from edge_ser.flops import count_graph

    model = squeezenet_lms(n_mels=128, segment_frames=64, width=0.5).eval()
    proto = export_model(model)
    c = count_graph(graph_json(proto), initializers(proto))
    assert c.dense_flops == count_model(model).dense_flops


def test_bundle_and_predict_with_utterance_vote(tmp_path, capsys):
    """squeezenet_lms frozen at 4 bits -> a bundle with its LMSSpec -> engines agree with torch on patches;
    `edge-ser predict` turns a WAV into patches and votes, as `utterance_vote` does on torch's logits."""
    pytest.importorskip("onnx")
    from converters.export.bundle import build_bundle
    from converters.quant import BitPlan, freeze
    from converters.train import predict
    from edge_ser.audio import load, write_wav
    from edge_ser.bundle import load_bundle
    from edge_ser.cli import main
    from edge_ser.engines import load_engine
    from edge_ser.inputs.patches import clip_segments

    spec = LMSSpec(n_mels=40, win_length=400, hop_length=160, n_fft=512, segment_frames=32)
    torch.manual_seed(0)
    model = squeezenet_lms(n_mels=40, segment_frames=32, num_classes=3, width=0.25).eval()
    model.set_normalization(-40.0, 15.0)
    plan = BitPlan.uniform(model, 4)
    frozen, codes = freeze(model, plan)
    labels = ["neutral", "happy", "angry"]
    b = load_bundle(
        build_bundle(
            tmp_path / "b", frozen, plan, codes, name="sq", labels=labels, kind=PatchesKind(spec), accuracy={}
        )
    )
    assert b.input_kind.spec == spec and b.input_kind.vote == "mean_prob" and b.input_names == ("lms",)
    rng = np.random.default_rng(0)
    y = (0.1 * np.sin(2 * np.pi * 220 * np.arange(32000) / 16000) + 0.01 * rng.standard_normal(32000)).astype(
        np.float32
    )
    wav = write_wav(tmp_path / "a.wav", y, 16000)
    x = clip_segments(load(wav, sr=16000)[0], 16000, spec)
    ref = predict(frozen, x)
    for engine in ("onnxruntime", "numpy"):
        got = load_engine(b, engine).predict({"lms": x})
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    _, probs = utterance_vote(ref, np.zeros(len(x), int))
    assert main(["predict", str(b.root), str(wav), "--engine", "numpy"]) == 0
    assert f"a.wav: {labels[int(probs.argmax())]} {probs.max():.2f}" in capsys.readouterr().out


def test_bad_lms_manifests_are_refused(tmp_path):
    pytest.importorskip("onnx")
    import copy
    import json

    from converters.export.bundle import build_bundle
    from converters.quant import BitPlan, freeze
    from edge_ser.bundle import validate_manifest
    from edge_ser.errors import BundleError

    spec = LMSSpec(n_mels=40, win_length=400, hop_length=160, n_fft=512, segment_frames=32)
    model = squeezenet_lms(n_mels=40, segment_frames=32, num_classes=3, width=0.25).eval()
    plan = BitPlan.uniform(model, 8)
    frozen, codes = freeze(model, plan)
    path = build_bundle(
        tmp_path / "b",
        frozen,
        plan,
        codes,
        name="sq",
        labels=["a", "b", "c"],
        kind=PatchesKind(spec),
        accuracy={},
    )
    good = json.loads((path / "manifest.json").read_text())
    for edit, field in (
        (lambda m: m["lms_input"].update(vote="median"), r"lms_input\.vote"),
        (lambda m: m["lms_input"].update(segment_frames=48), r"model\.inputs\[0\]\.shape"),
        (lambda m: m["lms_input"].update(n_mels=-1), "lms_input"),
    ):
        m = copy.deepcopy(good)
        edit(m)
        with pytest.raises(BundleError, match=field):
            validate_manifest(m, source="t")
