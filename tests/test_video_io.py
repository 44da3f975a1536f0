"""Video decoding (edge_ser.vision.video) and container audio through ffmpeg (edge_ser.audio.container),
on real files: drawn faces written by cv2.VideoWriter, synthetic speech muxed in by ffmpeg."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from av_media import (
    AAC_FRAME,
    AUDIO_SR,
    FPS,
    N_FRAMES,
    SIZE,
    face_frames,
    ffmpeg_or_skip,
    mux,
    speech,
    write_speech,
    write_video,
)

from edge_ser.audio import container, resample, write_wav
from edge_ser.audio.container import FFmpegNotFoundError, find_ffmpeg, load_container_audio
from edge_ser.errors import (
    AudioFormatError,
    ConfigError,
    InputWarning,
    MissingDependencyError,
    VideoFormatError,
)
from edge_ser.vision.face import FaceCropper
from edge_ser.vision.video import iter_frames, probe_video, read_sampled, read_video, sample_frame_indices


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "faces.mp4")


@pytest.fixture(scope="module")
def ffmpeg():
    return ffmpeg_or_skip()


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    return write_speech(tmp_path_factory.mktemp("audio") / "speech.wav")


# --------------------------------------------------------------------------------------------- video
def test_read_video_frames_fps_and_count(mp4):
    info = probe_video(mp4)
    assert (info.width, info.height) == SIZE and info.fps == FPS and info.frame_count == N_FRAMES
    assert info.codec == "FMP4" and info.duration == pytest.approx(N_FRAMES / FPS)
    video = read_video(mp4)
    assert video.frames.shape == (N_FRAMES, SIZE[1], SIZE[0], 3) and video.frames.dtype == np.uint8
    assert len(video) == video.n_frames == N_FRAMES and video.fps == FPS
    assert np.array_equal(video.indices, np.arange(N_FRAMES))
    # lossy MPEG-4, but the same pictures: mean absolute error of a few grey levels
    assert np.abs(video.frames.astype(np.int16) - face_frames()).mean() < 6
    assert sum(1 for _ in iter_frames(mp4)) == N_FRAMES
    # the real Haar cascade finds the drawn faces in the decoded frames
    cropper = FaceCropper()
    assert sum(cropper.crop(f) is not None for f in video.frames[::5]) >= 5


@pytest.mark.parametrize("method", ["skip", "seek"])
@pytest.mark.parametrize("k", [1, 6, 45])
def test_read_sampled_matches_full_decode(mp4, method, k):
    full = read_video(mp4).frames
    want = sample_frame_indices(N_FRAMES, k)
    got = read_sampled(mp4, k, method=method)
    assert np.array_equal(got.indices, want) and got.n_frames == N_FRAMES and got.fps == FPS
    assert np.array_equal(got.frames, full[want])
    grey = read_sampled(mp4, k, grey=True, method=method)
    assert grey.frames.shape == (k, SIZE[1], SIZE[0])
    assert np.array_equal(grey.frames[0], cv2.cvtColor(full[want[0]], cv2.COLOR_BGR2GRAY))


@pytest.mark.parametrize("fourcc, ext", [("MJPG", "avi"), ("mp4v", "mp4")])
def test_a_one_frame_clip_is_read_by_seeking_too(tmp_path, fourcc, ext):
    """Review: `read_sampled(method="seek")` of a one-frame file, k > 1, seeks back to frame 0 after reading it,
    which OpenCV cannot, and the file was refused as truncated; a repeated index reuses the frame read."""
    path = write_video(tmp_path / f"one.{ext}", fourcc=fourcc, frames=face_frames()[:1])
    skip = read_sampled(path, 6)
    got = read_sampled(path, 6, method="seek")
    assert np.array_equal(got.indices, np.zeros(6)) and got.n_frames == 1
    assert np.array_equal(got.frames, skip.frames)


def test_other_containers_and_codecs(tmp_path, mp4, ffmpeg):
    avi = write_video(tmp_path / "faces.avi", fourcc="MJPG")
    mkv = tmp_path / "faces.mkv"
    subprocess.run([ffmpeg, "-v", "error", "-i", str(mp4), "-c:v", "copy", str(mkv)], check=True, timeout=60)
    for path, codec in ((avi, "MJPG"), (mkv, "FMP4")):
        got = read_sampled(path, 6)
        assert got.info.codec == codec and got.n_frames == N_FRAMES and got.info.fps == FPS
        assert np.array_equal(got.indices, sample_frame_indices(N_FRAMES, 6))


def test_bad_arguments(mp4):
    for k in (0, -1, 2.0, True):
        with pytest.raises(ConfigError, match="k must"):
            read_sampled(mp4, k)
    with pytest.raises(ConfigError, match="method"):
        read_sampled(mp4, 6, method="fast")


def test_video_errors_name_the_file_and_the_problem(tmp_path, mp4):
    data = mp4.read_bytes()
    cases = {
        "missing.mp4": (None, "no such file"),
        "empty.mp4": (b"", "empty file"),
        "garbage.mp4": (
            bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)),
            "not a video",
        ),
        "notes.txt": (b"hello, not a video\n", "not a video"),
        "truncated.mp4": (
            data[: len(data) // 2],
            "looks like MP4.*truncated",
        ),  # its 'moov' index is at the end
        "photo.mp4": (  # and what to do with a still image instead (a review)
            cv2.imencode(".jpg", face_frames()[0])[1].tobytes(),
            "JPEG image, not a video .a folder of images plays as a video.*predict. classifies one image",
        ),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        for reader in (probe_video, read_video, read_sampled):
            with pytest.raises(VideoFormatError, match=message) as err:
                reader(path)
            assert str(path) in str(err.value)
    with pytest.raises(VideoFormatError, match="is a directory"):
        read_sampled(tmp_path)


def test_zero_frames_and_truncated_stream(tmp_path, mp4, ffmpeg):
    empty = write_video(tmp_path / "empty.avi", face_frames()[:0], fourcc="MJPG")
    with pytest.raises(VideoFormatError, match="zero decodable frames"):
        read_sampled(empty)
    # index at the front ("faststart"): the file opens, declares 30 frames, and the stream stops half way
    fast = tmp_path / "fast.mp4"
    subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(mp4), "-c", "copy", "-movflags", "+faststart", str(fast)],
        check=True,
        timeout=60,
    )
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(fast.read_bytes()[: fast.stat().st_size // 2])
    assert probe_video(cut).frame_count == N_FRAMES
    # the frames that decode are used, with a warning naming the file (it was refused: a user review)
    full = read_video(cut.with_name("fast.mp4")).frames
    for read in (read_video, read_sampled, lambda p: list(iter_frames(p))):
        with pytest.warns(InputWarning, match=f"declares {N_FRAMES} frames but only") as got:
            out = read(cut)
        assert str(cut) in str(got[0].message) and "are used" in str(got[0].message)
        frames = out if isinstance(out, list) else out.frames
        assert 0 < len(frames) < N_FRAMES
        if read is read_video:  # the file's first frames (the last, cut part way, may be partly decoded)
            np.testing.assert_array_equal(np.stack(frames)[:-1], full[: len(frames) - 1])


# ------------------------------------------------------------------------------------ container audio
@pytest.mark.parametrize(
    ("suffix", "codec", "min_corr"),
    [
        (".mp4", "aac", 0.995),
        (".mov", "aac", 0.995),
        (".mkv", "libopus", 0.99),
        (".avi", "pcm_s16le", 0.9999),
    ],
)
def test_container_audio_matches_the_source(tmp_path, mp4, wav, ffmpeg, suffix, codec, min_corr):
    path = mux(ffmpeg, mp4, wav, tmp_path / f"clip{suffix}", codec)
    src = speech()
    y, sr = load_container_audio(path)
    assert sr == AUDIO_SR and y.dtype == np.float32 and y.ndim == 1
    pad = AAC_FRAME if codec == "aac" else 0  # the last frame's padding, kept by some ffmpeg builds
    assert -0.005 * sr <= len(y) - len(src) <= pad + 0.005 * sr  # within 5 ms
    n = min(len(y), len(src))
    assert np.corrcoef(y[:n], src[:n])[0, 1] > min_corr
    # the rate change is edge_ser's resampler, as for a WAV
    y16, sr16 = load_container_audio(path, sr=16000)
    ref = resample(src, AUDIO_SR, 16000)
    assert sr16 == 16000 and -80 <= len(y16) - len(ref) <= pad * 16000 // AUDIO_SR + 80
    n = min(len(y16), len(ref))
    assert np.corrcoef(y16[:n], ref[:n])[0, 1] > min_corr
    if codec == "pcm_s16le":  # lossless: the samples themselves (16-bit quantisation)
        assert np.abs(y16[:n] - ref[:n]).max() < 1e-3


def test_stereo_is_averaged_like_edge_ser_load(tmp_path, mp4, ffmpeg):
    src = speech()
    stereo = write_wav(tmp_path / "stereo.wav", np.stack([src, np.zeros_like(src)], axis=1), AUDIO_SR)
    path = mux(ffmpeg, mp4, stereo, tmp_path / "stereo.mkv", "pcm_s16le")
    y, _ = load_container_audio(path)
    assert np.abs(y - src / 2).max() < 1e-4  # the channel mean, not ffmpeg's (L + R) / sqrt(2)


def test_container_audio_errors(tmp_path, mp4, ffmpeg):
    with pytest.raises(AudioFormatError, match="no audio stream") as err:
        load_container_audio(mp4)
    assert str(mp4) in str(err.value) and "Video: mpeg4" in str(err.value)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01 not a media file" * 50)
    with pytest.raises(AudioFormatError, match="cannot read this file") as err:
        load_container_audio(garbage)
    assert str(garbage) in str(err.value)
    with pytest.raises(AudioFormatError, match="no such file"):
        load_container_audio(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(AudioFormatError, match="empty file"):
        load_container_audio(tmp_path / "empty.mp4")
    with pytest.raises(ConfigError):
        load_container_audio(mp4, sr=0)


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell script as a fake ffmpeg")
def test_ffmpeg_failure_quotes_its_stderr(tmp_path, mp4):
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho 'decoder exploded: frobnication failed' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(AudioFormatError, match="exit code 3.*frobnication failed") as err:
        load_container_audio(mp4, ffmpeg=fake)
    assert str(mp4) in str(err.value)


def test_no_ffmpeg_says_how_to_get_one(tmp_path, mp4, monkeypatch):
    monkeypatch.delenv(container.FFMPEG_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # `import imageio_ffmpeg` raises ImportError
    with pytest.raises(FFmpegNotFoundError, match="ffmpeg not found"):
        find_ffmpeg()
    with pytest.raises(FFmpegNotFoundError) as err:
        load_container_audio(mp4)
    message = str(err.value)
    assert str(mp4) in message
    assert "apt-get install ffmpeg" in message and "pip install imageio-ffmpeg" in message
    assert "separate WAV" in message and container.FFMPEG_ENV in message
    assert isinstance(err.value, MissingDependencyError) and isinstance(err.value, ImportError)
    # a finder that fails (the brief's monkeypatch route) reaches the caller the same way
    monkeypatch.setattr(container, "find_ffmpeg", lambda: (_ for _ in ()).throw(FFmpegNotFoundError("none")))
    with pytest.raises(FFmpegNotFoundError, match="cannot read the audio track"):
        load_container_audio(mp4)


def test_ffmpeg_env_var(tmp_path, monkeypatch, ffmpeg):
    monkeypatch.setenv(container.FFMPEG_ENV, ffmpeg)
    assert find_ffmpeg() == ffmpeg
    not_exe = tmp_path / "ffmpeg.txt"
    not_exe.write_text("no")
    monkeypatch.setenv(container.FFMPEG_ENV, str(not_exe))
    with pytest.raises(FFmpegNotFoundError, match="is not an executable"):
        find_ffmpeg()
    if shutil.which("ffmpeg") is None:  # the imageio-ffmpeg fallback is what this machine uses
        monkeypatch.delenv(container.FFMPEG_ENV)
        assert os.path.isfile(find_ffmpeg())
