"""Data sets as they really are: one undecodable file (an AIFF named .wav, a truncated WAV, a zero-byte file,
random bytes) is skipped with a warning naming it and counted, `--strict` fails fast; speaker folds on a
two-speaker set; FER-2013's split folders from the CLI; every bundle's accuracy names its data and split."""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from converters.data import load_dataset
from converters.data.scan import audio_problem
from converters.featurize import extract
from converters.pipeline import prepare, split_indices
from edge_ser.audio.wav import write_wav
from edge_ser.cli import main
from edge_ser.errors import AudioFormatError, ConfigError, DatasetError, InputWarning

REPO = Path(__file__).resolve().parents[1]
BAD = ("aiff", "truncated", "empty", "random")


def _aiff(path: Path, n: int = 1600, sr: int = 16000) -> Path:
    """A real 16-bit mono AIFF file (FORM/AIFF, COMM, SSND chunks written by hand), whatever its name."""
    e = int(math.floor(math.log2(sr)))
    rate = struct.pack(">HQ", e + 16383, int(sr * 2 ** (63 - e)))  # 80-bit extended float
    comm = struct.pack(">hIh", 1, n, 16) + rate
    samples = (np.sin(np.arange(n) * 0.05) * 8000).astype(">i2").tobytes()
    ssnd = struct.pack(">II", 0, 0) + samples
    body = (
        b"AIFF"
        + b"COMM"
        + struct.pack(">I", len(comm))
        + comm
        + b"SSND"
        + struct.pack(">I", len(ssnd))
        + ssnd
    )
    path.write_bytes(b"FORM" + struct.pack(">I", len(body)) + body)
    return path


def _tone(path: Path, seed: int, seconds: float = 0.4, sr: int = 16000) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * (150 + 20 * seed % 300) * t) + 0.02 * rng.standard_normal(t.size)
    return write_wav(path, y.astype(np.float32), sr)


def _spoil(path: Path, how: str, seed: int = 0) -> Path:
    """Overwrite `path` (keeping its name) with one kind of undecodable file."""
    if how == "aiff":
        return _aiff(path)
    if how == "truncated":
        data = _tone(path, seed).read_bytes()
        path.write_bytes(data[:45])  # the header and one byte: no complete frame (half a WAV is read now)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "random":
        path.write_bytes(np.random.default_rng(seed).bytes(4000))
    return path


def _nan_float_wav(path: Path) -> Path:
    """A float WAV whose header is valid but whose samples are NaN: only decoding finds it."""
    write_wav(path, np.zeros(4000, np.float32), 16000, subtype="FLOAT")
    data = bytearray(path.read_bytes())
    data[-400:] = struct.pack("<f", float("nan")) * 100
    path.write_bytes(bytes(data))
    return path


@pytest.fixture()
def emodb_like(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """An EMODB-shaped folder: 12 good clips of 2 speakers and one file of each bad kind, EMODB names."""
    root = tmp_path / "emodb" / "wav"
    root.mkdir(parents=True)
    for i, (spk, letter) in enumerate((s, c) for s in ("03", "08") for c in "WLEAFT"):
        _tone(root / f"{spk}a0{i % 5 + 1}{letter}a.wav", i)
    bad = {how: _spoil(root / f"03b0{k + 1}Nc.wav", how, k) for k, how in enumerate(BAD)}
    return root.parent, bad


def test_header_check_names_each_bad_kind(emodb_like) -> None:
    _, bad = emodb_like
    problems = {how: audio_problem(path) for how, path in bad.items()}
    assert "AIFF" in problems["aiff"] and "truncated data" in problems["truncated"]
    assert "empty file" in problems["empty"] and "not a WAV file" in problems["random"]


def test_loader_skips_undecodable_files_naming_each(emodb_like) -> None:
    root, bad = emodb_like
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = load_dataset("emodb", root)
    assert len(records) == 12 and {r.speaker for r in records} == {"03", "08"}
    assert sorted(p for p, _ in records.undecodable) == sorted(bad.values())
    said = [str(w.message) for w in caught if issubclass(w.category, InputWarning)]
    assert len(said) == 4 and all(any(str(p) in s for s in said) for p in bad.values())
    with pytest.raises(DatasetError, match="03b01Nc.wav.*AIFF"):
        load_dataset("emodb", root, strict=True)


def test_loader_refuses_a_data_set_with_no_decodable_file(tmp_path: Path) -> None:
    root = tmp_path / "wav"
    root.mkdir()
    for k, how in enumerate(BAD):
        _spoil(root / f"03a0{k + 1}Wa.wav", how, k)
    with pytest.warns(InputWarning), pytest.raises(DatasetError, match="none of its 4 files can be decoded"):
        load_dataset("emodb", tmp_path)


def test_data_command_counts_only_files_that_decode(emodb_like, capsys) -> None:
    root, bad = emodb_like
    with pytest.warns(InputWarning):
        assert main(["data", "emodb", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "emodb: 12 records, 4 undecodable file(s) skipped" in out
    assert all(p.name in out for p in bad.values())
    assert main(["data", "emodb", "--root", str(root), "--strict"]) == 2
    assert "03b01Nc.wav" in capsys.readouterr().err


def test_features_command_skips_and_counts(emodb_like, tmp_path: Path, capsys) -> None:
    root, bad = emodb_like
    nan = _nan_float_wav(root / "wav" / "03b05Nc.wav")  # header fine: found only when decoded
    assert audio_problem(nan) is None
    out = tmp_path / "X.npy"
    with pytest.warns(InputWarning) as said:
        assert main(["features", str(root), "--no-cache", "-q", "--out", str(out)]) == 0
    assert {p.name for p in [*bad.values(), nan]} <= {Path(str(w.message).split(": ")[1]).name for w in said}
    printed = capsys.readouterr().out
    # skipped at loading (undecodable) or at extraction (also silent or too short): each named with its reason
    assert "12 files -> features (12, 180)" in printed and "5 file(s) skipped" in printed
    listed = (tmp_path / "X.txt").read_text().split()
    assert np.load(out).shape == (12, 180) and len(listed) == 12
    assert not {str(p) for p in [*bad.values(), nan]} & set(listed)
    assert main(["features", str(root), "--no-cache", "-q", "--strict"]) == 2
    assert "03b01Nc.wav" in capsys.readouterr().err


def test_extract_rows_follow_the_kept_files(tmp_path: Path) -> None:
    good = [_tone(tmp_path / f"g{i}.wav", i) for i in range(3)]
    bad = _spoil(tmp_path / "b.wav", "truncated")
    X_all, _ = extract(good, progress=False)
    with pytest.warns(InputWarning, match="b.wav"):
        X, stats = extract([good[0], bad, good[1], good[2]], progress=False, strict=False)
    assert stats.kept == (0, 2, 3) and [p for p, _ in stats.skipped] == [bad]
    np.testing.assert_array_equal(X, X_all)
    with pytest.raises(AudioFormatError, match="b.wav"):
        extract([good[0], bad], progress=False)  # the library default stays strict


def test_prepare_on_a_synthetic_set_with_bad_files(tmp_path: Path) -> None:
    synth = tmp_path / "synth"
    assert main(["synth", str(synth), "--n-per-class", "2", "--speakers", "2", "--duration", "0.5"]) == 0
    wavs = sorted(synth.rglob("*.wav"))
    spoiled = [_spoil(wavs[0], "aiff"), _spoil(wavs[5], "truncated"), _spoil(wavs[9], "empty")]
    nan = _nan_float_wav(wavs[12])
    with pytest.warns(InputWarning):
        prep = prepare(str(synth), progress=False)
    assert len(prep.records) == len(wavs) - 4 == prep.X.shape[0] == prep.y.size
    assert sorted(p for p, _ in prep.skipped) == sorted([*spoiled, nan])
    assert not {r.source for r in prep.records} & {*spoiled, nan}
    with pytest.raises(DatasetError, match=wavs[0].name):
        prepare(str(synth), progress=False, strict=True)


def test_predict_over_a_folder_skips_bad_files(emodb_like, capsys) -> None:
    root, bad = emodb_like
    bundle = str(REPO / "bundles" / "laq_mlp_emodb")
    with pytest.warns(InputWarning) as said:
        assert main(["predict", bundle, str(root)]) == 0
    out = capsys.readouterr().out
    assert "12 file(s)" in out and "4 unreadable file(s) skipped" in out
    assert not any(p.name in out for p in bad.values())
    messages = " ".join(str(w.message) for w in said)
    assert all(str(p) in messages for p in bad.values())
    assert main(["predict", bundle, str(root), "--strict"]) == 2
    assert "03b01Nc.wav" in capsys.readouterr().err
    only_bad = root / "only_bad"
    only_bad.mkdir()
    shutil.copy(bad["empty"], only_bad / "x.wav")
    with pytest.warns(InputWarning):
        assert main(["predict", bundle, str(only_bad)]) == 2
    assert "none of the 1 file(s) could be read" in capsys.readouterr().err


# -------------------------------------------------------------------------------------- speaker folds
def test_two_speaker_folds_and_a_clear_error_beyond() -> None:
    y = np.repeat(np.arange(7), 6)
    speakers = ["OAF", "YAF"] * 21
    with pytest.raises(ConfigError, match="tess has 2 speaker.*--folds 5 needs at least 5"):
        split_indices(y, speakers, "speaker", k=5, name="tess")
    for fold in (0, 1):
        sp = split_indices(y, speakers, "speaker", k=2, fold=fold, name="tess")
        spk = np.asarray(speakers)
        assert len(set(spk[sp.test])) == 1 and set(spk[sp.train]) | set(spk[sp.val]) == set(spk) - set(
            spk[sp.test]
        )
        assert sp.val.size > 0 and set(y[sp.val]) == set(range(7))  # stratified: every class in val
    with pytest.raises(ConfigError, match="--fold 2 is out of range for 2 folds"):
        split_indices(y, speakers, "speaker", k=2, fold=2, name="tess")
    with pytest.raises(ConfigError, match="at least 2"):
        split_indices(y, ["A"] * 42, "speaker", k=2, name="one")


def test_train_cli_folds_on_a_tess_shaped_set(tmp_path: Path, capsys) -> None:
    pytest.importorskip("torch", reason="training needs the host extra (torch)")
    root = tmp_path / "tess"
    for s, spk in enumerate(("OAF", "YAF")):
        for e, emo in enumerate(("angry", "happy", "neutral")):
            for w, word in enumerate(("back", "bar", "base")):
                (root / f"{spk}_{emo}").mkdir(parents=True, exist_ok=True)
                _tone(root / f"{spk}_{emo}" / f"{spk}_{word}_{emo}.wav", 10 * s + 3 * e + w, 0.3)
    common = ["train", "--data", "tess", "--root", str(root), "--split", "speaker", "-q"]
    common += ["--cache", str(tmp_path / "c"), "--epochs", "3", "--out", str(tmp_path / "out")]
    assert main([*common, "--folds", "5"]) == 2
    assert "tess has 2 speakers; --folds 5 needs at least 5" in capsys.readouterr().err
    assert main([*common, "--folds", "2"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["split_sizes"]["test"] == 9 and summary["split_sizes"]["val"] > 0


# --------------------------------------------------------------------------------------------- FER-2013
def test_fer_split_from_the_cli(tmp_path: Path, capsys) -> None:
    for split, n in (("train", 3), ("validation", 2)):
        for cls in ("happy", "sad"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                (folder / f"{split}{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not decoded")
    assert main(["data", "fer2013", "--root", str(tmp_path), "--split", "validation"]) == 0
    assert "fer2013: 4 records" in capsys.readouterr().out
    assert main(["data", "fer2013", "--root", str(tmp_path), "--split", "all"]) == 0
    assert "fer2013: 10 records" in capsys.readouterr().out
    assert main(["data", "fer2013", "--root", str(tmp_path), "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert "no test folder" in err and "['train', 'validation']" in err and "--split validation" in err
    assert main(["data", "emodb", "--root", str(tmp_path), "--split", "test"]) == 2
    assert "only fer2013 has named splits" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- bundle manifests
def test_build_bundle_refuses_an_accuracy_without_data_or_split() -> None:
    pytest.importorskip("torch", reason="the exporter needs the host extra (torch)")
    from converters.export.bundle import build_bundle

    for acc, missing in (
        ({"test": 0.9}, "'dataset'.*'split'"),
        ({"test": 0.9, "dataset": "emodb"}, "'split'"),
    ):
        with pytest.raises(ConfigError, match=missing):  # refused before the model is looked at
            build_bundle(os.devnull, None, None, {}, name="m", labels=["a"], kind=None, accuracy=acc)


def test_build_bundle_names_the_normalisation_a_model_lacks(tmp_path: Path) -> None:
    """A kind whose model standardises its input (`InputKind.standardized_input`, the first input by default)
    given a model without `mean` / `std` buffers: a ConfigError saying so and what to do (it was torch's
    "AttributeError: 'Net' object has no attribute 'mean'" after the export), and nothing written."""
    torch = pytest.importorskip("torch", reason="the exporter needs the host extra (torch)")
    from converters.export.bundle import build_bundle
    from converters.quant import BitPlan, freeze
    from edge_ser.features.spec import FeatureSpec
    from edge_ser.inputs.vector import VectorKind

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(180, 2)

        def input_shapes(self) -> dict:
            return {"features": (180,)}

        def forward(self, features):
            return self.fc(features)

    model = Net().eval()
    plan = BitPlan.uniform(model, 4)
    frozen, codes = freeze(model, plan)
    with pytest.raises(
        ConfigError, match=r"standardises input 'features'.*Net has no 'mean' / 'std' buffers"
    ):
        build_bundle(
            tmp_path / "b",
            frozen,
            plan,
            codes,
            name="m",
            labels=["a", "b"],
            kind=VectorKind(FeatureSpec()),
            accuracy={},
        )
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "bundles").iterdir() if p.is_dir()))
def test_every_shipped_bundle_names_its_data_and_split(name: str, capsys) -> None:
    acc = json.loads((REPO / "bundles" / name / "manifest.json").read_text())["accuracy"]
    sizes = acc["split"]["sizes"]  # a test part, or (ser_*) the validation speakers the figures are on
    assert acc["dataset"] and acc["split"]["kind"] and (sizes.get("test") or sizes.get("val") or 0) > 0
    assert main(["info", str(REPO / "bundles" / name)]) == 0
    out = capsys.readouterr().out
    assert " on ?" not in out and f"on {acc['dataset']}" in out


def test_a_class_whose_files_are_all_skipped_is_said_to_be_gone(tmp_path: Path) -> None:
    """A class folder whose every file was skipped (an undecodable header, or samples the feature step refuses)
    vanished from the class list, each file warned about but not the class, so a model was trained without it
    unsaid: a DatasetWarning names the class, from the loader and from the feature step alike."""
    from converters.data.scan import DatasetWarning

    root = tmp_path / "mydata"
    for i in range(3):
        for cls in ("angry", "sad"):
            _tone(root / cls / f"spk{i}_{cls}.wav", i)
    (root / "Bored Stiff").mkdir()
    _spoil(root / "Bored Stiff" / "spk0_a.wav", "random")
    _spoil(root / "Bored Stiff" / "spk1_b.wav", "empty")
    with pytest.warns(DatasetWarning, match="class Bored Stiff: no file of it can be used \\(2 skipped"):
        with pytest.warns(InputWarning):
            assert main(["data", str(root)]) == 0
    (root / "Bored Stiff" / "spk0_a.wav").unlink()
    (root / "Bored Stiff" / "spk1_b.wav").unlink()
    _nan_float_wav(root / "Bored Stiff" / "spk2_c.wav")  # the header is fine: the feature step skips it
    with pytest.warns(DatasetWarning, match="class Bored Stiff: no file of it can be used \\(1 skipped"):
        with pytest.warns(InputWarning):
            prep = prepare(str(root), progress=False)
    assert set(prep.classes) == {"sad", "angry"}


def test_features_listing_is_named_after_its_matrix(tmp_path: Path, capsys) -> None:
    """`features --out X.v1` wrote X.v1.npy and X.txt, so `--out X.v2` (other files) overwrote the first run's
    listing without a word: each matrix's listing is its own name with .txt."""
    a = [_tone(tmp_path / "a" / f"a{i}.wav", i) for i in range(2)]
    b = [_tone(tmp_path / "b" / f"b{i}.wav", i + 5) for i in range(3)]
    for folder, name in (("a", "X.v1"), ("b", "X.v2")):
        assert (
            main(["features", str(tmp_path / folder), "--no-cache", "-q", "--out", str(tmp_path / name)]) == 0
        )
    assert "X.v2.npy and " + str(tmp_path / "X.v2.txt") in capsys.readouterr().out
    assert (tmp_path / "X.v1.txt").read_text().split() == [str(p) for p in a]
    assert (tmp_path / "X.v2.txt").read_text().split() == [str(p) for p in b]
    assert np.load(tmp_path / "X.v1.npy").shape == (2, 180) and not (tmp_path / "X.txt").exists()
