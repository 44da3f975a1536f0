"""Train/val/test splits as index arrays: the papers' stratified random 80/10/10 and speaker-independent ones.

Every split is deterministic for a seed. Speaker-independent splits (leave-one-speaker-out, group k-fold)
never put one speaker (group) on two sides.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edge_ser.errors import ConfigError

PARTS = ("train", "val", "test")


def check_named_speakers(speakers: Sequence, name: str = "the data set") -> None:
    """Refuse a speaker split of files some of which name no speaker: they are pooled as one group,
    UNKNOWN_SPEAKER, which can hold the same people as the named speakers, so the split would put them on two
    sides while calling itself speaker-independent (ConfigError with the count and the naming rule)."""
    from converters.data.records import UNKNOWN_SPEAKER

    names = [str(s) for s in speakers]
    n = names.count(UNKNOWN_SPEAKER)
    if n and n < len(names):
        raise ConfigError(
            f"{name}: {n} of {len(names)} files name no speaker (pooled as {UNKNOWN_SPEAKER!r}), so a speaker "
            "split could put one person on both sides; name each file <speaker>_<anything> or put it in "
            "<class>/<speaker>/, or in a labels CSV fill in its speaker column (`edge-ser data` lists the speakers "
            "found), or use --split random"
        )


def _indices(values, part: str) -> np.ndarray:
    """A sorted 1-D int64 index array, or ConfigError."""
    arr = np.asarray(values)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(
            f"split part {part!r} must be a 1-D list of integer indices, got {arr.dtype} {arr.shape}"
        )
    arr = np.sort(arr.astype(np.int64))
    if arr[0] < 0:
        raise ConfigError(f"split part {part!r} has a negative index {arr[0]}")
    return arr


@dataclass(frozen=True, eq=False)
class Split:
    """Disjoint index arrays into one list of records: train, val (may be empty) and test. Stored sorted."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __post_init__(self) -> None:
        for part in PARTS:
            object.__setattr__(self, part, _indices(getattr(self, part), part))
        seen = np.concatenate([self.train, self.val, self.test])
        if np.unique(seen).size != seen.size:
            raise ConfigError("split parts overlap: an index is in more than one of train/val/test")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Split):
            return NotImplemented
        return all(np.array_equal(getattr(self, p), getattr(other, p)) for p in PARTS)

    __hash__ = object.__hash__

    @property
    def seen(self) -> np.ndarray:
        """The rows a fit may see (train and val): the pooled statistics of a speaker normalisation come from
        these, never from a test speaker's clips."""
        return np.concatenate([self.train, self.val])

    def sizes(self) -> dict[str, int]:
        """Number of items per part."""
        return {p: int(getattr(self, p).size) for p in PARTS}

    def to_dict(self) -> dict[str, list[int]]:
        """JSON-ready {"train": [...], "val": [...], "test": [...]}."""
        return {p: getattr(self, p).tolist() for p in PARTS}

    @classmethod
    def from_dict(cls, data: Mapping) -> Split:
        """Inverse of to_dict; ConfigError when a part is missing or not a list of indices."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"split must be a mapping with keys {list(PARTS)}, got {type(data).__name__}")
        missing = [p for p in PARTS if p not in data]
        if missing:
            raise ConfigError(f"split is missing part(s) {missing}; expected keys {list(PARTS)}")
        return cls(*(np.asarray(data[p]) for p in PARTS))


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or not np.all(np.isfinite(f)) or np.any(f < 0) or f[0] <= 0 or abs(f.sum() - 1) > 1e-6:
        raise ConfigError(
            f"fractions {tuple(fractions)} must be 3 non-negative numbers (train > 0) summing to 1"
        )
    return f


def _allocate(n: int, fractions: np.ndarray) -> np.ndarray:
    """Split n items by fractions, largest-remainder rounding; with n >= 3 every non-zero part gets one."""
    exact = n * fractions
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")  # ties go to train, then val, then test
    counts[order[: n - counts.sum()]] += 1
    if n >= 3:
        for part in np.flatnonzero((counts == 0) & (fractions > 0)):
            counts[np.argmax(counts)] -= 1
            counts[part] += 1
    return counts


def stratified_split(
    labels: Sequence, *, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> Split:
    """Random split keeping each class's proportions (per-class shuffle, largest-remainder allocation).

    A class with >= 3 items appears in every part whose fraction is non-zero. Deterministic for a seed.
    """
    f = _check_fractions(fractions)
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ConfigError(f"labels must be a non-empty 1-D sequence, got shape {labels.shape}")
    rng = np.random.default_rng(seed)
    classes, inverse = np.unique(labels, return_inverse=True)
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in range(classes.size):
        idx = rng.permutation(np.flatnonzero(inverse == c))
        bounds = np.cumsum(_allocate(idx.size, f))
        for p, chunk in enumerate(np.split(idx, bounds[:2])):
            parts[p].append(chunk)
    return Split(*(np.concatenate(chunks) for chunks in parts))


def _groups(values: Sequence, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Unique groups (sorted as strings) and each item's group index."""
    arr = np.asarray([str(v) for v in values])
    if arr.size == 0:
        raise ConfigError(f"{what} must be a non-empty sequence")
    return np.unique(arr, return_inverse=True)


def leave_one_speaker_out(
    speakers: Sequence[str], labels: Sequence | None = None, *, val_speakers: int = 1, seed: int = 0
) -> Iterator[tuple[str, Split]]:
    """For each speaker (sorted): test = that speaker, val = `val_speakers` others, train = the rest.

    Val speakers are the next ones in a seeded cyclic order of speakers; with `labels`, among those candidates
    the ones covering the most classes are preferred (ties keep the cyclic order), so val sees every class.
    """
    names, inverse = _groups(speakers, "speakers")
    if labels is not None and len(labels) != len(inverse):
        raise ConfigError(f"labels has {len(labels)} items but speakers has {len(inverse)}")
    if not isinstance(val_speakers, (int, np.integer)) or not 0 <= val_speakers <= names.size - 2:
        raise ConfigError(
            f"val_speakers={val_speakers!r} must be an integer in 0..{names.size - 2} "
            f"({names.size} speakers, at least one left for training)"
        )
    classes: list[set] = [set() for _ in range(names.size)]
    if labels is not None:
        lab = np.asarray([str(v) for v in labels])
        classes = [set(lab[inverse == s]) for s in range(names.size)]
    order = np.random.default_rng(seed).permutation(names.size)
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    for s in range(names.size):
        candidates = [int(order[(position[s] + j) % order.size]) for j in range(1, order.size)]
        chosen: list[int] = []
        covered: set = set()
        for _ in range(val_speakers):
            best = max((c for c in candidates if c not in chosen), key=lambda c: len(classes[c] - covered))
            chosen.append(best)
            covered |= classes[best]
        test = np.flatnonzero(inverse == s)
        val = np.flatnonzero(np.isin(inverse, chosen))
        train = np.flatnonzero(~np.isin(inverse, [s, *chosen]))
        yield str(names[s]), Split(train, val, test)


def group_kfold(groups: Sequence, *, k: int = 5, seed: int = 0, with_val: bool = True) -> list[Split]:
    """k speaker-independent folds: groups assigned largest-first to the currently smallest fold.

    Fold i: test = fold i, val = fold (i + 1) % k (when `with_val`), train = the rest. Ties between equal
    sized groups are broken by a seeded shuffle, so the seed changes which groups share a fold only when some
    groups have the same size (RAVDESS: every actor; EMO-DB: none, so every seed gives the same folds).
    """
    names, inverse = _groups(groups, "groups")
    least = 3 if with_val else 2
    if not isinstance(k, (int, np.integer)) or k < least:
        parts = "train, val and test" if with_val else "train and test"
        raise ConfigError(f"k={k!r} must be an integer >= {least} (folds for {parts})")
    if k > names.size:
        raise ConfigError(f"k={k} folds but only {names.size} groups: each fold needs at least one group")
    sizes = np.bincount(inverse, minlength=names.size)
    shuffled = np.random.default_rng(seed).permutation(names.size)
    order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]
    fold_of = np.empty(names.size, dtype=np.int64)
    totals = np.zeros(k, dtype=np.int64)
    for g in order:
        f = int(np.argmin(totals))  # first smallest fold
        fold_of[g] = f
        totals[f] += sizes[g]
    item_fold = fold_of[inverse]
    splits = []
    for i in range(k):
        val_fold = (i + 1) % k if with_val else -1
        splits.append(
            Split(
                np.flatnonzero((item_fold != i) & (item_fold != val_fold)),
                np.flatnonzero(item_fold == val_fold),
                np.flatnonzero(item_fold == i),
            )
        )
    return splits


SPEAKER_SEED_RULE = (
    "speaker folds are balanced by clip count, so the seed only orders speakers with equal counts (EMO-DB: every "
    "seed gives the same folds; RAVDESS: each seed others)"
)
"""What --seed does to `group_kfold`'s folds, for help texts and docs (EMO-DB: no two speakers have the same
count, so no seed changes its folds; RAVDESS: every actor has 60 clips, so every seed does)."""


def speaker_seed_note(groups: Sequence, k: int = 5) -> str:
    """What the seed changes in the speaker folds of these groups (one per clip), for a split line: nothing
    when no two groups have the same clip count, else the order of the tied ones. With k = 2 the seed also draws
    the validation tenth of the training speakers' clips (`converters.pipeline.split_indices`)."""
    _, counts = np.unique(np.asarray([str(g) for g in groups]), return_counts=True)
    _, per_count = np.unique(counts, return_counts=True)
    tied = int(per_count[per_count > 1].sum())
    if tied == counts.size:
        note = f"all {tied} speakers share clip counts, so the seed decides which share a fold"
    elif tied:
        note = f"the seed orders only the {tied} of {counts.size} speakers that share a clip count"
    else:
        note = "no two speakers have the same clip count, so the seed does not change them"
    also = "; it also draws validation's tenth of the training clips" if k == 2 else ""
    return f"speaker folds balanced by clip count: {note}{also}"


def stratified_kfold(
    labels: Sequence, *, k: int = 10, seed: int = 0, val_fraction: float = 1 / 9
) -> list[Split]:
    """k stratified folds: test = fold i; val = a stratified `val_fraction` of the other folds; train = the rest.

    Each class is shuffled (seeded) and dealt round-robin over the folds, so every fold holds each class's
    share to within one item; val is carved from the training part with `stratified_split`, never from the
    test fold. Speaker-dependent: a speaker appears in train, val and test (report it beside, not instead of,
    a speaker-independent protocol).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ConfigError(f"labels must be a non-empty 1-D sequence, got shape {labels.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= labels.size:
        raise ConfigError(f"k={k!r} must be an integer in 2..{labels.size} (the number of items)")
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction={val_fraction!r} must be between 0 and 1")
    rng = np.random.default_rng(seed)
    classes, inverse = np.unique(labels, return_inverse=True)
    fold_of = np.empty(labels.size, dtype=np.int64)
    start = 0
    for c in range(classes.size):
        idx = rng.permutation(np.flatnonzero(inverse == c))
        fold_of[idx] = (start + np.arange(idx.size)) % k  # continue the deal where the last class stopped
        start = (start + idx.size) % k
    splits = []
    for i in range(k):
        rest = np.flatnonzero(fold_of != i)
        inner = stratified_split(labels[rest], fractions=(1 - val_fraction, val_fraction, 0.0), seed=seed + i)
        splits.append(Split(rest[inner.train], rest[inner.val], np.flatnonzero(fold_of == i)))
    return splits


def speaker_group_folds(speakers: Sequence[str], groups: Sequence[Sequence[str]]) -> list[Split]:
    """One fold per group of speakers: test = group i, val = group (i + 1) mod k, train = the other groups.

    `groups` must cover every speaker exactly once (at least 3 groups: train, val and test each need one),
    e.g. RAVDESS's actor pairs (01, 02), (03, 04), ...: one male and one female actor per fold.
    """
    names, inverse = _groups(speakers, "speakers")
    groups = [tuple(str(s) for s in g) for g in groups]
    if len(groups) < 3 or any(not g for g in groups):
        raise ConfigError(
            f"{len(groups)} speaker group(s): need at least 3 non-empty ones (train, val, test)"
        )
    listed = [s for g in groups for s in g]
    twice = sorted({s for s in listed if listed.count(s) > 1})
    unknown = sorted(set(listed) - set(names.tolist()))
    missing = sorted(set(names.tolist()) - set(listed))
    if twice or unknown or missing:
        raise ConfigError(
            "speaker groups must cover every speaker exactly once: "
            + "; ".join(
                f"{what} {', '.join(v)}"
                for what, v in (
                    ("in two groups:", twice),
                    ("not in the data:", unknown),
                    ("in no group:", missing),
                )
                if v
            )
        )
    group_of = {s: i for i, g in enumerate(groups) for s in g}
    item_group = np.array([group_of[str(n)] for n in names])[inverse]
    k = len(groups)
    return [
        Split(
            np.flatnonzero((item_group != i) & (item_group != (i + 1) % k)),
            np.flatnonzero(item_group == (i + 1) % k),
            np.flatnonzero(item_group == i),
        )
        for i in range(k)
    ]
