"""`benchmarks/live_bench.py --against REV`: the older edge_ser it runs beside this one, and the comparison it
writes (the benches themselves run in real time, so they live in benchmarks/, not here)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from benchmarks.live_bench import extract_package, side_by_side
from edge_ser.errors import ConfigError

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or not (Path(__file__).resolve().parents[1] / ".git").exists(),
    reason="--against reads the repository's history: needs git and a clone",
)


def test_a_revision_is_extracted_whole_and_named_by_its_commit(tmp_path: Path) -> None:
    sha = extract_package("HEAD", tmp_path)
    assert re.fullmatch(r"[0-9a-f]{40}", sha)
    assert (tmp_path / "edge_ser" / "__init__.py").is_file() and (
        tmp_path / "edge_ser" / "live" / "bench.py"
    ).is_file()
    with pytest.raises(ConfigError, match="--against no-such-rev: not a revision"):
        extract_package("no-such-rev", tmp_path / "x")


def test_the_comparison_says_both_figures_and_the_difference() -> None:
    def report(cpu: float, features: float, total: float, speech: int) -> dict:
        return {
            "cpu_share": cpu,
            "speech_updates": speech,
            "stages": {"features": {"mean": features}, "total": {"mean": total}},
        }

    text, block = side_by_side(
        report(0.081, 27.2, 28.3, 377), report(0.095, 35.7, 35.7, 377), "1909f63", "1909f63" + "0" * 33
    )
    assert "edge_ser at 1909f63 (1909f63) on the same media and bundle gave **9.5% of one core**" in text
    assert "against this code's 8.1% (-1.4 points)" in text and "features 35.70 against 27.20 ms" in text
    assert (
        block["cpu_share"] == 0.095
        and block["commit"].startswith("1909f63")
        and block["speech_updates"] == 377
    )


@pytest.mark.parametrize("seconds", ["0", "-1", "nan"])
def test_seconds_of_none_or_less_is_a_usage_error(seconds, monkeypatch, capsys) -> None:
    """A review: `--seconds -1` (or 0) was a ValueError traceback from the media maker
    ('need at least one array to concatenate')."""
    import sys

    from benchmarks import live_bench

    monkeypatch.setattr(sys, "argv", ["benchmarks/live_bench.py", "--seconds", seconds])
    with pytest.raises(SystemExit) as exit_:
        live_bench.main()
    assert exit_.value.code == 2
    assert f"--seconds {seconds}: give the length of the media played" in capsys.readouterr().err
