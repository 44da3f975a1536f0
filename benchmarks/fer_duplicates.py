"""face_fer on FER-2013 PublicTest with and without the images that are copies of Training images.

    python benchmarks/fer_duplicates.py [--bundle bundles/face_fer] [--engine onnxruntime] [--name NAME]

FER-2013's PublicTest holds images whose pixels are those of a Training image (the same face, labelled again):
face_fer trained on them, so a PublicTest figure that counts them is partly a training figure. This script finds
them by the SHA-256 of each image's decoded grey pixels (a byte-identical file is one case of it), then scores the
bundle's decision on every PublicTest image given as its own crop (the image itself, as the manifest's figure
does; `edge-ser eval` runs the Haar search first), on all of them, on the copies, and on the rest. The Training
images' own repeats (files with equal pixels) are counted too. Output: benchmarks/results/fer_duplicates.{md,json}
for bundles/face_fer through onnxruntime; another `--bundle` or `--engine` writes
fer_duplicates_<bundle folder>[_<engine>] (or `--name`), so a trial never replaces the shipped model's record.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_single_thread, run_main, trial_name, write_results  # noqa: E402

pin_single_thread()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from edge_ser.errors import ConfigError  # noqa: E402

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SHIPPED = REPO / "bundles" / "face_fer"
"""The bundle whose record benchmarks/results/fer_duplicates.md is (the default `--bundle`)."""


def pixel_digest(path: Path, img: np.ndarray | None = None) -> bytes:
    """SHA-256 of the image's decoded grey pixels (and its shape): equal for the same picture in any file. `img`:
    those pixels, read already."""
    from edge_ser.vision.image import read_image

    img = read_image(path, grey=True) if img is None else img
    return hashlib.sha256(repr(img.shape).encode() + img.tobytes()).digest()


def images(folder: Path) -> list[Path]:
    """The images of a FER-2013 split folder (one sub-folder per class), sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def scores(true: np.ndarray, pred: np.ndarray, labels: list[str]) -> dict:
    """Accuracy and UAR (mean recall over the classes present) of one subset, with its size."""
    recalls = [float((pred[true == c] == c).mean()) for c in labels if (true == c).any()]
    return {"n": int(true.size), "accuracy": float((true == pred).mean()), "uar": float(np.mean(recalls))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=SHIPPED)
    ap.add_argument("--engine", default="onnxruntime", help="device engine (default onnxruntime)")
    ap.add_argument(
        "--name",
        help="results name (default fer_duplicates; fer_duplicates_<bundle>[_<engine>] with another --bundle or "
        "--engine: a trial never replaces the shipped bundle's record)",
    )
    args = ap.parse_args()
    args.name = args.name or trial_name("fer_duplicates", args.bundle, args.engine, shipped=SHIPPED)
    from converters.data.loaders import find_dataset
    from edge_ser.recognizer import Recognizer

    root = find_dataset("fer2013")
    train, test = images(root / "train"), images(root / "validation")
    if not train or not test:
        raise ConfigError(f"{root}: needs FER-2013's train/ and validation/ (PublicTest) image folders")
    rec = Recognizer(args.bundle, args.engine)  # before the hashing: a bad bundle or engine is said at once
    if not rec.kind.faces or rec.kind.hears:
        raise ConfigError(
            f"{args.bundle}: a face-only bundle is needed (face_fer's kind), not a {type(rec.kind).__name__}"
        )
    from tqdm import tqdm

    train_digests = [pixel_digest(p) for p in tqdm(train, desc="Training images", unit="img")]
    seen = set(train_digests)
    labels = list(rec.bundle.labels)
    from edge_ser.vision.image import read_image

    true, pred, copy = [], [], []
    for p in tqdm(test, desc="PublicTest images", unit="img"):
        img = read_image(p, grey=True)
        true.append(p.parent.name)
        pred.append(rec.predict_audio(None, None, faces=[img]).label)
        copy.append(pixel_digest(p, img) in seen)
    t, y, c = np.array(true), np.array(pred), np.array(copy)
    rows = {
        "all PublicTest": scores(t, y, labels),
        "copies of Training images": scores(t[c], y[c], labels),
        "PublicTest without them": scores(t[~c], y[~c], labels),
    }
    payload = {
        "bundle": str(args.bundle.relative_to(REPO) if args.bundle.is_relative_to(REPO) else args.bundle),
        "engine": args.engine,
        "training_images": len(train),
        "training_distinct": len(seen),
        "publictest_copies": int(c.sum()),
        "rows": rows,
    }
    pct = lambda x: f"{100 * x:.1f} %"  # noqa: E731
    md = "\n".join(
        [
            "# face_fer on FER-2013 PublicTest, with and without the copies of Training images",
            "",
            f"{int(c.sum())} of {len(test):,} PublicTest images have the pixels of a Training image (SHA-256 of the "
            f"decoded grey pixels); the {len(train):,} Training files hold {len(seen):,} distinct images. face_fer "
            "trained on every Training image, so the copies are partly training figures. Each image is given "
            f"as its own crop (as the manifest's figure), engine {args.engine}.",
            "",
            "| PublicTest images | n | accuracy | UAR |",
            "|---|---|---|---|",
            *[f"| {k} | {v['n']:,} | {pct(v['accuracy'])} | {pct(v['uar'])} |" for k, v in rows.items()],
        ]
    )
    write_results(args.name, payload, md)
    print(md)


if __name__ == "__main__":
    run_main(main)
