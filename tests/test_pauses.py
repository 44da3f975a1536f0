"""Pauses around a whole clip (edge_ser.audio.pauses; docs/protocol.md, "Pauses around the speech"): the speech is
found by voicing and level, only the pause beyond `keep_s` is cut, the manifest block is checked, and the
Recognizer cuts a whole clip of a bundle with the block (predict_audio and a file alike), not a live window."""

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
