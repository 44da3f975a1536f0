"""The roofline report of a bundle on a device profile: counts, measured (or projected) time, bounds.

For the `host` profile (this machine, measured on the spot) the report is a measurement: batch-1 latency
(median, p99) and the process's peak memory while loading and running the chosen engine, per-layer time from the
engine's profiler where it has one (onnxruntime, numpy), attained GFLOP/s and GB/s per layer and for the model,
each against the roofline bound min(peak, intensity x bandwidth). For any other profile the report is a
PROJECTION from the counts: each node takes max(FLOPs / peak, bytes / bandwidth), an estimate, not a bound: it
leaves out the engine's per-node dispatch (a real run is slower by it) and reads every byte from DRAM (a model whose
weights stay in the caches can run faster: measured host runs of the small MLPs reach 1.4x such a roof), and the
report says so on its first line.

The roof matches the run: the profile's all-core compute peak scaled to the engine's threads (peak / cores x
min(threads, cores); a measured one-thread peak where the profile has one) and the bandwidth measured on that many
threads where the profile has it (the host's triad runs), else the profile's one-thread figure. Bytes are counted
as the report's engine holds the weights at run time (float32 for onnxruntime, numpy and TFLite fp32 / fp16, int8
for TFLite int8); the packed file's stored bits are a separate line (what a packed sub-byte kernel would read).

Counts come from `edge_ser.flops` (the one counter; its convention is printed in every report); peaks and
bandwidths from `edge_ser.profiles`, whose caveats (unverified figures, notes) the report repeats under its
"Device:" line. Output: JSON, Markdown and a PNG roofline (log-log, ridge point marked, one dot per layer and one
for the model), drawn with OpenCV so a Pi can make it too.
"""

from __future__ import annotations

import gc
import json
import math
import platform
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_ser.bundle.manifest import MODEL_NAME
from edge_ser.errors import ConfigError
from edge_ser.fileio import atomic_write, report_file, write_png
from edge_ser.flops import op_name, rate_unit
from edge_ser.profiles.profile import ProfileError
from edge_ser.schema import tflite_variants
from edge_ser.text import counted, with_article


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
    """Attained (measured) or implied by the projected time (a projection puts the node on its roof)."""
    gbps: float | None
    bound_gflops: float
    fraction: float | None
    """Attained / roofline bound (1 by construction for a projection)."""
    limit: str
    """"compute" or "memory": which roof bounds this node at its intensity."""


@dataclass(frozen=True)
class Roof:
    """The compute peak and the bandwidth one report uses: the profile's, matched to the engine's threads."""

    peak: float
    peak_source: str
    bandwidth: float
    bandwidth_source: str
    threads: int
    """Cores the roof counts: min(engine threads, cores); all cores when the engine picks its own threads."""
    cores: int


@dataclass(frozen=True)
class Storage:
    """How the report's engine holds the model at run time: bytes per weight value and per activation value."""

    weight_bytes: int
    activation_bytes: int
    why: str


STORAGE = {
    "onnxruntime": Storage(
        4, 4, "onnxruntime's CPU EP is handed every weight dequantized to float32 at load"
    ),
    "numpy": Storage(
        4,
        4,
        "the numpy engine dequantizes every weight to float32 at load (Bundle.dequantized) and runs in float32",
    ),
    "tflite-fp32": Storage(4, 4, "the fp32 TFLite file holds float32 weights"),
    "tflite-fp16": Storage(
        4,
        4,
        "the fp16 TFLite file stores float16 weights, DEQUANTIZE'd to float32 when the interpreter loads it "
        "(docs/tflite.md), so its kernels read 4 bytes a weight",
    ),
    "tflite-int8": Storage(
        1, 1, "int8 weights (+ a float32 scale per output channel, int32 biases) and int8 activations"
    ),
}
"""Engine name -> how it holds a bundle at run time (the bytes the report counts)."""


@dataclass
class RooflineReport:
    bundle: str
    model: str
    engine: str
    profile: str
    profile_description: str
    precision: str
    measured: bool
    threads: int | None
    """Engine threads asked for (None: the engine's own choice)."""
    roof_threads: int
    """Cores the compute peak counts: min(threads, cores), all cores for None."""
    cores: int
    peak_gflops: float
    bandwidth_gbps: float
    ridge: float
    flops: int
    bytes: int
    intensity: float
    latency_ms: float
    """Measured median (host) or projected estimate (other profiles), per model call at batch 1."""
    latency_p99_ms: float | None
    peak_rss_mb: float | None
    """The process's peak resident set while loading and running the engine (VmHWM; measured reports only)."""
    rss_before_mb: float | None
    attained_gflops: float
    attained_gbps: float
    bound_gflops: float
    fraction_of_peak: float
    fraction_of_bound: float
    layers: list[LayerPoint]
    convention: str
    compute_source: str
    bandwidth_source: str
    weight_storage: str
    """How the bytes count the weights: as the engine holds them at run time, and why."""
    packed_bytes: int
    """Bytes moved with the weights at the packed file's stored bits (what a packed sub-byte kernel reads)."""
    packed_intensity: float
    packed_latency_ms: float | None
    """Projection with packed_bytes (projections only)."""
    operating_point: str = ""
    caveats: list[str] = field(default_factory=list)
    roof_precision: str = ""
    """The precision of the roof the points are placed against ("" = `precision`; fp32 for an int8 engine
    measured on a host profile without an int8 roof)."""
    """The profile's caveats on the figures this report uses (unverified figures, notes)."""
    rows_per_decision: int | None = None
    """Face bundles: model rows one live decision runs (k crops x views x mirror); None otherwise."""
    decision_rows: str = ""
    decision_ms: float | None = None
    """rows_per_decision x latency_ms: computed, not timed."""
    peak_rss_scope: str = ""
    notes: list[str] = field(default_factory=list)
    machine: dict[str, str] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)
    """What was measured or projected, to reproduce it: the model file, the timed runs, the library versions, when
    the report was made and when the host's peaks were measured."""

    # ---------------------------------------------------------------------------------------------- Markdown
    @property
    def unit(self) -> str:
        """GOP/s for integer precisions, GFLOP/s for floating point."""
        return rate_unit(self.precision)

    @property
    def op(self) -> str:
        """What the counts count: OP (integer precisions) or FLOP (`op_name`)."""
        return op_name(self.precision)

    @property
    def roof_unit(self) -> str:
        """The unit of the roof's figures (peak_gflops, bound_gflops, the ridge's ops): the roof precision's, which is
        fp32's GFLOP/s for an int8 engine measured on a profile with no int8 roof (`units.roof` in the JSON)."""
        return rate_unit(self.roof_precision or self.precision)

    @property
    def roof_op(self) -> str:
        """What the roof's ridge point counts per byte: OP or FLOP, as `roof_unit`."""
        return op_name(self.roof_precision or self.precision)

    def threads_text(self) -> str:
        """ "1 thread", "4 threads" or "the engine's default threads"."""
        if self.threads is None:
            return "the engine's default threads"
        return counted(self.threads, "thread")

    def markdown(self) -> str:
        kind = (
            "**Measured on this machine.**"
            if self.measured
            else f"**Projection from counts, not a measurement**: nothing ran on {with_article(self.profile)}; each node is "
            f"assumed to take max({self.op}s / peak, bytes / DRAM bandwidth), so every time below is an estimate, not a "
            "bound: it leaves out the engine's per-node dispatch and call overhead (a real run is slower by them) "
            "and reads every byte from DRAM (weights that stay in the caches make a real run faster)."
        )
        lines = [
            f"# Roofline: {self.model} on {self.profile} ({self.engine}, {self.precision}, {self.threads_text()})",
            "",
            kind,
            "",
            *self._device_lines(),
            "",
            f"Model: {self.flops:,} {self.op}s, {self.bytes:,} bytes moved, intensity {self.intensity:.2f} "
            f"{self.op}/byte ({'compute' if self.intensity >= self.ridge else 'memory'} side of the ridge). "
            f"Weights counted as {self.weight_storage}.",
            "",
            self._packed_line(),
            "",
            *(self._measured_table() if self.measured else self._projected_table()),
            *self._decision_lines(),
            "",
            *self._layer_table(),
            *self._setup_line(),
        ]
        lines += ["", *[f"- {n}" for n in self.notes], "", f"Counting convention: {self.convention}"]
        return "\n".join(lines)

    def _device_lines(self) -> list[str]:
        cores = counted(self.cores, "core")
        if self.threads is not None and self.threads > self.cores:  # not "99 threads (all 2 cores)"
            share = f"oversubscribed: more threads than the {cores}, which they share; the roof counts the {cores}"
        elif self.roof_threads >= self.cores:
            share = f"all {cores}" if self.cores > 1 else cores
        else:
            share = f"{self.roof_threads} of {cores}"
        out = [
            f"Device: {self.profile_description}; {self.operating_point}. Roof for {self.threads_text()} "
            f"({share}): peak {self.peak_gflops:.4g} {self.roof_unit} ({self.compute_source}); bandwidth "
            f"{self.bandwidth_gbps:.4g} GB/s ({self.bandwidth_source}); ridge point {self.ridge:.2f} "
            f"{self.roof_op}/byte."
        ]
        if self.caveats:
            out += [
                "",
                "The profile's caveats and notes on these figures:",
                "",
                *[f"- {c}" for c in self.caveats],
            ]
        return out

    def _packed_line(self) -> str:
        when = f"; projected {self.packed_latency_ms:.4f} ms" if self.packed_latency_ms is not None else ""
        return (
            f"If run by a packed sub-byte kernel (weights read at the packed file's stored bits, as `edge-ser "
            f"info` counts them; no engine here does): {self.packed_bytes:,} bytes, intensity "
            f"{self.packed_intensity:.2f} {self.op}/byte{when}."
        )

    def _measured_table(self) -> list[str]:
        return [
            f"| | latency ms (median) | p99 ms | peak RSS MB (over resident before) | attained {self.unit} | "
            f"attained GB/s | bound {self.roof_unit} | of peak | of bound |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| model | {self.latency_ms:.4f} | {_f(self.latency_p99_ms, '.4f')} | {self._rss_cell()} | "
            f"{self.attained_gflops:.3f} | {self.attained_gbps:.3f} | {self.bound_gflops:.2f} | "
            f"{100 * self.fraction_of_peak:.2f}% | {100 * self.fraction_of_bound:.2f}% |",
        ]

    def _projected_table(self) -> list[str]:
        return [
            f"| | projected ms (estimate, excl. per-node dispatch) | {self.unit} at that time | GB/s at that "
            f"time | bound {self.roof_unit} | of peak |",
            "|---|---|---|---|---|---|",
            f"| model | {self.latency_ms:.4f} | {self.attained_gflops:.3f} | {self.attained_gbps:.3f} | "
            f"{self.bound_gflops:.2f} | {100 * self.fraction_of_peak:.2f}% |",
        ]

    def _decision_lines(self) -> list[str]:
        if self.rows_per_decision is None or self.decision_ms is None:
            return []
        face = self.decision_rows.startswith("k=")
        lead = (
            "Face bundle: the latency above is per face crop (one model row, batch 1). A live decision runs "
            f"{self.decision_rows} = {self.rows_per_decision} rows"
            if face
            else f"The latency above is per model row (batch 1). A live decision runs {self.decision_rows}"
        )
        return [
            "",
            f"{lead}: {self.rows_per_decision} x "
            f"{self.latency_ms:.4f} = {self.decision_ms:.4f} ms per decision (computed, not timed; the rows go "
            "to the engine as one batch, which reads the weights once and can take less).",
        ]

    def _layer_table(self) -> list[str]:
        if not self.measured:
            out = [
                f"Per node (nodes with {self.op}s or bytes), each projected onto its roof:",
                "",
                f"| # | op | name | {self.op}s | bytes | {self.op}/B | projected ms | bound {self.roof_unit} | bound by |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for p in self.layers:
                out.append(
                    f"| {p.index} | {p.op} | {p.name} | {p.flops:,} | {p.bytes:,} | {p.intensity:.2f} | "
                    f"{_f(p.ms, '.4f')} | {p.bound_gflops:.2f} | {p.limit} |"
                )
            return out
        timed = (
            "time from the engine's profiler: onnxruntime's counts whole microseconds, averaged over the middle "
            "half of the runs, so a node under ~5 us is a few-percent figure"
            if any(p.ms is not None for p in self.layers)
            else f"{self.engine} has no per-node profiler, so no node is timed: their counts and bounds only"
        )
        out = [
            f"Per node (nodes with {self.op}s or bytes; {timed}):",
            "",
            f"| # | op | name | {self.op}s | bytes | {self.op}/B | ms | attained {self.unit} | GB/s | "
            f"bound {self.roof_unit} | of bound | bound by |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for p in self.layers:
            out.append(
                f"| {p.index} | {p.op} | {p.name} | {p.flops:,} | {p.bytes:,} | {p.intensity:.2f} | "
                f"{_f(p.ms, '.4f')} | {_f(p.gflops, '.3f')} | {_f(p.gbps, '.3f')} | {p.bound_gflops:.2f} | "
                f"{'' if p.fraction is None else f'{100 * p.fraction:.1f}%'} | {p.limit} |"
            )
        return out

    def _rss_cell(self) -> str:
        """ "75.5 (+34.7)": the process's peak while the engine loaded and ran, and what that added to the memory
        resident before (Python, numpy and whatever this process ran before: an earlier report, a plot)."""
        if self.peak_rss_mb is None:
            return ""
        if not self.rss_before_mb:
            return f"{self.peak_rss_mb:.1f}"
        return f"{self.peak_rss_mb:.1f} ({self.peak_rss_mb - self.rss_before_mb:+.1f})"

    def _setup_line(self) -> list[str]:
        if not self.setup:
            return []
        return ["", "Setup: " + "; ".join(f"{k} {v}" for k, v in self.setup.items() if v is not None) + "."]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values; the model's *_gflops figures are in `units.compute` (GOP/s for int8), the
        roof's (peak_gflops, bound_gflops) in `units.roof` (the fp32 roof's GFLOP/s when an int8 run had none)."""
        return {
            **asdict(self),
            # a projection's attained_* and per-layer gflops are the roof itself, not a measurement
            "attained": "measured"
            if self.measured
            else "projected: every node on its roof (an estimate of the latency, not a bound)",
            "units": {
                "compute": self.unit,
                "roof": self.roof_unit,
                "intensity": f"{self.op}/byte",
                "latency": "ms",
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RooflineReport:
        """A report from `to_dict()` output (a report's JSON), to draw it again; derived keys (`units`) are
        left out, and keys of a newer edge-ser are ignored."""
        names = {f.name for f in fields(cls)}
        kept = {k: v for k, v in d.items() if k in names}
        kept["layers"] = [LayerPoint(**p) for p in d.get("layers", [])]
        return cls(**kept)


def _f(v: float | None, fmt: str) -> str:
    return "" if v is None else format(v, fmt)


def process_memory_mb(field: str = "VmRSS") -> float | None:
    """This process's resident memory (VmRSS) or its high-water mark (VmHWM) in MB (1e6 bytes, as GB/s is 1e9
    bytes/s in the reports; /proc/self/status gives KiB, which the reports once printed /1024 as "MB"); None off
    Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return None


def reset_peak_memory() -> bool:
    """Reset this process's high-water mark (VmHWM) to its current resident set, so a later read of VmHWM is the
    peak since now (Linux 4.0+: write 5 to /proc/self/clear_refs). False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def peak_memory_mb() -> float | None:
    """This process's peak resident set in MB (1e6 bytes): VmHWM on Linux, else getrusage's ru_maxrss; None without
    either."""
    peak = process_memory_mb("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource
        import sys

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return None
    return maxrss / 1e6 if sys.platform == "darwin" else maxrss * 1024 / 1e6  # bytes on macOS, KiB elsewhere


def engine_precision(engine_name: str) -> str:
    """The precision the engine computes in: TFLite int8 -> int8; everything else here runs float32."""
    return "int8" if engine_name == "tflite-int8" else "fp32"


def projected_engine(bundle, engine: str) -> str:
    """The engine a projection is for, by the name `load_engine` would run: "auto" -> onnxruntime (what a board
    with onnxruntime installed runs), "tflite" -> the bundle's default variant. An unknown engine, or a TFLite
    variant the bundle does not carry, is an error naming it (as when the host measures)."""
    from edge_ser.engines import parse_engine

    name, variant = parse_engine(engine)
    if name == "auto":
        return "onnxruntime"
    if name == "tflite":
        from edge_ser.engines.tflite import pick_variant

        return f"tflite-{pick_variant(bundle, variant)}"
    return name


def engine_storage(engine_name: str) -> Storage:
    """How `engine_name` holds the model at run time; ConfigError for an engine this module does not know."""
    storage = STORAGE.get(engine_name)
    if storage is None:
        raise ConfigError(
            f"engine {engine_name!r}: the roofline report does not know how it holds weights (knows: "
            f"{', '.join(STORAGE)})"
        )
    return storage


def _triad_runs(profile) -> list[dict[str, Any]]:
    """A measured profile's triad rates per thread count ([{"threads", "gbps"}, ...]); empty for a board's."""
    triad = (profile.measurement or {}).get("triad") or {}
    return [r for r in triad.get("runs") or [] if "threads" in r and "gbps" in r]


def _scaled_peak(profile, precision: str, used: int) -> tuple[float, str]:
    """The compute peak for `used` threads: the measured one-thread peak where there is one, else the all-core
    peak / cores x used (the peaks of a board's profile are for all its cores)."""
    choice = profile.roofline_choice(precision)
    fig = profile.compute_peak(precision)
    if used == 1 and getattr(fig, "single_thread", None):
        return float(fig.single_thread), f"{choice.compute}, measured on one thread"
    over = fig.threads or profile.cpu.cores
    if used >= over:
        return fig.value, f"{choice.compute}, all {over} cores"
    return (
        fig.value / over * used,
        f"{choice.compute} {fig.value:g} {fig.unit} for {over} cores, / {over} x {used}",
    )


def _matched_bandwidth(profile, precision: str, used: int) -> tuple[float, str]:
    """The bandwidth for `used` threads: the measured triad on that many threads (or the nearest fewer) where
    the profile has per-thread runs (host), else the profile's figure with what its thread count means here."""
    ref = profile.roofline_choice(precision).bandwidth
    fig = profile.bandwidth(precision)
    runs = _triad_runs(profile)
    if runs and ref == "memory.measured_gbps":
        fit = [r for r in runs if r["threads"] <= used]
        run = max(fit, key=lambda r: r["threads"]) if fit else min(runs, key=lambda r: r["threads"])
        n = run["threads"]
        return float(run["gbps"]), f"{ref}: the triad on {n} thread{'s' if n > 1 else ''}, measured here"
    if fig.threads is None:
        return fig.value, ref
    on = f"{ref}, measured on {fig.threads} thread{'s' if fig.threads > 1 else ''}"
    if fig.threads == used:
        return fig.value, f"{on}, as the engine runs"
    if fig.threads < used:
        return (
            fig.value,
            f"{on}: not measured on {used} threads, used as it is (more threads may attain more or less)",
        )
    return fig.value, f"{on}: {used} thread{'s' if used > 1 else ''} attain less (optimistic)"


REFERENCE_PRECISION = "fp32"
"""The roof a measured run is placed against when the profile has none for its precision (int8 on the host)."""


def device_roof(profile, precision: str, threads: int | None) -> Roof:
    """The roof a report of `precision` on `threads` engine threads uses (None: all cores)."""
    cores = int(profile.cpu.cores)
    used = cores if threads is None else max(1, min(int(threads), cores))
    peak, peak_source = _scaled_peak(profile, precision, used)
    bw, bw_source = _matched_bandwidth(profile, precision, used)
    return Roof(peak, peak_source, bw, bw_source, used, cores)


def profile_caveats(profile, precision: str) -> list[str]:
    """What the profile says to distrust in the figures this report uses: unverified peak or bandwidth (with
    their notes), the roofline choice's note, the clock's note, and the profile's own notes."""
    choice = profile.roofline_choice(precision)
    out = []
    for ref in (choice.compute, choice.bandwidth):
        fig = profile.resolve(ref)
        if not fig.verified:
            out.append(f"{ref} is unverified (`verified: false`): {fig.note}")
    if choice.note:
        out.append(f"Roofline choice for {precision}: {choice.note}")
    clock = profile.cpu.clock_ghz
    if clock is not None and clock.note:
        out.append(f"CPU clock {clock.value:g} GHz: {clock.note}")
    out += [str(n) for n in profile.notes]
    return out


def decision_rows(bundle) -> tuple[int, str] | None:
    """(model rows one live decision runs, how) when a decision is more than one row, else None: a face bundle's
    crops, views and mirrors ("k=3 crops x 5 views x 2 (mirror)"), an audio kind's rows per live window (the
    log-Mel patches of a 3 s window: "a 3 s window = 12 patches"); the report's latency is per row."""
    kind = bundle.input_kind
    spec = getattr(kind, "spec", None)
    if getattr(kind, "name", None) != "face" or spec is None:
        return _window_rows(kind)
    views = 1 + len(spec.views)
    how = f"k={spec.k} crops x {views} view{'s' if views > 1 else ''}" + (
        " x 2 (mirror)" if spec.mirror else ""
    )
    return spec.k * spec.rows_per_crop, how


def _window_rows(kind) -> tuple[int, str] | None:
    """The rows an audio-only kind makes of one default live window (quiet noise: any audio gives the same
    count), when more than one; None for a kind that takes faces or makes one row."""
    from edge_ser.live.pipeline import PipelineConfig

    if not kind.hears or kind.faces:
        return None
    window = PipelineConfig().window
    y = np.random.default_rng(0).normal(0, 0.01, int(round(window * kind.sample_rate))).astype(np.float32)
    rows = len(next(iter(kind.window_inputs(y).values())))
    if rows <= 1:
        return None
    return rows, f"{rows} rows ({kind.name} of a {window:g} s live window)"


def _int8_phases(bundle) -> str | None:
    """ "input x4, output x8" when the bundle's int8 TFLite variant carries phased copies, else None."""
    v = tflite_variants(bundle.manifest).get("int8")
    if v is None:
        return None
    ks = [(n, e.get("phases", 1)) for n, e in v["inputs"].items()] + [
        ("output", v["output"].get("phases", 1))
    ]
    return ", ".join(f"{n} x{k}" for n, k in ks) if any(k > 1 for _, k in ks) else None


def _int8_file_bytes(bundle) -> int | None:
    """The size of the bundle's int8 TFLite file (its weights, as the interpreter holds them), None without one."""
    v = tflite_variants(bundle.manifest).get("int8")
    path = None if v is None else Path(bundle.root) / v["file"]
    return path.stat().st_size if path is not None and path.is_file() else None


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
    unfused = (
        " The numpy engine's profiler runs the graph node by node; the timed predict() runs it with Conv +"
        " BatchNormalization folded and activations fused into the node before them (docs/bundle.md), so"
        " those nodes have times of their own here and none in the timed run."
        if engine_name == "numpy"
        else ""
    )
    return (
        f"Per-node times from {engine_name}'s profiler (median of runs); their sum is {total:.4f} ms "
        f"against a predict() median of {lat:.4f} ms ({why}).{unfused}"
    )


def _projected_ms(flops: int, nbytes: int, roof: Roof) -> float:
    """One node on its roof: max(FLOPs / peak, bytes / bandwidth), in ms."""
    return max(flops / (roof.peak * 1e9), nbytes / (roof.bandwidth * 1e9)) * 1e3


def _layer_points(
    rows: list, roof: Roof, ridge: float, times: dict[int, float] | None, measured: bool
) -> list:
    """Every counted node on the roofline: its bound and limiting roof, and its measured or projected time."""
    points = []
    for r in rows:
        bound = min(roof.peak, r.intensity * roof.bandwidth) if r.bytes else roof.peak
        limit = "compute" if r.intensity >= ridge else "memory"
        if measured:
            ms = times.get(r.index) if times is not None else None
        else:
            ms = _projected_ms(r.flops, r.bytes, roof)
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


@dataclass
class _Measurement:
    """What a measured report timed: latency, per-node times, memory, and the notes on them."""

    latency_ms: float
    p99_ms: float
    times: dict[int, float] | None
    peak_rss_mb: float | None
    rss_before_mb: float | None
    peak_rss_scope: str
    notes: list[str]


def _measure(eng, bundle, runs: int, rss_before: float | None, reset: bool) -> _Measurement:
    """Time `eng` on one sample (median, p99, per-node profile) and read the peak resident set since `reset`."""
    from edge_ser.engines.profiling import node_times

    x = sample_inputs(bundle)
    lat, p99 = _time_predict(eng, x, runs)
    peak = peak_memory_mb()
    scope = (
        "high-water mark reset before the engine was loaded: this engine's load and runs"
        if reset
        else "since the process started (the high-water mark could not be reset here): can include what ran before"
    )
    notes = []
    if peak is not None:
        grew = (
            f", {peak - rss_before:+.1f} MB over the {rss_before:.1f} MB resident before loading"
            if rss_before
            else ""
        )
        notes.append(
            f"Memory: the process's peak resident set is {peak:.1f} MB ({scope}){grew}; the rest is Python, numpy "
            "and what this process ran before (an earlier report's engine or plot stays resident, and an engine can "
            "reuse memory it freed, so the increase is this engine's cost only in a process that runs it first: "
            "`edge-ser bench` on one bundle, without --out for a fusion bundle's second branch)."
        )
    times = node_times(eng, x, repeats=max(20, runs // 5))
    notes.append(_node_times_note(eng.name, times, lat))
    return _Measurement(lat, p99, times, peak, rss_before, scope, notes)


def _load_measured(
    bundle, engine: str, threads: int | None, delegate: str | None, providers: Sequence[str] | None = None
):
    """Free what earlier reports left, reset the peak-memory mark, then load the engine: (engine, RSS before,
    whether the mark was reset), so the peak read after the runs belongs to this engine only."""
    from edge_ser.engines import load_engine

    gc.collect()
    reset = reset_peak_memory()
    before = process_memory_mb()
    eng = load_engine(bundle, engine, threads=threads, delegate=delegate, providers=providers)
    return eng, before, reset


ROOF_NOTE_STARTS = ("Above the compute roof: ", "Above the memory roof: ")


def refresh_roof_notes(report: RooflineReport) -> RooflineReport:
    """The report with its above-a-roof notes written again from its own points in today's wording: the notes
    are stored as text, the figures they come from are in the report, so a stored report can say what a new
    one would without measuring again (`benchmarks/roofline.py --replot`)."""
    old = [i for i, n in enumerate(report.notes) if n.startswith(ROOF_NOTE_STARTS)]
    kept = [n for n in report.notes if not n.startswith(ROOF_NOTE_STARTS)]
    at = old[0] if old else len(kept)
    new = _roof_notes(
        report.measured,
        report.layers,
        report.attained_gflops,
        report.bound_gflops,
        report.intensity,
        report.ridge,
        report.bytes,
    )
    return replace(report, notes=kept[:at] + new + kept[at:])


def _roof_notes(
    measured: bool,
    points: list,
    attained: float,
    total_bound: float,
    intensity: float,
    ridge: float,
    nbytes: int,
):
    """Notes for measured points above a roof: why they can be (a GEMM-measured peak, cache-resident data); the
    model's own point when no node is named (an engine without a per-node profiler times the model only)."""
    notes = []
    over_c = [p.name for p in points if p.fraction is not None and p.fraction > 1.0 and p.limit == "compute"]
    over_m = [p.name for p in points if p.fraction is not None and p.fraction > 1.0 and p.limit == "memory"]
    if measured and (over_c or (attained > total_bound and intensity >= ridge)):
        notes.append(
            "Above the compute roof: "
            + (", ".join(over_c) or "the model")
            + ". The host's peak is the best GEMM "
            "measured here, a lower bound on the silicon's peak; an engine's own kernels can beat it."
        )
    if measured and (over_m or (attained > total_bound and intensity < ridge)):
        moved = sum(p.bytes for p in points if p.name in set(over_m)) if over_m else nbytes
        kb = moved / 1000  # KB: 1e3 bytes, as MB and GB/s
        notes.append(
            "Above the memory roof: "
            + (", ".join(over_m) or "the model")
            + f". The bytes they move ({kb:,.0f} KB of weights and activations in all) stay in the caches "
            "between the timed runs, so DRAM bandwidth does not bound them; the roof assumes every byte comes "
            "from DRAM."
        )
    return notes


def build_report(
    bundle,
    profile,
    *,
    engine: str = "auto",
    threads: int | None = 1,
    runs: int = 300,
    measured: bool | None = None,
    delegate: str | None = None,
    providers: Sequence[str] | None = None,
) -> RooflineReport:
    """Count, time (on the host profile) or project (elsewhere), and place every node on the roofline.

    `threads`: the engine's threads (None: its own choice); the roof counts min(threads, cores) cores.
    Raises ConfigError for an unknown engine (or BundleError for a TFLite variant the bundle lacks), measured
    or projected alike, and for a delegate on a projection (it has no roof for one).
    """
    from edge_ser.flops import count
    from edge_ser.profiles import HOST

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads={threads!r}: the roofline report needs a thread count >= 1, or None")
    measured = profile.name == HOST if measured is None else measured
    if delegate is not None and not measured:
        raise ConfigError(
            f"--delegate {delegate}: a projection for {profile.name} places the model on the profile's CPU roof "
            "and cannot account for a delegate; measure it on the device with the delegate (--profile host there)"
        )
    eng = rss_before = None
    reset = False
    if measured:
        eng, rss_before, reset = _load_measured(bundle, engine, threads, delegate, providers)
        engine_name = eng.name
    else:
        engine_name = projected_engine(bundle, engine)
    storage = engine_storage(engine_name)
    precision = engine_precision(engine_name)
    notes: list[str] = []
    roof_precision = precision
    try:
        roof = device_roof(profile, precision, threads)
    except ProfileError as e:
        if not measured or precision == REFERENCE_PRECISION:
            raise
        # the host profile measures no int8 roof (numpy cannot time one): the run is still measured, and placed
        # against the fp32 roof for reference, so an int8 engine or a delegate can be benched at all
        roof_precision = REFERENCE_PRECISION
        roof = device_roof(profile, roof_precision, threads)
        notes.append(
            f"No {precision} roof on profile {profile.name!r} ({str(e).split(': ', 2)[-1].split('. A board')[0]}). "
            f"The latency and memory are measured; the layers are placed against the {roof_precision} roof for "
            "reference only, so the fractions of peak are not an int8 efficiency."
        )
    ridge = roof.peak / roof.bandwidth
    counts = count(
        bundle,
        held_bytes=storage.weight_bytes,
        activation_bytes=storage.activation_bytes,
        op=op_name(precision),
    )
    packed = count(bundle, activation_bytes=storage.activation_bytes)
    rows = [r for r in counts.layers if r.flops or r.bytes]
    run = _measure(eng, bundle, runs, rss_before, reset) if measured else None
    del eng  # the next report (a fusion bundle's next branch) must not count this engine's memory
    points = _layer_points(rows, roof, ridge, run.times if run else None, measured)
    lat = run.latency_ms if run else sum(p.ms for p in points if p.ms)
    packed_lat = None
    if not measured:
        packed_lat = sum(_projected_ms(r.flops, r.bytes, roof) for r in packed.layers if r.flops or r.bytes)
    total_bound = min(roof.peak, counts.intensity * roof.bandwidth)
    attained = counts.flops / (lat * 1e6)
    if run:
        notes += run.notes
    notes += _roof_notes(measured, points, attained, total_bound, counts.intensity, ridge, counts.bytes)
    phased = _int8_phases(bundle) if precision == "int8" else None
    if phased:
        held = _int8_file_bytes(bundle)
        factor = held / counts.bytes if held else 0.0
        effect = (
            "projection may be up to that factor low"
            if not measured
            else "intensity is up to that factor lower"
        )
        weights = (
            f" Its weights are held as copies too: the file is {held:,} bytes against the {counts.bytes:,} counted "
            f"here ({factor:.1f}x), so for a memory-bound model the {effect}."
            if factor > 1
            else ""
        )
        notes.append(
            f"The int8 variant is phased int8 ({phased}): each layer runs on several shifted int8 copies of its "
            "input and output, so its kernels do several times the multiply-adds counted here (the model's "
            f'useful work; docs/tflite.md, "phased int8") and move that many copies of those activations.{weights}'
        )
    if not measured and engine == "auto":
        notes.append(
            "--engine auto is projected as onnxruntime, what auto runs where onnxruntime is installed."
        )
    if not measured and engine == "tflite":
        notes.append(f"--engine tflite is projected as {engine_name}, the bundle's default TFLite variant.")
    from edge_ser.engines.base import normalize_providers

    gpu = [q for q in normalize_providers(providers) or () if q != "CPUExecutionProvider"]
    if not measured and gpu:  # not refused as a delegate is: EDGE_SER_PROVIDERS sets it on a Jetson's service
        notes.append(
            f"--providers {', '.join(gpu)}: not projected: a projection places the model on {profile.name}'s CPU "
            "roof (edge-ser bench projects no GPU), so these figures are the CPU's; --profile host on the device "
            "measures the providers."
        )
    per = decision_rows(bundle)
    return RooflineReport(
        bundle=str(bundle.source),
        model=bundle.name,
        engine=engine_name,
        profile=profile.name,
        profile_description=profile.description,
        precision=precision,
        measured=measured,
        threads=threads,
        roof_threads=roof.threads,
        cores=roof.cores,
        peak_gflops=roof.peak,
        bandwidth_gbps=roof.bandwidth,
        ridge=ridge,
        flops=counts.flops,
        bytes=counts.bytes,
        intensity=counts.intensity,
        latency_ms=lat,
        latency_p99_ms=run.p99_ms if run else None,
        peak_rss_mb=run.peak_rss_mb if run else None,
        rss_before_mb=run.rss_before_mb if run else None,
        attained_gflops=attained,
        attained_gbps=counts.bytes / (lat * 1e6),
        bound_gflops=total_bound,
        fraction_of_peak=attained / roof.peak,
        fraction_of_bound=attained / total_bound if total_bound else 0.0,
        layers=points,
        convention=counts.convention,
        compute_source=roof.peak_source,
        bandwidth_source=roof.bandwidth_source,
        weight_storage=f"{engine_name} holds them ({storage.why})",
        packed_bytes=packed.bytes,
        packed_intensity=packed.intensity,
        packed_latency_ms=packed_lat,
        operating_point=profile.operating_point,
        caveats=profile_caveats(profile, roof_precision),
        roof_precision=roof_precision,
        rows_per_decision=per[0] if per else None,
        decision_rows=per[1] if per else "",
        decision_ms=per[0] * lat if per else None,
        peak_rss_scope=run.peak_rss_scope if run else "",
        notes=notes,
        machine={"python": platform.python_version(), "machine": platform.machine(), "node": platform.node()},
        setup=report_setup(bundle, engine_name, profile, runs if measured else None),
    )


def model_file(bundle, engine_name: str) -> str:
    """The bundle file an engine runs: the TFLite variant's for tflite-*, else the ONNX model (numpy reads it too)."""
    if engine_name.startswith("tflite"):
        variant = engine_name.split("-", 1)[1] if "-" in engine_name else "fp32"
        entry = tflite_variants(bundle.manifest).get(variant)
        if entry:
            return str(entry["file"])
    # every engine but TFLite runs model.onnx: the manifest has no field naming another (a `model.file` a
    # hand-edited manifest carried was reported as the file run, though nothing ran it)
    return MODEL_NAME


def report_setup(bundle, engine_name: str, profile, runs: int | None) -> dict[str, Any]:
    """The report's `setup`: which build of the bundle (its manifest's sha256), the model file, timed runs (measured
    reports), library versions, the time it was made (UTC) and, for the host profile, when its peaks were
    measured."""
    import datetime as dt

    from edge_ser.versions import library_versions

    found = library_versions(("edge-ser", "numpy", "onnxruntime", "ai-edge-litert", "tflite-runtime"))
    versions = [f"{dist} {v}" for dist, v in found.items()]
    measured_at = (profile.measurement or {}).get("measured_at")
    return {
        "model file": model_file(bundle, engine_name),
        "bundle manifest sha256": bundle.manifest_sha256,
        "timed runs": runs,
        "versions": ", ".join(versions),
        "made at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host peaks measured at": measured_at,
    }


# ------------------------------------------------------------------------------------------------------ plot

W, H = 1000, 700
MARGIN = (90, 40, 60, 80)  # left, top, right, bottom
PANEL = 340
"""Width of the key to the right of the plot: the labelled layers' names, which no longer overlap the dots."""
LABELLED = 12
"""At most this many layers are numbered: those with >= 2 % of the FLOPs, largest first."""


def short_name(name: str) -> str:
    """An ONNX node name without the scope levels its next level repeats: '/blocks/blocks.0/main/main.0/Conv'
    -> 'blocks.0/main.0/Conv'."""
    parts = [q for q in name.strip("/").split("/") if q]
    keep = [q for i, q in enumerate(parts) if not (i + 1 < len(parts) and parts[i + 1].startswith(q + "."))]
    return "/".join(keep) or name


def _place(box: tuple[int, int, int, int], taken: list[tuple[int, int, int, int]]) -> bool:
    """Whether the text box (x0, y0, x1, y1) misses every box already drawn."""
    x0, y0, x1, y1 = box
    return all(x1 <= a0 or x0 >= a1 or y1 <= b0 or y0 >= b1 for a0, b0, a1, b1 in taken)


def plot_png(report: RooflineReport, path: Path) -> Path:
    """A log-log roofline: the memory and compute roofs, the ridge point, a dot per node and one for the model."""
    return write_png(path, plot_image(report))


def plot_image(report: RooflineReport) -> np.ndarray:
    """`plot_png`'s picture as a BGR array, drawn without writing anything (MissingDependencyError without
    OpenCV)."""
    from edge_ser.vision._cv2 import import_cv2

    cv2 = import_cv2("drawing the roofline plot")
    img = np.full((H, W + PANEL, 3), 255, np.uint8)
    left, top, right, bottom = MARGIN
    xs = [p.intensity for p in report.layers if p.intensity > 0] + [report.intensity, report.ridge]
    ys = [p.gflops for p in report.layers if p.gflops] + [report.attained_gflops, report.peak_gflops]
    x0 = 10 ** math.floor(math.log10(min(xs) / 2))
    x1 = 10 ** math.ceil(math.log10(max(xs) * 2))
    y0 = 10 ** math.floor(math.log10(max(min(ys) / 2, 1e-6)))
    y1 = 10 ** math.ceil(math.log10(max(ys) * 2))  # a measured layer can beat the peak (a note says why)

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
    unit, op = report.unit, report.op
    taken: list[
        tuple[int, int, int, int]
    ] = []  # boxes of the text drawn so far, which a layer's number avoids

    def label(
        text: str, org: tuple[int, int], scale: float, colour: tuple[int, int, int], thick: int = 1
    ) -> None:
        cv2.putText(img, text, org, font, scale, colour, thick, cv2.LINE_AA)
        (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
        taken.append((org[0], org[1] - th, org[0] + tw, org[1] + 3))

    red = (40, 40, 200)
    label(f"ridge {ridge:.2f} {report.roof_op}/B", (rx + 6, H - bottom - 10), 0.5, red)
    tx, _ = px(x1, peak)
    label(f"peak {peak:.4g} {report.roof_unit}", (tx - 170, ry - 10), 0.5, red)
    # under the rising roof, clear of it, and at least a factor 2 above the frame's bottom: where the roof enters
    # at the bottom edge (xa = y0 / bw), xa x 2 put the label under the frame, over the x axis's title
    xl = max(xa * 2, 7 * y0 / bw)
    label(f"{bw:.4g} GB/s", px(xl, bw * xl / 3.5), 0.5, red)
    # points; the layers that matter are numbered, with their names in the key to the right
    shown = [p for p in report.layers if p.gflops and p.intensity > 0]
    for p in shown:
        cv2.circle(img, px(p.intensity, p.gflops), 5, (200, 120, 30), -1, cv2.LINE_AA)
    mc = px(report.intensity, report.attained_gflops)
    cv2.circle(img, mc, 9, (30, 160, 30), -1, cv2.LINE_AA)
    label("model", (mc[0] + 11, mc[1] + 5), 0.55, (20, 110, 20), 2)
    taken.append((mc[0] - 9, mc[1] - 9, mc[0] + 9, mc[1] + 9))
    big = sorted((p for p in shown if p.flops >= 0.02 * report.flops), key=lambda q: -q.flops)[:LABELLED]
    blue = (120, 70, 20)
    for i, p in enumerate(big, 1):
        c, tag = px(p.intensity, p.gflops), str(i)
        (tw, th), _ = cv2.getTextSize(tag, font, 0.45, 1)
        for dx, dy in (
            (7, -6),
            (7, th + 6),
            (-7 - tw, -6),
            (-7 - tw, th + 6),
            (-tw // 2, -9),
            (-tw // 2, th + 10),
        ):
            box = (c[0] + dx, c[1] + dy - th, c[0] + dx + tw, c[1] + dy + 2)
            if _place(box, taken):
                break  # else the last place, overlapping: the key still names it
        taken.append(box)
        cv2.putText(img, tag, (box[0], box[3] - 2), font, 0.45, blue, 1, cv2.LINE_AA)
    kx, ky = W + 5, top + 14
    cv2.putText(img, f"layers (>= 2 % of the {op}s)", (kx, ky), font, 0.45, black, 1, cv2.LINE_AA)
    for i, p in enumerate(big, 1):
        ky += 20
        share = 100 * p.flops / report.flops
        cv2.putText(img, f"{i:>2} {short_name(p.name)[:31]}", (kx, ky), font, 0.4, blue, 1, cv2.LINE_AA)
        cv2.putText(img, f"{share:4.1f}%", (kx + 285, ky), font, 0.4, blue, 1, cv2.LINE_AA)
    if not big:
        cv2.putText(img, "(none)", (kx, ky + 20), font, 0.4, blue, 1, cv2.LINE_AA)
    title = (
        f"{report.model} on {report.profile} ({report.engine}, {report.precision}, {report.threads_text()})"
        + ("" if report.measured else " - PROJECTION (estimate)")
    )
    cv2.putText(img, title, (left, 26), font, 0.6, black, 1, cv2.LINE_AA)
    cv2.putText(
        img, f"arithmetic intensity ({op} / byte)", (W // 2 - 150, H - 25), font, 0.55, black, 1, cv2.LINE_AA
    )
    ylab = np.full((30, 340, 3), 255, np.uint8)
    what = f"attained {unit}" if report.measured else f"projected {unit} (on the roof)"
    cv2.putText(ylab, what, (5, 21), font, 0.55, black, 1, cv2.LINE_AA)
    ylab = cv2.rotate(ylab, cv2.ROTATE_90_COUNTERCLOCKWISE)
    img[H // 2 - 170 : H // 2 + 170, 8:38] = ylab
    return img


REPORT_SUFFIXES = (".json", ".md", ".png")
"""The files a roofline report's OUT names: OUT.json, OUT.md, OUT.png (`--out rep.md` names the same three)."""


def write_report(report: RooflineReport, out: Path, command: str | None = None) -> tuple[Path, Path, Path]:
    """OUT.json, OUT.md and OUT.png (each written to a temp file, then renamed); OUT keeps a dot in its name
    (`pi4_1.5ghz`), and loses an extension only when it is one of these three (`fileio.report_file`)."""
    out = Path(out)
    # drawn first: without OpenCV nothing is written, not OUT.json and OUT.md without their OUT.png
    img = plot_image(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    md = report.markdown() + (f"\n\nMade by: `{command}`\n" if command else "\n")
    data = {"command": command, **report.to_dict()}
    paths = (report_file(out, ".json", REPORT_SUFFIXES), report_file(out, ".md", REPORT_SUFFIXES))
    for path, text in zip(paths, (json.dumps(data, indent=2) + "\n", md), strict=True):
        atomic_write(path, text)
    png = write_png(report_file(out, ".png", REPORT_SUFFIXES), img)
    return paths[0], paths[1], png
