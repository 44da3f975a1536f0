"""Utterance length: does a shipped speech bundle give the same decision on a shorter or longer stretch of speech?

    export EDGE_SER_DATA=/work/shared/datasets
    python benchmarks/utterance_length.py [--bundles ser_emodb:emodb,ser_ravdess:ravdess]

Every training clip of a corpus is about as long as the others (the EMODB copy here: exactly 2.00 s; RAVDESS:
two short sentences, ~1.5-2 s of speech in ~3.5 s); a live user's utterances are as long as they are. Each bundle
classifies its own corpus through the device path (`Recognizer.predict_audio`, with the training prior,
adapt=False, so every variant meets the same speaker statistics): each clip as recorded; cut to its first 1.0,
1.5 and 2.0 s of speech (from 0.2 s before the start `edge_ser.audio.pauses.speech_span` finds); and followed,
after 0.3 s of -70 dBFS room, by another clip of the same speaker and class (seeded choice). These are the
bundles' own training speakers: the table measures how much the length moves the decision, not accuracy on
unseen speakers. UAR (mean per-class recall) and the share of clips whose top-1 is the one as recorded.

Writes benchmarks/results/utterance_length.{md,json}; docs/protocol.md, "Utterance length".
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import doc_body, require_datasets, run_main, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
CUTS = (1.0, 1.5, 2.0)
"""Seconds of speech kept from its start."""
LEAD_S = 0.2
"""Seconds kept before the speech's first frame."""
GAP_S = 0.3
"""Room between two clips played back to back."""
VARIANTS = (
    "as recorded",
    *(f"first {c:g} s of speech" for c in CUTS),
    "two clips of the class, back to back",
)


def measure(bundle: str, data: str) -> dict:
    """One bundle on its corpus: UAR and top-1 agreement with the clip as recorded, per variant."""
    from converters.data import load_dataset
    from converters.evaluate import metrics
    from edge_ser.audio import load
    from edge_ser.audio.pauses import speech_span
    from edge_ser.recognizer import Recognizer

    rec = Recognizer(ROOT / "bundles" / bundle, "onnxruntime", adapt=False)
    known = set(rec.labels)
    clips, by_class = [], defaultdict(list)
    for r in load_dataset(data):
        if str(r.label) not in known:
            continue
        y = np.clip(load(r.source, sr=SR)[0].astype(np.float32), -1.0, 1.0)
        span = speech_span(y, SR)
        if span is None:
            continue
        by_class[(str(r.speaker), str(r.label))].append(len(clips))
        clips.append((y, span, str(r.label), str(r.speaker)))
    rng = np.random.default_rng(0)
    true, pred = defaultdict(list), defaultdict(list)
    same = defaultdict(list)
    for i, (y, (a, _), label, speaker) in enumerate(tqdm(clips, desc=bundle, disable=None)):
        start = max(0, a - int(LEAD_S * SR))
        variants = {VARIANTS[0]: y}
        for c, name in zip(CUTS, VARIANTS[1:-1], strict=True):
            variants[name] = y[start : a + int(c * SR)]
        others = [j for j in by_class[(speaker, label)] if j != i]
        if others:
            room = (10 ** (-70 / 20) * rng.standard_normal(int(GAP_S * SR))).astype(np.float32)
            variants[VARIANTS[-1]] = np.concatenate([y, room, clips[others[rng.integers(len(others))]][0]])
        first = None
        for name, x in variants.items():
            top = rec.predict_audio(x, SR).label
            first = top if first is None else first
            true[name].append(label)
            pred[name].append(top)
            same[name].append(top == first)
    return {
        "bundle": bundle,
        "data": data,
        "rows": {
            name: {"clips": len(true[name]), "uar": round(100 * metrics(true[name], pred[name], rec.labels).uar, 1),
                   "same_top1": round(100 * float(np.mean(same[name])), 1)}
            for name in VARIANTS
        },
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--bundles",
        default="ser_emodb:emodb,ser_ravdess:ravdess",
        help="bundle:corpus pairs, comma-separated (default ser_emodb:emodb,ser_ravdess:ravdess)",
    )
    args = ap.parse_args()
    pairs = [p.split(":") for p in args.bundles.split(",")]
    if any(len(p) != 2 for p in pairs):
        ap.error(f"--bundles {args.bundles!r}: give bundle:corpus pairs")
    require_datasets(*dict.fromkeys(d for _, d in pairs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resampled corpus clips a hair beyond full scale are clipped above
        results = [measure(b, d) for b, d in pairs]
    lines = [
        "# Utterance length: the same speech, shorter or longer",
        "",
        doc_body(__doc__),
        "",
        "| bundle, its own corpus | " + " | ".join(VARIANTS) + " |",
        "|---" * (len(VARIANTS) + 1) + "|",
    ]
    for r in results:
        cells = [f"{v['uar']:.1f} % ({v['same_top1']:.0f} % same; {v['clips']})" for v in r["rows"].values()]
        lines.append(f"| {r['bundle']}, {r['data']} | " + " | ".join(cells) + " |")
    lines += ["", "Cell: UAR (share of clips whose top-1 is the one as recorded; clips)."]
    write_results("utterance_length", {"results": results}, "\n".join(lines))
    print("\n".join(lines[4:]))
    return 0


if __name__ == "__main__":
    run_main(main)
