"""The packed `.esq` weights format: b-bit weights in really b bits (1..8), per-channel scales, raw float tensors.

Version 1 stores every scale as float32; version 2 (written only when a tensor asks for it) also allows float16
scales, which halve the bytes a small model spends on them.

numpy only, so the device reads it. The byte layout is specified in docs/packed-format.md; the reader
validates every length, offset and value before it trusts it and raises PackedFormatError naming the file.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_ser.errors import ConfigError, PackedFormatError
from edge_ser.fileio import atomic_writer, read_regular_file

__all__ = [
    "ALIGNMENT",
    "MAGIC",
    "VERSION",
    "VERSIONS",
    "EsqFile",
    "Tensor",
    "pack_codes",
    "read_esq",
    "read_esq_bytes",
    "unpack_codes",
    "write_esq",
]

MAGIC = b"EDGESERQ"
VERSION = 1
"""The version the writer gives a file whose scales are all float32 (every reader since the first reads it)."""
VERSION_FP16_SCALES = 2
"""The version of a file with at least one tensor of float16 scales (`Tensor.scale_bits == 16`)."""
VERSIONS = (VERSION, VERSION_FP16_SCALES)
SCALE_BITS = (16, 32)
ALIGNMENT = 64  # what the writer aligns every data block to; readers accept any power of two in 8..65536
HEADER_SIZE = 96
# magic, version, flags, header_size, file_size, tensor_count, alignment,
# table_offset, table_length, metadata_offset, metadata_length, digest
_HEADER = struct.Struct("<8sHHIQIIQQQQ32s")
DIGEST_OFFSET = 64
DIGEST_SIZE = 32
# name_len, bits, ndim, reserved, scales_offset, scales_length, payload_offset, payload_length
_ENTRY = struct.Struct("<HBBIQQQQ")
_MIN_ENTRY = 48  # 40 fixed bytes + a 1-byte name, padded to 8
MAX_NDIM = 8
MAX_NAME_BYTES = 255
MAX_METADATA_BYTES = 16 << 20
QUANT_BITS = (1, 2, 3, 4, 5, 6, 7, 8)
RAW_BITS = (16, 32)
# Little-endian floats as a file stores them: raw values by their `bits`, scales by their `scale_bits`.
_RAW_DTYPES = {16: np.dtype("<f2"), 32: np.dtype("<f4")}
_NATIVE_DTYPES = {16: np.dtype(np.float16), 32: np.dtype(np.float32)}
_MIN_ALIGN, _MAX_ALIGN = 8, 1 << 16

# Bit offset of each of the 8 codes of a group, per width (the codes of a group span exactly `bits` bytes).
_LANE_SHIFTS = {b: np.arange(8, dtype=np.uint64) * np.uint64(b) for b in QUANT_BITS}

assert _HEADER.size == HEADER_SIZE and _ENTRY.size == 40


def _code_range(bits: int) -> tuple[int, int]:
    """Smallest and largest valid code at `bits` (symmetric: -2**(b-1) is never used; 1 bit is +-1)."""
    if bits == 1:
        return -1, 1
    qmax = (1 << (bits - 1)) - 1
    return -qmax, qmax


def _align(n: int, a: int) -> int:
    """`n` rounded up to a multiple of `a` (a power of two)."""
    return (n + a - 1) & ~(a - 1)


def _is_int(x: object) -> bool:
    """True for Python / numpy integers, False for bools (which are ints to Python but never mean a number here)."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _valid_alignment(a: object) -> bool:
    """What both the writer and the reader accept as a block alignment: a power of two in 8..65536."""
    return _is_int(a) and _MIN_ALIGN <= a <= _MAX_ALIGN and a & (a - 1) == 0


def _check_name(name: object) -> bytes:
    """The UTF-8 bytes of a tensor name, or ConfigError if it cannot be stored."""
    if not isinstance(name, str):
        raise ConfigError(f"tensor name must be a str, got {type(name).__name__}")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"tensor name {name!r} cannot be encoded as UTF-8") from None
    if not 1 <= len(raw) <= MAX_NAME_BYTES:
        raise ConfigError(
            f"tensor name {name!r} is {len(raw)} bytes of UTF-8; it must be 1..{MAX_NAME_BYTES}"
        )
    if b"\x00" in raw:
        raise ConfigError(f"tensor name {name!r} contains a NUL character")
    return raw


def _frozen(a: np.ndarray) -> np.ndarray:
    """`a` as a read-only C-contiguous array, copied unless it already is one (so callers cannot alias it)."""
    if a.flags.writeable or not a.flags.c_contiguous:
        a = np.array(a, order="C", copy=True)
    a.setflags(write=False)
    return a


_SCALE_RULE = "scales must be finite, > 0, and small enough that scale * max|code| is a finite float32"


def _bad_scales(scales: np.ndarray, bits: int) -> np.ndarray:
    """Mask of scales that are not finite, not positive, or would dequantize a code to inf: the product qmax x
    scale is taken in float32 and must be finite (a limit FLT_MAX / qmax rounds up in float32 for qmax 31 and 127,
    so a scale at that limit gave infinite 6- and 8-bit weights)."""
    qmax = 1 if bits == 1 else 2 ** (bits - 1) - 1
    s = np.asarray(scales, dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        return ~(np.isfinite(s) & (s > 0) & np.isfinite(s * np.float32(qmax)))


@dataclass(frozen=True)
class Tensor:
    """One named tensor of a `.esq` file: integer codes + per-channel scales (bits 1..8) or raw float values.

    Arrays are stored read-only; build with `Tensor.quantized` / `Tensor.raw`, which convert and validate.
    `scale_bits` is how a file stores the scales: 32 (float32) or 16 (float16: each scale must then already be
    exactly a float16, so the file still holds these weights bit for bit). `scales` is float32 either way.
    """

    name: str
    shape: tuple[int, ...]
    bits: int
    codes: np.ndarray | None = None
    scales: np.ndarray | None = None
    values: np.ndarray | None = None
    scale_bits: int = 32

    def __post_init__(self) -> None:
        """Validate every field, so no Tensor exists that the writer could not store or the reader would reject."""
        _check_name(self.name)
        who = f"tensor {self.name!r}"
        shape = self.shape
        if not isinstance(shape, tuple) or not all(_is_int(d) for d in shape):
            raise ConfigError(f"{who}: shape must be a tuple of ints, got {shape!r}")
        shape = tuple(int(d) for d in shape)
        if len(shape) > MAX_NDIM:
            raise ConfigError(f"{who}: {len(shape)} dimensions; at most {MAX_NDIM} are supported")
        if any(d < 1 for d in shape):
            raise ConfigError(f"{who}: every dimension must be >= 1, got shape {shape}")
        object.__setattr__(self, "shape", shape)
        if not _is_int(self.bits) or int(self.bits) not in QUANT_BITS + RAW_BITS:
            raise ConfigError(
                f"{who}: bits must be 1..8 (quantized) or 16 / 32 (raw float), got {self.bits!r}"
            )
        bits = int(self.bits)
        object.__setattr__(self, "bits", bits)
        if not _is_int(self.scale_bits) or int(self.scale_bits) not in SCALE_BITS:
            raise ConfigError(f"{who}: scale_bits must be 16 or 32, got {self.scale_bits!r}")
        object.__setattr__(self, "scale_bits", int(self.scale_bits))
        if bits in QUANT_BITS:
            self._check_quantized(who, shape, bits)
        else:
            if self.scale_bits != 32:
                raise ConfigError(f"{who}: a raw float tensor has no scales, so scale_bits must stay 32")
            self._check_raw(who, shape, bits)

    def _check_quantized(self, who: str, shape: tuple[int, ...], bits: int) -> None:
        """Codes int8 of `shape` within the symmetric range, scales float32 [shape[0]] finite and > 0."""
        if self.values is not None:
            raise ConfigError(f"{who}: a quantized tensor has codes and scales, not values")
        if len(shape) == 0:
            raise ConfigError(
                f"{who}: a quantized tensor needs at least 1 dimension (axis 0 = output channel)"
            )
        codes, scales = self.codes, self.scales
        if not isinstance(codes, np.ndarray) or codes.dtype != np.int8 or codes.shape != shape:
            got = f"{codes.dtype} {codes.shape}" if isinstance(codes, np.ndarray) else type(codes).__name__
            raise ConfigError(f"{who}: codes must be an int8 array of shape {shape}, got {got}")
        if not isinstance(scales, np.ndarray) or scales.dtype != np.float32 or scales.shape != (shape[0],):
            got = (
                f"{scales.dtype} {scales.shape}" if isinstance(scales, np.ndarray) else type(scales).__name__
            )
            raise ConfigError(f"{who}: scales must be a float32 array of shape ({shape[0]},), got {got}")
        _check_code_values(who, codes, bits, ConfigError)
        bad = _bad_scales(scales, bits)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ConfigError(f"{who}: scale of output channel {i} is {float(scales[i])}; {_SCALE_RULE}")
        if self.scale_bits == 16:
            off = scales.astype(np.float16).astype(np.float32) != scales
            if off.any():
                i = int(np.flatnonzero(off)[0])
                raise ConfigError(
                    f"{who}: scale of output channel {i} is {float(scales[i])!r}, not exactly a float16, so "
                    "16-bit scales would change the weights (round them first: "
                    "converters.export.bundle.round_scales_to_fp16)"
                )
        object.__setattr__(self, "codes", _frozen(codes))
        object.__setattr__(self, "scales", _frozen(scales))

    def _check_raw(self, who: str, shape: tuple[int, ...], bits: int) -> None:
        """Values float16 / float32 (matching bits) of `shape`, all finite."""
        if self.codes is not None or self.scales is not None:
            raise ConfigError(f"{who}: a raw float tensor has values, not codes or scales")
        values = self.values
        want = _NATIVE_DTYPES[bits]
        if not isinstance(values, np.ndarray) or values.dtype != want or values.shape != shape:
            got = (
                f"{values.dtype} {values.shape}" if isinstance(values, np.ndarray) else type(values).__name__
            )
            raise ConfigError(
                f"{who}: values must be a {want} array of shape {shape} for bits={bits}, got {got}"
            )
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.flatnonzero(bad.reshape(-1))[0])
            raise ConfigError(
                f"{who}: value at flat index {i} is {float(values.reshape(-1)[i])}; values must be finite"
            )
        object.__setattr__(self, "values", _frozen(values))

    @classmethod
    def quantized(
        cls, name: str, codes: np.ndarray, scales: np.ndarray, bits: int, scale_bits: int = 32
    ) -> Tensor:
        """A quantized tensor from integer codes (any int dtype, or integral floats) and per-channel scales,
        the scales stored at `scale_bits` (32, or 16 when each is exactly a float16)."""
        who = f"tensor {name!r}"
        if not _is_int(bits) or int(bits) not in QUANT_BITS:
            raise ConfigError(f"{who}: quantized bits must be an int in 1..8, got {bits!r}")
        bits = int(bits)
        c = np.asarray(codes)
        if c.dtype.kind == "f":
            if c.size and not (np.isfinite(c).all() and (c == np.round(c)).all()):
                raise ConfigError(f"{who}: float codes must hold whole numbers")
        elif c.dtype.kind not in "iu":
            raise ConfigError(f"{who}: codes must be integers, got dtype {c.dtype}")
        _check_code_values(who, c, bits, ConfigError)
        s = np.asarray(scales)
        if s.dtype.kind not in "fiu":
            raise ConfigError(f"{who}: scales must be real numbers, got dtype {s.dtype}")
        n_out = c.shape[0] if c.ndim else None
        if s.ndim > 1 and n_out is not None and s.shape[0] == n_out and s.size == n_out:
            s = s.reshape(-1)  # accept (C, 1, ..., 1) as torch keeps them
        if n_out is not None and s.shape != (n_out,):
            raise ConfigError(f"{who}: {s.size} scales for {n_out} output channels (codes shape {c.shape})")
        q = c.astype(np.int8)
        q.setflags(write=False)
        with np.errstate(over="ignore"):
            sf = s.astype(np.float32)
        sf.setflags(write=False)
        return cls(
            name=name,
            shape=tuple(int(d) for d in c.shape),
            bits=bits,
            codes=q,
            scales=sf,
            scale_bits=scale_bits,
        )

    @classmethod
    def raw(cls, name: str, values: np.ndarray, bits: int = 32) -> Tensor:
        """A raw float tensor (biases, normalisation stats) stored as float32 (bits=32) or float16 (bits=16)."""
        if not _is_int(bits) or int(bits) not in RAW_BITS:
            raise ConfigError(f"tensor {name!r}: raw bits must be 16 or 32, got {bits!r}")
        bits = int(bits)
        v = np.asarray(values)
        if v.dtype.kind not in "fiu":
            raise ConfigError(f"tensor {name!r}: values must be real numbers, got dtype {v.dtype}")
        with np.errstate(over="ignore"):
            vf = v.astype(_NATIVE_DTYPES[bits])  # an overflow to inf is reported as non-finite below
        vf.setflags(write=False)
        return cls(name=name, shape=tuple(int(d) for d in v.shape), bits=bits, values=vf)

    @property
    def is_quantized(self) -> bool:
        """True for b-bit codes + scales, False for a raw float tensor."""
        return self.bits in QUANT_BITS

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    def dequantize(self) -> np.ndarray:
        """The float32 weights: float32(codes) * scales[c] in float32 (bit-exact with QAT), or the raw values."""
        if not self.is_quantized:
            return self.values.astype(np.float32)
        s = self.scales.reshape((-1,) + (1,) * (len(self.shape) - 1))
        return self.codes.astype(np.float32) * s

    def payload_bytes(self) -> int:
        """Bytes the data occupies in a file: ceil(size * bits / 8), plus 4 (float32) or 2 (float16) per output
        channel of scales."""
        n = (self.size * self.bits + 7) // 8
        return n + self.scale_bits // 8 * self.shape[0] if self.is_quantized else n

    def __eq__(self, other: object) -> bool:
        """Same name, shape, bits, scale storage and identical arrays."""
        if not isinstance(other, Tensor):
            return NotImplemented
        ident = (self.name, self.shape, self.bits, self.scale_bits)
        return ident == (other.name, other.shape, other.bits, other.scale_bits) and all(
            (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
            for a, b in ((self.codes, other.codes), (self.scales, other.scales), (self.values, other.values))
        )

    def __hash__(self) -> int:
        """Hash of the identity fields (arrays are not hashable)."""
        return hash((self.name, self.shape, self.bits))

    def __repr__(self) -> str:
        """Short form: no array contents."""
        kind = f"{self.bits}-bit quantized" if self.is_quantized else f"float{self.bits}"
        if self.is_quantized and self.scale_bits == 16:
            kind += ", float16 scales"
        return f"Tensor({self.name!r}, shape={self.shape}, {kind})"


@dataclass(frozen=True)
class EsqFile:
    """A parsed `.esq` file: tensors in file order, its metadata and the sha256 of its bytes."""

    tensors: dict[str, Tensor]
    metadata: dict
    sha256: str
    path: Path | None

    def __hash__(self) -> int:
        """Files are identified by their content hash."""
        return hash(self.sha256)


def _check_code_values(who: str, codes: np.ndarray, bits: int, err: Callable[[str], Exception]) -> None:
    """Raise `err` naming the first code outside the valid range for `bits` (0 is invalid at 1 bit)."""
    if codes.size == 0:
        return
    lo, hi = _code_range(bits)
    mn, mx = codes.min(), codes.max()
    bad = None
    if mn < lo or mx > hi:
        bad = (codes < lo) | (codes > hi)
    elif bits == 1 and (codes == 0).any():
        bad = codes == 0
    if bad is not None:
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        v = codes.reshape(-1)[i]
        allowed = "-1 or +1" if bits == 1 else f"{lo}..{hi}"
        raise err(f"{who}: code {v} at flat index {i} is outside {allowed} for {bits}-bit weights")


def _check_code_bits(bits: object, fn: str) -> int:
    """`bits` as an int in 1..8, or ConfigError."""
    if not _is_int(bits) or int(bits) not in QUANT_BITS:
        raise ConfigError(f"{fn}: bits must be an int in 1..8, got {bits!r}")
    return int(bits)


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """Pack integer codes (C order) into a b-bit two's-complement stream, LSB-first (1 bit: 1 = +1, 0 = -1).

    Vectorised; ceil(n * bits / 8) bytes with zero padding bits. Codes must be in the symmetric range.
    """
    bits = _check_code_bits(bits, "pack_codes")
    a = np.asarray(codes)
    if a.dtype.kind not in "iu":
        raise ConfigError(f"pack_codes: codes must be an integer array, got dtype {a.dtype}")
    flat = a.reshape(-1)
    _check_code_values("pack_codes", flat, bits, ConfigError)
    if bits == 1:
        return np.packbits(flat > 0, bitorder="little").tobytes()
    u = flat.astype(np.int8).view(np.uint8)
    if bits == 8:
        return u.tobytes()
    if 8 % bits == 0:  # 2 and 4 bits: whole codes per byte, OR the shifted lanes together
        k = 8 // bits
        lanes = np.zeros(_align(u.size, k), dtype=np.uint8)
        np.bitwise_and(u, (1 << bits) - 1, out=lanes[: u.size])
        lanes = lanes.reshape(-1, k)
        out = lanes[:, 0].copy()
        for j in range(1, k):
            out |= lanes[:, j] << np.uint8(j * bits)
        return out.tobytes()
    # 3, 5, 6, 7 bits: 8 codes fill exactly `bits` bytes; build each group in a little-endian uint64
    groups = (u.size + 7) // 8
    lanes = np.zeros(groups * 8, dtype=np.uint64)
    np.bitwise_and(u, (1 << bits) - 1, out=lanes[: u.size], casting="unsafe")
    lanes = lanes.reshape(groups, 8)
    words = lanes[:, 0].copy()
    for j in range(1, 8):
        words |= lanes[:, j] << _LANE_SHIFTS[bits][j]
    words = words.astype("<u8", copy=False)
    return words.view(np.uint8).reshape(groups, 8)[:, :bits].tobytes()[: (u.size * bits + 7) // 8]


def unpack_codes(buf: bytes | memoryview, bits: int, count: int) -> np.ndarray:
    """Read `count` b-bit codes from the start of `buf` as a sign-extended int8 array (1 bit: 1 -> +1, 0 -> -1).

    The inverse of `pack_codes`; it does not check the range (a reader does, to report a bad file).
    """
    bits = _check_code_bits(bits, "unpack_codes")
    if not _is_int(count) or count < 0:
        raise ConfigError(f"unpack_codes: count must be a non-negative int, got {count!r}")
    count = int(count)
    nbytes = (count * bits + 7) // 8
    mv = memoryview(buf)
    if mv.nbytes < nbytes:
        raise ConfigError(
            f"unpack_codes: {count} {bits}-bit codes need {nbytes} bytes, the buffer has {mv.nbytes}"
        )
    raw = np.frombuffer(mv.cast("B") if mv.format != "B" else mv, dtype=np.uint8, count=nbytes)
    if bits == 8:
        return raw.view(np.int8).copy()
    if bits == 1:
        return np.unpackbits(raw, count=count, bitorder="little").view(np.int8) * np.int8(2) - np.int8(1)
    if 8 % bits == 0:  # 2 and 4 bits: take each lane of every byte, then sign-extend through bit 7
        k = 8 // bits
        lanes = np.empty((nbytes, k), dtype=np.uint8)
        for j in range(k):
            np.bitwise_and(raw >> np.uint8(j * bits), np.uint8((1 << bits) - 1), out=lanes[:, j])
        sh = np.uint8(8 - bits)
        return (lanes.reshape(-1)[:count] << sh).view(np.int8) >> sh.astype(np.int8)
    # 3, 5, 6, 7 bits: 8 codes fill exactly `bits` bytes; read each group as a little-endian uint64, move
    # code j's top bit to bit 63 and shift it back arithmetically (which sign-extends it)
    groups = (count + 7) // 8
    staged = np.zeros((groups, 8), dtype=np.uint8)
    tail = np.zeros(groups * bits, dtype=np.uint8)
    tail[:nbytes] = raw
    staged[:, :bits] = tail.reshape(groups, bits)
    words = staged.view("<u8").reshape(groups)
    out = np.empty((groups, 8), dtype=np.int8)
    for j in range(8):
        out[:, j] = (words << np.uint64(64 - bits - j * bits)).view(np.int64) >> np.int64(64 - bits)
    return out.reshape(-1)[:count]


# ----------------------------------------------------------------------------------------------- writing


def _metadata_bytes(metadata: dict | None) -> bytes:
    """Metadata as compact UTF-8 JSON (an object; NaN / inf and unserialisable values are ConfigError)."""
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise ConfigError(f"metadata must be a dict (a JSON object), got {type(metadata).__name__}")
    try:
        text = json.dumps(metadata, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as e:
        raise ConfigError(f"metadata cannot be stored as JSON: {e}") from None
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ConfigError(f"metadata cannot be encoded as UTF-8: {e}") from None
    if len(raw) > MAX_METADATA_BYTES:
        raise ConfigError(f"metadata is {len(raw)} bytes of JSON; at most {MAX_METADATA_BYTES} are allowed")
    _check_binary64_ints(metadata)
    return raw


def _check_binary64_ints(metadata: dict) -> None:
    """ConfigError for an integer that rounds past the largest binary64 (a C reader's strtod gives inf for it,
    as for 1e999, which json.dumps already refuses). Iterative: json.dumps has bounded the depth already."""
    stack: list[object] = [metadata]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
        elif isinstance(x, int) and not isinstance(x, bool):
            try:
                float(x)
            except OverflowError:
                raise ConfigError(
                    f"metadata cannot be stored as JSON: an integer of {len(str(abs(x)))} digits does not fit "
                    "in a binary64 (readers would see inf)"
                ) from None


def _entry_bytes(t: Tensor, scales_at: int, payload_at: int, payload_len: int) -> bytes:
    """One tensor table entry: fixed fields, dims, name, zero padding to a multiple of 8."""
    name = t.name.encode("utf-8")
    scales_len = t.scale_bits // 8 * t.shape[0] if t.is_quantized else 0
    e = _ENTRY.pack(len(name), t.bits, len(t.shape), 0, scales_at, scales_len, payload_at, payload_len)
    e += struct.pack(f"<{len(t.shape)}Q", *t.shape) + name
    return e + bytes(_align(len(e), 8) - len(e))


def _encode(tensors: Sequence[Tensor], metadata: dict | None, alignment: int = ALIGNMENT) -> list[bytes]:
    """The whole file as a list of byte chunks (header first, digest filled in)."""
    if not _valid_alignment(alignment):
        raise ConfigError(f"alignment={alignment!r} must be a power of two in {_MIN_ALIGN}..{_MAX_ALIGN}")
    if isinstance(tensors, (Tensor, str, bytes, dict)) or not hasattr(tensors, "__iter__"):
        raise ConfigError(f"tensors must be a sequence of Tensor, got {type(tensors).__name__}")
    tensors = list(tensors)
    seen: set[str] = set()
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise ConfigError(f"tensors[{i}] is a {type(t).__name__}, not a Tensor")
        if t.name in seen:
            raise ConfigError(f"duplicate tensor name {t.name!r}: names must be unique within a file")
        seen.add(t.name)
    meta = _metadata_bytes(metadata)
    blobs: list[tuple[bytes, bytes]] = []
    for t in tensors:
        if t.is_quantized:
            blobs.append((t.scales.astype(_RAW_DTYPES[t.scale_bits]).tobytes(), pack_codes(t.codes, t.bits)))
        else:
            blobs.append((b"", t.values.astype(_RAW_DTYPES[t.bits]).tobytes()))
    # The table's size does not depend on the offsets, so lay it out once with zeros to measure it.
    table_len = sum(len(_entry_bytes(t, 0, 0, 0)) for t in tensors)
    meta_at = HEADER_SIZE + table_len
    pos = _align(meta_at + len(meta), alignment)
    entries, data = [], []
    for i, (t, (sc, pl)) in enumerate(zip(tensors, blobs, strict=True)):
        sc_at = 0
        if sc:
            sc_at = pos
            data += [sc, bytes(_align(len(sc), alignment) - len(sc))]
            pos = _align(pos + len(sc), alignment)
        pl_at = pos
        data.append(pl)
        pos += len(pl)
        if i < len(tensors) - 1:
            data.append(bytes(_align(pos, alignment) - pos))
            pos = _align(pos, alignment)
        entries.append(_entry_bytes(t, sc_at, pl_at, len(pl)))
    table = b"".join(entries)
    assert len(table) == table_len
    body = [table, meta, bytes(_align(meta_at + len(meta), alignment) - meta_at - len(meta))] + data
    file_size = HEADER_SIZE + sum(len(b) for b in body)
    version = VERSION_FP16_SCALES if any(t.scale_bits == 16 for t in tensors) else VERSION
    fields = (MAGIC, version, 0, HEADER_SIZE, file_size, len(tensors), alignment)
    fields += (HEADER_SIZE, table_len, meta_at, len(meta))
    h = hashlib.sha256(_HEADER.pack(*fields, bytes(DIGEST_SIZE)))
    for b in body:
        h.update(b)
    return [_HEADER.pack(*fields, h.digest()), *body]


def write_esq(
    path: str | os.PathLike,
    tensors: Sequence[Tensor],
    *,
    metadata: dict | None = None,
    alignment: int = ALIGNMENT,
) -> Path:
    """Write tensors (in order) and a JSON metadata object to a `.esq` file, atomically; returns the path.

    `alignment`: every data block starts at a multiple of it (a power of two in 8..65536; the header records
    it). 64 suits SIMD loads of large tensors; a small model's file shrinks by ~30 bytes per block at 8.
    Bad arguments raise ConfigError before anything touches the disk.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; give the path of the .esq file to write")
    chunks = _encode(tensors, metadata, alignment)
    with atomic_writer(path) as fh:
        for c in chunks:
            fh.write(c)
    return path


# ----------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Entry:
    """A tensor table entry after its structure was checked."""

    index: int
    name: str
    bits: int
    shape: tuple[int, ...]
    scales_at: int
    scales_len: int
    payload_at: int
    payload_len: int


class _Reader:
    """One validation pass over a file's bytes; every problem raises PackedFormatError starting with `source`."""

    def __init__(self, data: bytes | bytearray | memoryview, source: str) -> None:
        mv = memoryview(data)
        self.mv = mv if mv.format == "B" else mv.cast("B")
        self.n = self.mv.nbytes
        self.src = source
        self.version = VERSION  # the header's, once `header()` has checked it

    def fail(self, msg: str) -> PackedFormatError:
        """The error to raise, message prefixed with the source."""
        return PackedFormatError(f"{self.src}: {msg}")

    def header(self) -> tuple:
        """Parse and check the fixed 96-byte header."""
        self._check_magic()
        fields = _HEADER.unpack_from(self.mv, 0)
        _, version, flags, header_size, file_size, count, align, table_at, table_len, meta_at, meta_len, _ = (
            fields
        )
        if version not in VERSIONS:
            known = ", ".join(map(str, VERSIONS))
            raise self.fail(f"unsupported format version {version} (this reader supports versions {known})")
        if flags != 0:
            raise self.fail(f"unknown flags 0x{flags:04x} (version {version} defines none)")
        self.version = version
        if header_size != HEADER_SIZE:
            raise self.fail(f"header length field is {header_size}, expected {HEADER_SIZE}")
        if file_size != self.n:
            what = "truncated" if file_size > self.n else "trailing data"
            raise self.fail(f"{what}: the header says the file has {file_size} bytes but it has {self.n}")
        if not _valid_alignment(align):
            raise self.fail(f"alignment {align} is not a power of two in {_MIN_ALIGN}..{_MAX_ALIGN}")
        self._check_sections(count, table_at, table_len, meta_at, meta_len)
        return fields

    def _check_magic(self) -> None:
        """Check the file is non-empty, has the magic and holds a whole header, before it is unpacked."""
        head = bytes(self.mv[:8])
        if self.n == 0:
            raise self.fail("empty file: not an .esq file")
        if head != MAGIC[: len(head)]:
            raise self.fail(f"not an .esq file: it starts with {head!r}, expected the magic {MAGIC!r}")
        if self.n < HEADER_SIZE:
            raise self.fail(f"truncated: the header needs {HEADER_SIZE} bytes but the file has {self.n}")

    def _check_sections(self, count: int, table_at: int, table_len: int, meta_at: int, meta_len: int) -> None:
        """Check the tensor table's and metadata's offsets and lengths, so later reads stay in the file."""
        if table_at != HEADER_SIZE:
            raise self.fail(f"tensor table offset {table_at} must be {HEADER_SIZE} (right after the header)")
        if table_at + table_len > self.n:
            raise self.fail(
                f"truncated: tensor table ends at byte {table_at + table_len} but the file has {self.n}"
            )
        if table_len % 8:
            raise self.fail(f"tensor table length {table_len} is not a multiple of 8")
        if count * _MIN_ENTRY > table_len:
            raise self.fail(f"tensor count {count} cannot fit in a {table_len}-byte tensor table")
        if meta_at != table_at + table_len:
            raise self.fail(
                f"metadata offset {meta_at} must be {table_at + table_len} (right after the tensor table)"
            )
        if meta_len > MAX_METADATA_BYTES:
            raise self.fail(f"metadata length {meta_len} exceeds the limit of {MAX_METADATA_BYTES} bytes")
        if meta_at + meta_len > self.n:
            raise self.fail(
                f"truncated: metadata ends at byte {meta_at + meta_len} but the file has {self.n}"
            )

    def entries(self, count: int, table_at: int, table_len: int) -> list[_Entry]:
        """Parse and check the tensor table's structure (not yet the data it points at)."""
        end = table_at + table_len
        pos = table_at
        out: list[_Entry] = []
        names: set[str] = set()
        for i in range(count):
            if pos + _ENTRY.size > end:
                raise self.fail(
                    f"tensor table too short: entry #{i} starts at byte {pos}, the table ends at {end}"
                )
            name_len, bits, ndim, reserved, sc_at, sc_len, pl_at, pl_len = _ENTRY.unpack_from(self.mv, pos)
            if not 1 <= name_len <= MAX_NAME_BYTES:
                raise self.fail(f"tensor #{i}: name length {name_len} is outside 1..{MAX_NAME_BYTES}")
            if ndim > MAX_NDIM:
                raise self.fail(f"tensor #{i}: {ndim} dimensions; at most {MAX_NDIM} are allowed")
            if reserved != 0:
                raise self.fail(f"tensor #{i}: reserved field is {reserved}, must be 0")
            size = _align(_ENTRY.size + 8 * ndim + name_len, 8)
            if pos + size > end:
                raise self.fail(
                    f"tensor table too short: entry #{i} needs bytes {pos}..{pos + size}, table ends at {end}"
                )
            shape = struct.unpack_from(f"<{ndim}Q", self.mv, pos + _ENTRY.size)
            name_at = pos + _ENTRY.size + 8 * ndim
            raw_name = bytes(self.mv[name_at : name_at + name_len])
            try:
                name = raw_name.decode("utf-8")
            except UnicodeDecodeError:
                raise self.fail(f"tensor #{i}: name {raw_name!r} is not valid UTF-8") from None
            if "\x00" in name:
                raise self.fail(f"tensor #{i}: name {name!r} contains a NUL byte")
            if any(self.mv[name_at + name_len : pos + size]):
                raise self.fail(f"tensor {name!r}: table entry padding bytes are not zero")
            if name in names:
                raise self.fail(f"duplicate tensor name {name!r} (tensor #{i})")
            names.add(name)
            out.append(self._entry_fields(i, name, bits, shape, sc_at, sc_len, pl_at, pl_len))
            pos += size
        if pos != end:
            raise self.fail(f"tensor table has {end - pos} bytes after its {count} entries")
        return out

    def _entry_fields(
        self,
        i: int,
        name: str,
        bits: int,
        shape: tuple[int, ...],
        sc_at: int,
        sc_len: int,
        pl_at: int,
        pl_len: int,
    ) -> _Entry:
        """Check one entry's bits, shape and block lengths against each other."""
        who = f"tensor {name!r}"
        if bits not in QUANT_BITS + RAW_BITS:
            raise self.fail(f"{who}: bits {bits} is not one of 1..8 (quantized) or 16 / 32 (raw float)")
        if any(d == 0 for d in shape):
            raise self.fail(f"{who}: shape {shape} has a zero dimension")
        size = math.prod(shape)  # a Python int: a lying 2**60 dimension costs nothing
        need = (size * bits + 7) // 8
        if pl_len != need:
            raise self.fail(
                f"{who}: payload length {pl_len} does not match shape {shape} at {bits} bits, which needs {need} bytes"
            )
        if bits in QUANT_BITS:
            if not shape:
                raise self.fail(f"{who}: a quantized tensor needs at least 1 dimension")
            if sc_len != 4 * shape[0] and not (
                self.version >= VERSION_FP16_SCALES and sc_len == 2 * shape[0]
            ):
                allowed = (
                    "4 (float32)" if self.version < VERSION_FP16_SCALES else "4 (float32) or 2 (float16)"
                )
                raise self.fail(
                    f"{who}: scales length {sc_len} bytes, expected {allowed} x {shape[0]} output channels "
                    f"(format version {self.version})"
                )
        elif sc_at != 0 or sc_len != 0:
            raise self.fail(
                f"{who}: a raw float{bits} tensor has a scales block (offset {sc_at}, length {sc_len})"
            )
        return _Entry(i, name, bits, tuple(shape), sc_at, sc_len, pl_at, pl_len)

    def layout(self, entries: list[_Entry], align: int, meta_end: int) -> None:
        """Every block lies inside the file, aligned, after the metadata, with no overlap; unused bytes are zero."""
        data_start = _align(meta_end, align)
        blocks: list[tuple[int, int, str]] = []
        for e in entries:
            parts = [("payload", e.payload_at, e.payload_len)]
            if e.scales_len:
                parts.insert(0, ("scales", e.scales_at, e.scales_len))
            for what, at, length in parts:
                label = f"tensor {e.name!r} {what}"
                if at + length > self.n:
                    raise self.fail(
                        f"truncated: {label} ends at byte {at + length} but the file has {self.n} bytes"
                    )
                if at % align:
                    raise self.fail(f"{label} offset {at} is not a multiple of the alignment {align}")
                if at < data_start:
                    raise self.fail(
                        f"{label} offset {at} is inside the header, table or metadata (data starts at {data_start})"
                    )
                blocks.append((at, at + length, label))
        blocks.sort()
        for (_, prev_end, prev_label), (start, stop, label) in itertools.pairwise(blocks):
            if start < prev_end:
                raise self.fail(f"{label} (bytes {start}..{stop}) overlaps {prev_label}")
        prev_end = meta_end
        for start, stop, label in blocks:
            self._zeros(prev_end, start, f"padding before {label}")
            prev_end = stop
        self._zeros(prev_end, self.n, "padding at the end of the file")

    def _zeros(self, a: int, b: int, what: str) -> None:
        """Bytes a..b must be zero (padding)."""
        if b > a and np.frombuffer(self.mv, dtype=np.uint8, count=b - a, offset=a).any():
            raise self.fail(f"{what} (bytes {a}..{b}) is not all zeros")

    def digest(self, stored: bytes) -> None:
        """The content digest: sha256 of the file with the 32 digest bytes taken as zeros."""
        h = hashlib.sha256(self.mv[:DIGEST_OFFSET])
        h.update(bytes(DIGEST_SIZE))
        h.update(self.mv[DIGEST_OFFSET + DIGEST_SIZE :])
        if h.digest() != stored:
            raise self.fail(
                f"content digest mismatch: the header says {stored.hex()} but the content hashes to "
                f"{h.hexdigest()} (the file is corrupt)"
            )

    def metadata(self, at: int, length: int) -> dict:
        """The metadata block as a JSON object."""
        raw = bytes(self.mv[at : at + length])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.fail(f"metadata is not valid UTF-8 ({e.reason} at byte {at + e.start})") from None

        def no_constants(c: str) -> None:
            raise ValueError(f"{c} is not valid JSON")

        def no_duplicates(pairs: list[tuple[str, object]]) -> dict:
            seen = {}
            for k, v in pairs:
                if k in seen:  # parsers disagree on which one wins, so a file must not hold both
                    raise ValueError(f"duplicate key {k!r} in an object")
                seen[k] = v
            return seen

        try:
            meta = json.loads(text, parse_constant=no_constants, object_pairs_hook=no_duplicates)
        except RecursionError:
            raise self.fail("metadata JSON is nested too deeply") from None
        except ValueError as e:
            raise self.fail(f"metadata is not valid JSON: {e}") from None
        if not isinstance(meta, dict):
            raise self.fail(f"metadata must be a JSON object, got a JSON {type(meta).__name__}")
        try:  # what we return must be writable again: no 1e999 (inf), no lone surrogate escapes
            _metadata_bytes(meta)
        except ConfigError as e:
            raise self.fail(f"metadata holds a value JSON cannot carry ({e})") from None
        return meta

    def tensor(self, e: _Entry) -> Tensor:
        """Decode one tensor's blocks and check their values."""
        who = f"tensor {e.name!r}"
        size = math.prod(e.shape)
        if e.bits in RAW_BITS:
            v = np.frombuffer(self.mv, dtype=_RAW_DTYPES[e.bits], count=size, offset=e.payload_at)
            v = v.astype(_NATIVE_DTYPES[e.bits]).reshape(e.shape)
            bad = ~np.isfinite(v)
            if bad.any():
                i = int(np.flatnonzero(bad.reshape(-1))[0])
                raise self.fail(
                    f"{who}: value at flat index {i} is {float(v.reshape(-1)[i])}; raw values must be finite"
                )
            v.setflags(write=False)
            return self._build(e, values=v)
        scale_bits = 8 * e.scales_len // e.shape[0]  # 32 or 16: checked against the version in _entry_fields
        s = np.frombuffer(self.mv, dtype=_RAW_DTYPES[scale_bits], count=e.shape[0], offset=e.scales_at)
        s = s.astype(np.float32)
        bad = _bad_scales(s, e.bits)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise self.fail(f"{who}: scale of output channel {i} is {float(s[i])}; {_SCALE_RULE}")
        used = (size * e.bits) % 8
        if used and self.mv[e.payload_at + e.payload_len - 1] >> used:
            raise self.fail(f"{who}: padding bits after the last code are not zero")
        q = unpack_codes(self.mv[e.payload_at : e.payload_at + e.payload_len], e.bits, size).reshape(e.shape)
        _check_code_values(who, q, e.bits, lambda m: self.fail(m))
        q.setflags(write=False)
        s.setflags(write=False)
        return self._build(e, codes=q, scales=s, scale_bits=scale_bits)

    def _build(self, e: _Entry, **arrays) -> Tensor:
        """The Tensor (its own validation cannot fail after ours; if it does, it is still a bad file)."""
        try:
            return Tensor(name=e.name, shape=e.shape, bits=e.bits, **arrays)
        except ConfigError as err:
            raise self.fail(str(err)) from None


def _check_expected(expected_sha256: str | None) -> str | None:
    """A caller-given sha256 normalised to lower-case hex, or ConfigError."""
    if expected_sha256 is None:
        return None
    if not isinstance(expected_sha256, str) or len(expected_sha256) != 64:
        raise ConfigError(f"expected_sha256 must be 64 hex characters, got {expected_sha256!r}")
    try:
        bytes.fromhex(expected_sha256)
    except ValueError:
        raise ConfigError(f"expected_sha256 must be 64 hex characters, got {expected_sha256!r}") from None
    return expected_sha256.lower()


def _parse(
    data: bytes | bytearray | memoryview, source: str, expected: str | None, path: Path | None
) -> EsqFile:
    """Validate structure, then the digests, then the values; return the parsed file."""
    r = _Reader(data, source)
    fields = r.header()
    _, _, _, _, _, count, align, table_at, table_len, meta_at, meta_len, stored = fields
    entries = r.entries(count, table_at, table_len)
    r.layout(entries, align, meta_at + meta_len)
    r.digest(stored)
    whole = hashlib.sha256(r.mv).hexdigest()
    if expected is not None and whole != expected:
        raise r.fail(f"sha256 mismatch: expected {expected} but the file hashes to {whole}")
    metadata = r.metadata(meta_at, meta_len)
    try:
        tensors = {e.name: r.tensor(e) for e in entries}
    except MemoryError:
        raise r.fail(f"too large to load: {r.n} bytes of tensors do not fit in memory") from None
    return EsqFile(tensors=tensors, metadata=metadata, sha256=whole, path=path)


def read_esq_bytes(data: bytes, *, source: str = "<bytes>", expected_sha256: str | None = None) -> EsqFile:
    """Parse a `.esq` file held in memory; `source` names it in error messages."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ConfigError(f"read_esq_bytes: data must be bytes, got {type(data).__name__}")
    if isinstance(data, memoryview) and not data.c_contiguous:
        raise ConfigError("read_esq_bytes: data must be a contiguous buffer")
    return _parse(data, str(source), _check_expected(expected_sha256), None)


def read_esq(
    path: str | os.PathLike, *, expected_sha256: str | None = None, max_bytes: int = 1 << 30
) -> EsqFile:
    """Read and fully validate a `.esq` file; files larger than `max_bytes` are refused before reading."""
    if not _is_int(max_bytes) or max_bytes <= 0:
        raise ConfigError(f"read_esq: max_bytes must be a positive int, got {max_bytes!r}")
    expected = _check_expected(expected_sha256)
    path = Path(path)
    data = read_regular_file(path, limit=max_bytes, error=PackedFormatError)
    return _parse(data, str(path), expected, path)
