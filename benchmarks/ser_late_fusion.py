"""Late fusion of the functionals model and the temporal model on EMODB leave-one-speaker-out (issue 18).

    python benchmarks/timnet_loso.py --speaker-norm --epochs 30 --patience 8 --tag spknorm   # the temporal branch
    python benchmarks/ser_late_fusion.py --temporal benchmarks/results/timnet_loso_spknorm.json

Per fold of the table's `emodb-loso` protocol (the temporal run's folds: each fold's test and validation speaker
is checked against its JSON): ser_emodb's recipe (`functionals_mlp_bal@sensitivity@2.0` on `functionals_ext_aug`,
transductive, seed 0) is fitted as the speaker-independence table fits it; the temporal branch is the run's
per-clip voted probabilities (its 2-bit model unless `--temporal-model float`). The two are combined by the
fusion bundles' rule (`edge_ser.fusion.FusionRule`): each branch temperature-scaled on the validation speaker,
then the product of experts with each branch's training prior divided out and a uniform prior for the fused
decision (UAR weighs every class alike; the functionals MLP is trained with the class-balanced loss, so its prior
is uniform already and weights (1, 0) give it alone; the temporal model's is the training label shares), weights
from `converters.calibrate.choose_weights` on the validation speaker (a grid holding each branch alone). Nothing
is chosen on the test speaker.

`--weights pooled` chooses each fold's weights on the validation clips of every other fold instead (each clip with
its own fold's calibrated, prior-divided posteriors; the fold's own test clips left out): one weight pair
cross-validated on ~500 clips rather than guessed from one speaker's 56. The temperatures stay per fold.

Writes benchmarks/results/ser_late_fusion[_TAG].{md,json}: UAR and WAR per fold and mean +- std for each branch
alone and fused, the chosen weights and temperatures, and the bytes of both branches.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_single_thread, run_main, write_results  # noqa: E402

pin_single_thread()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from converters.calibrate import choose_weights, fit_temperature  # noqa: E402
from converters.data.splits import Split  # noqa: E402
from converters.evaluate import index_metrics  # noqa: E402
from converters.protocol import PROTOCOLS, Fold, mean_std  # noqa: E402
from converters.si_eval import Fit, InputData, fit_laq_mlp, fold_inputs, functionals_ext_aug_input  # noqa: E402
from converters.speaker_norm import NormMode  # noqa: E402
from edge_ser.errors import ConfigError  # noqa: E402
from edge_ser.fusion import BranchRule, FusionRule, softmax_log  # noqa: E402

BRANCHES = ("functionals", "temporal")
EARNS = 0.01
"""The rule fixed before the first figure (docs/protocol.md): fusion earns its bytes at >= +1.0 point mean UAR."""


def temporal_rows(paths: list[Path], model: str) -> tuple[str, dict[int, dict]]:
    """The temporal runs' protocol, and their folds by index, each with {"val", "test"}: clip name ->
    probabilities (several files of one protocol, e.g. a run split over two processes, are merged)."""
    key = {"q": ("q_val", "q_test"), "float": ("val", "test")}[model]
    out, protocols = {}, set()
    for path in paths:
        run = json.loads(path.read_text())
        protocols.add(run.get("protocol", "emodb-loso"))
        for r in run["rows"]:
            probs = r.get("probabilities")
            if not probs or key[0] not in probs:
                raise ConfigError(
                    f"{path}: fold {r['fold']} has no {model} clip probabilities (re-run timnet_loso.py; "
                    "runs before 2026-12-04 did not store them)"
                )
            out[int(r["fold"])] = {
                **r,
                **{
                    part: dict(zip(r["clips"][part], np.asarray(probs[k]), strict=True))
                    for part, k in zip(("val", "test"), key, strict=True)
                },
                "classes": run["classes"],
            }
    if len(protocols) != 1:
        raise ConfigError(f"the temporal runs {[str(p) for p in paths]} mix protocols: {sorted(protocols)}")
    return protocols.pop(), out


def clip_fold(data: InputData, temporal: dict, table_fold: Fold) -> tuple[Fold, bool]:
    """The temporal run's fold over `data`'s rows (its validation and test clips; every other clip trains),
    named as the table's fold of the same index, and whether it is that fold exactly. (The 10-fold runs of
    2026-12-04 stratified on label names, the table on class indices, so their folds are other stratified folds.)"""
    index = {n: i for i, n in enumerate(data.info["clips"])}
    unknown = [n for part in ("val", "test") for n in temporal[part] if n not in index]
    if unknown:
        raise ConfigError(
            f"the temporal run's fold {temporal['fold']} names clips the data set lacks: {unknown[:3]}"
        )
    val, test = ([index[n] for n in temporal[p]] for p in ("val", "test"))
    train = np.setdiff1d(np.arange(len(data.y)), np.concatenate([val, test]))
    fold = Fold(table_fold.name, Split(train, np.asarray(val), np.asarray(test)))
    return fold, fold.split == table_fold.split


def recipe_fit() -> Fit:
    """ser_emodb's model as the table fits it: the class-balanced functionals MLP at sensitivity@2.0."""
    return fit_laq_mlp("sensitivity@2.0", model="functionals_mlp", balanced=True)


def branch_outputs(data: InputData, fold: Fold, temporal: dict, fit: Fit | None = None) -> dict:
    """One fold's branches: the functionals branch fitted (`fit`, default `recipe_fit()`) and the temporal
    branch's stored probabilities, as posteriors on the validation and test parts, with the labels, the
    temperatures fitted on the validation part and the rule (priors, temperatures; weights not chosen yet).
    `fold` must be the temporal run's (refuses other validation or test clips; `clip_fold` makes it). The
    functionals branch must have been trained with the class-balanced loss (its prior is taken as uniform)."""
    s = fold.split
    names = data.info["clips"]
    for part in ("val", "test"):
        if sorted(names[i] for i in getattr(s, part)) != sorted(temporal[part]):
            raise ConfigError(
                f"fold {fold.name}: the temporal run's fold {temporal['fold']} has other {part} clips "
                "(not the same folds)"
            )
    t0 = time.perf_counter()
    fd, X = fold_inputs(data, fold, NormMode.parse("transductive"))
    fitted = (fit or recipe_fit())(fd)
    post = {
        "functionals": {p: softmax_log(fitted.scores(X[getattr(s, p)])) for p in ("val", "test")},
        "temporal": {p: np.stack([temporal[p][names[i]] for i in getattr(s, p)]) for p in ("val", "test")},
    }
    y = {p: data.y[getattr(s, p)] for p in ("val", "test")}
    shares = np.bincount(data.y[s.train], minlength=len(data.classes)) / len(s.train)
    uniform = tuple([1.0 / len(data.classes)] * len(data.classes))
    temps = {b: fit_temperature(post[b]["val"], y["val"]) for b in BRANCHES}
    # the fused posterior's prior is uniform (UAR weighs every class alike; the functionals MLP's own prior, so
    # weights (1, 0) are that branch alone); the temporal model's training shares are divided out of its branch
    rule = FusionRule(
        data.classes, (BranchRule("functionals"), BranchRule("temporal", prior=tuple(shares))), uniform
    ).with_params(temps, {})
    return {
        "fold": fold.name,
        "val_clips": [names[i] for i in s.val],
        "test_clips": [names[i] for i in s.test],
        "post": post,
        "y": y,
        "rule": rule,
        "temps": temps,
        "fitted": fitted,
        "temporal": temporal,
        "seconds": time.perf_counter() - t0,
    }


def evidence(out: dict) -> dict[str, np.ndarray]:
    """A fold's validation posteriors as its own rule sees them: each branch alone through the rule (temperature
    applied, its prior divided out, renormalised). Fused with temperatures 1 and no priors, these give that fold's
    fused decision for any weights (up to the rule's probability floor, 1e-12, on near-certain posteriors), so
    the validation clips of several folds can be pooled to choose one pair."""
    rule, val = out["rule"], {b: out["post"][b]["val"] for b in BRANCHES}
    return {b: rule.with_params({}, {n: float(n == b) for n in BRANCHES}).fuse(val) for b in BRANCHES}


def pooled_weights(outs: list[dict], k: int) -> tuple[dict[str, float], dict[str, float]]:
    """Weights for fold `k` chosen on the validation clips of every other fold, without fold k's test clips."""
    test = set(outs[k]["test_clips"])
    posts: dict[str, list[np.ndarray]] = {b: [] for b in BRANCHES}
    ys = []
    for j, out in enumerate(outs):
        if j == k:
            continue
        keep = np.array([c not in test for c in out["val_clips"]])
        ev = evidence(out)
        for b in BRANCHES:
            posts[b].append(ev[b][keep])
        ys.append(out["y"]["val"][keep])
    rule = outs[k]["rule"]
    # temperatures 1 and no branch priors: `evidence` has applied each fold's own
    flat = FusionRule(rule.labels, tuple(BranchRule(b) for b in BRANCHES), rule.prior)
    chosen, scores = choose_weights(flat, {b: np.concatenate(posts[b]) for b in BRANCHES}, np.concatenate(ys))
    return {b.name: b.weight for b in chosen.branches}, scores


def fuse_fold(out: dict, classes: Sequence[str], weights: dict[str, float] | None = None) -> dict:
    """A fold's test figures for each branch and the fusion: weights chosen on its own validation part, or the
    given ones (`pooled_weights`)."""
    post, y = out["post"], out["y"]
    if weights is None:
        rule, val_scores = choose_weights(out["rule"], {b: post[b]["val"] for b in BRANCHES}, y["val"])
    else:
        rule, val_scores = out["rule"].with_params({}, weights), {}
    fused = rule.fuse({b: post[b]["test"] for b in BRANCHES})
    fitted, temporal = out["fitted"], out["temporal"]
    res = {"fold": out["fold"], "seconds": round(out["seconds"], 1)}
    for name, p in (*((b, post[b]["test"]) for b in BRANCHES), ("fused", fused)):
        m = index_metrics(y["test"], p.argmax(1), classes)
        res[name] = {"uar": m.uar, "war": m.accuracy, "confusion": m.matrix.tolist()}
    res.update(
        temperatures=out["temps"],
        weights={b.name: b.weight for b in rule.branches},
        val=val_scores,
        functionals_kb=fitted.packed_kb,
        functionals_bits=fitted.bits,
        temporal_kb=temporal.get("packed_kb"),
        temporal_bits=temporal.get("bits"),
        functionals_params=fitted.params,
        temporal_params=temporal.get("params"),
    )
    return res


def run_fold(data: InputData, fold: Fold, temporal: dict, fit: Fit | None = None) -> dict:
    """One fold with its weights chosen on its own validation part: `branch_outputs` then `fuse_fold`."""
    return fuse_fold(branch_outputs(data, fold, temporal, fit), data.classes)


def markdown(rows: list[dict], args: argparse.Namespace, protocol: str, total: int, verdict: str) -> str:
    files = ", ".join(f"`{p.name}`" for p in args.temporal)
    lines = [
        f"# Late fusion, functionals MLP + temporal model, {protocol} ({len(rows)} of {total} folds)",
        "",
        "Branches: ser_emodb's recipe (functionals_mlp_bal, sensitivity@2.0, functionals_ext_aug, transductive) and "
        f"the temporal model of {files} ({'2-bit' if args.temporal_model == 'q' else 'float'}). "
        "Temperatures chosen on each fold's validation part, weights on "
        + (
            "it"
            if args.weights == "fold"
            else "the other folds' validation parts, less this fold's test clips"
        )
        + " (product of experts, priors divided out). "
        "UAR / WAR per clip, %.",
        "",
        "| fold | functionals UAR / WAR | temporal UAR / WAR | fused UAR / WAR | weights (f, t) | T (f, t) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [f"{100 * r[b]['uar']:.1f} / {100 * r[b]['war']:.1f}" for b in (*BRANCHES, "fused")]
        w, t = r["weights"], r["temperatures"]
        lines.append(
            f"| {r['fold']} | {' | '.join(cells)} | {w['functionals']:g}, {w['temporal']:g} "
            f"| {t['functionals']:.2f}, {t['temporal']:.2f} |"
        )
    lines.append("")
    for b in (*BRANCHES, "fused"):
        (mu, su), (mw, sw) = (mean_std([r[b][k] for r in rows]) for k in ("uar", "war"))
        lines.append(f"- {b}: UAR **{100 * mu:.1f} +- {100 * su:.1f}**, WAR {100 * mw:.1f} +- {100 * sw:.1f}")
    kb_f = statistics.fmean(r["functionals_kb"] for r in rows)
    kb_t = [r["temporal_kb"] for r in rows if r["temporal_kb"] is not None]
    kb_t_text = f"{statistics.fmean(kb_t):.1f} KB" if kb_t else "float (no packed size)"
    lines += ["", f"Bytes: functionals {kb_f:.1f} KB, temporal {kb_t_text}. {verdict}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--temporal",
        type=Path,
        nargs="+",
        required=True,
        help="timnet_loso.py JSON(s) with clip probabilities",
    )
    ap.add_argument(
        "--temporal-model", choices=("q", "float"), default="q", help="its 2-bit (q) or float model"
    )
    ap.add_argument(
        "--weights",
        choices=("fold", "pooled"),
        default="fold",
        help="choose the weights on each fold's validation part (fold) or on the other folds' (pooled)",
    )
    ap.add_argument("--data", default=None, help="EMODB root (default: $EDGE_SER_DATA/emodb)")
    ap.add_argument("--tag", default="")
    args = ap.parse_args(argv)
    for path in args.temporal:
        if not path.is_file():
            ap.error(f"--temporal {path}: no such file")
    import torch

    torch.set_num_threads(1)
    protocol, temporal = temporal_rows(args.temporal, args.temporal_model)
    data = functionals_ext_aug_input("emodb", args.data)
    if list(data.classes) != list(next(iter(temporal.values()))["classes"]):
        raise ConfigError(f"class orders differ: functionals {data.classes}, temporal runs {args.temporal}")
    folds = PROTOCOLS[protocol].folds(data.speakers, data.y)
    outs, same = [], []
    for k in sorted(temporal):
        fold, is_table = clip_fold(data, temporal[k], folds[k])
        outs.append(branch_outputs(data, fold, temporal[k]))
        same.append(is_table)
    if args.weights == "pooled" and len(outs) < 2:
        ap.error("--weights pooled needs the runs of at least 2 folds")
    rows = []
    for k, out in enumerate(outs):
        weights, pooled = pooled_weights(outs, k) if args.weights == "pooled" else (None, None)
        rows.append({**fuse_fold(out, data.classes, weights), "table_fold": same[k]})
        if pooled is not None:
            rows[-1]["val"] = {"pooled": pooled}
        r = rows[-1]
        print(
            f"fold {k} ({r['fold']}): functionals {r['functionals']['uar']:.3f}, temporal "
            f"{r['temporal']['uar']:.3f}, fused {r['fused']['uar']:.3f} (weights {r['weights']}, {r['seconds']} s)",
            flush=True,
        )
    gain = statistics.fmean(r["fused"]["uar"] - r["functionals"]["uar"] for r in rows)
    kb = statistics.fmean(r["functionals_kb"] + (r["temporal_kb"] or 0.0) for r in rows)
    earns = gain >= EARNS and kb <= 100 and args.temporal_model == "q"
    verdict = (
        f"Fusion minus functionals alone: {100 * gain:+.1f} points mean UAR; the rule (>= +1.0 at <= 2 bits and "
        f"<= 100 KB together, {kb:.1f} KB here): {'earns its bytes' if earns else 'does not earn its bytes'}."
    )
    print(verdict)
    payload = {
        "protocol": protocol,
        "folds_total": len(folds),
        "temporal": [str(p) for p in args.temporal],
        "temporal_model": args.temporal_model,
        "weights": args.weights,
        "gain": gain,
        "earns": earns,
    }
    name = "ser_late_fusion" + (f"_{args.tag}" if args.tag else "")
    write_results(
        name, {**payload, "folds": rows}, markdown(rows, args, protocol, len(folds), verdict), indent=None
    )
    return 0


if __name__ == "__main__":
    run_main(main)
