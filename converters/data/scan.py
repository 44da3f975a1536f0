"""Scanning a data set folder: its files by extension, and one warning for the files that do not fit its naming
scheme. Shared by every loader (converters.data.loaders) and the synthetic set (converters.data.synthetic)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

from converters.data.records import Record
from edge_ser.errors import DatasetError
from edge_ser.fileio import find_files


class DatasetWarning(UserWarning):
    """Some files in a data set folder were skipped because they do not follow its naming scheme."""


class Skipped:
    """Collects skipped files so a loader emits one warning with a count and a few examples."""

    def __init__(self, dataset: str, root: Path, scheme: str) -> None:
        self.dataset, self.root, self.scheme = dataset, root, scheme
        self.items: list[tuple[Path, str]] = []

    def add(self, path: Path, why: str) -> None:
        self.items.append((path, why))

    def finish(self, records: list[Record]) -> list[Record]:
        """Warn about skipped files, refuse an empty result, and sort the records by file path."""
        examples = "; ".join(f"{p.relative_to(self.root)} ({why})" for p, why in self.items[:3])
        more = f" and {len(self.items) - 3} more" if len(self.items) > 3 else ""
        if not records:
            found = f" ({len(self.items)} skipped: {examples}{more})" if self.items else ""
            raise DatasetError(
                f"{self.dataset}: no valid files in {self.root}, expected {self.scheme}{found}"
            )
        if self.items:
            warnings.warn(
                f"{self.dataset}: skipped {len(self.items)} file(s) in {self.root} that do not follow "
                f"{self.scheme}: {examples}{more}",
                DatasetWarning,
                stacklevel=3,
            )
        return sorted(records, key=lambda r: str(r.source))


def data_files(root: Path, extensions: Iterable[str]) -> list[Path]:
    """Regular files under `root` (recursively) with one of the extensions, skipping hidden files and folders;
    a FIFO, device or socket under a wanted name is skipped with an InputWarning (`edge_ser.fileio.find_files`)."""
    if not Path(root).is_dir():
        return []  # the loaders report a missing folder themselves, with the data set's name
    return sorted(find_files([root], extensions, skip_hidden=True, error=DatasetError, what="data set files"))


__all__ = ["DatasetWarning", "Skipped", "data_files"]
