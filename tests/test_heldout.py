"""Which speakers a bundle saw: a speaker split's folds and speakers go into the manifest, `edge-ser eval` says
when it scores speakers the bundle trained on (other --folds than it was made with, or the whole data set),
and a split that leaves a class out of training is said before training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from converters.data.records import Record
from converters.data.splits import Split
from converters.heldout import missing_classes, seen_note, speakers_line, split_record, untested_classes
from edge_ser.errors import ConfigError

pytest.importorskip("torch", reason="training needs the host extra (torch)")


def _records(speakers: list[str]) -> list[Record]:
    return [
        Record(Path(f"/d/angry/{s}_{i}.wav"), "angry", s, "folder", "angry") for i, s in enumerate(speakers)
    ]


def test_split_record_and_the_note_on_seen_speakers():
    split = Split(np.array([0, 1]), np.array([2]), np.array([3, 4]))
    made = split_record("speaker", 0, 1, 3, split, ["a", "a", "b", "c", "c"])
    assert made["folds"] == 3 and made["fold"] == 1 and made["sizes"] == {"train": 2, "val": 1, "test": 2}
    assert (made["train_speakers"], made["val_speakers"], made["test_speakers"]) == (["a"], ["b"], ["c"])
    assert speakers_line(made) == "; val speakers b; test speakers c"
    acc = {"dataset": "mine", "split": made}
    assert seen_note(acc, "mine", _records(["c", "c"]), split="speaker", seed=0) is None  # its test speaker
    note = seen_note(acc, "mine", _records(["b", "c"]), split="speaker", seed=0)
    assert note.startswith("1 of 2 files are of speakers the bundle was trained or validated on (b)")
    assert note.endswith("the speakers it never saw: c (--speakers c)")
    # another data set: other speaker ids say nothing; the same ids may be the same people (no clips recorded
    # to compare by content), unless both are corpora (ser_emodb on RAVDESS shares ids 03-16, not people)
    assert seen_note(acc, "other", _records(["z"]), split="all", seed=0) is None
    maybe = seen_note(acc, "other", _records(["b", "z"]), split="all", seed=0)
    assert maybe.startswith(
        "1 of 2 files have speaker ids the bundle was trained or validated on in mine (b)"
    )
    assert "if these are the same people (other is mine, or holds its recordings)" in maybe
    corpus = {"dataset": "emodb", "split": made}
    assert seen_note(corpus, "ravdess", _records(["b"]), split="all", seed=0) is None
    rand = {"dataset": "mine", "split": split_record("random", 3, 0, 5, split, ["a"] * 5)}
    assert "test_speakers" not in rand["split"] and speakers_line(rand["split"]) == ""
    assert "include clips it was trained on" in seen_note(rand, "mine", _records(["a"]), split="all", seed=0)
    assert "random test part" in seen_note(rand, "mine", _records(["a"]), split="random", seed=3)


def test_the_same_recordings_under_another_name_are_known_by_their_content(tmp_path):
    """`edge-ser eval` decided whether it scored the bundle's speakers by the data set's name: a renamed copy of
    the training folder gave 100 % UAR without a word. The split record keeps probes (size and hash) of two
    clips per seen speaker; a data set of another name holding them is said to be the bundle's."""
    import shutil

    from converters.heldout import clip_probes, probe_matches

    mine = tmp_path / "mine"
    for spk, n in (("a", 3), ("b", 2), ("c", 2)):
        for i in range(n):
            path = mine / "angry" / f"{spk}_{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f"{spk}{i}".encode() * (40 + i))
    shutil.copytree(mine, tmp_path / "copy")

    def records(folder, rename=lambda s: s):
        files = sorted((tmp_path / folder / "angry").glob("*.wav"))
        return [Record(f, "angry", rename(f.name[0]), folder, "angry") for f in files]

    split = Split(np.array([0, 1, 2]), np.array([3, 4]), np.array([5, 6]))  # a: train, b: val, c: test
    ours = records("mine")
    made = split_record("speaker", 0, 1, 3, split, [r.speaker for r in ours], records=ours)
    probes = made["clip_probes"]
    assert sorted(probes) == ["a", "b"] and len(probes["a"]) == 2 and len(probes["b"]) == 2  # not c: unseen
    assert probes == clip_probes(ours, ["a", "b"]) and len(json.dumps(probes)) < 200
    acc = {"dataset": "mine", "split": made}
    copy = records("copy", str.upper)  # its speakers renamed too: matched by the files' bytes
    assert probe_matches(probes, copy) == {"a": ["A"], "b": ["B"]}
    note = seen_note(acc, "copy", copy, split="all", seed=0)
    assert note.startswith(
        "copy holds recordings the bundle was made from (mine under another name: the same"
    )
    assert "by content, of 2 of its speakers); 5 of 7 files are of speakers the bundle was trained" in note
    assert "(A, B): not a speaker-independent figure; the speakers it never saw: c (--speakers c)" in note
    held = [r for r in copy if r.speaker == "C"]  # its test speaker alone: nothing seen
    assert seen_note(acc, "copy", held, split="all", seed=0, listed=copy) is None
    some = [r for r in copy if r.speaker == "A"][-1:]  # one clip, not a probe: found through the listing
    assert "1 of 1 files" in seen_note(acc, "copy", some, split="all", seed=0, listed=copy)
    (tmp_path / "copy" / "angry" / "a_0.wav").write_bytes(b"re-recorded")
    (tmp_path / "copy" / "angry" / "a_1.wav").write_bytes(b"re-recorded too")
    assert "(B)" in seen_note(acc, "copy", copy, split="all", seed=0)  # speaker a's probes gone: b's remain
    for f in (tmp_path / "copy" / "angry").glob("b_*"):
        f.write_bytes(b"other")
    # other files under other ids (A, B here): nothing to say
    assert seen_note(acc, "copy", copy, split="all", seed=0) is None
    # other files under the same ids (a new session of the same lab's speakers): said as a possibility
    same_ids = records("copy")
    note = seen_note(acc, "copy", same_ids, split="all", seed=0)
    assert note is not None and "speaker ids the bundle was trained or validated on in mine (a, b)" in note
    assert "none of the clips the manifest records is among these files" in note
    rand = split_record("random", 3, 0, 5, split, [r.speaker for r in ours], records=ours)
    assert sorted(rand["clip_probes"]) == ["a", "b", "c"]  # a random split trains on every speaker
    note = seen_note({"dataset": "mine", "split": rand}, "copy2", records("mine"), split="all", seed=0)
    assert "the bundle was trained on a random split of mine (seed 3), so these files include clips" in note
    many = [Record(mine / "angry" / "a_0.wav", "angry", f"s{i:03d}", "mine", "angry") for i in range(1000)]
    assert len(clip_probes(many, [r.speaker for r in many])) == 32  # an id per file: 32 spread over them


def test_malformed_clip_probes_are_left_out_not_a_crash(tmp_path):
    """A hand-edited or damaged manifest's clip_probes (no manifest check covers them) crashed edge-ser eval with
    TypeError ({'a': 5}: 'int' object is not iterable), and a string of one probe was read as its characters: the
    probes that are not '<bytes>:<16 hex>' in a list are left out; with none left, eval says what it says of a
    manifest without probes (by speaker ids)."""
    clip = tmp_path / "copy" / "a_0.wav"
    clip.parent.mkdir()
    clip.write_bytes(b"a0" * 40)
    from converters.heldout import clip_probes

    mine = [Record(clip, "angry", "a", "mine", "angry")]
    good = clip_probes(mine, ["a"])["a"][0]
    made = {"kind": "speaker", "train_speakers": ["a"], "val_speakers": []}
    copy = [Record(clip, "angry", "a", "copy", "angry")]
    for bad in (5, {"a": 5}, {"a": 1.5}, {"a": good}, {"a": [1, None, ["x"]]}, ["a"], {"a": {"x": 1}}):
        note = seen_note(
            {"dataset": "mine", "split": {**made, "clip_probes": bad}}, "copy", copy, split="all", seed=0
        )
        assert note.startswith("1 of 1 files have speaker ids the bundle was trained or validated on"), bad
    mixed = {"a": [7, good, "junk"]}  # the well-formed probe among others still finds the copy
    note = seen_note(
        {"dataset": "mine", "split": {**made, "clip_probes": mixed}}, "copy", copy, split="all", seed=0
    )
    assert note.startswith("copy holds recordings the bundle was made from")


def test_missing_classes_names_the_gaps():
    split = Split(np.array([0, 1]), np.array([2]), np.array([3]))
    y = np.array([0, 0, 1, 2])
    gap = missing_classes(y, ("neutral", "sad", "angry"), split)
    assert gap.startswith("no train clip of sad, angry; no val clip of neutral, angry:")
    assert (
        missing_classes(
            np.array([0, 1, 0, 1]), ("a", "b"), Split(np.array([0, 1]), np.array([]), np.array([2, 3]))
        )
        is None
    )


def test_a_test_part_without_some_classes_says_its_uar_is_over_fewer():
    """A test speaker who recorded one class: "test accuracy 1.000, UAR 1.000" read as a UAR over every class."""
    classes = ("neutral", "sad", "angry")
    y = np.array([0, 1, 2, 2, 2, 0, 1])
    one = untested_classes(y, classes, Split(np.array([0, 1, 2]), np.array([5, 6]), np.array([3, 4])))
    assert one.startswith("no test clip of neutral, sad: the test part holds 1 of the 3 classes")
    assert "that class's recall, the same figure as its accuracy" in one
    two = untested_classes(y, classes, Split(np.array([0, 1]), np.array([2]), np.array([3, 5])))
    assert "no test clip of sad:" in two and "mean recall over those 2 classes" in two
    assert untested_classes(y, classes, Split(np.array([0]), np.array([1]), np.array([4, 5, 6]))) is None
    assert untested_classes(y, classes, Split(np.array([0]), np.array([1]), np.array([], dtype=int))) is None


def test_train_warns_when_its_test_speaker_holds_one_class(tmp_path, capsys):
    from converters.data.synthetic import SyntheticSpec, generate
    from edge_ser.audio import write_wav
    from edge_ser.cli import main

    data = tmp_path / "mine"
    spec = SyntheticSpec(n_per_class=4, n_speakers=3, labels=("neutral", "sad", "angry"), duration=1.0)
    for i, (wave, label, speaker) in enumerate(generate(spec)):
        write_wav(data / label / f"{speaker}_{i:03d}.wav", wave, spec.sr)
    solo = SyntheticSpec(n_per_class=12, n_speakers=1, labels=("angry",), seed=7, duration=1.0)
    for i, (wave, _, _) in enumerate(generate(solo)):  # a fourth speaker, of angry clips only, the largest:
        write_wav(data / "angry" / f"solo_{i:03d}.wav", wave, spec.sr)  # the test speaker of fold 0
    args = ["train", "--data", str(data), "--split", "speaker", "--folds", "4", "--fold", "0"]
    assert main([*args, "--epochs", "2", "-q", "--out", str(tmp_path / "run"), "--no-cache"]) == 0
    err = capsys.readouterr().err
    assert "no test clip of neutral, sad: the test part holds 1 of the 3 classes" in err


def test_a_random_split_advises_no_fold_option(tmp_path, capsys):
    """A random split of a folder whose class has 2 clips warned "no val clip of ...; choose another --fold or
    --seed" and "no test clip of ...; choose another --fold or fewer --folds" right after "--fold is ignored here":
    its advice names --seed and more clips only."""
    from converters.data.synthetic import SyntheticSpec, generate
    from edge_ser.audio import write_wav
    from edge_ser.cli import main

    data = tmp_path / "mine"
    spec = SyntheticSpec(n_per_class=8, n_speakers=2, labels=("neutral", "sad"), duration=1.0)
    for i, (wave, label, speaker) in enumerate(generate(spec)):
        write_wav(data / label / f"{speaker}_{i:03d}.wav", wave, spec.sr)
    few = SyntheticSpec(n_per_class=2, n_speakers=2, labels=("angry",), seed=7, duration=1.0)
    for i, (wave, label, speaker) in enumerate(generate(few)):
        write_wav(data / label / f"{speaker}_{i:03d}.wav", wave, spec.sr)
    args = ["train", "--data", str(data), "--split", "random", "--epochs", "2", "-q", "--no-cache"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "no test clip of angry" in err and "no val clip of angry" in err
    assert "--fold" not in err and "choose another --seed, or gather more clips" in err


def test_zoo_loso_names_the_folds_whose_speaker_holds_one_class(capsys):
    from converters.zoo_cli import _warn_small_folds

    records = [
        Record(Path(f"/d/{c}/{s}_{i}.wav"), c, s, "folder", c)
        for s, classes in (
            ("a", ("sad", "angry")),
            ("b", ("sad", "angry")),
            ("c", ("angry",)),
            ("d", ("sad",)),
        )
        for c in classes
        for i in range(6)
    ]
    _warn_small_folds(records, [0, 1, 2, 3])
    err = capsys.readouterr().err
    assert "fold 2 (speaker c left out): no test clip of sad: the test part holds 1 of the 2 classes" in err
    assert "fold 3 (speaker d left out): no test clip of angry" in err
    assert "speaker a left out" not in err and "speaker b left out" not in err


def test_laq_records_its_speakers_and_eval_says_when_it_scores_them(tmp_path, capsys):
    """A bundle made on fold 0 of 3 speaker folds, evaluated with the default 5 folds: the selection holds
    speakers it trained on, which the figures used to report as held out."""
    import shutil

    from converters.data.synthetic import SyntheticSpec, generate
    from edge_ser.audio import write_wav
    from edge_ser.cli import main

    data = tmp_path / "mine"
    spec = SyntheticSpec(n_per_class=6, n_speakers=6, labels=("neutral", "sad", "angry"), duration=1.0)
    for i, (wave, label, speaker) in enumerate(generate(spec)):
        write_wav(data / label / f"{speaker}_{i:03d}.wav", wave, spec.sr)
    out = tmp_path / "run"
    args = [
        "laq",
        "--data",
        str(data),
        "--split",
        "speaker",
        "--folds",
        "3",
        "--epochs",
        "3",
        "--tflite",
        "no",
    ]
    assert main([*args, "--recipe", "sensitivity", "--out", str(out), "--cache", str(tmp_path / "c")]) == 0
    printed = capsys.readouterr().out
    made = json.loads((out / "bundle" / "manifest.json").read_text())["accuracy"]["split"]
    assert made["folds"] == 3 and len(made["test_speakers"]) == 2 and len(made["train_speakers"]) == 2
    assert f"test speakers {', '.join(made['test_speakers'])}" in printed
    sizes = made["sizes"]  # named parts: a bare "37/19/19" after the seed note read as clip counts it tied
    assert f"; train {sizes['train']} / val {sizes['val']} / test {sizes['test']} clips" in printed
    bundle = str(out / "bundle")
    assert main(["eval", bundle, "--data", str(data), "--split", "speaker", "--folds", "3"]) == 0
    assert "note:" not in capsys.readouterr().err  # its own test fold
    assert main(["eval", bundle, "--data", str(data)]) == 0
    got = capsys.readouterr()
    note = "files are of speakers the bundle was trained or validated on"
    assert (
        note in got.err and "NOTE: " in got.out and f"--speakers {','.join(made['test_speakers'])}" in got.err
    )
    shutil.copytree(data, tmp_path / "renamed")  # the same recordings under another name: known by content
    assert main(["eval", bundle, "--data", str(tmp_path / "renamed")]) == 0
    got = capsys.readouterr()
    assert "renamed holds recordings the bundle was made from (mine under another name" in got.err
    assert "not a speaker-independent figure" in got.out


@pytest.mark.parametrize("kind", ["speaker", "random"])
def test_training_and_eval_hold_out_the_same_files_when_some_are_skipped(tmp_path, kind):
    """Training skips digital silence (and clips too short or undecodable) before splitting; eval splits every
    listed file. Drawn over different lists, the folds and the random draw differed, so eval's "test part"
    held files the bundle trained on. Both now draw over every listed file."""
    from converters.data.synthetic import SyntheticSpec, generate
    from converters.evaluate import Selection, select
    from converters.pipeline import load_records, make_split, prepare
    from edge_ser.audio import write_wav

    data = tmp_path / "mine"
    spec = SyntheticSpec(n_per_class=8, n_speakers=6, labels=("neutral", "sad", "angry"), duration=1.0)
    silent = set()
    for i, (wave, label, speaker) in enumerate(generate(spec)):
        path = write_wav(data / label / f"{speaker}_{i:03d}.wav", wave * (i not in (0, 5)), spec.sr)
        silent |= {path} if i in (0, 5) else set()
    with pytest.warns(Warning):
        prep = prepare(str(data), progress=False)
    assert len(prep.records) == len(prep.listed) - 2
    for seed in range(3):
        split = make_split(prep, kind, seed=seed, fold=1, k=3)
        trained = {prep.records[i].source for i in split.test}
        _, listed = load_records(str(data))
        chosen = select(listed, Selection(split=kind, seed=seed, fold=1, folds=3))
        assert trained == {r.source for r in chosen} - silent


def test_a_bundle_given_another_name_still_knows_its_own_data_set_by_name():
    """ship_ser.py --name puts another name in accuracy.dataset: `edge-ser eval` on the bundle's own data set
    (re-encoded, so no clip probe matches) then took it for another data set whose files are other recordings and
    said nothing at 100 % UAR, where the folder's own name said the speakers were seen. The data set's own name
    (`data_name`) is kept beside the given one and counts as the same name."""
    made = {"kind": "refit", "train_speakers": ["a", "b"], "val_speakers": ["b"]}
    made["clip_probes"] = {"a": ["10:0123456789abcdef"]}  # files no longer there byte for byte
    renamed = {"dataset": "Lab 2026", "data_name": "lab", "split": made}
    note = seen_note(renamed, "lab", _records(["a", "b", "z"]), split="all", seed=0)
    assert note.startswith("2 of 3 files are of speakers the bundle was trained or validated on (a, b)")
    # another name, probes differ, the same ids: said as a possibility, not as the bundle's own data set
    other = seen_note(renamed, "other", _records(["a"]), split="all", seed=0)
    assert other is not None and "if these are the same people" in other
    malformed = seen_note({**renamed, "data_name": 5}, "5", _records(["a"]), split="all", seed=0)
    assert malformed is not None and "if these are the same people" in malformed  # data_name 5: not a name


@pytest.mark.parametrize("bad", [5, "03,08", None, {"03": 1}, 2.5, True])
def test_speaker_lists_that_are_not_lists_are_left_out_as_if_absent(bad):
    """A hand-edited manifest whose train/val/test speakers are not a list: a number crashed `edge-ser eval`
    (TypeError: not iterable), and a string such as "03,08" was read character by character, counting files of
    speakers 0, 3 and 8 as seen. Such a part is left out as if absent (as `_well_formed` leaves malformed
    clip_probes out); ids in a list that are not a string or a whole number are left out too."""
    good = {"kind": "speaker", "train_speakers": ["a"], "val_speakers": ["b"], "test_speakers": ["c"]}
    files = _records(["0", "3", "8", ",", "a", "b", "c"])
    for part in ("train_speakers", "val_speakers", "test_speakers"):
        made = {**good, part: bad}
        for data in ("mine", "other"):
            note = seen_note({"dataset": "mine", "split": made}, data, files, split="all", seed=0)
            named = {"train_speakers": "(b)", "val_speakers": "(a)", "test_speakers": "(a, b)"}[part]
            assert note is not None and named in note, note
            assert ("--speakers c" in note) == (part != "test_speakers" and data == "mine")
    mixed = {**good, "train_speakers": ["a", None, [1], 3], "test_speakers": [3.5, "c", 7]}
    note = seen_note(
        {"dataset": "mine", "split": mixed}, "mine", _records(["3", "a", "b"]), split="all", seed=0
    )
    assert note.startswith("3 of 3 files are of speakers") and note.endswith("(--speakers c,7)")


def test_a_fixed_split_bundle_is_told_its_training_images_are_in_the_files():
    # face_fer records FER-2013's own parts (Training / PublicTest); eval --data fer2013 (--split all) scored its
    # 28,709 train/ images beside PublicTest with no note, as if every image were held out
    made = {"kind": "fixed", "train": "Training", "test": "PublicTest"}
    acc = {"dataset": "fer2013", "split": made}

    def image(name: str, folder: str) -> Record:
        return Record(
            Path(f"/d/{folder}/happy/{name}.jpg"), "happy", name, "fer2013", "happy", meta={"split": folder}
        )

    files = [image("Training_1", "train"), image("Training_2", "train"), image("PublicTest_1", "validation")]
    note = seen_note(acc, "fer2013", files, split="all", seed=0)
    assert note.startswith(
        "2 of 3 files are fer2013's Training images (train/), which the bundle was trained on"
    )
    assert "--split test" in note
    assert seen_note(acc, "fer2013", files[2:], split="test", seed=0) is None  # PublicTest alone: held out


def test_the_note_names_the_unseen_speakers_a_paired_fold_bundle_records():
    # av_fn_audio (av_fusion's audio branch) records its test actors as `unseen_speakers`, not `test_speakers`:
    # eval on actor 03 said "not a speaker-independent figure" and named no speakers to score instead
    made = {"kind": "paired AV set actor fold 0", "train_speakers": ["02"], "val_speakers": ["03"]}
    acc = {"dataset": "ravdess", "split": {**made, "unseen_speakers": ["01", "10"]}}
    note = seen_note(acc, "ravdess", _records(["03"]), split="all", seed=0)
    assert note.endswith("the speakers it never saw: 01, 10 (--speakers 01,10)")
    assert seen_note(acc, "ravdess", _records(["01", "10"]), split="all", seed=0) is None


def test_the_unseen_speakers_advised_under_another_split_are_selectable(emodb_dir: Path) -> None:
    # under --split speaker --fold 1 the note advised `--speakers 01,10`, which that selection refused
    # ("--speakers 10: not in the selection") since fold 1 holds other actors: the advice names --split all
    from converters.data import load_emodb
    from converters.evaluate import Selection, select

    records = load_emodb(emodb_dir)
    made = {"kind": "paired fold", "train_speakers": ["03", "08", "09"], "val_speakers": ["10"]}
    acc = {"dataset": "emodb", "split": {**made, "unseen_speakers": ["11", "16"]}}
    fold = Selection(split="speaker", fold=1)
    chosen = select(records, fold)
    note = seen_note(acc, "emodb", chosen, split="speaker", seed=0)
    assert note.endswith("the speakers it never saw: 11, 16 (--split all --speakers 11,16)")
    with pytest.raises(ConfigError, match="not in the selection"):
        select(records, Selection(split="speaker", fold=1, speakers=("11", "16")))
    assert {r.speaker for r in select(records, Selection(speakers=("11", "16")))} == {"11", "16"}
