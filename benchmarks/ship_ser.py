"""Ship the speaker-independent recogniser of a language: functionals_mlp on the extended eGeMAPS-layout
functionals (327 values; --features egemaps: the 88), per-speaker normalised, LAQ + QAT at <= 2 average bits,
with online speaker normalisation in the bundle.

    python benchmarks/ship_ser.py --data emodb --choose-by device --out bundles/ser_emodb
    python benchmarks/ship_ser.py --data ravdess --choose-by device --reverb auto --out bundles/ser_ravdess
    python benchmarks/ship_ser.py --data ravdess --paired-fold 0 --out bundles/av_fn_audio   # av_fusion's audio
    python benchmarks/ship_ser.py --data path/to/mydata --out mybundle   # your own recordings (docs/data.md)

`--data FOLDER` runs the same recipe on a folder of your own labelled recordings (<class>/<speaker>_<name>.wav
or <class>/<speaker>/<name>.wav, or a labels CSV FILE.csv of path,label,speaker; docs/data.md, "The recommended
recipe on your own data"): the folder's name (a CSV's: its folder's, joined with the file's stem unless it is
labels.csv: mydata/train.csv -> mydata_train) stands for the data set's in file names and the manifest, the last
`--val-speakers` speakers (default 1) validate stage 1, and the inner folds need at least 4 speakers. Its tables go to `--tables DIR` (default
`<out>.tables` beside the bundle), never into the repository; the corpora's go to benchmarks/results/ (the
shipped bundles' records).

`--paired-fold K` makes the audio branch of a fusion bundle that is fitted and measured on the paired RAVDESS +
FER-2013 set's actor fold K (benchmarks/av_fusion.py, benchmarks/ship_av_fusion.py): the fold's test actors are
never seen, its validation actors are stage 1's validation speakers and also choose the variant (no inner
folds: the paired set's fold fixes its validation actors), calm is dropped (FER-2013 has no calm, so the paired
set neither), and stage 1's model ships (a refit would train on the actors the fusion rule is fitted on).

The recipe is the si_table's best small row (benchmarks/results/si_table.md): every training speaker is
standardised by its own statistics. Three stages:
0. recipe (`--choose pairs`, the default): each training variant (noisy copies 0 / 2, speed copies off / on,
   plain / class-balanced loss) is trained once per *inner fold*, the speakers in consecutive pairs of sorted
   order (RAVDESS 6 pairs, EMODB 5), each pair validating a model trained on every other speaker; the variant
   with the best mean of clean + noisy validation UAR over the folds wins. One validation pair alone (`--choose
   holdout`, the choice before) is noisy: the four variants of the si_table sit within one actor's noise;
1. choose: the validation speaker(s) (the last `--val-speakers` in sorted order: EMODB 16, RAVDESS actors 11
   and 12, a folder's last one), never trained on, choose the float epoch count, the bit allocation and the
   QAT epoch count by UAR;
2. refit: the shipped model is trained on every speaker with those choices fixed (no selection on data it
   trains on), as the issue asks ("trained on all 10 speakers"); --no-refit ships stage 1's model instead.
The inner folds' table goes to benchmarks/results/ship_ser_choice_<data>.{md,json} (a folder's: --tables).
`--members auto` (the default) also asks the inner folds whether a 3-seed ensemble (`FunctionalsEnsemble`: the
members side by side, logits averaged) beats one MLP (`choose_members`, benchmarks/results/ship_ser_members_<data>.md)
and ships it within the 2.0-bit budget (docs/protocol.md).
`--reverb auto` (stage 0c, after stage 0) asks the same inner folds whether the chosen variant scores higher with 2
reverberant copies of every training clip (synthetic rooms, `converters.reverb`; benchmarks/results/
ship_ser_reverb_<data>.md); ser_ravdess is built with it (docs/protocol.md, "Reverberation").
`--reverb member` ships two members instead (logits averaged): the chosen variant as without the copies (seed 0),
and the same variant trained with the reverberant copies (seed 1), each with its own stage 1 and refit; no seed
ensemble is asked for (docs/protocol.md, "A close-talk and a reverberant member, nested").
`--early-views member` ships two members the same way: the chosen variant as it is (seed 0) and the same variant
trained with early views (seed 1) (docs/protocol.md, "A member with early views beside one without").
`--length-views on` adds 2 length views of every training clip (each cut to a random stretch of its speech) to every
member's training rows: stage 0's variant choice (with `--choose pairs`) and `--reverb auto` are made without them,
the member choice, stage 1 and the refit with them (docs/protocol.md, "Utterance length").
The bundle records the training prior (`speaker_norm`, edge_ser.speaker): on the device each clip of
the user joins the running statistics and is standardised by them. Its speaker-independent accuracy is the
si_table's leave-one-speaker-out figure (online-20 row); the validation figures here are for the record.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, folder_problem, pin_single_thread, run_main  # noqa: E402

pin_single_thread()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from converters.compress import RECIPES, compress, parse_recipe  # noqa: E402
from converters.data.scan import DatasetWarning  # noqa: E402
from converters.evaluate import index_metrics  # noqa: E402
from converters.export.bundle import build_bundle  # noqa: E402
from converters.featurize import (  # noqa: E402
    NOISY_COPIES,
    SPEED_FACTORS,
    FeatureCache,
    cropped_functionals_matrix,
    reverb_functionals_matrix,
    training_copies,
)
from converters.heldout import clip_probes  # noqa: E402
from converters.models.functionals_mlp import FunctionalsEnsemble  # noqa: E402
from converters.pipeline import load_records, whitespace_error  # noqa: E402
from converters.quant.bitplan import BitPlan  # noqa: E402
from converters.quant.qat import QAT_DEFAULTS, qat  # noqa: E402
from converters.registry import build  # noqa: E402
from converters.si_eval import EARLY_VIEWS, functionals_input, pooled  # noqa: E402
from converters.speaker_norm import device_views, online, transductive  # noqa: E402
from converters.train import TrainConfig, predict, seed_everything, train_classifier  # noqa: E402
from edge_ser.bundle.write import check_replaceable  # noqa: E402
from edge_ser.errors import BundleError  # noqa: E402
from edge_ser.features.egemaps import FunctionalsSpec  # noqa: E402
from edge_ser.features.speaker_norm import SpeakerNorm  # noqa: E402
from edge_ser.inputs.functionals import FunctionalsKind  # noqa: E402

VAL_SPEAKERS = {"emodb": 1, "ravdess": 2}
"""How many speakers (the last in sorted order) validate: RAVDESS by a pair (one male, one female actor)."""
FOLDER_VAL_SPEAKERS = 1
"""`--val-speakers`' default for a folder of the user's own recordings."""
MIN_TRAIN_SPEAKERS = 2
"""Speakers stage 1 must keep to train on after the validation speakers (`--val-speakers`)."""
INNER_SPEAKERS = 4
"""Speakers the inner folds (`inner_folds`) need: two pairs, each validating a model trained on the other (at
least two) speakers; with 3, the one fold is every speaker and leaves none to train on."""
FEATURES = {"egemaps": FunctionalsSpec(), "extended": FunctionalsSpec(extended=True)}
"""The functionals layouts a bundle can be shipped on (`FunctionalsSpec.extended`)."""
PRIOR_WEIGHT = 3.0
"""Clips the training prior counts as on the device (the si_table's validation chose from 1, 3, 10, 30)."""
MEMBERS = 3
"""Seeds (0, 1, ...) of a seed ensemble (`FunctionalsEnsemble`: the members side by side on one input, their
logits averaged)."""
BIT_BUDGET = 2.0
"""Average bits a shipped model may store (issue 18). An ensemble stores each member at its own widths, so its
average is its members'; one that would still exceed it ships as seed 0's MLP alone (`within_budget`)."""
ENSEMBLE_GAIN = 0.01
"""UAR the ensemble must gain on the inner folds, over seed 0's model and over the mean of its single members,
to ship (`choose_members`); the rule was fixed before its first measurement (docs/protocol.md)."""
ONLINE_CLIPS = 20
"""Clips of a validation speaker the device-side score (`--choose-by device`) enrols before scoring them all."""
REVERB_COPIES = 2
"""Reverberant copies of every training clip with `--reverb on|auto` (`converters.featurize.
reverb_functionals_matrix`: each in its own synthetic room, RT60 0.2-1.0 s, DRR -6 to +6 dB, seed 0;
benchmarks/reverb.py measures them)."""
LENGTH_COPIES = 2
"""Length views of every training clip with `--length-views on` (`converters.featurize.cropped_functionals_matrix`:
each cut from 0.2 s before its speech to a random 0.75 s..all of it, one seeded draw per clip and copy;
docs/protocol.md, "Utterance length")."""
SPEED_LAST = NOISY_COPIES + len(SPEED_FACTORS)
"""The last copy index of the speed copies (`training_matrix`'s layout: clean 0, noisy, speed, reverberant, length)."""
REVERB_LAST = SPEED_LAST + REVERB_COPIES
"""The last copy index of the reverberant copies; the length views come after it (whether or not these exist)."""
SI_POINTER = "the speaker-independent figure: accuracy.speaker_independent"
"""Where a manifest's split text points for the figure on unseen speakers (said otherwise when it has none)."""
SEED_TABLES = RESULTS / "nested_full_stage0"
"""Where the repository's procedures nested at several training seeds are (`seeds_figures`)."""
RECIPE = "sensitivity@2.0"
"""`--recipe`'s default, the compression ship_ser_nested.py nests (so a bundle compressed otherwise gets no figure)."""
VARIANTS = [(k, sp, b) for k in (0, NOISY_COPIES) for sp in (False, True) for b in (False, True)]
"""Stage 0's candidates when no flag fixes one (noisy copies, speed copies, class-balanced loss), in the order the
flags give them; ship_ser_nested.py nests exactly these, so only a bundle chosen among all of them gets its figure."""
CHOOSE_BY = {
    "transductive": ("val_uar", "val_uar_noisy"),
    "device": ("val_uar", "val_uar_noisy", "val_uar_online", "val_uar_noisy_online"),
}
"""Stage 0's score of a variant on an inner fold: the mean of these validation figures (`stage1`)."""


@dataclass(frozen=True)
class Data:
    """What `--data` names: one of the corpora (`VAL_SPEAKERS`) or a folder (or labels CSV) of the user's own
    recordings."""

    arg: str
    """As given: what `converters.pipeline.load_records` reads (a corpus name, the folder's or the CSV's path)."""
    name: str
    """The short name in file names, the manifest's 'dataset' and `nested_name`: the corpus's or folder's (a
    labels CSV's: `converters.data.loaders.labels_csv_name`)."""
    corpus: bool

    @property
    def val_speakers(self) -> int:
        """The default count of validation speakers: a corpus's `VAL_SPEAKERS`, else `FOLDER_VAL_SPEAKERS`."""
        return VAL_SPEAKERS[self.name] if self.corpus else FOLDER_VAL_SPEAKERS


DATA_HELP = (
    f"a corpus ({', '.join(sorted(VAL_SPEAKERS))}) or a folder of your own recordings, "
    "<class>/<speaker>_<name>.wav or <class>/<speaker>/<name>.wav, or a labels CSV of them (FILE.csv with columns "
    "path,label,speaker; docs/data.md)"
)


def resolve_data(value: str) -> Data:
    """`--data`: a corpus name, else an existing folder (its name is the short name) or labels CSV (a file
    whose name ends in .csv: `labels_csv_name`); else ValueError whose message is the one-line usage error naming
    the options."""
    from converters.data.loaders import is_labels_csv, labels_csv_name

    if value in VAL_SPEAKERS:
        return Data(value, value, True)
    path = Path(value)
    if is_labels_csv(path):
        return Data(value, labels_csv_name(path), False)
    if not path.is_dir():
        bare = value.strip()  # what `whitespace_error` says, for what this command takes
        if bare != value and (bare in VAL_SPEAKERS or Path(bare).is_dir() or is_labels_csv(bare)):
            raise ValueError(f"--data: {whitespace_error(value)}")
        corpora = ", ".join(sorted(VAL_SPEAKERS))
        raise ValueError(
            f"--data {value!r}: neither a corpus ({corpora}) nor an existing folder of recordings "
            "(<class>/<speaker>_<name>.wav) nor a labels CSV (FILE.csv: path,label,speaker; docs/data.md)"
        )
    return Data(value, path.resolve().name, False)


def data_speakers(data: Data) -> list[str]:
    """The sorted speakers of `data`'s clips (`load_records`: the folder is scanned, no features are made); a
    folder's speakers and classes with too few clips are said on stderr (`converters.heldout.few_clips`, as
    `edge-ser data` says them): a speaker of one clip, standardised by its own statistics, always gives the same
    vector, and its fold counts as much as any other in the unseen-speaker figure."""
    from converters.data.loaders import swapped_layout
    from converters.data.records import UNKNOWN_SPEAKER
    from converters.data.scan import DatasetWarning
    from converters.data.splits import check_named_speakers
    from converters.heldout import few_clips
    from edge_ser.errors import ConfigError

    _, records = load_records(data.arg, None)
    if not data.corpus:
        # refused as `edge-ser train --split speaker` refuses them (a review: unnamed files became a "speaker"
        # 'unknown' and a swapped layout a speaker classifier, each with a figure written)
        check_named_speakers([r.speaker for r in records], data.name)
        # a labels CSV without speakers
        if records and {str(r.speaker) for r in records} == {UNKNOWN_SPEAKER}:
            raise ConfigError(
                f"{data.name}: none of its {len(records)} clips names a speaker, and this procedure holds speakers "
                "out: give a labels CSV a speaker column (path,label,speaker), name folder files "
                "<class>/<speaker>_<name>.wav"
            )
        swapped = swapped_layout(records)
        if swapped:
            raise ConfigError(f"{data.name}: {swapped}")
        # a review: a folder one level too deep shipped a one-class "recogniser" at UAR 100 %
        if len({str(r.label) for r in records}) < 2:
            raise ConfigError(f"{data.name}: {one_class(Path(data.arg), records)}")
        for line in few_clips(records):  # one line each, '<script>: warning: ...' (run_main's format)
            warnings.warn(f"{data.name}: {line}", DatasetWarning, stacklevel=2)
    return sorted({str(r.speaker) for r in records})


def one_class(root: Path, records: list) -> str:
    """What to say of a folder whose clips are all of one class (or none): the class, and when the folders under
    it are emotions' names, that the folder is one level too deep (`mydata/all/angry/...`)."""
    from converters.data import labels as L

    classes = sorted({str(r.label) for r in records})
    found = f"its {len(records)} clips are all of class {classes[0]}" if classes else "it holds no clip"
    parts = [Path(os.path.relpath(r.source, root)).parts for r in records]
    deeper = sorted({p[1] for p in parts if len(p) > 2 and L.to_label(p[1]) is not None})
    hint = (
        f"; the folders under it ({', '.join(deeper[:4])}) are emotions: give --data {root / classes[0]}"
        if deeper and classes
        else ""
    )
    if root.is_file():  # a labels CSV
        return f"{found}: a recogniser needs at least 2 labels in {root.name}"
    return f"{found}: a recogniser needs at least 2 class folders (<class>/<speaker>_<name>.wav){hint}"


def variant_source(choose: str, candidates: int) -> str:
    """Where a refit bundle's training variant came from, for its manifest's split text: stage 0's inner folds
    (`--choose pairs`), the validation speakers (`--choose holdout`), or the flags (one candidate)."""
    if candidates < 2:
        return "as given"
    return "on inner folds of speaker pairs" if choose == "pairs" else "on the validation speakers"


def thin_validation(rows: Rows, val_spk: list[str]) -> list[str]:
    """A line for each of stage 1's validation speakers (the last by name) with fewer than FEW_CLIPS clips as
    recorded: it alone chooses the epochs and bit plan on that few clips (a review: a one-clip speaker named last
    became the only validation speaker, and only the general few-clips warning hinted at it)."""
    from converters.heldout import FEW_CLIPS

    out = []
    for s in val_spk:
        n = int(((rows.spk == s) & (rows.copy_of == 0)).sum())
        if n < FEW_CLIPS:
            out.append(
                f"speaker {s} validates stage 1 (the last by name) with {n} clip(s): the epochs and bit plan are "
                f"chosen on {n} clip(s); give --val-speakers 2 or more, or rename it so that a speaker with more "
                "clips sorts last"
            )
    return out


def warn_thin_validation(name: str, rows: Rows, val_spk: list[str]) -> None:
    """`thin_validation`'s lines as DatasetWarnings (one line each on stderr, run_main's format)."""
    for line in thin_validation(rows, val_spk):
        warnings.warn(f"{name}: {line}", DatasetWarning, stacklevel=2)


def speaker_problem(
    name: str, speakers: int, val: int, *, inner: bool, outer: int = 0, flag: str = "--val-speakers"
) -> str | None:
    """Why `speakers` speakers of the data set `name` cannot run the procedure (one line), or None when they
    can: `val` validation speakers must leave `MIN_TRAIN_SPEAKERS` to train on, and with `inner` (stage 0 or a
    member / reverb choice) the inner folds need `INNER_SPEAKERS`; `outer` speakers are held out first (the
    nested run's outer fold holds one out). `flag`: what sets `val` (named in the message)."""
    left = speakers - outer
    held = f", {left} after the {outer} an outer fold holds out" if outer else ""
    if inner and left < INNER_SPEAKERS:
        return (
            f"{name} has {speakers} speaker(s){held}; the inner folds of speaker pairs need at least "
            f"{INNER_SPEAKERS + outer} (two pairs, each validating a model trained on the others)"
        )
    if left - val < MIN_TRAIN_SPEAKERS:
        most = max(left - MIN_TRAIN_SPEAKERS, 0)
        return (
            f"{flag} {val}: {name} has {speakers} speaker(s){held}, which leaves {max(left - val, 0)} to "
            f"train on; stage 1 needs at least {MIN_TRAIN_SPEAKERS} (at most {most} validation speakers)"
        )
    return None


def nested_speaker_problem(data: Data, n_speakers: int) -> str | None:
    """Why ship_ser_nested.py cannot run on `data` of `n_speakers` (its outer fold holds one speaker out before
    the inner folds), or None."""
    return speaker_problem(
        data.name, n_speakers, data.val_speakers, inner=True, outer=1, flag="validation speakers"
    )


def no_nested_run(
    args: argparse.Namespace, data: Data, n_speakers: int, tables: Path | None, lengths: bool
) -> str:
    """The line said when the manifest gets no speaker-independent figure because no complete nested run of this
    procedure is in `tables`: the ship_ser_nested.py command that makes it, or, when `data` has too
    few speakers for that run (its outer fold holds one out before the inner folds), why there can be none (a
    review found the command suggested for a folder of 4 speakers, which ship_ser_nested.py then refused)."""
    head = "no complete nested run of this procedure: the manifest has no speaker-independent figure"
    if problem := nested_speaker_problem(data, n_speakers):
        return f"{head}, and ship_ser_nested.py cannot make one: {problem}"
    return (
        f"{head} (python benchmarks/ship_ser_nested.py --data {shlex.quote(args.data)} "
        f"--choose-by {args.choose_by}"
        + (f" --tables {shlex.quote(str(tables))}" if tables is not None else "")
        + {"off": "", "on": " --early-views", "member": " --early-views member"}[args.early_views]
        + (f" --reverb {args.reverb}" if args.reverb != "off" else "")
        + (" --length-views on" if lengths else "")
        + ")"
    )


def nested_mismatch(
    args: argparse.Namespace,
    candidates: list[tuple[int, bool, bool]],
    *,
    say: bool = False,
    val_speakers: int | None = None,
    default_val: int | None = None,
) -> list[str]:
    """The options of this run that ship_ser_nested.py's procedure does not have (it makes every choice on the
    inner folds, compresses with `RECIPE`, validates stage 1 with the data set's default count of speakers
    `default_val` and scores the refit): empty when its figure describes this run's bundle. `val_speakers`: this
    run's count. `--recipe` was missing from the check, so a bundle at another budget got the 2-bit procedure's
    figure; with `--val-speakers` or `--no-refit` the manifest said "ship_ser_nested.py makes it" of a figure no
    nested run gives it (reviews). `say`: print why the bundle gets no figure when there are any (a run with the
    variant fixed said nothing)."""
    given = [
        f"--features {args.features}" if args.features != "extended" else "",
        f"--choose {args.choose}" if args.choose != "pairs" else "",
        f"--members {args.members}" if args.members != "auto" else "",
        f"--recipe {args.recipe}" if args.recipe != RECIPE else "",
        f"--val-speakers {val_speakers}"
        if val_speakers is not None and default_val is not None and val_speakers != default_val
        else "",
        "--no-refit" if getattr(args, "no_refit", False) else "",
    ]
    if candidates != VARIANTS:  # stage 0's variant fixed (or narrowed) by the flags
        given += [
            f"--noise-copies {args.noise_copies}" if args.noise_copies is not None else "",
            f"--speed {args.speed}" if args.speed != "auto" else "",
            f"--balanced {args.balanced}" if args.balanced != "auto" else "",
        ]
    given = [g for g in given if g]
    if given and say:
        print(
            f"no speaker-independent figure for this bundle: ship_ser_nested.py's procedure does not run "
            f"{', '.join(given)} (it chooses on the inner folds, compresses with {RECIPE}, validates stage 1 "
            f"with {default_val or 'the default'} speaker(s) and refits), so its figure would not describe this "
            "bundle"
        )
    return given


def uses_inner_folds(args: argparse.Namespace, variants: int) -> bool:
    """Whether ship_ser's options run anything on the inner folds: stage 0 (`variants` > 1), the member choice
    (`--members auto`) or the reverb choice (`--reverb auto`), all with `--choose pairs`."""
    if args.paired_fold is not None or args.choose != "pairs":
        return False
    members = args.members == "auto" and args.reverb != "member"
    return variants > 1 or members or args.reverb == "auto"


def table_ref(tables: Path | None, file: str) -> str:
    """How the manifest names a table: benchmarks/results/<file> for the repository's (`tables` None), else
    its absolute path."""
    return f"benchmarks/results/{file}" if tables is None else str(Path(tables).resolve() / file)


def tables_folder(
    ap: argparse.ArgumentParser, data: Data, tables: Path | None, default: Path | None
) -> Path | None:
    """Where a run's tables go: `tables` (`--tables`) when given, else the repository's benchmarks/results/
    (None) for a corpus and `default` for a folder (ap.error when there is none). A folder's tables never go
    into benchmarks/results/ (the corpora's records); a file where the folder would be is refused here, not by
    the first table's write after stage 0's training (`folder_problem`)."""
    given = f"--tables {tables}"
    if tables is None and not data.corpus:
        if default is None:
            ap.error(f"--data {data.arg}: a folder's tables need --tables DIR (never benchmarks/results/)")
        tables, given = default, f"the tables' default folder {default} (--out's, no --tables given)"
    if tables is not None and not data.corpus:
        where = Path(tables).resolve()
        if where == RESULTS.resolve() or RESULTS.resolve() in where.parents:
            ap.error(f"{given}: benchmarks/results/ holds the corpora's records; give your own folder")
    if tables is not None and (problem := folder_problem(tables)):
        ap.error(f"{given}: {problem}")
    return tables


def checked(
    ap: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[Data, int, Path | None, list[tuple[int, bool, bool]]]:
    """ship_ser's arguments checked before any features are made (`ap.error`, one line, on the first that is
    wrong): (the data set, its count of validation speakers, where its tables go (`tables_folder`), the
    training variants stage 0 compares). A folder's speakers are counted (`data_speakers`, a scan), and so are
    a corpus's when `--val-speakers` is given."""
    try:  # compress reads it only after the features and a float model are made (a review)
        parse_recipe(args.recipe)
    except ValueError as e:
        ap.error(f"--recipe: {e}")
    try:  # build_bundle checks it too, but only after the training (a review)
        check_replaceable(args.out)
    except BundleError as e:
        ap.error(f"--out: {e}")
    try:
        data = resolve_data(args.data)
    except ValueError as e:
        ap.error(str(e))
    if args.name is not None and data.corpus:
        ap.error(f"--name is for a folder of your own recordings: the corpus {data.name} keeps its name")
    if args.name is not None and (not args.name.strip() or not args.name.isprintable()):
        ap.error(f"--name {args.name!r}: give the data set's name as printable text, not blank")
    if args.paired_fold is not None and args.data != "ravdess":
        ap.error("--paired-fold is for --data ravdess (the paired set's speech)")
    if args.paired_fold is not None and args.val_speakers is not None:
        ap.error("--val-speakers: --paired-fold's validation actors are its fold's")
    if args.reverb == "auto" and (args.paired_fold is not None or args.choose != "pairs"):
        # it was refused after the features were made (a review)
        why = "--paired-fold has none" if args.paired_fold is not None else f"not --choose {args.choose}"
        ap.error(f"--reverb auto chooses on the inner folds of speaker pairs: give --choose pairs ({why})")
    if args.reverb == "member" and args.members != "auto":
        ap.error("--reverb member ships its own two members: leave --members out")
    if args.early_views == "member" and args.members != "auto":
        ap.error("--early-views member ships its own two members: leave --members out")
    if args.early_views == "member" and args.reverb == "member":
        ap.error("--early-views member and --reverb member each ship two members: choose one")
    n_val = data.val_speakers if args.val_speakers is None else args.val_speakers
    if n_val < 1:
        ap.error(f"--val-speakers {n_val}: at least 1")
    tables = tables_folder(ap, data, args.tables, args.out.with_name(args.out.name + ".tables"))
    noise_choices = (0, NOISY_COPIES) if args.noise_copies is None else (args.noise_copies,)
    speed_choices = {"auto": (False, True), "on": (True,), "off": (False,)}[args.speed]
    balanced_choices = {"auto": (False, True), "on": (True,), "off": (False,)}[args.balanced]
    variants = [(k, sp, b) for k in noise_choices for sp in speed_choices for b in balanced_choices]
    if args.paired_fold is None and (not data.corpus or args.val_speakers is not None):
        n_speakers = len(data_speakers(data))
        problem = speaker_problem(data.name, n_speakers, n_val, inner=uses_inner_folds(args, len(variants)))
        if problem:
            ap.error(problem)
    return data, n_val, tables, variants


def main() -> None:
    """The script (`_main`), each data-set warning said once: the folder is listed more than once on the way (its
    speakers, its functionals, its copies), and a warning printed twice reads as two problems (a review)."""
    from converters.data.scan import each_warning_once

    with each_warning_once():
        _main()


def _main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="emodb", metavar="{emodb,ravdess}, FOLDER or FILE.csv", help=DATA_HELP)
    ap.add_argument("--out", type=Path, required=True, help="the bundle folder to write")
    ap.add_argument(
        "--name",
        default=None,
        metavar="NAME",
        help="the data set's name in the manifest (accuracy.dataset: what `edge-ser info` and `edge-ser eval` "
        "call it), for a folder of your own recordings; default: the folder's name, which for a folder called "
        "data is 'data'. The tables' file names keep the folder's name (ship_ser_nested.py's)",
    )
    ap.add_argument(
        "--val-speakers",
        type=int,
        default=None,
        metavar="N",
        help="validation speakers of stage 1, the last N in sorted order (default: "
        + ", ".join(f"{k} {v}" for k, v in sorted(VAL_SPEAKERS.items()))
        + f", a folder {FOLDER_VAL_SPEAKERS}); at least {MIN_TRAIN_SPEAKERS} speakers must be left to train "
        "on. The nested figure (ship_ser_nested.py) is of the default: only then is it in the manifest",
    )
    ap.add_argument(
        "--tables",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the inner folds' tables (ship_ser_choice_, _members_, _reverb_<name>.{md,json}) go and "
        "the nested run's (ship_ser_nested.py --tables) is read from; default: benchmarks/results/ for a "
        "corpus, <out>.tables beside the bundle for a folder (never the repository's)",
    )
    ap.add_argument(
        "--recipe",
        default=RECIPE,
        help=f"the compression of every model ({', '.join(RECIPES)}; 'sensitivity@B': measured LAQ at an "
        "average-bits budget of B; default sensitivity@2.0, the budget the shipped bundles keep)",
    )
    ap.add_argument(
        "--features",
        choices=sorted(FEATURES),
        default="extended",
        help="extended: the 88 eGeMAPS-layout functionals + 239 distribution, dynamics and MFCC 5-12 statistics "
        "(chosen on the validation speakers of benchmarks/si_table.py); egemaps: the 88",
    )
    ap.add_argument(
        "--noise-copies",
        type=int,
        choices=(0, 1, 2),
        default=None,
        help="noisy copies of every training clip (white noise at 20-50 dB SNR); default: 0 or 2, whichever "
        "scores the better mean of clean and noisy validation UAR",
    )
    ap.add_argument(
        "--speed",
        choices=("auto", "on", "off"),
        default="auto",
        help=f"speed-perturbed training copies (factors {', '.join(map(str, SPEED_FACTORS))}, each its own "
        "speaker for the normalisation); auto: with or without, whichever scores the better mean of clean and "
        "noisy validation UAR",
    )
    ap.add_argument(
        "--balanced",
        choices=("auto", "on", "off"),
        default="auto",
        help="class-balanced cross-entropy (every class the same total weight, so the loss matches UAR); auto: "
        "with or without, whichever scores the better mean of clean and noisy validation UAR",
    )
    ap.add_argument(
        "--choose",
        choices=("pairs", "holdout"),
        default="pairs",
        help="how the training variant (noisy copies, speed copies, loss) is chosen: pairs = the mean over inner "
        "folds of speaker pairs (default); holdout = on the default validation speakers only (the choice before)",
    )
    ap.add_argument(
        "--choose-by",
        choices=sorted(CHOOSE_BY),
        default="transductive",
        help="stage 0's score of a variant on an inner fold: transductive = the mean of clean and noisy "
        "validation UAR, each speaker standardised by all of its clips (default); device = that and the same "
        f"after only {ONLINE_CLIPS} of its clips from the training prior (online-{ONLINE_CLIPS}), all four averaged",
    )
    ap.add_argument(
        "--members",
        choices=("auto", "1", str(MEMBERS)),
        default="auto",
        help=f"one MLP or a seed ensemble of {MEMBERS} (seeds 0..{MEMBERS - 1}, side by side, averaging their "
        f"logits); auto (default): the ensemble when it beats seed 0's model and the mean single model by "
        f"{100 * ENSEMBLE_GAIN:g} point of mean clean + noisy validation UAR on the inner folds and stores at most "
        f"{BIT_BUDGET:g} average bits (with --choose pairs; else one)",
    )
    ap.add_argument(
        "--early-views",
        nargs="?",
        const="on",
        choices=("on", "off", "member"),
        default="off",
        help=f"on (the flag alone, as ship_ser_nested.py takes it): the clean training clips also standardised as the device does after {', '.join(map(str, EARLY_VIEWS))} "
        "clips of their speaker (the training prior updated with them), so a new speaker's first clips are not a "
        "distribution the model never saw (docs/protocol.md); member: two members, logits averaged, one trained "
        "without them and one with them",
    )
    ap.add_argument(
        "--reverb",
        choices=("auto", "on", "off", "member"),
        default="off",
        help=f"{REVERB_COPIES} reverberant copies of every training clip (synthetic rooms, RT60 0.2-1.0 s); auto: "
        "with them when the inner folds' validation score (--choose-by) of the chosen variant is higher with "
        "them than without; member: two members, logits averaged, one trained without the copies and one with "
        'them (docs/protocol.md, "Reverberation")',
    )
    ap.add_argument(
        "--length-views",
        choices=("on", "off"),
        default="off",
        help=f"on: {LENGTH_COPIES} more training copies of every clip, each cut from 0.2 s before its speech to a "
        "random 0.75 s..all of it, so a short live utterance is not an input the model never saw (the member "
        "choice, stage 1 and the refit; stage 0's variant choice and --reverb auto without them; docs/protocol.md, "
        '"Utterance length")',
    )
    ap.add_argument(
        "--no-refit",
        action="store_true",
        help="ship the validation run's model (trained without the val speakers)",
    )
    ap.add_argument(
        "--paired-fold",
        type=int,
        default=None,
        metavar="K",
        help="RAVDESS: the audio branch for the paired AV set's actor fold K (its test actors never seen, its "
        "validation actors validate, calm dropped, no refit)",
    )
    args = ap.parse_args()
    data, n_val, tables, variants = checked(ap, args)
    candidates = list(variants)  # stage 0's candidates (the flags fix some or none)
    torch.set_num_threads(1)
    spec = FEATURES[args.features]
    lengths = args.length_views == "on"
    d, X, Z, y, spk, copy_of, groups = training_matrix(
        data.arg, spec, reverb=args.reverb != "off", lengths=lengths
    )
    early = EARLY_VIEWS if args.early_views == "on" else ()
    rows = Rows(
        X, Z, y, spk.astype(str), copy_of, groups, list(d.classes), early, reverb=args.reverb == "on",
        lengths=lengths,
    )  # fmt: skip
    val_spk = rows.speakers()[-n_val:]
    warn_thin_validation(data.name, rows, val_spk)
    unseen: list[str] = []
    if args.paired_fold is not None:
        val_spk, unseen = paired_fold_actors(args.paired_fold)
        missing = set(unseen + val_spk) - set(rows.spk)
        if missing:
            raise RuntimeError(
                f"paired fold {args.paired_fold}: actors {sorted(missing)} not in the functionals"
            )
        rows = rows.subset(~np.isin(rows.spk, unseen)).without_class("calm")
        args.no_refit = True
    speakers = rows.speakers()
    choice: dict | None = None
    if args.choose == "pairs" and len(variants) > 1 and not unseen:
        # stage 0 compares the variants without early views (they are the same for every variant)
        choice = choose_variant(
            replace(rows, early_views=(), reverb=False, lengths=False),
            variants,
            args.recipe,
            progress=True,
            by=args.choose_by,
        )
        write_choice(data.name, choice, tables)
        variants = [choice["chosen"]]
    reverb_choice: dict | None = None
    if args.reverb == "auto":  # with --choose pairs, not --paired-fold (`checked`)
        off = choice["mean"][choice["chosen"]] if choice is not None else None
        reverb_choice = choose_reverb(  # without early views, as stage 0 (its score of the variant is `off`)
            replace(rows, early_views=(), lengths=False),
            variants[0],
            args.recipe,
            by=args.choose_by,
            off=off,
            progress=True,
        )
        write_reverb_choice(data.name, variants[0], reverb_choice, tables)
        rows = replace(rows, reverb=reverb_choice["reverb"])
    runs = [stage1(rows, v, val_spk, args.recipe) for v in variants]
    best = max(runs, key=lambda r: r["figures"]["val_uar"] + r["figures"]["val_uar_noisy"])
    variant = variants[runs.index(best)]
    seeds, member_choice = members_of(
        args, rows, variant, val_spk, best, paired=bool(unseen), data=data.name, tables=tables
    )
    seeds, over_budget = within_budget(seeds)
    members = len(seeds)
    tr, figures = best["tr"], {**best["figures"], **ensemble_figures(rows, seeds, val_spk)}
    val = np.isin(rows.spk, val_spk) & ~rows.speed_rows
    copies, speed = figures["noise_copies"], bool(figures["speed_copies"])
    balanced = bool(figures["class_balanced"])
    how = (
        " (chosen on validation)"
        if candidates == VARIANTS
        else " (given by the flags or chosen on validation)"
    )
    epochs = [r["epochs"] for r in seeds] if members > 1 else best["epochs"]
    split = {
        "kind": f"speaker holdout (validation only; {SI_POINTER})",
        "val_speakers": val_spk,
        "train_speakers": [s for s in speakers if s not in val_spk],
        **part_sizes(rows, seeds, train=tr, val=val),
        "validation": f"clean clips and {NOISY_COPIES} noisy copies of each (20-50 dB SNR)",
        "augmentation": f"{copies} noisy copies of every training clip"
        + (f", speed-perturbed copies at {', '.join(map(str, SPEED_FACTORS))}" if speed else "")
        + how
        + (f"; {REVERB_COPIES} reverberant copies (synthetic rooms)" if rows.reverb else "")
        + (
            f"; {LENGTH_COPIES} length views (each cut from 0.2 s before its speech to a random 0.75 s..all of it)"
            if rows.lengths
            else ""
        )
        + (
            f"; member 2 of 2 also trained on {REVERB_COPIES} reverberant copies (synthetic rooms)"
            if args.reverb == "member"
            else ""
        )
        + (
            f"; early views: the clean training clips standardised by the training prior updated with "
            f"{', '.join(map(str, early))} of their speaker's clips"
            if early
            else ""
        )
        + (
            f"; member 2 of 2 also trained on early views (the clean training clips standardised by the training "
            f"prior updated with {', '.join(map(str, EARLY_VIEWS))} of their speaker's clips)"
            if args.early_views == "member"
            else ""
        ),
        "loss": ("class-balanced " if balanced else "")
        + "cross-entropy"
        + (how if args.balanced == "auto" else " (given by --balanced)"),
    }
    if choice is not None:
        split["variant_choice"] = (
            f"noisy copies, speed copies and loss chosen by the mean {'+'.join(CHOOSE_BY[args.choose_by])} over "
            f"{len(choice['folds'])} inner folds (speaker pairs {', '.join('-'.join(f) for f in choice['folds'])}), "
            f"{table_ref(tables, f'ship_ser_choice_{data.name}.md')}"
        )
    if reverb_choice is not None:
        split["reverb_choice"] = (
            f"{'with' if rows.reverb else 'without'} the reverberant copies: mean validation score over the inner "
            f"folds {100 * reverb_choice['on']:.1f} % with them against {100 * reverb_choice['off']:.1f} % without, "
            f"{table_ref(tables, f'ship_ser_reverb_{data.name}.md')}"
        )
    if member_choice is not None:
        split["members_choice"] = (
            f"{members} member(s): the seed ensemble's mean clean + noisy validation UAR over the inner folds "
            f"{100 * member_choice['ensemble']:.1f} % against seed 0's {100 * member_choice['seed0']:.1f} % and the "
            f"single members' mean {100 * member_choice['single']:.1f} % (it ships when {100 * ENSEMBLE_GAIN:g} point "
            f"above both), {table_ref(tables, members_table(data.name, rows) + '.md')}"
            + (
                f"; the ensemble would store {over_budget:.2f} average bits (over the {BIT_BUDGET:g}-bit budget), so one "
                "MLP ships"
                if over_budget
                else ""
            )
        )
    if unseen:
        split = {
            **split,
            "kind": f"paired AV set actor fold {args.paired_fold} (group 6-fold, seed 0): trained on its "
            "training actors, chosen on its validation actors; its test actors never seen; calm dropped",
            "unseen_speakers": unseen,
        }
    fit = tr
    fitted = [(r["c"].model, r["c"].plan, r["c"].codes) for r in seeds]  # stage 1's members as they are
    if not args.no_refit:
        fit = rows.trained_on(variant)
        fitted = refit_members(rows, fit, seeds, balanced)
        split = {
            **split,
            "kind": "refit on every speaker; epochs and bits chosen on the validation speakers in stage 1, the "
            f"training variant (noisy and speed copies, loss) {variant_source(args.choose, len(candidates))} "
            f"(validation figures are stage 1's; {SI_POINTER})",
            "train_speakers": [str(s) for s in speakers],
            "chosen_epochs": epochs,
            **part_sizes(rows, seeds, train=fit, stage1_train=tr, val=val),
        }
    model, plan, codes = ensemble_of(fitted)
    prior = rows.prior(fit)
    seen = [*split.get("train_speakers", ()), *split.get("val_speakers", ())]  # eval knows the files renamed
    split["clip_probes"] = clip_probes(load_records(data.arg, None)[1], seen)
    accuracy = {**figures, "dataset": args.name or data.name, "split": split}
    if args.name is not None and args.name != data.name:  # eval knows the data set by its own name too
        accuracy["data_name"] = data.name
    # the procedure ship_ser_nested.py evaluates: every choice made on the inner folds
    mismatch = nested_mismatch(
        args, candidates, say=not unseen, val_speakers=n_val, default_val=data.val_speakers
    )
    mirrored = not mismatch
    if mirrored and not unseen:  # the procedure ship_ser_nested.py evaluates
        run_name = nested_name(data.name, args.choose_by, args.early_views, args.reverb, lengths)
        nested = nested_figures(run_name, tables)
        clean = rows.spk[rows.copy_of == 0]
        other = nested_data_problem(
            run_name, tables, rows.classes, {str(s): int((clean == s).sum()) for s in speakers}
        )
        if nested is not None and other:
            print(
                f"no speaker-independent figure for this bundle: the nested run of its name is of other data: {other}"
            )
        elif nested is not None:
            accuracy["speaker_independent"] = nested
        else:
            print(no_nested_run(args, data, len(speakers), tables, lengths))
    if "speaker_independent" not in accuracy:  # the split's text must not point to a figure that is not there
        # a folder of 4 speakers ships but cannot be nested: "ship_ser_nested.py makes it" was said of it too
        cannot = mirrored and not unseen and nested_speaker_problem(data, len(speakers))
        split["kind"] = split["kind"].replace(
            SI_POINTER,
            f"no speaker-independent figure: ship_ser_nested.py cannot make one: {cannot}"
            if cannot
            else "no speaker-independent figure: ship_ser_nested.py makes it"
            if mirrored and not unseen
            else f"no speaker-independent figure: ship_ser_nested.py does not run {', '.join(mismatch)}",
        )
    out = build_bundle(
        args.out,
        model,
        plan,
        codes,
        name="functionals_mlp",
        labels=rows.classes,
        kind=FunctionalsKind(spec),
        accuracy=accuracy,
        extra={
            "speaker_norm": {"input": "functionals", **prior.to_dict()},
            "recipe": {
                "features": f"eGeMAPS-layout functionals ({spec.dim}"
                + (", extended" if spec.extended else "")
                + "), per-speaker standardised",
                "compression": args.recipe
                + (
                    ", per member of the close-talk + reverberant pair"
                    if args.reverb == "member"
                    else ", per member of the plain + early-views pair"
                    if args.early_views == "member"
                    else f", per member of a {members}-seed ensemble"
                    if members > 1
                    else ""
                ),
                "members": members,
                "early_views": list(early),
                "early_member": args.early_views == "member",
                "reverb_copies": REVERB_COPIES if rows.reverb or args.reverb == "member" else 0,
                "reverb_member": args.reverb == "member",
                "length_views": LENGTH_COPIES if lengths else 0,
                "loss": "class-balanced cross-entropy" if balanced else "cross-entropy",
                "made_by": f"python benchmarks/ship_ser.py --data {shlex.quote(args.data)} "
                f"--out {shlex.quote(str(args.out))}"
                + (f" --name {shlex.quote(args.name)}" if args.name is not None else "")
                + (f" --val-speakers {args.val_speakers}" if args.val_speakers is not None else "")
                + (f" --tables {shlex.quote(str(args.tables))}" if args.tables is not None else "")
                + (f" --features {args.features}" if args.features != "extended" else "")
                + (f" --noise-copies {args.noise_copies}" if args.noise_copies is not None else "")
                + (f" --speed {args.speed}" if args.speed != "auto" else "")
                + (f" --balanced {args.balanced}" if args.balanced != "auto" else "")
                + (f" --paired-fold {args.paired_fold}" if unseen else "")
                + (" --choose holdout" if args.choose != "pairs" and not unseen else "")
                + (f" --choose-by {args.choose_by}" if args.choose_by != "transductive" else "")
                + (f" --members {args.members}" if args.members != "auto" else "")
                + (f" --early-views {args.early_views}" if args.early_views != "off" else "")
                + (f" --reverb {args.reverb}" if args.reverb != "off" else "")
                + (" --length-views on" if lengths else "")
                + (" --no-refit" if args.no_refit and not unseen else ""),
            },
        },
    )
    print(
        f"{out}: functionals_mlp{ensemble_label(members, args.reverb == 'member', args.early_views == 'member')} "
        f"{plan.average_bits:.2f} bits, "
        f"{(out / 'weights.esq').stat().st_size / 1000:.1f} KB packed; "
        f"validation speakers {val_spk}: UAR {100 * figures['val_uar']:.1f} % "
        f"(float {100 * figures['val_float_uar']:.1f} %; noisy copies {100 * figures['val_uar_noisy']:.1f} %; "
        f"trained with {copies} noisy copies, speed copies {'on' if speed else 'off'}, class-balanced loss "
        f"{'on' if balanced else 'off'})"
        + ("" if args.no_refit else f"; refit on all {len(speakers)} speakers at {epochs_words(epochs)}")
    )


@dataclass(frozen=True)
class Rows:
    """The recipe's rows (`training_matrix`): features X, their per-(speaker, copy) standardisation Z, labels,
    speaker and copy index of each row (0 clean, 1..NOISY_COPIES noisy, then one per SPEED_FACTORS), the
    normalisation group of each row and the class names."""

    X: np.ndarray
    Z: np.ndarray
    y: np.ndarray
    spk: np.ndarray
    copy_of: np.ndarray
    groups: np.ndarray
    classes: list[str]
    early_views: tuple[int, ...] = ()
    """`--early-views on`: for each k, the clean training rows once more, each speaker standardised as the device
    does after k of its clips (`training`). (): none."""
    reverb: bool = False
    """Train on the reverberant copies (copy indices after the speed copies, when `training_matrix` made them)."""
    lengths: bool = False
    """Train on the length views (copy indices after REVERB_LAST, when `training_matrix` made them)."""

    @property
    def speed_rows(self) -> np.ndarray:
        """The training-only views: speed-perturbed and reverberant copies and length views (never validated on,
        not voices for the prior)."""
        return self.copy_of > NOISY_COPIES

    @property
    def reverb_rows(self) -> np.ndarray:
        return reverb_views(self.copy_of)

    @property
    def length_rows(self) -> np.ndarray:
        return length_views(self.copy_of)

    def speakers(self) -> list[str]:
        return sorted(set(self.spk.tolist()))

    def trained_on(self, variant: tuple[int, bool, bool]) -> np.ndarray:
        """Rows a variant (noisy copies, speed copies, balanced loss) trains on, before holding speakers out."""
        copies, speed, _ = variant
        speed_copies = (self.copy_of > NOISY_COPIES) & (self.copy_of <= SPEED_LAST)
        return (
            (self.copy_of <= copies)
            | (speed_copies & speed)
            | (self.reverb_rows & self.reverb)
            | (self.length_rows & self.lengths)
        )

    def subset(self, keep: np.ndarray) -> Rows:
        """Only the rows `keep` (whole speakers), Z standardised again from them alone: each (speaker, copy) keeps
        its own statistics, but the variance floors came from every row, a held-out speaker's too (docs/protocol.md,
        "Audit"; until 2026-12-06 Z was kept as it was)."""
        X, groups, copy_of = self.X[keep], self.groups[keep], self.copy_of[keep]
        return replace(
            self, X=X, Z=standardise(X, groups, view_parts(copy_of)), y=self.y[keep], spk=self.spk[keep],
            copy_of=copy_of, groups=groups,
        )  # fmt: skip

    def training(self, fit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Z, y) a model trains on from the rows `fit`: their standardised rows, then with `early_views` the clean
        ones once more per k, standardised by the training prior (`prior(fit)`) updated with k of their
        speaker's clips in one seeded order (`converters.speaker_norm.device_views`, as si_table's early-views rows)."""
        if not self.early_views:
            return self.Z[fit], self.y[fit]
        clean = np.flatnonzero(fit & (self.copy_of == 0))
        views = device_views(self.X, self.groups, clean, self.prior(fit), self.early_views)
        return np.concatenate([self.Z[fit], *views]), np.concatenate(
            [self.y[fit], *[self.y[clean]] * len(views)]
        )

    def prior(self, fit: np.ndarray) -> SpeakerNorm:
        """The device's training prior (weight PRIOR_WEIGHT) from the recorded voices among the rows `fit`
        (clean and noisy copies; speed copies are not voices, as the si_table's online rows measure it)."""
        voices = fit & ~self.speed_rows
        return SpeakerNorm.from_speakers(self.X[voices], self.groups[voices], prior_weight=PRIOR_WEIGHT)

    def without_class(self, name: str) -> Rows:
        """Rows of every class but `name`, labels renumbered, Z re-standardised (a speaker's statistics change)."""
        keep = self.y != self.classes.index(name)
        kept = [c for c in self.classes if c != name]
        y = np.array([kept.index(self.classes[k]) for k in self.y[keep]])
        X, groups = self.X[keep], self.groups[keep]
        copy_of = self.copy_of[keep]
        return replace(
            self, X=X, Z=standardise(X, groups, view_parts(copy_of)), y=y, spk=self.spk[keep], copy_of=copy_of,
            groups=groups, classes=kept,
        )  # fmt: skip


def stage1(
    rows: Rows,
    variant: tuple[int, bool, bool],
    val_spk: list[str],
    recipe: str,
    log: bool = True,
    *,
    seed: int = 0,
    norm: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Train on every speaker but `val_spk` (clean + `copies` noisy copies, + the speed-perturbed copies when
    `speed`; the class-balanced loss when `balanced`), choose epochs and plan on the clean and noisy validation
    rows. Returns the compressed model `c`, the float run `fp`, the training rows `tr`, the chosen float and QAT
    epoch counts (`epochs`, what a refit trains for), the input standardisation `norm` (the training rows' mean
    and std, or the `norm` given: an ensemble's members share one) and the figures."""
    copies, speed, balanced = variant
    y, Z, classes = rows.y, rows.Z, rows.classes
    held_out = np.isin(rows.spk, val_spk)  # every row of the validation speakers: never trained on
    val = held_out & ~rows.speed_rows  # scored: clean and noisy rows (speed copies are training views only)
    tr = ~held_out & rows.trained_on(variant)
    by_uar = {"val_accuracy": lambda logits: index_metrics(y[val], logits.argmax(1), classes).uar}

    def uar_of(model, mask) -> float:
        return index_metrics(y[mask], predict(model, Z[mask]).argmax(1), classes).uar

    Z_tr, y_tr = rows.training(tr)
    seed_everything(seed)
    net = build("functionals_mlp", num_classes=len(classes), in_features=Z.shape[1])
    norm = (Z_tr.mean(0), Z_tr.std(0)) if norm is None else norm
    net.set_normalization(torch.as_tensor(norm[0]), torch.as_tensor(norm[1]))
    cfg = TrainConfig(seed=seed, class_balanced=balanced)
    fp = train_classifier(net, Z_tr, y_tr, Z[val], y[val], cfg, progress=False, **by_uar)
    qcfg = replace(QAT_DEFAULTS, class_balanced=balanced)
    c = compress(
        recipe, fp.model, Z_tr, y_tr, Z[val], y[val], seed=seed, qat_config=qcfg, train_kwargs=by_uar
    )
    clean, noisy_rows = val & (rows.copy_of == 0), val & (rows.copy_of > 0)
    online_clean, online_noisy = _online_uar(rows, val, c.model, rows.prior(tr))
    figures = {
        "val_uar": uar_of(c.model, clean),
        "val_uar_noisy": uar_of(c.model, noisy_rows),
        "val_uar_online": online_clean,
        "val_uar_noisy_online": online_noisy,
        "val_float_uar": uar_of(fp.model, clean),
        "noise_copies": copies,
        "speed_copies": list(SPEED_FACTORS) if speed else [],
        "class_balanced": balanced,
    }
    if log:
        print(
            f"  {variant_label(variant)}: validation {','.join(val_spk)} UAR clean "
            f"{100 * figures['val_uar']:.1f} %, noisy {100 * figures['val_uar_noisy']:.1f} %",
            flush=True,
        )
    epochs = {"float": fp.best_epoch, "qat": int(c.info["qat_epoch"])}
    return {
        "c": c,
        "fp": fp,
        "tr": tr,
        "epochs": epochs,
        "figures": figures,
        "reverb": rows.reverb,
        "early_views": rows.early_views,
        "norm": norm,
    }


def _online_uar(
    rows: Rows, held: np.ndarray, model: torch.nn.Module, base: SpeakerNorm
) -> tuple[float, float]:
    """(clean, noisy) UAR over the rows `held` when each (speaker, copy) group is standardised as the device does
    after ONLINE_CLIPS of its clips (from the training prior `base`; `ORDERS` seeded clip orders pooled)."""
    idx = np.flatnonzero(held)
    views = online(rows.X, rows.groups, idx, base, ONLINE_CLIPS, seed=0)
    y, copy_of = rows.y[idx], rows.copy_of[idx]
    preds = [predict(model, v).argmax(1) for v in views]
    clean, noisy = (
        pooled(y[m], [p[m] for p in preds], rows.classes).uar for m in (copy_of == 0, copy_of > 0)
    )
    return clean, noisy


def short_speakers(
    counts: dict[str, int], online: Sequence[int], who: str = "held-out speaker"
) -> str | None:
    """The speakers (name: clean clip count) with fewer clips than an online-N of `online` asks for, said
    once: their online-N is the prior updated with all of their clips, not with N (`online` takes what there
    is), so "after 20 of their clips" would describe clips that were never there. None when every one has
    enough (the corpora: EMODB's fewest is 35)."""
    short = {k: sorted(s for s, n in counts.items() if n < k) for k in online}
    short = {k: v for k, v in short.items() if v}
    if not short:
        return None
    return f"online-N of a {who} with fewer than N clips is after all of their clips, not N: " + "; ".join(
        f"online-{k}: {', '.join(f'{s} ({counts[s]} clips)' for s in v)}" for k, v in short.items()
    )


def short_validation(rows: Rows) -> str | None:
    """`short_speakers` of the inner folds' validation speakers (every speaker of `rows`) for stage 1's
    online-ONLINE_CLIPS figures."""
    clean = rows.spk[rows.copy_of == 0]
    counts = {str(s): int((clean == s).sum()) for s in rows.speakers()}
    return short_speakers(counts, (ONLINE_CLIPS,), "validation speaker")


def inner_folds(speakers: list[str]) -> list[list[str]]:
    """The speakers in consecutive pairs of sorted order (an odd one out joins the last pair): each pair
    validates a model trained on every other speaker."""
    s = sorted(speakers)
    folds = [s[i : i + 2] for i in range(0, len(s) - len(s) % 2, 2)]
    if len(s) % 2:
        folds[-1].append(s[-1])
    return folds


def variant_label(v: tuple[int, bool, bool]) -> str:
    k, speed, balanced = v
    return f"{k} noisy, speed {'on' if speed else 'off'}, {'balanced' if balanced else 'plain'} loss"


def choose_variant(
    rows: Rows,
    variants: list[tuple[int, bool, bool]],
    recipe: str,
    *,
    progress: bool = False,
    by: str = "transductive",
    seed: int = 0,
) -> dict:
    """Stage 0: every training variant on every inner fold (`inner_folds` of the rows' speakers), trained at
    `seed`; the best mean of the validation figures `CHOOSE_BY[by]` wins (exact ties: the earlier variant).
    Returns the choice, the folds and each variant's validation figures per fold (in `CHOOSE_BY["device"]`'s
    order)."""
    from tqdm.auto import tqdm

    folds = inner_folds(rows.speakers())
    keys = CHOOSE_BY["device"]
    scores: dict[tuple[int, bool, bool], list[tuple[float, ...]]] = {v: [] for v in variants}
    bar = tqdm(
        total=len(variants) * len(folds),
        desc="inner folds x variants",
        unit="model",
        disable=None if progress else True,
    )
    for fold in folds:
        for v in variants:
            f = stage1(rows, v, fold, recipe, log=False, seed=seed)["figures"]
            scores[v].append(tuple(f[k] for k in keys))
            bar.update()
    bar.close()
    used = [keys.index(k) for k in CHOOSE_BY[by]]
    mean = {v: float(np.mean([[sc[i] for i in used] for sc in s])) for v, s in scores.items()}
    chosen = max(variants, key=lambda v: (mean[v], -variants.index(v)))
    return {
        "chosen": chosen,
        "folds": folds,
        "scores": scores,
        "mean": mean,
        "variants": variants,
        "by": by,
        "online_short": short_validation(rows),
    }


def write_choice(data: str, choice: dict, tables: Path | None = None) -> None:
    """benchmarks/results/ship_ser_choice_<data>.{md,json} (or in `tables`): stage 0's table."""
    from _common import write_results

    folds, scores, mean, chosen = choice["folds"], choice["scores"], choice["mean"], choice["chosen"]
    by = choice["by"]
    lines = [
        f"# ship_ser: the training variant for {data}, chosen on inner folds",
        "",
        f"Each variant trained once per inner fold (every speaker but the pair), scored on the pair's clean and "
        f"noisy clips (validation UAR %, clean / noisy; transductive, then online-{ONLINE_CLIPS} after the "
        f"semicolon); the variant with the best mean of {', '.join(CHOOSE_BY[by])} over the {len(folds)} folds "
        f"ships (`--choose-by {by}`). Rule fixed before the run (docs/protocol.md).",
        "",
        "| variant | " + " | ".join("-".join(f) for f in folds) + " | score (mean) |",
        "|---|" + "---|" * (len(folds) + 1),
    ]
    for v in choice["variants"]:
        cells = " | ".join(
            f"{100 * a:.1f} / {100 * b:.1f}; {100 * c:.1f} / {100 * d:.1f}" for a, b, c, d in scores[v]
        )
        mark = "**" if v == chosen else ""
        lines.append(f"| {mark}{variant_label(v)}{mark} | {cells} | {mark}{100 * mean[v]:.1f}{mark} |")
    short = choice.get("online_short")
    lines += [*(["", f"{short}."] if short else []), "", f"Chosen: **{variant_label(chosen)}**."]
    payload = {
        "data": data,
        "folds": folds,
        "choose_by": by,
        **({"online_short": short} if short else {}),
        "variants": [
            {
                "noise_copies": v[0],
                "speed": v[1],
                "class_balanced": v[2],
                **{k: [sc[i] for sc in scores[v]] for i, k in enumerate(CHOOSE_BY["device"])},
                "mean": mean[v],
            }
            for v in choice["variants"]
        ],
        "chosen": {"noise_copies": chosen[0], "speed": chosen[1], "class_balanced": chosen[2]},
    }
    write_results(f"ship_ser_choice_{data}", payload, "\n".join(lines), folder=tables)
    print(f"inner folds chose: {variant_label(chosen)} (mean validation UAR {100 * mean[chosen]:.1f} %)")


def choose_reverb(
    rows: Rows,
    variant: tuple[int, bool, bool],
    recipe: str,
    *,
    by: str = "transductive",
    off: float | None = None,
    progress: bool = False,
    seed: int = 0,
) -> dict:
    """Stage 0c: `variant` with the reverberant copies on every inner fold (trained at `seed`), scored as stage 0 scores
    (`CHOOSE_BY[by]` on the clips as recorded and their noisy copies). The copies are kept when that mean is higher
    than without them (`off`: stage 0's mean for `variant`, which is exactly that score; None: computed here).
    Returns reverb (bool), the two means and the per-fold figures."""
    from tqdm.auto import tqdm

    folds = inner_folds(rows.speakers())
    used = CHOOSE_BY[by]
    settings = {"on": True} if off is not None else {"off": False, "on": True}
    bar = tqdm(
        total=len(folds) * len(settings),
        desc="inner folds, reverb",
        unit="model",
        disable=None if progress else True,
    )
    scores: dict[str, list[list[float]]] = {k: [] for k in settings}
    for fold in folds:
        for name, on in settings.items():
            f = stage1(replace(rows, reverb=on), variant, fold, recipe, log=False, seed=seed)["figures"]
            scores[name].append([float(f[k]) for k in used])
            bar.update()
    bar.close()
    mean = {k: float(np.mean(v)) for k, v in scores.items()}
    if off is not None:
        mean["off"] = float(off)
    # the online figures are in the score only when `by` uses them
    short = short_validation(rows) if "val_uar_online" in used else None
    return {"reverb": mean["on"] > mean["off"], "on": mean["on"], "off": mean["off"], "folds": folds,
            "scores": scores, "by": by, "online_short": short}  # fmt: skip


def write_reverb_choice(
    data: str, variant: tuple[int, bool, bool], choice: dict, tables: Path | None = None
) -> None:
    """benchmarks/results/ship_ser_reverb_<data>.{md,json} (or in `tables`): stage 0c's table."""
    from _common import write_results

    keys = CHOOSE_BY[choice["by"]]
    lines = [
        f"# ship_ser: reverberant training copies for {data}, chosen on inner folds",
        "",
        f"The variant stage 0 chose ({variant_label(variant)}) trained once more per inner fold with "
        f"{REVERB_COPIES} reverberant copies of every training clip, scored by the mean of {', '.join(keys)} "
        "(validation UAR on the clips as recorded and their noisy copies). The copies ship when that mean is higher "
        "than without them (stage 0's score of the variant). Rule fixed before the run (docs/protocol.md).",
        "",
        "| inner fold | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for fold, sc in zip(choice["folds"], choice["scores"]["on"], strict=True):
        lines.append(f"| {'-'.join(fold)} | " + " | ".join(f"{100 * v:.1f}" for v in sc) + " |")
    lines += [
        "",
        f"Mean with the copies {100 * choice['on']:.2f} %, without {100 * choice['off']:.2f} %: "
        f"**{'with' if choice['reverb'] else 'without'}** them.",
    ]
    short = choice.get("online_short")
    lines += ["", f"{short}."] if short else []
    payload = {
        "data": data,
        "variant": list(variant),
        **{k: choice[k] for k in ("reverb", "on", "off", "folds", "scores", "by")},
        **({"online_short": short} if short else {}),
    }
    write_results(f"ship_ser_reverb_{data}", payload, "\n".join(lines), folder=tables)
    print(f"inner folds chose: {'with' if choice['reverb'] else 'without'} reverberant copies "
          f"({100 * choice['on']:.1f} % against {100 * choice['off']:.1f} %)")  # fmt: skip


def ensemble_of(fitted: list[tuple[torch.nn.Module, BitPlan, dict]]) -> tuple[torch.nn.Module, BitPlan, dict]:
    """(model, plan, codes) of one member as they are, of several as one `FunctionalsEnsemble`."""
    if len(fitted) == 1:
        return fitted[0]
    return FunctionalsEnsemble.from_members(fitted)


def stage1_ensemble(runs: list[dict]) -> tuple[torch.nn.Module, BitPlan, dict]:
    """`ensemble_of` stage 1's compressed members (`stage1` results, seed 0 first)."""
    return ensemble_of([(r["c"].model, r["c"].plan, r["c"].codes) for r in runs])


def refit_members(
    rows: Rows,
    fit: np.ndarray | list[np.ndarray],
    runs: list[dict],
    balanced: bool | list[bool],
    *,
    seed: int = 0,
) -> list[tuple[torch.nn.Module, BitPlan, dict]]:
    """Each stage-1 member (`runs`, member k at seed `seed` + k) refit on the rows `fit` at its plan and epoch counts:
    [(model, plan, codes)] for `ensemble_of`. A member whose stage 1 trained with the reverberant copies
    (`--reverb member`'s second) is refit with those of the speakers in `fit` too, and one trained without them,
    without them; likewise with the early views of its stage 1 (`--early-views member`'s second). Every member
    standardises its input as member 0 does (`FunctionalsEnsemble` standardises once). `fit` and `balanced` may
    be given per member (members of different training variants: ship_ser_nested.py --variant-members 2)."""
    fits = fit if isinstance(fit, list) else [fit] * len(runs)
    losses = balanced if isinstance(balanced, list) else [balanced] * len(runs)
    fitted = []
    norm = None
    for k, r in enumerate(runs):
        fit, balanced = fits[k], losses[k]
        mine, member = member_rows(rows, fit, r)
        Z, y = member.training(mine)
        norm = (Z.mean(0), Z.std(0)) if norm is None else norm
        plan = r["c"].plan
        model, codes = refit(
            rows.Z.shape[1],
            len(rows.classes),
            Z,
            y,
            plan,
            r["epochs"],
            seed=seed + k,
            balanced=balanced,
            norm=norm,
        )
        fitted.append((model, plan, codes))
    return fitted


def members_of(
    args: argparse.Namespace,
    rows: Rows,
    variant: tuple[int, bool, bool],
    val_spk: list[str],
    best: dict,
    *,
    paired: bool = False,
    data: str | None = None,
    tables: Path | None = None,
) -> tuple[list[dict], dict | None]:
    """Stage 1 of every member (`best`: seed 0's, already run) and the inner folds' member choice (None when none
    was asked): `--reverb member`'s two members, `--members auto`'s choice on the inner folds (with `--choose
    pairs`; not for a `paired` fold, which has no inner folds), or `--members N` seeds. The choice's table is
    written as `data`'s (default `args.data`) to `tables` (`write_members`)."""
    if args.reverb == "member":
        return [best, reverberant_member(rows, variant, val_spk, args.recipe, best)], None
    if args.early_views == "member":
        return [best, early_member(rows, variant, val_spk, args.recipe, best)], None
    members, choice = (1 if args.members == "auto" else int(args.members)), None
    if args.members == "auto" and args.choose == "pairs" and not paired:
        choice = choose_members(rows, variant, args.recipe, progress=True)
        write_members(args.data if data is None else data, variant, choice, tables, rows=rows)
        members = choice["members"]
    return [best] + [stage1(rows, variant, val_spk, args.recipe, seed=k) for k in range(1, members)], choice


def ensemble_label(members: int, reverb_member: bool, early_member: bool = False) -> str:
    """What the shipped model is, after its name: '' for one MLP, ' x N seeds' or the two `--reverb member` (or
    `--early-views member`) ones."""
    if reverb_member:
        return " x 2 members (close-talk + reverberant)"
    if early_member:
        return " x 2 members (plain + early views)"
    return f" x {members} seeds" if members > 1 else ""


def member_rows(rows: Rows, fit: np.ndarray, run: dict) -> tuple[np.ndarray, Rows]:
    """The rows a member (`run`, its stage 1) trains on out of the rows `fit`, and the `Rows` whose `training`
    adds its early views: `--reverb member`'s second member also has the reverberant copies of `fit`'s speakers,
    `--early-views member`'s second the early views; any other member the rows `fit` as they are."""
    speakers = np.isin(rows.spk, np.unique(rows.spk[fit]))
    with_rooms = run.get("reverb", rows.reverb)
    mine = (fit & ~rows.reverb_rows) | (rows.reverb_rows & speakers & with_rooms)
    return mine, replace(rows, early_views=run.get("early_views", rows.early_views))


def trained_rows(rows: Rows, fit: np.ndarray) -> int:
    """How many rows `rows.training(fit)` trains on, without making them: the rows `fit`, then one more per clean
    clip among them and early view."""
    return int(fit.sum()) + len(rows.early_views) * int((fit & (rows.copy_of == 0)).sum())


def part_sizes(rows: Rows, members: list[dict] | None = None, **parts: np.ndarray) -> dict[str, dict]:
    """The split record's `sizes`, each part's clips (its recordings: clean rows), and `rows`, the rows it
    trained or was scored on, its noisy, speed, reverberant and length copies counted, and for a training part
    (every part but `val`) the early views of its clean clips (`Rows.training`: one more row per clip and view)
    (docs/bundle.md). With `members` (each member's stage 1) that train on rows of their own (`--reverb member`,
    `--early-views member`), a training part's `rows` is a list, one count per member: it gave member 1's alone.
    `sizes` counted the rows: 57 for a validation speaker of 19 clips (each clean and 2 noisy) (a review)."""
    clean = rows.copy_of == 0
    runs = members or [{}]
    own = (
        len({(r.get("reverb", rows.reverb), tuple(r.get("early_views", rows.early_views))) for r in runs}) > 1
    )

    def counted(part: str, mask: np.ndarray) -> int | list[int]:
        if part == "val":  # scored as it is, every member on the same rows
            return int(mask.sum())
        each = [trained_rows(member, mine) for mine, member in (member_rows(rows, mask, r) for r in runs)]
        return each if own else each[0]

    return {
        "sizes": {part: int((mask & clean).sum()) for part, mask in parts.items()},
        "rows": {part: counted(part, mask) for part, mask in parts.items()},
    }


def epochs_words(epochs: dict[str, int] | list[dict[str, int]]) -> str:
    """The refit's epochs (stage 1's `{"float": F, "qat": Q}`, or one per member) as words: 'float epoch 44, QAT
    epoch 19', a member's followed by '(member k)' (the last line printed the dicts: "{'float': 44, 'qat': 19}")."""

    def one(e: dict[str, int]) -> str:
        return f"float epoch {e['float']}, QAT epoch {e['qat']}"

    if isinstance(epochs, dict):
        return one(epochs)
    return " and ".join(f"{one(e)} (member {k})" for k, e in enumerate(epochs, 1))


REVERB_MEMBER_SEED = 1
"""`--reverb member`'s second member trains at seed 1 (member k at seed k, as a seed ensemble's)."""


def reverberant_member(
    rows: Rows,
    variant: tuple[int, bool, bool],
    val_spk: list[str],
    recipe: str,
    first: dict,
    *,
    seed: int = 0,
) -> dict:
    """Stage 1 of `--reverb member`'s second member: `variant` with the reverberant copies of every training clip
    (`rows` must hold them: `training_matrix(..., reverb=True)`), its own epochs and bit plan chosen on `val_spk`,
    its input standardised as the first member's (`first`, its stage 1)."""
    if not rows.reverb_rows.any():
        raise ValueError("the reverberant member needs the reverberant copies: training_matrix(reverb=True)")
    return stage1(
        replace(rows, reverb=True),
        variant,
        val_spk,
        recipe,
        log=False,
        seed=seed + REVERB_MEMBER_SEED,
        norm=first["norm"],
    )


EARLY_MEMBER_SEED = 1
"""`--early-views member`'s second member trains at seed 1 (member k at seed k, as a seed ensemble's)."""


def early_member(
    rows: Rows,
    variant: tuple[int, bool, bool],
    val_spk: list[str],
    recipe: str,
    first: dict,
    *,
    seed: int = 0,
) -> dict:
    """Stage 1 of `--early-views member`'s second member: `variant` with the early views (EARLY_VIEWS) of the
    clean training clips, its own epochs and bit plan chosen on `val_spk`, its input standardised as the first
    member's (`first`, its stage 1, trained without them)."""
    return stage1(
        replace(rows, early_views=EARLY_VIEWS),
        variant,
        val_spk,
        recipe,
        log=False,
        seed=seed + EARLY_MEMBER_SEED,
        norm=first["norm"],
    )


def within_budget(runs: list[dict]) -> tuple[list[dict], float | None]:
    """`runs` (stage 1 of each member) when their ensemble stores at most BIT_BUDGET average bits, else seed 0's
    alone; and the ensemble's average bits when it was over the budget (else None)."""
    if len(runs) == 1:
        return runs, None
    bits = stage1_ensemble(runs)[1].average_bits
    return (runs, None) if bits <= BIT_BUDGET else (runs[:1], bits)


def _clean_noisy_uar(rows: Rows, held: np.ndarray, logits: np.ndarray) -> tuple[float, float]:
    """(clean, noisy) UAR of `logits` over the rows `held` (the validation speakers' clean and noisy copies)."""
    y, copy_of = rows.y[held], rows.copy_of[held]
    return tuple(
        index_metrics(y[m], logits[m].argmax(1), rows.classes).uar for m in (copy_of == 0, copy_of > 0)
    )  # type: ignore[return-value]


def ensemble_figures(rows: Rows, runs: list[dict], val_spk: list[str]) -> dict:
    """Stage 1's validation figures of the members of `runs` together (their logits averaged); {} for one."""
    if len(runs) == 1:
        return {}
    held = np.isin(rows.spk, val_spk) & ~rows.speed_rows
    q = predict(stage1_ensemble(runs)[0], rows.Z[held])
    f = np.mean([predict(r["fp"].model, rows.Z[held]) for r in runs], axis=0)  # float members: mean logits
    clean, noisy = _clean_noisy_uar(rows, held, q)
    return {"val_uar": clean, "val_uar_noisy": noisy, "val_float_uar": _clean_noisy_uar(rows, held, f)[0]}


def choose_members(
    rows: Rows, variant: tuple[int, bool, bool], recipe: str, *, progress: bool = False, seed: int = 0
) -> dict:
    """Stage 0b: `variant` trained at seeds `seed`..`seed`+MEMBERS-1 on every inner fold. The seed ensemble (logits
    averaged) ships when its mean clean + noisy validation UAR over the folds beats both the first member's model
    (seed `seed`; 0 as shipped, the result's "seed0") and the mean of the single members by ENSEMBLE_GAIN. Returns
    members (MEMBERS or 1), the mean figures and the per-fold table."""
    from tqdm.auto import tqdm

    folds = inner_folds(rows.speakers())
    table = []
    bar = tqdm(
        total=len(folds) * MEMBERS,
        desc="inner folds x seeds",
        unit="model",
        disable=None if progress else True,
    )
    for fold in folds:
        held = np.isin(rows.spk, fold) & ~rows.speed_rows
        runs = []
        for k in range(MEMBERS):
            runs.append(stage1(rows, variant, fold, recipe, log=False, seed=seed + k))
            bar.update()
        ensemble = stage1_ensemble(runs)[0]
        table.append(
            {
                "fold": fold,
                "single": [_clean_noisy_uar(rows, held, predict(r["c"].model, rows.Z[held])) for r in runs],
                "ensemble": _clean_noisy_uar(rows, held, predict(ensemble, rows.Z[held])),
            }
        )
    bar.close()
    single = float(np.mean([[sum(p) / 2 for p in t["single"]] for t in table]))
    seed0 = float(np.mean([sum(t["single"][0]) / 2 for t in table]))
    ensemble = float(np.mean([sum(t["ensemble"]) / 2 for t in table]))
    adopt = ensemble - seed0 >= ENSEMBLE_GAIN and ensemble - single >= ENSEMBLE_GAIN
    return {
        "members": MEMBERS if adopt else 1,
        "seed0": seed0,
        "single": single,
        "ensemble": ensemble,
        "folds": table,
    }


def members_table(data: str, rows: Rows) -> str:
    """The name of the member choice's table for `data` trained on `rows`: ship_ser_members_<data>, with _early,
    _reverb and _lengths when the rows train with early views, the reverberant copies or the length views (each
    changes the members' training, so each has its own table)."""
    return (
        f"ship_ser_members_{data}"
        + ("_early" if rows.early_views else "")
        + ("_reverb" if rows.reverb else "")
        + ("_lengths" if rows.lengths else "")
    )


def write_members(
    data: str,
    variant: tuple[int, bool, bool],
    choice: dict,
    tables: Path | None = None,
    *,
    rows: Rows,
) -> None:
    """benchmarks/results/<members_table>.{md,json} (or in `tables`): stage 0b's table."""
    from _common import write_results

    extra = [
        name
        for name, on in (
            ("early views", rows.early_views),
            (f"{REVERB_COPIES} reverberant copies", rows.reverb),
            (f"{LENGTH_COPIES} length views", rows.lengths),
        )
        if on
    ]
    lines = [
        f"# ship_ser: one MLP or a {MEMBERS}-seed ensemble for {data}, chosen on inner folds",
        "",
        f"The chosen variant ({variant_label(variant)}) trained at seeds 0..{MEMBERS - 1} on each inner fold (every "
        "speaker but the pair; stage 1 as shipped, 2 bits), scored on the pair's clean and noisy clips (validation "
        f"UAR %, clean / noisy). The ensemble (its members' logits averaged) ships when its mean over the folds "
        f"beats seed 0's model and the mean single member by {100 * ENSEMBLE_GAIN:g} point each. Rule fixed before "
        "the first measurement (docs/protocol.md)."
        + (f" The members train with {', '.join(extra)} of every training clip too." if extra else ""),
        "",
        "| inner fold | " + " | ".join(f"seed {k}" for k in range(MEMBERS)) + " | ensemble |",
        "|---|" + "---|" * (MEMBERS + 1),
    ]
    for t in choice["folds"]:
        cells = [f"{100 * a:.1f} / {100 * b:.1f}" for a, b in [*t["single"], t["ensemble"]]]
        lines.append(f"| {'-'.join(t['fold'])} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Mean of (clean + noisy) / 2: seed 0 {100 * choice['seed0']:.2f}, single members "
        f"{100 * choice['single']:.2f}, ensemble **{100 * choice['ensemble']:.2f}**: ships "
        f"**{choice['members']} member(s)**.",
    ]
    payload = {"data": data, "variant": list(variant), "members_tried": MEMBERS, **choice}
    write_results(members_table(data, rows), payload, "\n".join(lines), folder=tables)
    print(
        f"inner folds: ensemble {100 * choice['ensemble']:.1f} % against seed 0 {100 * choice['seed0']:.1f} %: "
        f"{choice['members']} member(s)"
    )


def nested_name(
    data: str, choose_by: str, early: bool | str, reverb: str = "off", lengths: bool = False
) -> str:
    """The name benchmarks/ship_ser_nested.py gives the nested run of this procedure (its results and records).
    `early`: `--early-views` (off, on, member; a bool is off / on); `lengths`: `--length-views on`."""
    mode = ("on" if early else "off") if isinstance(early, bool) else early
    return (
        data
        + ("" if choose_by == "transductive" else f"_{choose_by}")
        + {"off": "", "on": "_early", "member": "_early_member"}[mode]
        + ("" if reverb == "off" else f"_reverb_{reverb}")
        + ("_lengths" if lengths else "")
    )


def nested_figures(name: str, tables: Path | None = None) -> dict | None:
    """What a speaker this procedure never heard can expect: the complete nested run `name`'s refit figures
    (UAR, WAR, mean and std over outer folds; transductive and online-N), or None when there is none. The
    run's table is read from benchmarks/results/, or from `tables` (where ship_ser_nested.py --tables wrote
    it). Where the whole procedure was also nested at other training seeds (`seeds_figures`), those figures
    are `over_seeds`."""
    path = (RESULTS if tables is None else Path(tables)) / f"ship_ser_nested_{name}.json"
    if not path.is_file():
        return None
    run = json.loads(path.read_text())
    if not run.get("complete"):
        return None
    table = run["table"]["refit"]
    out = {
        "protocol": f"{run['protocol']}, the whole shipping procedure nested in each fold",
        "n_folds": run["n_folds"],
        **{norm: _figures(table[norm]) for norm in table},
        "source": table_ref(tables, f"ship_ser_nested_{name}.md"),
        "made_by": run["command"],
    }
    # held-out speakers of fewer clips than an online-N names: `edge-ser info` prints this beside the figure
    folds = run.get("folds")
    counts = {str(f["test"]): int(f["n"]) for f in folds if "n" in f} if isinstance(folds, list) else {}
    ns = [int(k.removeprefix("online-")) for k in table if k.startswith("online-")]
    if short := short_speakers(counts, ns):
        out["online_short"] = short
    over_seeds = seeds_figures(name, tables)
    if over_seeds is not None:
        out["over_seeds"] = over_seeds
    return out


def nested_data_problem(
    name: str, tables: Path | None, classes: list[str], clips: dict[str, int]
) -> str | None:
    """Why the nested run `name` in `tables` (`nested_figures`' file) is not of this bundle's data, or None when
    its classes (in order) and its outer folds' held-out speakers with their clip counts are this data's
    (`clips`: clean clips per speaker). The tables are found by the data set's short name alone, which a folder
    and a labels CSV in it share (lab/ and lab/labels.csv), as do two folders called data: a review found a
    nested run of one put into the bundle of another. Checked on what every nested table records, so the
    repository's tables need no rewrite."""
    path = (RESULTS if tables is None else Path(tables)) / f"ship_ser_nested_{name}.json"
    try:
        run = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # nested_figures says there is none
    if "classes" in run and [str(c) for c in run["classes"]] != [str(c) for c in classes]:
        return f"{path} is of classes {', '.join(map(str, run['classes']))}, this data's are {', '.join(classes)}"
    folds = run.get("folds")
    if isinstance(folds, list) and folds and all(isinstance(f, dict) and "test" in f for f in folds):
        theirs = {str(f["test"]): f.get("n") for f in folds}
        if theirs != {str(s): int(n) for s, n in clips.items()}:
            return (
                f"{path} holds out {len(theirs)} speakers of {sum(int(n or 0) for n in theirs.values())} clips, "
                f"this data has {len(clips)} speakers of {sum(clips.values())} clips (not the same recordings)"
            )
    return None


def _figures(cell: dict) -> dict:
    """A table cell's UAR and WAR, mean and std over folds, rounded for a manifest."""
    return {k: round(float(v), 6) for k, v in cell.items() if k in ("uar", "uar_std", "war", "war_std")}


def seeds_figures(name: str, tables: Path | None = None) -> dict | None:
    """The whole procedure `name` nested at several training seeds, stage 0 rerun at each (`ship_ser_nested.py
    --seed 0,1,2` without --stage0-from): the seeds pooled (each fold's confusions summed over the seeds) and
    each seed's UAR, or None when no such complete run exists. Read from `tables`, or for the repository's data
    sets from SEED_TABLES; a run that reused one seed's stage 0 does not count (it repeats only the training
    after the choice; docs/protocol.md, "The nested procedure over training seeds")."""
    folder = SEED_TABLES if tables is None else Path(tables)
    runs = []
    for path in sorted(folder.glob(f"ship_ser_nested_{name}_seeds*.json")):
        run = json.loads(path.read_text())
        if run.get("complete") and run.get("name") == name and "--stage0-from" not in run.get("command", ""):
            runs.append((len(run["seeds"]), path, run))
    if not runs:
        return None
    _, path, run = max(runs, key=lambda r: r[0])  # the most seeds
    table = run["table"]["refit"]
    return {
        "seeds": run["seeds"],
        **{norm: _figures(table[norm]["pooled"]) for norm in table},
        "per_seed_uar": {s: round(float(v["uar"]), 6) for s, v in table["transductive"]["seeds"].items()},
        "source": table_ref(
            tables, path.with_suffix(".md").name if tables else f"{folder.name}/{path.stem}.md"
        ),
        "made_by": run["command"],
    }


def paired_fold_actors(fold: int) -> tuple[list[str], list[str]]:
    """(validation actors, test actors) of the paired AV set's actor fold `fold` (benchmarks/av_fusion.py:
    `group_kfold` over RAVDESS speech by actor, k = 6, seed 0)."""
    from converters.data import group_kfold, load_dataset

    speech = load_dataset("ravdess")
    split = group_kfold([r.speaker for r in speech], k=6, seed=0)[fold]
    return (
        sorted({str(speech[i].speaker) for i in split.val}),
        sorted({str(speech[i].speaker) for i in split.test}),
    )


def training_matrix(
    data: str, spec: FunctionalsSpec = FEATURES["extended"], *, reverb: bool = False, lengths: bool = False
):
    """The recipe's rows (functionals of `spec`): (functionals input, X, Z, y, speaker, copy index, group) over
    the clean clips (copy 0), `NOISY_COPIES` noisy copies of each (1..NOISY_COPIES) and its speed-perturbed
    copies (after those, one per `SPEED_FACTORS`, up to SPEED_LAST), then with `reverb` its `REVERB_COPIES`
    reverberant copies (up to REVERB_LAST), then with `lengths` its `LENGTH_COPIES` length views (after
    REVERB_LAST, whether or not the reverberant copies are there); Z standardises each (speaker, copy) by its own
    statistics, as a device session adapts to its user and microphone (labels unused)."""
    d = functionals_input(data, spec=spec)
    _, records = load_records(data, None)
    assert len(records) == len(d.y), "functionals_input and load_records list the clips alike"
    copies = list(training_copies(records, spec, cache=FeatureCache(), progress=True))
    index = list(range(1 + len(copies)))
    if reverb:
        rooms = reverb_functionals_matrix(
            records, spec, copies=REVERB_COPIES, cache=FeatureCache(), progress=True
        )
        copies += list(rooms)
        index += range(SPEED_LAST + 1, REVERB_LAST + 1)
    if lengths:
        cuts = cropped_functionals_matrix(
            records, spec, copies=LENGTH_COPIES, cache=FeatureCache(), progress=True
        )
        copies += list(cuts)
        index += range(REVERB_LAST + 1, REVERB_LAST + 1 + LENGTH_COPIES)
    X = np.concatenate([d.X, *copies]).astype(np.float32)
    views = 1 + len(copies)
    y = np.tile(d.y, views)
    spk = np.tile(d.speakers, views)
    copy_of = np.repeat(np.asarray(index), len(d.y))
    groups = np.char.add(np.char.add(spk.astype(str), "#"), copy_of.astype(str))
    return d, X, standardise(X, groups, view_parts(copy_of)), y, spk, copy_of, groups


def reverb_views(copy_of: np.ndarray) -> np.ndarray:
    """The rows that are reverberant copies: their copy index comes after the noisy and the speed copies."""
    return (copy_of > SPEED_LAST) & (copy_of <= REVERB_LAST)


def length_views(copy_of: np.ndarray) -> np.ndarray:
    """The rows that are length views: their copy index comes after REVERB_LAST."""
    return copy_of > REVERB_LAST


def view_parts(copy_of: np.ndarray) -> np.ndarray:
    """The part `standardise` keeps each row in: 0 recorded, noisy and speed copies; 1 reverberant; 2 length views."""
    return reverb_views(copy_of) + 2 * length_views(copy_of)


def standardise(X: np.ndarray, groups: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """Each group standardised by its own statistics (`transductive`), each part of `parts` (`view_parts`: the
    reverberant copies, the length views) apart from the others: `transductive` starts from the pooled statistics
    of the rows it is given, so standardising them together would move every other row by ~1e-5, which is enough
    to change a trained model (measured: a stage-0 variant's validation UAR by up to 4 points). Apart, the rows
    of the other parts are exactly what they were without them."""
    Z = np.empty(X.shape, np.float32)
    parts = np.asarray(parts)
    for part in np.unique(parts):
        Z[parts == part] = transductive(X[parts == part], groups[parts == part])
    return Z


def refit(
    dim: int,
    n_classes: int,
    Z: np.ndarray,
    y: np.ndarray,
    plan,
    epochs: dict[str, int],
    *,
    seed: int = 0,
    balanced: bool = False,
    prepare: Callable[[torch.nn.Module, str], None] | None = None,
    norm: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[torch.nn.Module, dict]:
    """functionals_mlp trained on every row of Z for the float and QAT epoch counts stage 1 chose, at its
    bit plan: no checkpoint is selected on the data it trains on; `balanced`: the class-balanced loss.
    `prepare(model, stage)` (experiments, benchmarks/tflite_int8_flips.py) may add hooks before the "float"
    and the "qat" stage. `norm`: the input standardisation (mean, std) when not Z's own (an ensemble's members
    share member 0's)."""
    seed_everything(seed)
    net = build("functionals_mlp", num_classes=n_classes, in_features=dim)
    norm = (Z.mean(0), Z.std(0)) if norm is None else norm
    net.set_normalization(torch.as_tensor(norm[0]), torch.as_tensor(norm[1]))
    if prepare is not None:
        prepare(net, "float")
    fixed = TrainConfig(seed=seed, epochs=max(1, epochs["float"]), keep_last=True, class_balanced=balanced)
    fp = train_classifier(net, Z, y, Z, y, fixed, progress=False)
    if prepare is not None:
        prepare(fp.model, "qat")  # qat() deep-copies the model, hooks included
    qcfg = replace(
        QAT_DEFAULTS, seed=seed, epochs=max(1, epochs["qat"]), keep_last=True, class_balanced=balanced
    )
    frozen, codes, _ = qat(fp.model, plan, Z, y, Z, y, qcfg)
    return frozen, codes


if __name__ == "__main__":
    run_main(main)
