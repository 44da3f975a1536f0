"""The roofline report for every shipped bundle: measured on the host, projected on a Pi 4, a Pi 5 and an
Orin Nano 8GB, all on one engine thread.

    python benchmarks/roofline.py [--runs 300] [--bundles NAME ...]
    python benchmarks/roofline.py --replot     # Markdown, PNGs and the summary again from the stored reports

Per bundle in bundles/ (per branch of a fusion bundle, as `edge-ser bench` reports it): `edge-ser bench BUNDLE
--profile host --engine onnxruntime --threads 1` (measured) and the same report projected from counts on pi4,
pi5 and orin-nano-8gb (CPU roof for one core, fp32: the engines run on the CPU; weights counted as float32, as
onnxruntime holds them), plus the TFLite int8 variant projected on the int8 roof of the Pi 5 and Orin Nano (SDOT;
int8 weights and activations). A projection is an estimate of the latency, not a bound (no per-node dispatch; every byte from DRAM). Reports
(JSON, Markdown, PNG) go to benchmarks/results/roofline/, named as `edge-ser bench --out` names them, and a
summary table to benchmarks/results/roofline.md (not with --bundles: the summary covers every bundle; `--replot`
after it writes the summary again from every stored report, the new ones included).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import pin_single_thread, run_main, write_results  # noqa: E402

pin_single_thread()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_ser.bundle import load_bundle  # noqa: E402
from edge_ser.profiles import load_profile  # noqa: E402
from edge_ser.roofline import RooflineReport, build_report, write_report  # noqa: E402
from edge_ser.schema import tflite_variants  # noqa: E402

PROJECTED = ("pi4", "pi5", "orin-nano-8gb")
INT8 = ("pi5", "orin-nano-8gb")
THREADS = 1


def models(bundle) -> list[tuple[str | None, object]]:
    """(branch name or None, the bundle with a graph): the bundle itself, or each branch of a fusion bundle
    (which has no graph of its own), as `edge-ser bench` iterates them."""
    branches = getattr(bundle, "branches", None)
    return list(branches.items()) if branches else [(None, bundle)]


def jobs(bundle) -> list[tuple[str, str]]:
    """(profile, engine) pairs for one model: host measured, the boards projected, TFLite int8 where it has it."""
    out = [("host", "onnxruntime")] + [(p, "onnxruntime") for p in PROJECTED]
    if "int8" in tflite_variants(bundle.manifest):
        out += [(p, "tflite-int8") for p in INT8]
    return out


def stem(name: str, profile: str, engine: str, branch: str | None) -> str:
    """The report's file stem: what `edge-ser bench bundles/NAME --out roofline/<NAME>_<profile>[_int8]` writes
    (a fusion bundle's branch gets `_<branch>` after it)."""
    base = f"{name}_{profile}" + ("_int8" if engine == "tflite-int8" else "")
    return base + (f"_{branch}" if branch else "")


def summary(rows: list[tuple[str, str | None, RooflineReport]]) -> str:
    """The Markdown summary: one row per report, linking it."""
    md = [
        "# Roofline of the shipped bundles",
        "",
        f"{THREADS} engine thread: every roof is the profile's peak for one core and the bandwidth measured on one "
        "thread. host = measured here (latency = median of batch-1 predict() calls, per-node times from "
        "onnxruntime's profiler); every other row is a PROJECTION from the counts (each node at max(FLOPs / peak, "
        "bytes / bandwidth)): an estimate of the latency, not a bound (it leaves out per-node dispatch and reads every "
        "byte from DRAM), not a measurement. "
        "Bytes count the weights as the engine holds them (float32 for onnxruntime, int8 for TFLite int8), not at "
        "the packed bits (each report gives that figure too). A fusion bundle has a row per branch. Face models: "
        "the latency is per crop; `per decision` = rows a live decision runs x that. Counting convention, peaks, "
        "their sources and caveats: in each report.",
        "",
        "| bundle | branch | profile | engine | precision | kind | FLOPs | bytes | FLOP/B | ridge | latency ms | "
        "per decision ms | GFLOP/s | of peak | bound by | report |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, branch, r in rows:
        s = stem(name, r.profile, r.engine, branch)
        md.append(
            f"| {name} | {branch or ''} | {r.profile} | {r.engine} | {r.precision} | "
            f"{'measured' if r.measured else 'projected (estimate)'} | {r.flops:,} | {r.bytes:,} | "
            f"{r.intensity:.2f} | {r.ridge:.2f} | {r.latency_ms:.4f} | "
            f"{'' if r.decision_ms is None else f'{r.decision_ms:.4f}'} | {r.attained_gflops:.2f} {r.unit} | "
            f"{100 * r.fraction_of_peak:.1f}% | {'compute' if r.intensity >= r.ridge else 'memory'} | "
            f"[md](roofline/{s}.md), [png](roofline/{s}.png) |"
        )
    return "\n".join(md)


def replot(folder: Path) -> int:
    """Write each report's Markdown and PNG again from its JSON, with its above-a-roof notes in today's
    wording (`refresh_roof_notes`; the figures unchanged, nothing measured); the number written."""
    import json

    from edge_ser.roofline import refresh_roof_notes

    reports = sorted(folder.glob("*.json"))
    for j in reports:
        stored = json.loads(j.read_text())
        report = refresh_roof_notes(RooflineReport.from_dict(stored))
        write_report(report, j.with_suffix(""), stored.get("command"))
    return len(reports)


def bundle_name(path: str, branch: str | None) -> str:
    """The name of the bundle a stored row was measured for, from its report's `bundle` path (summaries written
    before rows held `name`): a fusion bundle's branch row holds the branch's path, `<fusion>/../<branch bundle>`, so
    its name is the fusion bundle's folder (it read as the branch bundle, and the row linked to reports that do not
    exist)."""
    p = Path(path)
    if branch and p.parent.name == "..":
        return p.parent.parent.name
    return p.name


def summary_rows(rows: list[tuple[str, str | None, RooflineReport]]) -> list[dict]:
    """roofline.json's rows: each report with the bundle's name and the branch it was measured for."""
    return [{"name": n, "branch": b, **r.to_dict()} for n, b, r in rows]


def stored_rows(summary_json: Path, folder: Path) -> list[tuple[str, str | None, RooflineReport]]:
    """The summary's rows read back: each row of `summary_json` (roofline.json) as its report in `folder` holds it
    now (so a `--bundles` rerun's reports replace the old ones), else as the summary stored it."""
    import json

    if not summary_json.is_file():
        return []
    rows = []
    for row in json.loads(summary_json.read_text())["rows"]:
        name, branch = row.get("name") or bundle_name(row["bundle"], row.get("branch")), row.get("branch")
        report = folder / f"{stem(name, row['profile'], row['engine'], branch)}.json"
        rows.append(
            (
                name,
                branch,
                RooflineReport.from_dict(json.loads(report.read_text()) if report.is_file() else row),
            )
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--runs", type=int, default=300, help="timed predict() calls per host report (default 300)"
    )
    ap.add_argument("--bundles", nargs="+", default=None, help="only these bundles (names in bundles/)")
    ap.add_argument(
        "--replot",
        action="store_true",
        help="measure nothing: write every report's Markdown and PNG in benchmarks/results/roofline/ again from "
        "its JSON, the notes on layers above a roof in today's wording (after a change to the plot or notes)",
    )
    args = ap.parse_args()
    if args.runs < 1:  # 0 was a StatisticsError traceback ('no median for empty data')
        ap.error(f"--runs {args.runs}: at least 1 timed call")
    out = _common.RESULTS / "roofline"
    if args.replot:
        done = replot(out)
        print(f"{done} report(s) written again (Markdown and PNG) from their JSON in {out}")
        rows = stored_rows(_common.RESULTS / "roofline.json", out)
        if rows:  # the summary in today's wording, from the reports as they are now (measuring nothing)
            write_results("roofline", {"rows": summary_rows(rows)}, summary(rows))
            print(f"benchmarks/results/roofline.md and .json written again from {len(rows)} stored report(s)")
        return
    paths = sorted(p for p in (REPO / "bundles").iterdir() if (p / "manifest.json").is_file())
    if args.bundles:
        unknown = sorted(set(args.bundles) - {p.name for p in paths})
        if unknown:
            ap.error(
                f"--bundles {' '.join(unknown)}: not in bundles/ (there: {', '.join(p.name for p in paths)})"
            )
        paths = [p for p in paths if p.name in args.bundles]
    rows = []
    for path in paths:
        for branch, model in models(load_bundle(path)):
            for prof, engine in jobs(model):
                r = build_report(model, load_profile(prof), engine=engine, threads=THREADS, runs=args.runs)
                s = stem(path.name, prof, engine, None)
                cmd = (
                    f"edge-ser bench bundles/{path.name} --profile {prof} --engine {engine} --threads {THREADS} "
                    f"--out benchmarks/results/roofline/{s}"
                )
                write_report(r, out / stem(path.name, prof, engine, branch), cmd)
                rows.append((path.name, branch, r))
                print(
                    f"{path.name:22s} {branch or '':6s} {prof:14s} {r.engine:12s} "
                    f"{'measured' if r.measured else 'projected':9s} {r.latency_ms:8.4f} ms  "
                    f"{r.attained_gflops:8.2f} G/s  {100 * r.fraction_of_peak:6.2f}% of peak",
                    flush=True,
                )
    text = summary(rows)
    print(text)
    if args.bundles:  # the summary covers every bundle: a subset would replace it with a partial table
        print(
            "benchmarks/results/roofline.md and .json not rewritten (--bundles: they cover every bundle); the "
            "reports above are in benchmarks/results/roofline/, and `--replot` writes the summary again from "
            "every stored report (these new ones included)",
            file=sys.stderr,
        )
        return
    write_results("roofline", {"rows": summary_rows(rows)}, text)


if __name__ == "__main__":
    run_main(main)
