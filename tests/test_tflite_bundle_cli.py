"""`python -m converters.export.tflite_bundle BUNDLE --data ...` for a bundle made from the user's own folder:
the folder is accepted (it was refused with a traceback: only corpus names were), and a data set the bundle was
not trained on is one line naming the one it was."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from converters.export import tflite_bundle as tb

REPO = Path(__file__).resolve().parents[1]


def _folder(root: Path) -> Path:
    from edge_ser.audio import write_wav

    y = (0.1 * np.sin(np.arange(16000) / 7)).astype(np.float32)
    for spk in ("spk03", "spk08", "spk09"):
        for cls in ("angry", "sad"):
            write_wav(root / cls / f"{spk}_{cls}.wav", y, 16000)
    return root


def test_training_clips_come_from_a_folder_of_your_own(tmp_path):
    data = _folder(tmp_path / "mydata")
    split = {"kind": "refit on every speaker", "train_speakers": ["spk03", "spk09"]}
    bundle = SimpleNamespace(source="b", manifest={"accuracy": {"dataset": "mydata", "split": split}})
    paths = tb.training_paths(bundle, str(data))
    assert sorted(p.name for p in paths) == [
        "spk03_angry.wav",
        "spk03_sad.wav",
        "spk09_angry.wav",
        "spk09_sad.wav",
    ]


def test_train_speakers_that_are_no_list_are_read_as_absent(tmp_path):
    """`train_speakers` of "spk03,spk09" (a hand-edited manifest) was read character by character and a number
    crashed (not iterable): such a part is as if absent (`edge_ser.schema.speaker_ids`), so every clip calibrates,
    with the warning that no training split is recorded."""
    import pytest

    from edge_ser.errors import InputWarning

    data = _folder(tmp_path / "mydata")
    for bad in ("spk03,spk09", 3):
        split = {"kind": "refit on every speaker", "train_speakers": bad}
        bundle = SimpleNamespace(source="b", manifest={"accuracy": {"dataset": "mydata", "split": split}})
        with pytest.warns(InputWarning, match="records no training split"):
            assert len(tb.training_paths(bundle, str(data))) == 6


def test_a_split_or_accuracy_that_is_no_mapping_is_read_as_absent(tmp_path):
    """A hand-edited manifest whose whole `accuracy.split` (or `accuracy`, or `split.sizes`) is a string or a list
    crashed ('str' object has no attribute 'get'): it is as if absent (`edge_ser.schema.sub_record`, the rule
    `edge-ser info` reads it by), so every clip calibrates, with the warning that no training split is recorded."""
    import pytest

    from edge_ser.errors import InputWarning

    data = _folder(tmp_path / "mydata")
    manifests = [{"accuracy": {"dataset": "mydata", "split": bad}} for bad in ("speaker", ["speaker", 0])]
    manifests += [{"accuracy": "mydata"}, {"accuracy": ["mydata"]}]
    manifests += [
        {"accuracy": {"dataset": "mydata", "split": {"kind": "random", "seed": 0, "sizes": "4/1/1"}}}
    ]
    for manifest in manifests:
        bundle = SimpleNamespace(source="b", manifest=manifest)
        if "sizes" in str(manifest):  # a random split is re-made; its sizes only check the count
            assert len(tb.training_paths(bundle, str(data))) > 0
            continue
        with pytest.warns(InputWarning, match="records no training split"):
            assert len(tb.training_paths(bundle, str(data))) == 6


def test_a_training_size_that_is_no_count_is_read_as_absent(tmp_path):
    """Review: a hand-edited `split.sizes.train` of "four" (or a list, or a bool) failed with a bare ValueError
    from int(); like the other malformed parts it is as if absent, so the re-made split is not checked against it.
    A whole number (or its digits) still checks the count."""
    import pytest

    from edge_ser.errors import ConfigError

    data = _folder(tmp_path / "mydata")

    def paths(train: object) -> list[Path]:
        split = {"kind": "random", "seed": 0, "sizes": {"train": train}}
        bundle = SimpleNamespace(source="b", manifest={"accuracy": {"dataset": "mydata", "split": split}})
        return tb.training_paths(bundle, str(data))

    n = len(paths(None))
    for bad in ("four", [4], True, 4.5):
        assert len(paths(bad)) == n
    assert len(paths(n)) == len(paths(str(n))) == len(paths(float(n))) == n
    with pytest.raises(ConfigError, match=f"gives {n} training clips, the manifest says 99"):
        paths(99)


def test_a_split_number_that_is_no_number_is_a_config_error_naming_the_field(tmp_path):
    """Review: a hand-edited seed / fold / folds or skipped_listed entry that is no number failed with a bare
    ValueError or TypeError from int(); the split is re-made from them, so it is a ConfigError naming the field
    and the value."""
    import pytest

    from edge_ser.errors import ConfigError

    data = _folder(tmp_path / "mydata")
    base = {"kind": "speaker", "seed": 0, "fold": 0, "folds": 3}
    for key, bad, extra in (
        ("seed", "zero", {}),
        ("fold", [0], {}),
        ("folds", "three", {}),
        ("skipped_listed", ["a"], {}),
        ("skipped_listed", "12", {}),
        ("seed", None, {"kind": "random"}),
        ("seed", "x", {"kind": "random", "fold": None}),
    ):
        split = {**base, **extra, key: bad}
        split = {k: v for k, v in split.items() if v is not None or k == key}
        bundle = SimpleNamespace(source="b", manifest={"accuracy": {"dataset": "mydata", "split": split}})
        with pytest.raises(ConfigError, match=f"accuracy.split.{key} is {bad!r}".replace("[", r"\[")):
            tb.training_paths(bundle, str(data))


def test_a_data_set_it_was_not_trained_on_is_one_line(tmp_path, capsys):
    data = _folder(tmp_path / "other")
    bundle = tmp_path / "ser"
    import shutil

    shutil.copytree(REPO / "bundles" / "ser_emodb", bundle)
    assert tb.run([str(bundle), "--data", str(data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "no training clips of" in err[0] and "trained on 'emodb' (speakers 03, 08" in err[0]
    )
    assert json.loads((bundle / "manifest.json").read_text()) == json.loads(
        (REPO / "bundles" / "ser_emodb" / "manifest.json").read_text()
    )  # nothing rewritten


def test_another_data_set_for_a_random_split_names_the_one_it_was_trained_on(tmp_path, capsys):
    """A bundle whose split is re-made (laq_mlp_emodb: random, 428 training clips) given another data set said
    only "the random split gives N training clips, the manifest says 428", not which data set to give."""
    import shutil

    data = _folder(tmp_path / "other")
    bundle = tmp_path / "laq"
    shutil.copytree(REPO / "bundles" / "laq_mlp_emodb", bundle)
    assert tb.run([str(bundle), "--data", str(data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "training clips, the manifest says 428: the bundle was trained on 'emodb'" in err[0]
    )
    assert "give --data the data set it was trained on" in err[0]


def test_calibration_shows_a_bar_per_pass_over_the_clips(tmp_path, monkeypatch):
    """Calibration computes every training clip's inputs (and the held-out-like copies') through the device path,
    minutes on a corpus, and said nothing meanwhile (a review): the command's calibration has a bar per pass (on a
    terminal: tqdm's disable=None), and device_rows alone stays quiet."""
    import tqdm.auto

    from edge_ser.bundle import load_bundle

    seen: list[tuple] = []

    def bar(iterable, **kw):
        seen.append((kw.get("desc"), kw.get("disable"), kw.get("unit")))
        return iterable

    monkeypatch.setattr(tqdm.auto, "tqdm", bar)
    b = load_bundle(REPO / "bundles" / "ser_emodb")
    paths = sorted(_folder(tmp_path / "mydata").rglob("*.wav"))
    tb.device_rows(b, paths[:1])
    assert seen == [(None, True, "clip")]
    seen.clear()
    tb.calibration_set(b, str(tmp_path / "mydata"), paths=paths, augment=True, progress=True)
    assert seen == [("training clips", None, "clip"), ("held-out-like copies", None, "clip")]


def test_laq_calibration_shows_a_bar_unless_quiet(monkeypatch, tmp_path):
    """`edge-ser laq`'s TFLite step calibrates with a bar per pass over the training clips, as its training shows
    one (it passed no `progress`: minutes over a corpus with no sign of life); --quiet has none."""
    import pytest

    import edge_ser.bundle
    from converters import commands

    class Stop(Exception):
        pass

    seen = []

    def calibration_set(*a, progress=False, **k):
        seen.append(progress)
        raise Stop

    clip = tmp_path / "a.wav"
    monkeypatch.setattr(edge_ser.bundle, "load_bundle", lambda path: SimpleNamespace())
    monkeypatch.setattr(tb, "training_paths", lambda b, data, root: [clip])
    monkeypatch.setattr(tb, "default_phasing", lambda b: None)
    monkeypatch.setattr(tb, "augment_quantile", lambda phasing: 0.999)
    monkeypatch.setattr(tb, "calibration_set", calibration_set)
    task = SimpleNamespace(prepared=SimpleNamespace(name="mine", records=[SimpleNamespace(source=clip)]))
    for quiet in (False, True):
        args = SimpleNamespace(root=None, data="mine", quiet=quiet, tar=False)
        with pytest.raises(Stop):
            commands._add_tflite(tmp_path, args, task, SimpleNamespace(train=[0]), print)
    assert seen == [True, False]


def test_the_summary_is_in_words_and_says_why_int8_can_outweigh_fp16():
    """The command's last line printed Python dicts and tuples ("sizes {'fp32': 189312, ...}; int8 input
    {'functionals': (0.0123, -3)}"), and an int8 file larger than fp16 (phased copies) went unexplained."""
    int8 = SimpleNamespace(
        data=b"x" * 187064,
        input_quant={"functionals": (0.01234, -3)},
        input_phases={"functionals": 4},
        output_phases=1,
    )
    models = {
        "fp32": SimpleNamespace(data=b"x" * 189312),
        "fp16": SimpleNamespace(data=b"x" * 97480),
        "int8": int8,
    }
    line = tb.summary("b", 535, models, {"functionals": 0.0012})
    assert line.startswith(
        "b: 535 calibration rows; files fp32 189.3 KB, fp16 97.5 KB, int8 187.1 KB (the int8"
    )
    assert "phased int8 stores each weight once per copy" in line
    assert line.endswith("int8 input functionals: scale 0.01234, zero point -3, 4 phased copies, 0.12 % of its "
                         "calibration values saturate")  # fmt: skip
    assert "{" not in line and "(0.0" not in line
    models["int8"] = SimpleNamespace(
        data=b"x" * 50000, input_quant={"features": (0.5, 0)}, input_phases=None, output_phases=1
    )
    line = tb.summary("b", 10, models, {"features": 0.0})
    assert "larger than fp16" not in line and line.endswith(
        "scale 0.5, zero point 0, 0.00 % of its calibration values saturate"
    )
    # larger than fp16 without phasing: not blamed on phased copies (a review)
    models["int8"] = SimpleNamespace(
        data=b"x" * 99000, input_quant={"features": (0.5, 0)}, input_phases=None, output_phases=1
    )
    line = tb.summary("b", 10, models, {"features": 0.0})
    assert "larger than fp16: a small model's per-channel scales" in line and "phased" not in line


def test_max_rows_below_one_is_refused_naming_the_option(tmp_path, capsys):
    """`--max-rows -3` ended in numpy's "negative dimensions are not allowed" traceback and `--max-rows 0` quietly
    calibrated on the extremes alone: both are an argparse error naming the option, before the bundle is read."""
    import pytest

    for bad in ("0", "-3"):
        with pytest.raises(SystemExit) as e:
            tb.run([str(tmp_path / "no_bundle"), "--data", "synthetic", "--max-rows", bad])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "--max-rows" in err and "must be >= 1" in err


def test_warnings_are_one_line_each(monkeypatch):
    """The command's own warnings (a skipped file, a data set's class folder) came in Python's format, each with the
    source file and line that raised it ("/.../converters/pipeline.py:98: DatasetWarning: ...\\n  return path.name,
    ..."): they are one line `python -m converters.export.tflite_bundle: warning: ...`, as the CLI's, while it
    runs, and Python's format is back after it."""
    import warnings

    from edge_ser.errors import InputWarning

    said = []

    def main(argv):
        said.append(warnings.formatwarning(InputWarning("x.wav: skipped"), InputWarning, "p.py", 98, "src"))
        return 0

    monkeypatch.setattr(tb, "main", main)
    before = warnings.formatwarning
    assert tb.run([]) == 0
    assert said == ["python -m converters.export.tflite_bundle: warning: x.wav: skipped\n"]
    assert warnings.formatwarning is before
