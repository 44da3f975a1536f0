"""benchmarks/face_cost.py: a number of repeats below one is a usage error, not a traceback after the frames."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("cv2")

import benchmarks.face_cost as fc  # noqa: E402


@pytest.mark.parametrize("repeats", ["0", "-1"])
def test_fewer_than_one_repeat_is_a_usage_error(monkeypatch, capsys, repeats) -> None:
    """`--repeats 0` made the frames, timed nothing and died with statistics.StatisticsError (no median)."""

    def no_frames(*args, **kwargs):
        raise AssertionError("frames were made before --repeats was checked")

    monkeypatch.setattr(fc, "frames", no_frames)
    monkeypatch.setattr(sys, "argv", ["benchmarks/face_cost.py", "--repeats", repeats])
    with pytest.raises(SystemExit) as e:
        fc.run_main(fc.main)
    assert e.value.code == 2 and f"--repeats must be >= 1, got {repeats}" in capsys.readouterr().err
