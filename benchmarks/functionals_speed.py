"""The cost of the extended functionals layout against eGeMAPS' 88, side by side in one process.

    python benchmarks/functionals_speed.py [--clips 6] [--repeats 15]

Each EMODB clip is tiled to 3 s (a live window) and both layouts are timed round-robin on it (1 thread), so
machine noise hits both alike; the ratio extended / 88 is what to read. Without the data set, synthetic
vowels stand in. Results: benchmarks/results/functionals_speed.{md,json}, functionals_speed_synthetic.{md,json}
on the stand-in (so it never replaces the table made on EMODB).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, pin_single_thread, run_main, write_results  # noqa: E402

pin_single_thread()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from edge_ser.errors import DatasetError  # noqa: E402
from edge_ser.features.egemaps import FunctionalsSpec, functionals  # noqa: E402

SR = 16000
WINDOW = 3 * SR


def clips(n: int) -> tuple[list[np.ndarray], str, bool]:
    """`n` 3 s windows, where they came from, and whether they are synthetic: EMODB clips (every 50th file,
    tiled) when the data set is there, else synthetic tones. Only an absent data set (DatasetError) falls
    back: any other error is a bug and raises."""
    try:
        from converters.pipeline import load_records
        from edge_ser.audio import load

        _, records = load_records("emodb", None)
        out = [load(Path(r.source), sr=SR, mono=True)[0] for r in records[:: max(1, len(records) // n)][:n]]
        return [np.resize(y, WINDOW).astype(np.float32) for y in out], "EMODB clips tiled to 3 s", False
    except DatasetError as e:  # no EMODB: synthetic stand-in, said in the table and in the results' name
        rng = np.random.default_rng(0)
        t = np.arange(WINDOW) / SR
        out = [
            (0.2 * np.sin(2 * np.pi * (120 + 20 * k) * t) + 0.01 * rng.standard_normal(WINDOW))
            for k in range(n)
        ]
        return [y.astype(np.float32) for y in out], f"synthetic tones (no EMODB: {type(e).__name__})", True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    windows, source, synthetic = clips(args.clips)
    specs = {"88 (eGeMAPS layout)": FunctionalsSpec(), "327 (extended)": FunctionalsSpec(extended=True)}
    per_clip = []
    for y in windows:
        fns = {name: (lambda s=s, y=y: functionals(y, sr=SR, spec=s)) for name, s in specs.items()}
        t = interleaved(fns, repeats=args.repeats, inner=1)
        per_clip.append({name: float(np.median(v)) for name, v in t.items()})
    a, b = (np.array([c[k] for c in per_clip]) for k in specs)
    ratio = float(np.median(b / a))
    text = (
        "# Extended functionals vs the 88: time per 3 s window\n\n"
        f"{len(windows)} windows ({source}), {args.repeats} round-robin repeats each, 1 thread; medians in ms.\n\n"
        "| window | 88 | 327 extended | ratio |\n|---|---|---|---|\n"
        + "".join(
            f"| {i} | {x:.1f} | {z:.1f} | {z / x:.2f}x |\n" for i, (x, z) in enumerate(zip(a, b, strict=True))
        )
        + f"\nMedian ratio extended / 88: **{ratio:.2f}x** (88: {np.median(a):.1f} ms, extended: {np.median(b):.1f} ms)."
    )
    print(text)
    payload = {"source": source, "per_clip_ms": per_clip, "ratio": ratio}
    write_results("functionals_speed", payload, text, synthetic=synthetic)


if __name__ == "__main__":
    run_main(main)
