"""Live windows' functionals with pYIN's FFTs reused between windows (`WindowLags`) against from scratch, side by side.

    python benchmarks/window_lags.py [--seconds 60] [--repeats 3]

A live window (3 s, one every 0.5 s) shares all but its newest hop with the last one. Each corpus' clips (every
n-th in sorted order, as recorded) are joined into a stream, with 1 s of silence between clips or without, and
every window of it is computed both ways in turn, one window after the other (1 thread), so machine noise hits
both alike: `functionals(window)` and `functionals(window, lags=...)` with the stream's `WindowLags`. Every window
is computed (a live voice gate skips the pauses, so fewer frames are reused there: docs/protocol.md). The table
gives ms per window (median over repeats of the stream's mean), the ratio, the share of frames reused and the
largest relative difference of the 327 functionals (|a - b| / (|a| + 1e-3)). Without the data sets, a synthetic
voiced stream stands in. Results: benchmarks/results/window_lags.{md,json} (window_lags_synthetic.* on the
stand-in).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_single_thread, run_main, write_results  # noqa: E402

pin_single_thread()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from edge_ser.errors import DatasetError  # noqa: E402
from edge_ser.features.egemaps import FunctionalsSpec, functionals  # noqa: E402

SR = 16000
WINDOW, HOP = 3 * SR, SR // 2
SPEC = FunctionalsSpec(extended=True)  # the ser_* and av_fn_audio bundles' spec


def streams(seconds: float) -> tuple[dict[str, np.ndarray], bool]:
    """Streams of about `seconds` each, by name, and whether they are synthetic: per corpus, its clips joined
    back to back and with 1 s of silence between them. Only absent data sets (DatasetError) fall back."""
    from converters.pipeline import load_records
    from edge_ser.audio import load

    out: dict[str, np.ndarray] = {}
    for corpus in ("emodb", "ravdess"):
        try:
            _, records = load_records(corpus, None)
        except DatasetError:
            continue
        step = max(1, len(records) // max(1, int(seconds / 2)))
        clips, n = [], 0
        for r in records[::step]:
            clips.append(load(Path(r.source), sr=SR, mono=True)[0].astype(np.float32))
            n += clips[-1].size
            if n >= seconds * SR:
                break
        gap = np.zeros(SR, np.float32)
        out[f"{corpus}, back to back"] = np.concatenate(clips)
        out[f"{corpus}, 1 s pauses"] = np.concatenate([p for c in clips for p in (c, gap)])
    if out:
        return out, False
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from _signals import voiced

    return {"synthetic voiced": voiced(SR, int(seconds * SR), seed=1).astype(np.float32)}, True


def replay(y: np.ndarray) -> dict:
    """Every window of the stream both ways, in turn: per-window ms each way, frames reused, largest difference."""
    lags = SPEC.window_lags()
    fresh, reused, worst, over, where = [], [], 0.0, 0, ""
    for end in range(WINDOW, y.size + 1, HOP):
        w = y[end - WINDOW : end]
        lags.moved(HOP)
        t0 = time.perf_counter()
        a = functionals(w, sr=SR, spec=SPEC)
        t1 = time.perf_counter()
        b = functionals(w, sr=SR, spec=SPEC, lags=lags)
        t2 = time.perf_counter()
        fresh.append(t1 - t0)
        reused.append(t2 - t1)
        diff = np.abs(a - b) / (np.abs(a) + 1e-3)
        rel, k = float(diff.max()), int(diff.argmax())
        if rel > worst:
            worst, where = rel, f"{SPEC.names()[k]} ({a[k]:.4g} vs {b[k]:.4g})"
        over += rel > 1e-5
    return {
        "windows": len(fresh),
        "fresh_ms": 1e3 * float(np.mean(fresh)),
        "reused_ms": 1e3 * float(np.mean(reused)),
        "frames_reused": lags.reused / max(1, lags.reused + lags.computed),
        "max_rel_diff": worst,
        "worst_value": where,
        "windows_over_1e-5": over,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="audio per stream (default 60)")
    ap.add_argument("--repeats", type=int, default=3, help="replays of each stream (default 3)")
    args = ap.parse_args()
    if args.seconds < 4 or args.repeats < 1:
        ap.error("--seconds must be >= 4 (a window and a hop) and --repeats >= 1")
    data, synthetic = streams(args.seconds)
    rows = {}
    for name, y in data.items():
        runs = [replay(y) for _ in range(args.repeats)]
        rows[name] = {
            **runs[0],
            "fresh_ms": float(np.median([r["fresh_ms"] for r in runs])),
            "reused_ms": float(np.median([r["reused_ms"] for r in runs])),
        }
        r = rows[name]
        print(
            f"{name}: {r['fresh_ms']:.1f} -> {r['reused_ms']:.1f} ms per window, {r['frames_reused']:.0%} reused"
        )
    text = (
        "# Live windows' functionals: pYIN's FFTs reused between windows (WindowLags) vs from scratch\n\n"
        f"3 s windows every 0.5 s, every window of each stream ({SPEC.dim} functionals), both ways in turn, 1 thread; "
        f"ms per window: the median over {args.repeats} replays of the stream's mean.\n\n"
        "| stream | windows | from scratch, ms | reused, ms | ratio | frames reused | largest relative difference | "
        "where (from scratch vs reused) | windows > 1e-5 |\n|---|---|---|---|---|---|---|---|---|\n"
        + "".join(
            f"| {n} | {r['windows']} | {r['fresh_ms']:.1f} | {r['reused_ms']:.1f} | "
            f"{r['reused_ms'] / r['fresh_ms']:.2f}x | {100 * r['frames_reused']:.0f} % | {r['max_rel_diff']:.1e} | "
            f"{r['worst_value']} | {r['windows_over_1e-5']} |\n"
            for n, r in rows.items()
        )
    )
    print(text)
    write_results("window_lags", {"spec": SPEC.to_dict(), "streams": rows}, text, synthetic=synthetic)


if __name__ == "__main__":
    run_main(main)
