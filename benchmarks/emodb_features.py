"""EMODB feature extraction time for all 535 files: cold (empty cache) and warm (second run, from cache).

    python benchmarks/emodb_features.py [--root PATH] [--runs 3]

Cold = read WAV + 180-d vector + cache write per file; warm = sha256 of each file + cache read, no audio work.
Runs single-threaded (BLAS pinned) with a fresh temporary cache per cold run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_single_thread, run_main, write_results  # noqa: E402

pin_single_thread()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from converters.data import find_dataset, load_emodb  # noqa: E402
from converters.featurize import FeatureCache, extract  # noqa: E402
from edge_ser.features import FeatureSpec  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--root", type=Path, default=None, help="EMODB folder (default: found under $EDGE_SER_DATA)"
    )
    ap.add_argument("--runs", type=int, default=3, help="cold/warm pairs to run (default 3)")
    args = ap.parse_args()
    records = load_emodb(args.root or find_dataset("emodb"))
    spec = FeatureSpec()
    audio_s = sum(p.stat().st_size - 44 for p in (r.source for r in records)) / 2 / spec.sample_rate
    cold, warm = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            cache = FeatureCache(Path(tmp))
            X1, s1 = extract(records, spec, cache=cache, progress=False)
            X2, s2 = extract(records, spec, cache=cache, progress=False)
            assert s1.misses == len(records) and s2.hits == len(records) and (X1 == X2).all()
            cold.append(s1.seconds)
            warm.append(s2.seconds)
    c, w = statistics.median(cold), statistics.median(warm)
    text = "\n".join(
        [
            "# EMODB feature extraction (180-d LAQ vector, 22.05 kHz)",
            "",
            f"{len(records)} files, {audio_s / 60:.1f} min of audio; one thread; median of {args.runs} runs.",
            "",
            "| run | seconds | per file (ms) | x real time |",
            "|---|---|---|---|",
            f"| cold (decode + features + cache write) | {c:.2f} | {c / len(records) * 1e3:.2f} | {audio_s / c:.0f}x |",
            f"| warm (from cache, no audio work) | {w:.2f} | {w / len(records) * 1e3:.2f} | {audio_s / w:.0f}x |",
            "",
            f"Cold runs: {', '.join(f'{x:.2f}' for x in cold)} s; warm runs: {', '.join(f'{x:.3f}' for x in warm)} s.",
        ]
    )
    print(text)
    write_results(
        "emodb_features",
        {
            "files": len(records),
            "audio_seconds": audio_s,
            "cold_s": cold,
            "warm_s": warm,
            "feature_spec": spec.to_dict(),
        },
        text,
    )


if __name__ == "__main__":
    run_main(main)
