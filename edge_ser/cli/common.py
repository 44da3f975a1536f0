"""What several commands share: collecting media files from the paths given, the engine and enrolment options."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from edge_ser.errors import AudioFormatError
from edge_ser.fileio import find_files
from edge_ser.inputs.base import AUDIO_EXTENSIONS

ENGINE_HELP = "auto (default), onnxruntime, numpy, or tflite / tflite-int8 / tflite-fp16 / tflite-fp32"


def media_files(paths: Iterable[Path], extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> list[Path]:
    """The files given, and those with one of `extensions` inside the folders given (recursively, sorted).

    Only regular files: a FIFO, device or socket inside a folder is skipped with an InputWarning, one given
    directly is an AudioFormatError (it would block or never end), as is a path that does not exist.
    """
    return find_files(paths, extensions, error=AudioFormatError, what="media files")


def add_engine_args(p: argparse.ArgumentParser, *, threads_default: int | None = None) -> None:
    p.add_argument("--engine", default="auto", help=ENGINE_HELP)
    default = threads_default if threads_default is not None else "the engine's choice"
    p.add_argument(
        "--threads", type=int, default=threads_default, help=f"inference threads (default: {default})"
    )
    p.add_argument(
        "--delegate",
        metavar="PATH",
        default=None,
        help="tflite engine: load this TFLite delegate library (e.g. libedgetpu.so.1 for a Coral); a missing "
        "or unloadable file is an error naming it",
    )


__all__ = ["ENGINE_HELP", "add_engine_args", "media_files"]


def add_enroll_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--enroll",
        action="append",
        type=Path,
        default=None,
        metavar="PATH",
        help="a recording of the speaker, or a folder of them (repeat for more), added to the speaker statistics "
        "before anything is "
        "classified: a bundle with speaker normalisation then starts from the speaker instead of the training "
        "prior (about 30 clips bring it within ~2 points of knowing the speaker; docs/protocol.md); with "
        "--no-adapt the statistics then stay those of the enrolment",
    )


def enroll_files(rec, paths: Iterable[Path]) -> str:
    """Feed the audio files among `paths` to `rec.enroll_file`; a line saying how many clips were added."""
    paths = list(paths)
    files = media_files(paths)
    if not files:
        raise AudioFormatError(
            f"--enroll: no {'/'.join(AUDIO_EXTENSIONS)} files in {', '.join(map(str, paths))}"
        )
    clips = sum(rec.enroll_file(f) for f in files)
    return f"enrolled {clips} clip(s) of speech from {len(files)} file(s)"
