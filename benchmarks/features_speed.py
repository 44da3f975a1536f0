"""Feature extraction speed: edge_ser.features vs librosa 0.11 on the same clips, in one run, single thread.

Two tasks: the LAQ paper's 180-d clip vector (librosa: the paper's recipe, mfcc + melspectrogram + chroma_stft
on |STFT|, each with its own STFT) and MFCC alone (n_mfcc=40), on 1 s and 3 s clips at 22.05 kHz. Calls are
interleaved and the ratio is of medians, because timings on a shared machine are noisy.

    python benchmarks/features_speed.py            # EMODB clips when present, else synthetic speech

Results: benchmarks/results/features_speed.{md,json}; features_speed_synthetic.{md,json} on synthetic speech,
so a run without EMODB never replaces the table made on it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, pin_single_thread, run_main, write_results  # noqa: E402

pin_single_thread()

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_ser.features import FeatureSpec, feature_vector, mfcc  # noqa: E402


def _clips(seconds: float, n: int, sr: int) -> tuple[list[np.ndarray], str, bool]:
    """`n` clips of `seconds`, where they came from, and whether they are synthetic: EMODB utterances (loaded,
    cropped or zero-padded) when emodb/wav is under the default data root, else synthetic voiced signals."""
    from converters.data.loaders import default_data_root

    data = default_data_root()
    root = data / "emodb" / "wav" if data else None
    length = int(seconds * sr)
    if root is not None and root.is_dir():
        from edge_ser.audio import load

        out = []
        for path in sorted(root.glob("*.wav"))[:: max(1, 535 // n)][:n]:
            y, _ = load(path, sr=sr)
            out.append(np.pad(y, (0, max(0, length - len(y))))[:length].astype(np.float32))
        return out, f"EMODB (every {max(1, 535 // n)}th of its 535 files, cropped or zero-padded)", False
    rng = np.random.default_rng(0)
    t = np.arange(length) / sr
    out = [
        (
            0.3 * np.sin(2 * np.pi * (120 + 30 * k) * t) * (1 + np.sin(2 * np.pi * 3 * t))
            + 0.01 * rng.standard_normal(length)
        ).astype(np.float32)
        for k in range(n)
    ]
    return out, "synthetic voiced signals", True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=8, help="clips per duration (default 8)")
    ap.add_argument("--repeats", type=int, default=15, help="interleaved rounds per measurement (default 15)")
    args = ap.parse_args()

    import librosa

    warnings.simplefilter("ignore")
    sr = 22050
    spec = FeatureSpec(sample_rate=sr)
    rows, source, synthetic = [], "", False
    for seconds in (1.0, 3.0):
        clips, source, synthetic = _clips(seconds, args.clips, sr)

        def ours_vec(clips=clips) -> None:
            for y in clips:
                feature_vector(y, sr=sr, spec=spec)

        def librosa_vec(clips=clips) -> None:
            for y in clips:
                stft_mag = np.abs(librosa.stft(y))
                np.concatenate(
                    [
                        librosa.feature.mfcc(y=y, sr=sr, n_mfcc=40).mean(axis=1),
                        librosa.feature.melspectrogram(y=y, sr=sr).mean(axis=1),
                        librosa.feature.chroma_stft(S=stft_mag, sr=sr, tuning=0).mean(axis=1),
                    ]
                )

        def ours_mfcc(clips=clips) -> None:
            for y in clips:
                mfcc(y=y, sr=sr, n_mfcc=40)

        def librosa_mfcc(clips=clips) -> None:
            for y in clips:
                librosa.feature.mfcc(y=y, sr=sr, n_mfcc=40)

        t = interleaved(
            {
                "ours_vec": ours_vec,
                "librosa_vec": librosa_vec,
                "ours_mfcc": ours_mfcc,
                "librosa_mfcc": librosa_mfcc,
            },
            repeats=args.repeats,
            inner=1,
        )
        med = {k: statistics.median(v) / len(clips) for k, v in t.items()}
        for task, a, b in (
            ("180-d vector", "ours_vec", "librosa_vec"),
            ("MFCC (40)", "ours_mfcc", "librosa_mfcc"),
        ):
            rows.append(
                {
                    "task": task,
                    "clip_s": seconds,
                    "ours_ms": round(med[a], 3),
                    "librosa_ms": round(med[b], 3),
                    "speedup": round(med[b] / med[a], 2),
                    "ours_ms_min_max": [round(min(t[a]) / len(clips), 3), round(max(t[a]) / len(clips), 3)],
                    "librosa_ms_min_max": [
                        round(min(t[b]) / len(clips), 3),
                        round(max(t[b]) / len(clips), 3),
                    ],
                }
            )
    md = [
        "# Feature extraction speed: edge_ser.features vs librosa " + librosa.__version__,
        "",
        f"Clips: {args.clips} per duration from {source}, {sr} Hz, float32, one thread (BLAS pinned), "
        f"{args.repeats} interleaved rounds, median per clip.",
        "",
        "| task | clip | ours (ms) | librosa (ms) | speed-up |",
        "|---|---|---|---|---|",
    ] + [
        f"| {r['task']} | {r['clip_s']:.0f} s | {r['ours_ms']:.3f} | {r['librosa_ms']:.3f} | {r['speedup']:.2f}x |"
        for r in rows
    ]
    md += ["", "Target: >= 5x for the 180-d vector on a 3 s clip."]
    text = "\n".join(md)
    print(text)
    write_results(
        "features_speed",
        {
            "source": source,
            "sample_rate": sr,
            "rows": rows,
            "numpy": np.__version__,
            "librosa": librosa.__version__,
        },
        text,
        synthetic=synthetic,
    )


if __name__ == "__main__":
    run_main(main)
