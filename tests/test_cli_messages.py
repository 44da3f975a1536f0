"""What the `edge-ser` command line shows a user: its own warnings as one line naming the command (not Python's
source file and line), and a usage error when no command is given."""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from pathlib import Path

import pytest

from edge_ser.cli import main

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "ser_emodb"


def _api_line(path: Path) -> str:
    """The line `predict BUNDLE ... path` should print for `path`, the only file it reads: the Python API's top 3
    labels (the speaker learnt from that file alone, as predict's default --adapt all does)."""
    from edge_ser.recognizer import Recognizer

    (r,) = Recognizer(BUNDLE).predict_files([path], learn_first=True)
    return f"  {path.name}: " + ", ".join(f"{lab} {p:.2f}" for lab, p in r.top(3))


def _result_lines(out: str) -> list[str]:
    """predict's per-file lines (not its closing `(engine: n file(s), ...)` line)."""
    return [line for line in out.splitlines() if line.startswith("  ") and not line.startswith("  (")]


def _files_counted(out: str) -> int:
    return int(re.search(r"\((?:numpy|onnxruntime|tflite)[^:]*: (\d+) file\(s\)", out).group(1))


def shown(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def test_a_skipped_file_is_one_line_without_python_internals(tmp_path: Path, capsys) -> None:
    import numpy as np

    from edge_ser.audio import write_wav

    good = write_wav(tmp_path / "good.wav", np.full(16000, 0.1, np.float32), 16000)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF")
    before = warnings.formatwarning
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = shown  # as Python prints a warning outside pytest
        assert main(["predict", str(BUNDLE), str(bad), str(good)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("edge-ser predict: warning: skipped ") and "bad.wav" in err
    assert "recognizer.py" not in err and "InputWarning" not in err
    assert warnings.formatwarning is before  # restored after the command


def test_no_command_is_a_usage_error(capsys) -> None:
    assert main([]) == 2
    assert "usage: edge-ser" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--version"]])
def test_version_still_exits_cleanly(args, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 0 and "edge-ser" in capsys.readouterr().out


def _commands() -> dict[str, argparse.ArgumentParser]:
    from edge_ser.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return dict(sub.choices)


def test_an_unknown_option_is_the_commands_error(capsys) -> None:
    """argparse leaves a command's unknown option to the top parser: `edge-ser: error` with edge-ser's usage,
    which does not say which command did not know it."""
    with pytest.raises(SystemExit) as e:
        main(["info", str(BUNDLE), "--no-such-option", "1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert "usage: edge-ser info" in err
    assert err.strip().splitlines()[-1] == "edge-ser info: error: unrecognized arguments: --no-such-option 1"
    with pytest.raises(SystemExit) as e:
        main(["--no-such-option"])
    assert (
        e.value.code == 2
        and "edge-ser: error: unrecognized arguments: --no-such-option" in capsys.readouterr().err
    )


def test_help_breaks_no_option_or_name_at_a_hyphen(monkeypatch) -> None:
    """`--speaker-file` or `synthetic-av` split over two lines of --help cannot be copied (argparse's wrap did it)."""
    monkeypatch.setenv("COLUMNS", "80")
    for name, parser in _commands().items():
        text = parser.format_help()
        assert not re.search(r"[A-Za-z0-9]-\n", text), (name, re.findall(r".*[A-Za-z0-9]-\n.*", text))


def test_every_command_and_option_says_what_it_is() -> None:
    """A summary in `edge-ser --help`, a description in `edge-ser CMD --help`, a help text for each option."""
    from edge_ser.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    summaries = {c.dest: c.help for c in sub._choices_actions}  # noqa: SLF001
    for name, parser in sub.choices.items():
        assert summaries.get(name) and parser.description, name
        for action in parser._actions:  # noqa: SLF001
            assert action.help, (name, action.option_strings or action.dest)


def test_bench_json_help_says_what_it_writes_in_each_mode() -> None:
    """Review: `bench --help` described --json as "JSON lines to this file" (run's text), true only with --live."""
    from edge_ser.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    helps = {
        n: next(a.help for a in p._actions if a.dest == "json")
        for n, p in sub.choices.items()
        if n in ("bench", "run")
    }  # noqa: SLF001
    assert (
        helps["bench"].startswith("the roofline report as one JSON document")
        and "with --live, JSON lines" in helps["bench"]
    )
    assert helps["run"].startswith("JSON lines to this file")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["predict", "--top", "0"], "--top 0"),
        (["run", "--seconds", "-1"], "--seconds -1"),
        (["run", "--vad-db", "10"], "--vad-db"),
        (["run", "--hop", "0"], "hop (--hop) 0.0 s"),
        (["run", "--ema-alpha", "5"], "--ema-alpha"),
    ],
)
def test_option_values_out_of_range_are_refused_by_their_option_name(tmp_path, args, says, capsys) -> None:
    import numpy as np

    from edge_ser.audio import write_wav

    wav = str(write_wav(tmp_path / "a.wav", np.full(16000 * 4, 0.1, np.float32), 16000))
    command, *options = args
    where = [wav] if command == "predict" else ["--audio-file", wav, "--fast", "--no-console"]
    assert main([command, str(BUNDLE), *where, *options]) == 2
    assert says in capsys.readouterr().err


def test_a_quiet_utterance_with_pauses_is_not_marked_silent(tmp_path, capsys) -> None:
    """The level `predict` judges is the loudest half second (what the live gate sees), not the clip's RMS,
    which counts the pauses: half a second of speech at -38 dBFS between 1.5 s pauses is -46.5 dBFS over the
    clip and was marked "no speech" (so were 235 of RAVDESS's 720 clips)."""
    import numpy as np

    from edge_ser.audio import write_wav
    from edge_ser.audio.level import level_db, loudest_db

    rng = np.random.default_rng(0)
    talk = (0.0126 * rng.standard_normal(8000)).astype(np.float32)  # -38 dBFS
    y = np.concatenate([np.zeros(24000, np.float32), talk, np.zeros(24000, np.float32)])
    assert level_db(y) < -45 < loudest_db(y, 16000) == pytest.approx(level_db(talk), abs=0.5)
    assert loudest_db(np.zeros(100, np.float32), 16000) == -np.inf
    tail = np.concatenate([np.zeros(16000 + 3000, np.float32), talk[:4000]])  # speech in the last 0.25 s only
    assert loudest_db(tail, 16000) > level_db(tail)  # the end of a clip is looked at, whatever its length
    clip = write_wav(tmp_path / "utterance.wav", y, 16000)
    assert main(["predict", str(BUNDLE), str(clip)]) == 0
    assert "too quiet" not in capsys.readouterr().out


def test_silence_and_out_of_range_files_are_marked(tmp_path, capsys) -> None:
    """A file with no speech still gets the model's answer, marked as such (JSON: silent, level_db); an 8 kHz file
    is marked out of range; digital silence does not join the speaker statistics of the other files."""
    import json

    import numpy as np

    from edge_ser.audio import write_wav
    from edge_ser.recognizer import Recognizer

    rng = np.random.default_rng(0)
    silence = write_wav(tmp_path / "silence.wav", np.zeros(32000, np.float32), 16000)
    quiet = write_wav(tmp_path / "quiet.wav", (0.001 * rng.standard_normal(32000)).astype(np.float32), 16000)
    tel = write_wav(tmp_path / "tel.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 8000)
    assert main(["predict", str(BUNDLE), str(silence), str(quiet), str(tel)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "one speaker" not in "\n".join(
        lines
    )  # silence and noise teach nothing: no file's speech was learnt
    assert "[no speech: digital silence]" in lines[0]
    assert "[too quiet: -60.0 dBFS at its loudest, below the live voice gate's -45 dBFS]" in lines[1]
    assert "[out of range" in lines[2] and "quiet" not in lines[2]
    # loud noise (no voice): answered, and marked so (it read "fear 1.00" with no mark)
    assert "[no speech: no voiced sound (noise, hiss or clicks)]" in lines[2]
    assert main(["predict", str(BUNDLE), str(silence), str(tel), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["silent"] is True and rows[0]["level_db"] is None  # -inf dBFS: strict JSON has no infinity
    assert rows[1]["silent"] is False and rows[1]["level_db"] == pytest.approx(-20.0, abs=0.5)
    assert rows[1]["has_voice"] is False
    # the text's marks are in the JSON too: a reader of "label" saw "happy" for digital silence, and no mark
    assert rows[0]["marks"][0] == "no speech: digital silence"
    assert "no speech: no voiced sound (noise, hiss or clicks)" in rows[1]["marks"]
    rec = Recognizer(BUNDLE)
    rec.learn_files([silence])
    assert rec.speaker_clips == 0  # nothing to learn about the speaker from digital silence
    rec.learn_files([quiet])
    assert rec.speaker_clips == 0  # nor from noise with no voice in it (clip_teaches, as --enroll decides)
    t = np.arange(32000) / 16000
    voice = write_wav(tmp_path / "voice.wav", (0.003 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), 16000)
    rec.learn_files([voice])
    assert rec.speaker_clips == 1  # a quiet voice counts: a whole recording the user chose
    assert (
        rec.predict_file(voice).has_voice is True
        and rec.predict_audio(np.zeros(16000), 16000).has_voice is False
    )


def test_providers_reach_the_engine_from_the_flag_or_the_environment(monkeypatch, capsys) -> None:
    """predict, run, bench and eval had no way to ask onnxruntime for the Jetson's GPU (CPU was hard-wired), so
    NVIDIA's onnxruntime-gpu was reachable from Python only. `--providers` (or $EDGE_SER_PROVIDERS, for a service)
    asks for them; one this onnxruntime lacks is named in a warning and the CPU runs."""
    pytest.importorskip("onnxruntime")
    from edge_ser.errors import ProviderWarning

    with pytest.warns(ProviderWarning, match="CUDAExecutionProvider"):
        assert (
            main(["bench", str(BUNDLE), "--engine", "onnxruntime", "--runs", "2", "--providers", "cuda"]) == 0
        )
    monkeypatch.setenv("EDGE_SER_PROVIDERS", "tensorrt,cuda")
    with pytest.warns(ProviderWarning, match="TensorrtExecutionProvider"):
        assert main(["bench", str(BUNDLE), "--engine", "onnxruntime", "--runs", "2"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("EDGE_SER_PROVIDERS", "gpu")
    with pytest.raises(SystemExit):
        main(["bench", str(BUNDLE), "--runs", "2"])
    err = capsys.readouterr().err
    assert "provider 'gpu' is not supported" in err and "$EDGE_SER_PROVIDERS" in err


def test_info_says_a_face_bundle_cannot_read_faces_without_opencv(monkeypatch, capsys) -> None:
    """In a venv with numpy only, info said face_fer 'can run here with: numpy' and predict then failed on the
    first image for want of OpenCV."""
    face = BUNDLE.parent / "face_fer"
    assert main(["info", str(face)]) == 0
    assert "not on images" not in capsys.readouterr().out
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if opencv-python-headless were not installed
    assert main(["info", str(face)]) == 0
    assert (
        "but not on images, videos or a camera: opencv-python-headless is not installed"
        in capsys.readouterr().out
    )
    assert main(["info", str(BUNDLE)]) == 0  # an audio bundle needs no OpenCV
    assert "not on images" not in capsys.readouterr().out


def test_newcomer_mistakes_get_messages_that_say_what_to_do(tmp_path, capsys) -> None:
    """Review (a newcomer's first hour): 'EMODB' was refused with no hint; a bad --spec file and an empty folder
    were not named; --face-every 0 did not name the flag."""
    from converters.pipeline import load_records
    from edge_ser.errors import ConfigError

    with pytest.raises(ConfigError, match="did you mean emodb"):
        load_records("emdob")
    with pytest.raises(ConfigError) as e:  # the names it lists all work as --data ("folder" did not)
        load_records("nope")
    assert "(cremad, emodb, fer2013, ravdess, savee, synthetic, tess)" in str(
        e.value
    ) and "folder," not in str(e.value)
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert main(["features", "--spec", str(bad), str(tmp_path)]) == 2
    assert f"{bad}: FeatureSpec JSON is not valid" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["features", str(tmp_path / "empty")]) == 2
    assert "no audio files (.wav" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", str(BUNDLE), "--face-every", "0"])
    assert "argument --face-every: 0 must be >= 1" in capsys.readouterr().err


def test_an_image_given_to_an_audio_bundle_is_named_as_one(tmp_path, capsys) -> None:
    """`edge-ser predict bundles/ser_emodb photo.jpg` said only libsndfile's "Format not recognised"."""
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + bytes(64))
    for adapt in ("all", "off"):  # learnt first, or read once
        with pytest.warns(Warning, match=r"photo.jpg: cannot decode audio: it is an image.*bundles/face_fer"):
            assert main(["predict", str(BUNDLE), str(photo), "--adapt", adapt]) == 2
        assert "none of the 1 file(s) could be read" in capsys.readouterr().err


def test_model_says_which_options_it_ignores(capsys) -> None:
    """`edge-ser model functionals_mlp --in-features 327` printed the 88-input model without a word."""
    assert main(["model", "functionals_mlp", "--in-features", "327"]) == 0
    assert "--in-features is ignored: functionals_mlp takes functionals inputs" in capsys.readouterr().err
    assert main(["model", "laq_mlp", "--in-features", "327"]) == 0
    assert "ignored" not in capsys.readouterr().err


def test_model_refuses_a_size_the_model_cannot_take(capsys) -> None:
    """`edge-ser model squeezenet_lms --mels 16` and `--width 8` (which the option accepted) were ValueError
    tracebacks from the model's config."""
    assert main(["model", "squeezenet_lms", "--mels", "16"]) == 2
    err = capsys.readouterr().err
    assert "error: squeezenet_lms: n_mels=16: the input must be at least 25 on each side" in err
    assert "Traceback" not in err
    with pytest.raises(SystemExit) as stop:
        main(["model", "small_cnn", "--width", "8"])
    assert stop.value.code == 2 and "--width: 8 must be in 0.125..4" in capsys.readouterr().err
    assert main(["model", "small_cnn", "--width", "4", "--mels", "16", "--frames", "16"]) == 0


def test_synth_does_not_write_into_a_folder_of_other_files(tmp_path, capsys) -> None:
    """`edge-ser synth mine/` mixed 7 synthetic clips into a folder of the user's own recordings."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "03a01Wa.wav").write_bytes(b"RIFF")
    assert main(["synth", str(mine), "--n-per-class", "1"]) == 2
    assert "holds other files and no synthetic data set" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["03a01Wa.wav"]
    assert main(["synth", str(tmp_path / "syn"), "--n-per-class", "1"]) == 0
    assert main(["synth", str(tmp_path / "syn"), "--n-per-class", "1"]) == 0  # its own folder again: fine


def test_synth_under_a_file_names_the_file(tmp_path, capsys) -> None:
    """`edge-ser synth notes.txt/syn` said only "[Errno 20] Not a directory" (a review)."""
    (tmp_path / "notes.txt").write_text("x")
    assert main(["synth", str(tmp_path / "notes.txt" / "a" / "syn"), "--n-per-class", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'notes.txt'} is a file, not a folder" in err and "Errno" not in err


def test_info_says_which_fold_and_speakers_a_speaker_split_figure_is_on(capsys) -> None:
    """Review: `info` printed 'test UAR 0.611' of a speaker split without saying it was one fold's one speaker
    (26 clips); the manifest records them."""
    from edge_ser.cli.info import _print_accuracy

    split = {"kind": "speaker", "fold": 0, "folds": 8, "test_speakers": ["spk03"], "val_speakers": ["spk08"]}
    _print_accuracy({"accuracy": {"test": 0.654, "test_uar": 0.611, "dataset": "mine", "split": split}})
    out = capsys.readouterr().out
    assert "test UAR 0.611" in out and "fold 0, test speakers spk03" in out
    _print_accuracy(
        {
            "accuracy": {
                "test": 0.7,
                "dataset": "d",
                "split": {"kind": "random", "sizes": {"train": 8, "val": 1, "test": 1}},
            }
        }
    )
    assert "sizes train 8 / val 1 / test 1" in capsys.readouterr().out  # it printed the dict's repr


def test_info_reads_test_speakers_that_are_no_list_as_absent(capsys) -> None:
    """A hand-edited manifest's `test_speakers` of "03,08" was printed character by character ("test speakers 0, 3,
    ,, 8 and 1 more") and a number crashed `edge-ser info` (not iterable): a part that is no list is as if absent
    (`edge_ser.schema.speaker_ids`, the rule `converters.heldout` reads it by); ids that are no id are left out."""
    from edge_ser.cli.info import _print_accuracy

    for bad in ("03,08", 3, None, {"03": 1}):
        split = {"kind": "speaker", "fold": 0, "test_speakers": bad}
        _print_accuracy({"accuracy": {"test": 0.7, "dataset": "d", "split": split}})
        out = capsys.readouterr().out
        assert "test UAR" not in out and "test 0.700" in out and "test speakers" not in out, out
    split = {"kind": "speaker", "fold": 1, "test_speakers": ["03", None, 8, 2.5, True]}
    _print_accuracy({"accuracy": {"test": 0.7, "dataset": "d", "split": split}})
    assert "fold 1, test speakers 03, 8)" in capsys.readouterr().out


def test_info_reads_a_split_or_accuracy_that_is_no_mapping_as_absent(capsys) -> None:
    """A hand-edited manifest whose whole `accuracy.split` (or `accuracy`) is a string or a list crashed
    `edge-ser info` ('str' object has no attribute 'get'): it is as if absent (`edge_ser.schema.sub_record`)."""
    from edge_ser.cli.info import _print_accuracy

    for bad in ("speaker fold 0", ["speaker", 0]):
        _print_accuracy({"accuracy": {"test": 0.7, "dataset": "d", "split": bad}})
        assert "test 0.700 on d (split: ?)" in capsys.readouterr().out
        _print_accuracy({"accuracy": bad})
        assert capsys.readouterr().out == ""


def test_info_prints_what_a_malformed_speaker_independent_block_holds(capsys) -> None:
    """Review: a hand-edited manifest's `accuracy.speaker_independent` that is a string or a list, or a mapping
    without `transductive` (or its `uar_std`), crashed `edge-ser info`: what is there is printed, the rest left out,
    and a block that is no mapping is named in one line."""
    from edge_ser.cli.info import _print_accuracy

    def shown(si: object) -> str:
        _print_accuracy({"accuracy": {"test": 0.7, "dataset": "d", "speaker_independent": si}})
        return capsys.readouterr().out

    for bad in ("82 %", ["transductive", 0.8]):
        out = shown(bad)
        assert "test 0.700 on d" in out and "accuracy.speaker_independent is no mapping" in out, out
    out = shown({"n_folds": 10, "online-5": {"uar": 0.7}, "online-1": "x", "source": "s.md"})
    assert "never heard (?, 10 folds): UAR after 5 of their clips 70.0 % (s.md)" in out, out
    out = shown({"transductive": {"uar": 0.8}, "over_seeds": {"seeds": 3, "transductive": {"uar": "x"}}})
    assert "UAR 80.0 % once it knows the speaker" in out and "training seeds" not in out, out
    out = shown({"transductive": "0.8", "online-20": {"uar": None}})
    assert "no UAR there" in out, out
    seeds = {
        "seeds": [0, 1],
        "transductive": {"uar": 0.8},
        "online-20": {},
        "per_seed_uar": {"0": 0.8, "1": "?"},
    }
    out = shown({"transductive": {"uar": 0.8, "uar_std": 0.05}, "over_seeds": seeds})
    assert "training seeds 0, 1 (each fold's seeds pooled): UAR 80.0 %; by seed 80.0 % ()" in out, out


def test_a_missing_file_among_those_given_is_skipped_unless_strict(tmp_path, capsys) -> None:
    """Review: `predict B ok.wav nope.wav` stopped with 'nope.wav: no such file' and classified nothing, while
    --strict's help promises a skip with a warning by default (as inside folders)."""
    import numpy as np

    from edge_ser.audio import write_wav
    from edge_ser.errors import InputWarning

    t = np.arange(24000) / 16000
    ok = write_wav(tmp_path / "ok.wav", (0.1 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), 16000)
    with pytest.warns(InputWarning, match="nope.wav"):
        assert main(["predict", str(BUNDLE), str(ok), str(tmp_path / "nope.wav")]) == 0
    out = capsys.readouterr().out
    assert _result_lines(out) == [_api_line(ok)] and _files_counted(out) == 1, out
    assert main(["predict", str(BUNDLE), str(ok), str(tmp_path / "nope.wav"), "--strict"]) == 2
    assert "nope.wav" in capsys.readouterr().err


def test_macos_resource_forks_in_a_folder_are_passed_over(tmp_path, capsys) -> None:
    """Review: predict and features read the `._take1.wav` files macOS leaves beside each recording and warned
    'not a WAV file', while data and train passed them over."""
    import warnings

    import numpy as np

    from edge_ser.audio import write_wav

    t = np.arange(24000) / 16000
    write_wav(tmp_path / "take1.wav", (0.1 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), 16000)
    (tmp_path / "._take1.wav").write_bytes(b"\x00\x05\x16\x07" + bytes(200))  # AppleDouble header
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["predict", str(BUNDLE), str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert _result_lines(out) == [_api_line(tmp_path / "take1.wav")] and _files_counted(out) == 1, out


def test_a_clipped_clip_is_marked(tmp_path, capsys) -> None:
    """Review: speech driven 50x into clipping (45 % of its samples at full scale) read 'fear 1.00' with no note."""
    import numpy as np

    from edge_ser.audio import write_wav
    from tests._signals import voiced

    y = voiced(16000, 32000, 1).astype(np.float32)
    clean = write_wav(tmp_path / "clean.wav", 0.5 * y / np.abs(y).max(), 16000)
    hot = write_wav(tmp_path / "hot.wav", np.clip(50 * y, -1, 1), 16000)
    assert main(["predict", str(BUNDLE), str(clean), str(hot)]) == 0
    lines = capsys.readouterr().out.splitlines()  # the results, then the summary and the one-speaker note
    assert "clipped" not in lines[0] and "% of its samples at full scale, distorted audio]" in lines[1]


def test_a_single_missing_file_is_named_as_missing(tmp_path, capsys) -> None:
    """Diff review: `predict B nonexist.wav` said 'no .wav/... files in nonexist.wav' after a warning, where it
    said 'no such file'."""
    assert main(["predict", str(BUNDLE), str(tmp_path / "nonexist.wav")]) == 2
    err = capsys.readouterr().err
    assert "nonexist.wav" in err and "no such file" in err and "files in" not in err


def test_a_cache_warning_is_one_line() -> None:
    """Device review: a host-profile cache that could not be written was said in Python's format, with the source
    line, while every other warning of the CLI is one line."""
    from edge_ser.cli import short_warnings
    from edge_ser.errors import CacheWarning

    fmt = short_warnings("edge-ser bench")
    assert fmt(CacheWarning("/proc/x: cannot write"), CacheWarning, "f.py", 3, "src") == (
        "edge-ser bench: warning: /proc/x: cannot write\n"
    )


def test_a_warning_naming_a_missing_file_is_one_safe_line(tmp_path, capsys) -> None:
    """Terminal review: `predict B 'gone<OSC>.wav'` printed the missing file's name raw in its warning (the
    'not regular files' one), so an escape sequence in it retitled the terminal and a newline split the
    warning in two; every other message passes names through `printable`."""
    import numpy as np

    from edge_ser.audio import write_wav

    good = write_wav(tmp_path / "good.wav", np.full(16000, 0.1, np.float32), 16000)
    gone = tmp_path / "gone\x1b]0;pwned\x07\nnext.wav"
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = shown
        assert main(["predict", str(BUNDLE), str(gone), str(good)]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "warning:" in line]
    assert lines and "gone" in lines[0] and "no such file" in lines[0], err
    assert "\x1b" not in err and "\x07" not in err and "next.wav" in lines[0], err


def test_a_file_that_needs_ffmpeg_is_skipped_when_there_is_none(tmp_path, capsys, monkeypatch) -> None:
    """Device review: `predict B x.m4a x.wav` without ffmpeg stopped the whole batch on the M4A."""
    import numpy as np

    from edge_ser.audio import write_wav

    t = np.arange(24000) / 16000
    ok = write_wav(tmp_path / "ok.wav", (0.1 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), 16000)
    (tmp_path / "phone.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(64))
    monkeypatch.setenv("EDGE_SER_FFMPEG", str(tmp_path / "no-ffmpeg"))
    from edge_ser.errors import InputWarning

    with pytest.warns(InputWarning, match=r"phone\.m4a.*ffmpeg"):
        assert main(["predict", str(BUNDLE), str(tmp_path / "phone.m4a"), str(ok)]) == 0
    out = capsys.readouterr().out
    assert _result_lines(out) == [_api_line(ok)] and _files_counted(out) == 1, out
    assert "1 unreadable file(s) skipped" in out


def test_a_ctrl_c_while_the_commands_load_is_a_stop_not_a_traceback(monkeypatch, capsys):
    """`edge-ser run`, Ctrl-C in its first half second (the host commands' modules loading): a raw traceback."""
    import edge_ser.cli as cli

    def slow_parser():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", slow_parser)
    assert cli.main(["run", "bundles/ser_emodb"]) == 130
    assert capsys.readouterr().err == "edge-ser: interrupted\n"


def test_info_prints_the_layers_flops_it_counts_not_the_manifests(tmp_path, capsys):
    """A manifest edited to say 1 FLOP for a layer (and re-sealed) was printed as it was, beside a recomputed
    total: the per-layer FLOPs now come from the graph, and a manifest that disagrees is named."""
    import json
    import shutil

    from edge_ser.bundle import manifest_sum_line

    b = tmp_path / "b"
    shutil.copytree(Path(__file__).resolve().parents[1] / "bundles" / "laq_mlp_emodb", b)
    m = json.loads((b / "manifest.json").read_text())
    true = m["layers"][0]["flops"]
    m["layers"][0]["flops"] = 1
    data = json.dumps(m).encode()
    (b / "manifest.json").write_bytes(data)
    (b / "manifest.sha256").write_bytes(manifest_sum_line(data))
    assert main(["info", str(b)]) == 0
    line = next(
        x for x in capsys.readouterr().out.splitlines() if x.strip().startswith(m["layers"][0]["name"])
    )
    assert f"{true:,} FLOPs (the manifest says 1)" in line


def test_a_float_file_beyond_full_scale_is_not_called_clipped_unless_it_is(tmp_path, capsys) -> None:
    """Review: a clean float WAV with peaks of 8.0 (used as it is, with a warning) was marked "clipped: 9 %": its
    samples between 0.95 and 1 are not flat tops. Measured against its own peak, it is clean; the same speech
    clipped at 8.0 is still marked."""
    import json

    import numpy as np
    import soundfile as sf

    from edge_ser.audio import resample
    from tests._signals import voiced

    y = voiced(16000, 32000, 1).astype(np.float32)
    loud, flat = tmp_path / "loud.wav", tmp_path / "flat.wav"
    sf.write(loud, 8 * y / np.abs(y).max(), 16000, subtype="FLOAT")
    sf.write(flat, np.clip(400 * y / np.abs(y).max(), -8, 8), 16000, subtype="FLOAT")
    with pytest.warns(Warning):
        assert main(["predict", str(BUNDLE), str(loud), str(flat), "--json", "--adapt", "off"]) == 0
    rows = {Path(r["file"]).name: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert not any(m.startswith("clipped") for m in rows["loud.wav"]["marks"])
    assert any(m.startswith("clipped") for m in rows["flat.wav"]["marks"])
    # hard-clipped PCM at 44.1 / 48 kHz peaks at ~1.2 once resampled to the model's rate: still clipped (a review
    # found the first version of this rule lost it)
    pcm = np.clip(20 * y / np.abs(y).max(), -1, 1)
    for sr in (44100, 48000):
        sf.write(tmp_path / f"pcm_{sr}.wav", resample(pcm, 16000, sr), sr, subtype="PCM_16")
    assert (
        main(["predict", str(BUNDLE), *(str(tmp_path / f"pcm_{sr}.wav") for sr in (44100, 48000)), "--json"])
        == 0
    )
    for r in map(json.loads, capsys.readouterr().out.splitlines()):
        assert any(m.startswith("clipped") for m in r["marks"]), r["file"]


def test_info_fails_a_variant_whose_model_is_not_the_bundles(tmp_path, capsys):
    """A review put av_fn_audio's model_fp32.tflite (the same shapes) into ser_emodb and re-sealed the manifest:
    info said every engine runs it and predict answered 'boredom 0.62' for onnxruntime's 'happy 0.99'. info now
    compares each engine's probabilities with the numpy engine's on sample inputs, names the one that differs and
    exits 1; the shipped bundle passes."""
    import hashlib
    import json
    import shutil

    from edge_ser.bundle import manifest_sum_line

    pytest.importorskip("ai_edge_litert", reason="the TFLite engine runs the variant")
    root = Path(__file__).resolve().parents[1] / "bundles"
    assert main(["info", str(root / "ser_emodb")]) == 0
    capsys.readouterr()
    b = tmp_path / "b"
    shutil.copytree(root / "ser_emodb", b)
    other = (root / "av_fn_audio" / "model_fp32.tflite").read_bytes()
    (b / "model_fp32.tflite").write_bytes(other)
    m = json.loads((b / "manifest.json").read_text())
    m["files"]["model_fp32.tflite"] = {"sha256": hashlib.sha256(other).hexdigest(), "bytes": len(other)}
    data = json.dumps(m).encode()
    (b / "manifest.json").write_bytes(data)
    (b / "manifest.sha256").write_bytes(manifest_sum_line(data))
    assert main(["info", str(b)]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.strip().startswith("tflite-fp32"))
    assert "cannot run this bundle: its class probabilities differ from the numpy engine's" in line
    assert "its model file is not this bundle's model" in out


def test_info_gives_face_fers_uar_and_its_caveat(capsys):
    """info printed face_fer's 'test 0.629' alone: its manifest's UAR (named `uar`) and its note that the teacher
    was selected on PublicTest were left out (a review)."""
    import json

    root = Path(__file__).resolve().parents[1] / "bundles"
    assert main(["info", str(root / "face_fer")]) == 0
    out = capsys.readouterr().out
    acc = json.loads((root / "face_fer" / "manifest.json").read_text())["accuracy"]
    assert f"accuracy: test UAR {acc['uar']:.3f}, accuracy {acc['test']:.3f} on fer2013" in out
    assert "note: the fer teacher was selected by its author on FER-2013 PublicTest" in out


def test_a_hard_clipped_file_is_marked_however_hard_it_is_clipped(tmp_path, capsys) -> None:
    """Review: EMODB speech at 22.05 kHz clipped at x10 and x30 was marked at x3 and x5 but not there (angry read as
    'fear 0.87', no mark): resampled to the model's rate its square tops overshoot past BEYOND_FULL_SCALE, so the
    share was taken against that peak. A file's share is now counted on its samples as recorded."""
    import json

    import numpy as np
    import soundfile as sf

    from edge_ser.audio import load, resample
    from edge_ser.audio.level import clipped_share
    from edge_ser.inputs.base import CLIPPED_NOTE
    from tests._signals import voiced

    y = voiced(16000, 32000, 1).astype(np.float32)
    y = resample(y / np.abs(y).max(), 16000, 22050)
    y = y + 0.1 * np.random.default_rng(0).standard_normal(y.size).astype(np.float32)  # breath and fricatives
    names = []
    for gain in (3, 10, 30):
        names.append(tmp_path / f"gain{gain}.wav")
        sf.write(names[-1], np.clip(gain * y, -1, 1), 22050, subtype="PCM_16")
    at_model_rate = load(names[-1], sr=16000)[0]
    assert np.abs(at_model_rate).max() > 1.5 and clipped_share(at_model_rate) < CLIPPED_NOTE  # the old count
    assert main(["predict", str(BUNDLE), *map(str, names), "--json", "--adapt", "off"]) == 0
    for r in map(json.loads, capsys.readouterr().out.splitlines()):
        assert r["clipped"] > CLIPPED_NOTE and any(m.startswith("clipped") for m in r["marks"]), r["file"]


@pytest.mark.parametrize("command", [["sweep", "spec.yaml"], ["zoo"]])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_max_concurrent_below_one_is_refused_by_its_option_name(command, value, capsys) -> None:
    """`--max-concurrent 0` was taken as "not given" by sweep (it ran with the spec's) and refused by zoo only
    once its data was read, in a message without the option's name; now both refuse it before any work."""
    with pytest.raises(SystemExit) as stop:
        main([*command, "--max-concurrent", value])
    assert stop.value.code == 2
    assert f"argument --max-concurrent: {value} must be >= 1" in capsys.readouterr().err


def test_a_cache_that_is_or_sits_under_a_file_is_a_usage_error(tmp_path, capsys) -> None:
    """`train --data synthetic --cache notes.txt` failed with "[Errno 20] Not a directory" naming a folder inside
    the cache, not `--cache` (a review)."""
    (tmp_path / "notes.txt").write_text("x")
    for cache, said in ((tmp_path / "notes.txt", "is a file"), (tmp_path / "notes.txt" / "c", "sits under")):
        with pytest.raises(SystemExit) as e:
            main(["train", "--data", "synthetic", "--cache", str(cache)])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "argument --cache" in err and said in err and "Errno" not in err


def test_one_helper_finds_the_file_a_folder_would_sit_under(tmp_path) -> None:
    """`--cache`, `synth`'s folder and `check_writable` each walked up to the nearest existing path on their own
    (three copies of one loop; a review): `file_above` is that walk, once."""
    from edge_ser.cli.common import file_above

    (tmp_path / "notes.txt").write_text("x")
    assert file_above(tmp_path / "notes.txt") == tmp_path / "notes.txt"
    assert file_above(tmp_path / "notes.txt" / "a" / "b") == tmp_path / "notes.txt"
    assert file_above(tmp_path / "new" / "folder") is None and file_above(tmp_path) is None
    repo = Path(__file__).resolve().parents[1]
    walks = [
        p.relative_to(repo).as_posix()
        for folder in ("converters", "edge_ser", "benchmarks")
        for p in (repo / folder).rglob("*.py")
        if "while not above.exists()" in p.read_text()
    ]
    assert walks == ["edge_ser/cli/common.py"]


def test_synth_shows_progress_on_a_terminal(tmp_path, monkeypatch) -> None:
    """`edge-ser synth --n-per-class 1000` wrote 7,000 clips (~30 s) with no progress (a review): a bar over the
    clips on a terminal's stderr, none elsewhere."""
    import io

    from converters.data.synthetic import SyntheticSpec, write

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for tty, progress, shown in ((True, True, True), (False, True, False), (True, False, False)):
        err = Terminal() if tty else io.StringIO()
        monkeypatch.setattr(sys, "stderr", err)
        write(SyntheticSpec(n_per_class=1), tmp_path / f"s{tty}{progress}", progress=progress)
        assert ("synthetic clips" in err.getvalue() and "7/7" in err.getvalue()) == shown, (tty, progress)


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", str(BUNDLE), ""],
        ["predict", str(BUNDLE), "--enroll", "", "x.wav"],
        ["predict", "", "x.wav"],
        ["info", ""],
        ["run", str(BUNDLE), "--audio-file", ""],
    ],
)
def test_an_empty_path_is_refused_not_read_as_the_working_folder(argv, tmp_path, monkeypatch, capsys) -> None:
    """`edge-ser predict B "$f"` with $f unset classified every audio file under the working folder (Path("") is
    "."), and `--enroll ""` enrolled them all as the speaker."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.wav").write_bytes(b"")
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "an empty path (an unset shell variable?)" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["predict", "run"])
def test_a_speaker_file_ending_in_a_separator_is_refused(cmd, tmp_path, capsys) -> None:
    """`--speaker-file me/` (a folder meant, not there yet) wrote a file named `me`: Path drops the slash."""
    source = ["x.wav"] if cmd == "predict" else ["--audio-file", "x.wav"]
    with pytest.raises(SystemExit) as e:
        main([cmd, str(BUNDLE), *source, "--speaker-file", f"{tmp_path}/me/"])
    assert e.value.code == 2
    assert "ends in a separator, so it names a folder: give a file name" in capsys.readouterr().err
    assert not (tmp_path / "me").exists()


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m.pop("bitplan"),
        lambda m: m.update(bitplan=None),
        lambda m: m.update(layers=None, tflite=None),
        lambda m: [r.pop(k) for r in m["layers"] for k in ("op", "params", "bits", "bytes")],
    ],
    ids=["no-bitplan", "null-bitplan", "null-layers-tflite", "layer-without-op-params-bits-bytes"],
)
def test_info_describes_a_bundle_without_its_optional_blocks(tmp_path, capsys, edit):
    """Review: `bitplan`, `layers` (and a layer's op, params, bits, bytes) and `tflite` are optional, and the
    manifest check let a bundle without them (or with null there) load, but `edge-ser info` crashed on it with a
    KeyError, AttributeError or TypeError traceback. It now prints what is there, '?' for what is not."""
    import json
    import shutil

    from edge_ser.bundle import manifest_sum_line

    b = tmp_path / "b"
    shutil.copytree(Path(__file__).resolve().parents[1] / "bundles" / "laq_mlp_emodb", b)
    m = json.loads((b / "manifest.json").read_text())
    edit(m)
    data = json.dumps(m).encode()
    (b / "manifest.json").write_bytes(data)
    (b / "manifest.sha256").write_bytes(manifest_sum_line(data))
    assert main(["info", str(b)]) == 0
    assert "bit plan (" in capsys.readouterr().out


def test_predict_json_names_the_top_and_windows_it_does_not_apply(tmp_path, capsys) -> None:
    """Review: `predict --json --top 1 --windows` printed every label and window without a word about either."""
    import json

    import numpy as np

    from edge_ser.audio import write_wav

    t = np.arange(24000) / 16000
    ok = write_wav(tmp_path / "ok.wav", (0.1 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), 16000)
    assert main(["predict", str(BUNDLE), str(ok), "--json", "--top", "1", "--windows"]) == 0
    out, err = capsys.readouterr()
    assert len(json.loads(out.splitlines()[0])["probabilities"]) > 1
    assert "edge-ser predict: note: --top and --windows do not apply to --json" in err
    assert main(["predict", str(BUNDLE), str(ok), "--json"]) == 0
    assert "not apply" not in capsys.readouterr().err
    assert main(["predict", str(BUNDLE), str(ok), "--top", "1"]) == 0
    out, err = capsys.readouterr()
    assert "not apply" not in err and _result_lines(out)[0].count(",") == 0


def test_predict_names_the_files_in_a_folder_it_does_not_read_for_their_extension(tmp_path, capsys) -> None:
    """Review: `predict FOLDER` passed over a .w64 or a .txt without a word, while the data set loaders count
    such files; hidden ones stay silent, as there (`edge_ser.fileio.unread_files`, their shared rule)."""
    import numpy as np

    from edge_ser.audio import write_wav

    t = np.arange(24000) / 16000
    write_wav(tmp_path / "take1.wav", (0.1 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), 16000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "take2.w64").write_bytes(b"riff" + bytes(100))
    (tmp_path / "notes.txt").write_text("takes\n")
    (tmp_path / ".DS_Store").write_bytes(bytes(8))
    assert main(["predict", str(BUNDLE), str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert (
        "edge-ser predict: note: 2 file(s) in the folder(s) given not read for their extension (.txt, .w64;"
        in err
    )
    (tmp_path / "notes.txt").unlink()
    (tmp_path / "sub" / "take2.w64").unlink()
    assert main(["predict", str(BUNDLE), str(tmp_path)]) == 0
    assert "not read" not in capsys.readouterr().err


@pytest.mark.parametrize("command", [["run"], ["bench", "--live"]])
def test_json_lines_to_stdout_whose_reader_left_stop_quietly(tmp_path, command) -> None:
    """`edge-ser run ... --json - | head -1`: the reader going away is a stop, as for `predict --json | head`
    (exit 0, nothing said); it was `error: <stdout>: cannot write JSON line: [Errno 32] Broken pipe`, exit 2."""
    import os
    import subprocess

    import numpy as np

    from edge_ser.audio import write_wav

    wav = write_wav(tmp_path / "clip.wav", np.full(5 * 16000, 0.1, np.float32), 16000)
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the first line
    env = {**os.environ, "PYTHONPATH": str(BUNDLE.parents[1])}
    args = [*command, str(BUNDLE), "--audio-file", str(wav), "--fast", "--no-console", "--json", "-"]
    try:
        p = subprocess.run(
            [sys.executable, "-m", "edge_ser", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=120,
        )
    finally:
        os.close(write)
    assert p.returncode == 0, p.stderr
    assert "error" not in p.stderr and "Traceback" not in p.stderr


def test_the_exit_status_the_readme_gives(tmp_path, capsys) -> None:
    """README, "Command line": 1 for a run that made no decision (it still ends with its summary), 2 for a usage
    or input error (bench --live refuses the same short file), each said in one line on stderr."""
    import numpy as np

    from edge_ser.audio import write_wav
    from edge_ser.cli import main

    short = write_wav(tmp_path / "short.wav", np.full(8000, 0.1, np.float32), 16000)
    run = ["run", str(BUNDLE), "--audio-file", str(short), "--fast", "--no-console"]
    assert main(run) == 1
    err = capsys.readouterr().err
    assert "no decision was made" in err and "0 updates over 0.5 s of audio" in err
    assert main(["bench", str(BUNDLE), "--live", "--audio-file", str(short), "--fast"]) == 2
    assert "edge-ser bench: error:" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "nothing")]) == 2
    assert "edge-ser info: error:" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # argparse's own usage error
        main(["predict", "--no-such-option"])
    assert e.value.code == 2


def test_labels_beyond_the_terminal_charset_print_escaped_not_as_a_traceback(tmp_path, monkeypatch) -> None:
    """Terminal review: a bundle whose labels are German ("Ärger", "Freude→") on a stdout that is not UTF-8 (a
    Latin-1 or ASCII locale, `PYTHONUTF8=0 LC_ALL=C`): `edge-ser info` and `predict` died in a UnicodeEncodeError
    traceback and `run` stopped with "console: cannot write". Characters the stream cannot encode print escaped."""
    import io
    import json
    import shutil

    from edge_ser.bundle import manifest_sum_line

    b = tmp_path / "b"
    shutil.copytree(BUNDLE, b)
    m = json.loads((b / "manifest.json").read_text())
    m["labels"] = ["neutral", "Freude→", "Trauer", "Ärger", "Angst", "Ekel", "Langeweile"]
    data = json.dumps(m, ensure_ascii=False).encode()
    (b / "manifest.json").write_bytes(data)
    (b / "manifest.sha256").write_bytes(manifest_sum_line(data))
    raw = io.BytesIO()
    # a C locale without UTF-8 mode: ASCII with surrogateescape, which cannot encode "->" either
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="ascii", errors="surrogateescape"))
    assert main(["info", str(b)]) == 0
    assert sys.stdout.errors == "surrogateescape"  # given back as it was
    sys.stdout.flush()
    out = raw.getvalue().decode("ascii")
    assert "Freude\\u2192" in out and "\\xc4rger" in out, out


def test_info_says_when_an_online_figure_is_after_fewer_clips_than_it_names(capsys) -> None:
    """Review: a bundle of a folder whose held-out speakers have 16 clips printed "after 20 of their clips" of a
    figure made after all 16; the manifest's note (ship_ser.py `nested_figures`) is printed with it."""
    from edge_ser.cli.info import _print_accuracy

    note = "online-N of a held-out speaker with fewer than N clips is after all of their clips, not N: online-20: a (16 clips)"
    si = {"transductive": {"uar": 0.8}, "online-20": {"uar": 0.7}, "online_short": note, "source": "s.md"}
    _print_accuracy({"accuracy": {"dataset": "d", "speaker_independent": si}})
    out = capsys.readouterr().out
    assert "after 20 of their clips 70.0 % (s.md)" in out and f"  {note}\n" in out, out
    _print_accuracy({"accuracy": {"dataset": "d", "speaker_independent": {**si, "online_short": ["x"]}}})
    assert "fewer than N" not in capsys.readouterr().out  # a hand-edited note that is no text: left out
