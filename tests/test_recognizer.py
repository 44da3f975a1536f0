"""The Python API (edge_ser.Recognizer) on every shipped bundle kind: the same answers as the engine fed by the
bundle's input kind by hand, audio in memory at any rate, and the live loop as an iterator."""

from __future__ import annotations

import json
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


def test_help_documents_every_public_member() -> None:
    """`help(edge_ser.Recognizer)` (and the results it returns) gives every public method and property a line."""
    for cls in (edge_ser.Recognizer, edge_ser.Prediction, edge_ser.WindowPrediction):
        for name, member in vars(cls).items():
            if name.startswith("_"):
                continue
            f = member.fget if isinstance(member, property) else member
            if callable(f):
                assert (f.__doc__ or "").strip(), f"{cls.__name__}.{name} has no docstring"


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
        rec.predict_audio((y * 255).astype(np.uint8), sr)
    as_int = rec.predict_audio((y * 32767).astype(np.int16), sr)  # scaled by full scale, as `push` takes it
    assert as_int.label == a.label
    stereo = rec.predict_audio(np.stack([y, y], 1), sr).probabilities  # channels averaged, as a file's
    assert stereo == pytest.approx(rec.predict_audio(y, sr).probabilities, abs=1e-6)


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


@pytest.mark.parametrize("name", ["ser_emodb", "tiny_transformer_emodb", "av_fusion"])
def test_a_session_fed_by_your_own_capture_is_the_live_loop(name: str, tmp_path: Path) -> None:
    """`session(sr).push(chunk)`: 20 ms int16 stereo chunks at 48 kHz (a capture callback's) give the results
    `stream` gives on the same audio as a file: the same hops, gate, labels and speaker learning."""
    import soundfile as sf

    from edge_ser.live.pipeline import PipelineConfig

    y = np.concatenate(
        [_voiced(2.0), np.zeros(16000, np.float32), _voiced(2.5, 1), np.zeros(8000, np.float32)]
    )
    y48 = resample(y, 16000, 48000)
    pcm = np.round(np.clip(y48, -1, 1) * 32767).astype(np.int16)
    stereo = np.stack([pcm, pcm // 2], axis=1)  # a capture callback's 16-bit stereo frames
    wav = tmp_path / "s.wav"
    sf.write(wav, stereo, 48000, subtype="PCM_16")  # the same 16-bit frames in a file
    config = PipelineConfig(window=1.5, hop=0.5, smoothing="ema")
    bundle = REPO / "bundles" / name
    ref = edge_ser.Recognizer(bundle, "numpy")
    want = list(ref.stream(audio_file=wav, realtime=False, config=config))
    rec = edge_ser.Recognizer(bundle, "numpy")
    session = rec.session(48000, config)
    got = [r for i in range(0, len(stereo), 960) for r in session.push(stereo[i : i + 960])]
    got += session.finish()  # the resampler's last samples complete the last hop
    assert [(r.t, r.label, r.speech) for r in got] == [(r.t, r.label, r.speech) for r in want]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a.smoothed, b.smoothed, atol=1e-4)
    assert any(r.speech for r in got) and any(not r.speech for r in got)
    assert rec.speaker_clips == ref.speaker_clips  # the same utterances joined the speaker statistics


def test_a_session_refuses_what_it_cannot_hear() -> None:
    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy")
    for rate in (48, 0, 10**7, 16000.5, "16000"):
        with pytest.raises(ConfigError, match="sample_rate"):
            rec.session(rate)
    session = rec.session(16000)
    from edge_ser.errors import AudioFormatError

    for bad, why in [
        (np.zeros((2, 2, 2)), "shape"),
        (np.zeros(4, np.uint8), "dtype"),
        (np.full(4, np.nan), "non-finite"),
        (np.zeros((2, 4800), np.float32), r"transpose a \[channels, frames\]"),  # it gave 2 samples, silently
        (
            np.full(4800, 3000.0, np.float32),
            "wrongly scaled",
        ),  # int16 values as floats: predict_audio refuses them
    ]:
        with pytest.raises(AudioFormatError, match=why):
            session.push(bad)
    assert session.push(np.zeros((4800, 2), np.float32)) == [] and session.push(np.zeros((1, 2))) == []
    with pytest.raises(ConfigError, match="once"):
        rec.session()
    with pytest.raises(ConfigError, match="once"):
        rec.session(16000, sample_rate=16000)
    assert (
        rec.session(sr=48000) is not None and rec.session(sample_rate=48000) is not None
    )  # the README's call
    with pytest.raises(ConfigError, match="faces only"):
        edge_ser.Recognizer(REPO / "bundles" / "face_fer", "numpy").session(16000)


def _voiced(seconds: float, seed: int = 0) -> np.ndarray:
    from tests._signals import voiced

    return voiced(16000, int(seconds * 16000), seed).astype(np.float32)


def test_silence_never_joins_the_speaker_statistics(tmp_path: Path) -> None:
    """Digital silence tells nothing about the speaker: classified file by file, in memory or enrolled, it leaves
    the statistics as they were (as `learn_files` and `enroll_file` already did); speech still joins them."""
    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy")
    quiet = write_wav(tmp_path / "quiet.wav", np.zeros(32000, np.float32), 16000)
    assert rec.predict_file(quiet).silent and rec.speaker_clips == 0
    p = rec.predict_audio(np.zeros(16000, np.float32), 16000)
    assert p.silent and p.level_db == -np.inf and rec.speaker_clips == 0
    assert rec.enroll(np.zeros(16000, np.float32), 16000) is False and rec.speaker_clips == 0
    speech = write_wav(tmp_path / "speech.wav", _voiced(2.0), 16000)
    rec.predict_files([quiet, speech, quiet])
    assert rec.speaker_clips == 1
    assert rec.enroll(_voiced(2.0, 1), 16000) is True and rec.speaker_clips == 2
    assert not rec.predict_audio(_voiced(1.0, 2), 16000).silent and rec.speaker_clips == 3


def test_a_clip_too_short_to_be_a_sentence_never_teaches_the_speaker_and_is_marked(
    tmp_path: Path, capsys
) -> None:
    """A 0.2 s file pooled with sentences moved their probabilities by up to 0.22 (a user review): a whole clip under
    TEACH_MIN_S joins no speaker statistics, file, memory or enrolment, and `predict` marks a clip under
    SHORT_SPEECH_S; a folder gives its sentences the same answers with the short file in it as without."""
    from edge_ser.cli import main

    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy")
    short = write_wav(tmp_path / "short" / "word.wav", _voiced(0.2, 3), 16000)
    p = rec.predict_file(short)
    assert rec.speaker_clips == 0 and any(m.startswith("short: 0.20 s, under 1.2 s") for m in p.marks())
    assert rec.enroll(_voiced(0.6, 4), 16000) is False and rec.speaker_clips == 0
    rec.predict_audio(_voiced(0.6, 5), 16000)
    assert rec.speaker_clips == 0
    assert not any(m.startswith("short") for m in rec.predict_audio(_voiced(2.0, 6), 16000).marks())

    folder = tmp_path / "sentences"
    for i in range(3):
        write_wav(folder / f"s{i}.wav", _voiced(2.0, 10 + i), 16000)

    def answers(*paths: Path) -> dict[str, dict]:
        main(
            ["predict", str(REPO / "bundles" / "ser_emodb"), *map(str, paths), "--engine", "numpy", "--json"]
        )
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        return {Path(r["file"]).name: r["probabilities"] for r in rows}

    alone, with_word = answers(folder), answers(folder, short)
    assert set(with_word) == {"s0.wav", "s1.wav", "s2.wav", "word.wav"}
    for name, probabilities in alone.items():
        assert with_word[name] == pytest.approx(probabilities, abs=1e-6)


def test_api_misuse_is_a_one_line_config_error(tmp_path: Path) -> None:
    """Wrong arguments name what was wrong instead of failing inside numpy, pathlib or the engine."""
    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy")
    y = _voiced(1.0)
    cases = {
        "more than 64": lambda: rec.predict_audio(y * 32767, 16000),
        "sample rate in Hz": lambda: rec.predict_audio(y, None),
        "a rate in kHz": lambda: rec.predict_audio(y, 48),  # allocated GBs in the resampler
        "1000..768000, got inf": lambda: rec.predict_audio(y, float("inf")),
        "1000..768000, got 1": lambda: rec.enroll(y, 1),
        "must be a Bundle": lambda: edge_ser.Recognizer(None),
        "is a folder": lambda: rec.save_speaker(tmp_path),
        "must be > 0": lambda: rec.stream(audio_file=tmp_path / "x.wav", realtime=False, seconds=-1),
        "nothing to enrol": lambda: edge_ser.Recognizer(REPO / "bundles" / "laq_mlp_emodb").enroll(y, 16000),
        "more than 64 ": lambda: rec.enroll(y * 32767, 16000),
    }
    for message, call in cases.items():
        with pytest.raises(ConfigError, match=message.strip()):
            call()
    saved = tmp_path / "speaker.json"
    rec.save_speaker(saved)
    newer = saved.read_text().replace('"version": 1', '"version": 99')
    (tmp_path / "newer.json").write_text(newer)
    with pytest.raises(ConfigError, match="version 99"):
        rec.load_speaker(tmp_path / "newer.json")
    with pytest.raises(ConfigError, match="no speaker normalisation"):
        edge_ser.Recognizer(REPO / "bundles" / "laq_mlp_emodb").load_speaker(saved)


def test_predict_files_takes_one_path_too(clips: list[Path]) -> None:
    rec = edge_ser.Recognizer(REPO / "bundles" / "laq_mlp_emodb", "numpy")
    want = rec.predict_files([clips[0]])[0].label
    assert [p.label for p in rec.predict_files(str(clips[0]))] == [want]
    assert [p.label for p in rec.predict_files(clips[0])] == [want]


def test_a_face_only_model_needs_faces_and_never_judges_the_audio_band() -> None:
    """face_fer ignores the audio: without crops it refuses (it used to answer about a black frame); with crops
    (a list or one [k, S, S] array) the audio's rate does not flag the result out of range."""
    rec = edge_ser.Recognizer(REPO / "bundles" / "face_fer", "numpy")
    silence = np.zeros(8000, np.float32)
    with pytest.raises(ConfigError, match="faces only"):
        rec.predict_audio(silence, 8000)
    crop = (np.random.default_rng(0).random((48, 48)) * 255).astype(np.uint8)
    listed = rec.predict_audio(silence, 8000, faces=[crop])
    assert not listed.ood and listed.level_db is None
    assert rec.predict_audio(silence, 8000, faces=crop).probabilities == listed.probabilities
    assert rec.predict_audio(silence, 8000, faces=crop[None]).probabilities == listed.probabilities


def test_stream_of_a_file_shorter_than_the_window_is_classified_as_it_is(tmp_path: Path) -> None:
    """It used to end without a single result (every EMODB clip is shorter than the 3 s window), then raised
    ConfigError; predict_file and a session's finish() decide on a short clip, so stream gives one result on it,
    with a note. A file shorter than one hop still says so."""
    wav = write_wav(tmp_path / "short.wav", _voiced(2.0), 16000)
    (r,) = list(
        edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy").stream(audio_file=wav, realtime=False)
    )
    assert r.speech and "less than one 3 s window: classified as it is" in r.notes[-1]
    whole = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy").predict_file(wav)
    assert r.label == whole.label
    tiny = write_wav(tmp_path / "tiny.wav", _voiced(0.3), 16000)
    # the limit is one hop now, and the message says so (it said "less than one 3 s window")
    with pytest.raises(
        ConfigError, match=r"holds 0.30 s of audio, less than one 0.5 s hop.*PipelineConfig\(hop="
    ):
        list(
            edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy").stream(
                audio_file=tiny, realtime=False
            )
        )


def test_stream_of_a_short_file_classifies_all_of_it(tmp_path: Path) -> None:
    """A file shorter than one window was classified on its whole hops only: the last part of a hop was dropped
    (a 2.9 s file classified on 2.5 s, and its note said it held 2.5 s). All its audio is classified, and said."""
    y = _voiced(2.9)

    def one(audio: np.ndarray, name: str):
        wav = write_wav(tmp_path / name, audio, 16000)
        rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy")
        (r,) = list(rec.stream(audio_file=wav, realtime=False))
        return r

    whole, cut = one(y, "whole.wav"), one(y[:40000], "cut.wav")
    assert "the file held 2.90 s of audio, less than one 3 s window" in whole.notes[-1]
    assert "the file held 2.50 s of audio" in cut.notes[-1]
    assert whole.probs != cut.probs  # the last 0.4 s took part

    from tests.av_media import write_video  # a face-only bundle's short video: its note said "of audio"

    video = write_video(tmp_path / "faces.mp4")  # 1.2 s
    rec = edge_ser.Recognizer(REPO / "bundles" / "face_fer", "numpy")
    (r,) = list(rec.stream(video_file=video, realtime=False))
    assert "s of video, less than one 3 s window: classified as it is" in r.notes[-1]


def test_long_audio_in_memory_is_predicted_per_window_as_the_file_is(tmp_path: Path) -> None:
    """78 s of audio given to predict_audio was one clip (another label than predict_file on the same samples, for
    5x the memory); beyond the long-file limit it is now cut into the file's 3 s windows."""
    import soundfile as sf

    y = np.concatenate([_voiced(3.0, i) if i % 2 == 0 else np.zeros(8000, np.float32) for i in range(24)])
    y22 = resample(y, 16000, 22050)
    wav = tmp_path / "long.wav"
    sf.write(wav, y22, 22050, subtype="FLOAT")  # the same samples, exactly, in a file
    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy", adapt=False)
    f, m = rec.predict_file(wav), rec.predict_audio(y22, 22050)
    assert len(m.windows) == len(f.windows) > 5 and m.source is None
    assert [(w.start, w.end, w.label) for w in m.windows] == [(w.start, w.end, w.label) for w in f.windows]
    np.testing.assert_allclose(list(m.probabilities.values()), list(f.probabilities.values()), atol=1e-5)
    assert m.label == f.label and m.duration == pytest.approx(f.duration, abs=1e-3)


def test_enrolment_takes_a_folder_never_counts_a_file_twice_and_refuses_nan(tmp_path: Path) -> None:
    """The README names `rec.enroll_file` as the Python form of `--enroll my_voice/`, but a folder was refused; the
    same recording enrolled again (a restart with --enroll and --speaker-file) was counted again, 18 -> 36 -> 54
    clips; a NaN glitch passed as silence while predict_audio refuses it."""
    from edge_ser.errors import AudioFormatError

    folder = tmp_path / "voice"
    (folder / "more").mkdir(parents=True)
    for i, where in enumerate([folder, folder, folder / "more"]):
        write_wav(where / f"take{i}.wav", _voiced(1.5, i), 16000)
    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy")
    assert rec.enroll_file(folder) == 3 and rec.speaker_clips == 3
    assert rec.enroll_file(folder / "take0.wav") == 0 and rec.speaker_clips == 3  # the same bytes: not again
    saved = rec.save_speaker(tmp_path / "me.json")
    again = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy")
    assert again.load_speaker(saved) == 3 and again.enroll_file(folder) == 0 and again.speaker_clips == 3
    again.reset_speaker()
    assert again.enroll_file(folder) == 3  # a new speaker: enrolled afresh
    with pytest.raises(AudioFormatError, match="non-finite"):
        rec.enroll(np.full(16000, np.nan, np.float32), 16000)
    with pytest.raises(ConfigError, match="adapt must be True or False"):
        edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy", adapt="no")


def test_enrolment_skips_an_unreadable_file_and_never_keeps_half_a_file(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """An empty file in an enrolment folder stopped `--enroll` and `enroll_file(folder)` after the files before it
    had joined the statistics; now it is skipped with a warning naming it (as predict skips), and a file that
    fails part way leaves the statistics as they were."""
    import edge_ser.audio.stream as stream
    from edge_ser.cli import main
    from edge_ser.errors import AudioFormatError, InputWarning

    folder = tmp_path / "voice"
    folder.mkdir()
    for i in range(2):
        write_wav(folder / f"take{i}.wav", _voiced(1.5, i), 16000)
    (folder / "empty.wav").write_bytes(b"")
    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy")
    with pytest.warns(InputWarning, match="empty.wav"):
        assert rec.enroll_file(folder) == 2 and rec.speaker_clips == 2
    clip = write_wav(tmp_path / "clip.wav", _voiced(1.5, 5), 16000)
    with pytest.warns(InputWarning, match="--enroll: skipped .*empty.wav"):
        assert main(["predict", str(REPO / "bundles" / "ser_emodb"), str(clip), "--enroll", str(folder)]) == 0
    assert (
        "enrolled 2 clip(s) of speech from 2 file(s); 1 unreadable file(s) skipped" in capsys.readouterr().out
    )
    (folder / "take0.wav").unlink(), (folder / "take1.wav").unlink()
    with pytest.warns(InputWarning, match="empty.wav"):
        assert main(["predict", str(REPO / "bundles" / "ser_emodb"), str(clip), "--enroll", str(folder)]) != 0
    assert "--enroll: none of the 1 file(s) could be read" in capsys.readouterr().err

    good = list(stream.file_windows(clip, 16000))

    def damaged(*args, **kwargs):  # two good windows, then the rest of the file cannot be decoded
        yield from good * 2
        raise AudioFormatError(f"{clip}: truncated data")

    before = rec.save_speaker(tmp_path / "before.json").read_text()
    monkeypatch.setattr(stream, "file_windows", damaged)
    with pytest.raises(AudioFormatError, match="truncated"):
        rec.enroll_file(clip)
    assert rec.speaker_clips == 2 and not rec.enrolled(clip)
    assert rec.save_speaker(tmp_path / "after.json").read_text() == before


def test_a_speaker_file_moves_between_a_branch_and_its_own_bundle(tmp_path: Path) -> None:
    """av_fn_audio's statistics are av_fusion's audio branch's (the same prior), but a file of one was refused by
    the other ("holds statistics for ['bundle'], this bundle keeps ['audio']")."""
    alone = edge_ser.Recognizer(REPO / "bundles" / "av_fn_audio", "numpy")
    for i in range(3):
        alone.enroll(_voiced(1.5, i), 16000)
    saved = alone.save_speaker(tmp_path / "me.json")
    fused = edge_ser.Recognizer(REPO / "bundles" / "av_fusion", "numpy")
    assert fused.load_speaker(saved) == 3
    back = edge_ser.Recognizer(REPO / "bundles" / "av_fn_audio", "numpy")
    assert back.load_speaker(fused.save_speaker(tmp_path / "fused.json")) == 3
    with pytest.raises(ConfigError, match="another bundle's speaker prior"):
        edge_ser.Recognizer(REPO / "bundles" / "ser_ravdess", "numpy").load_speaker(saved)


def test_audio_in_memory_beyond_full_scale_warns_as_a_file_does() -> None:
    from edge_ser.errors import InputWarning

    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy")
    with pytest.warns(InputWarning, match="beyond full scale"):
        rec.predict_audio(_voiced(1.0) * 15, 16000)


def test_run_checks_the_speaker_file_can_be_written_before_the_session(tmp_path: Path, capsys) -> None:
    """An unwritable --speaker-file was found after the session, whose statistics were then lost."""
    from edge_ser.cli import main

    wav = write_wav(tmp_path / "a.wav", _voiced(4.0), 16000)
    ser = str(REPO / "bundles" / "ser_emodb")
    (tmp_path / "a_file").write_text("x")
    code = main(["run", ser, "--audio-file", str(wav), "--fast", "--no-console",
                 "--speaker-file", str(tmp_path / "a_file" / "me.json")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "a_file is a file, not a folder" in err and "--speaker-file" in err
    # a missing folder is made, as --json makes its (it was refused: the two options disagreed)
    code = main(["run", ser, "--audio-file", str(wav), "--fast", "--no-console",
                 "--speaker-file", str(tmp_path / "missing" / "me.json")])  # fmt: skip
    assert code == 0 and (tmp_path / "missing" / "me.json").is_file()
    capsys.readouterr()
    enrol = tmp_path / "enrol"
    enrol.mkdir()
    write_wav(enrol / "e.wav", _voiced(1.5, 3), 16000)
    args = ["run", ser, "--audio-file", str(wav), "--fast", "--no-console", "--enroll", str(enrol),
            "--speaker-file", str(tmp_path / "me.json")]  # fmt: skip
    counts = []
    for _ in range(2):
        assert main(args) == 0
        counts.append(json.loads((tmp_path / "me.json").read_text())["enrolled"])
    assert counts[0] == counts[1] and len(counts[0]) == 1
    assert "were enrolled before" in capsys.readouterr().err


def test_a_speaker_file_where_nothing_can_be_written_is_refused_before_the_session() -> None:
    """A permission check alone passed as root for /proc/me.json (the reviewer's case): the session ran, then its
    statistics were lost. The check now tries a temporary file in the folder, as the atomic write will."""
    from edge_ser.cli.common import check_writable

    with pytest.raises(ConfigError, match="--speaker-file /proc/me.json: cannot write there"):
        check_writable(Path("/proc/me.json"), "--speaker-file", create=False)


def test_audio_in_memory_takes_channels_as_files_and_sessions_do() -> None:
    """predict_audio and enroll refused [n, 1] and [n, 2] arrays ('functionals input: audio must be mono') while a
    stereo file and a session's [n, ch] chunks were averaged; a [channels, n] array is refused, saying so."""
    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy", adapt=False)
    y = _voiced(1.5)
    mono = rec.predict_audio(y, 16000).probabilities
    assert rec.predict_audio(np.stack([y, y], axis=1), 16000).probabilities == mono
    assert rec.predict_audio(y[:, None], 16000).probabilities == mono
    with pytest.raises(ConfigError, match=r"predict_audio: .*transpose a \[channels, frames\]"):
        rec.predict_audio(np.stack([y, y]), 16000)
    # one check for audio in memory (a pushed chunk's): int16 values as floats in anti-phase channels average to ~0
    # and passed predict_audio while push refused them
    loud = np.stack([y * 16383, -y * 16383], axis=1)
    with pytest.raises(ConfigError, match="wrongly scaled"):
        rec.predict_audio(loud, 16000)
    with pytest.raises(ConfigError, match=r"enroll: audio is \[frames\] or \[frames, channels\]"):
        edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy").enroll(
            np.zeros((2, 2, 2), np.float32), 16000
        )
    assert edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy").enroll(
        np.stack([y, y], axis=1), 16000
    )


def test_an_enrolment_file_of_noise_is_not_speech(tmp_path: Path, capsys) -> None:
    """A file up to 30 s was taken as a clip of the speaker whatever it held but digital silence: 20 s of -30 dBFS
    noise or 10 s of -75 dBFS hiss joined the statistics. A whole file now needs some voice (WHOLE_CLIP_VOICING)."""
    from edge_ser.cli import main

    rng = np.random.default_rng(0)
    folder = tmp_path / "voice"
    folder.mkdir()
    write_wav(folder / "noise.wav", (0.03 * rng.standard_normal(20 * 16000)).astype(np.float32), 16000)
    write_wav(folder / "hiss.wav", (2e-4 * rng.standard_normal(10 * 16000)).astype(np.float32), 16000)
    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy")
    assert rec.enroll_file(folder) == 0 and rec.speaker_clips == 0
    write_wav(folder / "take.wav", _voiced(1.5), 16000)
    assert edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy").enroll_file(folder) == 1
    clip = write_wav(tmp_path / "clip.wav", _voiced(1.5, 3), 16000)
    assert main(["predict", str(REPO / "bundles" / "ser_emodb"), str(clip), "--enroll", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "enrolled 1 clip(s) of speech from 3 file(s); 2 file(s) held no speech" in out


def test_an_enrolment_clip_too_short_to_teach_is_not_called_silence(tmp_path: Path, capsys) -> None:
    """A 0.2 s sentence given to --enroll was said to hold "no speech (silence, noise or too quiet)": a user raised
    the gain; it is too short (TEACH_MIN_S), and the line now names that reason too."""
    from edge_ser.cli import main

    short = write_wav(tmp_path / "short.wav", _voiced(0.2), 16000)
    clip = write_wav(tmp_path / "clip.wav", _voiced(1.5, 3), 16000)
    assert main(["predict", str(REPO / "bundles" / "ser_emodb"), str(clip), "--enroll", str(short)]) == 0
    out = capsys.readouterr().out
    assert "enrolled 0 clip(s) of speech from 1 file(s); 1 file(s) held no speech" in out
    assert "or under 1 s) and added nothing" in out


def test_predicting_the_same_files_again_does_not_learn_them_again(tmp_path: Path, capsys) -> None:
    """Review: `predict B DIR --speaker-file s.json` three times grew the saved statistics 4 -> 12 -> 16 -> 20
    clips from the same 4 files; files learnt by predict are now remembered by their bytes, as enrolled ones are,
    in both adapt modes and through the speaker file."""
    from edge_ser.cli import main

    folder = tmp_path / "clips"
    folder.mkdir()
    for i in range(3):
        write_wav(folder / f"c{i}.wav", _voiced(1.5, i), 16000)
    ser = str(REPO / "bundles" / "ser_emodb")
    me = tmp_path / "me.json"
    held = []
    for adapt in ("all", "all", "online"):
        assert (
            main(
                [
                    "predict",
                    ser,
                    str(folder),
                    "--engine",
                    "numpy",
                    "--adapt",
                    adapt,
                    "--speaker-file",
                    str(me),
                ]
            )
            == 0
        )
        held.append(json.loads(me.read_text())["statistics"]["bundle"]["count"])
    assert held == [3, 3, 3]
    assert (
        "3 file(s) were learnt before (enrolled, in the speaker file, or given twice) and are not added twice"
        in capsys.readouterr().out
    )
    rec = edge_ser.Recognizer(ser, "numpy")
    rec.predict_file(folder / "c0.wav")
    rec.predict_file(folder / "c0.wav")  # online, the same clip again: one clip
    assert rec.speaker_clips == 1 and rec.files_known == 1
    rec.reset_speaker()
    rec.predict_file(folder / "c0.wav")
    assert rec.speaker_clips == 1 and rec.files_known == 0  # a new speaker learns it afresh
    # a run that does not learn records nothing: it writes no speaker file (0 clips), which could stop a later run
    # from learning
    off = tmp_path / "off.json"
    assert (
        main(["predict", ser, str(folder), "--engine", "numpy", "--adapt", "off", "--speaker-file", str(off)])
        == 0
    )
    assert not off.exists() and "not written: no clip of the speaker was learnt" in capsys.readouterr().out
    still = edge_ser.Recognizer(ser, "numpy", adapt=False)
    still.predict_file(folder / "c0.wav")
    assert still._enrolled == set()


def test_api_small_gaps_a_bytes_path_a_new_folder_and_an_empty_enrolment_folder(tmp_path: Path) -> None:
    """Review: predict_file(b'caf\\xe9.wav') raised a bare TypeError; save_speaker into a folder that does not exist
    raised FileNotFoundError (the CLI makes it); enroll_file of a folder with no audio returned 0 silently."""
    import os

    from edge_ser.errors import InputWarning

    name = os.fsencode(str(tmp_path)) + b"/caf\xe9.wav"
    write_wav(os.fsdecode(name), _voiced(1.5), 16000)
    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy")
    assert rec.predict_file(name).label in rec.labels
    saved = rec.save_speaker(tmp_path / "new" / "folder" / "me.json")
    assert saved.is_file()
    (tmp_path / "empty").mkdir()
    with pytest.warns(InputWarning, match="holds no audio file"):
        assert rec.enroll_file(tmp_path / "empty") == 0


def test_predict_says_when_several_files_are_learnt_as_one_speaker(tmp_path: Path, capsys) -> None:
    """A folder of several speakers is the usual case for a researcher: predict says the files are learnt as one
    speaker when they are (--adapt all / online, a bundle that learns its speaker), and not with --adapt off."""
    from edge_ser.cli import main

    for i in range(2):
        write_wav(tmp_path / f"s{i}.wav", _voiced(2.0, 20 + i), 16000)
    ser = str(REPO / "bundles" / "ser_emodb")
    for adapt in ("all", "online"):
        main(["predict", ser, str(tmp_path), "--engine", "numpy", "--adapt", adapt])
        out = capsys.readouterr().out
        assert (
            f"the speech in the 2 files was learnt as one speaker's voice, which the results are adjusted to (--adapt {adapt})"
            in out
        )
    main(["predict", ser, str(tmp_path), "--engine", "numpy", "--adapt", "off"])
    main(["predict", ser, str(tmp_path / "s0.wav"), "--engine", "numpy"])
    assert "one speaker" not in capsys.readouterr().out


def test_a_long_file_read_as_one_clip_is_marked(tmp_path: Path) -> None:
    """A user review's 29.9 s file of nine utterances read "disgust 0.98" with no mark (windowed past 30 s, the same
    audio read "calm 0.39"): a file over 10 s read as one clip is marked `long`; a 2 s one and a windowed 31 s one
    are not."""

    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy", adapt=False)
    marked = {}
    for seconds in (2.0, 12.0, 31.0):
        f = write_wav(tmp_path / f"{seconds:g}.wav", _voiced(seconds, 30), 16000)
        marked[seconds] = [m for m in rec.predict_file(f).marks() if m.startswith("long")]
    assert marked[12.0] and marked[12.0][0].startswith("long: 12.0 s read as one clip")
    assert not marked[2.0] and not marked[31.0]


def test_a_session_refuses_a_channels_first_chunk_once_it_knows_the_channels() -> None:
    """[2, 32] (channels-first, torchaudio's layout) was read as 32 channels of 2 frames: once the session knows
    its channels (given, or from the first 2-D chunk) such a chunk is refused with the transpose to make."""
    from edge_ser.errors import AudioFormatError

    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy")
    given = rec.session(16000, channels=2)
    with pytest.raises(AudioFormatError, match=r"\[channels, frames\].*transpose"):
        given.push(np.zeros((2, 32), np.float32))
    with pytest.raises(AudioFormatError, match="channels=2"):
        given.push(np.zeros((5, 3), np.float32))
    assert given.push(np.zeros((32, 2), np.float32)) == [] and given.push(np.zeros((2, 2), np.float32)) == []
    learnt = rec.session(16000)
    assert learnt.push(np.zeros((480, 2), np.int16)) == [] and learnt.channels == 2
    with pytest.raises(AudioFormatError, match="transpose"):
        learnt.push(np.zeros((2, 32), np.int16))
    assert learnt.push(np.zeros(32, np.float32)) == []  # mono [frames] is never ambiguous
    for bad in (0, 65, 2.0, True):
        with pytest.raises(ConfigError, match="channels"):
            rec.session(16000, channels=bad)


def test_a_first_chunk_that_does_not_tell_its_layout_is_refused() -> None:
    """Without channels=, the first 2-D chunk set the layout by guess: 1 ms chunks of stereo laid out
    [channels, frames] ([2, 48] at 48 kHz) or mono [1, 48] made a session of 48 channels that read each chunk as 2
    (or 1) samples, with nothing but a 'channels cancel' warning; a first [2, 2] was read as [frames, channels]. A
    first 2-D chunk with no more frames than channels is now refused, naming channels=; with it, it is read."""
    from edge_ser.errors import AudioFormatError

    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy")
    for shape in ((2, 48), (1, 48), (2, 2), (1, 2)):
        session = rec.session(48000)
        with pytest.raises(AudioFormatError, match=r"does not tell its layout.*channels=N"):
            session.push(np.zeros(shape, np.float32))
        assert session.channels is None
    assert rec.session(48000, channels=2).push(np.zeros((2, 2), np.float32)) == []
    one = rec.session(48000)
    assert one.push(np.zeros((1, 1), np.float32)) == [] and one.channels == 1  # one sample: no layout to tell
    stereo = rec.session(48000)
    assert stereo.push(np.zeros((3, 2), np.float32)) == [] and stereo.channels == 2
    with pytest.raises(AudioFormatError, match="transpose"):
        stereo.push(np.zeros((2, 48), np.float32))
    assert stereo.push(np.zeros((2, 2), np.float32)) == []  # the layout is known now


def test_int16_in_the_other_byte_order_is_read() -> None:
    """Big-endian int16 (RTP's L16 payload, np.frombuffer(payload, ">i2")) was refused by push, predict_audio and
    enroll as "int16 or int32, got dtype >i2": it is int16, and is now read as the native samples are."""
    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy", adapt=False)
    y = (_voiced(1.5) * 20000).astype(np.int16)
    swapped = y.astype(">i2" if np.little_endian else "<i2")
    assert rec.predict_audio(swapped, 16000).probabilities == rec.predict_audio(y, 16000).probabilities
    wide = (y.astype(np.int32) << 16).astype(">i4" if np.little_endian else "<i4")
    assert rec.predict_audio(wide, 16000).label == rec.predict_audio(y, 16000).label
    assert edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy").enroll(swapped, 16000)
    session = rec.session(16000)
    assert session.push(swapped) == [] and session.t == 1.5


def test_raw_bytes_are_refused_saying_how_to_read_them() -> None:
    """PyAudio's stream.read gives bytes: push refused them as "got dtype |S1920" and a bytearray as "got dtype
    uint8", which did not say the bytes were the problem; the refusal now says how to read them (frombuffer)."""
    from edge_ser.errors import AudioFormatError

    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy", adapt=False)
    raw = (_voiced(1.5) * 20000).astype(np.int16).tobytes()
    for data in (raw, bytearray(raw), memoryview(raw)):
        with pytest.raises(
            AudioFormatError, match=r"push: the chunk is .*bytes.*np\.frombuffer\(data, np\.int16\)"
        ):
            rec.session(16000).push(data)
        with pytest.raises(ConfigError, match=r"predict_audio: y is .*bytes.*np\.frombuffer"):
            rec.predict_audio(data, 16000)
    assert rec.session(16000).push(np.frombuffer(raw, np.int16)) == []


def test_a_ragged_list_chunk_is_an_audio_format_error() -> None:
    """A list of frames of unequal lengths raised numpy's ValueError from push instead of the
    AudioFormatError mono_float promises for anything that is not audio (and from predict_audio and enroll
    instead of their ConfigError)."""
    from edge_ser.errors import AudioFormatError

    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy")
    for kw in ({}, {"channels": 2}):
        with pytest.raises(AudioFormatError, match="push: the chunk is not an array of samples .list"):
            rec.session(16000, **kw).push([[0.0, 0.0], [0.0]])
    assert rec.session(16000).push([[0.0, 0.0]] * 480) == []  # a list of equal frames is read
    # predict_audio and enroll raised numpy's bare ValueError for the same list
    for call in (rec.predict_audio, rec.enroll):
        with pytest.raises(ConfigError, match=r"(predict_audio|enroll): y is not an array of samples .list"):
            call([[0.0, 0.0], [0.0]], 16000)


def test_str_of_a_prediction_carries_the_marks_predict_prints(tmp_path: Path, capsys) -> None:
    """`print(rec.predict_audio(np.zeros(32000), 16000))` read "sad 0.73 (calm 0.27, ...)" with `.silent` True, while
    `edge-ser predict` marked the same audio "no speech: digital silence": str(Prediction) ends with the marks the
    text view prints (silence, noise, clipping), from the one implementation, `Prediction.marks`."""
    from edge_ser.cli import main

    rec = edge_ser.Recognizer(REPO / "bundles" / "ser_emodb", "numpy", adapt=False)
    silent = rec.predict_audio(np.zeros(32000), 16000)
    assert silent.silent and "sad" in str(silent) and "  [no speech: digital silence]" in str(silent)
    noise = np.random.default_rng(0).normal(0.0, 0.1, 32000).astype(np.float32)
    assert "  [no speech: no voiced sound" in str(rec.predict_audio(noise, 16000))
    clipped = np.clip(_voiced(2.0, 7) * 20.0, -1.0, 1.0)
    assert "  [clipped: " in str(rec.predict_audio(clipped, 16000))
    speech = rec.predict_audio(_voiced(2.0, 6), 16000)
    assert not any(m.startswith(("no speech", "clipped")) for m in speech.marks())
    assert str(speech).count("  [") == len(speech.marks())

    f = write_wav(tmp_path / "quiet.wav", np.zeros(32000, np.float32), 16000)
    main(["predict", str(REPO / "bundles" / "ser_emodb"), str(f), "--engine", "numpy", "--adapt", "off"])
    line = next(x for x in capsys.readouterr().out.splitlines() if "quiet.wav" in x)
    marks = str(rec.predict_file(f)).partition("  [")[2]
    assert marks and line.endswith("  [" + marks)
