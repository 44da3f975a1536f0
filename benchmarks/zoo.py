"""The model zoo on EMODB: every model on the same leave-one-speaker-out folds and random 80/10/10 splits.

    python benchmarks/zoo.py                                  # all models, 10 LOSO folds + 5 seeds + LAQ
    python benchmarks/zoo.py --models rf,svm,laq_mlp --seeds 10  # a subset: zoo_rf_svm_laq_mlp.md, not zoo.md
    python benchmarks/zoo.py --ship bundles/squeezenet_lms    # also write the best model <= 100 KB as a bundle
    python benchmarks/zoo.py --replot                         # zoo.md again from zoo.json (nothing is run)

Per model: accuracy mean +- std on LOSO folds (each speaker left out, one validation speaker) and, beside it,
on random splits (seeds 0..N-1), parameters, FLOPs per input and per 2 s utterance (patch models vote over patches),
then LAQ at <= 2 average bits ("sensitivity@2.0" by default, then QAT: 30 epochs for patch models, 60 for the
LAQ MLP) on the first `--laq-seeds` random splits (the
LAQ MLP, seconds per run: on every random split):
accuracy after QAT, average bits, packed KB (the bundle's weights.esq; KB = 1000 bytes) and host latency
(onnxruntime, one thread, batch 1: one patch / one feature vector, and one utterance's patches).

Every run is a point of `converters.zoo.zoo_objective` through the sweep runner: results accumulate in
benchmarks/results/zoo/*.jsonl, so an interrupted run resumes, and `--reuse FILE.jsonl` imports finished
points with identical settings from another sweep (the LMS search's 10-split stage). Patch models use the
LMS setting the search chose (`converters.zoo.BEST_LMS`).

The best model <= 100 KB (the headline, and what `--ship` writes without `--ship-model`) is the one with the
highest leave-one-speaker-out accuracy, its random-split accuracy beside it; the target is judged on LOSO first.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, pin_single_thread, run_main, write_replot, write_results  # noqa: E402

pin_single_thread()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from converters.recipe import DEFAULT_CONDITIONING, DEFAULT_RATE  # noqa: E402
from converters.registry import INPUT_LABELS  # noqa: E402
from converters.registry import MODELS as MODEL_REGISTRY  # noqa: E402
from converters.sweep import Grid, Sweep  # noqa: E402
from converters.zoo import BEST_LMS, LMS_MODELS, MODELS, RECOMMENDED, ZooPoint, run_point, zoo_objective  # noqa: E402
from converters.zoo_cli import median_of as med  # noqa: E402
from converters.zoo_cli import pm  # noqa: E402
from edge_ser.errors import ConfigError  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "zoo"
TARGET_ACC, TARGET_KB = 0.88, 100.0


def base_point(model: str) -> dict:
    """A model's zoo point; patch models spell out data and split like the LMS search's points, so the
    search's finished runs of the chosen setting have the same ids and are reused (--reuse). Feature models
    run on the default recipe (`converters.recipe`: 16 kHz, DC removed, level -26 dBFS)."""
    if model in LMS_MODELS:
        return {"model": model, "data": "emodb", "split": "random", **RECOMMENDED.get(model, {}), **BEST_LMS}
    return {"model": model, **RECOMMENDED.get(model, {}), "sample_rate": DEFAULT_RATE, **DEFAULT_CONDITIONING}


def run(name: str, points: list[dict], args) -> list[dict]:
    if args.report_only:  # what the results files hold for these points; nothing is run
        sweep = Sweep(name, zoo_objective, Grid(points=points), OUT, reuse=args.reuse or [])
        sweep.import_reused()
        return sweep.results().to_rows()
    res = Sweep(
        name,
        zoo_objective,
        Grid(points=points),
        OUT,
        backend=args.backend,
        max_concurrent=args.max_concurrent,
        log=print,
        reuse=args.reuse or [],
    ).run()
    return res.to_rows()


def summarise(models: list[str], rnd: list[dict], loso: list[dict], laq: list[dict]) -> list[dict]:
    """One row per model (zoo.json's `summary`) from the sweep runs."""
    out = []
    for m in models:
        rr = [r for r in rnd if r["model"] == m and not r["error"]]
        ll = [r for r in loso if r["model"] == m and not r["error"]]
        qq = [r for r in laq if r["model"] == m and not r["error"]]
        flops = med(rr, "flops")
        out.append(
            {
                "model": m,
                "input": INPUT_LABELS[MODEL_REGISTRY[m].input_kind],
                "random": [r["acc"] for r in rr],
                "loso": [r["acc"] for r in ll],
                "random_mean": statistics.fmean([r["acc"] for r in rr]) if rr else None,
                "loso_mean": statistics.fmean([r["acc"] for r in ll]) if ll else None,
                "params": med(rr, "params"),
                "flops": flops,
                "utterance_flops": med(rr, "utterance_flops") or flops,
                "laq_acc": [r["laq_acc"] for r in qq],
                "laq_float_acc": [r["acc"] for r in qq],
                "bits": med(qq, "bits"),
                "packed_kb": med(qq, "packed_kb"),
                "latency_ms": med(qq, "latency_ms") or med(rr, "latency_ms"),
                "utterance_latency_ms": med(qq, "utterance_latency_ms"),
                "train_seconds": med(rr, "seconds"),
            }
        )
    return out


def table(out: list[dict]) -> str:
    """The zoo table of the summary rows: the LOSO column before the random splits' one."""
    head = [
        "model",
        "input",
        "LOSO %",
        "random 80/10/10 %",
        "params",
        "FLOPs / input",
        "FLOPs / utterance",
        "LAQ acc % (float)",
        "avg bits",
        "packed KB",
        "latency ms (input / utterance)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def num(v, fmt):
        return format(v, fmt) if isinstance(v, (int, float)) else "-"

    for s in out:
        laq_cell = "-"
        if s["laq_acc"]:
            laq_cell = f"{pm(s['laq_acc'])} ({pm(s['laq_float_acc'])})"
        lat = num(s["latency_ms"], ".3f")
        if s["utterance_latency_ms"] is not None:
            lat += f" / {s['utterance_latency_ms']:.3f}"
        lines.append(
            "| "
            + " | ".join(
                [
                    s["model"],
                    s["input"],
                    f"{pm(s['loso'])} (n={len(s['loso'])})",
                    f"{pm(s['random'])} (n={len(s['random'])})",
                    num(s["params"], ",.0f"),
                    num(s["flops"], ",.0f"),
                    num(s["utterance_flops"], ",.0f"),
                    laq_cell,
                    num(s["bits"], ".2f"),
                    num(s["packed_kb"], ".1f"),
                    lat,
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def best_small(summary: list[dict]) -> dict | None:
    """The best model <= TARGET_KB packed, by leave-one-speaker-out accuracy (None when no small model has a
    LOSO figure)."""
    small = [s for s in summary if s["packed_kb"] is not None and s["packed_kb"] <= TARGET_KB]
    small = [s for s in small if s["loso_mean"] is not None]
    return max(small, key=lambda s: s["loso_mean"]) if small else None


def headline(summary: list[dict]) -> str:
    """The target and best-model line: judged on leave-one-speaker-out, random splits beside it."""

    def meets(key: str) -> list[str]:
        return [
            s["model"]
            for s in summary
            if (s[key] or 0) >= TARGET_ACC and s["packed_kb"] is not None and s["packed_kb"] <= TARGET_KB
        ]

    def said(models: list[str]) -> str:
        return f"met by {', '.join(models)}" if models else "**not met**"

    line = (
        f"Target (>= {100 * TARGET_ACC:.0f} % at <= {TARGET_KB:.0f} KB packed): on leave-one-speaker-out "
        f"{said(meets('loso_mean'))}; on random 80/10/10 splits {said(meets('random_mean'))}."
    )
    best = best_small(summary)
    if best is None:
        return line + f" Best model <= {TARGET_KB:.0f} KB: none has a leave-one-speaker-out figure."
    rnd = f"{100 * best['random_mean']:.2f} %" if best["random_mean"] is not None else "-"
    return (
        line
        + f" Best model <= {TARGET_KB:.0f} KB (by LOSO): {best['model']} at {100 * best['loso_mean']:.2f} % "
        f"leave-one-speaker-out ({rnd} on random splits)."
    )


def render(payload: dict) -> str:
    """zoo.md from zoo.json's payload: one implementation for a run and for `--replot`."""
    lms = ", ".join(f"{k} {v}" for k, v in payload["best_lms"].items())
    seeds, folds = payload["seeds"], payload["folds"]
    md = "\n".join(
        [
            "# Model zoo on EMODB",
            "",
            f"535 utterances, 7 classes, 10 speakers, 16 kHz. LOSO: each of {folds} speakers left out, one "
            f"validation speaker; random: stratified 80/10/10, seeds 0..{seeds - 1}. Feature models: the 180-d "
            "clip vector on the default recipe (16 kHz, mel 0-8 kHz, DC removed, level -26 dBFS). Patch models: log-Mel "
            f"patches ({lms}), utterance = mean-probability vote over its patches. Compression: `{payload['laq']}` "
            f"(then QAT) on {payload['laq_seeds']} random split(s) for patch models, all {seeds} for laq_mlp; packed KB = weights.esq, KB = 1000 bytes. Latency: "
            "onnxruntime, one thread, batch 1, on this host (RF/SVM: scikit-learn predict of one vector).",
            "",
            table(payload["summary"]),
            "",
            headline(payload["summary"]),
        ]
    )
    shipped = payload.get("shipped")
    if shipped:
        md += (
            f"\n\nShipped `{shipped['path']}`: {shipped['model']} with DC removal and level -26 dBFS (the rows above "
            f"are without, for patch models), random split seed 0, accuracy after LAQ "
            f"{100 * shipped['laq_acc']:.2f} % (float {100 * shipped['acc']:.2f} %), {shipped['bits']:.2f} bits, "
            f"{shipped['packed_kb']:.1f} KB."
        )
    return md


def replot(ap: argparse.ArgumentParser) -> int:
    """Write zoo.md again from zoo.json, running nothing. Settings zoo.json predates (seeds, folds, laq_seeds,
    the shipped model) are read from its stored command, parsed by this script's parser."""
    path = RESULTS / "zoo.json"
    if not path.exists():
        ap.error(f"--replot: no {path}")
    payload = json.loads(path.read_text())
    stored = ap.parse_args(shlex.split(payload["command"])[2:])
    for key in ("seeds", "folds", "laq_seeds"):
        payload.setdefault(key, getattr(stored, key))
    shipped = payload.get("shipped")
    if shipped and "model" not in shipped:
        if not stored.ship_model:
            ap.error("--replot: zoo.json names no shipped model and its command no --ship-model; rerun it")
        shipped["model"] = stored.ship_model
    text = render(payload)
    print(text)
    write_replot("zoo", text, payload["command"])
    return 0


def same_point(stored: dict | None, p: ZooPoint) -> bool:
    """Whether a stored point (shipped.json's, the bundle manifest's `zoo_point`) is `p`, a key it predates
    taking its default, as a sweep's point id does. Compared as dicts, ZooPoint's `files` (added after the
    shipped point was stored) made the zoo's own command retrain and overwrite the shipped bundle (a review)."""
    try:
        return isinstance(stored, dict) and ZooPoint.from_point(stored) == p
    except ConfigError:  # a key ZooPoint no longer has: not the same point
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--seeds", type=int, default=5, help="random 80/10/10 splits (seeds 0..N-1)")
    ap.add_argument("--folds", type=int, default=10, help="LOSO folds (0 = skip)")
    ap.add_argument("--laq", default="sensitivity@2.0", help="compression recipe ('' = skip)")
    ap.add_argument("--qat-epochs", type=int, default=30, help="QAT epochs of the patch models (laq_mlp: 60)")
    ap.add_argument(
        "--laq-seeds",
        type=int,
        default=1,
        help="random splits compressed with --laq (patch models; laq_mlp: all)",
    )
    ap.add_argument("--reuse", action="append", help="JSONL of another sweep to import identical points from")
    ap.add_argument(
        "--ship",
        type=Path,
        default=None,
        help="write the best model <= 100 KB (by LOSO accuracy) as a bundle here",
    )
    ap.add_argument(
        "--ship-model",
        default=None,
        help="ship this model instead of the best <= 100 KB (the shipped point adds the default recipe's "
        "DC removal and level)",
    )
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="tabulate the finished points in the results files, run nothing",
    )
    ap.add_argument("--backend", choices=("auto", "serial", "ray"), default="auto")
    ap.add_argument("--max-concurrent", type=int, default=2)
    ap.add_argument(
        "--replot",
        action="store_true",
        help="write zoo.md again from zoo.json (nothing is run; other options unused)",
    )
    args = ap.parse_args()
    if args.replot:
        return replot(ap)
    # --seeds -1 ran nothing and wrote "seeds 0..-2" (a review); parse_seeds refuses negative seeds elsewhere
    for flag in ("seeds", "folds", "laq_seeds"):
        if getattr(args, flag) < 0:
            ap.error(f"--{flag.replace('_', '-')} {getattr(args, flag)}: a count, 0 or more")
    models = [m for m in args.models.split(",") if m]
    bad = [m for m in models if m not in MODELS]
    if bad:
        ap.error(f"unknown models {bad}; choose from {MODELS}")
    t0 = time.perf_counter()
    rnd_pts = [{**base_point(m), "seed": s} for m in models for s in range(args.seeds)]
    loso_pts = [{**base_point(m), "split": "loso", "fold": f} for m in models for f in range(args.folds)]
    laq_pts = [
        {
            **base_point(m),
            "seed": s,
            "laq": args.laq,
            **({"qat_epochs": args.qat_epochs} if m in LMS_MODELS else {}),
        }
        for m in models
        if args.laq and MODEL_REGISTRY[m].family == "torch"
        for s in range(args.laq_seeds if m in LMS_MODELS else args.seeds)  # feature models: cheap, every seed
    ]
    for p in rnd_pts + loso_pts + laq_pts:
        ZooPoint.from_point(p)
    rnd = run("zoo-random", rnd_pts, args) if rnd_pts else []
    loso = run("zoo-loso", loso_pts, args) if loso_pts else []
    laq = run("zoo-laq", laq_pts, args) if laq_pts else []
    summary = summarise(models, rnd, loso, laq)
    payload = {
        "models": models,
        "summary": summary,
        "best_lms": BEST_LMS,
        "laq": args.laq,
        "seeds": args.seeds,
        "folds": args.folds,
        "laq_seeds": args.laq_seeds,
        "seconds": time.perf_counter() - t0,
    }
    best = best_small(summary)
    ship = next((s for s in summary if s["model"] == args.ship_model), None) if args.ship_model else best
    if args.ship_model and ship is None:
        ap.error(f"--ship-model {args.ship_model}: not among --models")
    if args.ship and ship is not None:
        p = ZooPoint.from_point(
            {**base_point(ship["model"]), **DEFAULT_CONDITIONING, "seed": 0, "laq": args.laq}
        )
        record = OUT / "shipped.json"  # a re-run of the report does not retrain an already shipped bundle
        old = json.loads(record.read_text()) if record.exists() else {}
        manifest = args.ship / "manifest.json"
        same = manifest.exists() and same_point(json.loads(manifest.read_text()).get("zoo_point"), p)
        if same and same_point(old.get("point"), p) and old.get("path") == str(args.ship):
            shipped = old["metrics"]
        else:
            shipped = run_point(p, bundle_out=args.ship)
            record.write_text(
                json.dumps(
                    {"path": str(args.ship), "point": dataclasses.asdict(p), "metrics": shipped}, indent=1
                )
            )
        payload["shipped"] = {
            "path": str(args.ship),
            "model": ship["model"],
            **{k: v for k, v in shipped.items() if k != "plan"},
        }
    md = render(payload)
    print(md)
    write_results(results_name(models), payload, md)
    return 0


def results_name(models: list[str]) -> str:
    """zoo for every model; zoo_<model>_... for a `--models` subset, which replaced the full table with its rows
    alone (a review; backends.py names its subsets the same way)."""
    return "zoo" if set(models) == set(MODELS) else "zoo_" + "_".join(models)


if __name__ == "__main__":
    run_main(main)
