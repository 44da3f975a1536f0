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
