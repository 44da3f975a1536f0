"""A device profile for roofline reports: peak compute per precision, memory bandwidth, caches, clocks, power modes.

A profile is one YAML file in `firmware_profiles/` (schema in `firmware_profiles/README.md`), or the `host`
profile that `edge_ser.hostbench` measures on the spot. Every figure carries its `source`; a figure that could not
be confirmed says so (`verified: false` plus a `note`). `load_profile` validates before it trusts: a missing,
unknown, mistyped, non-positive or absurd field raises `ProfileError` naming the file and the field path, e.g.
``pi4.yaml: peaks.cpu.fp32.value: must be > 0, got -3``.

Units: peaks in GFLOP/s (floating point) or GOP/s (integer), i.e. 1e9 operations per second, where a multiply-add
counts 2 operations (the repo's FLOP convention); bandwidth in GB/s (1e9 bytes/s); clocks in GHz; caches in KiB.

The roofline: attainable = min(peak compute, arithmetic intensity x bandwidth). Which peak and which bandwidth
is the profile's choice, per target (`cpu`, `gpu`) and per model precision, in its `roofline` block, so the
reasoning lives next to the figures (e.g. fp16 models on the Pi 4 CPU are computed in fp32).

This module needs numpy and the standard library; reading files is `edge_ser.profiles.load_profile`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_ser.errors import ConfigError
from edge_ser.flops import op_name, rate_unit
from edge_ser.schema import MISSING, Checker, describe, join

SCHEMA_VERSION = 1
HOST = "host"
"""Name of the profile measured on this machine by `edge_ser.hostbench` (never a file)."""

PRECISIONS = ("fp64", "fp32", "tf32", "fp16", "bf16", "int8", "int4")
"""Precisions a peak or a roofline entry may name."""
UNITS = ("cpu", "gpu", "dla")
"""Compute units a profile may give peaks for: the CPU cores, the GPU, a deep-learning accelerator."""
ENGINE_PRECISIONS = ("fp32", "int8")
"""The precisions edge-ser's engines compute in (`edge_ser.roofline.engine_precision`): fp16 files run in fp32."""
CACHE_KINDS = ("data", "instruction", "unified", "system")
CACHE_SCOPES = ("per-core", "per-cluster", "shared")
BANDWIDTH_REFS = ("memory.theoretical_gbps", "memory.measured_gbps")

# Absurdity limits: a value beyond these is a typo or a unit mix-up (MFLOP/s for GFLOP/s, MHz for GHz), not a board.
MAX_GOPS = 1e6
"""1 PFLOP/s: more than any single device this project targets."""
MAX_GBPS = 1e4
"""10 TB/s: above any HBM stack, let alone LPDDR."""
MAX_GHZ = 10.0
MAX_OPS_PER_CYCLE_PER_CPU_CORE = 512
"""A 512-bit FMA x 2 pipes does 64 fp32 FLOP/cycle and AMX-class units a few hundred; beyond 512 is a unit error."""
MAX_OPS_PER_CYCLE_PER_GPU_CORE = 128
"""Ampere tensor cores give 32 dense int8 ops per CUDA core per clock; 128 leaves room for sparsity and int4."""


class ProfileError(ConfigError):
    """A device profile is missing, unreadable, or has missing, unknown, mistyped or absurd fields.

    `problems` lists every problem found, one line each, as ``<file>: <field path>: <what is wrong>``.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


# ------------------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One number and where it comes from."""

    value: float
    """The figure, in the unit its field name states (`clock_ghz`: GHz, `*_gbps`: GB/s)."""
    source: str
    """URL or document title the figure comes from, or the measurement that produced it."""
    derivation: str = ""
    """How the value was derived from the source, e.g. "4 cores x 1.5 GHz x 8 FLOP/cycle"."""
    verified: bool = True
    """False when the figure could not be confirmed in a source; `note` then says why."""
    note: str = ""
    method: str = ""
    """For measured figures: the benchmark kernel and its byte/FLOP counting convention."""
    threads: int | None = None
    """For measured figures: the number of threads the value was obtained with."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "source": self.source}
        for key in ("derivation", "note", "method"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if not self.verified:
            out["verified"] = False
        if self.threads is not None:
            out["threads"] = self.threads
        return out


@dataclass(frozen=True)
class Peak(Figure):
    """Peak compute of one compute unit at one precision, in GFLOP/s (floating point) or GOP/s (integer)."""

    unit: str = "GFLOP/s"
    single_thread: float | None = None
    """Measured profiles: the same figure on one thread (GFLOP/s)."""
    sparse: float | None = None
    """Vendor figure with 2:4 structured sparsity, for reference; the roofline uses the dense `value`."""

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["unit"] = self.unit
        if self.single_thread is not None:
            out["single_thread"] = self.single_thread
        if self.sparse is not None:
            out["sparse"] = self.sparse
        return out


@dataclass(frozen=True)
class Cpu:
    model: str
    cores: int
    """Cores the peaks count (online cores at the profile's operating point; logical CPUs for `host`)."""
    clock_ghz: Figure | None
    """Maximum clock at the operating point; None only for a host whose clock cannot be read."""
    simd: tuple[str, ...]
    """Vector / dot-product / half-precision features, e.g. ("neon", "asimddp", "fp16")."""
    source: str

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "cores": self.cores}
        if self.clock_ghz is not None:
            out["clock_ghz"] = self.clock_ghz.to_dict()
        out["simd"] = list(self.simd)
        out["source"] = self.source
        return out


@dataclass(frozen=True)
class Gpu:
    model: str
    cores: int
    """CUDA cores (shader ALUs)."""
    clock_ghz: Figure
    source: str
    tensor_cores: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "cores": self.cores}
        if self.tensor_cores is not None:
            out["tensor_cores"] = self.tensor_cores
        out["clock_ghz"] = self.clock_ghz.to_dict()
        out["source"] = self.source
        return out


@dataclass(frozen=True)
class Memory:
    type: str
    source: str
    bus_bits: int | None = None
    capacity_gib: float | None = None
    transfer_rate_mts: float | None = None
    """Data rate in MT/s; with `bus_bits` it must agree with `theoretical_gbps` (bus_bits/8 x MT/s / 1000)."""
    theoretical_gbps: Figure | None = None
    """Peak DRAM bandwidth on paper (bus width x transfer rate)."""
    measured_gbps: Figure | None = None
    """Bandwidth a CPU benchmark attained (STREAM-style, counting bytes read + bytes written)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for key in ("bus_bits", "capacity_gib", "transfer_rate_mts"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        for key in ("theoretical_gbps", "measured_gbps"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key).to_dict()
        out["source"] = self.source
        return out


@dataclass(frozen=True)
class Cache:
    level: int
    kind: str
    """One of CACHE_KINDS."""
    size_kib: float
    """Size of one instance (e.g. one core's L1d), not the sum over instances."""
    scope: str
    """One of CACHE_SCOPES."""
    source: str
    count: int | None = None
    """Number of instances (cores or clusters) when known."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"level": self.level, "kind": self.kind, "size_kib": self.size_kib,
                               "scope": self.scope}  # fmt: skip
        if self.count is not None:
            out["count"] = self.count
        out["source"] = self.source
        return out


@dataclass(frozen=True)
class PowerMode:
    name: str
    source: str
    watts: float | None = None
    cpu_cores: int | None = None
    cpu_clock_ghz: float | None = None
    gpu_clock_ghz: float | None = None
    memory_clock_mhz: float | None = None
    """EMC (memory controller) clock cap; the DRAM transfer rate is twice this."""
    default: bool = False
    """True for the mode the board boots in."""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for key in ("watts", "cpu_cores", "cpu_clock_ghz", "gpu_clock_ghz", "memory_clock_mhz"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.default:
            out["default"] = True
        if self.note:
            out["note"] = self.note
        out["source"] = self.source
        return out


@dataclass(frozen=True)
class RooflineChoice:
    """Which peak and which bandwidth bound a model of one precision on one target."""

    precision: str
    compute: str
    """Reference to a peak, e.g. "peaks.cpu.fp32"."""
    bandwidth: str
    """"memory.measured_gbps" or "memory.theoretical_gbps"."""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {"compute": self.compute, "bandwidth": self.bandwidth}
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class Roofline:
    default: str
    """Target used unless the caller names another (our engines run on the CPU: "cpu")."""
    reason: str
    targets: Mapping[str, Mapping[str, RooflineChoice]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "default": self.default,
            "reason": self.reason,
            "targets": {t: {p: c.to_dict() for p, c in ch.items()} for t, ch in self.targets.items()},
        }


@dataclass(frozen=True)
class Profile:
    """A validated device profile. Build one with `load_profile` or `Profile.from_dict`, never by hand."""

    name: str
    description: str
    operating_point: str
    """The clocks / power mode the peaks refer to."""
    cpu: Cpu
    memory: Memory
    caches: tuple[Cache, ...]
    peaks: Mapping[str, Mapping[str, Peak]]
    """peaks[unit][precision], unit in UNITS, precision in PRECISIONS."""
    roofline: Roofline
    gpu: Gpu | None = None
    power_modes: tuple[PowerMode, ...] = ()
    notes: tuple[str, ...] = ()
    measurement: Mapping[str, Any] | None = None
    """Raw record of a measured (`host`) profile: sizes, timings, thread counts, what was not measured and why."""
    schema_version: int = SCHEMA_VERSION
    origin: str = field(default="<dict>", compare=False)
    """Where the profile was read from (file path or cache), for messages."""

    # -- access ----------------------------------------------------------------------------------------------

    def resolve(self, ref: str) -> Figure:
        """The figure a dotted reference names: "peaks.cpu.fp32", "memory.measured_gbps", "cpu.clock_ghz"."""
        parts = ref.split(".")
        fig: Any = None
        if len(parts) == 3 and parts[0] == "peaks":
            fig = self.peaks.get(parts[1], {}).get(parts[2])
        elif len(parts) == 2 and parts[0] == "memory" and parts[1] in ("theoretical_gbps", "measured_gbps"):
            fig = getattr(self.memory, parts[1])
        elif len(parts) == 2 and parts[0] in ("cpu", "gpu") and parts[1] == "clock_ghz":
            unit = getattr(self, parts[0])
            fig = unit.clock_ghz if unit is not None else None
        if fig is None:
            raise ProfileError(f"{self._label}: {ref}: no such figure in profile {self.name!r}")
        return fig

    def roofline_choice(self, precision: str, target: str | None = None) -> RooflineChoice:
        """The (compute, bandwidth) choice for a model of `precision` on `target` (default: the profile's)."""
        target = target or self.roofline.default
        choices = self.roofline.targets.get(target)
        if choices is None:
            raise ProfileError(
                f"{self._label}: roofline.targets.{target}: profile {self.name!r} has no roofline for target "
                f"{target!r} (has: {', '.join(self.roofline.targets)})"
            )
        choice = choices.get(precision)
        if choice is None:
            why = ""
            if self.measurement and precision in self.measurement.get("not_measured", {}):
                why = f"; not measured: {self.measurement['not_measured'][precision]}"
            if self.measurement:  # the host: what it measures is fixed, so send the reader elsewhere
                others = [p for p in choices if p != precision and p in ENGINE_PRECISIONS]
                why += (
                    f". A board's profile projects it from counts (e.g. --profile pi5); on this profile, bench a "
                    f"{'/'.join(others)} engine (benchmarks/backends.py times the int8 engines here side by side)"
                )
            else:  # a board's file: the roof can be added to it
                why += (
                    f"; add roofline.targets.{target}.{precision} to the profile (firmware_profiles/README.md, "
                    '"The default roofline choice")'
                )
            raise ProfileError(
                f"{self._label}: roofline.targets.{target}.{precision}: profile {self.name!r} gives no roofline "
                f"for {precision} on {target} (has: {', '.join(choices)}){why}"
            )
        return choice

    def compute_peak(self, precision: str, target: str | None = None) -> Peak:
        """The peak (GFLOP/s or GOP/s) that bounds a `precision` model on `target`."""
        return self.resolve(self.roofline_choice(precision, target).compute)  # type: ignore[return-value]

    def bandwidth(self, precision: str, target: str | None = None) -> Figure:
        """The bandwidth figure (GB/s) that bounds a `precision` model on `target`."""
        return self.resolve(self.roofline_choice(precision, target).bandwidth)

    def figures(self) -> Iterator[tuple[str, Figure]]:
        """Every sourced figure with its dotted path (caches and power modes carry their own `source`)."""
        if self.cpu.clock_ghz is not None:
            yield "cpu.clock_ghz", self.cpu.clock_ghz
        if self.gpu is not None:
            yield "gpu.clock_ghz", self.gpu.clock_ghz
        for key in ("theoretical_gbps", "measured_gbps"):
            fig = getattr(self.memory, key)
            if fig is not None:
                yield f"memory.{key}", fig
        for unit, per in self.peaks.items():
            for precision, peak in per.items():
                yield f"peaks.{unit}.{precision}", peak

    @property
    def _label(self) -> str:
        return Path(self.origin).name if self.origin not in ("<dict>", "") else self.name

    # -- (de)serialisation -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain dict in the YAML schema; `Profile.from_dict(p.to_dict())` == p."""
        out: dict[str, Any] = {
            "schema_version": self.schema_version,
            "name": self.name,
            "description": self.description,
            "operating_point": self.operating_point,
            "cpu": self.cpu.to_dict(),
        }
        if self.gpu is not None:
            out["gpu"] = self.gpu.to_dict()
        out["memory"] = self.memory.to_dict()
        out["caches"] = [c.to_dict() for c in self.caches]
        out["peaks"] = {u: {p: pk.to_dict() for p, pk in per.items()} for u, per in self.peaks.items()}
        out["power_modes"] = [m.to_dict() for m in self.power_modes]
        out["roofline"] = self.roofline.to_dict()
        if self.notes:
            out["notes"] = list(self.notes)
        if self.measurement is not None:
            out["measurement"] = dict(self.measurement)
        return out

    @classmethod
    def from_dict(cls, data: Any, *, origin: str = "<dict>", expect_name: str | None = None) -> Profile:
        """Validate `data` (the parsed YAML/JSON) and build the profile; `ProfileError` lists every problem."""
        return _Parser(origin, expect_name).profile(data)

    def __str__(self) -> str:
        lines = [f"{self.name}: {self.description} [{self.operating_point}]"]
        clock = f" @ {self.cpu.clock_ghz.value:g} GHz" if self.cpu.clock_ghz else ""
        lines.append(f"  cpu: {self.cpu.model}, {self.cpu.cores} cores{clock}")
        if self.gpu is not None:
            lines.append(
                f"  gpu: {self.gpu.model}, {self.gpu.cores} cores @ {self.gpu.clock_ghz.value:g} GHz"
            )
        for unit, per in self.peaks.items():
            figs = ", ".join(f"{p} {pk.value:g} {pk.unit}" + ("" if pk.verified else " (unverified)")
                             for p, pk in per.items())  # fmt: skip
            lines.append(f"  peaks.{unit}: {figs}")
        mem = [f"{k.split('_')[0]} {fig.value:g} GB/s" + ("" if fig.verified else " (unverified)")
               for k in ("theoretical_gbps", "measured_gbps") if (fig := getattr(self.memory, k)) is not None]  # fmt: skip
        lines.append(f"  memory: {self.memory.type}, " + ", ".join(mem))
        target = self.roofline.default
        for precision in self.roofline.targets[target]:
            lines.append(
                f"  roofline[{target}, {precision}]: ridge {ridge_point(self, precision):.2f} "
                f"{op_name(precision)}/byte "
                f"({self.roofline.targets[target][precision].compute} / "
                f"{self.roofline.targets[target][precision].bandwidth})"
            )
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------
# Roofline math
# ------------------------------------------------------------------------------------------------------------


def ridge_point(profile: Profile, precision: str, *, target: str | None = None) -> float:
    """Arithmetic intensity (FLOP/byte) where the memory roof meets the compute roof: peak / bandwidth."""
    return profile.compute_peak(precision, target).value / profile.bandwidth(precision, target).value


def roofline_bound(
    profile: Profile, precision: str, intensity: float | np.ndarray, *, target: str | None = None
) -> float | np.ndarray:
    """Attainable GFLOP/s (GOP/s for integer precisions) at `intensity` FLOP/byte: min(peak, intensity x BW).

    `intensity` may be a scalar or an array (shape preserved); it must be finite and >= 0.
    """
    arr = np.asarray(intensity, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ConfigError(f"roofline_bound: intensity must be finite and >= 0 FLOP/byte, got {intensity!r}")
    peak = profile.compute_peak(precision, target).value
    bw = profile.bandwidth(precision, target).value
    out = np.minimum(peak, arr * bw)
    return float(out) if out.ndim == 0 else out


# ------------------------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------------------------

PEAK_DERIVATION = re.compile(r"(\d+) cores x ([\d.]+) GHz x (\d+) (?:FLOP|ops)/cycle")
"""The form of a CPU peak's derivation: 'cores x GHz x FLOP (or ops) per cycle'."""


def derived_peak(derivation: str) -> float | None:
    """The peak a derivation of the form 'N cores x G GHz x F FLOP/cycle' gives, in G(FL)OP/s; None for another
    form. The loader checks the stated value against it (a profile's 1536 beside '4 cores x 2.4 GHz x 16' loaded,
    and its reports used a roof ten times too high)."""
    m = PEAK_DERIVATION.match(derivation or "")
    return None if m is None else int(m.group(1)) * float(m.group(2)) * int(m.group(3))


_FIGURE_KEYS = {"value", "source", "derivation", "verified", "note", "method", "threads"}
_PEAK_KEYS = _FIGURE_KEYS | {"unit", "single_thread", "sparse"}
_TOP_REQUIRED = ("schema_version", "name", "description", "operating_point", "cpu", "memory", "caches", "peaks",
                 "roofline")  # fmt: skip
_TOP_OPTIONAL = ("gpu", "power_modes", "notes", "measurement")


class _Parser(Checker):
    """Walks the parsed document, records every problem with its field path, and builds the dataclasses."""

    def __init__(self, origin: str, expect_name: str | None) -> None:
        super().__init__(
            Path(origin).name if origin not in ("<dict>", "") else "<profile>",
            error=ProfileError,
            collect=True,
        )
        self.origin = origin
        self.expect_name = expect_name
        self.has_gpu_section = False
        self.given: set[str] = set()
        """Dotted paths of figures present in the document, valid or not (a reference to an invalid one is not
        reported again)."""

    # -- (mapping, key) forms of the checker's value checks --------------------------------------------------

    def bad(self, path: str, msg: str) -> None:
        self.problem(path, msg)

    def text_at(self, d: dict, key: str, path: str, *, required: bool = True) -> str | None:
        v = d.get(key, MISSING)
        if v is MISSING or (v is None and not required):
            return None
        return self.text(v, join(path, key))

    def number_at(self, d: dict, key: str, path: str, *, limit: float, unit: str = "",
                  required: bool = True, integer: bool = False) -> Any:  # fmt: skip
        """A number > 0 and at most `limit` (beyond it: absurd, a unit error); None when absent and optional."""
        v = d.get(key, MISSING)
        if v is MISSING or (v is None and not required):
            return None
        p = join(path, key)
        if integer and self.integer(v, p) is None:
            return None
        v = self.number(v, p, positive=True, absurd=limit, unit=unit)
        return None if v is None else int(v) if integer else float(v)

    def flag_at(self, d: dict, key: str, path: str, default: bool) -> bool:
        v = self.flag(d.get(key, default), join(path, key))
        return default if v is None else v

    def choice_at(self, d: dict, key: str, path: str, options: tuple[str, ...]) -> str | None:
        v = self.text_at(d, key, path)
        return None if v is None else self.choice(v, join(path, key), options)

    def figure(self, value: Any, path: str, *, limit: float, unit: str, peak: bool = False) -> Figure | None:
        d = self.mapping(value, path, ("value", "source") + (("unit",) if peak else ()),
                         (_PEAK_KEYS if peak else _FIGURE_KEYS) - {"value", "source", "unit"})  # fmt: skip
        if d is None:
            return None
        v = self.number_at(d, "value", path, limit=limit, unit=unit)
        source = self.text_at(d, "source", path)
        derivation = self.text_at(d, "derivation", path, required=False) or ""
        note = self.text_at(d, "note", path, required=False) or ""
        method = self.text_at(d, "method", path, required=False) or ""
        verified = self.flag_at(d, "verified", path, True)
        threads = self.number_at(d, "threads", path, limit=4096, required=False, integer=True)
        if not verified and not note:
            self.bad(join(path, "note"), "missing: a figure with `verified: false` must say why in `note`")
        if v is None or source is None:
            return None
        stated = derived_peak(derivation)
        if (
            peak and stated is not None and abs(v - stated) > 2e-3 * stated
        ):  # an edit of one without the other
            self.bad(join(path, "value"), f"{v:g} but its derivation ({derivation!r}) gives {stated:g}")
        common = {"value": v, "source": source, "derivation": derivation, "verified": verified, "note": note,
                  "method": method, "threads": threads}  # fmt: skip
        if not peak:
            return Figure(**common)
        unit_text = self.text_at(d, "unit", path)
        single = self.number_at(d, "single_thread", path, limit=limit, unit=unit, required=False)
        sparse = self.number_at(d, "sparse", path, limit=limit, unit=unit, required=False)
        if unit_text is None:
            return None
        return Peak(**common, unit=unit_text, single_thread=single, sparse=sparse)

    # -- sections --------------------------------------------------------------------------------------------

    def profile(self, data: Any) -> Profile:
        top = self.mapping(data, "", _TOP_REQUIRED, _TOP_OPTIONAL)
        if top is None:
            self.raise_problems()
        version = top.get("schema_version")
        if "schema_version" in top and version != SCHEMA_VERSION:
            self.bad("schema_version", f"{version!r} is not supported (this edge-ser reads {SCHEMA_VERSION})")
        name = self.text_at(top, "name", "")
        description = self.text_at(top, "description", "")
        operating_point = self.text_at(top, "operating_point", "")
        cpu = self.cpu(top.get("cpu", MISSING))
        self.has_gpu_section = top.get("gpu") is not None
        gpu = self.gpu(top["gpu"]) if top.get("gpu") is not None else None
        memory = self.memory(top.get("memory", MISSING))
        caches = self.caches(top.get("caches", MISSING))
        peaks = self.peaks(top.get("peaks", MISSING), cpu, gpu)
        power_modes = self.power_modes(top.get("power_modes", []))
        notes = self.notes(top.get("notes", []))
        measurement = top.get("measurement")
        if measurement is not None and not isinstance(measurement, dict):
            self.bad("measurement", f"must be a mapping, got {describe(measurement)}")
            measurement = None
        roofline = self.roofline(top.get("roofline", MISSING), peaks, memory)
        self.check_name(name)
        self.raise_problems()
        return Profile(
            name=name, description=description, operating_point=operating_point, cpu=cpu, gpu=gpu, memory=memory,
            caches=caches, peaks=peaks, roofline=roofline, power_modes=power_modes, notes=notes,
            measurement=measurement, schema_version=SCHEMA_VERSION, origin=self.origin,
        )  # fmt: skip

    def check_name(self, name: str | None) -> None:
        """A `name` other than the file's is an error, reported after the rest of the file's problems: a profile
        copied to a new name listed it first, above the problems of the figures the user came to edit. A file
        named host.yaml is refused: "host" is the measured profile, and a report on it runs and times the model."""
        if self.expect_name == HOST:
            self.bad(
                "name",
                f"{HOST!r} is the profile measured on this machine (edge_ser.hostbench), not a file's: a report on it "
                "times the model here; name the file and its `name` otherwise (e.g. my-board)",
            )
            return
        if name is not None and self.expect_name is not None and name != self.expect_name:
            self.bad(
                "name",
                f"{name!r} does not match the file name {self.expect_name}.yaml; set `name: {self.expect_name}` "
                "(a profile is loaded by its file's name)",
            )

    def cpu(self, value: Any) -> Cpu | None:
        if value is MISSING:
            return None
        d = self.mapping(value, "cpu", ("model", "cores", "simd", "source"), ("clock_ghz",))
        if d is None:
            return None
        model = self.text_at(d, "model", "cpu")
        cores = self.number_at(d, "cores", "cpu", limit=4096, integer=True)
        has_clock = d.get("clock_ghz") is not None
        clock = self.figure(d["clock_ghz"], "cpu.clock_ghz", limit=MAX_GHZ, unit="GHz") if has_clock else None
        simd = self.texts(d["simd"], "cpu.simd") if "simd" in d else None
        source = self.text_at(d, "source", "cpu")
        if None in (model, cores, simd, source) or (has_clock and clock is None):
            return None
        return Cpu(model=model, cores=cores, clock_ghz=clock, simd=simd, source=source)

    def gpu(self, value: Any) -> Gpu | None:
        d = self.mapping(value, "gpu", ("model", "cores", "clock_ghz", "source"), ("tensor_cores",))
        if d is None:
            return None
        model = self.text_at(d, "model", "gpu")
        cores = self.number_at(d, "cores", "gpu", limit=1 << 20, integer=True)
        tensor = self.number_at(d, "tensor_cores", "gpu", limit=1 << 16, integer=True, required=False)
        clock = self.figure(d.get("clock_ghz"), "gpu.clock_ghz", limit=MAX_GHZ, unit="GHz") \
            if "clock_ghz" in d else None  # fmt: skip
        source = self.text_at(d, "source", "gpu")
        if None in (model, cores, clock, source):
            return None
        return Gpu(model=model, cores=cores, clock_ghz=clock, source=source, tensor_cores=tensor)

    def memory(self, value: Any) -> Memory | None:
        if value is MISSING:
            return None
        optional = ("bus_bits", "capacity_gib", "transfer_rate_mts", "theoretical_gbps", "measured_gbps")
        d = self.mapping(value, "memory", ("type", "source"), optional)
        if d is None:
            return None
        kind = self.text_at(d, "type", "memory")
        source = self.text_at(d, "source", "memory")
        bus = self.number_at(d, "bus_bits", "memory", limit=8192, integer=True, required=False)
        capacity = self.number_at(d, "capacity_gib", "memory", limit=65536, unit="GiB", required=False)
        rate = self.number_at(d, "transfer_rate_mts", "memory", limit=1e5, unit="MT/s", required=False)
        figs: dict[str, Figure | None] = {}
        for key in ("theoretical_gbps", "measured_gbps"):
            figs[key] = None
            if d.get(key) is not None:
                self.given.add(f"memory.{key}")
                figs[key] = self.figure(d[key], f"memory.{key}", limit=MAX_GBPS, unit="GB/s")
        if "theoretical_gbps" not in d and "measured_gbps" not in d:
            self.bad("memory", "needs theoretical_gbps or measured_gbps (or both)")
        theo, meas = figs["theoretical_gbps"], figs["measured_gbps"]
        if theo and meas and meas.value > 1.1 * theo.value:
            self.bad("memory.measured_gbps.value",
                     f"{meas.value:g} GB/s exceeds theoretical_gbps {theo.value:g} GB/s: a measurement cannot "
                     "beat the bus (check the byte-counting convention)")  # fmt: skip
        if theo and bus and rate:
            expect = bus / 8 * rate / 1000
            if abs(theo.value - expect) > 0.05 * expect:
                self.bad("memory.theoretical_gbps.value",
                         f"{theo.value:g} GB/s disagrees with bus_bits x transfer_rate_mts = {bus} / 8 x {rate:g} "
                         f"/ 1000 = {expect:.4g} GB/s")  # fmt: skip
        if kind is None or source is None:
            return None
        return Memory(type=kind, source=source, bus_bits=bus, capacity_gib=capacity, transfer_rate_mts=rate,
                      theoretical_gbps=theo, measured_gbps=meas)  # fmt: skip

    def caches(self, value: Any) -> tuple[Cache, ...]:
        if value is MISSING:
            return ()
        if not isinstance(value, list):
            self.bad("caches", f"must be a list, got {describe(value)}")
            return ()
        out = []
        for i, item in enumerate(value):
            path = f"caches[{i}]"
            d = self.mapping(item, path, ("level", "kind", "size_kib", "scope", "source"), ("count",))
            if d is None:
                continue
            level = self.number_at(d, "level", path, limit=4, integer=True)
            kind = self.choice_at(d, "kind", path, CACHE_KINDS)
            size = self.number_at(d, "size_kib", path, limit=1 << 20, unit="KiB")
            scope = self.choice_at(d, "scope", path, CACHE_SCOPES)
            count = self.number_at(d, "count", path, limit=4096, integer=True, required=False)
            source = self.text_at(d, "source", path)
            if None not in (level, kind, size, scope, source):
                out.append(
                    Cache(level=level, kind=kind, size_kib=size, scope=scope, source=source, count=count)
                )
        return tuple(out)

    def peaks(self, value: Any, cpu: Cpu | None, gpu: Gpu | None) -> dict[str, dict[str, Peak]]:
        if value is MISSING:
            return {}
        d = self.mapping(value, "peaks", ("cpu",), set(UNITS) - {"cpu"})
        if d is None:
            return {}
        out: dict[str, dict[str, Peak]] = {}
        for unit, per in d.items():
            if unit not in UNITS:
                continue
            per_d = self.mapping(per, f"peaks.{unit}", (), PRECISIONS)
            if per_d is None:
                continue
            if not per_d:
                self.bad(
                    f"peaks.{unit}", "has no precision (give at least one of: " + ", ".join(PRECISIONS) + ")"
                )
            if unit == "gpu" and not self.has_gpu_section:
                self.bad("peaks.gpu", "gpu peaks given but the profile has no `gpu` section")
            out[unit] = {}
            for precision, raw in per_d.items():
                if precision not in PRECISIONS:
                    continue
                path = f"peaks.{unit}.{precision}"
                self.given.add(path)
                pk = self.figure(raw, path, limit=MAX_GOPS, unit=rate_unit(precision), peak=True)
                if pk is None:
                    continue
                if pk.unit != rate_unit(precision):
                    self.bad(f"{path}.unit", f"{pk.unit!r} must be {rate_unit(precision)!r} for {precision}")
                    continue
                self.check_per_cycle(pk, path, unit, cpu, gpu)
                out[unit][precision] = pk
        return out

    def check_per_cycle(self, pk: Peak, path: str, unit: str, cpu: Cpu | None, gpu: Gpu | None) -> None:
        """A peak that implies an impossible number of operations per core per cycle is a unit error."""
        if unit == "cpu" and cpu is not None and cpu.clock_ghz is not None:
            per = pk.value / (cpu.cores * cpu.clock_ghz.value)
            if per > MAX_OPS_PER_CYCLE_PER_CPU_CORE:
                self.bad(f"{path}.value", f"{pk.value:g} {pk.unit} is absurd: {per:.0f} operations per cycle per "
                         f"core at {cpu.cores} cores x {cpu.clock_ghz.value:g} GHz (> "
                         f"{MAX_OPS_PER_CYCLE_PER_CPU_CORE}); check the unit")  # fmt: skip
        if unit == "gpu" and gpu is not None:
            per = pk.value / (gpu.cores * gpu.clock_ghz.value)
            if per > MAX_OPS_PER_CYCLE_PER_GPU_CORE:
                self.bad(f"{path}.value", f"{pk.value:g} {pk.unit} is absurd: {per:.0f} operations per clock per "
                         f"GPU core at {gpu.cores} cores x {gpu.clock_ghz.value:g} GHz (> "
                         f"{MAX_OPS_PER_CYCLE_PER_GPU_CORE}); check the unit")  # fmt: skip

    def power_modes(self, value: Any) -> tuple[PowerMode, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.bad("power_modes", f"must be a list, got {describe(value)}")
            return ()
        out = []
        names: set[str] = set()
        for i, item in enumerate(value):
            path = f"power_modes[{i}]"
            optional = (
                "watts",
                "cpu_cores",
                "cpu_clock_ghz",
                "gpu_clock_ghz",
                "memory_clock_mhz",
                "default",
                "note",
            )
            d = self.mapping(item, path, ("name", "source"), optional)
            if d is None:
                continue
            name = self.text_at(d, "name", path)
            if name in names:
                self.bad(f"{path}.name", f"{name!r} given twice")
            names.add(name)
            mode = PowerMode(
                name=name,
                source=self.text_at(d, "source", path),
                watts=self.number_at(d, "watts", path, limit=1e4, unit="W", required=False),
                cpu_cores=self.number_at(d, "cpu_cores", path, limit=4096, integer=True, required=False),
                cpu_clock_ghz=self.number_at(
                    d, "cpu_clock_ghz", path, limit=MAX_GHZ, unit="GHz", required=False
                ),
                gpu_clock_ghz=self.number_at(
                    d, "gpu_clock_ghz", path, limit=MAX_GHZ, unit="GHz", required=False
                ),
                memory_clock_mhz=self.number_at(
                    d, "memory_clock_mhz", path, limit=1e5, unit="MHz", required=False
                ),
                default=self.flag_at(d, "default", path, False),
                note=self.text_at(d, "note", path, required=False) or "",
            )
            out.append(mode)
        if sum(m.default for m in out) > 1:
            self.bad("power_modes", "more than one mode has `default: true`")
        return tuple(out)

    def notes(self, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        lst = self.texts(value, "notes")
        return lst or ()

    def roofline(
        self, value: Any, peaks: dict[str, dict[str, Peak]], memory: Memory | None
    ) -> Roofline | None:
        if value is MISSING:
            return None
        d = self.mapping(value, "roofline", ("default", "reason", "targets"))
        if d is None:
            return None
        default = self.text_at(d, "default", "roofline")
        reason = self.text_at(d, "reason", "roofline")
        targets_raw = d.get("targets", MISSING)
        targets: dict[str, dict[str, RooflineChoice]] = {}
        if targets_raw is not MISSING:
            targets = self.roofline_targets(targets_raw, peaks, memory)
        if default is not None and targets_raw is not MISSING and default not in targets:
            self.bad("roofline.default", f"{default!r} is not one of roofline.targets ({', '.join(targets)})")
        if default is None or reason is None:
            return None
        return Roofline(default=default, reason=reason, targets=targets)

    def roofline_targets(
        self, value: Any, peaks: dict[str, dict[str, Peak]], memory: Memory | None
    ) -> dict[str, dict[str, RooflineChoice]]:
        """`roofline.targets`: the valid choice of each target and precision; invalid ones are reported."""
        targets: dict[str, dict[str, RooflineChoice]] = {}
        t = self.mapping(value, "roofline.targets", (), UNITS)
        if t is not None and not t:
            self.bad("roofline.targets", "is empty: give at least the default target")
        for target, per in (t or {}).items():
            if target not in UNITS:
                continue
            path = f"roofline.targets.{target}"
            per_d = self.mapping(per, path, (), PRECISIONS)
            if per_d is None:
                continue
            if not per_d:
                self.bad(path, "is empty: give at least one precision")
            targets[target] = {}
            for precision, raw in per_d.items():
                if precision not in PRECISIONS:
                    continue
                choice = self.roofline_entry(raw, f"{path}.{precision}", precision, peaks, memory)
                if choice is not None:
                    targets[target][precision] = choice
        return targets

    def roofline_entry(
        self, value: Any, path: str, precision: str, peaks: dict[str, dict[str, Peak]], memory: Memory | None
    ) -> RooflineChoice | None:
        """One `roofline.targets.<target>.<precision>` entry; None when it is invalid (and reported)."""
        c = self.mapping(value, path, ("compute", "bandwidth"), ("note",))
        if c is None:
            return None
        compute = self.text_at(c, "compute", path)
        bandwidth = self.text_at(c, "bandwidth", path)
        note = self.text_at(c, "note", path, required=False) or ""
        if compute is not None:
            compute = self.compute_ref(compute, path, peaks)
        if compute is not None:
            _, unit, peak_precision = compute.split(".")
            held = peaks[unit][peak_precision].unit
            if held != rate_unit(precision):  # fp16 on the fp32 peak is fine, fp32 on the int8 one is not
                self.bad(
                    f"{path}.compute",
                    f"{compute!r} is in {held}; a roof for {precision} needs a peak in {rate_unit(precision)}",
                )
                compute = None
        if bandwidth is not None:
            bandwidth = self.bandwidth_ref(bandwidth, path, memory)
        if compute and bandwidth:
            return RooflineChoice(precision, compute, bandwidth, note)
        return None

    def compute_ref(self, compute: str, path: str, peaks: dict[str, dict[str, Peak]]) -> str | None:
        """`compute` if it names a valid peak, else None (reported, unless the invalid peak already was)."""
        parts = compute.split(".")
        is_peak = len(parts) == 3 and parts[0] == "peaks"
        if is_peak and compute in self.given and parts[2] not in peaks.get(parts[1], {}):
            return None  # the peak itself is invalid and already reported
        if len(parts) != 3 or parts[0] != "peaks" or parts[2] not in peaks.get(parts[1], {}):
            self.bad(f"{path}.compute", f"{compute!r} names no peak of this profile (have: "
                     + ", ".join(f"peaks.{u}.{p}" for u, per in peaks.items() for p in per)
                     + ")")  # fmt: skip
            return None
        return compute

    def bandwidth_ref(self, bandwidth: str, path: str, memory: Memory | None) -> str | None:
        """`bandwidth` if it names a memory figure the profile gives, else None (reported, unless already)."""
        if bandwidth not in BANDWIDTH_REFS:
            self.bad(f"{path}.bandwidth", f"{bandwidth!r} must be one of {', '.join(BANDWIDTH_REFS)}")
            return None
        if bandwidth in self.given and (memory is None or getattr(memory, bandwidth.split(".")[1]) is None):
            return None  # the figure itself is invalid and already reported
        if memory is not None and getattr(memory, bandwidth.split(".")[1]) is None:
            self.bad(f"{path}.bandwidth", f"{bandwidth!r}: the profile gives no such figure")
            return None
        return bandwidth
