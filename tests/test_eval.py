"""`edge-ser eval`: a bundle's scores on a labelled data set through the device path (real WAV files, the shipped
bundles, the real CLI in a subprocess to prove torch is never imported)."""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from converters.data import SyntheticSpec, load_emodb
from converters.data import write as write_synthetic
from converters.evaluate import Selection, metrics, select
from edge_ser.cli import main
from edge_ser.engines.tflite import unavailable as tflite_unavailable
from edge_ser.errors import ConfigError, InputWarning

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "laq_mlp_emodb"  # labels: neutral happy sad angry fear disgust boredom


def test_metrics_match_a_hand_computed_confusion() -> None:
    true = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    m = metrics(true, pred, ("a", "b", "c", "d"))
    assert m.matrix.tolist() == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert m.accuracy == pytest.approx(4 / 6)
    assert m.recall == {"a": pytest.approx(2 / 3), "b": 0.5, "c": 1.0, "d": None}
    # UAR: the mean recall over the classes present (d has no file and does not count)
    assert m.uar == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert m.support == {"a": 3, "b": 2, "c": 1, "d": 0}
    empty = metrics([], [], ("a", "b"))
    assert empty.n == 0 and math.isnan(empty.accuracy) and math.isnan(empty.uar)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic data set with one class the bundle does not know (calm), 3 clips per class."""
    root = tmp_path_factory.mktemp("synth")
    labels = ("neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "boredom")
    write_synthetic(SyntheticSpec(n_per_class=3, labels=labels, n_speakers=3), root)
    return root


def _eval_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["eval", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_unknown_classes_are_counted_not_scored(synth: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _eval_json([str(BUNDLE), "--data", "synthetic", "--root", str(synth)], capsys)
    assert out["files"] == {"listed": 24, "predicted": 24, "scored": 21, "skipped": 0, "unknown_class": 3}
    assert out["unknown_classes"] == {"calm": 3}
    assert sum(map(sum, out["confusion"])) == 21 and out["labels"] == list(json.loads(
        (BUNDLE / "manifest.json").read_text())["labels"])  # fmt: skip
    assert set(out["support"].values()) == {3}
    cm = np.array(out["confusion"])
    assert out["accuracy"] == pytest.approx(np.trace(cm) / 21, abs=1e-6)
    recalls = [r for r in out["recall"].values() if r is not None]
    assert out["uar"] == pytest.approx(np.mean(recalls), abs=1e-6)
    assert out["ood"]["count"] >= 0 and 0 <= out["ood"]["fraction"] <= 1
    assert out["time"]["ms_per_clip"] > 0 and out["skipped"] == []
    # the human table states what was left out
    assert main(["eval", str(BUNDLE), "--data", "synthetic", "--root", str(synth)]) == 0
    text = capsys.readouterr().out
    assert "not scored (label not among the bundle's): calm 3" in text and "UAR" in text


def test_broken_files_are_skipped_and_counted_strict_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "synth"
    records = write_synthetic(SyntheticSpec(n_per_class=5, n_speakers=2), root)
    aiff = records[3].source  # an AIFF named .wav
    aiff.write_bytes(b"FORM\x00\x00\x00\x04AIFF" + bytes(64))
    truncated = records[20].source
    truncated.write_bytes(truncated.read_bytes()[:2000])
    with pytest.warns(InputWarning) as caught:
        out = _eval_json([str(BUNDLE), "--data", "synthetic", "--root", str(root)], capsys)
    named = " ".join(str(w.message) for w in caught)
    assert aiff.name in named and truncated.name in named
    assert out["files"]["skipped"] == 2 and out["files"]["scored"] == len(records) - 2
    assert {Path(s["file"]).name for s in out["skipped"]} == {aiff.name, truncated.name}
    assert sum(out["support"].values()) == len(records) - 2
    rc = main(["eval", str(BUNDLE), "--data", "synthetic", "--root", str(root), "--strict"])
    assert rc == 2
    err = capsys.readouterr().err
    assert aiff.name in err and "error" in err


def test_a_selection_counts_only_its_own_undecodable_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--speakers / --split speaker report the files of the selection: a broken file of another speaker was
    counted as listed and skipped ("3 listed, 1 scored, 2 skipped" for a speaker of one clip)."""
    root = tmp_path / "synth"
    records = write_synthetic(SyntheticSpec(n_per_class=4, n_speakers=3), root)
    broken = records[0]
    broken.source.write_bytes(b"garbage\n")
    others = sorted({r.speaker for r in records} - {broken.speaker})
    args = [str(BUNDLE), "--data", "synthetic", "--root", str(root)]
    with pytest.warns(InputWarning):
        out = _eval_json([*args, "--speakers", others[0]], capsys)
    n_other = sum(r.speaker == others[0] for r in records)
    assert out["files"]["skipped"] == 0 and out["skipped"] == []
    assert out["files"]["listed"] == n_other == out["files"]["predicted"]
    with pytest.warns(InputWarning):
        out = _eval_json([*args, "--speakers", broken.speaker], capsys)
    assert [Path(s["file"]).name for s in out["skipped"]] == [broken.source.name]
    assert out["files"]["listed"] == sum(r.speaker == broken.speaker for r in records)
    for fold in range(3):  # a speaker split: the broken file counts in the fold that tests its speaker only
        with pytest.warns(InputWarning):
            out = _eval_json([*args, "--split", "speaker", "--folds", "3", "--fold", str(fold)], capsys)
        tested = set(out["split"]["test_speakers"])
        assert out["files"]["skipped"] == (broken.speaker in tested)
        assert out["files"]["listed"] == sum(r.speaker in tested for r in records)
    with pytest.warns(InputWarning):  # the whole data set: every broken file
        out = _eval_json(args, capsys)
    assert out["files"]["skipped"] == 1 and out["files"]["listed"] == len(records)


def test_nothing_readable_is_an_error_not_an_empty_report(tmp_path: Path, capsys) -> None:
    for name in ("happy/s1_a.wav", "sad/s1_b.wav"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"FORM\x00\x00\x00\x04AIFF" + bytes(64))
    with pytest.warns(InputWarning):
        rc = main(["eval", str(BUNDLE), "--data", str(tmp_path)])
    assert rc == 2
    assert "none of its 2 files can be decoded" in capsys.readouterr().err


def test_cli_writes_png_json_md_and_never_imports_torch(synth: Path, tmp_path: Path) -> None:
    """The whole command in a fresh interpreter: its JSON on stdout, the files written, no torch loaded."""
    png, out = tmp_path / "cm.png", tmp_path / "res" / "eval_x"
    code = (
        "import sys\nfrom edge_ser.cli import main\n"
        f"rc = main(['eval', {str(BUNDLE)!r}, '--data', 'synthetic', '--root', {str(synth)!r}, '--json', "
        f"'--png', {str(png)!r}, '--out', {str(out)!r}, '--limit', '10'])\n"
        "print('torch' in sys.modules, rc, file=sys.stderr)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip().splitlines()[-1] == "False 0", p.stderr
    result = json.loads(p.stdout)
    assert set(result) >= {
        "accuracy",
        "uar",
        "recall",
        "confusion",
        "labels",
        "files",
        "ood",
        "time",
        "skipped",
    }
    assert result["files"]["listed"] == 10 and result["selection"] == "all; limit 10"
    for path in (png, out.with_suffix(".png")):
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    cv2 = pytest.importorskip("cv2")
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 300 and img.shape[1] > 300
    written = json.loads(out.with_suffix(".json").read_text())
    assert written["confusion"] == result["confusion"]
    assert "accuracy" in out.with_suffix(".md").read_text()


def test_selection_speakers_limit_and_splits(synth: Path) -> None:
    from converters.data import load_synthetic

    records = load_synthetic(synth)
    speakers = sorted({r.speaker for r in records})
    chosen = select(records, Selection(speakers=(speakers[0],)))
    assert chosen and {r.speaker for r in chosen} == {speakers[0]}
    with pytest.raises(ConfigError, match="not in the selection"):
        select(records, Selection(speakers=("nobody",)))
    assert len(select(records, Selection(limit=5))) == 5
    with pytest.raises(ConfigError, match="no test split"):
        select(records, Selection(split="test"))
    held = select(records, Selection(split="speaker", folds=3, fold=1))
    assert len({r.speaker for r in held}) == 1  # a speaker fold: whole speakers, nobody else
    with pytest.raises(ConfigError, match="--fold 7"):
        select(records, Selection(split="speaker", folds=3, fold=7))


def test_emodb_through_the_device_path(emodb_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _eval_json([str(BUNDLE), "--data", "emodb", "--root", str(emodb_dir), "--limit", "40"], capsys)
    assert out["files"]["scored"] == 40 and out["unknown_classes"] == {}
    assert out["accuracy"] > 1 / 7  # above chance on EMODB (these files include the bundle's training data)
    # --split random: exactly the test part the bundle's manifest says it was measured on
    manifest = json.loads((BUNDLE / "manifest.json").read_text())["accuracy"]["split"]
    held = select(load_emodb(emodb_dir), Selection(split="random", seed=manifest["seed"]))
    assert len(held) == manifest["sizes"]["test"]


def test_room_hears_every_file_in_a_synthetic_room(synth: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--room RT60[,DRR]`: the same files, each convolved with its own seeded impulse response first; scored as
    usual, the room named in the selection; the same seed gives the same report; a bad value is refused."""
    args = [str(BUNDLE), "--data", "synthetic", "--root", str(synth)]
    dry = _eval_json(args, capsys)
    wet = _eval_json([*args, "--room", "0.8,-6"], capsys)
    assert wet["files"] == dry["files"]  # every file scored, none lost to the room
    assert "synthetic room (RT60 0.8 s, DRR -6 dB" in wet["selection"]
    assert wet["confusion"] != dry["confusion"] or wet["ood"] != dry["ood"]  # the room changed what it heard
    again = _eval_json([*args, "--room", "0.8,-6"], capsys)
    assert again["confusion"] == wet["confusion"]
    for bad in ("fast", "0"):
        assert main(["eval", *args, "--room", bad]) != 0
        assert f"--room {bad!r}" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["two", "-1"])
def test_room_is_checked_before_the_data_set_is_loaded(bad: str, tmp_path: Path, capsys) -> None:
    """Review: a bad --room was refused only after the data set was loaded (a speaker note said first); now it is
    checked with the other options, so a missing data set is not even looked at."""
    args = [str(BUNDLE), "--data", str(tmp_path / "nowhere"), "--room", bad]
    assert main(["eval", *args]) == 2
    err = capsys.readouterr().err
    assert f"--room {bad!r}" in err and "note" not in err and err.count("\n") == 1


def test_parse_room_reads_rt60_and_an_optional_drr() -> None:
    from converters.reverb import parse_room

    assert parse_room("0.6") == (0.6, 0.0) and parse_room(" 0.8 , -6 ") == (0.8, -6.0)
    for bad in ("", "x", "0.6,1,2", "5", "0.6,nan", "nan", "0.6,inf", "-1"):
        with pytest.raises(ConfigError):
            parse_room(bad)


@pytest.mark.skipif(tflite_unavailable() is not None, reason="no TFLite interpreter")
def test_eval_loads_the_delegate_it_is_given(synth: Path, tmp_path: Path, capsys) -> None:
    """`--delegate` reaches the engine as in predict: a missing library is an error naming it, not a CPU run."""
    missing = tmp_path / "libmissing_delegate.so"
    args = [str(BUNDLE), "--data", "synthetic", "--root", str(synth), "--engine", "tflite", "--delegate"]
    assert main(["eval", *args, str(missing)]) == 2
    assert "libmissing_delegate.so" in capsys.readouterr().err


def test_fer2013_test_split_is_publictest_and_all_is_every_split(tmp_path: Path, capsys) -> None:
    """FER-2013 keeps its images in split folders: `--split test` scores test/ or, without one, validation/
    (PublicTest) and says so; `all` scores every split, not just train/."""
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("validation", 2)):
        for label in ("happy", "sad"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                cv2.imwrite(str(folder / f"{split}{i}.png"), rng.integers(0, 255, (48, 48), dtype=np.uint8))
    face = str(REPO / "bundles" / "face_fer")
    test = _eval_json([face, "--data", "fer2013", "--root", str(tmp_path), "--split", "test"], capsys)
    assert test["files"]["listed"] == 4 and "PublicTest images (validation/)" in test["selection"]
    every = _eval_json([face, "--data", "fer2013", "--root", str(tmp_path)], capsys)
    assert every["files"]["listed"] == 10


def test_a_face_bundle_on_fer2013_says_what_its_figure_is(tmp_path: Path, capsys) -> None:
    """Review: eval face_fer on PublicTest printed 62.2 % beside its manifest's 62.9 % without saying why (each image
    goes through the Haar search first), and av_fusion on PublicTest printed the face branch's figure, through a rule
    fitted on PublicTest faces, with no word of either."""
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    for label in ("happy", "sad"):
        folder = tmp_path / "validation" / label
        folder.mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(folder / f"PublicTest_{i}.png"), rng.integers(0, 255, (48, 48), dtype=np.uint8))
    bundles = REPO / "bundles"
    face = _eval_json(
        [str(bundles / "face_fer"), "--data", "fer2013", "--root", str(tmp_path), "--split", "test"], capsys
    )
    assert "each image goes through face_fer's Haar face search first" in face["selection"]
    assert "its manifest's 62.9 % gives the model the FER image itself" in face["selection"]
    assert "fusion rule" not in face["selection"]
    fused = _eval_json(
        [str(bundles / "av_fusion"), "--data", "fer2013", "--root", str(tmp_path), "--split", "test"], capsys
    )
    for said in (
        "images only: no voice to fuse, so every answer is the fusion bundle's face branch alone",
        "each image goes through face_fer's Haar face search first",
        "4 of 4 images are PublicTest's, on which av_fusion's fusion rule was fitted",
    ):
        assert said in fused["selection"], said
    # images have no speaker: the audio branch's speaker normalisation is not said to meet one
    assert "speaker normalisation" not in fused["selection"]


class _Terminal:
    """A stream that says it is a terminal (tqdm draws its bar only on one), keeping what is written."""

    def __init__(self, tty: bool = True) -> None:
        self.text, self.tty = "", tty

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return self.tty


def test_eval_shows_progress_on_a_terminal_only(synth: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`edge-ser eval` showed no progress (features and train do): a bar over the files on a terminal's
    stderr; none when stdout is not a terminal (a report piped or redirected) or when asked for none."""
    from converters.evaluate import evaluate
    from converters.pipeline import load_records
    from edge_ser.recognizer import Recognizer

    _, records = load_records("synthetic", synth)
    rec = Recognizer(BUNDLE, "numpy")
    for stdout_tty, progress, shown in ((True, None, True), (False, None, False), (True, False, False)):
        err = _Terminal()
        monkeypatch.setattr(sys, "stderr", err)
        monkeypatch.setattr(sys, "stdout", _Terminal(stdout_tty))
        report = evaluate(rec, records[:6], data="synthetic", selection="all", progress=progress)
        assert report.metrics.n + sum(report.unknown.values()) == 6
        assert ("eval synthetic:" in err.text and "/6 [" in err.text) == shown, (stdout_tty, progress)


def test_a_warning_during_the_bar_starts_a_line_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Terminal review: a file skipped while eval's bar was on screen printed its warning straight after the bar,
    "eval x:  25%|###  | 16/63 [...]edge-ser eval: warning: ...", and the bar went on drawing over the next line.
    The bar is cleared for the warning and drawn again below it."""
    import warnings

    from edge_ser.audio import write_wav
    from tests._signals import voiced

    for i, name in enumerate(("happy/s1_a.wav", "sad/s2_b.wav", "sad/s3_c.wav")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        write_wav(tmp_path / name, voiced(16000, 16000, i).astype(np.float32), 16000)
    write_wav(tmp_path / "happy" / "s4_short.wav", np.zeros(10, np.float32), 16000)
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdout", _Terminal())

    def shown(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = shown  # as Python prints a warning outside pytest
        assert main(["eval", str(BUNDLE), "--data", str(tmp_path)]) == 0
    before, warning, after = err.text.rpartition("edge-ser eval: warning: ")
    assert warning and "s4_short.wav" in after, repr(err.text)
    assert "/4 [" in before and before.endswith("\r"), repr(
        err.text
    )  # a bar was drawn, then cleared back to the start
    assert "/4 [" in after.split("\n", 1)[1], after  # and drawn again below the warning


def test_a_fusion_bundle_says_when_its_branch_saw_the_speakers(tmp_path: Path, capsys) -> None:
    """eval of av_fusion on RAVDESS actor 03 printed 85.7 % without a word, while its own audio branch (av_fn_audio)
    says actor 03 is one it was validated on: the fusion records its paired set, not each branch's speakers."""
    from edge_ser.audio import write_wav
    from tests._signals import voiced

    root = tmp_path / "ravdess"
    for i, emotion in enumerate(("01", "03", "05", "04")):  # neutral, happy, angry, sad
        folder = root / "Actor_03"
        folder.mkdir(parents=True, exist_ok=True)
        write_wav(
            folder / f"03-01-{emotion}-01-01-01-03.wav", voiced(16000, 32000, i).astype(np.float32), 16000
        )
    fusion = str(Path(__file__).resolve().parents[1] / "bundles" / "av_fusion")
    assert main(["eval", fusion, "--data", "ravdess", "--root", str(root), "--engine", "numpy"]) == 0
    err = capsys.readouterr().err
    assert "its audio branch: 4 of 4 files are of speakers the bundle was trained or validated on (03)" in err
    # WAVs only: the figure is the audio branch's alone, said (a review quoted it beside the fused figure)
    assert (
        "audio files only: no face to fuse, so every answer is the fusion bundle's audio branch alone" in err
    )
    assert (
        main(["eval", str(Path(fusion).parent / "av_fn_audio"), "--data", "ravdess", "--root", str(root)])
        == 0
    )
    assert "no face to fuse" not in capsys.readouterr().err  # an audio bundle: nothing to say


def test_labels_of_ones_own_are_drawn_without_question_marks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: eval --png drew 'Fröhlich' and a decomposed 'ärger' as 'Fr??hlich' and 'a??rger' (OpenCV's fonts are
    ASCII)."""
    from edge_ser.text import drawable

    assert drawable("Fröhlich") == "Frohlich" and drawable("a\u0308rger") == "arger" and drawable("怒") == "?"
    import numpy as np

    from converters.evaluate import draw_confusion_png, index_metrics

    m = index_metrics(np.array([0, 1, 1]), np.array([0, 1, 0]), ("Fröhlich", "contempt"))
    cv2 = pytest.importorskip("cv2")
    drawn: list[str] = []
    put_text = cv2.putText
    monkeypatch.setattr(
        cv2, "putText", lambda img, text, *a, **k: drawn.append(text) or put_text(img, text, *a, **k)
    )
    png = cv2.imread(str(draw_confusion_png(m, "Zoë's files", tmp_path / "c.png")))
    assert png is not None and (png < 255).any()  # a picture, with something drawn on it
    # every text drawn is one OpenCV's ASCII fonts can draw, the labels and the title folded, not "??"
    assert all(t.isascii() for t in drawn) and "?" not in "".join(drawn), drawn
    assert "Frohlich" in drawn and "contempt" in drawn and any(t.startswith("Zoe's files") for t in drawn)


def test_an_audio_bundle_on_face_images_is_refused_up_front(tmp_path, capsys):
    """`eval bundles/ser_emodb --data fer2013` warned once per JPEG that it could not decode audio."""
    import cv2

    from edge_ser.cli import main

    for split in ("train", "validation"):
        for cls in ("happy", "sad"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(2):
                cv2.imwrite(str(folder / f"{i}.png"), np.full((48, 48), 100 + i, np.uint8))
    bundle = Path(__file__).resolve().parents[1] / "bundles" / "ser_emodb"
    assert main(["eval", str(bundle), "--data", "fer2013", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "data set fer2013 holds images (.png)" in err and "takes audio" in err
    assert "cannot decode" not in err


def test_unknown_classes_joining_the_speaker_statistics_are_said(
    synth: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bundle that learns its speaker hears the unknown class's clips in each session (a device hears whatever is
    said): the report says they moved the statistics; with --adapt off, or a bundle that does not learn, it does not."""
    adapting = REPO / "bundles" / "ser_emodb"
    out = _eval_json([str(adapting), "--data", "synthetic", "--root", str(synth)], capsys)
    assert out["unknown_classes"] == {"calm": 3} and out["unknown_learnt"] is True
    assert main(["eval", str(adapting), "--data", "synthetic", "--root", str(synth)]) == 0
    assert "they joined the speaker statistics all the same" in capsys.readouterr().out
    off = _eval_json([str(adapting), "--data", "synthetic", "--root", str(synth), "--adapt", "off"], capsys)
    assert off["unknown_learnt"] is False
    assert (
        _eval_json([str(BUNDLE), "--data", "synthetic", "--root", str(synth)], capsys)["unknown_learnt"]
        is False
    )


def test_json_on_stdout_records_the_command(synth: Path, capsys, monkeypatch) -> None:
    # --out's JSON said what made it; the same report printed by --json (kept as `--json > r.json`) did not
    argv = ["eval", str(BUNDLE), "--data", "synthetic", "--root", str(synth), "--limit", "4", "--json"]
    monkeypatch.setattr(sys, "argv", ["edge-ser", *argv])
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["command"] == shlex.join(["edge-ser", *argv])


def test_split_options_that_select_nothing_are_said(synth: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `eval --fold 3` without --split speaker scored every file, its selection line "all", without a word
    base = [str(BUNDLE), "--data", "synthetic", "--root", str(synth), "--limit", "3"]
    assert main(["eval", *base, "--fold", "1", "--folds", "3", "--seed", "2"]) == 0
    err = capsys.readouterr().err
    for option in ("--fold", "--folds", "--seed"):
        assert f"note: {option} is ignored here" in err
    assert main(["eval", *base, "--split", "speaker", "--fold", "1", "--folds", "3", "--seed", "2"]) == 0
    assert "is ignored here" not in capsys.readouterr().err
    # --seed orders each speaker's files of a bundle that learns its speaker (--adapt online)
    adapting = [str(REPO / "bundles" / "ser_emodb"), *base[1:]]
    assert main(["eval", *adapting, "--seed", "2"]) == 0
    assert "is ignored here" not in capsys.readouterr().err
    assert main(["eval", *adapting, "--seed", "2", "--adapt", "off"]) == 0
    assert "note: --seed is ignored here" in capsys.readouterr().err
