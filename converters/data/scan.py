"""Scanning a data set folder: its files by extension, and one warning for the files that do not fit its naming
scheme (or, in a folder-per-class tree, have an extension it does not read). Shared by every loader
(converters.data.loaders) and the synthetic set (converters.data.synthetic)."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from converters.data.records import Record
from edge_ser.audio.not_audio import decode_problem
from edge_ser.audio.stream import open_blocks, uses_ffmpeg
from edge_ser.audio.wav import WavCodecError, WavReader
from edge_ser.errors import AudioFormatError, DatasetError, InputWarning, MissingDependencyError
from edge_ser.fileio import check_regular_file, find_files, unread_files
from edge_ser.inputs.base import AUDIO_EXTENSIONS
from edge_ser.native_log import native_messages_named


class DatasetWarning(UserWarning):
    """Some files in a data set folder were skipped because they do not follow its naming scheme."""


class Skipped:
    """Collects skipped files so a loader emits one warning with a count and a few examples."""

    def __init__(self, dataset: str, root: Path, scheme: str, *, identity: str = "file name") -> None:
        self.dataset, self.root, self.scheme, self.identity = dataset, root, scheme, identity
        self.items: list[tuple[Path, str]] = []
        self.repeats: list[tuple[Path, Path]] = []
        self._first: dict[object, Path] = {}

    def add(self, path: Path, why: str) -> None:
        self.items.append((path, why))

    def repeated(self, key: object, path: Path) -> bool:
        """True, and counted, when a file with the same clip identity `key` was taken already. Distributions
        repeat folders (TESS's Kaggle zip holds its tree twice, SAVEE's both a flat and a per-speaker copy):
        counting a clip twice would weigh it double and can put one recording on both sides of a split."""
        first = self._first.setdefault(key, path)
        if first == path:
            return False
        self.repeats.append((path, first))
        return True

    def finish(self, records: list[Record]) -> list[Record]:
        """Warn about skipped files, refuse an empty result, and sort the records by file path."""
        examples = "; ".join(f"{os.path.relpath(p, self.root)} ({why})" for p, why in self.items[:3])
        more = f" and {len(self.items) - 3} more" if len(self.items) > 3 else ""
        if not records:
            found = f" ({len(self.items)} skipped: {examples}{more})" if self.items else ""
            raise DatasetError(
                f"{self.dataset}: no valid files in {self.root}, expected {self.scheme}{found}"
            )
        if self.items:
            warnings.warn(
                f"{self.dataset}: skipped {len(self.items)} file(s) in {self.root} that do not follow "
                f"{self.scheme}: {examples}{more}",
                DatasetWarning,
                stacklevel=3,
            )
        if self.repeats:
            shown = "; ".join(
                f"{os.path.relpath(p, self.root)} (kept {os.path.relpath(q, self.root)})"
                for p, q in self.repeats[:3]
            )
            more = f" and {len(self.repeats) - 3} more" if len(self.repeats) > 3 else ""
            warnings.warn(
                f"{self.dataset}: {len(self.repeats)} file(s) in {self.root} repeat a clip found already (same "
                f"{self.identity}) and were counted once, the lossless copy kept: {shown}{more}",
                DatasetWarning,
                stacklevel=3,
            )
        return sorted(records, key=lambda r: str(r.source))


LOSSLESS = (".wav", ".wave", ".flac", ".aif", ".aiff", ".aifc")
"""Audio formats that keep every sample: when a data set holds one clip in two formats, this copy is kept."""


def lossless_first(paths: Iterable[Path]) -> list[Path]:
    """`paths` with the lossless files first (then by path): the order a loader meets them in, so that of a clip
    found twice (CREMA-D's AudioMP3/ beside AudioWAV/) the copy `Skipped.repeated` keeps is the WAV."""
    return sorted(paths, key=lambda p: (p.suffix.lower() not in LOSSLESS, str(p)))


def data_files(root: Path, extensions: Iterable[str]) -> list[Path]:
    """Regular files under `root` (recursively, following links to folders) with one of the extensions, skipping
    hidden files and folders;
    a FIFO, device or socket under a wanted name is skipped with an InputWarning (`edge_ser.fileio.find_files`)."""
    if not Path(root).is_dir():
        return []  # the loaders report a missing folder themselves, with the data set's name
    return sorted(find_files([root], extensions, skip_hidden=True, error=DatasetError, what="data set files"))


def skip_ignored(
    skipped: Skipped, extensions: Iterable[str], kept: Iterable[Path] = (), *, depth: int = 2
) -> None:
    """Add to `skipped` each file a loader passed over for its extension: regular files under its root, at
    least `depth` path parts deep (2: inside a class folder; files beside the class folders, a README or a
    labels list, are not the data set's), not hidden, whose extension is none of `extensions`. `kept`: the
    files the loader kept; a class folder none of them is in has vanished from the data set, which its files'
    reason says (and they are named first).

    Why: `data_files` lists only the extensions asked for, so a class folder of .caf recordings vanished from
    the data set without a word; now its files are counted and named in the loader's one DatasetWarning (or
    in its DatasetError when nothing is left), each as "extension .caf is not read"."""
    exts = {e.lower() for e in extensions}
    root = Path(skipped.root)
    classes = {Path(k).relative_to(root).parts[0] for k in kept}
    lost, other = [], []
    # links to folders followed; data_files warned of loops
    for path in unread_files(root, exts, depth=depth):
        rel = path.relative_to(root)
        why = f"extension {path.suffix or '(none)'} is not read"
        if rel.parts[0] in classes:
            other.append((path, why))
        else:
            lost.append((path, f"{why}; class {rel.parts[0]} is left with no file"))
    for path, why in lost + other:
        skipped.add(path, why)
    gone = sorted({p.relative_to(root).parts[0] for p, _ in lost})
    if gone:  # every lost class by name: the skipped-files warning shows only its first few examples
        warnings.warn(
            f"{skipped.dataset} {root}: class folder(s) {', '.join(gone)} hold no file with an extension that is "
            f"read ({', '.join(sorted(exts))}): left out of the data set",
            DatasetWarning,
            stacklevel=3,
        )


class Loaded(list):
    """The records a data set loader kept (a plain list of Record), plus `undecodable`: the (path, reason) of
    each file whose name fits the data set but whose audio cannot be read, which it skipped, and
    `undecodable_records`: their records (speaker, label, split), in the same order, when the loader gave them
    (empty otherwise), so a selection of the data set (`edge-ser eval --speakers`) counts only its own."""

    def __init__(
        self,
        records: Iterable[Record] = (),
        undecodable: Sequence[tuple[Path, str]] = (),
        undecodable_records: Sequence[Record] = (),
    ) -> None:
        super().__init__(records)
        self.undecodable: list[tuple[Path, str]] = list(undecodable)
        self.undecodable_records: list[Record] = list(undecodable_records)


def audio_problem(path: Path) -> str | None:
    """Why an audio file cannot be decoded, from its header alone, or None when it can be opened.

    WAV: the strict reader's header parse (`edge_ser.audio.wav.WavReader`), which finds an empty, foreign
    (AIFF, MP3, text...) or malformed file without decoding a sample; M4A, AAC and the other files read through
    ffmpeg (`edge_ser.audio.stream.uses_ffmpeg`): their first block decoded; other formats: soundfile's
    header read. What a header cannot show (NaN samples in a float WAV, a damaged frame inside a FLAC) is
    found when the features are computed, which skips such a file the same way (`converters.featurize`).
    """
    try:
        if uses_ffmpeg(path):  # M4A, AAC... and video sound tracks: ffmpeg decodes the first block
            try:
                open_blocks(path, frames=1024).close()
            except MissingDependencyError as e:  # one M4A among WAVs: that file is skipped, not the data set
                return str(e)
            return None
        if path.suffix.lower() in (".wav", ".wave"):
            try:
                with (
                    warnings.catch_warnings()
                ):  # a file cut short is read (its complete frames); decoding says so
                    warnings.simplefilter("ignore", InputWarning)
                    with WavReader(path):
                        return None
            except WavCodecError:  # mu-law, A-law, ADPCM: soundfile decodes them, as on the device
                pass
        check_regular_file(path, error=AudioFormatError)
        try:
            import soundfile
        except ImportError:
            raise MissingDependencyError("soundfile", "device", "non-WAV audio") from None
        try:
            with native_messages_named(path):  # libsndfile's mpg123 notes name the file
                info = soundfile.info(str(path))
        except (RuntimeError, OSError, ValueError, TypeError) as e:  # LibsndfileError is a RuntimeError
            return f"cannot decode audio: {decode_problem(path, e)}"
        return None if info.frames > 0 else "no audio: the file holds 0 frames"
    except AudioFormatError as e:
        return str(e).removeprefix(f"{path}: ")


def check_decodable(dataset: str, records: Sequence[Record], *, strict: bool = False) -> Loaded:
    """The records whose audio file opens (`audio_problem`); each other one is skipped with an InputWarning
    naming the file and why, or, with `strict`, the first one raises DatasetError. Images and video clips are
    kept as they are (only audio sources are checked)."""
    kept, bad, bad_records = [], [], []
    checked: dict[Path, str | None] = {}
    for r in records:
        if r.image is not None or r.source.suffix.lower() not in AUDIO_EXTENSIONS:
            kept.append(r)
            continue
        first = r.source not in checked
        if first:
            checked[r.source] = audio_problem(r.source)
        problem = checked[r.source]
        if problem is None:
            kept.append(r)
        elif strict:
            raise DatasetError(f"{dataset}: {r.source}: {problem} (without --strict it would be skipped)")
        elif first:
            bad.append((r.source, problem))
            bad_records.append(r)
            warnings.warn(f"{dataset}: skipped {r.source}: {problem}", InputWarning, stacklevel=2)
    if not kept:
        raise DatasetError(f"{dataset}: none of its {len(records)} files can be decoded (first: {bad[0][0]})")
    warn_lost_classes(dataset, records, kept)
    return Loaded(kept, bad, bad_records)


def warn_lost_classes(dataset: str, listed: Sequence[Record], kept: Sequence[Record]) -> list[str]:
    """Warn (DatasetWarning) about each class of `listed` none of whose files is in `kept`, and return them: every
    file of such a class was skipped (each named in its own warning), so the class is gone from the data set, and
    a model trained on it has no output for it. Before 2026-12-07 the class just vanished from the class list."""
    have = {r.label for r in kept}
    counts: dict[str, int] = {}
    for r in listed:
        if r.label not in have:
            counts[r.label] = counts.get(r.label, 0) + 1
    for label, n in counts.items():
        warnings.warn(
            f"{dataset}: class {label}: no file of it can be used ({n} skipped: see the warnings above), so it is "
            "not a class of this data set and a model trained on it has no output for it",
            DatasetWarning,
            stacklevel=3,
        )
    return list(counts)


@contextlib.contextmanager
def each_warning_once():
    """Within it, each data-set and input warning (DatasetWarning, InputWarning) is shown once: every point of a
    zoo or sweep loads the data set again, so a folder's "class folder(s) ... name no known emotion" was printed
    once per point (7 times for 7 points), which reads as 7 problems. (The warnings filter "once" does not
    hold: every `warnings.catch_warnings` in the points, e.g. around the ONNX export, resets its registry.)"""
    seen: set[tuple[type, str]] = set()
    show = warnings.showwarning

    def once(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' signature
        if issubclass(category, (DatasetWarning, InputWarning)):
            if (category, str(message)) in seen:
                return
            seen.add((category, str(message)))
        show(message, category, filename, lineno, file, line)

    warnings.showwarning = once
    try:
        yield
    finally:
        warnings.showwarning = show


__all__ = [
    "DatasetWarning",
    "Loaded",
    "Skipped",
    "audio_problem",
    "check_decodable",
    "data_files",
    "each_warning_once",
    "skip_ignored",
    "warn_lost_classes",
]
