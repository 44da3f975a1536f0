"""What every loaded bundle (a model bundle or a fusion bundle) answers about itself, written once."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class BundleIdentity:
    """Mixin for the bundle dataclasses: `source`, `name` and `num_classes` from `root`, `manifest`, `labels`."""

    root: Path
    manifest: dict[str, Any]
    labels: tuple[str, ...]

    @property
    def source(self) -> str:
        """Where the bundle was loaded from, for messages."""
        return str(self.root)

    @property
    def name(self) -> str:
        """The model's name in the manifest."""
        return str(self.manifest["model"]["name"])

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def manifest_bytes(self) -> bytes | None:
        """The manifest file's bytes as `load_bundle` read them (None for a bundle made in memory): what a copy
        of the bundle must carry to keep its `manifest.sha256` and a fusion bundle's pin true."""
        return getattr(self, "_cache", {}).get("manifest_bytes")

    @property
    def manifest_sha256(self) -> str | None:
        """The sha256 of the manifest file as stored (what `manifest.sha256` holds and a fusion bundle pins): which
        build of the bundle a report is of. `load_bundle` records it from the bytes it loaded (read again later, a
        device's `current` switched by a deploy during a long bench would have named the new build); a bundle made
        in memory reads its file. None when the file cannot be read."""
        cached = getattr(self, "_cache", {}).get("manifest_sha256")
        if cached is not None:
            return cached
        import hashlib

        from edge_ser.bundle.manifest import MANIFEST_NAME
        from edge_ser.bundle.read import open_source
        from edge_ser.errors import EdgeSerError
        from edge_ser.limits import MAX_MANIFEST_BYTES

        try:
            with open_source(Path(self.root), str(self.root), MAX_MANIFEST_BYTES, MAX_MANIFEST_BYTES) as s:
                return hashlib.sha256(s.read(MANIFEST_NAME, MAX_MANIFEST_BYTES)).hexdigest()
        except (OSError, EdgeSerError):
            return None
