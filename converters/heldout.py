"""Which speakers a model saw: recorded with a bundle's split, and checked when the bundle is evaluated.

A speaker-independent figure is only that if the scored files' speakers were neither trained on nor used for
validation. `split_record` writes the split a bundle was made with (for a speaker split: its folds and the
speakers of each part) into the manifest's `accuracy.split`; `seen_note` reads it back when `edge-ser eval`
scores the bundle on the same data set and says when the scored files include speakers (or, after a random
split, clips) the bundle was trained or validated on, as happens when eval is given other `--folds` than the
bundle was made with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from converters.data.records import Record
from converters.data.splits import Split


def split_record(
    kind: str, seed: int, fold: int, folds: int, split: Split, speakers: Sequence[str]
) -> dict[str, Any]:
    """The manifest's `accuracy.split` for a split of a data set whose files' speakers are `speakers`: kind, seed,
    sizes, and for a speaker split the fold, the fold count and each part's speakers (sorted)."""
    record: dict[str, Any] = {"kind": kind, "seed": seed, "fold": fold, "sizes": split.sizes()}
    if kind == "speaker":
        spk = np.asarray([str(s) for s in speakers])
        record["folds"] = folds
        for part in ("train", "val", "test"):
            record[f"{part}_speakers"] = sorted(set(spk[getattr(split, part)]))
    return record


def speakers_line(record: Mapping[str, Any]) -> str:
    """The validation and test speakers of a split record, for a command's split line ("" for a random one).

    With too few speakers for a validation speaker (`--folds 2`), validation is a tenth of the training speakers'
    clips: said so, not listed as if its speakers were held out of training."""
    if "test_speakers" not in record:
        return ""
    test = f"test speakers {', '.join(record['test_speakers'])}"
    if set(record["val_speakers"]) & set(record.get("train_speakers") or ()):
        return (
            "; validation: a tenth of the training speakers' clips (too few speakers for a validation speaker); "
            + test
        )
    val = ", ".join(record["val_speakers"]) or "none (a tenth of the training speakers' clips)"
    return f"; val speakers {val}; {test}"


def seen_note(
    accuracy: Mapping[str, Any], data: str, chosen: Sequence[Record], *, split: str, seed: int
) -> str | None:
    """Why a figure of the bundle whose manifest `accuracy` this is, on files `chosen` of data set `data`, is not
    on unseen data (None when it is, or when the manifest does not say what the bundle saw)."""
    made = accuracy.get("split")
    if accuracy.get("dataset") != data or not chosen or not isinstance(made, Mapping):
        return None
    seen = {str(s) for part in ("train_speakers", "val_speakers") for s in made.get(part) or ()}
    if seen:
        hit = [r for r in chosen if str(r.speaker) in seen]
        if not hit:
            return None
        names = sorted({str(r.speaker) for r in hit})
        held = made.get("test_speakers") or []
        return (
            f"{len(hit)} of {len(chosen)} files are of speakers the bundle was trained or validated on "
            f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''}): not a speaker-independent figure"
            + (
                f"; the speakers it never saw: {', '.join(held)} (--speakers {','.join(held)})"
                if held
                else (
                    "; the bundle's own speaker-independent figure is in its manifest (edge-ser info)"
                    if accuracy.get("speaker_independent")
                    else ""
                )
            )
        )
    if made.get("kind") == "random":
        if split == "random" and seed == made.get("seed"):
            return (
                f"the bundle's random test part of {data}: clips it never saw, of speakers it was trained on "
                "(not a speaker-independent figure)"
            )
        return (
            f"the bundle was trained on a random split of {data} (seed {made.get('seed')}), so these files include "
            f"clips it was trained on; --split random --seed {made.get('seed')} scores its test part only"
        )
    return None


def missing_classes(y: np.ndarray, classes: Sequence[str], split: Split) -> str | None:
    """Which classes a split leaves without a training (or validation) clip, said as a warning (None if none):
    a class never trained on is a dead output whose test clips all count as errors, which a small data set's
    speaker fold can do without anyone noticing."""
    y = np.asarray(y)
    gaps = []
    for part in ("train", "val"):
        idx = getattr(split, part)
        if part == "val" and not len(idx):
            continue
        absent = [c for i, c in enumerate(classes) if not np.any(y[idx] == i)]
        if absent:
            gaps.append(f"no {part} clip of {', '.join(absent)}")
    if not gaps:
        return None
    return (
        "; ".join(gaps) + ": the model cannot learn a class it never trains on (its test clips all count as "
        "errors), and early stopping does not see a class validation lacks; choose another --fold or --seed, or "
        "gather more clips of the class"
    )
