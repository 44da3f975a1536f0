"""The bundle manifest (`manifest.json`), schema version 1: its names, limits and field-by-field check.

    {"schema": "edge-ser-bundle", "schema_version": 1, "edge_ser_version": "0.1.0", "created": "...",
     "model": {"name": "laq_mlp", "inputs": [{"name", "shape", "dtype"}], "outputs": [...]},
     "labels": [...], "feature_spec": {...},                 # the audio front end (edge_ser.features)
     "lms_input" | "av_input" + "face_crop": {...},          # the input kind's block(s), if not a clip vector
     "normalization": {"mean", "std", "in_graph", "input"},  # optional
     "speaker_norm": {"input", "prior_mean", "prior_var", "prior_weight", "var_floor"},  # optional (edge_ser.speaker)
     "pauses": {"keep_s", "measured_on"},  # optional (edge_ser.audio.pauses)
     "bitplan": {...}, "layers": [...], "flops": {...}, "accuracy": {...},
     "tflite": {"normalization_in_graph", "variants": {...}},   # optional TFLite variants
     "files": {"model.onnx": {"sha256", "bytes"}, "weights.esq": {...}, ...}}

The graph itself is model.onnx (`edge_ser.bundle.onnx_reader`); `model.inputs` / `outputs` must be its inputs
and outputs. Keys not listed here are allowed (a bundle may carry its own notes, e.g. `zoo_point`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from edge_ser.audio.pauses import check_block as check_pauses
from edge_ser.errors import BundleError
from edge_ser.features.spec import FeatureSpec
from edge_ser.inputs import kind_of
from edge_ser.limits import (
    MAX_FILE_BYTES,
    MAX_FILES,
    MAX_INPUT_VALUES,
    MAX_LABEL_CHARS,
    MAX_LABELS,
    MAX_LAYERS,
    MAX_MODEL_IO,
    MAX_NAME_CHARS,
    MAX_NORMALIZATION_VALUES,
    MAX_TOTAL_BYTES,
)
from edge_ser.schema import Checker, describe, short
from edge_ser.speaker import check_block as check_speaker_norm
from edge_ser.text import control_chars, describe_controls

MANIFEST_SCHEMA = "edge-ser-bundle"
MANIFEST_SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
MANIFEST_SUM_NAME = "manifest.sha256"
"""The manifest's own checksum, one `sha256sum` line (the manifest's `files` cover every other file)."""
SIDE_FILES = (MANIFEST_SUM_NAME, "SHA256SUMS")
"""Files a bundle may hold besides the manifest and the files it lists (SHA256SUMS: `edge-ser deploy`'s list)."""
MODEL_NAME = "model.onnx"
WEIGHTS_NAME = "weights.esq"
REQUIRED_FILES = (MODEL_NAME, WEIGHTS_NAME)
IO_DTYPES = ("float32",)
TFLITE_VARIANTS = ("fp32", "fp16", "int8")
"""TFLite variants a bundle may carry (manifest `tflite.variants`): float32, float16 weights, full int8."""
TFLITE_IO_DTYPES = ("float32", "int8")
TFLITE_PHASES = (1, 2, 4, 8)
"""Phase counts an int8 tensor of a TFLite variant may have (`phase_offsets`): powers of two, so a weight scale
divided by the phase count stays exact in float32."""


def tflite_io_entry(quant: tuple[float, int] | None, phases: int = 1) -> dict[str, Any]:
    """A `tflite.variants[v].inputs[n]` / `.output` entry: float32 (`quant` None) or int8 with its (scale,
    zero point) and, for phased int8, its copies (`phase_offsets`)."""
    if quant is None:
        return {"dtype": "float32"}
    e = {"dtype": "int8", "scale": float(quant[0]), "zero_point": int(quant[1])}
    return e if phases == 1 else {**e, "phases": int(phases)}


def phase_offsets(k: int) -> np.ndarray:
    """Grid offsets, in steps, of a tensor held as k phased int8 copies (manifest `"phases": k`).

    Copy p is quantized on the int8 grid shifted by o_p = (p + 0.5) / k - 0.5 steps, q_p = round(x / scale -
    o_p) + zero_point, and the copies sit side by side on the last axis ([..., k * n], copy-major). Their mean,
    mean_p (q_p - zero_point + o_p) * scale, is x on a grid k times finer, with the same range: int8 kernels
    carry a 9- (k = 2) or 10-bit (k = 4) activation. The offsets sum to 0, so a layer reading the copies with
    its weight divided by k needs no bias correction (docs/tflite.md, "phased int8")."""
    if k not in TFLITE_PHASES:
        raise ValueError(f"phases must be one of {TFLITE_PHASES}, got {k!r}")
    return ((np.arange(k) + 0.5) / k - 0.5).astype(np.float32)


ONNX_FP16_NAME = "model_fp16.onnx"
"""The optional fp16 copy of the graph for a GPU (manifest `onnx_fp16`): weights and activations float16,
inputs and outputs float32, weights inline (converters/export/onnx_fp16.py; docs/accelerators.md)."""

_SHA_RE = re.compile(r"[0-9a-f]{64}")


def validate_manifest(manifest: Any, *, source: str = "<manifest>") -> FeatureSpec:
    """Check a manifest against schema version 1; return its FeatureSpec. Raises BundleError naming the field."""
    c = Checker(f"bundle {source}: {MANIFEST_NAME}", error=BundleError)
    if not isinstance(manifest, dict):
        raise BundleError(f"{c.where}: must be a JSON object, got {describe(manifest)}")
    check_schema(c, manifest)
    model = c.get(manifest, "model", "", dict)
    _check_name(c, model.get("name"), "model.name", MAX_NAME_CHARS)
    inputs = _io_list(c, model, "inputs", "model")
    outputs = _io_list(c, model, "outputs", "model")
    labels = c.get(manifest, "labels", "", list)
    if not 1 <= len(labels) <= MAX_LABELS:
        c.problem("labels", f"must list 1 to {MAX_LABELS} labels, got {len(labels)}")
    for i, lab in enumerate(labels):
        _check_name(c, lab, f"labels[{i}]", MAX_LABEL_CHARS)
    c.unique(labels, "labels")
    spec = c.build("feature_spec", _feature_spec, c.get(manifest, "feature_spec", "", dict))
    out_shape = outputs[0]["shape"]
    if out_shape[-1] != len(labels):
        c.problem(
            "model.outputs[0].shape",
            f"last axis is {short(out_shape[-1])} but there are {len(labels)} labels: labels and model do not match",
        )
    kind_of(manifest, c).check_manifest(c, manifest, inputs)
    _check_normalization(c, manifest, inputs)
    check_speaker_norm(c, manifest, inputs)
    check_pauses(c, manifest)
    _check_bitplan_and_layers(c, manifest)
    acc = c.get(manifest, "accuracy", "", dict, required=False)
    for key in ("test", "val"):
        if acc is not None and acc.get(key) is not None:
            c.number(acc[key], f"accuracy.{key}", lo=0)
    files = _check_files(c, manifest)
    _check_tflite(c, manifest, inputs, files)
    _check_onnx_fp16(c, manifest, files)
    return spec


def _check_name(c: Checker, v: Any, path: str, max_len: int) -> None:
    """A label or name: text of at most `max_len` characters with no control characters (they reach terminals,
    log lines and the live page: a newline, an escape sequence or a bidi override would forge what they show)."""
    text = c.text(v, path, max_len=max_len)
    if text is not None and control_chars(v):
        c.problem(
            path, f"has control characters ({describe_controls(v)}); labels and names must be plain text"
        )


def _feature_spec(d: dict[str, Any]) -> FeatureSpec:
    spec = FeatureSpec.from_dict(d)
    spec.dim  # noqa: B018 - computing it checks the spec's sizes
    return spec


def normalized_input(manifest: Mapping[str, Any]) -> str | None:
    """Name of the input the manifest's `normalization` applies to: `normalization.input`, else the first."""
    norm = manifest.get("normalization")
    if norm is None:
        return None
    name = norm.get("input")
    return name if name is not None else manifest["model"]["inputs"][0]["name"]


def check_schema(c: Checker, manifest: dict[str, Any]) -> None:
    schema = manifest.get("schema")
    if schema != MANIFEST_SCHEMA:
        c.problem(
            "schema", f"is {short(schema)}, expected {MANIFEST_SCHEMA!r}: not an edge-ser bundle manifest"
        )
    version = c.integer(manifest.get("schema_version"), "schema_version")
    if version != MANIFEST_SCHEMA_VERSION:
        newer = (
            " (made by a newer edge-ser: upgrade edge-ser on this device)"
            if version > MANIFEST_SCHEMA_VERSION
            else ""
        )
        c.problem(
            "schema_version",
            f"{version} is not supported: this edge-ser reads schema version {MANIFEST_SCHEMA_VERSION}{newer}",
        )
    for key in ("edge_ser_version", "created"):
        c.get(manifest, key, "", str, required=False)


def _io_list(c: Checker, d: Mapping[str, Any], key: str, path: str) -> list[dict[str, Any]]:
    """`model.inputs` / `model.outputs`: named tensors with 1..8 axes (an int, or null / a name for an open
    axis) and a supported dtype."""
    p = f"{path}.{key}"
    lst = c.get(d, key, path, list)
    if not 1 <= len(lst) <= MAX_MODEL_IO:
        c.problem(p, f"must list 1 to {MAX_MODEL_IO} tensors, got {len(lst)}")
    for i, io_ in enumerate(lst):
        q = f"{p}[{i}]"
        if not isinstance(io_, dict):
            c.problem(q, f"must be a mapping {{name, shape, dtype}}, got {describe(io_)}")
        c.text(io_.get("name"), q + ".name", max_len=MAX_NAME_CHARS)
        shape = c.get(io_, "shape", q, list)
        if not 1 <= len(shape) <= 8:
            c.problem(q + ".shape", f"must have 1 to 8 axes, got {len(shape)}")
        values = 1
        for j, dim in enumerate(shape):
            if dim is None or (isinstance(dim, str) and 0 < len(dim) <= MAX_NAME_CHARS):
                continue
            values *= c.integer(dim, f"{q}.shape[{j}]", 1, MAX_INPUT_VALUES)
        if values > MAX_INPUT_VALUES:
            c.problem(q + ".shape", f"{values:,} values per row; at most {MAX_INPUT_VALUES:,}")
        dtype = c.get(io_, "dtype", q, str)
        if dtype not in IO_DTYPES:
            c.problem(q + ".dtype", f"{dtype!r} is not supported (supported: {list(IO_DTYPES)})")
    c.unique([io_["name"] for io_ in lst], p)
    return lst


def _check_normalization(c: Checker, manifest: dict[str, Any], inputs: list[dict[str, Any]]) -> None:
    norm = c.get(manifest, "normalization", "", dict, required=False)
    if norm is None:
        return
    mean = c.get(norm, "mean", "normalization", list)
    std = c.get(norm, "std", "normalization", list)
    c.get(norm, "in_graph", "normalization", bool)
    if len(mean) > MAX_NORMALIZATION_VALUES:
        c.problem("normalization.mean", f"{len(mean):,} values; at most {MAX_NORMALIZATION_VALUES:,}")
    if len(mean) != len(std) or not mean:
        c.problem(
            "normalization", f"mean and std must be non-empty and equally long ({len(mean)} vs {len(std)})"
        )
    for i, v in enumerate(mean):
        c.number(v, f"normalization.mean[{i}]")
    for i, v in enumerate(std):
        c.number(v, f"normalization.std[{i}]", positive=True)
    c.get(norm, "input", "normalization", str, required=False)
    target = normalized_input(manifest)
    names = [io_["name"] for io_ in inputs]
    if target not in names:
        c.problem("normalization.input", f"{short(target)} is not a model input ({names})")
    if not norm["in_graph"]:
        last = inputs[names.index(target)]["shape"][-1]
        if len(mean) not in (1, last):
            c.problem(
                "normalization", f"{len(mean)} values cannot normalise input {target!r} ({last} per row)"
            )


def _check_bitplan_and_layers(c: Checker, manifest: dict[str, Any]) -> None:
    plan = c.get(manifest, "bitplan", "", dict, required=False)
    if plan is not None:
        c.get(plan, "method", "bitplan", str, required=False)
        bits = c.get(plan, "bits", "bitplan", dict, required=False) or {}
        if len(bits) > MAX_LAYERS:
            c.problem("bitplan.bits", f"{len(bits):,} layers; at most {MAX_LAYERS:,}")
        for k, b in bits.items():
            c.integer(b, f"bitplan.bits[{k!r}]", 1, 32)
        params = c.get(plan, "params", "bitplan", dict, required=False) or {}
        if len(params) > MAX_LAYERS:
            c.problem("bitplan.params", f"{len(params):,} layers; at most {MAX_LAYERS:,}")
        for k, n in params.items():  # weights per layer (compared with weights.esq, printed by `info`)
            c.integer(n, f"bitplan.params[{k!r}]", 0, 1 << 62)
        if "average_bits" in plan:
            c.number(plan["average_bits"], "bitplan.average_bits", lo=0)
    layers = c.get(manifest, "layers", "", list, required=False) or []
    if len(layers) > MAX_LAYERS:
        c.problem("layers", f"{len(layers):,} layers; at most {MAX_LAYERS:,}")
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            c.problem(f"layers[{i}]", f"must be a mapping, got {describe(layer)}")
        c.text(layer.get("name"), f"layers[{i}].name")
        c.get(layer, "op", f"layers[{i}]", str, required=False)
        for key in ("params", "bytes", "flops"):  # null: not known for this layer
            if layer.get(key) is not None:
                c.integer(layer[key], f"layers[{i}].{key}", 0, 1 << 62)
        if layer.get("bits") is not None:
            c.integer(layer["bits"], f"layers[{i}].bits", 1, 32)


def check_file_name(name: Any, where: str) -> None:
    """A bundle file name: a top-level name (no folder, no '..'), not manifest.json, at most 255 characters."""
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..", MANIFEST_NAME, *SIDE_FILES)
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or len(name) > 255
    ):
        raise BundleError(
            f"{where}: {short(name)} is not a valid bundle file name (a top-level file name, not "
            f"{MANIFEST_NAME} or one of {list(SIDE_FILES)})"
        )


def _check_files(c: Checker, manifest: dict[str, Any]) -> dict[str, Any]:
    files = c.get(manifest, "files", "", dict)
    if len(files) > MAX_FILES:
        c.problem("files", f"lists {len(files)} files; at most {MAX_FILES}")
    total = 0
    for name, entry in files.items():
        check_file_name(name, f"{c.where}: files")
        if not isinstance(entry, dict):
            c.problem(f"files[{name!r}]", f"must be a mapping {{sha256, bytes}}, got {describe(entry)}")
        sha = entry.get("sha256")
        if not isinstance(sha, str) or not _SHA_RE.fullmatch(sha):
            c.problem(f"files[{name!r}].sha256", f"must be 64 lower-case hex digits, got {short(sha)}")
        total += c.integer(entry.get("bytes"), f"files[{name!r}].bytes", 0, MAX_FILE_BYTES)
    if total > MAX_TOTAL_BYTES:
        c.problem("files", f"{total:,} bytes in all; a bundle holds at most {MAX_TOTAL_BYTES:,}")
    for name in REQUIRED_FILES:
        if name not in files:
            c.problem("files", f"does not list {name!r}; a bundle needs {list(REQUIRED_FILES)}")
    return files


def _check_onnx_fp16(c: Checker, manifest: dict[str, Any], files: dict[str, Any]) -> None:
    """The optional `onnx_fp16` block: {"file": "model_fp16.onnx", "checked": {"rows", "top1_agreement",
    "max_rel_diff"}}, the file listed in `files`; `checked` records its comparison with fp32 when written."""
    block = c.get(manifest, "onnx_fp16", "", dict, required=False)
    if block is None:
        return
    fname = c.get(block, "file", "onnx_fp16", str)
    check_file_name(fname, f"{c.where}: onnx_fp16.file")
    if fname not in files:
        c.problem("onnx_fp16.file", f"{fname!r} is not listed in files (every bundle file is listed there)")
    if fname in REQUIRED_FILES or not str(fname).endswith(".onnx"):
        c.problem(
            "onnx_fp16.file", f"{fname!r} must be an .onnx file of its own (not {list(REQUIRED_FILES)})"
        )
    checked = c.get(block, "checked", "onnx_fp16", dict, required=False)
    if checked is not None:
        c.integer(checked.get("rows"), "onnx_fp16.checked.rows", 1, 10**9)
        c.number(checked.get("top1_agreement"), "onnx_fp16.checked.top1_agreement", lo=0, hi=1)
        c.number(checked.get("max_rel_diff"), "onnx_fp16.checked.max_rel_diff", lo=0)


def _check_tflite(c: Checker, manifest: dict[str, Any], inputs: list[Any], files: dict[str, Any]) -> None:
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
    in_graph = c.get(tfl, "normalization_in_graph", "tflite", bool)
    variants = c.get(tfl, "variants", "tflite", dict)
    if not variants:
        c.problem("tflite.variants", f"must list at least one variant of {list(TFLITE_VARIANTS)}")
    names = [io_["name"] for io_ in inputs]
    for name, v in variants.items():
        p = f"tflite.variants[{name!r}]"
        if name not in TFLITE_VARIANTS:
            c.problem(p, f"{short(name)} is not a TFLite variant (variants: {list(TFLITE_VARIANTS)})")
        if not isinstance(v, dict):
            c.problem(p, f"must be a mapping {{file, inputs, output}}, got {describe(v)}")
        fname = c.get(v, "file", p, str)
        check_file_name(fname, f"{c.where}: {p}.file")
        if fname not in files:
            c.problem(p + ".file", f"{fname!r} is not listed in files (every bundle file is listed there)")
        if fname in REQUIRED_FILES:
            c.problem(p + ".file", f"{fname!r} is not a .tflite model")
        if "input" in v:
            c.problem(
                p + ".input",
                "is the old single-input form; list every model input by name: "
                f'"inputs": {{{", ".join(repr(n) + ": {...}" for n in names)}}}',
            )
        ins = c.get(v, "inputs", p, dict)
        missing, extra = [n for n in names if n not in ins], sorted(set(ins) - set(names))
        if missing or extra:
            c.problem(
                p + ".inputs",
                f"must have one entry per model input {names}; missing {missing}, not model inputs {extra}",
            )
        for n in names:
            _check_tflite_tensor(c, ins[n], f"{p}.inputs[{n!r}]")
        _check_tflite_tensor(c, c.get(v, "output", p, dict), f"{p}.output")
    norm = manifest.get("normalization")
    target = normalized_input(manifest)
    if not in_graph and norm is not None and target in names:
        last = inputs[names.index(target)]["shape"][-1]
        if len(norm["mean"]) not in (1, last):
            c.problem(
                "tflite.normalization_in_graph",
                f"is false, but the {len(norm['mean'])} normalization values cannot normalise "
                f"{target!r} ({short(last)} per row)",
            )


def _check_tflite_tensor(c: Checker, q: Any, p: str) -> None:
    """One TFLite input / output entry: {"dtype": "float32"} or {"dtype": "int8", "scale", "zero_point"[,
    "phases"]} (`phases`: k phased int8 copies side by side on the last axis, `phase_offsets`; default 1)."""
    if not isinstance(q, dict):
        c.problem(p, f"must be a mapping {{dtype[, scale, zero_point]}}, got {describe(q)}")
    dtype = c.get(q, "dtype", p, str)
    if dtype not in TFLITE_IO_DTYPES:
        c.problem(f"{p}.dtype", f"{dtype!r} is not supported (supported: {list(TFLITE_IO_DTYPES)})")
    if dtype == "int8":
        if "scale" not in q or "zero_point" not in q:
            c.problem(p, "an int8 tensor needs its quantization: scale and zero_point")
        c.number(q["scale"], f"{p}.scale", positive=True)
        c.integer(q["zero_point"], f"{p}.zero_point", -128, 127)
        if q.get("phases", 1) not in TFLITE_PHASES or isinstance(q.get("phases"), bool):
            c.problem(
                f"{p}.phases",
                f"must be one of {list(TFLITE_PHASES)} (phased int8 copies), got {short(q['phases'])}",
            )
    else:
        extra = sorted(k for k in ("scale", "zero_point", "phases") if k in q)
        if extra:
            c.problem(p, f"a {dtype} tensor is not quantized, but has {extra}")


__all__ = [
    "check_schema",
    "IO_DTYPES",
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "MANIFEST_SCHEMA_VERSION",
    "MANIFEST_SUM_NAME",
    "MODEL_NAME",
    "REQUIRED_FILES",
    "SIDE_FILES",
    "TFLITE_IO_DTYPES",
    "TFLITE_PHASES",
    "TFLITE_VARIANTS",
    "phase_offsets",
    "tflite_io_entry",
    "WEIGHTS_NAME",
    "check_file_name",
    "normalized_input",
    "validate_manifest",
]
