"""Audio inputs as a user review found them in real files: RF64 / BW64 WAVs, WAVs whose recorder never finished
the header (or cut mid-frame), audio-only containers (M4A, AAC, MKA, WebM audio) and anti-phase stereo."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from converters.data.scan import audio_problem
from edge_ser.audio import load, write_wav
from edge_ser.audio.stream import open_blocks
from tests.av_media import ffmpeg_or_skip

SR = 16000


def _tone(seconds: float = 0.5, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 530 * t)).astype(np.float32)


def _stereo_wav(path: Path) -> tuple[Path, np.ndarray]:
    y = np.stack([_tone(), 0.5 * _tone()], axis=1)
    write_wav(path, y, SR)
    return path, load(path, mono=False)[0]


def _streamed(path: Path) -> np.ndarray:
    with open_blocks(path, frames=1000) as s:
        return np.concatenate(list(s))


# ------------------------------------------------------------------------------------------- 1. RF64 / BW64
def _as_rf64(wav: bytes, form: bytes = b"RF64") -> bytes:
    """A PCM WAV's bytes rewritten as RF64 / BW64 by hand: 32-bit sizes 0xFFFFFFFF, the real ones in 'ds64'."""
    assert wav[:4] == b"RIFF"
    chunks, pos, data = [], 12, b""
    while pos + 8 <= len(wav):
        cid, n = wav[pos : pos + 4], struct.unpack("<I", wav[pos + 4 : pos + 8])[0]
        body = wav[pos + 8 : pos + 8 + n]
        if cid == b"data":
            data = body
        else:
            chunks.append(cid + struct.pack("<I", n) + body + b"\0" * (n & 1))
        pos += 8 + n + (n & 1)
    ds64 = b"ds64" + struct.pack("<I", 28) + struct.pack("<QQQI", 0, len(data), 0, 0)
    body = b"WAVE" + ds64 + b"".join(chunks) + b"data" + b"\xff\xff\xff\xff" + data
    return form + b"\xff\xff\xff\xff" + body


@pytest.mark.parametrize("form", [b"RF64", b"BW64"])
def test_rf64_and_bw64_are_read_by_every_path(tmp_path, form):
    """They were refused as 'not a WAV file (looks like an RF64 file, which is not supported)'; now the WAV reader
    takes the sizes from the 'ds64' chunk (libsndfile 1.2 reads RF64 but not BW64): load, the stream and the data
    set scan read the samples of the RIFF original."""
    src, ref = _stereo_wav(tmp_path / "ok.wav")
    path = tmp_path / "big.wav"
    path.write_bytes(_as_rf64(src.read_bytes(), form))
    y, sr = load(path, mono=False)
    assert sr == SR and np.array_equal(y, ref)
    np.testing.assert_array_equal(_streamed(path), load(path)[0])
    assert audio_problem(path) is None


def test_an_rf64_file_written_by_ffmpeg(tmp_path):
    ffmpeg = ffmpeg_or_skip()
    src, ref = _stereo_wav(tmp_path / "ok.wav")
    path = tmp_path / "r.wav"
    subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(src), "-rf64", "always", str(path)], check=True)
    assert path.read_bytes()[:4] == b"RF64"
    y, sr = load(path, mono=False)
    assert sr == SR and np.array_equal(y, ref)
    np.testing.assert_array_equal(_streamed(path), load(path)[0])
    assert audio_problem(path) is None
