"""Late fusion: the product-of-experts rule, calibration, and fusion bundles on the engines and live.

The bundles are small av_cnn ones built here (an audio-only and a faces-only model, 8-bit, untrained weights):
what is tested is that the fusion bundle runs its branches exactly as they run alone and fuses their
posteriors by the rule in its manifest, whatever the branches' accuracy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from edge_ser.errors import BundleError, ConfigError, InputWarning
from edge_ser.fusion import BranchRule, FusionRule, calibrated_log

LABELS = ("neutral", "happy", "sad", "angry")


def _rule(**kw) -> FusionRule:
    a, f = kw.get("audio", BranchRule("audio")), kw.get("face", BranchRule("face"))
    return FusionRule(LABELS, (a, f), kw.get("prior", (0.1, 0.2, 0.3, 0.4)))


# ------------------------------------------------------------------------------------------------ the rule
def test_product_of_experts_divides_the_prior_out() -> None:
    pa, pf = np.array([0.4, 0.3, 0.2, 0.1]), np.array([0.1, 0.2, 0.3, 0.4])
    prior = np.array([0.1, 0.2, 0.3, 0.4])
    want = pa * pf / prior
    got = _rule().fuse({"audio": pa, "face": pf})
    np.testing.assert_allclose(got, want / want.sum(), rtol=1e-12)
    # a branch trained on another prior has its own divided out instead
    own = (0.25, 0.25, 0.25, 0.25)
    got = _rule(face=BranchRule("face", prior=own)).fuse({"audio": pa, "face": pf})
    want = pa * pf / np.asarray(own)
    np.testing.assert_allclose(got, want / want.sum(), rtol=1e-12)


def test_a_missing_branch_is_the_other_alone_and_weights_select_branches() -> None:
    pa, pf = np.array([0.4, 0.3, 0.2, 0.1]), np.array([0.1, 0.2, 0.3, 0.4])
    rule = _rule(
        audio=BranchRule("audio", temperature=2.0), face=BranchRule("face", temperature=0.5, weight=0.7)
    )
    alone = np.exp(calibrated_log(pa, 2.0))
    np.testing.assert_allclose(rule.fuse({"audio": pa, "face": None}), alone, rtol=1e-12)
    np.testing.assert_allclose(rule.fuse({"audio": pa}), alone, rtol=1e-12)
    w10 = rule.with_params({}, {"audio": 1.0, "face": 0.0})
    np.testing.assert_allclose(w10.fuse({"audio": pa, "face": pf}), alone, rtol=1e-12)
    w01 = rule.with_params({}, {"audio": 0.0, "face": 1.0})
    np.testing.assert_allclose(
        w01.fuse({"audio": pa, "face": pf}), np.exp(calibrated_log(pf, 0.5)), rtol=1e-12
    )
    # rows: the same rule over [n, classes]
    rows = rule.fuse({"audio": np.stack([pa, pf]), "face": np.stack([pf, pa])})
    np.testing.assert_allclose(rows[0], rule.fuse({"audio": pa, "face": pf}), rtol=1e-12)
    assert rule.fuse({"audio": None, "face": None}) == pytest.approx(rule.prior)


def test_temperature_keeps_the_argmax_and_label_maps_project() -> None:
    p = np.array([0.5, 0.3, 0.15, 0.05])
    for t in (0.3, 1.0, 4.0):
        q = np.exp(calibrated_log(p, t))
        assert q.argmax() == 0 and q.sum() == pytest.approx(1.0)
    m = BranchRule("audio", label_map={"calm": "neutral"}).projection(
        ("neutral", "calm", "happy", "sad", "angry"), LABELS
    )
    assert m.shape == (5, 4) and m[1, 0] == 1 and m.sum() == 5
    with pytest.raises(ConfigError, match=r"fused label\(s\) \['angry'\] get no probability"):
        BranchRule("audio").projection(("neutral", "happy", "sad"), LABELS)
    # a misspelt label_map entry did nothing: calm's probability was dropped without a word
    branch = ("neutral", "calm", "happy", "sad", "angry")
    with pytest.raises(ConfigError, match=r"maps \{'calm': 'nuetral'\} to labels the fusion does not have"):
        BranchRule("audio", label_map={"calm": "nuetral"}).projection(branch, LABELS)
    with pytest.raises(ConfigError, match=r"label_map names \['clam'\], not labels of the branch"):
        BranchRule("audio", label_map={"clam": "neutral"}).projection(branch, LABELS)
    assert BranchRule("audio", label_map={"calm": None}).projection(branch, LABELS)[1].sum() == 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: BranchRule("a", temperature=0.0), "temperature"),
        (lambda: BranchRule("a", weight=-1.0), "weight"),
        (lambda: _rule(prior=(0.5, 0.5)), "has 2 values for 4 labels"),
        (lambda: _rule(prior=(0.4, 0.4, 0.4, 0.4)), "must sum to 1"),
        (lambda: FusionRule(LABELS, (BranchRule("a"), BranchRule("a")), (0.25,) * 4), "distinct names"),
        (
            lambda: _rule(audio=BranchRule("audio", weight=0.0), face=BranchRule("face", weight=0.0)),
            "every branch",
        ),
        (lambda: FusionRule.from_dict({"branches": [{"name": "a", "tmp": 1}], "prior": [1.0]}, ["x"]), "tmp"),
    ],
)
def test_bad_rules_are_refused(make, message) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


# ----------------------------------------------------------------------------------------- calibration
def _overconfident(n: int = 600, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Posteriors of a classifier right 60 % of the time that says 95 %+."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < 0.6, y, rng.integers(0, k, n))
    z = rng.normal(0, 0.5, (n, k))
    z[np.arange(n), pred] += 6.0
    p = np.exp(z)
    return p / p.sum(1, keepdims=True), y


def test_temperature_scaling_lowers_nll_and_ece(tmp_path) -> None:
    from converters.calibrate import draw_reliability_png, ece, fit_temperature, nll, temper

    p, y = _overconfident()
    t = fit_temperature(p, y)
    q = temper(p, t)
    assert t > 1.5  # over-confident: softened
    assert nll(q, y) < nll(p, y) - 0.3
    assert ece(q, y) < ece(p, y) / 2
    assert (q.argmax(1) == p.argmax(1)).all()
    png = draw_reliability_png({"before": p, "after": q}, y, "toy", tmp_path / "r.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_degenerate_validation_set_is_said_and_bad_posteriors_are_refused() -> None:
    """Review: a validation set with every clip right gave T = 0.02 (the search's end: the branch a hard arg-max
    that outvotes every other) and every clip wrong T = 50, without a word; NaN posteriors gave T = 50 too and a
    label past the classes an IndexError."""
    from converters.calibrate import fit_temperature

    p, y = _overconfident(n=60)
    with pytest.warns(InputWarning, match=r"T = 0.02: no temperature fits them, .* hard arg-max"):
        assert fit_temperature(p, p.argmax(1)) == pytest.approx(0.02)
    with pytest.warns(InputWarning, match=r"T = 50: no temperature fits them, .* flat"):
        assert fit_temperature(p, (p.argmax(1) + 1) % 4) == pytest.approx(50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert 1.5 < fit_temperature(p, y) < 50
    with pytest.raises(ConfigError, match="1 non-finite"):
        fit_temperature(np.where(np.arange(p.size).reshape(p.shape) == 5, np.nan, p), y)
    with pytest.raises(ConfigError, match=r"class indices in 0\.\.3, got int64 from 0 to 4"):
        fit_temperature(p[:3], np.array([0, 1, 4]))


def test_weight_grid_is_never_below_the_better_branch() -> None:
    from converters.calibrate import choose_weights, uar

    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 800)

    def cue(strength: float) -> np.ndarray:  # a noisy class score, independent of the other cue given y
        z = rng.normal(0, 1, (len(y), 4))
        z[np.arange(len(y)), y] += strength
        return np.exp(z) / np.exp(z).sum(1, keepdims=True)

    pa, pf = cue(1.2), cue(0.9)
    rule, scores = choose_weights(_rule(prior=(0.25,) * 4), {"audio": pa, "face": pf}, y)
    best = max(uar(pa, y, LABELS), uar(pf, y, LABELS))
    assert scores["uar"] >= best
    assert scores["uar"] > best + 0.05  # two independent cues: the product beats either


# ------------------------------------------------------------------------------------------- the bundle
@pytest.fixture(scope="module")
def branches(tmp_path_factory):
    """An audio-only and a faces-only av_cnn bundle, side by side in one folder."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from converters.export.bundle import build_bundle
    from converters.models import av_cnn
    from converters.quant import BitPlan, freeze
    from edge_ser.inputs.av import AVInputSpec, AVKind

    root = tmp_path_factory.mktemp("fusion")
    out = {}
    for name, mode in (("audio", "audio"), ("face", "video")):
        torch.manual_seed(1 if mode == "video" else 0)
        model = av_cnn(mode, num_classes=len(LABELS)).eval()
        plan = BitPlan.uniform(model, 8)
        frozen, codes = freeze(model, plan)
        kind = AVKind(AVInputSpec(), frozen.input_names)
        out[name] = build_bundle(
            root / name, frozen, plan, codes, name=name, labels=list(LABELS), kind=kind, accuracy={}
        )
    return out


RULE = FusionRule(
    LABELS,
    (
        BranchRule("audio", temperature=1.7),
        BranchRule("face", temperature=0.6, weight=0.8, prior=(0.4, 0.3, 0.2, 0.1)),
    ),
    (0.25, 0.25, 0.25, 0.25),
)


@pytest.fixture(scope="module")
def fusion(branches):
    from edge_ser.bundle import write_fusion_bundle

    return write_fusion_bundle(
        branches["audio"].parent / "av_fusion", name="av_fusion", rule=RULE, branches=branches
    )


def _clip() -> np.ndarray:
    t = np.arange(32000) / 16000
    return (0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def _faces(n: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (64, 64), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("engine", ["numpy", "onnxruntime"])
def test_fusion_bundle_round_trip(branches, fusion, engine) -> None:
    """The fused prediction is the rule applied to what each branch bundle says alone; no face = audio alone."""
    if engine == "onnxruntime":
        pytest.importorskip("onnxruntime")
    from edge_ser.bundle import FusionBundle, load_bundle
    from edge_ser.recognizer import Recognizer

    b = load_bundle(fusion)
    assert isinstance(b, FusionBundle) and b.labels == LABELS and b.rule == RULE
    assert b.input_kind.faces == 6 and b.input_kind.sample_rate == 16000 and b.input_kind.mode == "fused"
    rec = Recognizer(b, engine)
    audio, face = Recognizer(branches["audio"], engine), Recognizer(branches["face"], engine)
    y, faces = _clip(), _faces()
    pa = np.array(list(audio.predict_audio(y, 16000).probabilities.values()))
    pf = np.array(list(face.predict_audio(y, 16000, faces=faces).probabilities.values()))
    fused = np.array(list(rec.predict_audio(y, 16000, faces=faces).probabilities.values()))
    np.testing.assert_allclose(fused, RULE.fuse({"audio": pa, "face": pf}), rtol=1e-4, atol=1e-6)
    alone = np.array(list(rec.predict_audio(y, 16000).probabilities.values()))
    np.testing.assert_allclose(alone, np.exp(calibrated_log(pa, 1.7)), rtol=1e-4, atol=1e-6)
    assert not np.allclose(fused, alone, atol=1e-3)  # the face did count
    # at another rate, and crops that found no face count as no face
    from edge_ser.vision.face import FaceCrop

    blind = [FaceCrop(f, None, (0, 0, 64, 64), None, False) for f in faces]
    at_44k = rec.predict_audio(
        np.interp(np.arange(88200) / 44100, np.arange(32000) / 16000, y), 44100, faces=blind
    )
    assert at_44k.label in LABELS and abs(sum(at_44k.probabilities.values()) - 1) < 1e-6


def test_branches_are_named_where_the_file_system_finds_them(fusion, tmp_path, monkeypatch) -> None:
    """A branch `../audio` of a fusion bundle reached through a symbolic link (a device's current -> versions/v)
    is beside the link's target, as opening it is; `info` names it there, without `..` (it said
    `bundles/av_fusion/../av_fn_audio`)."""
    from edge_ser.bundle import load_bundle

    store = tmp_path / "store"
    shutil.copytree(fusion.parent, store, symlinks=True)
    (tmp_path / "link").symlink_to(store / fusion.name, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    b = load_bundle(
        Path("link")
    )  # text normalisation of link/../audio would give ./audio, which is not there
    assert {n: str(br.source) for n, br in b.branches.items()} == {
        "audio": "store/audio",
        "face": "store/face",
    }
    assert ".." not in b.describe() and "(store/audio)" in b.describe()
    absolute = load_bundle(tmp_path / "link")
    assert str(absolute.branches["audio"].source) == str((store / "audio").resolve())


def test_numpy_and_onnxruntime_agree(fusion) -> None:
    pytest.importorskip("onnxruntime")
    from edge_ser.recognizer import Recognizer

    y, faces = _clip(), _faces()
    a = Recognizer(fusion, "numpy").predict_audio(y, 16000, faces=faces).probabilities
    b = Recognizer(fusion, "onnxruntime").predict_audio(y, 16000, faces=faces).probabilities
    assert a == pytest.approx(b, rel=1e-4, abs=1e-6)


def test_files_and_the_cli(fusion, tmp_path, capsys) -> None:
    from edge_ser.audio import write_wav
    from edge_ser.cli import main
    from edge_ser.recognizer import Recognizer

    wav = write_wav(tmp_path / "a.wav", _clip(), 16000)
    p = Recognizer(fusion, "numpy").predict_file(wav)
    assert p.label in LABELS
    assert main(["predict", str(fusion), str(wav), "--engine", "numpy", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["label"] == p.label and out["probabilities"] == pytest.approx(p.probabilities)
    assert main(["info", str(fusion)]) == 0
    text = capsys.readouterr().out
    assert "branch audio" in text and "branch face" in text and "temperature 0.6" in text


def test_live_pipeline_runs_the_face_branch_only_with_a_face(fusion) -> None:
    from edge_ser.bundle import load_bundle
    from edge_ser.engines import load_engine
    from edge_ser.live.pipeline import LivePipeline, PipelineConfig
    from edge_ser.recognizer import Recognizer
    from edge_ser.vision.face import FaceCrop

    b = load_bundle(fusion)
    pipe = LivePipeline(b, load_engine(b, "numpy"), PipelineConfig(smoothing="none"))
    y = _clip()[:48000]
    seen = [FaceCrop(f, (0, 0, 64, 64), (0, 0, 64, 64), 9, True) for f in _faces()]
    blind = [FaceCrop(f, None, (0, 0, 64, 64), None, False) for f in _faces()]
    with_face = pipe.step(2.0, y, seen)
    without = pipe.step(2.5, y, blind)
    assert with_face.mode == "fused" and without.mode == "audio"  # what the answer was made of
    assert (
        with_face.fallback is None and without.fallback is None
    )  # no fallback bundle: the fusion degrades itself
    audio = Recognizer(b.branches["audio"], "numpy").predict_audio(y, 16000)
    want = np.exp(calibrated_log(np.array(list(audio.probabilities.values())), 1.7))
    np.testing.assert_allclose(without.probs, want, rtol=1e-4, atol=1e-6)
    assert not np.allclose(with_face.probs, without.probs, atol=1e-3)


# ------------------------------------------------------------------------------------- manifest checks
def _edit(fusion, tmp_path, change) -> object:
    """A copy of the fusion bundle (beside copies of its branches) with its manifest changed and re-summed."""
    from edge_ser.bundle import manifest_sum_line

    root = tmp_path / "bundles"
    shutil.copytree(fusion.parent, root, ignore=shutil.ignore_patterns("*.tar"))
    m = json.loads((root / "av_fusion" / "manifest.json").read_text())
    change(m)
    data = json.dumps(m).encode()
    (root / "av_fusion" / "manifest.json").write_bytes(data)
    (root / "av_fusion" / "manifest.sha256").write_bytes(manifest_sum_line(data))
    return root / "av_fusion"


def _branch(i, **kw):
    def change(m):
        m["fusion"]["branches"][i].update(kw)

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_branch(0, manifest_sha256="0" * 64), r"branches\[0\] \(audio.*pins 000000000000"),
        (_branch(0, manifest_sha256="xyz"), r"manifest_sha256: must be 64 lower-case hex"),
        (_branch(1, path="/etc/face"), r"branches\[1\]\.path: '/etc/face' must be a relative path"),
        (_branch(1, path="../../face"), r"branches\[1\]\.path"),
        (_branch(1, path="../nowhere"), r"branches\[1\] \(face, \.\./nowhere\).*does not exist"),
        (_branch(0, temperature=0), r"fusion: .*temperature: must be between 0.01 and 100"),
        (_branch(1, weight="1"), r"weight: must be a finite number"),
        (_branch(1, label_map={"sad": None}), r"fused label\(s\) \['sad'\] get no probability"),
        (lambda m: m["fusion"].update(prior=[0.5, 0.5, 0.5, 0.5]), r"prior: must sum to 1"),
        (lambda m: m.update(files={"model.onnx": {}}), r"files: a fusion bundle holds no files of its own"),
        (lambda m: m["fusion"].update(branches=[]), r"must list 1 to 4 branch bundles"),
        (lambda m: m.update(labels=["neutral", "neutral"]), r"labels: must be unique"),
        (lambda m: m.update(schema_version=2), r"schema_version: 2 is not supported"),
    ],
)
def test_bad_fusion_manifests_are_refused(fusion, tmp_path, change, message) -> None:
    from edge_ser.bundle import load_bundle

    with pytest.raises(BundleError, match=message):
        load_bundle(_edit(fusion, tmp_path, change))


def test_a_changed_branch_or_stray_file_is_refused(fusion, tmp_path) -> None:
    from edge_ser.bundle import load_bundle

    copy = _edit(fusion, tmp_path, lambda m: None)
    load_bundle(copy)  # the copy itself loads
    (copy / "notes.txt").write_text("x")
    with pytest.raises(BundleError, match=r"notes.txt.*not listed"):
        load_bundle(copy)
    (copy / "notes.txt").unlink()
    m = copy.parent / "audio" / "manifest.json"  # a branch re-exported after the rule was fitted
    data = m.read_bytes().replace(b'"labels"', b'"note": 1, "labels"', 1)
    m.write_bytes(data)
    (copy.parent / "audio" / "manifest.sha256").write_text(
        f"{hashlib.sha256(data).hexdigest()}  manifest.json\n"
    )
    with pytest.raises(BundleError, match="rebuilt or replaced after the fusion was fitted"):
        load_bundle(copy)
    tar = tmp_path / "f.tar"
    with tarfile.open(tar, "w") as t:
        for name in ("manifest.json", "manifest.sha256"):
            t.add(fusion / name, arcname=name)
    with pytest.raises(BundleError, match="a fusion bundle is a folder"):
        load_bundle(tar)


def test_a_video_file_runs_both_branches(branches, fusion, tmp_path) -> None:
    """A video: the face branch reads its frames, the audio branch its sound track, as each would alone."""
    from edge_ser.recognizer import Recognizer
    from tests.av_media import ffmpeg_or_skip, mux, write_speech, write_video

    ffmpeg = ffmpeg_or_skip()
    clip = mux(
        ffmpeg, write_video(tmp_path / "v.mp4"), write_speech(tmp_path / "a.wav"), tmp_path / "clip.mp4"
    )
    fused = Recognizer(fusion, "numpy").predict_file(clip)
    pa, pf = (
        np.array(list(Recognizer(branches[b], "numpy").predict_file(clip).probabilities.values()))
        for b in ("audio", "face")
    )
    np.testing.assert_allclose(
        list(fused.probabilities.values()), RULE.fuse({"audio": pa, "face": pf}), rtol=1e-4, atol=1e-6
    )
    assert fused.duration and fused.duration > 0


def test_an_image_file_is_the_face_branch_alone(tmp_path) -> None:
    """An image: only the face branch reads it, so the shipped av_fusion's answer is the face's term alone (the audio
    term left out, as when no one speaks); it was collected from a folder and then refused as 'not a video'."""
    import cv2

    from edge_ser.recognizer import Recognizer

    bundles = Path(__file__).resolve().parents[1] / "bundles"
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    rec = Recognizer(bundles / "av_fusion", "numpy")
    fused = rec.predict_file(image)
    pf = np.array(list(Recognizer(bundles / "face_fer", "numpy").predict_file(image).probabilities.values()))
    want = rec.kind.rule.fuse({"face": pf})
    np.testing.assert_allclose(list(fused.probabilities.values()), want, rtol=1e-4, atol=1e-6)


def _shipped(name: str, **kw):
    from edge_ser.recognizer import Recognizer

    return Recognizer(Path(__file__).resolve().parents[1] / "bundles" / name, "numpy", adapt=False, **kw)


def _probs(p) -> np.ndarray:  # noqa: ANN001 - a Prediction
    return np.array(list(p.probabilities.values()))


def test_the_shipped_fusion_hears_a_videos_audio_track(tmp_path) -> None:
    """av_fusion's audio branch reads audio files only; a video's sound track is now its input (it was ignored,
    so a video with speech was the face alone), and a video without a face is the audio alone, flagged."""
    from edge_ser.audio.container import load_container_audio
    from tests.av_media import ffmpeg_or_skip, mux, write_speech, write_video

    ffmpeg = ffmpeg_or_skip()
    speech = write_speech(tmp_path / "a.wav")
    face = write_video(tmp_path / "face.mp4")
    blank = write_video(tmp_path / "blank.mp4", np.full((30, 120, 160, 3), 128, np.uint8))
    face_av, blank_av = (mux(ffmpeg, v, speech, tmp_path / f"{v.stem}_av.mp4") for v in (face, blank))
    fusion, audio, faces = _shipped("av_fusion"), _shipped("av_fn_audio"), _shipped("face_fer")
    rule = fusion.kind.rule
    y, sr = load_container_audio(face_av)
    pa = _probs(audio.predict_audio(y, sr))
    pf = _probs(faces.predict_file(face))

    both = fusion.predict_file(face_av)
    assert both.face_found is True and both.level_db is not None
    np.testing.assert_allclose(_probs(both), rule.fuse({"audio": pa, "face": pf}), rtol=1e-4, atol=1e-6)
    silent_video = fusion.predict_file(face)  # no audio stream: the face alone, as before
    np.testing.assert_allclose(_probs(silent_video), rule.fuse({"face": pf}), rtol=1e-4, atol=1e-6)
    assert silent_video.level_db is None

    no_face = fusion.predict_file(blank_av)
    assert no_face.face_found is False
    np.testing.assert_allclose(_probs(no_face), rule.fuse({"audio": pa}), rtol=1e-4, atol=1e-6)
    # nothing heard and no face: the face branch's fallback centre crop, as face_fer alone answers
    nothing = fusion.predict_file(blank)
    centre = _probs(faces.predict_file(blank))
    np.testing.assert_allclose(_probs(nothing), rule.fuse({"face": centre}), rtol=1e-4, atol=1e-6)
    assert nothing.face_found is False and faces.predict_file(blank).face_found is False


def test_predict_marks_a_video_without_a_sound_track_as_the_face_alone(tmp_path, capsys) -> None:
    """av_fusion answers a video without a sound track from its face branch alone: predict now says so (a user
    review found a confident label with no mark); a video with a sound track is not marked."""
    from edge_ser.cli import main
    from tests.av_media import ffmpeg_or_skip, mux, write_speech, write_video

    ffmpeg = ffmpeg_or_skip()
    face = write_video(tmp_path / "face.mp4")
    face_av = mux(ffmpeg, face, write_speech(tmp_path / "a.wav"), tmp_path / "face_av.mp4")
    bundle = str(Path(__file__).resolve().parents[1] / "bundles" / "av_fusion")
    assert main(["predict", bundle, str(face), str(face_av), "--engine", "numpy", "--json"]) == 0
    rows = {Path(r["file"]).name: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert "no sound track: the face alone" in rows["face.mp4"]["marks"]
    assert not any(m.startswith("no sound") for m in rows["face_av.mp4"]["marks"])
    # av_cnn sets no level for the video it reads: not marked (a review found every av_cnn video marked)
    av_cnn = str(Path(__file__).resolve().parents[1] / "bundles" / "av_cnn")
    assert main(["predict", av_cnn, str(face_av), "--engine", "numpy", "--json"]) == 0
    (row,) = map(json.loads, capsys.readouterr().out.splitlines())
    assert not any(m.startswith("no sound") for m in row["marks"])


def test_predict_counts_the_files_whose_speech_is_learnt_as_one_speaker(tmp_path, capsys) -> None:
    """av_fusion over images, videos without sound, one WAV and a corrupt file said "the 7 files are learnt as one
    speaker", though only the WAV's audio joined the speaker statistics (and the corrupt file was skipped): the
    note counts the files whose speech was learnt, and is not said when fewer than two were."""
    import cv2

    from edge_ser.cli import main
    from tests.av_media import face_frames, speech, write_speech, write_video

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), face_frames()[i * 5])
    write_video(tmp_path / "v1.mp4")
    write_video(tmp_path / "v2.mp4", np.ascontiguousarray(face_frames()[::-1]))
    write_speech(tmp_path / "speech.wav")
    (tmp_path / "bad.png").write_text("not an image")
    bundle = str(Path(__file__).resolve().parents[1] / "bundles" / "av_fusion")
    with pytest.warns(InputWarning, match="bad.png"):
        assert main(["predict", bundle, str(tmp_path), "--engine", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "one speaker" not in out and "7 files" not in out  # one file's speech: nothing pooled
    write_speech(tmp_path / "speech2.wav", speech("sad", 3))
    for adapt in ("all", "online"):
        with pytest.warns(InputWarning, match="bad.png"):
            assert main(["predict", bundle, str(tmp_path), "--engine", "numpy", "--adapt", adapt]) == 0
        out = capsys.readouterr().out
        assert "the speech in 2 of the 8 files (those with speech) was learnt as one speaker's voice" in out
        assert f"(--adapt {adapt})" in out


def test_no_face_found_is_reported(tmp_path, capsys) -> None:
    """An image or video in which the face search finds no face says so (JSON `face_found`, a text mark); the
    label was a confident 'surprise' about an empty scene, with nothing flagged."""
    import cv2

    from edge_ser.cli import main

    empty = tmp_path / "empty.png"
    cv2.imwrite(str(empty), np.full((240, 320), 128, np.uint8))
    face = tmp_path / "face.png"
    cv2.imwrite(str(face), __import__("tests.av_media", fromlist=["face_frames"]).face_frames()[0])
    assert _shipped("face_fer").predict_file(empty).face_found is False
    assert _shipped("face_fer").predict_file(face).face_found is True
    bundle = str(Path(__file__).resolve().parents[1] / "bundles" / "face_fer")
    assert main(["predict", bundle, str(empty), str(face), "--engine", "numpy"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "[no face found: the centre of the frame]" in lines[0] and "no face" not in lines[1]
    assert main(["predict", bundle, str(empty), "--engine", "numpy", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["face_found"] is False


def test_a_long_video_is_windowed_a_silent_track_is_no_audio_and_no_ffmpeg_is_the_face(
    tmp_path, monkeypatch
) -> None:
    """Review of the video path: a 20-minute video held its whole sound track in memory (6.4 GB) as one clip; a track
    of digital silence was 'heard' (the answer came from silence); without ffmpeg every fusion video failed."""
    import edge_ser.audio.container as container
    from edge_ser.audio import write_wav
    from edge_ser.errors import InputWarning
    from tests._signals import voiced
    from tests.av_media import face_frames, ffmpeg_or_skip, mux, write_speech, write_video

    ffmpeg = ffmpeg_or_skip()
    fusion, faces = _shipped("av_fusion"), _shipped("face_fer")
    frames = np.concatenate([face_frames()] * 14)  # 420 frames at 10 fps: 42 s
    video = write_video(tmp_path / "long.mp4", frames, fps=10.0)
    speech = write_wav(tmp_path / "a.wav", voiced(16000, 42 * 16000).astype(np.float32), 16000)
    long_av = mux(ffmpeg, video, speech, tmp_path / "long_av.mp4")
    p = fusion.predict_file(long_av)
    assert (
        len(p.windows) >= 13 and p.face_found is True and p.level_db is not None
    )  # 3 s windows, both branches
    blank = write_video(tmp_path / "blank.mp4", np.full((30, 120, 160, 3), 128, np.uint8))
    hush = mux(
        ffmpeg, blank, write_speech(tmp_path / "z.wav", np.zeros(48000, np.float32)), tmp_path / "hush.mp4"
    )
    silent = fusion.predict_file(
        hush
    )  # digital silence is no audio: the centre crop, as face_fer alone answers
    centre = _probs(faces.predict_file(blank))
    np.testing.assert_allclose(_probs(silent), fusion.kind.rule.fuse({"face": centre}), rtol=1e-4, atol=1e-6)

    def no_ffmpeg(*args, **kwargs):
        raise container.FFmpegNotFoundError("ffmpeg not found")

    monkeypatch.setattr(container, "load_container_audio", no_ffmpeg)
    with_face = mux(
        ffmpeg, write_video(tmp_path / "f.mp4"), write_speech(tmp_path / "s.wav"), tmp_path / "fs.mp4"
    )
    with pytest.warns(InputWarning, match="the sound track is not used: ffmpeg not found"):
        alone = fusion.predict_file(with_face)
    pf = _probs(faces.predict_file(with_face))
    np.testing.assert_allclose(_probs(alone), fusion.kind.rule.fuse({"face": pf}), rtol=1e-4, atol=1e-6)


def test_room_noise_on_the_track_is_not_speech_and_a_short_track_keeps_the_rest_of_the_video(
    tmp_path,
) -> None:
    """Review: a happy face over -71 dBFS pink noise read 'sad 0.99', the noise fused at the audio branch's weight;
    a track with no voice in it is now no audio (`has_voice`). And a 52 s video with a 4 s track was one 4 s window:
    the frames after the track now make windows of their own."""
    from tests.av_media import face_frames, ffmpeg_or_skip, mux, speech, write_speech, write_video

    ffmpeg = ffmpeg_or_skip()
    fusion, faces = _shipped("av_fusion"), _shipped("face_fer")
    rule = fusion.kind.rule
    video = write_video(tmp_path / "face.mp4")
    rng = np.random.default_rng(0)
    noise = (rng.normal(size=48000 * 2) * 10 ** (-75 / 20)).astype(np.float32)
    noisy = mux(ffmpeg, video, write_speech(tmp_path / "n.wav", noise), tmp_path / "noisy.mp4")
    p = fusion.predict_file(noisy)
    np.testing.assert_allclose(
        _probs(p), rule.fuse({"face": _probs(faces.predict_file(video))}), rtol=1e-4, atol=1e-6
    )
    long_video = write_video(tmp_path / "long.mp4", np.concatenate([face_frames()] * 12), fps=10.0)  # 36 s
    short = mux(
        ffmpeg, long_video, write_speech(tmp_path / "s.wav", np.tile(speech(), 3)), tmp_path / "short.mp4"
    )
    windows = fusion.predict_file(short).windows
    assert windows[0].end == pytest.approx(3.6, abs=0.1) and windows[-1].end == pytest.approx(36.0, abs=0.2)
    assert len(windows) >= 11


def test_a_long_video_without_a_sound_track_ends_in_no_window_under_half_a_window(tmp_path) -> None:
    """Review: av_fusion on a 40 s video without a sound track (its frames make the windows) ended in a 1 s window
    of its own; a last stretch under half a window now joins the one before it, as a sound track's does."""
    from tests.av_media import face_frames, write_video

    fusion = _shipped("av_fusion")
    video = write_video(tmp_path / "long.mp4", np.concatenate([face_frames()] * 40)[:400], fps=10.0)  # 40 s
    windows = fusion.predict_file(video).windows
    assert len(windows) == 13 and windows[-1].start == pytest.approx(36.0)
    assert windows[-1].end == pytest.approx(40.0)


def test_a_face_models_long_video_is_the_mean_of_its_windows_with_a_face(tmp_path) -> None:
    """Review: face_fer's answer for a 40 s video with a face in half of it counted the empty windows (the centre of
    an empty frame, read as 'surprise'); and no window said whether it had a face."""
    from tests.av_media import face_frames, write_video

    faces = _shipped("face_fer")
    blank = np.full((30, 120, 160, 3), 128, np.uint8)
    frames = np.concatenate([face_frames()] * 6 + [blank] * 6)  # 36 s at 10 fps: a face for 18 s, then none
    p = faces.predict_file(write_video(tmp_path / "half.mp4", frames, fps=10.0))
    seen = [w for w in p.windows if w.face_found]
    assert 0 < len(seen) < len(p.windows) and any(w.face_found is False for w in p.windows)
    mean = np.mean([list(w.probabilities.values()) for w in seen], axis=0)
    np.testing.assert_allclose(_probs(p), mean, rtol=1e-6)
    assert p.to_dict()["windows"][-1]["face_found"] is False


def test_a_file_no_branch_reads_is_skipped_not_fatal(tmp_path, capsys) -> None:
    """Review: one .txt among the files stopped av_fusion's whole batch (exit 2, no prediction for the good files);
    face_fer skipped it with a warning. It is now skipped alike."""
    import cv2

    from edge_ser.cli import main
    from tests.av_media import face_frames

    notes = tmp_path / "notes.txt"
    notes.write_text("not a clip\n")
    face = tmp_path / "face.png"
    cv2.imwrite(str(face), face_frames()[0])
    bundle = str(Path(__file__).resolve().parents[1] / "bundles" / "av_fusion")
    with pytest.warns(Warning, match="no branch of this fusion bundle reads .txt files"):
        assert main(["predict", bundle, str(notes), str(face), "--engine", "numpy", "--adapt", "off"]) == 0
    out = capsys.readouterr().out
    # the face's line is the Python API's top 3 on the image alone, marked as answered without sound
    from edge_ser.recognizer import Recognizer

    expected = Recognizer(bundle, "numpy", adapt=False).predict_file(face)
    top = ", ".join(f"{lab} {p:.2f}" for lab, p in expected.top(3))
    lines = [line for line in out.splitlines() if line.startswith("  ") and not line.startswith("  (")]
    assert len(lines) == 1 and lines[0].startswith(f"  face.png: {top}  [no sound track"), out
    assert "notes.txt" not in out and "numpy: 1 file(s)" in out and "1 unreadable file(s) skipped" in out, out
    # the Python API says it too: str() and marks() of a fusion bundle's prediction (they needed marks(fused=True))
    assert expected.fused and "[no sound track: the face alone]" in str(expected)
    assert expected.marks() == expected.marks(fused=True) and not expected.marks(fused=False)


def test_a_lone_branch_is_its_calibrated_posterior() -> None:
    """docs/fusion.md says audio alone gives exactly the calibrated audio posterior; at the shipped weight 2 it was that
    posterior squared ('sad 0.998' for a calibrated 0.953). A branch alone now counts at weight 1."""
    rule = _shipped("av_fusion").kind.rule
    audio = next(b for b in rule.branches if b.name == "audio")
    assert audio.weight == 2.0 and audio.prior is None
    p = np.array([0.05, 0.1, 0.6, 0.1, 0.05, 0.05, 0.05])
    logits = np.log(p) / audio.temperature
    calibrated = np.exp(logits - logits.max())
    np.testing.assert_allclose(rule.fuse({"audio": p}), calibrated / calibrated.sum(), rtol=1e-9)
    both = rule.fuse({"audio": p, "face": p})  # two cues: the shipped weights still apply
    assert both.max() > rule.fuse({"audio": p}).max()


def test_a_branch_weighted_0_is_its_calibrated_posterior_when_it_is_alone() -> None:
    """Review: choose_weights gives a branch that did not help weight 0; with the other branch missing (an image
    for a rule that chose the audio alone) the fusion gave the class prior, the same answer whatever the face."""
    pa, pf = np.array([0.4, 0.3, 0.2, 0.1]), np.array([0.1, 0.2, 0.3, 0.4])
    own = (0.4, 0.3, 0.2, 0.1)
    rule = _rule(
        audio=BranchRule("audio", temperature=2.0), face=BranchRule("face", temperature=0.5, weight=0.0)
    )
    np.testing.assert_allclose(rule.fuse({"audio": None, "face": pf}), np.exp(calibrated_log(pf, 0.5)))
    # with its own training prior: re-weighted to the rule's, as any lone branch
    rule = FusionRule(LABELS, (rule.branches[0], BranchRule("face", 0.5, 0.0, prior=own)), rule.prior)
    want = np.exp(calibrated_log(pf, 0.5)) * np.asarray(rule.prior) / np.asarray(own)
    np.testing.assert_allclose(rule.fuse({"face": pf}), want / want.sum())
    # beside the audio, weight 0 still leaves it out
    np.testing.assert_allclose(rule.fuse({"audio": pa, "face": pf}), np.exp(calibrated_log(pa, 2.0)))


def test_a_branch_alone_is_chosen_at_weight_1() -> None:
    """Review: with a lone branch at weight 1, every (w, 0) candidate gave the same posterior and the first kept
    (the grid's smallest w) was recorded: 'functionals 0.25'. A branch alone is one candidate, at weight 1."""
    from converters.calibrate import choose_weights

    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 300)
    z = rng.normal(0, 1, (len(y), 4))
    z[np.arange(len(y)), y] += 2.0
    good = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    wrong = np.full((len(y), 4), 0.1)
    wrong[np.arange(len(y)), (y + 1) % 4] = (
        0.7  # a branch that points at the wrong class: any weight on it hurts
    )
    rule, _ = choose_weights(_rule(prior=(0.25,) * 4), {"audio": good, "face": wrong}, y)
    assert {b.name: b.weight for b in rule.branches} == {"audio": 1.0, "face": 0.0}


def test_an_audio_file_given_to_the_face_bundle_says_what_it_reads(tmp_path) -> None:
    from edge_ser.audio import write_wav
    from edge_ser.errors import VideoFormatError

    wav = write_wav(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000)
    with pytest.raises(
        VideoFormatError, match=r"an audio file; this bundle reads faces: images .* or videos"
    ):
        _shipped("face_fer").predict_file(wav)


@pytest.mark.parametrize(
    ("bundle", "name"), [("face_fer", "gone.wav"), ("av_fusion", "gone"), ("av_fusion", "x.wav")]
)
def test_a_missing_file_says_so_first_whatever_the_bundle(tmp_path, bundle: str, name: str) -> None:
    """face_fer said "an audio file; this bundle reads faces" of a missing .wav, av_fusion "no branch ... reads
    extension-less files" of a missing extension-less file: that they do not exist comes first."""
    from edge_ser.errors import EdgeSerError

    missing = tmp_path / name
    with pytest.raises(EdgeSerError, match=rf"^{missing}: no such file$"):
        _shipped(bundle).predict_file(missing)


def test_manifest_sha256_is_the_build_that_was_loaded(fusion, tmp_path) -> None:
    """A report names the build it measured: `manifest_sha256` is the digest of the manifest bytes `load_bundle`
    read, not of whatever the file holds later (a deploy switching `current` during a long bench)."""
    from edge_ser.bundle import load_bundle

    copy = tmp_path / "copy"
    shutil.copytree(fusion.parent, copy, symlinks=True)
    root = copy / fusion.name
    want = hashlib.sha256((root / "manifest.json").read_bytes()).hexdigest()
    b = load_bundle(root)
    audio_want = hashlib.sha256((copy / "audio" / "manifest.json").read_bytes()).hexdigest()
    for path in (root / "manifest.json", copy / "audio" / "manifest.json"):
        path.write_bytes(path.read_bytes() + b"\n")  # a later build on disk
    assert b.manifest_sha256 == want and b.branches["audio"].manifest_sha256 == audio_want


def test_a_self_contained_copy_carries_the_manifests_as_loaded(fusion, tmp_path) -> None:
    """`fusion_files` (deploy, firstboot) read each branch's manifest.json again from the folder, without a size
    limit and following links: a file swapped in after loading could make it hang or take any memory. It now
    carries the bytes `load_bundle` read (`Bundle.manifest_bytes`), whatever the folder holds later."""
    from edge_ser.bundle import load_bundle
    from edge_ser_deploy.self_contained import fusion_files

    copy = tmp_path / "copy"
    shutil.copytree(fusion.parent, copy, symlinks=True)
    b = load_bundle(copy / fusion.name)
    loaded = (copy / "audio" / "manifest.json").read_bytes()
    (copy / "audio" / "manifest.json").unlink()
    os.mkfifo(copy / "audio" / "manifest.json")  # reading it again would block
    _, files, _ = fusion_files(b)
    assert files["audio/manifest.json"] == loaded == b.branches["audio"].manifest_bytes


@pytest.mark.parametrize("manifest", [[], "fusion", None, 3])
def test_check_fusion_manifest_refuses_what_is_not_an_object(manifest) -> None:
    """A direct call with a manifest that is not a JSON object is a BundleError naming the file, not an
    AttributeError (load_bundle reaches it only through is_fusion, which checks first)."""
    from edge_ser.bundle.fusion import check_fusion_manifest

    with pytest.raises(BundleError, match="bundle b: manifest.json must be a JSON object"):
        check_fusion_manifest(manifest, "b")


def test_the_fusion_kind_gives_its_face_crop_for_faces_in_memory() -> None:
    """`predict_audio`'s error on a wrong crop, and docs/vision.md, point to `recognizer.kind.cropper()`; a fusion
    bundle's kind had none (AttributeError), so its user could not make the crops the message asked for. It is the
    face branch's crop."""
    from tests.av_media import face_frames, speech

    rec = _shipped("av_fusion")
    crop = rec.kind.cropper()(np.ascontiguousarray(face_frames()[0]))
    assert crop.found and crop.image.shape == (48, 48)
    assert rec.predict_audio(speech(), 48000, faces=[crop]).label in rec.labels
    with pytest.raises(ConfigError, match=r"cropper\(\)"):
        rec.predict_audio(speech(), 48000, faces=[np.ascontiguousarray(face_frames()[0])])


@pytest.mark.parametrize("learn_first", [False, True])
def test_an_image_or_silent_video_is_not_recorded_as_learnt(tmp_path, learn_first) -> None:
    """av_fusion's speaker statistics are its audio branch's, which an image or a video without sound (short or
    long) gives no input: a silent video's fingerprint was recorded as learnt all the same, so giving it again counted it in "N
    file(s) were learnt before" and a speaker file saved it as enrolled. Only a file some clip of which joined the
    statistics is recorded, in the classifying pass (short and long files) and in learn_files."""
    import cv2

    from edge_ser.recognizer import Recognizer
    from tests.av_media import face_frames, write_speech, write_video

    image = tmp_path / "img.png"
    cv2.imwrite(str(image), face_frames()[0])
    long_video = write_video(tmp_path / "long.mp4", np.concatenate([face_frames()] * 11), fps=10.0)  # 33 s
    video = write_video(tmp_path / "short.mp4")
    wav = write_speech(tmp_path / "speech.wav")
    rec = Recognizer(Path(__file__).resolve().parents[1] / "bundles" / "av_fusion", "numpy")
    files = [image, video, long_video, wav]
    rec.predict_files(files, learn_first=learn_first)
    assert (rec.files_learnt, rec.files_known) == (1, 0)
    assert [rec.enrolled(f) for f in files] == [False, False, False, True]
    rec.predict_files(files, learn_first=learn_first)
    assert (rec.files_learnt, rec.files_known) == (0, 1)  # the WAV alone was learnt before
    saved = json.loads(rec.save_speaker(tmp_path / "speaker.json").read_text())
    assert saved["enrolled"] == sorted(rec._enrolled) and len(saved["enrolled"]) == 1


def test_a_fusion_the_device_would_refuse_is_not_written_over_a_working_one(tmp_path) -> None:
    """Review: write_fusion_bundle wrote the manifest first and loaded it back after, so a branch the rule cannot
    use (ser_emodb has no 'surprise') raised only once it had replaced a working fusion bundle's manifest: the
    device's bundle no longer loaded. It is now checked before anything is written."""
    from edge_ser.bundle import load_bundle, write_fusion_bundle

    root = Path(__file__).resolve().parents[1] / "bundles"
    for name in ("av_fusion", "av_fn_audio", "face_fer", "ser_emodb"):
        shutil.copytree(root / name, tmp_path / name)
    out = tmp_path / "av_fusion"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    rule = load_bundle(out).rule
    with pytest.raises(BundleError, match=r"surprise"):
        write_fusion_bundle(
            out,
            name="av_fusion",
            rule=rule,
            branches={"audio": tmp_path / "ser_emodb", "face": tmp_path / "face_fer"},
        )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert load_bundle(out).rule == rule


def test_a_fusion_manifest_whose_sum_cannot_be_written_is_put_back(tmp_path, monkeypatch) -> None:
    """Review: write_fusion_bundle wrote manifest.json, then manifest.sha256 in a second step: a full disk (or a
    Ctrl-C) between the two left a new manifest beside the old sum, and the device refused the bundle. The
    manifest is now put back when its sum cannot be written, and the old bundle still loads."""
    import edge_ser.bundle.write as write
    from edge_ser.bundle import load_bundle, write_fusion_bundle

    root = Path(__file__).resolve().parents[1] / "bundles"
    for name in ("av_fusion", "av_fn_audio", "face_fer"):
        shutil.copytree(root / name, tmp_path / name)
    out = tmp_path / "av_fusion"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    old = load_bundle(out)
    real = write.atomic_write

    def full_disk(path, data, *args, **kwargs):
        if Path(path).name == "manifest.sha256":
            raise OSError(28, "No space left on device")
        return real(path, data, *args, **kwargs)

    monkeypatch.setattr(write, "atomic_write", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_fusion_bundle(
            out,
            name="av_fusion_2",
            rule=old.rule,
            branches={"audio": tmp_path / "av_fn_audio", "face": tmp_path / "face_fer"},
        )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert load_bundle(out).rule == old.rule
    # a fusion written where there was none leaves no manifest behind
    fresh = tmp_path / "fresh"
    with pytest.raises(OSError, match="No space"):
        write_fusion_bundle(
            fresh,
            name="av_fusion_2",
            rule=old.rule,
            branches={"audio": tmp_path / "av_fn_audio", "face": tmp_path / "face_fer"},
        )
    assert not (fresh / "manifest.json").exists()
