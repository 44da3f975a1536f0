"""Host-side command handlers for `edge-ser` (train, laq, demo); imported only when one of them runs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from converters.compress import compress
from converters.data import SyntheticSpec
from converters.export.bundle import build_bundle
from converters.featurize import FeatureCache, default_cache_dir
from converters.models import laq_mlp
from converters.pipeline import Prepared, confusion, make_split, prepare, write_json
from converters.quant import LaqConfig
from converters.train import TrainConfig, accuracy, predict, seed_everything, train_classifier
from edge_ser.features import FeatureSpec


def _say(args: argparse.Namespace):
    return (lambda *a: None) if args.quiet else print


def _cache(args: argparse.Namespace) -> FeatureCache | None:
    return None if args.no_cache else FeatureCache(args.cache or default_cache_dir())


def _prepare(args: argparse.Namespace, spec: FeatureSpec) -> Prepared:
    synth = SyntheticSpec(seed=args.seed) if args.data == "synthetic" else None
    return prepare(
        args.data, args.root, spec=spec, cache=_cache(args), synthetic=synth, progress=not args.quiet
    )


def _data_line(prep: Prepared) -> str:
    """One line on the data: clips, classes, feature matrix, time and cache use."""
    return (
        f"data: {prep.name}, {len(prep.records)} clips, {len(prep.classes)} classes ({', '.join(prep.classes)}); "
        f"features {prep.X.shape} in {prep.stats.seconds:.2f} s "
        f"(cache: {prep.stats.hits} hits, {prep.stats.misses} computed)"
    )


def _train_float(args, prep: Prepared, split, spec: FeatureSpec):
    Xtr = prep.X[split.train]
    seed_everything(args.seed)  # before construction: the initial weights come from torch's global RNG
    model = laq_mlp(spec.dim, len(prep.classes))
    model.set_normalization(torch.as_tensor(Xtr.mean(0)), torch.as_tensor(Xtr.std(0)))
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed, patience=args.patience, threads=args.threads)
    res = train_classifier(
        model, Xtr, prep.y[split.train], prep.X[split.val], prep.y[split.val], cfg, progress=not args.quiet
    )
    return res, cfg


def _print_confusion(say, classes, y_true, y_pred) -> np.ndarray:
    cm = confusion(y_true, y_pred, len(classes))
    width = max(len(c) for c in classes)
    say("confusion (rows true, columns predicted): " + " ".join(c[:4] for c in classes))
    for c, row in zip(classes, cm):
        say(f"  {c:>{width}} " + " ".join(f"{v:4d}" for v in row))
    return cm


def _want_tflite(choice: str, say) -> bool:
    """--tflite auto|yes|no: auto exports TFLite variants when tensorflow is installed."""
    if choice == "no":
        return False
    import importlib.util

    if (
        importlib.util.find_spec("tensorflow") is None
        or importlib.util.find_spec("converters.export.tflite_export") is None
    ):  # noqa: E501  (no import: tensorflow takes seconds)
        if choice == "yes":
            from edge_ser.errors import MissingDependencyError

            raise MissingDependencyError("tensorflow", "tf-export", "TFLite export") from None
        say("      (TFLite variants skipped: pip install 'edge-ser[tf-export]' to add them)")
        return False
    return True


def cmd_train(args: argparse.Namespace, spec: FeatureSpec, *, title: str | None = None) -> int:
    say = _say(args)
    t_start = time.perf_counter()
    if title:
        say(title)
    prep = _prepare(args, spec)
    say(f"[1/3] {_data_line(prep)}")
    split = make_split(prep, args.split, seed=args.seed, fold=args.fold)
    sz = split.sizes()
    say(
        f"[2/3] split: {args.split}, train {sz['train']} / val {sz['val']} / test {sz['test']} (seed {args.seed})"
    )
    res, cfg = _train_float(args, prep, split, spec)
    test_acc = accuracy(res.model, prep.X[split.test], prep.y[split.test])
    chance = float(np.bincount(prep.y).max() / len(prep.y))
    say(
        f"[3/3] laq_mlp ({sum(p.numel() for p in res.model.parameters()):,} params): best epoch {res.best_epoch} "
        f"of {res.epochs_run}, {res.seconds:.1f} s; val acc {res.best_val_acc:.3f}\n"
    )
    say(f"test accuracy: {test_acc:.3f}  (n={sz['test']}, majority-class baseline {chance:.3f})")
    pred = predict(res.model, prep.X[split.test]).argmax(1)
    cm = _print_confusion(say, prep.classes, prep.y[split.test], pred)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state_dict": res.model.state_dict(),
            "classes": list(prep.classes),
            "feature_spec": spec.to_dict(),
            "model": "laq_mlp",
        },
        out / "model.pt",
    )
    write_json(
        out / "summary.json",
        {
            "data": prep.name,
            "n_clips": len(prep.records),
            "classes": list(prep.classes),
            "split": args.split,
            "split_sizes": sz,
            "seed": args.seed,
            "test_accuracy": test_acc,
            "val_accuracy": res.best_val_acc,
            "majority_baseline": chance,
            "confusion": cm.tolist(),
            "best_epoch": res.best_epoch,
            "epochs_run": res.epochs_run,
            "train_seconds": res.seconds,
            "feature_seconds": prep.stats.seconds,
            "cache_hits": prep.stats.hits,
            "cache_misses": prep.stats.misses,
            "feature_spec": spec.to_dict(),
            "train_config": cfg.to_dict(),
            "total_seconds": time.perf_counter() - t_start,
        },
    )
    write_json(out / "split.json", split.to_dict())
    say(
        f"\nwrote {out / 'model.pt'}, {out / 'summary.json'} and {out / 'split.json'} "
        f"({time.perf_counter() - t_start:.1f} s in all)"
    )
    return 0


def cmd_laq(args: argparse.Namespace, spec: FeatureSpec, *, title: str | None = None) -> dict:
    """Train -> allocate bits -> QAT -> export a bundle; returns the summary it writes."""
    say = _say(args)
    t_start = time.perf_counter()
    if title:
        say(title)
    prep = _prepare(args, spec)
    say(f"[1/5] {_data_line(prep)}")
    split = make_split(prep, args.split, seed=args.seed, fold=args.fold)
    Xtr, ytr, Xva, yva, Xte, yte = prep.parts(split)
    res, _ = _train_float(args, prep, split, spec)
    fp_acc = accuracy(res.model, Xte, yte)
    say(
        f"[2/5] float laq_mlp: test accuracy {fp_acc:.3f} (split {args.split}, seed {args.seed}, "
        f"{len(split.train)}/{len(split.val)}/{len(split.test)})"
    )
    laq = LaqConfig(t_margin=args.t_margin, budget=args.budget)
    say(f"[3/5] bit allocation: {args.recipe}")
    c = compress(args.recipe, res.model, Xtr, ytr, Xva, yva, laq=laq, seed=args.seed, log=say)
    q_acc = c.accuracy(Xte, yte)
    ptq_acc = accuracy(c.info["ptq_model"], Xte, yte) if "ptq_model" in c.info else None
    say(
        f"[4/5] {c.plan}; test accuracy: QAT {q_acc:.3f}"
        + (f", rounding only {ptq_acc:.3f}" if ptq_acc is not None else "")
        + f" ({c.seconds:.1f} s)"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    c.plan.save(out / "bitplan.json")
    bundle_path = out / ("bundle.tar" if args.tar else "bundle")
    acc = {
        "test": q_acc,
        "float_test": fp_acc,
        "val": accuracy(c.model, Xva, yva),
        "dataset": prep.name,
        "split": {"kind": args.split, "seed": args.seed, "fold": args.fold, "sizes": split.sizes()},
    }
    build_bundle(
        bundle_path,
        c.model,
        c.plan,
        c.codes,
        name="laq_mlp",
        labels=list(prep.classes),
        spec=spec,
        accuracy=acc,
        as_tar=args.tar,
        tflite_calibration=Xtr if _want_tflite(getattr(args, "tflite", "no"), say) else None,
    )
    from edge_ser.bundle import load_bundle

    bundle = load_bundle(bundle_path)
    sizes = {n: len(bundle.read(n)) for n in ("model.onnx", "weights.esq")}
    say(
        f"[5/5] bundle {bundle_path}: weights.esq {sizes['weights.esq'] / 1000:.1f} KB, model.onnx "
        f"{sizes['model.onnx'] / 1000:.1f} KB (graph only), verified"
    )
    torch_logits = predict(c.model, Xte)
    checks = {}
    from edge_ser.engines import available_engines, engines_for, load_engine

    for name, hint in available_engines().items():
        if hint:
            say(f"      engine {name}: not installed ({hint})")
    for name in engines_for(bundle):
        logits = load_engine(bundle, name).predict(Xte.astype(np.float32))
        rel = float(np.abs(logits - torch_logits).max() / np.abs(torch_logits).max())
        same = float((logits.argmax(1) == torch_logits.argmax(1)).mean())
        checks[name] = {"max_rel_diff": rel, "same_class": same}
        say(
            f"      engine {name}: same class as torch on {same:.1%} of {len(Xte)} test clips, "
            f"logits within {rel:.1e} relative"
        )
    summary = {
        "data": prep.name,
        "n_clips": len(prep.records),
        "classes": list(prep.classes),
        "cache_hits": prep.stats.hits,
        "cache_misses": prep.stats.misses,
        "recipe": args.recipe,
        "plan": c.plan.to_dict() | {"info": None},
        "float_test_accuracy": fp_acc,
        "qat_test_accuracy": q_acc,
        "ptq_test_accuracy": ptq_acc,
        "bundle": str(bundle_path),
        "file_bytes": sizes,
        "engine_checks": checks,
        "accuracy": acc,
        "total_seconds": time.perf_counter() - t_start,
    }
    write_json(out / "summary.json", summary)
    say(
        f"\nwrote {bundle_path}, {out / 'bitplan.json'} and {out / 'summary.json'} "
        f"({time.perf_counter() - t_start:.1f} s in all)"
    )
    return summary
