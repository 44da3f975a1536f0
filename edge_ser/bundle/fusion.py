"""Fusion bundles: a folder whose manifest composes branch bundles with a late-fusion rule (docs/fusion.md).

    bundles/av_fusion/manifest.json      {"schema": "edge-ser-bundle", "schema_version": 1,
                                          "model": {"name": "av_fusion"}, "labels": [...],
                                          "fusion": {"branches": [{"name": "audio", "path": "../av_cnn_audio",
                                                                   "manifest_sha256": "<64 hex>", "temperature": 1.2,
                                                                   "weight": 1.0}, {"name": "face", ...}],
                                                     "prior": [...]}, "files": {}}
    bundles/av_fusion/manifest.sha256    its checksum, as every bundle's

Each branch is a complete bundle (any input kind, any engine) at `path`, relative to the fusion folder: a
sibling (`../face_fer`, nothing copied) or a sub-folder (`face/`, a self-contained folder to deploy). The
branch's manifest sha256 is pinned, so a branch rebuilt or swapped after the rule was fitted is refused; the
branch's own manifest pins its files, so the pin covers every byte the fusion runs. `load_bundle` loads a
fusion bundle when its manifest has a `fusion` block; nothing else in edge-ser needs to know.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from edge_ser.bundle.identity import BundleIdentity
from edge_ser.bundle.manifest import MANIFEST_NAME, check_schema
from edge_ser.bundle.read import BundleSource, DirSource
from edge_ser.errors import BundleError, ConfigError
from edge_ser.fusion import FusionRule
from edge_ser.inputs.fusion import BLOCK, CLIP_INPUT, FusionKind
from edge_ser.limits import MAX_LABEL_CHARS, MAX_LABELS, MAX_NAME_CHARS
from edge_ser.schema import Checker

if TYPE_CHECKING:
    from edge_ser.bundle.load import Bundle
    from edge_ser.features.spec import FeatureSpec

MAX_BRANCHES = 4
"""Branches a fusion bundle may compose."""
_SHA_RE = re.compile(r"[0-9a-f]{64}")


def is_fusion(manifest: Any) -> bool:
    """Whether a parsed manifest is a fusion bundle's (it has the `fusion` block)."""
    return isinstance(manifest, dict) and BLOCK in manifest


def check_fusion_manifest(manifest: Mapping[str, Any], src: str) -> FusionRule:
    """A fusion manifest checked field by field (BundleError naming the field); its rule."""
    if not isinstance(
        manifest, Mapping
    ):  # a direct call with a list or text (load_bundle checks is_fusion first)
        raise BundleError(
            f"bundle {src}: {MANIFEST_NAME} must be a JSON object, got {type(manifest).__name__}"
        )
    c = Checker(f"bundle {src}: {MANIFEST_NAME}", error=BundleError)
    check_schema(c, manifest)
    model = c.get(manifest, "model", "", dict)
    c.text(model.get("name"), "model.name", max_len=MAX_NAME_CHARS)
    labels = c.get(manifest, "labels", "", list)
    if not 1 <= len(labels) <= MAX_LABELS:
        c.problem("labels", f"must list 1 to {MAX_LABELS} labels, got {len(labels)}")
    for i, lab in enumerate(labels):
        c.text(lab, f"labels[{i}]", max_len=MAX_LABEL_CHARS)
    c.unique(labels, "labels")
    block = c.get(manifest, BLOCK, "", dict)
    branches = c.get(block, "branches", BLOCK, list)
    if not 1 <= len(branches) <= MAX_BRANCHES:
        c.problem(f"{BLOCK}.branches", f"must list 1 to {MAX_BRANCHES} branch bundles, got {len(branches)}")
    for i, b in enumerate(branches):
        p = f"{BLOCK}.branches[{i}]"
        c.of(b, p, dict)
        branch_path(c, c.get(b, "path", p, str), f"{p}.path")
        sha = c.get(b, "manifest_sha256", p, str)
        if not _SHA_RE.fullmatch(sha):
            c.problem(
                f"{p}.manifest_sha256", "must be 64 lower-case hex digits (the branch manifest's sha256)"
            )
    files = manifest.get("files", {})
    if files != {}:
        c.problem(
            "files",
            "a fusion bundle holds no files of its own (its branches hold them): must be {} or absent",
        )
    return c.build(BLOCK, FusionRule.from_dict, block, labels)


def branch_path(c: Checker, path: str, where: str) -> PurePosixPath:
    """A branch path: relative, '/'-separated, no '.' parts, at most one leading '..' (a sibling bundle)."""
    p = PurePosixPath(path)
    parts = p.parts
    ups = len(parts) - len([x for x in parts if x != ".."])
    if p.is_absolute() or not parts or "." in parts or "\\" in path or ".." in parts[ups:] or ups > 1:
        c.problem(
            where, f"{path!r} must be a relative path to a sibling ('../name') or a sub-folder ('name')"
        )
    if ups == 1 and len(parts) != 2:
        c.problem(where, f"{path!r}: a sibling branch is '../name'")
    return p


@dataclass(frozen=True, eq=False)
class FusionBundle(BundleIdentity):
    """A loaded fusion bundle: its manifest, its rule and its loaded (verified) branch bundles, by name."""

    root: Path
    manifest: dict[str, Any]
    labels: tuple[str, ...]
    rule: FusionRule
    branches: Mapping[str, Bundle]
    files: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}))
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def input_kind(self) -> FusionKind:
        if "input_kind" not in self._cache:
            self._cache["input_kind"] = FusionKind(
                self.rule, {n: b.input_kind for n, b in self.branches.items()}
            )
        return self._cache["input_kind"]

    @property
    def feature_spec(self) -> FeatureSpec:
        return self.input_kind.feature_spec

    @property
    def input_names(self) -> tuple[str, ...]:
        return (CLIP_INPUT,)

    @property
    def input_name(self) -> str:
        return CLIP_INPUT

    @property
    def output_names(self) -> tuple[str, ...]:
        return ("fused",)

    @property
    def input_shapes(self) -> tuple[tuple[int | None, ...], ...]:
        return ((None,),)

    @property
    def normalization(self) -> dict[str, Any] | None:
        return None

    @property
    def normalized_input(self) -> str | None:
        return None

    def describe(self) -> str:
        parts = ", ".join(f"{n} {b.name} ({b.source})" for n, b in self.branches.items())
        return f"{self.name} from {self.source}, {self.num_classes} labels, late fusion of {parts}"

    def __str__(self) -> str:
        return f"FusionBundle({self.describe()})"


def _branch_path(root: Path, rel: str) -> Path:
    """Where a branch is, as the file system resolves `root/rel` (symbolic links followed, as opening the files
    does: on a device `current/../av_fn_audio` is beside the version `current` points to, which a text
    normalisation would get wrong), and said the way `root` was given: relative to the working folder when root
    was and the branch is under it (`bundles/av_fn_audio`, not `bundles/av_fusion/../av_fn_audio`)."""
    path = (root / rel).resolve()
    if not root.is_absolute():
        try:
            return path.relative_to(Path.cwd().resolve())
        except ValueError:
            pass
    return path


def load_fusion_bundle(
    root: Path,
    src: str,
    manifest: dict[str, Any],
    source: BundleSource,
    *,
    verify: bool,
    load_bundle: Callable[..., Any],
) -> FusionBundle:
    """The fusion bundle of a parsed manifest (see the module doc); `load_bundle` loads each branch (it is
    `edge_ser.bundle.load_bundle`, which calls this)."""
    if not isinstance(source, DirSource):
        raise BundleError(
            f"bundle {src}: a fusion bundle is a folder (its branches are folders beside or in it), not a .tar"
        )
    rule = check_fusion_manifest(manifest, src)
    entries = manifest[BLOCK]["branches"]
    inside = {PurePosixPath(b["path"]).parts[0] for b in entries if not b["path"].startswith("..")}
    source.refuse_unlisted(inside)
    branches: dict[str, Bundle] = {}
    for i, entry in enumerate(entries):
        where = f"bundle {src}: {BLOCK}.branches[{i}] ({entry['name']}, {entry['path']})"
        path = _branch_path(root, entry["path"])
        if path.resolve() == root.resolve():
            raise BundleError(f"{where}: is the fusion bundle itself")
        try:
            b = load_bundle(path, verify=verify)
        except BundleError as e:
            raise BundleError(f"{where}: {e}") from e
        if isinstance(b, FusionBundle):
            raise BundleError(f"{where}: is itself a fusion bundle; a branch must be a model bundle")
        if verify:
            sha = b.manifest_sha256  # of the manifest bytes the branch was loaded from
            if sha != entry["manifest_sha256"]:
                raise BundleError(
                    f"{where}: its manifest's sha256 is {sha[:12]}..., the fusion manifest pins "
                    f"{entry['manifest_sha256'][:12]}...: the branch was rebuilt or replaced after the fusion was "
                    "fitted (fit it again: benchmarks/ship_av_fusion.py)"
                )
        try:
            rule.branch(entry["name"]).projection(b.labels, rule.labels)
        except ConfigError as e:
            raise BundleError(f"{where}: {e}") from e
        branches[entry["name"]] = b
    bundle = FusionBundle(root, manifest, tuple(manifest["labels"]), rule, MappingProxyType(branches))
    try:
        bundle.input_kind  # noqa: B018 - the branches must agree on rate and face crop
    except ConfigError as e:
        raise BundleError(f"bundle {src}: {e}") from e
    return bundle


__all__ = [
    "MAX_BRANCHES",
    "FusionBundle",
    "check_fusion_manifest",
    "is_fusion",
    "load_fusion_bundle",
]
