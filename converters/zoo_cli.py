"""`edge-ser zoo`: several models on the same splits of one data set, one comparison table.

    edge-ser zoo --models rf,svm,laq_mlp,small_cnn --split random --seeds 10     # the baselines, 10x shuffle-split
    edge-ser zoo --models squeezenet_lms --split loso --set width=0.5 --set H=16
    edge-ser zoo --models laq_mlp --laq sensitivity@1.75                          # + packed KB, bits, latency

Every (model, split) is one point of a `converters.sweep` run over `converters.zoo.zoo_objective`, so a long
comparison resumes where it stopped and runs on Ray when installed. Results: `<out>/<name>.jsonl` and `.md`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from converters.data.scan import each_warning_once
from converters.registry import INPUT_LABELS, MODELS
from edge_ser.cli.common import in_range
from edge_ser.errors import ConfigError
from edge_ser.fileio import atomic_write

DEFAULT_MODELS = "rf,svm,laq_mlp,small_cnn"


def parse_sets(items: Sequence[str]) -> dict:
    """KEY=VALUE strings as a dict; values parsed as JSON when they are JSON (numbers, true, null), else text."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


SET_BY_OPTIONS = {
    "model": "--models",
    "data": "--data",
    "root": "--root",
    "files": "--data (the fingerprint of its files)",
    "split": "--split",
    "laq": "--laq",
}
"""`--set` keys the command's own options give each point: a `--set` of one overrode them in the points but not in
what the command read or printed (`--set split=loso` ran 10 copies of LOSO fold 0 under the title "10 random
80/10/10 splits"; `--set seed=3` was "grid point ... appears twice")."""


def check_sets(sets: Mapping[str, Any], split: str) -> None:
    """Refuse a `--set` of a key an option gives (SET_BY_OPTIONS, fold, and seed on random splits)."""
    by = dict(SET_BY_OPTIONS)
    by["fold"] = "--folds" if split == "loso" else "--split loso --folds (random splits have no folds)"
    if split == "random":
        by["seed"] = "--seeds"
    for key in sets:
        if key in by:
            raise ConfigError(
                f"--set {key}: given by {by[key]} (with --split {split}); use that option instead"
            )


def zoo_points(
    models: Sequence[str], split: str, indices: Sequence[int], extra: dict | None = None, laq: str = ""
) -> list[dict]:
    """One point per (model, split index): seed for random splits, fold (left-out speaker) for loso."""
    from converters.zoo import RECOMMENDED, ZooPoint

    points = []
    for m in models:
        for i in indices:
            p = {"model": m, "split": split, **({"seed": i} if split == "random" else {"fold": i, "seed": 0})}
            p.update(RECOMMENDED.get(m, {}))
            p.update(extra or {})
            if laq and MODELS[m].family == "torch":
                p["laq"] = laq
            ZooPoint.from_point(p)  # fail fast on a bad key or value
            points.append(p)
    return points


def pm(vals: list[float], scale: float = 100.0, digits: int = 2) -> str:
    """Mean ± sample std of fractions, as percentages ("-" when empty)."""
    if not vals:
        return "-"
    m = statistics.fmean(vals) * scale
    s = (statistics.stdev(vals) if len(vals) > 1 else 0.0) * scale
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def median_of(rows: list[dict], key: str):
    """Median of a numeric key over the rows that have it (None when none do)."""
    vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    return statistics.median(vals) if vals else None


def comparison_table(rows: Sequence[dict]) -> str:
    """Markdown: one row per model (in first-seen order), accuracy and UAR mean ± std over its splits, size and
    cost. UAR is over the points that have it: results stored before the zoo computed it show "-"."""
    by: dict[str, list[dict]] = {}
    for r in rows:
        if not r.get("error"):
            by.setdefault(r["model"], []).append(r)
    has_laq = any("laq_acc" in r for r in rows)
    head = [
        "model",
        "input",
        "accuracy % (mean ± std)",
        "UAR %",
        "n",
        "params",
        "FLOPs / input",
        "FLOPs / utterance",
    ]
    if has_laq:
        head += ["LAQ accuracy %", "LAQ UAR %", "avg bits", "packed KB", "latency ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, rs in by.items():
        params, flops, uflops = (
            median_of(rs, "params"),
            median_of(rs, "flops"),
            median_of(rs, "utterance_flops"),
        )
        cells = [
            model,
            INPUT_LABELS[MODELS[model].input_kind],
            pm([r["acc"] for r in rs]),
            pm([r["uar"] for r in rs if "uar" in r]),
            str(len(rs)),
            f"{params:,.0f}" if params is not None else "-",
            f"{flops:,.0f}" if flops is not None else "-",
            f"{uflops:,.0f}" if uflops is not None else (f"{flops:,.0f}" if flops is not None else "-"),
        ]
        if has_laq:
            laq = [r for r in rs if "laq_acc" in r]
            bits, kb, lat = median_of(laq, "bits"), median_of(laq, "packed_kb"), median_of(rs, "latency_ms")
            cells += [
                pm([r["laq_acc"] for r in laq]) if laq else "-",
                pm([r["laq_uar"] for r in laq if "laq_uar" in r]),
                f"{bits:.2f}" if bits is not None else "-",
                f"{kb:.1f}" if kb is not None else "-",
                f"{lat:.3f}" if lat is not None else "-",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cmd_zoo(args: argparse.Namespace) -> int:
    """Run (or resume) the comparison, print the table, write `<out>/<name>.md`. Exit 1 if a point failed. Each
    data-set warning is said once, not once per point (`each_warning_once`)."""
    with each_warning_once():
        return _cmd_zoo(args)


def _cmd_zoo(args: argparse.Namespace) -> int:
    from converters.registry import model_names
    from converters.sweep import Grid, Sweep
    from converters.zoo import zoo_objective

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    known = model_names(command="zoo")
    bad = [m for m in models if m not in known]
    if bad:
        raise ConfigError(f"--models: unknown {bad}; choose from {', '.join(known)}")
    twice = sorted({m for m in models if models.count(m) > 1})
    if twice:  # the sweep's grid refused it only after listing the data, as "grid point {...} appears twice"
        raise ConfigError(f"--models: {', '.join(twice)} listed twice; name each model once")
    if args.laq:  # the options first: a mistake there is said before any data is read
        from converters.compress import check_recipe

        check_recipe(args.laq)
        if not any(MODELS[m].family == "torch" for m in models):
            raise ConfigError(f"--laq {args.laq}: none of {', '.join(models)} has weights to quantize")
    sets = parse_sets(args.set or [])
    check_sets(sets, args.split)
    from converters.data.loaders import is_labels_csv
    from converters.pipeline import files_fingerprint, load_records

    folder = Path(args.data).is_dir() or is_labels_csv(args.data)  # the user's own files: fingerprinted
    # listed now for every split: a --data or --root mistake is one error here, not a failed (and kept) point each
    records = load_records(args.data, args.root)[1]
    if args.split == "random":
        indices = list(range(args.seeds))
    else:
        from converters.data.splits import check_named_speakers

        check_named_speakers([r.speaker for r in records], f"zoo: {args.data}")  # now, not once per fold
        speakers = len({r.speaker for r in records})
        folds = speakers if args.folds is None else args.folds
        if folds > speakers:  # found now, not after the first folds have run
            raise ConfigError(f"--folds {folds}: {args.data} has {speakers} speakers to leave out")
        indices = list(range(folds))
        _warn_small_folds(records, indices)
    extra = {
        "data": args.data,
        **({"root": str(args.root)} if args.root else {}),
        **({"files": files_fingerprint(records)} if folder else {}),
        **sets,
    }
    points = zoo_points(models, args.split, indices, extra, laq=args.laq or "")
    name = args.name or f"zoo-{Path(args.data).name or 'data'}-{args.split}"  # --data may be a folder
    say = (lambda s: None) if args.quiet else print
    sweep = Sweep(
        name,
        zoo_objective,
        Grid(points=points),
        args.out,
        backend=args.backend,
        max_concurrent=args.max_concurrent,
        progress=not args.quiet,
        log=say,
        retry_errors=args.retry_errors,
    )
    res = sweep.run()
    what = (
        f"{len(indices)} random 80/10/10 splits" if args.split == "random" else f"{len(indices)} LOSO folds"
    )
    text = f"## {args.data}: {', '.join(models)} on {what}\n\n" + comparison_table(res.to_rows())
    for r in res.errors:
        text += f"\n\nfailed {json.dumps(r['point'])}: {r['error'].splitlines()[0]}"
    print(text)
    md = Path(args.out) / f"{name}.md"
    atomic_write(md, text + f"\n\nResults: `{res.path}`\n")
    return 1 if res.errors else 0


def _warn_small_folds(records, indices: list[int]) -> None:
    """Say on stderr, once, which LOSO folds to run test or validate on fewer than FEW_CLIPS clips (a fold
    testing a one-clip speaker scores 0 or 1 and counts as much as any other in the mean), and which test a
    speaker who holds one class (its UAR is that class's recall: its accuracy)."""
    import numpy as np

    from converters.data.splits import leave_one_speaker_out
    from converters.heldout import small_parts, untested_classes

    labels = [str(r.label) for r in records]
    folds = list(leave_one_speaker_out([r.speaker for r in records], labels))
    classes = sorted(set(labels))
    y = np.array([classes.index(label) for label in labels])

    def note(split) -> str:  # noqa: ANN001 - a Split
        one = len(set(y[split.test].tolist())) == 1  # only then: a speaker lacking a class or two is common
        gap = untested_classes(y, classes, split, "") if one else None
        return "; ".join(filter(None, (small_parts(split, advice=""), gap)))

    said = [
        f"fold {i} (speaker {folds[i][0]} left out): {n}"
        for i in indices
        if i < len(folds) and (n := note(folds[i][1]))
    ]
    if said:
        print(
            "edge-ser zoo: warning: "
            + "; ".join(said)
            + ". Each fold counts as much as any other in the mean over folds",
            file=sys.stderr,
        )


def add_zoo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models",
        default=DEFAULT_MODELS,
        metavar="LIST",
        help=f"the models to compare, comma-separated (default {DEFAULT_MODELS})",
    )
    p.add_argument(
        "--data",
        default="emodb",
        help="data set: a name (emodb, ravdess, ...), a folder or a labels CSV of your own (docs/data.md); default emodb",
    )
    p.add_argument(
        "--root",
        type=Path,
        default=None,
        metavar="DIR",
        help="the named data set's folder (default: found under $EDGE_SER_DATA, else the checkout's "
        "../shared/datasets)",
    )
    p.add_argument("--split", choices=("random", "loso"), default="random", help="default random (80/10/10)")
    p.add_argument(
        "--seeds", type=in_range(1), default=10, metavar="N", help="random splits: seeds 0..N-1 (default 10)"
    )
    p.add_argument(
        "--folds",
        type=in_range(1),
        default=None,
        metavar="N",
        help="loso: the first N speakers left out (default: every speaker, 10 on EMODB)",
    )
    from converters.zoo import ZooPoint

    keys = ", ".join(
        f.name for f in dataclasses.fields(ZooPoint) if f.name not in SET_BY_OPTIONS and f.name != "fold"
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help=f"a point field for every point (repeatable), one of: {keys} (seed with --split loso only: --seeds "
        "gives the random splits' seeds, --folds the folds)",
    )
    p.add_argument(
        "--laq",
        default="",
        metavar="RECIPE",
        help="also compress, bundle and time (a recipe, e.g. sensitivity@1.75)",
    )
    p.add_argument(
        "--out", type=Path, default=Path("runs/zoo"), metavar="DIR", help="results folder (default runs/zoo)"
    )
    p.add_argument("--name", default=None, help="results file name (default zoo-DATA-SPLIT)")
    p.add_argument(
        "--backend",
        choices=("auto", "serial", "ray"),
        default="auto",
        help="where the points run: serial (one after another here), ray, or auto: Ray when installed "
        "(default auto)",
    )
    p.add_argument(
        "--max-concurrent",
        type=in_range(1),
        default=None,
        metavar="N",
        help="points run at once on Ray (default: as many as the CPUs allow)",
    )
    p.add_argument(
        "--retry-errors",
        action="store_true",
        help="run again the points whose latest result is an error (they are kept, not retried, by default)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


__all__ = ["add_zoo_args", "cmd_zoo", "comparison_table", "median_of", "parse_sets", "pm", "zoo_points"]
