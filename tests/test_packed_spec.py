"""The shipped `.esq` files decoded by a second reader written from docs/packed-format.md alone.

This reader does not import the reference implementation's parsing code: it follows the document, section by
section, and the test compares what it decodes with `edge_ser.packed.read_esq`, tensor by tensor and bit for
bit. A change to the format that is not made in the document (or a document edit that no longer describes the
files) fails here. Sections used:

- "File structure", "Header", "Tensor table entry": the 96-byte header, the entries, their padding to 8 bytes;
- "The content digest": sha256 of the file with bytes 64..96 zeroed;
- "Data blocks": aligned, non-overlapping blocks after the metadata, every other byte zero;
- "Metadata": compact UTF-8 JSON object;
- "Bit order of quantized payloads": code i at stream bits i*b.., LSB first, byte k/8 bit k%8, sign extension;
- "Quantization" and "Version 2: float16 scales": w = float32(q) * s[c], one float32 multiply;
- "Size": payload_length = ceil(n * b / 8), scales 4 (or 2) bytes per output channel;
- docs/bundle.md, "manifest.json": `files` gives the `.esq` file's sha256 and byte count, `bitplan` its bits.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from edge_ser.packed import Tensor, read_esq, write_esq

ROOT = Path(__file__).resolve().parent.parent
BUNDLE_ESQ = sorted((ROOT / "bundles").glob("*/weights.esq"))


def align_up(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def decode_codes(payload: bytes, bits: int, n: int) -> np.ndarray:
    """'Bit order of quantized payloads': stream bit k is bit k % 8 of byte k / 8; code i = bits i*b.., LSB first."""
    stream = np.unpackbits(np.frombuffer(payload, np.uint8), bitorder="little")
    assert len(payload) == (n * bits + 7) // 8 and not stream[n * bits :].any()  # unused high bits are zero
    v = (stream[: n * bits].reshape(n, bits).astype(np.int64) << np.arange(bits)).sum(axis=1)
    if bits == 1:
        return np.where(v == 1, 1, -1)
    assert not (v == 2 ** (bits - 1)).any()  # -2^(b-1) is invalid
    return np.where(v >= 2 ** (bits - 1), v - 2**bits, v)


def spec_read(data: bytes) -> dict:
    """The file as {name: (bits, dims, float32 weights, scale bytes per channel or 0)}, plus 'metadata'."""
    assert data[:8] == b"EDGESERQ"
    version, flags, header_size, file_size, count, alignment = struct.unpack_from("<HHIQII", data, 8)
    table_at, table_len, meta_at, meta_len = struct.unpack_from("<QQQQ", data, 32)
    assert version in (1, 2) and flags == 0 and header_size == 96 and file_size == len(data)
    assert 8 <= alignment <= 65536 and alignment & (alignment - 1) == 0
    assert table_at == 96 and table_len % 8 == 0 and meta_at == table_at + table_len
    assert data[64:96] == hashlib.sha256(data[:64] + bytes(32) + data[96:]).digest()
    meta_raw = data[meta_at : meta_at + meta_len]
    metadata = json.loads(meta_raw.decode("utf-8"))
    assert meta_raw == json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode()  # compact
    covered = np.zeros(len(data), bool)
    covered[: meta_at + meta_len] = True
    blocks, out, pos = [], {"metadata": metadata}, table_at
    for _ in range(count):
        name_len, bits, ndim, reserved, sc_at, sc_len, pl_at, pl_len = struct.unpack_from(
            "<HBBIQQQQ", data, pos
        )
        dims = struct.unpack_from(f"<{ndim}Q", data, pos + 40)
        name = data[pos + 40 + 8 * ndim : pos + 40 + 8 * ndim + name_len].decode("utf-8")
        size = align_up(40 + 8 * ndim + name_len, 8)
        assert (
            reserved == 0 and not any(data[pos + 40 + 8 * ndim + name_len : pos + size]) and name not in out
        )
        pos += size
        n = math.prod(dims)
        assert pl_len == (n * bits + 7) // 8
        payload = data[pl_at : pl_at + pl_len]
        if bits in (16, 32):
            assert sc_at == sc_len == 0
            w = np.frombuffer(payload, "<f4" if bits == 32 else "<f2").astype(np.float32).reshape(dims)
            out[name] = (bits, dims, w, 0)
        else:
            assert 1 <= bits <= 8 and ndim >= 1
            per = sc_len // dims[0]
            assert (per == 4 or (version == 2 and per == 2)) and sc_len == per * dims[0]
            s = np.frombuffer(data[sc_at : sc_at + sc_len], "<f4" if per == 4 else "<f2").astype(np.float32)
            assert np.isfinite(s).all() and (s > 0).all()
            q = decode_codes(payload, bits, n).astype(np.float32).reshape(dims[0], -1)
            out[name] = (bits, dims, (q * s[:, None]).reshape(dims), per)  # one float32 multiply
            blocks.append((sc_at, sc_len))
        blocks.append((pl_at, pl_len))
    assert pos == table_at + table_len
    end = 0
    for at, length in sorted(blocks):
        assert at % alignment == 0 and at >= align_up(meta_at + meta_len, alignment) and at >= end
        end = at + length
        assert end <= len(data)
        covered[at:end] = True
    assert not np.frombuffer(data, np.uint8)[~covered].any()  # padding is zero
    return out


def assert_same(path: Path) -> dict:
    """Decode `path` by the document and by edge_ser.packed; every tensor must agree bit for bit."""
    mine = spec_read(path.read_bytes())
    ref = read_esq(path)
    assert ref.metadata == mine.pop("metadata")
    assert list(ref.tensors) == list(mine)  # file order
    for name, (bits, dims, w, scale_bytes) in mine.items():
        t = ref.tensors[name]
        assert (t.bits, t.shape) == (bits, tuple(dims)), name
        assert t.dequantize().dtype == np.float32 and t.dequantize().tobytes() == w.tobytes(), name
        if scale_bytes:
            assert t.scale_bits == 8 * scale_bytes, name
    return mine


def test_spec_reader_finds_the_bundles() -> None:
    assert len(BUNDLE_ESQ) >= 8, BUNDLE_ESQ


@pytest.mark.parametrize("path", BUNDLE_ESQ, ids=lambda p: p.parent.name)
def test_shipped_esq_decodes_as_the_doc_says(path: Path) -> None:
    mine = assert_same(path)
    manifest = json.loads((path.parent / "manifest.json").read_text())
    entry = manifest["files"]["weights.esq"]
    data = path.read_bytes()
    assert (entry["bytes"], entry["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    for layer, bits in manifest["bitplan"]["bits"].items():  # the BitPlan's bits are the stored ones
        assert mine[layer + ".weight"][0] == bits, layer


def test_version_2_file_decodes_as_the_doc_says(tmp_path: Path) -> None:
    """No shipped bundle is version 2 ("Version 2: float16 scales"), so one made by the writer: every bit width,
    float16 and float32 scales mixed, a float16 raw tensor and a scalar."""
    rng = np.random.default_rng(0)
    tensors = []
    for b in range(1, 9):
        qmax = 1 if b == 1 else 2 ** (b - 1) - 1
        codes = rng.choice([-1, 1], (3, 5, 7)) if b == 1 else rng.integers(-qmax, qmax + 1, (3, 5, 7))
        scales = rng.uniform(0.01, 2, 3).astype(np.float16).astype(np.float32)
        tensors.append(Tensor.quantized(f"q{b}", codes, scales, bits=b, scale_bits=16 if b % 2 else 32))
    tensors += [Tensor.raw("r16", np.array([[0.5, -2.0, 3.0]]), bits=16), Tensor.raw("s", np.array(1.5))]
    path = write_esq(tmp_path / "v2.esq", tensors, metadata={"a": [1, 2]}, alignment=8)
    assert struct.unpack_from("<H", path.read_bytes(), 8)[0] == 2
    mine = assert_same(path)
    for t in tensors:
        assert mine[t.name][2].tobytes() == t.dequantize().tobytes(), t.name
