"""The SHA256SUMS of a bundle folder as it is shipped to a device, written once for `edge-ser deploy` and first
boot, so both leave the same file in ROOT/versions/<version> (a deploy that finds it byte for byte the same, and
every file passing `sha256sum -c`, uploads nothing).

The lines come from the manifests, not from the files' bytes: manifest.json, its manifest.sha256 (when there is
one), every file the manifest lists, and for a self-contained fusion bundle each branch sub-folder's
manifest.json (by the sha256 the fusion manifest pins), its manifest.sha256 and every file its manifest lists.

Standard library only, no `from __future__` and self-contained on purpose: `edge-ser firstboot` runs this very
file on the device (whose wheel carries no edge_ser_deploy), after naming.py.
"""

import hashlib
import json
from collections.abc import Callable


def sha256sums(manifest_raw: bytes, read: Callable[[str], bytes | None]) -> bytes:
    """SHA256SUMS for the bundle whose manifest.json is `manifest_raw`; `read(relative name)` gives another file
    of the shipped folder (None when absent): manifest.sha256 and, for a fusion bundle, the branch sub-folders'
    manifest.json and manifest.sha256. ValueError when a branch's manifest is missing."""
    m = json.loads(manifest_raw)
    lines = [f"{hashlib.sha256(manifest_raw).hexdigest()}  manifest.json"]
    own = read("manifest.sha256")
    if own is not None:
        lines.append(f"{hashlib.sha256(own).hexdigest()}  manifest.sha256")
    lines += [f"{e['sha256']}  {n}" for n, e in (m.get("files") or {}).items()]
    for entry in (m.get("fusion") or {}).get("branches") or []:
        sub = str(entry["path"]).strip("/")
        raw = read(f"{sub}/manifest.json")
        if raw is None:
            raise ValueError(f"branch {entry.get('name', sub)}: no {sub}/manifest.json in the shipped folder")
        lines.append(f"{entry['manifest_sha256']}  {sub}/manifest.json")
        sub_sum = read(f"{sub}/manifest.sha256")
        if sub_sum is not None:
            lines.append(f"{hashlib.sha256(sub_sum).hexdigest()}  {sub}/manifest.sha256")
        lines += [f"{e['sha256']}  {sub}/{n}" for n, e in (json.loads(raw).get("files") or {}).items()]
    return ("\n".join(lines) + "\n").encode()
