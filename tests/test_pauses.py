"""Pauses around a whole clip (edge_ser.audio.pauses; docs/protocol.md, "Pauses around the speech"): the speech is
found by voicing and level, only the pause beyond `keep_s` is cut, the manifest block is checked, and the
Recognizer cuts a whole clip of a bundle with the block (predict_audio and a file alike); a live window only when
`PipelineConfig.cut_pauses` asks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_ser.audio.pauses import speech_span, trim_pauses
from edge_ser.errors import BundleError

SR = 16000
ROOT = Path(__file__).resolve().parents[1]


def _voice(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(140 + 20 * np.sin(2 * np.pi * 0.7 * t)) / SR
    y = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)
    return (0.1 * y / np.abs(y).max()).astype(np.float32)


def _room(seconds: float, dbfs: float = -70.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (10 ** (dbfs / 20) * rng.standard_normal(int(seconds * SR))).astype(np.float32)


def test_speech_span_and_trim_cut_only_the_pause_beyond_keep():
    voice = _voice(1.5)
    y = np.concatenate([_room(2.0), voice, _room(3.0, seed=1)])
    a, b = speech_span(y, SR)
    assert abs(a / SR - 2.0) < 0.06 and abs(b / SR - 3.5) < 0.06  # 40 ms frames, 10 ms apart
    cut = trim_pauses(y, SR, 0.5)
    assert abs(cut.size / SR - 2.5) < 0.12  # the speech and 0.5 s each side
    assert trim_pauses(y, SR, 5.0) is y  # no pause longer than that: the clip itself
    assert trim_pauses(voice, SR, 0.1).size >= voice.size - int(0.1 * SR)
    noise = _room(3.0, -30.0)  # loud but not voiced: no speech, nothing cut
    assert speech_span(noise, SR) is None and trim_pauses(noise, SR, 0.2) is noise
    assert speech_span(np.zeros(SR, np.float32), SR) is None
    assert speech_span(voice[:100], SR) is None  # shorter than a frame
    # a quieter voiced sound far under the speech (a voice next door) is not speech
    hum = (3e-4 * np.sin(2 * np.pi * 120 * np.arange(2 * SR) / SR)).astype(np.float32)
    a2, b2 = speech_span(np.concatenate([hum, voice, hum]), SR)
    assert abs(a2 / SR - 2.0) < 0.06 and abs(b2 / SR - 3.5) < 0.06


@pytest.fixture
def ser(tmp_path) -> tuple[Path, Path]:
    """ser_emodb without and with a `pauses` block (written by the bundle writer, so it is signed)."""
    from edge_ser.bundle import load_bundle
    from edge_ser.bundle.write import write_bundle

    b = load_bundle(ROOT / "bundles" / "ser_emodb")
    manifest = {k: v for k, v in b.manifest.items() if k != "pauses"}
    plain = write_bundle(tmp_path / "plain", manifest=manifest, files=b.files)
    trimmed = write_bundle(tmp_path / "trim", manifest={**manifest, "pauses": {"keep_s": 0.5}}, files=b.files)
    return plain, trimmed


def test_recognizer_cuts_a_whole_clip_to_its_speech_and_the_block_is_checked(ser, tmp_path):
    from edge_ser.audio import write_wav
    from edge_ser.bundle import load_bundle
    from edge_ser.bundle.write import write_bundle
    from edge_ser.recognizer import Recognizer

    plain, trimmed = ser
    voice = _voice(2.0)
    padded = np.concatenate([_room(3.0), voice, _room(3.0, seed=1)])
    tight = trim_pauses(padded, SR, 0.5)
    p_rec, t_rec = Recognizer(plain, "numpy", adapt=False), Recognizer(trimmed, "numpy", adapt=False)
    assert p_rec.keep_pause is None and t_rec.keep_pause == 0.5
    # with the block, the padded clip is the tight one; without it, it is classified as given
    assert t_rec.predict_audio(padded, SR).probabilities == pytest.approx(
        p_rec.predict_audio(tight, SR).probabilities, abs=1e-6
    )
    assert t_rec.predict_audio(padded, SR).duration == pytest.approx(
        padded.size / SR
    )  # the clip's, not the cut's
    wav = write_wav(tmp_path / "padded.wav", padded, SR, subtype="FLOAT")
    assert t_rec.predict_file(wav).duration == pytest.approx(padded.size / SR)
    assert t_rec.predict_file(wav).probabilities == pytest.approx(
        t_rec.predict_audio(padded, SR).probabilities, abs=1e-6
    )
    assert p_rec.predict_file(wav).probabilities == pytest.approx(
        p_rec.predict_audio(padded, SR).probabilities, abs=1e-6
    )
    # the block is checked like every other
    b = load_bundle(plain)
    for bad in ({"keep_s": -1}, {"keep_s": "1"}, {"keep": 1.0}, [1.0]):
        with pytest.raises(BundleError, match="pauses"):
            write_bundle(tmp_path / "bad", manifest={**b.manifest, "pauses": bad}, files=b.files)
    shutil.rmtree(tmp_path / "bad", ignore_errors=True)
    assert json.loads((trimmed / "manifest.json").read_text())["pauses"] == {"keep_s": 0.5}


def test_info_says_what_pause_a_bundle_keeps(ser, capsys):
    from edge_ser.cli import main

    plain, trimmed = ser
    assert main(["info", str(trimmed)]) == 0
    assert "pauses: a whole clip keeps at most 0.5 s" in capsys.readouterr().out
    assert main(["info", str(plain)]) == 0
    assert "pauses:" not in capsys.readouterr().out


def test_enrolment_cuts_the_pause_as_prediction_does(ser):
    from edge_ser.recognizer import Recognizer

    plain, trimmed = ser
    padded = np.concatenate([_room(3.0), _voice(2.0), _room(3.0, seed=1)])
    a, b = Recognizer(trimmed, "numpy"), Recognizer(plain, "numpy")
    assert a.enroll(padded, SR) and b.enroll(trim_pauses(padded, SR, 0.5), SR)
    x = np.ones((1, 327), np.float32)
    assert np.allclose(a.speaker.norm.apply(x), b.speaker.norm.apply(x))


def test_review_findings_loud_unvoiced_frames_rates_levels_and_bad_keep(ser, tmp_path):
    """A review found: a crash when the loudest frame was not voiced; predict_audio cutting at the caller's rate
    (22.05 kHz: 6 of 42 top-1s differed from predict_file); level_db of the cut clip on the file path; a shouted
    vowel missing the voicing threshold cut off. Each is mended here."""
    from edge_ser.audio import write_wav
    from edge_ser.audio.polyphase import resample
    from edge_ser.errors import ConfigError
    from edge_ser.recognizer import Recognizer

    rng = np.random.default_rng(0)
    slam = (0.5 * rng.standard_normal(1600)).astype(np.float32)  # loud, unvoiced, 0.1 s
    quiet_voice = (0.005 * np.sin(2 * np.pi * 150 * np.arange(SR) / SR)).astype(np.float32)
    y = np.concatenate([_room(1.0), slam, _room(1.0, seed=2), quiet_voice, _room(1.0, seed=3)])
    a, b = speech_span(y, SR)  # no crash; the voice is the speech, measured against the loudest voiced frame
    assert abs(a / SR - 2.1) < 0.06 and abs(b / SR - 3.1) < 0.06
    # a loud unvoiced stretch right after the voiced part (a shouted end of a word) stays in the span
    shout = (0.3 * rng.standard_normal(int(0.3 * SR))).astype(np.float32)
    z = np.concatenate([_room(1.0), _voice(1.0), shout, _room(1.0, seed=4)])
    assert abs(speech_span(z, SR)[1] / SR - 2.3) < 0.06
    # predict_audio at another rate cuts at the model's rate, as the file is cut
    plain, trimmed = ser
    rec = Recognizer(trimmed, "numpy", adapt=False)
    padded = np.concatenate([_room(2.0), _voice(2.0), _room(2.0, seed=1)])
    y22 = resample(padded, SR, 22050)
    wav = write_wav(tmp_path / "p22.wav", y22, 22050, subtype="FLOAT")
    by_file, in_memory = rec.predict_file(wav), rec.predict_audio(y22, 22050)
    assert by_file.probabilities == pytest.approx(in_memory.probabilities, abs=1e-5)
    # level_db is the whole clip's loudest half second on both paths (a tap louder than the speech counts)
    tap = np.concatenate([_room(1.0), 0.5 * slam, _room(2.0, seed=5), _voice(1.5) * 0.05, _room(1.0, seed=6)])
    wav2 = write_wav(tmp_path / "tap.wav", tap, SR, subtype="FLOAT")
    assert rec.predict_file(wav2).level_db == pytest.approx(rec.predict_audio(tap, SR).level_db, abs=1e-6)
    for bad in (-1.0, float("nan"), 31.0):
        with pytest.raises(ConfigError, match="keep_s"):
            trim_pauses(padded, SR, bad)


def test_live_window_is_cut_to_its_speech_when_asked(ser):
    """`PipelineConfig.cut_pauses`: a window with speech after a long pause is classified as its speech plus the
    bundle's `keep_s` (as a whole clip is cut), and the utterance that joins the statistics is cut too; off, or
    without the block, the window is classified as it stands (docs/live.md, "Pauses inside the live window")."""
    from edge_ser.bundle import load_bundle
    from edge_ser.engines import load_engine
    from edge_ser.errors import ConfigError
    from edge_ser.live.pipeline import LivePipeline, PipelineConfig
    from edge_ser.speaker import SpeakerAdapter

    plain, trimmed = ser
    window = np.concatenate([_room(2.0), _voice(1.0)])  # 1 s of speech after a 2 s pause, in a 3 s window
    cut = trim_pauses(window, SR, 0.5)
    assert cut.size < window.size

    def probs(path: Path, config: PipelineConfig, y: np.ndarray) -> tuple[float, ...]:
        b = load_bundle(path)
        speaker = SpeakerAdapter(b.manifest)
        speaker.enabled = False  # the training prior: the same statistics for every call
        pipe = LivePipeline(b, load_engine(b, "numpy"), config, speaker=speaker)
        r = pipe.step(y.size / SR, y)
        assert r.speech
        return r.probs

    on, off = PipelineConfig(smoothing="none", cut_pauses=True), PipelineConfig(smoothing="none")
    # the window cut is the cut window classified as it stands
    assert probs(trimmed, on, window) == pytest.approx(probs(trimmed, off, cut), abs=1e-6)
    assert probs(trimmed, on, window) != pytest.approx(probs(trimmed, off, window), abs=1e-4)
    # no block, nothing cut
    assert probs(plain, on, window) == pytest.approx(probs(plain, off, window), abs=1e-6)
    with pytest.raises(ConfigError, match="cut_pauses"):
        PipelineConfig(cut_pauses="on")

    # an utterance that joins the statistics goes through the same cut
    b = load_bundle(trimmed)
    pipe = LivePipeline(b, load_engine(b, "numpy"), PipelineConfig(cut_pauses=True, learn="utterances"))
    assert pipe.keep_pause == 0.5
    seen: list[tuple[int, int]] = []
    pipe._cut = lambda y, cut=pipe._cut: seen.append((y.size, (c := cut(y)).size)) or c
    stream = np.concatenate([_room(3.0), _voice(2.0), _room(2.0, seed=1)])
    hop = SR // 2
    for end in range(3 * SR, stream.size + 1, hop):
        pipe.step(end / SR, stream[end - 3 * SR : end])
    assert pipe.speaker_clips() == 1
    # the utterance: the hop before, 2 s of speech, the hop after (0.5 s each), nothing beyond keep_s to cut
    assert (3 * SR, 3 * SR) in seen
