"""Reading long audio in blocks: `WavReader` blocks equal the whole read, `Resampler` equals `resample`,
float WAVs far beyond +-1 or with NaN/inf are refused, and lying headers are typed errors. Real WAV bytes."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from edge_ser.audio import read_wav, resample, write_wav
from edge_ser.audio.polyphase import Resampler
from edge_ser.audio.stream import open_blocks
from edge_ser.audio.wav import MAX_FLOAT_PEAK, WavReader
from edge_ser.errors import AudioFormatError, InputWarning

SUBTYPES = ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")


def _signal(n: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.9, 0.9, (n, channels))


@pytest.mark.parametrize("subtype", SUBTYPES)
@pytest.mark.parametrize("channels", [1, 2, 64])
def test_blocks_equal_the_whole_read(tmp_path, subtype, channels):
    path = write_wav(tmp_path / "x.wav", _signal(5003, channels), 16000, subtype)
    whole, sr = read_wav(path)
    with WavReader(path) as r:
        assert (r.frames, r.channels, r.sample_rate) == (5003, channels, 16000)
        parts = list(r.blocks(977))
    assert all(p.shape[0] <= 977 for p in parts)
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_open_blocks_mono_is_the_channel_mean(tmp_path):
    path = write_wav(tmp_path / "st.wav", _signal(4000, 2), 22050, "PCM_16")
    whole, _ = read_wav(path)
    with open_blocks(path, frames=1000) as s:
        assert s.sample_rate == 22050
        got = np.concatenate(list(s))
    np.testing.assert_array_equal(got, whole.mean(axis=1, dtype=np.float32))


@pytest.mark.parametrize(
    ("orig", "target"), [(22050, 16000), (44100, 16000), (48000, 16000), (8000, 16000), (16000, 22050),
                         (16001, 16000), (16000, 16000)]
)  # fmt: skip
@pytest.mark.parametrize("block", [1, 777, 65536])
def test_streamed_resampling_equals_whole_file(orig, target, block):
    """Same length, same samples up to float32 rounding (BLAS sums a block of rows in its own order)."""
    n = 3000 if block == 1 else 100_003
    x = np.random.default_rng(1).uniform(-1, 1, n).astype(np.float32)
    whole = resample(x, orig, target)
    r = Resampler(orig, target)
    got = np.concatenate([r.feed(x[i : i + block]) for i in range(0, n, block)] + [r.finish()])
    assert got.shape == whole.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, whole, rtol=0, atol=4e-6)


def test_resampler_keeps_little_input():
    r = Resampler(44100, 16000)
    for _ in range(200):
        r.feed(np.zeros(44100, np.float32))
    assert r._buf.size < 44100 + 4 * 441  # the last block plus the filter's context, not 200 s of audio


def _float_wav(path: Path, y: np.ndarray) -> Path:
    """A float32 WAV written byte by byte (write_wav refuses nothing, but be explicit about the bytes)."""
    data = np.asarray(y, "<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


@pytest.mark.parametrize("bad", [1e6, -3e4, MAX_FLOAT_PEAK * 1.01, np.inf, -np.inf, np.nan])
def test_float_samples_far_beyond_full_scale_are_refused(tmp_path, bad):
    y = np.full(100_000, 0.1, np.float32)
    y[70_000] = bad
    path = _float_wav(tmp_path / "loud.wav", y)
    with pytest.raises(AudioFormatError, match=r"frame 70000|sample index 70000") as e:
        read_wav(path)
    assert str(path) in str(e.value)
    with pytest.raises(AudioFormatError, match=r"frame 70000|sample index 70000"):
        with open_blocks(path, frames=4096) as s:
            for _ in s:
                pass


def test_float_samples_a_little_beyond_full_scale_warn_once(tmp_path):
    y = np.full(50_000, 1.5, np.float32)
    path = _float_wav(tmp_path / "hot.wav", y)
    with pytest.warns(InputWarning, match="beyond full scale") as w:
        with WavReader(path) as r:
            list(r.blocks(1000))
    assert len([x for x in w if issubclass(x.category, InputWarning)]) == 1


def _header(*, tag=1, channels=1, sr=16000, bits=16, data_size=None, data=b"\0\0" * 100, riff_size=None):
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, sr, (sr * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


LIARS = {
    "4 GB of data declared on 1 byte": (_header(data_size=0xFFFFFFF0, data=b"\0"), "truncated data"),
    "10 hours declared on no byte": (_header(data_size=10 * 3600 * 32000, data=b""), "truncated data"),
    "0 Hz": (_header(sr=0), "sample rate 0 Hz"),
    "4 GHz": (_header(sr=4_000_000_000), "outside the allowed range"),
    "65535 channels": (_header(channels=65535), "block align|truncated|frames"),
    "0 channels": (_header(channels=0), "zero channels"),
    "12-bit": (_header(bits=12), "unsupported bit depth"),
    "A-law": (_header(tag=6, bits=8), "A-law"),
    "partial frame": (_header(channels=3, data=b"\0" * 5), "partial trailing frame"),
    "0 samples": (_header(data=b""), "0 frames"),
    "empty file": (b"", "empty file"),
    "header only": (b"RIFF\x04\0\0\0WAVE", "no 'fmt ' chunk|truncated header"),
}


@pytest.mark.parametrize("case", sorted(LIARS))
def test_lying_headers_are_typed_errors(tmp_path, case):
    blob, match = LIARS[case]
    path = tmp_path / "liar.wav"
    path.write_bytes(blob)
    with pytest.raises(AudioFormatError, match=match):
        read_wav(path)
    with pytest.raises(AudioFormatError, match=match):
        WavReader(path)


def test_streamed_header_reads_to_the_end(tmp_path):
    """A writer that could not seek back leaves 0xFFFFFFFF: the data runs to the end of the file."""
    data = np.arange(-50, 50, dtype="<i2").tobytes()
    path = tmp_path / "streamed.wav"
    path.write_bytes(_header(data=data, data_size=0xFFFFFFFF, riff_size=0xFFFFFFFF))
    with WavReader(path) as r:
        assert r.frames == 100
        got = np.concatenate(list(r.blocks(7)))[:, 0]
    np.testing.assert_array_equal(got, np.arange(-50, 50) / 32768.0)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_24", "DOUBLE"])
def test_odd_depths_stream_like_soundfile(tmp_path, subtype):
    sf = pytest.importorskip("soundfile")
    y = _signal(3001, 2, seed=3)
    path = write_wav(tmp_path / f"{subtype}.wav", y, 11025, subtype)
    want, _ = sf.read(str(path), dtype="float32", always_2d=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with open_blocks(path, frames=500) as s:
            got = np.concatenate(list(s))
    np.testing.assert_allclose(got, want.mean(axis=1), atol=1e-6)
