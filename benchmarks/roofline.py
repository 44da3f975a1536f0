"""The roofline report for every shipped bundle: measured on the host, projected on a Pi 4, a Pi 5 and an
Orin Nano 8GB.

    python benchmarks/roofline.py [--runs 300]

Per bundle in bundles/: `edge-ser bench BUNDLE --profile host --engine onnxruntime --threads 1` (measured) and
the same report projected from counts on pi4, pi5 and orin-nano-8gb (CPU roof, fp32: the engines run on
the CPU), plus the TFLite int8 variant projected on the int8 roof of the Pi 5 and Orin Nano (SDOT). Reports
(JSON, Markdown, PNG) go to benchmarks/results/roofline/, and a summary table to
benchmarks/results/roofline.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_single_thread, write_results  # noqa: E402

pin_single_thread()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_ser.bundle import load_bundle  # noqa: E402
from edge_ser.profiles import load_profile  # noqa: E402
from edge_ser.roofline import build_report, write_report  # noqa: E402

PROJECTED = ("pi4", "pi5", "orin-nano-8gb")
INT8 = ("pi5", "orin-nano-8gb")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    out = REPO / "benchmarks" / "results" / "roofline"
    bundles = sorted(p for p in (REPO / "bundles").iterdir() if (p / "manifest.json").is_file())
    rows = []
    for path in bundles:
        bundle = load_bundle(path)
        jobs = [("host", "onnxruntime")] + [(p, "onnxruntime") for p in PROJECTED]
        jobs += [(p, "tflite-int8") for p in INT8 if "tflite" in bundle.manifest]
        for prof, engine in jobs:
            r = build_report(bundle, load_profile(prof), engine=engine, threads=1, runs=args.runs)
            stem = f"{path.name}_{prof}" + ("_int8" if engine == "tflite-int8" else "")
            cmd = (
                f"edge-ser bench bundles/{path.name} --profile {prof} --engine {engine} --threads 1 "
                f"--out benchmarks/results/roofline/{stem}"
            )
            write_report(r, out / stem, cmd)
            rows.append(r)
            print(
                f"{path.name:14s} {prof:14s} {r.engine:12s} {'measured' if r.measured else 'projected':9s} "
                f"{r.latency_ms:8.4f} ms  {r.attained_gflops:8.2f} G/s  {100 * r.fraction_of_peak:6.2f}% of peak",
                flush=True,
            )
    md = [
        "# Roofline of the shipped bundles",
        "",
        "One thread. host = measured here (latency = median of predict() calls, per-node times from onnxruntime's "
        "profiler); every other row is a PROJECTION from the counts (each node at max(FLOPs / peak, bytes / "
        "bandwidth)), not a measurement. Counting convention, peaks and their sources: in each report.",
        "",
        "| bundle | profile | engine | precision | kind | FLOPs | bytes | FLOP/B | ridge | latency ms | attained | "
        "of peak | bound by | report |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        stem = f"{Path(r.bundle).name}_{r.profile}" + ("_int8" if r.engine == "tflite-int8" else "")
        unit = "GOP/s" if r.precision.startswith("int") else "GFLOP/s"
        md.append(
            f"| {Path(r.bundle).name} | {r.profile} | {r.engine} | {r.precision} | "
            f"{'measured' if r.measured else 'projection'} | {r.flops:,} | {r.bytes:,} | {r.intensity:.2f} | "
            f"{r.ridge:.2f} | {r.latency_ms:.4f} | {r.attained_gflops:.2f} {unit} | "
            f"{100 * r.fraction_of_peak:.1f}% | {'compute' if r.intensity >= r.ridge else 'memory'} | "
            f"[md](roofline/{stem}.md), [png](roofline/{stem}.png) |"
        )
    text = "\n".join(md)
    print(text)
    write_results("roofline", {"rows": [r.to_dict() for r in rows]}, text)


if __name__ == "__main__":
    main()
