"""What to say when a file given as audio is something else (libsndfile says only "Format not recognised")."""

from __future__ import annotations

from pathlib import Path


def not_audio(path: Path) -> str | None:
    """For an image given where audio is read: what it is and which bundle reads it; None for anything else."""
    from edge_ser.vision.video import IMAGE_EXTENSIONS

    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return None
    return "it is an image; a model that reads audio needs a recording, and a face bundle (bundles/face_fer) reads images"
