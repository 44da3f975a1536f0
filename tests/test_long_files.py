"""Files of any length: a file over the long-file limit is predicted per window (times, labels) plus a mean
summary, streamed; a short file is one clip exactly as before; too-short and empty clips are typed errors;
`edge-ser predict --json` shows the windows. Real WAV files and the shipped bundles."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edge_ser
from edge_ser.audio import load, write_wav
from edge_ser.audio.stream import FILE_WINDOW_SECONDS, LONG_FILE_SECONDS, file_windows
from edge_ser.bundle import load_bundle
from edge_ser.errors import AudioFormatError
from edge_ser.inputs.base import AUDIO_EXTENSIONS

REPO = Path(__file__).resolve().parents[1]
AUDIO_BUNDLES = ["laq_mlp_emodb", "tiny_transformer_emodb", "av_cnn_audio"]


def _speechy(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    from _signals import voiced

    return voiced(sr, int(seconds * sr), seed).astype(np.float32)


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory) -> Path:
    """40 s at 22.05 kHz stereo: past the 30 s limit, at a rate every bundle resamples from."""
    y = _speechy(40.0, 22050)
    st = np.stack([y, 0.5 * y], axis=1)
    return write_wav(tmp_path_factory.mktemp("long") / "long.wav", st, 22050)


def test_windows_of_a_long_file_are_the_streamed_file(long_wav: Path) -> None:
    wins = list(file_windows(long_wav, 16000))
    assert [w[3] for w in wins] == [False] * len(wins)
    starts = [w[0] for w in wins]
    assert starts == [i * FILE_WINDOW_SECONDS for i in range(len(wins))]
    assert all(w[2].size == int(FILE_WINDOW_SECONDS * 16000) for w in wins[:-1])
    whole, _ = load(long_wav, sr=16000)
    streamed = np.concatenate([w[2] for w in wins])
    assert whole.size == streamed.size  # nothing is left out: a short tail joins the last window
    np.testing.assert_allclose(streamed, whole[: streamed.size], atol=4e-6)


def test_a_short_file_is_one_clip_exactly_as_load(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "s.wav", _speechy(2.0, 22050), 22050)
    (w,) = list(file_windows(path, 16000))
    assert w[3] and w[0] == 0.0 and w[1] == pytest.approx(2.0)
    np.testing.assert_array_equal(w[2], load(path, sr=16000)[0])


@pytest.mark.parametrize("name", AUDIO_BUNDLES)
def test_long_file_prediction_is_per_window_plus_mean(name: str, long_wav: Path) -> None:
    rec = edge_ser.Recognizer(load_bundle(REPO / "bundles" / name), "numpy")
    p = rec.predict_file(long_wav)
    assert len(p.windows) == 13  # 40 s: 13 windows of 3 s, the 1 s tail (under half a window) joins the last
    assert p.windows[0].start == 0.0 and p.windows[-1].end == pytest.approx(40.0)
    assert p.windows[-1].start == pytest.approx(36.0)  # it was left out: 39 s of 40 classified
    mean = np.mean([list(w.probabilities.values()) for w in p.windows], axis=0)
    np.testing.assert_allclose(list(p.probabilities.values()), mean)
    assert p.label == rec.labels[int(np.argmax(mean))]
    assert p.duration == pytest.approx(40.0)
    # each window is the kind's prediction of that stretch of audio, as predict_audio gives it
    whole, _ = load(long_wav, sr=rec.sample_rate)
    w = p.windows[4]
    direct = rec.predict_audio(
        whole[int(w.start * rec.sample_rate) : int(w.end * rec.sample_rate)], rec.sample_rate
    )
    np.testing.assert_allclose(list(w.probabilities.values()), list(direct.probabilities.values()), atol=1e-3)


def test_a_long_files_label_leaves_out_its_windows_of_silence(tmp_path: Path, capsys) -> None:
    """A recording with a 9 s pause: its three silent windows ("sad 1.00" on ser_emodb) were in the file's mean,
    and could make its label; the mean is now of the windows with speech, and predict says so."""
    from edge_ser.cli import main

    sr = 16000
    path = write_wav(tmp_path / "pause.wav", np.concatenate([_speechy(33.0, sr), np.zeros(9 * sr)]), sr)
    rec = edge_ser.Recognizer(load_bundle(REPO / "bundles" / "laq_mlp_emodb"), "numpy")
    p = rec.predict_file(path)
    assert len(p.windows) == 14 and [w.level_db for w in p.windows[11:]] == [-np.inf] * 3
    mean = np.mean([list(w.probabilities.values()) for w in p.windows[:11]], axis=0)
    np.testing.assert_allclose(list(p.probabilities.values()), mean)
    assert main(["predict", str(REPO / "bundles" / "laq_mlp_emodb"), str(path), "--engine", "numpy"]) == 0
    assert "mean of 11 of 14 (those with speech) windows of 3 s" in capsys.readouterr().out


def test_short_files_batch_as_before(tmp_path: Path) -> None:
    rec = edge_ser.Recognizer(REPO / "bundles" / "laq_mlp_emodb", "numpy")
    paths = [write_wav(tmp_path / f"{i}.wav", _speechy(1.5, 16000, i), 16000) for i in range(3)]
    got = rec.predict_files(paths)
    assert [len(p.windows) for p in got] == [0, 0, 0]
    for path, p in zip(paths, got, strict=True):
        y, sr = load(path)
        np.testing.assert_allclose(
            list(p.probabilities.values()), list(rec.predict_audio(y, sr).probabilities.values()), atol=1e-6
        )


@pytest.mark.parametrize("samples", [0, 1, 100])
def test_too_short_and_empty_clips_are_typed_errors(tmp_path: Path, samples: int) -> None:
    rec = edge_ser.Recognizer(REPO / "bundles" / "laq_mlp_emodb", "numpy")
    path = write_wav(tmp_path / "tiny.wav", np.full(samples, 0.1), 22050)
    with pytest.raises(AudioFormatError, match="too short|0 frames") as e:
        rec.predict_file(path)
    assert str(path) in str(e.value)
    if samples:
        with pytest.raises(AudioFormatError, match="too short"):
            rec.predict_audio(np.full(samples, 0.1, np.float32), 22050)


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_ser", *args], capture_output=True, text=True, timeout=600, cwd=cwd
    )


def test_predict_json_and_windows_of_a_long_file(long_wav: Path, tmp_path: Path) -> None:
    short = write_wav(tmp_path / "short.wav", _speechy(2.0, 16000), 16000)
    r = _cli(
        "predict",
        str(REPO / "bundles" / "laq_mlp_emodb"),
        str(short),
        str(long_wav),
        "--json",
        "--engine",
        "numpy",
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [Path(x["file"]).name for x in rows] == ["short.wav", "long.wav"]
    assert rows[0]["windows"] == [] and rows[0]["duration"] == pytest.approx(2.0)
    w = rows[1]["windows"]
    assert (
        len(w) == 13
        and w[1]["start"] == 3.0
        and w[1]["end"] == 6.0
        and w[1]["label"] in rows[1]["probabilities"]
    )
    r = _cli(
        "predict", str(REPO / "bundles" / "laq_mlp_emodb"), str(long_wav), "--windows", "--engine", "numpy"
    )
    assert r.returncode == 0, r.stderr
    assert (
        "mean of 13 windows of 3 s (the last 4 s) covering 0:00-0:40.000" in r.stdout
    )  # the 1 s tail joins the last window, and the wording says so
    assert "0:03.000-0:06.000" in r.stdout
    # a line per window, in order, each led by the label the --json run gave that window, and the file's line
    # by the file's label
    spans = [line.split()[:2] for line in r.stdout.splitlines() if line.startswith("    ")]
    assert [(span, label) for span, label in spans] == [
        (
            f"{int(x['start'] // 60)}:{x['start'] % 60:06.3f}-{int(x['end'] // 60)}:{x['end'] % 60:06.3f}",
            x["label"],
        )
        for x in w
    ]
    assert f"long.wav: {rows[1]['label']} " in r.stdout


def test_predict_no_files_found_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no audio here")
    r = _cli("predict", str(REPO / "bundles" / "laq_mlp_emodb"), str(tmp_path))
    assert r.returncode == 2 and f"no {'/'.join(AUDIO_EXTENSIONS)} files in" in r.stderr
    assert "Traceback" not in r.stderr


def test_limits_are_what_the_docs_say() -> None:
    assert (LONG_FILE_SECONDS, FILE_WINDOW_SECONDS) == (30.0, 3.0)
    text = (REPO / "docs" / "input-kinds.md").read_text()
    assert "## Long files" in text and "30 s" in text and "3 s" in text


def test_features_of_a_long_file_equal_the_whole_file_vector(long_wav: Path) -> None:
    """`edge-ser features` (file_vector): a long file in two streamed passes, the same vector as whole."""
    from edge_ser.features import FeatureSpec, feature_vector
    from edge_ser.features.files import file_vector

    spec = FeatureSpec()
    whole, sr = load(long_wav, sr=spec.sample_rate)
    want = feature_vector(whole, sr=sr, spec=spec)
    got = file_vector(long_wav, spec)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_features_command_on_a_long_file(long_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.npy"
    r = _cli("features", str(long_wav), "--no-cache", "-q", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert np.load(out).shape == (1, 180)


def test_long_video_is_predicted_per_window_with_faces(tmp_path: Path) -> None:
    """A 40 s video with speech: the AV bundle (faces + audio) and its audio branch give 13 windows each,
    the faces of a window cropped from the frames shown in it, the audio streamed from ffmpeg."""
    import av_media

    ffmpeg = av_media.ffmpeg_or_skip()
    reps = int(40 * av_media.FPS) // av_media.N_FRAMES + 1
    frames = np.concatenate([av_media.face_frames()] * reps)[: int(40 * av_media.FPS)]
    video = av_media.write_video(tmp_path / "v.mp4", frames)
    speech = np.tile(av_media.speech(), reps)[: 40 * av_media.AUDIO_SR]
    audio = av_media.write_speech(tmp_path / "a.wav", speech)
    clip = av_media.mux(ffmpeg, video, audio, tmp_path / "long.mp4")
    for name in ("av_cnn", "av_cnn_audio"):
        rec = edge_ser.Recognizer(REPO / "bundles" / name, "numpy")
        p = rec.predict_file(clip)
        assert len(p.windows) == 13, name
        assert [w.start for w in p.windows[:3]] == [0.0, 3.0, 6.0]
        mean = np.mean([list(w.probabilities.values()) for w in p.windows], axis=0)
        np.testing.assert_allclose(list(p.probabilities.values()), mean)
    kind = load_bundle(REPO / "bundles" / "av_cnn").input_kind
    w = next(kind.file_windows(clip))
    assert w.inputs["faces"].shape == (1, 6, 64, 64) and w.inputs["faces"].max() > 0  # real crops, not black


def test_the_window_wording_says_a_last_window_of_another_length() -> None:
    """`predict` said "13 windows of 3 s" when the last was 4 s (a short tail joins it) or 1.6 s (a tail of its
    own); it now says the last one's length."""
    from types import SimpleNamespace

    from edge_ser.cli.predict import _window_span

    def spans(*edges: float) -> list[SimpleNamespace]:
        return [SimpleNamespace(start=a, end=b) for a, b in itertools.pairwise(edges)]

    assert _window_span(spans(0, 3, 6, 9)) == "3 s"
    assert _window_span(spans(0, 3, 6, 7.6)) == "3 s (the last 1.6 s)"
    assert _window_span(spans(0, 3, 7)) == "3 s (the last 4 s)"
    assert _window_span(spans(0, 2.5)) == "2.5 s"
