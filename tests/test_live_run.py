"""`edge-ser run` end to end on files with the shipped AV bundle: fast and reproducible, real time with a
SIGTERM, and the live page served by the process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from _signals import hum

from edge_ser.live.outputs.jsonl import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundles" / "av_cnn"
cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> tuple[Path, Path]:
    """6 s: speech 0-4 s then 2 s of silence (WAV, 16 kHz); video of a drawn face for the first 4 s."""
    from converters.data.synthetic import SyntheticSpec, generate
    from converters.data.synthetic_av import SyntheticAVSpec, generate_faces
    from edge_ser.audio import write_wav

    folder = tmp_path_factory.mktemp("media")
    sr = 16000
    clips = [w for w, _, _ in generate(SyntheticSpec(n_per_class=1, sr=sr, duration=2.0, seed=3))]
    y = np.concatenate([clips[0], clips[3], np.zeros(2 * sr, np.float32)]).astype(np.float32)
    wav = write_wav(folder / "clip.wav", y, sr)
    faces = generate_faces(
        SyntheticAVSpec(n_per_class=1, frames=25, frame_size=(240, 240), seed=1, labels=("happy",))
    )[0][0]
    video = folder / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (640, 480))
    for i in range(150):
        frame = np.full((480, 640, 3), 80, np.uint8)
        if i < 100:
            frame[120:360, 200:440] = faces[i % len(faces)]
        writer.write(frame)
    writer.release()
    return wav, video


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "edge_ser", "run", str(BUNDLE), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_fast_run_is_reproducible(media, tmp_path):
    wav, video = media
    runs = []
    for k in range(2):
        out = tmp_path / f"run{k}.jsonl"
        p = _cli(
            "--audio-file", str(wav), "--video-file", str(video), "--fast", "--json", str(out), "--no-console"
        )
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        runs.append(read_jsonl(out))
    a, b = runs
    assert len(a) == 7  # windows ending at 3.0, 3.5, ... 6.0 s
    assert [r.label for r in a] == [r.label for r in b] and [r.probs for r in a] == [r.probs for r in b]
    assert a[0].mode == "fused" and a[0].face_box is not None and a[0].speech
    assert a[-1].label == "silence" and not a[-1].speech  # the last hop is silent
    assert all(r.labels == a[0].labels for r in a)
    assert "faces found in" in err


def test_sigterm_stops_cleanly_and_flushes(media, tmp_path):
    wav, video = media
    out = tmp_path / "live.jsonl"
    p = _cli("--audio-file", str(wav), "--video-file", str(video), "--json", str(out), "--no-console")
    deadline = time.monotonic() + 120  # hang guard only
    while time.monotonic() < deadline and (not out.exists() or not out.read_text().strip()):
        time.sleep(0.1)  # the first window is complete after 3 s of real time
    assert out.exists() and out.read_text().strip(), "no result within 120 s"
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)  # hang guard: SIGTERM stops it
    assert p.returncode == 0, err
    assert "stopping (send SIGTERM again to force)" in str(err)  # not "press Ctrl-C", to a service
    text = out.read_text()
    assert text.endswith("\n")
    assert all(json.loads(line)["labels"] for line in text.splitlines())


def test_live_page_served_by_the_run(media):
    wav, video = media
    p = _cli("--audio-file", str(wav), "--video-file", str(video), "--web", "0", "--no-console")
    try:
        url = None
        deadline = time.monotonic() + 120  # hang guard only
        while url is None and time.monotonic() < deadline:
            line = p.stderr.readline()
            m = re.search(r"live page: (http://\S+)", line)
            url = m.group(1) if m else None
        assert url, "the run did not print the page's address"
        html = urllib.request.urlopen(url, timeout=60).read().decode()
        assert "EventSource" in html and "https://" not in html
        latest = None
        while latest is None and time.monotonic() < deadline:
            with urllib.request.urlopen(url.rstrip("/") + "/latest", timeout=60) as r:
                latest = json.loads(r.read()) if r.status == 200 else None
            time.sleep(0.2)
        assert latest is not None and latest["label"] in (*latest["labels"], "silence")
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=60)
    assert p.returncode == 0


def test_a_file_shorter_than_the_window_is_an_error_not_silence(tmp_path, capsys):
    """A 2 s clip gives no 3 s window: run and bench --live say so and suggest a window that fits, instead of
    reporting 0 updates (or a report of zeros) with exit 0."""
    from edge_ser.audio import write_wav
    from edge_ser.cli import main

    t = np.arange(2 * 16000) / 16000
    wav = write_wav(tmp_path / "short.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    ser = str(ROOT / "bundles" / "ser_emodb")
    assert main(["run", ser, "--audio-file", str(wav), "--fast", "--no-console"]) == 1
    err = capsys.readouterr().err
    assert "short.wav holds 2.00 s of audio, less than one 3 s window" in err and "--window 2" in err
    assert main(["bench", ser, "--live", "--audio-file", str(wav), "--fast"]) == 2
    assert "less than one 3 s window" in capsys.readouterr().err
    assert main(["run", ser, "--audio-file", str(wav), "--fast", "--no-console", "--window", "2"]) == 0
    assert "1 update over 2.0 s" in capsys.readouterr().err  # was "1 updates"
    # shorter than the hop: the advice names the hop too (--window 0.3 alone was refused: the hop exceeded it)
    short = write_wav(
        tmp_path / "short03.wav", (0.3 * np.sin(2 * np.pi * 220 * t[:5200])).astype(np.float32), 16000
    )
    assert main(["run", ser, "--audio-file", str(short), "--fast", "--no-console"]) == 1
    assert "give --window 0.3 --hop 0.3 or less" in capsys.readouterr().err
    assert (
        main(
            [
                "run",
                ser,
                "--audio-file",
                str(short),
                "--fast",
                "--no-console",
                "--window",
                "0.3",
                "--hop",
                "0.3",
            ]
        )
        == 0
    )
    tiny = write_wav(
        tmp_path / "tiny.wav", (0.3 * np.sin(2 * np.pi * 220 * t[:1600])).astype(np.float32), 16000
    )
    assert main(["run", ser, "--audio-file", str(tiny), "--fast", "--no-console"]) == 1
    err = capsys.readouterr().err
    assert "shorter than the shortest live window (0.2 s)" in err and "--window" not in err.split("holds")[1]


def test_updates_without_speech_carry_no_distribution(tmp_path, capsys):
    """ser_emodb on a file that starts with 4 s of digital silence, then speech: the updates before any speech
    (and any later silent one) carry `smoothed` as [] in the JSON lines, like `probs`, with the label
    "silence"; they carried a vector of zeros, which reads as a distribution over the labels summing to 0. The
    log line shows no label=prob pairs for them either; the updates with speech carry a distribution."""
    from converters.data.synthetic import SyntheticSpec, generate
    from edge_ser.audio import write_wav
    from edge_ser.cli import main

    sr = 16000
    speech = next(iter(generate(SyntheticSpec(n_per_class=1, sr=sr, duration=3.0, seed=3))))[0]
    y = np.concatenate([np.zeros(4 * sr, np.float32), speech]).astype(np.float32)
    wav = write_wav(tmp_path / "silent_start.wav", y, sr)
    out = tmp_path / "run.jsonl"
    ser = str(ROOT / "bundles" / "ser_emodb")
    assert main(["run", ser, "--audio-file", str(wav), "--fast", "--json", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    log = capsys.readouterr().out.splitlines()  # not a terminal: one log line per update
    assert len(log) == len(rows) and not rows[0]["speech"] and any(r["speech"] for r in rows)
    for row, line in zip(rows, log, strict=True):
        if row["speech"]:
            assert len(row["smoothed"]) == len(row["labels"]) and sum(row["smoothed"]) == pytest.approx(
                1, abs=1e-6
            )
            assert f"{row['label']}=" in line
        else:
            assert row["label"] == "silence" and row["confidence"] == 0
            assert row["probs"] == [] and row["smoothed"] == [], row
            assert not any(f"{name}=" in line for name in row["labels"]), line
    assert [r.smoothed for r in read_jsonl(out)] == [tuple(r["smoothed"]) for r in rows]


def test_bench_refuses_bad_runs_and_a_live_run_without_a_file(capsys):
    from edge_ser.cli import main

    ser = str(ROOT / "bundles" / "ser_emodb")
    for runs in ("0", "-5"):
        assert main(["bench", ser, "--runs", runs]) == 2
        assert f"--runs {runs}" in capsys.readouterr().err
    assert main(["bench", ser, "--live"]) == 2
    assert "--live needs --audio-file" in capsys.readouterr().err
    assert main(["bench", ser, "--live", "--mic", "USB"]) == 2  # its help lists --mic: say it cannot drive it
    assert "--mic cannot drive it" in capsys.readouterr().err


def test_a_face_only_bundle_runs_on_the_video_clock(media, tmp_path, capsys):
    """face_fer takes no audio: `run` needs no microphone (silence as long as the video keeps the loop's clock),
    classifies the windows with a face in view and says "no face" for the others; audio given to it is refused,
    and `bench --live` asks for the video."""
    from edge_ser.cli import main

    _, video = media  # a drawn face for the first 4 s of 6
    face = str(ROOT / "bundles" / "face_fer")
    out = tmp_path / "face.jsonl"
    args = [
        "run",
        face,
        "--video-file",
        str(video),
        "--fast",
        "--no-console",
        "--window",
        "1",
        "--json",
        str(out),
    ]
    assert main(args) == 0
    rows = read_jsonl(out)
    assert rows and rows[-1].t == pytest.approx(6.0)
    assert rows[0].label != "no face" and rows[-1].label == "no face" and rows[-1].speech is False
    assert len(rows[0].smoothed) == len(rows[0].labels) and rows[-1].smoothed == ()  # no face: no estimate
    assert all(r.mode == "video" for r in rows)
    assert "s of video" in capsys.readouterr().err
    wav, _ = media
    assert main(["run", face, "--audio-file", str(wav), "--video-file", str(video), "--fast"]) == 2
    assert "takes faces only" in capsys.readouterr().err
    assert main(["bench", face, "--live"]) == 2
    assert "needs --video-file" in capsys.readouterr().err


def test_a_camera_that_never_delivers_is_named_with_its_reason(media, tmp_path, capsys):
    """A missing camera: the results note it (once it has had CAMERA_GRACE s to open, so a camera that is
    merely slow to start is not reported lost), with the reason, and the run ends saying so. A face-only bundle
    made no decision and fails (it used to end with status 0 and "no face"); an audio-visual bundle ran on audio
    alone and warns."""
    from edge_ser.cli import main
    from edge_ser.live.run import CAMERA_GRACE

    missing = "/dev/video97"
    wav, _ = media
    out = tmp_path / "av.jsonl"
    fusion = str(ROOT / "bundles" / "av_fusion")
    args = ["run", fusion, "--audio-file", str(wav), "--camera", missing, "--fast", "--no-console"]
    assert main([*args, "--window", "1", "--json", str(out)]) == 0
    rows = read_jsonl(out)
    noted = [r for r in rows if r.notes]
    assert [n for r in noted for n in r.notes if "camera" in n] == [
        f"no camera yet: camera '{missing}' (v4l2): cannot open; retrying in "
        + noted[0].notes[0].split("retrying in ")[1]
    ]
    assert noted[0].t >= CAMERA_GRACE and noted[0].notes[0].endswith("(audio-only meanwhile)")
    assert all(r.mode != "fused" for r in rows if r.speech)  # every estimate was the audio's
    err = capsys.readouterr().err
    assert f"warning: no frame came from camera '{missing}' in 6.0 s of stream (" in err
    assert "s of wall time with --fast) (cannot open), so the run was audio-only" in err
    assert "note: --fast runs the audio file faster than real time, which a live camera cannot follow" in err
    face = str(ROOT / "bundles" / "face_fer")
    assert main(["run", face, "--camera", missing, "--seconds", "2.5", "--window", "1", "--no-console"]) == 1
    err = capsys.readouterr().err
    assert (
        f"error: no frame came from camera '{missing}'" in err
        and "so every update said no face (no label was given)" in err
    )
    # av_cnn without a fallback answers on black frames: its notes said "audio-only" (a review)
    av_cnn = str(ROOT / "bundles" / "av_cnn")
    out = tmp_path / "cnn.jsonl"
    assert main(["run", av_cnn, "--audio-file", str(wav), "--camera", missing, "--fast", "--no-console",
                 "--json", str(out)]) == 0  # fmt: skip
    notes = [n for r in read_jsonl(out) for n in r.notes if "camera" in n]
    assert notes and notes[0].endswith("(the fused model on black frames meanwhile)")
    assert "so every answer was the fused model on black frames (give --fallback" in capsys.readouterr().err


def test_a_quiet_recording_says_the_gate_never_opened_and_how_to_open_it(media, tmp_path, capsys):
    """Speech recorded quietly (peaks under -45 dBFS, as a third of RAVDESS's clips) gave "silence" on every
    update and no word why; the run now ends with the loudest hop it saw and a --vad-db that opens the gate."""
    import re

    from edge_ser.audio import read_wav, write_wav
    from edge_ser.cli import main

    wav, _ = media
    y, sr = read_wav(wav)
    quiet = write_wav(
        tmp_path / "quiet.wav", (y * (0.004 / max(1e-9, float(abs(y).max())))).astype("float32"), sr
    )
    ser = str(ROOT / "bundles" / "ser_emodb")
    assert main(["run", ser, "--audio-file", str(quiet), "--fast", "--no-console"]) == 0
    err = capsys.readouterr().err
    said = re.search(
        r"the voice gate never opened: .* its loudest hop was (-\d+\.\d) dBFS, .*--vad-db (-\d+)\)", err
    )
    assert said, err
    out = tmp_path / "opened.jsonl"
    args = ["run", ser, "--audio-file", str(quiet), "--fast", "--no-console", "--json", str(out)]
    assert main([*args, "--vad-db", said.group(2)]) == 0
    assert "never opened" not in capsys.readouterr().err and any(r.speech for r in read_jsonl(out))


def test_a_video_shorter_than_the_audio_stops_giving_faces(media, tmp_path):
    """av_fusion on 6 s of audio and 1 s of frames: once the last frame has left the window, its face is not used
    again (it was, to the end of the audio, as if the face were still there), and the result says audio."""
    from converters.data.synthetic_av import SyntheticAVSpec, generate_faces
    from edge_ser.cli import main

    wav, _ = media
    frames = tmp_path / "frames"
    frames.mkdir()
    faces = generate_faces(SyntheticAVSpec(n_per_class=1, frames=25, frame_size=(240, 240), seed=1))[0][0]
    for i in range(25):  # 1 s at the default 25 images per second
        frame = np.full((480, 640, 3), 80, np.uint8)
        frame[120:360, 200:440] = faces[i % len(faces)]
        cv2.imwrite(str(frames / f"{i:03d}.png"), frame)
    out = tmp_path / "av.jsonl"
    fusion = str(ROOT / "bundles" / "av_fusion")
    args = ["run", fusion, "--audio-file", str(wav), "--video-file", str(frames), "--fast", "--no-console"]
    assert main([*args, "--window", "1", "--json", str(out)]) == 0
    rows = read_jsonl(out)
    ended = [i for i, r in enumerate(rows) if any("video ended" in n for n in r.notes)]
    assert len(ended) == 1 and rows[ended[0]].t >= 2.0  # the last frame (0.96 s) a window back
    # the last frame is shown until 1.0 s (a one-image folder at --image-fps 0.5 said "ended at 0.0 s"; a review)
    assert any("video ended at 1.0 s" in n for n in rows[ended[0]].notes)
    after = rows[ended[0] :]
    assert all(r.face_box is None for r in after)
    assert all(r.mode == "audio" for r in after if r.speech) and any(r.speech for r in after)


def test_audio_shorter_than_the_video_says_the_rest_of_the_video_was_not_classified(media, tmp_path, capsys):
    """The opposite of the test above: 3 s of audio beside 8 s of frames ended with the audio without a word, while a
    shorter video says "video ended at 1.0 s"; the run now ends saying where the audio ended and the video did."""
    from edge_ser.audio import read_wav, write_wav
    from edge_ser.cli import main

    wav, _ = media
    y, sr = read_wav(wav)
    short = write_wav(tmp_path / "short.wav", y[: 3 * sr], sr)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(16):  # 8 s at --image-fps 2
        cv2.imwrite(str(frames / f"{i:03d}.png"), np.full((120, 160, 3), 80, np.uint8))
    fusion = str(ROOT / "bundles" / "av_fusion")

    def run(audio: Path, fps: str) -> str:
        args = ["run", fusion, "--video-file", str(frames), "--image-fps", fps, "--audio-file", str(audio)]
        assert main([*args, "--fast", "--no-console", "--window", "1"]) == 0
        return capsys.readouterr().err

    err = run(short, "2")
    assert "note: audio ended at 3.0 s, 5.0 s before the video (8.0 s)" in err and "not classified" in err, (
        err
    )
    assert "audio ended at 6.0 s, 2.0 s before the video (8.0 s)" in run(wav, "2")  # still 2 s of video left
    assert "audio ended" not in run(
        wav, "4"
    )  # 4 s of frames: the video ends first (and says so in the results)


class _Set:
    """A stop flag that is already set (Ctrl-C before the first window, or during --enroll)."""

    def is_set(self) -> bool:
        return True


def test_a_run_stopped_before_its_first_window_is_not_a_file_too_short(media, tmp_path, capsys):
    """Ctrl-C 2 s into a 24 s file said "holds 2.0 s of audio, less than one window" and exited 1; during --enroll it
    went on enrolling every file. A stopped run is a stopped run: no such error, and enrolment stops too."""
    from edge_ser.cli import build_parser
    from edge_ser.cli.common import enroll_files
    from edge_ser.live.command import build, too_short
    from edge_ser.recognizer import Recognizer

    wav, _ = media
    ser = str(ROOT / "bundles" / "ser_emodb")
    args = build_parser().parse_args(["run", ser, "--audio-file", str(wav), "--fast", "--engine", "numpy"])
    _, runner = build(args, stop=_Set())
    stats = runner.run()
    assert stats.updates == 0 and stats.stopped and too_short(args, stats) is None
    rec = Recognizer(ser, "numpy")
    line = enroll_files(rec, [wav, wav], stop=_Set())
    assert "stopped after 0 of 2 files" in line and rec.speaker_clips == 0


def test_the_overlay_windows_q_stops_the_run(media, monkeypatch):
    """Pressing q or Esc (or closing the window) set `quit_requested`, which nothing read: the run went on."""
    from edge_ser.live.outputs import Outputs
    from edge_ser.recognizer import Recognizer

    class _Quits:
        quit_requested = False

        def emit(self, r) -> None:
            self.quit_requested = True  # the user pressed q on the first update

        def close(self) -> None:
            pass

    wav, _ = media
    rec = Recognizer(ROOT / "bundles" / "ser_emodb", "numpy")
    from edge_ser.live.capture import CaptureSettings
    from edge_ser.live.pipeline import PipelineConfig

    runner = rec.runner(CaptureSettings(audio_file=wav, realtime=False), PipelineConfig(window=1.0),
                        outputs=[Outputs([_Quits()])])  # fmt: skip
    stats = runner.run()
    assert stats.updates == 1 and stats.stopped


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda n: np.zeros(n, np.float32), "every hop was digital silence"),
        (
            lambda n: (1e-5 * np.random.default_rng(0).standard_normal(n)).astype(np.float32),
            "no sound rose 10 dB",
        ),
        (  # a fan's steady noise at about -52 dBFS: it rose above the starting noise floor, so no note was given
            lambda n: (0.0035 * np.random.default_rng(0).standard_normal(n)).astype(np.float32),
            "nothing voiced was heard",
        ),
    ],
)
def test_a_run_that_heard_nothing_says_what_the_input_was(tmp_path, capsys, make, said):
    """An all-zero input (a muted or wrong device) ended with no note; a muted 16-bit input's hiss was given a
    --vad-db that would classify hiss."""
    from edge_ser.audio import write_wav
    from edge_ser.cli import main

    wav = write_wav(tmp_path / "in.wav", make(16000 * 12), 16000)
    assert (
        main(["run", str(ROOT / "bundles" / "ser_emodb"), "--audio-file", str(wav), "--fast", "--no-console"])
        == 0
    )
    err = capsys.readouterr().err
    assert said in err and "--vad-db -" not in err


def test_a_quiet_speaker_among_loud_ones_is_noted(tmp_path, capsys):
    """Only the loud utterances of a quiet speaker opened the gate and nothing said why (the note came only when
    the gate never opened at all)."""
    from edge_ser.audio import write_wav
    from edge_ser.cli import main

    sr, rng = 16000, np.random.default_rng(1)
    t = np.arange(2 * sr) / sr
    voice = (np.sin(2 * np.pi * 150 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)).astype(np.float32)
    gap = (1e-4 * rng.standard_normal(sr)).astype(np.float32)
    # 3 s of room, one loud utterance, five at about -51 dBFS
    parts = [gap] * 3 + [voice * 0.2, gap] + [voice * 0.005, gap] * 5
    wav = write_wav(tmp_path / "quiet.wav", np.concatenate(parts), sr)
    assert (
        main(["run", str(ROOT / "bundles" / "ser_emodb"), "--audio-file", str(wav), "--fast", "--no-console"])
        == 0
    )
    err = capsys.readouterr().err
    assert "a quiet speaker is being called silence" in err and re.search(r"--vad-db -(55|60)\)", err)


def test_loud_noise_without_a_voice_is_silence_and_the_run_says_why(tmp_path, capsys):
    """The voice gate tests voicing (docs/live.md, "A gate that hears voicing"): a recording of a fan louder than
    --vad-db is silence, and the run ends saying the hops were loud but not voiced, and how to let them in."""
    from edge_ser.audio import write_wav
    from edge_ser.cli import main

    fan = (0.03 * np.random.default_rng(2).standard_normal(8 * 16000)).astype(np.float32)  # -30 dBFS
    wav = write_wav(tmp_path / "fan.wav", fan, 16000)
    out = tmp_path / "fan.jsonl"
    ser = str(ROOT / "bundles" / "ser_emodb")
    args = ["run", ser, "--audio-file", str(wav), "--fast", "--no-console", "--json", str(out)]
    assert main(args) == 0
    err = capsys.readouterr().err
    rows = read_jsonl(out)
    assert not any(r.speech for r in rows)
    assert all(r.voiced is not None and r.voiced < 0.1 for r in rows)  # each line says why: loud, not voiced
    assert re.search(r"never opened: \d+ hops reached --vad-db -45 .* not voiced.*--vad-voicing 0", err), err
    assert main([*args, "--vad-voicing", "0"]) == 0  # the level and the floor: the fan is speech at first
    assert any(r.speech for r in read_jsonl(out)) and "not voiced" not in capsys.readouterr().err


def test_bench_live_writes_the_decisions_it_is_asked_for_and_says_what_it_measured(media, tmp_path, capsys):
    """`bench --live --json FILE` exited 0 without writing FILE (--json, --web and --overlay were accepted and
    ignored); the report did not say the threads, window, hop, sources or versions it measured, and a run shorter
    than the warm-up called its growth "after warm-up"."""
    from edge_ser.cli import main

    wav, _ = media
    jsonl, out = tmp_path / "decisions.jsonl", tmp_path / "bench"
    ser = str(ROOT / "bundles" / "ser_emodb")
    args = [
        "bench",
        "--live",
        ser,
        "--audio-file",
        str(wav),
        "--fast",
        "--json",
        str(jsonl),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    decisions = read_jsonl(jsonl)
    assert len(decisions) == round((6.0 - 3.0) / 0.5) + 1 and any(r.speech for r in decisions)
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["setup"]["window_s"] == 3.0 and report["setup"]["audio_file"] == str(wav)
    assert "numpy" in report["setup"]["versions"] and report["growth_after_warmup"] is False
    md = out.with_suffix(".md").read_text()
    assert "warm-up included" in md and "Setup: threads" in md
    reused, computed = report["frames_reused"]  # the functionals' pYIN frames, shared by consecutive windows
    assert reused > 0 and computed > 0 and "pYIN frames reused from an earlier window" in md
    capsys.readouterr()
    assert main([*args[:-4], "--json", "-"]) == 0  # the decisions on stdout, the report on stderr
    captured = capsys.readouterr()
    assert all(line.startswith("{") for line in captured.out.splitlines() if line) and "CPU:" in captured.err


def test_quiet_speech_with_noise_bursts_gets_the_quiet_note_not_the_unvoiced_one():
    """A review found the new "not voiced" note hiding the quiet-speaker advice: quiet voiced speech under
    --vad-db with three loud noise bursts in its pauses was told to switch voicing off, which opened the gate on
    the bursts only. The unvoiced note is given only when unvoiced hops are not outnumbered by quiet ones."""
    from edge_ser.live.pipeline import VadGate
    from edge_ser.live.run import RunStats, gate_note

    sr, rng = 16000, np.random.default_rng(0)
    t = np.arange(sr // 2) / sr
    voice = (0.005 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)  # -49 dBFS, voiced
    burst = (0.03 * rng.standard_normal(sr // 2)).astype(np.float32)  # -30 dBFS, not voiced
    room = (1e-4 * rng.standard_normal(sr // 2)).astype(np.float32)
    from edge_ser.audio.level import level_db

    gate = VadGate(-45.0, 10.0, voicing=0.1, floor=False, hangover=1)
    stats = RunStats()
    for h in [room] * 4 + ([voice] * 5 + [room]) * 5 + [burst, room] * 3:
        stats.updates += 1
        stats.loudest_db = max(stats.loudest_db, level_db(h))
        assert not gate(level_db(h), h, sr)
    assert gate.quiet_hops == 25 and gate.unvoiced_hops == 3
    note = gate_note(stats, gate)
    assert "stayed" not in note and "under --vad-db -45" in note and "--vad-voicing 0" not in note
    gate.quiet_hops = 2  # mostly loud noise: the unvoiced note
    assert "not voiced" in gate_note(stats, gate)


def test_a_run_that_heard_speech_is_not_called_digital_silence():
    """`--seconds 4` on a file whose first clip ends at 2.5 s, then zeros: its one speech update (t = 3 s, "happy")
    measured only its newest hop, all zeros, and the run ended with "every hop was digital silence (all zeros):
    mix.wav holds no sound" (on the console and the live page). An update with speech means there was sound."""
    from edge_ser.live.pipeline import VadGate
    from edge_ser.live.run import RunStats, gate_note

    gate = VadGate(-45.0, 10.0, voicing=0.1, floor=False, hangover=1)
    stats = RunStats()
    stats.updates, stats.speech_updates = 3, 1  # loudest_db stays -inf: every measured hop was zeros
    assert gate_note(stats, gate, "mix.wav") is None
    stats.speech_updates = 0  # no speech either: the file does hold no sound
    assert (
        gate_note(stats, gate, "mix.wav")
        == "every hop was digital silence (all zeros): mix.wav holds no sound"
    )


def _gate_run(gate, y: np.ndarray, sr: int = 16000):
    """Half-second hops of `y` through `gate` as a run's updates: the run's RunStats (updates, loudest level, updates
    the gate opened on)."""
    from edge_ser.audio.level import level_db
    from edge_ser.live.run import RunStats

    stats = RunStats()
    for i in range(0, y.size, sr // 2):
        h = y[i : i + sr // 2]
        stats.updates += 1
        stats.loudest_db = max(stats.loudest_db, level_db(h))
        stats.speech_updates += int(gate(level_db(h), h, sr))
    return stats


def test_room_noise_in_the_pauses_is_not_a_quiet_speaker():
    """Loud sentences with 1.5-2.5 s pauses of -60 dBFS room noise ended with 'a quiet speaker is being called
    silence ... lower the gate (--vad-db -65)': the floor, still climbing from -90 dBFS, read the room's unvoiced
    noise as quiet hops. A quiet hop must now be voiced; a quiet voice still is one."""
    from edge_ser.live.pipeline import LivePipeline, PipelineConfig
    from edge_ser.live.run import gate_note
    from tests._signals import voiced

    sr, rng = 16000, np.random.default_rng(0)
    parts = []
    for i in range(7):
        parts += [
            1e-3 * rng.standard_normal(int(2.0 * sr)),
            voiced(sr, 2 * sr, i),
        ]  # -60 dBFS, then a sentence
    y = np.concatenate(parts).astype(np.float32)
    gate = LivePipeline.make_gate(PipelineConfig())
    stats = _gate_run(gate, y)
    assert stats.speech_updates >= 20 and gate.quiet_hops == 0 and gate_note(stats, gate) is None
    # the same sentences 35 dB quieter (under the -45 dBFS gate) are a quiet speaker, and said to be one
    quiet = LivePipeline.make_gate(PipelineConfig())
    mixed = np.concatenate([np.concatenate(parts[:6]), 0.018 * np.concatenate(parts[6:])]).astype(np.float32)
    stats = _gate_run(quiet, mixed)
    assert quiet.quiet_hops >= 2 and "a quiet speaker is being called silence" in (
        gate_note(stats, quiet) or ""
    )


def test_a_run_that_heard_only_a_hum_says_so_when_the_steady_test_shut_it():
    """`--vad-steady` (docs/live.md, "A steady voiced sound"): a run whose loud voiced hops were all a steady hum
    ends with a note naming it and the flag; a run of mostly speech does not."""
    from edge_ser.live.pipeline import VadGate
    from edge_ser.live.run import gate_note

    gate = VadGate(-45.0, 10.0, voicing=0.1, floor=False, hangover=1, steady_seconds=2.0)
    stats = _gate_run(gate, hum(10.0))  # -40 dBFS
    assert gate.steady_shut == 17 and stats.speech_updates == 3  # open for the test's first 1.5 s
    note = gate_note(stats, gate)
    assert "kept 17 hops out" in note and "hum or a drone" in note and "--vad-steady 0" in note
    stats.speech_updates = 40  # mostly speech: no note about the hum
    assert gate_note(stats, gate) is None


def test_a_hum_under_a_raised_gate_is_not_called_a_quiet_speaker():
    """The 30 s note tells a user to raise --vad-db above a hum; the end-of-run note then called the hum's hops a
    quiet speaker and advised lowering the gate again (the floor climbs 0.5 dB a hop from -90 dBFS, so for ~40 s
    the hum stood 10 dB above it). Since 2026-12-06 hops whose level stays within 2 dB for 3 s are a steady sound:
    the floor the notes use jumps to it, and those hops are not counted as quiet speech."""
    from edge_ser.live.pipeline import LivePipeline, PipelineConfig
    from edge_ser.live.run import gate_note

    sr = 16000
    t = np.arange(40 * sr) / sr
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    voice = sum(np.sin(k * 2 * np.pi * np.cumsum(f0) / sr) / k for k in range(1, 8))
    voice = voice * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)
    voice = (0.1 * voice / np.abs(voice).max()).astype(np.float32)
    y = hum(40.0)  # -40 dBFS
    y[30 * sr :] += voice[30 * sr :]  # 30 s of hum, then 10 s of a voice over it
    gate = LivePipeline.make_gate(PipelineConfig(vad_db=-35.0))
    stats = _gate_run(gate, y)
    assert stats.speech_updates >= 18  # the voice opens the gate
    assert gate.quiet_hops == 0 and gate_note(stats, gate) is None


def test_review_findings_on_the_steady_sound_test_and_the_notes(tmp_path, capsys):
    """A review (2026-12-06) found: the quiet-speaker note quoting a hum's level after its hops were taken back;
    `--vad-steady 0.5` keeping one test (the pooled test the docs rejected); `--vad-steady` ignored with
    `--vad-voicing 0`; the steady note on a run that was half speech; booleans and strings accepted; the 30 s note
    not naming --vad-steady; --cut-pauses doing nothing without a word. Each is mended here."""
    from edge_ser.audio import write_wav
    from edge_ser.cli import main
    from edge_ser.errors import ConfigError
    from edge_ser.live.pipeline import LivePipeline, PipelineConfig, VadGate
    from edge_ser.live.run import RunStats, gate_note

    # quiet speech at -54..-50 dBFS, then a steady -36 dBFS sound under --vad-db -35: the note quotes the speech
    gate, stats = LivePipeline.make_gate(PipelineConfig(vad_db=-35.0)), RunStats()
    for db in [-96, -54, -52, -96, -50, -51, -96, -54, -50] + [-36.0] * 10:
        stats.updates += 1
        stats.loudest_db = max(stats.loudest_db, db)
        stats.speech_updates += gate(db)
    assert gate.quiet_hops == 6 and gate.quiet_loudest == -50.0
    assert "-50.0 dBFS" in gate_note(stats, gate) and "--vad-db -55" in gate_note(stats, gate)
    # at least two tests: the newest is always judged against the ones before it
    assert VadGate(-45, 10, voicing=0.1, steady_seconds=0.5)._tests.maxlen == 2
    assert VadGate(-45, 10, voicing=0.1, steady_seconds=1.0, hop_seconds=1.0)._tests.maxlen == 2
    with pytest.raises(ConfigError, match="needs the voicing gate"):
        PipelineConfig(vad_steady=2.0, vad_voicing=0.0)
    for bad in (True, "2", 0.2):
        with pytest.raises(ConfigError, match="vad_steady"):
            PipelineConfig(vad_steady=bad)
    for kw in ({"steady_seconds": 0.2}, {"hop_seconds": True}, {"steady_newest": "no"}):
        with pytest.raises(ConfigError):
            VadGate(-45, 10, voicing=0.1, **kw)
    # a run that was half speech over a hum gets no "kept out" note advising --vad-steady 0
    gate, stats = VadGate(-45, 10, voicing=0.1, floor=False, steady_seconds=2.0), RunStats(updates=73)
    gate.steady_shut, stats.speech_updates, stats.loudest_db = 37, 36, -30.0
    gate.stood_out = True
    assert gate_note(stats, gate) is None
    # --cut-pauses with a bundle it cannot cut says so
    sr = 16000
    t = np.arange(4 * sr) / sr
    wav = write_wav(tmp_path / "v.wav", (0.1 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), sr)
    fn_audio = str(ROOT / "bundles" / "av_fn_audio")
    assert (
        main(["run", fn_audio, "--audio-file", str(wav), "--fast", "--no-console", "--cut-pauses", "on"]) == 0
    )
    assert "--cut-pauses does nothing here" in capsys.readouterr().err


def test_runs_of_open_updates_are_utterances_and_mostly_short_ones_bring_a_note():
    """docs/live.md, "Short utterances": `RunStats.add` counts a run of updates with the gate open as an utterance
    when it ends and returns its length (what `LiveRunner` measures the speech of); the note needs 6 utterances and
    half of them short."""
    from types import SimpleNamespace

    from edge_ser.live.run import STAGES, RunStats, measured_runs, utterance_note

    stats, ended = RunStats(), []
    times = SimpleNamespace(**dict.fromkeys(STAGES, 0.0))
    for f in [False, True, False, True, True, True, False, False, True]:
        ended.append(
            stats.add(SimpleNamespace(speech=f, hears=True, level_db=-30.0, fallback=None, times=times))
        )
    assert (
        ended == [0, 0, 1, 0, 0, 0, 3, 0, 0] and stats.utterances == 2
    )  # the open run at the end has not ended
    assert (measured_runs(0.5), measured_runs(0.25), measured_runs(1.0), measured_runs(3.0)) == (3, 7, 1, 1)
    stats.utterances, stats.short_utterances = 6, 3
    note = utterance_note(stats)
    assert "3 of 6 utterances had less than 1.2 s of speech" in note and "2 s or more" in note
    stats.short_utterances = 2
    assert utterance_note(stats) is None  # a third short
    stats.utterances, stats.short_utterances = 5, 5
    assert utterance_note(stats) is None  # too few to say


def test_short_speech_measures_the_voiced_stretch_of_a_run():
    """`short_speech`: 0.6 s of voice in 1.5 s of room is short, 1.6 s is not, and room alone is no utterance."""
    from _signals import voiced

    from edge_ser.live.run import short_speech

    sr, rng = 16000, np.random.default_rng(1)
    room = 10 ** (-70 / 20) * rng.standard_normal(int(0.5 * sr))
    for seconds, short in ((0.6, True), (1.6, False)):
        assert short_speech(np.concatenate([room, voiced(sr, int(seconds * sr)), room]), sr) is short
    assert short_speech(room, sr) is False


def test_a_run_of_single_words_ends_with_the_short_utterance_note_and_sentences_do_not(tmp_path, capsys):
    """`edge-ser run` on a file: words of 0.6 s between pauses get the note once in the results (the live page
    shows it) and at the end; sentences of 2.5 s (runs too long to be measured) do not."""
    from _signals import voiced

    from edge_ser.audio import write_wav
    from edge_ser.cli import main

    sr, rng = 16000, np.random.default_rng(0)

    def session(seconds: float, n: int) -> Path:
        room = [10 ** (-70 / 20) * rng.standard_normal(int(1.5 * sr))]
        parts = room + [p for k in range(n) for p in (voiced(sr, int(seconds * sr), seed=k), *room)]
        return write_wav(tmp_path / f"talk{seconds:g}.wav", np.concatenate(parts).astype(np.float32), sr)

    ser = str(ROOT / "bundles" / "ser_ravdess")
    for seconds, noted in ((0.6, True), (2.5, False)):
        out = tmp_path / f"talk{seconds:g}.jsonl"
        args = [
            "run",
            ser,
            "--audio-file",
            str(session(seconds, 8)),  # the first window ends at 3 s: ~7 utterances are heard
            "--fast",
            "--no-console",
            "--json",
            str(out),
        ]
        assert main(args) == 0
        err = capsys.readouterr().err
        results = read_jsonl(out)
        assert sum(r.speech for r in results) >= 6  # every word or sentence opened the gate
        notes = [n for r in results for n in r.notes if "utterances had less than" in n]
        assert ("utterances had less than 1.2 s of speech" in err) == noted and len(notes) == int(noted), err


def test_the_live_report_says_when_no_pyin_frame_was_reused():
    from dataclasses import replace

    from edge_ser.live.bench import LiveBenchReport

    stage = {"p50": 1.0, "p99": 2.0, "mean": 1.0}
    base = LiveBenchReport(
        "b", "numpy", 10.0, 10.0, 0.1, 0.01, 20, 10, 2.0, {"features": stage}, [], 0.0, 0, 0, 0
    )
    assert "pYIN frames" not in base.markdown()  # a bundle without the functionals front end
    some = replace(base, frames_reused=(80, 20)).markdown()
    assert "pYIN frames reused from an earlier window: 80 % of 100;" in some
    none = replace(base, frames_reused=(0, 100)).markdown()
    assert (
        "0 % of 100 (none in this run: a window shares frames only with an earlier one that overlaps it"
        in none
    )


def test_narrow_band_audio_is_flagged_live_as_predict_flags_it(tmp_path):
    """An 8 kHz file (or headset) under a 16 kHz model: predict flagged it out of range, the live path never did."""
    import edge_ser
    from edge_ser.audio import resample, write_wav
    from edge_ser.live.pipeline import PipelineConfig
    from tests._signals import voiced

    y = np.concatenate([voiced(16000, 32000), np.zeros(8000), voiced(16000, 32000, 1)]).astype(np.float32)
    config = PipelineConfig(window=1.5, hop=0.5)
    for rate, narrow in ((8000, True), (16000, False)):
        wav = write_wav(tmp_path / f"{rate}.wav", resample(y, 16000, rate) if rate != 16000 else y, rate)
        rec = edge_ser.Recognizer(ROOT / "bundles" / "ser_emodb", "numpy")
        got = list(rec.stream(audio_file=wav, realtime=False, config=config))
        speech = [r for r in got if r.speech]
        assert speech and all(r.ood == narrow for r in speech)
        assert any("recorded at 8000 Hz" in n for r in got for n in r.notes) == narrow
        assert rec.predict_file(wav).ood == narrow  # the same verdict as the file path
        session = rec.session(sr=rate, config=config)
        results = session.push(resample(y, 16000, rate) if rate != 16000 else y)
        pushed = [r for r in results if r.speech]
        assert pushed and all(r.ood == narrow for r in pushed)
        assert any("recorded at 8000 Hz" in n for n in results[0].notes) == narrow  # as stream says why
        # the application sets a session's capture: its advice names sample_rate, not the CLI's --mic-rate
        assert not any("--mic-rate" in n for n in results[0].notes)
        assert any("the session's sample_rate" in n for n in results[0].notes) == narrow


def test_a_video_file_with_sound_is_heard_without_audio_file(tmp_path, capsys):
    """`run av_fusion --video-file clip.mp4` went to the default microphone (an error on a machine without one)
    although the clip has a sound track; now the track is the audio, said in a note, unless --mic is given."""
    import argparse

    from edge_ser.cli import main
    from edge_ser.live.command import video_sound
    from tests.av_media import ffmpeg_or_skip, mux, write_speech, write_video

    ffmpeg = ffmpeg_or_skip()
    silent = write_video(tmp_path / "v.mp4")
    clip = mux(ffmpeg, silent, write_speech(tmp_path / "a.wav"), tmp_path / "clip.mp4")

    def args(video, **kw):
        return argparse.Namespace(video_file=str(video), audio_file=None, mic=None, **kw)

    assert video_sound(args(clip), hears=True) == str(clip)
    assert video_sound(args(clip), hears=False) is None  # a face bundle has no use for it
    assert video_sound(args(silent), hears=True) is None  # no sound track: the microphone, as before
    assert (
        video_sound(argparse.Namespace(video_file=str(clip), audio_file=None, mic="USB"), hears=True) is None
    )
    fusion = str(ROOT / "bundles" / "av_fusion")
    assert main(["run", fusion, "--video-file", str(clip), "--fast", "--no-console", "--window", "1"]) == 0
    err = capsys.readouterr().err
    assert "audio from the video's own sound track" in err and re.search(
        r"\b[1-9]\d* updates? over 1.2 s of audio", err
    )
    # no sound track: the default microphone, now said (there is none here, so the run fails after the note)
    main(["run", fusion, "--video-file", str(silent), "--fast", "--no-console", "--window", "1"])
    assert "v.mp4 has no sound track (or it cannot be read): listening to the default microphone" in (
        capsys.readouterr().err
    )
    # not before the error of a file that is nothing to play (an empty one here)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    main(["run", fusion, "--video-file", str(empty), "--fast", "--no-console", "--window", "1"])
    assert "listening to the default microphone" not in capsys.readouterr().err


def test_a_short_hop_does_not_cut_sentences_into_utterances(tmp_path):
    """At --hop 0.05 a 50 ms hop between two syllables dipped under --vad-db and the one-hop hangover lasted 50 ms:
    8 sentences became 17 'utterances', a false short-utterance note, and fewer clips learnt (8 at a 0.5 s hop, 3 at
    0.05 s). The gate's level is now judged over the last half second, as its voicing is, and the hangover lasts
    half a second whatever the hop."""
    import edge_ser
    from edge_ser.audio import write_wav
    from edge_ser.live.pipeline import PipelineConfig
    from tests._signals import voiced

    sr, rng = 16000, np.random.default_rng(0)
    parts = []
    for i in range(5):
        gap = 3e-4 * rng.standard_normal(int(1.5 * sr))
        syllables = voiced(sr, int(2.5 * sr), i) * (
            np.sin(2 * np.pi * 2.5 * np.arange(int(2.5 * sr)) / sr) > -0.6
        )
        parts += [gap, syllables]
    wav = write_wav(tmp_path / "s.wav", np.concatenate([*parts, np.zeros(2 * sr)]).astype(np.float32), sr)
    clips = {}
    for hop in (0.5, 0.05):
        rec = edge_ser.Recognizer(ROOT / "bundles" / "ser_emodb", "numpy")
        list(rec.stream(audio_file=wav, realtime=False, config=PipelineConfig(hop=hop)))
        clips[hop] = rec.speaker_clips
    assert clips[0.5] == 5 and clips[0.05] == clips[0.5]


def test_a_face_only_run_on_a_video_shorter_than_its_window_says_so(tmp_path, capsys):
    """face_fer on 20 images (0.8 s at 25 fps) ended '0 updates' with exit 0 and no word; it is an error now, as for a
    short audio file, and the advice given works."""
    import cv2

    from edge_ser.cli import main
    from tests.av_media import face_frames

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(20):
        cv2.imwrite(str(folder / f"{i:03d}.png"), face_frames()[i])
    face = str(ROOT / "bundles" / "face_fer")
    assert main(["run", face, "--video-file", str(folder), "--fast", "--no-console"]) == 1
    err = capsys.readouterr().err
    assert "holds 0.80 s of video, less than one 3 s window" in err and "--image-fps" in err
    advice = re.search(r"give (--window \S+(?: --hop \S+)?) or less", err).group(1).split()
    assert main(["run", face, "--video-file", str(folder), "--fast", "--no-console", *advice]) == 0
    assert re.search(r"\b[1-9]\d* updates? over 0.8 s of video", capsys.readouterr().err)


def test_a_stop_mid_sentence_keeps_the_sentence_in_the_speaker_statistics(tmp_path):
    """A run stopped (or a file ending) while someone speaks dropped the open utterance, so the speaker file lacked
    it: 9.0-10.0 s was speech, and the file was saved with 2 clips."""
    import edge_ser
    from edge_ser.audio import write_wav
    from tests._signals import voiced

    sr = 16000
    y = np.concatenate([np.zeros(sr), voiced(sr, 3 * sr), np.zeros(sr), voiced(sr, 3 * sr, 1)]).astype(
        np.float32
    )
    wav = write_wav(tmp_path / "cut.wav", y, sr)  # ends in the middle of the second sentence
    rec = edge_ser.Recognizer(ROOT / "bundles" / "ser_emodb", "numpy")
    list(rec.stream(audio_file=wav, realtime=False))
    assert rec.speaker_clips == 2
    pushed = edge_ser.Recognizer(ROOT / "bundles" / "ser_emodb", "numpy")
    session = pushed.session(sr=sr)
    session.push(y)
    assert pushed.speaker_clips == 1  # the second sentence is still going ...
    session.finish()
    assert pushed.speaker_clips == 2  # ... and joins at the end of the audio


def test_a_bad_microphone_rate_or_channel_count_is_refused_by_the_option_name(tmp_path, capsys):
    """`--mic-rate 0` beside --audio-file was named as unused and then refused as `mic_rate=0` (the dataclass
    field, not the option) once the bundle had loaded; --channels 0 the same. Both are now refused as they are
    read, with the option named, before any work."""
    from edge_ser.cli import main

    for opt in ("--mic-rate", "--channels"):
        with pytest.raises(SystemExit):
            main(
                [
                    "run",
                    str(ROOT / "bundles" / "ser_emodb"),
                    opt,
                    "0",
                    "--audio-file",
                    str(tmp_path / "a.wav"),
                ]
            )
        err = capsys.readouterr().err
        assert f"argument {opt}: 0 must be >= 1" in err and "not used" not in err


def test_options_this_run_does_not_use_are_named(tmp_path, capsys):
    """--mic / --channels beside --audio-file, --web-host without --web, --vad-db for a face-only bundle and a
    --fallback for an audio-only one were accepted and ignored without a word (av_fusion already refused a
    fallback it would never use)."""
    from edge_ser.audio import write_wav
    from edge_ser.cli import main
    from tests._signals import voiced

    wav = write_wav(tmp_path / "a.wav", voiced(16000, 32000).astype(np.float32), 16000)
    ser = str(ROOT / "bundles" / "ser_emodb")
    base = ["run", ser, "--audio-file", str(wav), "--fast", "--no-console", "--window", "1"]
    assert main([*base, "--mic", "USB", "--channels", "2", "--web-host", "0.0.0.0"]) == 0
    err = capsys.readouterr().err
    assert "note: --mic, --channels not used: the audio comes from --audio-file" in err
    assert "note: --web-host not used without --web" in err
    assert main(base) == 0 and "not used" not in capsys.readouterr().err  # nothing given in vain: no note
    # a fallback for a bundle that takes no faces is named, not refused: a service's config may name one for the
    # audio-visual bundle it ran before, and the audio-only one deployed since must still start
    assert main([*base, "--fallback", str(ROOT / "bundles" / "laq_mlp_emodb")]) == 0
    assert "--fallback not used: this bundle takes no faces" in capsys.readouterr().err
    # ... whatever it holds: one with other labels was named as unused and then refused for its labels
    assert main([*base, "--fallback", str(ROOT / "bundles" / "ser_ravdess")]) == 0
    err = capsys.readouterr().err
    assert "--fallback not used: this bundle takes no faces" in err and "error" not in err
    # camera settings for a bundle that takes no faces were accepted without a word (--video-file had its note)
    assert main([*base, "--camera", "1", "--fps", "15", "--face-every", "2"]) == 0
    assert (
        "note: --camera, --fps, --face-every not used: this bundle takes no faces" in capsys.readouterr().err
    )


def test_the_audio_fallback_of_av_cnn_learns_the_speaker_and_av_fusion_drops_a_face_that_left(tmp_path):
    """Review of the live loop: (1) av_cnn has no speaker statistics of its own, so with learn='utterances' (the
    default) no utterance was gathered and its audio-only fallback never learnt the speaker (0 clips after 30
    windows it answered); (2) av_fusion fused a face that had left a second ago from the window's earlier crops."""
    import edge_ser
    from edge_ser.audio import write_wav
    from edge_ser.live.pipeline import LivePipeline, PipelineConfig
    from tests._signals import voiced
    from tests.av_media import write_video

    sr = 16000
    gap = np.zeros(sr, np.float32)
    y = np.concatenate([voiced(sr, 2 * sr, 1), gap, voiced(sr, 2 * sr, 2), gap, gap]).astype(np.float32)
    audio = write_wav(tmp_path / "a.wav", y, sr)
    blank = write_video(tmp_path / "blank.mp4", np.full((80, 120, 160, 3), 128, np.uint8), fps=10.0)
    rec, fb = (
        edge_ser.Recognizer(ROOT / "bundles" / "av_cnn", "numpy"),
        edge_ser.Recognizer(ROOT / "bundles" / "av_fn_audio", "numpy"),
    )
    results = list(rec.stream(audio_file=audio, video_file=blank, realtime=False, fallback=fb))
    assert any(r.fallback for r in results) and fb.speaker.clips >= 2

    class Crop:  # a crop as the tracker gives it
        def __init__(self, found: bool) -> None:
            self.found, self.box = found, (0, 0, 10, 10) if found else None

    fusion_rec = edge_ser.Recognizer(ROOT / "bundles" / "av_fusion", "numpy")
    fpipe = LivePipeline(fusion_rec.bundle, fusion_rec.engine, PipelineConfig())
    assert fpipe._degrades([Crop(True), Crop(True), Crop(False)])  # the newest crop: no face in view now
    assert not fpipe._degrades([Crop(False), Crop(True)])


def test_bench_memory_growth_with_one_sample_after_the_warm_up_is_said_plainly() -> None:
    """Review: a 33.6 s run with one memory sample after the 30 s warm-up reported 'growth +0.00 MB over all 7
    samples ... the run ended before the warm-up did' (the growth of that one sample, and a wrong reason)."""
    from types import SimpleNamespace

    from edge_ser.live.bench import summarize

    stats = SimpleNamespace(speech=[True], stages={"total": [1.0]}, stream_seconds=33.6, wall_seconds=33.6,
                            cpu_seconds=3.0, updates=1, speech_updates=1, faces_found=0, faces_cropped=0,
                            fallbacks=0)  # fmt: skip
    rss = SimpleNamespace(samples=[(0.0, 138.9), (10.0, 142.0), (20.0, 145.0), (33.0, 149.1)])
    report = summarize(stats, bundle="b", engine="numpy", rss=rss)
    assert report.rss_growth_mb == pytest.approx(10.2)
    md = report.markdown()
    assert "growth +10.20 MB over all 4 samples, warm-up included: fewer than two samples came after" in md
    assert (
        "A short run: p99 over 1 update is close to the largest" in md
    )  # a review: p99 of 5 updates, unsaid
    one = summarize(stats, bundle="b", engine="numpy", rss=SimpleNamespace(samples=[(0.0, 138.9)]))
    assert "over its only sample, warm-up included" in one.markdown()  # it read "over all 1 samples"


def test_the_utterance_learning_pass_is_its_own_stage_and_the_live_bench_reports_it(tmp_path) -> None:
    """Review: the features of an utterance that joins the speaker statistics were timed into the `features` stage
    of the (silent) update that ends it, which the bench leaves out (features count on updates with speech), so its
    cost appeared nowhere; and its time started before the voice gate ran. It is now the `learn` stage."""
    from types import SimpleNamespace

    import edge_ser
    from edge_ser.audio import write_wav
    from edge_ser.live.bench import summarize
    from edge_ser.live.run import STAGES, RunStats
    from tests._signals import voiced

    sr = 16000
    gap = np.zeros(sr, np.float32)
    y = np.concatenate([voiced(sr, 2 * sr, 1), gap, gap, voiced(sr, 2 * sr, 2), gap, gap]).astype(np.float32)
    audio = write_wav(tmp_path / "a.wav", y, sr)
    rec = edge_ser.Recognizer(ROOT / "bundles" / "ser_emodb", "numpy")
    results = list(rec.stream(audio_file=audio, realtime=False))
    learnt = [r for r in results if r.times.learn > 0]
    assert len(learnt) == rec.speaker.clips == 2
    # the first ended inside the first window, learnt on its update (which classifies it); the second on a pause
    assert learnt[0].speech and learnt[0].times.features > 0
    assert not learnt[1].speech and learnt[1].times.features == 0
    assert all(r.times.total >= r.times.learn + r.times.features for r in learnt)
    stats = RunStats()
    for r in results:
        stats.add(r)
    assert "learn" in STAGES and list(stats.stages["learn"]).count(0.0) == len(results) - 2
    rss = SimpleNamespace(samples=[(0.0, 100.0)])
    report = summarize(stats, bundle="ser_emodb", engine="numpy", rss=rss)
    assert report.utterances_learnt == 2 and report.stages["learn"]["p50"] > 0
    assert "| learn |" in report.markdown() and "over the updates that ended one (2)" in report.markdown()


class _Flaky:
    """An audio source whose microphone is gone for `lost` reads after `after` reads (as a USB mic pulled out
    and put back): `healthy` False and no samples meanwhile."""

    def __init__(self, inner, after: int, lost: int) -> None:
        self.inner, self.after, self.lost, self.reads = inner, after, lost, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    @property
    def healthy(self) -> bool:
        return not (self.after <= self.reads < self.after + self.lost)

    def read(self, n, **kw):
        gone = not self.healthy
        self.reads += 1
        return np.zeros(0, np.float32) if gone else self.inner.read(n, **kw)


def test_a_lost_microphone_is_an_update_at_once_and_a_warning_at_the_end(media, monkeypatch, capsys):
    """A microphone that went away sent nothing until it was back: the page and the JSON kept the last label
    standing, and a run that ended without it did not say so."""
    import edge_ser.live.run as live_run
    from edge_ser.live.capture import CaptureSettings
    from edge_ser.live.command import closing_lines
    from edge_ser.live.pipeline import PipelineConfig
    from edge_ser.live.result import NO_AUDIO
    from edge_ser.recognizer import Recognizer

    monkeypatch.setattr(live_run, "LOST_EVERY", 0.0)
    wav, _ = media
    rec = Recognizer(ROOT / "bundles" / "ser_emodb", "numpy")
    runner = rec.runner(CaptureSettings(audio_file=wav, realtime=False), PipelineConfig(window=1.0))
    runner.audio = _Flaky(runner.audio, after=4, lost=3)
    results = list(runner.results())
    lost = [r for r in results if r.label == NO_AUDIO]
    assert len(lost) == 3 and "microphone lost: retrying" in lost[0].notes
    assert all(r.probs == () and not r.speech for r in lost)
    from edge_ser.live.outputs.console import _gate

    assert _gate(lost[0]) == "no audio"  # the console's speech field, not "silence"
    back = next(r for r in results[results.index(lost[-1]) + 1 :] if r.notes)
    assert any(n.startswith("microphone back after") for n in back.notes)
    assert runner.stats.mic_losses == 1 and not runner.stats.mic_lost_at_end

    runner = rec.runner(CaptureSettings(audio_file=wav, realtime=False), PipelineConfig(window=1.0))
    runner.audio = _Flaky(runner.audio, after=4, lost=10**9)  # never back: the run is stopped meanwhile
    stream = runner.results()
    for r in stream:
        if r.label == NO_AUDIO:
            break
    stream.close()
    assert runner.stats.mic_lost_at_end
    args = type("A", (), {"audio_file": None, "video_file": None, "fast": False, "window": 1.0, "hop": 0.5})()
    lines = [text for _, text in closing_lines(args, rec, runner, runner.stats)[0]]
    assert any(
        "the microphone was lost 1 time(s)" in t and "still lost when the run ended" in t for t in lines
    )


def test_clipped_audio_is_marked_live_as_predict_marks_it(media, tmp_path):
    """An overdriven microphone (26 % of samples at full scale) gave labels with no mark live, where `predict`
    marks such a file "[clipped ...]"."""
    from edge_ser.audio import load, write_wav
    from edge_ser.live.capture import CaptureSettings
    from edge_ser.live.command import closing_lines
    from edge_ser.live.pipeline import PipelineConfig
    from edge_ser.recognizer import Recognizer

    wav, _ = media
    y, sr = load(wav)
    loud = tmp_path / "loud.wav"
    write_wav(loud, np.clip(30 * y, -1, 1), sr)
    rec = Recognizer(ROOT / "bundles" / "ser_emodb", "numpy")
    for path, clipped in ((wav, False), (loud, True)):
        runner = rec.runner(CaptureSettings(audio_file=path, realtime=False), PipelineConfig(window=1.0))
        results = list(runner.results())
        notes = [n for r in results for n in r.notes if n.startswith("clipped:")]
        assert bool(notes) == clipped and (runner.stats.clipped_updates > 0) == clipped
        assert len(notes) <= 1 + results[-1].t // 10  # not on every update
        args = type(
            "A", (), {"audio_file": path, "video_file": None, "fast": True, "window": 1.0, "hop": 0.5}
        )()
        lines = [text for _, text in closing_lines(args, rec, runner, runner.stats)[0]]
        assert any("turn the input's gain down" in t for t in lines) == clipped


def test_fast_with_a_microphone_is_named_not_silently_dropped():
    """`run --mic X --fast` ran in real time without a word (--mic beside --audio-file had a note)."""
    import argparse

    from edge_ser.live.command import unused_options
    from edge_ser.recognizer import Recognizer

    kind = Recognizer(ROOT / "bundles" / "ser_emodb", "numpy").kind
    for mic in ("USB", None):  # a named microphone, or the default one (--mic not given)
        args = argparse.Namespace(fast=True, mic=mic, audio_file=None, video_file=None, camera=None, web=None)
        assert any(n.startswith("--fast not used: a microphone runs") for n in unused_options(args, kind))
        args.fast = False
        assert not any(n.startswith("--fast") for n in unused_options(args, kind))


def test_a_quiet_voice_is_noted_during_the_run(tmp_path):
    """Actor 01's sad clips at -42 to -56 dBFS read "silence" throughout a live run, with the advice at the end of
    the run only (and not at all when louder speech came first): a result's notes now say it after 3 s."""
    from _signals import voiced

    from edge_ser.audio import write_wav
    from edge_ser.audio.level import level_db
    from edge_ser.recognizer import Recognizer

    sr, rng = 16000, np.random.default_rng(1)
    voice = voiced(sr, 8 * sr).astype(np.float32)  # a gliding pitch under syllables: not a steady hum
    # about -52 dBFS, moving by a few dB from one syllable to the next as a voice does (a level that holds still
    # is a hum to the gate's steady-sound rule)
    steps = np.repeat(rng.uniform(-56, -48, 32), sr // 4)
    quiet = voice * (10 ** (steps / 20) / 10 ** (level_db(voice) / 20)).astype(np.float32)
    gap = (1e-4 * rng.standard_normal(2 * sr)).astype(np.float32)
    loud = voice[: 2 * sr] * np.float32(10 ** (-20 / 20) / 10 ** (level_db(voice) / 20))
    wav = write_wav(tmp_path / "quiet.wav", np.concatenate([gap, loud, gap, quiet, gap]), sr)
    rec = Recognizer(ROOT / "bundles" / "ser_emodb", "numpy")
    results = list(rec.stream(audio_file=wav, realtime=False))
    noted = [(r.t, n) for r in results for n in r.notes if n.startswith("a voice under the gate")]
    assert len(noted) == 1, noted
    t_note, note = noted[0]
    assert 9.0 <= t_note <= 12.5 and re.search(
        r"--vad-db -(55|60) \(PipelineConfig\(vad_db=-(55|60)\) in Python\)$", note
    ), noted


def test_a_new_speaker_after_a_long_silence_starts_from_the_runs_statistics():
    """A booth: visitors take turns and one visitor's statistics shaped the next one's labels (a review). With
    new_speaker_after, the first speech after that long without any brings the statistics back to the run's
    start and says so; without it, one speaker all run."""
    import edge_ser
    from edge_ser.errors import ConfigError
    from edge_ser.live.pipeline import PipelineConfig
    from tests._signals import voiced

    sr = 16000
    y = np.concatenate([voiced(sr, 3 * sr), np.zeros(7 * sr), voiced(sr, 3 * sr, 1), np.zeros(sr)])
    y = y.astype(np.float32)
    counts = {}
    for after in (None, 5.0):
        rec = edge_ser.Recognizer(ROOT / "bundles" / "ser_emodb", "numpy")
        session = rec.session(sr=sr, config=PipelineConfig(new_speaker_after=after))
        results = session.push(y) + session.finish()
        notes = [n for r in results for n in r.notes if n.startswith("new speaker")]
        counts[after] = (rec.speaker_clips, notes)
    assert counts[None] == (2, [])
    clips, notes = counts[5.0]
    assert clips == 1 and len(notes) == 1 and "s without speech (--new-speaker-after 5)" in notes[0]
    with pytest.raises(ConfigError, match="new_speaker_after"):
        PipelineConfig(new_speaker_after=1.0)


def test_a_new_speaker_starts_without_the_first_speakers_opening_sentence():
    """The run's starting statistics were taken at its first update, after the first window's earlier hops had
    already let a sentence that ended within them join: every later visitor started with the first one's opening
    sentence (a review: 11 enrolled clips came back as 12). They are taken before it now."""
    import edge_ser
    from edge_ser.live.pipeline import PipelineConfig
    from tests._signals import voiced

    sr = 16000
    parts = [voiced(sr, int(1.5 * sr)), np.zeros(8 * sr), voiced(sr, 3 * sr, 1), np.zeros(sr)]
    y = np.concatenate(parts).astype(np.float32)
    rec = edge_ser.Recognizer(ROOT / "bundles" / "ser_emodb", "numpy")
    session = rec.session(sr=sr, config=PipelineConfig(new_speaker_after=5.0))
    results = session.push(y) + session.finish()
    first = next(r for r in results if any(n.startswith("new speaker") for n in r.notes))
    assert results[0].speaker_clips == 1
    assert first.speaker_clips == 0 and rec.speaker_clips == 1


def test_a_silent_file_is_said_to_hold_no_sound_not_a_muted_microphone(tmp_path, capsys):
    """A run of an all-zeros --audio-file ended "the input is muted, or it is the wrong device (--mic ...)" (a
    review): a file's advice is about the file."""
    from edge_ser.audio import write_wav
    from edge_ser.cli import main

    quiet = write_wav(tmp_path / "zeros.wav", np.zeros(5 * 16000, np.float32), 16000)
    assert (
        main(
            [
                "run",
                str(ROOT / "bundles" / "ser_ravdess"),
                "--audio-file",
                str(quiet),
                "--fast",
                "--no-console",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "every hop was digital silence (all zeros): zeros.wav holds no sound" in err and "--mic" not in err


def test_seconds_down_rounds_down_without_binary_artefacts() -> None:
    """One rounding for both short-file notes: down to two decimals (2.9999 s is 2.99), and 0.29 s is 0.29 (the
    plain floor of 0.29 * 100 gave 0.28)."""
    from edge_ser.live.run import seconds_down

    assert [seconds_down(x) for x in (0.29, 2.3, 2.9999, 0.49994, 2.0)] == [
        "0.29",
        "2.30",
        "2.99",
        "0.49",
        "2.00",
    ]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a device that is always full)")
def test_a_run_that_fails_tells_the_live_page_why(media, monkeypatch, capsys):
    """A run that stops on an error (here the --json file's disk is full) ended the page's stream without the `end`
    event: the page showed "reconnecting..." for ever, the error on stderr only. It is now told the run ended, and
    why."""
    from edge_ser.cli import main
    from edge_ser.live.outputs.web import WebServer

    wav, _ = media
    ended: list[list[str]] = []
    end = WebServer.end

    def record(self, notes=()):
        ended.append(list(notes))
        end(self, notes)

    monkeypatch.setattr(WebServer, "end", record)
    ser = str(ROOT / "bundles" / "ser_emodb")
    args = [
        "run",
        ser,
        "--audio-file",
        str(wav),
        "--fast",
        "--no-console",
        "--json",
        "/dev/full",
        "--web",
        "0",
    ]
    assert main(args) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert len(ended) == 1 and len(ended[0]) == 1
    assert ended[0][0].startswith("error: /dev/full") and "No space left on device" in ended[0][0]


def test_speaker_options_for_a_bundle_that_learns_no_speaker_are_named(tmp_path, capsys):
    """`run bundles/laq_mlp_emodb --no-adapt` (or `--learn windows`) was accepted without a word, though the
    bundle has no speaker normalisation; `predict` and `eval` say their --adapt / --no-adapt changes nothing
    there, and run names the same options for a face-only bundle."""
    from edge_ser.audio import write_wav
    from edge_ser.cli import main

    wav = write_wav(tmp_path / "a.wav", (0.1 * np.sin(np.arange(32000) / 5)).astype(np.float32), 16000)
    run = ["run", str(ROOT / "bundles" / "laq_mlp_emodb"), "--audio-file", str(wav), "--fast", "--no-console"]
    assert main([*run, "--engine", "numpy", "--window", "1", "--no-adapt", "--learn", "windows"]) == 0
    err = capsys.readouterr().err
    assert "--learn, --no-adapt not used: this bundle has no speaker normalisation" in err
    ser = ["run", str(ROOT / "bundles" / "ser_emodb"), "--audio-file", str(wav), "--fast", "--no-console"]
    assert main([*ser, "--engine", "numpy", "--window", "1", "--no-adapt"]) == 0
    assert "not used" not in capsys.readouterr().err


def test_microphone_and_voice_gate_options_for_a_face_only_bundle_are_named(tmp_path, capsys):
    """`run bundles/face_fer` opens no microphone, but --mic, --mic-rate, --channels, --vad-voicing and
    --vad-steady were accepted without a word (--vad-db was named)."""
    import cv2

    from edge_ser.cli import main

    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), np.full((120, 160, 3), 128, np.uint8))
    run = ["run", str(ROOT / "bundles" / "face_fer"), "--video-file", str(folder), "--fast", "--no-console"]
    given = [
        "--mic",
        "USB",
        "--mic-rate",
        "48000",
        "--channels",
        "2",
        "--vad-voicing",
        "0.2",
        "--vad-steady",
        "2",
    ]
    assert main([*run, "--engine", "numpy", "--window", "1", "--image-fps", "1", *given]) == 0
    err = capsys.readouterr().err
    want = "--mic, --mic-rate, --channels, --vad-voicing, --vad-steady not used: this bundle takes faces only"
    assert want in err


def test_json_append_without_a_json_file_is_named():
    """`run --json-append` without `--json FILE` (or with `--json -`) was accepted without a word, as --web-host
    without --web was before it was named."""
    import argparse

    from edge_ser.live.command import unused_options
    from edge_ser.recognizer import Recognizer

    kind = Recognizer(ROOT / "bundles" / "ser_emodb", "numpy").kind
    base = {
        "fast": False,
        "mic": None,
        "audio_file": "a.wav",
        "video_file": None,
        "camera": None,
        "web": None,
    }
    for json_out, said in ((None, "without --json FILE"), ("-", "with --json -"), ("r.jsonl", None)):
        notes = unused_options(argparse.Namespace(**base, json=json_out, json_append=True), kind)
        named = [n for n in notes if n.startswith("--json-append not used")]
        assert (said in named[0]) if said else not named


def test_smoothing_and_image_options_that_do_nothing_are_named(tmp_path, capsys):
    """`run --majority-k 3` (smoothing ema), `--smoothing none --ema-alpha 0.2` and `--image-fps 10` without a
    --video-file were accepted without a word."""
    from edge_ser.audio import write_wav
    from edge_ser.cli import main

    wav = write_wav(tmp_path / "a.wav", (0.1 * np.sin(np.arange(32000) / 5)).astype(np.float32), 16000)
    base = ["run", str(ROOT / "bundles" / "ser_emodb"), "--audio-file", str(wav), "--fast", "--no-console"]
    base += ["--engine", "numpy", "--window", "1"]
    for extra, note in (
        (["--majority-k", "3"], "--majority-k not used with --smoothing ema"),
        (["--smoothing", "none", "--ema-alpha", "0.2"], "--ema-alpha not used with --smoothing none"),
        (["--image-fps", "10"], "--image-fps not used: this bundle takes no faces"),
        (["--smoothing", "majority", "--majority-k", "3"], None),
        (["--ema-alpha", "0.3"], None),
    ):
        assert main([*base, *extra]) == 0
        err = capsys.readouterr().err
        assert (note in err) if note else "not used" not in err


def test_an_audio_file_to_a_face_only_bundle_is_the_error_alone_without_the_fast_note(tmp_path, capsys):
    """`run bundles/face_fer --audio-file X --fast` noted that "the audio file" outruns a live camera, then failed
    because the bundle takes faces only: the error now stands alone."""
    from edge_ser.audio import write_wav
    from edge_ser.cli import main

    wav = write_wav(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000)
    face = str(ROOT / "bundles" / "face_fer")
    assert main(["run", face, "--audio-file", str(wav), "--fast", "--engine", "numpy"]) == 2
    err = capsys.readouterr().err
    assert "takes faces only" in err and "live camera cannot follow" not in err


def test_bench_live_notes_name_the_bench_not_run(tmp_path, capsys):
    """`bench --live` sets up the runner `run` does (`build`), whose notes said `edge-ser run:`."""
    from edge_ser.audio import write_wav
    from edge_ser.cli import main

    wav = write_wav(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000)
    ser = str(ROOT / "bundles" / "ser_emodb")
    argv = [
        ser,
        "--audio-file",
        str(wav),
        "--fast",
        "--mic-rate",
        "48000",
        "--engine",
        "numpy",
        "--window",
        "1",
    ]
    main(["bench", "--live", *argv])
    err = capsys.readouterr().err
    assert "edge-ser bench: note: --mic-rate not used" in err and "edge-ser run:" not in err
    main(["run", *argv, "--no-console"])
    assert "edge-ser run: note: --mic-rate not used" in capsys.readouterr().err


def test_a_narrow_band_file_is_advised_as_a_recording_not_a_microphone(tmp_path):
    """The 8 kHz note advised "a microphone or --mic-rate" for an --audio-file too, where neither applies."""
    import edge_ser
    from edge_ser.audio import write_wav
    from edge_ser.live.pipeline import PipelineConfig
    from tests._signals import voiced

    wav = write_wav(tmp_path / "8k.wav", voiced(8000, 16000).astype(np.float32), 8000)
    rec = edge_ser.Recognizer(ROOT / "bundles" / "ser_emodb", "numpy")
    config = PipelineConfig(window=1.0, hop=0.5)
    notes = [n for r in rec.stream(audio_file=wav, realtime=False, config=config) for n in r.notes]
    (note,) = [n for n in notes if "recorded at 8000 Hz" in n]
    assert "record at 16 kHz or more" in note and "--mic-rate" not in note
    pushed = rec.session(sr=8000, config=config).push(voiced(8000, 16000).astype(np.float32))
    # audio the application captures: its capture rate is the fix, named as the session's (not the CLI's --mic-rate)
    assert any("the session's sample_rate" in n for n in pushed[0].notes)
