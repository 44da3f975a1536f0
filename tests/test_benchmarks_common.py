"""benchmarks/_common.py's plumbing when the data sets are absent: a benchmark script ends with one line and
status 2 (not a traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks._common import require_datasets, run_main
from edge_ser.errors import ConfigError, DatasetError

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def _results_state() -> dict[str, int]:
    """Every file of benchmarks/results/ with its modification time: a run must leave it as it was."""
    return {str(p.relative_to(RESULTS)): p.stat().st_mtime_ns for p in RESULTS.rglob("*") if p.is_file()}


@pytest.mark.parametrize("script", ["emodb_features", "capture_invariance", "tflite_cross_corpus"])
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
