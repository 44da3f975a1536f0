"""Live outputs: console table, JSON lines, OpenCV overlay, the local web page (also in headless Chromium),
and clean stops on SIGINT / SIGTERM."""

from __future__ import annotations

import base64
import dataclasses
import io
import itertools
import json
import os
import queue
import select
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from edge_ser.errors import ConfigError
from edge_ser.live.outputs import Output, OutputError, Outputs, OutputSettings, make_outputs
from edge_ser.live.outputs._json import result_json
from edge_ser.live.outputs._palette import css_color
from edge_ser.live.outputs.console import ConsoleOutput, bar, format_line, format_table
from edge_ser.live.outputs.jsonl import JsonlOutput, read_jsonl
from edge_ser.live.outputs.overlay import (
    OverlayWindow,
    blank_frame,
    display_status,
    draw_overlay,
    label_color,
    overlay_layout,
)
from edge_ser.live.outputs.web import WebServer
from edge_ser.live.result import NO_RESULT, SILENCE, LiveResult, StageTimes
from edge_ser.live.signals import StopFlag

REPO = Path(__file__).resolve().parents[1]
LABELS = ("angry", "happy", "sad", "neutral")
HANG_S = 60.0
"""Hang guard of every wait below: long enough that a loaded machine never trips it, so only a hang fails."""


def make_result(t: float = 1.0, label: str = "angry", *, speech: bool = True, **kw) -> LiveResult:
    """A fused-mode result with `label` on top (0.8), or a silence window when speech=False."""
    if not speech:
        base = {"t": t, "labels": LABELS, "probs": (), "smoothed": (), "label": SILENCE, "confidence": 0.0}
        base |= {"speech": False, "level_db": float("-inf"), "mode": "audio"}
    else:
        sm = tuple(0.8 if x == label else 0.2 / 3 for x in LABELS)
        base = {"t": t, "labels": LABELS, "probs": sm, "smoothed": sm, "label": label, "confidence": 0.8}
        base |= {"speech": True, "level_db": -21.5, "mode": "fused", "face_box": (200, 120, 160, 160)}
        base |= {"frame_size": (640, 480), "times": StageTimes(1.0, 3.0, 2.0, 4.0, 10.0)}
    base.update(kw)
    return LiveResult(**base)


# -- console -----------------------------------------------------------------------------------------------
def test_console_log_format_is_one_line_per_update() -> None:
    buf = io.StringIO()
    con = ConsoleOutput(buf)
    assert not con.tty and isinstance(con, Output)
    for i in range(3):
        con.emit(make_result(t=i * 0.5))
    con.emit(make_result(t=2.0, speech=False, notes=("camera lost",)))
    con.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 4 and "\x1b" not in buf.getvalue()
    # a digital full-scale level, said dBFS as everywhere else (it read "level=-21.5dB")
    assert lines[1].startswith("t=0.50 label=angry conf=0.80 speech fused level=-21.5dBFS | ")
    assert "angry=0.80 happy=0.07" in lines[1]
    assert "total=10.0" in lines[1] and "overflows=0" in lines[1]
    assert "label=silence" in lines[3] and "level=-inf " in lines[3] and "notes=camera lost" in lines[3]
    with pytest.raises(OutputError):
        con.emit(make_result())


def test_console_shows_no_voice_gate_or_level_for_a_face_only_bundle() -> None:
    """A face-only bundle (mode "video") opens no microphone: its lines used to read "silence video
    level=-infdB"; they say whether a face was seen instead."""
    buf = io.StringIO()
    con = ConsoleOutput(buf)
    con.emit(make_result(mode="video", level_db=float("-inf")))
    con.emit(dataclasses.replace(make_result(t=2.0, speech=False, mode="video"), label="no face"))
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("t=1.00 label=angry conf=0.80 video |") and "level=" not in lines[0]
    assert lines[1].startswith("t=2.00 label=no face conf=0.00 video |") and "silence" not in lines[1]
    no_face = dataclasses.replace(make_result(speech=False, mode="video"), label="no face")
    table = "\n".join(format_table(no_face))
    assert "mode=video  no face" in table and "dBFS" not in table and "silence" not in table
    assert "dBFS" in "\n".join(format_table(make_result()))


def test_console_tty_table_redraws_in_place() -> None:
    buf = io.StringIO()
    con = ConsoleOutput(buf, tty=True, ascii_bars=True, bar_width=20)
    con.emit(make_result(fallback="no face seen", mode="audio", overflows=3))
    first = buf.getvalue()
    n = first.count("\n")
    assert not first.startswith("\x1b")
    assert "mode=audio (fallback: no face seen)" in first and "SPEECH" in first and "overflows 3" in first
    row = next(x for x in first.splitlines() if x.startswith("> angry"))
    assert "#" * 16 + "." * 4 + "  0.80" in row  # round(0.8 * 20) full characters
    assert "-> angry (0.80)" in first and "inference 4.0" in first
    con.emit(make_result(t=2.0, label="sad"))
    second = buf.getvalue()[len(first) :]
    assert second.startswith(f"\x1b[{n}F\x1b[J")  # up over the previous table, clear, redraw
    assert "> sad" in second


def test_console_on_a_dumb_terminal_prints_lines_not_escape_sequences(monkeypatch) -> None:
    """Terminal review: `TERM=dumb edge-ser run ...` (Emacs' shell, a serial console set so) redrew the table with
    cursor-up / erase sequences such a terminal cannot move by, so every update printed "^[[11F^[[J" and a new
    table below the last. A terminal named dumb gets the log lines; an explicit tty=True still draws the table."""

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("TERM", "dumb")
    stream = Tty()
    con = ConsoleOutput(stream)
    assert con.tty is False
    con.emit(make_result())
    con.emit(make_result(t=2.0, label="sad"))
    assert "\x1b" not in stream.getvalue() and stream.getvalue().count("\n") == 2
    assert ConsoleOutput(Tty(), tty=True).tty is True
    monkeypatch.setenv("TERM", "xterm-256color")
    assert ConsoleOutput(Tty()).tty is True


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a POSIX pseudo-terminal")
def test_console_fits_a_real_terminal() -> None:
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    try:
        with open(slave, "w", encoding="utf-8", closefd=False) as tty:
            con = ConsoleOutput(tty)
            assert con.tty  # asked the stream itself
            assert con._columns() == 10_000  # a pty with no size reports 0 columns: do not cut to nothing
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
            text = con.render(make_result())
            assert max(len(x) for x in text.splitlines()) == 39  # cut: a wrapped line breaks the redraw
            # the bars shrink so that each row keeps its numbers: at 40 columns "0.80" was cut to "0."
            row = next(x for x in text.splitlines() if x.startswith("> angry"))
            assert row.endswith(" 0.80  0.80"), row
    finally:
        os.close(slave)
        os.close(master)


def test_console_silence_and_bars() -> None:
    lines = format_table(make_result(speech=False), bar_width=10)
    assert "silence" in lines[0] and "-inf dBFS" in lines[0]
    assert any(x.startswith("  angry") and x.rstrip().endswith("-") for x in lines)
    assert lines[-2] == "  -> silence"
    assert bar(0.5, 4) == "##.." and bar(float("nan"), 3) == "..." and bar(2.0, 2) == "##"
    assert "label=silence" in format_line(make_result(speech=False))
    utf8 = ConsoleOutput(io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), tty=True)
    ascii_ = ConsoleOutput(io.TextIOWrapper(io.BytesIO(), encoding="ascii"), tty=True)
    assert utf8.chars[0] == "\u2588" and ascii_.chars[0] == "#"
    ascii_.emit(make_result())  # no UnicodeEncodeError on a C-locale terminal


# -- JSON lines --------------------------------------------------------------------------------------------
def test_jsonl_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    results = [make_result(t=i / 4, label=LABELS[i % 4]) for i in range(10)] + [
        make_result(t=3.0, speech=False, speaker_clips=4),  # every field comes back, the speaker count too
        make_result(t=3.5, ood=True, speaker_clips=5),
    ]
    with JsonlOutput(path) as out:
        for r in results:
            out.emit(r)
            assert path.read_bytes().endswith(b"\n")  # written and flushed per line, before close
    raw = path.read_text().splitlines()
    assert len(raw) == 12 and all(json.loads(x)["labels"] == list(LABELS) for x in raw)
    assert json.loads(raw[-2])["level_db"] is None  # -inf is not JSON: strict parsers get null
    assert read_jsonl(path) == results
    with pytest.raises(OutputError):
        out.emit(results[0])


def test_jsonl_stdout_append_and_errors(tmp_path: Path) -> None:
    buf = io.StringIO()
    out = JsonlOutput(buf)
    out.emit(make_result())
    out.close()
    assert json.loads(buf.getvalue())["label"] == "angry" and buf.getvalue().count("\n") == 1
    path = tmp_path / "torn.jsonl"
    path.write_text('{"t": 1.0, "lab')  # a writer that died mid-line
    with JsonlOutput(path, append=True) as out:
        out.emit(make_result(t=5.0))
    lines = path.read_text().splitlines()
    assert lines[0] == '{"t": 1.0, "lab' and json.loads(lines[1])["t"] == 5.0
    # a missing folder is made, as the other outputs make theirs (it was an error); a file in its place is not
    with JsonlOutput(tmp_path / "no" / "such" / "dir.jsonl") as out:
        out.emit(make_result())
    assert (tmp_path / "no" / "such" / "dir.jsonl").read_text().count("\n") == 1
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OutputError, match="cannot open"):
        JsonlOutput(tmp_path / "a_file" / "o.jsonl")
    # a run that fails before its first result leaves no empty file (it left a 0-byte one); a file it was
    # asked to replace stays, empty, as asked
    JsonlOutput(tmp_path / "never.jsonl").close()
    assert not (tmp_path / "never.jsonl").exists()
    old = tmp_path / "old.jsonl"
    old.write_text("{}\n")
    JsonlOutput(old).close()
    assert old.exists() and old.read_text() == ""


@pytest.mark.parametrize("append", [False, True])
def test_jsonl_on_a_full_disk_leaves_whole_lines_and_says_so(tmp_path: Path, append: bool) -> None:
    """A disk that fills takes part of a line and refuses the rest (simulated with a file size limit, which fails
    the same way: a short write, then EFBIG): the part is cut off again, so the file still reads whole."""
    resource = pytest.importorskip("resource")
    path = tmp_path / "full.jsonl"
    if append:
        path.write_text(result_json(make_result(t=0.0)) + "\n")
    line = len(result_json(make_result()).encode()) + 1
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    out = JsonlOutput(path, append=append)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 2 * line + line // 2, hard))
        with pytest.raises(OutputError, match="cannot write JSON line"):
            for i in range(5):
                out.emit(make_result(t=1.0 + i))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    out.close()
    assert path.read_bytes().endswith(b"\n")
    assert [r.t for r in read_jsonl(path)] == [0.0] * append + [1.0, 2.0]


def test_jsonl_never_leaves_half_a_line_when_killed(tmp_path: Path) -> None:
    path = tmp_path / "killed.jsonl"
    script = textwrap.dedent(
        f"""
        from edge_ser.live.outputs.jsonl import JsonlOutput
        from edge_ser.live.result import LiveResult
        labels = tuple(f"class{{i}}" for i in range(40))  # ~1.5 KB lines
        out = JsonlOutput({str(path)!r})
        i = 0
        while True:
            out.emit(LiveResult(t=i, labels=labels, probs=(0.025,) * 40, smoothed=(0.025,) * 40,
                                label="class0", confidence=0.025, speech=True, level_db=-20.0, mode="audio"))
            i += 1
            if i == 200:
                print("ready", flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    proc.kill()  # SIGKILL: no handler, no flush, no close
    proc.wait(HANG_S)
    data = path.read_bytes()
    assert data.endswith(b"\n")
    lines = data.decode().splitlines()
    assert len(lines) >= 200 and all(json.loads(x)["label"] == "class0" for x in lines)


# -- overlay -----------------------------------------------------------------------------------------------
def _changed(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.any(a != b, axis=-1).sum())


def test_overlay_draws_box_label_and_bars() -> None:
    res = make_result(face_box=(640, 360, 320, 320), frame_size=(1280, 720))
    frame = np.full((360, 640, 3), 128, np.uint8)  # a half-size preview of a 1280x720 camera frame
    before = frame.copy()
    out = draw_overlay(frame, res)
    assert out is frame
    lay = overlay_layout(640, 360, res)
    assert lay.box == (320, 180, 160, 160)  # scaled to the preview
    x, y, w, h = lay.box
    angry = np.array(label_color("angry"), np.uint8)
    for py, px in ((y, x + w // 2), (y + h, x + w // 2), (y + h // 2, x), (y + h // 2, x + w)):
        assert np.array_equal(frame[py, px], angry), (py, px)  # all four sides of the box
    tag = frame[y - 22 : y - 4, x : x + 60]  # the "angry 0.80" tag above the box: its colour, black text
    assert np.all(tag == angry, axis=-1).mean() > 0.3 and np.all(tag == 0, axis=-1).mean() > 0.1
    bx, by, bw, bh = lay.bars[0]  # angry: 0.8
    filled = frame[by + bh // 2, bx + 1 : bx + int(0.8 * bw) - 1]
    assert np.all(filled == label_color("angry"))
    tx, ty, tw, th = lay.bars[1]  # happy: 0.067 -> the right part of its track stays background
    track = frame[ty + 2 : ty + th - 2, tx + tw // 2 : tx + tw - 2]
    assert np.all(track == track[0, 0]) and not np.array_equal(track[0, 0], label_color("angry"))
    # the inside of the face box is untouched: the overlay never hides the face
    assert (
        _changed(
            frame[y + 10 : y + h - 10, x + 10 : x + w - 10], before[y + 10 : y + h - 10, x + 10 : x + w - 10]
        )
        == 0
    )


def test_overlay_without_face_on_blank_canvas_and_bad_frames() -> None:
    img = blank_frame((320, 240))
    before = img.copy()
    draw_overlay(img, make_result(speech=False))  # silence: header and empty tracks, no box
    assert _changed(img, before) > 0
    with pytest.raises(ConfigError, match="BGR uint8"):
        draw_overlay(np.zeros((10, 10), np.uint8), make_result())
    with pytest.raises(ConfigError):
        draw_overlay(np.zeros((10, 10, 3), np.float32), make_result())


def test_overlay_window_is_quiet_without_a_display() -> None:
    ok, reason = display_status(environ={})
    assert not ok and reason
    notices = io.StringIO()
    win = OverlayWindow(notice_stream=notices)
    if win.available:  # a desktop with a GUI OpenCV: the rest of this test is about headless machines
        win.close()
        pytest.skip("this machine can open OpenCV windows")
    frame = np.zeros((240, 320, 3), np.uint8)
    win.update_frame(frame)
    for i in range(5):
        win.emit(make_result(t=i))
    assert notices.getvalue().count("overlay window off") == 1 and win.reason in notices.getvalue()
    assert _changed(win.render(make_result()), frame) > 0 and not frame.any()  # drew on a copy
    win.close()
    win.close()
    with pytest.raises(OutputError):
        win.emit(make_result())


# -- web page ----------------------------------------------------------------------------------------------
def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=HANG_S) as r:
        return r.status, dict(r.headers), r.read()


class SSEReader:
    """Reads an /events stream on a thread: `events` gets each data payload (parsed) but the `run` event's,
    `runs` the run ids those name, `comments` each comment line; `ended` is set at end of stream."""

    def __init__(self, url: str) -> None:
        self.events: queue.Queue = queue.Queue()
        self.runs: queue.Queue = queue.Queue()
        self.comments: queue.Queue = queue.Queue()
        self.ended = threading.Event()
        self.resp = urllib.request.urlopen(url + "events", timeout=HANG_S)
        assert self.resp.headers["Content-Type"] == "text/event-stream"
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            kind = None
            for raw in self.resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "run":
                    self.runs.put(json.loads(line[6:])["run"])
                elif line.startswith("data: "):
                    self.events.put(json.loads(line[6:]))
                if not line:
                    kind = None
                elif line.startswith(":"):
                    self.comments.put(line)
        except OSError:
            pass
        finally:
            self.ended.set()

    def next(self, timeout: float = HANG_S) -> dict:
        return self.events.get(timeout=timeout)


def _wait_clients(web: WebServer, n: int) -> None:
    end = time.monotonic() + HANG_S
    while web.clients < n:
        assert time.monotonic() < end, f"{web.clients} of {n} clients connected"
        time.sleep(0.01)


def test_web_page_is_self_contained() -> None:
    with WebServer() as web:
        assert web.url == f"http://127.0.0.1:{web.port}/"
        status, headers, body = _get(web.url)
        html = body.decode()
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert "connect-src 'self'" in headers["Content-Security-Policy"]
        assert "http://" not in html and "https://" not in html
        assert "<script src" not in html and "<link" not in html and "@import" not in html
        assert 'new EventSource("events")' in html and 'id="label"' in html
        with pytest.raises(urllib.error.HTTPError) as e:
            _get(web.url + "nothing-here")
        assert e.value.code == 404


def test_web_answers_head_as_get_without_a_body() -> None:
    # `curl -I` or an uptime check's HEAD got 501 Not Implemented, as if the page were down
    with WebServer() as web:
        web.emit(make_result(label="happy"))
        for path, status, ctype in [
            ("", 200, "text/html; charset=utf-8"),
            ("latest", 200, "application/json"),
            ("events", 200, "text/event-stream"),
            ("nothing-here", 404, "text/plain; charset=utf-8"),
        ]:
            req = urllib.request.Request(web.url + path, method="HEAD")
            try:
                with urllib.request.urlopen(req, timeout=HANG_S) as r:
                    got, headers, body = r.status, r.headers, r.read()
            except urllib.error.HTTPError as e:
                got, headers, body = e.code, e.headers, e.read()
            assert (got, headers["Content-Type"], body) == (status, ctype, b""), path
            if path != "events":
                assert int(headers["Content-Length"]) == len(_get_any(web.url + path)), path
        assert web.streams == 0  # a HEAD of /events opened no stream


def _get_any(url: str) -> bytes:
    """The body of a GET, whatever its status."""
    try:
        return _get(url)[2]
    except urllib.error.HTTPError as e:
        return e.read()


def test_web_latest_and_events() -> None:
    with WebServer() as web:
        assert _get(web.url + "latest")[0] == 204  # nothing emitted yet
        readers = [SSEReader(web.url) for _ in range(3)]
        _wait_clients(web, 3)
        res = make_result(label="happy", speech=True)
        web.emit(res)
        for r in readers:
            assert r.next() == json.loads(result_json(res))
        status, headers, body = _get(web.url + "latest")
        assert status == 200 and headers["Content-Type"] == "application/json"
        assert json.loads(body)["label"] == "happy"
        late = SSEReader(web.url)  # a new tab gets the current state at once
        assert late.next()["label"] == "happy"
        web.emit(make_result(t=2.0, speech=False))  # -inf level: valid JSON (null) on the wire
        for r in readers + [late]:
            got = r.next()
            assert got["label"] == SILENCE and got["level_db"] is None


def test_a_tab_opened_while_the_camera_is_away_is_told_so() -> None:
    """Review: "camera lost" / "no camera yet" is a note of one update, and a new tab gets only the latest result:
    a tab opened after it showed an audio-only page and never said the camera was gone. Its first event carries the
    camera's standing note until "camera back"."""
    with WebServer() as web:
        web.emit(
            make_result(
                label="happy", notes=("no camera yet: /dev/video9: no such device (audio-only meanwhile)",)
            )
        )
        web.emit(make_result(t=2.0, label="sad"))
        late = SSEReader(web.url)
        first = late.next()
        assert first["label"] == "sad" and first["notes"][-1].startswith("no camera yet: /dev/video9")
        assert json.loads(_get(web.url + "latest")[2])["notes"] == []  # /latest is the update as it was
        web.emit(make_result(t=3.0, label="sad", notes=("camera found",)))
        web.emit(make_result(t=4.0, label="angry"))
        assert SSEReader(web.url).next()["notes"] == []


def test_web_keepalive_comments() -> None:
    with WebServer(keepalive_s=0.1) as web:
        r = SSEReader(web.url)
        assert r.comments.get(timeout=HANG_S) == ": keep-alive"


def test_web_slow_client_never_blocks_emit_and_close_is_prompt() -> None:
    web = WebServer(queue_size=4)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills after a few events
    slow.connect(("127.0.0.1", web.port))
    slow.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # ... and never reads
    fast = SSEReader(web.url)
    _wait_clients(web, 2)
    labels = tuple(f"c{i}" for i in range(60))  # ~2 KB per event
    for i in range(2000):
        res = LiveResult(
            t=float(i),
            labels=labels,
            probs=(1 / 60,) * 60,
            smoothed=(1 / 60,) * 60,
            label="c0",
            confidence=1 / 60,
            speech=True,
            level_db=-20.0,
            mode="audio",
        )
        web.emit(res)
    last = None
    while last is None or last["t"] != 1999.0:  # the fast client keeps up and sees the last update
        last = fast.next()
    assert web.dropped > 0  # the slow client lost stale updates instead
    web.close()  # ends every stream, the slow client's too (its cost is a benchmark figure, not asserted)
    assert fast.ended.wait(HANG_S)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", web.port), timeout=1).close()
    with pytest.raises(OutputError):
        web.emit(make_result())
    slow.close()
    web.close()  # idempotent


def test_web_frees_the_slot_of_a_browser_that_stopped_reading() -> None:
    """A phone that sleeps with the page open keeps its connection and reads nothing: its stream held one of
    `max_clients` slots until the kernel buffers filled (4.5 MB of updates on loopback, over an hour at one update a
    second) and the 10 s write timeout fired; a room of such phones locked every viewer out. A stream whose browser
    acknowledges none of the bytes waiting for it for `stall_timeout` seconds is closed and its slot freed; a
    browser that reads keeps its stream."""
    with WebServer(max_clients=2, stall_timeout=0.5, keepalive_s=0.05) as web:
        asleep = socket.socket()
        asleep.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        asleep.connect(("127.0.0.1", web.port))
        asleep.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # ... and never reads
        awake = SSEReader(web.url)
        _wait_clients(web, 2)
        end = time.monotonic() + HANG_S
        t = 0.0
        while web.stalled == 0:
            assert time.monotonic() < end, "the stream of a browser that reads nothing was never closed"
            t += 1.0
            web.emit(make_result(t=t))
            time.sleep(0.005)
        _wait_clients(web, 1)
        assert web.clients == 1 and web.stalled == 1
        late = SSEReader(web.url)  # its slot is free: a new viewer gets in under max_clients=2
        assert late.next()["t"] == t
        last = None
        while last is None or last["t"] != t:  # the browser that reads kept its stream
            last = awake.next()
        assert not awake.ended.is_set()
        asleep.settimeout(HANG_S)  # its connection was closed: what was buffered, then the end
        while asleep.recv(65536):
            pass
        asleep.close()
    with pytest.raises(ConfigError, match="stall_timeout"):
        WebServer(stall_timeout=0)


def test_web_emit_cost_scales_with_clients() -> None:
    """Updates reach 0, 1 and 10 connected clients; the emit cost per update is printed for the record (a
    timing, so not asserted: a loaded machine is slower)."""
    with WebServer() as web:
        results = [make_result(t=i / 10) for i in range(500)]  # fresh objects: JSON encoding is counted
        costs = {}
        readers = []
        for n in (0, 1, 10):  # streams stay open: the server ends them on close
            readers += [SSEReader(web.url) for _ in range(n - len(readers))]
            _wait_clients(web, n)
            t0 = time.perf_counter()
            for res in results:
                web.emit(res)
            costs[n] = (time.perf_counter() - t0) / len(results)
        print(
            "web emit per update: "
            + ", ".join(f"{c * 1e6:.0f} us with {n} clients" for n, c in costs.items())
        )
        for reader in readers:  # every client still sees the newest update
            last = None
            while last is None or last["t"] != results[-1].t:
                last = reader.next()


def test_web_on_every_interface_says_where_other_machines_point_a_browser() -> None:
    """`--web-host 0.0.0.0` (the installed service) printed only http://127.0.0.1:PORT/, the device itself, as the
    page's address: `elsewhere` names the device and the port for the other machines; a specific interface needs
    no such line."""
    with WebServer("0.0.0.0") as web:
        assert web.url == f"http://127.0.0.1:{web.port}/"
        assert web.elsewhere == f"http://{socket.gethostname()}:{web.port}/ (or this device's address)"
    with WebServer() as web:
        assert web.elsewhere is None


def test_web_port_taken_is_an_output_error() -> None:
    with WebServer() as web, pytest.raises(OutputError, match="cannot listen"):
        WebServer(port=web.port)


def test_web_caps_its_streams_with_a_clear_503() -> None:
    with WebServer(max_clients=2) as web:
        readers = [SSEReader(web.url) for _ in range(2)]
        _wait_clients(web, 2)
        for _ in range(3):  # every stream beyond the cap: 503, a text body saying why, Retry-After
            with pytest.raises(urllib.error.HTTPError) as e:
                _get(web.url + "events")
            assert e.value.code == 503 and e.value.headers["Retry-After"] == "5"
            assert e.value.headers["Content-Type"].startswith("text/plain")
            assert e.value.read() == b"edge-ser live page: 2 viewers already (the limit); try again later\n"
        assert web.refused == 3 and web.clients == 2
        assert _get(web.url)[0] == 200 and _get(web.url + "latest")[0] == 204  # the page itself still loads
        web.emit(make_result(label="sad"))
        assert all(r.next()["label"] == "sad" for r in readers)  # the admitted streams are unaffected
        readers[0].resp.close()  # a tab closes: its slot frees up
        end = time.monotonic() + HANG_S
        while True:
            try:
                late = SSEReader(web.url)
                break
            except urllib.error.HTTPError as e:  # until the server has noticed the tab went away
                assert e.code == 503 and time.monotonic() < end
                web.emit(make_result(label="sad"))  # a write to the closed stream ends its handler
                time.sleep(0.05)
        assert late.next()["label"] == "sad"
    with pytest.raises(ConfigError, match="max_clients"):
        WebServer(max_clients=0)
    with pytest.raises(ConfigError, match="web_max_clients"):
        OutputSettings(web_max_clients=0)


def _ask(port: int, path: str, host: str | None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """A request over a raw socket with this Host header (None: none, as an HTTP/1.0 client sends): the status,
    headers and body; an `/events` stream that opened is closed after its headers."""
    head = (
        f"{method} {path} HTTP/1.0\r\n" if host is None else f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_S) as s:
        s.sendall((head + "Connection: close\r\n\r\n").encode("latin-1"))
        data = b""
        while b"\r\n\r\n" not in data and (chunk := s.recv(4096)):
            data += chunk
        top, _, body = data.partition(b"\r\n\r\n")
        status_line, *lines = top.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines)
        status = int(status_line.split()[1])
        if not (status == 200 and path == "/events"):
            while chunk := s.recv(4096):
                body += chunk
    return status, headers, body


def test_web_answers_only_its_own_host_names_against_dns_rebinding() -> None:
    """Any Host header was answered, so a web page the viewer visited could rebind its own name to 127.0.0.1 (or
    the Pi's address) and read `/latest`, the emotions of the person in front of the device, from the viewer's
    browser. A request naming another host now gets 403 with a body naming it and the option that allows it."""
    name = socket.gethostname()
    with WebServer() as web:
        web.emit(make_result(label="happy"))
        own = [None, f"127.0.0.1:{web.port}", "[::1]", f"[::1]:{web.port}", "localhost", "LocalHost."]
        for host in [*own, "app.localhost", name, f"{name}.local", f"{name.upper()}.local."]:
            for path in ("/", "/latest", "/events"):
                status, headers, body = _ask(web.port, path, host)
                assert status == 200 and headers["Content-Type"] != "text/plain; charset=utf-8", (host, path)
            assert _ask(web.port, "/latest", host, "HEAD")[0] == 200, host
        assert web.forbidden == 0
    with WebServer(max_clients=1) as web:
        evil = [
            "evil.example",
            f"evil.example:{web.port}",
            "127.0.0.1.evil.example",
            "",
            "[::1",
            f"{name}.evil.x",
        ]
        for host in evil:
            for path in ("/", "/latest", "/events"):
                status, headers, body = _ask(web.port, path, host)
                text = body.decode("ascii")
                assert status == 403 and headers["Content-Type"] == "text/plain; charset=utf-8", (host, path)
                assert repr(host) in text and "--web-allow-host" in text and "Traceback" not in text, text
                status, headers, body = _ask(web.port, path, host, "HEAD")
                assert (status, body, int(headers["Content-Length"])) == (403, b"", len(text)), (host, path)
        assert "--web-allow-host evil.example " in _ask(web.port, "/latest", "evil.example")[2].decode()
        assert web.forbidden == len(evil) * 3 * 2 + 1
        assert web.streams == 0 and web.refused == 0  # no stream opened, no 503
        # the refused requests took no viewer's place: with max_clients 1 the one stream opens
        reader = SSEReader(web.url)
        web.emit(make_result(label="sad"))
        assert reader.next()["label"] == "sad"
        assert _ask(web.port, "/events", "evil.example")[0] == 403  # a full server still says why it refuses


def test_web_answers_the_names_it_is_given() -> None:
    """`allow_hosts` (`--web-allow-host`): a reverse proxy's or a DNS name is answered, `*` any host; the listening
    host is answered when it is a name."""
    with WebServer(allow_hosts="Pi.Example.,proxy.lan") as web:
        assert web.allow_hosts == ("pi.example", "proxy.lan")
        for host in ("pi.example", "PI.example.:80", "proxy.lan"):
            assert _ask(web.port, "/latest", host)[0] == 204, host
        assert _ask(web.port, "/latest", "other.example")[0] == 403
    with WebServer(allow_hosts=["*"]) as web:
        for host in ("evil.example", "127.0.0.1.evil.example"):
            assert _ask(web.port, "/latest", host)[0] == 204, host
    with WebServer("localhost") as web:
        assert web.host_allowed("localhost") and not web.host_allowed("evil.example")
    for bad in ("", "a,,b", "pi:8000", "a b"):
        with pytest.raises(ConfigError, match="allow_hosts: "):
            WebServer(allow_hosts=bad)
    settings = OutputSettings.from_dict({"web": True, "web_allow_hosts": ["Pi.Example."], "console": False})
    assert settings.web_allow_hosts == ("pi.example",)
    with make_outputs(settings) as outs:
        assert outs.web is not None and outs.web.allow_hosts == ("pi.example",)
    with pytest.raises(ConfigError, match=r"web_allow_hosts \(--web-allow-host\): an empty host name"):
        OutputSettings(web_allow_hosts=("",))


def test_web_allow_host_option_of_run_and_bench(capsys) -> None:
    """`--web-allow-host a,b` (repeatable) reaches the page's settings in `run` and `bench --live` (which shares
    run's options); an empty or malformed name is a usage error naming the option; without --web it is named."""
    from edge_ser.cli import build_parser
    from edge_ser.live.command import _unused_outputs, output_settings

    parser = build_parser(plugins=False)
    for cmd in (["run", "b"], ["bench", "b", "--live"]):
        args = parser.parse_args(
            [*cmd, "--web", "0", "--web-allow-host", "a.example,B.lan.", "--web-allow-host", "*"]
        )
        assert output_settings(args).web_allow_hosts == ("a.example", "b.lan", "*"), cmd
        assert output_settings(parser.parse_args([*cmd, "--web"])).web_allow_hosts == ()
        for bad, said in (
            ("", "an empty host name"),
            ("a,", "an empty host name"),
            ("pi:80", "'pi:80' has a port"),
        ):
            with pytest.raises(SystemExit):
                parser.parse_args([*cmd, "--web-allow-host", bad])
            assert f"argument --web-allow-host: {said}" in capsys.readouterr().err, (cmd, bad)
    args = parser.parse_args(["run", "b", "--web-allow-host", "a.example"])
    assert "--web-allow-host not used without --web" in _unused_outputs(args)


def _idle_sockets(port: int, n: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=HANG_S) for _ in range(n)]


def _closed_by_server(sock: socket.socket) -> bool:
    """Blocks (hang guard: HANG_S) until the server closes `sock`; True if it did so without answering."""
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


def test_web_idle_connections_cannot_lock_out_a_browser() -> None:
    """Sockets that connect and send nothing: beyond max_idle each new connection closes the oldest idle one,
    so the page still answers with 40 idle sockets open and at most max_idle threads wait on them."""
    base_threads = threading.active_count()
    with WebServer(max_idle=4, request_timeout=3600) as web:  # no deadline help: eviction alone
        idle = _idle_sockets(web.port, 40)
        status, _, body = _get(web.url)  # connection 41: evicts the oldest idle one, then is served
        assert status == 200 and b"EventSource" in body
        assert web.evicted == 37 and web.idle == 3  # 41 connections, 4 idle allowed; ours is served
        assert all(_closed_by_server(s) for s in idle[:37])  # the oldest were closed, without a response
        reader = SSEReader(web.url)  # the live stream too
        web.emit(make_result(label="calm"))
        assert reader.next()["label"] == "calm"
        end = time.monotonic() + HANG_S  # the evicted connections' threads end: bounded threads
        while threading.active_count() > base_threads + 1 + 4 + 1 + 1:  # server, idle, stream, reader
            assert time.monotonic() < end, threading.active_count()
            time.sleep(0.05)
        for s in idle:
            s.close()


IDLE_SERVER = """
import resource, sys, threading
resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
from edge_ser.live.outputs.web import WebServer
web = WebServer()
print(web.port, flush=True)
sys.stdin.read()  # serve until the test closes our stdin
"""


def test_web_page_outlives_more_idle_sockets_than_it_has_file_descriptors() -> None:
    """300 connections that each send one byte and stop, against a server allowed 128 file descriptors: the
    page still answers and the server's descriptors stay bounded. (Before the idle cap, every such socket kept a
    thread and a descriptor for as long as it trickled, and at the limit the server stopped accepting.)"""
    srv = subprocess.Popen([sys.executable, "-c", IDLE_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    idle: list[socket.socket] = []
    try:
        port = int(srv.stdout.readline())
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", port), timeout=HANG_S)
            s.sendall(b"G")
            idle.append(s)
            time.sleep(0.003)  # paced, so that each one is accepted (a burst mostly waits in the backlog)
        status, _, body = _get(f"http://127.0.0.1:{port}/")
        assert status == 200 and b"EventSource" in body
        assert len(os.listdir(f"/proc/{srv.pid}/fd")) < 64
    finally:
        for s in idle:
            s.close()
        srv.stdin.close()
        srv.wait(HANG_S)


def test_web_request_sent_byte_by_byte_is_cut_off() -> None:
    """Slowloris: a request whose bytes trickle in, each well within any per-read timeout, is closed once
    `request_timeout` has passed since the connection, with no response; other clients are served meanwhile."""
    with WebServer(request_timeout=1.0) as web:
        slow = socket.create_connection(("127.0.0.1", web.port), timeout=HANG_S)
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        trickle = itertools.cycle(b"X-Padding: aaaaaaaa\r\n")
        end = time.monotonic() + HANG_S
        cut = False
        while not cut:  # one byte every 50 ms, never the blank line that ends the headers
            assert time.monotonic() < end, "the server kept a trickling request open"
            assert _get(web.url + "latest")[0] == 204  # the server answers others meanwhile
            try:
                slow.sendall(bytes([next(trickle)]))
            except (BrokenPipeError, ConnectionResetError):
                cut = True
                break
            readable, _, _ = select.select([slow], [], [], 0.05)
            if readable:
                assert _closed_by_server(slow)  # closed, not answered: no request was ever complete
                cut = True
        slow.close()
        assert web.idle == 0


# -- the page in headless Chromium (W3C WebDriver over chromedriver's HTTP API: stdlib only) ---------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


class WebDriver:
    """The few W3C WebDriver commands the test needs, spoken to chromedriver with urllib."""

    def __init__(self, driver: str, browser: str, size: tuple[int, int] = (900, 700)) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [driver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.base = f"http://127.0.0.1:{port}"
        end = time.monotonic() + HANG_S
        while True:
            try:
                self._call("GET", "/status")
                break
            except OSError:
                if time.monotonic() > end:
                    self.proc.kill()
                    raise
                time.sleep(0.05)
        args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--window-size={size[0]},{size[1]}",
        ]
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": browser, "args": args},
                }
            }
        }
        self.session = f"/session/{self._call('POST', '/session', caps)['sessionId']}"

    def _call(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=HANG_S) as r:
            return json.loads(r.read())["value"]

    def get(self, url: str) -> None:
        self._call("POST", self.session + "/url", {"url": url})

    def text(self, css: str) -> str:
        el = self._call("POST", self.session + "/element", {"using": "css selector", "value": css})
        return self._call("GET", f"{self.session}/element/{next(iter(el.values()))}/text")

    def script(self, js: str):
        """The value `js` (a function body) returns in the page."""
        return self._call("POST", self.session + "/execute/sync", {"script": js, "args": []})

    def screenshot(self) -> bytes:
        return base64.b64decode(self._call("GET", self.session + "/screenshot"))

    def quit(self) -> None:
        try:
            self._call("DELETE", self.session)
        finally:
            self.proc.terminate()
            self.proc.wait(HANG_S)


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless page test needs Chromium and its driver: apt-get install chromium chromium-driver",
)
def test_page_in_headless_chromium_shows_the_label(tmp_path: Path) -> None:
    import cv2

    with WebServer() as web:
        drv = WebDriver(CHROMEDRIVER, CHROMIUM)
        try:
            drv.get(web.url)
            _wait_clients(web, 1)  # the page's EventSource is connected
            assert drv.text("#label") == "waiting\u2026"  # nothing emitted yet: what follows came over SSE
            web.emit(make_result(label="angry"))
            end = time.monotonic() + HANG_S
            while drv.text("#label") != "angry":
                assert time.monotonic() < end, f"page shows {drv.text('#label')!r}"
                time.sleep(0.05)
            assert drv.text("#conf") == "80 %" and drv.text("#mode") == "fused"
            assert drv.text("#speech") == "speech" and drv.text("#status") == "live"
            assert "angry" in drv.text("#bars") and drv.text("#updated") != "never"
            assert drv.text("#speaker") == ""  # a bundle that does not learn its speaker: no speaker field
            web.emit(make_result(label="angry", speaker_clips=12))
            while drv.text("#speaker") != "12 clips":
                assert time.monotonic() < end, f"speaker shows {drv.text('#speaker')!r}"
                time.sleep(0.05)
            time.sleep(0.3)  # let the bars' 0.15 s width transition finish before the picture
            png = drv.screenshot()
            # an update without an estimate (no result, no face, silence): no confidence, "-" for every bar
            web.emit(make_result(label=NO_RESULT, probs=(), smoothed=(), confidence=0.0))
            while drv.text("#label") != NO_RESULT:
                assert time.monotonic() < end, f"page shows {drv.text('#label')!r}"
                time.sleep(0.05)
            assert drv.text("#conf") == "" and "%" not in drv.text("#bars") and "-" in drv.text("#bars")
            # a face-only bundle (mode "video") has no voice gate and no level: both fields are hidden
            web.emit(make_result(label="sad", mode="video", level_db=float("-inf")))
            while drv.text("#label") != "sad":
                assert time.monotonic() < end, f"page shows {drv.text('#label')!r}"
                time.sleep(0.05)
            assert drv.text("#mode") == "video" and drv.text("#speech") == "" and drv.text("#level") == ""
            web.emit(make_result(label="angry"))
            while drv.text("#label") != "angry":
                assert time.monotonic() < end, f"page shows {drv.text('#label')!r}"
                time.sleep(0.05)
            assert drv.text("#speech") == "speech" and drv.text("#level") == "-21.5 dBFS"
            # a note comes with one update; it stays on screen over the updates after it (it was gone 0.5 s later)
            web.emit(make_result(t=2.0, notes=("camera lost: unplugged; audio-only until it is back",)))
            for k in range(3):
                web.emit(make_result(t=2.5 + k, label="sad"))
            while drv.text("#t") != "4.50 s":
                assert time.monotonic() < end, f"page shows {drv.text('#t')!r}"
                time.sleep(0.05)
            assert "camera lost: unplugged" in drv.text("#notes")
            web.emit(make_result(t=5.0, label="sad", notes=("camera back",)))
            while "camera back" not in drv.text("#notes"):
                assert time.monotonic() < end, f"notes show {drv.text('#notes')!r}"
                time.sleep(0.05)
            assert drv.text("#notes").splitlines() == [
                "camera back",
                "camera lost: unplugged; audio-only until it is back",
            ]
            # an out-of-range decision is said on the page (it was in the JSON only)
            assert drv.text("#ood") == ""
            web.emit(make_result(t=6.0, label="sad", ood=True))
            while not drv.text("#ood").startswith("out of range"):
                assert time.monotonic() < end, f"ood shows {drv.text('#ood')!r}"
                time.sleep(0.05)
            # the end of the run: said, with its closing notes, and no endless "reconnecting"
            web.end(["a quiet speaker is being called silence"])
            while drv.text("#status") != "run ended":
                assert time.monotonic() < end, f"status shows {drv.text('#status')!r}"
                time.sleep(0.05)
            assert drv.text("#notes") == "a quiet speaker is being called silence"
        finally:
            drv.quit()
    shot = tmp_path / "live_page_angry.png"
    shot.write_bytes(png)
    keep = os.environ.get("EDGE_SER_ARTIFACTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
    print(f"screenshot: {shot}")
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[1] == 900
    assert img.std() > 10  # not blank
    # the big label is drawn in angry's colour: thousands of pixels of it in the upper half
    near = np.abs(img.astype(int) - np.array(label_color("angry"))).sum(axis=-1) < 60
    assert near[: img.shape[0] // 2].sum() > 2000


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless page test needs Chromium and its driver: apt-get install chromium chromium-driver",
)
def test_page_labels_named_like_javascript_properties_keep_their_colour() -> None:
    """A bundle's labels are any text: markup is shown as text, and a label named like a property every JavaScript
    object has ("constructor", "__proto__", "toString") was looked up in the palette as that property, so its colour
    was a function's source: the label drawn grey and its bar's fill transparent (the winning bar vanished)."""
    labels = ("constructor", "__proto__", "toString", "<img src=x onerror=document.title='pwned'>")
    js = (
        "const fill = document.querySelector('.row.on .fill');"
        "return [document.title, getComputedStyle(fill).backgroundColor,"
        " getComputedStyle(document.documentElement).getPropertyValue('--c')];"
    )
    with WebServer() as web:
        drv = WebDriver(CHROMEDRIVER, CHROMIUM)
        try:
            drv.get(web.url)
            _wait_clients(web, 1)
            end = time.monotonic() + HANG_S
            for label in labels:
                sm = tuple(0.7 if x == label else 0.1 for x in labels)
                web.emit(make_result(label=label, labels=labels, probs=sm, smoothed=sm))
                while drv.text("#label") != label:
                    assert time.monotonic() < end, drv.text("#label")
                    time.sleep(0.05)
                title, fill, var = drv.script(js)
                assert title == "edge-ser live"  # the markup was not run
                assert var.strip() == css_color(label) and fill not in ("rgba(0, 0, 0, 0)", "transparent"), (
                    label,
                    var,
                    fill,
                )
        finally:
            drv.quit()


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless page test needs Chromium and its driver: apt-get install chromium chromium-driver",
)
def test_page_colours_every_label_as_the_overlay_does() -> None:
    """A label outside the palette (a German or Japanese bundle's, a custom one) got an hsl() of the page's own
    hash, another colour than the overlay's crc32 one beside it (the palette says both agree)."""
    labels = ("Angry", "wütend", "悲しい", "😀 happy", "Überraschung", "constructor", "x")
    with WebServer() as web:
        drv = WebDriver(CHROMEDRIVER, CHROMIUM)
        try:
            drv.get(web.url)
            got = drv.script(f"return {json.dumps(labels)}.map(color);")
        finally:
            drv.quit()
    assert got == [css_color(x) for x in labels]


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless page test needs Chromium and its driver: apt-get install chromium chromium-driver",
)
def test_page_says_whether_a_face_is_in_view_for_a_bundle_that_reads_faces() -> None:
    """A fusion bundle without a face in view answers from the audio: the page said only "mode audio", as for an
    audio-only bundle, so a viewer could not tell a face not found from a camera not used. A result with a camera
    frame now shows "face in view" or "none in view"; one without a frame (an audio-only bundle) shows no face
    item."""
    face = "return [document.getElementById('face-box').hidden, document.getElementById('face').textContent];"
    with WebServer() as web:
        drv = WebDriver(CHROMEDRIVER, CHROMIUM)
        try:
            drv.get(web.url)
            _wait_clients(web, 1)
            end = time.monotonic() + HANG_S
            for t, kw, want in (
                (1.0, {}, [False, "in view"]),
                (1.5, {"mode": "audio", "face_box": None}, [False, "none in view"]),
                (2.0, {"mode": "audio", "face_box": None, "frame_size": None}, [True]),
            ):
                web.emit(make_result(t=t, **kw))
                while drv.text("#t") != f"{t:.2f} s":
                    assert time.monotonic() < end, drv.text("#t")
                    time.sleep(0.05)
                hidden, text = drv.script(face)
                assert [hidden, text][: len(want)] == want, (t, hidden, text)
        finally:
            drv.quit()


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless page test needs Chromium and its driver: apt-get install chromium chromium-driver",
)
def test_page_does_not_call_a_label_old_within_a_long_hop() -> None:
    """A label was framed as old (dashed, drained, "(3 s ago)") after 3 s without an update, whatever the hop: a run
    with --hop 4, on time, showed every label as old for the last second of its hop. The page learns the hop from
    the updates' stream times and calls a label old a hop and 2 s after it came."""
    stale = "return document.getElementById('app').classList.contains('stale')"
    with WebServer() as web:
        drv = WebDriver(CHROMEDRIVER, CHROMIUM)
        try:
            drv.get(web.url)
            _wait_clients(web, 1)
            end = time.monotonic() + HANG_S
            web.emit(make_result(t=4.0))
            web.emit(make_result(t=8.0, label="sad"))  # a 4 s hop
            while drv.text("#t") != "8.00 s":
                assert time.monotonic() < end, drv.text("#t")
                time.sleep(0.05)
            time.sleep(4.2)  # past the fixed 3 s (and its once-a-second check), within the hop and its 2 s
            assert not drv.script(stale), drv.text("#updated")
            while not drv.script(stale):  # an update late by more than 2 s: old
                assert time.monotonic() < end + 10, drv.text("#updated")
                time.sleep(0.2)
            assert "s ago)" in drv.text("#updated")
        finally:
            drv.quit()


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless page test needs Chromium and its driver: apt-get install chromium chromium-driver",
)
def test_page_beyond_the_viewer_cap_says_busy_then_joins_when_a_slot_frees() -> None:
    with WebServer(max_clients=1) as web:
        holder = SSEReader(web.url)
        _wait_clients(web, 1)
        drv = WebDriver(CHROMEDRIVER, CHROMIUM)
        try:
            drv.get(web.url)
            end = time.monotonic() + HANG_S
            while not drv.text("#status").startswith("busy"):  # its stream got the 503
                assert time.monotonic() < end, drv.text("#status")
                time.sleep(0.05)
            assert web.refused >= 1 and web.clients == 1
            holder.resp.close()  # the other viewer leaves
            while drv.text("#label") != "angry":  # the page's own retry gets in
                assert time.monotonic() < end, (drv.text("#status"), drv.text("#label"))
                web.emit(make_result(label="angry"))  # (also ends the closed stream's handler)
                time.sleep(0.1)
            assert drv.text("#status") == "live"
        finally:
            drv.quit()


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless page test needs Chromium and its driver: apt-get install chromium chromium-driver",
)
def test_page_finds_the_next_run_after_the_end() -> None:
    """`edge-ser run` ends every run with the `end` event (file done, Ctrl-C, SIGTERM of a service restart): the page
    said "run ended" and never connected again, so a tab on a restarted service showed the old run until reloaded.
    It now keeps looking for a new run on the same address and takes it up; the ended run, while it still serves,
    does not bring it back."""
    web = WebServer()
    drv = WebDriver(CHROMEDRIVER, CHROMIUM)
    try:
        drv.get(web.url)
        _wait_clients(web, 1)
        web.emit(make_result(label="angry"))
        end = time.monotonic() + HANG_S
        while drv.text("#label") != "angry":
            assert time.monotonic() < end, drv.text("#label")
            time.sleep(0.05)
        web.end(["bye"])
        while drv.text("#status") != "run ended":
            assert time.monotonic() < end, drv.text("#status")
            time.sleep(0.05)
        opened = web.streams
        while web.streams < opened + 2:  # the page looked again, twice, while the ended run still serves
            assert time.monotonic() < end, web.streams
            time.sleep(0.05)
        assert (
            drv.text("#status") == "run ended"
            and drv.text("#label") == "angry"
            and drv.text("#notes") == "bye"
        )
        port = web.port
        web.close()
        web = WebServer(port=port)  # the service restarted on the same port
        _wait_clients(web, 1)
        while drv.text("#status") != "live":
            assert time.monotonic() < end, drv.text("#status")
            time.sleep(0.05)
        assert drv.text("#label") == "waiting\u2026" and drv.text("#notes") == "" and drv.text("#bars") == ""
        web.emit(make_result(label="sad"))
        while drv.text("#label") != "sad":
            assert time.monotonic() < end, drv.text("#label")
            time.sleep(0.05)
        assert drv.text("#status") == "live"
    finally:
        drv.quit()
        web.close()


# -- outputs factory ---------------------------------------------------------------------------------------
def test_make_outputs_routes_streams() -> None:
    out, err = io.StringIO(), io.StringIO()
    with make_outputs(OutputSettings(jsonl="-", web=True), stdout=out, stderr=err) as outs:
        assert outs.web is not None and outs.web.url.startswith("http://127.0.0.1:")
        outs.emit(make_result())
        assert json.loads(_get(outs.web.url + "latest")[2])["label"] == "angry"
    assert json.loads(out.getvalue())["label"] == "angry"  # stdout holds JSON only ...
    assert err.getvalue().startswith("t=1.00 label=angry")  # ... the table went to stderr
    assert OutputSettings.from_dict({}) == OutputSettings()
    assert OutputSettings.from_dict(OutputSettings(web=True).to_dict()).web
    with pytest.raises(ConfigError, match="unknown output settings"):
        OutputSettings.from_dict({"colour": True})
    with pytest.raises(ConfigError):
        OutputSettings(web_port=70000)


def test_fan_out_feeds_everyone_then_reports() -> None:
    class Broken:
        def emit(self, result: LiveResult) -> None:
            raise OSError("disk full")

        def close(self) -> None:
            raise OSError("still full")

    buf = io.StringIO()
    outs = Outputs([Broken(), ConsoleOutput(buf)])
    with pytest.raises(OutputError, match="disk full"):
        outs.emit(make_result())
    assert "label=angry" in buf.getvalue()  # the console still got it
    with pytest.raises(OutputError, match="still full"):
        outs.close()


# -- signals -----------------------------------------------------------------------------------------------
def test_stop_flag_catches_sigterm_and_restores_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with StopFlag(message=None) as stop:
        assert stop.installed and signal.getsignal(signal.SIGTERM) == stop._handle
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(HANG_S) and stop.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) == before
    box = []
    t = threading.Thread(target=lambda: box.append(StopFlag().install()))
    t.start()
    t.join()
    assert not box[0].installed  # signals belong to the main thread: no handler, set() still works
    box[0].set()
    assert box[0].is_set() and box[0].wait(0)


LOOP = textwrap.dedent(
    """
    import sys
    from edge_ser.live.outputs import OutputSettings, make_outputs
    from edge_ser.live.result import LiveResult
    from edge_ser.live.signals import StopFlag
    obey = sys.argv[2] == "obey"
    n = 0
    settings = OutputSettings(console=False, jsonl=sys.argv[1], web=True)
    with StopFlag() as stop, make_outputs(settings) as outs:
        while True:
            if stop.is_set():
                if obey:
                    break
                print("ignoring", flush=True)
                while True:
                    stop.wait(0.01)
            outs.emit(LiveResult(t=n / 10, labels=("a", "b"), probs=(0.9, 0.1), smoothed=(0.9, 0.1),
                                 label="a", confidence=0.9, speech=True, level_db=-20.0, mode="audio"))
            n += 1
            if n == 3:
                print("ready", flush=True)
            stop.wait(0.005)
    print(f"emitted {n} by {stop.signal_name}", flush=True)
    """
)


def _loop(tmp_path: Path, mode: str) -> tuple[subprocess.Popen, Path]:
    path = tmp_path / f"{mode}.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", LOOP, str(path), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc, path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_with_results_flushed(tmp_path: Path, sig: int) -> None:
    proc, path = _loop(tmp_path, "obey")
    time.sleep(0.1)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=HANG_S)  # web server included: streams end (a hang fails here)
    assert proc.returncode == 0, err
    n = int(out.split()[1])
    assert out.strip().endswith(f"by {signal.Signals(sig).name}")
    lines = path.read_text().splitlines()
    assert len(lines) == n and path.read_bytes().endswith(b"\n")  # every result, the last one included
    assert json.loads(lines[-1])["t"] == pytest.approx((n - 1) / 10)
    assert "stopping" in err and "Traceback" not in err


def test_second_ctrl_c_forces_exit(tmp_path: Path) -> None:
    proc, path = _loop(tmp_path, "ignore")
    proc.send_signal(signal.SIGINT)
    assert proc.stdout.readline().strip() == "ignoring"  # the first one was only a request
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 130 and "forced exit" in err
    assert all(json.loads(x) for x in path.read_text().splitlines())  # whole lines only


def test_json_on_the_terminal_keeps_the_table_from_redrawing_over_it() -> None:
    """`run --json -` in a terminal: the table moved to stderr, the same screen, and its in-place redraw erased
    the JSON lines printed between two draws. With both on one terminal the table prints one line per update."""
    from edge_ser.live.outputs import OutputSettings, make_outputs

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    outs = make_outputs(OutputSettings(console=True, jsonl="-"), stdout=Tty(), stderr=Tty())
    assert outs.console is not None and outs.console.tty is False
    alone = make_outputs(OutputSettings(console=True), stdout=Tty(), stderr=Tty())
    assert (
        alone.console is not None and alone.console.tty is True
    )  # the table, when nothing shares its screen
    piped = make_outputs(OutputSettings(console=True, jsonl="-"), stdout=io.StringIO(), stderr=Tty())
    assert piped.console is not None and piped.console.tty is True  # JSON piped away: the table stays


def test_run_json_append_keeps_every_session(tmp_path: Path, capsys) -> None:
    """`--json FILE` replaced the file on every start, so a service's restart wiped the last session's results."""
    from edge_ser.audio import write_wav
    from edge_ser.cli import main
    from edge_ser.live.outputs.jsonl import read_jsonl
    from tests._signals import voiced

    wav = write_wav(tmp_path / "a.wav", voiced(16000, 4 * 16000).astype(np.float32), 16000)
    out = tmp_path / "r.jsonl"
    bundle = str(Path(__file__).resolve().parents[1] / "bundles" / "ser_emodb")
    run = ["run", bundle, "--audio-file", str(wav), "--fast", "--no-console", "--json", str(out)]
    assert main(run) == 0
    session, results = out.read_text(), read_jsonl(out)
    first = session.count("\n")
    # a 3 s window every 0.5 s over 4 s of audio: updates at 3.0, 3.5 and 4.0 s, a line each, as the run says
    assert [r.t for r in results] == [3.0, 3.5, 4.0] and first == 3
    assert "3 updates over 4.0 s of audio" in capsys.readouterr().err
    assert main([*run, "--json-append"]) == 0 and out.read_text().count("\n") == 2 * first > 0
    # the first session is kept as it was written, and the second follows it with the same decisions
    assert out.read_text().startswith(session)
    again = read_jsonl(out)[first:]
    assert [(r.t, r.label) for r in again] == [(r.t, r.label) for r in results]
    assert all(np.allclose(a.probs, b.probs) for a, b in zip(again, results, strict=True))
    assert main(run) == 0 and out.read_text().count("\n") == first  # without it: replaced, as before
    assert [r.t for r in read_jsonl(out)] == [3.0, 3.5, 4.0]


def test_the_console_shows_out_of_range_and_keeps_notes_readable() -> None:
    """`ood` was in the JSON only, and on a terminal a note (the 8 kHz one, with its advice) was cut to the width
    inside the table and erased by the next redraw half a second later."""
    from edge_ser.live.outputs.console import ConsoleOutput, format_line

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

        def fileno(self) -> int:
            raise OSError("no terminal size")  # width unknown: lines are not cut

    note = "the audio is recorded at 8000 Hz: nothing above 4000 Hz ... (a microphone with a higher rate fixes it)"
    flagged = make_result(ood=True, notes=(note,))
    assert "OUT_OF_RANGE" in format_line(flagged) and "OUT_OF_RANGE" not in format_line(make_result())
    stream = Tty()
    console = ConsoleOutput(stream, tty=True)
    console.emit(flagged)
    first = stream.getvalue()
    assert "OUT OF RANGE" in first.splitlines()[1] and first.startswith(f"note: {note}\n")
    console.emit(make_result(t=6.0))
    redraw = stream.getvalue()[len(first) :]
    table_lines = (
        first.count("\n") - 1
    )  # the note's line stays on screen: the redraw moves up over the table only
    assert redraw.startswith(f"\x1b[{table_lines}F")


def test_web_page_is_told_the_run_ended_with_its_notes() -> None:
    """After the last update the page showed 'reconnecting...' for ever, and the closing notes (a quiet speaker, a
    file too short) went to stderr only: the server now sends an `end` event with them, to open pages and to pages
    opened before it closes; the page then looks for a new run only (each stream opens with a `run` event naming
    its server's run, test_page_finds_the_next_run_after_the_end)."""
    with WebServer() as web:
        r = SSEReader(web.url)
        _wait_clients(web, 1)
        assert r.runs.get(timeout=HANG_S) == web.run_id
        web.emit(make_result(label="happy"))
        assert r.next()["label"] == "happy"
        web.end(["a quiet speaker is being called silence", "12 updates over 6.0 s of audio"])
        assert r.next() == {
            "notes": ["a quiet speaker is being called silence", "12 updates over 6.0 s of audio"]
        }
        late = SSEReader(web.url)
        assert late.runs.get(timeout=HANG_S) == web.run_id  # the same run, ended
        assert late.next()["label"] == "happy" and late.next()["notes"][0].startswith("a quiet speaker")
        with WebServer() as other:
            assert other.run_id != web.run_id
        html = _get(web.url)[2].decode()
        assert 'addEventListener("end"' in html and "run ended" in html and 'id="ood"' in html


def test_a_json_file_another_run_writes_is_refused(tmp_path: Path) -> None:
    """Two runs with the same --json file: the second truncated the first's lines and the two tore a line between
    them. The file is locked while written; a second writer is refused, naming it, and the first's lines stay."""
    import multiprocessing

    path = tmp_path / "r.jsonl"
    with JsonlOutput(path) as first:
        first.emit(make_result())
        ctx = multiprocessing.get_context("spawn")  # another process, as another run is
        with ctx.Pool(1) as pool:
            error = pool.apply(_open_jsonl_elsewhere, (str(path),))
        assert "another run is writing JSON lines to this file" in error
        first.emit(make_result(t=2.0))
    assert path.read_text().count("\n") == 2
    with JsonlOutput(path) as again:  # free once the first run has closed it: replaced, as asked
        again.emit(make_result(t=3.0))
    assert path.read_text().count("\n") == 1


def _open_jsonl_elsewhere(path: str) -> str:
    from edge_ser.live.outputs.base import OutputError
    from edge_ser.live.outputs.jsonl import JsonlOutput

    try:
        JsonlOutput(path).close()
    except OutputError as e:
        return str(e)
    return "opened"


def test_json_lines_to_a_device_file_are_neither_locked_nor_truncated() -> None:
    """`--json /dev/stdout | cat` and `--json /dev/null` crashed once the file was truncated after locking
    (ftruncate: Invalid argument); two runs writing to /dev/null locked each other out."""
    with JsonlOutput("/dev/null") as a, JsonlOutput("/dev/null") as b:
        a.emit(make_result())
        b.emit(make_result())
    # not unlinked as an empty file of this output's own (and re-made as a regular file by the other one)
    assert Path("/dev/null").is_char_device()


def test_a_json_path_under_a_file_names_the_file(tmp_path: Path) -> None:
    """`--json prep.py/x.jsonl` said only "File exists" (mkdir's words); it now names the file in the way."""
    from edge_ser.live.outputs.base import OutputError

    (tmp_path / "prep.py").write_text("")
    with pytest.raises(
        OutputError, match=r"x\.jsonl: cannot open for JSON lines: .*prep\.py is a file, not a folder"
    ):
        JsonlOutput(tmp_path / "prep.py" / "x.jsonl")


def test_an_old_label_keeps_its_contrast() -> None:
    """The page marked an ended or stalled run by fading the label and bars to 45 %, which took every palette
    colour below 3:1 contrast on the dark background; it now drains their colour (luminance kept) and frames the
    label instead."""
    import re

    from edge_ser.live.outputs import web

    css = re.search(r"<style>(.*?)</style>", web._PAGE, re.S).group(1)
    stale = " ".join(re.findall(r"\.stale[^{]*\{([^}]*)\}", css))
    assert "opacity" not in stale and "saturate" in stale and "outline" in stale


def test_a_taken_port_says_how_to_get_a_free_one() -> None:
    """A port another run holds is refused at once, and the message offers --web 0 (any free port)."""
    from edge_ser.live.outputs.base import OutputError
    from edge_ser.live.outputs.web import WebServer

    first = WebServer(port=0)
    try:
        with pytest.raises(
            OutputError, match=r"cannot listen on 127\.0\.0\.1:\d+: .*--web 0 for any free one"
        ):
            WebServer(port=first.port)
    finally:
        first.close()
