"""Shared fixtures: where the real data sets are, and making `tests/` helpers importable."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path | None:
    """The shared data sets folder: $EDGE_SER_DATA, else ../shared/datasets beside the repo."""
    env = os.environ.get("EDGE_SER_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "datasets"
    return root if root.is_dir() else None


@pytest.fixture(scope="session")
def datasets() -> Path:
    root = data_root()
    if root is None:
        pytest.skip("real data sets not found: set EDGE_SER_DATA or place them in ../shared/datasets")
    return root


@pytest.fixture(scope="session")
def emodb_dir(datasets: Path) -> Path:
    d = datasets / "emodb" / "wav"
    if not d.is_dir():
        pytest.skip(f"EMODB not found at {d}")
    return d
