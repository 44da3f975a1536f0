"""What the host's training commands report: UAR beside accuracy (train, laq, the zoo), a refusal by name of a
model they have no data path for (it was trained as laq_mlp, silently), the `--folds 2` validation said as part of
the training speaker's clips, and a note when `--n-per-class` is given for a data set it does not apply to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("torch", reason="training needs the host extra (torch)")

REPO = Path(__file__).resolve().parents[1]
LABELS = ("neutral", "sad", "angry")


def _folder(root: Path, *, speakers: int, per_class: int = 6) -> Path:
    """A small folder data set (`<class>/<speaker>_<n>.wav`) of synthetic speech."""
    from converters.data.synthetic import SyntheticSpec, generate
    from edge_ser.audio import write_wav

    spec = SyntheticSpec(n_per_class=per_class, n_speakers=speakers, labels=LABELS, duration=1.0)
    for i, (wave, label, speaker) in enumerate(generate(spec)):
        write_wav(root / label / f"{speaker}_{i:03d}.wav", wave, spec.sr)
    return root


def _uar_of_confusion(cm) -> float:
    """Mean recall over the classes with a clip (rows true, columns predicted), counted here from scratch."""
    cm = np.asarray(cm, dtype=float)
    rows = cm.sum(1)
    return float(np.mean([cm[i, i] / rows[i] for i in range(len(cm)) if rows[i]]))


# ------------------------------------------------------------------------------------------------ 1. UAR
def test_train_prints_and_records_uar_beside_accuracy(tmp_path: Path, capsys) -> None:
    from edge_ser.cli import main

    data = _folder(tmp_path / "mine", speakers=3)
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--epochs", "2", "--out", str(out), "--cache", str(tmp_path / "c")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    uar = _uar_of_confusion(summary["confusion"])
    assert summary["test_uar"] == pytest.approx(uar)
    assert f"test accuracy: {summary['test_accuracy']:.3f}, UAR {uar:.3f}  (n=" in printed
    assert main([*args, "-q"]) == 0  # the quiet line too
    assert f"test accuracy {summary['test_accuracy']:.3f}, UAR {uar:.3f} (n=" in capsys.readouterr().out


def test_laq_records_test_uar_in_the_manifest_as_eval_measures_it(tmp_path: Path, capsys) -> None:
    """The manifest's accuracy block holds `test_uar` (what `edge-ser info` prints), and `edge-ser eval` on the
    same test part gives the same figures."""
    from edge_ser.cli import main

    data = _folder(tmp_path / "mine", speakers=3)
    out = tmp_path / "run"
    args = ["laq", "--data", str(data), "--epochs", "3", "--recipe", "sensitivity", "--tflite", "no"]
    assert main([*args, "--out", str(out), "--cache", str(tmp_path / "c")]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    acc = json.loads((out / "bundle" / "manifest.json").read_text())["accuracy"]
    assert acc["test_uar"] == summary["qat_test_uar"] and acc["float_test_uar"] == summary["float_test_uar"]
    assert f"QAT {acc['test']:.3f} (UAR {acc['test_uar']:.3f})" in printed
    assert f"test accuracy {acc['float_test']:.3f}, UAR {acc['float_test_uar']:.3f} (split" in printed
    assert main(["info", str(out / "bundle")]) == 0
    assert f"test UAR {acc['test_uar']:.3f}, accuracy {acc['test']:.3f}" in capsys.readouterr().out
    assert main(["eval", str(out / "bundle"), "--data", str(data), "--split", "random", "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)
    one_clip = 1 / acc["split"]["sizes"]["test"]  # engine and torch may part on one borderline clip at most
    assert measured["accuracy"] == pytest.approx(acc["test"], abs=one_clip + 1e-9)
    assert measured["uar"] == pytest.approx(acc["test_uar"], abs=one_clip * len(LABELS) + 1e-9)


def test_voted_uar_is_the_mean_recall_of_the_voted_utterances() -> None:
    """A patch model's UAR is taken over utterances voted as its accuracy is: 3 utterances of 2 patches, all
    voted class 0, two of them class 0: accuracy 2/3, UAR (1 + 0) / 2."""
    import torch

    from converters.zoo import voted_uar

    class First(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x.flatten(1).mean(1), -x.flatten(1).mean(1)], 1)

    ps = SimpleNamespace(
        X=np.ones((6, 1, 2, 2), np.float32), utt=np.repeat([0, 1, 2], 2), clip_y=np.array([0, 0, 1])
    )
    assert voted_uar(First(), ps, np.arange(6), "mean_prob", ("a", "b")) == pytest.approx(0.5)
    assert voted_uar(First(), ps, np.arange(4), "majority", ("a", "b")) == pytest.approx(1.0)


def test_zoo_points_report_uar_beside_accuracy(tmp_path: Path, monkeypatch) -> None:
    """Every zoo point's metrics (the JSON its sweep stores) carry `uar`, and `laq_uar` when compressed; the
    bundle's accuracy block carries both."""
    from edge_ser.cli import main

    monkeypatch.setenv("EDGE_SER_CACHE", str(tmp_path / "cache"))
    data = _folder(tmp_path / "mine", speakers=3)
    out = tmp_path / "runs"
    common = ["zoo", "--data", str(data), "--seeds", "1", "--out", str(out), "--backend", "serial", "-q"]
    assert main([*common, "--models", "svm", "--name", "svm"]) == 0
    (row,) = [json.loads(x) for x in (out / "svm.jsonl").read_text().splitlines()]
    assert 0 <= row["metrics"]["uar"] <= 1 and "acc" in row["metrics"]

    from converters.zoo import ZooPoint, run_point

    p = ZooPoint("laq_mlp", data=str(data), epochs=2, patience=2, qat_epochs=1, laq="sensitivity@2.0")
    r = run_point(p, bundle_out=tmp_path / "b")
    assert 0 <= r["uar"] <= 1 and 0 <= r["laq_uar"] <= 1
    acc = json.loads((tmp_path / "b" / "manifest.json").read_text())["accuracy"]
    assert (acc["test_uar"], acc["test_float_uar"]) == (r["laq_uar"], r["uar"])


# ------------------------------------------------------------------------ 2. a model with no training path
WAVE_CNN = """
import json, sys
import torch
from converters import registry


class WaveCNN(torch.nn.Module):  # a model of a new kind, as docs/input-kinds.md adds one
    def __init__(self, num_classes=7, samples=32000):
        super().__init__()
        self.conv = torch.nn.Conv1d(1, 4, 9, stride=4)
        self.head = torch.nn.Linear(4, num_classes)

    def forward(self, wave):
        return self.head(self.conv(wave[:, None]).mean(2))


def wave_cnn(num_classes=7, **options):
    return WaveCNN(num_classes)


registry.MODELS["wave_cnn"] = registry.ModelEntry(
    "wave_cnn", "__main__:wave_cnn", "waveform", "a 1-D CNN on the waveform", commands=("train", "zoo", "model")
)
from converters.zoo import MODELS
from edge_ser.cli import main

out = sys.argv[1]
codes = {
    "train": main(["train", "--model", "wave_cnn", "--data", "synthetic", "--n-per-class", "3", "--epochs", "1",
                   "--out", out + "/train", "-q"]),
    "laq": main(["laq", "--model", "wave_cnn", "--data", "synthetic", "--n-per-class", "3", "--epochs", "1",
                 "--tflite", "no", "--out", out + "/laq", "-q"]),
    "zoo": main(["zoo", "--models", "wave_cnn", "--data", "synthetic", "--seeds", "1", "--out", out + "/zoo",
                 "--backend", "serial", "-q"]),
}
print(json.dumps({"codes": codes, "zoo_models": list(MODELS)}))
"""


def test_a_model_without_a_training_path_is_refused_by_name_not_trained_as_laq_mlp(tmp_path: Path) -> None:
    """A model registered per docs/input-kinds.md (a new kind, listed for train and zoo): `train` exited 0 having
    trained laq_mlp, and the zoo fed it clip vectors (AttributeError: no set_normalization). Each now refuses it
    with one line naming it and what it trains, and the zoo's default list leaves it out."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "EDGE_SER_CACHE": str(tmp_path / "cache")}
    run = subprocess.run(
        [sys.executable, "-c", WAVE_CNN, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout.splitlines()[-1])
    assert got["codes"] == {"train": 2, "laq": 2, "zoo": 2}, run.stderr
    errors = [line for line in run.stderr.splitlines() if ": error: " in line]
    assert errors[0] == (
        "edge-ser train: error: --model wave_cnn: edge-ser train has no training path for it; it trains laq_mlp, "
        "av_cnn"
    )
    assert errors[1].startswith("edge-ser laq: error: --model wave_cnn: edge-ser laq has no training path")
    assert errors[2].startswith(
        "edge-ser zoo: error: zoo: wave_cnn (torch model, input kind 'waveform') has no"
    )
    assert errors[2].endswith(f"it trains {', '.join(got['zoo_models'])}")
    assert "wave_cnn" not in got["zoo_models"] and "laq_mlp" in got["zoo_models"]
    assert not (tmp_path / "train" / "summary.json").exists() and not (tmp_path / "laq").exists()


# ---------------------------------------------------------------------------- 3. --folds 2 validation
def test_two_fold_validation_is_said_as_the_training_speakers_clips(tmp_path: Path, capsys) -> None:
    from converters.heldout import speakers_line
    from edge_ser.cli import main

    data = _folder(tmp_path / "two", speakers=2)
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--split", "speaker", "--folds", "2", "--epochs", "1",
                 "--out", str(out), "--cache", str(tmp_path / "c")]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    made = json.loads((out / "summary.json").read_text())["split_record"]
    assert (
        made["val_speakers"] == made["train_speakers"]
    )  # validation is part of the training speaker's clips
    said = (
        "; validation: a tenth of the training speakers' clips (too few speakers for a validation speaker); "
        f"test speakers {made['test_speakers'][0]}"
    )
    assert said in printed and "val speakers" not in printed
    separate = {"train_speakers": ["a"], "val_speakers": ["b"], "test_speakers": ["c"]}
    assert speakers_line(separate) == "; val speakers b; test speakers c"  # a validation speaker of its own


# ----------------------------------------------------------------------------------- 4. --n-per-class
def test_n_per_class_on_a_real_data_set_is_noted_as_ignored(tmp_path: Path, capsys) -> None:
    from edge_ser.cli import main

    data = _folder(tmp_path / "mine", speakers=3, per_class=4)
    common = ["train", "--epochs", "1", "--n-per-class", "3", "--cache", str(tmp_path / "c")]
    assert main([*common, "--data", str(data), "--out", str(tmp_path / "real")]) == 0
    note = (
        "edge-ser train: note: --n-per-class is ignored here (it applies to the built-in synthetic data sets"
    )
    assert note in capsys.readouterr().err
    assert (
        json.loads((tmp_path / "real" / "summary.json").read_text())["n_clips"] == 12
    )  # all of the folder's
    assert main([*common, "--data", "synthetic", "--out", str(tmp_path / "synth")]) == 0
    assert "--n-per-class" not in capsys.readouterr().err  # used there
    assert json.loads((tmp_path / "synth" / "summary.json").read_text())["n_clips"] == 21


def test_the_printed_confusion_names_every_column() -> None:
    """Class names cut to four letters (spk01, spk02: 'spk0 spk0') named no column (a review): when the cut names
    collide, the whole names head the columns; otherwise four letters, over aligned counts."""
    import numpy as np

    from converters.commands import _print_confusion

    for classes, head in (
        (["angry", "neutral", "sad"], "angr neut  sad"),
        (["spk01", "spk02"], "spk01 spk02"),
    ):
        lines = []
        _print_confusion(lines.append, classes, np.array([0, 1]), np.array([0, 1]))
        assert lines[1].strip() == head and len(lines) == 2 + len(classes)
