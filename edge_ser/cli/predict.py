"""`edge-ser predict BUNDLE FILES...`: classify files with a bundle (a thin wrapper over `Recognizer`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_ser.cli.common import add_engine_args, media_files
from edge_ser.text import printable


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="classify audio (or, with an audio-visual bundle, video) files with a bundle",
        description="Each file through the bundle's own input pipeline (the clip vector, log-Mel patches voted "
        "per clip, or for an audio-visual bundle 6 sampled video frames through its Haar face crop and the "
        "audio track as MFCC segments), then the bundle on an engine. Folders are searched recursively.",
    )
    p.add_argument("bundle", type=Path, help="bundle folder or .tar")
    p.add_argument(
        "files", nargs="+", type=Path, help="audio files or folders (audio-visual bundles: video files)"
    )
    add_engine_args(p)
    p.add_argument("--top", type=int, default=3, help="labels to show per file (default 3)")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from edge_ser.recognizer import Recognizer

    rec = Recognizer(args.bundle, args.engine, threads=args.threads)
    files = media_files(args.files, rec.kind.file_extensions)
    if not files:
        print(printable(f"  no {'/'.join(rec.kind.file_extensions)} files in {[str(f) for f in args.files]}"))
        return 2
    results = rec.predict_files(files)
    for f, r in zip(files, results, strict=True):
        print(printable(f"  {f.name}: " + ", ".join(f"{lab} {p:.2f}" for lab, p in r.top(args.top))))
    print(f"  ({rec.engine.name}: {len(files)} clip(s) in {results[0].timings['inference']:.2f} ms)")
    return 0
