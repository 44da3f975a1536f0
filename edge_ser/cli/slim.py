"""`edge-ser slim BUNDLE OUT`: a copy of a bundle without its TFLite variants, for a device that does not run them."""

from __future__ import annotations

import argparse

from edge_ser.cli.common import given_path
from edge_ser.text import printable


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "slim",
        help="a copy of a bundle without its TFLite variants (re-signed)",
        description="Write a copy of BUNDLE to OUT without its TFLite variants (model_*.tflite), or with only those "
        "--keep names, re-signed and verified: for a device that runs onnxruntime or numpy. A variant cannot be "
        "deleted by hand: the manifest lists and signs every file. Every other file is kept byte for byte.",
    )
    p.add_argument("bundle", type=given_path, help="bundle folder or .tar")
    p.add_argument("out", type=given_path, help="where the copy goes (a folder, or a .tar)")
    p.add_argument(
        "--keep",
        action="append",
        choices=("fp32", "fp16", "int8"),
        default=[],
        help="a TFLite variant to keep (repeat for more; default: none)",
    )
    p.set_defaults(func=cmd_slim)


def cmd_slim(args: argparse.Namespace) -> int:
    from edge_ser.bundle.write import without_tflite

    path, dropped = without_tflite(
        args.bundle, args.out, keep=tuple(args.keep), as_tar=args.out.suffix.lower() == ".tar"
    )
    size = sum(f.stat().st_size for f in path.iterdir()) if path.is_dir() else path.stat().st_size
    print(printable(f"wrote {path} ({size:,} bytes) without {', '.join(dropped)}"))
    return 0
