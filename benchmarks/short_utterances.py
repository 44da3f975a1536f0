"""Short utterances in the live loop: how long does the voice gate stay open for an utterance of a given length?

    export EDGE_SER_DATA=/work/shared/datasets
    python benchmarks/short_utterances.py [--clips 40] [--data ravdess]

`edge-ser run` tells a user whose utterances are mostly short that a word or a short phrase reads far less
reliably than a sentence (`edge_ser.live.run.utterance_note`). An utterance is a run of updates with the voice gate
open; a run short enough to hold little speech (at most `measured_runs(hop)` updates: 3 at the default 0.5 s hop)
has its speech measured on the hops it spans (`short_speech`: from the first to the last voiced frame), and counts
as short under `SHORT_SPEECH_S`. This measures what that count means, as `LiveRunner` makes it: seeded clips of the
corpus, each cut to its first 0.75 / 1.0 / 1.5 / 2.0 s of speech (from 0.2 s before it, `edge_ser.audio.pauses.
speech_span`) or kept whole, played one after another with 2 s of -70 dBFS room between them, through the default
live gate (`LivePipeline.make_gate(PipelineConfig())`), hop by hop. Per length: the runs of open updates (the
utterances the run counts), how many were measured, and the share counted short.

Writes benchmarks/results/short_utterances.{md,json}; docs/live.md, "Short utterances".
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import doc_body, require_datasets, run_main, write_results  # noqa: E402

SR = 16000
LENGTHS = (0.75, 1.0, 1.5, 2.0, None)
"""Seconds of speech kept (None: the clip's speech as recorded, to its end)."""
LEAD_S = 0.2
ROOM_S = 2.0
ROOM_DBFS = -70.0


def gate_runs(y: np.ndarray, hop_s: float) -> list[tuple[int, bool | None]]:
    """Each run of hops the default live gate opens on, over `y` hop by hop, as `LiveRunner` counts it: (its length
    in updates, whether it counts as short: None when it is too long to be measured)."""
    from edge_ser.audio.level import level_db
    from edge_ser.live.pipeline import GATE_SECONDS, LivePipeline, PipelineConfig
    from edge_ser.live.run import ended_run_short, measured_runs

    gate = LivePipeline.make_gate(PipelineConfig(hop=hop_s))
    hop, voice, most = int(round(hop_s * SR)), int(GATE_SECONDS * SR), measured_runs(hop_s)
    runs, open_ = [], 0
    for end in range(hop, y.size + 1, hop):
        h = y[end - hop : end]
        h = h - np.float32(h.mean(dtype=np.float64))  # as LivePipeline.step: the DC offset is no sound
        v = h if hop >= voice else y[max(0, end - voice) : end]
        if gate(level_db(h), v, SR):
            open_ += 1
        elif open_:
            runs.append((open_, ended_run_short(open_, y[:end], hop, SR, most)))  # as LiveRunner counts it
            open_ = 0
    return runs


def main() -> int:
    from edge_ser.live.pipeline import PipelineConfig
    from edge_ser.live.run import SHORT_SPEECH_S, measured_runs

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="ravdess", choices=("ravdess", "emodb"))
    ap.add_argument("--clips", type=int, default=40, help="clips played per length (seeded choice)")
    args = ap.parse_args()
    if args.clips < 1:
        ap.error(f"--clips {args.clips}: at least 1")
    require_datasets(args.data)
    from converters.pipeline import load_records
    from edge_ser.audio import load
    from edge_ser.audio.pauses import speech_span

    hop_s = PipelineConfig().hop
    most = measured_runs(hop_s)
    _, records = load_records(args.data, None)
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(records), min(args.clips, len(records)), replace=False)
    clips = []
    for i in chosen:
        y = load(records[i].source, sr=SR)[0]
        clips.append((y, speech_span(np.asarray(y, np.float32), SR)))
    room = lambda: (10 ** (ROOM_DBFS / 20) * rng.standard_normal(int(ROOM_S * SR))).astype(np.float32)  # noqa: E731
    rows = []
    for length in LENGTHS:
        parts = [room()]
        for y, span in clips:
            a = max(0, span[0] - int(LEAD_S * SR)) if span else 0
            b = (a + int((length + LEAD_S) * SR)) if length else (span[1] if span else y.size)
            parts += [y[a:b], room()]
        runs = gate_runs(np.concatenate(parts), hop_s)
        counts = Counter(k for k, _ in runs)
        rows.append(
            {
                "speech_s": length,
                "clips": len(clips),
                "runs": len(runs),
                "measured": sum(s is not None for _, s in runs),
                "short": sum(bool(s) for _, s in runs),
                "lengths": {str(k): counts[k] for k in sorted(counts)},
            }
        )
    lines = [
        f"# Short utterances: the live gate's open runs on {args.data} clips cut short",
        "",
        doc_body(__doc__),
        "",
        f"Hop {hop_s:g} s: runs of at most {most} updates are measured; short: less than {SHORT_SPEECH_S:g} s of speech.",
        "",
        "| speech kept | clips | runs of open updates | measured | counted short | runs by length in updates |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        kept = "whole" if r["speech_s"] is None else f"first {r['speech_s']:g} s"
        share = 100 * r["short"] / max(1, r["runs"])
        by_len = ", ".join(f"{k}: {v}" for k, v in r["lengths"].items())
        lines.append(
            f"| {kept} | {r['clips']} | {r['runs']} | {r['measured']} | {r['short']} ({share:.0f} %) | {by_len} |"
        )
    payload = {
        "data": args.data,
        "hop_s": hop_s,
        "measured_runs": most,
        "short_speech_s": SHORT_SPEECH_S,
        "rows": rows,
    }
    write_results("short_utterances", payload, "\n".join(lines))
    print("\n".join(lines[4:]))
    return 0


if __name__ == "__main__":
    run_main(main)
