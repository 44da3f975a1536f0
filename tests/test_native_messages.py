"""A decoder's own complaint about a damaged file ("Premature end of JPEG file", mpg123's "Illegal Audio-MPEG-Header")
is written by native code straight to file descriptor 2; among hundreds of files it did not say which. It now
comes out prefixed with the file's path (`edge_ser.native_log.native_messages_named`)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from edge_ser.native_log import native_messages_named

ROOT = Path(__file__).resolve().parents[1]


def _native_write(text: str) -> None:
    os.write(2, text.encode())  # what C code does: no Python stream in between


def test_native_lines_are_named_once_and_nested_blocks_do_not_name_twice(capfd) -> None:
    with native_messages_named("clip.mp3"):
        _native_write("Note: Trying to resync...\n\nerror: giving up\n")
        with native_messages_named("inner"):
            _native_write("again\n")
    assert capfd.readouterr().err.splitlines() == [
        "clip.mp3: Note: Trying to resync...",
        "clip.mp3: error: giving up",
        "clip.mp3: again",
    ]
    with pytest.raises(ValueError), native_messages_named("x.jpg"):  # held lines are shown on an error too
        _native_write("Corrupt JPEG data\n")
        raise ValueError
    assert capfd.readouterr().err == "x.jpg: Corrupt JPEG data\n"
    seen: list[str] = []

    def elsewhere() -> None:  # another thread does not touch the process's fd 2
        with native_messages_named("t.wav"):
            _native_write("from a thread\n")
        seen.append("done")

    t = threading.Thread(target=elsewhere)
    t.start()
    t.join()
    assert seen == ["done"] and capfd.readouterr().err == "from a thread\n"


def test_a_truncated_jpeg_is_skipped_by_predict_and_named(tmp_path, capfd) -> None:
    """It was classified, the decoded top rows over grey, even as a found face, with only libjpeg's unnamed note."""
    cv2 = pytest.importorskip("cv2")
    from edge_ser.cli import main

    rng = np.random.default_rng(0)
    ok, jpg = cv2.imencode(".jpg", rng.integers(0, 255, (96, 96, 3), dtype=np.uint8))
    assert ok
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(jpg.tobytes()[: len(jpg) // 2])
    assert (
        main(["predict", str(ROOT / "bundles" / "face_fer"), str(bad), "--engine", "numpy"]) == 2
    )  # nothing read
    assert "none of the 1 file(s) could be read" in capfd.readouterr().err
    from edge_ser.errors import VideoFormatError
    from edge_ser.recognizer import Recognizer

    with pytest.raises(
        VideoFormatError, match=r"cut.jpg: the image is truncated \(the decoder says: Premature end"
    ):
        Recognizer(ROOT / "bundles" / "face_fer", "numpy").predict_file(bad)


def test_the_native_log_is_safe_without_stderr_or_temp_space_and_jpegs_are_checked_in_threads(
    tmp_path, monkeypatch
) -> None:
    """Review of the above: with sys.stderr None (pythonw, a daemon) every image read raised AttributeError; with no
    temporary space it raised and leaked fds; and off the main thread a truncated JPEG was still accepted."""
    import sys
    import tempfile

    cv2 = pytest.importorskip("cv2")
    from edge_ser.errors import VideoFormatError
    from edge_ser.vision.image import read_image

    ok, jpg = cv2.imencode(".jpg", np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    good, bad = tmp_path / "good.jpg", tmp_path / "cut.jpg"
    good.write_bytes(jpg.tobytes())
    bad.write_bytes(jpg.tobytes()[: len(jpg) // 2])
    with monkeypatch.context() as m:
        m.setattr(sys, "stderr", None)
        assert read_image(good).shape == (64, 64, 3)
    with monkeypatch.context() as m:
        m.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(3):
            assert read_image(good).shape == (64, 64, 3)
        assert len(os.listdir("/proc/self/fd")) == before
    seen: list[str] = []

    def worker() -> None:
        try:
            read_image(bad)
        except VideoFormatError as e:
            seen.append(str(e))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen and "truncated" in seen[0]
