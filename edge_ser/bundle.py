"""Model bundles: load, verify and write the unit of deployment (a directory or a `.tar` of its files).

A bundle holds `manifest.json`, `model.onnx` (the graph, with every float initializer declared as external data
in `weights.esq`) and `weights.esq` (the packed weights). The manifest says everything the device needs: labels,
feature spec, normalisation, bit plan, per-layer figures, accuracy, a copy of the graph's nodes (so the numpy
engine needs no onnx package) and the sha256 and size of every file. A bundle may also carry TFLite variants
of the model (`model_fp32.tflite`, ...), described by the manifest's optional `tflite` block. `load_bundle`
refuses anything that does not verify, with a `BundleError` that names the bundle, the file and what is wrong.

ONNX conventions checked here (the host exporter must follow them):

- every float initializer of `model.onnx` has `data_location = EXTERNAL`, `external_data` location
  `weights.esq` (offset/length are ignored: onnxruntime receives the values through
  `SessionOptions.add_external_initializers` and never opens the file), data type FLOAT, and dims equal to the
  shape of the tensor of the same name in `weights.esq`; `manifest.graph.initializers` lists exactly these
  names, and `weights.esq` holds exactly these tensors;
- small non-weight tensors that onnxruntime must see at graph-build time (Reshape's int64 `shape`: shape
  inference cannot read an external tensor) stay inline in `model.onnx` and are mirrored in
  `manifest.graph.constants` as `{"name": {"dtype": "int64", "shape": [2], "values": [1, -1]}}`;
- `manifest.graph.nodes` mirrors the ONNX nodes one to one: op type, inputs, outputs and the INT, FLOAT,
  STRING, INTS and FLOATS attributes.

`model.onnx` is read with a small protobuf reader below, so verification needs numpy and the standard library
only, on the device and on the host alike.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import os
import re
import shutil
import stat
import struct
import tarfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_ser.errors import BundleError, ConfigError, PackedFormatError
from edge_ser.features.spec import FeatureSpec
from edge_ser.packed import EsqFile, read_esq_bytes

if TYPE_CHECKING:
    from edge_ser.av_input import AVInputSpec
    from edge_ser.lms_input import LMSSpec
    from edge_ser.vision.face import FaceCropSpec

MANIFEST_SCHEMA = "edge-ser-bundle"
MANIFEST_SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
MODEL_NAME = "model.onnx"
WEIGHTS_NAME = "weights.esq"
REQUIRED_FILES = (MODEL_NAME, WEIGHTS_NAME)

MAX_FILE_BYTES = 512 << 20
"""Largest file a bundle may hold (512 MiB); a bigger tar member or file is refused before it is read."""
MAX_TOTAL_BYTES = 1 << 30
"""Largest sum of file sizes in one bundle (1 GiB)."""
MAX_MANIFEST_BYTES = 16 << 20
MAX_TAR_MEMBERS = 256
IO_DTYPES = ("float32",)
TFLITE_VARIANTS = ("fp32", "fp16", "int8")
"""TFLite variants a bundle may carry (manifest `tflite.variants`): float32, float16 weights, full int8."""
TFLITE_IO_DTYPES = ("float32", "int8")
CONSTANT_DTYPES = {"int64": np.int64, "float32": np.float32}

_SHA_RE = re.compile(r"[0-9a-f]{64}")
_ONNX_FLOAT, _ONNX_INT64 = 1, 7
_ONNX_DTYPE_NAMES = {1: "FLOAT", 2: "UINT8", 3: "INT8", 5: "INT16", 6: "INT32", 7: "INT64", 9: "BOOL", 10: "FLOAT16",
                     11: "DOUBLE", 16: "BFLOAT16"}  # fmt: skip


_JSON_NAMES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
}


def _json_kind(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(v), "number" if isinstance(v, (int, float)) else type(v).__name__
    )


def _short(v: Any, n: int = 60) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."


# --------------------------------------------------------------------------------------------------------------
# the Bundle
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Bundle:
    """A loaded (and, unless `verify=False`, verified) model bundle, held in memory.

    `files` maps each file listed in the manifest to its bytes; `manifest.json` itself is `manifest`.
    """

    root: Path
    """The directory or `.tar` it was loaded from."""
    manifest: dict[str, Any]
    labels: tuple[str, ...]
    feature_spec: FeatureSpec
    files: Mapping[str, bytes]
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def source(self) -> str:
        return str(self.root)

    @property
    def name(self) -> str:
        return str(self.manifest["model"]["name"])

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def graph(self) -> dict[str, Any]:
        return self.manifest["graph"]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(io_["name"] for io_ in self.manifest["model"]["inputs"])

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(io_["name"] for io_ in self.manifest["model"]["outputs"])

    @property
    def input_name(self) -> str:
        """Name of the (first) model input; `features` for laq_mlp."""
        return self.input_names[0]

    @property
    def input_shapes(self) -> tuple[tuple[int | None, ...], ...]:
        """Per input, its shape with None for a dynamic (batch) axis."""
        return tuple(
            tuple(d if isinstance(d, int) else None for d in io_["shape"])
            for io_ in self.manifest["model"]["inputs"]
        )

    @property
    def normalization(self) -> dict[str, Any] | None:
        return self.manifest.get("normalization")

    @property
    def normalized_input(self) -> str | None:
        """The input `normalization` applies to (None without normalization)."""
        return normalized_input(self.manifest)

    @property
    def av_input(self) -> AVInputSpec | None:
        """An audio-visual model's input spec (frames, face size, audio segments); None for other models."""
        from edge_ser.av_input import AVInputSpec

        av = self.manifest.get("av_input")
        return None if av is None else AVInputSpec.from_dict(av)

    @property
    def lms_input(self) -> LMSSpec | None:
        """A log-Mel patch model's LMSSpec (M, L, H, T); None for other models. The vote: `lms_vote`."""
        from edge_ser.lms_input import LMSSpec

        block = self.manifest.get("lms_input")
        if block is None:
            return None
        return LMSSpec.from_dict({k: v for k, v in block.items() if k != "vote"})

    @property
    def lms_vote(self) -> str:
        return str((self.manifest.get("lms_input") or {}).get("vote", "mean_prob"))

    @property
    def face_crop(self) -> FaceCropSpec | None:
        """How the device must crop faces for this model (the one training used); None without a faces input."""
        from edge_ser.vision.face import FaceCropSpec

        crop = self.manifest.get("face_crop")
        return None if crop is None else FaceCropSpec.from_dict(crop)

    def read(self, name: str) -> bytes:
        """The bytes of file `name` of the bundle (one listed in the manifest)."""
        try:
            return self.files[name]
        except KeyError:
            raise BundleError(
                f"bundle {self.source}: no file {name!r} (files: {sorted(self.files)})"
            ) from None

    def onnx_bytes(self) -> bytes:
        return self.read(MODEL_NAME)

    def weights(self) -> EsqFile:
        """`weights.esq`, parsed once."""
        if "weights" not in self._cache:
            self._cache["weights"] = read_esq_bytes(
                self.read(WEIGHTS_NAME), source=f"bundle {self.source}: {WEIGHTS_NAME}"
            )
        return self._cache["weights"]

    def dequantized(self) -> dict[str, np.ndarray]:
        """Every initializer of the graph as float32, dequantized once (shared by the engines)."""
        if "dequantized" not in self._cache:
            out = {}
            for name, t in self.weights().tensors.items():
                a = np.asarray(t.dequantize(), dtype=np.float32)
                if not a.flags.c_contiguous:  # (not np.ascontiguousarray: it turns 0-d scalars into 1-d)
                    a = a.copy(order="C")
                a.setflags(write=False)
                out[name] = a
            self._cache["dequantized"] = out
        return self._cache["dequantized"]

    def constants(self) -> dict[str, np.ndarray]:
        """The graph's inline constants (`manifest.graph.constants`), e.g. Reshape shapes, as arrays."""
        out = {}
        for name, c in (self.graph.get("constants") or {}).items():
            a = np.asarray(c["values"], dtype=CONSTANT_DTYPES[c["dtype"]]).reshape(c["shape"])
            a.setflags(write=False)
            out[name] = a
        return out

    def describe(self) -> str:
        acc = self.manifest.get("accuracy") or {}
        bits = (self.manifest.get("bitplan") or {}).get("average_bits")
        parts = [
            f"{self.name} from {self.source}",
            f"{self.num_classes} labels",
            "input "
            + " + ".join(f"{io_['name']} {list(io_['shape'])}" for io_ in self.manifest["model"]["inputs"]),
        ]
        if bits is not None:
            parts.append(f"{bits:g} bits/weight on average")
        if isinstance(acc.get("test"), (int, float)):
            parts.append(f"test accuracy {acc['test']:.3f} on {acc.get('dataset', '?')}")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"Bundle({self.describe()})"


# --------------------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------------------


def load_bundle(
    path: str | os.PathLike[str],
    *,
    verify: bool = True,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> Bundle:
    """Load a bundle from a directory or a `.tar` of its files, and verify it.

    The manifest's structure is always checked. With `verify=True` (the default) also the sha256 and byte count
    of every file, that `weights.esq` parses and holds exactly the graph's initializers at the bit widths of the
    bit plan, and that `model.onnx` matches the manifest's copy of the graph. Nothing is extracted to disk.

    Raises:
        BundleError: naming the bundle, the file and what is wrong (`PackedFormatError` for a bad .esq).
    """
    src = str(path)
    p = Path(path)
    limits = (int(max_file_bytes), int(max_total_bytes))
    if p.is_dir():
        manifest_bytes = _read_dir_file(p, MANIFEST_NAME, src, min(limits[0], MAX_MANIFEST_BYTES))
        manifest = _parse_manifest(manifest_bytes, src)
        names = _listed_names(manifest, src)
        files, total = {}, 0
        for name in names:
            data = _read_dir_file(p, name, src, limits[0])
            total += len(data)
            if total > limits[1]:
                raise BundleError(f"bundle {src}: files total more than {limits[1]} bytes; refusing to load")
            files[name] = data
    elif p.is_file():
        members = _read_tar(p, src, *limits)
        if MANIFEST_NAME not in members:
            raise BundleError(
                f"bundle {src}: {MANIFEST_NAME} is missing from the archive (members: {sorted(members)})"
            )
        manifest = _parse_manifest(members.pop(MANIFEST_NAME), src)
        names = _listed_names(manifest, src)
        files = {}
        for name in names:
            if name not in members:
                raise BundleError(
                    f"bundle {src}: {name}: listed in {MANIFEST_NAME} but missing from the archive"
                )
            files[name] = members[name]
    elif p.exists():
        raise BundleError(f"bundle {src}: not a directory or a .tar archive")
    else:
        raise BundleError(
            f"bundle {src}: does not exist (a bundle is a directory or a .tar made by the exporter)"
        )
    return _make_bundle(p, src, manifest, files, verify=verify)


def _make_bundle(root: Path, src: str, manifest: Any, files: dict[str, bytes], *, verify: bool) -> Bundle:
    spec = validate_manifest(manifest, source=src)
    if verify:
        for name, entry in manifest["files"].items():
            _verify_file(src, name, entry, files[name])
    bundle = Bundle(
        root=root,
        manifest=manifest,
        labels=tuple(manifest["labels"]),
        feature_spec=spec,
        files=MappingProxyType(dict(files)),
    )
    if verify:
        _verify_contents(bundle)
    return bundle


def _verify_file(src: str, name: str, entry: Mapping[str, Any], data: bytes) -> None:
    if len(data) != entry["bytes"]:
        raise BundleError(
            f"bundle {src}: {name}: size mismatch (manifest {entry['bytes']} bytes, file {len(data)} bytes): "
            "the file was truncated, modified or replaced"
        )
    sha = hashlib.sha256(data).hexdigest()
    if sha != entry["sha256"]:
        raise BundleError(
            f"bundle {src}: {name}: sha256 mismatch (manifest {entry['sha256'][:12]}..., file {sha[:12]}...): "
            "the file was modified or damaged"
        )


def _read_dir_file(root: Path, name: str, src: str, limit: int) -> bytes:
    fp = root / name
    try:
        st = os.lstat(fp)
    except FileNotFoundError:
        listed = "" if name == MANIFEST_NAME else f" (listed in {MANIFEST_NAME})"
        raise BundleError(f"bundle {src}: {name}: file is missing{listed}") from None
    except OSError as e:
        raise BundleError(f"bundle {src}: {name}: cannot be read: {e.strerror or e}") from e
    if stat.S_ISLNK(st.st_mode):
        raise BundleError(f"bundle {src}: {name}: is a symbolic link; a bundle holds regular files only")
    if not stat.S_ISREG(st.st_mode):
        raise BundleError(f"bundle {src}: {name}: is not a regular file")
    if st.st_size > limit:
        raise BundleError(f"bundle {src}: {name}: {st.st_size} bytes is more than the limit of {limit} bytes")
    try:
        with open(fp, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise BundleError(f"bundle {src}: {name}: cannot be read: {e.strerror or e}") from e
    if len(data) > limit:
        raise BundleError(f"bundle {src}: {name}: more than the limit of {limit} bytes")
    return data


def _read_tar(path: Path, src: str, max_file: int, max_total: int) -> dict[str, bytes]:
    """Top-level regular files of a tar, read into memory; anything else (links, folders, devices, '..') is refused."""
    out: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(path, mode="r:*") as tf:
            count = 0
            while True:
                m = tf.next()
                if m is None:
                    break
                count += 1
                if count > MAX_TAR_MEMBERS:
                    raise BundleError(
                        f"bundle {src}: more than {MAX_TAR_MEMBERS} archive members; refusing to load"
                    )
                raw = m.name
                name = raw.removeprefix("./")
                if m.isdir() and name.rstrip("/") in ("", "."):
                    continue  # the "." entry of `tar -C dir -cf b.tar .`
                if not name or name.startswith("/") or "/" in name or "\\" in name or name in (".", ".."):
                    raise BundleError(
                        f"bundle {src}: archive member {raw!r}: has a folder, absolute or parent path; "
                        "a bundle archive holds top-level files only"
                    )
                if "\x00" in name or len(name) > 255:
                    raise BundleError(f"bundle {src}: archive member {_short(raw)}: invalid file name")
                if m.issym() or m.islnk():
                    raise BundleError(
                        f"bundle {src}: archive member {raw!r}: is a link (to {m.linkname!r}); "
                        "a bundle archive holds regular files only"
                    )
                if not m.isreg():
                    raise BundleError(f"bundle {src}: archive member {raw!r}: is not a regular file")
                if name in out:
                    raise BundleError(f"bundle {src}: archive member {name!r}: appears more than once")
                limit = min(max_file, MAX_MANIFEST_BYTES) if name == MANIFEST_NAME else max_file
                if m.size > limit:
                    raise BundleError(
                        f"bundle {src}: archive member {name!r}: {m.size} bytes is more than the limit of "
                        f"{limit} bytes; refusing to read it"
                    )
                total += m.size
                if total > max_total:
                    raise BundleError(f"bundle {src}: archive members total more than {max_total} bytes")
                f = tf.extractfile(m)
                data = f.read(m.size) if f is not None else b""
                if len(data) != m.size:
                    raise BundleError(
                        f"bundle {src}: archive member {name!r}: truncated ({len(data)} of {m.size} bytes)"
                    )
                out[name] = data
    except BundleError:
        raise
    except (tarfile.TarError, EOFError) as e:
        raise BundleError(f"bundle {src}: not a readable .tar archive ({e})") from e
    except (OSError, ValueError, UnicodeError, OverflowError, struct.error, AttributeError, KeyError) as e:
        # tarfile and its decompressors raise these on damaged headers or payloads.
        raise BundleError(f"bundle {src}: damaged archive ({type(e).__name__}: {e})") from e
    return out


def _parse_manifest(data: bytes, src: str) -> Any:
    where = f"bundle {src}: {MANIFEST_NAME}"

    def no_constants(s: str) -> Any:
        raise ValueError(f"{s} is not valid JSON (numbers must be finite)")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for k, v in pairs:
            if k in d:
                raise ValueError(f"key {k!r} appears twice in one object")
            d[k] = v
        return d

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BundleError(f"{where}: not UTF-8 text ({e})") from e
    try:
        return json.loads(text, parse_constant=no_constants, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as e:
        raise BundleError(f"{where}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    except (ValueError, RecursionError) as e:
        raise BundleError(f"{where}: not valid JSON ({e})") from e


def _listed_names(manifest: Any, src: str) -> list[str]:
    """The files the manifest lists (checked well enough to read them; the rest is checked by validate_manifest)."""
    where = f"bundle {src}: {MANIFEST_NAME}"
    if not isinstance(manifest, dict):
        raise BundleError(f"{where}: must be a JSON object, got {_json_kind(manifest)}")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise BundleError(
            f"{where}: files: must be an object of file name -> {{sha256, bytes}}, got {_json_kind(files)}"
        )
    for name in files:
        _check_file_name(name, f"{where}: files")
    return list(files)


def _check_file_name(name: Any, where: str) -> None:
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..", MANIFEST_NAME)
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or len(name) > 255
    ):
        raise BundleError(
            f"{where}: {_short(name)} is not a valid bundle file name (top-level file name, not manifest.json)"
        )


# --------------------------------------------------------------------------------------------------------------
# manifest schema
# --------------------------------------------------------------------------------------------------------------


class _Checker:
    def __init__(self, src: str) -> None:
        self.where = f"bundle {src}: {MANIFEST_NAME}"

    def fail(self, path: str, what: str) -> BundleError:
        return BundleError(f"{self.where}: {path}: {what}")

    def get(
        self, d: Mapping[str, Any], key: str, path: str, kind: type | tuple[type, ...], required: bool = True
    ) -> Any:
        if key not in d:
            if required:
                raise self.fail(path + key, "is missing")
            return None
        v = d[key]
        if v is None and not required:
            return None
        if not isinstance(v, kind) or (isinstance(v, bool) and bool not in _as_tuple(kind)):
            names = " or ".join(_JSON_NAMES.get(t, t.__name__) for t in _as_tuple(kind))
            raise self.fail(path + key, f"must be {names}, got {_json_kind(v)} {_short(v)}")
        return v

    def number(self, v: Any, path: str, *, lo: float | None = None, positive: bool = False) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.fail(path, f"must be a finite number, got {_short(v)}")
        if lo is not None and v < lo:
            raise self.fail(path, f"must be >= {lo}, got {v}")
        if positive and v <= 0:
            raise self.fail(path, f"must be > 0, got {v}")
        return float(v)

    def integer(self, v: Any, path: str, lo: int | None = None, hi: int | None = None) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(path, f"must be an integer, got {_json_kind(v)} {_short(v)}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self.fail(path, f"must be between {lo} and {hi}, got {v}")
        return v

    def name(self, v: Any, path: str) -> str:
        if not isinstance(v, str) or not v or len(v) > 1024:
            raise self.fail(path, f"must be a non-empty string, got {_short(v)}")
        return v

    def io_list(self, d: Mapping[str, Any], key: str, path: str) -> list[dict[str, Any]]:
        lst = self.get(d, key, path, list)
        if not lst:
            raise self.fail(path + key, "must list at least one tensor")
        names = set()
        for i, io_ in enumerate(lst):
            p = f"{path}{key}[{i}]"
            if not isinstance(io_, dict):
                raise self.fail(p, f"must be an object {{name, shape, dtype}}, got {_json_kind(io_)}")
            nm = self.name(io_.get("name"), p + ".name")
            if nm in names:
                raise self.fail(p + ".name", f"{nm!r} appears twice")
            names.add(nm)
            shape = self.get(io_, "shape", p + ".", list)
            if not 1 <= len(shape) <= 8:
                raise self.fail(p + ".shape", f"must have 1 to 8 axes, got {len(shape)}")
            for j, dim in enumerate(shape):
                if dim is None or (isinstance(dim, str) and dim):
                    continue
                self.integer(dim, f"{p}.shape[{j}]", 1, 1 << 31)
            dtype = self.get(io_, "dtype", p + ".", str)
            if dtype not in IO_DTYPES:
                raise self.fail(p + ".dtype", f"{dtype!r} is not supported (supported: {list(IO_DTYPES)})")
        return lst


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def validate_manifest(manifest: Any, *, source: str = "<manifest>") -> FeatureSpec:
    """Check a manifest against schema version 1; return its FeatureSpec. Raises BundleError naming the field."""
    c = _Checker(source)
    if not isinstance(manifest, dict):
        raise BundleError(f"{c.where}: must be a JSON object, got {_json_kind(manifest)}")
    schema = manifest.get("schema")
    if schema != MANIFEST_SCHEMA:
        raise c.fail(
            "schema", f"is {_short(schema)}, expected {MANIFEST_SCHEMA!r}: not an edge-ser bundle manifest"
        )
    version = c.integer(manifest.get("schema_version"), "schema_version")
    if version != MANIFEST_SCHEMA_VERSION:
        newer = (
            " (made by a newer edge-ser: upgrade edge-ser on this device)"
            if version > MANIFEST_SCHEMA_VERSION
            else ""
        )
        raise c.fail(
            "schema_version",
            f"{version} is not supported: this edge-ser reads schema version {MANIFEST_SCHEMA_VERSION}{newer}",
        )
    for key in ("edge_ser_version", "created"):
        c.get(manifest, key, "", str, required=False)

    model = c.get(manifest, "model", "", dict)
    c.name(model.get("name"), "model.name")
    inputs = c.io_list(model, "inputs", "model.")
    outputs = c.io_list(model, "outputs", "model.")

    labels = c.get(manifest, "labels", "", list)
    if not labels:
        raise c.fail("labels", "must list at least one label")
    for i, lab in enumerate(labels):
        c.name(lab, f"labels[{i}]")
    dup = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dup:
        raise c.fail("labels", f"must be unique; repeated: {dup}")

    fs = c.get(manifest, "feature_spec", "", dict)
    try:
        spec = FeatureSpec.from_dict(fs)
        dim = spec.dim
    except ConfigError as e:
        raise c.fail("feature_spec", str(e)) from e
    except (TypeError, ValueError, ArithmeticError) as e:
        raise c.fail("feature_spec", f"invalid value ({type(e).__name__}: {e})") from e

    # shapes against labels and feature spec
    out_shape = outputs[0]["shape"]
    if out_shape[-1] != len(labels):
        raise c.fail(
            "model.outputs[0].shape",
            f"last axis is {_short(out_shape[-1])} but there are {len(labels)} labels: labels and model do not match",
        )
    for i, io_ in enumerate(inputs):
        shp = io_["shape"]
        if len(shp) == 2 and shp[-1] != dim:
            raise c.fail(
                f"model.inputs[{i}].shape",
                f"a feature-vector input of {_short(shp[-1])} values, but feature_spec gives {dim}-d vectors",
            )

    norm = c.get(manifest, "normalization", "", dict, required=False)
    if norm is not None:
        mean = c.get(norm, "mean", "normalization.", list)
        std = c.get(norm, "std", "normalization.", list)
        c.get(norm, "in_graph", "normalization.", bool)
        if len(mean) != len(std) or not mean:
            raise c.fail(
                "normalization",
                f"mean and std must be non-empty and equally long ({len(mean)} vs {len(std)})",
            )
        for i, v in enumerate(mean):
            c.number(v, f"normalization.mean[{i}]")
        for i, v in enumerate(std):
            c.number(v, f"normalization.std[{i}]", positive=True)
        c.get(norm, "input", "normalization.", str, required=False)
        target = normalized_input(manifest)
        names = [io_["name"] for io_ in inputs]
        if target not in names:
            raise c.fail("normalization.input", f"{_short(target)} is not a model input ({names})")
        if not norm["in_graph"]:
            last = inputs[names.index(target)]["shape"][-1]
            if len(mean) not in (1, last):
                raise c.fail(
                    "normalization",
                    f"{len(mean)} values cannot normalise input {target!r} ({last} per row)",
                )

    _validate_av_input(c, manifest, inputs, spec)
    _validate_lms_input(c, manifest, inputs)

    plan = c.get(manifest, "bitplan", "", dict, required=False)
    if plan is not None:
        c.get(plan, "method", "bitplan.", str, required=False)
        bits = c.get(plan, "bits", "bitplan.", dict, required=False) or {}
        for k, b in bits.items():
            c.integer(b, f"bitplan.bits[{k!r}]", 1, 32)
        if "average_bits" in plan:
            c.number(plan["average_bits"], "bitplan.average_bits", lo=0)

    layers = c.get(manifest, "layers", "", list, required=False)
    for i, layer in enumerate(layers or []):
        if not isinstance(layer, dict):
            raise c.fail(f"layers[{i}]", f"must be an object, got {_json_kind(layer)}")
        c.name(layer.get("name"), f"layers[{i}].name")
        c.get(layer, "op", f"layers[{i}].", str, required=False)
        for key in ("params", "bytes", "flops"):  # null: not known for this layer
            if layer.get(key) is not None:
                c.integer(layer[key], f"layers[{i}].{key}", 0, 1 << 62)
        if layer.get("bits") is not None:
            c.integer(layer["bits"], f"layers[{i}].bits", 1, 32)

    acc = c.get(manifest, "accuracy", "", dict, required=False)
    for key in ("test", "val"):
        if acc is not None and acc.get(key) is not None:
            c.number(acc[key], f"accuracy.{key}", lo=0)

    _validate_graph(c, manifest, inputs, outputs)

    files = c.get(manifest, "files", "", dict)
    for name, entry in files.items():
        _check_file_name(name, f"{c.where}: files")
        if not isinstance(entry, dict):
            raise c.fail(f"files[{name!r}]", f"must be an object {{sha256, bytes}}, got {_json_kind(entry)}")
        sha = entry.get("sha256")
        if not isinstance(sha, str) or not _SHA_RE.fullmatch(sha):
            raise c.fail(f"files[{name!r}].sha256", f"must be 64 lower-case hex digits, got {_short(sha)}")
        c.integer(entry.get("bytes"), f"files[{name!r}].bytes", 0, 1 << 62)
    for name in REQUIRED_FILES:
        if name not in files:
            raise c.fail("files", f"does not list {name!r}; a bundle needs {list(REQUIRED_FILES)}")
    _validate_tflite(c, manifest, inputs, files)
    return spec


def normalized_input(manifest: Mapping[str, Any]) -> str | None:
    """Name of the input the manifest's `normalization` applies to: `normalization.input`, else the first."""
    norm = manifest.get("normalization")
    if norm is None:
        return None
    name = norm.get("input")
    return name if name is not None else manifest["model"]["inputs"][0]["name"]


def _validate_av_input(c: _Checker, manifest: dict[str, Any], inputs: list[Any], spec: FeatureSpec) -> None:
    """The audio-visual blocks: `av_input` (AVInputSpec: frames, face size, segments and the audio front end)
    and `face_crop` (FaceCropSpec); the model's "faces" / "audio" inputs must have the shapes they give."""
    from edge_ser.av_input import AVInputSpec
    from edge_ser.vision.face import FaceCropSpec

    av = c.get(manifest, "av_input", "", dict, required=False)
    names = {io_["name"]: io_["shape"] for io_ in inputs}
    if av is None:
        if "faces" in names:
            raise c.fail("av_input", "is missing: a model with a 'faces' input needs its AVInputSpec")
        if "face_crop" in manifest:
            raise c.fail("face_crop", "without av_input: only an audio-visual bundle has a face crop")
        return
    try:
        av_spec = AVInputSpec.from_dict(av)
    except ConfigError as e:
        raise c.fail("av_input", str(e)) from e
    except (TypeError, ValueError, ArithmeticError) as e:
        raise c.fail("av_input", f"invalid value ({type(e).__name__}: {e})") from e
    if av_spec.feature_spec != spec:
        raise c.fail(
            "av_input.feature_spec", "differs from the manifest's feature_spec (they must be the same)"
        )
    known = [n for n in names if n in av_spec.shapes]
    if not known:
        raise c.fail("av_input", f"the model has no 'faces' or 'audio' input (inputs: {list(names)})")
    for n in known:
        shape = names[n]
        if [d if isinstance(d, int) else None for d in shape[1:]] != list(av_spec.shapes[n]):
            raise c.fail(
                f"model.inputs[{list(names).index(n)}].shape",
                f"input {n!r} is {_short(shape)}, but av_input gives [batch, {', '.join(map(str, av_spec.shapes[n]))}]",
            )
    crop = c.get(manifest, "face_crop", "", dict, required="faces" in names)
    if crop is not None:
        try:
            crop_spec = FaceCropSpec.from_dict(crop)
        except ConfigError as e:
            raise c.fail("face_crop", str(e)) from e
        except (TypeError, ValueError) as e:
            raise c.fail("face_crop", f"invalid value ({type(e).__name__}: {e})") from e
        if crop_spec.size != av_spec.face_size:
            raise c.fail("face_crop.size", f"{crop_spec.size} but av_input.face_size is {av_spec.face_size}")


def _validate_lms_input(c: _Checker, manifest: dict[str, Any], inputs: list[Any]) -> None:
    """The `lms_input` block of a log-Mel patch model (squeezenet_lms): an LMSSpec (+ the vote), whose patch
    shape [1, M, T] the model's "lms" input must have."""
    from edge_ser.lms_input import VOTES, LMSSpec

    block = c.get(manifest, "lms_input", "", dict, required=False)
    if block is None:
        return
    d = dict(block)
    vote = d.pop("vote", "mean_prob")
    if vote not in VOTES:
        raise c.fail("lms_input.vote", f"{_short(vote)} is not one of {list(VOTES)}")
    try:
        spec = LMSSpec.from_dict(d)
    except ConfigError as e:
        raise c.fail("lms_input", str(e)) from e
    except (TypeError, ValueError, ArithmeticError) as e:
        raise c.fail("lms_input", f"invalid value ({type(e).__name__}: {e})") from e
    shapes = {io_["name"]: io_["shape"] for io_ in inputs}
    if "lms" not in shapes:
        raise c.fail("lms_input", f"the model has no 'lms' input (inputs: {list(shapes)})")
    got = [d if isinstance(d, int) else None for d in shapes["lms"][1:]]
    if got != list(spec.patch_shape):
        raise c.fail(
            f"model.inputs[{list(shapes).index('lms')}].shape",
            f"'lms' is {_short(shapes['lms'])}, but lms_input gives [batch, {', '.join(map(str, spec.patch_shape))}]",
        )


_ATTR_SCALARS = (int, float, str)


def _validate_graph(c: _Checker, manifest: dict[str, Any], inputs: list[Any], outputs: list[Any]) -> None:
    g = c.get(manifest, "graph", "", dict)
    c.integer(g.get("opset"), "graph.opset", 1, 1000)
    g_in = c.io_list(g, "inputs", "graph.")
    g_out = c.io_list(g, "outputs", "graph.")
    for what, a, b in (("inputs", inputs, g_in), ("outputs", outputs, g_out)):
        if [(x["name"], x["shape"]) for x in a] != [(x["name"], x["shape"]) for x in b]:
            raise c.fail(f"graph.{what}", f"do not match model.{what}")
    inits = c.get(g, "initializers", "graph.", list)
    for i, nm in enumerate(inits):
        c.name(nm, f"graph.initializers[{i}]")
    if len(set(inits)) != len(inits):
        raise c.fail("graph.initializers", "names must be unique")
    consts = c.get(g, "constants", "graph.", dict, required=False) or {}
    for nm, const in consts.items():
        p = f"graph.constants[{nm!r}]"
        if not isinstance(const, dict):
            raise c.fail(p, f"must be an object {{dtype, shape, values}}, got {_json_kind(const)}")
        dt = c.get(const, "dtype", p + ".", str)
        if dt not in CONSTANT_DTYPES:
            raise c.fail(p + ".dtype", f"{dt!r} is not supported ({sorted(CONSTANT_DTYPES)})")
        shape = c.get(const, "shape", p + ".", list)
        for j, dim in enumerate(shape):
            c.integer(dim, f"{p}.shape[{j}]", 0, 1 << 20)
        vals = c.get(const, "values", p + ".", list)
        if len(vals) != math.prod(shape) or len(vals) > 1 << 16:
            raise c.fail(p + ".values", f"{len(vals)} values for shape {shape}")
        for j, v in enumerate(vals):
            if dt == "int64":
                c.integer(v, f"{p}.values[{j}]", -(1 << 62), 1 << 62)
            else:
                c.number(v, f"{p}.values[{j}]")
        if nm in inits:
            raise c.fail(p, "is also listed in graph.initializers")

    defined = {x["name"] for x in g_in} | set(inits) | set(consts)
    nodes = c.get(g, "nodes", "graph.", list)
    if not nodes:
        raise c.fail("graph.nodes", "must list at least one node")
    for i, node in enumerate(nodes):
        p = f"graph.nodes[{i}]"
        if not isinstance(node, dict):
            raise c.fail(p, f"must be an object {{op, inputs, outputs, attrs}}, got {_json_kind(node)}")
        op = c.name(node.get("op"), p + ".op")
        p = f"{p} ({op})"
        c.get(node, "domain", p + ".", str, required=False)
        n_in = c.get(node, "inputs", p + ".", list)
        n_out = c.get(node, "outputs", p + ".", list)
        if not n_out:
            raise c.fail(p + ".outputs", "must name at least one output")
        for j, nm in enumerate(n_in):
            if not isinstance(nm, str):
                raise c.fail(f"{p}.inputs[{j}]", f"must be a string, got {_short(nm)}")
            if nm and nm not in defined:
                raise c.fail(
                    f"{p}.inputs[{j}]",
                    f"{nm!r} is not a graph input, initializer, constant or an output of an earlier node",
                )
        for j, nm in enumerate(n_out):
            if not isinstance(nm, str):
                raise c.fail(f"{p}.outputs[{j}]", f"must be a string, got {_short(nm)}")
            if nm and nm in defined:
                raise c.fail(f"{p}.outputs[{j}]", f"{nm!r} is already defined (each name is assigned once)")
            if nm:
                defined.add(nm)
        attrs = c.get(node, "attrs", p + ".", dict, required=False) or {}
        for k, v in attrs.items():
            ok = isinstance(v, _ATTR_SCALARS) or (
                isinstance(v, list) and len(v) <= 4096 and all(isinstance(x, _ATTR_SCALARS) for x in v)
            )
            if not ok or (isinstance(v, float) and not math.isfinite(v)):
                raise c.fail(
                    f"{p}.attrs[{k!r}]", f"must be a number, string or list of them, got {_short(v)}"
                )
    for x in g_out:
        if x["name"] not in defined:
            raise c.fail("graph.outputs", f"{x['name']!r} is not produced by any node")


def _validate_tflite(c: _Checker, manifest: dict[str, Any], inputs: list[Any], files: dict[str, Any]) -> None:
    """The optional `tflite` block: TFLite variants of the model, each a file listed in `files`.

    {"normalization_in_graph": false,
     "variants": {"int8": {"file": "model_int8.tflite",
                           "inputs": {"faces": {"dtype": "int8", "scale": 0.0039, "zero_point": -128},
                                      "audio": {"dtype": "int8", "scale": 0.03, "zero_point": -3}},
                           "output": {"dtype": "int8", "scale": 0.14, "zero_point": 12}}, "fp32": ...}}

    `inputs` has one entry per model input (`model.inputs`), keyed by its name; the TFLite model's input
    tensors carry the same names. With `normalization_in_graph: false` the variants take the input named by
    `normalization.input` (default: the first) standardised, (x - mean) / std with the manifest's
    `normalization` (the engine applies it), and the other inputs as they are. An int8 tensor carries the scale
    and zero point of its affine quantization (real = (q - zero_point) * scale); a float32 one carries neither.
    """
    tfl = c.get(manifest, "tflite", "", dict, required=False)
    if tfl is None:
        return
    in_graph = c.get(tfl, "normalization_in_graph", "tflite.", bool)
    variants = c.get(tfl, "variants", "tflite.", dict)
    if not variants:
        raise c.fail("tflite.variants", f"must list at least one variant of {list(TFLITE_VARIANTS)}")
    names = [io_["name"] for io_ in inputs]
    for name, v in variants.items():
        p = f"tflite.variants[{name!r}]"
        if name not in TFLITE_VARIANTS:
            raise c.fail(p, f"{_short(name)} is not a TFLite variant (variants: {list(TFLITE_VARIANTS)})")
        if not isinstance(v, dict):
            raise c.fail(p, f"must be an object {{file, inputs, output}}, got {_json_kind(v)}")
        fname = c.get(v, "file", p + ".", str)
        _check_file_name(fname, f"{c.where}: {p}.file")
        if fname not in files:
            raise c.fail(p + ".file", f"{fname!r} is not listed in files (every bundle file is listed there)")
        if fname in REQUIRED_FILES:
            raise c.fail(p + ".file", f"{fname!r} is not a .tflite model")
        if "input" in v:
            raise c.fail(
                p + ".input",
                "is the old single-input form; list every model input by name: "
                f'"inputs": {{{", ".join(repr(n) + ": {...}" for n in names)}}}',
            )
        ins = c.get(v, "inputs", p + ".", dict)
        missing, extra = [n for n in names if n not in ins], sorted(set(ins) - set(names))
        if missing or extra:
            raise c.fail(
                p + ".inputs",
                f"must have one entry per model input {names}; missing {missing}, not model inputs {extra}",
            )
        for n in names:
            _validate_tflite_tensor(c, ins[n], f"{p}.inputs[{n!r}]")
        _validate_tflite_tensor(c, c.get(v, "output", p + ".", dict), f"{p}.output")
    norm = manifest.get("normalization")
    target = normalized_input(manifest)
    if not in_graph and norm is not None and target in names:
        last = inputs[names.index(target)]["shape"][-1]
        if len(norm["mean"]) not in (1, last):
            raise c.fail(
                "tflite.normalization_in_graph",
                f"is false, but the {len(norm['mean'])} normalization values cannot normalise "
                f"{target!r} ({_short(last)} per row)",
            )


def _validate_tflite_tensor(c: _Checker, q: Any, p: str) -> None:
    """One TFLite input / output entry: {"dtype": "float32"} or {"dtype": "int8", "scale", "zero_point"}."""
    if not isinstance(q, dict):
        raise c.fail(p, f"must be an object {{dtype[, scale, zero_point]}}, got {_json_kind(q)}")
    dtype = c.get(q, "dtype", f"{p}.", str)
    if dtype not in TFLITE_IO_DTYPES:
        raise c.fail(f"{p}.dtype", f"{dtype!r} is not supported (supported: {list(TFLITE_IO_DTYPES)})")
    if dtype == "int8":
        if "scale" not in q or "zero_point" not in q:
            raise c.fail(p, "an int8 tensor needs its quantization: scale and zero_point")
        c.number(q["scale"], f"{p}.scale", positive=True)
        c.integer(q["zero_point"], f"{p}.zero_point", -128, 127)
    else:
        extra = sorted(k for k in ("scale", "zero_point") if k in q)
        if extra:
            raise c.fail(p, f"a {dtype} tensor is not quantized, but has {extra}")


# --------------------------------------------------------------------------------------------------------------
# contents: weights.esq and model.onnx against the manifest
# --------------------------------------------------------------------------------------------------------------


def _verify_contents(bundle: Bundle) -> None:
    src = bundle.source
    g = bundle.graph
    try:
        esq = bundle.weights()
    except PackedFormatError:
        raise
    except BundleError:
        raise
    except Exception as e:  # a reader bug must still surface as a bundle error naming the file
        raise PackedFormatError(
            f"bundle {src}: {WEIGHTS_NAME}: cannot be read ({type(e).__name__}: {e})"
        ) from e
    names = set(esq.tensors)
    inits = list(g["initializers"])
    missing = [n for n in inits if n not in names]
    if missing:
        raise BundleError(
            f"bundle {src}: {WEIGHTS_NAME}: initializer(s) {_short(missing, 200)} of the graph are missing "
            "from the weights file"
        )
    extra = sorted(names - set(inits))
    if extra:
        raise BundleError(
            f"bundle {src}: {WEIGHTS_NAME}: tensor(s) {_short(extra, 200)} are not initializers of the graph "
            "(manifest graph.initializers)"
        )
    plan_bits = (bundle.manifest.get("bitplan") or {}).get("bits") or {}
    for layer, b in plan_bits.items():
        t = esq.tensors.get(f"{layer}.weight")
        if t is not None and int(t.bits) != b:
            raise BundleError(
                f"bundle {src}: {WEIGHTS_NAME}: tensor '{layer}.weight' is stored at {t.bits} bits but the "
                f"bit plan gives layer {layer!r} {b} bits"
            )
    summary = read_onnx_summary(bundle.onnx_bytes(), source=f"bundle {src}: {MODEL_NAME}")
    check_onnx_matches(summary, g, {k: tuple(t.shape) for k, t in esq.tensors.items()}, source=src)


def check_onnx_matches(
    summary: Mapping[str, Any],
    graph: Mapping[str, Any],
    shapes: Mapping[str, tuple[int, ...]],
    *,
    source: str,
) -> None:
    """Check an ONNX summary (`read_onnx_summary`) against the manifest's graph and the weight shapes."""

    def fail(what: str) -> BundleError:
        return BundleError(f"bundle {source}: {MODEL_NAME}: {what}")

    if summary["opset"] != graph["opset"]:
        raise fail(f"opset {summary['opset']} but the manifest's graph says {graph['opset']}")
    inits = summary["initializers"]
    ext = [n for n, t in inits.items() if t["external"]]
    inline = [n for n, t in inits.items() if not t["external"]]
    for n in ext:
        t = inits[n]
        if t["location"] != WEIGHTS_NAME:
            raise fail(
                f"initializer {n!r}: external data location is {t['location']!r}, expected {WEIGHTS_NAME!r}"
            )
        if t["data_type"] != _ONNX_FLOAT:
            raise fail(
                f"initializer {n!r}: data type {_ONNX_DTYPE_NAMES.get(t['data_type'], t['data_type'])}, "
                "expected FLOAT (weights are dequantized to float32)"
            )
    for n in graph["initializers"]:
        if n in inits and not inits[n]["external"]:
            raise fail(
                f"initializer {n!r} is stored inline; weights must be external data in {WEIGHTS_NAME} "
                "(data_location EXTERNAL, location 'weights.esq')"
            )
    if sorted(ext) != sorted(graph["initializers"]):
        a, b = set(ext), set(graph["initializers"])
        raise fail(
            "external initializers do not match manifest graph.initializers "
            f"(only in model.onnx: {sorted(a - b)[:8]}, only in manifest: {sorted(b - a)[:8]})"
        )
    for n in ext:
        if tuple(inits[n]["dims"]) != tuple(shapes[n]):
            raise fail(
                f"initializer {n!r}: dims {list(inits[n]['dims'])} but {WEIGHTS_NAME} holds {list(shapes[n])}"
            )
    consts = graph.get("constants") or {}
    if sorted(inline) != sorted(consts):
        raise fail(
            f"inline initializers {sorted(inline)[:8]} do not match manifest graph.constants {sorted(consts)[:8]} "
            f"(weights must be external data in {WEIGHTS_NAME})"
        )
    for n in inline:
        t, cst = inits[n], consts[n]
        want = np.asarray(cst["values"], dtype=CONSTANT_DTYPES[cst["dtype"]]).reshape(cst["shape"])
        if t["values"] is None or t["values"].shape != want.shape or not np.array_equal(t["values"], want):
            raise fail(f"inline initializer {n!r} differs from manifest graph.constants[{n!r}]")
    g_in = [x["name"] for x in graph["inputs"]]
    real_in = [n for n in summary["inputs"] if n not in inits]
    if real_in != g_in:
        raise fail(f"graph inputs {real_in} but the manifest says {g_in}")
    g_out = [x["name"] for x in graph["outputs"]]
    if summary["outputs"] != g_out:
        raise fail(f"graph outputs {summary['outputs']} but the manifest says {g_out}")
    nodes, mnodes = summary["nodes"], graph["nodes"]
    if len(nodes) != len(mnodes):
        raise fail(f"{len(nodes)} nodes but the manifest's graph has {len(mnodes)}")
    for i, (n, m) in enumerate(zip(nodes, mnodes)):
        where = f"node {i} ({n['op']})"
        if n["op"] != m["op"] or n["domain"] not in ("", "ai.onnx"):
            raise fail(f"{where}: the manifest's graph.nodes[{i}] is {m['op']!r}")
        if n["inputs"] != list(m["inputs"]) or n["outputs"] != list(m["outputs"]):
            raise fail(
                f"{where}: inputs/outputs {n['inputs']} -> {n['outputs']} but the manifest says "
                f"{list(m['inputs'])} -> {list(m['outputs'])}"
            )
        mattrs = m.get("attrs") or {}
        oattrs = {k: v for k, v in n["attrs"].items() if v is not _UNMIRRORED}
        if sorted(oattrs) != sorted(k for k in mattrs if n["attrs"].get(k, None) is not _UNMIRRORED):
            raise fail(f"{where}: attributes {sorted(oattrs)} but the manifest has {sorted(mattrs)}")
        for k, v in oattrs.items():
            if not _attr_equal(v, mattrs[k]):
                raise fail(f"{where}: attribute {k}={_short(v)} but the manifest has {_short(mattrs[k])}")


def _attr_equal(a: Any, b: Any) -> bool:
    if isinstance(a, list) or isinstance(b, list):
        return (
            isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(map(_attr_equal, a, b))
        )
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, int) and isinstance(b, int):
        return int(a) == int(b)
    try:  # ONNX stores FLOAT attributes as float32
        return bool(np.float32(a) == np.float32(b))
    except (TypeError, ValueError, OverflowError):
        return False


# --------------------------------------------------------------------------------------------------------------
# a minimal ONNX (protobuf) reader: just what verification needs, numpy + stdlib only
# --------------------------------------------------------------------------------------------------------------


class _Unmirrored:
    def __repr__(self) -> str:
        return "<tensor/graph attribute>"


_UNMIRRORED = _Unmirrored()
"""Value of an ONNX attribute (TENSOR, GRAPH, ...) that the manifest cannot mirror; not compared."""


def _varint(buf: bytes, i: int, where: str) -> tuple[int, int]:
    result = shift = 0
    for _ in range(10):
        if i >= len(buf):
            raise BundleError(f"{where}: truncated protobuf (varint past the end)")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
    raise BundleError(f"{where}: malformed protobuf (varint longer than 10 bytes)")


def _fields(buf: bytes, where: str) -> Iterator[tuple[int, int, Any]]:
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i, where)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise BundleError(f"{where}: malformed protobuf (field number 0)")
        if wt == 0:
            v, i = _varint(buf, i, where)
        elif wt == 1 or wt == 5:
            size = 8 if wt == 1 else 4
            if i + size > n:
                raise BundleError(f"{where}: truncated protobuf (fixed field past the end)")
            v = buf[i : i + size]
            i += size
        elif wt == 2:
            length, i = _varint(buf, i, where)
            if i + length > n:
                raise BundleError(f"{where}: truncated protobuf (field of {length} bytes past the end)")
            v = buf[i : i + length]
            i += length
        else:
            raise BundleError(f"{where}: malformed protobuf (wire type {wt})")
        yield num, wt, v


def _str(v: Any, wt: int, where: str) -> str:
    if wt != 2:
        raise BundleError(f"{where}: malformed protobuf (string field with wire type {wt})")
    try:
        return bytes(v).decode("utf-8")
    except UnicodeDecodeError as e:
        raise BundleError(f"{where}: malformed protobuf (string is not UTF-8)") from e


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _ints(v: Any, wt: int, where: str) -> list[int]:
    """A repeated int64 field: one varint, or a packed run of them."""
    if wt == 0:
        return [_signed(v)]
    if wt != 2:
        raise BundleError(f"{where}: malformed protobuf (int field with wire type {wt})")
    out, i = [], 0
    while i < len(v):
        x, i = _varint(v, i, where)
        out.append(_signed(x))
    return out


def _floats(v: Any, wt: int, where: str) -> list[float]:
    if wt == 5:
        return [struct.unpack("<f", v)[0]]
    if wt != 2 or len(v) % 4:
        raise BundleError(f"{where}: malformed protobuf (float field)")
    return [float(x) for x in np.frombuffer(bytes(v), dtype="<f4")]


def read_onnx_summary(data: bytes, *, source: str = MODEL_NAME) -> dict[str, Any]:
    """Opset, inputs, outputs, initializers (dims, type, external location, small inline values) and nodes.

    Raises:
        BundleError: when `data` is not a well-formed ONNX ModelProto.
    """
    where = source
    graph = None
    opset = None
    for num, wt, v in _fields(data, where):
        if num == 7 and wt == 2:
            if graph is not None:
                raise BundleError(f"{where}: two graphs in one model")
            graph = v
        elif num == 8 and wt == 2:  # opset_import
            domain, version = "", None
            for n2, w2, v2 in _fields(v, where):
                if n2 == 1:
                    domain = _str(v2, w2, where)
                elif n2 == 2 and w2 == 0:
                    version = _signed(v2)
            if domain in ("", "ai.onnx"):
                opset = version
    if graph is None:
        raise BundleError(f"{where}: not an ONNX model (no graph)")
    if opset is None:
        raise BundleError(f"{where}: no opset_import for the default ONNX domain")
    inputs: list[str] = []
    outputs: list[str] = []
    inits: dict[str, dict[str, Any]] = {}
    nodes: list[dict[str, Any]] = []
    for num, wt, v in _fields(graph, where):
        if num == 1 and wt == 2:
            nodes.append(_read_node(v, where))
        elif num == 5 and wt == 2:
            t = _read_tensor(v, where)
            if t["name"] in inits:
                raise BundleError(f"{where}: initializer {t['name']!r} appears twice")
            inits[t["name"]] = t
        elif num in (11, 12) and wt == 2:
            name = ""
            for n2, w2, v2 in _fields(v, where):
                if n2 == 1:
                    name = _str(v2, w2, where)
            (inputs if num == 11 else outputs).append(name)
        elif num == 15:
            raise BundleError(f"{where}: sparse initializers are not supported")
    return {"opset": opset, "inputs": inputs, "outputs": outputs, "initializers": inits, "nodes": nodes}


def _read_node(buf: bytes, where: str) -> dict[str, Any]:
    node: dict[str, Any] = {"op": "", "domain": "", "name": "", "inputs": [], "outputs": [], "attrs": {}}
    for num, wt, v in _fields(buf, where):
        if num == 1:
            node["inputs"].append(_str(v, wt, where))
        elif num == 2:
            node["outputs"].append(_str(v, wt, where))
        elif num == 3:
            node["name"] = _str(v, wt, where)
        elif num == 4:
            node["op"] = _str(v, wt, where)
        elif num == 7:
            node["domain"] = _str(v, wt, where)
        elif num == 5 and wt == 2:
            name, value = _read_attr(v, where)
            node["attrs"][name] = value
    return node


def _read_attr(buf: bytes, where: str) -> tuple[str, Any]:
    name, atype = "", 0
    f = i = s = None
    floats: list[float] = []
    ints: list[int] = []
    strings: list[str] = []
    for num, wt, v in _fields(buf, where):
        if num == 1:
            name = _str(v, wt, where)
        elif num == 20 and wt == 0:
            atype = v
        elif num == 2:
            f = _floats(v, wt, where)[0] if wt == 5 else None
        elif num == 3 and wt == 0:
            i = _signed(v)
        elif num == 4:
            s = _str(v, wt, where) if wt == 2 else None
        elif num == 7:
            floats += _floats(v, wt, where)
        elif num == 8:
            ints += _ints(v, wt, where)
        elif num == 9:
            strings.append(_str(v, wt, where))
    value: Any = {1: f, 2: i, 3: s, 6: floats, 7: ints, 8: strings}.get(atype, _UNMIRRORED)
    if value is None:
        value = _UNMIRRORED
    return name, value


def _read_tensor(buf: bytes, where: str) -> dict[str, Any]:
    t: dict[str, Any] = {
        "name": "",
        "dims": [],
        "data_type": 0,
        "external": False,
        "location": None,
        "values": None,
    }
    raw = None
    int64_data: list[int] = []
    float_data: list[float] = []
    for num, wt, v in _fields(buf, where):
        if num == 1:
            t["dims"] += _ints(v, wt, where)
        elif num == 2 and wt == 0:
            t["data_type"] = v
        elif num == 4:
            float_data += _floats(v, wt, where)
        elif num == 7:
            int64_data += _ints(v, wt, where)
        elif num == 8:
            t["name"] = _str(v, wt, where)
        elif num == 9 and wt == 2:
            raw = bytes(v)
        elif num == 13 and wt == 2:
            key = value = ""
            for n2, w2, v2 in _fields(v, where):
                if n2 == 1:
                    key = _str(v2, w2, where)
                elif n2 == 2:
                    value = _str(v2, w2, where)
            if key == "location":
                t["location"] = value
        elif num == 14 and wt == 0:
            t["external"] = v == 1
    if any(d < 0 for d in t["dims"]):
        raise BundleError(f"{where}: initializer {t['name']!r} has negative dims {t['dims']}")
    if not t["external"]:
        count = math.prod(t["dims"])
        dtype = {_ONNX_FLOAT: "<f4", _ONNX_INT64: "<i8"}.get(t["data_type"])
        vals = None
        if dtype is not None and raw is not None and len(raw) == count * np.dtype(dtype).itemsize:
            vals = np.frombuffer(raw, dtype=dtype)
        elif t["data_type"] == _ONNX_INT64 and len(int64_data) == count:
            vals = np.asarray(int64_data, dtype=np.int64)
        elif t["data_type"] == _ONNX_FLOAT and len(float_data) == count:
            vals = np.asarray(float_data, dtype=np.float32)
        if vals is not None:
            t["values"] = vals.astype(vals.dtype.newbyteorder("=")).reshape(t["dims"])
    return t


# --------------------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------------------


def write_bundle(
    path: str | os.PathLike[str],
    *,
    manifest: Mapping[str, Any],
    files: Mapping[str, bytes],
    as_tar: bool = False,
) -> Path:
    """Write a bundle atomically: a directory, or a `.tar` when `as_tar` (or the path ends in `.tar`).

    `manifest["files"]` is filled with the sha256 and byte count of each of `files` (the caller's dict is not
    modified), then the whole bundle is verified in memory exactly as `load_bundle` will on the device, so a
    bundle that would be refused is never written. Files go to a temporary sibling first and are renamed into
    place, so a failure never leaves a half-written bundle. An existing bundle at `path` is replaced; any other
    existing file or non-empty folder is not touched (BundleError).

    Returns:
        The bundle's path.
    """
    p = Path(path)
    tar = bool(as_tar) or p.suffix == ".tar"
    src = str(p)
    m = copy.deepcopy(dict(manifest))
    contents: dict[str, bytes] = {}
    for name, data in files.items():
        _check_file_name(name, f"bundle {src}: write_bundle files")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise BundleError(f"bundle {src}: {name}: file contents must be bytes, got {type(data).__name__}")
        contents[name] = bytes(data)
    m["files"] = {
        name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        for name, data in sorted(contents.items())
    }
    try:
        text = json.dumps(m, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    except (TypeError, ValueError) as e:
        raise BundleError(f"bundle {src}: {MANIFEST_NAME}: cannot be written as JSON ({e})") from e
    manifest_bytes = text.encode("utf-8")
    # the device's checks, on the bytes about to be written
    _make_bundle(p, src, _parse_manifest(manifest_bytes, src), contents, verify=True)
    everything = {MANIFEST_NAME: manifest_bytes, **contents}

    p.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    if tar:
        if p.exists() and not p.is_file():
            raise BundleError(f"bundle {src}: exists and is not a file; refusing to replace it")
        tmp = p.parent / f".{p.name}.tmp-{tag}"
        try:
            with open(tmp, "wb") as f:
                f.write(_tar_bytes(everything))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        finally:
            tmp.unlink(missing_ok=True)
        return p

    if p.exists() or p.is_symlink():
        if p.is_symlink():
            raise BundleError(f"bundle {src}: is a symbolic link; write to the directory it points to")
        if not p.is_dir():
            raise BundleError(f"bundle {src}: exists and is not a directory; refusing to replace it")
        if any(p.iterdir()) and not (p / MANIFEST_NAME).is_file():
            raise BundleError(
                f"bundle {src}: exists and is not a bundle (no {MANIFEST_NAME}); refusing to replace it"
            )
    tmp = p.parent / f".{p.name}.tmp-{tag}"
    old = p.parent / f".{p.name}.old-{tag}"
    try:
        tmp.mkdir()
        for name, data in everything.items():
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        if p.exists():
            os.rename(p, old)
        try:
            os.rename(tmp, p)
        except OSError:
            if old.exists() and not p.exists():
                os.rename(old, p)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return p


def _tar_bytes(files: Mapping[str, bytes]) -> bytes:
    """A plain tar of top-level files, deterministic (fixed mtime, owner and mode), manifest first."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name in sorted(files, key=lambda n: (n != MANIFEST_NAME, n)):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tf.addfile(info, io.BytesIO(files[name]))
    return buf.getvalue()
