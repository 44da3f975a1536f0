"""Loaders: one function per data set, each turning a folder into a sorted list of Records.

File names are validated strictly: a file that does not follow its data set's scheme is skipped and counted
in one `DatasetWarning`; a folder with no valid file at all raises DatasetError.

Video (Record.video set): RAVDESS `01-`/`02-...mp4` (audio from the matching `03-...wav` anywhere under the
root, else the mp4's own track), SAVEE `AudioVisualClips/<speaker>/<code><n>.avi` (audio from the matching
`AudioData` WAV, else the avi's track), and `load_video_folder`: `<class>/**/*.mp4|avi|mkv|mov|webm` or a
`labels.csv` (video,label[,speaker][,audio]). Each video record's meta "audio" says where its audio comes
from: "wav"/"file" (its `source`), "container" (the video itself, decoded by ffmpeg) or "none".
`converters.data.av_clips` turns such a record into the AV model's inputs.
"""

from __future__ import annotations

import csv
import io
import os
import re
import unicodedata
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from converters.data import labels as L
from converters.data.records import UNKNOWN_SPEAKER, Record
from converters.data.scan import (
    DatasetWarning,
    Loaded,
    Skipped,
    check_decodable,
    data_files,
    lossless_first,
    skip_ignored,
)
from converters.data.synthetic import load_synthetic
from edge_ser.errors import ConfigError, DatasetError
from edge_ser.inputs.base import AUDIO_EXTENSIONS
from edge_ser.vision.video import VIDEO_EXTENSIONS

ENV_VAR = "EDGE_SER_DATA"
ROOT_FLAG_HINT = " (or pass the data set folder with --root where the command has one)"
"""Said after the EDGE_SER_DATA advice: these errors reach commands with a --root flag and benchmark scripts and
library calls without one, so the environment variable is the way that always works."""
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
FER_SPLITS = ("train", "validation", "test")
RAVDESS_MODALITIES = {"01": "audio-video", "02": "video", "03": "audio"}
_AUDIO_END = r"(?i:" + "|".join(re.escape(ext) for ext in AUDIO_EXTENSIONS) + ")$"
"""A file name's end in any of AUDIO_EXTENSIONS, any case: the corpora whose files may be converted (TESS,
SAVEE and CREMA-D stand-ins in FLAC, Ogg or MP3) end their name patterns with it."""

# Folder names under the data root where find_dataset looks for each data set, first match wins.
DATASET_FOLDERS: dict[str, tuple[str, ...]] = {
    "emodb": ("emodb", "EMODB", "emo-db"),
    "ravdess": ("ravdess_speech", "ravdess", "RAVDESS"),
    "tess": ("tess", "TESS"),
    "savee": ("savee", "SAVEE"),
    "cremad": ("cremad", "crema-d", "CREMA-D"),
    "fer2013": ("fer2013", "FER2013", "fer-2013"),
    "synthetic": ("synthetic",),
}


def _root(root: str | os.PathLike, dataset: str, real: bool = True) -> Path:
    """The data set folder as a Path, or DatasetError naming it (and EDGE_SER_DATA for the real corpora)."""
    path = Path(root).expanduser()
    if path.is_dir():
        return path
    what = "is not a folder" if path.exists() else "does not exist"
    hint = ""
    if real:
        folder = DATASET_FOLDERS.get(dataset, (dataset,))[0]
        hint = f"; set {ENV_VAR} to the folder that holds {folder}/{ROOT_FLAG_HINT}"
    raise DatasetError(f"{dataset}: data folder {path} {what}{hint}")


# ---------------------------------------------------------------------------------------------- EMODB
_EMODB_NAME = re.compile(r"^(\d{2})([ab]\d{2})([WLEAFTN])([a-z])\.(?i:wav)$")
EMODB_SPEAKERS = ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16")


def load_emodb(root: str | os.PathLike) -> list[Record]:
    """EMODB: `03a01Fa.wav` = speaker 03, text a01, emotion letter F, version a. Root: emodb/ or emodb/wav."""
    root = _root(root, "emodb")
    if (root / "wav").is_dir():
        root = root / "wav"
    skipped = Skipped("emodb", root, "names like 03a01Fa.wav (speaker, text, emotion letter, version)")
    records = []
    for path in data_files(root, (".wav",)):
        m = _EMODB_NAME.match(path.name)
        if m is None:
            skipped.add(path, "bad name")
            continue
        speaker, text, letter, version = m.groups()
        if speaker not in EMODB_SPEAKERS:
            skipped.add(path, f"speaker {speaker} is not an EMODB speaker")
            continue
        if skipped.repeated(path.name, path):
            continue
        records.append(
            Record(path, L.EMODB[letter], speaker, "emodb", letter, meta={"text": text, "version": version})
        )
    return skipped.finish(records)


# -------------------------------------------------------------------------------------------- RAVDESS
_RAVDESS_NAME = re.compile(
    r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})\.(wav|mp4)$", re.IGNORECASE
)
_ACTOR_DIR = re.compile(r"^Actor_(\d{2})$", re.IGNORECASE)


def _ravdess_problem(path: Path, fields: tuple[str, ...], ext: str) -> str | None:
    """Why a well-shaped RAVDESS name is still invalid, or None."""
    modality, channel, emotion, intensity, statement, repetition, actor = fields
    if modality not in RAVDESS_MODALITIES:
        return f"modality {modality} not 01/02/03"
    if (modality == "03") != (ext == "wav"):
        return f"modality {modality} does not match .{ext}"
    if channel not in ("01", "02"):
        return f"vocal channel {channel} not 01/02"
    if emotion not in L.RAVDESS:
        return f"emotion {emotion} not 01..08"
    if intensity not in ("01", "02") or (emotion == "01" and intensity == "02"):
        return f"intensity {intensity} invalid for emotion {emotion}"
    if statement not in ("01", "02") or repetition not in ("01", "02"):
        return "statement/repetition not 01/02"
    if not 1 <= int(actor) <= 24:
        return f"actor {actor} not 01..24"
    folder = _ACTOR_DIR.match(path.parent.name)
    if folder and folder.group(1) != actor:
        return f"actor {actor} inside {path.parent.name}"
    return None


def load_ravdess(
    root: str | os.PathLike,
    *,
    modalities: Iterable[str] | None = None,
    require_audio: bool = False,
) -> list[Record]:
    """RAVDESS: `03-01-05-01-02-01-12.wav` = modality, vocal channel, emotion, intensity, statement,
    repetition, actor; in Actor_XX folders or flat. Audio (03, .wav) and video (01/02, .mp4, `video` set).

    Accepted layouts: the speech/song audio zips (`Audio_Speech_Actors_01-24/Actor_XX/03-...wav`), the video
    zips (`Video_Speech_Actor_XX/Actor_XX/01-...mp4`, `02-...mp4`), both side by side under `root`, or flat.

    A video record's audio: the `03-...wav` with the same other six fields, found anywhere under `root` (RAVDESS
    ships each recording in three formats; the 03 WAV is the sound of the 01/02 video) is its `source` (meta
    audio="wav");
    without one, an audio-video clip (01) takes its audio from the mp4 through ffmpeg (source = the mp4,
    meta audio="container"). A video-only clip (02) without its WAV has no audio at all: it is kept for
    video-only use (source = the mp4, meta audio="none", meta expected_audio = the WAV name it lacks), or
    skipped with that reason when `require_audio` is true (for audio-visual training).

    `modalities` keeps only some of "audio", "audio-video", "video" (default: all found). A video record
    that uses a WAV shares its source with the audio record of that WAV: for audio-only training ask for
    `modalities=["audio"]`, or the same recording is counted twice.
    """
    wanted = set(RAVDESS_MODALITIES.values()) if modalities is None else set(modalities)
    if not wanted or wanted - set(RAVDESS_MODALITIES.values()):
        raise ConfigError(
            f"ravdess: modalities {sorted(wanted)} must be among {sorted(RAVDESS_MODALITIES.values())}"
        )
    root = _root(root, "ravdess")
    skipped = Skipped("ravdess", root, "names like 03-01-05-01-02-01-12.wav (7 two-digit fields)")
    valid: list[tuple[Path, tuple[str, ...], str]] = []
    for path in data_files(root, (".wav", ".mp4")):
        m = _RAVDESS_NAME.match(path.name)
        if m is None:
            skipped.add(path, "bad name")
            continue
        fields, ext = m.groups()[:7], m.group(8).lower()
        problem = _ravdess_problem(path, fields, ext)
        if problem:
            skipped.add(path, problem)
            continue
        if skipped.repeated((fields, ext), path):
            continue
        valid.append((path, fields, ext))
    # the 03 WAV of each performance, by its other six fields; the first one found wins
    wavs: dict[tuple[str, ...], Path] = {}
    for path, fields, _ in valid:
        if fields[0] == "03":
            wavs.setdefault(fields[1:], path)
    records = []
    for path, fields, ext in valid:
        modality, channel, emotion, intensity, statement, repetition, actor = fields
        kind = RAVDESS_MODALITIES[modality]
        if kind not in wanted:
            continue
        meta = {
            "modality": kind,
            "vocal_channel": "speech" if channel == "01" else "song",
            "intensity": "normal" if intensity == "01" else "strong",
            "statement": statement,
            "repetition": repetition,
        }
        source, video = path, None
        if ext == "mp4":
            video = path
            wav = wavs.get(fields[1:])
            expected = "-".join(("03", *fields[1:])) + ".wav"
            if wav is not None:
                source, meta["audio"] = wav, "wav"
            elif modality == "01":
                meta["audio"] = "container"
            elif require_audio:
                skipped.add(path, f"video-only clip without its audio {expected}")
                continue
            else:
                meta["audio"], meta["expected_audio"] = "none", expected
        records.append(Record(source, L.RAVDESS[emotion], actor, "ravdess", emotion, video=video, meta=meta))
    return skipped.finish(records)


# ----------------------------------------------------------------------------------------------- TESS
_TESS_NAME = re.compile(r"^(?i:(OAF|YAF)_([A-Za-z]+)_([A-Za-z_]+))" + _AUDIO_END)


def load_tess(root: str | os.PathLike) -> list[Record]:
    """TESS: `OAF_angry/OAF_back_angry.wav` = speaker OAF/YAF, word, emotion (`ps` = pleasant surprise)."""
    root = _root(root, "tess")
    skipped = Skipped(
        "tess",
        root,
        "names like OAF_back_angry.wav (OAF|YAF, word, emotion)",
        identity="speaker, word and emotion",
    )
    records = []
    for path in lossless_first(data_files(root, AUDIO_EXTENSIONS)):
        m = _TESS_NAME.match(path.name)
        if m is None:
            skipped.add(path, "bad name")
            continue
        speaker, word, emotion = m.group(1).upper(), m.group(2).lower(), m.group(3).lower()
        if emotion not in L.TESS:
            skipped.add(path, f"emotion {emotion!r} unknown")
            continue
        if skipped.repeated((speaker, word, emotion), path):
            continue
        records.append(Record(path, L.TESS[emotion], speaker, "tess", emotion, meta={"word": word}))
    return skipped.finish(records)


# ---------------------------------------------------------------------------------------------- SAVEE
SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")
SAVEE_MODALITIES = ("audio", "audio-video")
_SAVEE_FLAT = re.compile(r"^(DC|JE|JK|KL)_(sa|su|a|d|f|h|n)(\d{2})" + _AUDIO_END)
_SAVEE_NESTED = re.compile(r"^(sa|su|a|d|f|h|n)(\d{2})" + _AUDIO_END)
# video clips: AudioVisualClips/<speaker>/<code><n>.avi; whether the real distribution zero-pads n (its
# AudioData does: d03.wav) could not be confirmed from public sources, so a1.avi and a01.avi both match
_SAVEE_VIDEO_FLAT = re.compile(r"^(DC|JE|JK|KL)_(sa|su|a|d|f|h|n)(\d{1,2})\.(?i:avi)$")
_SAVEE_VIDEO_NESTED = re.compile(r"^(sa|su|a|d|f|h|n)(\d{1,2})\.(?i:avi)$")


def _savee_name(path: Path, flat: re.Pattern, nested: re.Pattern) -> tuple[str, str, str] | str:
    """(speaker, emotion code, two-digit number) from a SAVEE file name, or why it is not one."""
    m_flat, m_nested = flat.match(path.name), nested.match(path.name)
    if m_flat:
        speaker, code, number = m_flat.groups()
    elif m_nested and path.parent.name in SAVEE_SPEAKERS:
        speaker, (code, number) = path.parent.name, m_nested.groups()
    else:
        return "bad name" if not m_nested else f"folder {path.parent.name} is not a SAVEE speaker"
    return speaker, code, f"{int(number):02d}"


def load_savee(root: str | os.PathLike, *, modalities: Iterable[str] | None = None) -> list[Record]:
    """SAVEE: `AudioData/DC/a01.wav` or flat `DC_a01.wav` = speaker DC/JE/JK/KL, emotion prefix, number;
    video clips `AudioVisualClips/DC/a01.avi` (or `a1.avi`, or flat `DC_a01.avi`), with `video` set.

    A clip's audio: the WAV of the same speaker, emotion and number (anywhere under `root`) is its `source`
    (meta audio="wav"); without one, the avi's own audio track through ffmpeg (source = the avi, meta
    audio="container"). `modalities` keeps only "audio" (the WAVs) or "audio-video" (the clips); default
    all found. A clip with a WAV shares its source with that WAV's audio record: for audio-only training
    ask for `modalities=["audio"]`.
    """
    wanted = set(SAVEE_MODALITIES) if modalities is None else set(modalities)
    if not wanted or wanted - set(SAVEE_MODALITIES):
        raise ConfigError(f"savee: modalities {sorted(wanted)} must be among {list(SAVEE_MODALITIES)}")
    root = _root(root, "savee")
    skipped = Skipped(
        "savee",
        root,
        "names like DC_a01.wav or DC/a01.wav (speaker, emotion a/d/f/h/n/sa/su, nn), DC/a01.avi for video",
        identity="speaker, emotion and number",
    )
    records = []
    wavs: dict[tuple[str, str, str], Path] = {}
    for path in lossless_first(data_files(root, AUDIO_EXTENSIONS)):
        parsed = _savee_name(path, _SAVEE_FLAT, _SAVEE_NESTED)
        if isinstance(parsed, str):
            skipped.add(path, parsed)
            continue
        if skipped.repeated(("audio", *parsed), path):
            continue
        wavs[parsed] = path
        speaker, code, number = parsed
        if "audio" in wanted:
            records.append(
                Record(
                    path, L.SAVEE[code], speaker, "savee", code, meta={"number": number, "modality": "audio"}
                )
            )
    for path in data_files(root, (".avi",)):
        parsed = _savee_name(path, _SAVEE_VIDEO_FLAT, _SAVEE_VIDEO_NESTED)
        if isinstance(parsed, str):
            skipped.add(path, parsed)
            continue
        if "audio-video" not in wanted or skipped.repeated(("video", *parsed), path):
            continue
        speaker, code, number = parsed
        wav = wavs.get(parsed)
        meta = {"number": number, "modality": "audio-video", "audio": "container" if wav is None else "wav"}
        records.append(Record(wav or path, L.SAVEE[code], speaker, "savee", code, video=path, meta=meta))
    return skipped.finish(records)


# -------------------------------------------------------------------------------------------- CREMA-D
_CREMAD_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_(LO|MD|HI|XX)" + _AUDIO_END)
CREMAD_SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")


def load_cremad(root: str | os.PathLike) -> list[Record]:
    """CREMA-D: `1001_DFA_ANG_XX.wav` = speaker 1001..1091, sentence, emotion, level (LO/MD/HI/XX)."""
    root = _root(root, "cremad")
    skipped = Skipped(
        "cremad",
        root,
        "names like 1001_DFA_ANG_XX.wav (speaker, sentence, emotion, level)",
        identity="name, in any audio format",
    )
    records = []
    for path in lossless_first(data_files(root, AUDIO_EXTENSIONS)):
        m = _CREMAD_NAME.match(path.name)
        if m is None:
            skipped.add(path, "bad name")
            continue
        speaker, sentence, emotion, level = m.groups()
        if not 1001 <= int(speaker) <= 1091:
            problem = f"speaker {speaker} not 1001..1091"
        elif sentence not in CREMAD_SENTENCES:
            problem = f"sentence {sentence} unknown"
        elif emotion not in L.CREMAD:
            problem = f"emotion {emotion} unknown"
        else:
            problem = None
        if problem:
            skipped.add(path, problem)
            continue
        if skipped.repeated(path.stem, path):
            continue
        records.append(
            Record(
                path,
                L.CREMAD[emotion],
                speaker,
                "cremad",
                emotion,
                meta={"sentence": sentence, "level": level},
            )
        )
    return skipped.finish(records)


# ------------------------------------------------------------------------------------------- FER-2013
def load_fer2013(root: str | os.PathLike, split: str | None = "train") -> list[Record]:
    """FER-2013 face images in `<split>/<class>/*.jpg|png`; `split=None` loads every split present.

    source = image = the image file; speaker = the file stem (each face is its own group).
    """
    if split is not None and split not in FER_SPLITS:
        raise ConfigError(f"fer2013: split {split!r} must be one of {FER_SPLITS} or None")
    root = _root(root, "fer2013")
    present = [s for s in FER_SPLITS if (root / s).is_dir()]
    splits = present if split is None else [split]
    if not present or split not in (None, *present):
        public = (
            " (validation/ is FER-2013's PublicTest split: --split validation)"
            if split == "test" and "validation" in present
            else ""
        )
        raise DatasetError(
            f"fer2013: no {split or 'split'} folder in {root}; found splits {present or 'none'} "
            f"(expected {'/'.join(FER_SPLITS)} folders holding one folder per class){public}"
        )
    skipped = Skipped("fer2013", root, "<split>/<class>/*.jpg with class one of " + "/".join(L.FER2013))
    records = []
    for name in splits:
        for path in data_files(root / name, IMAGE_EXTENSIONS):
            rel = path.relative_to(root / name)
            cls = rel.parts[0].lower() if len(rel.parts) == 2 else None
            if cls not in L.FER2013:
                skipped.add(path, "not inside a known class folder")
                continue
            records.append(
                Record(path, L.FER2013[cls], path.stem, "fer2013", cls, image=path, meta={"split": name})
            )
    return skipped.finish(records)


# ------------------------------------------------------------------------------------ folder-per-class
def load_folder(root: str | os.PathLike) -> list[Record]:
    """Any folder-per-class tree: `<root>/<class>/**/<speaker>_<anything>.wav` or `<root>/<class>/<speaker>/<name>.wav`
    (any audio extension edge_ser reads).

    Class names that mean one of LABELS (e.g. "Anger", "sadness") map to it; others are kept as they are.
    Speaker: `speaker_of` (the file stem before its first '_' or '-', else the folder under the class folder,
    else "unknown"), checked by `check_speakers`.
    """
    root = _root(root, "folder", real=False)
    skipped = Skipped("folder", root, "<class>/<file> with audio extension " + "/".join(AUDIO_EXTENSIONS))
    records = []
    for path in lossless_first(data_files(root, AUDIO_EXTENSIONS)):
        rel = path.relative_to(root)
        if len(rel.parts) < 2:
            skipped.add(path, "not inside a class folder")
            continue
        folder = rel.parts[0]
        records.append(
            Record(
                path,
                L.to_label(folder) or folder,
                speaker_of(rel),
                "folder",
                folder,
                meta={"root": root.resolve().name},  # `--data .` is the folder's name, not ""
            )
        )
    skip_ignored(skipped, AUDIO_EXTENSIONS, [r.source for r in records])  # said, not dropped unsaid
    images = (
        []
        if records
        else [p for p in data_files(root, IMAGE_EXTENSIONS) if len(p.relative_to(root).parts) >= 2]
    )
    # a face bundle's user's class folders: "no valid files ... audio extension" said nothing of them
    if images:
        raise DatasetError(
            f"folder {root}: holds {len(images)} image(s) in class folders and no audio; a folder data set is audio "
            "clips. To score a face bundle on images give them in FER-2013's layout: --data fer2013 --root DIR, with "
            f"DIR/test/<class>/*.jpg (or .png), class one of {', '.join(L.FER2013)} (docs/eval.md)"
        )
    # a flat folder and its list: the list is the corpus
    if (root / VIDEO_LABELS_CSV).is_file() and not records:
        raise DatasetError(
            f"folder {root}: holds no class folder of audio, and a {VIDEO_LABELS_CSV}: to read the clips it lists, "
            f"give the file itself: --data {root / VIDEO_LABELS_CSV} (columns {LABELS_CSV_COLUMNS}, docs/data.md)"
        )
    if (root / VIDEO_LABELS_CSV).is_file():  # given the folder, its labels.csv was ignored without a word
        warnings.warn(
            f"folder {root}: {VIDEO_LABELS_CSV} is not read when the folder is given (the clips take their class "
            "from their class folder and their speaker from their name); to take them from the CSV give the file "
            f"itself: --data {root / VIDEO_LABELS_CSV} (columns {LABELS_CSV_COLUMNS}, docs/data.md)",
            DatasetWarning,
            stacklevel=2,
        )
    warn_own_classes(f"folder {root}: class folder(s)", records)
    records = same_names("folder", root, records)
    check_speakers("folder", root, records)
    return skipped.finish(records)


SPEAKER_RULE = (
    "name each file <speaker>_<anything> or put it in <class>/<speaker>/ with no '_' or '-' in its name (e.g. "
    "angry/spk03_take1.wav or angry/spk03/take1.wav)"
)


def speaker_of(rel: Path) -> str:
    """The speaker of a file at `rel` (relative to the data set root, its first part the class folder): the
    file stem before its first '_' or '-' (`<class>/**/<speaker>_<anything>`), else the folder under the class
    folder (`<class>/<speaker>/<name>`), else UNKNOWN_SPEAKER."""
    head = re.split(r"[_-]", rel.stem, maxsplit=1)
    if len(head) == 2 and head[0]:
        return head[0]
    return rel.parts[1] if len(rel.parts) >= 3 else UNKNOWN_SPEAKER


def warn_own_classes(where: str, records: Sequence[Record]) -> None:
    """Say which class names of `records` mean no known emotion (kept as classes of their own): a typo ("hapy")
    would otherwise become a new emotion without a word. `where`: the warning's start, naming the folder's class
    folders or the CSV's labels."""
    own = sorted({r.native_label for r in records if L.to_label(r.native_label) is None})
    if own:
        warnings.warn(
            f"{where} {', '.join(own)} name no known emotion ({', '.join(L.LABELS)}); kept as classes of their own",
            DatasetWarning,
            stacklevel=3,
        )


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def same_names(loader: str, root: Path, records: Sequence[Record]) -> list[Record]:
    """Records whose speaker ids, and class names of their own, are one string per person and per class: Unicode
    NFC (macOS writes names decomposed: "Zoe" + U+0308 against "Zo" + U+00EB, which look the same) and one
    spelling per case-insensitive name ("SPK08" and "spk08": the most frequent spelling, then the first in
    sorted order). Two spellings of one person were two speakers, so a speaker split put that person on both
    sides; every merge is said in a warning (the spellings shown with escapes, as they would look the same)."""

    def unify(values: list[str], what: str, keep: Callable[[str], bool]) -> dict[str, str]:
        groups: dict[str, Counter] = {}
        for v in values:
            if keep(v):
                groups.setdefault(_nfc(v).casefold(), Counter())[_nfc(v)] += 1
        merged = {}
        for spellings in groups.values():
            first = sorted(spellings, key=lambda v: (-spellings[v], v))[0]
            merged.update({v: first for v in spellings})
        renamed = {v: merged[_nfc(v)] for v in set(values) if keep(v) and merged[_nfc(v)] != v}
        kept = sorted({merged[_nfc(v)] for v in renamed})
        if kept:
            shown = "; ".join(
                f"{' / '.join(sorted({ascii(v)[1:-1] for v in values if keep(v) and merged[_nfc(v)] == c}))} -> {c}"
                for c in kept[:4]
            )
            warnings.warn(
                f"{loader} {root}: {what} written two ways (upper and lower case, or an accent composed and "
                f"decomposed) are taken as one ({shown}); name them the same way, or differently if they are not "
                "the same",
                DatasetWarning,
                stacklevel=3,
            )
        return {v: merged[_nfc(v)] for v in set(values) if keep(v)}

    speakers = unify([r.speaker for r in records], "speaker ids", lambda v: v != UNKNOWN_SPEAKER)
    classes = unify([r.label for r in records], "class folders", lambda v: v not in L.LABELS)
    near_twins(loader, root, {speakers.get(r.speaker, r.speaker) for r in records} - {UNKNOWN_SPEAKER})
    return [
        r
        if speakers.get(r.speaker, r.speaker) == r.speaker and classes.get(r.label, r.label) == r.label
        else replace(r, speaker=speakers.get(r.speaker, r.speaker), label=classes.get(r.label, r.label))
        for r in records
    ]


_SEPARATORS = re.compile(r"[\s_.\-]+")


def near_twins(loader: str, root: Path, speakers: Iterable[str]) -> list[tuple[str, ...]]:
    """Warn (DatasetWarning) about speaker ids that differ only in spaces, '_', '-' or '.' ("spk 09", "spk09",
    "spk_09"), and return each such group: they stay different speakers (they may be), but if they are one person
    a speaker split puts that person on both sides, and nothing said so (a review of a labels CSV). Case and
    Unicode form are merged before this (`same_names`)."""
    groups: dict[str, set[str]] = {}
    for v in speakers:
        groups.setdefault(_SEPARATORS.sub("", _nfc(v).casefold()), set()).add(v)
    twins = sorted(tuple(sorted(g)) for g in groups.values() if len(g) > 1)
    if twins:
        shown = "; ".join(" / ".join(repr(v) for v in g) for g in twins[:4])
        warnings.warn(
            f"{loader} {root}: speaker ids that differ only in spaces or punctuation are kept as different "
            f"speakers ({shown}{'; ...' if len(twins) > 4 else ''}); if each group is one person, write its id "
            "the same way, or a speaker split puts that person on both sides",
            DatasetWarning,
            stacklevel=3,
        )
    return twins


def swapped_layout(records: Sequence[Record]) -> str | None:
    """What is wrong when a folder's speakers and classes look swapped (`<speaker>/<emotion>_N.wav`: every speaker
    id is an emotion's name and no class folder is), else None: the data would train a speaker classifier and call
    an emotion a validation speaker (a review: "validation speakers ['sad']")."""
    ids = sorted({str(r.speaker) for r in records})
    folders = sorted({str(r.native_label) for r in records})
    if len(ids) < 2 or any(L.to_label(i) is None for i in ids) or any(L.to_label(f) for f in folders):
        return None
    return (
        f"the speaker ids ({', '.join(ids[:4])}) are emotions and the class folders ({', '.join(folders[:4])}) "
        f"are not: speakers and classes look swapped; the layout is <class>/<speaker>_<anything>.wav, {SPEAKER_RULE}"
    )


def shown_path(source: str | os.PathLike, root: Path) -> str:
    """A file as a warning shows it: relative to `root` (a folder, or a labels CSV: its folder) when inside it,
    else as it is (a CSV may list files anywhere, which ../../.. would hide)."""
    base = root.parent if root.suffix.lower() == ".csv" and not root.is_dir() else root
    rel = os.path.relpath(source, base)
    return str(source) if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def check_speakers(
    loader: str, root: Path, records: Sequence[Record], *, rule: str = SPEAKER_RULE, paths: bool = True
) -> None:
    """Warn about speaker ids that a speaker split would misread: files with none (pooled as one "speaker",
    UNKNOWN_SPEAKER, which can hold the same people as the named ones), and ids that each hold one class only
    (names like angry_spk03.wav give the class as the speaker, so a speaker split holds out whole classes).

    `root`: the folder, or the labels CSV, the warnings name (files are shown by `shown_path`). `rule`: how to
    name the speakers, said in each warning. `paths`: whether the ids were read from the files' paths
    (`speaker_of`); False (a labels CSV's speaker column) leaves out the checks of folder layouts."""
    unknown = [r for r in records if r.speaker == UNKNOWN_SPEAKER]
    if unknown:
        warnings.warn(
            f"{loader} {root}: {len(unknown)} of {len(records)} file(s) name no speaker (e.g. "
            f"{shown_path(unknown[0].source, root)}) and are pooled as one speaker {UNKNOWN_SPEAKER!r}; "
            f"{rule}",
            DatasetWarning,
            stacklevel=3,
        )
    swapped = swapped_layout(records) if paths else None
    if swapped:
        warnings.warn(f"{loader} {root}: {swapped}", DatasetWarning, stacklevel=3)
    ids = {r.speaker for r in records}
    if len(records) >= 2 and len(ids) == 1 and UNKNOWN_SPEAKER not in ids:
        warnings.warn(
            f"{loader} {root}: all {len(records)} files give the same speaker id {next(iter(ids))!r} (e.g. "
            f"{shown_path(records[0].source, root)}), so a speaker split has nothing to hold out; if they are "
            f"not one person, {rule}",
            DatasetWarning,
            stacklevel=3,
        )
    # <class>/<folder>/<name> files whose names give the speaker: if the folders are the speakers and the names
    # hold a '_' or '-' (2024-05-01.wav), every folder's files get the same few ids ("2024")
    inner = [(Path(os.path.relpath(r.source, root)).parts, r.speaker) for r in records if paths]
    inner = [
        (_nfc(parts[1]), spk) for parts, spk in inner if len(parts) >= 3
    ]  # (the folder under the class, id)
    nested = [(f, spk) for f, spk in inner if spk.casefold() != f.casefold()]
    folders, named = {f for f, _ in nested}, {spk for _, spk in nested}
    # and one folder name that is a speaker (a file named without '_' or '-' took it) while other files in a folder
    # of that name took another id from their names (spk10/take1.wav and spk10/2024-05-01.wav: two "speakers")
    by_folder = {f.casefold() for f, spk in inner if spk.casefold() == f.casefold()}
    split = sorted({(f, spk) for f, spk in nested if f.casefold() in by_folder})
    if split:
        shown = ", ".join(f"{f}/ -> {spk}" for f, spk in split[:4])
        warnings.warn(
            f"{loader} {root}: folder(s) {', '.join(sorted({f for f, _ in split})[:4])} give the speaker to some "
            f"files, while others in folders of the same name take an id from their name ({shown}): one person "
            "may be counted as two speakers; name the files without '_' or '-' (the folder is used then)",
            DatasetWarning,
            stacklevel=3,
        )
    if len(folders) > len(named):
        warnings.warn(
            f"{loader} {root}: {len(nested)} file(s) in {len(folders)} folders under the class folders take their "
            f"speaker from their name ({', '.join(sorted(named)[:4])}): if the folders are the speakers, name the "
            "files without '_' or '-' (the folder is used then)",
            DatasetWarning,
            stacklevel=3,
        )
    classes: dict[str, set[str]] = {}
    for r in records:
        classes.setdefault(r.speaker, set()).add(r.label)
    labels = {r.label for r in records}
    if len(classes) >= 2 and len(labels) >= 2 and all(len(c) == 1 for c in classes.values()):
        shown = ", ".join(f"{s}: {next(iter(c))}" for s, c in sorted(classes.items())[:4])
        warnings.warn(
            f"{loader} {root}: every speaker id holds one class only ({shown}, ...): the ids are probably not "
            f"speakers (a name like angry_spk03.wav gives 'angry'), and a speaker split would hold out whole "
            f"classes; {rule}",
            DatasetWarning,
            stacklevel=3,
        )


# ------------------------------------------------------------------------------------------ labels CSV
class LabelsRow(NamedTuple):
    """One data row of a labels CSV (`read_labels_csv`)."""

    line: int
    """Its line number in the file (the header is line 1)."""
    path: Path
    """The file its path column names: relative to the CSV's folder, or absolute."""
    label: str
    """The shared label its label means (`labels.to_label`), or the label as written when it means none and
    unknown labels are kept."""
    native: str
    """The label as written."""
    cells: dict[str, str]
    """Every column read (the path column, label and the optional ones present), stripped."""


CSV_DELIMITERS = (",", ";", "\t")
"""The cell separators a labels CSV may use: ',' and what spreadsheets write in other locales (';' where the
decimal mark is a comma, as in most of Europe; a tab in "Unicode text")."""


def csv_cells(text: str, delimiter: str) -> Iterator[list[str]]:
    """The rows of CSV `text` as labels CSVs are read: spaces after a delimiter are skipped before a quote is looked
    for (skipinitialspace), so `a.wav, "happy"` is the label happy, not `"happy"` with its quotes (an unknown
    class), and `, "loud, clear"` one cell; a quoted cell keeps its spaces (`" a.wav"`)."""
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)


def csv_delimiter(text: str, path_column: str) -> str:
    """The delimiter of a labels CSV's `text`: the first of CSV_DELIMITERS that splits its header row into cells
    naming `path_column` and label (any case), else ','. The header decides, so a ';' in a quoted path of a
    comma-separated file stays in its cell."""
    for delimiter in CSV_DELIMITERS:
        header = next(csv_cells(text, delimiter), [])
        if {path_column, "label"} <= {cell.strip().lower() for cell in header}:
            return delimiter
    return ","


def windows_path(root: Path, given: str) -> Path:
    """The file a labels CSV's path cell names, from the CSV's folder `root`: `given` as it is, or, when that is
    no file and `given` holds a backslash (a CSV written on Windows: wav\\a.wav), with '/' for each backslash
    where that is a file (a backslash in a file name here is rare; both spellings existing keeps `given`)."""
    path = root / given
    if "\\" in given and not path.is_file():
        posix = root / given.replace("\\", "/")
        if posix.is_file():
            return posix
    return path


def _labels_columns(
    table: Path, loader: str, rows: list[list[str]], path_column: str, optional: Sequence[str]
) -> dict[str, int]:
    """The cell index of each column `read_labels_csv` reads, from the header row `rows[0]`; DatasetError for a
    missing `path_column` or label, and for one of them named twice."""
    header = [h.strip().lower() for h in rows[0]] if rows else []
    columns = ",".join([path_column, "label"]) + "".join(f"[,{name}]" for name in optional)
    if path_column not in header or "label" not in header:
        missing = " and ".join(repr(c) for c in (path_column, "label") if c not in header)
        got = f"its header is {','.join(rows[0])!r}" if rows else "it is empty"
        raise DatasetError(
            f"{loader}: {table} needs a header row with columns {columns}; no column {missing}: {got}"
        )
    twice = [name for name in (path_column, "label", *optional) if header.count(name) > 1]
    if twice:  # which one is meant is not for the reader to guess (two annotators' labels: it took the first)
        raise DatasetError(
            f"{loader}: {table}: its header names column(s) {', '.join(repr(c) for c in twice)} more than once "
            f"({','.join(rows[0])!r}); keep one of each (or rename the others) so it is clear which is read"
        )
    return {name: header.index(name) for name in (path_column, "label", *optional) if name in header}


def _unicode_twin(root: Path, given: str, path: Path) -> Path:
    """`path`, or, when it does not exist, the file `given` names in the other Unicode form (macOS writes "ö" as
    o + a combining diaeresis): the same name to the eye, which "not found" left unexplained."""
    if not given or path.exists():
        return path
    for form in ("NFC", "NFD"):
        other = windows_path(root, unicodedata.normalize(form, given))
        if other.is_file():
            return other
    return path


def read_labels_csv(
    table: Path,
    loader: str,
    *,
    path_column: str,
    optional: Sequence[str] = (),
    what: str = "files",
    keep_unknown: bool = False,
    check: Callable[[LabelsRow], str | None] | None = None,
) -> list[LabelsRow]:
    """The rows of a labels CSV: a header row naming `path_column`, `label` and any of `optional` (any case, in
    any order; other columns ignored; a UTF-8 byte order mark allowed), then one row per file; blank rows skipped.
    Cells are separated by ',', or by ';' or a tab when the header row is (`csv_delimiter`), spaces after a separator
    skipped before a quote (`csv_cells`), and stripped; a path is read as written when only that names a file
    (" a.wav" quoted, "a.wav " at its end). Text that is not UTF-8 is refused naming the line of
    its first such byte.

    Paths are relative to the CSV's folder (or absolute), with '/' or Windows' '\\' (`windows_path`). A label is mapped to the shared LABELS as class folders
    are (`labels.to_label`: "Joy" -> happy); one that means none is kept as written with `keep_unknown`, else
    refused. DatasetError (prefixed with `loader` and naming `table`) for an unreadable file, a missing column,
    and for rows whose file does not exist, whose label is empty (or unknown), whose file is listed twice, or
    that `check` (the loader's own test of a row, e.g. its file type) finds wrong: each such row by its line, the
    first five said; and when no row is left (`what`: what the rows list, "videos").
    """
    root = table.parent
    try:
        text = table.read_bytes().decode("utf-8-sig")
        rows = list(csv_cells(text, csv_delimiter(text, path_column)))
    except UnicodeDecodeError as e:  # a spreadsheet's plain "CSV" is in its code page (cp1252: Ä is 0xC4)
        line = e.object[: e.start].count(b"\n") + 1
        raise DatasetError(
            f"{loader}: {table}: line {line}: byte 0x{e.object[e.start]:02x} is not UTF-8 (a spreadsheet's plain CSV "
            "export is in its local code page, e.g. cp1252): save it as UTF-8 (the spreadsheet's 'CSV UTF-8')"
        ) from None
    except (OSError, csv.Error) as e:
        raise DatasetError(f"{loader}: cannot read {table}: {e}") from None
    col = _labels_columns(table, loader, rows, path_column, optional)
    problems: list[str] = []
    kept: list[LabelsRow] = []
    seen: dict[str, tuple[int, str]] = {}  # real path -> (its line, the path as listed)
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = {name: (row[i].strip() if i < len(row) else "") for name, i in col.items()}
        given, native = cells[path_column], cells["label"]
        path = windows_path(root, given)
        raw = row[col[path_column]] if col[path_column] < len(row) else ""
        if raw != given and given and not path.exists() and (root / raw).is_file():
            given = cells[path_column] = raw  # a file whose name has spaces around it (" a.wav"): as written
            path = root / raw
        path = _unicode_twin(root, given, path)
        label = L.to_label(native) if native else None
        parsed = LabelsRow(line, path, label or native, native, cells)
        key = os.path.realpath(path)  # one file under two names (a link and its target) is listed twice
        if not given:
            problems.append(f"line {line}: empty {path_column}")
        elif path.is_dir():
            problems.append(f"line {line}: {path_column} {given!r} is a folder; list each file in it")
        elif not path.is_file():
            windows = (
                " (a Windows path: one relative to the CSV's folder is read with '\\' or '/', a drive path "
                "such as C:\\corpus\\a.wav is no path here: list the files relative to the CSV)"
                if "\\" in given
                else ""
            )
            problems.append(f"line {line}: {path_column} {given!r} not found in {root}{windows}")
        elif check is not None and (problem := check(parsed)):
            problems.append(f"line {line}: {problem}")
        elif not native:
            problems.append(f"line {line}: empty label for {given!r}")
        elif label is None and not keep_unknown:
            problems.append(f"line {line}: label {native!r} is not one of {'/'.join(L.LABELS)}")
        elif key in seen:
            first, spelt = seen[key]
            problems.append(
                f"line {line}: {path_column} {given!r} already listed on line {first}"
                + (" (the same file under another name: a link)" if os.path.normpath(path) != spelt else "")
            )
        else:
            seen[key] = (line, os.path.normpath(path))
            kept.append(parsed)
    if problems:
        more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise DatasetError(f"{loader}: {table}: {'; '.join(problems[:5])}{more}")
    if not kept:
        raise DatasetError(f"{loader}: {table} lists no {what}")
    return kept


LABELS_CSV_COLUMNS = "path,label[,speaker]"
"""The columns of an audio labels CSV (`load_labels_csv`); others are ignored."""


def labels_csv_name(table: str | os.PathLike) -> str:
    """The data set name of a labels CSV: its folder's name (`mycorpus/labels.csv` -> mycorpus), joined with the
    file's stem when that is not "labels" (`mycorpus/train.csv` -> mycorpus_train), so two lists of one folder
    are two data sets."""
    path = Path(table).expanduser().resolve()
    folder = path.parent.name or "data"
    return folder if path.stem.lower() == "labels" else f"{folder}_{path.stem}"


def is_labels_csv(data: str | os.PathLike) -> bool:
    """Whether `--data` names an audio labels CSV: an existing file whose name ends in .csv (any case)."""
    path = Path(data).expanduser()
    return path.suffix.lower() == ".csv" and path.is_file()


def load_labels_csv(table: str | os.PathLike) -> list[Record]:
    """Audio clips listed in a labels CSV (`--data corpus/labels.csv`): a header row with columns path,label and
    optionally speaker (any case, any order, other columns ignored), then one row per clip. The usual shape of an
    IEMOCAP, CREMA-D or MSP-Podcast export: no symlink tree of class folders needed.

    - path: the audio file, relative to the CSV's folder, or absolute. A file that does not exist, or is listed
      twice, is refused (DatasetError naming the CSV and its line); one with an extension edge_ser does not read
      as audio (AUDIO_EXTENSIONS) is skipped with the loaders' one DatasetWarning.
    - label: mapped to the shared LABELS as class folders are ("Joy" -> happy, "anger" -> angry); a label that
      means none is kept as a class of its own (said in a DatasetWarning); an empty one is refused.
    - speaker: the speaker id; an empty cell, or no speaker column at all, pools the clip into one speaker
      UNKNOWN_SPEAKER (a DatasetWarning says so): the speaker-independent commands (`--split speaker`, the zoo's
      speaker splits, benchmarks/ship_ser.py) need the column filled in. Speaker ids are never read from paths.

    The records are as `load_folder` makes them of the same clips in class folders (dataset "folder", native_label
    the label as written, meta root = `labels_csv_name`), only their source paths differ, and so their order:
    both are sorted by path (not by the CSV's rows), and a seeded split or shuffle follows that order.
    """
    table = Path(table).expanduser()
    if table.is_dir() or not table.exists():
        what = "is a folder" if table.is_dir() else "does not exist"
        raise DatasetError(f"labels_csv: {table} {what}; give the labels CSV file ({LABELS_CSV_COLUMNS})")
    name = labels_csv_name(table)
    root = table.parent
    rows = read_labels_csv(table, "labels_csv", path_column="path", optional=("speaker",), keep_unknown=True)
    skipped = Skipped(
        "labels_csv", root, f"{table.name} rows naming audio files ({'/'.join(AUDIO_EXTENSIONS)})"
    )
    records = []
    for row in rows:
        if row.path.suffix.lower() not in AUDIO_EXTENSIONS:
            skipped.add(row.path, f"line {row.line}: extension {row.path.suffix or '(none)'} is not read")
            continue
        speaker = row.cells.get("speaker") or UNKNOWN_SPEAKER
        records.append(Record(row.path, row.label, speaker, "folder", row.native, meta={"root": name}))
    if "speaker" not in rows[0].cells:
        warnings.warn(
            f"labels_csv {table}: no speaker column, so its {len(rows)} clips are pooled as one speaker "
            f"{UNKNOWN_SPEAKER!r}: --split random works, the speaker-independent commands (--split speaker, the "
            "zoo's speaker splits, benchmarks/ship_ser.py) need a speaker column (path,label,speaker)",
            DatasetWarning,
            stacklevel=2,
        )
    warn_own_classes(f"labels_csv {table}: label(s)", records)
    records = same_names("labels_csv", table, records)
    if "speaker" in rows[0].cells:
        check_speakers("labels_csv", table, records, rule=CSV_SPEAKER_RULE, paths=False)
    return skipped.finish(records)


CSV_SPEAKER_RULE = "fill in the speaker column of the labels CSV with each clip's speaker id"


# ----------------------------------------------------------------------------- folder of (video, label)
VIDEO_LABELS_CSV = "labels.csv"


def _audio_twin(video: Path) -> Path | None:
    """An audio file next to a video with the same stem (clip.mp4 + clip.wav), if there is one."""
    for ext in AUDIO_EXTENSIONS:
        for candidate in (video.with_suffix(ext), video.with_suffix(ext.upper())):
            if candidate.is_file():
                return candidate
    return None


def _video_record(
    root: Path, video: Path, label: str, native: str, speaker: str, audio: Path | None
) -> Record:
    audio = audio or _audio_twin(video)
    meta = {"root": root.name, "audio": "container" if audio is None else "file"}
    return Record(audio or video, label, speaker, "video_folder", native, video=video, meta=meta)


def _video_csv(root: Path, table: Path) -> list[Record]:
    """Records from `labels.csv`: header video,label[,speaker][,audio]; paths relative to `root`."""

    def problem(row: LabelsRow) -> str | None:
        if row.path.suffix.lower() not in VIDEO_EXTENSIONS:
            return f"{row.cells['video']!r} is not a video ({'/'.join(VIDEO_EXTENSIONS)})"
        if row.cells.get("audio") and not (root / row.cells["audio"]).is_file():
            return f"audio {row.cells['audio']!r} not found in {root}"
        return None

    rows = read_labels_csv(
        table,
        "video_folder",
        path_column="video",
        optional=("speaker", "audio"),
        what="videos",
        check=problem,
    )
    records = [
        _video_record(
            root,
            row.path,
            row.label,
            row.native,
            row.cells.get("speaker") or speaker_of(Path(row.path.name)),
            root / row.cells["audio"] if row.cells.get("audio") else None,
        )
        for row in rows
    ]
    records = same_names("video_folder", root, records)
    check_speakers("video_folder", root, records)
    return sorted(records, key=lambda r: str(r.video))


def load_video_folder(root: str | os.PathLike) -> list[Record]:
    """A folder of (video, label) pairs, in one of two layouts:

    - `<root>/labels.csv` with a header row and columns video,label[,speaker][,audio] (paths relative to
      root; extra columns ignored). Every label must mean one of the shared LABELS (aliases such as
      "Anger" are mapped); an unknown label, a missing or non-video file, or a video listed twice raises
      DatasetError naming the csv line(s). Speaker: the column, else the file name's (`speaker_of`: the stem
      before its first '_' or '-').
    - otherwise `<root>/<class>/**/<speaker>_<anything>` or `<root>/<class>/<speaker>/<name>`, with a video
      extension (mp4|m4v|mov|avi|mkv|webm): class folders mapped to LABELS as `load_folder` does (other names
      kept as they are), speaker as `speaker_of` says; videos outside a class folder are skipped with a
      DatasetWarning.

    Audio: the csv's audio column, else a file with the video's stem and an audio extension next to it
    (clip.mp4 + clip.wav) as `source` (meta audio="file"), else the video's own track through ffmpeg
    (source = the video, meta audio="container"). `video` is always set; dataset = "video_folder".
    """
    root = _root(root, "video_folder", real=False)
    table = root / VIDEO_LABELS_CSV
    if table.is_file():
        return _video_csv(root, table)
    skipped = Skipped(
        "video_folder", root, "<class>/<file> with video extension " + "/".join(VIDEO_EXTENSIONS)
    )
    records = []
    for path in data_files(root, VIDEO_EXTENSIONS):
        rel = path.relative_to(root)
        if len(rel.parts) < 2:
            skipped.add(path, "not inside a class folder")
            continue
        folder = rel.parts[0]
        records.append(_video_record(root, path, L.to_label(folder) or folder, folder, speaker_of(rel), None))
    records = same_names("video_folder", root, records)
    check_speakers("video_folder", root, records)
    records = skipped.finish(records)
    return sorted(records, key=lambda r: str(r.video))


# ----------------------------------------------------------------------------------- registry, lookup
LOADERS: dict[str, Callable[..., list[Record]]] = {
    "emodb": load_emodb,
    "ravdess": load_ravdess,
    "tess": load_tess,
    "savee": load_savee,
    "cremad": load_cremad,
    "fer2013": load_fer2013,
    "folder": load_folder,
    "labels_csv": load_labels_csv,
    "video_folder": load_video_folder,
    "synthetic": load_synthetic,
}


def default_data_root() -> Path | None:
    """Where data sets live: $EDGE_SER_DATA if set, else `<repo>/../shared/datasets` if present, else None."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
    return shared if shared.is_dir() else None


def find_dataset(name: str) -> Path:
    """The folder of data set `name` under the default data root, or DatasetError saying how to set it."""
    if name not in LOADERS:
        raise ConfigError(f"unknown data set {name!r}; choose one of {sorted(LOADERS)}")
    if name not in DATASET_FOLDERS:
        raise DatasetError(
            f"{name}: has no default location; pass its folder with --root (or give the folder itself as --data)"
        )
    root = default_data_root()
    if root is None:
        shared = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
        raise DatasetError(
            f"{name}: no data root ({ENV_VAR} is not set, and {shared} does not exist): set {ENV_VAR} to the "
            f"folder that holds {DATASET_FOLDERS[name][0]}/{ROOT_FLAG_HINT}"
        )
    for folder in DATASET_FOLDERS[name]:
        if (root / folder).is_dir():
            return root / folder
    source = f"{ENV_VAR}={root}" if os.environ.get(ENV_VAR, "").strip() else f"default data root {root}"
    hint = " (generate it with converters.data.synthetic.write)" if name == "synthetic" else ""
    raise DatasetError(
        f"{name}: {source} has no folder named {' or '.join(DATASET_FOLDERS[name])}{hint}; "
        f"point {ENV_VAR} at the folder that holds {DATASET_FOLDERS[name][0]}/{ROOT_FLAG_HINT}"
    )


def load_dataset(
    name: str, root: str | os.PathLike | None = None, *, strict: bool = False, **options
) -> Loaded:
    """Load data set `name` (a LOADERS key) from `root`, or from `find_dataset(name)` when root is None.

    Only records whose audio opens are kept (`check_decodable`: a header parse per file): each other one is
    skipped with an InputWarning naming it and listed in the result's `undecodable`; `strict` raises
    DatasetError on the first instead.
    """
    if name not in LOADERS:
        raise ConfigError(f"unknown data set {name!r}; choose one of {sorted(LOADERS)}")
    records = LOADERS[name](find_dataset(name) if root is None else root, **options)
    return check_decodable(name, records, strict=strict)


def sound_records(dataset: str, records: Loaded) -> Loaded:
    """The records of a corpus an audio command reads (`converters.pipeline.load_records`): one per recording.

    RAVDESS and SAVEE list each video clip too (`load_ravdess`, `load_savee`): a clip whose sound is a WAV also
    listed (meta audio="wav") is that WAV's recording again, and a RAVDESS video-only clip (02) without its WAV
    (audio="none") has no sound. Both are left out, with one DatasetWarning counting them; a clip with its own
    sound track (audio="container") stays. Before, a RAVDESS folder holding the video zips beside the audio ones
    gave each recording three times to train, eval and data (a random split put one WAV in train and test).
    """
    wavs = {r.source for r in records if r.video is None}
    twins = [r for r in records if r.video is not None and r.get("audio") == "wav" and r.source in wavs]
    mute = [r for r in records if r.video is not None and r.get("audio") == "none"]
    if not twins and not mute:
        return records
    gone = {id(r) for r in twins + mute}
    kept = [r for r in records if id(r) not in gone]
    said = []
    if twins:
        said.append(f"{len(twins)} video clip(s) whose sound is a WAV listed too (counted once, as the WAV)")
    if mute:
        said.append(
            f"{len(mute)} video-only clip(s) with no sound and no WAV (e.g. {mute[0].video.name}: "
            f"{mute[0].get('expected_audio', 'no WAV')} is missing)"
        )
    warnings.warn(
        f"{dataset}: left out of the audio data: {'; '.join(said)}",
        DatasetWarning,
        stacklevel=2,
    )
    if not kept:
        raise DatasetError(f"{dataset}: none of its {len(records)} clips has sound: {'; '.join(said)}")
    return Loaded(kept, records.undecodable, records.undecodable_records)
