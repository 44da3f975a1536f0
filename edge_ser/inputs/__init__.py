"""Input kinds: what a model takes and how a file, a clip or a live window becomes it (`edge_ser.inputs.base`).

    kind = input_kind(bundle.manifest)          # or bundle.input_kind
    x = kind.file_inputs("clip.wav")            # {input name: rows}
    p = kind.combine(engine.predict(x))         # probabilities, one per label

A kind is one module here defining `KIND` (its `InputKind` subclass), plus one line of REGISTRY. A manifest's
kind is the one whose first block it carries (`lms_input` -> patches, `av_input` -> av); a manifest with none of
them holds a clip-vector model. docs/input-kinds.md says how to add one.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edge_ser.errors import ConfigError
from edge_ser.inputs.base import InputKind

if TYPE_CHECKING:
    from edge_ser.schema import Checker

REGISTRY: dict[str, str] = {
    "vector": "edge_ser.inputs.vector",
    "patches": "edge_ser.inputs.patches",
    "av": "edge_ser.inputs.av",
    "functionals": "edge_ser.inputs.functionals",
    "sequence": "edge_ser.inputs.sequence",
    "face": "edge_ser.inputs.face",
    "fusion": "edge_ser.inputs.fusion",
}
"""Kind name -> the module that defines it (as `KIND`)."""
DEFAULT = "vector"
"""The kind of a manifest that carries no kind block."""


def kind_class(name: str) -> type[InputKind]:
    """The InputKind subclass registered as `name`; ConfigError naming the REGISTRY entry when its module does not
    exist or does not define `KIND` as an InputKind subclass of that name."""
    try:
        module = REGISTRY[name]
    except KeyError:
        raise KeyError(f"input kind {name!r} is not registered (kinds: {sorted(REGISTRY)})") from None
    entry = f"edge_ser.inputs.REGISTRY[{name!r}] = {module!r}"
    try:
        kind = getattr(importlib.import_module(module), "KIND", None)
    except ModuleNotFoundError as e:
        # the module (or a package above it) is missing; else the module is there and something it imports is not
        if not e.name or not f"{module}.".startswith(f"{e.name}."):
            raise
        raise ConfigError(f"{entry}: there is no such module") from e
    if not (isinstance(kind, type) and issubclass(kind, InputKind)):
        raise ConfigError(f"{entry}: the module must define KIND = its InputKind subclass, got {kind!r}")
    if getattr(kind, "name", None) != name:
        raise ConfigError(f"{entry}: its KIND {kind.__name__} is named {getattr(kind, 'name', None)!r}")
    return kind


def kinds() -> dict[str, type[InputKind]]:
    """Every registered kind by name; ConfigError when two claim the same main block (the one that marks a
    manifest as being of that kind)."""
    found = {name: kind_class(name) for name in REGISTRY}
    owner: dict[str, str] = {}
    for name, k in found.items():
        if k.blocks:
            if k.blocks[0] in owner:
                raise ConfigError(
                    f"input kinds {owner[k.blocks[0]]!r} and {name!r} both mark their bundles by the manifest "
                    f"block {k.blocks[0]!r}: each kind's first block must be its own (edge_ser.inputs.REGISTRY)"
                )
            owner[k.blocks[0]] = name
    return found


def kind_of(manifest: Mapping[str, Any], c: Checker | None = None) -> type[InputKind]:
    """The kind a manifest declares by its blocks; with a checker, a manifest with blocks of two kinds (or a
    block without its kind's main block) is a problem reported to it."""
    registered = kinds()
    found = [k for k in registered.values() if k.blocks and k.blocks[0] in manifest]
    if c is not None:
        known = {key for k in registered.values() for key in k.blocks}
        for key in manifest:
            # a kind's block is named <kind>_input (docs/input-kinds.md); without this a bundle of a kind this
            # edge-ser lacks was checked as a clip-vector model, and refused for its input's shape
            if isinstance(key, str) and key.endswith("_input") and key not in known:
                c.problem(
                    key,
                    f"the block of an input kind this edge-ser does not have (kinds: {', '.join(registered)}): "
                    "a bundle made by a newer edge-ser, or a kind missing from edge_ser.inputs.REGISTRY",
                )
        if len(found) > 1:
            c.problem(
                found[1].blocks[0],
                f"a bundle has one input kind, but this manifest has {found[0].blocks[0]} and {found[1].blocks[0]}",
            )
        chosen = found[0] if found else kind_class(DEFAULT)
        owners: dict[str, list[type[InputKind]]] = {}
        for k in registered.values():
            for key in k.blocks[1:]:
                owners.setdefault(key, []).append(k)
        for key, ks in owners.items():
            if key in manifest and key not in chosen.blocks:  # face_crop: av's and face's
                whose = " or ".join(f"{k.name} bundles ({k.blocks[0]})" for k in ks)
                c.problem(key, f"belongs to {whose}; this is a {chosen.name} bundle")
    return found[0] if found else kind_class(DEFAULT)


def input_kind(manifest: Mapping[str, Any]) -> InputKind:
    """The input kind of a checked manifest, built from its blocks."""
    return kind_of(manifest).from_manifest(manifest)


__all__ = ["DEFAULT", "REGISTRY", "InputKind", "input_kind", "kind_class", "kind_of", "kinds"]
