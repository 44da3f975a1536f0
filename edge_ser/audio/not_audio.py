"""What to say when a file given as audio is something else (libsndfile says only "Format not recognised")."""

from __future__ import annotations

from pathlib import Path


def not_audio(path: Path) -> str | None:
    """For an image given where audio is read: what it is and which bundle reads it; None for anything else."""
    from edge_ser.vision.video import IMAGE_EXTENSIONS

    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return None
    return "it is an image; a model that reads audio needs a recording, and a face bundle (bundles/face_fer) reads images"


def decode_problem(path: Path, error: BaseException) -> str:
    """Why soundfile could not open `path` (a regular file: the callers check that first), one line: `not_audio`'s
    reason, else libsndfile's, except that its "File does not exist or is not a regular file" (what it says of any
    MP3 it cannot parse, such as a text file named .mp3) becomes what is wrong with the file."""
    reason = not_audio(path)
    if reason is not None:
        return reason
    if "does not exist or is not a regular file" in str(error) and path.is_file():
        kind = path.suffix.lstrip(".").upper() or "audio"
        return f"the file exists but its contents are not {kind} audio (libsndfile found no valid frame)"
    return str(error)
