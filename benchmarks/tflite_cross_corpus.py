"""The shipped int8 TFLite variants against fp32 on every clip of both speech corpora: the bundle's own data set
and the other one (issue 20: int8 top-1 agreement >= 99 % on EMODB and RAVDESS). Reads the bundles' files as
shipped (no conversion, no tensorflow), through the device path (`tflite_bundle.device_rows`, the engines'
standardisation and OOD clamp), and splits the flips by whether the clip's int8 input saturated.

    EDGE_SER_DATA=/work/shared/datasets python benchmarks/tflite_cross_corpus.py
        [--bundles ser_emodb,ser_ravdess,av_cnn_audio,laq_mlp_emodb,tiny_transformer_emodb]

Writes benchmarks/results/tflite_cross_corpus.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import pin_single_thread, require_datasets, run_main, write_results  # noqa: E402
from benchmarks.tflite_calibration import BUNDLES, _clip_rows, _float_engine, _top1  # noqa: E402
from converters.export import tflite_bundle as tb  # noqa: E402
from edge_ser.bundle import load_bundle  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ("emodb", "ravdess")


def measure(name: str, data: str) -> dict:
    """int8 vs fp32 top-1 of bundle `name` on every clip of `data`, with saturation per clip."""
    from converters.data.loaders import load_dataset

    b = load_bundle(ROOT / "bundles" / name)
    spec = b.manifest["tflite"]["variants"]["int8"]
    (inp,) = b.input_names
    q = spec["inputs"][inp]
    per_clip = _clip_rows(b, [r.source for r in load_dataset(data)])
    t32, _ = _top1(b, _float_engine(b, "fp32"), per_clip)
    t8, _ = _top1(b, _float_engine(b, "int8"), per_clip)
    lo, hi = (-128 - q["zero_point"]) * q["scale"], (127 - q["zero_point"]) * q["scale"]
    sat_clip = np.array([bool(((x[inp] < lo) | (x[inp] > hi)).any()) for x in per_clip])
    flip = t8 != t32
    values = np.concatenate([x[inp].reshape(-1) for x in per_clip])
    return {
        "bundle": name,
        "data": data,
        "own": data == BUNDLES[name],
        "phases": [q.get("phases", 1), spec["output"].get("phases", 1)],
        "clips": int(len(t8)),
        "int8_vs_fp32": float(np.mean(~flip)),
        "flips": int(flip.sum()),
        "saturated_values": tb.saturation(values[:, None], q["scale"], q["zero_point"], q.get("phases", 1)),
        "clips_saturated": float(sat_clip.mean()),
        "flips_on_saturated_clips": int((flip & sat_clip).sum()),
        "int8_vs_fp32_unsaturated": float(np.mean(~flip[~sat_clip])) if (~sat_clip).any() else None,
    }


def markdown(rows: list[dict]) -> str:
    out = ["# Shipped int8 TFLite vs fp32 on both speech corpora", "",
           "Every clip through the device path; the bundles' files as shipped. Own = the data set the bundle was "
           "trained on. A clip is saturated when any of its int8 input values lies outside the int8 range.", "",
           "| bundle | data | clips | int8 copies (in, out) | **int8 vs fp32 top-1** (flips) | saturated values | "
           "clips with a saturated value | flips on those | int8 vs fp32 on the other clips |",
           "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        u = r["int8_vs_fp32_unsaturated"]
        out.append(f"| {r['bundle']} | {r['data']}{' (own)' if r['own'] else ''} | {r['clips']} | "
                   f"{r['phases'][0]}, {r['phases'][1]} | **{r['int8_vs_fp32']:.2%}** ({r['flips']}) | "
                   f"{r['saturated_values']:.3%} | {r['clips_saturated']:.1%} | {r['flips_on_saturated_clips']} | "
                   f"{'-' if u is None else f'{u:.2%}'} |")  # fmt: skip
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--bundles", default="ser_emodb,ser_ravdess,av_cnn_audio,laq_mlp_emodb,tiny_transformer_emodb"
    )
    args = p.parse_args(argv)
    require_datasets(*CORPORA)
    pin_single_thread()
    rows = []
    for name in [n for n in args.bundles.split(",") if n]:
        for data in CORPORA:
            rows.append(measure(name, data))
            print(f"{name} on {data}: {rows[-1]['int8_vs_fp32']:.4f}", file=sys.stderr, flush=True)
    md = markdown(rows)
    write_results("tflite_cross_corpus", {"rows": rows}, md)
    print(md)
    return 0


if __name__ == "__main__":
    run_main(main)
