"""The live runtime on a log-Mel patch bundle (`lms_input`, squeezenet_lms): `edge-ser run` and `edge-ser bench
--live` cut each window into patches with `clip_segments`, run the batch and vote with `utterance_vote`,
exactly as `edge-ser predict` does on a clip; audio-only (no camera), silence gated, stages timed."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edge_ser.inputs.patches import LMSSpec, PatchesKind

pytest.importorskip("torch")
pytest.importorskip("onnx")

SR = 16000
SPEC = LMSSpec(n_mels=32, win_length=400, hop_length=160, n_fft=512, segment_frames=32)
LABELS = ["neutral", "happy", "angry"]
ENGINE = "numpy"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A tiny squeezenet_lms (width 0.25, M 32, T 32) frozen at 8 bits, as a bundle with its LMSSpec."""
    import torch

    from converters.export.bundle import build_bundle
    from converters.models.squeezenet_lms import squeezenet_lms
    from converters.quant import BitPlan, freeze
    from edge_ser.bundle import load_bundle

    torch.manual_seed(0)
    model = squeezenet_lms(n_mels=SPEC.n_mels, segment_frames=SPEC.segment_frames, num_classes=3, width=0.25)
    model = model.eval()
    model.set_normalization(-40.0, 15.0)
    plan = BitPlan.uniform(model, 8)
    frozen, codes = freeze(model, plan)
    root = tmp_path_factory.mktemp("lms") / "b"
    b = load_bundle(
        build_bundle(root, frozen, plan, codes, name="sq", labels=LABELS, kind=PatchesKind(SPEC), accuracy={})
    )
    assert b.input_kind.spec == SPEC and b.input_names == ("lms",)
    return b


def _voiced(seconds: float, sr: int = SR, f0: float = 150.0, seed: int = 0) -> np.ndarray:
    """A harmonic, amplitude-modulated tone around -20 dBFS (speech-like for the gate)."""
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(f0 + 20 * np.sin(2 * np.pi * 0.7 * t)) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)
    y = y + 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    return (0.1 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    """5.5 s at 16 kHz: voiced 0-2 s, digital silence 2-3.5 s, a higher voice 3.5-5.5 s (noise would be silence to
    the voice gate, which tests voicing)."""
    from edge_ser.audio import write_wav

    y = np.concatenate([_voiced(2.0), np.zeros(int(1.5 * SR), np.float32), _voiced(2.0, f0=230.0, seed=1)])
    return write_wav(tmp_path_factory.mktemp("audio") / "a.wav", y, SR)


@pytest.fixture
def no_camera(monkeypatch):
    """Any attempt to open a camera (or a video file) fails the test."""
    from edge_ser.live import camera, files

    def refuse(*a, **k):
        raise AssertionError("the camera / a video source was opened for an audio-only LMS bundle")

    monkeypatch.setattr(camera, "CameraSource", refuse)
    monkeypatch.setattr(files, "VideoFileSource", refuse)
    try:  # OpenCV is optional on the device: patched only when present
        import cv2
    except ImportError:
        return
    monkeypatch.setattr(cv2, "VideoCapture", refuse)


def _reference(b, window: np.ndarray) -> np.ndarray:
    """`edge-ser predict`'s code path on one window: clip_segments -> engine on the batch -> utterance_vote."""
    from edge_ser.engines import load_engine
    from edge_ser.inputs.patches import clip_segments, utterance_vote

    spec = b.input_kind.spec
    x = clip_segments(window, spec.sample_rate, spec).astype(np.float32)
    logits = load_engine(b, ENGINE).predict({b.input_name: x})
    _, probs = utterance_vote(logits, np.zeros(len(x), int), b.input_kind.vote)
    return probs[0]


def test_run_on_a_wav_matches_predict_and_gates_silence(bundle, wav, no_camera, capsys):
    from edge_ser.audio import load
    from edge_ser.cli import main
    from edge_ser.live.outputs.jsonl import result_from_dict

    win, hop = 1.5, 0.5
    rc = main(
        [
            "run",
            str(bundle.root),
            "--audio-file",
            str(wav),
            "--fast",
            "--json",
            "-",
            "--no-console",
            "--engine",
            ENGINE,
            "--window",
            str(win),
            "--hop",
            str(hop),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    results = [result_from_dict(json.loads(line)) for line in out.splitlines() if line.strip()]
    assert [r.t for r in results] == pytest.approx(
        [1.5 + hop * i for i in range(9)]
    )  # windows end 1.5 .. 5.5 s

    y, _ = load(wav, sr=SR)
    n_win = int(round(win * SR))
    speech_at = {1.5, 2.0, 4.0, 4.5, 5.0, 5.5}  # newest hop voiced; 2.5, 3.0, 3.5: the silent gap
    prev = None
    for r in results:
        assert r.labels == tuple(LABELS) and r.mode == "audio" and r.face_box is None and r.frame_size is None
        assert r.fallback is None
        if r.t in speech_at:
            assert r.speech and r.label in LABELS, r
            end = int(round(r.t * SR))
            ref = _reference(bundle, y[end - n_win : end])
            np.testing.assert_allclose(r.probs, ref, rtol=1e-6, atol=1e-7)
            assert math.isclose(sum(r.probs), 1.0, rel_tol=1e-6)
            # EMA smoothing (alpha 0.5), restarted after silence
            expect = np.asarray(r.probs) if prev is None else 0.5 * np.asarray(r.probs) + 0.5 * prev
            np.testing.assert_allclose(r.smoothed, expect, rtol=1e-6, atol=1e-9)
            assert r.label == LABELS[int(np.argmax(r.smoothed))]
            assert r.times.features > 0 and r.times.inference > 0 and r.times.total > 0
            prev = np.asarray(r.smoothed)
        else:
            assert not r.speech and r.label == "silence" and r.probs == () and r.confidence == 0.0, r
            assert r.times.features == 0 and r.times.inference == 0
            prev = None


def test_pipeline_step_majority_vote_and_rate(bundle):
    """The Python API: the pipeline analyses at the LMSSpec's rate, needs no faces, and uses the bundle's vote."""
    import copy

    from edge_ser.engines import load_engine
    from edge_ser.live.pipeline import LivePipeline, PipelineConfig

    b = copy.copy(bundle)
    object.__setattr__(b, "manifest", copy.deepcopy(bundle.manifest))
    object.__setattr__(b, "_cache", {})  # its input kind is read again from the changed manifest
    b.manifest["lms_input"]["vote"] = "majority"
    assert b.input_kind.vote == "majority"
    pipe = LivePipeline(b, load_engine(b, ENGINE), PipelineConfig(window=2.0, hop=0.5, smoothing="none"))
    assert pipe.sr == SPEC.sample_rate and not pipe.needs_faces
    window = _voiced(2.0, seed=4)
    r = pipe.step(2.0, window)
    assert r.speech and r.mode == "audio"
    np.testing.assert_allclose(r.probs, _reference(b, window), rtol=1e-6, atol=1e-7)
    assert r.label == LABELS[int(np.argmax(_reference(b, window)))]


def test_bench_live_reports_stage_timings(bundle, tmp_path, no_camera, capsys):
    """`edge-ser bench --live` on the LMS bundle, fast, from a 22.05 kHz WAV (resampled to the LMSSpec's rate
    when the file source loads it, as for every other bundle)."""
    from edge_ser.audio import write_wav
    from edge_ser.cli import main

    sr_file = 22050
    y = np.concatenate(
        [
            _voiced(1.5, sr=sr_file),
            np.zeros(sr_file // 2, np.float32),
            _voiced(1.0, sr=sr_file, f0=230.0, seed=1),
        ]
    )
    wav = write_wav(tmp_path / "b.wav", y, sr_file)
    out = tmp_path / "bench"
    rc = main(
        [
            "bench",
            "--live",
            str(bundle.root),
            "--audio-file",
            str(wav),
            "--fast",
            "--engine",
            ENGINE,
            "--window",
            "1.0",
            "--hop",
            "0.5",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "| features |" in text and "| inference |" in text
    assert "not paced (--fast)" in text  # its CPU share is not a live run's, and the report says so
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["updates"] == 5  # windows ending 1.0, 1.5, ..., 3.0 s
    assert 0 < report["speech_updates"] < report["updates"]  # the 0.5 s pause is gated
    st = report["stages"]
    assert set(st) == {"capture", "features", "face", "inference", "learn", "total"}
    assert st["features"]["p50"] > 0 and st["inference"]["p50"] > 0 and st["total"]["p50"] > 0
    assert st["face"]["p50"] == 0 and report["faces_cropped"] == 0
    assert abs(report["stream_seconds"] - 3.0) < 0.01
