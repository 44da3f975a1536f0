"""The host job as functions: records -> cached features -> split -> train -> evaluate -> summary.

The CLI's `train` and `demo` commands and the tests call these, so there is one path from data to model.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from converters.data import (
    LOADERS,
    Record,
    Split,
    SyntheticSpec,
    class_order,
    group_kfold,
    load_dataset,
    load_folder,
    load_synthetic,
    stratified_split,
)
from converters.data import write as write_synthetic
from converters.data.loaders import (
    LABELS_CSV_COLUMNS,
    is_labels_csv,
    labels_csv_name,
    load_labels_csv,
    sound_records,
)
from converters.data.scan import Loaded, check_decodable, warn_lost_classes
from converters.data.splits import check_named_speakers
from converters.data.synthetic import GENERATOR_VERSION, check_target
from converters.data.synthetic import SPEC_FILE as SYNTHETIC_SPEC_FILE
from converters.data.synthetic import spec_record as synthetic_record  # a bundle's accuracy.synthetic
from converters.data.synthetic import written_spec as folder_synthetic  # the set in a folder
from converters.featurize import ExtractStats, FeatureCache, default_cache_dir, extract
from converters.recipe import DEFAULT_SPEC
from edge_ser.errors import ConfigError, DatasetError
from edge_ser.features import FeatureSpec
from edge_ser.fileio import atomic_write


@dataclass
class Prepared:
    """A data set ready to train on: records, feature matrix, integer labels and the class order."""

    name: str
    records: list[Record]
    X: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    stats: ExtractStats
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    """(path, why) of each file skipped because its audio could not be decoded."""
    listed: list[Record] | None = None
    """Every file the loader listed, when extraction skipped some (None: `records` are all of them): splits are
    drawn over these, as `edge-ser eval --split` draws them, so both hold out the same files."""
    kept: np.ndarray | None = None
    """Indices into `listed` of `records`."""
    synthetic: SyntheticSpec | None = None
    """The spec of the synthetic set these are (None for any other data): what a bundle trained on them records
    as `accuracy.synthetic` (`synthetic_record`), so `edge-ser eval --data synthetic` rebuilds the same set."""

    def parts(self, split: Split) -> tuple[np.ndarray, ...]:
        """(X_train, y_train, X_val, y_val, X_test, y_test) of a split."""
        return tuple(a[idx] for idx in (split.train, split.val, split.test) for a in (self.X, self.y))


def load_records(
    data: str,
    root: str | os.PathLike | None = None,
    *,
    synthetic: SyntheticSpec | None = None,
    cache_dir: Path | None = None,
    strict: bool = False,
) -> tuple[str, list[Record]]:
    """Resolve `data` (a data set name, 'synthetic', a folder-per-class path, or a labels CSV: a file whose
    name ends in .csv, `converters.data.loaders.load_labels_csv`) to its records.

    Files whose audio does not open are skipped with an InputWarning naming each (the list's `undecodable`,
    see `converters.data.scan.Loaded`), or with `strict` the first raises DatasetError. A corpus's video clips
    that repeat a WAV's recording, or have no sound, are left out (`converters.data.loaders.sound_records`).
    """
    if data == "synthetic" and root is not None and (Path(root) / SYNTHETIC_SPEC_FILE).is_file():
        return "synthetic", check_decodable("synthetic", load_synthetic(root), strict=strict)
    if data == "synthetic":
        spec = synthetic or SyntheticSpec()
        if root:  # `--data synthetic --root DIR` wrote the set into DIR, among a folder of recordings too
            check_target(root, "--root ")
        folder = Path(root) if root else synthetic_folder(spec, cache_dir or default_cache_dir())
        return "synthetic", Loaded(write_synthetic(spec, folder))
    if data in LOADERS:
        return data, sound_records(data, load_dataset(data, root, strict=strict))
    path = Path(data)
    if not path.exists() and data.lower() in LOADERS:  # "EMODB": the names are lower case
        return data.lower(), sound_records(data.lower(), load_dataset(data.lower(), root, strict=strict))
    if path.is_dir() and (path / SYNTHETIC_SPEC_FILE).is_file():
        return "synthetic", check_decodable("synthetic", load_synthetic(path), strict=strict)
    if path.is_dir():  # resolved: `--data .` (or `..`) is the folder's own name, not "" (a bundle refused it)
        name = path.resolve().name or "data"
        return name, check_decodable(name, load_folder(path), strict=strict)
    if is_labels_csv(path):
        name = labels_csv_name(path)
        return name, check_decodable(name, load_labels_csv(path), strict=strict)
    if data == "synthetic-av":
        raise ConfigError(
            "data set 'synthetic-av' is made in memory, with no files to list or read: train on it with "
            "`edge-ser train --model av_cnn --data synthetic-av`"
        )
    raise _unknown_data(data)


def check_data(data: str) -> None:
    """ConfigError unless `data` is what `load_records` resolves (a data set name, 'synthetic', a folder or a
    labels CSV), said before any work: `edge-ser demo --data nosuch` printed its title naming 'nosuch', then
    refused it."""
    if _resolves(data):
        return
    raise _unknown_data(data)


def _resolves(data: str) -> bool:
    """Whether `load_records` takes `data` as it is: 'synthetic', a data set name, a folder or a labels CSV."""
    return data == "synthetic" or data.lower() in LOADERS or Path(data).is_dir() or is_labels_csv(data)


def whitespace_error(data: str) -> str | None:
    """Why `data` is refused when it is nothing as given but is something without the whitespace around it
    (`--data "x.csv "`, a shell copy-paste's space), else None. Said, not dropped: whitespace is part of a file
    name, and the commands that read --data themselves (zoo, sweep, ship_ser) would not see a cleaned one."""
    bare = data.strip()
    if bare == data or not bare or not _resolves(bare):
        return None
    what = "a labels CSV" if is_labels_csv(bare) else "a folder" if Path(bare).is_dir() else "a data set name"
    return (
        f"data set {data!r} has whitespace around it, and is no file, folder or data set name as given; "
        f"{bare!r} is {what}: give it without the whitespace"
    )


def _unknown_data(data: str) -> ConfigError:
    import difflib

    from converters.data.loaders import DATASET_FOLDERS

    spaced = whitespace_error(data)
    if spaced:
        return ConfigError(spaced)
    # the names a bare --data takes: the corpora with a usual folder, and the built-in synthetic set ("folder",
    # "labels_csv" and "video_folder" are the loaders of a path given as --data, not names)
    names = sorted({*DATASET_FOLDERS, "synthetic"} & set(LOADERS))
    near = difflib.get_close_matches(data.lower(), names, n=1)
    file = (  # a single clip, or a list not named .csv, given as the data set (a review)
        "; it is a file: give the folder that holds one folder per class (<class>/<speaker>_<name>.wav) or a "
        f"labels CSV whose name ends in .csv ({LABELS_CSV_COLUMNS}, docs/data.md)"
        if Path(data).is_file()
        else ""
    )
    return ConfigError(
        f"data set {data!r} is neither a data set name ({', '.join(names)}) nor a folder or labels CSV of your own "
        "recordings" + (f"; did you mean {near[0]}?" if near else "") + file
    )


def synthetic_spec(seed: int = 0, n_per_class: int | None = None) -> SyntheticSpec:
    """The synthetic set `edge-ser train / laq / demo --data synthetic --seed S [--n-per-class N]` train on: the
    default spec with the run's seed (it seeds the clips too) and, when given, N clips per class."""
    return SyntheticSpec(seed=seed, **({"n_per_class": n_per_class} if n_per_class else {}))


def synthetic_folder(spec: SyntheticSpec, cache_dir: str | os.PathLike) -> Path:
    """The cache folder of one synthetic set: keyed by every field of the spec and the generator version. Keyed
    by the seed alone, two specs of one seed (other clips per class) shared a folder and overwrote each other."""
    key = json.dumps(synthetic_record(spec), sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return Path(cache_dir) / "synthetic" / f"seed{spec.seed}-n{spec.n_per_class}-{digest}"


def recorded_synthetic(accuracy: Mapping) -> SyntheticSpec | None:
    """The synthetic set a bundle was trained on, from its manifest's `accuracy` block (`synthetic_record`), or
    None when the block records none. ConfigError when the record is unreadable or from another generator
    version (the same spec then makes other clips, so the set cannot be rebuilt)."""
    made = accuracy.get("synthetic")
    if made is None:
        return None
    try:
        version, spec = made["generator_version"], SyntheticSpec.from_dict(made["spec"])
    except (KeyError, TypeError, ValueError, ConfigError) as e:
        raise ConfigError(f"the bundle's accuracy.synthetic is not a synthetic set's record: {e}") from None
    if version != GENERATOR_VERSION:
        raise ConfigError(
            f"the bundle was trained on synthetic clips of generator version {version}; this edge-ser makes "
            f"version {GENERATOR_VERSION}, whose clips differ, so that set cannot be rebuilt"
        )
    return spec


def eval_synthetic(accuracy: Mapping, cache_dir: str | os.PathLike | None = None) -> SyntheticSpec:
    """The synthetic set `edge-ser eval --data synthetic` rebuilds for a bundle with this `accuracy` block: the
    one it was trained on (`recorded_synthetic`), or the default set for a bundle trained on another data set
    (it saw none of them). ConfigError when the bundle was trained on a synthetic set its manifest does not
    record: rebuilt with the defaults, its "held-out" part held clips the bundle had trained on."""
    spec = recorded_synthetic(accuracy)
    if spec is not None:
        return spec
    if accuracy.get("dataset") != "synthetic":
        return SyntheticSpec()
    made = Path(cache_dir or default_cache_dir()) / "synthetic"
    raise ConfigError(
        "the bundle was trained on a synthetic set its manifest does not record (accuracy.synthetic: clips per "
        "class, seed, ...), so eval cannot rebuild that set: give --root the folder it was trained on (the sets "
        f"made so far are under {made})"
    )


def synthetic_difference(ours: SyntheticSpec, theirs: SyntheticSpec) -> str:
    """The fields in which two synthetic specs differ, as "n_per_class 30, not 10; seed 1, not 0" ("" if none)."""
    a, b = ours.to_dict(), theirs.to_dict()
    return "; ".join(f"{k} {a[k]}, not {b[k]}" for k in a if a[k] != b[k])


def files_fingerprint(records: list[Record]) -> str:
    """A short hash of a data set's files as listed (path, label, speaker, size, modification time): part of a
    zoo or sweep point's id when the data is a folder, so a folder whose files were renamed, relabelled or
    replaced computes again instead of replaying the results of the files that were there (keyed by the
    folder's name alone, a fixed speaker naming replayed its 0 % LOSO rows)."""
    h = hashlib.sha256()
    for r in sorted(records, key=lambda r: str(r.source)):
        stat = r.source.stat()
        h.update(f"{r.source}\0{r.label}\0{r.speaker}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()[:12]


def prepare(
    data: str,
    root: str | os.PathLike | None = None,
    *,
    spec: FeatureSpec = DEFAULT_SPEC,
    cache: FeatureCache | None = None,
    synthetic: SyntheticSpec | None = None,
    progress: bool = True,
    strict: bool = False,
    check: Callable[[str, Sequence[Record]], None] | None = None,
) -> Prepared:
    """Load records and their feature vectors (through the cache when given). `check(name, records)` runs on
    the listed records before any feature is made (`check_speaker_folds`: a split they cannot give).

    A file that cannot be decoded (at loading: its header; at extraction: its samples), or that extraction
    refuses (digital silence, shorter than one analysis frame: `converters.featurize.clip_refusal`), is skipped
    with an InputWarning naming it and counted in `Prepared.skipped`; `strict` raises on the first instead.
    """
    name, records = load_records(
        data, root, synthetic=synthetic, cache_dir=cache.root if cache else None, strict=strict
    )
    if check is not None:
        check(name, records)
    undecodable = list(getattr(records, "undecodable", ()))
    listed, kept = None, None
    X, stats = extract(records, spec, cache=cache, progress=progress, desc=f"features {name}", strict=strict)
    if stats.kept is not None:
        listed, kept = list(records), np.asarray(stats.kept, dtype=np.int64)
        records = [records[i] for i in stats.kept]
        undecodable += stats.skipped
        if not records:
            raise DatasetError(
                f"{name}: no file could be used ({len(undecodable)} skipped: see the warnings)"
            )
        warn_lost_classes(name, listed, records)
    classes = class_order(r.label for r in records)
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[r.label] for r in records], dtype=np.int64)
    made = folder_synthetic(records[0].source.parent) if name == "synthetic" else None  # its spec.json
    return Prepared(name, records, X, y, classes, stats, undecodable, listed, kept, made)


def make_split(
    prepared: Prepared, kind: str = "random", *, seed: int = 0, fold: int = 0, k: int = 5
) -> Split:
    """`split_indices` of a prepared data set, drawn over every listed file (`listed_split`), to train on:
    ConfigError when a part is empty (`check_parts`)."""
    records = prepared.listed if prepared.listed is not None else prepared.records
    split = listed_split(records, prepared.kept, kind, seed=seed, fold=fold, k=k, name=prepared.name)
    check_parts(split, kind, k=k, name=prepared.name)
    return split


def check_parts(split: Split, kind: str = "random", *, k: int = 5, name: str = "the data set") -> None:
    """ConfigError naming the empty part of a split to train on, and what to do: a model cannot train without
    training clips, early stopping chooses nothing without validation clips (training crashed in torch), and
    an empty test part leaves no figure. A small data set does it: a stratified split gives a class of fewer
    than 3 clips no validation or test clip, and with 2 speaker folds validation is a tenth of each class's
    clips of the training speakers."""
    empty = [part for part in ("train", "val", "test") if not len(getattr(split, part))]
    if not empty:
        return
    sizes = ", ".join(f"{part} {len(getattr(split, part))}" for part in ("train", "val", "test"))
    parts = " and ".join({"train": "training", "val": "validation", "test": "test"}[p] for p in empty)
    if kind == "speaker" and k == 2:
        how = (
            "with --folds 2, validation is a tenth of each class's clips of the training speakers, so a class "
            "needs at least 3 clips there: give each speaker more clips, or use more speakers and --folds 3 or "
            "more (validation speakers of their own)"
        )
    elif kind == "speaker":
        how = "give each speaker more clips that can be used, or use fewer --folds"
    else:
        how = (
            "the random split gives validation and test each a tenth of every class's clips, so a class needs "
            "at least 3 clips to reach them: give each class more clips (10 or more for a figure that means "
            "something)"
        )
    are = "parts are" if len(empty) > 1 else "part is"
    raise ConfigError(f"{name}: the {parts} {are} empty in this {kind} split ({sizes}): {how}")


def listed_split(
    listed: list[Record],
    kept: np.ndarray | None,
    kind: str = "random",
    *,
    seed: int = 0,
    fold: int = 0,
    k: int = 5,
    name: str = "the data set",
) -> Split:
    """`split_indices` over every file the loader listed, as `edge-ser eval --split` draws it, then mapped onto
    the files kept (`kept`: their indices into `listed`; None: all kept). Drawn over the kept files alone, one
    skipped file (silent, too short, undecodable samples) moved the folds and the random draw, so eval's "test
    part" held files the model had trained on."""
    index = {c: i for i, c in enumerate(class_order(r.label for r in listed))}
    y = np.array([index[r.label] for r in listed], dtype=np.int64)
    part = split_indices(y, [r.speaker for r in listed], kind, seed=seed, fold=fold, k=k, name=name)
    if kept is None:
        return part
    position = np.full(len(listed), -1, dtype=np.int64)
    position[kept] = np.arange(len(kept))

    def mapped(idx: np.ndarray) -> np.ndarray:
        p = position[idx]
        return p[p >= 0]

    return Split(mapped(part.train), mapped(part.val), mapped(part.test))


def split_indices(
    y: np.ndarray,
    speakers: list[str],
    kind: str = "random",
    *,
    seed: int = 0,
    fold: int = 0,
    k: int = 5,
    name: str = "the data set",
) -> Split:
    """'random': stratified 80/10/10 (the papers' protocol); 'speaker': fold `fold` of speaker group k-fold.

    Speaker folds need k >= 2 and at least k speakers (ConfigError naming the data set otherwise). With
    k >= 3 val is the next fold's speakers; with k = 2 (a data set of two speakers, such as TESS) there is
    no third speaker group, so test is one speaker group and val a stratified tenth of the other's clips:
    the test speakers stay unseen, the val clips are not speaker-independent.
    """
    if kind == "random":
        return stratified_split(y, seed=seed)
    if kind != "speaker":
        raise ConfigError(f"split must be 'random' or 'speaker', got {kind!r}")
    check_speaker_folds(speakers, k, fold, name)
    if k >= 3:
        return group_kfold(speakers, k=k, seed=seed)[fold]
    two = group_kfold(speakers, k=2, seed=seed, with_val=False)[fold]
    inner = stratified_split(np.asarray(y)[two.train], fractions=(0.9, 0.1, 0.0), seed=seed)
    return Split(two.train[inner.train], two.train[inner.val], two.test)


def check_speaker_folds(speakers: Sequence[str], k: int, fold: int, name: str = "the data set") -> None:
    """ConfigError when fold `fold` of `k` speaker folds cannot be drawn over files of these `speakers` (a file
    naming no speaker, k < 2 or above the speaker count, a fold out of range). `split_indices` checks it, and
    `prepare(check=...)` before the features are made: a new folder's features take minutes, and these errors
    came only after them."""
    check_named_speakers(speakers, name)
    n_speakers = len(set(map(str, speakers)))
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ConfigError(f"--folds {k!r} must be an integer >= 2 (speaker folds for train and test)")
    if k > n_speakers:
        raise ConfigError(
            f"{name} has {n_speakers} speakers; --folds {k} needs at least {k} "
            f"(use --folds {n_speakers} or fewer, or --split random)"
            if n_speakers >= 2
            else f"{name} has {n_speakers} speaker: a speaker split needs at least 2 (files name their speaker "
            "as <speaker>_<anything> or sit in <class>/<speaker>/, a labels CSV names them in its speaker column; "
            "or use --split random)"
        )
    if not 0 <= fold < k:
        raise ConfigError(f"--fold {fold} is out of range for {k} folds (0..{k - 1})")


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    """Confusion counts [true, predicted]."""
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def write_json(path: Path, payload: dict) -> None:
    """Write JSON atomically (temp file, then rename)."""
    atomic_write(path, json.dumps(payload, indent=2) + "\n")
