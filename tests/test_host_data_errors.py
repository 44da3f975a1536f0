"""The host CLI on small and synthetic data sets: eval rebuilds the synthetic set a bundle was trained on (or says
it cannot), the synthetic cache keeps one folder per spec, zoo's log-Mel models take a folder, and an empty
split part, a negative seed or too many speaker folds are one-line errors naming what is wrong."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from converters.data import SyntheticSpec
from converters.data import write as write_synthetic
from converters.evaluate import Selection, select
from converters.pipeline import eval_synthetic, load_records, synthetic_record
from edge_ser.cli import main
from edge_ser.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "laq_mlp_emodb"  # labels: the synthetic set's seven
SMALL = {"duration": 0.5, "n_speakers": 3}
"""A synthetic spec's fields that keep a test's set small and quick to write."""


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every synthetic set and feature the commands make goes to this test's own cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGE_SER_CACHE", str(cache))
    return cache


def _bundle_trained_on(tmp_path: Path, accuracy: dict) -> Path:
    """A copy of a shipped bundle whose manifest says it was trained on `accuracy` (its checksum renewed)."""
    out = tmp_path / "bundle"
    shutil.copytree(BUNDLE, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["accuracy"] = accuracy
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    digest = hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    (out / "manifest.sha256").write_text(f"{digest}  manifest.json\n")
    return out


def _random_made(seed: int, total: int) -> dict:
    return {"kind": "random", "seed": seed, "fold": 0, "sizes": {"train": total - 2, "val": 1, "test": 1}}


# -------------------------------------------------------------------------------- defect 1: synthetic sets
def test_eval_rebuilds_the_synthetic_set_the_bundle_records(
    tmp_path: Path, _cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = SyntheticSpec(n_per_class=4, seed=2, **SMALL)
    made = {
        "test": 0.5,
        "dataset": "synthetic",
        "split": _random_made(2, 28),
        "synthetic": synthetic_record(spec),
    }
    bundle = _bundle_trained_on(tmp_path, made)
    rc = main(["eval", str(bundle), "--data", "synthetic", "--split", "random", "--seed", "2", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    _, records = load_records("synthetic", synthetic=spec, cache_dir=_cache)
    test_part = select(records, Selection(split="random", seed=2))
    assert out["files"]["listed"] == len(test_part) == 7  # that set's test part, not the default set's 21
    assert "the bundle's synthetic set (4 clips per class, seed 2)" in out["selection"]


def test_eval_refuses_a_synthetic_bundle_whose_set_is_not_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = _bundle_trained_on(tmp_path, {"test": 0.3, "dataset": "synthetic", "split": _random_made(0, 70)})
    assert main(["eval", str(bundle), "--data", "synthetic", "--split", "random"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "edge-ser eval: error: the bundle was trained on a synthetic set its manifest does not"
    )
    assert "accuracy.synthetic" in err and "\n" not in err


def test_eval_synthetic_spec_for_each_kind_of_bundle() -> None:
    spec = SyntheticSpec(n_per_class=10, seed=3)
    assert eval_synthetic({"dataset": "synthetic", "synthetic": synthetic_record(spec)}) == spec
    assert eval_synthetic({"dataset": "emodb"}) == SyntheticSpec()  # it saw no synthetic clip
    with pytest.raises(ConfigError, match="does not record"):
        eval_synthetic({"dataset": "synthetic", "split": {"kind": "random", "seed": 3}})
    old = {"dataset": "synthetic", "synthetic": {**synthetic_record(spec), "generator_version": 0}}
    with pytest.raises(ConfigError, match="generator version 0"):
        eval_synthetic(old)


def test_eval_notes_a_folder_of_another_synthetic_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trained = SyntheticSpec(n_per_class=4, **SMALL)
    made = {
        "test": 0.5,
        "dataset": "synthetic",
        "split": _random_made(0, 28),
        "synthetic": synthetic_record(trained),
    }
    bundle = _bundle_trained_on(tmp_path, made)
    other = tmp_path / "other"
    write_synthetic(SyntheticSpec(n_per_class=3, **SMALL), other)
    args = ["eval", str(bundle), "--data", "synthetic", "--root", str(other), "--split", "random", "--json"]
    assert main(args) == 0
    selection = json.loads(capsys.readouterr().out)["selection"]
    assert "holds another synthetic set than the bundle was trained on (n_per_class 3, not 4)" in selection
    assert "clips it never saw" not in selection


def test_synthetic_sets_of_one_seed_keep_their_own_cache_folders(_cache: Path) -> None:
    small = SyntheticSpec(n_per_class=2, **SMALL)
    _, first = load_records("synthetic", synthetic=small, cache_dir=_cache)
    folder = first[0].source.parent
    for other in (
        SyntheticSpec(n_per_class=3, **SMALL),
        SyntheticSpec(n_per_class=2, duration=0.6, n_speakers=3),
    ):
        _, records = load_records("synthetic", synthetic=other, cache_dir=_cache)
        assert records[0].source.parent != folder
    _, again = load_records("synthetic", synthetic=small, cache_dir=_cache)
    assert [r.source for r in again] == [r.source for r in first] and all(r.source.is_file() for r in first)
    assert json.loads((folder / "spec.json").read_text())["spec"] == small.to_dict()  # not overwritten


# ------------------------------------------------------------------------------ defect 2: zoo on a folder
def _class_folders(root: Path, n_per_class: int = 3, speakers: int = 3) -> Path:
    """A folder-per-class tree (<class>/<speaker>_<name>.wav) of synthetic clips, no spec.json."""
    flat = root.parent / f"{root.name}_flat"
    write_synthetic(SyntheticSpec(n_per_class=n_per_class, duration=0.5, n_speakers=speakers), flat)
    for wav in flat.glob("*.wav"):
        label = wav.name.split("_")[1]
        (root / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(wav, root / label / wav.name)
    return root


def test_log_mel_clips_load_from_a_folder(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="converters.lms_train needs the host extra (torch)")
    from converters.lms_train import load_clips

    clips = load_clips(str(_class_folders(tmp_path / "mydata")))
    assert len(clips) == 21 and clips.name == "mydata" and len(set(clips.speakers)) == 3
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in clips.clips)


# --------------------------------------------------------------------- defect 3: one-line errors, no traces
@pytest.mark.parametrize("split", ["speaker", "random"])
def test_train_refuses_an_empty_validation_part(
    tmp_path: Path, split: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch", reason="training needs the host extra (torch)")
    data = _class_folders(tmp_path / "tiny", n_per_class=2, speakers=2)  # one clip per class and speaker
    args = ["train", "--data", str(data), "--split", split, "--folds", "2", "--epochs", "1", "-q"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("edge-ser train: error: tiny: the validation")
    assert f"empty in this {split} split" in err and "clips" in err


def test_train_classifier_names_an_empty_validation_part() -> None:
    pytest.importorskip("torch", reason="training needs the host extra (torch)")
    from torch import nn

    from converters.train import TrainConfig, train_classifier

    X, y = np.zeros((4, 3), np.float32), np.array([0, 1, 0, 1])
    with pytest.raises(ConfigError, match="no validation rows"):
        train_classifier(nn.Linear(3, 2), X, y, X[:0], y[:0], TrainConfig(epochs=1), progress=False)


@pytest.mark.parametrize("command", ["train", "eval"])
def test_a_negative_seed_is_a_usage_error(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _class_folders(tmp_path / "mydata")
    head = (
        ["train", "--epochs", "1", "-q", "--out", str(tmp_path / "out")]
        if command == "train"
        else ["eval", str(BUNDLE)]
    )
    with pytest.raises(SystemExit) as stop:
        main([*head, "--data", str(data), "--split", "random", "--seed", "-1"])
    assert stop.value.code == 2
    assert "argument --seed: -1 must be >= 0" in capsys.readouterr().err


# -------------------------------------------------------------------- defect 4: too many folds, by name
def test_too_many_speaker_folds_name_the_data_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _class_folders(tmp_path / "mydata")
    assert main(["eval", str(BUNDLE), "--data", str(data), "--split", "speaker", "--folds", "5"]) == 2
    assert "error: mydata has 3 speakers; --folds 5 needs at least 5" in capsys.readouterr().err
    _, records = load_records(str(data))
    with pytest.raises(ConfigError, match="^mydata has 3 speakers"):  # the records' own data set name
        select(records, Selection(split="speaker", folds=4))


@pytest.mark.parametrize("command", ["train", "laq"])
def test_a_speaker_split_it_cannot_give_is_refused_before_any_feature(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--folds above the speakers, --fold out of range: said before the features are made (a new folder's take
    minutes), not after them."""
    import converters.pipeline

    def no_features(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("features made before the split was checked")

    monkeypatch.setattr(converters.pipeline, "extract", no_features)
    data = _class_folders(tmp_path / "mydata")
    head = [command, "--data", str(data), "--split", "speaker", "--out", str(tmp_path / "out"), "--no-cache"]
    assert main([*head, "--folds", "5"]) == 2
    said = capsys.readouterr()
    assert "error: mydata has 3 speakers; --folds 5 needs at least 5" in said.err and "[1/" not in said.out
    assert main([*head, "--folds", "3", "--fold", "3"]) == 2
    assert "error: --fold 3 is out of range for 3 folds (0..2)" in capsys.readouterr().err


def test_prepared_synthetic_data_carries_its_spec(_cache: Path) -> None:
    from converters.featurize import FeatureCache
    from converters.pipeline import prepare

    spec = SyntheticSpec(n_per_class=2, seed=1, **SMALL)
    prep = prepare("synthetic", synthetic=spec, cache=FeatureCache(_cache), progress=False)
    assert prep.synthetic == spec  # what a bundle records as accuracy.synthetic
    assert prepare(str(prep.records[0].source.parent), progress=False).synthetic == spec  # the folder itself


def test_laq_records_its_synthetic_set_and_eval_scores_the_bundles_own_test_part(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole path the reviewer took: `laq --data synthetic --n-per-class 10` then `eval --data synthetic`
    scored 21 clips of the default set (3 of them training clips) as "never seen"; laq now records its set."""
    out = tmp_path / "run"
    args = ["laq", "--data", "synthetic", "--n-per-class", "6", "--epochs", "2", "--recipe", "qat-2"]
    assert main([*args, "--tflite", "no", "--out", str(out)]) == 0
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    assert manifest["accuracy"]["synthetic"]["spec"]["n_per_class"] == 6
    capsys.readouterr()
    assert main(["eval", str(out / "bundle"), "--data", "synthetic", "--split", "random", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files"]["listed"] == manifest["accuracy"]["split"]["sizes"]["test"]
    assert report["accuracy"] == pytest.approx(
        manifest["accuracy"]["test"], abs=1e-6
    )  # the report keeps 6 digits


def test_train_and_laq_can_choose_their_epoch_by_validation_uar(tmp_path: Path, capsys, monkeypatch) -> None:
    """Review: train and laq kept the epoch of the best validation accuracy, with no way to choose by UAR, the
    figure every table leads with (an unbalanced corpus: angry 51 clips, sarcasm 4). `--select uar` does."""
    pytest.importorskip("torch", reason="training needs the host extra (torch)")
    import converters.commands as commands

    scored = []
    real = commands.train_classifier

    def spy(*a, **kw):
        scored.append("val_accuracy" in kw)
        return real(*a, **kw)

    monkeypatch.setattr(commands, "train_classifier", spy)
    real_compress = commands.compress

    def spy_compress(*a, **kw):
        scored.append("val_accuracy" in (kw.get("train_kwargs") or {}))
        return real_compress(*a, **kw)

    monkeypatch.setattr(commands, "compress", spy_compress)  # QAT runs take the scorer through train_kwargs
    data = _class_folders(tmp_path / "mine", n_per_class=4, speakers=4)
    common = ["--data", str(data), "--epochs", "2", "--select", "uar"]
    assert main(["train", *common, "--out", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert summary["select"] == "uar" and "val_uar" in summary and "val_accuracy" not in summary
    # the figures printed are the summary's, and its test UAR and accuracy are those of its confusion matrix
    assert f"best epoch {summary['best_epoch']} of" in out and f"val UAR {summary['val_uar']:.3f}\n" in out, (
        out
    )
    cm = np.array(summary["confusion"])
    rows = cm.sum(1) > 0
    assert summary["test_uar"] == pytest.approx(np.mean(np.diag(cm)[rows] / cm.sum(1)[rows]))
    assert summary["test_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert f"test accuracy: {summary['test_accuracy']:.3f}, UAR {summary['test_uar']:.3f}" in out, out
    assert main(["laq", *common, "-q", "--out", str(tmp_path / "l"), "--recipe", "ptq-8"]) == 0
    assert scored == [True, True, True]
