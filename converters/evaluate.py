"""`edge-ser eval`: a bundle's accuracy on a labelled data set, measured through the device path.

Every file goes through `edge_ser.recognizer.Recognizer` exactly as on a device (no torch). The data set's
records carry shared labels (converters.data.labels); files whose label the bundle does not know are counted,
not scored. A file that fails to decode is skipped with a warning naming it and counted (`strict`: fail).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from converters.data import Record, class_order
from converters.pipeline import confusion, listed_split
from edge_ser.errors import AudioFormatError, ConfigError, DatasetError, InputWarning, VideoFormatError
from edge_ser.fileio import atomic_write, report_file, write_png
from edge_ser.text import drawable

DECODE_ERRORS = (AudioFormatError, VideoFormatError, OSError)
"""What a file that cannot be read raises: skipped (or fatal with --strict). Anything else is a real error."""
SPLITS = ("all", "test", "random", "speaker")

REPORT_SUFFIXES = (".json", ".md", ".png")
"""The files `write_outputs` writes for --out OUT (OUT.json, OUT.md, OUT.png; OUT may name one of them)."""


# ------------------------------------------------------------------------------------------- selection
@dataclass(frozen=True)
class Selection:
    """Which records of a data set to evaluate on.

    split: "all"; "test" (the loader's own test split, meta split=test, e.g. FER-2013); "random" / "speaker":
    the test part of the split `edge-ser train --split random|speaker --seed S --fold F` holds out.
    speakers: keep only these speakers (actors). limit: at most N files, spread evenly over the sorted list.
    """

    split: str = "all"
    speakers: tuple[str, ...] = ()
    seed: int = 0
    fold: int = 0
    folds: int = 5
    limit: int | None = None

    def describe(self) -> str:
        parts = [self.split]
        if self.split == "random":
            parts = [f"random 80/10/10 test part, seed {self.seed}"]
        elif self.split == "speaker":
            parts = [f"speaker {self.folds}-fold, test fold {self.fold}, seed {self.seed}"]
        if self.speakers:
            parts.append("speakers " + ",".join(self.speakers))
        if self.limit is not None:
            parts.append(f"limit {self.limit}")
        return "; ".join(parts)


def select(records: Sequence[Record], sel: Selection, *, name: str | None = None) -> list[Record]:
    """The records `sel` asks for, in their order; ConfigError when the selection is empty or impossible,
    naming the data set (`name`; else the records' own data set name when they share one)."""
    if sel.split not in SPLITS:
        raise ConfigError(f"--split {sel.split!r}: choose one of {', '.join(SPLITS)}")
    records = list(records)
    if sel.split == "test":
        records = [r for r in records if r.get("split") == "test"]
        if not records:
            raise ConfigError(
                "--split test: this data set defines no test split; use --speakers or --split speaker"
            )
    elif sel.split in ("random", "speaker"):  # the split training draws (`listed_split`): the same test files
        name = name or _data_name(records)
        part = listed_split(records, None, sel.split, seed=sel.seed, fold=sel.fold, k=sel.folds, name=name)
        records = [records[i] for i in part.test]
    if sel.speakers:
        present = {r.speaker for r in records}
        missing = [s for s in sel.speakers if s not in present]
        if missing:
            raise ConfigError(
                f"--speakers {','.join(missing)}: not in the selection (speakers: {', '.join(sorted(present))})"
            )
        records = [r for r in records if r.speaker in set(sel.speakers)]
    if sel.limit is not None:
        if sel.limit < 1:
            raise ConfigError(f"--limit {sel.limit} must be >= 1")
        if sel.limit < len(records):
            picks = np.unique(np.linspace(0, len(records) - 1, sel.limit).round().astype(int))
            records = [records[i] for i in picks]
    return records


def select_undecodable(
    records: Sequence[Record], sel: Selection, split: dict[str, Any] | None = None
) -> list[tuple[Any, str]]:
    """The files the data-set loader skipped as undecodable (`records.undecodable`) that `sel` would have
    chosen: all of them for the whole data set; for --speakers those of the speakers named, for --split speaker
    those of the test speakers (`split`: `split_speakers`), for --split test those of the test split. A random
    draw or --limit picks among the files that open, so none. Before 2026-12-07 every skipped file of the data set
    was counted as listed and skipped in the report of any selection (`--speakers X`: "3 listed, 2 skipped",
    the two of other speakers)."""
    bad = list(getattr(records, "undecodable", []))
    if sel.split == "all" and not sel.speakers and sel.limit is None:
        return bad
    who = list(getattr(records, "undecodable_records", []))
    if len(who) != len(bad) or sel.split == "random" or sel.limit is not None:
        return []
    test = set((split or {}).get("test_speakers") or ())
    return [
        b
        for b, r in zip(bad, who, strict=True)
        if (sel.split != "test" or r.get("split") == "test")
        and (sel.split != "speaker" or r.speaker in test)
        and (not sel.speakers or r.speaker in sel.speakers)
    ]


def split_speakers(
    records: Sequence[Record], sel: Selection, *, name: str | None = None
) -> dict[str, Any] | None:
    """For `--split speaker`: the split as training records it (`converters.heldout.split_record`: folds and the
    train / val / test speakers), so a report names the held-out speakers; None for any other split."""
    if sel.split != "speaker":
        return None
    from converters.data.splits import speaker_seed_note
    from converters.heldout import split_record

    records = list(records)
    name = name or _data_name(records)
    part = listed_split(records, None, "speaker", seed=sel.seed, fold=sel.fold, k=sel.folds, name=name)
    speakers = [r.speaker for r in records]
    made = split_record("speaker", sel.seed, sel.fold, sel.folds, part, speakers)
    made["seed_note"] = speaker_seed_note(speakers, sel.folds)
    return made


def _data_name(records: Sequence[Record]) -> str:
    """The data set's name the records share (a folder's: the folder's name), else "the data set"."""
    names = {r.get("root") if r.dataset == "folder" else r.dataset for r in records}
    return str(names.pop()) if len(names) == 1 and None not in names else "the data set"


# --------------------------------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class Metrics:
    """Scores over the scored files: accuracy, UAR (mean recall over the classes present), per-class recall."""

    classes: tuple[str, ...]
    matrix: np.ndarray
    """Counts [true, predicted] in `classes` order."""

    @property
    def n(self) -> int:
        return int(self.matrix.sum())

    @property
    def support(self) -> dict[str, int]:
        return {c: int(v) for c, v in zip(self.classes, self.matrix.sum(1), strict=True)}

    @property
    def recall(self) -> dict[str, float | None]:
        """Recall per class; None for a class with no file (it does not count in UAR)."""
        rows = self.matrix.sum(1)
        return {
            c: (float(self.matrix[i, i] / rows[i]) if rows[i] else None) for i, c in enumerate(self.classes)
        }

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.matrix) / self.n) if self.n else math.nan

    @property
    def uar(self) -> float:
        present = [r for r in self.recall.values() if r is not None]
        return float(np.mean(present)) if present else math.nan


def metrics(true: Sequence[str], predicted: Sequence[str], classes: Sequence[str]) -> Metrics:
    """Metrics of label pairs; every label must be one of `classes` (the bundle's labels)."""
    index = {c: i for i, c in enumerate(classes)}
    t = np.array([index[x] for x in true], dtype=np.int64)
    p = np.array([index[x] for x in predicted], dtype=np.int64)
    return index_metrics(t, p, classes)


def index_metrics(true: Sequence[int], predicted: Sequence[int], classes: Sequence[str]) -> Metrics:
    """Metrics of integer class indices into `classes` (a trained model's labels and arg-max outputs)."""
    t = np.asarray(true, dtype=np.int64)
    p = np.asarray(predicted, dtype=np.int64)
    return Metrics(tuple(classes), confusion(t, p, len(classes)))


# ---------------------------------------------------------------------------------------------- report
@dataclass
class EvalReport:
    """What `edge-ser eval` prints: the scores, what was not scored and why, OOD flags and time per clip."""

    bundle: str
    data: str
    selection: str
    metrics: Metrics
    listed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    unknown: dict[str, int] = field(default_factory=dict)
    ood: int = 0
    ood_available: bool = False
    unknown_learnt: bool = False
    """Whether the files of an unknown class joined the speaker statistics (a bundle that learns its speaker, adapt
    not "off"), as a device session hears whatever is said: they move the scored files' figures (RAVDESS's 16 calm
    clips of actors 01 and 10 cost av_fn_audio ~1.2 points of UAR, docs/fusion.md)."""
    silent: int = 0
    """Scored files with no speech the live voice gate would hear (digital silence, or below -45 dBFS at their
    loudest: `Prediction.silent`) or no voice at all (noise: `Prediction.has_voice` False): scored as the model
    answered, and counted so the figures say so."""
    seconds: float = 0.0
    features_ms: float = 0.0
    engine: str = ""
    split: dict[str, Any] | None = None
    """For --split speaker: the split's folds and train / val / test speakers (`split_speakers`)."""

    @property
    def predicted(self) -> int:
        """Files that went through the model (scored or of an unknown class)."""
        return self.metrics.n + sum(self.unknown.values())

    @property
    def ms_per_clip(self) -> float:
        return 1e3 * self.seconds / self.predicted if self.predicted else math.nan

    def to_dict(self) -> dict[str, Any]:
        m = self.metrics
        return {
            "bundle": self.bundle, "data": self.data, "selection": self.selection, "engine": self.engine,
            "files": {"listed": self.listed, "predicted": self.predicted, "scored": m.n,
                      "skipped": len(self.skipped), "unknown_class": sum(self.unknown.values())},
            "accuracy": _num(m.accuracy), "uar": _num(m.uar), "recall": m.recall, "support": m.support,
            "labels": list(m.classes), "confusion": m.matrix.tolist(),
            "unknown_classes": self.unknown, "unknown_learnt": self.unknown_learnt, "skipped": [{"file": f, "error": e} for f, e in self.skipped],
            "silent": self.silent,
            "ood": {"available": self.ood_available, "count": self.ood,
                    "fraction": _num(self.ood / self.predicted) if self.predicted else None},
            "time": {"seconds": round(self.seconds, 3), "ms_per_clip": _num(self.ms_per_clip),
                     "features_ms_per_clip": round(self.features_ms, 3)},
            **({"split": self.split} if self.split is not None else {}),
        }  # fmt: skip

    def text(self) -> str:
        """The human summary: headline, confusion table, per-class recall, what was left out."""
        m = self.metrics
        lines = [
            f"{self.bundle} on {self.data} ({self.selection}; {self.engine})",
            f"  files: {self.listed} listed, {m.n} scored, {sum(self.unknown.values())} of a class the bundle "
            f"does not know, {len(self.skipped)} skipped (unreadable or too short for the model)",
            f"  accuracy {_pct(m.accuracy)}, UAR {_pct(m.uar)} over {sum(v is not None for v in m.recall.values())}"
            f" classes present (chance UAR {_pct(1 / max(1, sum(v is not None for v in m.recall.values())))})",
            f"  OOD-flagged: {self._ood_text()}",
            *(
                [
                    f"  no speech: {self.silent} scored file(s) are silent, below the live voice gate (-45 dBFS at "
                    "their loudest) or without voice, scored as the model answered (predict marks them)"
                ]
                if self.silent
                else []
            ),  # fmt: skip
            f"  time: {self.ms_per_clip:.1f} ms per clip wall clock ({self.features_ms:.1f} ms features), "
            f"{self.seconds:.1f} s in all",
            "",
            *confusion_table(m),
        ]
        if self.unknown:
            lines += ["", "not scored (label not among the bundle's): "
                      + ", ".join(f"{k} {v}" for k, v in self.unknown.items())]  # fmt: skip
            if self.unknown_learnt:
                lines.append(
                    "  they joined the speaker statistics all the same, as a device session hears whatever is said "
                    "(leave them out of the files to score the known classes alone)"
                )
        if self.skipped:
            lines += ["", "skipped (unreadable or too short for the model):"] + [
                f"  {f}: {e}" for f, e in self.skipped
            ]
        return "\n".join(lines)

    def _ood_text(self) -> str:
        if not self.ood_available:
            return "0 (not available: this edge_ser's predictions carry no `ood` flag)"
        rate = _pct(self.ood / self.predicted if self.predicted else math.nan)
        return f"{self.ood} of the {self.predicted} files classified ({rate}; scored or not)"


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(float(x), 6)


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def confusion_table(m: Metrics) -> list[str]:
    """The confusion matrix as text lines (rows true, columns predicted), with recall and support per row."""
    width = max(9, *(len(c) for c in m.classes))
    corner = "true \\ predicted"
    head = f"{corner:>{width + 7}} " + " ".join(f"{c[:8]:>8}" for c in m.classes)
    lines = [head + "  recall  files"]
    for c, row in zip(m.classes, m.matrix, strict=True):
        r = m.recall[c]
        rec = "     -" if r is None else f"{100 * r:5.1f}%"
        lines.append(f"  {c:>{width + 5}} " + " ".join(f"{v:8d}" for v in row) + f"  {rec}  {row.sum():5d}")
    return lines


# ------------------------------------------------------------------------------------------------- run
ADAPT_MODES = ("online", "all", "off")
"""How `evaluate` meets a speaker-normalised bundle's speakers: "online" = each speaker a new session learnt clip
by clip, in a seeded random order (a device meets emotions in no particular order; a data set's files are often
sorted by emotion); "all" = each speaker's clips all join the statistics first, then each is classified with them
(per-speaker normalisation, unlabelled: the figure papers report); "off" = the training prior only."""


def _stream(
    recognizer: Any, records: Sequence[Record], strict: bool, adapt: str = "online", seed: int | None = 0
) -> Iterator[tuple[Record, Any, str | None]]:
    """(record, prediction or None, decode error or None) per record, through `iter_predict_files` in chunks of
    `BATCH_ROWS` files (memory: one chunk); a chunk with a file that fails to decode runs again file by file.
    `adapt`: one of ADAPT_MODES."""
    for group in _sessions(recognizer, records, adapt, seed):
        yield from _stream_group(recognizer, group, strict, learn_first=adapt == "all")


def _sessions(
    recognizer: Any, records: Sequence[Record], adapt: str = "online", seed: int | None = 0
) -> list[Sequence[Record]]:
    """The records as the device would meet them: a bundle that learns its speaker (`Recognizer.speaker`) sees
    each speaker as a new session (statistics reset), in a random order seeded by `seed` and the speaker when
    `adapt` is "online" (`seed` None: in the records' order); any other bundle, or `adapt` "off", takes them all
    at once."""
    if adapt not in ADAPT_MODES:
        raise ConfigError(f"adapt must be one of {ADAPT_MODES}, got {adapt!r}")
    if adapt == "off" or not getattr(recognizer, "adapting", False):  # no speaker statistics that learn
        return [records]
    order: dict[str, list[Record]] = {}
    for r in records:
        order.setdefault(str(r.speaker), []).append(r)
    if adapt == "online" and seed is not None:
        for speaker, group in order.items():
            digest = hashlib.sha256(f"{seed}/{speaker}".encode()).digest()
            np.random.default_rng(int.from_bytes(digest[:8], "little")).shuffle(group)
    return list(order.values())


def _stream_group(
    recognizer: Any, records: Sequence[Record], strict: bool, *, learn_first: bool = False
) -> Iterator[tuple[Record, Any, str | None]]:
    from edge_ser.recognizer import BATCH_ROWS

    if hasattr(recognizer, "reset_speaker"):
        recognizer.reset_speaker()
    if learn_first:  # the whole session's statistics first, then every chunk classified with them
        recognizer.learn_files([r.source for r in records])
        with recognizer.frozen_speaker():
            yield from _stream_chunks(recognizer, records, strict, BATCH_ROWS)
        return
    yield from _stream_chunks(recognizer, records, strict, BATCH_ROWS)


def _stream_chunks(
    recognizer: Any, records: Sequence[Record], strict: bool, rows: int
) -> Iterator[tuple[Record, Any, str | None]]:
    for start in range(0, len(records), rows):
        chunk = records[start : start + rows]
        try:
            preds = list(recognizer.iter_predict_files([r.source for r in chunk]))
        except DECODE_ERRORS:
            if strict:
                raise
        else:
            yield from ((r, p, None) for r, p in zip(chunk, preds, strict=True))
            continue
        for r in chunk:
            try:
                (p,) = recognizer.iter_predict_files([r.source])
            except DECODE_ERRORS as e:
                msg = str(e)  # our readers' messages start with the file's name; say it once
                yield r, None, msg.removeprefix(f"{r.source}: ")
            else:
                yield r, p, None


def evaluate(
    recognizer: Any,
    records: Sequence[Record],
    *,
    data: str,
    selection: str,
    strict: bool = False,
    undecodable: Sequence[tuple[Any, str]] = (),
    adapt: str = "online",
    seed: int | None = 0,
    progress: bool | None = None,
    split: dict[str, Any] | None = None,
) -> EvalReport:
    """Run every record through `recognizer` (an `edge_ser.recognizer.Recognizer`) and score it;
    `undecodable`: files the data-set loader already skipped (counted with the ones skipped here); `adapt`, `seed`:
    how a speaker-normalised bundle meets each speaker (ADAPT_MODES).

    `progress`: a bar over the files on stderr, as `edge-ser features` and `train` show (tqdm; never when
    stderr is not a terminal); False: none; None (the default): only when stdout is a terminal too, so a report
    piped or redirected (`--json | jq`, `> report.json`) runs without one."""
    labels = tuple(recognizer.labels)
    known = set(labels)
    true: list[str] = []
    pred: list[str] = []
    unknown: Counter[str] = Counter()
    skipped: list[tuple[str, str]] = [(str(f), str(e)) for f, e in undecodable]
    ood, ood_available, features_ms, silent = 0, False, 0.0, 0
    t0 = time.perf_counter()
    if progress is None:
        progress = bool(getattr(sys.stdout, "isatty", lambda: False)())
    with tqdm(
        total=len(records), desc=f"eval {data}", unit="file", disable=None if progress else True, leave=False
    ) as bar:
        for r, p, error in _stream(recognizer, list(records), strict, adapt, seed):
            bar.update()
            if p is None:
                warnings.warn(InputWarning(f"{r.source}: skipped: {error}"), stacklevel=2)
                skipped.append((str(r.source), str(error)))
                continue
            flag = getattr(p, "ood", None)
            ood_available = ood_available or flag is not None
            ood += bool(flag)
            silent += (
                bool(getattr(p, "silent", False)) or getattr(p, "has_voice", None) is False
            ) and r.label in known
            features_ms += p.timings.get("features", 0.0)
            if r.label in known:
                true.append(r.label)
                pred.append(p.label)
            else:
                unknown[r.label] += 1
    seconds = time.perf_counter() - t0
    n = len(true) + sum(unknown.values())
    if skipped and not n:
        raise DatasetError(
            f"{data}: none of the {len(skipped)} files could be read by this bundle's reader "
            f"(first: {skipped[0][0]}: {skipped[0][1]})"
        )
    return EvalReport(
        bundle=recognizer.bundle.source,
        data=data,
        selection=selection,
        metrics=metrics(true, pred, labels),
        listed=len(records) + len(undecodable),
        skipped=skipped,
        unknown={k: unknown[k] for k in class_order(unknown)},
        unknown_learnt=bool(unknown) and adapt != "off" and bool(getattr(recognizer, "adapting", False)),
        ood=ood,
        ood_available=ood_available,
        silent=silent,
        seconds=seconds,
        features_ms=features_ms / n if n else 0.0,
        engine=recognizer.engine.describe(),
        split=split,
    )


# --------------------------------------------------------------------------------------------------- png
def plot_confusion_png(report: EvalReport, path: Path) -> Path:
    """The confusion matrix of an eval report as a PNG (see `draw_confusion_png`)."""
    m = report.metrics
    title = f"{Path(report.bundle).name} on {report.data}: acc {_pct(m.accuracy)}, UAR {_pct(m.uar)}, n={m.n}"
    return draw_confusion_png(m, title, path)


def draw_confusion_png(m: Metrics, title: str, path: Path) -> Path:
    """A confusion matrix as a PNG (OpenCV, as the roofline plot): cells shaded by row share, counts inside."""
    from edge_ser.vision._cv2 import import_cv2

    cv2 = import_cv2("drawing the confusion matrix")
    k, cell, left, top = len(m.classes), 70, 130, 120
    w, h = left + k * cell + 110, top + k * cell + 40
    img = np.full((h, w, 3), 255, np.uint8)
    font, black = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0)
    rows = np.maximum(m.matrix.sum(1, keepdims=True), 1)
    share = m.matrix / rows
    for i in range(k):
        for j in range(k):
            x, y = left + j * cell, top + i * cell
            shade = int(255 - 200 * share[i, j])
            cv2.rectangle(img, (x, y), (x + cell, y + cell), (255, shade, shade), -1)
            cv2.rectangle(img, (x, y), (x + cell, y + cell), (180, 180, 180), 1)
            ink = (255, 255, 255) if share[i, j] > 0.6 else black
            cv2.putText(img, str(m.matrix[i, j]), (x + 18, y + 42), font, 0.6, ink, 1, cv2.LINE_AA)
        r = m.recall[m.classes[i]]
        rec = "-" if r is None else f"{100 * r:.0f}%"
        cv2.putText(img, rec, (left + k * cell + 10, top + i * cell + 42), font, 0.5, black, 1, cv2.LINE_AA)
        name = drawable(m.classes[i])
        cv2.putText(img, name[:10], (8, top + i * cell + 42), font, 0.5, black, 1, cv2.LINE_AA)
        # column heads take turns at two heights: adjacent long names ran into each other ("contempt sarcasm")
        head = (left + i * cell + 4, top - 10 - 16 * (i % 2))
        cv2.putText(img, name[:8], head, font, 0.45, black, 1, cv2.LINE_AA)
    cv2.putText(img, drawable(title)[:90], (8, 28), font, 0.55, black, 1, cv2.LINE_AA)
    cv2.putText(img, "rows: true, columns: predicted", (8, 56), font, 0.45, black, 1, cv2.LINE_AA)
    cv2.putText(img, "recall", (left + k * cell + 10, top - 10), font, 0.45, black, 1, cv2.LINE_AA)
    return write_png(path, img)


def write_outputs(report: EvalReport, out: Path, command: str | None = None) -> tuple[Path, Path, Path]:
    """OUT.json, OUT.md and OUT.png, each with the command that made them (temp file + rename)."""
    # OUT given as one of the three files, any case: its stem (`report_file`, the rule of bench's reports); STEM +
    # suffix, not with_suffix: "ser_emodb.tess" and "ser_emodb.cremad" both became ser_emodb.json
    json_path, md_path, png_path = (report_file(out, s, REPORT_SUFFIXES) for s in REPORT_SUFFIXES)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    made = f"Made by: `{command}`\n" if command else ""
    atomic_write(json_path, json.dumps({"command": command, **report.to_dict()}, indent=2) + "\n")
    png = plot_confusion_png(report, png_path)
    md = f"# edge-ser eval: {Path(report.bundle).name} on {report.data}\n\n{made}\n```\n{report.text()}\n```\n\n"
    atomic_write(md_path, md + f"![confusion matrix]({png.name})\n")
    return json_path, md_path, png


__all__ = [
    "EvalReport",
    "Metrics",
    "Selection",
    "draw_confusion_png",
    "evaluate",
    "index_metrics",
    "metrics",
    "plot_confusion_png",
    "select",
    "select_undecodable",
    "split_speakers",
    "write_outputs",
]
