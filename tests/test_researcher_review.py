"""Defects a researcher training on their own data found (review C): each test fails on the code before its fix."""

from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from converters.data import load_folder
from edge_ser.audio.wav import write_wav
from edge_ser.fileio import find_files, walk_files


def _wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_wav(path, np.zeros(160, dtype=np.float32), 16000)


def _caught(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [str(w.message) for w in caught]


# ------------------------------------------------------------------ 1: links to folders are followed
@pytest.fixture
def linked_tree(tmp_path):
    """data/angry/s03 (real), data/angry/s08 -> elsewhere/angry_s08 (a link), data/sad/s08 (real)."""
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    for i in range(2):
        _wav(data / "angry" / "s03" / f"a{i}.wav")
        _wav(data / "sad" / "s08" / f"s{i}.wav")
        _wav(elsewhere / "angry_s08" / f"a{i}.wav")
    os.symlink(elsewhere / "angry_s08", data / "angry" / "s08", target_is_directory=True)
    return data


def test_find_files_follows_links_to_folders(linked_tree):
    files, caught = _caught(find_files, [linked_tree], (".wav",))
    rel = [str(p.relative_to(linked_tree)) for p in files]
    assert rel == sorted(rel)
    assert "angry/s08/a0.wav" in rel and "angry/s08/a1.wav" in rel and len(rel) == 6
    assert not caught


def test_data_set_scan_follows_links_to_folders(linked_tree):
    records, _ = _caught(load_folder, linked_tree)
    by = Counter((r.label, r.speaker) for r in records)
    assert by[("angry", "s08")] == 2 and by[("angry", "s03")] == 2 and by[("sad", "s08")] == 2


def test_a_link_back_to_an_ancestor_is_skipped_with_a_warning(linked_tree):
    os.symlink(linked_tree, linked_tree / "sad" / "s08" / "loop", target_is_directory=True)
    os.symlink(linked_tree / "angry", linked_tree / "angry" / "s03" / "up", target_is_directory=True)
    files, caught = _caught(find_files, [linked_tree], (".wav",))
    assert len(files) == 6
    loop = [m for m in caught if "loop forever" in m]
    assert len(loop) == 1 and "sad/s08/loop" in loop[0] and "angry/s03/up" in loop[0]
    records, caught = _caught(load_folder, linked_tree)
    assert len(records) == 6 and any("loop forever" in m for m in caught)


def test_a_folder_reached_twice_is_listed_once(linked_tree):
    os.symlink(linked_tree / "angry" / "s03", linked_tree / "angry" / "s03_again", target_is_directory=True)
    paths, caught = _caught(walk_files, linked_tree)
    assert [p.name for p in paths].count("a0.wav") == 2  # angry/s03 and angry/s08, not s03_again
    assert any("s03_again" in m and "count twice" in m for m in caught)
    # a link that sorts before the real folder it points to: the real one is kept (the link won, and its name
    # became the speaker's)
    os.symlink(linked_tree / "angry" / "s03", linked_tree / "angry" / "a_s03", target_is_directory=True)
    paths, caught = _caught(walk_files, linked_tree)
    assert not any(p.parent.name == "a_s03" for p in paths) and any(p.parent.name == "s03" for p in paths)
    assert any("a_s03" in m for m in caught)


# ------------------------------------------------------------------ 2: what --seed does to speaker folds
def test_speaker_seed_note_says_when_the_seed_changes_no_fold():
    from converters.data.splits import group_kfold, speaker_seed_note

    distinct = [s for s, n in zip("abcde", (5, 6, 7, 8, 9), strict=True) for _ in range(n)]  # as EMO-DB
    folds = [[tuple(s.test) for s in group_kfold(distinct, k=3, seed=seed)] for seed in range(4)]
    assert all(f == folds[0] for f in folds)  # so the note must not promise other folds
    assert "does not change" in speaker_seed_note(distinct, 3)
    equal = [s for s in "abcdef" for _ in range(4)]  # as RAVDESS
    assert "the seed decides" in speaker_seed_note(equal, 3)
    mixed = [s for s, n in zip("abcd", (4, 4, 5, 6), strict=True) for _ in range(n)]
    assert "only the 2 of 4 speakers" in speaker_seed_note(mixed, 3)
    assert "validation" in speaker_seed_note(mixed, 2)


def test_train_split_line_and_help_say_what_the_seed_does(tmp_path, capsys):
    from edge_ser.cli import main

    out = tmp_path / "run"
    assert main(["train", "--data", "synthetic", "--n-per-class", "6", "--split", "speaker", "--folds", "3",
                 "--epochs", "1", "--out", str(out), "--cache", str(tmp_path / "c")]) == 0  # fmt: skip
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("[2/3] split"))
    assert "balanced by clip count" in line and "seed" in line
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "only orders speakers with equal counts" in " ".join(capsys.readouterr().out.split())


# ------------------------------------------------------------------ 3: laq's engine check and the engine's own figure
def test_laq_engine_check_counts_out_of_range_rows_and_records_the_engine_figure(
    tmp_path, capsys, monkeypatch
):
    import json

    import edge_ser.engines.base as engines_base
    from edge_ser.cli import main

    monkeypatch.setattr(engines_base, "OOD_Z", 2.0)  # some test rows beyond the clamp: the engine differs
    out = tmp_path / "run"
    args = ["laq", "--data", "synthetic", "--n-per-class", "6", "--epochs", "2", "--recipe", "qat-2"]
    assert main([*args, "--tflite", "no", "--out", str(out), "--cache", str(tmp_path / "c")]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    n_test = summary["accuracy"]["split"]["sizes"]["test"]
    assert summary["engine_checks"], "no engine ran"
    for name, check in summary["engine_checks"].items():
        assert (
            0 < check["out_of_range_rows"] < n_test
            and check["compared_rows"] + check["out_of_range_rows"] == n_test
        )
        line = next(x for x in printed.splitlines() if f"engine {name}: same class" in x)
        assert f"of the {check['compared_rows']} in-range test rows" in line
        assert f"{check['out_of_range_rows']} test row(s) out of range" in line
        assert summary["engine_test_accuracy"][name] == check["test_accuracy"]
    name = next(iter(summary["engine_checks"]))
    bundle = str(out / "bundle")
    assert main(["eval", bundle, "--data", "synthetic", "--split", "random", "--engine", name, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] == pytest.approx(summary["engine_test_accuracy"][name], abs=1e-6)
    # the device's UAR is stored too, and is what eval measures (a review: only its accuracy was)
    assert report["uar"] == pytest.approx(summary["engine_checks"][name]["test_uar"], abs=1e-6)
    # and the manifest `info` prints holds each engine's own figure beside torch's (it held torch's alone)
    assert main(["info", bundle]) == 0
    own, own_uar = summary["engine_test_accuracy"][name], summary["engine_checks"][name]["test_uar"]
    assert f"(the torch model; the bundle on its engines: {name} {own:.3f} (UAR {own_uar:.3f})" in (
        capsys.readouterr().out
    )


# ------------------------------------------------------------------ 4: a sweep does not choose the luckiest fold
def _fold_objective(point: dict) -> dict:
    """x = 1 has the single best validation point (fold 0), x = 0 the best mean over the folds."""
    val = {(0, 0): 0.80, (0, 1): 0.80, (1, 0): 0.90, (1, 1): 0.50}[(point["x"], point["fold"])]
    return {"acc": val - 0.1, "val_acc": val}


def test_sweep_chooses_a_setting_by_validation_averaged_over_folds_and_seeds(tmp_path):
    from converters.sweep import Grid, Sweep
    from converters.sweep_cli import best_line

    g = Grid({"x": [0, 1], "fold": [0, 1], "seed": [0, 1]})
    res = Sweep("f", _fold_objective, g, tmp_path, backend="serial", progress=False).run()
    line = best_line(res, "acc", "max", g.varying)
    assert 'at {"x": 0}' in line and "fold" not in line.split(" at ")[-1]
    assert "averaged over fold x seed (4 runs per setting): mean 0.8 " in line and "its mean acc: 0.7" in line
    table = res.table("acc")  # one row per setting, folds and seeds averaged
    assert table.splitlines()[0].startswith("| x | acc") and len(table.splitlines()) == 4
    one = Sweep("o", _fold_objective, Grid({"fold": [0, 1]}, fixed={"x": 1}), tmp_path, backend="serial",
                progress=False).run()  # fmt: skip
    assert "mean 0.7 (only the fold vary: one setting" in best_line(one, "acc", "max", ["fold"])


# ------------------------------------------------------------------ 5: speakers, classes and split parts with few clips
def _few_clip_folder(root: Path) -> Path:
    """angry and sad: 6 clips of each of s01-s03; calm: 1 clip; speaker s09: 1 clip (angry)."""
    for cls in ("angry", "sad"):
        for spk in ("s01", "s02", "s03"):
            for i in range(6):
                _wav(root / cls / f"{spk}_{i}.wav")
    _wav(root / "calm" / "s01_0.wav")
    _wav(root / "angry" / "s09_0.wav")
    return root


def test_data_warns_of_speakers_and_classes_with_few_clips(tmp_path, capsys):
    from edge_ser.cli import main

    assert main(["data", str(_few_clip_folder(tmp_path / "mine"))]) == 0
    err = capsys.readouterr().err
    assert "1 speaker(s) with fewer than 5 clips: s09 (1 clip)" in err
    assert "1 class(es) with fewer than 5 clips: calm (1 clip)" in err
    assert "s01" not in err.split("speaker(s)")[1].split(".")[0]


def test_small_validation_and_test_parts_are_warned_about(tmp_path, capsys):
    from converters.data.splits import Split
    from converters.heldout import FEW_CLIPS, few_clips, small_parts
    from converters.zoo_cli import _warn_small_folds

    n = FEW_CLIPS
    assert small_parts(Split(np.arange(n), np.arange(n, 2 * n), np.arange(2 * n, 3 * n))) is None
    note = small_parts(Split(np.arange(n), np.arange(n, n + 1), np.arange(n + 1, n + 4)))
    assert "validation part has 1 clip" in note and "test part has 3 clips" in note and "33 %" in note
    records, _ = _caught(load_folder, _few_clip_folder(tmp_path / "mine"))
    assert len(few_clips(records)) == 2
    speakers = sorted({r.speaker for r in records})
    _warn_small_folds(records, list(range(len(speakers))))  # zoo --split loso, before any fold runs
    err = capsys.readouterr().err
    assert f"fold {speakers.index('s09')} (speaker s09 left out): the test part has 1 clip" in err
    assert "speaker s01 left out" not in err


# ------------------------------------------------------------------ 13: a class missing from validation only
def test_a_class_missing_only_from_validation_is_not_said_to_be_unlearnable():
    from converters.data.splits import Split
    from converters.heldout import missing_classes

    y = np.array([0, 1, 1, 0, 2, 2])
    only_val = missing_classes(
        y, ("neutral", "sad", "Ekel"), Split(np.array([0, 1, 4]), np.array([2, 3]), [5])
    )
    assert only_val.startswith("no val clip of Ekel:") and "cannot learn" not in only_val
    assert "Ekel is trained on, but early stopping" in only_val
    only_train = missing_classes(
        y, ("neutral", "sad", "Ekel"), Split(np.array([0, 1]), np.array([2, 3]), [5])
    )
    assert only_train.startswith("no train clip of Ekel") and "cannot learn" in only_train
    assert "early stopping" not in only_train


# ------------------------------------------------------------------ 6-9: laq labels, eval's speakers and --adapt
@pytest.fixture(scope="module")
def ptq_run(tmp_path_factory):
    """`edge-ser laq --recipe ptq-3` on a small synthetic set (6 speakers): the run folder and what it printed."""
    import contextlib
    import io

    from edge_ser.cli import main

    tmp = tmp_path_factory.mktemp("ptq")
    out = tmp / "run"
    args = [
        "laq",
        "--data",
        "synthetic",
        "--n-per-class",
        "6",
        "--epochs",
        "2",
        "--recipe",
        "ptq-3",
        "--tflite",
    ]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([*args, "no", "--out", str(out), "--cache", str(tmp / "c"), "--threads", "1"]) == 0
    return out, printed.getvalue()


def test_laq_labels_its_result_by_the_recipe_that_ran(ptq_run):
    import json

    out, printed = ptq_run
    summary = json.loads((out / "summary.json").read_text())
    line = next(x for x in printed.splitlines() if x.startswith("[4/5]"))
    assert f"test accuracy: PTQ {summary['compressed_test_accuracy']:.3f}" in line and "QAT" not in line
    assert summary["compressed_by"] == "PTQ"
    assert summary["qat_test_accuracy"] == summary["compressed_test_accuracy"]  # the old key kept


def test_eval_split_speaker_names_the_held_out_speakers(ptq_run, tmp_path, capsys):
    import json

    from edge_ser.cli import main

    bundle = str(ptq_run[0] / "bundle")
    common = [bundle, "--data", "synthetic", "--split", "speaker", "--folds", "3", "--fold", "1"]
    assert main(["eval", *common, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    split = report["split"]
    assert split["test_speakers"] and split["val_speakers"] and split["folds"] == 3
    assert not set(split["test_speakers"]) & set(split["train_speakers"] + split["val_speakers"])
    said = (
        f"val speakers {', '.join(split['val_speakers'])}; test speakers {', '.join(split['test_speakers'])}"
    )
    assert said in report["selection"]
    assert main(["eval", *common, "--out", str(tmp_path / "rep")]) == 0
    assert said in capsys.readouterr().out and said in (tmp_path / "rep.md").read_text()
    assert json.loads((tmp_path / "rep.json").read_text())["split"]["test_speakers"] == split["test_speakers"]


def test_eval_says_adapt_does_nothing_without_speaker_normalisation(ptq_run, capsys):
    from edge_ser.cli import main

    bundle = str(ptq_run[0] / "bundle")
    for given in (["--adapt", "all"], ["--no-adapt"], []):
        assert main(["eval", bundle, "--data", "synthetic", "--split", "random", "--json", *given]) == 0
        err = capsys.readouterr().err
        assert ("has no speaker normalisation" in err) == bool(given), given


def test_two_speaker_folds_say_why_validation_has_no_speaker_of_its_own():
    from converters.heldout import speakers_line

    three = {"folds": 2, "train_speakers": ["a", "b"], "val_speakers": ["a", "b"], "test_speakers": ["c"]}
    line = speakers_line(three)
    assert "--folds 2 leaves no fold for validation speakers" in line and "too few speakers" not in line
    two = {"folds": 2, "train_speakers": ["a"], "val_speakers": ["a"], "test_speakers": ["c"]}
    assert "too few speakers for a validation speaker" in speakers_line(two)


# ------------------------------------------------------------------ 11: a data set's warning once per zoo / sweep run
def test_zoo_and_sweep_say_each_data_set_warning_once(tmp_path):
    from converters.zoo_cli import each_warning_once

    data = tmp_path / "mine"
    for cls in ("Whisper", "sad"):  # a class name that means no known emotion
        for i in range(2):
            _wav(data / cls / f"s0{i}_0.wav")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        with each_warning_once():
            for _ in range(3):  # as three zoo points, each loading the folder and exporting (catch_warnings)
                load_folder(data)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
    assert sum("name no known emotion" in str(w.message) for w in caught) == 1


# ------------------------------------------------------------------ 12: the thread count results depend on
def test_train_and_laq_record_the_torch_threads_used(ptq_run, tmp_path):
    import json

    import torch

    from edge_ser.cli import main

    out = tmp_path / "run"
    args = ["train", "--data", "synthetic", "--n-per-class", "6", "--epochs", "1", "-q"]
    assert (
        main([*args, "--out", str(out), "--cache", str(tmp_path / "c")]) == 0
    )  # no --threads: torch's choice
    threads = json.loads((out / "summary.json").read_text())["train_config"]["threads"]
    assert isinstance(threads, int) and threads == torch.get_num_threads()
    assert json.loads((ptq_run[0] / "summary.json").read_text())["threads"] == 1  # laq --threads 1


def test_image_ids_are_not_warned_of_as_speakers():
    """FER-2013 names an id per image; two of its ids repeat, so `data fer2013` warned of 28,707 speakers with
    fewer than 5 clips."""
    from types import SimpleNamespace

    from converters.heldout import few_clips

    images = [SimpleNamespace(speaker=f"Training_{i}", label="happy") for i in range(98)]
    images += [
        SimpleNamespace(speaker="Training_0", label="happy"),
        SimpleNamespace(speaker="Training_1", label="sad"),
    ]
    warned = few_clips(images)
    assert not any("speaker(s)" in w for w in warned) and any("class(es)" in w for w in warned)


def test_a_small_set_of_real_speakers_is_still_warned_of():
    """Review: the FER rule above (speakers left out when most have one clip) hid the warning for a small set of
    real speakers with 1, 1 and 3 clips."""
    from types import SimpleNamespace

    from converters.heldout import few_clips

    clips = [SimpleNamespace(speaker=s, label="happy") for s in ("01", "02", "03", "03", "03")]
    assert any("3 speaker(s) with fewer than 5 clips" in w for w in few_clips(clips))
