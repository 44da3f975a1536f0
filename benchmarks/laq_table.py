"""The LAQ paper's table (Table 4, EMODB), reproduced: every recipe on the same splits, several seeds.

    python benchmarks/laq_table.py --data emodb --seeds 5            # leave-one-speaker-out + random 80/10/10
    python benchmarks/laq_table.py --data ravdess --seeds 5
    python benchmarks/laq_table.py --data emodb --replot             # the Markdown again from laq_table_emodb.json

Per split: train the float laq_mlp, then apply each recipe (converters.compress) to that same float model;
accuracy is on the split's test part. Columns: accuracy mean +- std, average weight bits, packed KB (the
real .esq file: codes + scales + float biases and normalisation), ONNX KB (float graph for fp32, INT4/INT8
QDQ graph for quantized rows). KB = 1000 bytes. The leave-one-speaker-out table comes first (the
speaker-independent figure); the random splits' table follows it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, pin_single_thread, run_main, write_replot, write_results  # noqa: E402

pin_single_thread()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from converters.compress import compress, parse_recipe  # noqa: E402
from converters.data import leave_one_speaker_out  # noqa: E402
from converters.export.onnx_export import qdq, to_onnx  # noqa: E402
from converters.featurize import FeatureCache  # noqa: E402
from converters.models import laq_mlp  # noqa: E402
from converters.pipeline import make_split, prepare  # noqa: E402
from converters.quant import LaqConfig  # noqa: E402
from converters.recipe import load_spec  # noqa: E402
from converters.train import TrainConfig, accuracy, seed_everything, train_classifier  # noqa: E402
from edge_ser.errors import ConfigError  # noqa: E402
from edge_ser.inputs.vector import VectorKind  # noqa: E402

RECIPES = [
    "fp32",
    "ptq-8",
    "qat-8",
    "ptq-4",
    "qat-4",
    "ptq-2",
    "qat-2",
    "ptq-1",
    "qat-1",
    "laq-paper",
    "laq-qat",
    "sensitivity",
]
PAPER = {"fp32": (74.07, 32.0, 676), "laq-paper": (75.93, 2.00, 43), "qat-1": (64.81, 1.0, None)}


def sizes(c, spec_dim: int) -> tuple[float, float]:
    """(packed .esq KB, ONNX KB) of a compressed model."""
    esq = c.packed_bytes((spec_dim,))
    proto = to_onnx(c.model, (spec_dim,))
    if c.codes:
        proto = qdq(proto, c.codes, {k: f"{k}.weight" for k in c.codes}, c.plan.bits)
    return esq / 1000, len(proto.SerializeToString()) / 1000


def run_split(prep, split, seed: int, recipes: list[str], laq: LaqConfig) -> dict[str, dict]:
    X = prep.X
    Xtr, ytr, Xva, yva, Xte, yte = prep.parts(split)
    seed_everything(seed)
    model = laq_mlp(X.shape[1], len(prep.classes))
    model.set_normalization(torch.as_tensor(Xtr.mean(0)), torch.as_tensor(Xtr.std(0)))
    fp = train_classifier(model, Xtr, ytr, Xva, yva, TrainConfig(seed=seed), progress=False).model
    out = {}
    for r in recipes:
        c = compress(r, fp, Xtr, ytr, Xva, yva, laq=laq, seed=seed)
        packed_kb, onnx_kb = sizes(c, X.shape[1])
        out[r] = {
            "acc": accuracy(c.model, Xte, yte),
            "bits": c.plan.average_bits,
            "packed_kb": packed_kb,
            "onnx_kb": onnx_kb,
            "plan": dict(c.plan.bits),
            "seconds": c.seconds,
        }
    return out


def summarise(runs: list[dict[str, dict]], recipes: list[str]) -> list[dict]:
    rows = []
    for r in recipes:
        acc = [100 * run[r]["acc"] for run in runs]
        rows.append(
            {
                "recipe": r,
                "acc_mean": statistics.mean(acc),
                "acc_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                "bits": statistics.mean(run[r]["bits"] for run in runs),
                "packed_kb": statistics.mean(run[r]["packed_kb"] for run in runs),
                "onnx_kb": statistics.mean(run[r]["onnx_kb"] for run in runs),
                "n": len(acc),
            }
        )
    return rows


def table(rows: list[dict], title: str) -> list[str]:
    lines = [
        f"### {title}",
        "",
        "| recipe | accuracy % (mean +- std) | avg bits | packed KB | ONNX KB |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['recipe']} | {r['acc_mean']:.2f} +- {r['acc_std']:.2f} (n={r['n']}) | {r['bits']:.2f} "
            f"| {r['packed_kb']:.1f} | {r['onnx_kb']:.1f} |"
        )
    return lines


RENDER_KEYS = ("data", "clips", "classes", "features", "laq", "random", "seconds")  # what render() reads


def render(payload: dict) -> str:
    """The Markdown of a run from its payload (laq_table_<data>.json): the leave-one-speaker-out table first,
    then the random splits' table. One implementation for a run and for `--replot`."""
    laq, data = payload["laq"], payload["data"]
    md = [
        f"# LAQ table on {data.upper()} ({payload['clips']} clips, {payload['classes']} classes)",
        "",
        f"laq_mlp 180-512-128-64-{payload['classes']}; LAQ weights wP/wE/wV = .11/.01/.88, T_margin = "
        f"{laq['t_margin']}, histogram bins {laq['bins']}; sensitivity budget {laq['budget']} bits; QAT 120 epochs "
        "max, early stopping on validation. Accuracy on each split's test part.",
        "",
        payload["features"],
        "",
    ]
    if "loso" in payload:
        md += table(
            payload["loso"]["rows"],
            f"Leave-one-speaker-out, {len(payload['loso']['speakers'])} folds (one held-out speaker each; "
            "one other speaker for validation)",
        ) + [""]
    else:
        md += [
            "No leave-one-speaker-out rows in this run (--no-loso): the random splits below share speakers.",
            "",
        ]
    md += table(
        payload["random"]["rows"],
        f"Stratified random 80/10/10, seeds 0..{len(payload['random']['runs']) - 1}",
    )
    if data == "emodb":
        md += [
            "",
            "Paper (Table 4, EMODB, one split): fp32 74.07% at 676 KB; LAQ 75.93% at 2.00 bits, 43 KB; "
            "fixed 1-bit 64.81%.",
        ]
    md += ["", f"Wall time {payload['seconds']:.0f} s on 1 thread."]
    return "\n".join(md)


def replot(name: str) -> int:
    """Write benchmarks/results/<name>.md again from <name>.json, rerunning nothing."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        print(f"laq_table.py: error: no {path}: nothing to re-render", file=sys.stderr)
        return 2
    payload = json.loads(path.read_text())
    missing = [k for k in RENDER_KEYS if k not in payload]
    if missing:
        print(
            f"laq_table.py: error: {path.name} lacks {', '.join(missing)} (stored only since 2026-12-07): "
            "its Markdown cannot be rebuilt from it; rerun the table",
            file=sys.stderr,
        )
        return 2
    text = render(payload)
    print(text)
    write_replot(name, text, payload["command"])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="emodb", help="data set name (default emodb)")
    ap.add_argument("--seeds", type=int, default=5, help="random 80/10/10 splits (default 5)")
    ap.add_argument(
        "--loso", type=int, default=None, help="leave-one-speaker-out folds to run (default: all)"
    )
    ap.add_argument(
        "--spec", type=Path, default=None, help="FeatureSpec JSON (default: converters.recipe.DEFAULT_SPEC)"
    )
    ap.add_argument("--no-loso", action="store_true", help="skip the leave-one-speaker-out rows")
    ap.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipes")
    ap.add_argument("--t-margin", type=float, default=LaqConfig().t_margin, help="LAQ T_margin (fraction)")
    ap.add_argument("--budget", type=float, default=LaqConfig().budget, help="sensitivity budget (avg bits)")
    ap.add_argument(
        "--replot",
        action="store_true",
        help="write laq_table_<data>.md again from laq_table_<data>.json (no run; --data picks the file)",
    )
    args = ap.parse_args()
    if args.replot:
        return replot(f"laq_table_{args.data}")
    recipes = args.recipes.split(",")
    for recipe in recipes:  # before the features: a typo was refused by the first split's compress
        parse_recipe(recipe)
    if args.seeds < 1:  # 0 made the features, then a StatisticsError traceback
        raise ConfigError(f"--seeds {args.seeds}: at least 1 random split")
    # --loso 0 trained every random split, then a StatisticsError traceback
    if args.loso is not None and args.loso < 1:
        raise ConfigError(f"--loso {args.loso}: at least 1 fold (--no-loso leaves the LOSO table out)")
    laq = LaqConfig(t_margin=args.t_margin, budget=args.budget)
    t0 = time.perf_counter()
    spec = load_spec(args.spec)
    prep = prepare(args.data, spec=spec, cache=FeatureCache(), progress=False)
    payload = {
        "data": args.data,
        "clips": len(prep.records),
        "classes": len(prep.classes),
        "features": VectorKind(spec).describe()[0].capitalize() + ".",
        "laq": laq.to_dict(),
    }
    random_runs = [
        run_split(prep, make_split(prep, "random", seed=s), s, recipes, laq)
        for s in tqdm(range(args.seeds), desc=f"{args.data} random splits")
    ]
    # runs in the order they always ran (random, then LOSO); render() puts the LOSO table first
    payload["random"] = {"rows": summarise(random_runs, recipes), "runs": random_runs}
    if not args.no_loso:
        speakers = [r.speaker for r in prep.records]
        folds = list(leave_one_speaker_out(speakers, prep.y))[: args.loso]
        loso_runs = [run_split(prep, sp, 0, recipes, laq) for _, sp in tqdm(folds, desc=f"{args.data} LOSO")]
        payload["loso"] = {
            "rows": summarise(loso_runs, recipes),
            "runs": loso_runs,
            "speakers": [s for s, _ in folds],
        }
    payload["seconds"] = time.perf_counter() - t0
    text = render(payload)
    print(text)
    full = args.seeds >= 5 and not args.no_loso and args.loso is None and recipes == RECIPES
    # a smoke run must not overwrite the committed full table
    write_results(f"laq_table_{args.data}" + ("" if full else "_partial"), payload, text)
    return 0


if __name__ == "__main__":
    run_main(main)
