"""The Python API as an app embeds it (review of 2026-12-06): audio in memory takes the same rules as files, results
encode as strict JSON, and an iterator may be resumed on another thread."""

from __future__ import annotations

import json
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from _speaker import SR, _voice, _with_block

from edge_ser.audio.wav import write_wav
from edge_ser.errors import AudioFormatError, ConfigError, InputWarning
from edge_ser.recognizer import Recognizer

ROOT = Path(__file__).resolve().parents[1]


def _hiss(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    y = np.random.default_rng(seed).normal(size=int(seconds * SR))
    return (y / np.sqrt(np.mean(y**2)) * 10 ** (dbfs / 20)).astype(np.float32)


def test_noise_teaches_the_speaker_nothing_by_any_path(tmp_path) -> None:
    """`enroll_file` left noise out (no voiced frames); `enroll(y)`, `predict_audio` and `predict_file` took it in
    as a clip of the speaker, even a result the API itself marked silent."""
    rec = Recognizer(_with_block(tmp_path), "numpy")
    noise = _hiss(5, -30)
    assert rec.enroll(noise, SR) is False and rec.speaker_clips == 0
    for seed in range(3):
        assert rec.predict_audio(_hiss(3, -70, seed), SR).silent
    noisy = write_wav(tmp_path / "noise.wav", noise, SR)
    rec.predict_file(noisy)
    rec.predict_files([noisy], learn_first=True)
    assert rec.enroll_file(noisy) == 0 and rec.speaker_clips == 0
    assert rec.enroll(_voice(1), SR) is True and rec.speaker_clips == 1  # a voice still counts
    rec.predict_audio(_voice(2), SR)
    assert rec.speaker_clips == 2


def test_long_audio_in_memory_enrols_as_a_file_does(tmp_path) -> None:
    """`enroll(y)` of a minute of audio was one clip (and held the whole minute's features at once); it is now cut
    into the voiced 3 s windows `enroll_file` takes from the same samples."""
    b = _with_block(tmp_path)
    y = np.concatenate([_voice(i, 3.0) for i in range(12)] + [np.zeros(SR * 3, np.float32)])  # 39 s
    from_file, from_memory = Recognizer(b, "numpy"), Recognizer(b, "numpy")
    n = from_file.enroll_file(write_wav(tmp_path / "long.wav", y, SR))
    assert n == 12 and from_memory.enroll(y, SR) is True and from_memory.speaker_clips == 12
    np.testing.assert_allclose(
        from_memory.speaker.state()["mean"], from_file.speaker.state()["mean"], rtol=5e-3, atol=1e-2
    )


def test_faces_given_to_a_model_without_faces_are_ignored_with_a_warning(tmp_path) -> None:
    rec = Recognizer(ROOT / "bundles" / "ser_emodb", "numpy", adapt=False)
    y = _voice(3, 2.0)
    plain = rec.predict_audio(y, SR)
    with pytest.warns(InputWarning, match="takes no faces; the 1 given are ignored"):
        with_faces = rec.predict_audio(y, SR, [np.zeros((7, 3), np.uint8)])
    assert with_faces.probabilities == plain.probabilities


def test_audio_checks_before_resampling_and_integer_samples(tmp_path) -> None:
    rec = Recognizer(_with_block(tmp_path), "numpy", adapt=False)
    y = _voice(4, 2.0)
    bad = np.repeat(y, 3)
    bad[300] = np.nan
    with pytest.raises(AudioFormatError, match="1 non-finite"):  # it counted the resampler's spread (160)
        rec.predict_audio(bad, 48000)
    as_int = np.round(y * 32767).astype(np.int16)
    assert rec.predict_audio(as_int, SR).label == rec.predict_audio(as_int / 32768.0, SR).label
    with pytest.raises(ConfigError, match="int16 / int32"):
        rec.predict_audio(y.astype(np.uint8), SR)


def test_int16_samples_given_as_int32_are_said(tmp_path) -> None:
    """int32 holding 16-bit values was scaled by 2**31, 96 dB down, and classified as near silence without a word
    (by predict_audio, enroll and a session's push)."""
    rec = Recognizer(_with_block(tmp_path), "numpy", adapt=False)
    as_int32 = np.round(_voice(4, 2.0) * 32767).astype(np.int32)
    with pytest.warns(InputWarning, match=r"predict_audio: int32 samples all within the int16 range"):
        assert rec.predict_audio(as_int32, SR).silent
    with pytest.warns(InputWarning, match=r"enroll: int32 samples all within the int16 range"):
        rec.enroll(as_int32, SR)
    session = rec.session(sr=SR)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        session.push(as_int32)
        session.push(as_int32)
    assert [str(w.message)[:50] for w in seen] == ["push: int32 samples all within the int16 range (pe"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # real 32-bit audio, and int32 digital silence, are quiet
        rec.predict_audio(as_int32 << 16, SR)
        rec.predict_audio(np.zeros(SR, np.int32), SR)
        rec.session(sr=SR).push(as_int32 << 16)


def test_live_results_are_strict_json() -> None:
    """`LiveResult.to_dict()` said JSON-ready and held -inf (the level of digital silence)."""
    rec = Recognizer(ROOT / "bundles" / "ser_emodb", "numpy")
    results = rec.session(sr=16000).push(np.zeros(48000, np.int16))
    assert results and json.loads(json.dumps(results[0].to_dict(), allow_nan=False))["level_db"] is None


def test_learn_first_results_may_be_taken_on_another_thread(tmp_path) -> None:
    """`iter_predict_files(learn_first=True)` held the statistics per thread across its yields: resumed on another
    thread it raised AttributeError, and the first thread never learnt again."""
    b = _with_block(tmp_path)
    files = [write_wav(tmp_path / f"{i}.wav", _voice(20 + i), SR) for i in range(4)]
    rec = Recognizer(b, "numpy")
    it = rec.iter_predict_files(files, learn_first=True)
    with ThreadPoolExecutor(1) as a, ThreadPoolExecutor(1) as other:
        first = a.submit(next, it).result()
        rest = other.submit(list, it).result()
        assert len(rest) == 3 and rec.speaker_clips == 4  # learnt once, not again while classifying
        a.submit(rec.predict_audio, _voice(30), SR).result()
    assert rec.speaker_clips == 5  # that thread learns again
    expected = Recognizer(b, "numpy").predict_files(files, learn_first=True)
    assert [p.probabilities for p in [first, *rest]] == [p.probabilities for p in expected]


def test_a_speaker_file_of_another_bundle_names_the_bundle(tmp_path) -> None:
    emodb, ravdess = Recognizer(ROOT / "bundles" / "ser_emodb"), Recognizer(ROOT / "bundles" / "ser_ravdess")
    emodb.enroll(_voice(5, 2.0), SR)
    path = emodb.save_speaker(tmp_path / "me.json")
    with pytest.raises(ConfigError, match="saved with bundle ser_emodb, this is ser_ravdess"):
        ravdess.load_speaker(path)


def test_the_api_types_are_exported() -> None:
    import edge_ser

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert {"LiveResult", "PipelineConfig", "AudioSession"} <= set(edge_ser.__all__)
        assert edge_ser.PipelineConfig().__class__.__name__ == "PipelineConfig"


def test_a_sentence_that_ends_within_the_first_window_is_heard(tmp_path) -> None:
    """No decision is made before the first window is full, and the gate judged only its newest hop: a file holding
    one short sentence followed by a pause (11 of 20 RAVDESS clips) gave nothing but "silence". The first window's
    earlier hops are now gated with it, so its first decision hears the sentence; a pause alone is still silence."""
    y = np.concatenate([_hiss(0.3, -70, 1), _voice(6, 1.4), _hiss(2.3, -70, 2)])  # 4 s, speech at 0.3-1.7 s
    path = write_wav(tmp_path / "one.wav", y, SR)
    rec = Recognizer(_with_block(tmp_path), "numpy")
    streamed = list(rec.stream(audio_file=path, realtime=False))
    assert streamed[0].speech and streamed[0].label != "silence"
    assert not streamed[-1].speech  # the pause after it is silence again
    assert rec.speaker_clips == 1  # the sentence joined the statistics as an utterance
    pushed = Recognizer(_with_block(tmp_path / "s"), "numpy").session(sr=SR)
    results = pushed.push(y) + pushed.finish()
    assert [r.label for r in results] == [r.label for r in streamed]
    quiet = list(rec.stream(audio_file=write_wav(tmp_path / "q.wav", _hiss(4, -70, 3), SR), realtime=False))
    assert not any(r.speech for r in quiet)


def test_a_thread_count_beyond_any_board_is_refused(capsys) -> None:
    """`--threads 100000` (a typo) made onnxruntime start 9,238 threads and take 16 GB before it answered."""
    from edge_ser.cli import main

    with pytest.raises(ConfigError, match=r"1\.\.256 or None \(this machine has"):
        Recognizer(ROOT / "bundles" / "ser_emodb", threads=100000)
    with pytest.raises(SystemExit):
        main(["predict", "--threads", "100000", str(ROOT / "bundles" / "ser_emodb"), "x.wav"])
    assert "--threads: 100000 must be in 1..256" in capsys.readouterr().err


def test_voicing_0_enrols_a_whole_clip_on_its_level_alone(tmp_path) -> None:
    """Review: `enroll_file(voicing=0)` (a whisperer's --vad-voicing 0, "level only") stopped enrolling whole clips
    without voiced frames once the whole-clip voicing rule came in."""
    rec = Recognizer(_with_block(tmp_path), "numpy")
    assert rec.enroll_file(write_wav(tmp_path / "w.wav", _hiss(4, -30), SR)) == 0  # the default: no voice
    assert rec.enroll_file(write_wav(tmp_path / "w2.wav", _hiss(4, -30, 1), SR), voicing=0) == 1


def test_a_session_shorter_than_one_window_is_classified_at_finish(tmp_path) -> None:
    """Review: a push-to-talk app sending one 2.6 s sentence per session got no result, no warning, and nothing
    learnt (no decision before the first window is full)."""
    rec = Recognizer(_with_block(tmp_path), "numpy")
    session = rec.session(sr=SR)
    assert session.push(_voice(7, 2.0)) == []
    (r,) = session.finish()
    assert r.speech and r.label != "silence" and "less than one 3 s window" in r.notes[0]
    assert rec.speaker_clips == 1


def test_a_session_takes_a_whole_float_rate_as_predict_audio_does(tmp_path) -> None:
    """`predict_audio(y, 48000.0)` and `enroll` took a whole float rate (sounddevice's `default_samplerate` is
    one); `session(sr=48000.0)` refused it."""
    rec = Recognizer(_with_block(tmp_path), "numpy", adapt=False)
    assert rec.session(sr=48000.0).sample_rate == 48000
    assert rec.session(sr=np.float32(16000)).sample_rate == 16000
    for bad in (44100.5, float("nan"), "48000", True):
        with pytest.raises(ConfigError, match="session: sample_rate"):
            rec.session(sr=bad)


@pytest.mark.parametrize("name", ["ser_emodb", "av_fn_audio", "tiny_transformer_emodb", "av_fusion"])
def test_empty_audio_is_refused_by_name(name: str) -> None:
    rec = Recognizer(ROOT / "bundles" / name, "numpy", adapt=False)
    # was "audio is empty" from inside the pause trimmer, or "audio: 0.0 ms of audio ... is too short"
    with pytest.raises(AudioFormatError, match=r"^predict_audio: audio is empty"):
        rec.predict_audio(np.zeros(0, np.float32), 16000)


def test_a_face_only_model_still_takes_no_audio_with_its_faces() -> None:
    rec = Recognizer(ROOT / "bundles" / "face_fer", "numpy")
    face = np.full((48, 48), 128, np.uint8)
    p = rec.predict_audio(np.zeros(0, np.float32), 16000, faces=[face])
    assert p.label in rec.labels
    # the audio is ignored, so it may be left out (None was refused as "y must be float samples, got dtype object")
    assert rec.predict_audio(None, None, faces=[face]).probabilities == p.probabilities
    with pytest.raises(ConfigError, match=r"reads faces only.*predict_audio\(None, None, faces\)"):
        rec.predict_audio(None, None)


def test_a_colour_face_crop_is_named_as_one() -> None:
    """A [48, 48, 3] crop was read as 48 crops of [48, 3], and the error named that shape."""
    rec = Recognizer(ROOT / "bundles" / "face_fer", "numpy")
    with pytest.raises(ConfigError, match=r"shape \(48, 48, 3\) is one colour image.*COLOR_BGR2GRAY"):
        rec.predict_audio(np.zeros(0, np.float32), 16000, faces=np.full((48, 48, 3), 128, np.uint8))
    grey = rec.predict_audio(np.zeros(0, np.float32), 16000, faces=np.full((3, 48, 48), 128, np.uint8))
    assert grey.label in rec.labels  # a stack of three grey crops is still [k, S, S]


def test_fusion_faces_over_silence_or_hiss_are_the_faces_alone() -> None:
    """As a video's sound track without voice (`FusionKind._video_clip`): a clear happy face over a second of
    digital silence read "fear 0.86", the audio branch's answer to silence, where the video gets the face's."""
    rec = Recognizer(ROOT / "bundles" / "av_fusion", "numpy", adapt=False)
    face = (np.add.outer(np.arange(48), np.arange(48)) * 2).astype(np.uint8)
    silent = rec.predict_audio(np.zeros(SR, np.float32), SR, faces=[face])
    hiss = rec.predict_audio(_hiss(1.0, -60), SR, faces=[face])
    assert silent.probabilities == pytest.approx(hiss.probabilities, abs=1e-6)
    voiced = rec.predict_audio(_voice(4, 2.0), SR, faces=[face])
    assert voiced.probabilities != pytest.approx(silent.probabilities, abs=1e-3)  # speech is still fused


def test_a_speaker_file_that_cannot_be_written_is_a_typed_error_naming_it(tmp_path, monkeypatch) -> None:
    """save_speaker to a full disk or a read-only folder raised a bare FileNotFoundError / OSError naming only
    its temporary file ('/proc/.x.json.18s0hlhg.tmp')."""
    import errno

    import edge_ser.fileio

    rec = Recognizer(_with_block(tmp_path), "numpy")

    def full(path, data, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".me.json.x.tmp"))

    monkeypatch.setattr(edge_ser.fileio, "atomic_write", full)
    for merge in (False, True):
        with pytest.raises(
            ConfigError, match=r"me\.json: cannot save the speaker file \(No space left on device\)"
        ):
            rec.save_speaker(tmp_path / "me.json", merge=merge)


def test_stream_realtime_must_be_a_bool(tmp_path) -> None:
    """realtime="no" was truthy: the file was paced in real time, silently (adapt= was already checked so)."""
    rec = Recognizer(_with_block(tmp_path), "numpy")
    clip = write_wav(tmp_path / "v.wav", _voice(4, 4.0), SR)
    with pytest.raises(ConfigError, match=r"stream: realtime must be True or False, got 'no'"):
        rec.stream(audio_file=clip, realtime="no")


def test_an_empty_path_is_refused_not_read_as_the_working_folder(tmp_path, monkeypatch) -> None:
    """`enroll_file("")` (an unset variable) enrolled every audio file under the working folder: Path("") is "."."""
    monkeypatch.chdir(tmp_path)
    write_wav(tmp_path / "a.wav", _voice(1), SR)
    rec = Recognizer(_with_block(tmp_path), "numpy")
    for call in (rec.enroll_file, rec.predict_file, lambda p: rec.predict_files([p], learn_first=True)):
        with pytest.raises(ConfigError, match="an empty path"):
            call("")
    assert rec.speaker_clips == 0
    assert rec.enroll_file(".") == 1  # the folder named as one still enrols
    with pytest.raises(ConfigError, match=r"stream: audio_file: an empty path"):
        rec.stream(audio_file="")  # it read as the working folder: ".: is a directory"
    with pytest.raises(ConfigError, match=r"predict_file: a path must be a str or os.PathLike, got NoneType"):
        rec.predict_file(None)  # os.fsdecode's bare TypeError


def test_a_path_that_is_no_path_is_refused_naming_the_function_called(tmp_path) -> None:
    """`rec.predict_file(3)` said "predict_files: a path must be ...", naming the plural function the caller never
    called: each of the file methods names itself."""
    rec = Recognizer(_with_block(tmp_path), "numpy")
    calls = {
        "predict_file": lambda: rec.predict_file(3),
        "predict_files": lambda: rec.predict_files([3]),
        "iter_predict_files": lambda: list(rec.iter_predict_files([3])),
        "learn_files": lambda: rec.learn_files([3]),
    }
    for name, call in calls.items():
        with pytest.raises(ConfigError, match=rf"^{name}: a path must be a str or os.PathLike, got int$"):
            call()
    with pytest.raises(
        ConfigError, match=r"^predict_files: paths must be a path or an iterable of paths, got int$"
    ):
        rec.predict_files(3)


def test_one_face_crop_given_alone_is_one_crop() -> None:
    """`faces=crop` (one FaceCrop, as `kind.cropper()(frame)` returns it) was a bare TypeError "'FaceCrop' object is
    not iterable", where one [S, S] image is taken as one crop; it is one crop too."""
    from tests.av_media import face_frames

    rec = Recognizer(ROOT / "bundles" / "face_fer", "numpy")
    crop = rec.kind.cropper()(np.ascontiguousarray(face_frames()[0]))
    assert rec.predict_audio(None, None, faces=crop).probabilities == (
        rec.predict_audio(None, None, faces=[crop]).probabilities
    )
    with pytest.raises(ConfigError, match="faces"):
        rec.predict_audio(None, None, faces=3)


def test_crops_that_found_no_face_say_face_found_false() -> None:
    """Crops the bundle's own cropper made of a frame without a face (`found` False: its centre fallback) were
    reported `face_found` None, "the caller's to say", though the crop says it: av_fusion then answered from the
    audio alone and face_fer from the centre of the frame, unmarked. Both now say False; images stay None."""
    from tests.av_media import speech

    empty = np.full((120, 160, 3), 128, np.uint8)
    fusion = Recognizer(ROOT / "bundles" / "av_fusion", "numpy", adapt=False)
    miss = fusion.kind.cropper()(empty)
    assert not miss.found
    p = fusion.predict_audio(speech(), 48000, faces=[miss])
    assert p.face_found is False
    assert p.probabilities == fusion.predict_audio(speech(), 48000).probabilities  # the audio alone
    faces = Recognizer(ROOT / "bundles" / "face_fer", "numpy")
    assert faces.predict_audio(None, None, faces=[miss]).face_found is False
    assert faces.predict_audio(None, None, faces=[miss.image]).face_found is None


def test_a_file_that_enrolled_nothing_is_not_recorded_as_enrolled(tmp_path) -> None:
    """Review: `enroll_file` recorded a file's bytes as enrolled even when no clip of it was added (hiss without
    voice), so a later `enroll_file(voicing=0)` of it added nothing and a speaker file saved it as enrolled."""
    bundle = _with_block(tmp_path)
    rec = Recognizer(bundle, "numpy")
    hiss = write_wav(tmp_path / "w.wav", _hiss(4, -30), SR)
    assert rec.enroll_file(hiss) == 0 and not rec.enrolled(hiss)
    saved = rec.save_speaker(tmp_path / "speaker.json")
    again = Recognizer(bundle, "numpy")
    again.load_speaker(saved)
    assert not again.enrolled(hiss)
    assert rec.enroll_file(hiss, voicing=0) == 1 and rec.enrolled(hiss)


def test_a_recognizer_of_an_empty_bundle_path_is_refused(tmp_path, monkeypatch) -> None:
    """`Recognizer("")` (an unset variable) loaded the working folder: "bundle : manifest.json is missing
    (present: [...])", listing the folder's files."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^Recognizer: bundle: an empty path \(an unset variable\?\)$"):
        Recognizer("")


@pytest.mark.parametrize("name", ["av_fusion", "ser_emodb"])
def test_no_audio_to_a_bundle_that_hears_is_said_so(name: str) -> None:
    """`predict_audio(None, None, faces)`, as a face-only bundle takes it, said "y must be float samples in [-1, 1]
    (or int16 / int32), got dtype object" to a fusion bundle (and `enroll(None, sr)` the same)."""
    rec = Recognizer(ROOT / "bundles" / name, "numpy", adapt=False)
    face = np.full((48, 48), 128, np.uint8)
    faces = [face] if name == "av_fusion" else None
    with pytest.raises(ConfigError, match=r"^predict_audio: y is None: give the audio"):
        rec.predict_audio(None, None, faces=faces)
    with pytest.raises(ConfigError, match=r"^enroll: y is None: give the audio"):
        rec.enroll(None, SR)


def test_a_fallback_for_a_bundle_that_takes_no_faces_is_refused(tmp_path) -> None:
    """`rec.session(sr, fallback=...)` on an audio-only bundle loaded the fallback and never used it, without a word
    (a late-fusion bundle refused one it would never use; `edge-ser run --fallback` notes it)."""
    rec = Recognizer(ROOT / "bundles" / "ser_emodb", "numpy")
    with pytest.raises(ConfigError, match=r"would never be used: .*ser_emodb takes no faces"):
        rec.session(sr=SR, fallback=rec)
    clip = write_wav(tmp_path / "v.wav", _voice(4, 4.0), SR)
    with pytest.raises(ConfigError, match="would never be used"):
        rec.stream(audio_file=clip, realtime=False, fallback=ROOT / "bundles" / "ser_emodb")


def test_live_settings_given_as_a_dict_are_refused_by_name(tmp_path) -> None:
    """`session(sr, config={"hop": 0.25})` raised "AttributeError: 'dict' object has no attribute 'vad_voicing'",
    and `stream(capture={...})` "TypeError: replace() should be called on dataclass instances"."""
    rec = Recognizer(ROOT / "bundles" / "ser_emodb", "numpy")
    clip = write_wav(tmp_path / "v.wav", _voice(4, 4.0), SR)
    with pytest.raises(
        ConfigError, match=r"^config must be a PipelineConfig \(edge_ser\.live\.pipeline\), got dict"
    ):
        rec.session(sr=SR, config={"hop": 0.25})
    with pytest.raises(ConfigError, match=r"^config must be a PipelineConfig"):
        rec.stream(audio_file=clip, realtime=False, config={"hop": 0.25})
    with pytest.raises(
        ConfigError, match=r"^capture must be a CaptureSettings \(edge_ser\.live\.capture\), got dict"
    ):
        rec.stream(realtime=False, capture={"audio_file": clip})
    with pytest.raises(ConfigError, match=r"^capture must be a CaptureSettings"):
        rec.runner(capture={"audio_file": clip})
