"""The one lazy OpenCV import of the vision code: a clear install hint instead of a bare ImportError."""

from __future__ import annotations

from typing import Any

from edge_ser.errors import MissingDependencyError


def import_cv2(purpose: str) -> Any:
    """The cv2 module, or MissingDependencyError naming the package, the extra and `purpose`."""
    try:
        import cv2
    except ImportError as exc:
        raise MissingDependencyError("opencv-python-headless", "device", purpose) from exc
    return cv2
