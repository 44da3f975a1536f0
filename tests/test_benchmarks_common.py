"""benchmarks/_common.py's plumbing when the data sets are absent: a benchmark script ends with one line and
status 2 (not a traceback), and a script that falls back to synthetic inputs writes `<name>_synthetic` results,
never the committed tables made on real data."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import _common
from benchmarks._common import require_datasets, results_name, run_main, write_results
from edge_ser.errors import ConfigError, DatasetError

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def _results_state() -> dict[str, int]:
    """Every file of benchmarks/results/ with its modification time: a run must leave it as it was."""
    return {str(p.relative_to(RESULTS)): p.stat().st_mtime_ns for p in RESULTS.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "script", ["emodb_features", "capture_invariance", "tflite_cross_corpus", "utterance_length"]
)
def test_benchmark_without_data_exits_2_with_one_line(script: str, tmp_path: Path) -> None:
    """An empty data root: the script's DatasetError is one `<script>.py: error: ...` line saying what
    EDGE_SER_DATA should hold, status 2, and nothing is written into the repo's results."""
    before = _results_state()
    env = {**os.environ, "EDGE_SER_DATA": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / f"{script}.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        f"{script}.py: error: emodb: EDGE_SER_DATA={tmp_path} has no folder named emodb"
    )
    assert "point EDGE_SER_DATA at the folder that holds emodb/" in lines[0]
    assert _results_state() == before


def test_run_main_prints_an_edge_ser_error_as_one_line(capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["benchmarks/some_bench.py"])

    def fails() -> None:
        raise ConfigError("bad value")

    with pytest.raises(SystemExit) as exit_:
        run_main(fails)
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "some_bench.py: error: bad value\n"


def test_run_main_keeps_bugs_and_exit_status() -> None:
    """Any other exception is a bug: it escapes with its traceback. A main's return value is the status."""

    def bug() -> None:
        raise KeyError("oops")

    with pytest.raises(KeyError):
        run_main(bug)
    for status in (0, 3, None):
        with pytest.raises(SystemExit) as exit_:
            run_main(lambda status=status: status)
        assert exit_.value.code == status


def test_require_datasets_says_what_the_data_root_should_hold(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGE_SER_DATA", str(tmp_path))
    (tmp_path / "emodb").mkdir()
    require_datasets("emodb", "emodb")
    with pytest.raises(DatasetError, match="point EDGE_SER_DATA at the folder that holds ravdess_speech/"):
        require_datasets("emodb", "ravdess")


def test_synthetic_results_get_their_own_name(monkeypatch, tmp_path: Path, capsys) -> None:
    assert results_name("features_speed", synthetic=False) == "features_speed"
    assert results_name("backends_ser", synthetic=True) == "backends_ser_synthetic"
    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["benchmarks/features_speed.py"])
    jpath, mpath = write_results("features_speed", {"rows": []}, "# table", synthetic=True)
    assert (jpath.name, mpath.name) == ("features_speed_synthetic.json", "features_speed_synthetic.md")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "features_speed_synthetic.json",
        "features_speed_synthetic.md",
    ]
    assert "features_speed_synthetic.{md,json}" in capsys.readouterr().out
    jpath, _ = write_results("features_speed", {"rows": []}, "# table")
    assert jpath.name == "features_speed.json" and capsys.readouterr().out == ""


def test_backends_speech_clips_are_marked_synthetic_without_emodb(monkeypatch, tmp_path: Path) -> None:
    """backends.py and onnx_fp16.py name their results by this flag (seeded noise: `<name>_synthetic`)."""
    from benchmarks.backends import speech_clips

    monkeypatch.setenv("EDGE_SER_DATA", str(tmp_path))
    clips, source, synthetic = speech_clips(2)
    assert synthetic and len(clips) == 2 and "noise" in source


def test_write_results_into_a_folder_of_the_users(monkeypatch, tmp_path: Path) -> None:
    """`folder`: the tables of a run on the user's own recordings go there (made if absent), with the command
    that made them, and benchmarks/results/ is left as it was."""
    before = _results_state()
    monkeypatch.setattr(sys, "argv", ["benchmarks/ship_ser.py", "--data", "mydata", "--out", "b"])
    folder = tmp_path / "b.tables"
    jpath, mpath = write_results("ship_ser_choice_mydata", {"rows": []}, "# table", folder=folder)
    assert (jpath, mpath) == (folder / "ship_ser_choice_mydata.json", folder / "ship_ser_choice_mydata.md")
    assert mpath.read_text().endswith("Made by: `python benchmarks/ship_ser.py --data mydata --out b`\n")
    assert _results_state() == before


def test_run_main_prints_our_warnings_as_one_line(monkeypatch) -> None:
    """Review: ship_ser.py printed a data set's warnings in Python's format, with the source line
    ('converters/pipeline.py:96: DatasetWarning ... return path.name, check_decodable(...)')."""
    import warnings

    from edge_ser.errors import InputWarning

    monkeypatch.setattr(sys, "argv", ["benchmarks/some_bench.py"])
    said = []

    def warns() -> None:
        said.append(warnings.formatwarning(InputWarning("x.wav: skipped"), InputWarning, "p.py", 9, "src"))

    before = warnings.formatwarning
    with pytest.raises(SystemExit):
        run_main(warns)
    assert said == ["some_bench.py: warning: x.wav: skipped\n"] and warnings.formatwarning is before


def test_results_record_the_library_versions() -> None:
    """Audit: a nested run that did not reproduce here could not be traced to a library: the results files
    recorded the Python version and CPU only."""
    from benchmarks._common import machine

    said = machine()["versions"]
    assert "numpy " in said and "edge-ser " in said


def test_folder_problem_names_a_file_where_a_results_folder_would_be(tmp_path: Path) -> None:
    """An output folder option that is a file (or under one) is said before the run, not by write_results'
    mkdir after it."""
    from benchmarks._common import folder_problem

    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert folder_problem(tmp_path) is None and folder_problem(tmp_path / "new" / "deeper") is None
    assert folder_problem(a_file) == "exists and is not a folder"
    assert folder_problem(a_file / "sub" / "t") == f"{a_file} is a file, not a folder"


def test_timnet_loso_refuses_bad_folds_speeds_and_laq_before_training(monkeypatch) -> None:
    """A review: `--laq foo` trained the first fold before compress refused it; `--folds 10` trained the folds
    listed before it, then an IndexError; a word in --folds or --speeds was a ValueError traceback."""
    from types import SimpleNamespace

    import converters.data.loaders as loaders
    import converters.seq_train as seq_train
    from benchmarks import timnet_loso

    records = [SimpleNamespace(speaker=f"s{i}", label=lab) for i in range(10) for lab in ("a", "b") * 2]
    monkeypatch.setattr(loaders, "load_dataset", lambda name: records)

    def no_training(*a, **k):
        raise AssertionError("a fold was trained before the arguments were checked")

    monkeypatch.setattr(seq_train, "train_timnet_fold", no_training)
    for argv, said in (
        (["--laq", "sensitivty@2.0"], "unknown recipe 'sensitivty@2.0'"),
        (["--folds", "0,x"], "--folds '0,x' / --speeds '0.9,1.0,1.1': give numbers separated by commas"),
        (["--speeds", "0.9,fast"], "give numbers separated by commas"),
        (["--folds", "0,10"], "--folds: 10 not among the folds 0..9"),
        (["--folds", "-1"], "--folds: -1 not among the folds 0..9"),
    ):
        with pytest.raises(ConfigError, match=re.escape(said)):
            timnet_loso.main(argv)


def test_backends_refuses_counts_below_1_and_names_the_bundles_it_ran(monkeypatch, capsys) -> None:
    """A review: `--clips 0` was a ValueError traceback, `--runs 0` wrote a table of 0 calls; a --bundles run's
    heading said 'every shipped bundle' over its one bundle (backends_face_fer.md)."""
    import argparse

    from benchmarks import backends

    monkeypatch.setattr(backends, "run", lambda args: (_ for _ in ()).throw(AssertionError("ran")))
    for flag in ("--clips", "--threads", "--runs", "--rounds"):
        monkeypatch.setattr(sys, "argv", ["benchmarks/backends.py", flag, "0"])
        with pytest.raises(SystemExit) as exit_:
            backends.main()
        assert exit_.value.code == 2 and f"{flag} 0: at least 1" in capsys.readouterr().err
    args = argparse.Namespace(threads=1, runs=1000, bundles=["bundles/face_fer"])
    assert backends.markdown([], "x", args, {}).startswith("# Engines side by side: face_fer, 1 thread(s)")
    args.bundles = None
    assert backends.markdown([], "x", args, {}).startswith("# Engines side by side: every shipped bundle, 1")


def test_backends_subset_run_does_not_replace_the_full_table(monkeypatch) -> None:
    """A review: `backends.py --bundles X` without --name wrote backends.md, the table of every shipped bundle,
    with X's rows alone. Its default name is now backends_<bundle>_...; the full run keeps backends."""
    from benchmarks import backends

    names = []
    monkeypatch.setattr(backends, "run", lambda args: ([], backends.SpeechClips([], "x", False)))
    monkeypatch.setattr(backends, "write_results", lambda name, *a, **k: names.append(name))
    for argv in (
        ["--bundles", "bundles/face_fer/"],
        ["--bundles", "bundles/ser_emodb", "bundles/ser_ravdess"],
        [],
        ["--bundles"],
        ["--bundles", "bundles/face_fer", "--name", "mine"],
    ):
        monkeypatch.setattr(sys, "argv", ["benchmarks/backends.py", *argv])
        backends.main()
    assert names == ["backends_face_fer", "backends_ser_emodb_ser_ravdess", "backends", "backends", "mine"]


def test_zoo_refuses_negative_counts_before_any_sweep(monkeypatch, capsys) -> None:
    """A review: `zoo.py --seeds -1` ran no split and wrote zoo.md saying 'seeds 0..-2'; the other scripts refuse
    negative seeds (parse_seeds)."""
    pytest.importorskip("torch")
    from benchmarks import zoo

    monkeypatch.setattr(zoo, "run", lambda *a: (_ for _ in ()).throw(AssertionError("a sweep ran")))
    for flag in ("--seeds", "--folds", "--laq-seeds"):
        monkeypatch.setattr(sys, "argv", ["benchmarks/zoo.py", flag, "-1"])
        with pytest.raises(SystemExit) as exit_:
            zoo.main()
        assert exit_.value.code == 2 and f"{flag} -1: a count, 0 or more" in capsys.readouterr().err


def test_zoo_rerun_of_its_command_keeps_the_shipped_bundle(monkeypatch, capsys) -> None:
    """A review: zoo.json's own command (--report-only ... --ship bundles/tiny_transformer_emodb) retrained and
    overwrote the shipped bundle (about an hour), since the stored point, made before ZooPoint had `files`,
    no longer equalled the point as a dict. It keeps the bundle and writes its Shipped paragraph again."""
    pytest.importorskip("torch")
    import json
    import shlex

    from benchmarks import zoo

    command = json.loads((RESULTS / "zoo.json").read_text())["command"]
    monkeypatch.setattr(zoo, "run", lambda *a: [])
    monkeypatch.setattr(zoo, "run_point", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    written = {}
    monkeypatch.setattr(zoo, "write_results", lambda name, payload, md: written.update(md=md))
    monkeypatch.setattr(sys, "argv", shlex.split(command)[1:])
    assert zoo.main() == 0
    assert "\n\nShipped `bundles/tiny_transformer_emodb`: tiny_transformer with DC removal" in written["md"]
    stored = json.loads((zoo.OUT / "shipped.json").read_text())["point"]
    assert zoo.same_point(stored, zoo.ZooPoint.from_point(stored))
    assert not zoo.same_point({**stored, "seed": 1}, zoo.ZooPoint.from_point(stored))
    assert not zoo.same_point({**stored, "no_such_key": 1}, zoo.ZooPoint.from_point(stored))


def test_zoo_subset_run_does_not_replace_the_full_table() -> None:
    """A review: `zoo.py --models rf` wrote zoo.md, the table of every model, with rf's rows alone (as backends.py
    did with --bundles). A subset's results are zoo_<model>_...; every model, in any order, keeps zoo."""
    pytest.importorskip("torch")
    from benchmarks import zoo

    assert zoo.results_name(["rf"]) == "zoo_rf"
    assert zoo.results_name(["rf", "svm"]) == "zoo_rf_svm"
    assert zoo.results_name(list(reversed(zoo.MODELS))) == "zoo"


def test_resumed_seconds_keep_the_time_of_the_run_resumed(monkeypatch, tmp_path: Path) -> None:
    """A review: lms_search.py rerun with every point done wrote lms_sweep.json's seconds as 0.5 (the resume's
    time), not the search's 1226. A resume keeps the recorded time, plus its own when it computed points; a
    fresh run, or one whose results file another command made, records its own time."""
    import json

    from benchmarks._common import resumed_seconds

    monkeypatch.setattr(sys, "argv", ["benchmarks/lms_search.py"])
    say = {"command": "python benchmarks/lms_search.py", "seconds": 1226.0}
    (tmp_path / "lms_sweep.json").write_text(json.dumps(say))
    for computed, resumed, seconds in ((0, 26, 1226.0), (3, 23, 1326.0), (26, 0, 100.0)):
        got = resumed_seconds("lms_sweep", 100.0, computed=computed, resumed=resumed, folder=tmp_path)
        assert got == seconds
    assert resumed_seconds("other", 100.0, computed=0, resumed=26, folder=tmp_path) == 100.0
    monkeypatch.setattr(sys, "argv", ["benchmarks/lms_search.py", "--top", "3"])
    assert resumed_seconds("lms_sweep", 100.0, computed=0, resumed=26, folder=tmp_path) == 100.0


def test_lms_search_rerun_with_every_point_done_keeps_its_seconds(monkeypatch) -> None:
    """The committed search rerun: every point is in its sweep files, so nothing trains, and lms_sweep.json's
    seconds stay the search's."""
    pytest.importorskip("torch")
    import json

    from benchmarks import lms_search

    class DoneSweep(lms_search.Sweep):
        def run(self):
            assert not self.pending(), "a point of the committed search would train"
            return super().run()

    written = {}
    monkeypatch.setattr(lms_search, "Sweep", DoneSweep)
    monkeypatch.setattr(lms_search, "write_results", lambda name, payload, md: written.update(payload))
    committed = json.loads((RESULTS / "lms_sweep.json").read_text())
    monkeypatch.setattr(sys, "argv", ["benchmarks/lms_search.py"])
    assert lms_search.main() == 0
    assert written["seconds"] == committed["seconds"] and written["best"] == committed["best"]


def test_the_version_recorded_is_the_running_code_and_pyproject_agrees(monkeypatch) -> None:
    """Review: reports took edge-ser's version from the installed distribution's metadata, which named a stale
    install when a checkout ran through PYTHONPATH; and the version is written twice (pyproject.toml and
    edge_ser.__version__), which nothing kept in step."""
    from importlib import metadata

    import tomllib

    import edge_ser
    from edge_ser.versions import library_versions

    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda d: "0.0.1-stale" if d == "edge-ser" else real(d))
    assert library_versions(("edge-ser",)) == {"edge-ser": edge_ser.__version__}
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == edge_ser.__version__
