"""Loading a bundle: read a directory or a `.tar` within size limits, check the manifest, verify every file.

A bundle holds `manifest.json` (`edge_ser.bundle.manifest`), `model.onnx` (the graph, with every float
initializer declared as external data in `weights.esq`; `edge_ser.bundle.onnx_reader`) and `weights.esq` (the
packed weights, `edge_ser.packed`), and may carry TFLite variants (`model_fp32.tflite`, ...). `load_bundle`
refuses anything that does not verify, with a `BundleError` that names the bundle, the file and what is wrong.

ONNX conventions checked here (the host exporter follows them):

- every float initializer of `model.onnx` has `data_location = EXTERNAL`, `external_data` location
  `weights.esq` (offset/length are ignored: onnxruntime receives the values through
  `SessionOptions.add_external_initializers` and never opens the file), data type FLOAT, and dims equal to the
  shape of the tensor of the same name in `weights.esq`, which holds exactly these tensors;
- small non-weight tensors that onnxruntime must see at graph-build time (Reshape's int64 `shape`: shape
  inference cannot read an external tensor) stay inline in `model.onnx`;
- the graph's inputs and outputs (names and shapes) are the manifest's `model.inputs` and `model.outputs`.

Everything here needs numpy and the standard library only, on the device and on the host alike.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from edge_ser.bundle.fusion import FusionBundle, is_fusion, load_fusion_bundle
from edge_ser.bundle.identity import BundleIdentity
from edge_ser.bundle.manifest import (
    MANIFEST_NAME,
    MANIFEST_SUM_NAME,
    MODEL_NAME,
    WEIGHTS_NAME,
    check_file_name,
    normalized_input,
    validate_manifest,
)
from edge_ser.bundle.onnx_reader import check_graph, read_onnx_graph
from edge_ser.bundle.read import MAX_SUM_BYTES, check_manifest_sum, missing_sum, open_source
from edge_ser.errors import BundleError, PackedFormatError
from edge_ser.features.spec import FeatureSpec
from edge_ser.inputs import InputKind, input_kind
from edge_ser.limits import (
    MAX_FILE_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_TOTAL_BYTES,
    MAX_WEIGHT_VALUES,
)
from edge_ser.packed import EsqFile, read_esq_bytes
from edge_ser.schema import Checker, describe, short, sub_record, uar_of

CONSTANT_DTYPES = {"int64": np.int64, "float32": np.float32}


@dataclass(frozen=True, eq=False)
class Bundle(BundleIdentity):
    """A loaded (and, unless `verify=False`, verified) model bundle, held in memory.

    `files` maps each file listed in the manifest to its bytes; `manifest.json` itself is `manifest`. What the
    model takes is `input_kind`; its graph is `graph` (read from model.onnx).
    """

    root: Path
    """The directory or `.tar` it was loaded from."""
    manifest: dict[str, Any]
    labels: tuple[str, ...]
    feature_spec: FeatureSpec
    files: Mapping[str, bytes]
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def graph(self) -> dict[str, Any]:
        """The model's graph, read from model.onnx once (the one source; `edge_ser.bundle.onnx_reader`)."""
        if "graph" not in self._cache:
            where = f"bundle {self.source}: {MODEL_NAME}"
            g = read_onnx_graph(self.onnx_bytes(), source=where)
            check_graph(g, Checker(where, error=BundleError))
            self._cache["graph"] = g
        return self._cache["graph"]

    @property
    def input_kind(self) -> InputKind:
        """What the model takes and how a file, a clip or a live window becomes it (`edge_ser.inputs`)."""
        if "input_kind" not in self._cache:
            self._cache["input_kind"] = input_kind(self.manifest)
        return self._cache["input_kind"]

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
            check_weight_values(self.weights(), f"bundle {self.source}: {WEIGHTS_NAME}")
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
        """The graph's inline int64 constants (Reshape target shapes), as arrays."""
        out = {}
        for name, c in (self.graph.get("constants") or {}).items():
            a = np.asarray(c["values"], dtype=CONSTANT_DTYPES[c["dtype"]]).reshape(c["shape"])
            a.setflags(write=False)
            out[name] = a
        return out

    def describe(self) -> str:
        acc = self.manifest.get("accuracy") or {}
        bits = (self.manifest.get("bitplan") or {}).get("average_bits")
        source = Path(str(self.source))
        # a deployed bundle is ROOT/current -> versions/<version>: say which version is running
        version = f" (version {source.resolve().name})" if source.is_symlink() else ""
        parts = [
            f"{self.name} from {self.source}{version}",
            f"{self.num_classes} labels",
            "input "
            + " + ".join(f"{io_['name']} {list(io_['shape'])}" for io_ in self.manifest["model"]["inputs"]),
        ]
        if bits is not None:
            parts.append(f"{bits:.2f} bits/weight on average")  # as README and ship_ser say it (was 1.39655)
        parts += accuracy_summary(acc)
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"Bundle({self.describe()})"


def accuracy_summary(acc: Mapping[str, Any]) -> list[str]:
    """The manifest's headline figures, speaker-independent first: the nested unseen-speaker UAR where the
    manifest has one, then the test figure (UAR beside accuracy where recorded), said to be on speakers the
    model trained on when its split was random (and then that the manifest has no speaker-independent figure,
    ahead of it). A manifest with validation figures only says that they were read on the speakers its recipe
    was chosen on, so they are no test figure."""
    parts = []
    si = acc.get("speaker_independent")
    # a note nothing checks: a hand-edited figure that is no number (null, "82 %") or a block without its `seeds`
    # crashed every `describe` (`info`, `predict`); such a figure is left out
    si_uar = uar_of(sub_record(si, "transductive"))
    has_si = si_uar is not None
    if has_si:
        seeds = si.get("over_seeds")
        pooled_uar = uar_of(sub_record(seeds, "transductive"))
        listed = seeds.get("seeds") if isinstance(seeds, Mapping) else None
        pooled = (
            f"; {pooled_uar:.3f} over training seeds {', '.join(map(str, listed))}"
            if pooled_uar is not None and isinstance(listed, list)
            else ""
        )
        parts.append(
            f"UAR {si_uar:.3f} on unseen speakers of {acc.get('dataset', '?')} "
            f"({si.get('n_folds', '?')} folds nested{pooled})"
        )
    if isinstance(acc.get("test"), (int, float)):
        uar = acc.get("test_uar")
        split = acc.get("split")
        shared = isinstance(split, Mapping) and split.get("kind") == "random"
        if shared and not has_si:
            parts.append("no speaker-independent figure in its manifest (bundles/README.md has the recipe's)")
        parts.append(
            "test "
            + (f"UAR {uar:.3f}, accuracy" if isinstance(uar, (int, float)) else "accuracy")
            + f" {acc['test']:.3f} on {acc.get('dataset', '?')}"
            + (" (a random split: speakers it trained on)" if shared else "")
        )
    elif not has_si and isinstance(acc.get("val_uar"), (int, float)):
        parts.append(
            f"validation UAR {acc['val_uar']:.3f} on {acc.get('dataset', '?')} (the speakers its recipe was chosen "
            "on: optimistic; no test figure in its manifest)"
        )
    return parts


def _bundles_inside(path: str | os.PathLike[str]) -> str:
    """For a folder that holds bundles rather than being one (`bundles/`, `out/demo/`): the folders to give."""
    folder = Path(path)
    if not folder.is_dir():
        return ""
    inside = sorted(str(d) for d in folder.iterdir() if (d / MANIFEST_NAME).is_file())
    if not inside:
        return ""
    more = f" (and {len(inside) - 5} more)" if len(inside) > 5 else ""
    return f"; it is not a bundle but holds {'one' if len(inside) == 1 else 'some'}: give {', '.join(inside[:5])}{more}"


def load_bundle(
    path: str | os.PathLike[str],
    *,
    verify: bool = True,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> Bundle | FusionBundle:
    """Load a bundle from a directory or an uncompressed `.tar` of its files, and verify it.

    A manifest with a `fusion` block is a fusion bundle (`edge_ser.bundle.fusion`): its branch bundles are
    loaded and verified the same way, and a FusionBundle is returned.

    The manifest is read first, checked against `manifest.sha256` and then field by field (sizes bounded by
    `edge_ser.limits`); only then are the files it lists read, each after its size was compared with the
    manifest's, and anything it does not list is refused (`edge_ser.bundle.read`). With `verify=True` (the
    default) also the sha256 of every file, that `model.onnx` is a well-formed graph whose inputs and outputs are
    the manifest's, with every weight as external data in `weights.esq`, and that `weights.esq` parses and holds
    exactly those weights at the bit widths of the bit plan. Nothing is extracted to disk.

    Raises:
        BundleError: naming the bundle, the file and what is wrong (`PackedFormatError` for a bad .esq).
    """
    src = str(path)
    with open_source(Path(path), src, int(max_file_bytes), int(max_total_bytes)) as source:
        present = set(source.names())
        manifest_bytes = source.read(MANIFEST_NAME, MAX_MANIFEST_BYTES) if MANIFEST_NAME in present else None
        if manifest_bytes is None:
            raise BundleError(
                f"bundle {src}: {MANIFEST_NAME} is missing (present: {sorted(present)[:20]}){_bundles_inside(path)}"
            )
        if verify:
            if MANIFEST_SUM_NAME not in present:
                raise missing_sum(src)
            check_manifest_sum(source.read(MANIFEST_SUM_NAME, MAX_SUM_BYTES), manifest_bytes, src)
        manifest = parse_manifest(manifest_bytes, src)
        digest = hashlib.sha256(manifest_bytes).hexdigest()  # the build loaded (`manifest_sha256`)
        if is_fusion(manifest):  # a composition of branch bundles (edge_ser.bundle.fusion)
            fused = load_fusion_bundle(
                Path(path), src, manifest, source, verify=verify, load_bundle=load_bundle
            )
            fused._cache.update(manifest_sha256=digest, manifest_bytes=manifest_bytes)
            return fused
        names = _listed_names(manifest, src)
        spec = validate_manifest(manifest, source=src)  # every field, before any listed file is read
        source.refuse_unlisted(names)
        total, files = 0, {}
        for name in names:
            size = manifest["files"][name]["bytes"]
            total += size
            if size > max_file_bytes or total > max_total_bytes:
                raise BundleError(f"bundle {src}: {name}: beyond the size limits ({max_file_bytes:,} bytes per "
                                  f"file, {max_total_bytes:,} in all); not read")  # fmt: skip
            files[name] = source.read_exact(name, size)
    bundle = make_bundle(Path(path), src, manifest, files, verify=verify, spec=spec)
    bundle._cache.update(manifest_sha256=digest, manifest_bytes=manifest_bytes)
    return bundle


def make_bundle(
    root: Path,
    src: str,
    manifest: Any,
    files: dict[str, bytes],
    *,
    verify: bool,
    spec: FeatureSpec | None = None,
) -> Bundle:
    """A Bundle from a parsed manifest and the bytes of its files (`spec`: the manifest already validated)."""
    if spec is None:
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


def parse_manifest(data: bytes, src: str) -> Any:
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
        raise BundleError(f"{where}: must be a JSON object, got {describe(manifest)}")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise BundleError(
            f"{where}: files: must be an object of file name -> {{sha256, bytes}}, got {describe(files)}"
        )
    for name in files:
        check_file_name(name, f"{where}: files")
    return list(files)


def check_weight_values(esq: EsqFile, where: str) -> None:
    """At most MAX_WEIGHT_VALUES weights in all (they become float32 arrays: 4 bytes each)."""
    total = sum(math.prod(t.shape) for t in esq.tensors.values())
    if total > MAX_WEIGHT_VALUES:
        raise BundleError(
            f"{where}: {total:,} weights ({total * 4 / 2**20:,.0f} MiB as float32); a bundle may hold at most "
            f"{MAX_WEIGHT_VALUES:,}"
        )


def _verify_contents(bundle: Bundle) -> None:
    """weights.esq and model.onnx against each other and the manifest (see `load_bundle`)."""
    src = bundle.source
    try:
        esq = bundle.weights()
    except BundleError:
        raise
    except Exception as e:  # a reader bug must still surface as a bundle error naming the file
        raise PackedFormatError(
            f"bundle {src}: {WEIGHTS_NAME}: cannot be read ({type(e).__name__}: {e})"
        ) from e
    check_weight_values(esq, f"bundle {src}: {WEIGHTS_NAME}")
    g = bundle.graph
    names = set(esq.tensors)
    inits = list(g["initializers"])
    missing = [n for n in inits if n not in names]
    if missing:
        raise BundleError(
            f"bundle {src}: {WEIGHTS_NAME}: initializer(s) {short(missing, 200)} of the graph are missing "
            "from the weights file"
        )
    extra = sorted(names - set(inits))
    if extra:
        raise BundleError(
            f"bundle {src}: {WEIGHTS_NAME}: tensor(s) {short(extra, 200)} are not initializers of the graph "
            f"({MODEL_NAME})"
        )
    plan = bundle.manifest.get("bitplan") or {}
    plan_bits = plan.get("bits") or {}
    for layer, b in plan_bits.items():
        t = esq.tensors.get(f"{layer}.weight")
        if t is not None and int(t.bits) != b:
            raise BundleError(
                f"bundle {src}: {WEIGHTS_NAME}: tensor '{layer}.weight' is stored at {t.bits} bits but the "
                f"bit plan gives layer {layer!r} {b} bits"
            )
    _check_described_bits(bundle, esq, plan)
    _check_onnx(bundle, g, {k: tuple(t.shape) for k, t in esq.tensors.items()})


def _check_described_bits(bundle: Bundle, esq: Any, plan: Mapping[str, Any]) -> None:
    """The manifest's descriptions of the weights (`bitplan.params`, `bitplan.average_bits`, `layers[].bits`, which
    `info` prints) agree with what weights.esq stores: an edited manifest said 8 bits of a layer stored at 2."""

    def fail(what: str) -> BundleError:
        return BundleError(
            f"bundle {bundle.source}: {MANIFEST_NAME}: {what}, but {WEIGHTS_NAME} stores otherwise"
        )

    stored = {}
    for layer in plan.get("bits") or {}:
        t = esq.tensors.get(f"{layer}.weight")
        if t is not None:
            stored[layer] = (int(t.bits), int(np.prod(t.shape)))
    for layer, n in (plan.get("params") or {}).items():
        if layer in stored and stored[layer][1] != n:
            raise fail(f"bitplan.params gives layer {layer!r} {n:,} weights ({stored[layer][1]:,} stored)")
    avg = plan.get("average_bits")
    if avg is not None and stored and set(stored) == set(plan.get("bits") or {}):
        total = sum(n for _, n in stored.values())
        true = sum(b * n for b, n in stored.values()) / max(total, 1)
        if not math.isclose(float(avg), true, rel_tol=1e-6, abs_tol=1e-9):
            raise fail(f"bitplan.average_bits is {avg:g} ({true:.4g} stored)")
    for i, layer in enumerate(bundle.manifest.get("layers") or []):
        t = esq.tensors.get(f"{layer.get('name')}.weight")
        if t is not None and layer.get("bits") is not None and int(layer["bits"]) != int(t.bits):
            raise fail(f"layers[{i}] ({layer['name']!r}) says {layer['bits']} bits ({t.bits} stored)")


def _check_onnx(bundle: Bundle, g: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]]) -> None:
    """model.onnx keeps the bundle conventions: every weight is external data in weights.esq with the shape
    stored there, and the graph's inputs and outputs are the manifest's `model.inputs` / `outputs`."""

    def fail(what: str) -> BundleError:
        return BundleError(f"bundle {bundle.source}: {MODEL_NAME}: {what}")

    for n in g["initializers"]:
        t = g["tensors"][n]
        if not t["external"]:
            raise fail(
                f"initializer {n!r} is stored inline; weights must be external data in {WEIGHTS_NAME} "
                "(data_location EXTERNAL, location 'weights.esq')"
            )
        if t["location"] != WEIGHTS_NAME:
            raise fail(
                f"initializer {n!r}: external data location is {t['location']!r}, expected {WEIGHTS_NAME!r}"
            )
        if tuple(t["dims"]) != tuple(shapes[n]):
            raise fail(
                f"initializer {n!r}: dims {list(t['dims'])} but {WEIGHTS_NAME} holds {list(shapes[n])}"
            )
    model = bundle.manifest["model"]
    for what in ("inputs", "outputs"):
        want = [(x["name"], [d if isinstance(d, int) else None for d in x["shape"]]) for x in model[what]]
        got = [(x["name"], x["shape"]) for x in g[what]]
        if got != want:
            raise fail(f"graph {what} {got} but the manifest's model.{what} are {want}")


__all__ = [
    "Bundle",
    "load_bundle",
]
