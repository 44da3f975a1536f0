"""`edge-ser run --audio-file` never hangs on its source: a FIFO nobody writes to (named, through a link, or as
/dev/stdin on a stalled pipe) is refused at once with a typed error, and a run playing a long file in real
time stops cleanly on the first SIGTERM or SIGINT. Real subprocesses, real FIFOs, real signals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_ser.audio import write_wav

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "laq_mlp_emodb"
GUARD = 120  # seconds: a hang guard only (the loaded CI machine may be slow), never a timing assertion


def _run(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "edge_ser", "run", str(BUNDLE), "--no-console", "--engine", "numpy", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, **kw,
    )  # fmt: skip


@pytest.mark.parametrize("how", ["fifo", "link to fifo", "/dev/stdin on a stalled pipe"])
def test_a_fifo_source_is_refused_not_waited_on(tmp_path: Path, how: str) -> None:
    fifo = tmp_path / "never.wav"
    os.mkfifo(fifo)
    stdin = None
    if how == "fifo":
        source = fifo
    elif how == "link to fifo":
        source = tmp_path / "link.wav"
        source.symlink_to(fifo)
    else:
        r, w = os.pipe()  # nobody ever writes to w
        stdin, source = r, Path("/dev/stdin")
    p = _run("--audio-file", str(source), stdin=stdin)
    try:
        out, err = p.communicate(timeout=GUARD)
    finally:
        if stdin is not None:
            os.close(r)
            os.close(w)
    assert p.returncode == 2, err
    assert "FIFO" in err and "not a regular file" in err and "Traceback" not in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_real_time_run_of_a_long_file_stops_on_the_first_signal(tmp_path: Path, sig: int) -> None:
    sr = 16000
    t = np.arange(40 * sr) / sr  # 40 s: past the 30 s limit, so the file is streamed while it plays
    y = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    wav = write_wav(tmp_path / "long.wav", y, sr)
    p = _run("--audio-file", str(wav), "--json", "-", "--window", "0.5", "--hop", "0.25")
    try:
        first = p.stdout.readline()  # the loop is running: one update is out
        assert first.startswith("{"), p.stderr.read() if p.poll() is not None else first
        p.send_signal(sig)
        out, err = p.communicate(timeout=GUARD)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert "stopping" in err and (said := re.search(r"\b\d+ updates? over ([\d.]+) s of audio", err)), err
    assert "second" not in err  # one signal was enough: no forced exit
    stream_s = float(said.group(1))
    assert stream_s < 39.0  # it stopped before the file ended
