"""benchmarks/face_geometry.py: a `--limit` smoke run is checked before any work and never replaces the committed
3,589-image table (benchmarks/results/face_fer_geometry.{md,json})."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("cv2")

import benchmarks.face_geometry as fg  # noqa: E402


def _main(monkeypatch, capsys, *argv: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["benchmarks/face_geometry.py", *argv])
    with pytest.raises(SystemExit) as e:
        fg.run_main(fg.main)
    return e.value.code, capsys.readouterr().err


@pytest.mark.parametrize("limit", ["0", "-5"])
def test_a_limit_below_one_is_a_usage_error_before_any_data(monkeypatch, capsys, limit) -> None:
    """`--limit 0` wrote a table of NaNs over the committed one; `--limit -5` checked all but the last 5 images."""

    def no_data(*args, **kwargs):
        raise AssertionError("FER-2013 was read before --limit was checked")

    monkeypatch.setattr(fg, "find_dataset", no_data)
    monkeypatch.setattr(fg, "write_results", no_data)
    code, err = _main(monkeypatch, capsys, "--limit", limit)
    assert code == 2 and f"--limit must be >= 1, got {limit}" in err, err


def test_only_the_full_run_writes_the_committed_name(tmp_path) -> None:
    assert fg.output_name(None) == "face_fer_geometry"
    assert fg.output_name(50) == "face_fer_geometry_partial"
    # another bundle or engine wrote over the shipped bundle's record: a trial gets its own name
    trial = tmp_path / "trial"
    assert fg.output_name(None, fg.REPO / "bundles" / "face_fer") == "face_fer_geometry"
    assert fg.output_name(None, trial) == "face_fer_geometry_trial"
    assert fg.output_name(50, trial, "numpy") == "face_fer_geometry_trial_numpy_partial"
    assert fg.output_name(None, engine="numpy") == "face_fer_geometry_numpy"
    assert fg.output_name(None, tmp_path / "trial.tar") == "face_fer_geometry_trial"
    # --name, and a --limit run under it is still partial
    assert fg.output_name(None, trial, name="mine") == "mine"
    assert fg.output_name(5, name="face_fer_geometry") == "face_fer_geometry_partial"


def test_a_limit_spreads_its_images_over_the_class_sorted_set() -> None:
    """PublicTest's arrays are sorted by class: `--limit 150` took the first 150, all "angry"."""
    keep = fg.sample(3589, 150)
    assert len(keep) == 150 and keep[0] == 0 and keep[-1] == 3588 and keep == sorted(set(keep))
    assert (
        fg.sample(3589, 1) == [0] and fg.sample(10, 10) == slice(None) and fg.sample(10, None) == slice(None)
    )
