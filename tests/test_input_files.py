"""Only regular files are read: FIFOs, devices, sockets and links to them are refused (a typed error, never a
hang) when named, and skipped with a warning when a folder holds them. Real FIFOs, a real unix socket,
/dev/zero; no mocks."""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest

from edge_ser.audio import load, read_wav, write_wav
from edge_ser.audio.container import load_container_audio
from edge_ser.audio.stream import open_blocks
from edge_ser.cli.common import media_files
from edge_ser.errors import AudioFormatError, DatasetError, InputWarning, VideoFormatError
from edge_ser.fileio import find_files, open_regular_file, read_regular_file
from edge_ser.vision.video import probe_video

pytestmark = pytest.mark.timeout(120)  # a hang guard: a reader that blocks on a FIFO fails here


def _specials(folder: Path) -> dict[str, Path]:
    """A FIFO nobody writes to, a unix socket, a link to the FIFO, a broken link; all with media names."""
    fifo = folder / "pipe.wav"
    os.mkfifo(fifo)
    sock_path = folder / "sock.wav"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock_path))
    link = folder / "link.wav"
    link.symlink_to(fifo)
    broken = folder / "broken.wav"
    broken.symlink_to(folder / "gone.wav")
    out = {"fifo": fifo, "socket": sock_path, "link to fifo": link, "broken link": broken}
    if Path("/dev/zero").exists():
        dev = folder / "zero.wav"
        dev.symlink_to("/dev/zero")
        out["link to /dev/zero"] = dev
    return out


@pytest.fixture
def specials(tmp_path: Path):
    return _specials(tmp_path)


READERS = {
    "read_wav": lambda p: read_wav(p),
    "load": lambda p: load(p),
    "open_blocks": lambda p: open_blocks(p),
    "soundfile load": lambda p: load(p.with_suffix(".flac")) if p.with_suffix(".flac").exists() else load(p),
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_audio_readers_refuse_non_regular_files(specials, reader):
    for what, path in specials.items():
        with pytest.raises(AudioFormatError) as e:
            READERS[reader](path)
        assert str(path) in str(e.value), what
        if what != "broken link":
            assert "not a regular file" in str(e.value), (what, str(e.value))


def test_dev_zero_and_fifo_by_name(tmp_path):
    fifo = tmp_path / "p.flac"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        if not path.exists():
            continue
        with pytest.raises(AudioFormatError, match="not a regular file"):
            load(path)
        with pytest.raises(AudioFormatError, match="not a regular file"):
            read_wav(path)
        with pytest.raises(AudioFormatError, match="not a regular file"):
            load_container_audio(path)
        with pytest.raises(VideoFormatError, match="not a regular file"):
            probe_video(path)
        with pytest.raises(AudioFormatError, match="FIFO|character device"):
            read_regular_file(path, error=AudioFormatError)


def test_open_regular_file_checks_the_open_descriptor(tmp_path):
    """The FIFO check is made on the descriptor opened without blocking, so there is no stat/open race."""
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    with pytest.raises(AudioFormatError, match="FIFO"):
        open_regular_file(fifo, error=AudioFormatError)
    ok = tmp_path / "ok.bin"
    ok.write_bytes(b"abc")
    with open_regular_file(ok, error=AudioFormatError) as fh:
        assert fh.read() == b"abc"  # and the descriptor blocks again (a regular file: reads as usual)
        assert os.get_blocking(fh.fileno())


def test_folders_skip_specials_with_one_warning(tmp_path, specials):
    good = write_wav(tmp_path / "good.wav", np.zeros(1600), 16000)
    with pytest.warns(InputWarning, match=r"skipped \d+ media files that are not regular files") as w:
        files = media_files([tmp_path])
    assert files == [good]
    text = str(w[0].message)
    assert f"skipped {len(specials)} media files" in text and "FIFO" in text and "more" in text
    with pytest.warns(InputWarning):
        assert find_files([tmp_path], (".wav",)) == [good]


def test_specials_named_directly_are_errors(specials):
    for path in specials.values():
        with pytest.raises(AudioFormatError):
            media_files([path])
    with pytest.raises(AudioFormatError, match="no such file"):
        media_files([Path("/nonexistent/clip.wav")])


def test_data_set_scan_skips_specials(tmp_path):
    from converters.data.scan import data_files

    _specials(tmp_path)
    good = write_wav(tmp_path / "03a01Fa.wav", np.zeros(160), 16000)
    with pytest.warns(InputWarning, match="data set files"):
        assert data_files(tmp_path, (".wav",)) == [good]


def test_data_set_loader_with_only_a_fifo(tmp_path):
    from converters.data.loaders import load_folder

    (tmp_path / "angry").mkdir()
    os.mkfifo(tmp_path / "angry" / "a.wav")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        with pytest.raises(DatasetError):
            load_folder(tmp_path)


def test_every_audio_extension_is_picked_from_a_folder_and_decodes(tmp_path):
    """`edge-ser predict FOLDER` and the data set loaders list AUDIO_EXTENSIONS: each of them must decode (a
    folder of .aiff recordings was passed over, though predict classified one named directly)."""
    sf = pytest.importorskip("soundfile")
    from converters.data.scan import audio_problem
    from edge_ser.audio.container import AUDIO_CONTAINER_EXTENSIONS
    from edge_ser.inputs.base import AUDIO_EXTENSIONS

    y = (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    formats = {
        ".flac": "FLAC",
        ".ogg": "OGG",
        ".oga": "OGG",
        ".opus": "OGG",
        ".mp3": "MP3",
        ".aif": "AIFF",
        ".aiff": "AIFF",
        ".aifc": "AIFF",
    }
    assert {".aif", ".aiff", ".wave"} <= set(AUDIO_EXTENSIONS)
    made = []
    for ext in AUDIO_EXTENSIONS:
        if ext in AUDIO_CONTAINER_EXTENSIONS:
            continue  # read through ffmpeg: tests/test_audio_inputs_review.py makes them
        path = tmp_path / f"clip{ext.upper() if ext == '.aif' else ext}"  # any case
        if ext in (".wav", ".wave"):
            made.append(write_wav(path, y, 16000))
        else:
            sf.write(str(path), y, 16000, format=formats[ext], subtype="OPUS" if ext == ".opus" else None)
            made.append(path)
    (tmp_path / "notes.txt").write_text("not audio")
    assert media_files([tmp_path]) == sorted(made)
    for path in made:
        z, sr = load(path)
        assert sr == 16000 and abs(z.size - y.size) < 2000, path  # MP3 pads its frames
        assert sum(b.size for b in open_blocks(path)) == z.size and audio_problem(path) is None
