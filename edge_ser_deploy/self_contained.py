"""What `deploy` and `firstboot` ship: one folder with everything the device needs. A model bundle is its own
files. A fusion bundle refers to its branch bundles as folders beside it (`../face_fer`), so it is shipped
self-contained: each branch in a sub-folder named after the branch, the fusion manifest pointing there
(`fusion.branches[].path`, a sub-folder form the loader accepts), each branch manifest byte for byte the one
the fusion pins."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from edge_ser.errors import ConfigError

_BRANCH_DIR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def fusion_files(bundle: Any) -> tuple[bytes, dict[str, bytes], list[str]]:
    """A loaded fusion bundle as one self-contained folder: (its rewritten manifest.json bytes, every branch file
    by relative name `branch/file`, the SHA256SUMS lines of those files from the pinned manifests)."""
    from edge_ser.bundle import MANIFEST_SUM_NAME, manifest_sum_line

    manifest = copy.deepcopy(bundle.manifest)
    files: dict[str, bytes] = {}
    sums: list[str] = []
    for entry in manifest["fusion"]["branches"]:
        name = str(entry["name"])
        if not _BRANCH_DIR.fullmatch(name) or name in ("manifest.json", MANIFEST_SUM_NAME, "SHA256SUMS"):
            raise ConfigError(f"bundle {bundle.root}: branch name {name!r} cannot be a folder name")
        branch = bundle.branches[name]
        raw = branch.manifest_bytes  # as loaded and checked against the pin: never read again from the folder
        if raw is None or hashlib.sha256(raw).hexdigest() != entry["manifest_sha256"]:
            raise ConfigError(
                f"bundle {bundle.root}: branch {name}: its manifest as loaded is not the one the fusion pins "
                "(load the fusion bundle with edge_ser.bundle.load_bundle)"
            )
        files[f"{name}/manifest.json"] = raw
        files[f"{name}/{MANIFEST_SUM_NAME}"] = manifest_sum_line(raw)
        sums.append(f"{entry['manifest_sha256']}  {name}/manifest.json")
        sums.append(
            f"{hashlib.sha256(files[f'{name}/{MANIFEST_SUM_NAME}']).hexdigest()}  {name}/{MANIFEST_SUM_NAME}"
        )
        for fname, e in branch.manifest["files"].items():
            files[f"{name}/{fname}"] = branch.files[fname]
            sums.append(f"{e['sha256']}  {name}/{fname}")
        entry["path"] = name
    text = json.dumps(manifest, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    return text.encode("utf-8"), files, sums


def write_self_contained(bundle: Any, dest: Path) -> Path:
    """Write a loaded fusion bundle as one self-contained folder at `dest` (a new folder), loaded back to check it:
    what `firstboot` puts on the boot partition."""
    from edge_ser.bundle import MANIFEST_SUM_NAME, load_bundle, manifest_sum_line

    raw, files, _ = fusion_files(bundle)
    dest.mkdir(parents=True)
    for name, data in {"manifest.json": raw, MANIFEST_SUM_NAME: manifest_sum_line(raw), **files}.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(data)
    load_bundle(dest)
    return dest


__all__ = ["fusion_files", "write_self_contained"]
