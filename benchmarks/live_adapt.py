"""How often should a live session's speech join the speaker statistics? Sessions of unseen speakers, live.

    export EDGE_SER_DATA=/work/shared/datasets
    python benchmarks/live_adapt.py [--variants 0,1.5,3,utterances] [--orders 3] [--sets paired,emodb,ravdess]
        [--gap 1] [--cut-pauses on|off] [--tag T]

The live pipeline classifies a 3 s window every 0.5 s hop, and a bundle that learns its speaker (ser_*) lets
windows with speech join the speaker statistics. Every window with speech did (`learn_every` 0): a 3 s utterance
then counts as ~6 heavily overlapping "clips", so the training prior (worth 3 clips in the ser bundles, chosen on
validation speakers whose clips were whole utterances) is outweighed after 1.5 s of speech, and the variance is
estimated from near-copies. `learn_every` S lets one window join per S seconds of speech; `utterances` lets
each run of speech between pauses join once, as one clip, when it ends (`PipelineConfig.learn`).

Each session is one speaker the bundle never trained on: the speaker's clips in a seeded random order, each
followed by 1 s (`--gap`) of quiet room noise (-70 dBFS), written as one 16 kHz WAV and run through the real live loop
(`Recognizer.stream(audio_file=..., realtime=False)`, a new session per speaker). Scored per clip, UAR %:
- `final`: the last window with speech that ends within the clip (up to one hop after it): the decision on the
  utterance, on its last 3 s;
- `windows`: every window with speech whose end lies inside the clip, labelled with the clip's class (what the
  live view shows, update by update);
- `first 10`: `final` over each session's first 10 clips, where the prior still matters.

Sets:
- `paired`: bundles/av_fn_audio (trained on RAVDESS actors 02, 05-09, 11, 12; actors 03, 04 only chose its
  recipe), on actors 01, 10 (never seen) and 03, 04, calm dropped as in the bundle; `--orders` orders each;
- `emodb`: bundles/ser_ravdess (English) on the 10 EMODB speakers (German), boredom left out;
- `ravdess`: bundles/ser_emodb (German) on the 12 RAVDESS actors (English), calm and surprise left out.

Writes benchmarks/results/live_adapt[_TAG].{md,json}.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import doc_body, run_main, write_results  # noqa: E402
from converters.data import load_dataset  # noqa: E402
from converters.evaluate import metrics  # noqa: E402
from edge_ser.audio import load  # noqa: E402
from edge_ser.audio.wav import write_wav  # noqa: E402
from edge_ser.live.pipeline import CUT_PAUSES_DEFAULT, STEADY_DEFAULT, VOICING_DEFAULT, PipelineConfig  # noqa: E402
from edge_ser.recognizer import Recognizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
GAP_S = 1.0
SETS = {
    "paired": ("av_fn_audio", "ravdess", ("01", "10", "03", "04")),
    "emodb": ("ser_ravdess", "emodb", None),
    "ravdess": ("ser_emodb", "ravdess", None),
}


def uar(true: list[str], pred: list[str]) -> float:
    """UAR in % (`converters.evaluate.Metrics.uar`: mean recall of the labels in `true`)."""
    return 100 * metrics(true, pred, sorted(set(true) | set(pred))).uar


def _session(
    records, order_seed: int, tmp: Path, gap_s: float = GAP_S
) -> tuple[Path, list[tuple[float, float, str]]]:
    """The speaker's clips in a seeded order, each followed by `gap_s` of quiet room, as one WAV; (start, end,
    label) per clip."""
    rng = np.random.default_rng(order_seed)
    order = rng.permutation(len(records))
    parts, spans, t = [], [], 0.0
    noise = np.random.default_rng(1000 + order_seed)
    for i in order:
        y, _ = load(records[i].source, sr=SR)
        parts.append(y.astype(np.float32))
        spans.append((t, t + len(y) / SR, str(records[i].label)))
        t += len(y) / SR
        quiet = (10 ** (-70 / 20) * np.sqrt(2) * noise.standard_normal(int(gap_s * SR))).astype(np.float32)
        parts.append(quiet)
        t += gap_s
    path = tmp / f"session_{order_seed}.wav"
    write_wav(path, np.clip(np.concatenate(parts), -1, 1), SR, subtype="FLOAT")
    return path, spans


def _score(results, spans, hop: float) -> dict[str, tuple[list[str], list[str]]]:
    voiced = [(r.t, r.labels[int(np.argmax(r.probs))]) for r in results if r.speech and r.probs]
    out: dict[str, tuple[list[str], list[str]]] = {k: ([], []) for k in ("final", "windows", "first 10")}
    for k, (start, end, label) in enumerate(spans):
        inside = [(t, lab) for t, lab in voiced if start < t <= end + hop]
        if not inside:
            continue
        out["final"][0].append(label)
        out["final"][1].append(inside[-1][1])
        if k < 10:
            out["first 10"][0].append(label)
            out["first 10"][1].append(inside[-1][1])
        for t, lab in inside:
            if t <= end:
                out["windows"][0].append(label)
                out["windows"][1].append(lab)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--variants",
        default="0,1.5,3,utterances",
        help="learn_every values in seconds, or `utterances` (default 0,1.5,3,utterances)",
    )
    ap.add_argument("--tag", default="", help="results file suffix")
    ap.add_argument("--orders", type=int, default=3, help="clip orders per speaker of the paired set")
    ap.add_argument("--sets", default="paired,emodb,ravdess", help=f"of {sorted(SETS)}")
    ap.add_argument(
        "--vad-voicing",
        type=float,
        default=VOICING_DEFAULT,
        help=f"the voice gate's voiced share (default {VOICING_DEFAULT:g}; 0: the level and floor gate)",
    )
    ap.add_argument("--vad-hangover", type=int, default=0, help="the voice gate's hangover, hops (default 0)")
    ap.add_argument(
        "--vad-steady",
        type=float,
        default=STEADY_DEFAULT,
        help=f"the voice gate's steady-sound seconds (default {STEADY_DEFAULT:g}; 0: off)",
    )
    ap.add_argument(
        "--gap", type=float, default=GAP_S, help=f"seconds of quiet room after each clip (default {GAP_S:g})"
    )
    ap.add_argument(
        "--cut-pauses",
        choices=("on", "off"),
        default="on" if CUT_PAUSES_DEFAULT else "off",
        help="cut each window with speech to its speech plus the bundle's pauses.keep_s (PipelineConfig.cut_pauses)",
    )
    args = ap.parse_args()
    if not 0 < args.gap <= 30:
        raise SystemExit(f"--gap {args.gap}: give 0..30 s of room after each clip")
    cut = args.cut_pauses == "on"
    everies = args.variants.split(",")
    rows = []
    for name in args.sets.split(","):
        bundle, data, speakers = SETS[name]
        rec0 = Recognizer(ROOT / "bundles" / bundle, "onnxruntime")
        known = set(rec0.labels)
        records = [r for r in load_dataset(data) if str(r.label) in known]
        by_speaker = defaultdict(list)
        for r in records:
            if speakers is None or str(r.speaker) in speakers:
                by_speaker[str(r.speaker)].append(r)
        orders = args.orders if name == "paired" else 1
        pooled = {e: defaultdict(lambda: ([], [])) for e in everies}
        clips_end = {e: [] for e in everies}
        with tempfile.TemporaryDirectory() as tmp:
            for spk, recs in sorted(by_speaker.items()):
                for o in range(orders):
                    seed = int(spk) * 100 + o if spk.isdigit() else o
                    wav, spans = _session(recs, seed, Path(tmp), args.gap)
                    for e in everies:
                        rec = Recognizer(ROOT / "bundles" / bundle, "onnxruntime")
                        config = (
                            PipelineConfig(
                                learn="utterances",
                                vad_voicing=args.vad_voicing,
                                vad_hangover=args.vad_hangover,
                                vad_steady=args.vad_steady,
                                cut_pauses=cut,
                            )
                            if e == "utterances"
                            else PipelineConfig(
                                learn="windows",
                                learn_every=float(e),
                                vad_voicing=args.vad_voicing,
                                vad_hangover=args.vad_hangover,
                                vad_steady=args.vad_steady,
                                cut_pauses=cut,
                            )
                        )
                        results = list(rec.stream(audio_file=wav, realtime=False, config=config))
                        for k, (t, p) in _score(results, spans, config.hop).items():
                            pooled[e][k][0].extend(t)
                            pooled[e][k][1].extend(p)
                        clips_end[e].append(rec.speaker_clips or 0)
                    print(f"{name} {spk} order {o}: {len(spans)} clips", flush=True)
        n_sessions = len(by_speaker) * orders
        for e in everies:
            row = {
                "set": name,
                "bundle": bundle,
                "learn": e,
                "sessions": n_sessions,
                "vad_voicing": args.vad_voicing,
                "vad_hangover": args.vad_hangover,
                "vad_steady": args.vad_steady,
                "gap_s": args.gap,
                "cut_pauses": cut,
            }
            for k, (t, p) in pooled[e].items():
                row[k] = round(uar(t, p), 1)
                row[f"{k}_n"] = len(t)
            row["clips_held_mean"] = round(float(np.mean(clips_end[e])), 1)
            rows.append(row)
            print(row, flush=True)
    lines = [
        "# Live sessions of unseen speakers: how often speech joins the speaker statistics",
        "",
        doc_body(__doc__),
        "",
        f"Room after each clip: {args.gap:g} s; windows cut to their speech (`--cut-pauses`): {args.cut_pauses}; "
        f"the gate's steady-sound test (`--vad-steady`): {args.vad_steady:g} s.",
        "",
        "| set | bundle | learns from (learn_every s, or utterances) | sessions | final UAR % | windows UAR % | first 10 clips, final UAR % "
        "| clips the statistics hold at the end (mean) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['set']} | {r['bundle']} | {r['learn']} | {r['sessions']} | {r['final']:.1f} "
            f"({r['final_n']} clips) | {r['windows']:.1f} ({r['windows_n']}) | {r['first 10']:.1f} | "
            f"{r['clips_held_mean']:.1f} |"
        )
    out_name = "live_adapt" + (f"_{args.tag}" if args.tag else "")
    js, md = write_results(out_name, {"rows": rows}, "\n".join(lines))
    print(f"wrote {md} and {js}")


if __name__ == "__main__":
    run_main(main)
