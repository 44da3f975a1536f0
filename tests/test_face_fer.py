"""benchmarks/face_fer.py: a stage whose checkpoint is missing is a one-line error naming the stage to run
first (before any data is read), and the script and its results file say which chain of commands makes the
shipped bundles/face_fer (`ship` alone writes the bundle before its test-time views and Haar search)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("torch")

import benchmarks.face_fer as ff  # noqa: E402
from edge_ser.errors import ConfigError  # noqa: E402

LOAD = ff.load
"""The real `load` (the `empty_cache` fixture replaces it with one that fails)."""

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
CHAIN = ("face_fer.py train", "compress", "ship", "face_views.py --write", "face_detect.py --write")


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    """face_fer's checkpoint folder is an empty temp folder; main's module globals are restored afterwards."""
    monkeypatch.setattr(ff, "CACHE", tmp_path)
    for name in (
        "AUGMENT",
        "CFG",
        "DEVICE_VIEWS",
        "FLOAT",
        "HOLDOUT",
        "PACKING",
        "PLAIN",
        "QAT",
        "QAT_EPOCHS",
        "QAT_SCALES",
        "QAT_TEACHER",
    ):
        monkeypatch.setattr(ff, name, getattr(ff, name))

    def no_data():
        raise AssertionError(
            "the data and the teacher's logits were loaded before the checkpoint was checked"
        )

    monkeypatch.setattr(ff, "load", no_data)
    return tmp_path


def _main(monkeypatch, capsys, *argv: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["benchmarks/face_fer.py", *argv])
    with pytest.raises(SystemExit) as e:
        ff.run_main(ff.main)
    return e.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "have", "missing", "run_first"),
    [
        (("ship",), [], "float.pt", "train"),
        (("ship",), ["float.pt"], "compressed.pt", "compress"),
        (("compress",), [], "float.pt", "train"),
        (("train", "--more", "6"), [], "float.pt", "train"),
        (("ship", "--qat-epochs", "24"), ["float.pt", "compressed.pt"], "compressed_qat24.pt", "compress"),
        (("ship", "--qat-scales", "learned"), ["float.pt", "compressed.pt"], "compressed_lsq.pt", "compress"),
    ],
)
def test_a_missing_checkpoint_is_one_line_naming_the_stage_to_run(
    empty_cache, monkeypatch, capsys, argv, have, missing, run_first
) -> None:
    """From a clean clone `ship` died with a raw traceback (FileNotFoundError: .../face/compressed.pt) after
    loading FER-2013 and the teacher's logits; now status 2 and one line, before any data."""
    for name in have:
        (empty_cache / name).write_bytes(b"")
    code, err = _main(monkeypatch, capsys, *argv)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("face_fer.py: error: ") and missing in err
    assert f"run `python benchmarks/face_fer.py {run_first}` first" in err


def test_require_checkpoints_is_a_config_error_and_train_needs_none(empty_cache) -> None:
    ff.require_checkpoints("train")
    with pytest.raises(ConfigError, match="compress"):
        (empty_cache / "float.pt").write_bytes(b"")
        ff.require_checkpoints("ship")


def test_the_docstring_and_help_state_the_chain_that_makes_the_shipped_bundle(monkeypatch, capsys) -> None:
    """`ship` alone writes the bundle before its views: the script says so, and which commands follow."""
    doc = ff.__doc__
    at = [doc.index(step) for step in CHAIN]
    assert at == sorted(at)
    assert "BEFORE the views" in doc and "benchmarks/results/face_views.md" in doc
    monkeypatch.setattr(sys, "argv", ["face_fer.py", "--help"])
    with pytest.raises(SystemExit):
        ff.main()
    assert "face_detect.py --write" in capsys.readouterr().out


def test_the_results_file_says_its_bundle_is_the_one_before_the_views() -> None:
    """face_fer.md labelled its 61.5 % / 55.3 % rows "(crop + mirror, the bundle)" while README.md and
    docs/face.md give the shipped bundle (with its views) at 62.9 % / 56.7 %, measured by face_views.py. The
    generator (`ship_markdown`) and the committed file now say what the rows are and where the shipped figure
    is; the committed file's table is the generator's on the committed payload."""
    payload = json.loads((RESULTS / "face_fer.json").read_text())
    generated = ff.ship_markdown(payload)
    committed = (RESULTS / "face_fer.md").read_text()
    table = [line for line in generated.splitlines() if line.startswith("|")]
    assert table == [line for line in committed.splitlines() if line.startswith("|")]
    for text in (generated, committed):
        assert "the bundle)" not in text and "before its views" in text
        assert "`benchmarks/results/face_views.md`" in text
        chain = text[text.index("bundles/face_fer is made by") :]
        at = [chain.index(step) for step in CHAIN]
        assert at == sorted(at)
    views = (RESULTS / "face_views.md").read_text()
    shipped = json.loads((ff.REPO / "bundles" / "face_fer" / "manifest.json").read_text())["accuracy"]
    assert f"{100 * shipped['test']:.1f} % | {100 * shipped['uar']:.1f} %" in views  # 62.9 % | 56.7 %


def test_a_trial_held_out_of_training_is_a_fixed_disjoint_draw_and_keeps_its_own_checkpoints(
    empty_cache, monkeypatch, capsys
) -> None:
    """`--holdout N` (a trial's validation set, never PublicTest): N Training images moved out of training by a fixed
    draw, their teacher logits with them; the trial's checkpoints, and the full-resolution stem's, sit in folders of
    their own; ship refuses it (it writes the bundle from the model trained on all)."""
    import numpy as np

    n = 40
    X = np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 1, 2, 2), np.float32)
    d = {"X": X, "y": np.arange(n) % 7, "zt": np.arange(n)[:, None] * np.ones((1, 7)), "n_images": n}
    a, b = ff.held_out(d, 10), ff.held_out(d, 10)
    rows = lambda part: set(part[:, 0, 0, 0].astype(int))  # noqa: E731
    assert rows(a["Xv"]) == rows(b["Xv"]) and len(rows(a["Xv"])) == 10 and a["n_images"] == 30
    assert rows(a["X"]).isdisjoint(rows(a["Xv"])) and rows(a["X"]) | rows(a["Xv"]) == set(range(n))
    assert (a["zt"][:, 0] == a["X"][:, 0, 0, 0]).all() and (a["zv"][:, 0] == a["Xv"][:, 0, 0, 0]).all()
    assert a["val"] is None
    with pytest.raises(ConfigError, match="--holdout 30"):
        ff.held_out(d, 30)

    code, err = _main(monkeypatch, capsys, "compress", "--holdout", "10", "--stem-stride", "1")
    assert code == 2 and str(empty_cache / "holdout10" / "stem1" / "float.pt") in err, err
    code, err = _main(monkeypatch, capsys, "ship", "--holdout", "10")
    assert code == 2 and "--holdout is a trial's validation" in err, err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("train", "--epochs", "0"), "--epochs must be >= 1, got 0"),
        (("train", "--more", "-2"), "--more must be >= 0, got -2"),
        (("compress", "--epochs", "5"), "--more and --epochs are train's options, not compress's"),
        (("ship", "--more", "6"), "--more and --epochs are train's options, not ship's"),
        (("train", "--qat-scales", "learned"), "--qat-epochs, --qat-teacher and --qat-scales are compress's"),
        (("train", "--qat-teacher", "mix"), "--qat-epochs, --qat-teacher and --qat-scales are compress's"),
        (("train", "--qat-epochs", "24"), "--qat-epochs, --qat-teacher and --qat-scales are compress's"),
        (("train", "--holdout", "-3"), "--holdout -3: give N >= 1"),
        (("train", "--holdout", "3000", "--device-views"), "not with --device-views"),
    ],
)
def test_bad_training_options_are_usage_errors_before_any_data(empty_cache, monkeypatch, capsys, argv, says):
    """`train --epochs 0` loaded FER-2013 and the teacher's logits (minutes), trained nothing and saved the untrained
    student over float.pt; `compress --epochs 5` ran with the option ignored, and so did `train --qat-scales learned`
    (a float run, as if the QAT option applied). Now each is a usage error first."""
    code, err = _main(monkeypatch, capsys, *argv)
    assert code == 2 and says in err, err
    assert not (empty_cache / "float.pt").exists()


def test_a_holdout_too_large_is_refused_before_the_teachers_logits(empty_cache, monkeypatch) -> None:
    """`--holdout 20000` was refused only after the teacher's logits of every Training image (held_out)."""
    import numpy as np

    arrays = SimpleNamespace(images=np.zeros((100, 48, 48), np.uint8), labels=np.zeros(100, np.int64))
    monkeypatch.setattr(ff, "fer_arrays", lambda *a, **k: arrays)
    monkeypatch.setattr(ff, "data_root", lambda: empty_cache)

    def no_teacher(images):
        raise AssertionError("the teacher's logits were computed before --holdout was checked")

    monkeypatch.setattr(ff, "mirrored_teacher", no_teacher)
    monkeypatch.setattr(ff, "HOLDOUT", 60)
    with pytest.raises(ConfigError, match="--holdout 60: between 1 and half"):
        LOAD()


def test_the_protocol_says_when_the_qat_learned_its_scales(monkeypatch) -> None:
    """`ship --qat-scales learned` wrote bundles/face_fer and its results with the recipe's words ("QAT 12 epochs,
    last kept"), so an LSQ model was recorded as the rule's; the recipe's words are unchanged."""
    monkeypatch.setattr(ff, "QAT_SCALES", "rule")
    assert ff.qat_protocol() == f"QAT {ff.QAT.epochs} epochs, last kept"
    monkeypatch.setattr(ff, "QAT_SCALES", "learned")
    assert ff.qat_protocol() == f"QAT {ff.QAT.epochs} epochs, its per-channel scales learned (LSQ), last kept"
