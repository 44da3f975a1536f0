"""Measure one engine on one bundle in a fresh process; prints one JSON line (used by backends.py).

python benchmarks/_engine_probe.py BUNDLE ENGINE --threads 1 --runs 2000 --features X.npz

X.npz holds one array per model input (rows first); a single-input model may be given an .npy. The JSON line
carries the logits of every row (for agreement with another engine). Latency is wall-clock; the median of the
calling thread's CPU time per call is given too (every engine runs on the calling thread at one thread), as it
is less disturbed by other processes on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def rss_mb() -> float:
    """Peak resident set size of this process so far, MB of 1e6 bytes (as edge_ser.roofline.peak_memory_mb, which
    is not imported here so that the baseline holds numpy alone; both read KiB from the kernel).

    VmHWM (Linux) belongs to this address space; getrusage's ru_maxrss survives fork+exec and would report
    the parent's peak (the benchmark's parent holds torch and tensorflow, ~950 MB).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 1e6 if sys.platform == "darwin" else maxrss * 1024 / 1e6  # bytes on macOS, KiB elsewhere


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle", type=Path)
    ap.add_argument("engine")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--features", type=Path, required=True)
    args = ap.parse_args()
    import numpy as np

    loaded = np.load(args.features)
    if isinstance(loaded, np.ndarray):
        X = {None: loaded.astype(np.float32)}
    else:
        X = {k: loaded[k].astype(np.float32) for k in loaded.files}
    n = len(next(iter(X.values())))

    def rows(i: int, j: int):
        if None in X:
            return X[None][i:j]
        return {k: v[i:j] for k, v in X.items()}

    base = rss_mb()
    t0 = time.perf_counter()
    from edge_ser.bundle import load_bundle
    from edge_ser.engines import load_engine

    bundle = load_bundle(args.bundle)
    engine = load_engine(bundle, args.engine, threads=args.threads)
    load_s = time.perf_counter() - t0
    for i in range(50):  # warm-up
        engine.predict(rows(i % n, i % n + 1))
    lat, cpu = np.empty(args.runs), np.empty(args.runs)
    for i in range(args.runs):
        x = rows(i % n, i % n + 1)
        c, t = time.thread_time(), time.perf_counter()
        engine.predict(x)
        lat[i], cpu[i] = time.perf_counter() - t, time.thread_time() - c
    peak = rss_mb()  # the batch-1 loop's peak, before the agreement pass below
    logits = np.concatenate([engine.predict(rows(i, min(i + 16, n))) for i in range(0, n, 16)])
    print(
        json.dumps(
            {
                "engine": args.engine,
                "describe": engine.describe(),
                "load_ms": load_s * 1e3,
                "median_us": float(np.median(lat) * 1e6),
                "p99_us": float(np.percentile(lat, 99) * 1e6),
                "cpu_median_us": float(np.median(cpu) * 1e6),
                "peak_rss_mb": peak,
                "rss_before_load_mb": base,
                "logits": logits.tolist(),
            }
        )
    )


if __name__ == "__main__":
    main()
