"""Which speakers a model saw: recorded with a bundle's split, and checked when the bundle is evaluated.

A speaker-independent figure is only that if the scored files' speakers were neither trained on nor used for
validation. `split_record` writes the split a bundle was made with (for a speaker split: its folds and the
speakers of each part) into the manifest's `accuracy.split`; `seen_note` reads it back when `edge-ser eval`
scores the bundle on the same data set and says when the scored files include speakers (or, after a random
split, clips) the bundle was trained or validated on, as happens when eval is given other `--folds` than the
bundle was made with.

The same recordings can come under another name (a copy of the folder, renamed), which a comparison of names
misses (it reported 100 % UAR without a word). So the record also holds `clip_probes` (`clip_probes`): for each
speaker the bundle trained or validated on (at most `PROBED_SPEAKERS`), the size and a short hash of the bytes
of its first `PROBES_PER_SPEAKER` clips (EMODB's 10 speakers: 1.0 KB of manifest as written, indented, RAVDESS's
12 actors here 1.2 KB; one hash per clip would be ~18 KB for EMODB's 535). A data set of another name holding any of those files
is the bundle's data set under that name (`probe_matches`, which hashes only the files of a probe's size); the
same recordings re-encoded are not known. A record without probes
(bundles made before them) is compared by speaker ids: overlapping ids give a note that says they may be other
people, unless both names are corpora the loaders know (ser_emodb on RAVDESS shares ids 03-16, not people).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from converters.data import LOADERS
from converters.data.records import Record
from converters.data.splits import Split
from edge_ser.schema import speaker_ids  # the one rule for a split record's speaker lists (edge-ser info too)

PROBES_PER_SPEAKER = 2
"""Clips per seen speaker whose size and hash the split record keeps (`clip_probes`)."""

PROBED_SPEAKERS = 32
"""At most this many speakers are probed, spread evenly over them in sorted order (RAVDESS's 24 all are;
FER-2013 has an id per image): the probes stay near 3 KB of manifest (32 two-character ids: 3.2 KB as written),
and a copy is known by any of them."""

FIXED_SPLIT_FOLDERS = {"Training": "train", "PublicTest": "validation", "PrivateTest": "test"}
"""A `fixed` split record's part names (FER-2013's usages) and the folders (`split` of each record) that hold
them: face_fer records `train: Training`, so the train/ images are the ones it was trained on."""

_PROBE_HEX = 16
"""Hex digits of a probe's SHA-256 (64 bits; with the file size beside it, a false match is not a concern)."""


def split_record(
    kind: str,
    seed: int,
    fold: int,
    folds: int,
    split: Split,
    speakers: Sequence[str],
    skipped: Sequence[int] = (),
    records: Sequence[Record] | None = None,
) -> dict[str, Any]:
    """The manifest's `accuracy.split` for a split of a data set whose files' speakers are `speakers`: kind, seed,
    sizes, and for a speaker split the fold, the fold count and each part's speakers (sorted). `skipped`: the
    positions, in the data set's file listing, of the files training skipped (silent, too short, undecodable
    samples), recorded as `skipped_listed` when there are any: the split is drawn over every listed file
    (`converters.pipeline.listed_split`), so with them the record names exactly the clips trained on
    (`converters.export.tflite_bundle.training_paths` calibrates on those). `records`: the files, in the order
    of `speakers`; given, `clip_probes` of the speakers trained or validated on (every speaker of a random
    split) are recorded too, so eval knows the files under another name (module doc)."""
    record: dict[str, Any] = {"kind": kind, "seed": seed, "fold": fold, "sizes": split.sizes()}
    spk = np.asarray([str(s) for s in speakers])
    if kind == "speaker":
        record["folds"] = folds
        for part in ("train", "val", "test"):
            record[f"{part}_speakers"] = sorted(set(spk[getattr(split, part)]))
    if len(skipped):
        record["skipped_listed"] = sorted(int(i) for i in skipped)
    if records is not None:
        seen = (
            [*record.get("train_speakers", ()), *record.get("val_speakers", ())] if kind == "speaker" else spk
        )
        probes = clip_probes(records, seen)
        if probes:
            record["clip_probes"] = probes
    return record


def _probe(path: str | os.PathLike[str]) -> str | None:
    """A file's probe, '<bytes>:<first hex digits of the SHA-256 of its bytes>' (`converters.featurize.file_digest`,
    the feature cache's key), or None when it is not a readable file (an in-memory or vanished clip: nothing to
    compare)."""
    from converters.featurize import file_digest

    try:
        return f"{os.path.getsize(path)}:{file_digest(path)[:_PROBE_HEX]}"
    except (OSError, TypeError):
        return None


def clip_probes(
    records: Sequence[Record], speakers: Iterable[str], per_speaker: int = PROBES_PER_SPEAKER
) -> dict[str, list[str]]:
    """For each of `speakers` (those a bundle trained or validated on), the probes (`_probe`) of its first
    `per_speaker` readable clips in path order: {speaker: [probe, ...]}, speakers sorted, none for a speaker
    without a readable clip; of more than `PROBED_SPEAKERS` speakers, that many spread evenly over them."""
    every = sorted({str(s) for s in speakers})
    if len(every) > PROBED_SPEAKERS:
        every = [every[int(i)] for i in np.linspace(0, len(every) - 1, PROBED_SPEAKERS).round()]
    wanted = set(every)
    by_speaker: dict[str, list[str]] = {}
    for r in sorted(records, key=lambda r: str(r.source)):
        spk = str(r.speaker)
        mine = by_speaker.setdefault(spk, []) if spk in wanted else None
        if mine is not None and len(mine) < per_speaker:
            probe = _probe(r.source)
            if probe is not None:
                mine.append(probe)
    return {s: by_speaker[s] for s in sorted(by_speaker) if by_speaker[s]}


_PROBE_RE = re.compile(rf"[0-9]+:[0-9a-f]{{{_PROBE_HEX}}}")


def _well_formed(probes: Any) -> dict[str, list[str]]:
    """The probes of a manifest's `clip_probes` that are what `clip_probes` writes ({speaker: ['<bytes>:<hex>',
    ...]}); anything else in it (a hand-edited or damaged manifest: a number, one string, a list for a map) is
    left out, so eval neither crashes on it nor reads characters of a string as probes."""
    if not isinstance(probes, Mapping):
        return {}
    good = {
        str(s): [p for p in ps if isinstance(p, str) and _PROBE_RE.fullmatch(p)]
        for s, ps in probes.items()
        if isinstance(ps, (list, tuple))
    }
    return {s: ps for s, ps in good.items() if ps}


def _seen_ids(made: Mapping[str, Any]) -> set[str]:
    """The speakers a split record says the bundle trained or validated on (`speaker_ids`)."""
    return {*speaker_ids(made, "train_speakers"), *speaker_ids(made, "val_speakers")}


def probe_matches(probes: Mapping[str, Sequence[str]], records: Sequence[Record]) -> dict[str, list[str]]:
    """Which of `records`' speakers hold a file with one of `probes` (a split record's `clip_probes`): {the
    bundle's speaker: [the ids its files have here, sorted]}. Only files of a probe's byte size are hashed (a
    stat each otherwise), so a data set of other recordings costs no reading."""
    owner = {p: str(s) for s, ps in _well_formed(probes).items() for p in ps}
    sizes = {p.split(":", 1)[0] for p in owner}
    found: dict[str, set[str]] = {}
    for r in records:
        try:
            size = str(os.stat(r.source).st_size)
        except (OSError, TypeError, ValueError):
            continue
        if size in sizes:
            spk = owner.get(_probe(r.source) or "")
            if spk is not None:
                found.setdefault(spk, set()).add(str(r.speaker))
    return {s: sorted(ids) for s, ids in sorted(found.items())}


def _names(speakers: Sequence[str], limit: int = 30) -> str:
    """Speaker ids for a line, at most `limit` of them (FER-2013 has an id per image)."""
    more = f" and {len(speakers) - limit} more" if len(speakers) > limit else ""
    return ", ".join(map(str, speakers[:limit])) + more


def speakers_line(record: Mapping[str, Any]) -> str:
    """The validation and test speakers of a split record, for a command's split line ("" for a random one).

    With 2 folds there is no fold left for validation speakers, so validation is a tenth of the training
    speakers' clips: said so, with why (`--folds 2`, or a data set of only 2 speakers), not listed as if its
    speakers were held out of training."""
    if "test_speakers" not in record:
        return ""
    test = f"test speakers {_names(record['test_speakers'])}"
    if set(record["val_speakers"]) & set(record.get("train_speakers") or ()):
        n = len({str(s) for part in ("train", "val", "test") for s in record.get(f"{part}_speakers") or ()})
        why = (
            f"--folds {record.get('folds', 2)} leaves no fold for validation speakers; --folds 3 or more gives them"
            if n >= 3
            else "too few speakers for a validation speaker"
        )
        return f"; validation: a tenth of the training speakers' clips ({why}); " + test
    val = _names(record["val_speakers"]) or "none (a tenth of the training speakers' clips)"
    return f"; val speakers {val}; {test}"


def _ids_note(
    accuracy: Mapping[str, Any],
    made: Mapping[str, Any],
    data: str,
    chosen: Sequence[Record],
    why: str = "the manifest records no clips to compare by content",
) -> str | None:
    """`seen_note` for a data set `data` of another name than the bundle's, when its record has no `clip_probes`
    or none of them is among the files (`why` says which): the `chosen` files whose speaker ids the bundle trained
    or validated on, said as a possibility (they can be other people, or other recordings of the same people: a
    new session of one lab's speakers), and nothing when both names are corpora the loaders know (module doc)."""
    trained = str(accuracy.get("dataset"))
    seen = _seen_ids(made)
    if not seen or (data in LOADERS and trained in LOADERS):  # two corpora: other people
        return None
    hit = [r for r in chosen if str(r.speaker) in seen]
    if not hit:
        return None
    names = sorted({str(r.speaker) for r in hit})
    return (
        f"{len(hit)} of {len(chosen)} files have speaker ids the bundle was trained or validated on in {trained} "
        f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''}): if these are the same people ({data} "
        f"is {trained}, or holds its recordings), this is not a speaker-independent figure ({why})"
    )


def seen_note(
    accuracy: Mapping[str, Any],
    data: str,
    chosen: Sequence[Record],
    *,
    split: str,
    seed: int,
    listed: Sequence[Record] | None = None,
) -> str | None:
    """Why a figure of the bundle whose manifest `accuracy` this is, on files `chosen` of data set `data`, is not
    on unseen data (None when it is, or when the manifest does not say what the bundle saw). A data set of
    another name is the bundle's when it holds files of its `clip_probes` (looked for in `listed`, every file of
    the data set; default `chosen`): then said as for the same name, after saying so, with the speakers whose
    files matched counted as seen whatever their ids are here; without probes, by speaker ids (`_ids_note`). The
    manifest's `data_name` (the data set's own name, kept when `dataset` is another: ship_ser.py --name) is the
    same name too."""
    made = accuracy.get("split")
    if not chosen or not isinstance(made, Mapping):
        return None
    seen = _seen_ids(made)
    same = ""
    trained = accuracy.get("dataset")
    # `data_name`: the data set's own name when `dataset` is one given to it (ship_ser.py --name); eval gives it
    # that name, and without it the renamed bundle's own folder, re-encoded, was said to be other recordings
    own = accuracy.get("data_name")
    if trained != data and not (isinstance(own, str) and own == data):
        probes = _well_formed(made.get("clip_probes"))
        if not probes:
            return _ids_note(accuracy, made, data, chosen)
        matched = probe_matches(probes, chosen if listed is None else listed)
        # other files; with the same speaker ids they may be other recordings of the same people
        if not matched:
            return _ids_note(
                accuracy, made, data, chosen, "none of the clips the manifest records is among these files"
            )
        same = (
            f"{data} holds recordings the bundle was made from ({trained} under another name: the same files, by "
            f"content, of {len(matched)} of its speakers); "
        )
        if seen:  # a copy keeps its speaker ids; the matched ones are seen whatever they are called here
            seen |= {s for ids in matched.values() for s in ids}
        data = str(trained)
    note = _same_set_note(accuracy, made, data, chosen, seen, split=split, seed=seed)
    return same + note if note else None


def _same_set_note(
    accuracy: Mapping[str, Any],
    made: Mapping[str, Any],
    data: str,
    chosen: Sequence[Record],
    seen: set[str],
    *,
    split: str,
    seed: int,
) -> str | None:
    """`seen_note` on the bundle's own data set `data`, whose speakers `seen` it trained or validated on."""
    if seen:
        hit = [r for r in chosen if str(r.speaker) in seen]
        if not hit:
            return None
        names = sorted({str(r.speaker) for r in hit})
        # a paired-fold bundle (ship_ser.py --paired-fold: av_fn_audio, av_fusion's audio branch) records its test
        # actors as `unseen_speakers`: the note named none of them
        held = speaker_ids(made, "test_speakers") or speaker_ids(made, "unseen_speakers")
        # their files are all in --split all; another split's selection can lack them (--split speaker --fold 1
        # holds actors 01, 02, 03: the `--speakers 01,10` advised was "--speakers 10: not in the selection")
        lacks = split != "all" and not set(held) <= {str(r.speaker) for r in chosen}
        choose = ("--split all " if lacks else "") + f"--speakers {','.join(held)}"
        return (
            f"{len(hit)} of {len(chosen)} files are of speakers the bundle was trained or validated on "
            f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''}): not a speaker-independent figure"
            + (
                f"; the speakers it never saw: {', '.join(held)} ({choose})"
                if held
                else (
                    "; the bundle's own speaker-independent figure is in its manifest (edge-ser info)"
                    if accuracy.get("speaker_independent")
                    else ""
                )
            )
        )
    if made.get("kind") == "fixed":  # a corpus's own named parts (face_fer: FER-2013 Training / PublicTest)
        part = str(made.get("train"))
        folder = FIXED_SPLIT_FOLDERS.get(part, part)
        hit = [r for r in chosen if r.get("split") == folder]
        if hit:
            return (
                f"{len(hit)} of {len(chosen)} files are {data}'s {part} images ({folder}/), which the bundle was "
                f"trained on: not a held-out figure; --split test scores its test images only"
            )
        return None
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


def missing_classes(
    y: np.ndarray,
    classes: Sequence[str],
    split: Split,
    advice: str = "choose another --fold or --seed, or gather more clips",
) -> str | None:
    """Which classes a split leaves without a training (or validation) clip, said as a warning (None if none):
    a class never trained on is a dead output whose test clips all count as errors, which a small data set's
    speaker fold can do without anyone noticing; a class only missing from validation is learnt, but early
    stopping and the validation figure never see it. Each case is said as what it is (a class trained on but
    missing from validation was said to be one "the model cannot learn"). Ends with `advice`."""
    y = np.asarray(y)

    def absent(idx: np.ndarray) -> list[str]:
        return [c for i, c in enumerate(classes) if not np.any(y[idx] == i)]

    untrained = absent(split.train)
    no_val = absent(split.val) if len(split.val) else []
    gaps = [
        f"no {part} clip of {', '.join(names)}"
        for part, names in (("train", untrained), ("val", no_val))
        if names
    ]
    if not gaps:
        return None
    why = []
    if untrained:
        why.append(
            "the model cannot learn a class it never trains on (its test clips all count as errors)"
            + (f": {', '.join(untrained)}" if no_val and set(no_val) - set(untrained) else "")
        )
    learnt = [c for c in no_val if c not in untrained]
    if learnt:
        why.append(
            f"{', '.join(learnt)} {'is' if len(learnt) == 1 else 'are'} trained on, but early stopping and the "
            "validation figure never see "
            + ("it" if len(learnt) == 1 else "them")
            + ", so the epoch kept is chosen without "
            + ("it" if len(learnt) == 1 else "them")
        )
    return "; ".join(gaps) + ": " + "; ".join(why) + (f"; {advice}" if advice else "")


def untested_classes(
    y: np.ndarray,
    classes: Sequence[str],
    split: Split,
    advice: str = "choose another --fold or fewer --folds",
) -> str | None:
    """A warning when the test part of `split` holds clips of only some of the classes (None when it holds all,
    or none): its UAR is the mean recall over the classes it holds, so a test speaker who recorded one class
    scores UAR = that class's recall = accuracy, printed beside accuracy as if it were a UAR over every class
    (a speaker of angry clips only: "test accuracy 1.000, UAR 1.000", unsaid until 2026-12-07). Ends with
    `advice` when it is given."""
    y = np.asarray(y)
    test = y[np.asarray(split.test, dtype=np.int64)]
    if not len(test):
        return None
    absent = [c for i, c in enumerate(classes) if not np.any(test == i)]
    if not absent:
        return None
    held = len(classes) - len(absent)
    what = (
        "its UAR is that class's recall, the same figure as its accuracy"
        if held == 1
        else f"its UAR is the mean recall over those {held} classes"
    )
    return (
        f"no test clip of {', '.join(absent)}: the test part holds {held} of the {len(classes)} classes, so "
        f"{what}, not a figure over every class" + (f"; {advice}" if advice else "")
    )


FEW_CLIPS = 5
"""A speaker, a class or a split's validation or test part with fewer clips than this is warned about
(`few_clips`, `small_parts`; docs/data.md): a fold testing a speaker of n clips scores in steps of 1/n (one clip:
0 or 1) yet counts as much as any other in a mean over folds, and a validation part of n clips chooses the
early-stopping epoch on n clips."""


def _listed(counts: Counter, limit: int = 8) -> str:
    """The names in `counts` with their clip counts, fewest first, at most `limit` of them (`_names`)."""
    few = sorted((n, str(k)) for k, n in counts.items())
    return _names([f"{k} ({n} clip{'s' if n != 1 else ''})" for n, k in few], limit)


def few_clips(records: Sequence[Record]) -> list[str]:
    """Warnings (none when all is well) for the speakers and the classes of `records` with fewer than FEW_CLIPS
    clips, each named with its count. Speakers are left out when 90 % or more have a single clip (FER-2013: an
    id per image, no speakers; two of its 28,709 ids repeat, which warned of 28,707 speakers) or when the files
    name none."""
    out = []
    speakers = Counter(str(r.speaker) for r in records)
    singles = sum(n == 1 for n in speakers.values())
    if speakers and singles < 0.9 * len(speakers):  # FER-2013: 28,705 of its 28,707 ids name one image
        few = Counter({k: n for k, n in speakers.items() if n < FEW_CLIPS and k != "unknown"})
        if few:
            out.append(
                f"{len(few)} speaker(s) with fewer than {FEW_CLIPS} clips: {_listed(few)}. A speaker split or "
                "LOSO fold that tests such a speaker scores in steps of 1/n (one clip: 0 or 1) and counts as much "
                "as any other fold in a mean over folds; as the validation speaker it chooses the early-stopping "
                "epoch on n clips"
            )
    classes = Counter(str(r.label) for r in records)
    few = Counter({k: n for k, n in classes.items() if n < FEW_CLIPS})
    if few:
        out.append(
            f"{len(few)} class(es) with fewer than {FEW_CLIPS} clips: {_listed(few)}. Too few to train, validate "
            "and test on (a random split needs 3 to give such a class one clip of each; a speaker split may give "
            "it none), and its recall moves in steps of 1/n of its test clips"
        )
    return out


def small_parts(split: Split, advice: str = "use more clips, fewer --folds or another --fold") -> str | None:
    """A warning when the validation or test part of `split` has fewer than FEW_CLIPS clips (an empty part is
    `converters.pipeline.check_parts`' error), ending with `advice`; else None."""
    said = []
    for part, name, why in (
        ("val", "validation", "early stopping chooses the epoch on it"),
        ("test", "test", "the test figure moves by {step} per clip"),
    ):
        n = len(getattr(split, part))
        if 0 < n < FEW_CLIPS:
            step = f"{100 / n:.0f} %"
            said.append(f"the {name} part has {n} clip{'s' if n != 1 else ''}: {why.format(step=step)}")
    if not said:
        return None
    return "; ".join(said) + f" (fewer than {FEW_CLIPS}" + (f": {advice})" if advice else ")")
