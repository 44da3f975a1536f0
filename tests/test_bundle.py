"""Bundles: write, load (directory and .tar), and refuse every kind of damage with a clear BundleError.

The bundles are built here with the real onnx package and the real .esq writer, following the convention the
host exporter must follow (weights as external data in weights.esq, supplied to onnxruntime at load).
The helpers at the top (`Kit`, `mlp_kit`, ...) are shared with tests/test_engines.py.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper

from edge_ser.bundle import (
    MANIFEST_SCHEMA_VERSION,
    Bundle,
    load_bundle,
    manifest_sum_line,
    read_onnx_graph,
    write_bundle,
)
from edge_ser.errors import BundleError, PackedFormatError
from edge_ser.features.spec import FeatureSpec
from edge_ser.packed import Tensor, read_esq_bytes, write_esq

LABELS = ["neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"]


# --------------------------------------------------------------------------------------------------------------
# building bundles (shared with test_engines.py)
# --------------------------------------------------------------------------------------------------------------


def quantized(
    rng: np.random.Generator, name: str, shape: Sequence[int], bits: int, scale: float = 0.05
) -> Tensor:
    """Random b-bit codes in the symmetric range and per-output-channel scales."""
    hi = 1 if bits == 1 else (1 << (bits - 1)) - 1
    codes = rng.integers(-hi, hi + 1, size=tuple(shape))
    if bits == 1:
        codes[codes == 0] = 1
    scales = rng.uniform(0.5, 1.5, shape[0]) * scale
    return Tensor.quantized(name, codes.astype(np.int8), scales.astype(np.float32), bits)


def raw(name: str, values: Any) -> Tensor:
    return Tensor.raw(name, np.asarray(values, dtype=np.float32))


def esq_bytes(tensors: Sequence[Tensor]) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        return write_esq(Path(d) / "w.esq", list(tensors)).read_bytes()


def external(name: str, shape: Sequence[int], location: str = "weights.esq") -> TensorProto:
    """An initializer declared as external data: no bytes in the ONNX file (offset/length are not used)."""
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(shape)
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "0")):
        e = t.external_data.add()
        e.key, e.value = key, value
    return t


def io_spec(name: str, shape: Sequence[Any]) -> dict[str, Any]:
    return {"name": name, "shape": list(shape), "dtype": "float32"}


class Kit:
    """The parts of a bundle, each replaceable, to build good and broken bundles from."""

    def __init__(
        self,
        nodes: list[tuple[str, list[str], list[str], dict[str, Any]]],
        inputs: list[dict[str, Any]],
        outputs: list[dict[str, Any]],
        tensors: list[Tensor],
        *,
        constants: dict[str, np.ndarray] | None = None,
        labels: Sequence[str] = LABELS,
        spec: FeatureSpec | None = None,
        opset: int = 17,
        bits: dict[str, int] | None = None,
        normalization: dict[str, Any] | None = None,
    ) -> None:
        self.nodes, self.inputs, self.outputs = nodes, inputs, outputs
        self.tensors = {t.name: t for t in tensors}
        self.constants = dict(constants or {})
        self.labels = list(labels)
        self.spec = spec or FeatureSpec()
        self.opset = opset
        self.bits = bits or {}
        self.normalization = normalization

    def onnx_bytes(self, *, manifest_only_nodes: bool = False) -> bytes:
        inits = [external(t.name, t.shape) for t in self.tensors.values()]
        for name, value in self.constants.items():
            inits.append(helper.make_tensor(name, TensorProto.INT64, value.shape, value.reshape(-1).tolist()))
        g = helper.make_graph(
            [helper.make_node(op, ins, outs, **attrs) for op, ins, outs, attrs in self.nodes],
            "g",
            [
                helper.make_tensor_value_info(
                    x["name"], TensorProto.FLOAT, [d if d else "n" for d in x["shape"]]
                )
                for x in self.inputs
            ],
            [
                helper.make_tensor_value_info(
                    x["name"], TensorProto.FLOAT, [d if d else "n" for d in x["shape"]]
                )
                for x in self.outputs
            ],
            inits,
        )
        m = helper.make_model(
            g, opset_imports=[helper.make_opsetid("", self.opset)], producer_name="edge-ser-tests"
        )
        m.ir_version = 8
        return m.SerializeToString()

    def manifest(self) -> dict[str, Any]:
        m: dict[str, Any] = {
            "schema": "edge-ser-bundle",
            "schema_version": MANIFEST_SCHEMA_VERSION,
            "edge_ser_version": "0.1.0",
            "created": "2026-11-23T12:00:00Z",
            "model": {"name": "test_model", "inputs": self.inputs, "outputs": self.outputs},
            "labels": self.labels,
            "feature_spec": self.spec.to_dict(),
            "bitplan": {
                "method": "laq-paper",
                "bits": dict(self.bits),
                "average_bits": sum(b * self.tensors[f"{n}.weight"].size for n, b in self.bits.items())
                / max(sum(self.tensors[f"{n}.weight"].size for n in self.bits), 1),
                "weights": {},
            },
            "layers": [
                {
                    "name": n,
                    "op": "Gemm",
                    "params": int(self.tensors[f"{n}.weight"].size),
                    "bits": b,
                    "bytes": 10,
                    "flops": 20,
                }
                for n, b in self.bits.items()
                if f"{n}.weight" in self.tensors
            ],
            "accuracy": {
                "test": 0.74,
                "val": 0.72,
                "dataset": "synthetic",
                "split": {"kind": "random", "seed": 0},
            },
        }
        if self.normalization is not None:
            m["normalization"] = self.normalization
        return json.loads(json.dumps(m))  # a fresh tree without shared sub-objects: callers mutate it

    def files(self) -> dict[str, bytes]:
        return {"model.onnx": self.onnx_bytes(), "weights.esq": esq_bytes(list(self.tensors.values()))}

    def write(self, path: Path, *, as_tar: bool = False) -> Path:
        return write_bundle(path, manifest=self.manifest(), files=self.files(), as_tar=as_tar)

    def weights(self) -> dict[str, np.ndarray]:
        return {k: t.dequantize() for k, t in self.tensors.items()}


def mlp_kit(seed: int = 0, *, hidden: int = 32, in_graph: bool = True) -> Kit:
    """laq_mlp in miniature: Sub/Div normalisation, Gemm 2-bit, Relu, Gemm 4-bit (180 -> hidden -> 7)."""
    rng = np.random.default_rng(seed)
    spec = FeatureSpec()
    d, k = spec.dim, len(LABELS)
    mean = rng.normal(size=d).astype(np.float32)
    std = rng.uniform(0.5, 2.0, d).astype(np.float32)
    tensors = [
        quantized(rng, "features.0.weight", (hidden, d), 2),
        raw("features.0.bias", rng.normal(size=hidden) * 0.1),
        quantized(rng, "features.2.weight", (k, hidden), 4, scale=0.1),
        raw("features.2.bias", rng.normal(size=k) * 0.1),
    ]
    nodes: list[tuple[str, list[str], list[str], dict[str, Any]]] = []
    x = "features"
    if in_graph:
        tensors = [raw("mean", mean), raw("std", std), *tensors]
        nodes += [("Sub", ["features", "mean"], ["t0"], {}), ("Div", ["t0", "std"], ["t1"], {})]
        x = "t1"
    nodes += [
        (
            "Gemm",
            [x, "features.0.weight", "features.0.bias"],
            ["t2"],
            {"transB": 1, "alpha": 1.0, "beta": 1.0},
        ),
        ("Relu", ["t2"], ["t3"], {}),
        ("Gemm", ["t3", "features.2.weight", "features.2.bias"], ["logits"], {"transB": 1}),
    ]
    norm = {"mean": mean.tolist(), "std": std.tolist(), "in_graph": in_graph}
    return Kit(
        nodes,
        [io_spec("features", [None, d])],
        [io_spec("logits", [None, k])],
        tensors,
        spec=spec,
        bits={"features.0": 2, "features.2": 4},
        normalization=norm,
    )


def mlp_reference(kit: Kit, x: np.ndarray) -> np.ndarray:
    """The MLP in plain numpy (float64) from the dequantized weights."""
    w = {k: v.astype(np.float64) for k, v in kit.weights().items()}
    n = kit.normalization
    z = (x.astype(np.float64) - np.asarray(n["mean"], np.float64)) / np.asarray(n["std"], np.float64)
    h = np.maximum(z @ w["features.0.weight"].T + w["features.0.bias"], 0)
    return h @ w["features.2.weight"].T + w["features.2.bias"]


def raw_write(
    path: Path,
    manifest: Any,
    files: dict[str, bytes],
    *,
    fill: bool = True,
    manifest_text: str | None = None,
    seal: bool = True,
) -> Path:
    """Write a bundle directory with no checks at all (what a buggy exporter or a damaged card produces);
    `seal`: with a `manifest.sha256` that matches the manifest (so the checks behind it are reached)."""
    path.mkdir(parents=True, exist_ok=True)
    if fill:
        manifest = copy.deepcopy(manifest)
        manifest["files"] = {
            n: {"sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)} for n, b in files.items()
        }
    for n, b in files.items():
        (path / n).write_bytes(b)
    text = manifest_text if manifest_text is not None else json.dumps(manifest)
    (path / "manifest.json").write_text(text)
    if seal:
        (path / "manifest.sha256").write_bytes(manifest_sum_line(text.encode()))
    return path


def tar_of(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def file_info(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


# --------------------------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kit() -> Kit:
    return mlp_kit()


@pytest.fixture(scope="module")
def parts(kit: Kit) -> tuple[dict[str, Any], dict[str, bytes]]:
    return kit.manifest(), kit.files()


@pytest.fixture()
def good(tmp_path: Path, parts: tuple[dict[str, Any], dict[str, bytes]]) -> Path:
    manifest, files = parts
    return write_bundle(tmp_path / "b", manifest=manifest, files=files)


# --------------------------------------------------------------------------------------------------------------
# round trip
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_tar", [False, True])
def test_write_then_load(tmp_path: Path, kit: Kit, parts: Any, as_tar: bool) -> None:
    manifest, files = parts
    before = copy.deepcopy(manifest)
    p = write_bundle(tmp_path / ("b.tar" if as_tar else "b"), manifest=manifest, files=files, as_tar=as_tar)
    assert manifest == before, "write_bundle must not modify the caller's manifest"
    assert p.is_file() if as_tar else p.is_dir()
    b = load_bundle(p)
    assert isinstance(b, Bundle) and b.root == p
    assert b.labels == tuple(LABELS) and b.num_classes == 7
    assert b.feature_spec == FeatureSpec()
    assert b.input_name == "features" and b.output_names == ("logits",)
    assert b.onnx_bytes() == files["model.onnx"] and b.read("weights.esq") == files["weights.esq"]
    assert b.manifest["files"]["weights.esq"] == {
        "sha256": hashlib.sha256(files["weights.esq"]).hexdigest(),
        "bytes": len(files["weights.esq"]),
    }
    w = b.weights()
    assert w is b.weights(), "weights() is parsed once"
    assert set(w.tensors) == set(kit.tensors)
    assert w.tensors["features.0.weight"].bits == 2 and w.tensors["features.2.weight"].bits == 4
    for name, arr in b.dequantized().items():
        np.testing.assert_array_equal(arr, kit.tensors[name].dequantize())
        assert arr.dtype == np.float32
    assert "test_model" in str(b) and "7 labels" in b.describe()
    with pytest.raises(BundleError, match="no file 'model.tflite'"):
        b.read("model.tflite")


def test_tar_is_plain_and_deterministic(tmp_path: Path, parts: Any) -> None:
    manifest, files = parts
    a = write_bundle(tmp_path / "a.tar", manifest=manifest, files=files).read_bytes()
    b = write_bundle(tmp_path / "b", manifest=manifest, files=files, as_tar=True).read_bytes()
    assert a == b
    with tarfile.open(fileobj=io.BytesIO(a)) as tf:
        assert tf.getnames() == ["manifest.json", "manifest.sha256", "model.onnx", "weights.esq"]


def test_tar_made_with_dot_prefix_loads(tmp_path: Path, good: Path) -> None:
    """`tar -C bundle -cf b.tar .` gives a '.' entry and './name' members: accepted."""
    p = tmp_path / "dot.tar"
    with tarfile.open(p, "w") as tf:
        tf.add(good, arcname=".")
    assert load_bundle(p).labels == tuple(LABELS)


@pytest.mark.parametrize("how", ["folder", "folder/*"])
def test_tar_of_the_bundle_folder_loads(tmp_path: Path, good: Path, how: str) -> None:
    """`tar -cf b.tar ser_emodb` (a folder entry first) and `tar -cf b.tar ser_emodb/*` (no folder entry) are how
    most people archive a folder: both load as the folder does (they were refused)."""
    p = tmp_path / "b.tar"
    with tarfile.open(p, "w") as tf:
        if how == "folder":
            tf.add(good, arcname="ser_x")
        else:
            for f in sorted(good.iterdir()):
                tf.add(f, arcname=f"ser_x/{f.name}")
    assert load_bundle(p).labels == tuple(LABELS)
    assert load_bundle(p).manifest == load_bundle(good).manifest


def test_tar_of_a_folder_refuses_what_is_outside_it_or_deeper(tmp_path: Path, members: Any) -> None:
    moved = [(file_info(f"ser_x/{i.name}", d)[0], d) for i, d in members]
    info, data = file_info("other/notes.txt", b"x")
    refused(_write_tar(tmp_path, [*moved, (info, data)]), "'other/notes.txt': is outside the folder 'ser_x'")
    info, data = file_info("ser_x/sub/weights.esq", b"x")
    refused(_write_tar(tmp_path, [*moved, (info, data)]), "has a folder, absolute or parent path")
    sub = tarfile.TarInfo("nest/b1")  # `tar -cf t.tar nest/b1`: the bundle one level deeper than one folder
    sub.type = tarfile.DIRTYPE
    top = tarfile.TarInfo("nest")
    top.type = tarfile.DIRTYPE
    deeper = [(file_info(f"nest/b1/{i.name}", d)[0], d) for i, d in members]
    refused(
        _write_tar(tmp_path, [(top, None), (sub, None), *deeper]),
        "is a folder inside 'nest'",
        "tar -C 'nest'",
    )


def test_write_bundle_replaces_a_bundle_but_nothing_else(tmp_path: Path, parts: Any, good: Path) -> None:
    manifest, files = parts
    m2 = copy.deepcopy(manifest)
    m2["accuracy"]["test"] = 0.5
    write_bundle(good, manifest=m2, files=files)
    assert load_bundle(good).manifest["accuracy"]["test"] == 0.5
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(BundleError, match="not a bundle"):
        write_bundle(other, manifest=manifest, files=files)
    assert (other / "cat.jpg").read_bytes() == b"meow"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "photos"], "no temp files left"


@pytest.mark.parametrize("at", [1, 2])
def test_a_ctrl_c_between_the_renames_keeps_the_old_bundle(
    tmp_path: Path, parts: Any, good: Path, monkeypatch: pytest.MonkeyPatch, at: int
) -> None:
    """write_bundle moves the old bundle aside, then the new one in: a KeyboardInterrupt between the two
    renames deleted both (the restore caught OSError only, and only around the second rename)."""
    import edge_ser.bundle.write as w

    manifest, files = parts
    before = load_bundle(good).manifest
    real, calls = os.rename, []

    def rename(a, b):
        calls.append(a)
        if len(calls) == at == 2:  # the new folder into place
            raise KeyboardInterrupt
        real(a, b)
        if len(calls) == at == 1:  # as the old bundle's move aside returns
            raise KeyboardInterrupt

    monkeypatch.setattr(w.os, "rename", rename)
    m2 = copy.deepcopy(manifest)
    m2["accuracy"]["test"] = 0.5
    with pytest.raises(KeyboardInterrupt):
        write_bundle(good, manifest=m2, files=files)
    monkeypatch.setattr(w.os, "rename", real)
    assert load_bundle(good).manifest == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"], "no temp files left"


def test_write_bundle_refuses_what_the_device_would_refuse(tmp_path: Path, parts: Any) -> None:
    manifest, files = parts
    bad = copy.deepcopy(manifest)
    bad["labels"] = bad["labels"][:6]
    with pytest.raises(BundleError, match="6 labels"):
        write_bundle(tmp_path / "b", manifest=bad, files=files)
    with pytest.raises(BundleError, match="not a valid bundle file name"):
        write_bundle(tmp_path / "b", manifest=manifest, files={**files, "../evil": b""})
    with pytest.raises(BundleError, match="does not list 'weights.esq'"):
        write_bundle(tmp_path / "b", manifest=manifest, files={"model.onnx": files["model.onnx"]})
    assert list(tmp_path.iterdir()) == [], "a refused bundle leaves nothing behind"


def test_verify_false_skips_hashes(tmp_path: Path, parts: Any) -> None:
    manifest, files = parts
    p = raw_write(tmp_path / "b", manifest, files)
    m = json.loads((p / "manifest.json").read_text())
    m["files"]["model.onnx"]["sha256"] = "0" * 64
    (p / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="sha256 mismatch"):
        load_bundle(p)
    assert load_bundle(p, verify=False).labels == tuple(LABELS)


def test_onnx_graph_reads_what_onnx_wrote(kit: Kit) -> None:
    g = read_onnx_graph(kit.onnx_bytes())
    assert g["opset"] == 17
    assert g["inputs"] == [{"name": "features", "shape": [None, 180], "dtype": "float32"}]
    assert g["outputs"] == [{"name": "logits", "shape": [None, 7], "dtype": "float32"}]
    assert [n["op"] for n in g["nodes"]] == ["Sub", "Div", "Gemm", "Relu", "Gemm"]
    assert g["nodes"][2]["attrs"] == {"transB": 1, "alpha": 1.0, "beta": 1.0}
    assert g["initializers"] == list(kit.tensors) and g["constants"] == {}
    w = g["tensors"]["features.0.weight"]
    assert w["external"] and w["location"] == "weights.esq" and w["dims"] == [32, 180] and w["data_type"] == 1


def test_the_graph_comes_from_model_onnx_alone(tmp_path: Path, kit: Kit) -> None:
    """One source of truth: a manifest from an older edge-ser with its own (here: lying) copy of the graph
    loads, and the copy is ignored; the engines run model.onnx's graph."""
    m = kit.manifest()
    m["graph"] = {"opset": 13, "nodes": [{"op": "Sigmoid"}]}
    b = load_bundle(raw_write(tmp_path / "old", m, kit.files()))
    assert [n["op"] for n in b.graph["nodes"]] == ["Sub", "Div", "Gemm", "Relu", "Gemm"] and b.graph[
        "opset"
    ] == 17
    from edge_ser.engines import load_engine

    x = np.random.default_rng(0).normal(size=(3, 180)).astype(np.float32)
    np.testing.assert_allclose(
        load_engine(b, "numpy").predict(x), mlp_reference(kit, x), rtol=1e-4, atol=1e-4
    )


# --------------------------------------------------------------------------------------------------------------
# damage: every kind is refused with a message naming the bundle, the file and the fault
# --------------------------------------------------------------------------------------------------------------


def refused(path: Path, *fragments: str, exc: type[BundleError] = BundleError, **kw: Any) -> str:
    with pytest.raises(exc) as ei:
        load_bundle(path, **kw)
    msg = str(ei.value)
    assert msg.startswith(f"bundle {path}"), msg
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"
    return msg


def test_missing_file(good: Path) -> None:
    (good / "weights.esq").unlink()
    refused(good, "weights.esq: listed in manifest.json but missing")


def test_missing_manifest(good: Path) -> None:
    (good / "manifest.json").unlink()
    refused(good, "manifest.json is missing")


def test_folder_of_bundles_names_them(tmp_path: Path, good: Path) -> None:
    """`edge-ser info out/demo` (the folder around the bundle) says which folder to give."""
    refused(tmp_path, "manifest.json is missing", f"it is not a bundle but holds one: give {good}")
    (good / "manifest.json").unlink()  # no bundle inside: no suggestion
    assert "give" not in refused(tmp_path, "manifest.json is missing")


def test_sha_mismatch(good: Path) -> None:
    data = bytearray((good / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x10
    (good / "model.onnx").write_bytes(bytes(data))
    refused(good, "model.onnx: sha256 mismatch (manifest ", "the file was modified or damaged")


def test_size_mismatch(good: Path) -> None:
    with open(good / "weights.esq", "ab") as f:
        f.write(b"\0")
    refused(good, "weights.esq: size mismatch", "truncated, modified or replaced")


def reseal(bundle: Path, text: str | bytes) -> None:
    """Replace a bundle folder's manifest and its checksum (as a hand edit that knows about both would)."""
    data = text.encode() if isinstance(text, str) else text
    (bundle / "manifest.json").write_bytes(data)
    (bundle / "manifest.sha256").write_bytes(manifest_sum_line(data))


def test_manifest_not_json(good: Path) -> None:
    reseal(good, '{"schema": "edge-ser-bundle",')
    refused(good, "manifest.json: not valid JSON (line 1")
    reseal(good, b"\xff\xfe")
    refused(good, "manifest.json: not UTF-8")
    reseal(good, "[1, 2]")
    refused(good, "manifest.json: must be a JSON object")
    reseal(good, '{"a": NaN}')
    refused(good, "numbers must be finite")
    reseal(good, '{"a": 1, "a": 2}')
    refused(good, "appears twice")


def test_schema_version_99(good: Path) -> None:
    m = json.loads((good / "manifest.json").read_text())
    m["schema_version"] = 99
    reseal(good, json.dumps(m))
    refused(good, "schema_version: 99 is not supported", "upgrade edge-ser")
    m["schema_version"] = 1
    m["schema"] = "something-else"
    reseal(good, json.dumps(m))
    refused(good, "not an edge-ser bundle manifest")


def test_labels_do_not_match_outputs(tmp_path: Path, parts: Any) -> None:
    manifest, files = parts
    m = copy.deepcopy(manifest)
    m["labels"] = m["labels"][:6]
    refused(raw_write(tmp_path / "b", m, files), "model.outputs[0].shape", "6 labels")
    m["labels"] = ["a", "b", "a", "c", "d", "e", "f"]
    refused(raw_write(tmp_path / "c", m, files), "labels: must be unique; repeated: ['a']")


def test_input_does_not_match_feature_spec(tmp_path: Path, parts: Any) -> None:
    manifest, files = parts
    m = copy.deepcopy(manifest)
    m["feature_spec"]["n_mfcc"] = 20
    refused(raw_write(tmp_path / "b", m, files), "model.inputs[0].shape", "160-d")
    m["feature_spec"] = {"n_fft": 8}
    refused(raw_write(tmp_path / "c", m, files), "feature_spec:", "n_fft")
    m["feature_spec"] = {"fmax": "high"}
    refused(raw_write(tmp_path / "d", m, files), "feature_spec:")


def test_initializer_missing_from_weights(tmp_path: Path, kit: Kit) -> None:
    files = kit.files()
    files["weights.esq"] = esq_bytes([t for n, t in kit.tensors.items() if n != "features.2.bias"])
    refused(raw_write(tmp_path / "b", kit.manifest(), files), "weights.esq:", "'features.2.bias'", "missing")
    files["weights.esq"] = esq_bytes([*kit.tensors.values(), raw("stray", [1.0])])
    refused(raw_write(tmp_path / "c", kit.manifest(), files), "weights.esq:", "'stray'", "not initializers")


def test_weights_not_an_esq_file(tmp_path: Path, kit: Kit) -> None:
    files = kit.files()
    files["weights.esq"] = b"PK\x03\x04 definitely not esq" * 10
    msg = refused(raw_write(tmp_path / "b", kit.manifest(), files), "weights.esq", exc=PackedFormatError)
    assert "bundle" in msg


def test_bits_differ_from_bitplan(tmp_path: Path, kit: Kit) -> None:
    m = kit.manifest()
    m["bitplan"]["bits"]["features.0"] = 3
    refused(raw_write(tmp_path / "b", m, kit.files()), "'features.0.weight' is stored at 2 bits", "3 bits")


def test_onnx_and_manifest_inputs_outputs_disagree(tmp_path: Path, kit: Kit) -> None:
    files = kit.files()
    m = kit.manifest()
    m["model"]["inputs"][0]["name"] = "feats"
    refused(
        raw_write(tmp_path / "a", m, files), "model.onnx: graph inputs [('features', [None, 180])]", "feats"
    )
    m = kit.manifest()
    m["model"]["outputs"][0]["shape"] = [1, 7]
    refused(raw_write(tmp_path / "b", m, files), "model.onnx: graph outputs", "model.outputs")


def test_onnx_weights_must_be_external_in_weights_esq(tmp_path: Path, kit: Kit) -> None:
    # a model with its weights inline (the exporter forgot to externalise them)
    g = onnx.load_from_string(kit.onnx_bytes())
    t = g.graph.initializer[2]
    w = kit.weights()[t.name]
    del t.external_data[:]
    t.data_location = TensorProto.DEFAULT
    t.raw_data = w.tobytes()
    files = {**kit.files(), "model.onnx": g.SerializeToString()}
    refused(raw_write(tmp_path / "a", kit.manifest(), files), "model.onnx", "external data in weights.esq")
    # external, but pointing at another file
    g = onnx.load_from_string(kit.onnx_bytes())
    g.graph.initializer[0].external_data[0].value = "other.bin"
    files = {**kit.files(), "model.onnx": g.SerializeToString()}
    refused(
        raw_write(tmp_path / "b", kit.manifest(), files),
        "initializer 'mean': external data location is 'other.bin'",
    )
    # shapes differ from weights.esq
    g = onnx.load_from_string(kit.onnx_bytes())
    g.graph.initializer[0].dims[0] = 90
    files = {**kit.files(), "model.onnx": g.SerializeToString()}
    refused(raw_write(tmp_path / "c", kit.manifest(), files), "initializer 'mean': dims [90]")
    # not ONNX at all
    files = {**kit.files(), "model.onnx": b"\x08\x07\x12\xff\xff\xff\xff\x0f"}
    refused(raw_write(tmp_path / "d", kit.manifest(), files), "model.onnx: truncated protobuf")


def test_graph_well_formed(tmp_path: Path, kit: Kit) -> None:
    """model.onnx's graph is checked for what the engines rely on (onnx.helper writes anything we ask)."""

    def with_nodes(change) -> bytes:
        k = copy.deepcopy(kit)
        change(k.nodes)
        return k.onnx_bytes()

    cases = [
        (lambda n: n[2][1].__setitem__(0, "nowhere"), "node 2 (Gemm): input 'nowhere' is not a graph input"),
        (lambda n: n[3][2].__setitem__(0, "t1"), "node 3 (Relu): output 't1' is already defined"),
        (lambda n: n.pop(), "outputs: 'logits' is not produced by any node"),
        (lambda n: n.clear(), "nodes: the graph has none"),
        (
            lambda n: n[3][3].__setitem__("alpha", [0.5] * 5000),
            "node 3 (Relu): attribute 'alpha' has 5000 values",
        ),
    ]
    for i, (change, fragment) in enumerate(cases):
        files = {**kit.files(), "model.onnx": with_nodes(change)}
        refused(raw_write(tmp_path / f"b{i}", kit.manifest(), files), "model.onnx", fragment)


def test_files_section_checked(tmp_path: Path, kit: Kit) -> None:
    files = kit.files()
    m = kit.manifest()
    m["files"] = {
        "model.onnx": {"sha256": "xyz", "bytes": 1},
        "weights.esq": {"sha256": "0" * 64, "bytes": 1},
    }
    refused(
        raw_write(tmp_path / "a", m, files, fill=False),
        "files['model.onnx'].sha256: must be 64 lower-case hex",
    )
    m["files"] = {"../model.onnx": {"sha256": "0" * 64, "bytes": 1}}
    refused(
        raw_write(tmp_path / "b", m, files, fill=False), "'../model.onnx' is not a valid bundle file name"
    )


def test_directory_symlink_refused(tmp_path: Path, good: Path) -> None:
    target = tmp_path / "elsewhere.esq"
    shutil.move(good / "weights.esq", target)
    os.symlink(target, good / "weights.esq")
    refused(good, "weights.esq: is a symbolic link")


def test_not_a_bundle(tmp_path: Path) -> None:
    refused(tmp_path / "nope", "does not exist")
    (tmp_path / "x.tar").write_bytes(b"hello, not a tar file" * 40)
    refused(tmp_path / "x.tar", "not a readable .tar archive")


# --- tar archives ---------------------------------------------------------------------------------------------


@pytest.fixture()
def members(good: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    names = ("manifest.json", "model.onnx", "weights.esq", "manifest.sha256")
    return [file_info(n, (good / n).read_bytes()) for n in names]


def _write_tar(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    p = tmp_path / "x.tar"
    p.write_bytes(tar_of(members))
    return p


def test_tar_symlink_member(tmp_path: Path, members: Any) -> None:
    link = tarfile.TarInfo("weights.esq")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    p = _write_tar(tmp_path, [*members[:2], (link, None)])
    refused(p, "archive member 'weights.esq': is a link (to '/etc/passwd')")
    hard = tarfile.TarInfo("weights.esq")
    hard.type, hard.linkname = tarfile.LNKTYPE, "model.onnx"
    refused(_write_tar(tmp_path, [*members[:2], (hard, None)]), "is a link")


@pytest.mark.parametrize("name", ["../weights.esq", "/tmp/weights.esq", "sub/weights.esq", "..", "a\\b"])
def test_tar_path_members(tmp_path: Path, members: Any, name: str) -> None:
    info, data = file_info(name, members[2][1])
    refused(
        _write_tar(tmp_path, [*members[:2], (info, data)]), f"archive member {name!r}", "top-level files only"
    )


def test_tar_other_member_types(tmp_path: Path, members: Any) -> None:
    d = tarfile.TarInfo("sub")
    d.type = tarfile.DIRTYPE
    refused(_write_tar(tmp_path, [*members, (d, None)]), "archive member 'sub': is a folder")
    refused(  # a folder, then files beside it
        _write_tar(tmp_path, [(d, None), *members]), "is outside the folder 'sub'", "tar -C BUNDLE_FOLDER"
    )
    fifo = tarfile.TarInfo("pipe")
    fifo.type = tarfile.FIFOTYPE
    refused(_write_tar(tmp_path, [*members, (fifo, None)]), "archive member 'pipe': is not a regular file")
    refused(
        _write_tar(tmp_path, [*members, members[1]]), "archive member 'model.onnx': appears more than once"
    )
    refused(_write_tar(tmp_path, members[1:]), "manifest.json is missing")
    refused(
        _write_tar(tmp_path, [members[0], members[1], members[3]]),
        "weights.esq: listed in manifest.json but missing from the archive",
    )


def test_tar_huge_member(tmp_path: Path, members: Any) -> None:
    # a limit lower than the weights file (put first: the manifest is bigger than it)
    p = _write_tar(tmp_path, members[::-1])
    refused(p, "archive member 'weights.esq'", "more than the limit of 1,000 bytes", max_file_bytes=1000)
    refused(p, "total more than 2,000 bytes", max_total_bytes=2000)
    # a header that claims 8 GiB, followed by nothing: refused before any read
    big = tarfile.TarInfo("weights.esq")
    big.size = 8 << 30
    blocks = b""
    for info, data in members[:2]:
        blocks += info.tobuf(format=tarfile.GNU_FORMAT) + data + bytes(-len(data) % 512)
    p.write_bytes(blocks + big.tobuf(format=tarfile.GNU_FORMAT) + bytes(512))
    refused(p, "archive member 'weights.esq': 8,589,934,592 bytes is more than the limit")


def test_tar_truncated(tmp_path: Path, members: Any) -> None:
    data = tar_of(members)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        last = tf.getmembers()[-1]
    p = tmp_path / "t.tar"
    # inside the first header, inside the first member, at the last header, inside the last member
    for cut in (100, 700, last.offset + 10, last.offset_data + last.size // 2):
        p.write_bytes(data[:cut])
        with pytest.raises(BundleError, match=f"bundle {p}"):
            load_bundle(p)


# --------------------------------------------------------------------------------------------------------------
# fuzzing: whatever the bytes, only BundleError (or a subclass) comes out
# --------------------------------------------------------------------------------------------------------------


def fuzz(n: int) -> settings:
    """Deterministic (derandomized, no example database), no deadline, n cases."""
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "float32", "Gemm", "weights.esq", "features", "logits", "t1", "mean"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:6]):
            out += _paths(v, prefix + (i,))
    return out


def _mutate(obj: Any, data: Any) -> Any:
    paths = [p for p in _paths(obj) if p]
    path = data.draw(st.sampled_from(paths))
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    action = data.draw(st.sampled_from(["replace", "delete", "replace", "tweak"]))
    if action == "delete":
        del parent[key]
    elif action == "tweak" and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
        parent[key] = parent[key] + data.draw(st.sampled_from([-1, 1, 1000, -(10**6), 0.5]))
    elif action == "tweak" and isinstance(parent[key], str):
        parent[key] = parent[key] + data.draw(st.sampled_from(["", "x", "/..", "\x00"]))
    else:
        parent[key] = data.draw(json_values)
    return obj


@pytest.fixture(scope="module")
def fuzz_dir(parts: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    manifest, files = parts
    p = write_bundle(tmp_path_factory.mktemp("fuzz") / "b", manifest=manifest, files=files)
    return p, json.loads((p / "manifest.json").read_text())


@fuzz(1200)
@given(data=st.data())
def test_fuzz_manifest(fuzz_dir: tuple[Path, dict[str, Any]], data: Any) -> None:
    from edge_ser.engines import load_engine

    path, base = fuzz_dir
    m = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 3))):
        m = _mutate(m, data)
    (path / "manifest.json").write_text(json.dumps(m))
    try:
        b = load_bundle(path)
    except BundleError as e:
        assert str(e).startswith(f"bundle {path}"), e  # refused with a message naming the bundle
        return
    # it verified, so the graph still matches model.onnx: the numpy engine must run it
    y = load_engine(b, "numpy").predict(np.zeros((2, b.feature_spec.dim), np.float32))
    assert y.shape == (2, b.num_classes)


@fuzz(600)
@given(data=st.data())
def test_fuzz_tar_bytes(
    fuzz_dir: tuple[Path, dict[str, Any]], data: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path, _ = fuzz_dir
    (path / "manifest.json").write_text(json.dumps(fuzz_dir[1]))
    good = tar_of(
        [file_info(n, (path / n).read_bytes()) for n in ("manifest.json", "model.onnx", "weights.esq")]
    )
    buf = bytearray(good)
    for _ in range(data.draw(st.integers(1, 6))):
        kind = data.draw(st.sampled_from(["flip", "flip", "cut", "splice"]))
        # mostly the headers: that is where the parser's decisions are made
        pos = data.draw(st.integers(0, min(len(buf) - 1, 4096)) | st.integers(0, len(buf) - 1))
        if kind == "flip":
            buf[pos] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            del buf[pos:]
            if not buf:
                break
        else:
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=64))
    p = tmp_path_factory.getbasetemp() / "fuzz.tar"
    p.write_bytes(bytes(buf))
    try:
        load_bundle(p)
    except BundleError as e:
        assert str(e).startswith(f"bundle {p}"), e


@fuzz(600)
@given(data=st.data())
def test_fuzz_onnx_reader(kit: Kit, data: Any) -> None:
    good = kit.onnx_bytes()
    buf = bytearray(good)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        if data.draw(st.booleans()):
            buf[pos] = data.draw(st.integers(0, 255))
        else:
            del buf[pos : pos + data.draw(st.integers(1, 40))]
        if not buf:
            break
    try:
        read_onnx_graph(bytes(buf))
    except BundleError as e:
        assert str(e).startswith("model.onnx"), e  # the message names the source


@fuzz(200)
@given(blob=st.binary(max_size=300))
def test_fuzz_onnx_reader_random_bytes(blob: bytes) -> None:
    try:
        read_onnx_graph(blob, source="blob.onnx")
    except BundleError as e:
        assert str(e).startswith("blob.onnx"), e


def test_esq_roundtrip_used_by_kit(kit: Kit) -> None:
    """The .esq written by the helper reads back to the same tensors (sanity of the test kit itself)."""
    f = read_esq_bytes(esq_bytes(list(kit.tensors.values())))
    assert f.tensors == kit.tensors


def test_a_deployed_bundle_says_which_version_runs(tmp_path):
    """On a device the service runs ROOT/current -> versions/<version>: its banner (info, run) named only
    `current`, so a journal never said which version was running."""
    import shutil

    from edge_ser.bundle import load_bundle

    version = tmp_path / "versions" / "ser_emodb-17cf583947a8"
    shutil.copytree(Path(__file__).resolve().parents[1] / "bundles" / "ser_emodb", version)
    (tmp_path / "current").symlink_to(Path("versions") / version.name)
    assert "current (version ser_emodb-17cf583947a8)," in load_bundle(tmp_path / "current").describe()
    assert "(version" not in load_bundle(version).describe()


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda m: m["layers"][0].update(bits=8), "layers[0] ('features.0') says 8 bits (2 stored)"),
        (lambda m: m["bitplan"].update(average_bits=1.0), "bitplan.average_bits is 1"),
        (
            lambda m: m["bitplan"]["params"].update({"features.0": 5}),
            "bitplan.params gives layer 'features.0' 5",
        ),
    ],
)
def test_the_manifests_description_of_the_weights_must_match_them(
    tmp_path: Path, edit, fragment: str
) -> None:
    """`info` printed a layer's bits and the average from manifest fields nothing checked against weights.esq: an
    edited manifest said 8 bits of a layer stored at 2."""
    import shutil

    b = tmp_path / "b"
    shutil.copytree(Path(__file__).resolve().parents[1] / "bundles" / "laq_mlp_emodb", b)
    m = json.loads((b / "manifest.json").read_text())
    edit(m)
    reseal(b, json.dumps(m))
    refused(b, "manifest.json: " + fragment, "weights.esq stores otherwise")


@pytest.mark.parametrize("value", ["224", [], {}, 2.5, True, -1])
def test_bitplan_params_must_be_counts(tmp_path: Path, value) -> None:
    """`bitplan.params` values reached a `{n:,}` format unchecked: a string, list or object there was a ValueError /
    TypeError out of load_bundle instead of a BundleError naming the field."""
    import shutil

    b = tmp_path / "b"
    shutil.copytree(Path(__file__).resolve().parents[1] / "bundles" / "laq_mlp_emodb", b)
    m = json.loads((b / "manifest.json").read_text())
    m["bitplan"]["params"]["features.0"] = value
    reseal(b, json.dumps(m))
    refused(b, "manifest.json", "bitplan.params['features.0']")


def test_info_runs_the_model_before_saying_it_can_run(tmp_path: Path, capsys) -> None:
    """A graph whose shapes do not fit (a Gemm's transB flipped) passed every check; `info` said 'can run here with:
    onnxruntime, numpy, ...' and exited 0, then every engine failed on it. Each engine now runs it once first."""
    import hashlib
    import shutil

    onnx = pytest.importorskip("onnx")
    from edge_ser.cli import main

    b = tmp_path / "b"
    shutil.copytree(Path(__file__).resolve().parents[1] / "bundles" / "laq_mlp_emodb", b)
    model = onnx.load(str(b / "model.onnx"), load_external_data=False)
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    next(a for a in gemm.attribute if a.name == "transB").i = 0
    data = model.SerializeToString()
    (b / "model.onnx").write_bytes(data)
    m = json.loads((b / "manifest.json").read_text())
    m["files"]["model.onnx"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    reseal(b, json.dumps(m))
    # the TFLite variants are separate files, made before the edit, and still run; an engine the bundle lists that
    # fails here fails the check (exit 1: a health check notices, a review)
    assert main(["info", str(b)]) == 1
    out = capsys.readouterr().out
    assert "onnxruntime  cannot run this bundle" in out and "numpy        cannot run this bundle" in out
    assert "can run here with: tflite-fp32, tflite-fp16, tflite-int8 (each ran" in out


def test_a_media_file_given_as_the_bundle_is_named_as_such(tmp_path: Path) -> None:
    """`info clip.wav` (or predict with the bundle and the file swapped) said 'not a readable .tar archive (invalid
    header)'."""
    wav = tmp_path / "clip.wav"
    wav.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40))
    refused(wav, "is an audio file, not a bundle", "did you give the file where the bundle goes?")


def test_a_file_of_a_bundle_folder_given_as_the_bundle_names_the_folder() -> None:
    """`edge-ser bench bundles/av_cnn/manifest.json` (or model.onnx) said 'not a readable .tar archive (invalid
    header)': the file is one of a bundle folder's, and the folder is what to give."""
    folder = Path(__file__).resolve().parents[1] / "bundles" / "av_cnn"
    for name in ("manifest.json", "model.onnx"):
        msg = refused(folder / name, f"is a file of the bundle folder {folder}", f"give the folder: {folder}")
        assert "not a readable .tar archive" not in msg


def test_a_functionals_bundle_whose_two_spec_blocks_disagree_is_refused(tmp_path: Path) -> None:
    """Review: functionals_input.sample_rate edited to 22050 (feature_spec still 16000, the checksum recomputed)
    loaded and quietly changed every prediction."""
    b = tmp_path / "ser"
    shutil.copytree(Path(__file__).resolve().parents[1] / "bundles" / "ser_emodb", b)
    m = json.loads((b / "manifest.json").read_text())
    m["functionals_input"]["sample_rate"] = 22050
    reseal(b, json.dumps(m))
    refused(b, "feature_spec", "does not match functionals_input", "sample_rate 16000 against 22050")
