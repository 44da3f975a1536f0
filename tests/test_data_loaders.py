"""Data set loaders: the real corpora when present (skipped otherwise) and generated trees for the rest."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from converters.data import (
    LABELS,
    LOADERS,
    DatasetWarning,
    Record,
    class_order,
    default_data_root,
    find_dataset,
    label_index,
    load_cremad,
    load_dataset,
    load_emodb,
    load_fer2013,
    load_folder,
    load_ravdess,
    load_savee,
    load_tess,
    summarize,
    to_label,
)
from converters.data import labels as L
from edge_ser.audio.wav import write_wav
from edge_ser.errors import ConfigError, DatasetError

EMODB_COUNTS = {"W": 127, "L": 81, "E": 46, "A": 69, "F": 71, "T": 62, "N": 79}  # emodb/README.md
EMODB_SPEAKERS = ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"]
FER_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
# fer2013/README.md: train = the full Training split (28,709); validation = full PublicTest (3,589),
# whose per-class counts are those of the FER-2013 release.
FER_TRAIN = {  # the full FER-2013 "Training" split (28,709 images; ../shared/datasets/fer2013/README.md)
    "angry": 3995,
    "disgust": 436,
    "fear": 4097,
    "happy": 7215,
    "neutral": 4965,
    "sad": 4830,
    "surprise": 3171,
}
FER_VALIDATION = {
    "angry": 467,
    "disgust": 56,
    "fear": 496,
    "happy": 895,
    "neutral": 607,
    "sad": 653,
    "surprise": 415,
}


def _wav(path: Path) -> Path:
    """A tiny valid WAV file (10 ms of silence)."""
    return write_wav(path, np.zeros(160, dtype=np.float32), 16000)


def _load(loader, *args, **kwargs) -> tuple[list[Record], list[str]]:
    """Run a loader, returning its records and the texts of the DatasetWarnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = loader(*args, **kwargs)
    return records, [str(w.message) for w in caught if issubclass(w.category, DatasetWarning)]


def _sorted(records: list[Record]) -> bool:
    return [str(r.source) for r in records] == sorted(str(r.source) for r in records)


# ------------------------------------------------------------------------------------------- labels
def test_label_mappings_land_in_the_shared_label_set():
    assert LABELS == ("neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise", "boredom")
    for mapping in (L.EMODB, L.RAVDESS, L.TESS, L.SAVEE, L.CREMAD, L.FER2013, L.ALIASES):
        assert set(mapping.values()) <= set(LABELS)
    assert L.EMODB["W"] == "angry" and L.EMODB["L"] == "boredom" and L.EMODB["T"] == "sad"
    assert L.RAVDESS["02"] == "calm" and L.RAVDESS["08"] == "surprise" and L.TESS["ps"] == "surprise"
    assert L.SAVEE["sa"] == "sad" and L.SAVEE["su"] == "surprise" and L.CREMAD["FEA"] == "fear"
    assert to_label("Anger") == "angry" and to_label("SADNESS") == "sad" and to_label("whisper") is None


def test_class_names_of_national_corpora_map_in_either_unicode_form() -> None:
    """German (EMODB's own words), French, Italian and Spanish class names map; a folder named on macOS (NFD:
    A + combining diaeresis) means what the composed name does."""
    import unicodedata

    words = {"Ärger": "angry", "Wut": "angry", "Langeweile": "boredom", "Ekel": "disgust", "Angst": "fear"}
    words |= {"Freude": "happy", "Trauer": "sad", "tristesse": "sad", "paura": "fear", "asco": "disgust"}
    words |= {"dégoût": "disgust", "Überraschung": "surprise", "Ruhe": "calm", "neutre": "neutral"}
    for word, label in words.items():
        assert to_label(word) == label, word
        assert to_label(unicodedata.normalize("NFD", word)) == label, f"{word} (NFD)"
    assert to_label("Glücksspiel") is None


def test_class_order_follows_labels_then_extras():
    assert class_order(["sad", "angry", "neutral", "sad"]) == ("neutral", "sad", "angry")
    assert class_order(["zzz", "happy", "aaa"]) == ("happy", "aaa", "zzz")
    assert label_index(["boredom", "neutral"]) == {"neutral": 0, "boredom": 1}


def test_record_is_hashable_and_summarized(tmp_path):
    a = Record(tmp_path / "a.wav", "sad", "s1", "x", "T", meta={"b": 2, "a": "1"})
    b = Record(str(tmp_path / "a.wav"), "sad", "s1", "x", "T", meta=(("a", "1"), ("b", "2")))
    assert a == b and hash(a) == hash(b) and a.get("b") == "2" and a.get("zz") is None
    assert isinstance(a.source, Path)
    c = Record(tmp_path / "c.wav", "angry", "s2", "x", "W")
    s = summarize([a, c, b])
    assert s["n"] == 3 and s["labels"] == {"sad": 2, "angry": 1} and s["speakers"] == {"s1": 2, "s2": 1}
    json.dumps(s)


# -------------------------------------------------------------------------------------- real corpora
@pytest.mark.data
def test_emodb_real(emodb_dir):
    for root in (emodb_dir, emodb_dir.parent):  # emodb/wav or emodb/
        records, warned = _load(load_emodb, root)
        assert len(records) == 535 and not warned
    assert _sorted(records)
    assert sorted({r.speaker for r in records}) == EMODB_SPEAKERS
    assert Counter(r.native_label for r in records) == EMODB_COUNTS
    assert Counter(r.label for r in records) == {L.EMODB[k]: n for k, n in EMODB_COUNTS.items()}
    assert all(r.dataset == "emodb" and r.source.suffix == ".wav" and r.video is None for r in records)
    first = records[0]
    assert first.source.name == "03a01Fa.wav" and first.label == "happy" and first.speaker == "03"
    assert load_dataset("emodb", emodb_dir) == records


@pytest.mark.data
def test_ravdess_real(datasets):
    root = datasets / "ravdess_speech"
    if not root.is_dir():
        pytest.skip(f"RAVDESS speech not found at {root}")
    records, warned = _load(load_ravdess, root)
    assert len(records) == 720 and not warned and _sorted(records)
    assert sorted({r.speaker for r in records}) == [f"{i:02d}" for i in range(1, 13)]
    assert Counter(r.speaker for r in records) == {f"{i:02d}": 60 for i in range(1, 13)}
    counts = Counter(r.label for r in records)
    assert set(counts) == set(L.RAVDESS.values()) and len(counts) == 8
    assert counts == {name: 48 if name == "neutral" else 96 for name in L.RAVDESS.values()}
    assert {r.get("modality") for r in records} == {"audio"}
    assert Counter(r.get("intensity") for r in records) == {"normal": 48 + 7 * 48, "strong": 7 * 48}


@pytest.mark.data
def test_fer2013_real(datasets):
    root = datasets / "fer2013"
    if not root.is_dir():
        pytest.skip(f"FER-2013 not found at {root}")
    train, warned = _load(load_fer2013, root, split="train")
    assert not warned and Counter(r.label for r in train) == FER_TRAIN and len(train) == 28709
    validation = load_fer2013(root, split="validation")
    assert len(validation) == 3589 and Counter(r.label for r in validation) == FER_VALIDATION
    r = train[0]
    assert r.image == r.source and r.source.suffix == ".jpg" and r.speaker == r.source.stem
    assert r.get("split") == "train" and r.dataset == "fer2013"
    both = load_fer2013(root, split=None)
    assert len(both) == 28709 + 3589 and {x.get("split") for x in both} == {"train", "validation"}
    with pytest.raises(DatasetError, match="found splits"):
        load_fer2013(root, split="test")
    with pytest.raises(ConfigError):
        load_fer2013(root, split="PublicTest")


def test_data_root_and_find_dataset(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_SER_DATA", str(tmp_path))
    assert default_data_root() == tmp_path
    with pytest.raises(DatasetError, match="EDGE_SER_DATA=.*emodb"):
        find_dataset("emodb")
    (tmp_path / "emodb").mkdir()
    assert find_dataset("emodb") == tmp_path / "emodb"
    with pytest.raises(DatasetError, match="no valid files"):
        load_dataset("emodb")
    with pytest.raises(DatasetError, match="--root"):
        find_dataset("folder")
    with pytest.raises(ConfigError, match="unknown data set"):
        find_dataset("timit")
    with pytest.raises(ConfigError, match="unknown data set"):
        load_dataset("timit", tmp_path)
    assert set(LOADERS) >= {"emodb", "ravdess", "tess", "savee", "cremad", "fer2013", "folder", "synthetic"}


def test_dataset_errors_offer_root_only_where_a_command_has_one(monkeypatch, tmp_path: Path) -> None:
    """Most benchmark scripts have no --root: the message leads with EDGE_SER_DATA, which always works."""
    monkeypatch.setattr("converters.data.loaders.default_data_root", lambda: None)
    errors = []
    for call in (lambda: find_dataset("emodb"), lambda: load_emodb(tmp_path / "nowhere")):
        with pytest.raises(DatasetError) as err:
            call()
        errors.append(str(err.value))
    for message in errors:
        assert "set EDGE_SER_DATA to the folder that holds emodb/" in message
        assert message.endswith("(or pass the data set folder with --root where the command has one)")


def test_missing_root_names_the_path_and_the_env_var(tmp_path):
    missing = tmp_path / "nowhere"
    for loader in (load_emodb, load_ravdess, load_tess, load_savee, load_cremad, load_fer2013):
        with pytest.raises(DatasetError, match="EDGE_SER_DATA") as err:
            loader(missing)
        assert str(missing) in str(err.value)
    with pytest.raises(DatasetError, match="does not exist") as err:
        load_folder(missing)
    assert "EDGE_SER_DATA" not in str(err.value)
    (tmp_path / "file.wav").write_bytes(b"")
    with pytest.raises(DatasetError, match="not a folder"):
        load_emodb(tmp_path / "file.wav")


@pytest.mark.parametrize(
    "loader", [load_emodb, load_ravdess, load_tess, load_savee, load_cremad, load_folder]
)
def test_empty_folder_raises(loader, tmp_path):
    (tmp_path / "README.md").write_text("nothing here")
    with pytest.raises(DatasetError, match="no valid files"):
        loader(tmp_path)


# ------------------------------------------------------------------------------------ generated trees
def test_emodb_generated_skips_bad_names(tmp_path):
    wav = tmp_path / "emodb" / "wav"
    for name in ("03a01Fa.wav", "16b10Wb.wav", "08a02Lc.wav"):
        _wav(wav / name)
    for bad in ("03a01Xa.wav", "99a01Fa.wav", "notes.wav"):
        _wav(wav / bad)
    records, warned = _load(load_emodb, tmp_path / "emodb")
    assert [r.label for r in records] == ["happy", "boredom", "angry"]
    assert [r.speaker for r in records] == ["03", "08", "16"]
    assert len(warned) == 1 and "skipped 3 file" in warned[0] and "99a01Fa.wav" in warned[0]


def test_ravdess_generated_audio_video_and_flat(tmp_path):
    _wav(tmp_path / "Actor_03" / "03-01-05-02-01-02-03.wav")
    _wav(tmp_path / "Actor_03" / "03-02-03-01-01-01-03.wav")  # song
    (tmp_path / "Actor_03" / "01-01-06-01-02-01-03.mp4").write_bytes(b"\0")  # audio-video
    (tmp_path / "Actor_03" / "02-01-02-01-02-01-03.mp4").write_bytes(b"\0")  # video only
    _wav(tmp_path / "03-01-08-01-01-01-24.wav")  # flat layout
    for bad in (
        "Actor_03/03-01-05-01-01-01-04.wav",  # actor does not match its folder
        "Actor_03/03-01-09-01-01-01-03.wav",  # emotion 09
        "Actor_03/03-01-01-02-01-01-03.wav",  # neutral has no strong intensity
        "Actor_03/01-01-05-01-01-01-03.wav",  # modality 01 must be .mp4
        "Actor_03/3-1-5-1-1-1-3.wav",
    ):
        _wav(tmp_path / bad)
    records, warned = _load(load_ravdess, tmp_path)
    assert len(records) == 5 and len(warned) == 1 and "skipped 5 file" in warned[0]
    by_name = {r.source.name: r for r in records}
    audio = by_name["03-01-05-02-01-02-03.wav"]
    assert audio.label == "angry" and audio.speaker == "03" and audio.video is None
    assert audio.get("intensity") == "strong" and audio.get("vocal_channel") == "speech"
    assert by_name["03-02-03-01-01-01-03.wav"].get("vocal_channel") == "song"
    av = by_name["01-01-06-01-02-01-03.mp4"]
    assert av.video == av.source and av.label == "fear" and av.get("modality") == "audio-video"
    assert by_name["02-01-02-01-02-01-03.mp4"].label == "calm"
    assert by_name["03-01-08-01-01-01-24.wav"].speaker == "24"
    with pytest.warns(DatasetWarning):
        only_audio = load_ravdess(tmp_path, modalities=["audio"])
    assert len(only_audio) == 3 and all(r.video is None for r in only_audio)
    with pytest.raises(ConfigError):
        load_ravdess(tmp_path, modalities=["smell"])


def test_tess_generated(tmp_path):
    root = tmp_path / "TESS"
    good = {
        "OAF_angry/OAF_back_angry.wav": ("OAF", "angry", "angry"),
        "OAF_Pleasant_surprise/OAF_back_ps.wav": ("OAF", "surprise", "ps"),
        "YAF_pleasant_surprised/YAF_bath_ps.wav": ("YAF", "surprise", "ps"),
        "YAF_pleasant_surprised/YAF_bite_pleasant_surprised.wav": ("YAF", "surprise", "pleasant_surprised"),
        "OAF_Fear/OAF_dog_Fear.wav": ("OAF", "fear", "fear"),
        "YAF_sad/YAF_dog_sad.wav": ("YAF", "sad", "sad"),
        "YAF_neutral/YAF_goose_neutral.wav": ("YAF", "neutral", "neutral"),
    }
    for rel in good:
        _wav(root / rel)
    for bad in ("OAF_angry/OAF_back_furious.wav", "OAF_angry/back_angry.wav", "XAF_sad/XAF_dog_sad.wav"):
        _wav(root / bad)
    records, warned = _load(load_tess, root)
    assert len(warned) == 1 and "skipped 3 file" in warned[0]
    got = {str(r.source.relative_to(root)): (r.speaker, r.label, r.native_label) for r in records}
    assert got == good and _sorted(records)
    assert all(r.dataset == "tess" for r in records)


@pytest.mark.parametrize("layout", ["nested", "flat"])
def test_savee_generated(tmp_path, layout):
    names = ["a01", "d02", "f03", "h04", "n05", "sa06", "su07", "n30"]
    expected = Counter()
    for speaker in ("DC", "JE", "JK", "KL"):
        for name in names:
            rel = f"AudioData/{speaker}/{name}.wav" if layout == "nested" else f"ALL/{speaker}_{name}.wav"
            _wav(tmp_path / rel)
            expected[(speaker, L.SAVEE[name.rstrip("0123456789")])] += 1
    bad = (
        ["AudioData/XX/a01.wav", "AudioData/DC/z01.wav"]
        if layout == "nested"
        else ["ALL/DC_x01.wav", "ALL/ab_a01.wav"]
    )
    for rel in bad:
        _wav(tmp_path / rel)
    records, warned = _load(load_savee, tmp_path)
    assert Counter((r.speaker, r.label) for r in records) == expected and len(records) == 32
    assert len(warned) == 1 and "skipped 2 file" in warned[0]
    sa = next(r for r in records if r.native_label == "sa")
    assert sa.label == "sad" and sa.get("number") == "06"


def test_cremad_generated(tmp_path):
    good = [
        "1001_DFA_ANG_XX.wav",
        "1091_IEO_HAP_HI.wav",
        "1045_TSI_NEU_XX.wav",
        "1002_WSI_FEA_LO.wav",
        "1003_ITH_DIS_MD.wav",
        "1004_MTI_SAD_XX.wav",
    ]
    bad = [
        "1000_DFA_ANG_XX.wav",
        "1092_DFA_ANG_XX.wav",
        "1001_ABC_ANG_XX.wav",
        "1001_DFA_SUR_XX.wav",
        "1001_DFA_ANG_YY.wav",
        "1001-DFA-ANG-XX.wav",
    ]
    for name in good + bad:
        _wav(tmp_path / "AudioWAV" / name)
    records, warned = _load(load_cremad, tmp_path)
    assert [r.source.name for r in records] == sorted(good)
    assert [r.label for r in records] == ["angry", "fear", "disgust", "sad", "neutral", "happy"]
    assert (
        records[0].speaker == "1001"
        and records[0].get("sentence") == "DFA"
        and records[0].get("level") == "XX"
    )
    assert len(warned) == 1 and "skipped 6 file" in warned[0]


def test_folder_per_class_generated(tmp_path):
    _wav(tmp_path / "Anger" / "spk1_001.wav")
    _wav(tmp_path / "Anger" / "deep" / "spk2-002.wav")
    (tmp_path / "happy" / "x.flac").parent.mkdir(parents=True)
    (tmp_path / "happy" / "x.flac").write_bytes(b"")
    (tmp_path / "happy" / "s9_take.ogg").write_bytes(b"")
    (tmp_path / "whisper" / "a_1.mp3").parent.mkdir(parents=True)
    (tmp_path / "whisper" / "a_1.mp3").write_bytes(b"")
    (tmp_path / "whisper" / "notes.txt").write_text("ignored: not audio")
    (tmp_path / ".hidden").mkdir()
    _wav(tmp_path / ".hidden" / "h_1.wav")
    _wav(tmp_path / "stray.wav")  # not in a class folder
    records, warned = _load(load_folder, tmp_path)
    got = [(r.source.relative_to(tmp_path).as_posix(), r.label, r.speaker, r.native_label) for r in records]
    assert got == [
        ("Anger/deep/spk2-002.wav", "angry", "spk2", "Anger"),
        ("Anger/spk1_001.wav", "angry", "spk1", "Anger"),
        ("happy/s9_take.ogg", "happy", "s9", "happy"),
        ("happy/x.flac", "happy", "unknown", "happy"),
        ("whisper/a_1.mp3", "whisper", "a", "whisper"),
    ]
    assert len(warned) == 4 and "skipped 2 file" in warned[3] and "stray.wav" in warned[3]
    assert "whisper/notes.txt (extension .txt is not read)" in warned[3]  # in a class folder: counted
    assert "every speaker id holds one class only" in warned[2]  # a toy: each speaker speaks one class
    assert "class folder(s) whisper name no known emotion" in warned[0]  # kept, and said
    # a file with no speaker is pooled as "unknown" beside named speakers: said, with an example and the rule
    assert "1 of 5 file(s) name no speaker (e.g. happy/x.flac)" in warned[1] and "<speaker>_" in warned[1]
    assert class_order(r.label for r in records) == ("happy", "angry", "whisper")


def test_folder_speakers_from_a_speaker_folder_and_misread_ids_are_said(tmp_path):
    """`<class>/<speaker>/take1.wav` takes the speaker from the folder (every file was "unknown", one pooled
    speaker); names that start with the class (angry_spk03.wav: speaker "angry") are warned about, as a speaker
    split of them would hold out whole classes and score 0."""
    for cls in ("angry", "sad"):
        for spk in ("spk03", "spk08"):
            _wav(tmp_path / "folders" / cls / spk / "take1.wav")
            _wav(tmp_path / "named" / cls / f"{cls}_{spk}.wav")
    records, warned = _load(load_folder, tmp_path / "folders")
    assert sorted({r.speaker for r in records}) == ["spk03", "spk08"] and not warned
    records, warned = _load(load_folder, tmp_path / "named")
    assert sorted({r.speaker for r in records}) == ["angry", "sad"]
    assert len(warned) == 1 and "every speaker id holds one class only (angry: angry, sad: sad" in warned[0]
    assert "angry/spk03_take1.wav or angry/spk03/take1.wav" in warned[0]  # how to name them instead


def test_folder_names_the_files_it_does_not_read(tmp_path):
    """A class folder whose files have an extension the loader does not read vanished from the data set
    without a word; now such files are counted and named, and a class left with none is said to be."""
    sf = pytest.importorskip("soundfile")
    y = (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    _wav(tmp_path / "happy" / "s1_a.wav")
    _wav(tmp_path / "angry" / "s1_b.wav")
    for folder, ext, fmt, n in (("sad", ".aiff", "AIFF", 3), ("calm", ".caf", "CAF", 4)):
        (tmp_path / folder).mkdir()
        for i in range(n):  # AIFF is read (it was passed over); Core Audio is not, so calm is gone: said
            sf.write(str(tmp_path / folder / f"s{i}_c{ext}"), y, 16000, format=fmt)
    (tmp_path / "angry" / "take notes.txt").write_text("not audio")
    (tmp_path / "README.md").write_text("beside the class folders: not the data set's")
    (tmp_path / "happy" / ".DS_Store").write_bytes(b"hidden")
    records, warned = _load(load_folder, tmp_path)
    assert Counter(r.native_label for r in records) == {"sad": 3, "happy": 1, "angry": 1}
    (said,) = [w for w in warned if "skipped" in w]
    assert "skipped 5 file(s)" in said and "README" not in said and "DS_Store" not in said
    assert "calm/s0_c.caf (extension .caf is not read; class calm is left with no file)" in said
    assert "and 2 more" in said  # the lost class's files named first
    # and every lost class by name, however many files the examples leave out
    assert any("class folder(s) calm hold no file with an extension that is read" in w for w in warned)
    # nothing left that is read: the error names what was passed over
    for path in [
        tmp_path / "happy" / "s1_a.wav",
        tmp_path / "angry" / "s1_b.wav",
        *(tmp_path / "sad").iterdir(),
    ]:
        path.unlink()
    with pytest.raises(
        DatasetError, match=r"no valid files .*5 skipped: angry/take notes.txt \(extension .txt"
    ):
        load_folder(tmp_path)


def test_folder_warns_when_speaker_folders_hold_names_that_give_another_speaker(tmp_path):
    """<class>/<speaker>/2024-05-01.wav: the name's '2024' wins over the folder, so every file had one speaker and
    nothing was said."""
    for cls in ("angry", "sad"):
        for spk in ("spk03", "spk08", "spk09"):
            _wav(tmp_path / cls / spk / "2024-05-01.wav")
    records, warned = _load(load_folder, tmp_path)
    assert {r.speaker for r in records} == {"2024"}
    assert any(
        "in 3 folders under the class folders take their speaker from their name (2024)" in w for w in warned
    )


def test_fer2013_generated(tmp_path):
    for split, cls, name in [
        ("train", "happy", "a.jpg"),
        ("train", "Sad", "b.png"),
        ("test", "fear", "c.jpeg"),
        ("train", "contempt", "d.jpg"),
        ("train", "happy", "e.txt"),
    ]:
        (tmp_path / split / cls).mkdir(parents=True, exist_ok=True)
        (tmp_path / split / cls / name).write_bytes(b"\xff\xd8")
    (tmp_path / "train" / "loose.jpg").write_bytes(b"\xff\xd8")
    records, warned = _load(load_fer2013, tmp_path)
    assert [(r.label, r.speaker) for r in records] == [("sad", "b"), ("happy", "a")]
    assert len(warned) == 1 and "skipped 2 file" in warned[0]
    assert [r.label for r in load_fer2013(tmp_path, split="test")] == ["fear"]
    with pytest.warns(DatasetWarning):
        assert len(load_fer2013(tmp_path, split=None)) == 3
    with pytest.raises(DatasetError, match="validation"):
        load_fer2013(tmp_path, split="validation")


def test_repeated_clips_are_counted_once_and_said(tmp_path):
    """TESS's Kaggle zip holds its tree twice and SAVEE ships a flat and a per-speaker copy: every clip was
    counted twice (double weight, and one recording on both sides of a split)."""
    tess = tmp_path / "TESS"
    for copy in ("", "TESS Toronto emotional speech set data/"):
        _wav(tess / f"{copy}OAF_angry/OAF_back_angry.wav")
        _wav(tess / f"{copy}YAF_sad/YAF_dog_sad.wav")
    records, warned = _load(load_tess, tess)
    assert len(records) == 2 and {r.source.parent.name for r in records} == {"OAF_angry", "YAF_sad"}
    (said,) = warned
    assert "2 file(s)" in said and "same speaker, word and emotion" in said and "counted once" in said
    savee = tmp_path / "SAVEE"
    for speaker in ("DC", "JE"):
        _wav(savee / "AudioData" / speaker / "a01.wav")
        _wav(savee / "ALL" / f"{speaker}_a01.wav")
    records, warned = _load(load_savee, savee, modalities=["audio"])
    assert sorted(r.speaker for r in records) == ["DC", "JE"]
    assert any("2 file(s)" in w and "same speaker, emotion and number" in w for w in warned)


def test_of_a_clip_in_two_formats_the_lossless_copy_is_kept(tmp_path):
    """Review: CREMA-D's checkout holds AudioMP3/ beside AudioWAV/; the first by path (the MP3) was kept."""
    sf = pytest.importorskip("soundfile")
    y = (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    for name in ("1001_DFA_ANG_XX", "1002_IEO_SAD_HI"):
        _wav(tmp_path / "AudioWAV" / f"{name}.wav")
        mp3 = tmp_path / "AudioMP3" / f"{name}.mp3"
        mp3.parent.mkdir(exist_ok=True)
        sf.write(str(mp3), y, 16000, format="MP3")
    records, warned = _load(load_cremad, tmp_path)
    assert len(records) == 2 and {r.source.suffix for r in records} == {".wav"}
    assert any("the lossless copy kept" in w and "(kept AudioWAV/" in w for w in warned)


def test_savee_reads_converted_audio(tmp_path):
    """SAVEE in FLAC was 'no valid files' while TESS and CREMA-D in FLAC were found."""
    sf = pytest.importorskip("soundfile")
    y = (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    for speaker, name in (("DC", "a01"), ("KL", "sa02")):
        path = tmp_path / "AudioData" / speaker / f"{name}.flac"
        path.parent.mkdir(parents=True)
        sf.write(str(path), y, 16000, format="FLAC")
    records, _ = _load(load_savee, tmp_path)
    assert sorted((r.speaker, r.label) for r in records) == [("DC", "angry"), ("KL", "sad")]


def test_folder_warns_when_every_file_gives_one_speaker(tmp_path):
    """A recording prefix shared by every file (rec_spk01_take1.wav) made every file speaker 'rec', silently."""
    for cls in ("angry", "sad"):
        for spk in ("spk01", "spk02"):
            _wav(tmp_path / cls / f"rec_{spk}_take1.wav")
    records, warned = _load(load_folder, tmp_path)
    assert {r.speaker for r in records} == {"rec"}
    assert any(
        "all 4 files give the same speaker id 'rec'" in w and "angry/spk03_take1.wav" in w for w in warned
    )


def test_one_speaker_or_class_written_two_ways_is_one(tmp_path):
    """Review: 'Zoë' written composed (NFC) and decomposed (NFD, as macOS names files), and SPK08 beside spk08,
    were two speakers each, so a speaker split put one person on both sides; `Contempt/` and `contempt/` were two
    classes. Names are NFC now, and spellings that differ only in case are one, with a warning."""
    nfc, nfd = "Zo\u00eb", "Zoe\u0308"
    for cls, name in (
        ("angry", f"{nfc}_a.wav"),
        ("sad", f"{nfd}_b.wav"),
        ("sad", f"{nfd}_c.wav"),
        ("angry", "spk08_a.wav"),
        ("sad", "spk08_b.wav"),
        ("happy", "SPK08_c.wav"),
        ("Contempt", "spk08_d.wav"),
        ("contempt", f"{nfc}_d.wav"),
        ("contempt", "spk08_e.wav"),
    ):
        _wav(tmp_path / cls / name)
    records, warned = _load(load_folder, tmp_path)
    assert Counter(r.speaker for r in records) == {nfc: 4, "spk08": 5}
    assert Counter(r.label for r in records)["contempt"] == 3 and "Contempt" not in {r.label for r in records}
    said = [w for w in warned if "written two ways" in w]
    assert any("speaker ids" in w and "SPK08 / spk08 -> spk08" in w for w in said)
    assert any(
        "speaker ids" in w and "Zo\\xeb / Zoe\\u0308 -> " in w for w in said
    )  # escapes: they look alike
    assert any("class folders" in w and "Contempt / contempt -> contempt" in w for w in said)


def test_a_speaker_folder_whose_files_name_another_id_is_said(tmp_path):
    """Review: T/spk10/take1.wav gives spk10 (the folder), W/spk10/2024-05-01.wav gives 2024 (the name): one person
    as two speakers, and no warning (the check needed more folders than ids)."""
    _wav(tmp_path / "angry" / "spk10" / "take1.wav")
    _wav(tmp_path / "sad" / "spk10" / "2024-05-01.wav")
    _wav(tmp_path / "sad" / "spk11" / "take1.wav")
    _wav(tmp_path / "angry" / "spk11" / "take2.wav")
    records, warned = _load(load_folder, tmp_path)
    assert {r.speaker for r in records} == {"spk10", "2024", "spk11"}
    assert any(
        "folder(s) spk10 give the speaker to some files" in w and "spk10/ -> 2024" in w for w in warned
    )


def test_one_m4a_without_ffmpeg_skips_that_file_not_the_data_set(tmp_path, monkeypatch):
    """Review: one .m4a in a folder of WAVs made the whole data set fail without ffmpeg (FFmpegNotFoundError from
    the decode check); now that file is skipped with the install hint."""
    from converters.data.scan import check_decodable

    for cls in ("angry", "sad"):
        for spk in ("s1", "s2"):
            _wav(tmp_path / cls / f"{spk}_a.wav")
    (tmp_path / "sad" / "s3_phone.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(64))
    monkeypatch.setenv("EDGE_SER_FFMPEG", str(tmp_path / "no-ffmpeg"))
    monkeypatch.setattr("shutil.which", lambda name, *a, **k: None)
    records, _ = _load(load_folder, tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept = check_decodable("folder", records)
    assert len(kept) == 4 and len(kept.undecodable) == 1 and "ffmpeg" in kept.undecodable[0][1]
    assert any("s3_phone.m4a" in str(w.message) for w in caught)


def test_folder_says_when_speakers_and_classes_look_swapped_and_that_labels_csv_is_not_read(tmp_path):
    """A review: `<speaker>/<emotion>_N.wav` loaded as classes spk01.. with speakers 'sad'.. without a word beyond
    "name no known emotion", and a labels.csv beside audio was ignored unsaid."""
    for spk in ("spk01", "spk02"):
        for emo in ("angry", "sad"):
            _wav(tmp_path / spk / f"{emo}_1.wav")
    (tmp_path / "labels.csv").write_text("file,label,speaker\n")
    _, warned = _load(load_folder, tmp_path)
    assert any("speakers and classes look swapped" in w and "(angry, sad)" in w for w in warned)
    assert any("labels.csv is not read when the folder is given" in w and "--data" in w for w in warned)


def test_a_folder_of_face_images_says_how_images_are_scored(tmp_path):
    """Class folders of face images (`edge-ser eval bundles/face_fer --data DIR`) were refused as "no valid files,
    expected <class>/<file> with audio extension ..." with every .jpg "not read": nothing said that images are
    scored in FER-2013's layout. The error now says so."""
    for cls in ("happy", "sad"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            (tmp_path / cls / f"img{i}.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DatasetError, match=r"4 image\(s\).*--data fer2013 --root .*test/<class>/"):
            load_folder(tmp_path)


def test_a_folder_given_as_dot_is_named_by_its_own_name(tmp_path, monkeypatch):
    """`--data .` from inside one's data folder named the data set "" (and `..` ".."): `edge-ser laq` trained for
    the whole run, then the bundle was refused ("must say what it was measured on: add 'dataset'"). The name is the
    resolved folder's, as ship_ser.py and a labels CSV already took it."""
    from converters.pipeline import load_records
    from edge_ser.audio import write_wav

    y = (0.1 * np.sin(np.arange(8000) / 7)).astype(np.float32)
    for cls in ("angry", "sad"):
        write_wav(tmp_path / "mydata" / cls / f"spk1_{cls}.wav", y, 16000)
    monkeypatch.chdir(tmp_path / "mydata")
    name, records = load_records(".")
    assert name == "mydata" and {r.get("root") for r in records} == {"mydata"}
    monkeypatch.chdir(tmp_path / "mydata" / "sad")
    assert load_records("..")[0] == "mydata"


def test_audio_commands_read_each_corpus_recording_once_beside_its_videos(tmp_path):
    """RAVDESS unpacked as distributed (the speech audio zip beside the video zips, each recording as 03 WAV, 01
    audio-video mp4 and 02 video-only mp4) gave `edge-ser data`/train/eval each recording three times (the video
    records take the WAV as their sound): 36 "clips" of 14 recordings, and a random split put one WAV in train and
    test. SAVEE's AudioVisualClips beside AudioData the same, twice. Audio commands now read one record per sound;
    a video-only clip without its WAV (no sound at all) is left out, and both are said."""
    from converters.pipeline import load_records

    rav = tmp_path / "ravdess"
    for actor in ("01", "02"):
        for emotion in ("01", "05"):
            rest = f"{emotion}-01-01-01-{actor}"
            _wav(rav / "Audio_Speech_Actors_01-24" / f"Actor_{actor}" / f"03-01-{rest}.wav")
            for modality in ("01", "02"):
                clip = rav / f"Video_Speech_Actor_{actor}" / f"Actor_{actor}" / f"{modality}-01-{rest}.mp4"
                clip.parent.mkdir(parents=True, exist_ok=True)
                clip.write_bytes(b"\0")
    # a video pair whose WAV is missing: the 01 clip's own track is its sound, the 02 clip has none
    for modality in ("01", "02"):
        (rav / "Video_Speech_Actor_02" / "Actor_02" / f"{modality}-01-08-01-01-01-02.mp4").write_bytes(b"\0")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        name, records = load_records("ravdess", rav)
    said = " ".join(str(w.message) for w in caught if issubclass(w.category, DatasetWarning))
    assert name == "ravdess" and len(records) == 5
    assert sorted(r.source.name for r in records) == [
        "01-01-08-01-01-01-02.mp4",
        *sorted(f"03-01-{e}-01-01-01-{a}.wav" for a in ("01", "02") for e in ("01", "05")),
    ]
    assert Counter(r.label for r in records) == {"neutral": 2, "angry": 2, "surprise": 1}
    assert "8 video clip(s) whose sound is a WAV" in said and "1 video-only clip(s) with no sound" in said
    assert "03-01-08-01-01-01-02.wav is missing" in said

    savee = tmp_path / "savee"
    for speaker in ("DC", "KL"):
        for code in ("a", "su"):
            _wav(savee / "AudioData" / speaker / f"{code}01.wav")
            (savee / "AudioVisualClips" / speaker).mkdir(parents=True, exist_ok=True)
            (savee / "AudioVisualClips" / speaker / f"{code}1.avi").write_bytes(b"\0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = load_records("savee", savee)[1]
    assert len(records) == 4 and all(r.video is None for r in records)
    assert sorted((r.speaker, r.label) for r in records) == [
        ("DC", "angry"),
        ("DC", "surprise"),
        ("KL", "angry"),
        ("KL", "surprise"),
    ]
