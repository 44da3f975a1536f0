"""`edge-ser bench BUNDLE`: the roofline report of a bundle on a device profile, or (`--live`) the live
pipeline's per-stage latency, CPU and memory over a file played in real time."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_ser.cli.common import given_path, warn_oversubscribed

SHARED = ("bundle", "engine", "threads", "delegate", "providers", "json", "help")
"""Destinations of `edge-ser run`'s options that the roofline report uses too (the rest set up the live pipeline)."""
ROOFLINE_ONLY = ("profile", "runs", "remeasure")
"""Destinations of the options only the roofline report reads, refused with --live."""
SUFFIXES = (".json", ".md", ".png")
"""The files --out OUT names for the roofline report (`edge_ser.roofline.write_report`)."""
LIVE_SUFFIXES = (".json", ".md")
"""The files --out OUT names with --live (`edge_ser.live.bench.write_report`)."""


def register(sub: argparse._SubParsersAction) -> None:
    from edge_ser.live.command import add_run_args

    p = sub.add_parser(
        "bench",
        help="roofline report of a bundle on a device profile, or (--live) the live pipeline's costs",
        description="Default: the roofline report: FLOPs and bytes per layer (edge_ser.flops), latency and "
        "peak memory measured with --engine on the host profile (measured here by micro-benchmarks) or a "
        "projected estimate from counts for another --profile (pi4, pi5, orin-nano-8gb, ...), on --threads "
        "threads (default 1: the roof is the profile's peak for that many cores); prints it as Markdown, writes "
        "OUT.json, OUT.md and OUT.png with --out, and the report as JSON with --json FILE (- for stdout, "
        "instead of the Markdown). --live: the live pipeline over an audio (+ video) file paced in real time "
        "(--fast: as fast as it runs, for the work per second rather than a live run's CPU share), "
        "reporting per-stage latency (p50 / p99), CPU share of one core and resident memory over the run. "
        "The source, pipeline and output options below (--mic, --audio-file, --window, --overlay, --web, ...) "
        "and --rss-every are for --live only, and --profile, --runs and --remeasure for the roofline report "
        "only: given to the other mode they are an error naming them. --json means JSON lines of the live "
        "decisions with --live, the roofline report without.",
    )
    add_run_args(p)
    # run's --json help ("JSON lines") holds for --live only: the roofline report is one JSON document
    next(a for a in p._actions if a.dest == "json").help = (  # noqa: SLF001
        "the roofline report as one JSON document to this file, or - for stdout instead of the Markdown; with "
        "--live, JSON lines of the live decisions (replaced; see --json-append)"
    )
    p.add_argument("--live", action="store_true", help="benchmark the live pipeline instead")
    p.add_argument(
        "--profile",
        default="host",
        metavar="NAME",
        help="device profile: host (measured here, default), or a firmware profile by name (projected; e.g. "
        "pi4, pi5, orin-nano-8gb: an unknown name is an error listing them) or path to a profile .yaml file",
    )
    p.add_argument(
        "--runs",
        type=int,
        default=RUNS,
        metavar="N",
        help=f"timed predict() calls for the latency (default {RUNS})",
    )
    p.add_argument(
        "--remeasure", action="store_true", help="measure the host profile again instead of using its cache"
    )
    p.add_argument(
        "--rss-every",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="--live: seconds between memory samples (default 5)",
    )
    p.add_argument(
        "--out",
        type=given_path,
        default=None,
        help="write OUT.json and OUT.md (and the roofline plot OUT.png)",
    )
    p.set_defaults(func=cmd_bench, no_console=True)
    # every option with its default (after set_defaults), to tell later which ones the user gave
    options = {a.dest: (a.option_strings[0], p.get_default(a.dest)) for a in p._actions if a.option_strings}  # noqa: SLF001
    live_only = {d: o for d, o in options.items() if d not in (*SHARED, *ROOFLINE_ONLY, "live", "out")}
    roofline_only = {d: o for d, o in options.items() if d in ROOFLINE_ONLY}
    p.set_defaults(live_only=live_only, roofline_only=roofline_only)


def given_options(args: argparse.Namespace, options: dict[str, tuple[str, Any]]) -> list[str]:
    """The options among `options` ({dest: (option, default)}) whose value differs from their default."""
    return [opt for dest, (opt, default) in options.items() if getattr(args, dest, default) != default]


def check_mode_options(args: argparse.Namespace) -> None:
    """Refuse the options the chosen mode would silently ignore, naming them."""
    from edge_ser.errors import ConfigError

    if args.live:
        wrong = given_options(args, getattr(args, "roofline_only", {}))
        if wrong:
            raise ConfigError(f"{', '.join(wrong)}: for the roofline report, not with --live")
        return
    wrong = given_options(args, getattr(args, "live_only", {}))
    if wrong:
        raise ConfigError(
            f"{', '.join(wrong)}: only with --live (they set up the live pipeline); the roofline report takes "
            "--profile, --engine, --threads, --delegate, --providers, --runs, --remeasure, --out and --json"
        )


RUNS = 300
"""--runs' default."""


def check_json_apart(args: argparse.Namespace, outs: Sequence[Path], suffixes: Sequence[str]) -> None:
    """Refuse a --json FILE that is one of the files --out writes (`outs` with each of `suffixes`): one would
    overwrite the other."""
    from edge_ser.errors import ConfigError

    if args.json in (None, "-") or args.out is None:
        return
    from edge_ser.fileio import report_file

    target = Path(args.json).resolve()
    for out in outs:
        for suffix in suffixes:
            clash = report_file(out, suffix, suffixes)
            if clash.resolve() == target:
                raise ConfigError(
                    f"--json {args.json} and --out {args.out}: both would write {clash} (--out "
                    f"writes OUT{', OUT'.join(suffixes)}), one over the other; give --json another file name"
                )


def cmd_bench(args: argparse.Namespace) -> int:
    from edge_ser.cli.common import check_writable
    from edge_ser.errors import ConfigError

    if args.runs < 1:
        raise ConfigError(f"--runs {args.runs}: time at least 1 predict() call (default {RUNS})")
    check_mode_options(args)
    if args.out is not None:
        check_writable(args.out, "--out")
    check_json_apart(
        args, [args.out] if args.out is not None else [], LIVE_SUFFIXES if args.live else SUFFIXES
    )
    if args.live or args.profile == "host":  # runs here (a projection for another profile runs nothing)
        warn_oversubscribed(args.threads, "bench", "the times include their contention")
    if args.live:
        from edge_ser.live.bench import cmd_bench_live

        return cmd_bench_live(args)
    if args.json not in (None, "-"):
        check_writable(Path(args.json), "--json")
    if args.out is not None:  # OUT.png needs OpenCV: say so before anything runs or is written
        from edge_ser.vision._cv2 import import_cv2

        import_cv2("drawing the roofline plot OUT.png that --out writes")
    return roofline_reports(args)


def branch_out(out: Path, name: str | None) -> Path:
    """The --out stem of one report: OUT itself, or OUT_branch for a branch of a fusion bundle (`--out rep.md`:
    rep_audio, not rep.md_audio)."""
    from edge_ser.fileio import report_stem

    if name is None:
        return out
    stem = report_stem(out, SUFFIXES)
    return stem.with_name(f"{stem.name}_{name}")


def roofline_reports(args: argparse.Namespace) -> int:
    """One roofline report per model (per branch of a fusion bundle): Markdown on stdout (unless --json -),
    OUT.{json,md,png} with --out, all of them as one JSON document with --json."""
    from edge_ser.bundle import load_bundle
    from edge_ser.fileio import atomic_write
    from edge_ser.profiles import load_profile
    from edge_ser.roofline import build_report, write_report
    from edge_ser.text import printable

    bundle = load_bundle(args.bundle)
    if args.profile == "host" and args.remeasure:
        from edge_ser.hostbench import host_profile

        profile = host_profile(remeasure=True)
    else:
        profile = load_profile(args.profile)
    if args.profile != "host":  # a projection times nothing: say what was given for nothing (a review)
        unused = [o for o, given in (("--runs", args.runs != RUNS), ("--remeasure", args.remeasure)) if given]
        if unused:
            print(
                f"edge-ser bench: {' and '.join(unused)} time{'s' if len(unused) == 1 else ''} the host; a "
                f"projection for {args.profile} runs nothing, so {'it is' if len(unused) == 1 else 'they are'} "
                "ignored",
                file=sys.stderr,
            )
    command = "edge-ser " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    quiet = args.json == "-"  # stdout carries the JSON alone
    branches = getattr(bundle, "branches", None)  # a fusion bundle: one report per branch bundle
    outs = {name: branch_out(args.out, name) for name in branches or [None]} if args.out is not None else {}
    check_json_apart(args, list(outs.values()), SUFFIXES)  # a branch's OUT_name.json too
    reports = {}
    for name, b in branches.items() if branches else [(None, bundle)]:
        report = build_report(
            b,
            profile,
            engine=args.engine,
            threads=args.threads,
            runs=args.runs,
            delegate=getattr(args, "delegate", None),
            providers=getattr(args, "providers", None),
        )
        reports[name] = report
        if not quiet:
            if name is not None:
                print(f"## branch {name}\n")
            print(printable(report.markdown(), keep_newlines=True))  # names and labels from the bundle
        if args.out is not None:
            paths = write_report(report, outs[name], command)
            print("\nwrote " + ", ".join(str(p) for p in paths), file=sys.stderr if quiet else sys.stdout)
    if args.json is not None:
        doc = (
            {"command": command, **reports[None].to_dict()}
            if None in reports
            else {
                "command": command,
                "bundle": str(bundle.source),
                "branches": {n: r.to_dict() for n, r in reports.items()},
            }
        )
        text = json.dumps(doc, indent=2) + "\n"
        if quiet:
            sys.stdout.write(text)
        else:
            atomic_write(Path(args.json), text)
            print(f"wrote {args.json}")
    return 0
