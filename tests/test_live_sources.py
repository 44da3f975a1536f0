"""Live capture sources: the audio ring, back-off, file sources, the camera on a real file / a missing device,
and the microphone through the real sounddevice -> PortAudio -> ALSA -> PulseAudio path, against a private
PulseAudio server with a null sink started by a fixture (skipped, with the reason, where one cannot run)."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_ser.audio import load, write_wav
from edge_ser.audio.polyphase import resample
from edge_ser.errors import AudioFormatError, ConfigError, MissingDependencyError, VideoFormatError
from edge_ser.live.backoff import Backoff, RetryTimer
from edge_ser.live.camera import (
    CameraConfig,
    CameraSource,
    gstreamer_pipeline_for_jetson_csi,
    gstreamer_pipeline_for_pi,
    resolve_backend,
    source_kind,
)
from edge_ser.live.files import VideoFileSource, WavSource
from edge_ser.live.mic import (
    DeviceUnavailableError,
    MicConfig,
    MicSource,
    PortAudioMissingError,
    choose_capture_rate,
    import_sounddevice,
)
from edge_ser.live.ring import AudioRing
from edge_ser.live.sources import AudioSource, Frame, FrameSource, LatestFrame

cv2 = pytest.importorskip("cv2")
HANG_S = 60.0
"""Hang guard of the waits below: only a hang trips it, never a slow machine (no test asserts how long)."""


# ---------------------------------------------------------------------------------------------- helpers
def ramp(start: int, n: int, channels: int = 1) -> np.ndarray:
    """Samples whose value is their absolute index (exact in float32 below 2**24)."""
    x = np.arange(start, start + n, dtype=np.float32)
    return x if channels == 1 else np.repeat(x[:, None], channels, axis=1)


def tone(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(y: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[int(spec.argmax())])


def indexed_image(i: int, size: tuple[int, int] = (160, 120)) -> np.ndarray:
    """A BGR frame that tells its index (0..255) after JPEG: left half (i // 16) * 16 + 8, right half
    (i % 16) * 16 + 8, each level 16 apart so compression noise cannot change it."""
    w, h = size
    image = np.empty((h, w, 3), np.uint8)
    image[:, : w // 2] = (i // 16 % 16) * 16 + 8
    image[:, w // 2 :] = (i % 16) * 16 + 8
    return image


def write_indexed_video(path: Path, n: int, size: tuple[int, int] = (160, 120), fps: float = 25.0) -> Path:
    """An MJPG AVI whose frame i is indexed_image(i)."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for i in range(n):
        writer.write(indexed_image(i, size))
    writer.release()
    return path


def index_of(image: np.ndarray) -> int:
    w = image.shape[1]
    hi, lo = (round((float(part.mean()) - 8) / 16) for part in (image[:, : w // 4], image[:, -w // 4 :]))
    return hi * 16 + lo


# ---------------------------------------------------------------------------------------------- ring
def test_ring_wraps_around_in_order() -> None:
    ring = AudioRing(8)
    ring.write(ramp(0, 5))
    assert ring.read_new().tolist() == list(range(5))
    ring.write(ramp(5, 6))  # positions 5, 6, 7, 0, 1, 2: wraps
    assert ring.read_new().tolist() == list(range(5, 11))
    assert (ring.total_written, ring.read_pos, ring.overflows, ring.lost_samples) == (11, 11, 0, 0)
    assert ring.read_new().size == 0


def test_ring_overflow_counts_event_and_lost_samples() -> None:
    ring = AudioRing(8)
    ring.write(ramp(0, 5))
    ring.write(ramp(5, 6))  # 11 unread in a ring of 8: samples 0..2 overwritten
    assert ring.overflows == 1 and ring.lost_samples == 3
    assert ring.read_new().tolist() == list(range(3, 11))
    assert ring.lost_samples == 3 and ring.read_pos == 11
    ring.write(ramp(11, 20))  # larger than the ring: keeps the newest 8
    assert ring.overflows == 2
    assert ring.read_new().tolist() == list(range(23, 31))
    assert ring.lost_samples == 3 + 12


def test_ring_read_max_latest_and_skip() -> None:
    ring = AudioRing(10)
    ring.write(ramp(0, 7))
    assert ring.read_new(3).tolist() == [0, 1, 2]
    assert ring.latest(4).tolist() == [3, 4, 5, 6]
    assert ring.latest(100).tolist() == list(range(7))  # no more than what was written
    assert ring.read_new(0).size == 0 and ring.read_pos == 3
    assert ring.skip_to_end() == 4 and ring.available == 0 and ring.lost_samples == 0
    ring.write(ramp(7, 9))
    assert ring.latest(10).tolist() == list(range(6, 16))


def test_ring_multichannel_reads_mono_and_checks_shapes() -> None:
    ring = AudioRing(6, channels=2)
    block = np.array([[1.0, 3.0], [0.0, -1.0], [0.5, 0.5]], np.float32)
    ring.write(block)
    out = ring.read_new()
    assert out.dtype == np.float32 and out.tolist() == [2.0, -0.5, 0.5]
    with pytest.raises(AudioFormatError, match=r"\[n, 2\]"):
        ring.write(np.zeros(4, np.float32))
    with pytest.raises(AudioFormatError):
        AudioRing(4).write(np.zeros((4, 3), np.float32))
    AudioRing(4).write(np.zeros((3, 1), np.float32))  # [n, 1] is fine for a mono ring
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ConfigError):
            AudioRing(bad)  # type: ignore[arg-type]


def test_ring_of_a_microphone_whose_channels_cancel_hears_one_of_them() -> None:
    """A stereo microphone with one channel's polarity inverted averaged to zeros ('every hop was digital
    silence'); the ring takes the loudest channel then, with one warning, as files and sessions do."""
    from edge_ser.errors import InputWarning

    ring = AudioRing(8000, channels=2)
    y = (0.2 * np.sin(np.arange(4000) / 3)).astype(np.float32)
    ring.write(np.stack([y, -y], 1))
    assert ring.channel_note is None
    with pytest.warns(InputWarning, match="the microphone: the 2 channels cancel"):
        out = ring.read_new()
    assert np.allclose(np.abs(out), np.abs(y))
    # kept for the live results' notes (the warning went to stderr only), and exact anti-phase reads "silent", not
    # "282 dB below the loudest channel"
    assert "their mean is silent" in ring.channel_note


def test_ring_write_allocates_no_arrays() -> None:
    """tracemalloc around write(): the peak stays tiny (view objects) while the block is 16 kB."""
    ring = AudioRing(16000)
    block = np.ones(4096, np.float32)  # 16 kB; 4096 does not divide 16000, so writes wrap in two slices
    for _ in range(5):
        ring.write(block)  # warm up (first-call caches)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            ring.write(block)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < 2048, f"write() allocated up to {peak - base} bytes"
    assert current - base < 512


@settings(max_examples=150, deadline=None)
@given(
    capacity=st.integers(1, 64),
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("w"), st.integers(0, 150)),
            st.tuples(st.just("r"), st.one_of(st.none(), st.integers(0, 80))),
            st.tuples(st.just("l"), st.integers(0, 80)),
        ),
        max_size=40,
    ),
)
def test_ring_property_random_blocks(capacity: int, ops: list[tuple[str, int | None]]) -> None:
    """Random block sizes and reads: every sample read is the next intact one in order, and
    returned + lost == read_pos == total_written at the end; overflows follow the definition."""
    ring = AudioRing(capacity)
    written = returned = overflows = 0
    for op, arg in ops:
        if op == "w":
            assert arg is not None
            if arg and written + arg - capacity > ring.read_pos:
                overflows += 1
            ring.write(ramp(written, arg))
            written += arg
        elif op == "r":
            before = ring.read_pos
            out = ring.read_new(arg)
            if out.size:
                assert out.tolist() == list(range(int(out[0]), int(out[0]) + out.size))  # contiguous
                assert out[-1] == ring.read_pos - 1  # ends at the cursor
                assert out[0] >= max(before, written - capacity)  # intact samples only
            if arg is not None:
                assert out.size <= arg
            returned += out.size
        else:
            out = ring.latest(arg)
            k = min(arg, written, capacity)
            assert out.tolist() == list(range(written - k, written))
        assert 0 <= ring.available <= capacity
    rest = ring.read_new()
    returned += rest.size
    assert ring.read_pos == ring.total_written == written
    assert returned + ring.lost_samples == written
    assert ring.overflows == overflows


def test_ring_concurrent_producer_never_yields_torn_samples() -> None:
    """A producer thread laps a small ring while the consumer reads: what is read is always intact and
    in order, and returned + lost adds up. (Blocks are large enough that numpy may release the GIL.)"""
    ring = AudioRing(3000)
    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set() and i < 4_000_000:
            ring.write(ramp(i, 1500))
            i += 1500

    thread = threading.Thread(target=produce)
    thread.start()
    returned, deadline = 0, time.monotonic() + 0.4
    try:
        while time.monotonic() < deadline:
            out = ring.read_new(2000)
            if out.size:
                assert np.array_equal(out, np.arange(out[0], out[0] + out.size, dtype=np.float32))
                assert out[-1] == ring.read_pos - 1
            returned += out.size
    finally:
        stop.set()
        thread.join()
    returned += ring.read_new().size
    assert returned + ring.lost_samples == ring.total_written
    assert ring.overflows > 0  # the producer was faster: overflows happened and were counted


# ---------------------------------------------------------------------------------------------- back-off
def test_backoff_schedule_and_reset() -> None:
    b = Backoff()
    assert [b.next_delay() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert b.attempts == 7
    b.reset()
    assert b.next_delay() == 0.5
    b = Backoff(initial=0.1, factor=3, max=1)
    assert [b.next_delay() for _ in range(4)] == pytest.approx([0.1, 0.3, 0.9, 1.0])
    for kwargs in ({"initial": 0}, {"factor": 0.5}, {"initial": 2, "max": 1}, {"max": float("nan")}):
        with pytest.raises(ConfigError):
            Backoff(**kwargs)
    big = Backoff(initial=0.5, factor=1e6, max=8)
    big.attempts = 10**6  # days of retrying: still capped, no overflow
    assert big.next_delay() == 8


def test_retry_timer_on_a_fake_clock() -> None:
    now = [100.0]
    timer = RetryTimer(Backoff(0.5, 2, 2), clock=lambda: now[0])
    assert timer.due()
    assert timer.failed() == 0.5 and not timer.due()
    now[0] += 0.5
    assert timer.due() and timer.failed() == 1.0
    now[0] += 0.4
    assert timer.remaining() == pytest.approx(0.6)
    timer.succeeded()
    assert timer.due() and timer.backoff.attempts == 0


# ---------------------------------------------------------------------------------------------- files
@pytest.fixture()
def clip(tmp_path: Path) -> Path:
    """1 s of a 440 Hz tone at 22.05 kHz (so a 16 kHz source must resample it)."""
    return write_wav(tmp_path / "clip.wav", tone(440, 22050, 1.0), 22050)


def test_wav_fast_mode_is_deterministic(clip: Path) -> None:
    expected, _ = load(clip, sr=16000)

    def run() -> list[np.ndarray]:
        src = WavSource(clip, 16000, realtime=False, chunk=700)
        chunks = []
        with src:
            while not src.finished:
                chunks.append(src.read(1000 if len(chunks) % 2 else None))
        assert src.stream_time == pytest.approx(1.0) and src.overflows == 0
        return chunks

    a, b = run(), run()
    assert [c.size for c in a] == [c.size for c in b]
    assert [c.size for c in a[:4]] == [700, 1000, 700, 1000]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert np.array_equal(np.concatenate(a), expected)
    assert isinstance(WavSource(clip, 16000, realtime=False), AudioSource)


def test_wav_realtime_is_paced_by_the_wall_clock(clip: Path) -> None:
    src = WavSource(clip, 16000, realtime=True, chunk=320)
    got = []
    t0 = time.monotonic()
    with src:
        half = src.read(min_samples=8000, timeout=HANG_S)
        t_half = time.monotonic() - t0
        got.append(half)
        while not src.finished and time.monotonic() - t0 < HANG_S:
            got.append(src.read(min_samples=1600, timeout=HANG_S))
    elapsed = time.monotonic() - t0
    # paced: 8000 samples are not there before 0.5 s (one 20 ms chunk of slack), the whole second not before
    # 1 s. Lower bounds only: a loaded machine is later, never earlier (how late is not asserted)
    assert half.size >= 8000 and t_half >= 0.47, (half.size, t_half)
    assert elapsed >= 0.98, elapsed
    expected, _ = load(clip, sr=16000)
    assert np.array_equal(np.concatenate(got), expected)
    assert src.stream_time == pytest.approx(1.0) and src.overflows == 0


def test_wav_source_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"this is not a wav file at all")
    with pytest.raises(AudioFormatError, match="noise.wav"):
        WavSource(bad)
    with pytest.raises(AudioFormatError, match="missing.wav"):
        WavSource(tmp_path / "missing.wav")
    with pytest.raises(ConfigError):
        WavSource(tmp_path / "x.wav", chunk=0)


def test_video_file_fast_mode_gives_every_frame_with_media_time(tmp_path: Path) -> None:
    video = write_indexed_video(tmp_path / "v.avi", 12, fps=20.0)
    src = VideoFileSource(video, realtime=False)
    assert isinstance(src, FrameSource) and src.fps == 20.0
    frames = []
    with src:
        while (f := src.read()) is not None:
            frames.append(f)
    assert [f.seq for f in frames] == list(range(1, 13))
    assert [f.t for f in frames] == pytest.approx([i / 20 for i in range(12)])
    assert [index_of(f.image) for f in frames] == list(range(12))
    assert src.finished and src.dropped == 0 and src.read() is None


def test_video_file_realtime_paces_and_drops_for_a_slow_consumer(tmp_path: Path) -> None:
    video = write_indexed_video(tmp_path / "v.avi", 15, fps=25.0)  # 0.6 s
    src = VideoFileSource(video, realtime=True)
    seen: list[Frame] = []
    t0 = time.monotonic()
    with src:
        while not src.finished and time.monotonic() - t0 < HANG_S:
            f = src.read(timeout=0.5)
            if f is not None:
                seen.append(f)
                assert index_of(f.image) == f.seq - 1 and f.t == pytest.approx((f.seq - 1) / 25)
                assert time.monotonic() - t0 >= f.t - 0.01  # never handed out before it is due
                if len(seen) == 3:  # a slow consumer: stops reading until a frame was lost for it
                    while src.dropped == 0 and time.monotonic() - t0 < HANG_S:
                        time.sleep(0.01)
    assert time.monotonic() - t0 >= 0.56  # the last frame is due at 14/25 s: never earlier
    assert [f.seq for f in seen] == sorted({f.seq for f in seen})  # in order, none twice
    assert seen[-1].seq == 15  # the newest frame always wins, including the last
    assert src.dropped >= 1 and src.dropped + len(seen) == 15


def test_image_folder_source(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (2, 0, 1):  # written out of order: played sorted by name
        cv2.imwrite(str(folder / f"f{i:03d}.png"), indexed_image(i, (40, 30)))
    (folder / "notes.txt").write_text("ignored")
    with pytest.raises(ConfigError, match="fps"):
        VideoFileSource(folder)
    with VideoFileSource(folder, fps=10, realtime=False, grey=True) as src:
        frames = [src.read() for _ in range(4)]
    assert frames[3] is None
    assert [index_of(f.image) for f in frames[:3]] == [0, 1, 2]
    assert frames[0].image.shape == (30, 40) and frames[2].t == pytest.approx(0.2)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoFormatError, match="no images"):
        VideoFileSource(empty, fps=10)
    with pytest.raises(VideoFormatError, match="nope.mp4"):
        VideoFileSource(tmp_path / "nope.mp4")


def test_an_unreadable_image_in_a_frame_folder_is_a_blank_frame_in_its_place(tmp_path: Path) -> None:
    """One unreadable image (a text file named .png, a truncated PNG) stopped a whole `edge-ser run --video-file
    FOLDER` with an error, while `predict DIR` skips it: it is now a blank frame (no face) in its own slot, so the
    frames after it keep their times, with a warning naming it; a folder with no readable image is still refused."""
    from edge_ser.errors import InputWarning

    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "f000.png").write_text(
        "not an image"
    )  # before any readable frame: blank at the next one's size
    for i in (1, 3):
        cv2.imwrite(str(folder / f"f{i:03d}.png"), indexed_image(i, (40, 30)))
    whole = cv2.imencode(".png", indexed_image(2, (40, 30)))[1].tobytes()
    (folder / "f002.png").write_bytes(whole[: len(whole) // 2])  # truncated
    with pytest.warns(InputWarning) as said, VideoFileSource(folder, fps=10, realtime=False) as src:
        frames = [src.read() for _ in range(5)]
    assert frames[4] is None
    assert [f.t for f in frames[:4]] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert [f.seq for f in frames[:4]] == [1, 2, 3, 4]
    assert not frames[0].image.any() and not frames[2].image.any()
    assert frames[0].image.shape == frames[1].image.shape == (30, 40, 3)
    assert [index_of(frames[i].image) for i in (1, 3)] == [1, 3]
    text = [str(w.message) for w in said.list if issubclass(w.category, InputWarning)]
    assert len(text) == 2 and "f000.png" in text[0] and "f002.png" in text[1], text
    assert "frame 3 (at 0.20 s)" in text[1] and "without a face" in text[1]
    for name in ("f001.png", "f003.png"):
        (folder / name).write_text("nor this")
    with (
        pytest.warns(InputWarning),
        pytest.raises(VideoFormatError, match="none of its 4 images can be read"),
    ):
        with VideoFileSource(folder, fps=10, realtime=False) as src:
            while src.read() is not None:
                pass


def test_a_live_run_over_a_frame_folder_goes_past_an_unreadable_image(tmp_path: Path, capsys) -> None:
    """`edge-ser run --video-file FOLDER` with a text file named .png among the frames: the run ends as without
    it (exit 0, every update made), the warning naming the file."""
    from edge_ser.cli import main
    from edge_ser.errors import InputWarning

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(8):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((120, 160, 3), 80, np.uint8))
    (folder / "003.png").write_text("not an image")
    wav = write_wav(tmp_path / "a.wav", 0.1 * np.sin(np.arange(32000) * 0.1).astype(np.float32), 16000)
    bundle = str(Path(__file__).resolve().parents[1] / "bundles" / "av_fusion")
    args = ["run", bundle, "--audio-file", str(wav), "--video-file", str(folder), "--image-fps", "4"]
    with pytest.warns(InputWarning, match="003.png"):
        assert main([*args, "--fast", "--no-console", "--window", "1"]) == 0
    assert "3 updates over 2.0 s of audio" in capsys.readouterr().err


def test_latest_frame_holder_newest_wins() -> None:
    h = LatestFrame()
    assert h.get(timeout=0.01) is None
    for i in range(5):
        h.put(np.full((2, 2), i, np.uint8), float(i))
    f = h.get(timeout=0)
    assert f is not None and f.seq == 5 and f.image[0, 0] == 4 and h.dropped == 4
    assert h.get(timeout=0.01) is None  # nothing newer
    threading.Timer(0.05, lambda: h.put(np.zeros((2, 2), np.uint8), 9.0)).start()
    f = h.get(timeout=HANG_S)  # returns when the put lands
    assert f is not None and f.seq == 6
    h.close()
    assert h.get() is None  # closed: does not wait forever


# ---------------------------------------------------------------------------------------------- camera
def test_camera_source_kinds_and_backends() -> None:
    assert [source_kind(s) for s in (0, "1", "/dev/video0", "rtsp://cam/stream", "http://x/y.mjpg", "a.mp4")] == [
        "index", "index", "device", "url", "url", "file",
    ]  # fmt: skip
    pi = gstreamer_pipeline_for_pi(640, 480, 30)
    jetson = gstreamer_pipeline_for_jetson_csi(1280, 720, 29.97, sensor_id=1, flip_method=2)
    assert pi.startswith("libcamerasrc ") and "framerate=30/1" in pi and pi.endswith("sync=false")
    assert "nvarguscamerasrc sensor-id=1" in jetson and "framerate=2997/100" in jetson
    assert "flip-method=2" in jetson and "format=BGR ! appsink drop=true max-buffers=1" in jetson
    assert source_kind(pi) == source_kind(jetson) == "gstreamer"
    target, _, name = resolve_backend(CameraConfig("/dev/video3"), cv2)
    assert (target, name) == ("/dev/video3", "v4l2" if sys.platform.startswith("linux") else "any")
    assert resolve_backend(CameraConfig("2"), cv2)[0] == 2
    assert resolve_backend(CameraConfig("rtsp://10.0.0.2/live"), cv2)[1:] == (cv2.CAP_FFMPEG, "ffmpeg")
    if not cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER):
        with pytest.raises(ConfigError, match="python3-opencv"):
            resolve_backend(CameraConfig(pi), cv2)
    for bad in ({"source": ""}, {"width": 0}, {"fps": -1}, {"fourcc": "MJPEG"}, {"backend": "dshow"}):
        with pytest.raises(ConfigError):
            CameraConfig(**bad)
    with pytest.raises(ConfigError, match=r"\(--height\)"):  # the option to change, as --fps's message says
        CameraConfig(height=0)
    assert CameraConfig.from_dict(CameraConfig(source=2, fps=15).to_dict()) == CameraConfig(source=2, fps=15)


def test_camera_on_a_video_file_reads_and_reconnects(tmp_path: Path) -> None:
    """A real VideoCapture on a file: frames come with their seq; the end of the file is a lost camera,
    reopened after the back-off, and frames come again."""
    n = 40
    video = write_indexed_video(tmp_path / "cam.avi", n)
    cam = CameraSource(CameraConfig(str(video), retry_initial=0.05, retry_max=0.1))
    assert isinstance(cam, FrameSource)
    with cam:
        first = cam.read(timeout=HANG_S)
        assert first is not None and first.image.shape == (120, 160, 3)
        assert index_of(first.image) == (first.seq - 1) % n  # image and seq belong together
        deadline = time.monotonic() + HANG_S
        while cam.opens < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cam.opens >= 2 and cam.failed_attempts >= 1  # end of file -> lost -> reopened
        later = cam.read(timeout=HANG_S)
        while later is not None and later.seq <= n and time.monotonic() < deadline:
            later = cam.read(timeout=HANG_S)  # the last frames of the first pass may still be waiting
        assert later is not None and later.seq > n and later.t > first.t
        assert index_of(later.image) == (later.seq - 1) % n
    assert cam.actual is not None and cam.actual[:2] == (160, 120)
    assert not cam.healthy and cam.read(timeout=0.01) is None


def test_camera_newest_frame_wins_with_a_slow_consumer(tmp_path: Path) -> None:
    n = 120
    video = write_indexed_video(tmp_path / "cam.avi", n)
    cam = CameraSource(CameraConfig(str(video), retry_initial=0.2, retry_max=0.2))
    with cam:
        seqs = []
        for _ in range(4):
            f = cam.read(timeout=HANG_S)
            assert f is not None
            assert index_of(f.image) == (f.seq - 1) % n
            seqs.append(f.seq)
            lost, end = cam.dropped, time.monotonic() + HANG_S
            while cam.dropped == lost:  # slower than the decoder: wait until a frame was replaced unread
                assert time.monotonic() < end, "the camera thread stopped delivering"
                time.sleep(0.005)
    assert all(b > a for a, b in pairwise(seqs))
    assert max(b - a for a, b in pairwise(seqs)) > 1
    assert cam.dropped > 0 and cam.dropped <= cam.frames - len(seqs)


def test_camera_missing_device_backs_off_without_crashing() -> None:
    cam = CameraSource(CameraConfig("/dev/video99", retry_initial=0.05, retry_factor=2, retry_max=0.2))
    cam.start()
    # the schedule, not the clock: waits of 0.05, 0.1, then 0.2 s (the cap) after the third failure
    end = time.monotonic() + HANG_S
    while "retrying in 0.2 s" not in (cam.last_error or ""):
        assert time.monotonic() < end, cam.last_error
        time.sleep(0.01)
    assert not cam.healthy
    assert cam.failed_attempts >= 3 and cam.retry_attempts >= 3
    assert "/dev/video99" in cam.last_error
    assert cam.read(timeout=0.05) is None
    assert cam.stop() is True  # it stops (a hang would fail here), however far the back-off had got
    with pytest.raises(VideoFormatError, match="no such file"):
        CameraSource("missing_clip.mp4").start()


class _FakeCapture:
    """A stand-in for `cv2.VideoCapture` whose `read` gives what `script` says: an image, or "hang" (a driver
    that stops delivering without an error: the read blocks until `resume` is set)."""

    def __init__(self, script, resume: threading.Event) -> None:
        self.script, self.resume = script, resume

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return True

    def release(self) -> None:
        pass

    def set(self, *args) -> bool:
        return True

    def get(self, prop) -> float:
        return 0.0

    def read(self):
        step = next(self.script)
        if isinstance(step, str):
            self.resume.wait(HANG_S)
            return False, None
        time.sleep(0.005)
        return True, step


def _wait_until(test, what: str) -> None:
    end = time.monotonic() + HANG_S
    while not test():
        assert time.monotonic() < end, what
        time.sleep(0.01)


def test_a_camera_whose_read_hangs_is_not_healthy_and_comes_back(monkeypatch) -> None:
    """A camera that stops delivering without an error (its read hangs) stayed healthy, so the live loop
    classified the last face it gave, frozen, for as long as the read hung; it now counts as lost after
    `stall_timeout` s without a frame, with that reason, and as healthy again when frames come."""
    image = np.full((48, 64, 3), 80, np.uint8)
    resume = threading.Event()
    script = iter([image] * 5 + ["hang"] + [image] * 100_000)
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a, **k: _FakeCapture(script, resume))
    cam = CameraSource(CameraConfig(0, stall_timeout=0.2))
    with cam:
        _wait_until(lambda: cam.frames >= 5, "the first frames")
        assert cam.read(timeout=HANG_S) is not None
        _wait_until(lambda: not cam.healthy, "the stalled camera counted as lost")
        assert "no frame for" in cam.last_error and "the camera stalled" in cam.last_reason
        assert cam.frames == 5 and cam.read(timeout=0.01) is None
        resume.set()
        _wait_until(lambda: cam.healthy, "the camera back")
        assert cam.frames > 5 and cam.last_error is None and cam.opens == 1
    with pytest.raises(ConfigError, match="stall_timeout"):
        CameraConfig(stall_timeout=0)


@pytest.mark.parametrize(
    "bad, why",
    [(np.zeros((0, 0, 3), np.uint8), "is empty"), (np.zeros((48, 64, 2), np.uint8), "must be")],
)
def test_a_camera_frame_that_is_no_image_is_a_failed_read_not_the_end_of_the_run(
    monkeypatch, bad, why
) -> None:
    """A frame of no image shape (empty, packed YUYV of two channels) reached the face crop, whose error ended
    the whole run; it now counts as a failed read: the camera is lost with that reason and reopened."""
    image = np.full((48, 64, 3), 80, np.uint8)
    script = iter([image] * 3 + [bad] * 3 + [image] * 100_000)
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a, **k: _FakeCapture(script, threading.Event()))
    cam = CameraSource(CameraConfig(0, retry_initial=0.05, retry_max=0.05))
    with cam:
        _wait_until(lambda: cam.failed_attempts >= 1, "the bad frames counted as a lost camera")
        assert f"3 frames in a row were not images: frame of shape {bad.shape} {why}" in cam.last_error
        _wait_until(lambda: cam.opens >= 2 and cam.healthy, "the camera reopened")
        frame = cam.read(timeout=HANG_S)
    assert frame is not None and frame.image.shape == image.shape


# ---------------------------------------------------------------------------------------------- mic: no hardware
class _Flags:
    """Stands in for sounddevice.CallbackFlags."""

    def __init__(self, overflow: bool = False) -> None:
        self.input_overflow = overflow

    def __bool__(self) -> bool:
        return self.input_overflow


def test_mic_callback_downmixes_counts_and_never_raises() -> None:
    mic = MicSource(MicConfig(channels=2, blocksize=0))  # blocksize 0: variable blocks, scratch of 1024
    left = ramp(0, 3000)
    block = np.stack([left, left + 2], axis=1)  # mean = index + 1
    mic._callback(block, 3000, None, _Flags())  # larger than the scratch: done in slices
    mic._callback(block[:10], 10, None, _Flags(overflow=True))
    mic._callback(np.zeros((5,), np.float32), 5, None, _Flags())  # malformed: counted, not raised
    out = mic.ring.read_new()
    assert np.array_equal(out[:3000], left + 1) and np.array_equal(out[3000:], left[:10] + 1)
    assert mic.input_overflows == 1 and mic.overflows == 1 and mic.callback_errors == 1 and mic.blocks == 3


def test_mic_callback_allocates_nothing_and_is_fast() -> None:
    """tracemalloc around 300 callbacks of a 2-channel 1024-sample block (8 kB): no array allocated."""
    mic = MicSource(MicConfig(channels=2, blocksize=1024, rate=16000))
    block = np.random.default_rng(0).standard_normal((1024, 2)).astype(np.float32)
    flags = _Flags()
    for _ in range(10):
        mic._callback(block, 1024, None, flags)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(300):
            mic._callback(block, 1024, None, flags)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < 2048 and current - base < 512, (peak - base, current - base)
    for _ in range(1000):
        mic._callback(block, 1024, None, flags)
    assert mic.callback_errors == 0


class _HidePortAudio(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes `import sounddevice` fail exactly as it does without libportaudio (OSError at import)."""

    def find_spec(self, name, path=None, target=None):
        if name == "sounddevice":
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise OSError("PortAudio library not found")


def test_missing_portaudio_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_HidePortAudio(), *sys.meta_path])
    with pytest.raises(PortAudioMissingError) as info:
        MicSource(MicConfig()).start()
    msg = str(info.value)
    assert "sudo apt-get install libportaudio2" in msg and "pip install sounddevice" in msg
    assert isinstance(info.value, MissingDependencyError) and info.value.package == "libportaudio2"


def test_missing_sounddevice_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ImportError
    with pytest.raises(
        MissingDependencyError, match=r"sounddevice is not installed.*pip install sounddevice"
    ):
        import_sounddevice()


class _FakeSD:
    """A sounddevice stand-in with one device that only takes 44.1 and 48 kHz, 2 channels."""

    class PortAudioError(Exception):
        pass

    DEVICE = {
        "name": "USB PnP Sound Device: Audio (hw:2,0)", "index": 3, "hostapi": 0,
        "max_input_channels": 2, "default_samplerate": 48000.0,
    }  # fmt: skip

    def query_devices(self, device=None, kind=None):
        if device is None and kind is None:
            return [dict(self.DEVICE)]
        if device in (None, 3) or (isinstance(device, str) and device in self.DEVICE["name"]):
            return dict(self.DEVICE)
        raise ValueError(f"No input device matching {device!r}")

    def query_hostapis(self, index):
        return {"name": "ALSA"}

    gone = False

    def check_input_settings(self, device=None, channels=None, dtype=None, samplerate=None):
        if self.gone:
            raise self.PortAudioError("Device unavailable [PaErrorCode -9985]")
        if channels > 2:
            raise self.PortAudioError("Invalid number of channels [PaErrorCode -9998]")
        if samplerate not in (44100, 48000):
            raise self.PortAudioError("Invalid sample rate [PaErrorCode -9997]")


def test_refused_rate_lists_what_the_device_supports(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeSD()
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    with pytest.raises(ConfigError) as info:  # a forced capture rate (--mic-rate) it refuses
        MicSource(MicConfig(device="USB", rate=16000, capture_rate=16000)).start()
    msg = str(info.value)
    assert "'USB PnP Sound Device: Audio (hw:2,0)' (device 3, ALSA) refuses 16000 Hz" in msg
    assert "it accepts: 44100, 48000 Hz" in msg and "default rate is 48000 Hz" in msg and "--mic-rate" in msg
    with pytest.raises(ConfigError, match="at most 2"):
        MicSource(MicConfig(device=3, rate=48000, channels=4)).start()
    with pytest.raises(ConfigError, match=r"(?s)No input device matching 'Blue Yeti'.*3: USB PnP"):
        MicSource(MicConfig(device="Blue Yeti")).start()
    fake.gone = True  # refuses every rate: the device is gone or busy, which is not a config error
    with pytest.raises(DeviceUnavailableError, match=r"'USB PnP.*cannot be opened at any common rate"):
        MicSource(MicConfig(device="USB", rate=48000)).start()
    waiting = MicSource(MicConfig(device="Blue Yeti", wait_for_device=True)).start()
    assert not waiting.healthy and "waiting for it" in (waiting.last_error or "")
    waiting.stop()


def test_capture_rate_choice_order() -> None:
    """The model's rate if taken, else the device's default, else the first preferred rate it takes; a
    forced rate as is. (The device list is a stand-in; what is opened is tested on PulseAudio below.)"""
    fake = _FakeSD()  # takes 44.1 and 48 kHz only
    info = dict(fake.DEVICE)
    assert choose_capture_rate(fake, info, MicConfig(rate=16000)) == (48000, "the device's default rate")
    assert choose_capture_rate(fake, info, MicConfig(rate=44100)) == (44100, "the model's rate")
    info["default_samplerate"] = 22050.0  # a default it does not take (seen on ALSA hw devices)
    assert choose_capture_rate(fake, info, MicConfig(rate=16000)) == (48000, "the first common rate it takes")
    info["default_samplerate"] = 0
    assert choose_capture_rate(fake, info, MicConfig(rate=16000, capture_rate=44100)) == (
        44100, "the rate asked for",
    )  # fmt: skip
    with pytest.raises(ConfigError, match="at most 2"):
        choose_capture_rate(fake, info, MicConfig(rate=16000, channels=3))
    fake.gone = True
    with pytest.raises(DeviceUnavailableError):
        choose_capture_rate(fake, info, MicConfig(rate=16000))


class _CountingSD(_FakeSD):
    """_FakeSD that counts its probes (each failed one is ~3 lines PortAudio's ALSA layer writes to stderr) and
    opens streams."""

    def __init__(self) -> None:
        self.probes = 0
        self.rates = (44100, 48000)

    def check_input_settings(self, device=None, channels=None, dtype=None, samplerate=None):
        self.probes += 1
        if self.gone:
            raise self.PortAudioError("Illegal combination of I/O devices [PaErrorCode -9993]")
        if samplerate not in self.rates:
            raise self.PortAudioError("Invalid sample rate [PaErrorCode -9997]")

    class InputStream:
        def __init__(self, **kwargs) -> None:
            self.samplerate, self.active = kwargs["samplerate"], False

        def start(self) -> None:
            self.active = True

        def abort(self) -> None:
            self.active = False

        close = abort


def test_a_lost_microphone_is_retried_at_its_rate_not_by_probing_every_rate(monkeypatch) -> None:
    """While the sound server was down, each retry probed ~22 rates and PortAudio wrote 3 lines for each (320 lines
    in a 7 s outage). A retry now probes the rate the device was captured at; the whole search runs every
    FULL_SEARCH_EVERY failed retries, and at once when the device refuses that rate as a rate (another
    microphone came back)."""
    from edge_ser.live import mic as mic_module

    fake = _CountingSD()
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    mic = MicSource(MicConfig(device="USB", rate=16000)).start()
    assert mic.capture_rate == 48000 and mic.healthy  # the device's default
    fake.gone, fake.probes = True, 0
    for _ in range(mic_module.FULL_SEARCH_EVERY - 1):
        with pytest.raises(DeviceUnavailableError, match="cannot be opened at 48000 Hz again"):
            mic._reconnect()
    assert fake.probes == mic_module.FULL_SEARCH_EVERY - 1  # one probe a retry
    with pytest.raises(DeviceUnavailableError, match="cannot be opened at any common rate"):
        mic._reconnect()  # the periodic whole search
    assert fake.probes > mic_module.FULL_SEARCH_EVERY + 5
    fake.gone, fake.rates, fake.probes = False, (44100,), 0  # another microphone: 44.1 kHz only
    mic._reconnect()
    assert mic.capture_rate == 44100 and mic._stream.samplerate == 44100 and mic._failed_reopens == 0
    fake.probes = 0
    mic._reconnect()  # back at the rate it had: one probe
    assert fake.probes == 1 and mic.capture_rate == 44100
    mic.stop()


def test_mic_takes_the_rate_portaudio_opened_it_at(monkeypatch) -> None:
    """PortAudio may open a device at another rate than the one asked (its stream info says which): the audio was
    taken as the asked rate, so 44.1 kHz samples read as 48 kHz came out of the resampler 9 % slow and low. The ring
    and resampler take the reported rate (before the first callback), and `capture_note` says so; a report within
    RATE_TOLERANCE (a hardware clock's odd rate) keeps the asked one."""

    class OddSD(_CountingSD):
        reported = 44100.0

        class InputStream(_CountingSD.InputStream):
            def __init__(self, **kwargs) -> None:
                super().__init__(**kwargs)
                self.samplerate = OddSD.reported

    monkeypatch.setitem(sys.modules, "sounddevice", OddSD())
    mic = MicSource(MicConfig(device="USB", rate=16000, blocksize=0)).start()
    assert mic.capture_rate == 44100 and mic.source_rate == 44100
    assert "captured at 44100 Hz" in mic.capture_note and "not the 48000 Hz asked" in mic.capture_note
    x = tone(440, 44100, 1.0)
    mic._callback(x[:, None], x.size, None, _Flags())
    y = mic.read()
    np.testing.assert_allclose(y, resample(x, 44100, 16000)[: y.size], atol=1e-5, rtol=0)
    mic.stop()
    OddSD.reported = 47999.7
    mic = MicSource(MicConfig(device="USB", rate=16000)).start()
    assert mic.capture_rate == 48000 and "not the" not in mic.capture_note
    mic.stop()


@pytest.mark.parametrize("capture_rate", [48000, 44100, 8000])
def test_mic_consumer_resamples_random_blocks_like_whole_resample(capture_rate: int) -> None:
    """Stereo blocks of random sizes through the real callback -> ring -> read (random sizes): the channel
    mean resampled to 16 kHz, equal to `resample` of the whole recording (the file path) to ~1e-5."""
    rng = np.random.default_rng(capture_rate)
    mic = MicSource(MicConfig(rate=16000, capture_rate=capture_rate, channels=2, blocksize=0))
    x = (0.3 * rng.standard_normal((3 * capture_rate, 2))).astype(np.float32)
    x[:, 1] = 0.0  # a dead channel: averaged as the file path averages it
    out, pos = [], 0
    while pos < x.shape[0]:
        n = int(rng.integers(1, 3000))
        mic._callback(x[pos : pos + n], min(n, x.shape[0] - pos), None, _Flags())
        pos += n
        k = int(rng.integers(0, 2500)) if rng.random() < 0.8 else None
        out.append(mic.read(k))
        if k is not None and out[-1].size < k:  # fewer than asked only when nothing more is captured
            assert mic.ring.available == 0
    out.append(mic.read())
    y = np.concatenate(out)
    whole = resample(x.mean(axis=1, dtype=np.float32), capture_rate, 16000)
    assert whole.size - 400 < y.size <= whole.size  # all but the filter's look-ahead is out already
    np.testing.assert_allclose(y, whole[: y.size], atol=1e-5, rtol=0)
    assert mic.callback_errors == 0 and mic.stream_time == pytest.approx(y.size / 16000)
    assert "resampled to 16000 Hz" in mic.capture_note and "2 ch averaged" in mic.capture_note


def test_mic_capture_rate_change_on_reconnect_keeps_the_stream_continuous() -> None:
    """A device re-opened at another rate (another USB microphone plugged in): what was captured at the old
    rate is finished with the old resampler, then the new rate is resampled; no sample is lost or
    repeated and the stream time keeps counting output samples."""
    mic = MicSource(MicConfig(rate=16000, capture_rate=48000, channels=1, blocksize=0))
    a, b = tone(440, 48000, 1.0), tone(440, 44100, 1.0)
    mic._callback(a[:, None], a.size, None, _Flags())
    first = mic.read(5000)
    mic._use_rate(44100)  # what `start`/`maintain` do when the device comes back at 44.1 kHz
    assert mic.capture_rate == 44100 and mic.ring.available == 0
    mic._callback(b[:, None], b.size, None, _Flags())
    rest = mic.read()
    np.testing.assert_allclose(
        np.concatenate([first, rest[: 16000 - first.size]]), resample(a, 48000, 16000), atol=1e-5, rtol=0
    )
    np.testing.assert_allclose(
        rest[16000 - first.size :],
        resample(b, 44100, 16000)[: rest.size - 16000 + first.size],
        atol=1e-5,
        rtol=0,
    )
    assert mic.stream_time == pytest.approx((first.size + rest.size) / 16000)


def test_mic_config_validation_and_round_trip() -> None:
    cfg = MicConfig(device="pulse", rate=48000, channels=2, latency="low")
    assert MicConfig.from_dict(cfg.to_dict()) == cfg and MicConfig.from_dict({}) == MicConfig()
    for bad in ({"rate": 0}, {"channels": 0}, {"blocksize": -1}, {"latency": "fast"}, {"ring_seconds": 0},
                {"device": 1.5}, {"retry_initial": 0}, {"ring_seconds": 0.01, "blocksize": 512},
                {"capture_rate": 0}, {"capture_rate": 44100.0}):  # fmt: skip
        with pytest.raises(ConfigError):
            MicConfig(**bad)
    with pytest.raises(ConfigError, match="unknown"):
        MicConfig.from_dict({"samplerate": 16000})


# ---------------------------------------------------------------------------------------------- mic: real PulseAudio
class PulseServer:
    """A private PulseAudio daemon (own socket and runtime dir) with a null sink `edge`; its monitor
    `edge.monitor` is the default source, so whatever is played into `edge` is what a microphone hears.

    A null sink renders in steps of its configured latency, 2 s while no stream asks for less, so its monitor
    would deliver audio in 2 s bursts (a microphone's first block arriving ~2 s late). `start()` therefore
    suspends the sink, connects a 20 ms-latency player of silence, and resumes it: from then on the sink is
    clocked in 5 ms steps and the monitor flows like a real ADC.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "native"
        self.env = {
            **os.environ, "HOME": str(root), "XDG_RUNTIME_DIR": str(root),
            "PULSE_RUNTIME_PATH": str(root), "XDG_CONFIG_HOME": str(root / "config"),
        }  # fmt: skip
        self.env.pop("PULSE_SERVER", None)
        self.proc: subprocess.Popen | None = None
        self.clock: subprocess.Popen | None = None  # the silent low-latency player
        self.log = root / "pulseaudio.log"

    @property
    def server(self) -> str:
        return f"unix:{self.socket}"

    def start(self) -> None:
        cmd = [
            "pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "-n", "--use-pid-file=no",
            "--log-target=stderr", "--disable-shm=yes",
            "-L", f"module-native-protocol-unix socket={self.socket} auth-anonymous=1",
            "-L", "module-null-sink sink_name=edge rate=48000 channels=2",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + HANG_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.pactl("info").returncode == 0:
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"pulseaudio did not start: {self.log.read_text(errors='replace')[-600:]}")
        self.pactl("set-default-source", "edge.monitor")
        self.pactl("suspend-sink", "edge", "1")
        self.clock = subprocess.Popen(
            ["pacat", "-s", self.server, "--playback", "--device=edge", "--latency-msec=20",
             "--format=s16le", "--rate=48000", "--channels=2", "/dev/zero"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        while time.monotonic() < deadline and not self.pactl("list", "short", "sink-inputs").stdout.strip():
            time.sleep(0.02)
        self.pactl("suspend-sink", "edge", "0")

    def stop(self) -> None:
        for proc in (self.clock, self.proc):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.proc = self.clock = None

    def pactl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["pactl", "-s", self.server, *args], env=self.env, capture_output=True, text=True, timeout=5
        )

    def play(self, path: Path) -> subprocess.Popen:
        return subprocess.Popen(
            ["paplay", "-s", self.server, "--device=edge", "--latency-msec=20", str(path)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def _reinit_portaudio(sd) -> None:
    sd._terminate()
    sd._initialize()


@pytest.fixture(scope="module")
def pulse(tmp_path_factory: pytest.TempPathFactory):
    missing = [exe for exe in ("pulseaudio", "pactl", "paplay") if shutil.which(exe) is None]
    if missing:
        pytest.skip(f"no PulseAudio to test the real microphone path: {missing} not found "
                    "(apt-get install pulseaudio pulseaudio-utils libasound2-plugins)")  # fmt: skip
    try:
        sd = import_sounddevice()
    except MissingDependencyError as exc:
        pytest.skip(f"no sounddevice/PortAudio: {exc}")
    server = PulseServer(tmp_path_factory.mktemp("pulse"))
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot run a PulseAudio server here: {exc}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PULSE_SERVER", server.server)  # read by the ALSA pulse plugin when a stream opens
        mp.setenv("PULSE_SOURCE", "edge.monitor")
        _reinit_portaudio(sd)  # PortAudio lists ALSA devices at init: rescan now that the server is up
        names = [d["name"] for d in sd.query_devices()]
        if "pulse" not in names:
            server.stop()
            pytest.skip(
                f"PortAudio sees no 'pulse' ALSA device (apt-get install libasound2-plugins); it sees {names}"
            )
        try:
            yield server
        finally:
            server.stop()
    _reinit_portaudio(sd)


def _record(mic: MicSource, seconds: float, timeout: float = HANG_S) -> np.ndarray:
    n = int(seconds * mic.rate)
    parts, got, deadline = [], 0, time.monotonic() + timeout
    while got < n and time.monotonic() < deadline:
        y = mic.read(n - got, min_samples=min(n - got, 1024), timeout=0.5)
        parts.append(y)
        got += y.size
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def test_real_microphone_hears_a_sine_through_pulseaudio(pulse: PulseServer, tmp_path: Path) -> None:
    """sounddevice -> PortAudio (ALSA 'pulse' device) -> PulseAudio null-sink monitor: a 997 Hz sine played
    into the sink with paplay is recorded, down-mixed from 2 channels, with its frequency."""
    wav = write_wav(tmp_path / "sine.wav", tone(997, 48000, 4.0, amp=0.5), 48000)
    player = pulse.play(wav)
    try:
        with MicSource(MicConfig(device="pulse", rate=16000, channels=2, blocksize=512)) as mic:
            assert mic.healthy and mic.device_name == "pulse"
            deadline = time.monotonic() + HANG_S
            while time.monotonic() < deadline:  # wait for paplay's stream to start sounding
                y = _record(mic, 0.1)
                if y.size and np.sqrt(np.mean(y**2)) > 0.1:
                    break
            mic.ring.skip_to_end()
            t0 = mic.stream_time
            y = _record(mic, 1.0)
            assert mic.stream_time - t0 == pytest.approx(1.0, abs=0.05)
            assert mic.healthy and mic.callback_errors == 0 and mic.blocks > 0
    finally:
        player.kill()
        player.wait()
    assert y.size == 16000
    rms = float(np.sqrt(np.mean(y**2)))
    assert 0.25 < rms < 0.45, rms  # 0.5 amplitude sine: rms 0.354
    assert abs(peak_hz(y, 16000) - 997) <= 2, peak_hz(y, 16000)


def _play_slow(pulse: PulseServer, path: Path) -> subprocess.Popen:
    """paplay with a 200 ms buffer: on a loaded machine a 20 ms player can underrun and put gaps in a tone."""
    return subprocess.Popen(
        ["paplay", "-s", pulse.server, "--device=edge", "--latency-msec=200", str(path)],
        env=pulse.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_real_48khz_microphone_is_resampled_to_the_model_rate(pulse: PulseServer, tmp_path: Path) -> None:
    """The PulseAudio source runs at 48 kHz; the microphone is opened at 48 kHz (as a 48 kHz-only USB
    microphone is) and read at 16 kHz: a 1.5 s 1 kHz tone comes out as 24000 samples (+-2 frames of 10 ms)
    at 1 kHz, and every 3 captured samples made one. Counts samples, never the wall clock."""
    sr, cap = 16000, 48000
    y = np.concatenate([np.zeros(cap // 2), tone(1000, cap, 1.5, amp=0.5), np.zeros(cap)]).astype(np.float32)
    wav = write_wav(tmp_path / "burst.wav", y, cap)
    cfg = MicConfig(device="pulse", rate=sr, capture_rate=cap, channels=2, blocksize=1024)
    with MicSource(cfg) as mic:
        assert mic.capture_rate == cap and mic.rate == sr
        assert "captured at 48000 Hz (the rate asked for), 2 ch averaged to mono, resampled to 16000 Hz" in (
            mic.capture_note
        )
        mic.skip_to_end()
        t0, in0 = mic.stream_time, mic.ring.read_pos
        player = _play_slow(pulse, wav)
        try:
            parts, loud_seen, quiet_after = [], False, 0
            deadline = time.monotonic() + HANG_S
            while (
                time.monotonic() < deadline and quiet_after < sr // 2
            ):  # until 0.5 s of quiet after the tone
                part = _record(mic, 0.1)
                parts.append(part)
                loud = part.size and float(np.sqrt(np.mean(part**2))) > 0.1
                loud_seen |= bool(loud)
                quiet_after = 0 if loud or not loud_seen else quiet_after + part.size
        finally:
            player.kill()
            player.wait()
        got = np.concatenate(parts)
        consumed = mic.ring.read_pos - in0
        assert mic.callback_errors == 0 and mic.lost_samples == 0
    assert loud_seen, "the tone never arrived"
    # the stream clock is the output's: samples returned / 16 kHz, and 3 captured samples per output sample
    assert mic.stream_time - t0 == pytest.approx(got.size / sr)
    assert abs(consumed / 3 - got.size) < 400, (consumed, got.size)  # the filter's look-ahead, no more
    frames = got[: got.size // 160 * 160].reshape(-1, 160)
    loud_frames = np.flatnonzero(np.sqrt(np.mean(frames**2, axis=1)) > 0.177)  # half the tone's RMS
    assert abs(loud_frames.size * 160 - int(1.5 * sr)) <= 320, loud_frames.size
    assert np.all(np.diff(loud_frames) == 1)  # one burst, no gaps
    mid = got[loud_frames[0] * 160 + 2000 :][:sr]
    assert mid.size == sr and abs(peak_hz(mid, sr) - 1000) <= 2, peak_hz(mid, sr)
    assert float(np.sqrt(np.mean(mid**2))) == pytest.approx(0.354, abs=0.03)


def test_real_run_cli_with_a_48khz_microphone(pulse: PulseServer, tmp_path: Path) -> None:
    """`edge-ser run BUNDLE --mic pulse --mic-rate 48000 --seconds 4 --json -` end to end on a 16 kHz
    bundle: the banner and the first result's notes name the capture rate and the conversion, the updates
    come every hop of the 16 kHz stream time, and the tone reaches the model (the gate opens)."""
    pytest.importorskip("onnxruntime")
    root = Path(__file__).resolve().parents[1]
    bundle = root / "bundles" / "tiny_transformer_emodb"
    wav = write_wav(tmp_path / "tone.wav", tone(440, 48000, 120.0, amp=0.3), 48000)
    player = _play_slow(pulse, wav)
    try:
        env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(
            [sys.executable, "-m", "edge_ser", "run", str(bundle), "--mic", "pulse", "--mic-rate", "48000",
             "--channels", "2", "--seconds", "4", "--json", "-", "--no-console"],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        player.kill()
        player.wait()
    assert proc.returncode == 0, proc.stderr
    assert "audio: microphone 'pulse': captured at 48000 Hz (the rate asked for)" in proc.stderr
    assert "resampled to 16000 Hz (polyphase, hq)" in proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["t"] for r in lines] == [3.0, 3.5, 4.0]  # first full 3 s window, then every 0.5 s hop
    assert any("captured at 48000 Hz" in n and "resampled to 16000 Hz" in n for n in lines[0]["notes"])
    assert not any("captured" in n for r in lines[1:] for n in r["notes"])
    assert lines[-1]["speech"] and lines[-1]["level_db"] == pytest.approx(-13.5, abs=2)  # 0.3 sine: -13.5 dB


def test_real_device_refusing_a_rate_lists_its_rates(pulse: PulseServer) -> None:
    with pytest.raises(ConfigError) as info:
        MicSource(MicConfig(device="pulse", rate=16000, capture_rate=1_000_000, ring_seconds=0.1)).start()
    msg = str(info.value)
    assert "'pulse' (device" in msg and "refuses 1000000 Hz" in msg and "Invalid sample rate" in msg
    assert "it accepts: 8000, 11025, 16000" in msg and "default rate is" in msg
    with MicSource(MicConfig(device="pulse", rate=16000, ring_seconds=0.1)) as mic:  # rate not forced
        assert mic.capture_rate == 16000 and mic.capture_reason == "the model's rate"
        assert "no resampling" in mic.capture_note


@pytest.mark.parametrize("capture_rate", [None, 48000])
def test_real_microphone_survives_the_server_going_away(pulse: PulseServer, capture_rate: int | None) -> None:
    """Stop the PulseAudio server under a running stream: the source goes unhealthy, never raises, retries
    with back-off, and records again once the server is back (also when capturing at 48 kHz and resampling)."""
    cfg = MicConfig(
        device="pulse", rate=16000, capture_rate=capture_rate, blocksize=512, retry_initial=0.1, retry_max=0.4,
        stall_timeout=0.5,
    )  # fmt: skip
    with MicSource(cfg) as mic:
        assert _record(mic, 0.2).size == 3200
        pulse.stop()
        deadline = time.monotonic() + HANG_S
        while mic.healthy and time.monotonic() < deadline:
            mic.read(timeout=0.05, min_samples=512)
        assert not mic.healthy and mic.last_error
        time.sleep(0.3)
        mic.read()  # a retry while the server is down: fails quietly, says why and when it retries
        assert not mic.healthy and mic.restarts == 0
        assert "cannot be opened" in (mic.last_error or "") and "retrying in" in (mic.last_error or "")
        pulse.start()
        deadline = time.monotonic() + HANG_S
        while not mic.healthy and time.monotonic() < deadline:
            mic.read()
            time.sleep(0.05)
        assert mic.healthy and mic.restarts >= 1, mic.last_error
        assert _record(mic, 0.2).size == 3200


def test_silence_source_is_a_clock_of_the_given_length() -> None:
    """A face-only bundle's audio: zeros as long as the video (fast: exactly that many samples, then finished),
    or endless for a camera; a negative length is refused."""
    from edge_ser.live.files import SilenceSource

    src = SilenceSource(1.5, 16000, realtime=False)
    assert isinstance(src, AudioSource) and src.duration == 1.5
    got = [src.read(4000) for _ in range(7)]
    assert sum(g.size for g in got) == 24000 and not any(g.any() for g in got)
    assert src.finished and src.stream_time == pytest.approx(1.5)
    endless = SilenceSource(None, 16000, realtime=False)
    assert endless.read(100_000).size == 100_000 and not endless.finished
    with pytest.raises(ConfigError):
        SilenceSource(-1.0)


def test_a_missing_device_is_said_in_our_words():
    """`--mic 7` said PortAudio's bare "Error querying device 7"; a name matching several devices printed
    sounddevice's list of them above our own list of input devices."""
    from edge_ser.live.mic import _not_found

    assert _not_found(7, Exception("Error querying device 7")) == "there is no device 7"
    assert _not_found(-1, Exception("Error querying device -1")).endswith("(indices start at 0)")
    # no device asked for and no default one: PortAudio's "-1" is its index for none, not something the user gave
    assert _not_found(None, Exception("Error querying device -1")).startswith(
        "there is no default input device"
    )
    several = Exception("Multiple input devices found for 'USB':\n[1] USB A\n[2] USB B")
    assert _not_found("USB", several) == "Multiple input devices found for 'USB'"
