"""How the shipped ser_* recipe's inputs were chosen: validation-speaker UAR beside test UAR, per input.

    python benchmarks/si_choices.py [--protocols emodb-loso,ravdess-pairs] [--inputs ...] [--balanced off,on]

For each speaker-independent protocol and each input (the 88 functionals, the extended layout, the extended
layout with speed-perturbed training copies), functionals_mlp at <= 2 bits ("sensitivity@2.0"), per-speaker
normalised (transductive), through the si_table's runner (`converters.si_eval.run_fold`: the fit sees the
training and validation rows only). The choice reads the validation column; the test column is reported
beside it, never used. Results: benchmarks/results/si_choices.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_single_thread, run_main, write_results  # noqa: E402

pin_single_thread()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from converters.protocol import PROTOCOLS  # noqa: E402
from converters.si_eval import INPUTS, Fitted, FoldData, Row, fit_laq_mlp, run_fold  # noqa: E402
from converters.speaker_norm import NormMode  # noqa: E402

CHOICES = ("functionals", "functionals_ext", "functionals_ext_speed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocols", default="emodb-loso,ravdess-pairs")
    ap.add_argument("--inputs", default=",".join(CHOICES))
    ap.add_argument(
        "--balanced",
        default="off",
        help="class-balanced cross-entropy: off, on, or off,on (both, side by side)",
    )
    ap.add_argument("--name", default="si_choices", help="results name (default si_choices)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    results = []
    for proto in args.protocols.split(","):
        p = PROTOCOLS[proto]
        for name, balanced in [
            (n, b == "on") for n in args.inputs.split(",") for b in args.balanced.split(",")
        ]:
            data = INPUTS[name](p.dataset, None)
            vals: list[float] = []
            inner = fit_laq_mlp("sensitivity@2.0", model="functionals_mlp", balanced=balanced)

            def fit(fd: FoldData, inner=inner, vals=vals) -> Fitted:
                f = inner(fd)
                vals.append(fd.val_uar(f.predict(fd.X_val)))
                return f

            tests = []
            for fold in p.folds(data.speakers, data.y):
                out = run_fold(Row("functionals_mlp", name, fit), data, fold, NormMode("transductive"))
                tests.append(out["norms"]["transductive"]["uar"])
                print(
                    f"{proto} {name} balanced={balanced} {fold.name}: val {vals[-1]:.3f} test {tests[-1]:.3f}",
                    flush=True,
                )
            results.append(
                {
                    "protocol": proto,
                    "input": name,
                    "class_balanced": balanced,
                    "val_uar": float(np.mean(vals)),
                    "test_uar": float(np.mean(tests)),
                    "test_uar_std": float(np.std(tests, ddof=1)),
                    "folds": len(tests),
                }
            )
    text = (
        "# Choosing the ser_* inputs on validation speakers\n\n"
        "functionals_mlp at <= 2 bits (sensitivity@2.0), transductive per-speaker normalisation; mean over "
        "folds of the validation speakers' UAR (what the choice reads) and of the test speakers' UAR (reported, "
        "never used). class-balanced: the cross-entropy weighted per class (`TrainConfig.class_balanced`).\n\n"
        "| protocol | input | class-balanced | validation UAR % | test UAR % | folds |\n|---|---|---|---|---|---|\n"
        + "".join(
            f"| {r['protocol']} | {r['input']} | {'yes' if r['class_balanced'] else 'no'} | {100 * r['val_uar']:.1f} | {100 * r['test_uar']:.1f} +- "
            f"{100 * r['test_uar_std']:.1f} | {r['folds']} |\n"
            for r in results
        )
    )
    print(text)
    write_results(args.name, {"rows": results}, text)


if __name__ == "__main__":
    run_main(main)
