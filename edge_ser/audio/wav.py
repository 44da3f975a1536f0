"""WAV files: a strict reader and an atomic writer, numpy only.

The reader validates before it trusts: every malformed input raises AudioFormatError naming the file, but for data
cut short of its declared size or ending in a partial frame, whose complete frames are read with one InputWarning
(as libsndfile reads them). RF64 / BW64 files are read too (their sizes from the 'ds64' chunk).
"""

from __future__ import annotations

import mmap
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge_ser.errors import AudioFormatError, InputWarning
from edge_ser.fileio import atomic_write, open_regular_file


class WavCodecError(AudioFormatError):
    """A WAV file whose samples are coded other than as PCM or IEEE float (mu-law, A-law, ADPCM...): this reader
    does not decode them, soundfile (libsndfile) does, and `edge_ser.audio.load` and `open_blocks` hand them to it."""


# subtype -> (WAVE format tag, bits per sample)
_SUBTYPES = {
    "PCM_U8": (1, 8),
    "PCM_16": (1, 16),
    "PCM_24": (1, 24),
    "PCM_32": (1, 32),
    "FLOAT": (3, 32),
    "DOUBLE": (3, 64),
}


# A sample rate outside this range is a corrupt header, not audio we can use.
MIN_SR = 1_000
MAX_SR = 768_000

_TAG_PCM = 0x0001
_TAG_FLOAT = 0x0003
_TAG_EXTENSIBLE = 0xFFFE
# Bytes 2..16 of a KSDATAFORMAT_SUBTYPE_* GUID; bytes 0..1 carry the plain format tag.
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_TAG_NAMES = {
    0x0001: "PCM",
    0x0002: "MS ADPCM",
    0x0003: "IEEE float",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0050: "MPEG",
    0x0055: "MPEG Layer 3",
    0x00FF: "AAC",
    0x2000: "AC-3",
    0xF1AC: "FLAC",
    0xFFFE: "WAVE_FORMAT_EXTENSIBLE",
}
_PCM_BITS = (8, 16, 24, 32)
_FLOAT_BITS = (32, 64)
_STREAMED_SIZES = (0, 0xFFFFFFFF)  # data sizes that writers which cannot seek back leave in the header


def _sniff(head: bytes) -> str:
    """A short guess at what a non-WAV file is, from its first bytes, for the error message."""
    signatures = [
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"\x89PNG", "a PNG image"),
        (b"ID3", "MP3 audio"),
        (b"fLaC", "FLAC audio"),
        (b"OggS", "Ogg audio"),
        (b"RIFX", "a big-endian RIFX file, which is not supported"),
        (b"RF64", "an RF64 file with a damaged header"),
        (b"BW64", "a BW64 file with a damaged header"),
        (b"FORM", "AIFF audio"),
        (b".snd", "Sun/NeXT AU audio"),
        (b"%PDF", "a PDF document"),
        (b"PK\x03\x04", "a ZIP archive"),
    ]
    for magic, what in signatures:
        if head.startswith(magic):
            return what
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "MP3/MPEG audio"
    if head.startswith(b"RIFF") and len(head) >= 12:
        return f"a RIFF {head[8:12]!r} file"
    if head and all(32 <= c < 127 or c in (9, 10, 13) for c in head[:64]):
        return "text"
    return "unknown data"


_KNOWN_CHUNKS = {
    b"fmt ", b"data", b"fact", b"LIST", b"cue ", b"PEAK", b"bext", b"id3 ", b"ID3 ", b"smpl", b"inst",
    b"JUNK", b"junk", b"PAD ", b"iXML", b"acid", b"plst", b"DISP", b"axml", b"cart", b"_PMX", b"wavl",
    b"ds64",
}  # fmt: skip
_FORMS_64 = (b"RF64", b"BW64")
"""The WAV with 64-bit sizes (EBU Tech 3306 RF64, ITU-R BS.2088 BW64): the 32-bit sizes read 0xFFFFFFFF and
the real ones are in a 'ds64' chunk. Recorders switch to it past 4 GB, `ffmpeg -rf64 always` writes it."""


def _missed_pad_byte(buf: bytes, pos: int) -> bool:
    """After an odd-sized chunk: True when the writer left out the pad byte (the next chunk is at pos - 1)."""
    here, before = buf[pos : pos + 4], buf[pos - 1 : pos + 3]
    if here in _KNOWN_CHUNKS or not all(32 <= c < 127 for c in before):
        return False
    if before in _KNOWN_CHUNKS:
        return True

    def fits(p: int) -> bool:
        return p + 8 + int.from_bytes(buf[p + 4 : p + 8], "little") <= len(buf)

    return not fits(pos) and fits(pos - 1)


def _tag_name(tag: int) -> str:
    """'0x0006 (A-law)' for a WAVE format tag."""
    name = _TAG_NAMES.get(tag)
    return f"0x{tag:04X} ({name})" if name else f"0x{tag:04X}"


def _parse_fmt(path: Path, body: bytes) -> tuple[int, int, int, int]:
    """Validate a 'fmt ' chunk body; returns (base tag 1 or 3, channels, sample rate, bits per sample)."""
    if len(body) < 16:
        raise AudioFormatError(
            f"{path}: truncated header: 'fmt ' chunk is {len(body)} bytes, needs at least 16"
        )
    tag = int.from_bytes(body[0:2], "little")
    channels = int.from_bytes(body[2:4], "little")
    sr = int.from_bytes(body[4:8], "little")
    block_align = int.from_bytes(body[12:14], "little")
    bits = int.from_bytes(body[14:16], "little")
    if tag == _TAG_EXTENSIBLE:
        cb_size = int.from_bytes(body[16:18], "little") if len(body) >= 18 else 0
        if len(body) < 40 or cb_size < 22:
            raise AudioFormatError(
                f"{path}: WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk is {len(body)} bytes (cbSize {cb_size}); "
                "needs 40 bytes with cbSize >= 22"
            )
        # wValidBitsPerSample (body[18:20]) is informative only: like libsndfile, scale by the container.
        guid = body[24:40]
        sub = int.from_bytes(guid[0:2], "little")
        if guid[2:] != _GUID_TAIL or sub not in (_TAG_PCM, _TAG_FLOAT):
            what = _tag_name(sub) if guid[2:] == _GUID_TAIL else f"GUID {guid.hex()}"
            raise WavCodecError(
                f"{path}: unsupported WAVE_FORMAT_EXTENSIBLE sub-format {what}; "
                "only PCM and IEEE float are supported"
            )
        tag = sub
    elif tag not in (_TAG_PCM, _TAG_FLOAT):
        raise WavCodecError(
            f"{path}: unsupported WAV format tag {_tag_name(tag)}; only PCM (0x0001), IEEE float (0x0003) "
            "and WAVE_FORMAT_EXTENSIBLE (0xFFFE) with a PCM or float sub-format are supported"
        )
    if channels == 0:
        raise AudioFormatError(f"{path}: zero channels in the 'fmt ' chunk")
    if not (MIN_SR <= sr <= MAX_SR):
        raise AudioFormatError(
            f"{path}: sample rate {sr} Hz is outside the allowed range {MIN_SR}..{MAX_SR} Hz"
        )
    allowed = _PCM_BITS if tag == _TAG_PCM else _FLOAT_BITS
    if bits not in allowed:
        kind = "PCM" if tag == _TAG_PCM else "IEEE float"
        raise AudioFormatError(
            f"{path}: unsupported bit depth: {bits}-bit {kind} (supported: {', '.join(map(str, allowed))})"
        )
    if block_align != channels * bits // 8:
        raise AudioFormatError(
            f"{path}: block align {block_align} is inconsistent with {channels} channels x {bits} bits "
            f"(expected {channels * bits // 8} bytes per frame)"
        )
    return tag, channels, sr, bits


def _decode(buf: bytes, offset: int, n_bytes: int, tag: int, bits: int, channels: int) -> np.ndarray:
    """Little-endian sample bytes -> float32 [frames, channels], scaled exactly as libsndfile's reader."""
    if tag == _TAG_FLOAT:
        dt = "<f4" if bits == 32 else "<f8"
        raw = np.frombuffer(buf, dtype=dt, count=n_bytes // (bits // 8), offset=offset)
        with np.errstate(over="ignore"):  # doubles beyond float32 become inf, reported by the caller
            y = raw.astype(np.float32)
    elif bits == 8:
        y = np.frombuffer(buf, dtype=np.uint8, count=n_bytes, offset=offset).astype(np.float32)
        y -= np.float32(128.0)
        y *= np.float32(2.0**-7)
    elif bits == 24:
        raw = np.frombuffer(buf, dtype=np.uint8, count=n_bytes, offset=offset).reshape(-1, 3)
        # put the 3 bytes in the top of a little-endian int32 (low byte zero): sign comes for free
        wide = np.zeros((raw.shape[0], 4), dtype=np.uint8)
        wide[:, 1:] = raw
        y = wide.view("<i4").reshape(-1).astype(np.float32)
        y *= np.float32(2.0**-31)
    else:
        dt = "<i2" if bits == 16 else "<i4"
        y = np.frombuffer(buf, dtype=dt, count=n_bytes // (bits // 8), offset=offset).astype(np.float32)
        y *= np.float32(2.0 ** -(bits - 1))
    return y.reshape(-1, channels)


# (base tag 1 or 3, channels, sample rate, bits per sample), as _parse_fmt returns it
_Fmt = tuple[int, int, int, int]
# (offset, bytes present, bytes declared or -1 if streamed) of the sample bytes
_Data = tuple[int, int, int]


def _check_riff(path: Path, buf: bytes) -> None:
    """Reject an empty, too short or non-RIFF/WAVE file before reading chunks, guessing what it is instead."""
    size = len(buf)
    if size == 0:
        raise AudioFormatError(f"{path}: empty file (0 bytes)")
    if size < 12:
        if b"RIFF".startswith(buf[:4]):
            raise AudioFormatError(
                f"{path}: truncated header: only {size} bytes, a WAV header needs at least 12"
            )
        raise AudioFormatError(
            f"{path}: not a WAV file (looks like {_sniff(bytes(buf[:64]))}; starts with {buf[:12]!r})"
        )
    if buf[0:4] not in (b"RIFF", *_FORMS_64) or buf[8:12] != b"WAVE":
        what = _sniff(bytes(buf[:64]))
        rename = next(
            (f"; name it {ext} and it is read as such" for k, ext in _RENAMES if what.startswith(k)), ""
        )
        raise AudioFormatError(
            f"{path}: not a WAV file (looks like {what}; starts with {buf[:12]!r}){rename}"
        )


_RENAMES = (("FLAC", ".flac"), ("Ogg", ".ogg"), ("MP3", ".mp3"), ("AIFF", ".aiff"))
"""Formats the other readers take, by the name `_sniff` gives them: the extension that sends a file to them."""


def _data_extent(buf: bytes, body: int, csize: int, ds64: int | None = None) -> _Data:
    """Where a 'data' chunk's samples lie; declared -1 marks a streamed header, whose data runs to the end.
    `ds64`: the data size an RF64 / BW64 file's 'ds64' chunk gives, which stands for a 32-bit size of 0xFFFFFFFF."""
    size = len(buf)
    if ds64 is not None and csize == 0xFFFFFFFF:
        return (body, min(ds64, size - body), ds64)
    riff_size = int.from_bytes(buf[4:8], "little")
    # 0xFFFFFFFF always means "streamed". A 0 is only believed to be an unfinished header when
    # the RIFF size is unfinished too (0, 0xFFFFFFFF, or covering nothing past this header);
    # otherwise it is a real empty data chunk, and reading on would decode the next chunk.
    unfinished = riff_size in _STREAMED_SIZES or riff_size <= body - 8
    if csize == 0xFFFFFFFF or (csize == 0 and unfinished):
        return (body, size - body, -1)
    return (body, min(csize, size - body), csize)


def _scan_chunks(path: Path, buf: bytes) -> tuple[_Fmt | None, _Data | None, list[str], int]:
    """Walk the chunks until 'fmt ' and 'data' are found: (fmt, data, chunk names seen, stop position)."""
    size = len(buf)
    fmt: _Fmt | None = None
    data: _Data | None = None
    seen: list[str] = []
    pos = 12
    odd = False  # the previous chunk had an odd size, so a pad byte should have followed it
    ds64: int | None = None  # an RF64 / BW64 file's 64-bit data size
    while pos + 8 <= size and (fmt is None or data is None):
        if odd and _missed_pad_byte(buf, pos):
            pos -= 1  # the writer forgot the pad byte: the next chunk starts right after the odd body
        cid = buf[pos : pos + 4]
        csize = int.from_bytes(buf[pos + 4 : pos + 8], "little")
        body = pos + 8
        name = cid.decode("latin-1")
        seen.append(name)
        if cid == b"data":
            if data is None:
                data = _data_extent(buf, body, csize, ds64)
                if data[2] == -1:
                    break  # runs to the end of the file: nothing can follow
        elif cid == b"ds64" and buf[0:4] in _FORMS_64 and csize >= 16 and body + 16 <= size:
            ds64 = int.from_bytes(buf[body + 8 : body + 16], "little")  # riffSize, dataSize, sampleCount...
        elif cid == b"fmt ":
            if body + csize > size:
                raise AudioFormatError(
                    f"{path}: truncated header: 'fmt ' chunk declares {csize} bytes "
                    f"but only {size - body} are present"
                )
            if fmt is None:
                fmt = _parse_fmt(path, buf[body : body + csize])
        elif body + csize > size and data is None:
            raise AudioFormatError(
                f"{path}: truncated file: {name!r} chunk at byte {pos} declares {csize} bytes "
                f"but only {size - body} are present (no 'data' chunk before it)"
            )
        odd = bool(csize & 1)
        pos = body + csize + odd  # chunks are word aligned: odd sizes carry a pad byte
    return fmt, data, seen, pos


def _require_chunks(
    path: Path, size: int, fmt: _Fmt | None, data: _Data | None, seen: list[str], pos: int
) -> tuple[_Fmt, _Data]:
    """Both chunks the scan must have found, else an error listing the chunks it did find ('fmt ' first)."""
    if fmt is None:
        found = ", ".join(repr(s) for s in seen) or "none"
        if size < 20:
            raise AudioFormatError(f"{path}: truncated header: {size} bytes and no 'fmt ' chunk")
        raise AudioFormatError(
            f"{path}: no 'fmt ' chunk, this is not a valid WAV file (chunks found: {found})"
        )
    if data is None:
        found = ", ".join(repr(s) for s in seen)
        cut = f"; the file ends inside a chunk header ({size - pos} bytes left)" if 0 < size - pos < 8 else ""
        raise AudioFormatError(f"{path}: no 'data' chunk (chunks found: {found}){cut}")
    return fmt, data


_PLACEHOLDER_SIZES = (0x7FFFFFFF, 0x80000000)
"""Data sizes a recorder writes until it knows the real one (arecord's, when it is killed before it ends)."""


def _data_problems(present: int, declared: int, block: int) -> list[str]:
    """What is wrong with a data chunk of `present` bytes that declares `declared` (-1: streamed): cut short of its
    declared size, or ending in a partial frame; [] when nothing is."""
    problems = []
    if declared in _PLACEHOLDER_SIZES and declared > present:
        problems.append(
            f"unfinished header: the data chunk declares {declared} bytes (0x{declared:X}, the placeholder a "
            "recorder writes until it stops: the recording was cut off)"
        )
    elif declared > present:
        problems.append(
            f"truncated data: the data chunk declares {declared} bytes but only {present} are present"
        )
    if present % block:
        problems.append(
            f"{'' if problems else 'truncated data: '}{present} data bytes is not a whole number of {block}-byte "
            f"frames (a partial trailing frame: {present % block} of {block} bytes)"
        )
    return problems


def _data_frames(path: Path, present: int, declared: int, block: int) -> int:
    """The complete frames of a data chunk (`_data_problems`): data cut short, or ending in a partial frame, gives
    the complete frames present with one InputWarning naming the file and what was wrong (libsndfile reads them
    too); no complete frame at all is an AudioFormatError."""
    frames = present // block
    problems = _data_problems(present, declared, block)
    if frames == 0:
        if problems:
            raise AudioFormatError(f"{path}: {'; '.join(problems)}: no complete frame")
        raise AudioFormatError(f"{path}: no audio: the data chunk holds 0 frames")
    if problems:
        warnings.warn(
            f"{path}: {'; '.join(problems)}: read the {frames} complete frames present",
            InputWarning,
            stacklevel=4,
        )
    return frames


def _check_finite(path: Path, y: np.ndarray, channels: int, frame0: int = 0) -> None:
    """Reject NaN or inf samples (only float files hold them), naming the first one's frame and channel
    (`frame0`: the file frame of y's first row)."""
    bad = ~np.isfinite(y)
    if bad.any():
        n_bad = int(np.count_nonzero(bad))
        first = int(np.flatnonzero(bad.reshape(-1))[0]) + frame0 * channels
        raise AudioFormatError(
            f"{path}: {n_bad} non-finite samples (NaN or inf) in float data; "
            f"first at sample index {first} (frame {first // channels}, channel {first % channels})"
        )


FLOAT_BITS_MIN = 1000
"""Nonzero samples a 32-bit PCM block needs before `_looks_like_float_bits` judges it."""


def _looks_like_float_bits(y: np.ndarray) -> bool | None:
    """Whether 32-bit PCM samples (as decoded, scaled by 2**31) are IEEE float bit patterns read as integers (a
    float file whose header says PCM): a float x in +-[1e-9, 1] reads as 0.379..0.496 of full scale when positive
    and -0.621..-0.504 when negative, a pair of bands no recording keeps to (a square wave at half scale sits
    on 0.5 exactly). None when the block has too few nonzero samples to tell."""
    v = y[y != 0]
    if v.size < FLOAT_BITS_MIN:
        return None
    banded = ((v > 0.37) & (v < 0.4961)) | ((v < -0.5039) & (v > -0.63))
    return bool(np.count_nonzero(banded) >= 0.99 * v.size)


WIDER_PCM_BITS = {16: (24, 32), 24: (32,)}
"""The wider PCM depths `wider_pcm_bits` tries on samples whose header gives the key: a header that says 16-bit on
24- or 32-bit data (a tool that rewrote the depth, or wrote a constant header) decodes to noise."""
SMOOTH_MIN = 0.5
"""Adjacent-sample correlation a wider reading needs to count as audio (speech at 8-48 kHz: about 0.6-0.99)."""
NOISE_MAX = 0.2
"""Adjacent-sample correlation under which the declared reading counts as noise: wrong-depth data read as 16-bit
interleaves bytes of different samples (a random low byte in the high half), about 0."""


def _lag1(x: np.ndarray) -> float | None:
    """Correlation of adjacent values of a float64 series (about its mean); None when it has no variance."""
    a, b = x[:-1] - x.mean(), x[1:] - x.mean()
    den = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return float(np.dot(a, b) / den) if den > 0 else None


def _smoothness(y: np.ndarray) -> float | None:
    """Correlation of adjacent samples of the first channel of `y` [frames, channels] (near 1 for audio, near 0
    for noise); None when it has fewer than FLOAT_BITS_MIN nonzero samples or no variance."""
    x = y[:, 0].astype(np.float64)
    if np.count_nonzero(x) < FLOAT_BITS_MIN:
        return None
    return _lag1(x)


def wider_pcm_bits(raw: bytes, skip: int, bits: int, channels: int, here: float) -> tuple[int, float] | None:
    """Whether PCM bytes `raw` are audio of a wider depth than the header's `bits`: their reading at `bits` is
    noise (`here`, its `_smoothness`, under NOISE_MAX) and their reading at a wider depth (`WIDER_PCM_BITS`) is
    smooth audio (at least SMOOTH_MIN). `skip`: bytes to a frame boundary of the wider depth, modulo its frame size
    (minus the block's byte offset in the data chunk). Returns (wider bits, its smoothness), or None: no evidence
    (noise at every depth, or audio as declared, is never refused)."""
    if here >= NOISE_MAX:
        return None
    for wide in WIDER_PCM_BITS.get(bits, ()):
        block = channels * wide // 8
        start = skip % block
        n = (len(raw) - start) // block * block
        if n <= 0:
            continue
        there = _smoothness(_decode(raw, start, n, _TAG_PCM, wide, channels))
        if there is not None and there >= SMOOTH_MIN and _low_bits_fit(raw, start, n, bits, wide, channels):
            return wide, there
    return None


LOW_SPREAD_MIN = 0.25
"""Standard deviation, as a share of half their range, the bits under the header's depth need in a wider reading
to count as that depth's low bits (uniform bits: 0.58)."""


def _low_bits_fit(raw: bytes, start: int, n: int, bits: int, wide: int, channels: int) -> bool:
    """Whether the bits a `wide`-bit reading of `raw` has below the declared `bits` (first channel, as signed
    integers) are what a wider depth's low bits are: all zero (narrower audio padded) or loud, unsmooth noise.
    A real `bits`-bit file can read as smooth at a wider depth too (32 bits on 16-bit data picks every other
    sample: a noise floor alternating 0, -1, or a tone near half the rate, correlates at lag 2); its low bits are
    then its own quiet or smooth samples, and it is not refused."""
    k = (wide - bits) // 8
    frames = np.frombuffer(raw, dtype=np.uint8, count=n, offset=start).reshape(-1, channels, wide // 8)
    low = frames[:, 0, :k].copy().view("<i1" if k == 1 else "<i2").reshape(-1).astype(np.float64)
    if not np.any(low):
        return True
    if low.std() < LOW_SPREAD_MIN * 2.0 ** (8 * k - 1):
        return False
    r = _lag1(low)
    return r is not None and r < NOISE_MAX


MAX_FLOAT_PEAK = 64.0
"""Largest |sample| a float WAV may hold (+36 dBFS). Float audio is scaled to [-1, 1]; a little beyond is
headroom some editors leave (a warning), but 1e3 or 1e6 means wrongly scaled data (integer samples stored
as floats), which would give confident nonsense, so it is refused."""
BLOCK_FRAMES = 1 << 16
"""Frames `WavReader.blocks` decodes at a time (64 Ki frames: 4 s at 16 kHz, 256 KiB of mono float32)."""


class WavReader:
    """A WAV file opened for reading in blocks: the header is parsed and checked when opened, the samples are
    decoded block by block, so a file of any length costs one block of memory.

        with WavReader("long.wav") as r:            # AudioFormatError naming the file if it is not usable
            for block in r.blocks():                # float32 [frames, channels] in [-1, 1]
                ...

    Only regular files are opened (a FIFO or device is refused, never waited on). Non-finite float samples
    and float samples beyond MAX_FLOAT_PEAK raise AudioFormatError in the block that holds them; float
    samples beyond +-1 give one InputWarning per file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fh = open_regular_file(self.path, error=AudioFormatError)
        try:
            self._parse()
        except BaseException:
            self._fh.close()
            raise
        self.position = 0
        """Frames read so far."""
        self._warned = False
        self._bits_unjudged = True  # 32-bit PCM: whether the samples are float bit patterns is not yet known
        self._depth_unjudged = self.tag == _TAG_PCM and self.bits in WIDER_PCM_BITS  # wrong-depth header?

    def _parse(self) -> None:
        size = os.fstat(self._fh.fileno()).st_size
        if size == 0:
            raise AudioFormatError(f"{self.path}: empty file (0 bytes)")
        # the chunk walk reads the header through a map of the file: only the pages it touches are read
        with mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            _check_riff(self.path, buf)
            fmt, data, seen, pos = _scan_chunks(self.path, buf)
            (tag, channels, sr, bits), (offset, present, declared) = _require_chunks(
                self.path, size, fmt, data, seen, pos
            )
        self.tag, self.channels, self.sample_rate, self.bits = tag, channels, sr, bits
        self.block_align = channels * bits // 8
        self.frames = _data_frames(self.path, present, declared, self.block_align)
        """Complete frames in the data chunk (a data chunk cut short or ending in a partial frame: those present,
        with an InputWarning)."""
        self._offset = offset

    @property
    def duration(self) -> float:
        """Seconds of audio in the file."""
        return self.frames / self.sample_rate

    @property
    def is_float(self) -> bool:
        return self.tag == _TAG_FLOAT

    def read(self, frames: int | None = None) -> np.ndarray:
        """The next `frames` frames (default: all that are left) as float32 [k, channels]; [0, channels] at
        the end."""
        left = self.frames - self.position
        n = left if frames is None else max(0, min(int(frames), left))
        self._fh.seek(self._offset + self.position * self.block_align)
        raw = self._fh.read(n * self.block_align)
        if len(raw) != n * self.block_align:  # the file shrank while being read
            raise AudioFormatError(
                f"{self.path}: truncated data: the file ended at frame {self.position + len(raw) // self.block_align}"
                f" of {self.frames} while being read"
            )
        y = _decode(raw, 0, len(raw), self.tag, self.bits, self.channels)
        if self.tag == _TAG_FLOAT and y.size:
            _check_finite(self.path, y, self.channels, self.position)
            self._check_peak(y)
        elif self.bits == 32 and self._bits_unjudged:  # until a block has enough sound to tell
            verdict = _looks_like_float_bits(y)
            self._bits_unjudged = verdict is None
            if verdict:  # it read as a loud distorted noise, classified without a mark ("sad 0.97")
                raise AudioFormatError(
                    f"{self.path}: the header says 32-bit PCM (format tag 1) but the samples are IEEE float bit "
                    "patterns (from frame "
                    f"{self.position}, 99 % of them at 0.38-0.50 and -0.62..-0.50 of full scale, as floats read as "
                    "integers are): a float file with a wrong header; rewrite it as float (format tag 3)"
                )
        if self._depth_unjudged and y.size:
            self._check_depth(raw, y)
        self.position += n
        return y

    def _check_depth(self, raw: bytes, y: np.ndarray) -> None:
        """Refuse PCM data of a wider depth than the header says (`wider_pcm_bits`), judged once, on the first
        BLOCK_FRAMES frames with enough sound: it decoded to loud noise, which was classified without a mark. A
        whole file read at once is judged a block at a time too (in float64 at once, an hour at 16 kHz cost 1.3 GB
        more memory than the read itself and 9x its time)."""
        ba = self.block_align
        for i in range(0, y.shape[0], BLOCK_FRAMES):
            here = _smoothness(y[i : i + BLOCK_FRAMES])
            if here is None:
                continue  # too little sound yet: the next block is judged
            self._depth_unjudged = False
            frame = self.position + i
            part = raw[i * ba : (i + BLOCK_FRAMES) * ba]
            found = wider_pcm_bits(part, -frame * ba, self.bits, self.channels, here)
            if found is not None:
                bits, there = found
                raise AudioFormatError(
                    f"{self.path}: the header says {self.bits}-bit PCM but the data reads as {bits}-bit PCM (from "
                    f"frame {frame}: adjacent samples correlate {there:.2f} at {bits} bits, as audio does, and "
                    f"{here:.2f} at {self.bits} bits, as noise does): a file with a wrong header; rewrite it with "
                    f"{bits} bits per sample (block align {self.channels * bits // 8})"
                )
            return

    def _check_peak(self, y: np.ndarray) -> None:
        """Refuse float samples beyond MAX_FLOAT_PEAK; warn once about samples beyond +-1."""
        peak = float(np.max(np.abs(y)))
        if peak > MAX_FLOAT_PEAK:
            i = int(np.argmax(np.abs(y).reshape(-1)))
            raise AudioFormatError(
                f"{self.path}: float samples up to {peak:.6g} (first at frame {self.position + i // self.channels}); "
                f"float audio is scaled to [-1, 1] and more than {MAX_FLOAT_PEAK:g} means wrongly scaled data "
                "(integer samples stored as floats?): rescale the file"
            )
        if peak > 1.0 and not self._warned:
            self._warned = True
            first = (
                int(np.argmax(np.abs(y).reshape(-1) > 1.0)) // self.channels
            )  # the block's first sample over 1
            warnings.warn(
                f"{self.path}: float samples beyond full scale (peak {peak:.6g} > 1 in the block from frame "
                f"{self.position}, the first at frame {self.position + first}); they are used as they are, but the "
                "model was trained on audio in [-1, 1]",
                InputWarning,
                stacklevel=3,
            )

    def blocks(self, frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """The rest of the file as float32 [k <= frames, channels] blocks."""
        if frames < 1:
            raise AudioFormatError(f"{self.path}: block size {frames} must be >= 1 frame")
        while self.position < self.frames:
            yield self.read(frames)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> WavReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"WavReader({str(self.path)!r}, {self.sample_rate} Hz, {self.channels} ch, {self.bits}-bit, "
            f"{self.frames} frames)"
        )


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a WAV file: float32 samples [n, channels] in [-1, 1] (float files as stored) and the rate in Hz.

    PCM 8/16/24/32-bit, IEEE float 32/64 and WAVE_FORMAT_EXTENSIBLE; values equal soundfile's float32 read.
    The whole file in one array: for long files, read blocks with `WavReader`.
    """
    with WavReader(path) as r:
        return r.read(), r.sample_rate


def _encode(y: np.ndarray, subtype: str) -> bytes:
    """Samples in [-1, 1] (frames x channels) to little-endian bytes of the given subtype."""
    if subtype == "FLOAT":
        return y.astype("<f4").tobytes()
    if subtype == "DOUBLE":
        return y.astype("<f8").tobytes()
    bits = _SUBTYPES[subtype][1]
    full = 2 ** (bits - 1)
    q = np.clip(np.round(y * full), -full, full - 1).astype(np.int64)
    if subtype == "PCM_U8":
        return (q + 128).astype(np.uint8).tobytes()
    if subtype == "PCM_16":
        return q.astype("<i2").tobytes()
    if subtype == "PCM_32":
        return q.astype("<i4").tobytes()
    # 24-bit: the three low bytes of each little-endian int32
    return q.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()


def write_wav(path: str | os.PathLike, y: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    """Write `y` ([n] mono or [n, channels], float in [-1, 1]) to a WAV file, atomically (temp file + rename).

    Integer subtypes clip to the representable range; float subtypes store the values as given.
    """
    path = Path(path)
    if subtype not in _SUBTYPES:
        raise AudioFormatError(f"{path}: unknown WAV subtype {subtype!r}; choose one of {sorted(_SUBTYPES)}")
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise AudioFormatError(f"{path}: audio must be [n] or [n, channels], got shape {y.shape}")
    if not (1 <= int(sr) <= 4_000_000):
        raise AudioFormatError(f"{path}: sample rate {sr} Hz is out of range")
    tag, bits = _SUBTYPES[subtype]
    channels = y.shape[1]
    block = channels * bits // 8
    data = _encode(y, subtype)
    fmt = (
        tag.to_bytes(2, "little")
        + channels.to_bytes(2, "little")
        + int(sr).to_bytes(4, "little")
        + (int(sr) * block).to_bytes(4, "little")
        + block.to_bytes(2, "little")
        + bits.to_bytes(2, "little")
    )
    chunks = b"fmt " + len(fmt).to_bytes(4, "little") + fmt
    if tag == 3:  # non-PCM formats carry a fact chunk with the frame count
        chunks += b"fact" + (4).to_bytes(4, "little") + y.shape[0].to_bytes(4, "little")
    chunks += b"data" + len(data).to_bytes(4, "little") + data + (b"\0" if len(data) % 2 else b"")
    blob = b"RIFF" + (4 + len(chunks)).to_bytes(4, "little") + b"WAVE" + chunks
    atomic_write(path, blob)
    return path
