"""`edge-ser laq`'s TFLite variants are made as `python -m converters.export.tflite_bundle BUNDLE --data DATA`
makes them (one implementation): calibrated on the training clips through the device path, the int8 input range
widened with held-out-like copies, phased int8. They were plain int8 calibrated on the min / max of the training
rows: on a 6-speaker EMODB folder split by speaker, the int8 engine flagged 28 of 45 held-out files out of range,
onnxruntime 7 (review finding; docs/tflite.md). The clips are the ones the manifest's split record names
(`tflite_bundle.training_paths`), which must be exactly those laq trained on, for every split laq makes."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="training needs the host extra (torch)")

from converters.export import tflite_bundle as tb  # noqa: E402
from edge_ser.bundle import load_bundle  # noqa: E402
from edge_ser.cli import main  # noqa: E402


def _folder(root: Path, silent: tuple[int, ...] = ()) -> Path:
    """A folder of 6 speakers x 3 classes x 6 clips (docs/data.md layout); the clips numbered in `silent` are
    digital silence, which training skips."""
    from converters.data.synthetic import SyntheticSpec, generate
    from edge_ser.audio import write_wav

    spec = SyntheticSpec(n_per_class=6, n_speakers=6, labels=("neutral", "sad", "angry"), duration=1.0)
    for i, (wave, label, speaker) in enumerate(generate(spec)):
        write_wav(root / label / f"{speaker}_{i:03d}.wav", wave * (i not in silent), spec.sr)
    return root


def _laq(data: str, out: Path, *extra: str, tflite: str = "no") -> Path:
    args = ["laq", "--data", data, "--epochs", "1", "--recipe", "ptq-2", "-q", "--threads", "1"]
    assert main([*args, *extra, "--tflite", tflite, "--out", str(out), "--cache", str(out.parent / "c")]) == 0
    return out / "bundle"


@pytest.mark.parametrize(
    ("split", "silent"),
    [
        # a random split: drawn over the class indices in class order (stratified_split over the file labels
        # as strings, as training_paths did, gave other clips: 342 of laq_mlp_emodb's 428)
        (("--split", "random", "--seed", "1"), ()),
        (("--split", "speaker", "--folds", "3", "--fold", "1"), ()),
        # 2 folds: validation is a tenth of the training speakers' clips (train_speakers took those too)
        (("--split", "speaker", "--folds", "2"), ()),
        # files training skipped (digital silence): recorded, so the split re-made over every listed file
        # leaves them out
        (("--split", "random"), (0, 7)),
        (("--split", "speaker", "--folds", "3"), (0, 7)),
    ],
)
def test_the_split_record_names_exactly_the_clips_laq_trained_on(tmp_path, split, silent):
    from converters.pipeline import make_split, prepare

    data = _folder(tmp_path / "mine", silent)
    if silent:
        with pytest.warns(Warning):
            bundle = _laq(str(data), tmp_path / "run", *split)
    else:
        bundle = _laq(str(data), tmp_path / "run", *split)
    made = load_bundle(bundle).manifest["accuracy"]["split"]
    if silent:
        with pytest.warns(Warning):
            prep = prepare(str(data), progress=False)
        skipped = {prep.listed[i].source.name for i in made["skipped_listed"]}
        assert skipped == {f"{p.name}" for p in data.rglob("*.wav") if int(p.stem.split("_")[-1]) in silent}
    else:
        prep = prepare(str(data), progress=False)
        assert "skipped_listed" not in made
    part = make_split(prep, made["kind"], seed=made["seed"], fold=made["fold"], k=made.get("folds", 5))
    trained = sorted(prep.records[int(i)].source for i in part.train)
    assert len(trained) == made["sizes"]["train"]
    assert sorted(tb.training_paths(load_bundle(bundle), str(data))) == trained


def test_a_synthetic_set_is_the_one_laq_trained_on(tmp_path, monkeypatch):
    """`--data synthetic` is rebuilt from the manifest's `accuracy.synthetic` (seed 1, 3 clips per class), not
    the default set (seed 0, 30 per class), wherever the cache is."""
    from converters.data import SyntheticSpec
    from converters.featurize import FeatureCache
    from converters.pipeline import make_split, prepare

    monkeypatch.setenv("EDGE_SER_CACHE", str(tmp_path / "elsewhere"))
    bundle = _laq("synthetic", tmp_path / "run", "--n-per-class", "3", "--seed", "1")
    prep = prepare(
        "synthetic",
        synthetic=SyntheticSpec(seed=1, n_per_class=3),
        cache=FeatureCache(tmp_path / "c"),
        progress=False,
    )
    part = make_split(prep, "random", seed=1)
    trained = sorted(Path(prep.records[int(i)].source).name for i in part.train)
    paths = tb.training_paths(load_bundle(bundle), "synthetic")
    assert sorted(p.name for p in paths) == trained
    assert all(Path(p).is_relative_to(tmp_path / "elsewhere") for p in paths)


@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("ai_edge_litert") is None,
    reason="TFLite export needs tensorflow (tf-export extra) and ai-edge-litert",
)
def test_laq_int8_is_what_tflite_bundle_makes(tmp_path):
    """laq's variants byte for byte those the tflite_bundle command adds to the same bundle: phased int8 with
    the input range of the training rows plus their held-out-like copies."""
    data = _folder(tmp_path / "mine")
    bundle = _laq(str(data), tmp_path / "run", "--split", "speaker", "--folds", "2", tflite="yes")
    m = load_bundle(bundle).manifest
    again = tmp_path / "again"
    shutil.copytree(bundle, again)
    assert tb.run([str(again), "--data", str(data)]) == 0
    redone = json.loads((again / "manifest.json").read_text())
    assert m["tflite"] == redone["tflite"]
    assert m["tflite"]["variants"]["int8"]["inputs"]["features"]["phases"] == 4
    for v in ("fp32", "fp16", "int8"):
        name = f"model_{v}.tflite"
        assert (bundle / name).read_bytes() == (again / name).read_bytes(), name
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert {"tflite-fp32", "tflite-fp16", "tflite-int8"} <= set(summary["engine_checks"])
