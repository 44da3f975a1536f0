"""The fp16 ONNX copy of each shipped bundle that a GPU can use, checked against fp32 on the CPU.

    python benchmarks/onnx_fp16.py [--bundles bundles/av_cnn ...] [--clips 24] [--write]

Default bundles: those whose graph has a Conv or a MatMul (the convolutional and attention models; a GPU has
nothing to win on an MLP of a few thousand weights, tens of microseconds on the CPU). Per bundle:
`converters.export.onnx_fp16.fp16_onnx`, then `check_fp16` on real EMODB clips made by the bundle's own input
kind (benchmarks/backends.py's inputs): top-1 agreement with fp32 and the largest logit difference relative to
the largest |logit|. With `--write` each copy is written into its bundle (model_fp16.onnx, manifest
`onnx_fp16`). Results: benchmarks/results/onnx_fp16.{md,json}; onnx_fp16_synthetic.{md,json} when EMODB is
absent and seeded noise stands in (so such a run never replaces the table made on EMODB).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run_main, write_results  # noqa: E402
from backends import bundle_inputs, shipped_bundles, speech_clips  # noqa: E402

GPU_OPS = {"Conv", "MatMul"}


def main() -> None:
    from converters.export.onnx_fp16 import add_onnx_fp16, check_fp16, fp16_onnx
    from edge_ser.bundle import load_bundle

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundles", nargs="*", help="bundle folders (default: those with Conv or MatMul)")
    ap.add_argument("--clips", type=int, default=24, help="EMODB clips to check on (default 24)")
    ap.add_argument("--write", action="store_true", help="write each copy into its bundle")
    args = ap.parse_args()
    paths = [Path(p) for p in args.bundles] if args.bundles else shipped_bundles()
    clips, source, synthetic = speech_clips(args.clips)
    if args.write and synthetic:
        ap.error(
            "--write records each copy's check in its bundle, so it needs EMODB's speech, not the synthetic "
            "stand-in: set EDGE_SER_DATA to the folder that holds emodb/"
        )
    rows = []
    for path in paths:
        bundle = load_bundle(path)
        if not args.bundles and not GPU_OPS & {n["op"] for n in bundle.graph["nodes"]}:
            continue
        x = bundle_inputs(bundle, clips)
        data = fp16_onnx(bundle)
        checked = check_fp16(bundle, data, x)
        if args.write:
            add_onnx_fp16(path, x)
        fp32_kb = (len(bundle.onnx_bytes()) + len(bundle.read("weights.esq"))) / 1000
        rows.append({"bundle": path.name, "fp32_kb": fp32_kb, "fp16_kb": len(data) / 1000, **checked})
    md = [
        f"# fp16 ONNX copies against fp32 on the CPU ({source}, through each bundle's input kind)",
        "",
        "| bundle | model.onnx + weights.esq (KB) | model_fp16.onnx (KB) | rows | top-1 = fp32 | max rel. logit diff |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['bundle']} | {r['fp32_kb']:.1f} | {r['fp16_kb']:.1f} | {r['rows']} | "
            f"{r['top1_agreement']:.1%} | {r['max_rel_diff']:.1e} |"
        )
    md += [
        "",
        "fp16 weights and activations, float32 inputs and outputs. onnxruntime's CPU provider runs the ops it "
        "has no fp16 kernel for in fp32 between Casts, so every tensor between two nodes is rounded to fp16 "
        "as on a GPU; the arithmetic inside a node is not. The fp16 file holds the weights dequantized (16 bits each), so it is larger than the "
        "packed weights.esq.",
    ]
    text = "\n".join(md)
    print(text)
    payload = {"rows": rows, "inputs": source, "written": args.write}
    write_results("onnx_fp16", payload, text, synthetic=synthetic)


if __name__ == "__main__":
    run_main(main)
