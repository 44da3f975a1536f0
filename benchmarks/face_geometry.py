"""The geometry check of bundles/face_fer: a FER image and the device's crop of it in a scene, same prediction?

    export EDGE_SER_DATA=/work/shared/datasets
    python benchmarks/face_geometry.py [--bundle bundles/face_fer] [--engine onnxruntime] [--limit N]

Each PublicTest image is (a) given to the model as it is (FER's tight 48x48 framing) and (b) upscaled x4 into a
640x480 frame (`converters.face.in_scene`, its border continued outward) and cropped by the bundle's own
`face_crop` (Haar cascade, margin, resize: `FaceCropper.crop_or_center`, exactly what the device runs). The
figure is the share of images whose two predictions agree, over all images (a missed face uses the device's
centre-square fallback and counts as it comes out) and over those where the cascade found the face.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_single_thread, write_results  # noqa: E402

pin_single_thread()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import os  # noqa: E402

from converters.data.fer_arrays import FER_LABELS, fer_arrays  # noqa: E402
from converters.face import SCENE_FACE, SCENE_SHAPE, scene_agreement  # noqa: E402
from edge_ser.bundle import load_bundle  # noqa: E402
from edge_ser.engines import load_engine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=REPO / "bundles" / "face_fer")
    ap.add_argument("--engine", default="onnxruntime")
    ap.add_argument(
        "--limit", type=int, default=None, help="first N images of PublicTest (default: all 3,589)"
    )
    args = ap.parse_args()
    root = Path(os.environ.get("EDGE_SER_DATA", REPO.parent / "shared" / "datasets")) / "fer2013"
    cache = Path(os.environ.get("EDGE_SER_CACHE", "/work/cache")) / "face"
    va = fer_arrays(root, "validation", cache)
    images, labels = va.images[: args.limit], va.labels[: args.limit]
    b = load_bundle(args.bundle)
    t0 = time.perf_counter()
    r = scene_agreement(load_engine(b, args.engine, threads=1).predict, b.input_kind, images)
    seconds = time.perf_counter() - t0
    f, same = r["found"], r["direct"] == r["scene"]
    acc = {k: float((r[k] == labels).mean()) for k in ("direct", "scene")}
    acc_found = {k: float((r[k][f] == labels[f]).mean()) for k in ("direct", "scene")}
    per_class = {
        name: float(same[labels == i].mean()) for i, name in enumerate(FER_LABELS) if (labels == i).any()
    }
    crop = b.input_kind.face_crop
    payload = {
        "bundle": str(args.bundle.relative_to(REPO) if args.bundle.is_relative_to(REPO) else args.bundle),
        "engine": args.engine, "n": r["n"], "found_rate": r["found_rate"], "agreement": r["agreement"],
        "agreement_found": r["agreement_found"], "accuracy": acc, "accuracy_found": acc_found,
        "agreement_per_class": per_class, "face_crop": crop.to_dict(),
        "scene": {"shape": list(SCENE_SHAPE), "face_side": SCENE_FACE}, "seconds": seconds,
    }  # fmt: skip
    md = "\n".join(
        [
            f"# Geometry check: FER image vs its in-scene device crop ({r['n']:,} PublicTest images, {args.engine})",
            "",
            f"Scene: the 48x48 image upscaled to {SCENE_FACE} px (cubic) in a {SCENE_SHAPE[1]}x{SCENE_SHAPE[0]} "
            "frame, border replicated outward. Device crop: the bundle's `face_crop` (Haar, detect width "
            f"{crop.detect_width}, min neighbours {crop.min_neighbors}, margin {crop.margin}, {crop.size} px).",
            "",
            "| | images | same prediction | accuracy, FER image | accuracy, device crop |",
            "|---|---|---|---|---|",
            f"| all (a missed face: centre fallback) | {r['n']:,} | {100 * r['agreement']:.1f} % | "
            f"{100 * acc['direct']:.1f} % | {100 * acc['scene']:.1f} % |",
            f"| the cascade found the face | {int(f.sum()):,} ({100 * r['found_rate']:.1f} %) | "
            f"{100 * r['agreement_found']:.1f} % | {100 * acc_found['direct']:.1f} % | "
            f"{100 * acc_found['scene']:.1f} % |",
            "",
            "Agreement per true class (all images): "
            + ", ".join(f"{k} {100 * v:.0f} %" for k, v in per_class.items()),
            "",
            f"Target (issue 19): >= 90 % same prediction. {seconds:.0f} s for the run (Haar detection dominates).",
        ]
    )
    write_results("face_fer_geometry", payload, md)
    print(md)


if __name__ == "__main__":
    main()
