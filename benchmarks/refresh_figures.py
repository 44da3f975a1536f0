"""Refresh a shipped ser_* bundle's speaker-independent figures from its nested tables, without retraining.

    python benchmarks/refresh_figures.py bundles/ser_emodb bundles/ser_ravdess
    python benchmarks/refresh_figures.py mybundle --check     # exit 1 if the manifest is behind its tables

ship_ser.py writes the nested figure of its procedure (ship_ser_nested.py's table, and the same procedure at
other training seeds where it was repeated: `over_seeds`) into the manifest when it ships. A nested run made
after that (more seeds, a rerun) leaves the bundle's manifest behind its tables; this rewrites the manifest's
`accuracy.speaker_independent` from the tables it names, as ship_ser.py would now, and nothing else: the model,
the weights and the other files stay byte for byte, and the bundle is verified as the device loads it before
it is replaced (edge_ser.bundle.write_bundle: a temporary sibling, then a rename).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run_main  # noqa: E402
from ship_ser import nested_figures  # noqa: E402

from edge_ser.bundle import load_bundle, write_bundle  # noqa: E402
from edge_ser.errors import BundleError  # noqa: E402

PREFIX = "ship_ser_nested_"
REPO_TABLES = "benchmarks/results/"


def nested_source(path: Path, manifest: dict) -> tuple[str, Path | None]:
    """The nested run the manifest's figure came from: its name and its tables folder (None: the repository's
    benchmarks/results/), read from `accuracy.speaker_independent.source`."""
    si = manifest.get("accuracy", {}).get("speaker_independent")
    source = si.get("source") if isinstance(si, dict) else None
    if not isinstance(source, str) or not Path(source).name.startswith(PREFIX):
        raise BundleError(
            f"bundle {path}: its manifest has no speaker-independent figure from ship_ser_nested.py "
            "(accuracy.speaker_independent.source), so there is nothing to refresh"
        )
    name = Path(source).stem.removeprefix(PREFIX)
    return name, (None if source.startswith(REPO_TABLES) else Path(source).parent)


def refreshed(path: Path) -> tuple[dict, dict]:
    """The bundle's manifest and the same manifest with the figures its tables give now."""
    manifest = load_bundle(path).manifest  # verified: a bundle the device would refuse is not rewritten
    name, tables = nested_source(path, manifest)
    figures = nested_figures(name, tables)
    if figures is None:
        raise BundleError(
            f"bundle {path}: the nested run {name} it names has no complete table in "
            f"{tables or REPO_TABLES} (ship_ser_nested.py makes it)"
        )
    new = copy.deepcopy(manifest)
    new["accuracy"]["speaker_independent"] = figures
    return manifest, new


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "bundles", nargs="+", type=Path, metavar="BUNDLE", help="a bundle folder made by ship_ser.py"
    )
    ap.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a manifest differs from its tables"
    )
    args = ap.parse_args()
    behind = []
    for path in args.bundles:
        if not path.exists():  # was "not a folder (a tar bundle ...)" for a path that is not there (a review)
            raise BundleError(f"bundle {path}: does not exist (give a bundle folder made by ship_ser.py)")
        if not path.is_dir():
            raise BundleError(f"bundle {path}: not a folder (a tar bundle is refreshed by rebuilding it)")
        old, new = refreshed(path)
        if old == new:
            print(f"{path}: up to date")
            continue
        behind.append(path)
        if args.check:
            print(f"{path}: its speaker-independent figures are behind its tables")
            continue
        files = {name: (path / name).read_bytes() for name in old["files"]}
        write_bundle(path, manifest=new, files=files)
        si = new["accuracy"]["speaker_independent"]
        seeds = si.get("over_seeds")
        print(
            f"{path}: speaker-independent UAR {100 * si['transductive']['uar']:.1f} %"
            + (
                f"; over training seeds {', '.join(map(str, seeds['seeds']))}: "
                f"{100 * seeds['transductive']['uar']:.1f} %"
                if seeds
                else ""
            )
            + " (manifest rewritten; every other file unchanged)"
        )
    if args.check and behind:
        raise SystemExit(1)


if __name__ == "__main__":
    run_main(main)
