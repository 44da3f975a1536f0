"""The host's `edge-ser` commands (train, laq, demo, model, features, data, synth, sweep, zoo, eval), registered into
the one `edge-ser` command through the entry-point group `edge_ser.commands` (pyproject.toml).

Registering imports no torch: each handler imports what it needs when it runs, and says what to install when
torch is missing, so `edge-ser --help` works on any workstation.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

from converters.data.splits import SPEAKER_SEED_RULE
from converters.registry import MODELS, model_names
from edge_ser.cli.common import (
    DefaultMode,
    adapt_ignored,
    adapt_mode,
    add_adapt_arg,
    add_engine_args,
    check_writable,
    file_above,
    in_range,
    media_files,
)
from edge_ser.errors import AudioFormatError, ConfigError, MissingDependencyError
from edge_ser.inputs.base import AUDIO_EXTENSIONS

FER_SPLITS = ("train", "validation", "test")
"""converters.data.loaders.FER_SPLITS (repeated: registering the commands imports no loader)."""
DATASETS = (
    "emodb, ravdess, tess, savee, cremad, fer2013, synthetic, or a folder of your own: <class>/<speaker>_<name>.wav "
    "or <class>/<speaker>/<name>.wav, or a labels CSV of your own: FILE.csv with columns path,label[,speaker] "
    "(docs/data.md)"
)
ROOT_HELP = "data set folder (default: found under $EDGE_SER_DATA, else the checkout's ../shared/datasets)"
"""--root's help: where converters.data.loaders looks for a named data set (`default_data_root`, `find_dataset`)."""
AV_DATASETS = ("synthetic-av",)
"""Audio-visual data sets for --model av_cnn (as converters.tasks.AV_DATA)."""


def cache_folder(text: str) -> Path:
    """`--cache`'s type: a folder, or one to be made; a file there or above it is refused now, by name (it was a
    bare "[Errno 20] Not a directory" when the first feature or synthetic clip was written; a review)."""
    path = Path(text)
    above = file_above(path)
    if above is not None:
        where = "is a file" if above == path else f"sits under {above}, a file"
        raise argparse.ArgumentTypeError(
            f"{text} {where}; give a folder for the feature cache, or --no-cache"
        )
    return path


def _add_cache(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cache",
        metavar="DIR",
        type=cache_folder,
        default=None,
        help="feature cache folder (default: $EDGE_SER_CACHE or ~/.cache/edge-ser)",
    )
    p.add_argument("--no-cache", action="store_true", help="recompute every feature, read and write no cache")


def _add_strict(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first file that cannot be decoded (default: skip it with a warning naming it)",
    )


def _add_spec(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--spec",
        metavar="FILE",
        type=Path,
        default=None,
        help="FeatureSpec JSON file (default: converters.recipe.DEFAULT_SPEC, 180-d at 16 kHz / mel 0-7.2 kHz, "
        "DC removed, level -26 dBFS)",
    )


def _load_spec(args: argparse.Namespace):
    from converters.recipe import load_spec

    return load_spec(args.spec)


def _cache(args: argparse.Namespace):
    from converters.featurize import FeatureCache, default_cache_dir

    if args.no_cache:
        return None
    return FeatureCache(args.cache or default_cache_dir())


def _skipped_line(skipped, what: str = "file(s)") -> str:
    """', N file(s) skipped' for a summary line, or '' (`what`: which files, e.g. undecodable ones)."""
    return f", {len(skipped)} {what} skipped (named in the warnings above)" if skipped else ""


def cmd_features(args: argparse.Namespace) -> int:
    _need_bars()
    import numpy as np

    from converters.featurize import extract

    spec = _load_spec(args)
    if args.out:  # said now, not after the extraction
        check_writable(args.out, "--out")
    files = media_files(args.paths)
    if not files:
        raise AudioFormatError(
            f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in {', '.join(map(str, args.paths))}"
        )
    X, stats = extract(files, spec, cache=_cache(args), progress=not args.quiet, strict=args.strict)
    if stats.kept is not None:
        files = [files[i] for i in stats.kept]
    if not files:
        path, why = stats.skipped[0]
        raise AudioFormatError(f"none of the {stats.files} file(s) could be decoded (first: {path}: {why})")
    print(
        f"{len(files)} files -> features {X.shape} in {stats.seconds:.2f} s "
        f"(cache: {stats.hits} hits, {stats.misses} computed{_skipped_line(stats.skipped)})"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        from edge_ser.fileio import atomic_write, atomic_writer

        npy = args.out if args.out.suffix == ".npy" else args.out.with_name(args.out.name + ".npy")
        # the listing is named after the matrix: `--out X.v1` wrote X.txt, which `--out X.v2` then overwrote
        txt = npy.with_suffix(".txt")
        with atomic_writer(npy) as fh:  # whole or not at all, as the listing (a Ctrl-C left a torn .npy)
            np.save(fh, X)
        atomic_write(txt, "\n".join(str(f) for f in files) + "\n")
        print(f"wrote {npy} and {txt} (one path per row)")
    elif len(files) <= 5:
        np.set_printoptions(precision=3, suppress=True, linewidth=110)
        for f, x in zip(files, X, strict=True):
            print(f"{f}:\n{x}")
    return 0


MAX_LISTED = 100
"""`edge-ser data` lists the labels / speakers one by one up to this many, then only their number."""


def cmd_data(args: argparse.Namespace) -> int:
    _need_bars()
    from converters.data import summarize
    from converters.data.loaders import load_dataset
    from converters.pipeline import load_records
    from edge_ser.errors import ConfigError

    if args.split is not None:
        if args.data != "fer2013":
            raise ConfigError(f"--split {args.split}: only fer2013 has named splits; {args.data} has none")
        name = "fer2013"
        split = None if args.split == "all" else args.split
        records = load_dataset(name, args.root, strict=args.strict, split=split)
    else:
        name, records = load_records(args.data, args.root, strict=args.strict)
    skipped = getattr(records, "undecodable", [])
    s = summarize(records)
    print(f"{name}: {len(records)} records{_skipped_line(skipped, 'undecodable file(s)')}")
    for key, counts in s.items():
        if isinstance(counts, dict) and len(counts) > MAX_LISTED:  # FER-2013: each image its own speaker
            print(f"  {key}: {len(counts)} (each with {min(counts.values())}-{max(counts.values())} records)")
        elif isinstance(counts, dict):
            print(f"  {key}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        else:
            print(f"  {key}: {counts}")
    if skipped:
        print("  skipped: " + "; ".join(f"{p} ({why})" for p, why in skipped[:5]))
    rates = _sample_rates(records)
    if rates:
        print("  sample rates: " + ", ".join(f"{r} Hz {n}" for r, n in sorted(rates.items(), reverse=True)))
        narrow = sum(n for r, n in rates.items() if r < NARROW_RATE)
        if narrow and narrow < len(records):
            print(
                f"edge-ser data: warning: {narrow} of {len(records)} files are recorded below {NARROW_RATE} Hz: their "
                f"band is narrower than the others' (an 8 kHz file has nothing above 4 kHz), which a model learns "
                "as a difference between clips; predict marks such files out of range",
                file=sys.stderr,
            )
    from converters.heldout import few_clips

    for line in few_clips(records):  # said before anyone trains on them (converters.heldout.FEW_CLIPS)
        print(f"edge-ser data: warning: {line}", file=sys.stderr)
    return 0


NARROW_RATE = 16000
"""Recordings below this rate have a narrower band than the shipped models' (16 kHz: 0-8 kHz)."""


def _sample_rates(records) -> dict[int, int]:
    """Files per sample rate of the audio records, read from their headers ({} for images)."""
    from collections import Counter

    from edge_ser.audio.stream import open_blocks
    from edge_ser.errors import EdgeSerError

    rates: Counter = Counter()
    for r in records:
        if getattr(r, "image", None) is not None:
            return {}
        try:
            with open_blocks(r.source, frames=1) as blocks:
                rates[int(blocks.sample_rate)] += 1
        except (EdgeSerError, OSError):
            continue  # the loader has said why already
    return dict(rates)


def cmd_synth(args: argparse.Namespace) -> int:
    _need_bars()
    from converters.data import SyntheticSpec
    from converters.data import write as write_synthetic

    spec = SyntheticSpec(
        n_per_class=args.n_per_class,
        sr=args.sr,
        duration=args.duration,
        n_speakers=args.speakers,
        seed=args.seed,
    )
    from converters.data.synthetic import check_target

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file; give a folder for the data set")
    above = file_above(out.parent)
    if above is not None:  # said as it is, not as "[Errno 20] Not a directory"
        raise ConfigError(f"{out}: {above} is a file, not a folder; give a folder for the data set")
    # it mixed the synthetic clips into a folder of the user's own recordings
    check_target(out)
    t0 = time.perf_counter()
    records = write_synthetic(spec, out, progress=True)
    print(
        f"wrote {len(records)} clips ({len(spec.labels)} classes x {spec.n_per_class}, {spec.sr} Hz, "
        f"{spec.duration} s) to {args.out} in {time.perf_counter() - t0:.1f} s"
    )
    return 0


def _fer2013_records(root: Path | None, split: str, strict: bool) -> tuple[list, str | None]:
    """FER-2013 for eval: `--split all` every split folder present; `--split test` its test/ folder, else
    validation/ (FER-2013's PublicTest, the split its published accuracies are on). Returns the records and,
    for test, which images they are."""
    from converters.data.loaders import find_dataset, load_dataset

    if split != "test":
        return load_dataset("fer2013", root, strict=strict, split=None), None
    folder = Path(root) if root is not None else find_dataset("fer2013")
    which = "test" if (folder / "test").is_dir() else "validation"
    label = "test/ images" if which == "test" else "PublicTest images (validation/)"
    return load_dataset("fer2013", root, strict=strict, split=which), label


def _eval_synthetic(args: argparse.Namespace, accuracy: dict):
    """(spec, note, replaces) for `eval --data synthetic`. With no folder of its own: the synthetic set the
    bundle was trained on, as its manifest records it (`converters.pipeline.eval_synthetic`; ConfigError when
    it records none), so the split options pick that set's parts. Given a folder of a synthetic set: a note
    when the folder's set is not the bundle's (`replaces`: what `seen_note` says of the bundle's own set does
    not hold; the same generator, so its clips can repeat training clips), or cannot be checked."""
    from converters.pipeline import eval_synthetic, folder_synthetic, recorded_synthetic, synthetic_difference

    folder = args.root if args.data == "synthetic" else Path(args.data)
    held = folder_synthetic(folder) if folder is not None else None
    if args.data == "synthetic" and held is None:
        return eval_synthetic(accuracy), None, False
    if held is None or accuracy.get("dataset") != "synthetic":
        return None, None, False
    trained = recorded_synthetic(accuracy)
    if trained is None:
        unknown = f"the bundle's manifest does not record its synthetic set, so that {folder} holds it is not checked"
        return None, unknown, False
    differ = synthetic_difference(held, trained)
    other = (
        f"{folder} holds another synthetic set than the bundle was trained on ({differ}): its clips can be "
        "ones the bundle trained on"
    )
    return None, other if differ else None, bool(differ)


def _check_outputs(args: argparse.Namespace, *options: tuple[str, str]) -> None:
    """Each output path given (option, attribute) can be written, or a ConfigError naming the option now."""
    for option, attr in options:
        path = getattr(args, attr, None)
        if path:
            check_writable(Path(path), option)


def _check_media(rec, name: str, records) -> None:  # noqa: ANN001 - a Recognizer and its records
    """ConfigError when every clip of the data set is an image and the bundle hears audio only (or every clip is
    audio and it sees faces only): `eval bundles/ser_emodb --data fer2013` warned once per JPEG that it could
    not decode audio."""
    from edge_ser.inputs.base import AUDIO_EXTENSIONS
    from edge_ser.vision.video import IMAGE_EXTENSIONS

    suffixes = {Path(str(r.source)).suffix.lower() for r in records}
    if not suffixes:
        return
    kind = rec.kind
    if kind.hears and not kind.faces and suffixes <= set(IMAGE_EXTENSIONS):
        raise ConfigError(
            f"data set {name} holds images ({', '.join(sorted(suffixes))}) and {rec.bundle.name} takes audio: "
            "evaluate a face bundle on it, or give an audio data set"
        )
    if kind.faces and not kind.hears and suffixes <= set(AUDIO_EXTENSIONS):
        raise ConfigError(
            f"data set {name} holds audio ({', '.join(sorted(suffixes))}) and {rec.bundle.name} takes faces "
            "only: evaluate an audio bundle on it, or give a data set of face images or videos"
        )


def _room(args: argparse.Namespace) -> tuple[float, float] | None:
    """--room read and checked (`converters.reverb.parse_room`): (RT60 s, DRR dB), or None without it."""
    if not args.room:
        return None
    from converters.reverb import parse_room

    return parse_room(args.room)


def one_modality_note(kind, chosen) -> str | None:  # noqa: ANN001 - an InputKind, Records
    """For a fusion bundle scored on one modality only: its figure is that branch's alone, which the report did not
    say (a review quoted av_fusion's 45.5 % on RAVDESS WAVs beside its fused 69.2 %). Audio files only: the audio
    branch; images only (FER-2013): the face branch, through the rule's temperature and prior. None otherwise."""
    from edge_ser.inputs.base import AUDIO_EXTENSIONS
    from edge_ser.inputs.fusion import FusionKind

    if not isinstance(kind, FusionKind) or not chosen:
        return None
    if all(Path(str(r.source)).suffix.lower() in AUDIO_EXTENSIONS for r in chosen):
        return "audio files only: no face to fuse, so every answer is the fusion bundle's audio branch alone"
    if _images_only(chosen):
        return "images only: no voice to fuse, so every answer is the fusion bundle's face branch alone"
    return None


def fer_notes(bundle, name: str, chosen) -> list[str]:  # noqa: ANN001 - a Bundle or FusionBundle, Records
    """What a face bundle's figure on FER-2013 through eval is, beside the one its manifest publishes: each image
    goes through the Haar face search as a camera frame would (face_fer's published figure gives the model the image
    itself, so eval's is lower: 62.2 against 62.9 %, said only in docs/eval.md), and a fusion rule fitted on
    PublicTest faces (av_fusion: `split.val_faces`) is scored on its own validation images. [] otherwise."""
    if name != "fer2013" or not chosen:
        return []
    notes = []
    branches = getattr(bundle, "branches", None) or {}
    for b in [bundle, *branches.values()]:
        acc = b.manifest.get("accuracy") or {}
        if (
            "face_crop" in b.manifest
            and acc.get("dataset") == "fer2013"
            and isinstance(acc.get("test"), float)
        ):
            notes.append(
                f"each image goes through {Path(b.source).name}'s Haar face search first, as a camera frame "
                f"would; its manifest's {100 * acc['test']:.1f} % gives the model the FER image itself as the crop "
                "(docs/eval.md, Limits)"
            )
    split = ((bundle.manifest.get("accuracy") or {}).get("split")) or {}
    on_publictest = [r for r in chosen if r.get("split") == "validation"]
    if branches and isinstance(split, dict) and split.get("val_faces") == "publictest" and on_publictest:
        notes.append(
            f"{len(on_publictest)} of {len(chosen)} images are PublicTest's, on which {Path(bundle.source).name}'s "
            "fusion rule was fitted (its manifest's split.val_faces): not a held-out figure of the rule"
        )
    return notes


def _images_only(chosen) -> bool:  # noqa: ANN001 - Records
    """Whether every chosen file is an image (no sound, so no speaker to normalise)."""
    from edge_ser.vision.video import IMAGE_EXTENSIONS

    return bool(chosen) and all(Path(str(r.source)).suffix.lower() in IMAGE_EXTENSIONS for r in chosen)


def _bundle_notes(args: argparse.Namespace, rec, chosen, name: str) -> str:  # noqa: ANN001 - a Recognizer, Records
    """eval's notes about the bundle on these files, said on stderr: an --adapt it ignores, a fusion bundle heard on
    one modality alone (`one_modality_note`) and a face bundle on FER-2013 (`fer_notes`); the last two the report's
    selection line keeps (returned as "; note; ...")."""
    ignored = adapt_ignored(args, rec, "eval")
    if ignored:
        print(ignored, file=sys.stderr)
    notes = [n for n in (one_modality_note(rec.kind, chosen), *fer_notes(rec.bundle, name, chosen)) if n]
    for note in notes:  # the figure is not what a reader quoting the bundle's name would think
        print(f"edge-ser eval: note: {note}", file=sys.stderr)
    return "".join(f"; {n}" for n in notes)


def _eval_ignored(args: argparse.Namespace, rec, adapt: str, room) -> None:  # noqa: ANN001 - a Recognizer
    """Say which of --fold, --folds and --seed, given away from their defaults, select or seed nothing in this run
    (as train and laq say theirs): `eval --fold 3` without --split speaker scored every file, its selection line
    "all", without a word about the --fold."""
    speaker = args.split == "speaker"
    # --seed draws the split, the rooms' impulse responses and the online order of a bundle that learns its speaker
    seeded = (
        args.split in ("random", "speaker") or room or (adapt == "online" and getattr(rec, "adapting", False))
    )
    why = {
        "--fold": (not speaker and args.fold != 0, "--split speaker only"),
        "--folds": (not speaker and args.folds != 5, "--split speaker only"),
        "--seed": (
            not seeded and args.seed != 0,
            "--split random|speaker, --room and the online order of a bundle with speaker normalisation only",
        ),
    }
    for option, (idle, what) in why.items():
        if idle:
            print(f"edge-ser eval: note: {option} is ignored here (it applies to {what})", file=sys.stderr)


def cmd_eval(args: argparse.Namespace) -> int:
    """A bundle on a labelled data set through the device path (no torch): accuracy, UAR, confusion, OOD."""
    _need_bars()
    import contextlib
    import json
    import tempfile

    from converters.evaluate import (
        Selection,
        evaluate,
        plot_confusion_png,
        select,
        select_undecodable,
        split_speakers,
        write_outputs,
    )
    from converters.heldout import seen_note, speakers_line
    from converters.pipeline import load_records
    from edge_ser.recognizer import Recognizer

    _check_outputs(args, ("--png", "png"), ("--out", "out"))  # said now, not after the evaluation
    room = _room(args)  # said now, not after the bundle and the data set are loaded (and their notes said)
    sel = Selection(
        split=args.split,
        speakers=tuple(s.strip() for s in (args.speakers or "").split(",") if s.strip()),
        seed=args.seed,
        fold=args.fold,
        folds=args.folds,
        limit=args.limit,
    )
    fer_split = None
    # FER-2013's named image splits: all of them, or the test images (PublicTest when there is no test/)
    if args.data == "fer2013":
        name, records, fer_split = "fer2013", *_fer2013_records(args.root, args.split, args.strict)
        sel = replace(sel, split="all") if fer_split else sel
    adapt = adapt_mode(args)
    rec = Recognizer(
        args.bundle,
        args.engine,
        args.threads,
        adapt=adapt != "off",
        delegate=getattr(args, "delegate", None),
        providers=getattr(args, "providers", None),
    )
    accuracy = rec.bundle.manifest.get("accuracy") or {}
    synthetic, caveat, replaces = _eval_synthetic(args, accuracy)
    if args.data != "fer2013":
        name, records = load_records(args.data, args.root, synthetic=synthetic, strict=args.strict)
    _check_media(rec, name, records)
    chosen = select(records, sel, name=name)
    selection = sel.describe()
    split = split_speakers(records, sel, name=name)  # --split speaker: the held-out speakers, named
    undecodable = select_undecodable(records, sel, split)  # skipped by the loader, in the selection
    if split is not None:  # after "speaker K-fold, test fold F, seed S", before --speakers / --limit
        head, sep, rest = selection.partition("; ")
        selection = f"{head} ({split['seed_note']}){speakers_line(split)}{sep}{rest}"
    if synthetic is not None and accuracy.get("dataset") == "synthetic":
        selection += (
            f"; the bundle's synthetic set ({synthetic.n_per_class} clips per class, seed {synthetic.seed})"
        )
    seen = (
        None
        if replaces
        else seen_note(accuracy, name, chosen, split=sel.split, seed=sel.seed, listed=records)
    )
    for branch, b in ({} if seen or replaces else getattr(rec.bundle, "branches", None) or {}).items():
        # a fusion bundle records its paired set, not which speakers each branch saw: ask the branches
        note = seen_note(
            b.manifest.get("accuracy") or {}, name, chosen, split=sel.split, seed=sel.seed, listed=records
        )
        seen = "; ".join(filter(None, (seen, note and f"its {branch} branch: {note}"))) or None
    seen = "; ".join(filter(None, (caveat, seen))) or None
    if seen:  # said on stderr now and kept with the figures (the report's selection line)
        print(f"edge-ser eval: note: {seen}", file=sys.stderr)
        selection += f"; NOTE: {seen}"
    if fer_split:
        selection = selection.replace("all", f"test: FER-2013's {fer_split}", 1)
    selection += _bundle_notes(args, rec, chosen, name)
    _eval_ignored(args, rec, adapt, room)
    # a bundle with speaker normalisation: how it met each speaker (images have none: av_fusion on FER-2013)
    if rec.speaker_clips is not None and rec.kind.hears and not _images_only(chosen):
        selection += {
            "online": f"; speaker normalisation online, a session per speaker (its files in an order seeded {args.seed})",
            "all": "; speaker normalisation from all of each speaker's files (unlabelled), then each classified",
            "off": "; speaker normalisation off: the training prior",
        }[adapt]
    room_dir = tempfile.TemporaryDirectory(prefix="edge-ser-room-") if room else contextlib.nullcontext()
    with room_dir as tmp:
        if room:  # every file heard in one synthetic room (converters.reverb), then scored as usual
            from converters.reverb import reverberant_records

            rt60, drr = room
            chosen = reverberant_records(chosen, rt60, drr, Path(tmp), seed=args.seed, progress=not args.json)
            selection += f"; in a synthetic room (RT60 {rt60:g} s, DRR {drr:g} dB, impulse responses seeded {args.seed})"
        report = evaluate(
            rec,
            chosen,
            data=name,
            selection=selection,
            strict=args.strict,
            undecodable=undecodable,
            adapt=adapt,
            seed=args.seed,
            progress=None if not args.json else False,
            split=split,
        )
    import shlex

    command = shlex.join(["edge-ser", *sys.argv[1:]]) if sys.argv[1:2] == ["eval"] else None
    # --json carries the command as --out's JSON does (a report kept from `--json > r.json` did not say what made it)
    print(json.dumps({"command": command, **report.to_dict()}, indent=2) if args.json else report.text())
    if args.png:
        plot_confusion_png(report, args.png)
        if not args.json:
            print(f"wrote {args.png}")
    if args.out:
        paths = write_outputs(report, args.out, command)
        if not args.json:
            print("wrote " + ", ".join(map(str, paths)))
    return _nothing_scored(report, args)


def _nothing_scored(report, args: argparse.Namespace) -> int:  # noqa: ANN001 - an EvalReport
    """2, with a line saying why, when no file was scored (every label unknown to the bundle, or none read): the
    report said 'chance UAR 100.0%' and the command exited 0; else 0."""
    if report.metrics.n:
        return 0
    hint = ""
    if Path(str(args.data)).is_dir() and Path(str(args.data)).name.lower() in {
        "tess",
        "savee",
        "cremad",
        "crema-d",
    }:
        hint = f" ({args.data} looks like a corpus: --data {Path(str(args.data)).name.lower()} --root {args.data})"
    print(
        f"edge-ser eval: error: no file was scored: none has a label {Path(str(args.bundle)).name} knows "
        f"({', '.join(report.metrics.classes)}){hint}",
        file=sys.stderr,
    )
    return 2


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path, help="bundle folder or .tar")
    p.add_argument("--data", required=True, help=f"data set: {DATASETS}")
    p.add_argument("--root", type=Path, default=None, metavar="DIR", help=ROOT_HELP)
    p.add_argument(
        "--split",
        choices=("all", "test", "random", "speaker"),
        default="all",
        help="all files (default; FER-2013: every split folder); test: the data set's own test split (FER-2013: "
        "test/, else validation/ = PublicTest); random / speaker: the test part of `edge-ser train --split "
        "random|speaker` with the same --seed / --fold / --folds",
    )
    p.add_argument(
        "--speakers", default=None, metavar="IDS", help="keep only these speakers / actors, e.g. 03,08"
    )
    p.add_argument(
        "--seed",
        type=in_range(0),
        default=0,
        help=f"seed of --split random|speaker (default 0); {SPEAKER_SEED_RULE}",
    )
    p.add_argument("--fold", type=int, default=0, help="test fold of --split speaker (default 0)")
    p.add_argument(
        "--folds", metavar="K", type=int, default=5, help="folds of --split speaker (default 5, as train)"
    )
    p.add_argument(
        "--limit", type=int, default=None, metavar="N", help="at most N files, spread evenly over the list"
    )
    p.add_argument("--strict", action="store_true", help="stop at the first file that cannot be decoded")
    p.add_argument(
        "--room",
        default=None,
        metavar="RT60[,DRR]",
        help="hear every file in a synthetic room first: reverberation time in seconds and direct-to-reverberant "
        "ratio in dB (default 0 dB, about a metre from the microphone), e.g. 0.6 or 0.8,-6; each file its own "
        "impulse response, seeded by --seed (converters/reverb.py; docs/eval.md)",
    )
    add_adapt_arg(
        p,
        "online",
        ("online", "all", "off"),
        "how a bundle with speaker normalisation meets each speaker of the data set, a new session each: online "
        "visits the speaker's files in a random order seeded by --seed (a device meets emotions in no order; "
        "data sets often sort their files by emotion)",
    )
    p.set_defaults(adapt=DefaultMode("online"))  # so cmd_eval knows whether --adapt was given
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    p.add_argument(
        "--png", type=Path, default=None, metavar="FILE", help="write the confusion matrix as a PNG"
    )
    p.add_argument(
        "--out", type=Path, default=None, help="write OUT.json, OUT.md and OUT.png (with the command)"
    )
    add_engine_args(p, threads_default=1)


def _need(module: str, package: str, purpose: str) -> None:
    """A host command's package, said with how to install it when missing, without importing it here (the device
    side never does): torch for training, tqdm (the host extra's progress bars) for eval, features and data, which
    a checkout installed with the device extra only ran into as a ModuleNotFoundError traceback."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        found = False
    if not found:
        raise MissingDependencyError(package, "host", purpose)


def _need_torch() -> None:
    """torch, then tqdm: training shows its progress bars, so a device install given torch alone (as the message
    says) ran train, laq, model, demo, sweep and zoo into tqdm's ModuleNotFoundError traceback. Then onnx, which
    counts a trained model's FLOPs: without it `train` said so only after the whole training, and saved nothing."""
    _need("torch", "torch", "training")
    _need_bars()
    _need("onnx", "onnx", "ONNX export and the models' FLOP counts")


def _need_bars() -> None:
    _need("tqdm", "tqdm", "the host commands' progress bars")


def cmd_train(args: argparse.Namespace) -> int:
    _need_torch()
    from converters.commands import cmd_train as run

    return run(args, _load_spec(args))


def cmd_laq(args: argparse.Namespace) -> int:
    _need_torch()
    from converters.commands import cmd_laq as run

    run(args, _load_spec(args))
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    _need_torch()
    from converters.commands import cmd_model as run

    return run(args)


def demo_steps(data: str) -> int:
    """How many numbered stages `edge-ser demo` runs on `data`: laq's five, then a device run on a clip and a live
    stream (data sets of audio files only), then the roofline."""
    from converters.commands import LAQ_STEPS
    from converters.tasks import AV_DATA

    return LAQ_STEPS + (1 if data in AV_DATA else 3)


DEMO_AFTER_BUNDLE = (
    "live_sample.wav",
    "live_sample.jsonl",
    "roofline.json",
    "roofline.md",
    "roofline.png",
)
"""The files `edge-ser demo` writes after its bundle, about that bundle: removed once a new bundle is in place."""


def cmd_demo(args: argparse.Namespace) -> int:
    _need_torch()
    t_start = time.perf_counter()
    from converters.commands import LAQ_STEPS, step
    from converters.commands import cmd_laq as run
    from converters.evaluate import Selection, select
    from converters.pipeline import load_records, synthetic_spec
    from converters.tasks import AV_DATA

    total = demo_steps(args.data)
    spec = _load_spec(args)
    # the stages this run has: it said "180-d features -> laq_mlp -> ... -> live pipeline" of av_cnn on
    # synthetic-av too (no features, no live stage) and of a --spec of another length
    stages = (
        "6 face crops + 6 MFCC segments -> av_cnn -> LAQ bits -> QAT -> ONNX + packed bundle -> device engines "
        "-> roofline."
        if args.data in AV_DATA
        else f"{spec.dim}-d features{'' if args.no_cache else ' (cached)'} -> laq_mlp -> LAQ bits -> QAT -> ONNX + "
        "packed bundle -> device engines -> live pipeline -> roofline."
    )
    summary = run(
        args,
        spec,
        steps=total,
        title=f"edge-ser demo, the main job on {'built-in synthetic speech' if args.data == 'synthetic' else args.data}: "
        + stages,
    )

    # the bundle is new from here: the last run's live sample and roofline describe the old one, and a Ctrl-C in the
    # stages below left them beside the new bundle, looking current (and the JSON lines file emptied)
    for name in DEMO_AFTER_BUNDLE:
        (Path(args.out) / name).unlink(missing_ok=True)
    if args.data in AV_DATA:  # its clips are made in memory: there is no file to run through the device path
        print(f"\n(--data {args.data}: no sample files, so no device run on a clip or live stream)")
        _demo_roofline(Path(summary["bundle"]), Path(args.out), step(LAQ_STEPS + 1, total))
        print(
            f"\nedge-ser demo: done in {time.perf_counter() - t_start:.1f} s; its outputs are in {args.out}"
        )
        return 0
    synthetic = synthetic_spec(args.seed, args.n_per_class) if args.data == "synthetic" else None
    name, records = load_records(args.data, args.root, synthetic=synthetic, cache_dir=args.cache)
    # clips of the split's test part (the model never trained on them), as `edge-ser eval --split` picks them
    records = select(
        records, Selection(args.split, seed=args.seed, fold=args.fold, folds=args.folds), name=name
    )
    sample = records[len(records) // 2]
    # the clip's whole path, so `edge-ser predict` can be tried on it (the synthetic clips live in the cache)
    print(
        f"\n{step(LAQ_STEPS + 1, total)} device run on a held-out test clip (true label: {sample.label}; "
        f"{sample.source}):"
    )
    from edge_ser.cli.common import DefaultMode
    from edge_ser.cli.predict import cmd_predict
    from edge_ser.engines import engines_for

    predict = argparse.Namespace(
        bundle=Path(summary["bundle"]),
        files=[sample.source],
        threads=None,
        top=3,
        json=False,
        windows=False,
        # predict's default, not a given --adapt (which would draw its "changes nothing" note)
        adapt=DefaultMode("all"),
    )
    for engine in engines_for(predict.bundle):
        predict.engine = engine
        cmd_predict(predict)
    _demo_live(Path(summary["bundle"]), records, Path(args.out), step(LAQ_STEPS + 2, total), quiet=args.quiet)
    _demo_roofline(Path(summary["bundle"]), Path(args.out), step(LAQ_STEPS + 3, total))
    print(f"\nedge-ser demo: done in {time.perf_counter() - t_start:.1f} s; its outputs are in {args.out}")
    return 0


def _demo_roofline(bundle_path: Path, out: Path, number: str) -> None:
    """The roofline report of the demo bundle on this machine (host profile measured, then cached); `number` is
    its stage's "[n/total]"."""
    from edge_ser.bundle import load_bundle
    from edge_ser.profiles import load_profile
    from edge_ser.roofline import build_report, write_report

    print(
        f"\n{number} roofline on this machine (edge-ser bench --profile host; the host's peaks are measured once, cached):"
    )
    runs = 200
    r = build_report(
        load_bundle(bundle_path), load_profile("host"), engine="onnxruntime", threads=1, runs=runs
    )
    # the command that makes this report: bench's own default is 300 runs, so --runs is said (it was left out)
    made_by = f"edge-ser bench {bundle_path} --profile host --threads 1 --runs {runs}"
    paths = write_report(r, out / "roofline", made_by)
    print(
        f"  {r.flops:,} FLOPs, {r.bytes:,} bytes ({r.intensity:.2f} FLOP/byte; ridge {r.ridge:.2f}); "
        # per inference, not "per clip": the device run's "inference 0.43 ms" is one cold call, this a median
        f"{r.latency_ms * 1e3:.1f} us per inference (onnxruntime, 1 thread, median of {runs} runs) = "
        f"{r.attained_gflops:.2f} GFLOP/s, "
        f"{100 * r.fraction_of_peak:.1f}% of this machine's one-thread peak ({r.peak_gflops:.0f} GFLOP/s)"
    )
    print("  wrote " + ", ".join(str(p) for p in paths))


def _demo_live(bundle_path: Path, records, out: Path, number: str, *, quiet: bool = False) -> None:
    """The live pipeline (`edge-ser run`, fast file mode) on a stream of four held-out clips with pauses; `number`
    is its stage's "[n/total]"."""
    import numpy as np

    from edge_ser.audio import load, write_wav
    from edge_ser.live.command import add_run_args, build
    from edge_ser.live.outputs import OutputSettings, make_outputs

    bundle_sr = 16000
    picks = [records[i * len(records) // 4] for i in range(4)]
    parts = []
    for r in picks:
        y, _ = load(r.source, sr=bundle_sr)
        parts += [y, np.zeros(bundle_sr // 2, np.float32)]
    wav = write_wav(out / "live_sample.wav", np.concatenate(parts).astype(np.float32), bundle_sr)
    truth = ", ".join(r.label for r in picks)
    # a 1.5 s window (not run's 3 s) and no smoothing, so each clip of ~1.5 s gets a decision of its own; said as
    # the command that reproduces it: "edge-ser run, files, fast" alone ran run's defaults, other decisions
    run_args = [
        str(bundle_path),
        "--audio-file",
        str(wav),
        "--fast",
        "--window",
        "1.5",
        "--hop",
        "0.5",
        "--smoothing",
        "none",
    ]
    print(
        f"\n{number} live pipeline on {wav.name}: 4 clips ({truth}) with 0.5 s pauses, a 1.5 s window, no smoothing; "
        f"the same as:\n  edge-ser run {shlex.join(run_args)}"
    )
    p = argparse.ArgumentParser()
    add_run_args(p)
    args = p.parse_args([*run_args, "--json", str(out / "live_sample.jsonl")])
    with make_outputs(OutputSettings(console=not quiet, console_ascii=True, jsonl=args.json)) as outputs:
        _, runner = build(args, outputs=[outputs])
        stats = runner.run()
    print(
        f"  {stats.updates} updates, {np.median(stats.stages['total']):.2f} ms each (median); "
        f"JSON lines in {out / 'live_sample.jsonl'}"
    )


def cmd_sweep(args: argparse.Namespace) -> int:
    _need_torch()
    from converters.sweep_cli import cmd_sweep as run

    return run(args)


def cmd_zoo(args: argparse.Namespace) -> int:
    _need_torch()
    from converters.zoo_cli import cmd_zoo as run

    return run(args)


def _add_train_args(p: argparse.ArgumentParser, *, data_default: str | None, out_default: str) -> None:
    p.add_argument(
        "--data",
        default=data_default,
        required=data_default is None,
        help=f"data set: {DATASETS}; for --model av_cnn: {', '.join(AV_DATASETS)}",
    )
    p.add_argument(
        "--model",
        choices=model_names(command="train"),
        default="laq_mlp",
        help="; ".join(f"{n}: {MODELS[n].summary}" for n in model_names(command="train"))
        + " (default laq_mlp)",
    )
    p.add_argument(
        "--mode",
        choices=("fused", "audio", "video"),
        default="fused",
        help="av_cnn branches: fused (default), or audio-only / video-only for ablations",
    )
    p.add_argument(
        "--root",
        type=Path,
        default=None,
        metavar="DIR",
        help=ROOT_HELP,
    )
    p.add_argument(
        "--split",
        choices=("random", "speaker"),
        default="random",
        help="random: stratified 80/10/10; speaker: speaker-independent group k-fold (see --folds, --fold)",
    )
    p.add_argument(
        "--n-per-class",
        metavar="N",
        type=in_range(1),
        default=None,
        help="clips per class of the built-in synthetic sets (default: 30 for synthetic, 40 for synthetic-av)",
    )
    p.add_argument(
        "--folds",
        metavar="K",
        type=in_range(2),
        default=5,
        help="speaker folds of --split speaker (default 5; at most the data set's speakers, e.g. 2 for TESS: "
        "then val is a tenth of the training speaker's clips): with K >= 3 one fold tests, the next validates, "
        "the other K-2 train, so few folds train on little (docs/data.md)",
    )
    p.add_argument("--fold", type=int, default=0, help="which speaker fold is the test set (default 0)")
    p.add_argument(
        "--seed",
        type=in_range(0),
        default=0,
        help="seed of the split, the weights and the batches (and of the clips of --data synthetic); --split "
        f"speaker: {SPEAKER_SEED_RULE}",
    )
    p.add_argument(
        "--epochs", metavar="N", type=in_range(1), default=300, help="maximum epochs (default 300)"
    )
    p.add_argument(
        "--patience",
        metavar="N",
        type=in_range(1),
        default=30,
        help="early-stopping patience in epochs (default 30)",
    )
    p.add_argument(
        "--select",
        choices=("accuracy", "uar"),
        default="accuracy",
        help="the validation figure early stopping (and QAT) keeps the best epoch of: accuracy (default), or UAR "
        "(mean per-class recall: the figure to choose by when the classes are unbalanced; the speaker-"
        "independent recipes in benchmarks/ choose by it). LAQ's bit ranking measures accuracy either way",
    )
    p.add_argument(
        "--threads",
        metavar="N",
        type=in_range(1),
        default=None,
        help="torch threads (default: torch's choice)",
    )
    p.add_argument("--out", default=out_default, metavar="DIR", help=f"output folder (default {out_default})")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or tables")
    _add_strict(p)
    _add_spec(p)
    _add_cache(p)


def _add_laq_args(p: argparse.ArgumentParser, *, recipe: str) -> None:
    p.add_argument(
        "--recipe",
        default=recipe,
        help="laq-paper (the paper's LAQ), laq-qat (QAT inside the search), sensitivity (measured, at "
        f"--budget), qat-<b> / ptq-<b> (uniform b bits), fp32 (default {recipe})",
    )
    p.add_argument(
        "--t-margin",
        metavar="DROP",
        type=in_range(0.0, 1.0, float),
        default=0.05,
        help="LAQ T_margin: accuracy drop the top-ranked layer may cost (default 0.05 = 5 points)",
    )
    p.add_argument(
        "--budget",
        metavar="BITS",
        type=in_range(1.0, 8.0, float),
        default=1.75,
        help="average-bits budget of 'sensitivity' (default 1.75)",
    )
    p.add_argument("--tar", action="store_true", help="write the bundle as one .tar instead of a folder")
    p.add_argument(
        "--tflite",
        choices=("auto", "yes", "no"),
        default="auto",
        help="add TFLite fp32/fp16/int8 variants to the bundle (auto: when tensorflow is installed)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add the host commands to `edge-ser` (the `host` entry point of the group `edge_ser.commands`)."""
    p = sub.add_parser(
        "features",
        help="[host] extract clip feature vectors (180-d LAQ recipe) from audio files",
        description="Extract the clip feature vector of each audio file (folders are searched "
        "recursively), through the feature cache.",
    )
    p.add_argument("paths", nargs="+", type=Path, help="audio files or folders")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help="save the matrix as .npy (and the paths as .txt)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_strict(p)
    _add_spec(p)
    _add_cache(p)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser(
        "data",
        help="[host] summarise a data set: clips per label and speaker",
        description="Load a data set's file list and print its label and speaker counts. Only files that "
        "decode are counted (a header parse of each audio file): the others are named in a warning each and "
        "counted as skipped.",
    )
    p.add_argument("data", help=f"data set: {DATASETS}")
    p.add_argument("--root", type=Path, default=None, metavar="DIR", help=ROOT_HELP)
    p.add_argument(
        "--split",
        choices=(*FER_SPLITS, "all"),
        default=None,
        help="fer2013 only: which split folder (default train; validation is FER-2013's PublicTest; all: "
        "every split present); a split whose folder is missing is an error listing those present",
    )
    _add_strict(p)
    p.set_defaults(func=cmd_data)

    p = sub.add_parser(
        "synth",
        help="[host] write the synthetic labelled speech data set to a folder",
        description="Generate the deterministic synthetic data set as WAV files.",
    )
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument(
        "--n-per-class", metavar="N", type=in_range(1), default=30, help="clips per class (default 30)"
    )
    p.add_argument(
        "--sr",
        metavar="HZ",
        type=in_range(8000, 96000),
        default=16000,
        help="sample rate in Hz (default 16000)",
    )
    p.add_argument(
        "--duration",
        metavar="SECONDS",
        type=in_range(0.5, 30.0, float),
        default=1.5,
        help="clip length in seconds (default 1.5)",
    )
    p.add_argument(
        "--speakers",
        type=in_range(1, 99),
        default=6,
        metavar="N",
        help="number of synthetic speakers (default 6). Clip i of each class is spoken by speaker i mod N, so "
        "every speaker has every class: with --n-per-class below N only the first --n-per-class speakers are used",
    )
    p.add_argument("--seed", type=in_range(0), default=0, help="generator seed (default 0)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser(
        "eval",
        help="[host] a bundle's accuracy, UAR and confusion matrix on a labelled data set, through the device path",
        description="Run a bundle on every file of a labelled data set as the device would (edge_ser.Recognizer, "
        "no torch): accuracy, unweighted average recall (UAR), per-class recall, the confusion matrix (table "
        "and --png), the share of OOD-flagged inputs and time per clip. Files of a class the bundle does not "
        "know are counted, not scored; a file that cannot be decoded is skipped with a warning (--strict: "
        "error). docs/eval.md.",
    )
    _add_eval_args(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "train",
        help="[host] train a model (laq_mlp, or av_cnn on audio-visual data) and report test accuracy",
        description="Features (cached) -> split -> train laq_mlp (or --model av_cnn) with early stopping -> "
        "test accuracy and confusion matrix. Needs the host extra (torch).",
    )
    _add_train_args(p, data_default=None, out_default="out/train")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "laq",
        help="[host] train, allocate bits (LAQ), QAT and export a device bundle",
        description="Features -> split -> float model (laq_mlp or --model av_cnn) -> bit allocation -> QAT -> "
        "ONNX graph + packed .esq weights (+ TFLite variants) in a bundle, checked on the device engines.",
    )
    _add_train_args(p, data_default=None, out_default="out/laq")
    _add_laq_args(p, recipe="laq-paper")
    p.add_argument(
        "--from-model",
        type=Path,
        default=None,
        metavar="PATH",
        help="start from the float model `edge-ser train` saved (its --out folder or model.pt) instead of training "
        "one: the same --data, --model, --split, --seed, --fold and --folds as that run (checked against its "
        "summary.json), so QAT and the test figures see its split",
    )
    p.set_defaults(func=cmd_laq)

    p = sub.add_parser(
        "demo",
        help="[host] the main job end to end on built-in synthetic data",
        description="The main job on the built-in synthetic data set (or --data): train, LAQ, QAT, export a "
        "bundle, run it on the device engines, classify a held-out clip with each and stream four held-out clips "
        "through the live pipeline (edge-ser run; data sets of audio files only), and measure the roofline report "
        "on this machine. Writes in --out: bundle/, bitplan.json, summary.json, live_sample.wav and .jsonl, "
        "roofline.json, .md and .png.",
    )
    _add_train_args(p, data_default="synthetic", out_default="out/demo")
    _add_laq_args(p, recipe="sensitivity")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "model",
        help="[host] a model's layers, parameters and FLOPs (av_cnn: against the seed's figures)",
        description="Per layer: input and output shapes, parameters and FLOPs by the AV seed's convention; "
        "totals; for av_cnn, the seed paper's reported figures and why ours differ.",
    )
    p.add_argument("name", choices=model_names(command="model"), help="model")
    p.add_argument(
        "--mode", choices=("fused", "audio", "video"), default="fused", help="av_cnn branches (default fused)"
    )
    p.add_argument(
        "--frame-fusion",
        choices=("channels", "shared"),
        default="channels",
        help="av_cnn: the 6 frames as conv1's channels (default) or one shared per-frame CNN",
    )
    p.add_argument("--same", action="store_true", help="av_cnn: 'same' 3x3 padding instead of valid")
    p.add_argument("--classes", metavar="N", type=in_range(2), default=7, help="output classes (default 7)")
    p.add_argument(
        "--in-features", metavar="N", type=in_range(1), default=180, help="laq_mlp input size (default 180)"
    )
    p.add_argument(
        "--width",
        metavar="MULT",
        type=in_range(0.125, 4.0, float),
        default=1.0,
        help="log-Mel models: channel width multiplier, 0.125..4 (default 1)",
    )
    p.add_argument(
        "--mels",
        metavar="M",
        type=in_range(16),
        default=128,
        help="log-Mel models: patch height M (default 128)",
    )
    p.add_argument(
        "--frames",
        metavar="T",
        type=in_range(16),
        default=64,
        help="log-Mel models: patch width T (default 64)",
    )
    p.set_defaults(func=cmd_model)

    from converters.sweep_cli import spec_help

    p = sub.add_parser(
        "sweep",
        help="[host] run a hyper-parameter sweep from a YAML spec (Ray when installed, else serially)",
        description=textwrap.fill(
            "A grid of points (LAQ weights, LMS parameters, seeds, ...) through a registered objective; results "
            "appended to a JSON-lines file, so a stopped sweep resumes where it was; a table of the results at "
            "the end. Needs the host extra (torch); Ray is optional (edge-ser[sweep]).",
            100,
        )
        + "\n\n"
        + spec_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("spec", type=Path, help="sweep spec (YAML or JSON): name, objective, grid, out, report")
    p.add_argument("--out", type=Path, default=None, help="results folder (default: the spec's `out`)")
    p.add_argument(
        "--backend", choices=("auto", "serial", "ray"), default=None, help="default: the spec's, else auto"
    )
    p.add_argument(
        "--max-concurrent",
        type=in_range(1),
        default=None,
        metavar="N",
        help="points run at once on Ray (default: the spec's max_concurrent, else as many as the CPUs allow)",
    )
    p.add_argument("--retry-errors", action="store_true", help="run again the points that failed")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "zoo",
        help="[host] several models on the same splits (RF, SVM, LAQ MLP, CNNs, transformer): one table",
        description="Train and test each model on the same random 80/10/10 splits (seeds) or leave-one-"
        "speaker-out folds of a data set: random forest and SVM (scikit-learn) and the LAQ MLP on clip feature "
        "vectors; small_cnn, squeezenet_lms and tiny_transformer on log-Mel patches with utterance voting. "
        "Resumable (a JSON-lines file), Ray when installed. Prints accuracy mean +- std, params and FLOPs; "
        "with --laq also the compressed accuracy, bits, packed KB and host latency.",
    )
    from converters.zoo_cli import add_zoo_args

    add_zoo_args(p)
    p.set_defaults(func=cmd_zoo)
