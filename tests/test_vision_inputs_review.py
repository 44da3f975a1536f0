"""A user review that fed the face and audio-visual bundles real-world files: an image bomb (a small file that
decodes to gigabytes), a video with only a sound track, av_cnn without faces, and face crops of the wrong shape."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from edge_ser.errors import InputWarning, VideoFormatError

REPO = Path(__file__).resolve().parents[1]


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose IHDR declares width x height, with one tiny IDAT: what the decoder would allocate is the
    header's size (a real 20000x20000 bomb is a 394 KB file that takes seconds to write)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    data = zlib.compress(b"\0" * (width + 1))  # the first row only
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def _jpeg_declaring(path: Path, width: int, height: int) -> Path:
    """A real small JPEG (with an EXIF-like APP1 segment before its frame header) whose SOF0 is patched to
    declare width x height."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.full((16, 16), 100, np.uint8))
    assert ok
    data = bytearray(buf.tobytes())
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 300) + b"Exif\0\0" + b"\xff\xc0" * 147  # SOF-like bytes inside
    data[2:2] = app1
    sof = data.index(b"\xff\xc0", 2 + len(app1))
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


# -- 1. image bombs ----------------------------------------------------------------------------------------------


def test_an_image_bomb_is_refused_from_its_header_naming_the_file_and_size(tmp_path) -> None:
    """A 20000x20000 PNG made `predict` take 2.4 GB (or die with cv2.error "Insufficient memory"); a 10000x10000
    JPEG 680 MB. The header says the size: refused before decoding."""
    from edge_ser.vision.image import read_image

    bomb = _png_header_only(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(VideoFormatError, match=r"bomb\.png: the image is 20000x20000 \(400 megapixels\)"):
        read_image(bomb)
    jpeg = _jpeg_declaring(tmp_path / "big.jpg", 10000, 10000)
    with pytest.raises(VideoFormatError, match=r"big\.jpg: the image is 10000x10000 .*MAX_IMAGE_PIXELS"):
        read_image(jpeg, grey=True)


def test_the_header_sizes_of_every_image_format_read(tmp_path) -> None:
    """image_size reads the size each format's header declares, without decoding (None where it cannot)."""
    import cv2

    from edge_ser.vision.image import image_size

    img = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    for ext in ("png", "jpg", "bmp", "ppm", "pgm", "pbm", "pam", "tif", "webp"):
        path = tmp_path / f"x.{ext}"
        assert cv2.imwrite(str(path), img[..., 0] if ext in ("pgm", "pbm") else img), ext
        assert image_size(path) == (53, 37), ext
    progressive = tmp_path / "p.jpg"
    cv2.imwrite(str(progressive), img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    lossless = tmp_path / "l.webp"
    cv2.imwrite(str(lossless), img, [cv2.IMWRITE_WEBP_QUALITY, 101])
    assert image_size(progressive) == image_size(lossless) == (53, 37)
    assert image_size(_jpeg_declaring(tmp_path / "exif.jpg", 300, 200)) == (300, 200)
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert image_size(tmp_path / "junk.png") is None


def test_an_image_at_the_limit_still_decodes_and_the_limit_is_one_constant(tmp_path, monkeypatch) -> None:
    import cv2

    import edge_ser.vision.image as image
    from edge_ser import limits

    assert 20_000_000 <= limits.MAX_IMAGE_PIXELS <= 100_000_000  # tens of megapixels: above any camera frame
    path = tmp_path / "small.png"
    cv2.imwrite(str(path), np.zeros((40, 50), np.uint8))
    monkeypatch.setattr(image, "MAX_IMAGE_PIXELS", 2000)
    assert image.read_image(path).shape == (40, 50, 3)
    monkeypatch.setattr(image, "MAX_IMAGE_PIXELS", 1999)
    with pytest.raises(VideoFormatError, match=r"small\.png: the image is 50x40"):
        image.read_image(path)


def test_a_decoder_error_is_a_video_format_error_naming_the_file(tmp_path, monkeypatch) -> None:
    """Under `ulimit -v` the decoder's cv2.error "Insufficient memory" escaped as a traceback."""
    import cv2

    from edge_ser.vision.image import read_image

    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), np.zeros((8, 8), np.uint8))

    def fail(*a, **k):  # noqa: ANN002, ANN003
        raise cv2.error("OpenCV(4.14.0) alloc.cpp:73: error: (-4:Insufficient memory) Failed to allocate")

    monkeypatch.setattr(cv2, "imread", fail)
    with pytest.raises(VideoFormatError, match=r"photo\.png: cannot be decoded .*Insufficient memory"):
        read_image(path)


def test_a_video_of_absurd_frames_is_refused_before_decoding(tmp_path) -> None:
    """A video's frame size is held to the same limit, on opening (a one-frame MJPEG AVI of 7500x7500)."""
    import subprocess

    import cv2

    from tests.av_media import ffmpeg_or_skip

    ffmpeg = ffmpeg_or_skip()
    frame = tmp_path / "frame.jpg"
    cv2.imwrite(str(frame), np.zeros((7500, 7500), np.uint8))
    video = tmp_path / "huge.avi"
    subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(frame), "-c:v", "copy", "-f", "avi", str(video)], check=True
    )
    from edge_ser.vision.video import probe_video, read_sampled

    for read in (probe_video, read_sampled):
        with pytest.raises(VideoFormatError, match=r"huge\.avi: has frames of 7500x7500 \(56 megapixels\)"):
            read(video)


# -- 2. a "video" of a sound track alone -------------------------------------------------------------------------


def _shipped(name: str):
    from edge_ser.recognizer import Recognizer

    return Recognizer(REPO / "bundles" / name, "numpy", adapt=False)


@pytest.fixture(scope="module")
def sound_only(tmp_path_factory) -> Path:
    """`ffmpeg -i face.mp4 -vn -c:a copy a.mp4`: an MP4 holding one AAC stream and no video."""
    import subprocess

    from tests.av_media import ffmpeg_or_skip, mux, write_speech, write_video

    ffmpeg = ffmpeg_or_skip()
    d = tmp_path_factory.mktemp("sound_only")
    both = mux(ffmpeg, write_video(d / "face.mp4"), write_speech(d / "a.wav"), d / "face_av.mp4")
    out = d / "a.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-i", str(both), "-vn", "-c:a", "copy", str(out)], check=True)
    return out


def test_a_sound_track_alone_is_named_as_such(sound_only) -> None:
    """It read "looks like MP4/QuickTime but OpenCV cannot open it: the file is truncated or damaged"."""
    from edge_ser.vision.video import NoVideoStreamError, media_streams, probe_video, read_sampled

    assert media_streams(sound_only) == ["Audio: aac"]
    for read in (probe_video, read_sampled):
        with pytest.raises(NoVideoStreamError, match=r"a\.mp4: no video stream \(streams: Audio: aac\)") as e:
            read(sound_only)
        assert "truncated" not in str(e.value) and isinstance(e.value, VideoFormatError)


def test_the_face_bundle_refuses_it_with_that_message(sound_only, capsys) -> None:
    from edge_ser.cli import main

    with pytest.raises(VideoFormatError, match=r"no video stream \(streams: Audio: aac\)"):
        _shipped("face_fer").predict_file(sound_only)
    with pytest.warns(InputWarning, match=r"skipped .*a\.mp4: no video stream \(streams: Audio: aac\)"):
        assert (
            main(["predict", str(REPO / "bundles" / "face_fer"), str(sound_only), "--engine", "numpy"]) == 2
        )
    assert "none of the 1 file(s) could be read" in capsys.readouterr().err


def test_the_fusion_bundle_answers_it_from_its_audio_alone_with_no_face(sound_only, capsys) -> None:
    """av_fusion answers on audio alone when no face is in view; a file with no picture at all is that case."""
    import json

    from edge_ser.audio.container import load_container_audio
    from edge_ser.cli import main

    fusion, audio = _shipped("av_fusion"), _shipped("av_fn_audio")
    pa = np.array(list(audio.predict_audio(*load_container_audio(sound_only)).probabilities.values()))
    p = fusion.predict_file(sound_only)
    assert p.face_found is False and p.level_db is not None
    expected = fusion.kind.rule.fuse({"audio": pa})
    np.testing.assert_allclose(list(p.probabilities.values()), expected, rtol=1e-4, atol=1e-6)
    clip = fusion.kind.file_inputs(sound_only)["clip"][0]
    assert clip["face"] is None and clip["audio"] is not None
    bundle = str(REPO / "bundles" / "av_fusion")
    assert main(["predict", bundle, str(sound_only), "--engine", "numpy"]) == 0
    assert "[no face found: audio alone]" in capsys.readouterr().out
    assert main(["predict", bundle, str(sound_only), "--engine", "numpy", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["face_found"] is False


def test_a_long_sound_track_alone_is_windowed_with_no_face(tmp_path) -> None:
    import subprocess

    from tests.av_media import ffmpeg_or_skip

    ffmpeg = ffmpeg_or_skip()
    path = tmp_path / "long.m4a.mp4"
    tone = "sine=frequency=220:duration=34:sample_rate=16000"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", tone, "-c:a", "aac", str(path)], check=True)
    p = _shipped("av_fusion").predict_file(path)
    assert len(p.windows) == 11 and p.face_found is False
    assert all(w.face_found is False for w in p.windows)


# -- 3. av_cnn without faces, and crops of the wrong shape -------------------------------------------------------


def _speech(seconds: float) -> np.ndarray:
    from tests.av_media import AUDIO_SR, speech

    return np.tile(speech(), int(np.ceil(seconds * AUDIO_SR / speech().size)))[: int(seconds * AUDIO_SR)]


def test_av_cnn_without_faces_marks_its_black_frames_as_no_face() -> None:
    """The docstring says missing faces mean black frames; the kind says so (`given_face_found`), and long audio
    (windows) is marked per window and as a whole: face_found was None, with no note."""
    from tests.av_media import AUDIO_SR

    r = _shipped("av_cnn")
    assert r.kind.given_face_found(None) is False and r.kind.given_face_found([]) is False
    crops = [np.zeros((64, 64), np.uint8)] * 6
    assert r.kind.given_face_found(crops) is None  # the caller's crops: theirs to say
    assert _shipped("av_cnn_audio").kind.given_face_found(None) is None  # no faces input
    p = r.predict_audio(_speech(36), AUDIO_SR)
    assert p.windows and all(w.face_found is False for w in p.windows) and p.face_found is False


def test_av_cnn_predict_audio_of_a_short_clip_without_faces_says_no_face() -> None:
    from tests.av_media import AUDIO_SR

    assert _shipped("av_cnn").predict_audio(_speech(1.2), AUDIO_SR).face_found is False


@pytest.mark.parametrize(("bundle", "size"), [("av_cnn", 64), ("face_fer", 48)])
def test_crops_of_the_wrong_shape_say_what_is_expected_and_how_to_make_them(bundle, size) -> None:
    """They said "crop_fn returned shape (48, 48)" to a caller who had passed crops, not a crop_fn."""
    from edge_ser.errors import ConfigError
    from tests.av_media import AUDIO_SR

    r = _shipped(bundle)
    y = _speech(1.2)
    wrong = (
        [np.zeros((32, 32), np.uint8)] * 6,
        np.zeros((6, size, size), np.float32),
        [np.zeros((size, size, 3))],
    )
    for faces in wrong:
        with pytest.raises(ConfigError) as e:
            r.predict_audio(y, AUDIO_SR, faces=faces)
        said = str(e.value)
        assert said.startswith(f"face crops must be uint8 [{size}, {size}] grey"), said
        assert "crop_fn" not in said and "FaceCropper(kind.face_crop).crop_or_center(frame)" in said
    ok = r.kind.cropper()(np.full((120, 160, 3), 128, np.uint8))  # the helper named makes crops that fit
    assert r.predict_audio(y, AUDIO_SR, faces=[ok] * 6).label in r.bundle.labels


def test_an_image_whose_header_gives_no_size_is_not_decoded(tmp_path) -> None:
    """Diff review: OpenCV decodes by content, so a Sun-raster image named big.png skipped the size check (its
    header is no PNG's) and was decoded to 51.8 megapixels."""
    import struct

    from edge_ser.errors import VideoFormatError
    from edge_ser.vision.image import read_image

    raster = tmp_path / "big.png"
    w = h = 64
    raster.write_bytes(struct.pack(">8I", 0x59A66A95, w, h, 8, w * h, 1, 0, 0) + bytes(w * h))
    with pytest.raises(VideoFormatError, match="not a PNG, JPEG, BMP, PNM, WebP or TIFF image by its header"):
        read_image(raster)


def test_an_empty_or_damaged_image_is_not_called_another_format(tmp_path) -> None:
    """Review: an empty .png, and a JPEG (FF D8 FF E0) whose frame header cannot be found, were refused as "not a
    PNG, JPEG, BMP, PNM, WebP or TIFF image by its header": the first is empty, the second starts as a JPEG."""
    from edge_ser.vision.image import read_image

    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(VideoFormatError, match="empty.png: empty file"):
        read_image(empty)
    cases = {"a.jpg": (b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, "JPEG")}
    cases["b.png"] = (b"\x89PNG\r\n\x1a\n" + bytes(40), "PNG")
    for name, (data, kind) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(
            VideoFormatError, match=f"{name}: starts as a {kind} image but its header gives no size"
        ):
            read_image(tmp_path / name)


def test_av_fusion_predict_audio_without_faces_says_no_face() -> None:
    """Diff review: av_fusion's predict_audio without faces gave face_found None where an audio-only video gave
    False with '[no face found: audio alone]'."""
    from tests.av_media import AUDIO_SR

    assert _shipped("av_fusion").predict_audio(_speech(1.2), AUDIO_SR).face_found is False


def test_av_cnn_given_an_audio_file_says_what_it_reads(tmp_path) -> None:
    """Device review: av_cnn skipped a WAV as 'not a video file OpenCV can open (starts with b'RIFF...')'."""
    import numpy as np

    from edge_ser.audio import write_wav
    from edge_ser.errors import VideoFormatError

    wav = write_wav(tmp_path / "a.wav", (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32), 16000)
    with pytest.raises(
        VideoFormatError, match="an audio file; this bundle fuses faces with the sound of videos"
    ):
        _shipped("av_cnn").predict_file(wav)
