"""`edge-ser bench BUNDLE`: the roofline report of a bundle on a device profile, or (`--live`) the live
pipeline's per-stage latency, CPU and memory over a file played in real time."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from edge_ser.live.command import add_run_args

    p = sub.add_parser(
        "bench",
        help="roofline report of a bundle on a device profile, or (--live) the live pipeline's costs",
        description="Default: the roofline report: FLOPs and bytes per layer (edge_ser.flops), latency and "
        "peak memory measured with --engine on the host profile (measured here by micro-benchmarks) or "
        "projected from counts for another --profile (pi4, pi5, orin-nano-8gb, ...); writes OUT.json, OUT.md "
        "and OUT.png. --live: the live pipeline over a WAV (+ video) file paced in real time, reporting "
        "per-stage latency (p50 / p99), CPU share of one core and resident memory over the run.",
    )
    add_run_args(p)
    p.add_argument("--live", action="store_true", help="benchmark the live pipeline instead")
    p.add_argument(
        "--profile",
        default="host",
        help="device profile: host (measured here, default) or a firmware profile",
    )
    p.add_argument(
        "--runs", type=int, default=300, help="timed predict() calls for the latency (default 300)"
    )
    p.add_argument(
        "--remeasure", action="store_true", help="measure the host profile again instead of using its cache"
    )
    p.add_argument("--rss-every", type=float, default=5.0, help="seconds between memory samples (default 5)")
    p.add_argument(
        "--out", type=Path, default=None, help="write OUT.json and OUT.md (and the roofline plot OUT.png)"
    )
    p.set_defaults(func=cmd_bench, no_console=True)


def cmd_bench(args: argparse.Namespace) -> int:
    from edge_ser.errors import ConfigError

    if args.runs < 1:
        raise ConfigError(f"--runs {args.runs}: time at least 1 predict() call (default 300)")
    if args.live:
        from edge_ser.live.bench import cmd_bench_live

        return cmd_bench_live(args)
    from edge_ser.bundle import load_bundle
    from edge_ser.profiles import load_profile
    from edge_ser.roofline import build_report, write_report

    bundle = load_bundle(args.bundle)
    if args.profile == "host" and args.remeasure:
        from edge_ser.hostbench import host_profile

        profile = host_profile(remeasure=True)
    else:
        profile = load_profile(args.profile)
    from edge_ser.text import printable

    branches = getattr(bundle, "branches", None)  # a fusion bundle: one report per branch bundle
    for name, b in branches.items() if branches else [(None, bundle)]:
        report = build_report(
            b,
            profile,
            engine=args.engine,
            threads=args.threads,
            runs=args.runs,
            delegate=getattr(args, "delegate", None),
        )
        if name is not None:
            print(f"## branch {name}\n")
        print(printable(report.markdown(), keep_newlines=True))  # names and labels from the bundle
        if args.out is not None:
            command = "edge-ser " + " ".join(shlex.quote(a) for a in sys.argv[1:])
            out = args.out if name is None else args.out.with_name(f"{args.out.name}_{name}")
            paths = write_report(report, out, command)
            print("\nwrote " + ", ".join(str(p) for p in paths))
    return 0
