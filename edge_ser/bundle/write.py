"""Writing a bundle: a directory or a `.tar`, verified as the device will load it, replaced atomically."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import shutil
import tarfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_ser.bundle.fusion import BLOCK, check_fusion_manifest, load_fusion_bundle
from edge_ser.bundle.load import load_bundle, make_bundle, parse_manifest
from edge_ser.bundle.manifest import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    MANIFEST_SCHEMA_VERSION,
    MANIFEST_SUM_NAME,
    check_file_name,
)
from edge_ser.bundle.read import DirSource, manifest_sum_line
from edge_ser.errors import BundleError
from edge_ser.fileio import atomic_write, signals_deferred
from edge_ser.schema import tflite_variants

if TYPE_CHECKING:
    from edge_ser.fusion import FusionRule


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
        check_file_name(name, f"bundle {src}: write_bundle files")
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
    make_bundle(p, src, parse_manifest(manifest_bytes, src), contents, verify=True)
    everything = {
        MANIFEST_NAME: manifest_bytes,
        MANIFEST_SUM_NAME: manifest_sum_line(manifest_bytes),
        **contents,
    }

    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file where a folder of the path should be, no permission, ...
        raise BundleError(f"bundle {src}: cannot make its folder {p.parent}: {e.strerror or e}") from None
    check_replaceable(p, as_tar=tar)
    if tar:
        return atomic_write(p, _tar_bytes(everything))
    tag = uuid.uuid4().hex[:8]
    tmp = p.parent / f".{p.name}.tmp-{tag}"  # the whole folder is built beside it, then renamed in one step
    old = p.parent / f".{p.name}.old-{tag}"
    try:
        tmp.mkdir()
        for name, data in everything.items():
            atomic_write(tmp / name, data)
        with signals_deferred():  # the two renames are one step: a Ctrl-C waits for both
            try:
                if p.exists():
                    os.rename(p, old)
                os.rename(tmp, p)
            except BaseException:
                # an OSError (or an interrupt outside the main thread): the old bundle goes back
                if old.exists() and not p.exists():
                    os.rename(old, p)
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return p


def check_replaceable(path: str | os.PathLike[str], *, as_tar: bool = False) -> None:
    """BundleError unless `write_bundle` may write at `path`: nothing there, an empty folder, or a bundle (a folder
    holding manifest.json; with `as_tar`, a file). A command checks this before its work, not after it."""
    p, src = Path(path), str(path)
    if as_tar or p.suffix == ".tar":
        if p.exists() and not p.is_file():
            raise BundleError(f"bundle {src}: exists and is not a file; refusing to replace it")
        return
    if p.is_symlink():
        raise BundleError(f"bundle {src}: is a symbolic link; write to the directory it points to")
    if not p.exists():
        return
    if not p.is_dir():
        raise BundleError(f"bundle {src}: exists and is not a directory; refusing to replace it")
    if any(p.iterdir()) and not (p / MANIFEST_NAME).is_file():
        raise BundleError(
            f"bundle {src}: exists and is not a bundle (no {MANIFEST_NAME}); refusing to replace it"
        )


def _tar_bytes(files: Mapping[str, bytes]) -> bytes:
    """A plain tar of top-level files, deterministic (fixed mtime, owner and mode), manifest and its sum first."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name in sorted(files, key=lambda n: (n != MANIFEST_NAME, n != MANIFEST_SUM_NAME, n)):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tf.addfile(info, io.BytesIO(files[name]))
    return buf.getvalue()


def write_fusion_bundle(
    out: str | os.PathLike[str],
    *,
    name: str,
    rule: FusionRule,
    branches: Mapping[str, str | os.PathLike[str]],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a fusion bundle folder at `out` (manifest.json + manifest.sha256) that composes the bundle folders
    `branches` (rule branch name -> path; stored relative to `out`, their manifests' sha256 pinned), then load it
    back as the device will. Returns `out`."""
    import datetime as _dt

    import edge_ser

    out = Path(out)
    block = rule.to_dict()
    for b in block["branches"]:
        path = Path(branches[b["name"]])
        b["path"] = Path(os.path.relpath(path.resolve(), out.resolve())).as_posix()
        b["manifest_sha256"] = hashlib.sha256((path / MANIFEST_NAME).read_bytes()).hexdigest()
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "edge_ser_version": edge_ser.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": {"name": name},
        "labels": list(rule.labels),
        BLOCK: block,
        **dict(extra or {}),
        "files": {},
    }
    check_fusion_manifest(manifest, str(out))
    data = (json.dumps(manifest, indent=2, allow_nan=False, ensure_ascii=False) + "\n").encode("utf-8")
    out.mkdir(parents=True, exist_ok=True)
    # the device's checks (branches loaded, labels mapped, rates agreeing) on the manifest about to be written, before
    # it is: a branch the rule cannot use was found only after the manifest had replaced a working fusion bundle's
    load_fusion_bundle(
        out,
        str(out),
        parse_manifest(data, str(out)),
        DirSource(out, str(out)),
        verify=True,
        load_bundle=load_bundle,
    )
    _write_manifest_pair(out, data)
    load_bundle(out)
    return out


def _write_manifest_pair(out: Path, data: bytes) -> None:
    """Write a fusion bundle's manifest.json and its manifest.sha256 as one step: a Ctrl-C waits for both, and a
    sum that cannot be written (a full disk) puts the manifest back as it was. One without the other is a bundle the
    device refuses (its manifest and sum disagree); a fusion folder may hold its branches, so it is not swapped
    whole as `write_bundle` swaps a bundle's folder."""
    manifest, summed = out / MANIFEST_NAME, out / MANIFEST_SUM_NAME
    before = manifest.read_bytes() if manifest.is_file() else None
    with signals_deferred():
        atomic_write(manifest, data)
        try:
            atomic_write(summed, manifest_sum_line(data))
        except BaseException:
            if before is None:
                manifest.unlink(missing_ok=True)
            else:
                atomic_write(manifest, before)
            raise


def without_tflite(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    keep: tuple[str, ...] = (),
    as_tar: bool = False,
) -> tuple[Path, list[str]]:
    """Write a copy of the bundle at `src` to `out` without its TFLite variants (but those named in `keep`), re-signed
    and verified as `write_bundle` writes any bundle: a device that runs onnxruntime or numpy only needs none of
    them, and a variant deleted by hand makes the bundle unloadable (the manifest lists and signs it). Every other
    file is kept byte for byte. Returns (the path written, the files left out). BundleError for a fusion bundle
    (its branches are separate bundles: slim those; their manifests' sha256 are pinned, so the fusion is then made
    again), a bundle with no variants, or a `keep` it does not have."""
    source, target = Path(src).resolve(), Path(out).resolve()
    if target == source or (source.is_dir() and source in target.parents):
        raise BundleError(
            f"bundle {src}: write the copy outside it ({out} is {'the bundle' if target == source else 'inside it'}: "
            "a bundle holds only the files its manifest lists, and a fusion bundle may pin this one)"
        )
    bundle = load_bundle(src)
    if BLOCK in bundle.manifest:
        raise BundleError(
            f"bundle {src}: a fusion bundle holds no model files; its branches are bundles of their own, and their "
            "manifests' sha256 are pinned in it, so a slimmed branch needs the fusion bundle made again"
        )
    manifest = copy.deepcopy(dict(bundle.manifest))
    variants = tflite_variants(manifest)
    if not variants and keep:  # slimmed already: there is nothing to keep, rather than nothing to leave out
        raise BundleError(
            f"bundle {src}: no TFLite variant {', '.join(sorted(keep))} to keep (it has no TFLite variants: "
            "slimmed already, or never converted)"
        )
    if not variants:
        raise BundleError(f"bundle {src}: has no TFLite variants to leave out")
    unknown = sorted(set(keep) - set(variants))
    if not unknown and set(keep) >= set(variants):
        raise BundleError(
            f"bundle {src}: keeping every TFLite variant ({', '.join(variants)}) leaves nothing out"
        )
    if unknown:
        raise BundleError(
            f"bundle {src}: no TFLite variant {', '.join(unknown)} to keep (it has {', '.join(variants)})"
        )
    dropped = sorted(v["file"] for name, v in variants.items() if name not in keep)
    if keep:
        manifest["tflite"]["variants"] = {name: v for name, v in variants.items() if name in keep}
    else:
        del manifest["tflite"]
    files = {name: bundle.read(name) for name in manifest["files"] if name not in dropped}
    manifest["files"] = {}
    return write_bundle(out, manifest=manifest, files=files, as_tar=as_tar), dropped


__all__ = ["without_tflite", "write_bundle", "write_fusion_bundle"]
