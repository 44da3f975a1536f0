"""What several commands share: collecting media files from the paths given, the engine options."""

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
