"""The speaker-independence table (issue 18): every model row, on every protocol, with and without speaker
normalisation; UAR and WAR, mean and std over folds.

    python benchmarks/si_table.py                                   # all protocols, rows and norms
    python benchmarks/si_table.py --protocols emodb-loso --rows svm,laq_mlp --norms transductive  # si_table_subset
    python benchmarks/si_table.py --ablation --name si_table_ablation  # + the functionals + MFCC rows
    python benchmarks/si_table.py --protocols emodb-loso --rows functionals_mlp_bal@sensitivity@2.0+functionals_ext_aug \
        --norms transductive --seed 0,1,2 --name si_seeds   # each fold trained per seed, the seeds pooled

Protocols (converters.protocol.PROTOCOLS): EMODB leave-one-speaker-out (the headline), EMODB stratified
10-fold x 3 seeds, RAVDESS actors 01-12 in 6 folds of 2 actors and leave-one-actor-out (8 classes).
Validation is a speaker disjoint from the test fold on the speaker-independent protocols; nothing is chosen
on the test fold.
Rows (converters.si_eval.standard_rows): logistic regression and SVM (scikit-learn), laq_mlp float and
after LAQ + QAT at <= 2 average bits ("sensitivity@2.0"), on the 16 kHz clip vector; the same baselines and
functionals_mlp (float and "sensitivity@2.0") on the eGeMAPS-layout functionals and on their extended layout
(`functionals_ext`, 327 values); logreg and functionals_mlp on the extended layout with speed-perturbed
training copies (`functionals_ext_speed`); functionals_mlp with the class-balanced loss
(`functionals_mlp_bal`) on those, and both losses on the ser_* training set (`functionals_ext_aug`: speed
and noisy copies; ser_emodb and ser_ravdess are the balanced row). `--ablation` adds the same
four functionals rows on `functionals_mfcc` (the functionals + the clip's 40 MFCC means; host only, no device
input kind yet).
Norms: none and transductive per-speaker standardisation; online-1/5/20 (the device's running statistics
after N clips) for every transductive row of a speaker-independent protocol.

Every finished (row, protocol, fold, norm) is one line of benchmarks/results/si_table_runs/si_table.jsonl
(converters.sweep): a re-run trains only what is missing. Output: benchmarks/results/si_table.{md,json},
si_table_pareto_<protocol>.png (UAR vs packed KB) and si_table_confusion_<protocol>.png (the best row; `--name`
replaces the si_table prefix of every output; a run of other rows, protocols, norms or online counts writes
si_table_subset.* unless named, and `--limit-folds` adds _partial and draws no plots). A point's id holds its
input's version (`converters.si_eval.INPUT_VERSIONS`): bumping it recomputes that input's rows.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, folder_problem, parse_seeds, pin_single_thread, run_main, write_results  # noqa: E402

pin_single_thread()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from converters.evaluate import Metrics, draw_confusion_png  # noqa: E402
from converters.protocol import PROTOCOLS, mean_std  # noqa: E402
from converters.si_eval import (  # noqa: E402
    ROW_FIELDS,
    TABLE_VERSION,
    SITable,
    ablation_rows,
    corpus_rows,
    linear_rows,
    mixup_rows,
    standard_rows,
)
from converters.speaker_norm import NormMode  # noqa: E402
from converters.sweep import Grid, Sweep  # noqa: E402
from edge_ser.errors import ConfigError  # noqa: E402
from edge_ser.fileio import write_png  # noqa: E402

RUNS = RESULTS / "si_table_runs"


def _r(x: float | None, d: int = 6) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), d)


def _pct(x: float | None, s: float | None = None) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.1f}" + ("" if s is None else f" +- {100 * s:.1f}")


def markdown(
    rows: list[dict], seconds: float, compute: float, name: str = "si_table", plots: bool = True
) -> str:
    """The table as markdown; `name` is the results name its plots are written under (`write_plots`); without
    `plots` (a partial run draws none) the best rows are named without links to pictures that do not exist."""
    lines = [
        "# Speaker-independent accuracy (issue 18)",
        "",
        "UAR = mean per-class recall, WAR = accuracy; mean +- std over folds, in %. Validation (early stopping,",
        "knob choice, LAQ allocation and QAT, the online prior weight) on speakers disjoint from the test fold on",
        "the speaker-independent protocols. Inputs: `vector` = the 180-d clip vector at 16 kHz (mel 0-8 kHz), DC",
        "removed, -26 dBFS (converters.si_eval.si_vector_spec); `functionals` = the 88 eGeMAPS-layout functionals",
        "(edge_ser.features.egemaps, docs/features.md), same conditioning; `functionals_ext` = the extended layout",
        "(the 88 + distribution, dynamics and MFCC 5-12 statistics, 327 values); `functionals_ext_speed` = the same,",
        "with speed-perturbed copies (0.9, 1.1) of the training speakers' clips added to training (validation and",
        "test rows are the clips as recorded); `functionals_ext_aug` = the ser_* bundles' training set: the speed",
        "copies and two noisy copies (white noise, 20-50 dB SNR) of every training clip. `functionals_ext_aug_both`",
        "(rows on request) = that set plus, in every fold, the other corpus's clips of the shared classes and their",
        "copies as training rows only (EMODB <-> RAVDESS actors 01-12; each of its speakers standardised by its own",
        "statistics; docs/protocol.md).",
        "`functionals_mlp_bal`: functionals_mlp trained with the class-balanced cross-entropy (every class the same",
        "total weight, so the loss matches UAR; `TrainConfig.class_balanced`), the ser_* recipe.",
        "packed KB: the real .esq file for laq_mlp; float32 values x 4 B (an estimate) for scikit-learn models.",
        "norm: none / transductive (every speaker standardised by its own clips' statistics) / online-N (the test",
        "speaker's statistics after N clips, from the training prior; docs/protocol.md).",
        "`mfcc frames` / `waveform`: the temporal models on 2.24 s windows voted per clip, from their own LOSO runs",
        "(benchmarks/timnet_loso.py, the same folds; float size = params x 4 B; transductive: each speaker's frames",
        "standardised by its own statistics; `timnet` 30 epochs, `timnet_100ep` 100 with patience 25; 10-fold runs:",
        "all 30 folds). `late_fusion(...)`: the 2-bit functionals_mlp_bal on functionals_ext_aug",
        "and the 2-bit transductive timnet, temperature-scaled and fused by the fusion bundles' product of experts, the",
        "weights chosen on the validation speaker (benchmarks/ser_late_fusion.py; bits averaged over both models' weights);",
        "`late_fusion_pooled`: the weights chosen on the other folds' validation clips instead (`--weights pooled`).",
    ]
    for protocol, proto in PROTOCOLS.items():
        mine = [r for r in rows if r["protocol"] == protocol]
        if not mine:
            continue
        lines += ["", f"## {protocol}: {proto.describe()}", ""]
        lines += [
            "| model | input | norm | UAR % | WAR % | folds | avg bits | packed KB | params |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in sorted(mine, key=lambda r: (r["model"], _norm_order(r["norm"]))):
            folds = (
                f"{r['n_folds']}"
                + (f" x seeds {','.join(map(str, r['seeds']))}" if r.get("seeds") else "")
                + ("" if r["complete"] else " (partial)")
            )
            kb = "-" if r["packed_kb"] is None else f"{r['packed_kb']:.1f}"
            lines.append(
                f"| {r['model']} | {r['input']} | {r['norm']} | {_pct(r['uar'], r['uar_std'])} "
                f"| {_pct(r['war'], r['war_std'])} | {folds} | {r['bits']:.2f} | {kb} | {r['params']:,} |"
            )
        best, shown = _best(mine), _best_with_confusion(mine)
        other = (
            ""
            if shown is None or shown is best
            else f" (of {shown['model']} on {shown['input']}, {shown['norm']})"
        )
        lines += [
            "",
            f"Highest of the {len(mine)} rows (picked on these test folds: optimistic as the figure of any one "
            f"recipe): {best['model']} on {best['input']} ({best['norm']}), UAR {_pct(best['uar'], best['uar_std'])}."
            + (f" ![UAR vs packed KB]({name}_pareto_{protocol}.png)" if plots else "")
            + (
                "" if shown is None or not plots else f" ![confusion{other}]({name}_confusion_{protocol}.png)"
            ),
        ]
    lines += [
        "",
        f"Compute: {compute:.0f} s summed over every fold run (1 thread, a 2-core machine shared with other "
        f"jobs); this invocation {seconds:.0f} s (finished points are reused).",
    ]
    return "\n".join(lines)


TEMPORAL = {
    ("timnet_loso",): ("timnet", "mfcc frames"),
    ("timnet_loso_spknorm",): ("timnet", "mfcc frames"),
    ("timnet_loso_e100_f0", "timnet_loso_e100_f1", "timnet_loso_e100_f2-5", "timnet_loso_e100_f6-9"): (
        "timnet_100ep",
        "mfcc frames",
    ),
    (
        "timnet_10fold_e100_a",
        "timnet_10fold_e100_b",
        "timnet_10fold_e100_c",
        "timnet_10fold_e100_d",
        "timnet_10fold_e100_e",
        "timnet_10fold_e100_f",
    ): (
        "timnet_100ep",
        "mfcc frames",
    ),
    ("serct_lite_loso",): ("serct_lite", "waveform"),
}
"""Runs of the temporal models (benchmarks/timnet_loso.py, the table's folds): results files (one run, or one run
split over processes by fold) -> (row model, input); the row's protocol and norm are the run's (`--speaker-norm`:
transductive). They train on windows, not the table's vectors, so they run there. (The 10-fold runs of 2026-12-04,
timnet_10fold_spknorm_{a,b}, stratified on label names, not on the table's class indices: other folds, so not
rows here; docs/protocol.md.)"""
FUSION = {
    "ser_late_fusion": (
        "late_fusion(functionals_mlp_bal + timnet)@2bit",
        "functionals_ext_aug + mfcc frames",
    ),
    "ser_late_fusion_e100": (
        "late_fusion(functionals_mlp_bal + timnet_100ep)@2bit",
        "functionals_ext_aug + mfcc frames",
    ),
    "ser_late_fusion_e100_pooled": (
        "late_fusion_pooled(functionals_mlp_bal + timnet_100ep)@2bit",
        "functionals_ext_aug + mfcc frames",
    ),
    "ser_late_fusion_10fold_e100": (
        "late_fusion(functionals_mlp_bal + timnet_100ep)@2bit",
        "functionals_ext_aug + mfcc frames",
    ),
    "ser_late_fusion_10fold_e100_pooled": (
        "late_fusion_pooled(functionals_mlp_bal + timnet_100ep)@2bit",
        "functionals_ext_aug + mfcc frames",
    ),
}
"""Late fusion of the two (benchmarks/ser_late_fusion.py): results file -> (row model, input)."""


def _file_row(model: str, inp: str, protocol: str, uar: list[float], war: list[float], **fields) -> dict:
    """A table row (EMODB) from per-fold UAR / WAR of a run outside the sweep; `fields`: bits, packed_kb,
    params, norm, complete, source."""
    (u, u_sd), (w, w_sd) = mean_std(uar), mean_std(war)
    return {
        "model": model,
        "input": inp,
        "dataset": "emodb",
        "protocol": protocol,
        "uar": _r(u),
        "uar_std": _r(u_sd),
        "war": _r(w),
        "war_std": _r(w_sd),
        "n_folds": len(uar),
        **fields,
    }


def temporal_rows() -> list[dict]:
    """Table rows (float and 2-bit) from the temporal models' results files, and the late fusion's."""
    import json
    import statistics

    out = fusion_rows()
    for stems, (model, inp) in TEMPORAL.items():
        paths = [RESULTS / f"{stem}.json" for stem in stems]
        if not all(path.is_file() for path in paths):
            continue
        runs = [json.loads(path.read_text()) for path in paths]
        d, folds = runs[0], sorted((r for run in runs for r in run["rows"]), key=lambda r: r["fold"])
        protocol = d.get("protocol", "emodb-loso")
        for q in ("", "q_"):
            if not all(f"{q}uar" in f for f in folds):
                continue
            uar, war = [f[f"{q}uar"] for f in folds], [f[f"{q}war"] for f in folds]
            bits = statistics.fmean(f["bits"] for f in folds) if q else 32.0
            packed = statistics.fmean(f["packed_kb"] for f in folds) if q else folds[0]["params"] * 4 / 1000
            source = "; ".join(
                f"benchmarks/results/{s}.md ({r.get('command', '')})"
                for s, r in zip(stems, runs, strict=True)
            )
            out.append(
                _file_row(
                    model + (f"@{d['config']['laq']}" if q else ""),
                    inp,
                    protocol,
                    uar,
                    war,
                    bits=round(bits, 4),
                    packed_kb=round(packed, 3),
                    params=folds[0]["params"],
                    norm="transductive" if d["config"].get("speaker_norm") else "none",
                    complete=len(folds) == d["folds_total"],
                    source=source,
                )  # fmt: skip
            )
    return out


def fusion_rows() -> list[dict]:
    """The late fusion's rows (transductive, both branches at <= 2 bits) from its results files, where run."""
    import json
    import statistics

    out = []
    for stem, (model, inp) in FUSION.items():
        path = RESULTS / f"{stem}.json"
        if not path.is_file():
            continue
        d = json.loads(path.read_text())
        folds, protocol = d["folds"], d.get("protocol", "emodb-loso")
        uar, war = [f["fused"]["uar"] for f in folds], [f["fused"]["war"] for f in folds]
        params_f, params_t = folds[0]["functionals_params"], folds[0]["temporal_params"]
        bits = [  # the average over both models' weights
            (f["functionals_bits"] * params_f + (f["temporal_bits"] or 32.0) * params_t)
            / (params_f + params_t)
            for f in folds
        ]
        kb = statistics.fmean(f["functionals_kb"] + (f["temporal_kb"] or 0) for f in folds)
        out.append(
            _file_row(
                model,
                inp,
                protocol,
                uar,
                war,
                bits=round(statistics.fmean(bits), 4),
                packed_kb=round(kb, 3),
                params=params_f + params_t,
                norm="transductive",
                complete=len(folds) == d.get("folds_total", len(folds)),
                source=f"benchmarks/results/{stem}.md ({d.get('command', '')})",
            )  # fmt: skip
        )
    return out


def _best(rows: list[dict]) -> dict:
    """The row with the highest mean UAR among those with every fold finished (any row if none is)."""
    complete = [r for r in rows if r["complete"]] or rows
    return max(complete, key=lambda r: r["uar"] or 0)


def _best_with_confusion(rows: list[dict]) -> dict | None:
    """`_best` among the rows that carry a pooled confusion matrix (the temporal and fusion rows, read from
    their own runs, do not); None if none does."""
    mine = [r for r in rows if "labels" in r and "confusion" in r]
    return _best(mine) if mine else None


def _norm_order(norm: str) -> tuple[int, int]:
    m = NormMode.parse(norm)
    return ({"none": 0, "transductive": 1, "online": 2}[m.kind], m.clips)


# ------------------------------------------------------------------------------------------------- plots
COLOURS = {"none": (60, 60, 200), "transductive": (40, 150, 40), "online": (200, 120, 30)}


def plot_pareto(rows: list[dict], title: str, path: Path) -> Path:
    """UAR (%) against packed KB (log axis): one point per model, bit budget and norm; the frontier joined."""
    from edge_ser.vision._cv2 import import_cv2

    cv2 = import_cv2("drawing the Pareto plot")
    pts = [r for r in rows if r["packed_kb"] and r["uar"] is not None and not r["norm"].startswith("online")]
    W, H, left, top, right, bottom = 960, 560, 80, 60, 150, 70
    img = np.full((H, W, 3), 255, np.uint8)
    font, black, grey = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0), (210, 210, 210)
    cv2.putText(img, title[:100], (left, 30), font, 0.55, black, 1, cv2.LINE_AA)
    if not pts:
        cv2.putText(img, "no finished rows", (left, H // 2), font, 0.7, black, 1, cv2.LINE_AA)
        return write_png(path, img)
    kb = np.array([r["packed_kb"] for r in pts])
    ua = np.array([100 * r["uar"] for r in pts])
    x0, x1 = 10 ** math.floor(math.log10(kb.min())), 10 ** math.ceil(math.log10(kb.max() * 1.01))
    y0, y1 = 10 * math.floor(ua.min() / 10), min(100, 10 * math.ceil(ua.max() / 10 + 0.01))

    def px(x: float, y: float) -> tuple[int, int]:
        u = (math.log10(x) - math.log10(x0)) / (math.log10(x1) - math.log10(x0))
        v = (y - y0) / max(y1 - y0, 1e-9)
        return int(left + u * (W - left - right)), int(H - bottom - v * (H - top - bottom))

    for e in range(int(math.log10(x0)), int(math.log10(x1)) + 1):
        a, _ = px(10.0**e, y0)
        cv2.line(img, (a, top), (a, H - bottom), grey, 1)
        cv2.putText(img, f"{10.0**e:g}", (a - 10, H - bottom + 20), font, 0.45, black, 1, cv2.LINE_AA)
    for y in range(int(y0), int(y1) + 1, 5):
        _, b = px(x0, y)
        cv2.line(img, (left, b), (W - right, b), grey, 1)
        cv2.putText(img, f"{y}", (left - 35, b + 5), font, 0.45, black, 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (W - right, H - bottom), black, 1)
    order = np.argsort(kb)
    frontier, best = [], -1.0
    for i in order:
        if ua[i] > best:
            frontier.append(px(kb[i], ua[i]))
            best = ua[i]
    for a, b in zip(frontier, frontier[1:], strict=False):
        cv2.line(img, a, b, (150, 150, 150), 1, cv2.LINE_AA)
    rank = np.empty(len(pts), dtype=int)
    rank[order] = np.arange(len(pts))  # neighbours along the x axis put their labels on opposite sides
    for j, r, k, u in zip(rank, pts, kb, ua, strict=True):
        c = px(k, u)
        cv2.circle(img, c, 6, COLOURS[NormMode.parse(r["norm"]).kind], -1, cv2.LINE_AA)
        label = f"{r['model'].split('@')[0]} {r['bits']:.1f}b"
        cv2.putText(
            img, label[:32], (c[0] + 8, c[1] + (14 if j % 2 else -6)), font, 0.4, black, 1, cv2.LINE_AA
        )
    xlabel = "packed KB (log; laq_mlp: the .esq file, scikit-learn: values x 4 B, an estimate)"
    cv2.putText(img, xlabel, (left + 60, H - 25), font, 0.5, black, 1, cv2.LINE_AA)
    cv2.putText(img, "UAR %", (left - 60, top - 12), font, 0.5, black, 1, cv2.LINE_AA)
    for k, (name, colour) in enumerate(
        (("norm none", COLOURS["none"]), ("transductive", COLOURS["transductive"]))
    ):
        cv2.circle(img, (W - right + 15, top + 20 + 20 * k), 6, colour, -1, cv2.LINE_AA)
        cv2.putText(img, name, (W - right + 27, top + 25 + 20 * k), font, 0.45, black, 1, cv2.LINE_AA)
    return write_png(path, img)


def write_plots(rows: list[dict], out_dir: Path, name: str = "si_table") -> list[Path]:
    """Per protocol: <name>_pareto_<protocol>.png and the confusion of its best row with one."""
    made = []
    for protocol in PROTOCOLS:
        mine = [r for r in rows if r["protocol"] == protocol]
        if not mine:
            continue
        title = f"{protocol}: UAR vs packed KB"
        made.append(plot_pareto(mine, title, out_dir / f"{name}_pareto_{protocol}.png"))
        best = _best_with_confusion(mine)
        if best is None:
            continue
        m = Metrics(tuple(best["labels"]), np.asarray(best["confusion"], dtype=np.int64))
        title = (
            f"{protocol}: {best['model']} ({best['norm']}), UAR {_pct(best['uar'])}%, {best['n_folds']} folds"
        )
        made.append(draw_confusion_png(m, title, out_dir / f"{name}_confusion_{protocol}.png"))
    return made


# --------------------------------------------------------------------------------------------------- main
def sweep_grid(
    table: SITable, norms: list[str], online: list[int], limit_folds: int | None, seeds: list[int]
) -> Grid:
    """The run's points: every table point once per seed, "seed" in the point. A seed-0 point has the id it had
    when the seed was a fixed value (`{"v": TABLE_VERSION, "seed": 0}`), so the committed runs are reused."""
    points = [{**p, "seed": s} for p in table.points(norms, online, limit_folds) for s in seeds]
    return Grid(points=points, fixed={"v": TABLE_VERSION})


def parse_online(text: str) -> list[int]:
    """`--online` "1,5,20" (or "" for none): the online-N clip counts, each a whole number >= 1. A word was a
    ValueError traceback; a count below 1 was found by every transductive point after its training, and recorded
    as that point's error (a review)."""
    try:
        counts = [int(n) for n in text.split(",") if n]
    except ValueError:
        raise ConfigError(f"--online {text}: give clip counts as N or N,N,... (e.g. 1,5,20)") from None
    if any(n < 1 for n in counts):
        raise ConfigError(f"--online {text}: each clip count must be at least 1")
    return counts


def default_name(args: argparse.Namespace, ap: argparse.ArgumentParser) -> str:
    """si_table for the whole table (every option that picks rows, protocols, norms or online counts at its
    default), else si_table_subset: a subset run used to replace the committed table and its plots."""
    picks = ("rows", "protocols", "norms", "online", "ablation", "seed")
    return "si_table" if all(getattr(args, k) == ap.get_default(k) for k in picks) else "si_table_subset"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma-separated protocol names")
    rows = {
        r.key: r for r in standard_rows() + ablation_rows() + corpus_rows() + mixup_rows() + linear_rows()
    }
    standard = ",".join(r.key for r in standard_rows())
    ap.add_argument("--rows", default=standard, help=f"comma-separated rows ({', '.join(rows)})")
    ap.add_argument(
        "--ablation", action="store_true", help="add the ablation rows (functionals + MFCC means) to --rows"
    )
    ap.add_argument("--norms", default="none,transductive", help="none and/or transductive")
    ap.add_argument(
        "--online", default="1,5,20", help="online-N clip counts scored with every transductive row"
    )
    ap.add_argument("--limit-folds", type=int, default=None, help="only the first N folds (a smoke run)")
    ap.add_argument(
        "--seed",
        default="0",
        metavar="N[,N...]",
        help="the training seed of every fold (and of the online rows' clip orders); default 0, the table's. "
        "Another seed measures how far a figure moves without any change of recipe (docs/protocol.md); "
        "several (0,1,2) train each fold once per seed and pool its seeds' confusions into the fold's figure",
    )
    ap.add_argument(
        "--runs", type=Path, default=RUNS, help="folder of the resumable JSONL of finished points"
    )
    ap.add_argument(
        "--name",
        default=None,
        help="results name (default: si_table for the whole table; si_table_subset when --rows, --protocols, "
        "--norms, --online or --ablation change it, so a subset never replaces the committed table)",
    )
    args = ap.parse_args(argv)
    args.name = args.name or default_name(args, ap)
    online = parse_online(args.online)  # these three before the data are read (they failed after, or mid-run)
    if args.limit_folds is not None and args.limit_folds < 1:  # 0 was 'a grid needs at least one axis ...'
        raise ConfigError(f"--limit-folds {args.limit_folds}: at least 1 fold")
    if problem := folder_problem(args.runs):  # was the sweep's '(--out): cannot write', after the data
        raise ConfigError(f"--runs {args.runs}: {problem}")
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    keys = args.rows.split(",") + ([r.key for r in ablation_rows()] if args.ablation else [])
    unknown = [k for k in keys if k not in rows]
    if unknown:
        raise ConfigError(f"--rows: unknown {', '.join(unknown)}; known: {', '.join(rows)}")
    chosen = [rows[k] for k in dict.fromkeys(keys)]
    norms = args.norms.split(",")
    for n in norms:
        if NormMode.parse(n).kind == "online":
            raise ConfigError("--norms takes none and transductive; online-N rows come with --online")
    table_protocols = args.protocols.split(",")
    unknown = [p for p in table_protocols if p not in PROTOCOLS]
    if unknown:
        raise ConfigError(f"--protocols: unknown {', '.join(unknown)}; known: {', '.join(PROTOCOLS)}")
    table = SITable(chosen, [PROTOCOLS[p] for p in table_protocols])
    seeds = parse_seeds(args.seed)
    g = sweep_grid(table, norms, online, args.limit_folds, seeds)
    sweep = Sweep(args.name, table.objective, g, args.runs, backend="serial", log=print)
    res = sweep.run()
    for r in res.errors:
        print(f"FAILED {r['point']}: {r['error']}", file=sys.stderr)
    # the temporal and fusion rows come from their own runs: beside the whole table, not a chosen few rows
    extra = temporal_rows() if args.rows == standard else []
    result_rows = table.assemble(res.records, seeds) + [r for r in extra if r["protocol"] in table_protocols]
    seconds = time.perf_counter() - t0
    compute = sum(float(r.get("seconds") or 0) for r in res.records)
    name = args.name if args.limit_folds is None else f"{args.name}_partial"
    text = markdown(result_rows, seconds, compute, name, plots=args.limit_folds is None)
    print(text)
    payload = {"fields": list(ROW_FIELDS), "compute_seconds": round(compute, 1), "rows": result_rows}
    write_results(name, payload, text, indent=None)
    if args.limit_folds is None:
        for p in write_plots(result_rows, RESULTS, name):
            print(f"wrote {p}")
    if res.errors:
        sys.exit(1)


if __name__ == "__main__":
    run_main(main)
