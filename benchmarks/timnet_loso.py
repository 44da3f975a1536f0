"""EMODB leave-one-speaker-out for the temporal models (TIM-Net-like, SERCT-lite), float and after LAQ + QAT.

    python benchmarks/timnet_loso.py [--folds 0,1,2] [--epochs 12] [--frames 112] [--laq sensitivity@2.0] [--tag NAME]
    python benchmarks/timnet_loso.py --model serct_lite --folds 0,1,2 --epochs 15 --patience 5
    python benchmarks/timnet_loso.py --speaker-norm --epochs 30 --patience 8 --tag spknorm
    python benchmarks/timnet_loso.py --protocol emodb-10fold-x3 --speaker-norm --epochs 30 --patience 8 --tag spknorm

`--protocol emodb-10fold-x3` runs the table's stratified 10-fold x 3 seeds instead (validation a stratified part
of the training clips, speaker-dependent) and writes <model>_10fold[_TAG].{md,json}.

`--model serct_lite` trains `converters.models.serct_lite` on the same 20 ms-aligned windows as raw conditioned
samples (no SpecAugment; speeds 1.0 unless --speeds) and writes serct_lite_loso[_TAG].{md,json}.

Per fold (speakers in sorted order; `converters.data.splits.leave_one_speaker_out`, seed 0): the test speaker
is left out, one other speaker (covering every class) validates (early stopping on the voted-clip UAR, the
LAQ allocation's QAT and its epoch), the other 8 train (`converters.seq_train.train_timnet_fold`: speed
perturbation 0.9 / 1.0 / 1.1, SpecAugment masks, mixup). Reported per fold and as mean +- std over the folds
run: per-clip UAR and WAR (accuracy) of the float model and of the quantized one, its average bits and packed
weights.esq KB, parameters and time, and every validation and test clip's voted probabilities (JSON,
for `benchmarks/ser_late_fusion.py`). One thread (torch and BLAS). The results files are rewritten after every
fold, so a long run that is stopped keeps the folds it finished.

Writes benchmarks/results/timnet_loso[_TAG].{md,json}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import pin_single_thread, run_main, write_results  # noqa: E402
from converters.protocol import mean_std  # noqa: E402

pin_single_thread()


def _markdown(
    rows: list[dict], cfg: dict, n_total: int, protocol: str = "EMODB leave-one-speaker-out"
) -> str:
    head = (
        "| fold | test speaker | val speaker | UAR float | WAR float | UAR 2-bit | WAR 2-bit | bits | packed KB "
        "| best epoch | train s | fold s |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    serct = cfg.get("model") == "serct_lite"
    title = "SERCT-lite raw-waveform model" if serct else "TIM-Net-like temporal model"
    frames = cfg["spec"]["frames"]
    what = (
        f"raw conditioned samples, {frames} x 320 per window (16 kHz, {cfg['serct_channels']} conv channels)"
        if serct
        else f"MFCC windows {frames} x {cfg['spec']['feature_spec']['n_mfcc']} (16 kHz, 25 ms / 20 ms)"
    )
    lines = [
        f"# {title}, {protocol} ({len(rows)} of {n_total} folds)",
        "",
        f"Model: `{cfg.get('model', 'timnet')}` ({rows[0]['params']:,} parameters), input: {what}; "
        f"speeds {cfg['speeds']}, SpecAugment {cfg['spec_augment'] and not serct}, mixup {cfg['mixup']}, "
        f"per-speaker standardisation {cfg.get('speaker_norm', False)}; "
        f"{cfg['epochs']} epochs (patience {cfg['patience']}), compression `{cfg['laq']}` with "
        f"{cfg['qat_epochs']} QAT epochs. Per-clip figures, windows voted by mean probability.",
        "",
        head,
    ]
    for r in rows:
        lines.append(
            f"| {r['fold']} | {r['test_speaker']} | {r['val_speaker']} | {r['uar']:.3f} | {r['war']:.3f} "
            f"| {r.get('q_uar', float('nan')):.3f} | {r.get('q_war', float('nan')):.3f} | {r.get('bits', 32):.2f} "
            f"| {r.get('packed_kb', float('nan')):.1f} | {r['best_epoch']}/{r['epochs_run']} "
            f"| {r['train_seconds']:.0f} | {r['seconds']:.0f} |"
        )
    lines.append("")
    for key, name in (
        ("uar", "UAR float"),
        ("war", "WAR float"),
        ("q_uar", "UAR quantized"),
        ("q_war", "WAR quantized"),
    ):
        vals = [r[key] for r in rows if key in r]
        if vals:
            m, s = mean_std(vals)
            lines.append(f"- {name}: **{100 * m:.1f} +- {100 * s:.1f} %** over {len(vals)} folds")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folds", default="", help="comma-separated fold indices (default: all 10)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--patience", type=int, default=4)
    ap.add_argument("--qat-epochs", type=int, default=4)
    ap.add_argument("--laq", default="sensitivity@2.0", help="converters.compress recipe ('' = float only)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--frames",
        type=int,
        default=112,
        help="window T (default 112: every clip of the EMODB copy is 2.0 s = 101 frames, 112 at speed 0.9)",
    )
    ap.add_argument("--tag", default="")
    ap.add_argument(
        "--protocol",
        choices=("emodb-loso", "emodb-10fold-x3"),
        default="emodb-loso",
        help="the folds (converters.protocol.PROTOCOLS; emodb-10fold-x3 writes <model>_10fold[_TAG])",
    )
    ap.add_argument(
        "--speaker-norm",
        action="store_true",
        help="standardise each speaker's MFCC frames by its own statistics (transductive; TimNetTrainConfig)",
    )
    ap.add_argument("--model", choices=("timnet", "serct_lite"), default="timnet")
    ap.add_argument(
        "--speeds", default="", help="speed factors, e.g. 0.9,1.0,1.1 (default: timnet 3, serct 1.0)"
    )
    args = ap.parse_args(argv)
    from converters.compress import parse_recipe
    from edge_ser.errors import ConfigError

    if args.laq:  # a misspelt recipe was refused only after the first fold's float training
        parse_recipe(args.laq)
    speeds = args.speeds or ("1.0" if args.model == "serct_lite" else "0.9,1.0,1.1")
    try:  # a word was a ValueError traceback
        wanted = [int(f) for f in args.folds.split(",")] if args.folds else None
        speed_factors = tuple(float(v) for v in speeds.split(","))
    except ValueError:
        raise ConfigError(
            f"--folds {args.folds!r} / --speeds {speeds!r}: give numbers separated by commas"
        ) from None

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from converters.data.labels import class_order
    from converters.data.loaders import load_dataset
    from converters.data.splits import leave_one_speaker_out
    from converters.seq_train import TimNetTrainConfig, default_sequence_spec, train_timnet_fold

    records = list(load_dataset("emodb"))  # the default data root: $EDGE_SER_DATA, else ../shared/datasets
    speakers = [r.speaker for r in records]
    labels = [r.label for r in records]
    classes = class_order(labels)
    if args.protocol == "emodb-loso":
        what = "EMODB leave-one-speaker-out"
        folds = [(s, sp, s) for s, sp in leave_one_speaker_out(speakers, labels, seed=args.seed)]
    else:  # stratified 10-fold x 3 seeds, validation a stratified part of training (speaker-dependent)
        from converters.protocol import PROTOCOLS

        what = "EMODB stratified 10-fold x 3 seeds"
        y = np.array([classes.index(label) for label in labels])  # as the table: label names give other folds
        folds = [(f.name, f.split, "") for f in PROTOCOLS[args.protocol].folds(np.array(speakers), y)]
    chosen = list(range(len(folds))) if wanted is None else wanted
    # --folds 10 trained the folds listed before it, then an IndexError; -1 ran the last fold as 'fold -1'
    if bad := [k for k in chosen if not 0 <= k < len(folds)]:
        raise ConfigError(f"--folds: {', '.join(map(str, bad))} not among the folds 0..{len(folds) - 1}")
    import dataclasses

    spec = dataclasses.replace(default_sequence_spec(), frames=args.frames)
    cfg = TimNetTrainConfig(
        spec=spec,
        model=args.model,
        speeds=speed_factors,
        epochs=args.epochs,
        patience=args.patience,
        qat_epochs=args.qat_epochs,
        laq=args.laq,
        seed=args.seed,
        speaker_norm=args.speaker_norm,
    )
    rows: list[dict] = []
    name = f"{args.model}_{'loso' if args.protocol == 'emodb-loso' else '10fold'}" + (
        f"_{args.tag}" if args.tag else ""
    )
    for k in chosen:
        fold_name, sp, speaker = folds[k]
        part = {p: [records[i] for i in getattr(sp, p)] for p in ("train", "val", "test")}
        val_speaker = sorted({r.speaker for r in part["val"]}) if speaker else []  # 10-fold: every speaker
        print(
            f"fold {k} ({fold_name}): test speaker {speaker or 'all'}, val {val_speaker}, train {len(part['train'])} clips",
            flush=True,
        )
        t0 = time.perf_counter()
        acc = {"dataset": "emodb", "split": {"kind": args.protocol, "fold": k, "sizes": sp.sizes()}}
        res = train_timnet_fold(
            part["train"], part["val"], part["test"], cfg, classes=classes, accuracy=acc, log=print
        )
        row = {
            "fold": k,
            "fold_name": fold_name,
            "test_speaker": speaker,
            "val_speaker": ",".join(val_speaker),
        }
        row.update(res.summary())
        row["clips"] = {p: [r.source.name for r in part[p]] for p in ("val", "test")}
        row["probabilities"] = {n: np.round(v, 5).tolist() for n, v in res.probabilities.items()}
        rows.append(row)
        print(
            f"fold {k}: float UAR {row['uar']:.3f} WAR {row['war']:.3f}"
            + (f"; {args.laq} UAR {row['q_uar']:.3f} WAR {row['q_war']:.3f}" if "q_uar" in row else "")
            + f" ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        summary = {
            k2: dict(zip(("mean", "std"), mean_std([r[k2] for r in rows]), strict=True))
            for k2 in ("uar", "war", "q_uar", "q_war")
            if all(k2 in r for r in rows)
        }
        payload = {
            "protocol": args.protocol,
            "config": cfg.to_dict(),
            "classes": list(classes),
            "folds_run": len(rows),
            "folds_total": len(folds),
            "summary": summary,
            "rows": rows,
        }
        write_results(name, payload, _markdown(rows, cfg.to_dict(), len(folds), what), indent=None)
    return 0


if __name__ == "__main__":
    run_main(main)
