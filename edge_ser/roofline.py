"""The roofline report of a bundle on a device profile: counts, measured (or projected) time, bounds.

For the `host` profile (this machine, measured on the spot) the report is a measurement: batch-1 latency
(median, p99) and peak memory of the chosen engine, per-layer time from the engine's profiler where it has
one (onnxruntime, numpy), attained GFLOP/s and GB/s per layer and for the model, each against the
roofline bound min(peak, intensity x bandwidth). For any other profile the report is a PROJECTION from the
counts: each node takes max(FLOPs / peak, bytes / bandwidth), and the report says so on its first line.

Counts come from `edge_ser.flops` (the one counter; its convention is printed in every report); peaks and
bandwidths from `edge_ser.profiles`. Output: JSON, Markdown and a PNG roofline (log-log, ridge point marked,
one dot per layer and one for the model), drawn with OpenCV so a Pi can make it too.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_ser.fileio import atomic_write, write_png


@dataclass
class LayerPoint:
    index: int
    op: str
    name: str
    flops: int
    bytes: int
    intensity: float
    ms: float | None
    """Measured (host) or projected time of this node; None when the engine cannot time nodes."""
    gflops: float | None
    gbps: float | None
    bound_gflops: float
    fraction: float | None
    """Attained / roofline bound."""
    limit: str
    """"compute" or "memory": which roof bounds this node at its intensity."""


@dataclass
class RooflineReport:
    bundle: str
    model: str
    engine: str
    profile: str
    profile_description: str
    precision: str
    measured: bool
    peak_gflops: float
    bandwidth_gbps: float
    ridge: float
    flops: int
    bytes: int
    intensity: float
    latency_ms: float
    latency_p99_ms: float | None
    peak_rss_mb: float | None
    attained_gflops: float
    attained_gbps: float
    bound_gflops: float
    fraction_of_peak: float
    fraction_of_bound: float
    layers: list[LayerPoint]
    convention: str
    compute_source: str
    bandwidth_source: str
    notes: list[str] = field(default_factory=list)
    machine: dict[str, str] = field(default_factory=dict)

    # ---------------------------------------------------------------------------------------------- Markdown
    def markdown(self) -> str:
        kind = (
            "**Measured on this machine.**"
            if self.measured
            else f"**Projection from counts, not a measurement**: nothing ran on a {self.profile}; each node is "
            "assumed to take max(FLOPs / peak, bytes / bandwidth)."
        )
        unit = "GOP/s" if self.precision.startswith("int") else "GFLOP/s"
        lines = [
            f"# Roofline: {self.model} on {self.profile} ({self.engine}, {self.precision})",
            "",
            kind,
            "",
            f"Device: {self.profile_description}. Peak {self.peak_gflops:g} {unit} ({self.compute_source}); "
            f"bandwidth {self.bandwidth_gbps:g} GB/s ({self.bandwidth_source}); ridge point "
            f"{self.ridge:.2f} FLOP/byte.",
            "",
            f"Model: {self.flops:,} FLOPs, {self.bytes:,} bytes moved, intensity {self.intensity:.2f} FLOP/byte "
            f"({'compute' if self.intensity >= self.ridge else 'memory'} side of the ridge).",
            "",
            f"| | latency ms | p99 ms | RSS MB | attained {unit} | attained GB/s | bound {unit} | "
            "of peak | of bound |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| model | {self.latency_ms:.4f} | {_f(self.latency_p99_ms, '.4f')} | {_f(self.peak_rss_mb, '.1f')} | "
            f"{self.attained_gflops:.3f} | {self.attained_gbps:.3f} | {self.bound_gflops:.2f} | "
            f"{100 * self.fraction_of_peak:.2f}% | {100 * self.fraction_of_bound:.2f}% |",
            "",
            "Per node (nodes with FLOPs or bytes; time from the engine's profiler"
            + ("" if self.measured else ", projected")
            + "):",
            "",
            f"| # | op | name | FLOPs | bytes | FLOP/B | ms | {unit} | GB/s | bound | of bound | bound by |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for p in self.layers:
            lines.append(
                f"| {p.index} | {p.op} | {p.name} | {p.flops:,} | {p.bytes:,} | {p.intensity:.2f} | "
                f"{_f(p.ms, '.4f')} | {_f(p.gflops, '.3f')} | {_f(p.gbps, '.3f')} | {p.bound_gflops:.2f} | "
                f"{'' if p.fraction is None else f'{100 * p.fraction:.1f}%'} | {p.limit} |"
            )
        lines += ["", *[f"- {n}" for n in self.notes], "", f"Counting convention: {self.convention}"]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _f(v: float | None, fmt: str) -> str:
    return "" if v is None else format(v, fmt)


def process_memory_mb(field: str = "VmRSS") -> float | None:
    """This process's resident memory (VmRSS) or its high-water mark (VmHWM) in MB; None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def engine_precision(engine_name: str) -> str:
    """The precision the engine computes in: TFLite int8 -> int8; everything else here runs float32."""
    return "int8" if engine_name == "tflite-int8" else "fp32"


def _int8_phases(bundle) -> str | None:
    """ "input x4, output x8" when the bundle's int8 TFLite variant carries phased copies, else None."""
    v = bundle.manifest.get("tflite", {}).get("variants", {}).get("int8")
    if v is None:
        return None
    ks = [(n, e.get("phases", 1)) for n, e in v["inputs"].items()] + [
        ("output", v["output"].get("phases", 1))
    ]
    return ", ".join(f"{n} x{k}" for n, k in ks) if any(k > 1 for _, k in ks) else None


def sample_inputs(bundle, seed: int = 0) -> dict[str, np.ndarray]:
    """One realistic-range sample per model input (batch 1): faces in [0, 1], MFCC-like audio, raw features."""
    rng = np.random.default_rng(seed)
    out = {}
    for io_ in bundle.manifest["model"]["inputs"]:
        shape = [1 if not isinstance(d, int) else d for d in io_["shape"]]
        x = rng.random(shape, dtype=np.float32)
        norm = bundle.normalization
        if norm is not None and bundle.normalized_input == io_["name"]:
            x = (np.asarray(norm["mean"], np.float32) + rng.standard_normal(shape).astype(np.float32)
                 * np.asarray(norm["std"], np.float32))  # fmt: skip
        out[io_["name"]] = x.astype(np.float32)
    return out


def _time_predict(eng, x: dict[str, np.ndarray], runs: int) -> tuple[float, float]:
    """Batch-1 predict() latency in ms, median and p99 of `runs` timed runs after 20 warm-up runs."""
    for _ in range(20):
        eng.predict(x)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        eng.predict(x)
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples), float(np.percentile(samples, 99))


def _node_times_note(engine_name: str, times: dict[int, float] | None, lat: float) -> str:
    """The report's note on per-node times: absent, or how their sum compares with the predict() median."""
    if times is None:
        return f"{engine_name} gives no per-node times: only the model's point is measured."
    total = sum(times.values())
    why = (
        "the rest is Python, input checks and the engine's own overhead"
        if total <= lat
        else "profiling costs time of its own and the profiler rounds small nodes up to its resolution"
    )
    return (
        f"Per-node times from {engine_name}'s profiler (median of runs); their sum is {total:.4f} ms "
        f"against a predict() median of {lat:.4f} ms ({why})."
    )


def _layer_points(
    rows: list,
    peak_value: float,
    bandwidth: float,
    ridge: float,
    measured: bool,
    times: dict[int, float] | None,
) -> list[LayerPoint]:
    """Every counted node on the roofline: its bound and limiting roof, and its measured or projected time."""
    points = []
    for r in rows:
        bound = min(peak_value, r.intensity * bandwidth) if r.bytes else peak_value
        limit = "compute" if r.intensity >= ridge else "memory"
        if measured:
            ms = times.get(r.index) if times is not None else None
        else:
            ms = max(r.flops / (peak_value * 1e9), r.bytes / (bandwidth * 1e9)) * 1e3
        ok = ms is not None and ms > 0
        gflops = r.flops / (ms * 1e6) if ok else None
        gbps = r.bytes / (ms * 1e6) if ok else None
        frac = gflops / bound if ok and bound > 0 and r.flops else None
        points.append(
            LayerPoint(
                r.index, r.op, r.name, r.flops, r.bytes, r.intensity, ms, gflops, gbps, bound, frac, limit
            )
        )
    return points


def build_report(
    bundle,
    profile,
    *,
    engine: str = "auto",
    threads: int | None = 1,
    runs: int = 300,
    measured: bool | None = None,
    delegate: str | None = None,
) -> RooflineReport:
    """Count, time (on the host profile) or project (elsewhere), and place every node on the roofline."""
    from edge_ser.flops import count
    from edge_ser.profiles import HOST

    counts = count(bundle)
    measured = profile.name == HOST if measured is None else measured
    notes: list[str] = []
    eng = None
    rss_before = process_memory_mb()
    if measured:
        from edge_ser.engines import load_engine

        eng = load_engine(bundle, engine, threads=threads, delegate=delegate)
        engine_name = eng.name
    else:
        engine_name = engine if engine != "auto" else "onnxruntime"
    precision = engine_precision(engine_name)
    peak = profile.compute_peak(precision)
    bw = profile.bandwidth(precision)
    peak_value, compute_source = peak.value, profile.roofline_choice(precision).compute
    if measured and threads == 1 and getattr(peak, "single_thread", None):
        # the engine runs on one thread: its roof is the one-thread peak, not the whole machine's
        peak_value, compute_source = float(peak.single_thread), compute_source + " (single thread)"
    ridge = peak_value / bw.value
    rows = [r for r in counts.layers if r.flops or r.bytes]
    times: dict[int, float] | None = None
    lat = p99 = rss = None
    if measured:
        from edge_ser.engines.profiling import node_times

        x = sample_inputs(bundle)
        lat, p99 = _time_predict(eng, x, runs)
        rss = process_memory_mb()
        if rss is not None and rss_before is not None:
            notes.append(
                f"Memory: the process's resident set is {rss:.1f} MB after {runs} runs, {rss - rss_before:+.1f} MB "
                "for loading and running the engine (the rest is Python, numpy and what ran before)."
            )
        times = node_times(eng, x, repeats=max(20, runs // 5))
        notes.append(_node_times_note(engine_name, times, lat))
    points = _layer_points(rows, peak_value, bw.value, ridge, measured, times)
    if not measured:
        lat = sum(p.ms for p in points if p.ms)
    total_bound = min(peak_value, counts.intensity * bw.value)
    attained = counts.flops / (lat * 1e6)
    over_c = [p.name for p in points if p.fraction is not None and p.fraction > 1.0 and p.limit == "compute"]
    over_m = [p.name for p in points if p.fraction is not None and p.fraction > 1.0 and p.limit == "memory"]
    if measured and (over_c or (attained > total_bound and counts.intensity >= ridge)):
        notes.append(
            "Above the compute roof: "
            + (", ".join(over_c) or "the model")
            + ". The host's peak is the best GEMM "
            "measured here, a lower bound on the silicon's peak; an engine's own kernels can beat it."
        )
    if measured and over_m:
        notes.append(
            "Above the memory roof: "
            + ", ".join(over_m)
            + ". Their data (a few hundred KB of activations) stays "
            "in the caches between nodes, so DRAM bandwidth does not bound them; the roof assumes every byte "
            "comes from DRAM."
        )
    if any(r.op in ("Conv", "Gemm", "MatMul") and r.bits is not None and r.bits < 32 for r in counts.layers):
        if engine_name in ("onnxruntime", "numpy", "tflite-fp32", "tflite-fp16"):
            notes.append(
                f"Weight bytes are counted at their stored bit width (the packed file); {engine_name} unpacks "
                "them to float at load, so its real weight traffic is higher (4 bytes per weight)."
            )
    phased = _int8_phases(bundle) if precision == "int8" else None
    if phased:
        notes.append(
            f"The int8 variant is phased int8 ({phased}): each layer runs on several shifted int8 copies of its "
            "input and output, so its kernels do several times the multiply-adds counted here (the model's "
            'useful work; docs/tflite.md, "phased int8").'
        )
    if precision == "int8":
        notes.append(
            "Activation bytes are counted as float32 (the counter's convention); the int8 variant moves 1 byte "
            "per activation, so the memory side of this report is pessimistic by up to 4x."
        )
    return RooflineReport(
        bundle=str(bundle.source),
        model=bundle.name,
        engine=engine_name,
        profile=profile.name,
        profile_description=profile.description,
        precision=precision,
        measured=measured,
        peak_gflops=peak_value,
        bandwidth_gbps=bw.value,
        ridge=ridge,
        flops=counts.flops,
        bytes=counts.bytes,
        intensity=counts.intensity,
        latency_ms=lat,
        latency_p99_ms=p99,
        peak_rss_mb=rss,
        attained_gflops=attained,
        attained_gbps=counts.bytes / (lat * 1e6),
        bound_gflops=total_bound,
        fraction_of_peak=attained / peak_value,
        fraction_of_bound=attained / total_bound if total_bound else 0.0,
        layers=points,
        convention=counts.convention,
        compute_source=compute_source,
        bandwidth_source=profile.roofline_choice(precision).bandwidth,
        notes=notes,
        machine={"python": platform.python_version(), "machine": platform.machine(), "node": platform.node()},
    )


# ------------------------------------------------------------------------------------------------------ plot

W, H = 1000, 700
MARGIN = (90, 40, 60, 80)  # left, top, right, bottom


def plot_png(report: RooflineReport, path: Path) -> Path:
    """A log-log roofline: the memory and compute roofs, the ridge point, a dot per node and one for the model."""
    from edge_ser.vision._cv2 import import_cv2

    cv2 = import_cv2("drawing the roofline plot")
    img = np.full((H, W, 3), 255, np.uint8)
    left, top, right, bottom = MARGIN
    xs = [p.intensity for p in report.layers if p.intensity > 0] + [report.intensity, report.ridge]
    ys = [p.gflops for p in report.layers if p.gflops] + [report.attained_gflops, report.peak_gflops]
    x0 = 10 ** math.floor(math.log10(min(xs) / 2))
    x1 = 10 ** math.ceil(math.log10(max(xs) * 2))
    y0 = 10 ** math.floor(math.log10(max(min(ys) / 2, 1e-6)))
    y1 = 10 ** math.ceil(math.log10(report.peak_gflops * 2))

    def px(x: float, y: float) -> tuple[int, int]:
        u = (math.log10(x) - math.log10(x0)) / (math.log10(x1) - math.log10(x0))
        v = (math.log10(y) - math.log10(y0)) / (math.log10(y1) - math.log10(y0))
        return int(left + u * (W - left - right)), int(H - bottom - v * (H - top - bottom))

    grey, black, font = (200, 200, 200), (0, 0, 0), cv2.FONT_HERSHEY_SIMPLEX
    for e in range(int(math.log10(x0)), int(math.log10(x1)) + 1):
        a, _ = px(10.0**e, y0)
        cv2.line(img, (a, top), (a, H - bottom), grey, 1)
        cv2.putText(img, f"1e{e}", (a - 14, H - bottom + 20), font, 0.45, black, 1, cv2.LINE_AA)
    for e in range(int(math.log10(y0)), int(math.log10(y1)) + 1):
        _, b = px(x0, 10.0**e)
        cv2.line(img, (left, b), (W - right, b), grey, 1)
        cv2.putText(img, f"1e{e}", (left - 45, b + 5), font, 0.45, black, 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (W - right, H - bottom), black, 1)
    # roofs: bandwidth x intensity up to the ridge, then the flat peak
    bw, peak, ridge = report.bandwidth_gbps, report.peak_gflops, report.ridge
    xa = max(x0, y0 / bw)
    cv2.line(img, px(xa, bw * xa), px(ridge, peak), (40, 40, 200), 2, cv2.LINE_AA)
    cv2.line(img, px(ridge, peak), px(x1, peak), (40, 40, 200), 2, cv2.LINE_AA)
    rx, ry = px(ridge, peak)
    for yy in range(ry, H - bottom, 12):
        cv2.line(img, (rx, yy), (rx, min(yy + 6, H - bottom)), (40, 40, 200), 1)
    cv2.putText(
        img, f"ridge {ridge:.2f} FLOP/B", (rx + 6, H - bottom - 10), font, 0.5, (40, 40, 200), 1, cv2.LINE_AA
    )
    unit = "GOP/s" if report.precision.startswith("int") else "GFLOP/s"
    tx, _ = px(x1, peak)
    cv2.putText(img, f"peak {peak:.4g} {unit}", (tx - 170, ry - 10), font, 0.5, (40, 40, 200), 1, cv2.LINE_AA)
    cv2.putText(
        img, f"{bw:.4g} GB/s", px(xa * 1.3, bw * xa * 1.3 * 1.6), font, 0.5, (40, 40, 200), 1, cv2.LINE_AA
    )
    # points
    labelled = 0
    for p in sorted(report.layers, key=lambda q: q.intensity):
        if p.gflops and p.intensity > 0:
            c = px(p.intensity, p.gflops)
            cv2.circle(img, c, 5, (200, 120, 30), -1, cv2.LINE_AA)
            if p.flops >= 0.02 * report.flops:  # label the layers that matter, alternately below and above
                dy = 18 if labelled % 2 == 0 else -9
                labelled += 1
                cv2.putText(
                    img,
                    p.name.strip("/")[:24],
                    (c[0] - 10, c[1] + dy),
                    font,
                    0.4,
                    (120, 70, 20),
                    1,
                    cv2.LINE_AA,
                )
    mc = px(report.intensity, report.attained_gflops)
    cv2.circle(img, mc, 9, (30, 160, 30), -1, cv2.LINE_AA)
    cv2.putText(img, "model", (mc[0] + 11, mc[1] + 5), font, 0.55, (20, 110, 20), 2, cv2.LINE_AA)
    title = f"{report.model} on {report.profile} ({report.engine}, {report.precision})" + (
        "" if report.measured else " - PROJECTION"
    )
    cv2.putText(img, title, (left, 26), font, 0.6, black, 1, cv2.LINE_AA)
    cv2.putText(
        img, "arithmetic intensity (FLOP / byte)", (W // 2 - 150, H - 25), font, 0.55, black, 1, cv2.LINE_AA
    )
    ylab = np.full((30, 260, 3), 255, np.uint8)
    cv2.putText(ylab, f"attained {unit}", (5, 21), font, 0.55, black, 1, cv2.LINE_AA)
    ylab = cv2.rotate(ylab, cv2.ROTATE_90_COUNTERCLOCKWISE)
    img[H // 2 - 130 : H // 2 + 130, 8:38] = ylab
    return write_png(path, img)


def write_report(report: RooflineReport, out: Path, command: str | None = None) -> tuple[Path, Path, Path]:
    """OUT.json, OUT.md and OUT.png (each written to a temp file, then renamed)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    md = report.markdown() + (f"\n\nMade by: `{command}`\n" if command else "\n")
    data = {"command": command, **report.to_dict()}
    paths = (out.with_suffix(".json"), out.with_suffix(".md"))
    for path, text in zip(paths, (json.dumps(data, indent=2) + "\n", md), strict=True):
        atomic_write(path, text)
    png = plot_png(report, out.with_suffix(".png"))
    return paths[0], paths[1], png
