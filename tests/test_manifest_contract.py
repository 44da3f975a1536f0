"""docs/bundle.md's manifest contract, pinned on the shipped manifests: which keys are required, that other
keys are optional or ignored, the form of `files` entries and the `manifest.sha256` line a reader accepts."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest

from edge_ser.bundle.manifest import validate_manifest
from edge_ser.bundle.read import check_manifest_sum
from edge_ser.errors import BundleError

ROOT = Path(__file__).resolve().parent.parent
MODEL_BUNDLES = sorted(p.parent for p in (ROOT / "bundles").glob("*/weights.esq"))
REQUIRED = ("schema", "schema_version", "model", "labels", "feature_spec", "files")
KIND_BLOCKS = ("lms_input", "av_input", "functionals_input", "sequence_input", "face_input", "face_crop")


def manifest_of(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def test_the_model_bundles_are_found() -> None:
    assert len(MODEL_BUNDLES) >= 8, MODEL_BUNDLES


@pytest.mark.parametrize("bundle", MODEL_BUNDLES, ids=lambda p: p.name)
def test_required_keys_are_refused_when_missing_and_the_others_are_optional(bundle: Path) -> None:
    manifest = manifest_of(bundle)
    validate_manifest(manifest, source=bundle.name)
    for key in manifest:
        m = copy.deepcopy(manifest)
        del m[key]
        if key in REQUIRED:
            with pytest.raises(BundleError, match=rf"{bundle.name}: manifest\.json: {key}"):
                validate_manifest(m, source=bundle.name)
        elif key not in KIND_BLOCKS:  # a kind's block makes it another kind: tested by each kind
            validate_manifest(m, source=bundle.name)
    validate_manifest({**manifest, "a_note_of_its_own": {"any": [1, "thing"]}}, source=bundle.name)


@pytest.mark.parametrize("bundle", MODEL_BUNDLES, ids=lambda p: p.name)
def test_files_entries_hold_lower_case_sha256_and_bytes(bundle: Path) -> None:
    manifest = manifest_of(bundle)
    assert {"model.onnx", "weights.esq"} <= set(manifest["files"])
    for name, entry in manifest["files"].items():
        data = (bundle / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}, name
    for required in ("model.onnx", "weights.esq"):
        m = copy.deepcopy(manifest)
        del m["files"][required]
        with pytest.raises(BundleError, match=f"does not list '{required}'"):
            validate_manifest(m, source=bundle.name)
    m = copy.deepcopy(manifest)
    m["files"]["weights.esq"]["sha256"] = m["files"]["weights.esq"]["sha256"].upper()
    with pytest.raises(BundleError, match=r"files\['weights.esq'\]\.sha256: must be 64 lower-case hex"):
        validate_manifest(m, source=bundle.name)


def test_the_manifest_sum_line_forms() -> None:
    data = (MODEL_BUNDLES[0] / "manifest.json").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert (MODEL_BUNDLES[0] / "manifest.sha256").read_bytes() == f"{digest}  manifest.json\n".encode()
    for line in (f"{digest}  manifest.json\n", f"{digest} *manifest.json", f"{digest}\tmanifest.json\r\n"):
        check_manifest_sum(line.encode(), data, "b")
    for line in (
        f"{digest.upper()}  manifest.json\n",
        f"{digest}  manifest.json\n\n",
        f"{digest}  ./manifest.json\n",
        f"{digest}manifest.json\n",
    ):
        with pytest.raises(BundleError, match="manifest.sha256: not one line"):
            check_manifest_sum(line.encode(), data, "b")


def test_a_stray_face_crop_names_every_kind_it_belongs_to() -> None:
    """face_fer without its face_input block: face_crop belongs to face and av bundles (the message named av only)."""
    manifest = manifest_of(ROOT / "bundles" / "face_fer")
    del manifest["face_input"]
    with pytest.raises(BundleError, match=r"face_crop: belongs to av bundles \(av_input\) or face bundles"):
        validate_manifest(manifest, source="face_fer")


def test_a_block_of_an_input_kind_this_edge_ser_lacks_is_named() -> None:
    """A clip-vector manifest with a `<kind>_input` block no registered kind reads (a kind a newer edge-ser has,
    or one left out of edge_ser.inputs.REGISTRY): the block is named, not the input's shape of a clip vector."""
    manifest = manifest_of(ROOT / "bundles" / "laq_mlp_emodb")
    manifest["hologram_input"] = {"frames": 100}
    with pytest.raises(
        BundleError, match=r"hologram_input: the block of an input kind this edge-ser does not have"
    ):
        validate_manifest(manifest, source="laq_mlp_emodb")


def test_a_misregistered_input_kind_names_its_registry_entry(monkeypatch, tmp_path) -> None:
    """A REGISTRY line naming no module, a module without KIND, a KIND of another name, or two kinds marking their
    bundles by one block: a ConfigError naming the entry (it was a bare ModuleNotFoundError / AttributeError from
    every bundle's load, or "this manifest has lms_input and lms_input")."""
    import sys

    from edge_ser import inputs
    from edge_ser.errors import ConfigError

    (tmp_path / "scratch_kinds.py").write_text(
        "from edge_ser.inputs.patches import PatchesKind\n"
        "class Other(PatchesKind):\n    name = 'other'\n"
        "class Named(PatchesKind):\n    name = 'twin'\n"
        "NOT_KIND = 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "scratch_kinds", raising=False)
    manifest = manifest_of(ROOT / "bundles" / "laq_mlp_emodb")
    cases = {
        "edge_ser.inputs.enrgy": r"REGISTRY\['x'\] = 'edge_ser.inputs.enrgy': there is no such module",
        "scratch_kinds": r"REGISTRY\['x'\] = 'scratch_kinds': the module must define KIND",
    }
    for module, message in cases.items():
        monkeypatch.setitem(inputs.REGISTRY, "x", module)
        with pytest.raises(ConfigError, match=message):
            validate_manifest(manifest, source="laq_mlp_emodb")
    import scratch_kinds

    monkeypatch.setattr(scratch_kinds, "KIND", scratch_kinds.Named, raising=False)
    with pytest.raises(ConfigError, match=r"its KIND Named is named 'twin'"):
        validate_manifest(manifest, source="laq_mlp_emodb")
    monkeypatch.delitem(inputs.REGISTRY, "x")
    monkeypatch.setitem(inputs.REGISTRY, "other", "scratch_kinds")
    monkeypatch.setattr(scratch_kinds, "KIND", scratch_kinds.Other)
    with pytest.raises(
        ConfigError, match=r"'patches' and 'other' both mark their bundles by the manifest block"
    ):
        validate_manifest(manifest, source="laq_mlp_emodb")
