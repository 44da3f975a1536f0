"""The one shared label set and each data set's mapping from its native codes onto it.

Every loader maps into `LABELS`, so models trained on different corpora speak the same class names.

| label    | EMODB | RAVDESS | TESS    | SAVEE | CREMA-D | FER-2013 |
|----------|-------|---------|---------|-------|---------|----------|
| neutral  | N     | 01      | neutral | n     | NEU     | neutral  |
| calm     |       | 02      |         |       |         |          |
| happy    | F     | 03      | happy   | h     | HAP     | happy    |
| sad      | T     | 04      | sad     | sa    | SAD     | sad      |
| angry    | W     | 05      | angry   | a     | ANG     | angry    |
| fear     | A     | 06      | fear    | f     | FEA     | fear     |
| disgust  | E     | 07      | disgust | d     | DIS     | disgust  |
| surprise |       | 08      | ps (1)  | su    |         | surprise |
| boredom  | L     |         |         |       |         |          |

(1) TESS "ps" = pleasant surprise; the folder spellings `Pleasant_surprise` / `pleasant_surprised` map too.
EMODB letters are German: W Wut, L Langeweile, E Ekel, A Angst, F Freude, T Trauer, N neutral.
A free-form class name (a folder's, a labels CSV's) is mapped by `ALIASES`: the English names and their common
forms, the three-letter codes of IEMOCAP and CREMA-D (`ang`, `HAP`...), and the words of German, French,
Italian and Spanish corpora (Ärger, tristesse, paura, asco, ...).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping

LABELS: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fear",
    "disgust",
    "surprise",
    "boredom",
)

EMODB: Mapping[str, str] = {
    "W": "angry",
    "L": "boredom",
    "E": "disgust",
    "A": "fear",
    "F": "happy",
    "T": "sad",
    "N": "neutral",
}
RAVDESS: Mapping[str, str] = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fear",
    "07": "disgust",
    "08": "surprise",
}
TESS: Mapping[str, str] = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "ps": "surprise",
    "pleasant_surprise": "surprise",
    "pleasant_surprised": "surprise",
}
SAVEE: Mapping[str, str] = {
    "a": "angry",
    "d": "disgust",
    "f": "fear",
    "h": "happy",
    "n": "neutral",
    "sa": "sad",
    "su": "surprise",
}
CREMAD: Mapping[str, str] = {
    "ANG": "angry",
    "DIS": "disgust",
    "FEA": "fear",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
FER2013: Mapping[str, str] = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "surprise": "surprise",
}
# Common spellings of class-folder names (lower case) for folder-per-class trees.
ALIASES: Mapping[str, str] = {
    **{name: name for name in LABELS},
    "anger": "angry",
    "happiness": "happy",
    "joy": "happy",
    "sadness": "sad",
    "fearful": "fear",
    "afraid": "fear",
    "disgusted": "disgust",
    "surprised": "surprise",
    "bored": "boredom",
    "ps": "surprise",
    "pleasant_surprise": "surprise",
    "pleasant_surprised": "surprise",
    # the three-letter codes of IEMOCAP (neu, hap, ang, sad, fea, dis, sur) and CREMA-D (NEU, HAP, ANG, SAD, FEA,
    # DIS), as their labels CSV exports write them; IEMOCAP's exc, fru, oth and xxx mean none of LABELS
    **{"neu": "neutral", "hap": "happy", "ang": "angry", "fea": "fear", "dis": "disgust", "sur": "surprise"},
    # the class names of national corpora, in German (EMODB's own words), French, Italian and Spanish: a
    # researcher's folders or labels CSV often name them so (Ärger/ärger and aerger both; NFC, `to_label`)
    **{name: "angry" for name in ("wut", "ärger", "aerger", "zorn", "colère", "colere", "rabbia", "ira", "enojo", "enfado")},
    **{name: "happy" for name in ("freude", "glück", "fröhlich", "joie", "gioia", "felicità", "alegría", "alegria", "felicidad")},
    **{name: "sad" for name in ("trauer", "traurig", "traurigkeit", "tristesse", "tristezza", "tristeza")},
    **{name: "fear" for name in ("angst", "furcht", "peur", "paura", "miedo")},
    **{name: "disgust" for name in ("ekel", "dégoût", "degout", "disgusto", "asco")},
    **{name: "boredom" for name in ("langeweile", "ennui", "noia", "aburrimiento")},
    **{name: "surprise" for name in ("überraschung", "ueberraschung", "sorpresa")},
    **{name: "calm" for name in ("ruhe", "ruhig", "calme", "calma")},
    **{name: "neutral" for name in ("neutre", "neutro")},
}  # fmt: skip


def to_label(name: str) -> str | None:
    """The shared label a free-form class name means (case-insensitive), or None if it means none."""
    key = unicodedata.normalize("NFC", name.strip().lower()).replace("-", "_").replace(" ", "_")
    # NFC: a folder named on macOS (Ärger as A + combining diaeresis) means what Ärger does
    return ALIASES.get(key)


def class_order(labels: Iterable[str]) -> tuple[str, ...]:
    """Stable class order: LABELS order filtered to the labels present, then any other labels sorted."""
    present = set(labels)
    known = tuple(name for name in LABELS if name in present)
    return known + tuple(sorted(present - set(LABELS)))


def label_index(labels: Iterable[str]) -> dict[str, int]:
    """Class name -> index in `class_order(labels)`, the order every model output uses."""
    return {name: i for i, name in enumerate(class_order(labels))}
