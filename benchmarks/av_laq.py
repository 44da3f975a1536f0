"""LAQ + QAT on the fused av_cnn, paired RAVDESS + FER-2013 (SYNTHETIC pairs), speaker-independent folds.

    python benchmarks/av_laq.py [--folds 3] [--ship bundles/av_cnn]

Per actor fold (the same group 6-fold split and pairing as benchmarks/av_tables.py: test = fold i, val =
fold i+1, train = the rest; faces disjoint across parts): train the float fused model once, then compress it
with each recipe (converters.compress: bit allocation on the training / validation clips, then QAT at those
bits), build the bundle and read its packed size. Reported: test accuracy of fp32 and of each recipe, the
difference, average bits and the packed weights.esq size, against the issue's target (<= 20 KB at <= 2 average
bits within 1 point of fp32). With --ship, fold 0's sensitivity model is written as the shipped bundle, with
TFLite variants when tensorflow is installed.

THE PAIRS ARE SYNTHETIC: real speech and real faces, paired by label only (see converters/data/paired_av.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_single_thread, run_main, write_results  # noqa: E402

pin_single_thread()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from converters.compress import Compressed, compress  # noqa: E402
from converters.data import find_dataset, group_kfold, load_dataset, load_fer2013  # noqa: E402
from converters.data.av_dataset import ClipCache, SceneSpec, paired_av_arrays  # noqa: E402
from converters.data.paired_av import PairedAVSpec, pair_ravdess_fer  # noqa: E402
from converters.export.bundle import build_bundle  # noqa: E402
from converters.models import av_cnn  # noqa: E402
from converters.recipe import default_av_spec  # noqa: E402
from converters.train import TrainConfig, accuracy, seed_everything, train_classifier  # noqa: E402
from edge_ser.bundle import load_bundle  # noqa: E402
from edge_ser.inputs.av import AVInputSpec, AVKind  # noqa: E402

PAIRED_CLASSES = ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise")
RECIPES = ("laq-paper", "sensitivity@1.75")
TARGET_KB, TARGET_BITS, TARGET_DROP = 20.0, 2.0, 1.0


def packed_kb(c, spec: AVInputSpec) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        b = build_bundle(
            Path(tmp) / "b",
            c.model,
            c.plan,
            c.codes,
            name="av_cnn",
            labels=list(PAIRED_CLASSES),
            kind=AVKind(spec, c.model.input_names),
            accuracy={},
        )
        return len(load_bundle(b).read("weights.esq")) / 1000


def ship_fold0(
    out: Path,
    c: Compressed,
    spec: AVInputSpec,
    *,
    name: str,
    dataset: str,
    test: float,
    float_test: float,
    idx: dict[str, np.ndarray],
    calibration: dict[str, np.ndarray] | None,
) -> None:
    """Write fold 0's compressed av_cnn `c` as the bundle `out`, with TFLite variants (calibrated on
    `calibration`) when tensorflow is installed; shared with ship_av_audio.py so their manifests agree."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        calibration = None
    build_bundle(
        out,
        c.model,
        c.plan,
        c.codes,
        name=name,
        labels=list(PAIRED_CLASSES),
        kind=AVKind(spec, c.model.input_names),
        accuracy={
            "test": test,
            "float_test": float_test,
            "dataset": dataset,
            "split": {
                "kind": "actor group 6-fold",
                "fold": 0,
                "seed": 0,
                "sizes": {p: int(v.size) for p, v in idx.items()},
            },
        },
        tflite_calibration=calibration,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", type=int, default=3, help="how many of the 6 actor folds to run (default 3)")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--patience", type=int, default=20)
    ap.add_argument("--ship", type=Path, default=None, help="write fold 0's sensitivity bundle here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    spec, pspec = default_av_spec(), PairedAVSpec()  # MFCC segments, DC removed, level -26 dBFS
    speech = load_dataset("ravdess")
    fer = find_dataset("fer2013")
    fer_train, fer_val = load_fer2013(fer, "train"), load_fer2013(fer, "validation")
    folds = group_kfold([r.speaker for r in speech], k=6, seed=0)[: args.folds]
    cache = ClipCache()
    config = TrainConfig(epochs=args.epochs, patience=args.patience, seed=0)
    rows: dict[str, list[dict]] = {"fp32": [], **{r: [] for r in RECIPES}}
    for i, split in enumerate(folds):
        pairs = pair_ravdess_fer(speech, split, fer_train, fer_val, pspec)
        d = paired_av_arrays(pairs, spec, pspec, scene=SceneSpec(), classes=PAIRED_CLASSES, cache=cache)
        part = np.array([p.part for p in pairs])
        idx = {p: np.flatnonzero(part == p) for p in ("train", "val", "test")}
        X = {p: (d.faces[v], d.audio[v]) for p, v in idx.items()}
        y = {p: d.y[v] for p, v in idx.items()}
        seed_everything(0)
        model = av_cnn("fused", num_classes=len(PAIRED_CLASSES))
        a = d.audio[idx["train"]]
        model.set_normalization(torch.as_tensor(a.mean((0, 1))), torch.as_tensor(a.std((0, 1))))
        fp = train_classifier(model, X["train"], y["train"], X["val"], y["val"], config, progress=False).model
        fp_acc = accuracy(fp, X["test"], y["test"])
        c32 = compress("fp32", fp, X["train"], y["train"], X["val"], y["val"])
        rows["fp32"].append({"fold": i, "acc": fp_acc, "bits": 32.0, "kb": packed_kb(c32, spec)})
        line = f"fold {i}: fp32 {100 * fp_acc:.1f}"
        for recipe in RECIPES:
            c = compress(recipe, fp, X["train"], y["train"], X["val"], y["val"], seed=0)
            acc = c.accuracy(X["test"], y["test"])
            rows[recipe].append(
                {
                    "fold": i,
                    "acc": acc,
                    "drop": 100 * (fp_acc - acc),
                    "bits": c.plan.average_bits,
                    "kb": packed_kb(c, spec),
                    "plan": dict(c.plan.bits),
                    "seconds": c.seconds,
                }
            )
            line += f", {recipe} {100 * acc:.1f} @ {c.plan.average_bits:.2f} bits"
            if args.ship and i == 0 and recipe.startswith("sensitivity"):
                ship_fold0(
                    args.ship,
                    c,
                    spec,
                    name="av_cnn",
                    dataset="paired RAVDESS speech + FER-2013 faces (SYNTHETIC pairs)",
                    test=acc,
                    float_test=fp_acc,
                    idx=idx,
                    calibration={"faces": X["train"][0], "audio": X["train"][1]},
                )
        print(f"{line}  [{time.perf_counter() - t0:.0f} s]", flush=True)

    def mean(key, r):
        return statistics.mean(x[key] for x in rows[r])

    md = [
        "# LAQ + QAT on the fused av_cnn: paired RAVDESS + FER-2013 (SYNTHETIC pairs), speaker-independent",
        "",
        f"Actor folds 0..{len(folds) - 1} of the group 6-fold split (test actors unseen in training; faces "
        "disjoint across parts), one training seed; the pairs are synthetic (real speech, real FER-2013 faces, "
        "paired by label only).",
        "",
        "| recipe | test accuracy per fold | mean | drop vs fp32 (points) | avg bits | weights.esq KB |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        accs = ", ".join(f"{100 * x['acc']:.1f}" for x in rows[r])
        drop = "" if r == "fp32" else f"{mean('drop', r):+.2f}"
        md.append(
            f"| {r} | {accs} | {100 * mean('acc', r):.2f} | {drop} | {mean('bits', r):.2f} | {mean('kb', r):.1f} |"
        )
    md += [""]
    for r in RECIPES:
        ok = (
            mean("kb", r) <= TARGET_KB
            and max(x["bits"] for x in rows[r]) <= TARGET_BITS
            and mean("drop", r) <= TARGET_DROP
        )
        md.append(
            f"- {r}: target (<= {TARGET_KB:.0f} KB at <= {TARGET_BITS:.0f} bits, within {TARGET_DROP:.0f} point "
            f"of fp32 on average) {'met' if ok else 'NOT met'}."
        )
    md += ["", "Bit plans (fold 0): " + "; ".join(f"{r}: {rows[r][0]['plan']}" for r in RECIPES)]
    md += ["", f"Wall time {time.perf_counter() - t0:.0f} s on 1 thread."]
    text = "\n".join(md)
    print(text)
    name = "av_laq" if args.folds == 3 and args.epochs == 100 and args.patience == 20 else "av_laq_partial"
    write_results(name, {"rows": rows, "folds": len(folds), "train_config": config.to_dict()}, text)


if __name__ == "__main__":
    run_main(main)
