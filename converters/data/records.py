"""One record type for every data set: where the sample lives, its shared label and who spoke it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from converters.data.labels import class_order

UNKNOWN_SPEAKER = "unknown"
"""The speaker of a file whose path names none (the folder loaders' rule, `converters.data.loaders.speaker_of`)."""


@dataclass(frozen=True)
class Record:
    """One labelled sample: an audio file (or an image for FER-2013), optionally with a face image or video.

    `meta` holds data-set specific fields (intensity, sentence, split...) as sorted (key, value) string pairs
    so the record stays hashable; pass a dict and it is converted.
    """

    source: Path
    label: str
    speaker: str
    dataset: str
    native_label: str
    image: Path | None = None
    video: Path | None = None
    meta: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", Path(self.source))
        if self.image is not None:
            object.__setattr__(self, "image", Path(self.image))
        if self.video is not None:
            object.__setattr__(self, "video", Path(self.video))
        items = self.meta.items() if isinstance(self.meta, Mapping) else self.meta
        object.__setattr__(self, "meta", tuple(sorted((str(k), str(v)) for k, v in items)))

    def get(self, key: str, default: str | None = None) -> str | None:
        """The value of one meta field, or `default`."""
        return dict(self.meta).get(key, default)


def summarize(records: Iterable[Record]) -> dict:
    """Counts per data set, per label (in class order) and per speaker, for the CLI and reports."""
    records = list(records)
    labels = Counter(r.label for r in records)
    speakers = Counter(r.speaker for r in records)
    datasets = Counter(r.dataset for r in records)
    return {
        "n": len(records),
        "datasets": dict(sorted(datasets.items())),
        "labels": {name: labels[name] for name in class_order(labels)},
        "speakers": dict(sorted(speakers.items())),
        "n_speakers": len(speakers),
        "with_video": sum(r.video is not None for r in records),
        "with_image": sum(r.image is not None for r in records),
    }
