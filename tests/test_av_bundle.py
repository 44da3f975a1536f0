"""Audio-visual bundles: av_cnn frozen at a mixed bit plan -> bundle with both input specs -> device engines."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from converters.export.bundle import build_bundle  # noqa: E402
from converters.models import av_cnn  # noqa: E402
from converters.models.counts import count_model  # noqa: E402
from converters.quant import BitPlan, freeze  # noqa: E402
from converters.train import predict  # noqa: E402
from edge_ser.bundle import load_bundle, validate_manifest  # noqa: E402
from edge_ser.engines import load_engine  # noqa: E402
from edge_ser.errors import BundleError, ConfigError  # noqa: E402
from edge_ser.inputs.av import (
    AVInputSpec,  # noqa: E402
    AVKind,  # noqa: E402
)
from edge_ser.vision.face import FaceCropSpec  # noqa: E402

LABELS = ["neutral", "happy", "sad", "angry", "fear", "disgust", "boredom"]
MIXED = {"video.0": 4, "video.3": 2, "video.6": 2, "audio.0": 3, "audio.2": 2, "head.0": 1, "head.3": 8}


def _inputs(n: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    faces = rng.random((n, 6, 64, 64), dtype=np.float32)
    audio = (rng.standard_normal((n, 6, 40)) * np.linspace(60, 2, 40) - np.r_[300, np.zeros(39)]).astype(
        np.float32
    )
    return {"faces": faces, "audio": audio}


def _frozen(mode: str):
    torch.manual_seed(0)
    model = av_cnn(mode)
    if mode != "video":
        a = _inputs()["audio"]
        model.set_normalization(torch.as_tensor(a.mean((0, 1))), torch.as_tensor(a.std((0, 1))))
    plan = BitPlan.uniform(model, 2, method="test")
    for layer in plan.bits:
        plan = plan.with_bits(layer, MIXED[layer])
    return freeze(model.eval(), plan), plan


def _bundle(mode: str, folder):
    (model, codes), plan = _frozen(mode)
    path = build_bundle(
        folder / "bundle",
        model,
        plan,
        codes,
        name="av_cnn",
        labels=LABELS,
        kind=AVKind(AVInputSpec(), model.input_names),
        accuracy={"test": 0.5, "dataset": "unit", "split": {"kind": "unit"}},
    )
    return mode, model, plan, load_bundle(path)


@pytest.fixture(scope="module", params=["fused", "audio", "video"])
def av_bundle(request, tmp_path_factory):
    return _bundle(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def fused_bundle(tmp_path_factory):
    return _bundle("fused", tmp_path_factory.mktemp("fused"))


def test_manifest_carries_both_input_specs(av_bundle):
    mode, model, plan, b = av_bundle
    m = b.manifest
    names = {"fused": ("faces", "audio"), "audio": ("audio",), "video": ("faces",)}[mode]
    assert b.input_names == names
    assert b.input_kind.spec == AVInputSpec()
    assert m["feature_spec"] == AVInputSpec().feature_spec.to_dict()
    if "faces" in names:
        assert b.input_kind.face_crop == FaceCropSpec(size=64)
    else:
        assert "face_crop" not in m
    if "audio" in names:
        assert b.normalized_input == "audio" and len(m["normalization"]["mean"]) == 40
    else:
        assert "normalization" not in m
    # per-layer FLOPs are av_cnn's exact count, bits the plan's
    flops = {name: r.flops for name, r in count_model(model).by_layer().items()}
    assert {r["name"]: r["flops"] for r in m["layers"]} == flops
    assert {r["name"]: r["bits"] for r in m["layers"]} == plan.bits


@pytest.mark.parametrize("engine", ["onnxruntime", "numpy"])
def test_engines_match_torch(av_bundle, engine):
    pytest.importorskip("onnxruntime") if engine == "onnxruntime" else None
    mode, model, _, b = av_bundle
    x = _inputs(9, seed=1)
    names = b.input_names
    ref = predict(model, tuple(x[n] for n in names))
    got = load_engine(b, engine).predict({n: x[n] for n in names})
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    # one clip without the batch axis gives the same row
    one = load_engine(b, engine).predict({n: x[n][0] for n in names})
    np.testing.assert_allclose(one[0], got[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("head_bits", [2, 1])
def test_fused_packed_size(tmp_path, head_bits):
    """Packed size = b-bit codes + float32 scales, biases and MFCC statistics + a bounded header and alignment;
    the issue's target (<= 20 KB at <= 2 average bits) holds once LAQ takes the dense layer below 2 bits."""
    torch.manual_seed(0)
    model = av_cnn("fused")
    plan = BitPlan.uniform(model, 2).with_bits("head.0", head_bits)
    frozen, codes = freeze(model.eval(), plan)
    b = load_bundle(
        build_bundle(
            tmp_path / "b",
            frozen,
            plan,
            codes,
            name="av_cnn",
            labels=LABELS,
            kind=AVKind(AVInputSpec(), frozen.input_names),
            accuracy={},
        )
    )
    size = len(b.read("weights.esq"))
    payload = sum(-(-q.size * plan.bits[k] // 8) + 4 * s.size for k, (q, s) in codes.items())
    floats = sum(4 * a.size for n, a in b.dequantized().items() if not n.endswith(".weight"))
    assert payload + floats < size <= payload + floats + 2048  # header, table, 64-byte alignment
    if head_bits == 1:
        assert plan.average_bits <= 2.0 and size <= 20_000
    # dequantized weights are exactly the frozen codes x scales
    for layer, (q, s) in codes.items():
        w = b.dequantized()[f"{layer}.weight"]
        np.testing.assert_array_equal(w, q.astype(np.float32) * s.reshape((-1,) + (1,) * (q.ndim - 1)))


def test_spec_must_match_model(tmp_path):
    (model, codes), plan = _frozen("fused")
    with pytest.raises(ConfigError, match="faces"):
        build_bundle(
            tmp_path / "b",
            model,
            plan,
            codes,
            name="av",
            labels=LABELS,
            kind=AVKind(AVInputSpec(frames=4), model.input_names),
            accuracy={},
        )


def _manifest(av_bundle) -> dict:
    return copy.deepcopy(json.loads(json.dumps(av_bundle[3].manifest)))


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda m: m.pop("av_input"), "av_input"),
        (lambda m: m["av_input"].update(frames=5), "model.inputs"),
        (lambda m: m["av_input"].update(segments=0), "av_input"),
        (lambda m: m["av_input"]["feature_spec"].update(n_mfcc=20), "av_input.feature_spec"),
        (lambda m: m.pop("face_crop"), "face_crop"),
        (lambda m: m["face_crop"].update(size=48), "face_crop.size"),
        (lambda m: m["face_crop"].update(margin=7), "face_crop"),
        (lambda m: m["normalization"].update(input="faces_typo"), "normalization.input"),
        (lambda m: m["normalization"].update(input=3), "normalization.input"),
    ],
)
def test_bad_av_manifests_are_refused(fused_bundle, edit, field):
    m = _manifest(fused_bundle)
    edit(m)
    with pytest.raises(BundleError, match=field.replace(".", r"\.")):
        validate_manifest(m, source="t")


def test_cli_model_prints_params_flops_and_seed(capsys):
    from edge_ser.cli import main

    assert main(["model", "av_cnn"]) == 0
    out = capsys.readouterr().out
    # the total is the model's own parameter count and the sum of the layers' FLOPs (each checked by hand in
    # test_av_cnn); 0.014 GFLOPs is the seed's published figure
    params = sum(p.numel() for p in av_cnn().parameters())
    rows = [x.split() for x in out.splitlines() if x.strip().startswith(("video.", "audio.", "head."))]
    flops = sum(int(r[-1].replace(",", "")) for r in rows)
    assert len(rows) == 7 and params == sum(int(r[-2].replace(",", "")) for r in rows)
    assert (
        f"total: {params:,} parameters" in out
        and f"{flops / 1e9:.4f} GFLOPs" in out
        and "0.014 GFLOPs" in out
    )
    assert main(["model", "av_cnn", "--mode", "audio"]) == 0
    out = capsys.readouterr().out
    params = sum(p.numel() for p in av_cnn("audio").parameters())
    assert f"{params:,} parameters" in out and "seed reports" not in out


def test_cli_info_describes_av_inputs(fused_bundle, capsys):
    from edge_ser.cli import main

    b = fused_bundle[3]
    assert main(["info", str(b.root)]) == 0
    out = capsys.readouterr().out
    assert "faces: 6 frames" in out and "audio: 6 equal segments x 40 MFCCs" in out
    assert "video.0" in out and "Conv2d" in out


@pytest.mark.slow
def test_cli_laq_av_cnn_end_to_end(tmp_path, capsys):
    """`edge-ser laq --model av_cnn` on the built-in synthetic AV set: train, bits, bundle, device engines."""
    from edge_ser.cli import main

    out = tmp_path / "laq"
    args = [
        "laq",
        "--model",
        "av_cnn",
        "--data",
        "synthetic-av",
        "--n-per-class",
        "5",
        "--epochs",
        "3",
        "--recipe",
        "ptq-2",
        "--tflite",
        "no",
        "--out",
        str(out),
        "--cache",
        str(tmp_path / "cache"),
        "-q",
    ]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "av_cnn[fused]" and summary["n_clips"] == 35
    assert summary["plan"]["bits"] == {k: 2 for k in MIXED}
    assert all(c["same_class"] == 1.0 for c in summary["engine_checks"].values())
    b = load_bundle(out / "bundle")
    assert b.input_names == ("faces", "audio") and b.input_kind.spec == AVInputSpec()
    # the AV arrays come from the cache the second time
    assert main(args) == 0
    assert json.loads((out / "summary.json").read_text())["cache_hits"] == 1


def test_predict_on_a_video_file(fused_bundle, tmp_path, capsys):
    """`edge-ser predict` with an AV bundle on a real mp4 (drawn faces + muxed speech): the same inputs as
    clip_inputs on the decoded frames and audio, and the engine's output for them."""
    from edge_ser.audio import load
    from edge_ser.cli import main
    from edge_ser.inputs.av import clip_inputs, file_inputs
    from edge_ser.vision.face import FaceCropper
    from edge_ser.vision.video import read_video
    from tests.av_media import ffmpeg_or_skip, mux, write_speech, write_video

    ffmpeg = ffmpeg_or_skip()
    clip = mux(
        ffmpeg, write_video(tmp_path / "v.mp4"), write_speech(tmp_path / "a.wav"), tmp_path / "clip.mp4"
    )
    b = fused_bundle[3]
    crop = FaceCropper(b.input_kind.face_crop).crop_or_center
    got = file_inputs(clip, b.input_kind.spec, crop)
    frames = list(read_video(clip).frames)
    y, _ = load(tmp_path / "a.wav", sr=16000)
    faces, _ = clip_inputs(frames, y, 16000, b.input_kind.spec, crop)
    np.testing.assert_array_equal(got["faces"], faces)  # decoded frames are deterministic
    # the separate WAV gives the container's audio up to the AAC codec
    sep = file_inputs(clip, b.input_kind.spec, crop, audio=tmp_path / "a.wav")
    assert np.corrcoef(sep["audio"].ravel(), got["audio"].ravel())[0, 1] > 0.99
    assert main(["predict", str(b.root), str(clip), "--engine", "numpy"]) == 0
    out = capsys.readouterr().out
    probs = load_engine(b, "numpy").predict({k: v[None] for k, v in got.items()})
    assert f"clip.mp4: {b.labels[int(probs.argmax())]}" in out


def test_file_inputs_errors(tmp_path):
    from edge_ser.audio import write_wav
    from edge_ser.inputs.av import file_inputs

    wav = write_wav(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000)
    with pytest.raises(ConfigError, match="video file"):
        file_inputs(wav, AVInputSpec())
    assert file_inputs(wav, AVInputSpec(), names=("audio",))["audio"].shape == (6, 40)


def test_the_seed_bundle_says_whether_a_video_showed_a_face(tmp_path):
    """av_cnn (early fusion) answers for a video with no face from the centre crops, as face_fer does; it now
    says so (`face_found`), short and long videos alike (it said nothing before)."""
    from pathlib import Path

    from edge_ser.recognizer import Recognizer
    from tests.av_media import face_frames, ffmpeg_or_skip, mux, speech, write_speech, write_video

    ffmpeg = ffmpeg_or_skip()
    rec = Recognizer(Path(__file__).resolve().parents[1] / "bundles" / "av_cnn", "numpy", adapt=False)
    track = write_speech(tmp_path / "a.wav")
    face = mux(ffmpeg, write_video(tmp_path / "f.mp4"), track, tmp_path / "face.mp4")
    blank_frames = np.full((30, 120, 160, 3), 128, np.uint8)
    blank = mux(ffmpeg, write_video(tmp_path / "b.mp4", blank_frames), track, tmp_path / "blank.mp4")
    assert rec.predict_file(face).face_found is True
    assert rec.predict_file(blank).face_found is False
    long_blank = write_video(tmp_path / "long.mp4", np.concatenate([blank_frames] * 11), fps=10.0)  # 33 s
    long_face = write_video(tmp_path / "long_face.mp4", np.concatenate([face_frames()] * 11), fps=10.0)
    long_speech = write_speech(tmp_path / "l.wav", np.tile(speech(), 28))  # 33.6 s
    assert rec.predict_file(mux(ffmpeg, long_blank, long_speech, tmp_path / "lb.mp4")).face_found is False
    assert rec.predict_file(mux(ffmpeg, long_face, long_speech, tmp_path / "lf.mp4")).face_found is True
