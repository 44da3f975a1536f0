"""The packed .esq format: bit-exact round trips, the documented byte layout, writer checks and a reader fuzz."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from edge_ser import packed
from edge_ser.errors import ConfigError, PackedFormatError
from edge_ser.packed import EsqFile, Tensor, pack_codes, read_esq, read_esq_bytes, unpack_codes, write_esq

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - the fuzz tests need it; everything else runs without
    given = None

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "packed-format.md"

# The layout as docs/packed-format.md states it, written out independently of edge_ser.packed.
HEADER_FIELDS = {  # name: (offset, struct format)
    "magic": (0, "8s"),
    "version": (8, "<H"),
    "flags": (10, "<H"),
    "header_size": (12, "<I"),
    "file_size": (16, "<Q"),
    "tensor_count": (24, "<I"),
    "alignment": (28, "<I"),
    "table_offset": (32, "<Q"),
    "table_length": (40, "<Q"),
    "metadata_offset": (48, "<Q"),
    "metadata_length": (56, "<Q"),
}
ENTRY_FIELDS = {  # name: (offset within the entry, struct format); dims (u64 each) follow at 40, then the name
    "name_length": (0, "<H"),
    "bits": (2, "<B"),
    "ndim": (3, "<B"),
    "reserved": (4, "<I"),
    "scales_offset": (8, "<Q"),
    "scales_length": (16, "<Q"),
    "payload_offset": (24, "<Q"),
    "payload_length": (32, "<Q"),
}


def code_range(bits: int) -> tuple[int, int]:
    """Valid codes at `bits`: +-1 at 1 bit, else symmetric +-(2**(b-1)-1)."""
    return (-1, 1) if bits == 1 else (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1)


def rand_codes(rng: np.random.Generator, shape: tuple[int, ...], bits: int) -> np.ndarray:
    """Random valid codes of `shape`, always including both ends of the range when there is room."""
    lo, hi = code_range(bits)
    if bits == 1:
        c = np.where(rng.integers(0, 2, shape) > 0, 1, -1)
    else:
        c = rng.integers(lo, hi + 1, shape)
    flat = c.reshape(-1)
    if flat.size >= 2:
        flat[0], flat[-1] = lo, hi
    return c.astype(np.int8)


def naive_pack(codes: np.ndarray, bits: int) -> bytes:
    """Bit-by-bit reference packer: element i's bit j goes to stream bit i*bits + j, LSB-first in bytes."""
    out = bytearray((codes.size * bits + 7) // 8)
    pos = 0
    for c in codes.reshape(-1).tolist():
        v = (1 if c > 0 else 0) if bits == 1 else c & ((1 << bits) - 1)
        for j in range(bits):
            if (v >> j) & 1:
                out[pos // 8] |= 1 << (pos % 8)
            pos += 1
    return bytes(out)


def naive_unpack(buf: bytes, bits: int, count: int) -> list[int]:
    """Bit-by-bit reference unpacker with two's-complement sign extension (1 bit: 1 -> +1, 0 -> -1)."""
    out = []
    for i in range(count):
        v = 0
        for j in range(bits):
            pos = i * bits + j
            v |= ((buf[pos // 8] >> (pos % 8)) & 1) << j
        if bits == 1:
            out.append(1 if v else -1)
        else:
            out.append(v - (1 << bits) if v >= 1 << (bits - 1) else v)
    return out


def refix_digest(data: bytes | bytearray) -> bytes:
    """Recompute the content digest (sha256 with bytes 64..96 zeroed) after a mutation, as the doc defines it."""
    b = bytearray(data)
    if len(b) >= 96:
        b[64:96] = bytes(32)
        b[64:96] = hashlib.sha256(b).digest()
    return bytes(b)


def entry_positions(data: bytes) -> list[tuple[int, int]]:
    """(entry start, ndim) of every tensor table entry, walking the table as the doc describes."""
    out, pos = [], 96
    (count,) = struct.unpack_from("<I", data, 24)
    for _ in range(count):
        name_len, _, ndim = struct.unpack_from("<HBB", data, pos)
        out.append((pos, ndim))
        pos += (40 + 8 * ndim + name_len + 7) // 8 * 8
    return out


def tiny_tensors() -> list[Tensor]:
    """The tiny example file of docs/packed-format.md."""
    return [
        Tensor.quantized("w", np.array([[1, -1, 0, 1], [0, 1, 1, -1]]), np.array([0.5, 0.25]), bits=2),
        Tensor.raw("b", np.array([0.5, -1.0])),
    ]


def mixed_tensors(seed: int = 0) -> list[Tensor]:
    """Every bit width, several shapes (1-D, 4-D, shape[0]=1, sizes not multiples of 8) and raw float tensors."""
    rng = np.random.default_rng(seed)
    shapes = [(13,), (7, 5), (4, 3, 3, 3), (1, 9), (3, 1, 1, 11), (2, 3, 1, 1, 1, 1, 1, 5)]
    ts = []
    for bits in range(1, 9):
        shape = shapes[bits % len(shapes)]
        scales = rng.uniform(1e-3, 2.0, shape[0]).astype(np.float32)
        ts.append(Tensor.quantized(f"q{bits}.weight", rand_codes(rng, shape, bits), scales, bits))
    ts.append(Tensor.raw("bias32", rng.normal(size=7).astype(np.float32)))
    ts.append(Tensor.raw("stats16", rng.normal(size=(3, 5)), bits=16))
    ts.append(Tensor.raw("scalar", np.float32(3.5)))
    return ts


def mlp_tensors(bits: int, seed: int = 0) -> list[Tensor]:
    """The LAQ MLP 180-512-128-64-7: weights quantized to `bits`, biases float32 (167,047 params)."""
    rng = np.random.default_rng(seed)
    sizes = [180, 512, 128, 64, 7]
    ts = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        scales = rng.uniform(0.01, 0.1, n_out).astype(np.float32)
        ts.append(Tensor.quantized(f"fc{i + 1}.weight", rand_codes(rng, (n_out, n_in), bits), scales, bits))
        ts.append(Tensor.raw(f"fc{i + 1}.bias", rng.normal(size=n_out).astype(np.float32)))
    return ts


def encode(tensors: list[Tensor], metadata: dict | None = None) -> bytes:
    """The file bytes write_esq would produce."""
    return b"".join(packed._encode(tensors, metadata))


def hexdump(data: bytes) -> str:
    """Offset + 16 bytes per line, the format the doc's dump uses."""
    return "\n".join(
        f"{i:08x}  " + " ".join(f"{b:02x}" for b in data[i : i + 16]) for i in range(0, len(data), 16)
    )


# ----------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("bits", range(1, 9))
def test_round_trip_every_bit_width(tmp_path: Path, bits: int) -> None:
    rng = np.random.default_rng(bits)
    shapes = [(1,), (13,), (7, 5), (4, 3, 3, 3), (1, 9), (3, 1, 1, 11), (64, 180)]
    ts = []
    for i, shape in enumerate(shapes):
        scales = rng.uniform(1e-4, 3.0, shape[0]).astype(np.float32)
        ts.append(Tensor.quantized(f"layer{i}.weight", rand_codes(rng, shape, bits), scales, bits))
    ts.append(Tensor.raw("bias", rng.normal(size=(13,)).astype(np.float32)))
    ts.append(Tensor.raw("norm.mean", rng.normal(size=(2, 3)), bits=16))
    meta = {"model": "t", "bits": bits, "nested": {"labels": ["a", "ü"], "x": 1.5, "none": None}}
    path = write_esq(tmp_path / "m.esq", ts, metadata=meta)
    f = read_esq(path)
    assert isinstance(f, EsqFile)
    assert f.path == path and f.metadata == meta
    assert f.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert list(f.tensors) == [t.name for t in ts]  # file order preserved
    for t in ts:
        g = f.tensors[t.name]
        assert g == t and g.shape == t.shape and g.bits == t.bits
        if t.is_quantized:
            assert g.codes.dtype == np.int8 and g.scales.dtype == np.float32
            np.testing.assert_array_equal(g.codes, t.codes)
            np.testing.assert_array_equal(g.scales, t.scales)
            scale_shape = (-1,) + (1,) * (len(t.shape) - 1)
            want = np.float32(t.codes) * t.scales.reshape(scale_shape)
            got = g.dequantize()
            assert got.dtype == np.float32 and got.shape == t.shape
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32))  # bit-exact
            assert g.payload_bytes() == math.ceil(t.size * bits / 8) + 4 * t.shape[0]
        else:
            assert g.values.dtype == t.values.dtype
            np.testing.assert_array_equal(g.values, t.values)
            assert g.dequantize().dtype == np.float32


def test_mixed_file_and_empty_file_round_trip(tmp_path: Path) -> None:
    ts = mixed_tensors()
    f = read_esq_bytes(encode(ts))
    assert list(f.tensors.values()) == ts and f.metadata == {} and f.path is None
    assert f.tensors["scalar"].shape == () and f.tensors["scalar"].dequantize() == np.float32(3.5)
    empty = read_esq(write_esq(tmp_path / "e.esq", [], metadata={"only": "metadata"}))
    assert empty.tensors == {} and empty.metadata == {"only": "metadata"}


@pytest.mark.parametrize("alignment", [8, 16, 4096])
def test_alignment_is_the_writers_choice(tmp_path: Path, alignment: int) -> None:
    rng = np.random.default_rng(0)
    tensors = [
        Tensor.quantized("w", rng.integers(-1, 2, (5, 3)), rng.uniform(0.1, 1, 5).astype(np.float32), 2),
        Tensor.raw("b", rng.standard_normal(5).astype(np.float16), bits=16),
    ]
    f = read_esq(write_esq(tmp_path / "a.esq", tensors, alignment=alignment))
    np.testing.assert_array_equal(f.tensors["w"].codes, tensors[0].codes)
    np.testing.assert_array_equal(f.tensors["b"].values, tensors[1].values)
    assert struct.unpack_from("<I", (tmp_path / "a.esq").read_bytes(), 28)[0] == alignment
    small = (tmp_path / "a.esq").stat().st_size
    assert small < write_esq(tmp_path / "b.esq", tensors).stat().st_size or alignment > 64
    for bad in (4, 24, 1 << 17, True):
        with pytest.raises(ConfigError, match="alignment"):
            write_esq(tmp_path / "c.esq", tensors, alignment=bad)


def test_arrays_read_back_are_read_only() -> None:
    f = read_esq_bytes(encode(tiny_tensors()))
    with pytest.raises(ValueError):
        f.tensors["w"].codes[0, 0] = 0
    src = np.array([1, -1], dtype=np.int8)
    t = Tensor.quantized("x", src, np.ones(2), 2)
    src[0] = 0  # the tensor took a copy
    assert t.codes[0] == 1


def test_quantized_accepts_torch_style_inputs() -> None:
    codes = np.array([[1.0, -1.0], [0.0, 1.0]])  # integral floats, as torch.round leaves them
    t = Tensor.quantized("w", codes, np.array([[0.5], [0.25]]), 2)  # (C, 1) scales
    assert t.codes.dtype == np.int8 and t.scales.shape == (2,)
    np.testing.assert_array_equal(t.dequantize(), [[0.5, -0.5], [0.0, 0.25]])


# ----------------------------------------------------------------------------------------------- bit order


def test_doc_worked_examples() -> None:
    # 2 bits: [1, -1, 0, 1] -> 01, 11, 00, 01 -> byte 0b01_00_11_01 = 0x4D
    assert pack_codes(np.array([1, -1, 0, 1]), 2) == b"\x4d"
    assert unpack_codes(b"\x4d", 2, 4).tolist() == [1, -1, 0, 1]
    # 3 bits, a code crossing a byte: [3, -2, -3] -> 011, 110, 101 -> 0b01_110_011 = 0x73, then 0x01
    assert pack_codes(np.array([3, -2, -3]), 3) == b"\x73\x01"
    assert unpack_codes(b"\x73\x01", 3, 3).tolist() == [3, -2, -3]
    # 1 bit: [+1, -1, -1, +1, +1] -> 1, 0, 0, 1, 1 -> 0x19
    assert pack_codes(np.array([1, -1, -1, 1, 1]), 1) == b"\x19"
    assert unpack_codes(b"\x19", 1, 5).tolist() == [1, -1, -1, 1, 1]


@pytest.mark.parametrize("bits", range(1, 9))
def test_unpack_matches_naive_reference(bits: int) -> None:
    rng = np.random.default_rng(100 + bits)
    for count in (0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 203):
        buf = rng.integers(0, 256, (count * bits + 7) // 8 + 3, dtype=np.uint8).tobytes()  # every bit pattern
        got = unpack_codes(buf, bits, count)
        assert got.dtype == np.int8 and got.shape == (count,)
        assert got.tolist() == naive_unpack(buf, bits, count)
        assert unpack_codes(memoryview(buf), bits, count).tolist() == got.tolist()


@pytest.mark.parametrize("bits", range(1, 9))
def test_pack_matches_naive_reference(bits: int) -> None:
    rng = np.random.default_rng(200 + bits)
    for count in (0, 1, 5, 8, 9, 31, 64, 101):
        codes = rand_codes(rng, (count,), bits)
        for dtype in (np.int8, np.int16, np.int64):
            assert pack_codes(codes.astype(dtype), bits) == naive_pack(codes, bits)
        assert unpack_codes(pack_codes(codes, bits), bits, count).tolist() == codes.tolist()
    codes = rand_codes(rng, (3, 4, 5), bits)  # C order
    assert pack_codes(codes, bits) == naive_pack(codes, bits)


def test_pack_unpack_a_million_codes() -> None:
    codes = rand_codes(np.random.default_rng(0), (1_000_000,), 2)
    buf = pack_codes(codes, 2)
    assert len(buf) == 250_000 and np.array_equal(unpack_codes(buf, 2, codes.size), codes)


def test_pack_unpack_argument_errors() -> None:
    with pytest.raises(ConfigError, match="bits"):
        pack_codes(np.array([1]), 9)
    with pytest.raises(ConfigError, match="outside"):
        pack_codes(np.array([0]), 1)
    with pytest.raises(ConfigError, match="outside"):
        pack_codes(np.array([-2]), 2)
    with pytest.raises(ConfigError, match="integer"):
        pack_codes(np.array([0.5]), 4)
    with pytest.raises(ConfigError, match="need"):
        unpack_codes(b"\x00", 4, 3)
    with pytest.raises(ConfigError, match="count"):
        unpack_codes(b"\x00", 4, -1)


# ----------------------------------------------------------------------------------------------- float16 scales


def fp16_scales(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` scales that are exactly float16 values, as `round_scales_to_fp16` leaves them."""
    return rng.uniform(1e-3, 2.0, n).astype(np.float16).astype(np.float32)


def test_float16_scales_round_trip_as_version_2(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ts = mixed_tensors()
    half = [
        Tensor.quantized(t.name, t.codes, fp16_scales(rng, t.shape[0]), t.bits, scale_bits=16)
        if t.is_quantized and t.bits % 2
        else t
        for t in ts
    ]
    data = encode(half)
    assert struct.unpack_from("<H", data, 8)[0] == 2  # a float16 scale makes it version 2
    assert struct.unpack_from("<H", encode(ts), 8)[0] == 1  # float32 scales only: still version 1
    f = read_esq(write_esq(tmp_path / "h.esq", half))
    assert list(f.tensors.values()) == half
    for (pos, _), t in zip(entry_positions(data), half, strict=True):
        got = f.tensors[t.name]
        if not t.is_quantized:
            continue
        assert got.scale_bits == t.scale_bits and got.scales.dtype == np.float32
        assert np.array_equal(got.dequantize().view(np.uint32), t.dequantize().view(np.uint32))
        sc_at, sc_len = struct.unpack_from("<QQ", data, pos + 8)
        assert sc_len == t.scale_bits // 8 * t.shape[0]
        want = t.scales.astype("<f2" if t.scale_bits == 16 else "<f4").tobytes()
        assert data[sc_at : sc_at + sc_len] == want
        assert got.payload_bytes() == math.ceil(t.size * t.bits / 8) + t.scale_bits // 8 * t.shape[0]
    small = [len(b"".join(packed._encode(t, None, alignment=8))) for t in (half, ts)]
    assert small[0] < small[1]  # float16 scales take less room (at alignment 64 the padding may hide it)
    assert "float16 scales" in repr(half[0])


def test_float16_scales_are_checked() -> None:
    codes = np.array([[1, -1], [0, 1]])
    with pytest.raises(ConfigError, match=r"channel 1 is 0.1.*not exactly a float16.*round_scales_to_fp16"):
        Tensor.quantized("w", codes, np.array([0.5, 0.1]), 2, scale_bits=16)
    with pytest.raises(ConfigError, match="scale_bits must be 16 or 32, got 8"):
        Tensor.quantized("w", codes, np.array([0.5, 0.25]), 2, scale_bits=8)
    with pytest.raises(ConfigError, match="raw float tensor has no scales"):
        Tensor(name="b", shape=(2,), bits=32, values=np.zeros(2, np.float32), scale_bits=16)
    t = Tensor.quantized("w", codes, np.array([0.5, 0.25]), 2, scale_bits=16)
    assert t != Tensor.quantized("w", codes, np.array([0.5, 0.25]), 2)  # same weights, other storage
    good = encode([t, Tensor.raw("b", np.array([0.5, -1.0]))])
    w_scales = struct.unpack_from("<Q", good, field_at(good, 0, "scales_offset"))[0]
    for data, match in [
        (mutate(good, w_scales, struct.pack("<e", 0.0)), "scale of output channel 0 is 0.0"),
        (mutate(good, w_scales + 2, struct.pack("<e", float("inf"))), "channel 1 is inf"),
        (
            mutate(good, field_at(good, 0, "scales_length"), struct.pack("<Q", 6)),
            r"4 \(float32\) or 2 \(float16\)",
        ),
        (mutate(good, 8, b"\x01\x00"), r"expected 4 \(float32\) x 2 output channels \(format version 1\)"),
    ]:
        with pytest.raises(PackedFormatError, match=match):
            read_esq_bytes(data, source="half.esq")


# ----------------------------------------------------------------------------------------------- the documented layout


def test_file_layout_matches_the_doc() -> None:
    ts = mixed_tensors()
    data = encode(ts, {"k": "v"})
    h = {k: struct.unpack_from(fmt, data, off)[0] for k, (off, fmt) in HEADER_FIELDS.items()}
    assert h["magic"] == b"EDGESERQ" and h["version"] == 1 and h["flags"] == 0 and h["header_size"] == 96
    assert h["file_size"] == len(data) and h["tensor_count"] == len(ts) and h["alignment"] == 64
    assert h["table_offset"] == 96 and h["metadata_offset"] == 96 + h["table_length"]
    meta_end = h["metadata_offset"] + h["metadata_length"]
    assert json.loads(data[h["metadata_offset"] : meta_end]) == {"k": "v"}
    assert data[64:96] == hashlib.sha256(data[:64] + bytes(32) + data[96:]).digest()
    for (pos, ndim), t in zip(entry_positions(data), ts, strict=True):
        e = {k: struct.unpack_from(fmt, data, pos + off)[0] for k, (off, fmt) in ENTRY_FIELDS.items()}
        dims = struct.unpack_from(f"<{ndim}Q", data, pos + 40)
        name = data[pos + 40 + 8 * ndim : pos + 40 + 8 * ndim + e["name_length"]].decode()
        assert (name, dims, e["bits"]) == (t.name, t.shape, t.bits)
        payload = data[e["payload_offset"] : e["payload_offset"] + e["payload_length"]]
        assert e["payload_offset"] % 64 == 0 and e["payload_offset"] >= meta_end
        if t.is_quantized:
            assert e["scales_offset"] % 64 == 0
            sc = np.frombuffer(data, "<f4", dims[0], e["scales_offset"])
            assert e["scales_length"] == 4 * dims[0] and np.array_equal(sc, t.scales)
            assert payload == naive_pack(t.codes, t.bits)
        else:
            assert e["scales_offset"] == e["scales_length"] == 0
            assert payload == t.values.astype("<f4" if t.bits == 32 else "<f2").tobytes()


def test_doc_hexdump_is_what_the_writer_produces() -> None:
    text = DOC.read_text(encoding="utf-8")
    m = re.search(r"<!-- hexdump:tiny -->\s*```text\n(.*?)```", text, re.DOTALL)
    assert m, "docs/packed-format.md lost its tiny-file hex dump"
    data = encode(tiny_tensors(), {"model": "tiny"})
    assert m.group(1).strip() == hexdump(data)
    assert hashlib.sha256(data).hexdigest() in text


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_size_bound_on_the_laq_mlp(tmp_path: Path, bits: int) -> None:
    ts = mlp_tensors(bits)
    assert sum(t.size for t in ts) == 167_047
    ideal = sum(t.size * t.bits for t in ts) / 8 + sum(4 * t.shape[0] for t in ts if t.is_quantized)
    size = write_esq(tmp_path / f"mlp{bits}.esq", ts, metadata={"model": "laq_mlp"}).stat().st_size
    assert ideal <= size <= ideal * 1.05 + 2048, (size, ideal)
    assert read_esq(tmp_path / f"mlp{bits}.esq").tensors == {t.name: t for t in ts}


# ----------------------------------------------------------------------------------------------- the writer


@pytest.mark.parametrize(
    ("codes", "bits", "match"),
    [
        ([2, 0], 2, "outside -1..1"),
        ([-2, 0], 2, "outside -1..1"),
        ([0, 1], 1, "outside -1 or \\+1"),
        ([-128, 0], 8, "outside -127..127"),
        ([300, 0], 8, "outside"),
        ([4, 0], 3, "outside -3..3"),
        ([0.5, 1], 4, "whole numbers"),
    ],
)
def test_writer_rejects_codes_out_of_range(codes: list, bits: int, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Tensor.quantized("w", np.array(codes), np.ones(2), bits)


def test_writer_rejects_bad_tensors_and_arguments(tmp_path: Path) -> None:
    ok = np.array([[1, 0], [0, -1]])
    cases = [
        (lambda: Tensor.quantized("w", ok, np.ones(3), 2), "3 scales for 2 output channels"),
        (lambda: Tensor.quantized("w", ok, np.array([1.0, 0.0]), 2), "channel 1 .* finite, > 0"),
        # finite, but 2-bit codes (qmax 1) are fine while 8-bit codes x 3e38 would overflow to inf
        (
            lambda: Tensor.quantized(
                "w", np.full((2, 3), 100, np.int8), np.array([1.0, 3e38], np.float32), 8
            ),
            "channel 1 .* scale \\* max\\|code\\|",
        ),
        (lambda: Tensor.quantized("w", ok, np.array([-1.0, 1.0]), 2), "channel 0"),
        (lambda: Tensor.quantized("w", ok, np.array([np.nan, 1.0]), 2), "channel 0"),
        (lambda: Tensor.quantized("w", ok, np.array([1e-50, 1.0]), 2), "channel 0"),  # 0 in float32
        (lambda: Tensor.quantized("w", ok, np.ones(2), 0), "bits"),
        (lambda: Tensor.quantized("w", ok, np.ones(2), 9), "bits"),
        (lambda: Tensor.quantized("w", ok, np.ones(2), 16), "bits"),
        (lambda: Tensor.quantized("w", ok, np.ones(2), True), "bits"),
        (lambda: Tensor.quantized("w", np.int8(1), np.ones(1), 2), "at least 1 dimension"),
        (lambda: Tensor.quantized("w", np.zeros((0, 3)), np.ones(0), 2), ">= 1"),
        (lambda: Tensor.raw("b", np.ones(3), bits=8), "16 or 32"),
        (lambda: Tensor.raw("b", np.array([1.0, np.inf])), "finite"),
        (lambda: Tensor.raw("b", np.array([1e6]), bits=16), "finite"),  # overflows float16
        (lambda: Tensor.raw("b", np.array(["a"])), "real numbers"),
        (lambda: Tensor.raw("", np.ones(3)), "1..255"),
        (lambda: Tensor.raw("x" * 256, np.ones(3)), "1..255"),
        (lambda: Tensor.raw("a\x00b", np.ones(3)), "NUL"),
        (lambda: Tensor.raw("b", np.ones((1,) * 9)), "at most 8"),
        (lambda: Tensor(name="b", shape=(2,), bits=32, values=np.ones(2)), "float32"),  # float64 given
        (
            lambda: write_esq(tmp_path / "d.esq", [Tensor.raw("b", np.ones(2))] * 2),
            "duplicate tensor name 'b'",
        ),
        (lambda: write_esq(tmp_path / "d.esq", ["b"]), "not a Tensor"),
        (lambda: write_esq(tmp_path / "d.esq", [], metadata={"x": float("nan")}), "JSON"),
        (lambda: write_esq(tmp_path / "d.esq", [], metadata={"x": object()}), "JSON"),
        (lambda: write_esq(tmp_path / "d.esq", [], metadata=[1]), "dict"),
        (lambda: write_esq(tmp_path / "d.esq", Tensor.raw("b", np.ones(2))), "sequence of Tensor"),
        (lambda: write_esq(tmp_path, []), "is a directory"),
        (lambda: read_esq_bytes(b"", expected_sha256="xyz"), "64 hex"),
        (lambda: read_esq(tmp_path / "d.esq", max_bytes=0), "max_bytes"),
    ]
    for make, match in cases:
        with pytest.raises(ConfigError, match=match):
            make()
    assert list(tmp_path.iterdir()) == []  # nothing was written


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "model.esq"
    write_esq(target, tiny_tensors())
    before = target.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(packed.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_esq(target, mixed_tensors())
    monkeypatch.undo()
    assert target.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.esq"]  # and no temp file is left

    def broken_fsync(fd: int) -> None:
        raise OSError("I/O error")

    monkeypatch.setattr(packed.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="I/O error"):
        write_esq(tmp_path / "new.esq", mixed_tensors())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.esq"]


# ----------------------------------------------------------------------------------------------- the reader


def mutate(data: bytes, at: int, value: bytes, fix: bool = True) -> bytes:
    """`data` with `value` written at `at`, digest recomputed when `fix`."""
    b = bytearray(data)
    b[at : at + len(value)] = value
    return refix_digest(b) if fix else bytes(b)


def field_at(data: bytes, tensor: int, field: str) -> int:
    """Byte offset of a table entry field of the `tensor`-th entry."""
    pos, _ = entry_positions(data)[tensor]
    return pos + ENTRY_FIELDS[field][0]


def test_reader_errors_name_the_source_and_the_problem(tmp_path: Path) -> None:
    good = encode(tiny_tensors(), {"model": "tiny"})
    w_payload = struct.unpack_from("<Q", good, field_at(good, 0, "payload_offset"))[0]
    w_scales = struct.unpack_from("<Q", good, field_at(good, 0, "scales_offset"))[0]
    b_payload = struct.unpack_from("<Q", good, field_at(good, 1, "payload_offset"))[0]
    meta_at = struct.unpack_from("<Q", good, 48)[0]
    cases = [
        (b"", "empty file"),
        (b"RIFF\x00\x00\x00\x00WAVE", "not an .esq file"),
        (good[:50], "truncated: the header needs 96 bytes but the file has 50"),
        (good[:300], "truncated: the header says the file has 392 bytes but it has 300"),
        (good + b"\x00", "trailing data"),
        (mutate(good, 8, b"\x03\x00"), "unsupported format version 3"),
        (
            mutate(good, field_at(good, 0, "scales_length"), struct.pack("<Q", 4)),
            "scales length 4 bytes, expected 4 (float32) x 2 output channels (format version 1)",
        ),
        (mutate(good, 10, b"\x01\x00"), "unknown flags"),
        (mutate(good, 28, b"\x03\x00\x00\x00"), "alignment 3"),
        (mutate(good, 24, struct.pack("<I", 10**6)), "tensor count 1000000 cannot fit"),
        (mutate(good, w_payload, b"\x4c", fix=False), "content digest mismatch"),
        (mutate(good, w_scales, struct.pack("<f", 0.0)), "tensor 'w': scale of output channel 0 is 0.0"),
        (mutate(good, w_scales + 4, struct.pack("<f", float("nan"))), "channel 1 is nan"),
        (mutate(good, w_scales, struct.pack("<f", -0.5)), "finite, > 0"),
        (mutate(good, w_payload, b"\x4e"), "code -2 at flat index 0 is outside -1..1 for 2-bit"),
        (
            mutate(good, b_payload, struct.pack("<f", float("inf"))),
            "tensor 'b': value at flat index 0 is inf",
        ),
        (
            mutate(good, field_at(good, 0, "payload_length"), struct.pack("<Q", 3)),
            "payload length 3 does not match",
        ),
        (
            mutate(good, field_at(good, 0, "payload_offset"), struct.pack("<Q", 9000)),
            "truncated: tensor 'w' payload ends at byte 9002 but the file has 392 bytes",
        ),
        (mutate(good, field_at(good, 0, "payload_offset"), struct.pack("<Q", b_payload)), "overlaps"),
        (
            mutate(good, field_at(good, 0, "payload_offset"), struct.pack("<Q", w_payload + 4)),
            "not a multiple of the alignment 64",
        ),
        (mutate(good, field_at(good, 0, "payload_offset"), struct.pack("<Q", 0)), "inside the header"),
        (mutate(good, field_at(good, 0, "bits"), b"\x09"), "bits 9 is not one of"),
        (mutate(good, field_at(good, 0, "ndim"), b"\x09"), "9 dimensions"),
        (mutate(good, field_at(good, 0, "reserved"), b"\x01"), "reserved"),
        (
            mutate(good, field_at(good, 1, "scales_length"), struct.pack("<Q", 8)),
            "raw float32 tensor has a scales block",
        ),
        (mutate(good, field_at(good, 1, "name_length") + 40 + 8, b"w"), "duplicate tensor name 'w'"),
        (mutate(good, field_at(good, 1, "name_length") + 40 + 8, b"\xff"), "not valid UTF-8"),
        (mutate(good, field_at(good, 0, "name_length"), struct.pack("<H", 0)), "name length 0"),
        (mutate(good, meta_at, b"["), "metadata is not valid JSON"),
        (mutate(good, meta_at, b"[1,2,3,4,5,6,78]"), "must be a JSON object, got a JSON list"),
        (mutate(good, meta_at + 1, b"\xc3"), "metadata is not valid UTF-8"),
        (mutate(good, w_payload + 8, b"\x01"), "padding before tensor 'b' payload"),
        (mutate(good, w_payload + 1, b"\xd6"), "tensor 'w': code -2 at flat index 4"),
    ]
    for data, match in cases:
        with pytest.raises(PackedFormatError) as err:
            read_esq_bytes(data, source="tiny.esq")
        assert str(err.value).startswith("tiny.esq: "), str(err.value)
        assert match in str(err.value), (match, str(err.value))
    for meta in (b'{"a":1e999}', b'{"a":"\\ud800"}', b"[" * 100_000 + b"]" * 100_000, b'{"a":1,"a":2}'):
        data = bytearray(good[:96]) + meta  # no tensors: the metadata follows the header
        struct.pack_into("<QI", data, 16, len(data), 0)  # file_size, tensor_count
        struct.pack_into("<QQQ", data, 40, 0, 96, len(meta))  # table_length, metadata_offset, metadata_length
        with pytest.raises(PackedFormatError, match="tiny.esq: metadata"):
            read_esq_bytes(refix_digest(data), source="tiny.esq")
    # expected_sha256: of the whole file
    sha = hashlib.sha256(good).hexdigest()
    assert read_esq_bytes(good, expected_sha256=sha.upper()).sha256 == sha
    with pytest.raises(PackedFormatError, match="sha256 mismatch: expected 0{64}"):
        read_esq_bytes(good, expected_sha256="0" * 64)


def test_reader_errors_for_the_doc_promised_cases_name_the_file(tmp_path: Path) -> None:
    """docs/packed-format.md, "What a reader must check" (rules 2, 5, 6, 7, 9): wrong magic, a bit width out of
    range, a table / metadata / block pointing past the end and truncation each raise PackedFormatError whose
    message starts with the path of the file."""
    good = encode(tiny_tensors(), {"model": "tiny"})
    scales_at = field_at(good, 0, "scales_offset")
    cases = [
        (b"EDGESERX" + good[8:], "not an .esq file: it starts with b'EDGESERX'"),
        (good[:7], "truncated"),
        (good[:95], "truncated: the header needs 96 bytes but the file has 95"),
        (good[:-1], "truncated: the header says the file has 392 bytes but it has 391"),
        (mutate(good, 40, struct.pack("<Q", 10**6)), "truncated: tensor table ends at byte 1000096"),
        (mutate(good, 56, struct.pack("<Q", 10**5)), "truncated: metadata ends at byte 100216"),
        (mutate(good, scales_at, struct.pack("<Q", 9000)), "truncated: tensor 'w' scales ends at byte 9008"),
        (mutate(good, scales_at, struct.pack("<Q", 2**64 - 64)), "tensor 'w' scales ends at byte"),
    ]
    cases += [
        (mutate(good, field_at(good, 0, "bits"), bytes([b])), f"tensor 'w': bits {b} is not one of 1..8")
        for b in (0, 12, 17, 33, 255)
    ]
    path = tmp_path / "bad.esq"
    for data, match in cases:
        path.write_bytes(data)
        with pytest.raises(PackedFormatError) as err:
            read_esq(path)
        assert str(err.value).startswith(f"{path}: "), str(err.value)
        assert match in str(err.value), (match, str(err.value))


def test_integers_that_do_not_fit_a_binary64_are_refused(tmp_path: Path) -> None:
    """docs/packed-format.md, Metadata: a reader rejects, and the writer never writes, numbers that do not fit in
    a binary64. An integer literal without an exponent is such a number once it rounds past DBL_MAX (a C reader's
    strtod gives inf), so 10**400 must be refused on both sides, not only 1e999."""
    big = 10**400
    for meta in ({"a": big}, {"a": [1, -big]}, {"a": {"b": big}}):
        with pytest.raises(ConfigError, match="binary64"):
            write_esq(tmp_path / "m.esq", [], metadata=meta)
    assert not (tmp_path / "m.esq").exists()
    good = encode([], {})
    for literal in (str(big), str(-big), str(2**1024)):
        meta = b'{"a":[0,' + literal.encode() + b"]}"
        data = bytearray(good[:96]) + meta  # no tensors: the metadata follows the header
        struct.pack_into("<QI", data, 16, len(data), 0)  # file_size, tensor_count
        struct.pack_into("<QQQ", data, 40, 0, 96, len(meta))  # table_length, metadata_offset, metadata_length
        with pytest.raises(PackedFormatError, match="^m.esq: metadata .*binary64"):
            read_esq_bytes(refix_digest(data), source="m.esq")
    fits = {"a": 2**1023, "b": -(2**1000), "c": 2**53 + 1}  # finite as a binary64 (rounded, like any number)
    assert read_esq(write_esq(tmp_path / "ok.esq", [], metadata=fits)).metadata == fits


def test_nonzero_padding_bits_after_the_last_code() -> None:
    data = encode([Tensor.quantized("w", np.array([1, -1, 1]), np.ones(3), 2)])
    at = struct.unpack_from("<Q", data, field_at(data, 0, "payload_offset"))[0]
    assert data[at] == 0b00_01_11_01
    with pytest.raises(PackedFormatError, match="padding bits after the last code"):
        read_esq_bytes(mutate(data, at, bytes([0b01_01_11_01])))


def test_read_esq_file_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PackedFormatError, match="no such file"):
        read_esq(tmp_path / "missing.esq")
    with pytest.raises(PackedFormatError, match="is a directory"):
        read_esq(tmp_path)
    path = write_esq(tmp_path / "m.esq", mlp_tensors(2))
    size = path.stat().st_size

    def no_open(*a: object, **k: object) -> None:
        raise AssertionError("opened a file larger than max_bytes")

    monkeypatch.setattr(os, "open", no_open)  # edge_ser.fileio opens with os.open
    with pytest.raises(PackedFormatError, match=f"{size} bytes is more than the limit of 1000 bytes"):
        read_esq(path, max_bytes=1000)
    monkeypatch.undo()
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(PackedFormatError, match=rf"^{re.escape(str(path))}: truncated"):
        read_esq(path)
    if Path("/dev/zero").exists():
        with pytest.raises(PackedFormatError, match="not a regular file"):
            read_esq("/dev/zero")


def test_huge_dims_do_not_allocate() -> None:
    good = encode(mixed_tensors())
    tracemalloc.start()
    try:
        for dim in (2**31, 2**40, 2**63, 2**64 - 1):
            for pos, ndim in entry_positions(good):
                if ndim == 0:
                    continue
                b = bytearray(good)
                struct.pack_into("<Q", b, pos + 40, dim)  # dims[0]
                bits = b[pos + 2]
                size = dim * math.prod(struct.unpack_from(f"<{ndim}Q", b, pos + 40)[1:])
                if (
                    size * bits // 8 < 2**64
                ):  # a consistent payload length, so only the bounds check can stop it
                    struct.pack_into("<Q", b, pos + 32, (size * bits + 7) // 8)
                if bits <= 8 and 4 * dim < 2**64:
                    struct.pack_into("<Q", b, pos + 16, 4 * dim)
                with pytest.raises(PackedFormatError):
                    read_esq_bytes(refix_digest(b))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * len(good) + (1 << 20), peak


# ----------------------------------------------------------------------------------------------- fuzzing

FUZZ_CASES: dict[str, int] = {}
BASES = {
    "tiny": encode(tiny_tensors(), {"model": "tiny"}),
    "mixed": encode(mixed_tensors(), {"labels": ["angry", "happy"], "n": 3}),
    "empty": encode([], {}),
}
BASE_NAMES = sorted(BASES)


def outcome(data: bytes, name: str, **kw: object) -> str:
    """Read fuzzed bytes: a valid EsqFile or PackedFormatError naming the source, fast; anything else fails."""
    FUZZ_CASES[name] = FUZZ_CASES.get(name, 0) + 1
    try:
        f = read_esq_bytes(data, source="fuzz.esq", **kw)
    except PackedFormatError as e:
        assert str(e).startswith("fuzz.esq: ")
        result = "error"
    else:
        assert f.sha256 == hashlib.sha256(data).hexdigest() and isinstance(f.metadata, dict)
        for t in f.tensors.values():
            assert t.dequantize().shape == t.shape
        result = "ok"
    return result


def test_truncation_at_every_position() -> None:
    for name, data in BASES.items():
        for n in range(len(data)):
            assert outcome(data[:n], "truncate-all") == "error", (name, n)
            assert outcome(refix_digest(data[:n]), "truncate-all") == "error", (name, n)


if given is not None:
    FUZZ = {
        "deadline": None,
        "derandomize": True,
        "database": None,
        "suppress_health_check": list(HealthCheck),
    }
    base = st.sampled_from(BASE_NAMES)
    flips = st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=8)
    INTERESTING = [
        0,
        1,
        2,
        7,
        8,
        9,
        63,
        64,
        65,
        95,
        96,
        97,
        255,
        256,
        2**16 - 1,
        2**31 - 1,
        2**31,
        2**32 - 1,
        2**32,
        2**40,
        2**48,
        2**63 - 1,
        2**63,
        2**64 - 1,
    ]

    def field_list(data: bytes) -> list[tuple[int, str]]:
        """(offset, struct format) of every numeric header and table field of `data`, dims included."""
        out = [(off, fmt) for off, fmt in HEADER_FIELDS.values() if fmt != "8s"]
        for pos, ndim in entry_positions(data):
            out += [(pos + off, fmt) for off, fmt in ENTRY_FIELDS.values()]
            out += [(pos + 40 + 8 * k, "<Q") for k in range(ndim)]
        return out

    def data_regions(data: bytes) -> list[tuple[int, int]]:
        """(start, stop) of the metadata and of every scales and payload block of `data`."""
        meta_at, meta_len = struct.unpack_from("<QQ", data, 48)
        out = [(meta_at, meta_at + meta_len)]
        for pos, _ in entry_positions(data):
            sc_at, sc_len, pl_at, pl_len = struct.unpack_from("<QQQQ", data, pos + 8)
            out += [(sc_at, sc_at + sc_len)] if sc_len else []
            out.append((pl_at, pl_at + pl_len))
        return out

    FIELDS = {name: field_list(data) for name, data in BASES.items()}
    REGIONS = {name: data_regions(data) for name, data in BASES.items()}

    @settings(max_examples=600, **FUZZ)
    @given(base, st.floats(0, 1, exclude_max=True))
    def test_fuzz_truncation(name: str, frac: float) -> None:
        data = BASES[name]
        cut = data[: int(frac * len(data))]
        assert outcome(cut, "truncate") == "error"

    @settings(max_examples=600, **FUZZ)
    @given(base, flips)
    def test_fuzz_byte_flips_are_caught(name: str, changes: list[tuple[int, int]]) -> None:
        b = bytearray(BASES[name])
        for at, x in changes:
            b[at % len(b)] ^= x
        if bytes(b) != BASES[name]:
            assert outcome(bytes(b), "flip") == "error"

    @settings(max_examples=1200, **FUZZ)
    @given(base, flips)
    def test_fuzz_byte_flips_digest_fixed(name: str, changes: list[tuple[int, int]]) -> None:
        b = bytearray(BASES[name])
        for at, x in changes:
            b[at % len(b)] ^= x
        outcome(refix_digest(b), "flip-fixed")

    @settings(max_examples=800, **FUZZ)
    @given(st.sampled_from(["tiny", "mixed"]), st.data())
    def test_fuzz_data_flips_digest_fixed(name: str, data: st.DataObject) -> None:
        """Flips inside scales, codes, raw values and metadata: the value checks, not the digest, must catch them."""
        b = bytearray(BASES[name])
        for _ in range(data.draw(st.integers(1, 3))):
            start, stop = data.draw(st.sampled_from(REGIONS[name]))
            at = data.draw(st.integers(start, stop - 1))
            b[at] ^= data.draw(
                st.sampled_from([0x01, 0x02, 0x40, 0x7F, 0x80, 0xC0, 0xFF]) | st.integers(1, 255)
            )
        outcome(refix_digest(b), "data-flip")

    @settings(max_examples=1500, **FUZZ)
    @given(base, st.data())
    def test_fuzz_lying_fields(name: str, data: st.DataObject) -> None:
        b = bytearray(BASES[name])
        n_fields = data.draw(st.integers(1, 3))
        for _ in range(n_fields):
            off, fmt = data.draw(st.sampled_from(FIELDS[name]))
            width = struct.calcsize(fmt)
            (old,) = struct.unpack_from(fmt, b, off)
            value = data.draw(
                st.one_of(
                    st.sampled_from(INTERESTING),
                    st.integers(0, 2 ** (8 * width) - 1),
                    st.integers(-130, 130).map(lambda d, old=old: old + d),
                )
            )
            struct.pack_into(fmt, b, off, value % 2 ** (8 * width))
        fixed = data.draw(st.booleans())
        result = outcome(refix_digest(b) if fixed else bytes(b), "fields")
        if not fixed and bytes(b) != BASES[name]:
            assert result == "error"

    @settings(max_examples=300, **FUZZ)
    @given(st.sampled_from(["tiny", "mixed"]), st.data())
    def test_fuzz_huge_dims(name: str, data: st.DataObject) -> None:
        b = bytearray(BASES[name])
        entries = [e for e in entry_positions(BASES[name]) if e[1] > 0]
        pos, ndim = data.draw(st.sampled_from(entries))
        k = data.draw(st.integers(0, ndim - 1))
        dim = data.draw(st.sampled_from([2**20, 2**32, 2**40, 2**56, 2**63, 2**64 - 1]))
        struct.pack_into("<Q", b, pos + 40 + 8 * k, dim)
        if data.draw(st.booleans()):  # make the payload length agree, so only the file bounds stop it
            dims = struct.unpack_from(f"<{ndim}Q", b, pos + 40)
            need = (math.prod(dims) * b[pos + 2] + 7) // 8
            struct.pack_into("<Q", b, pos + 32, need % 2**64)
        assert outcome(refix_digest(b), "huge-dims") == "error"

    @settings(max_examples=300, **FUZZ)
    @given(st.binary(min_size=0, max_size=200), st.booleans())
    def test_fuzz_wrong_magic_and_garbage_headers(blob: bytes, keep_magic: bool) -> None:
        data = (b"EDGESERQ\x01\x00\x00\x00" + blob) if keep_magic else blob
        outcome(refix_digest(data), "garbage")
        if blob[:8] != b"EDGESERQ":
            assert outcome(blob + BASES["tiny"][8:], "garbage") == "error"

    @settings(max_examples=500, **FUZZ)
    @given(base, st.integers(0, 10**6), st.integers(0, 80), st.binary(max_size=80))
    def test_fuzz_splices(name: str, at: int, cut: int, insert: bytes) -> None:
        data = BASES[name]
        at %= len(data) + 1
        spliced = data[:at] + insert + data[at + cut :]
        outcome(refix_digest(spliced), "splice")
        outcome(spliced, "splice", expected_sha256=hashlib.sha256(data).hexdigest())

    def test_fuzz_case_count() -> None:
        """At least a few thousand mutations ran (only checked when the whole fuzz suite ran)."""
        wanted = {"truncate", "flip", "flip-fixed", "data-flip", "fields", "huge-dims", "garbage", "splice"}
        if not wanted <= FUZZ_CASES.keys():
            pytest.skip("only part of the fuzz suite ran")
        assert sum(FUZZ_CASES.values()) >= 4000, FUZZ_CASES

else:  # pragma: no cover

    def test_fuzz_needs_hypothesis() -> None:
        pytest.skip("hypothesis is not installed: pip install hypothesis (the reader fuzz tests need it)")


def test_doc_c_sketch_reads_float16_scales(tmp_path: Path) -> None:
    """The doc's C `rdf16` gives, for every one of the 65,536 float16 bit patterns, numpy's float32 value."""
    import shutil
    import subprocess

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler on this machine (apt-get install gcc)")
    m = re.search(r"```c\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert m, "docs/packed-format.md lost its C sketch"
    main = (
        "#include <stdio.h>\nint main(void) { for (uint32_t h = 0; h < 65536; h++) { uint8_t b[2] = "
        "{(uint8_t)h, (uint8_t)(h >> 8)}; float f = rdf16(b); uint32_t u; memcpy(&u, &f, 4); "
        'printf("%u\\n", u); } return 0; }\n'
    )
    (tmp_path / "sketch.c").write_text(m.group(1) + main)
    subprocess.run(
        [cc, "-std=c99", "-O1", "-w", "-o", str(tmp_path / "sketch"), str(tmp_path / "sketch.c")], check=True
    )
    got = np.array(
        subprocess.run([str(tmp_path / "sketch")], capture_output=True, text=True, check=True).stdout.split(),
        dtype=np.uint64,
    )
    want = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32).view(np.uint32)
    finite = np.isfinite(np.arange(65536, dtype=np.uint16).view(np.float16))
    np.testing.assert_array_equal(got[finite], want[finite].astype(np.uint64))
    assert np.array_equal(np.isinf(got.astype(np.uint32).view(np.float32)), np.isinf(want.view(np.float32)))


@pytest.mark.parametrize("bits", [1, 2, 6, 8])
def test_no_scale_gives_an_infinite_weight(bits: int) -> None:
    """The limit FLT_MAX / qmax rounds up in float32 for qmax 31 and 127: a scale at it passed and dequantized to
    inf at 6 and 8 bits. The rule is now that qmax x scale in float32 is finite."""
    qmax = 1 if bits == 1 else 2 ** (bits - 1) - 1
    edge = np.float32(np.finfo(np.float32).max) / np.float32(qmax)
    codes = [[qmax, -qmax]] if bits > 1 else [[1, -1]]
    with np.errstate(over="ignore"):  # the products may overflow: that is what is tested
        if np.isfinite(edge * np.float32(qmax)):
            assert np.all(np.isfinite(Tensor.quantized("w", codes, [edge], bits).dequantize()))
        else:
            with pytest.raises(ConfigError, match="scale of output channel 0"):
                Tensor.quantized("w", codes, [edge], bits)
        below = np.nextafter(edge, np.float32(0))
        while not np.isfinite(below * np.float32(qmax)):
            below = np.nextafter(below, np.float32(0))
    assert np.all(np.isfinite(Tensor.quantized("w", codes, [below], bits).dequantize()))
