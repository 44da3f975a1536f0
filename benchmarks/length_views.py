"""Length views: do training copies cut to shorter stretches of speech keep a model's decision on short utterances?

    export EDGE_SER_DATA=/work/shared/datasets
    python benchmarks/length_views.py [--protocols emodb-loso,ravdess-loao] [--limit-folds N]

Each corpus's bundle recipe at 2 bits (EMODB: functionals_mlp_bal, RAVDESS: functionals_mlp; `sensitivity@2.0`
on `functionals_ext_aug`, the shipped noise and speed copies) is trained on every fold of its speaker-independent
protocol, without and with two length views of every training clip (`converters.featurize.cropped_functionals_matrix`:
cut from 0.2 s before its speech to a length of speech drawn from 0.75 s to all of it). Each fitted model scores the
test speaker's clips as recorded and cut to their first 1.0 and 1.5 s of speech, all standardised by the speaker's
statistics of the clips as recorded (transductive: a device that knows its speaker hearing a short utterance).
Validation (early stopping, LAQ, QAT) is on a speaker disjoint from the test fold, as in the si_table. UAR %, mean
+- std over folds. The rule that reads the table is in docs/protocol.md ("Utterance length").

Writes benchmarks/results/length_views.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import doc_body, require_datasets, run_main, write_results  # noqa: E402

RECIPES = {"emodb-loso": ("emodb", True), "ravdess-loao": ("ravdess", False)}
"""Protocol -> (data set, class-balanced loss): each corpus's bundle recipe (docs/protocol.md)."""
TEST_CUTS = (1.0, 1.5)
VIEWS = ("as recorded", *(f"first {c:g} s of speech" for c in TEST_CUTS))


def run(protocol: str, limit: int | None) -> dict:
    from converters.evaluate import index_metrics
    from converters.featurize import FeatureCache, cropped_functionals_matrix
    from converters.pipeline import load_records
    from converters.protocol import PROTOCOLS, mean_std
    from converters.si_eval import InputData, fold_inputs, functionals_ext_aug_input, functionals_rows
    from converters.speaker_norm import NormMode, transductive_like
    from edge_ser.features.egemaps import FunctionalsSpec

    data_name, balanced = RECIPES[protocol]
    cache = FeatureCache()
    aug = functionals_ext_aug_input(data_name, cache=cache)
    _, records = load_records(data_name, None)
    spec = FunctionalsSpec.from_dict(aug.info["spec"])
    crops = cropped_functionals_matrix(records, spec, cache=cache, progress=True)
    tests = cropped_functionals_matrix(records, spec, lengths=TEST_CUTS, cache=cache, progress=True)
    with_crops = InputData(
        "functionals_ext_aug_crop", aug.X, aug.y, aug.speakers, aug.classes, aug.info,
        np.concatenate([aug.copies, crops]).astype(np.float32),
    )  # fmt: skip
    row = next(
        r for r in functionals_rows("functionals_ext_aug", (), balanced=balanced) if r.recipe != "fp32"
    )
    norm = NormMode("transductive")
    folds = PROTOCOLS[protocol].folds(aug.speakers, aug.y)[:limit]
    views = [aug.X, *tests]
    # every view standardised per speaker, the floors from each fold's training and validation rows (never the test
    # speaker's): one per fold, for both arms
    normed = [transductive_like(aug.X, aug.speakers, views, floor_from=aug.X[f.split.seen]) for f in folds]
    out: dict = {"protocol": protocol, "data": data_name, "model": row.key, "folds": len(folds), "arms": {}}
    for arm, data in (("shipped copies", aug), ("+ length views", with_crops)):
        uars = {v: [] for v in VIEWS}
        for fold, fold_views in zip(
            tqdm(folds, desc=f"{protocol}, {arm}", disable=None), normed, strict=True
        ):
            fd, _ = fold_inputs(data, fold, norm)
            fitted = row.fit(fd)
            t = fold.split.test
            for name, X in zip(VIEWS, fold_views, strict=True):
                uars[name].append(index_metrics(aug.y[t], fitted.predict(X[t]), aug.classes).uar)
        out["arms"][arm] = {v: mean_std(u) for v, u in uars.items()}
        out["arms"][arm]["per_fold"] = {v: [round(100 * x, 2) for x in u] for v, u in uars.items()}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--protocols", default=",".join(RECIPES), help=f"of {sorted(RECIPES)}")
    ap.add_argument("--limit-folds", type=int, default=None, help="the first N folds only (a quick look)")
    args = ap.parse_args()
    protocols = args.protocols.split(",")
    if any(p not in RECIPES for p in protocols):
        ap.error(f"--protocols {args.protocols!r}: choose from {sorted(RECIPES)}")
    require_datasets(*dict.fromkeys(RECIPES[p][0] for p in protocols))
    results = [run(p, args.limit_folds) for p in protocols]
    lines = [
        "# Length views: short utterances on speaker-independent folds",
        "",
        doc_body(__doc__),
        "",
        "| protocol (folds) | model | training copies | " + " | ".join(f"UAR, {v}" for v in VIEWS) + " |",
        "|---|---|---" + "|---" * len(VIEWS) + "|",
    ]
    for r in results:
        for arm, figs in r["arms"].items():
            cells = [f"{100 * figs[v][0]:.1f} +- {100 * figs[v][1]:.1f}" for v in VIEWS]
            lines.append(
                f"| {r['protocol']} ({r['folds']}) | {r['model']} | {arm} | " + " | ".join(cells) + " |"
            )
    write_results("length_views", {"results": results}, "\n".join(lines))
    print("\n".join(lines[4:]))
    return 0


if __name__ == "__main__":
    run_main(main)
