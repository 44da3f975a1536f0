"""Measure one engine on one bundle in a fresh process; prints one JSON line (used by backends.py).

python benchmarks/_engine_probe.py BUNDLE ENGINE --threads 1 --runs 2000 --features X.npy
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
    """Peak resident set size of this process so far, MB.

    VmHWM (Linux) belongs to this address space; getrusage's ru_maxrss survives fork+exec and would report
    the parent's peak (the benchmark's parent holds torch and tensorflow, ~950 MB).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle", type=Path)
    ap.add_argument("engine")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--features", type=Path, required=True)
    args = ap.parse_args()
    import numpy as np

    X = np.load(args.features).astype(np.float32)
    base = rss_mb()
    t0 = time.perf_counter()
    from edge_ser.bundle import load_bundle
    from edge_ser.engines import load_engine

    bundle = load_bundle(args.bundle)
    engine = load_engine(bundle, args.engine, threads=args.threads)
    load_s = time.perf_counter() - t0
    for i in range(50):  # warm-up
        engine.predict(X[i % len(X)][None])
    lat = np.empty(args.runs)
    for i in range(args.runs):
        x = X[i % len(X)][None]
        t = time.perf_counter()
        engine.predict(x)
        lat[i] = time.perf_counter() - t
    pred = engine.predict(X).argmax(1)
    print(
        json.dumps(
            {
                "engine": args.engine,
                "describe": engine.describe(),
                "load_ms": load_s * 1e3,
                "median_us": float(np.median(lat) * 1e6),
                "p99_us": float(np.percentile(lat, 99) * 1e6),
                "peak_rss_mb": rss_mb(),
                "rss_before_load_mb": base,
                "pred": pred.tolist(),
            }
        )
    )


if __name__ == "__main__":
    main()
