"""EMODB leave-one-speaker-out on the 88 eGeMAPS-layout functionals: logistic regression and RBF SVM baselines,
with and without per-speaker standardisation.

    python benchmarks/functionals_baseline.py [--root PATH] [--cache DIR]

Protocol (docs/eval.md): 10 folds, test = one speaker, validation = another speaker (`leave_one_speaker_out`,
seed 0), train = the other 8; each classifier's C is chosen on the validation speaker, never on the test one.
UAR (mean per-class recall) and WAR (accuracy) are averaged over the folds: mean and sample std
(`converters.protocol.mean_std`, as every other table; docs/protocol.md "Metrics").

Normalisation (`norm`): `none` standardises with the training split's statistics only (`FlooredScaler`, as
every table's scikit-learn rows); `speaker` first standardises every speaker's functionals by that speaker's own
mean and variance over all of its clips (for the test speaker: its unlabelled test clips, i.e. transductive), as
Schuller et al. 2009 and Gjoreski et al. 2014 do, with the project's one implementation
(`converters.speaker_norm.transductive`, its floors from each fold's training and validation rows; this script had
its own z-normalisation with another floor until 2026-12-06). The functionals are computed once and cached (`converters.featurize.functionals_matrix`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_single_thread, run_main, write_results  # noqa: E402

pin_single_thread()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from converters.data import find_dataset, load_emodb  # noqa: E402
from converters.data.labels import class_order  # noqa: E402
from converters.data.splits import leave_one_speaker_out  # noqa: E402
from converters.evaluate import metrics  # noqa: E402
from converters.featurize import FeatureCache, functionals_matrix  # noqa: E402
from converters.protocol import mean_std  # noqa: E402
from edge_ser.features.egemaps import FunctionalsSpec  # noqa: E402

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def make(kind: str, c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.svm import SVC

    from converters.scaler import FlooredScaler

    est = (
        LogisticRegression(C=c, max_iter=5000)
        if kind == "logreg"
        else SVC(C=c, kernel="rbf", gamma="scale", random_state=0)
    )
    return Pipeline([("scale", FlooredScaler()), (kind, est)])


def loso(
    X: np.ndarray, y: np.ndarray, speakers: np.ndarray, kind: str, classes, per_speaker: bool = False
) -> dict:
    """Per-fold UAR / WAR of `kind` with C chosen on the validation speaker's UAR; `per_speaker`: every speaker
    standardised by its own clips (`converters.speaker_norm.transductive`), the variance floors from the fold's
    training and validation rows."""
    from converters.speaker_norm import transductive

    uars, wars, chosen = [], [], []
    X0 = X
    for _, split in leave_one_speaker_out(speakers, y, val_speakers=1, seed=0):
        X = transductive(X0, speakers, floor_from=X0[split.seen]) if per_speaker else X0
        best, best_uar = None, -1.0
        for c in C_GRID:
            pipe = make(kind, c).fit(X[split.train], y[split.train])
            u = metrics(y[split.val], pipe.predict(X[split.val]), classes).uar
            if u > best_uar:
                best, best_uar = (c, pipe), u
        c, pipe = best
        m = metrics(y[split.test], pipe.predict(X[split.test]), classes)
        uars.append(m.uar)
        wars.append(m.accuracy)
        chosen.append(c)
    (uar, uar_std), (war, war_std) = mean_std(uars), mean_std(wars)
    return {
        "uar": uar,
        "uar_std": uar_std,
        "war": war,
        "war_std": war_std,
        "n_folds": len(uars),
        "fold_uar": [round(float(u), 4) for u in uars],
        "chosen_C": chosen,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=None, help="EMODB wav folder (default: the data root's)")
    ap.add_argument(
        "--cache", type=Path, default=None, help="feature cache folder (default: ~/.cache/edge-ser)"
    )
    args = ap.parse_args()
    records = load_emodb(args.root or find_dataset("emodb"))
    spec = FunctionalsSpec()
    cache = FeatureCache(args.cache) if args.cache else FeatureCache()
    t0 = time.perf_counter()
    X = functionals_matrix(records, spec, cache=cache, progress=True).astype(np.float64)
    seconds = time.perf_counter() - t0
    y = np.array([r.label for r in records])
    speakers = np.array([r.speaker for r in records])
    classes = class_order(y)
    rows = []
    for norm in ("none", "speaker"):
        for kind in ("logreg", "svm"):
            r = loso(X, y, speakers, kind, classes, per_speaker=norm == "speaker")
            rows.append(
                {
                    "model": kind,
                    "input": "functionals88",
                    "dataset": "emodb",
                    "protocol": "loso",
                    "norm": norm,
                    **r,
                }
            )
            print(
                f"{kind:7s} norm={norm:8s} UAR {r['uar']:.3f} +- {r['uar_std']:.3f}  WAR {r['war']:.3f} +- {r['war_std']:.3f}"
            )
    md = [
        "# EMODB leave-one-speaker-out on the 88 functionals (C chosen on a validation speaker)",
        "",
        f"{len(records)} clips, {len(set(speakers))} speakers, spec {spec}; features {seconds:.0f} s "
        f"({cache.misses} computed, {cache.hits} from cache).",
        "",
        "| model | norm | UAR | WAR |",
        "|---|---|---|---|",
    ]
    md += [
        f"| {r['model']} | {r['norm']} | {100 * r['uar']:.1f} +- {100 * r['uar_std']:.1f} % | "
        f"{100 * r['war']:.1f} +- {100 * r['war_std']:.1f} % |"
        for r in rows
    ]
    md.append("")
    md.append(
        "norm = speaker: each speaker z-normalised by its own clips (the test speaker by its unlabelled test "
        "clips: transductive)."
    )
    write_results(
        "functionals_baseline",
        {"spec": spec.to_dict(), "rows": rows, "feature_seconds": seconds, "classes": list(classes)},
        "\n".join(md),
    )


if __name__ == "__main__":
    run_main(main)
