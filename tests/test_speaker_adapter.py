"""Online speaker normalisation on the device (`edge_ser.speaker`): the bundle's `speaker_norm` block is
checked at load, and the Recognizer and the live pipeline standardise the named input by the session's
running statistics, which every clip (every window with speech) joins first."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from _speaker import ROOT, SHIPPED, SR, _voice, _with_block

from edge_ser.audio.wav import write_wav
from edge_ser.bundle import load_bundle
from edge_ser.errors import BundleError
from edge_ser.features.speaker_norm import SpeakerNorm
from edge_ser.inputs.base import AUDIO_EXTENSIONS
from edge_ser.live.outputs.console import format_line, format_table
from edge_ser.live.pipeline import LivePipeline
from edge_ser.recognizer import Recognizer


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda b: b.update(input="lms"), "'lms' is not a model input"),
        (
            lambda b: b.update(prior_mean=b["prior_mean"][:10], prior_var=b["prior_var"][:10]),
            "10 values cannot",
        ),
        (lambda b: b["prior_var"].__setitem__(0, -1.0), "prior_var must be >= 0"),
        (lambda b: b.update(prior_weight="ten"), "prior_weight"),
        (lambda b: b.pop("prior_var"), "prior_var"),
    ],
)
def test_a_bad_block_is_refused_at_load(tmp_path: Path, edit, message: str) -> None:
    with pytest.raises(BundleError, match="speaker_norm") as e:
        load_bundle(_with_block(tmp_path, edit))
    assert message in str(e.value)


@pytest.mark.parametrize("engine", ["numpy", "onnxruntime"])
def test_each_clip_joins_the_statistics_then_is_standardised_by_them(tmp_path: Path, engine: str) -> None:
    rec = Recognizer(_with_block(tmp_path), engine)
    block = rec.bundle.manifest["speaker_norm"]
    ref = SpeakerNorm.from_dict({k: v for k, v in block.items() if k != "input"})
    assert rec.speaker.active and rec.speaker.clips == 0
    for i in range(4):
        y = _voice(i)
        x = rec.kind.audio_inputs(y, SR, None)["features"]
        got = rec.predict_audio(y, SR)
        ref.update(x)
        want = rec.kind.combine(rec.engine.predict({"features": ref.apply(x)}))
        assert rec.speaker.clips == i + 1
        assert np.allclose([got.probabilities[k] for k in rec.labels], want, atol=1e-6)
    rec.reset_speaker()
    assert rec.speaker.clips == 0
    rec.enroll(_voice(9), SR)
    assert rec.speaker.clips == 1


def test_adapt_off_keeps_the_prior_and_files_adapt_in_order(tmp_path: Path) -> None:
    b = _with_block(tmp_path)
    fixed = Recognizer(b, "numpy", adapt=False)
    first = fixed.predict_audio(_voice(0), SR).probabilities
    for i in range(1, 4):
        fixed.predict_audio(_voice(i), SR)
    assert fixed.speaker.clips == 0 and fixed.predict_audio(_voice(0), SR).probabilities == first
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.wav")
        write_wav(paths[-1], _voice(i), SR)
    rec = Recognizer(b, "numpy")
    rec.predict_files(paths)
    assert rec.speaker.clips == 3


def test_the_live_pipeline_learns_from_windows_with_speech_only(tmp_path: Path) -> None:
    from edge_ser.live.pipeline import PipelineConfig

    rec = Recognizer(_with_block(tmp_path), "numpy")
    pipe = LivePipeline(rec.bundle, rec.engine, PipelineConfig(learn="windows"), speaker=rec.speaker)
    n = int(pipe.config.window * SR)
    silence = np.zeros(n, np.float32)
    first = pipe.step(1.0, silence)
    assert first.speech is False and rec.speaker.clips == 0 and first.speaker_clips == 0
    voiced = [pipe.step(2.0 + i, _voice(i, pipe.config.window)[:n]) for i in range(3)]
    assert all(r.speech for r in voiced) and rec.speaker.clips == 3
    # each update says how much of the speaker it has heard; the console and the log show it
    assert [r.speaker_clips for r in voiced] == [1, 2, 3]
    assert "speaker: 3 clips" in format_table(voiced[-1])[0] and "speaker_clips=3" in format_line(voiced[-1])
    plain = Recognizer(SHIPPED, "numpy")  # a bundle that does not learn its speaker says nothing
    r = LivePipeline(plain.bundle, plain.engine, speaker=plain.speaker).step(1.0, _voice(0, 3.0)[:n])
    assert r.speaker_clips is None and "speaker" not in format_table(r)[0] + format_line(r)


@pytest.mark.parametrize(("learn_every", "learnt"), [(0.0, 12), (None, 2), (1.5, 4)])
def test_the_live_pipeline_learns_once_per_learn_every_seconds_of_speech(
    tmp_path: Path, learn_every, learnt: int
) -> None:
    """12 windows with speech at a 0.5 s hop are 6 s of speech: every window (0), one per 3 s window (None) or
    one per 1.5 s joins the statistics; every window is classified with the statistics as they stand."""
    from edge_ser.live.pipeline import PipelineConfig

    rec = Recognizer(_with_block(tmp_path), "numpy")
    config = PipelineConfig(learn="windows", learn_every=learn_every)
    pipe = LivePipeline(rec.bundle, rec.engine, config, speaker=rec.speaker)
    n = int(config.window * SR)
    counts = []
    for i in range(12):
        r = pipe.step(1.0 + 0.5 * i, _voice(i, config.window)[:n])
        assert r.speech and r.probs
        counts.append(r.speaker_clips)
    assert counts[-1] == learnt and rec.speaker.enabled  # held only while a window is classified
    every = int(round(config.learn_seconds / config.hop)) if config.learn_seconds else 1
    assert counts == [(i + 1) // every for i in range(12)]


def _run_hops(pipe, hops: list[bool], seed: int = 0) -> tuple[list, np.ndarray]:
    """Feed the pipeline hop by hop, as the live loop does: voice (True) or digital silence (False); returns the
    results and the whole stream."""
    c = pipe.config
    h, n = int(round(c.hop * SR)), int(round(c.window * SR))
    voice = _voice(seed, len(hops) * c.hop + 1)
    stream = np.concatenate(
        [voice[i * h : (i + 1) * h] if v else np.zeros(h, np.float32) for i, v in enumerate(hops)]
    )
    padded = np.concatenate([np.zeros(n, np.float32), stream])
    out = [pipe.step(c.hop * (i + 1), padded[(i + 1) * h : (i + 1) * h + n]) for i in range(len(hops))]
    return out, stream


def test_utterances_join_the_statistics_once_each_when_they_end(tmp_path: Path) -> None:
    """learn="utterances": a run of speech joins as one clip when the gate closes, from the hop before it opened
    to the hop that closed it, exactly as `Recognizer.enroll` adds that audio; windows only use the statistics."""
    from edge_ser.live.pipeline import PipelineConfig

    b = _with_block(tmp_path)
    rec = Recognizer(b, "numpy")
    pipe = LivePipeline(rec.bundle, rec.engine, PipelineConfig(learn="utterances"), speaker=rec.speaker)
    hops = (
        [False, False] + [True] * 4 + [False] * 2 + [True] + [False] * 2
    )  # 2 s of speech, then a 0.5 s click
    results, stream = _run_hops(pipe, hops)
    assert [r.speaker_clips for r in results] == [0] * 6 + [1] * 5  # learnt when the gate closed; no click
    assert all(
        r.probs for r, v in zip(results, hops, strict=True) if v
    )  # every window with speech classified
    ref = Recognizer(b, "numpy")
    h = int(round(pipe.config.hop * SR))
    ref.enroll(stream[1 * h : 7 * h], SR)  # the hop before, the four voiced hops, the closing hop
    assert np.allclose(ref.speaker.norm.mean, rec.speaker.norm.mean) and np.allclose(
        ref.speaker.norm.var, rec.speaker.norm.var
    )


def test_a_sentence_going_on_at_reset_speaker_does_not_join_the_next_speaker(tmp_path: Path) -> None:
    """`rec.reset_speaker()` between two speakers of one live session: the last speaker's sentence, still open (its
    closing hop not heard yet), joined the new speaker's statistics as their first clip when it ended."""
    rec = Recognizer(_with_block(tmp_path), "numpy")
    session = rec.session(sr=SR)
    gap = np.zeros(3 * SR, np.float32)
    session.push(np.concatenate([gap, _voice(0, 3.0), gap, _voice(1, 2.0)]))
    assert rec.speaker_clips == 1  # the first sentence; the second is still open
    rec.reset_speaker()
    session.push(gap)
    assert rec.speaker_clips == 0
    session.push(np.concatenate([_voice(2, 2.0), gap]))  # the new speaker's own sentence joins
    assert rec.speaker_clips == 1


def test_a_long_run_of_speech_joins_every_ten_seconds_and_adapt_off_learns_nothing(tmp_path: Path) -> None:
    from edge_ser.live.pipeline import UTTERANCE_MAX_S, PipelineConfig

    b = _with_block(tmp_path)
    config = PipelineConfig(learn="utterances")
    hops = [True] * int(UTTERANCE_MAX_S / config.hop + 4) + [False]
    rec = Recognizer(b, "numpy")
    results, _ = _run_hops(LivePipeline(rec.bundle, rec.engine, config, speaker=rec.speaker), hops, seed=3)
    assert results[int(UTTERANCE_MAX_S / config.hop) - 2].speaker_clips == 0
    assert results[int(UTTERANCE_MAX_S / config.hop) - 1].speaker_clips == 1  # cut at 10 s of speech
    assert results[-1].speaker_clips == 2  # the 2 s after the cut, when the gate closed
    fixed = Recognizer(b, "numpy", adapt=False)
    results, _ = _run_hops(LivePipeline(fixed.bundle, fixed.engine, config, speaker=fixed.speaker), hops)
    assert results[-1].speaker_clips == 0


def test_learn_every_is_checked() -> None:
    from edge_ser.errors import ConfigError
    from edge_ser.live.pipeline import PipelineConfig

    assert PipelineConfig(learn_every=None).learn_seconds == 3.0
    assert PipelineConfig(learn_every=0).learn_seconds == 0
    with pytest.raises(ConfigError, match="learn_every"):
        PipelineConfig(learn_every=-1)
    with pytest.raises(ConfigError, match="learn='sometimes' must be one of"):
        PipelineConfig(learn="sometimes")


def test_a_bundle_without_the_block_is_unchanged(tmp_path: Path) -> None:
    rec = Recognizer(SHIPPED, "numpy")
    assert not rec.speaker.active
    y = _voice(0)
    a = rec.predict_audio(y, SR).probabilities
    assert rec.predict_audio(y, SR).probabilities == a and rec.speaker.clips == 0


def test_eval_meets_each_speaker_as_a_new_session(tmp_path: Path) -> None:
    """`edge-ser eval` on a speaker-normalised bundle: each speaker's clips are one online session (the
    statistics reset between speakers), as a device meeting them one after another would see them."""
    from converters.data.records import Record
    from converters.evaluate import evaluate

    records = []
    for i, spk in enumerate(["a", "a", "a", "b", "b"]):
        path = tmp_path / f"{spk}{i}.wav"
        write_wav(path, _voice(i), SR)
        records.append(Record(path, "happy", spk, "synthetic", "happy"))
    rec = Recognizer(_with_block(tmp_path), "numpy")
    report = evaluate(rec, records, data="synthetic", selection="all")
    assert rec.speaker.clips == 2  # speaker b's two clips: a's three were forgotten at the change
    assert report.to_dict()["files"]["scored"] == 5


def test_a_fusion_bundle_adapts_its_audio_branch_and_the_recognizer_resets_it(tmp_path) -> None:
    """A fusion bundle's branch with a speaker_norm block keeps the session's statistics; `reset_speaker`,
    `enroll` and `adapt=False` reach it through the Recognizer, as they do for a single bundle."""
    from edge_ser.bundle import write_fusion_bundle
    from edge_ser.fusion import BranchRule, FusionRule

    audio = _with_block(tmp_path)
    face = tmp_path / "face"
    shutil.copytree(ROOT / "bundles" / "face_fer", face)
    labels = ("neutral", "happy", "sad", "angry", "fear", "disgust")
    rule = FusionRule(labels, (BranchRule("audio"), BranchRule("face")), tuple([1 / 6] * 6))
    fused = write_fusion_bundle(
        tmp_path / "av", name="av", rule=rule, branches={"audio": audio, "face": face}
    )
    rec = Recognizer(fused, "numpy")
    adapter = rec.engine.speakers["audio"]
    assert adapter.active and adapter.enabled and adapter.clips == 0
    assert not rec.engine.speakers["face"].active
    first = rec.predict_audio(_voice(0), SR).probabilities
    assert adapter.clips == 1
    for i in (1, 2):
        rec.predict_audio(_voice(i), SR)
    assert adapter.clips == 3
    assert rec.predict_audio(_voice(0), SR).probabilities != first  # the statistics moved the decision
    rec.reset_speaker()
    assert adapter.clips == 0 and rec.predict_audio(_voice(0), SR).probabilities == first
    rec.enroll(_voice(7), SR)
    assert adapter.clips == 2
    assert rec.enroll_file(write_wav(tmp_path / "me.wav", _voice(8), SR)) == 1 and adapter.clips == 3
    saved = json.loads(rec.save_speaker(tmp_path / "me.json").read_text())
    assert set(saved["statistics"]) == {"audio"}  # the branch that adapts, by name
    assert Recognizer(fused, "numpy").load_speaker(tmp_path / "me.json") == 3
    fixed = Recognizer(fused, "numpy", adapt=False)
    unadapted = fixed.predict_audio(_voice(0), SR).probabilities
    for i in (1, 2):  # the clips that moved the adapting recognizer's decision above
        fixed.predict_audio(_voice(i), SR)
    assert fixed.predict_audio(_voice(0), SR).probabilities == unadapted
    assert fixed.engine.speakers["audio"].clips == 0
    # live, the fusion engine's branch statistics follow the pipeline's learn_every like a single bundle's
    from edge_ser.live.pipeline import PipelineConfig

    rec.reset_speaker()
    config = PipelineConfig(learn="windows", learn_every=None)
    pipe = LivePipeline(rec.bundle, rec.engine, config, speaker=rec.speaker)
    n = int(config.window * SR)
    for i in range(6):
        r = pipe.step(1.0 + 0.5 * i, _voice(i, config.window)[:n], [])
        assert r.speech and r.probs
    assert adapter.clips == 1 and adapter.enabled
    rec.reset_speaker()
    pipe = LivePipeline(rec.bundle, rec.engine, PipelineConfig(learn="utterances"), speaker=rec.speaker)
    _run_hops(pipe, [True] * 4 + [False])
    assert adapter.clips == 1  # the branch learnt the utterance


def test_enroll_file_adds_each_clip_with_speech_as_the_live_loop_hears_it(tmp_path: Path) -> None:
    b = _with_block(tmp_path)
    rec = Recognizer(b, "numpy")
    short = write_wav(tmp_path / "short.wav", _voice(1), SR)  # up to 30 s: one clip
    assert rec.enroll_file(short) == 1 and rec.speaker.clips == 1
    # a long recording: 3 s windows; the silent stretch in the middle is left out, and so is the stretch of loud
    # fan noise (-30 dBFS, not voiced), as the live voice gate leaves it out
    fan = (0.03 * np.random.default_rng(5).standard_normal(6 * SR)).astype(np.float32)
    y = np.concatenate([_voice(2, 12.0), np.zeros(9 * SR, np.float32), _voice(3, 12.0), fan])
    long = write_wav(tmp_path / "long.wav", y, SR)
    level_only = Recognizer(b, "numpy")
    assert level_only.enroll_file(long, voicing=0) == 10  # voicing off (--vad-voicing 0): the fan joins
    from edge_ser.errors import ConfigError

    with pytest.raises(ConfigError, match="voicing"):
        level_only.enroll_file(short, voicing=2.0)
    assert rec.enroll_file(long) == 8  # 13 windows, 3 silent, 2 fan noise
    assert rec.speaker.clips == 9
    # the statistics are what enrolling the same windows by hand gives
    from edge_ser.audio.wav import read_wav

    by_hand = Recognizer(b, "numpy")
    by_hand.enroll(read_wav(short)[0][:, 0], SR)  # the samples as the file holds them (16-bit)
    y = read_wav(tmp_path / "long.wav")[0][:, 0]
    for start in [0, 3, 6, 9, 21, 24, 27, 30]:
        by_hand.enroll(y[start * SR : (start + 3) * SR], SR)
    assert np.allclose(
        rec.speaker.norm.apply(np.ones((1, 180))), by_hand.speaker.norm.apply(np.ones((1, 180)))
    )
    silent = write_wav(tmp_path / "silent.wav", np.zeros(2 * SR, np.float32), SR)
    assert rec.enroll_file(silent) == 0 and rec.speaker.clips == 9
    # a whole clip counts however softly it was recorded (the training speakers' clips were all measured)
    quiet = write_wav(tmp_path / "quiet.wav", 0.01 * _voice(4), SR)  # about -60 dBFS
    assert rec.enroll_file(quiet) == 1 and rec.speaker.clips == 10


def test_enroll_file_needs_a_bundle_that_learns_its_speaker(tmp_path: Path) -> None:
    from edge_ser.errors import ConfigError

    rec = Recognizer(SHIPPED, "numpy")
    with pytest.raises(ConfigError, match="no speaker normalisation"):
        rec.enroll_file(write_wav(tmp_path / "a.wav", _voice(1), SR))


def _recordings(tmp_path: Path, n: int) -> tuple[Path, Path]:
    """A folder of `n` recordings of the speaker (voices 10, 11, ...) and one clip to classify (voice 0)."""
    voice = tmp_path / "voice"
    voice.mkdir()
    for i in range(n):
        write_wav(voice / f"{i}.wav", _voice(10 + i), SR)
    return voice, write_wav(tmp_path / "clip.wav", _voice(0), SR)


def test_predict_and_run_enroll_first(tmp_path: Path, capsys) -> None:
    """`--enroll` feeds the recordings before the files (predict) or the stream (run) are classified."""
    from edge_ser.cli import main

    b = _with_block(tmp_path)
    voice, clip = _recordings(tmp_path, 3)
    assert main(["predict", str(b), str(clip), "--engine", "numpy", "--json", "--enroll", str(voice)]) == 0
    out = capsys.readouterr()
    assert "enrolled 3 clip(s) of speech from 3 file(s)" in out.err
    got = json.loads(out.out.strip().splitlines()[-1])["probabilities"]
    rec = Recognizer(b, "numpy")
    for i in range(3):
        rec.enroll(_voice(10 + i), SR)
    want = rec.predict_file(clip).probabilities
    plain = Recognizer(b, "numpy").predict_file(clip).probabilities

    def log_p(p: dict) -> np.ndarray:  # a synthetic vowel saturates the model: compare log-probabilities
        return np.log([p[k] for k in rec.labels])

    assert np.allclose(log_p(got), log_p(want), atol=1e-3)
    assert not np.allclose(log_p(got), log_p(plain), atol=1e-3)  # the enrolment changed the statistics

    rc = main(
        ["run", str(b), "--audio-file", str(clip), "--fast", "--no-console", "--engine", "numpy"]
        + ["--enroll", str(voice), "--window", "1"]
    )
    assert rc == 0 and "enrolled 3 clip(s)" in capsys.readouterr().err
    two = ["--enroll", str(voice / "0.wav"), "--enroll", str(voice / "1.wav")]  # repeated: one path each
    assert main(["predict", str(b), str(clip), "--engine", "numpy", *two]) == 0
    assert "enrolled 2 clip(s) of speech from 2 file(s)" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(b), str(clip), "--enroll", str(tmp_path / "empty")]) != 0
    assert f"--enroll: no {'/'.join(AUDIO_EXTENSIONS)} files in" in capsys.readouterr().err
    assert main(["predict", str(b), str(clip), "--enroll", str(tmp_path / "missing")]) != 0
    assert "missing: no such file" in capsys.readouterr().err
    assert main(["predict", str(SHIPPED), str(clip), "--enroll", str(voice)]) != 0
    assert "no speaker normalisation, so there is nothing to enrol" in capsys.readouterr().err


def test_a_saved_speaker_restores_the_same_statistics_and_refuses_another_bundle(tmp_path: Path) -> None:
    from edge_ser.errors import ConfigError

    b = _with_block(tmp_path)
    rec = Recognizer(b, "numpy")
    for i in range(5):
        rec.enroll(_voice(i), SR)
    path = rec.save_speaker(tmp_path / "me.json")
    again = Recognizer(b, "numpy")
    assert again.speaker_clips == 0 and again.load_speaker(path) == 5 and again.speaker_clips == 5
    y = _voice(9)
    assert again.predict_audio(y, SR).probabilities == rec.predict_audio(y, SR).probabilities
    # and it keeps learning from there, as the session it came from would
    assert again.speaker_clips == rec.speaker_clips == 6

    other = _with_block(tmp_path / "o", lambda blk: blk.update(prior_weight=10))  # another prior
    with pytest.raises(ConfigError, match="another bundle's speaker prior") as e:
        Recognizer(other, "numpy").load_speaker(path)
    # the same folder name refit: "it was saved with bundle b, this is b" said nothing of why, nor of a way on
    assert "saved with a bundle also named b but of another training prior (refit or re-shipped" in str(
        e.value
    )
    assert f"move {path} away" in str(e.value) and "this is b" not in str(e.value)
    with pytest.raises(ConfigError, match="no speaker normalisation"):
        Recognizer(SHIPPED, "numpy").save_speaker(tmp_path / "x.json")
    bad = tmp_path / "bad.json"
    for text, message in [
        ("{", "not JSON"),
        ('{"schema": "other"}', "not an edge-ser speaker file"),
        (path.read_text().replace('"count": 5', '"count": 4'), "do not fit prior weight"),
    ]:
        bad.write_text(text)
        with pytest.raises(ConfigError, match=message) as e:
            Recognizer(b, "numpy").load_speaker(bad)
        assert "bad.json" in str(e.value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda st: st["mean"].__setitem__(0, "abc"), "mean and m2 must be lists of numbers"),
        (lambda st: st["m2"].__setitem__(0, [1.0, 2.0]), "mean and m2 must be lists of numbers"),
        (lambda st: st.update(count=10**400), "count: must be between 0 and"),
    ],
)
def test_a_hand_edited_speaker_file_is_a_typed_error_naming_it(tmp_path: Path, edit, message: str) -> None:
    """A value that is no number among the statistics, or a count no float holds, was a ValueError /
    OverflowError traceback out of `edge-ser predict --speaker-file`."""
    from edge_ser.errors import ConfigError

    b = _with_block(tmp_path)
    rec = Recognizer(b, "numpy")
    rec.enroll(_voice(0), SR)
    path = rec.save_speaker(tmp_path / "me.json")
    doc = json.loads(path.read_text())
    edit(doc["statistics"]["bundle"])
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=message) as e:
        Recognizer(b, "numpy").load_speaker(path)
    assert "me.json" in str(e.value)


def test_speaker_file_keeps_the_speaker_across_sessions(tmp_path: Path, capsys) -> None:
    from edge_ser.cli import main

    b = _with_block(tmp_path)
    voice, clip = _recordings(tmp_path, 4)
    me = tmp_path / "me.json"
    first = [
        "predict",
        str(b),
        str(clip),
        "--engine",
        "numpy",
        "--speaker-file",
        str(me),
        "--enroll",
        str(voice),
    ]
    assert main(first) == 0
    out = capsys.readouterr().out
    assert "not there yet" in out and "saved 5 clip(s)" in out  # 4 enrolled + the file classified
    run = [
        "run",
        str(b),
        "--audio-file",
        str(clip),
        "--fast",
        "--no-console",
        "--engine",
        "numpy",
        "--window",
        "1",
    ]
    assert main([*run, "--speaker-file", str(me)]) == 0
    err = capsys.readouterr().err
    assert "starting from 5 clip(s)" in err and "saved" in err
    assert Recognizer(b, "numpy").load_speaker(me) >= 5
    assert main(["predict", str(SHIPPED), str(clip), "--speaker-file", str(me)]) != 0
    assert "no speaker normalisation, nothing to keep" in capsys.readouterr().err


def test_two_sessions_saving_one_speaker_file_both_count(tmp_path: Path, capsys) -> None:
    """Two runs sharing a --speaker-file: the last to save replaced the other's clips. With `merge` the clips each
    learnt since it loaded the file are added to what the file holds then: the same statistics as one session
    that heard every clip (up to rounding), and the enrolled files of both."""
    from edge_ser.cli.common import save_speaker_file

    b = _with_block(tmp_path)
    me = tmp_path / "me.json"
    start = Recognizer(b, "numpy")
    for i in range(3):
        start.enroll(_voice(i), SR)
    start.save_speaker(me)
    one, two, whole = Recognizer(b, "numpy"), Recognizer(b, "numpy"), Recognizer(b, "numpy")
    one.load_speaker(me), two.load_speaker(me), whole.load_speaker(me)
    for i in (3, 4):
        one.enroll(_voice(i), SR)
    for i in (5, 6, 7):
        two.enroll(_voice(i), SR)
    for i in (3, 4, 5, 6, 7):
        whole.enroll(_voice(i), SR)
    assert "saved 5 clip(s) of the speaker" in save_speaker_file(one, me)
    assert "saved 8 clip(s) of the speaker (2 of them saved there by another run meanwhile)" in (
        save_speaker_file(two, me)
    )
    merged, expected = Recognizer(b, "numpy"), whole.speaker.state()
    assert merged.load_speaker(me) == 8
    got = merged.speaker.state()
    assert got["count"] == 8 and got["weight"] == expected["weight"]
    np.testing.assert_allclose(got["mean"], expected["mean"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got["m2"], expected["m2"], rtol=1e-7, atol=1e-9)
    # a second save of the same session adds nothing twice; without merge the last writer still wins
    save_speaker_file(two, me)
    assert Recognizer(b, "numpy").load_speaker(me) == 8
    one.save_speaker(me)
    assert Recognizer(b, "numpy").load_speaker(me) == 5
    # a session that started from the prior (no file yet) and finds one at the end adds to it too
    fresh = Recognizer(b, "numpy")
    fresh.enroll(_voice(8), SR)
    assert "(5 of them saved there" in save_speaker_file(fresh, me)
    assert Recognizer(b, "numpy").load_speaker(me) == 6


def test_an_audio_fallback_standardises_by_its_own_speaker_statistics() -> None:
    """A faces bundle's audio-only fallback that learns its speaker (av_fn_audio) got its raw inputs: out of range,
    it answered "angry 1.00" on every window without a face. Its windows now go through its own statistics."""
    from edge_ser.engines import load_engine
    from edge_ser.live.pipeline import PipelineConfig
    from edge_ser.speaker import SpeakerAdapter

    main, fb = load_bundle(ROOT / "bundles" / "av_cnn"), load_bundle(ROOT / "bundles" / "av_fn_audio")
    fb_engine = load_engine(fb, "numpy")
    config = PipelineConfig(smoothing="none", learn="windows", learn_every=0.0)
    pipe = LivePipeline(main, load_engine(main, "numpy"), config, fallback=fb_engine)
    ref = SpeakerAdapter(fb.manifest)
    n = int(config.window * fb.input_kind.sample_rate)
    for i in range(3):
        w = _voice(i, config.window)[:n]
        r = pipe.step(1.0 + i, w, faces=[])
        want = fb.input_kind.combine(fb_engine.predict(ref(fb.input_kind.window_inputs(w))))
        assert r.fallback == "no face: audio-only model"
        np.testing.assert_allclose(r.probs, want, atol=1e-6)
    assert pipe.fallback_speaker.clips == 3
    raw = fb.input_kind.combine(fb_engine.predict(fb.input_kind.window_inputs(_voice(0, config.window)[:n])))
    assert not np.allclose(raw, want, atol=1e-3)  # the raw inputs would give another answer


def test_speaker_holds_are_per_thread_and_never_switch_adaptation_off(tmp_path: Path) -> None:
    """`held` switched `enabled` off and restored it: two threads' overlapping holds restored each other's False and
    left adaptation off for good (a Recognizer used from two threads). Holds are now counted per thread."""
    import threading

    from edge_ser.speaker import held

    rec = Recognizer(_with_block(tmp_path), "numpy")
    a, x = rec.speaker, rec.kind.audio_inputs(_voice(0), SR, None)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with held([a]):
            holding.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    holding.wait(10)
    a(x)  # another thread's hold does not stop this one learning
    assert a.clips == 1
    with held([a]):
        a(x)
        assert a.clips == 1 and not a.learning
    release.set()
    t.join()
    assert a.enabled and a.learning

    silence = np.zeros(SR, np.float32)  # classified held (it does not join the statistics)

    def busy() -> None:
        for _ in range(100):
            rec.predict_audio(silence, SR)

    threads = [threading.Thread(target=busy) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    before = rec.speaker_clips
    rec.predict_audio(_voice(1), SR)
    assert rec.adapting and rec.speaker_clips == before + 1


def test_a_speaker_file_is_saved_where_folders_cannot_be_locked(tmp_path: Path, monkeypatch) -> None:
    """Review: on NFS (flock on a folder: EBADF) or a FUSE mount the merge's folder lock raised, and the session's
    speaker file was never written; it is now written without the lock, with a warning."""
    import errno
    import fcntl

    from edge_ser.cli.common import save_speaker_file
    from edge_ser.errors import InputWarning

    def refuse(fd, op):  # noqa: ANN001, ANN202
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(fcntl, "flock", refuse)
    rec = Recognizer(_with_block(tmp_path), "numpy")
    rec.enroll(_voice(1), SR)
    with pytest.warns(InputWarning, match="cannot lock this folder"):
        assert "saved 1 clip(s)" in save_speaker_file(rec, tmp_path / "me.json")
    assert Recognizer(_with_block(tmp_path / "x"), "numpy").load_speaker(tmp_path / "me.json") == 1


@pytest.mark.parametrize("off", [["--no-adapt"], ["--adapt", "off"]])
def test_a_speaker_file_of_no_clip_is_not_written(tmp_path: Path, capsys, off: list[str]) -> None:
    """`predict --speaker-file F --no-adapt` with nothing enrolled wrote F holding 0 clips (the training prior,
    as if a speaker were stored); nothing is written and a line says why. With --enroll the clips are stored."""
    from edge_ser.cli import main

    b = _with_block(tmp_path)
    voice, clip = _recordings(tmp_path, 2)
    me = tmp_path / "me.json"
    base = ["predict", str(b), str(clip), "--engine", "numpy", "--speaker-file", str(me), *off]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert not me.exists()
    assert (
        f"speaker file {me}: not written: no clip of the speaker was learnt (--adapt off / --no-adapt" in out
    )
    assert main([*base, "--enroll", str(voice)]) == 0
    assert "saved 2 clip(s)" in capsys.readouterr().out and Recognizer(b, "numpy").load_speaker(me) == 2


def test_run_speaker_file_names_runs_own_option_to_keep_the_prior(tmp_path: Path, capsys) -> None:
    """`edge-ser run` has --no-adapt and no --adapt, but its --speaker-file help and its "not written" line told
    the user of "--adapt off / --no-adapt" (predict's wording): `run --adapt off` is an unrecognised argument."""
    from edge_ser.cli import build_parser, main

    run = build_parser()._subparsers._group_actions[0].choices["run"]  # noqa: SLF001
    text = next(a.help for a in run._actions if "--speaker-file" in a.option_strings)  # noqa: SLF001
    assert "--no-adapt learns none" in text and "--adapt off" not in text
    b = _with_block(tmp_path)
    _, clip = _recordings(tmp_path, 0)
    me = tmp_path / "me.json"
    args = ["run", str(b), "--audio-file", str(clip), "--fast", "--no-console", "--engine", "numpy"]
    assert main([*args, "--window", "1", "--no-adapt", "--speaker-file", str(me)]) == 0
    err = capsys.readouterr().err
    assert not me.exists()
    assert f"speaker file {me}: not written: no clip of the speaker was learnt (--no-adapt learns none" in err
    assert "--adapt off" not in err


def test_bench_live_writes_the_speaker_file_it_says_it_writes(tmp_path: Path, capsys) -> None:
    """`edge-ser bench --live --speaker-file F` read F and said "it is written at the end" (its help, shared with
    run, says so too), but never wrote it: the session's speaker was lost without a word."""
    from edge_ser.cli import main

    b = _with_block(tmp_path)
    voice, clip = _recordings(tmp_path, 2)
    me = tmp_path / "me.json"
    args = [
        "bench",
        str(b),
        "--live",
        "--audio-file",
        str(clip),
        "--fast",
        "--engine",
        "numpy",
        "--window",
        "1",
    ]
    assert main([*args, "--enroll", str(voice), "--speaker-file", str(me)]) == 0
    err = capsys.readouterr().err
    assert "it is written at the end" in err and f"speaker file {me}: saved" in err
    assert Recognizer(b, "numpy").load_speaker(me) >= 2
