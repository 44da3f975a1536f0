"""The Python API (edge_ser.Recognizer) on every shipped bundle kind: the same answers as the engine fed by the
bundle's input kind by hand, audio in memory at any rate, and the live loop as an iterator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edge_ser
from edge_ser.audio import load, resample, write_wav
from edge_ser.bundle import load_bundle
from edge_ser.engines import load_engine
from edge_ser.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
AUDIO_BUNDLES = ["laq_mlp_emodb", "tiny_transformer_emodb", "av_cnn_audio"]
"""One bundle per audio input kind: the clip vector, log-Mel patches, the audio-visual model's audio branch."""


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    """Three 2 s synthetic utterances at 16 kHz and one at 22.05 kHz (resampled by the bundle's front end)."""
    from converters.data.synthetic import SyntheticSpec, generate

    folder = tmp_path_factory.mktemp("clips")
    out = []
    for i, (y, _, _) in enumerate(generate(SyntheticSpec(n_per_class=1, sr=16000, duration=2.0, seed=5))[:3]):
        out.append(write_wav(folder / f"c{i}.wav", y, 16000))
    y22 = resample(load(out[0])[0], 16000, 22050)
    out.append(write_wav(folder / "c22.wav", y22, 22050))
    return out


def test_the_api_is_lazy_and_at_the_top() -> None:
    assert edge_ser.Recognizer.__module__ == "edge_ser.recognizer" and edge_ser.Prediction is not None
    with pytest.raises(AttributeError):
        edge_ser.NoSuchThing  # noqa: B018


@pytest.mark.parametrize("name", AUDIO_BUNDLES)
def test_predict_files_is_the_kind_and_the_engine(name: str, clips: list[Path]) -> None:
    bundle = load_bundle(REPO / "bundles" / name)
    rec = edge_ser.Recognizer(bundle, "numpy")
    got = rec.predict_files(clips)
    engine, kind = load_engine(bundle, "numpy"), bundle.input_kind
    for clip, p in zip(clips, got, strict=True):
        want = kind.combine(engine.predict(kind.file_inputs(clip)))
        np.testing.assert_allclose(
            [p.probabilities[lab] for lab in bundle.labels], want, rtol=1e-5, atol=1e-7
        )
        assert p.label == bundle.labels[int(np.argmax(want))] and p.source == str(clip)
        assert abs(sum(p.probabilities.values()) - 1) < 1e-5 and p.confidence == max(p.probabilities.values())
        assert set(p.timings) == {"features", "inference"}
    one = rec.predict_file(clips[1])
    assert one.probabilities == pytest.approx(got[1].probabilities, rel=1e-5, abs=1e-7)
    assert str(one).startswith(one.label)


def test_files_in_one_batch_share_its_inference_time(clips: list[Path], monkeypatch) -> None:
    """Each file of a batch carries its share of the one engine call (by input rows), not the whole call: the
    files' times add up to the call's. A fake engine call of exactly 1000 ms stands in for the clock."""
    rec = edge_ser.Recognizer(REPO / "bundles" / "laq_mlp_emodb", "numpy")
    real = rec.engine.predict

    def one_second(x):
        clock[0] += 1.0
        return real(x)

    clock = [0.0]
    monkeypatch.setattr("edge_ser.recognizer.time.perf_counter", lambda: clock[0])
    monkeypatch.setattr(rec.engine, "predict", one_second)
    got = rec.predict_files(clips)
    assert sum(p.timings["inference"] for p in got) == pytest.approx(1000.0)
    assert all(p.timings["inference"] == pytest.approx(250.0) for p in got)


@pytest.mark.parametrize("name", AUDIO_BUNDLES)
def test_predict_audio_at_any_rate_equals_the_file(name: str, clips: list[Path]) -> None:
    """Audio in memory at its own rate goes through the same resampler as a file: the same probabilities."""
    rec = edge_ser.Recognizer(REPO / "bundles" / name)  # "auto": onnxruntime here
    for clip in (clips[0], clips[3]):
        y, sr = load(clip)  # 16 kHz and 22.05 kHz
        a, f = rec.predict_audio(y, sr), rec.predict_file(clip)
        assert a.label == f.label and a.source is None
        assert a.probabilities == pytest.approx(f.probabilities, rel=1e-5, abs=1e-6)
    with pytest.raises(ConfigError, match="float samples"):
        rec.predict_audio((y * 32767).astype(np.int16), sr)
    with pytest.raises(ConfigError, match="mono"):
        rec.predict_audio(np.stack([y, y], 1), sr)


def test_predict_audio_with_faces() -> None:
    """A model that takes faces: the window's crops (any number) or none (black frames, as the live loop)."""
    from tests.av_media import face_frames, speech

    rec = edge_ser.Recognizer(REPO / "bundles" / "av_cnn", "numpy")
    cropper = rec.kind.cropper()
    crops = [cropper(f) for f in face_frames("happy")[:9]]
    y = speech("happy")
    with_faces, blind = rec.predict_audio(y, 16000, crops), rec.predict_audio(y, 16000)
    x = rec.kind.audio_inputs(y, 16000, crops)
    assert x["faces"].shape == (1, 6, 64, 64) and x["faces"].max() > 0
    assert not np.any(rec.kind.audio_inputs(y, 16000)["faces"])
    assert with_faces.probabilities != blind.probabilities


def test_stream_is_the_live_loop(clips: list[Path], tmp_path: Path) -> None:
    """`stream` yields what `edge-ser run` writes (the same runner), and leaving the loop stops the capture."""
    from edge_ser.cli import main
    from edge_ser.live.outputs.jsonl import read_jsonl
    from edge_ser.live.pipeline import PipelineConfig

    y = np.concatenate([load(c)[0] for c in clips[:3]] + [np.zeros(16000, np.float32)])
    wav = write_wav(tmp_path / "stream.wav", y, 16000)
    rec = edge_ser.Recognizer(REPO / "bundles" / "tiny_transformer_emodb", "numpy")
    config = PipelineConfig(window=1.5, hop=0.5, smoothing="none")
    results = list(rec.stream(audio_file=wav, realtime=False, config=config))
    assert len(results) == round((7.0 - 1.5) / 0.5) + 1
    assert results[-1].label == "silence" and any(r.speech for r in results)
    jsonl = tmp_path / "run.jsonl"
    args = ["run", str(rec.bundle.root), "--audio-file", str(wav), "--fast", "--engine", "numpy"]
    assert main([*args, "--window", "1.5", "--smoothing", "none", "--no-console", "--json", str(jsonl)]) == 0
    assert [(r.t, r.label) for r in read_jsonl(jsonl)] == [(r.t, r.label) for r in results]
    it = rec.stream(audio_file=wav, realtime=False, config=config)
    first = next(it)
    it.close()  # what a `break` does: the runner's sources are stopped
    assert first.t == results[0].t
