"""`edge-ser` command line (also `python -m edge_ser`).

Device commands need only the device extra. Host commands (`train`, `demo`) import torch inside their
handlers, so `--help` works everywhere and a missing package gives a one-line install hint.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from edge_ser import __version__
from edge_ser.errors import EdgeSerError, MissingDependencyError

DATASETS = "emodb, ravdess, tess, savee, cremad, fer2013, synthetic, or a folder-per-class path"


def _add_cache(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="feature cache folder (default: $EDGE_SER_CACHE or ~/.cache/edge-ser)",
    )
    p.add_argument("--no-cache", action="store_true", help="recompute every feature, read and write no cache")


def _add_spec(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--spec",
        type=Path,
        default=None,
        help="FeatureSpec JSON file (default: the LAQ recipe, 180-d at 22.05 kHz)",
    )


def _load_spec(args: argparse.Namespace):
    from edge_ser.errors import ConfigError
    from edge_ser.features import FeatureSpec

    if args.spec is None:
        return FeatureSpec()
    try:
        return FeatureSpec.from_json(args.spec.read_text())
    except OSError as e:
        raise ConfigError(f"{args.spec}: cannot read FeatureSpec file: {e.strerror}") from e


def _cache(args: argparse.Namespace):
    from converters.featurize import FeatureCache, default_cache_dir

    if args.no_cache:
        return None
    return FeatureCache(args.cache or default_cache_dir())


def _audio_files(paths: list[Path]) -> list[Path]:
    from edge_ser.errors import AudioFormatError

    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3"))
        elif p.exists():
            out.append(p)
        else:
            raise AudioFormatError(f"{p}: no such file or folder")
    return out


def cmd_features(args: argparse.Namespace) -> int:
    import numpy as np

    from converters.featurize import extract

    spec = _load_spec(args)
    files = _audio_files(args.paths)
    if not files:
        print("edge-ser features: no audio files found", file=sys.stderr)
        return 2
    X, stats = extract(files, spec, cache=_cache(args), progress=not args.quiet)
    print(
        f"{len(files)} files -> features {X.shape} in {stats.seconds:.2f} s "
        f"(cache: {stats.hits} hits, {stats.misses} computed)"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        np.save(args.out, X)
        args.out.with_suffix(".txt").write_text("\n".join(str(f) for f in files) + "\n")
        print(f"wrote {args.out} and {args.out.with_suffix('.txt')} (one path per row)")
    elif len(files) <= 5:
        np.set_printoptions(precision=3, suppress=True, linewidth=110)
        for f, x in zip(files, X):
            print(f"{f}:\n{x}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from converters.data import summarize
    from converters.pipeline import load_records

    name, records = load_records(args.data, args.root)
    s = summarize(records)
    print(f"{name}: {len(records)} records")
    for key, counts in s.items():
        if isinstance(counts, dict):
            print(f"  {key}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        else:
            print(f"  {key}: {counts}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from converters.data import SyntheticSpec
    from converters.data import write as write_synthetic

    spec = SyntheticSpec(
        n_per_class=args.n_per_class,
        sr=args.sr,
        duration=args.duration,
        n_speakers=args.speakers,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    records = write_synthetic(spec, args.out)
    print(
        f"wrote {len(records)} clips ({len(spec.labels)} classes x {spec.n_per_class}, {spec.sr} Hz, "
        f"{spec.duration} s) to {args.out} in {time.perf_counter() - t0:.1f} s"
    )
    return 0


def _need_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError("torch", "host", "training") from e


def cmd_train(args: argparse.Namespace, *, title: str | None = None) -> int:
    _need_torch()
    import numpy as np

    from converters.data import SyntheticSpec
    from converters.models import laq_mlp
    from converters.pipeline import confusion, make_split, prepare, write_json
    from converters.train import TrainConfig, accuracy, predict, seed_everything, train_classifier

    t_start = time.perf_counter()
    spec = _load_spec(args)
    say = (lambda *a: None) if args.quiet else print
    if title:
        say(title)
    synth = SyntheticSpec(seed=args.seed) if args.data == "synthetic" else None
    prep = prepare(
        args.data, args.root, spec=spec, cache=_cache(args), synthetic=synth, progress=not args.quiet
    )
    say(
        f"[1/3] data: {prep.name}, {len(prep.records)} clips, {len(prep.classes)} classes "
        f"({', '.join(prep.classes)}); features {prep.X.shape} in {prep.stats.seconds:.2f} s "
        f"(cache: {prep.stats.hits} hits, {prep.stats.misses} computed)"
    )
    split = make_split(prep, args.split, seed=args.seed, fold=args.fold)
    sz = split.sizes()
    say(
        f"[2/3] split: {args.split}, train {sz['train']} / val {sz['val']} / test {sz['test']} (seed {args.seed})"
    )
    Xtr, ytr = prep.X[split.train], prep.y[split.train]
    seed_everything(args.seed)  # before construction: the initial weights come from torch's global RNG
    model = laq_mlp(spec.dim, len(prep.classes))
    import torch

    model.set_normalization(torch.as_tensor(Xtr.mean(0)), torch.as_tensor(Xtr.std(0)))
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed, patience=args.patience, threads=args.threads)
    res = train_classifier(
        model, Xtr, ytr, prep.X[split.val], prep.y[split.val], cfg, progress=not args.quiet
    )
    test_acc = accuracy(res.model, prep.X[split.test], prep.y[split.test])
    pred = predict(res.model, prep.X[split.test]).argmax(1)
    cm = confusion(prep.y[split.test], pred, len(prep.classes))
    chance = float(np.bincount(prep.y).max() / len(prep.y))
    say(
        f"[3/3] laq_mlp ({sum(p.numel() for p in res.model.parameters()):,} params): best epoch {res.best_epoch} "
        f"of {res.epochs_run}, {res.seconds:.1f} s; val acc {res.best_val_acc:.3f}"
    )
    say("")
    say(f"test accuracy: {test_acc:.3f}  (n={sz['test']}, majority-class baseline {chance:.3f})")
    width = max(len(c) for c in prep.classes)
    say("confusion (rows true, columns predicted): " + " ".join(c[:4] for c in prep.classes))
    for c, row in zip(prep.classes, cm):
        say(f"  {c:>{width}} " + " ".join(f"{v:4d}" for v in row))
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
    summary = {
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
    }
    write_json(out / "summary.json", summary)
    write_json(out / "split.json", split.to_dict())
    say(
        f"\nwrote {out / 'model.pt'}, {out / 'summary.json'} and {out / 'split.json'} "
        f"({time.perf_counter() - t_start:.1f} s in all)"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    return cmd_train(
        args,
        title=(
            "edge-ser demo: the main job on built-in data. Today: synthetic speech -> 180-d features "
            "(cached) -> laq_mlp -> accuracy.\n(LAQ, QAT, export, bundle and roofline steps join as they land.)"
        ),
    )


def _add_train_args(p: argparse.ArgumentParser, *, data_default: str | None, out_default: str) -> None:
    p.add_argument(
        "--data", default=data_default, required=data_default is None, help=f"data set: {DATASETS}"
    )
    p.add_argument(
        "--root",
        type=Path,
        default=None,
        help="data set folder (default: $EDGE_SER_DATA/<name> or ../shared/datasets/<name>)",
    )
    p.add_argument(
        "--split",
        choices=("random", "speaker"),
        default="random",
        help="random: stratified 80/10/10; speaker: speaker-independent group 5-fold (see --fold)",
    )
    p.add_argument("--fold", type=int, default=0, help="which speaker fold is the test set (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the weights and the batches")
    p.add_argument("--epochs", type=int, default=300, help="maximum epochs (default 300)")
    p.add_argument("--patience", type=int, default=30, help="early-stopping patience in epochs (default 30)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--out", default=out_default, help=f"output folder (default {out_default})")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or tables")
    _add_spec(p)
    _add_cache(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-ser",
        description="Speech emotion recognition on the edge: features, training and (soon) deployment.",
    )
    parser.add_argument("--version", action="version", version=f"edge-ser {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "features",
        help="extract clip feature vectors (180-d LAQ recipe) from audio files",
        description="Extract the clip feature vector of each audio file (folders are searched "
        "recursively), through the feature cache.",
    )
    p.add_argument("paths", nargs="+", type=Path, help="audio files or folders")
    p.add_argument("--out", type=Path, default=None, help="save the matrix as .npy (and the paths as .txt)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_spec(p)
    _add_cache(p)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser(
        "data",
        help="summarise a data set: clips per label and speaker",
        description="Load a data set's file list and print its label and speaker counts.",
    )
    p.add_argument("data", help=f"data set: {DATASETS}")
    p.add_argument(
        "--root", type=Path, default=None, help="data set folder (default: found under $EDGE_SER_DATA)"
    )
    p.set_defaults(func=cmd_data)

    p = sub.add_parser(
        "synth",
        help="write the synthetic labelled speech data set to a folder",
        description="Generate the deterministic synthetic data set as WAV files.",
    )
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--n-per-class", type=int, default=30, help="clips per class (default 30)")
    p.add_argument("--sr", type=int, default=16000, help="sample rate in Hz (default 16000)")
    p.add_argument("--duration", type=float, default=1.5, help="clip length in seconds (default 1.5)")
    p.add_argument("--speakers", type=int, default=6, help="number of synthetic speakers (default 6)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser(
        "train",
        help="[host] train the LAQ MLP on a data set and report test accuracy",
        description="Features (cached) -> split -> train laq_mlp with early stopping -> test "
        "accuracy and confusion matrix. Needs the host extra (torch).",
    )
    _add_train_args(p, data_default=None, out_default="out/train")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "demo",
        help="[host] the main job end to end on built-in synthetic data",
        description="Run the main job on the built-in synthetic data set (or --data).",
    )
    _add_train_args(p, data_default="synthetic", out_default="out/demo")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except EdgeSerError as e:
        print(f"edge-ser {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edge-ser {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
