"""Every engine on every bundle we ship, side by side in one run: load time, batch-1 latency, memory, size.

    python benchmarks/backends.py [--data emodb] [--threads 1] [--runs 2000]

Bundles: the float laq_mlp and its LAQ (sensitivity) version, trained on EMODB (synthetic data when EMODB
is absent), each with TFLite variants when tensorflow is installed. Each (bundle, engine) runs in its own
process (benchmarks/_engine_probe.py) so peak RSS is that engine's alone; engines alternate within each
bundle. Latency: median and p99 of single-clip predict() calls on the test clips' features (feature
extraction not included). Size: the files that engine reads.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def build_bundles(data: str, out: Path) -> tuple[dict[str, Path], Path, str]:
    """Train once, write the float and the LAQ bundle; return them, the test features file and the data name."""
    import numpy as np
    import torch

    from converters.compress import compress
    from converters.export.bundle import build_bundle
    from converters.featurize import FeatureCache
    from converters.models import laq_mlp
    from converters.pipeline import make_split, prepare
    from converters.train import TrainConfig, seed_everything, train_classifier
    from edge_ser.errors import DatasetError
    from edge_ser.features import FeatureSpec
    from edge_ser.inputs.vector import VectorKind

    spec = FeatureSpec()
    try:
        prep = prepare(data, spec=spec, cache=FeatureCache(), progress=False)
    except DatasetError:
        prep = prepare("synthetic", spec=spec, cache=FeatureCache(), progress=False)
    split = make_split(prep, "random", seed=0)
    Xtr, ytr, Xva, yva, Xte, yte = prep.parts(split)
    seed_everything(0)
    model = laq_mlp(spec.dim, len(prep.classes))
    model.set_normalization(torch.as_tensor(Xtr.mean(0)), torch.as_tensor(Xtr.std(0)))
    fp = train_classifier(model, Xtr, ytr, Xva, yva, TrainConfig(seed=0), progress=False).model
    bundles = {}
    for label, recipe in (("laq_mlp fp32", "fp32"), ("laq_mlp LAQ sensitivity", "sensitivity")):
        c = compress(recipe, fp, Xtr, ytr, Xva, yva, seed=0)
        acc = {"test": c.accuracy(Xte, yte), "dataset": prep.name, "split": {"kind": "random", "seed": 0}}
        kw = {}
        try:
            from converters.export.tflite_export import export_tflite  # noqa: F401

            kw["tflite_calibration"] = Xtr
        except ImportError:
            pass
        bundles[label] = build_bundle(
            out / recipe,
            c.model,
            c.plan,
            c.codes,
            name="laq_mlp",
            labels=list(prep.classes),
            kind=VectorKind(spec),
            accuracy=acc,
            **kw,
        )
    feats = out / "test_features.npy"
    np.save(feats, Xte)
    return bundles, feats, prep.name


def engine_files(bundle: Path, engine: str) -> int:
    manifest = json.loads((bundle / "manifest.json").read_text())
    if engine.startswith("tflite"):
        variants = manifest.get("tflite", {}).get("variants", {})
        variant = engine.split("-", 1)[1] if "-" in engine else next(iter(variants))
        return (bundle / variants[variant]["file"]).stat().st_size
    return (bundle / "model.onnx").stat().st_size + (bundle / "weights.esq").stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", default="emodb", help="data set to train on (default emodb; synthetic if absent)"
    )
    ap.add_argument("--threads", type=int, default=1, help="inference threads per engine (default 1)")
    ap.add_argument(
        "--runs", type=int, default=2000, help="timed single-clip calls per engine (default 2000)"
    )
    args = ap.parse_args()
    from edge_ser.bundle import load_bundle
    from edge_ser.engines import engines_for

    with tempfile.TemporaryDirectory() as tmp:
        bundles, feats, data = build_bundles(args.data, Path(tmp))
        rows = []
        for label, path in bundles.items():
            names = engines_for(load_bundle(path))
            for engine in names:
                env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TF_CPP_MIN_LOG_LEVEL": "3"}
                proc = subprocess.run(
                    [
                        sys.executable,
                        str(Path(__file__).parent / "_engine_probe.py"),
                        str(path),
                        engine,
                        "--threads",
                        str(args.threads),
                        "--runs",
                        str(args.runs),
                        "--features",
                        str(feats),
                    ],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=600,
                )
                if proc.returncode != 0:
                    rows.append(
                        {"bundle": label, "engine": engine, "error": proc.stderr.strip().splitlines()[-1]}
                    )
                    continue
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                r.update(bundle=label, size_kb=engine_files(path, engine) / 1000)
                rows.append(r)
        # agreement with the reference engine of each bundle (onnxruntime, else the first that ran)
        for label in bundles:
            mine = [r for r in rows if r["bundle"] == label and "pred" in r]
            ref = next((r for r in mine if r["engine"] == "onnxruntime"), mine[0] if mine else None)
            for r in mine:
                r["agree_with_ref"] = sum(a == b for a, b in zip(r["pred"], ref["pred"], strict=True)) / len(
                    ref["pred"]
                )
    md = [
        f"# Engines side by side ({data}, laq_mlp, {args.threads} thread(s), batch 1, {args.runs} calls)",
        "",
        "| bundle | engine | load (ms) | median (us) | p99 (us) | peak RSS MB (+ by loading) | size (KB) | same class as onnxruntime |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            md.append(f"| {r['bundle']} | {r['engine']} | failed: {r['error']} | | | | | |")
            continue
        md.append(
            f"| {r['bundle']} | {r['engine']} | {r['load_ms']:.1f} | {r['median_us']:.1f} | {r['p99_us']:.1f} "
            f"| {r['peak_rss_mb']:.0f} ({r['peak_rss_mb'] - r['rss_before_load_mb']:+.0f}) | {r['size_kb']:.1f} "
            f"| {r['agree_with_ref']:.1%} |"
        )
    md += [
        "",
        "Peak RSS is the whole probe process (Python + numpy + the engine's runtime + the model, from "
        "/proc VmHWM); in brackets what loading the bundle and engine added. Load = load_bundle (verification "
        "included) + engine construction, cold imports included. The numpy engine is the pure-Python fallback "
        "for boards with no runtime.",
    ]
    text = "\n".join(md)
    print(text)
    for r in rows:
        r.pop("pred", None)
    write_results("backends", {"rows": rows, "threads": args.threads, "runs": args.runs}, text)


if __name__ == "__main__":
    main()
