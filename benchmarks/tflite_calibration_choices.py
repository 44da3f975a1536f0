"""int8 calibration choices for the functionals bundles, side by side (issue 20): which input / activation /
output ranges keep int8's top-1 on every clip AND keep held-out-like captures inside the int8 input range.

    EDGE_SER_DATA=/work/shared/datasets python benchmarks/tflite_calibration_choices.py [--bundles ser_ravdess]

Per bundle: the training rows (`tflite_bundle.device_rows`; the ser_* bundles train on every clip, so these
are also every clip of the data set), augmented copies of every 2nd training clip (`tflite_bundle.AUGMENTS`:
8 kHz + noise, -20 dB + noise, +20 dB; seed 1, training data only), and the evaluation captures of
`benchmarks/capture_invariance.captures()` on 40 clips (seed 0, as `tflite_calibration.py`). Each choice is
converted by `onnx_tflite.convert` and run through the device's TFLite engine: int8 vs fp32 top-1 on every
clip, the saturated share of int8 input values on each capture (worst shown), int8 vs fp32 on the captures.

Writes benchmarks/results/tflite_calibration_choices.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import pin_single_thread, require_datasets, run_main, write_results  # noqa: E402
from benchmarks.capture_invariance import captures  # noqa: E402
from converters.export import onnx_tflite as ot  # noqa: E402
from converters.export import tflite_bundle as tb  # noqa: E402
from converters.export.tflite_export import run_tflite  # noqa: E402
from edge_ser.bundle import load_bundle  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = {"ser_emodb": "emodb", "ser_ravdess": "ravdess"}


def _range(a: np.ndarray, q: float | None) -> tuple[float, float]:
    return (
        (float(a.min()), float(a.max()))
        if q is None
        else (float(np.quantile(a, 1 - q)), float(np.quantile(a, q)))
    )


def choices(x: np.ndarray, aug: np.ndarray) -> list[tuple[str, np.ndarray, dict | None, float | None]]:
    """(label, calibration rows, input ranges, ceiling margin) of every choice measured."""
    both = np.concatenate([x, aug])
    cal = tb.calibration_rows({"functionals": x})["functionals"]
    out = [
        ("train, q 0.9999 (before)", cal, None, None),
        ("train, min/max", x, None, None),
        ("train + aug, q 0.9999 (every range)", tb.calibration_rows({"functionals": both})["functionals"], None, None),
        ("train + aug, q 0.999 (every range)",
         tb.calibration_rows({"functionals": both}, quantile=0.999)["functionals"], None, None),
        ("train + aug, min/max (every range)", both, None, None),
        ("train, q 0.9999, ceiling +4", cal, None, 4.0),
    ]  # fmt: skip
    for q in (0.9999, 0.9995, 0.999):
        for cm in (None, 4.0):
            c = "" if cm is None else ", ceiling +4"
            out.append(
                (f"train; input range train + aug q {q}{c}", cal, {"functionals": _range(both, q)}, cm)
            )
    return out


def run_bundle(name: str) -> dict:
    from converters.data.loaders import load_dataset
    from edge_ser.audio import load

    b = load_bundle(ROOT / "bundles" / name)
    paths = tb.training_paths(b, DATA[name])
    x = tb.device_rows(b, paths)["functionals"]
    aug = tb.device_rows(b, tb.augmented_clips(paths))["functionals"]
    records = list(load_dataset(DATA[name]))
    pick = records[:: max(1, len(records) // 40)][:40]
    clean = [load(r.source, sr=16000, mono=True)[0] for r in pick]
    rng = np.random.default_rng(0)
    caps = {}
    for c in captures():
        clips = []
        for y in clean:
            yc, sr = c.apply(y, rng)
            clips.append((yc.mean(axis=1) if yc.ndim == 2 else yc, sr))
        caps[c.name] = tb.device_rows(b, clips)["functionals"]
    t = ot.trace(ot.bundle_graph(b))
    m32 = ot.convert(t, "fp32")
    top = run_tflite(m32, x).argmax(1)
    cap_top = {k: run_tflite(m32, v).argmax(1) for k, v in caps.items()}
    rows = []
    for label, cal, ranges, cm in choices(x, aug):
        m8 = ot.convert(t, "int8", {"functionals": cal}, ceiling_margin=cm, input_ranges=ranges)
        s, z = m8.input_quant["functionals"]
        flips = int(np.sum(run_tflite(m8, x).argmax(1) != top))
        sat = {k: tb.saturation(v, s, z) for k, v in caps.items()}
        agree = {k: float(np.mean(run_tflite(m8, v).argmax(1) == cap_top[k])) for k, v in caps.items()}
        worst = max(sat, key=sat.get)
        rows.append({"choice": label, "input_scale": s, "input_zero_point": z,
                     "input_range": [(-128 - z) * s, (127 - z) * s], "output_step": m8.output_quant[0],
                     "clips": len(x), "flips": flips, "int8_vs_fp32": 1 - flips / len(x),
                     "worst_capture": worst, "worst_saturated": sat[worst], "saturated": sat,
                     "captures_agree_min": min(agree.values()),
                     "captures_agree_mean": float(np.mean(list(agree.values())))})  # fmt: skip
        print(
            f"{name}: {label}: {rows[-1]['int8_vs_fp32']:.4f} {sat[worst]:.4f}", file=sys.stderr, flush=True
        )
    return {"bundle": name, "train_rows": len(x), "augmented_rows": len(aug), "choices": rows}


def markdown(res: list[dict]) -> str:
    out = ["# int8 calibration choices, side by side", "",
           "int8 vs fp32 top-1 on every clip of the data set (= the training clips of these bundles); saturated = "
           "share of int8 input values clipped on the worst of the 15 held-out-like captures (40 clips each).", ""]  # fmt: skip
    for r in res:
        out += [f"## {r['bundle']} ({r['train_rows']} clips, {r['augmented_rows']} augmented rows)", "",
                "| choice | int8 input range (step) | output step | int8 vs fp32 (flips) | worst capture saturated "
                "| captures int8 vs fp32 min / mean |", "|---|---|---|---|---|---|"]  # fmt: skip
        for c in r["choices"]:
            lo, hi = c["input_range"]
            out.append(f"| {c['choice']} | [{lo:.2f}, {hi:.2f}] ({c['input_scale']:.4f}) | {c['output_step']:.4f} | "
                       f"{c['int8_vs_fp32']:.2%} ({c['flips']}) | {c['worst_saturated']:.2%} ({c['worst_capture']}) | "
                       f"{c['captures_agree_min']:.1%} / {c['captures_agree_mean']:.1%} |")  # fmt: skip
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundles", default=",".join(DATA))
    a = p.parse_args(argv)
    require_datasets(*(DATA[n] for n in a.bundles.split(",") if n))
    pin_single_thread()
    res = [run_bundle(n) for n in a.bundles.split(",") if n]
    md = markdown(res)
    write_results("tflite_calibration_choices", {"bundles": res}, md)
    print(md)
    return 0


if __name__ == "__main__":
    run_main(main)
