"""Measure the `host` profile on the spot: peak GEMM rate per precision and STREAM-style triad bandwidth.

A roofline report made on a machine no shipped profile describes (a workstation, a CI runner, a Pi with a
different clock or firmware) is only honest against figures measured on that machine. `host_profile()` measures
them in a few seconds with numpy alone and caches the result; `load_profile("host")` calls it.

What is measured, and the conventions:

- **Compute**: `numpy.matmul` on n x n float32 and float64 matrices (BLAS sgemm/dgemm), 2 n^3 FLOP per call, best
  of several runs, n grown (up to 2048) until one call takes long enough to time. Once with the thread count
  OpenBLAS set to one thread per usable CPU in-process (else the count numpy's BLAS uses by default; recorded as
  `threads`: `edge-ser` starts it on one thread, and a "2 threads" roof timed on one was below the one-thread
  roof) and once on one thread. One-thread runs limit OpenBLAS
  in-process (its `*_set_num_threads`), else run in a child process with OPENBLAS/OMP/MKL/... _NUM_THREADS=1.
  This is what a tuned BLAS attains, close to (not equal to) the silicon's peak.
- **Not measured**: fp16 and int8. numpy has no fp16 or int8 GEMM kernel (float16 matmul is emulated element by
  element in float32; integer matmul is a generic loop without SDOT/VNNI), so timing them would measure numpy,
  not the CPU. The record says so, and whether the CPU has native FP16 / int8 dot-product instructions.
- **Bandwidth**: triad a = b + s*c on float64 arrays of 4x the last-level cache each (at least 32 MiB), in
  blocks that keep s*c in cache, split over threads (numpy releases the GIL in ufunc loops). STREAM convention:
  24 bytes per element (read b, read c, write a; the write-allocate read of `a` is not counted). Best pass.

Clocks, cores and caches come from /sys, /proc/cpuinfo and lscpu. A busy machine gives low figures (best-of
runs do not undo a load that lasts the whole measurement): the CPU time other processes (and a hypervisor's
steal) used while it ran is read from /proc/stat and recorded as `load`; from `BUSY_CPUS` of them on average
the profile's notes say the machine was busy, so every report on it does. The result is cached in
`$EDGE_SER_CACHE/host-profile.json` (default ~/.cache/edge-ser), keyed by host, CPU, numpy, BLAS and
onnxruntime; pass `remeasure=True` (CLI: `python -m edge_ser.hostbench --remeasure`) to measure again.
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import datetime as _dt
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_ser.errors import CacheWarning, ConfigError
from edge_ser.fileio import atomic_write
from edge_ser.profiles.profile import HOST, Profile, ProfileError
from edge_ser.versions import library_versions

CACHE_SCHEMA = "edge-ser-host-profile/2"
"""/2: a measurement records the machine's load (/1 did not, so a peak measured while it was busy was reused
without a word)."""
CACHE_NAME = "host-profile.json"

_ARM_PARTS = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd42": "Cortex-A78AE",
    "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd4b": "Cortex-A78C",
}  # fmt: skip
"""Arm 'CPU part' codes of /proc/cpuinfo (implementer 0x41), for kernels whose cpuinfo has no model name."""

_SIMD_FLAGS = ("asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2", "sse4_2", "avx", "avx2", "fma",
               "f16c", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512fp16", "amx_int8")  # fmt: skip
_FP16_FLAGS = ("asimdhp", "avx512fp16")
"""Native FP16 vector arithmetic: Armv8.2 FEAT_FP16 (cpuinfo 'asimdhp'), x86 AVX512-FP16."""
_INT8_DOT_FLAGS = ("asimddp", "i8mm", "avx512_vnni", "avx_vnni", "amx_int8")
"""int8 dot-product instructions: Arm SDOT/UDOT ('asimddp'), I8MM, x86 VNNI, AMX."""


@dataclass(frozen=True)
class Mode:
    """Effort of one measurement: `full` (the default, ~5-10 s) or `quick` (tests, ~1-2 s, noisier)."""

    name: str
    gemm_max_n: int
    """Largest matrix order tried."""
    gemm_target_s: float
    """Grow n until one call takes at least this long (or n reaches gemm_max_n)."""
    gemm_budget_s: float
    """Time spent repeating the call at the chosen n (best run kept)."""
    triad_min_mib: int
    """Smallest array (each of the three), whatever the cache size."""
    triad_budget_s: float
    min_runs: int


BUSY_CPUS = 0.5
"""Other processes using this many CPUs on average while the host was measured make it busy (measured on a
2-CPU VM: at 0.4 the figures were the quiet machine's, at 0.75 to 0.9 the all-thread GEMM and triad were a half
to two thirds of them, at 1.6 the one-thread numpy GEMM a fifth)."""


FULL = Mode("full", gemm_max_n=2048, gemm_target_s=0.05, gemm_budget_s=0.4, triad_min_mib=32, triad_budget_s=0.4,
            min_runs=3)  # fmt: skip
QUICK = Mode("quick", gemm_max_n=512, gemm_target_s=0.005, gemm_budget_s=0.05, triad_min_mib=16,
             triad_budget_s=0.1, min_runs=2)  # fmt: skip


# ------------------------------------------------------------------------------------------------------------
# Machine facts
# ------------------------------------------------------------------------------------------------------------


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _lscpu() -> dict[str, str]:
    """`lscpu` as a dict (empty when lscpu is missing or fails)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5, check=False,
                             env={**os.environ, "LC_ALL": "C"}).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {}
    info = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


def _cpuinfo() -> tuple[dict[str, str], dict[str, str]]:
    """(fields of the first processor block, whole-file fields like Model/Hardware) from /proc/cpuinfo."""
    text = _read("/proc/cpuinfo") or ""
    first: dict[str, str] = {}
    allf: dict[str, str] = {}
    in_first = True
    for line in text.splitlines():
        if not line.strip():
            if first:
                in_first = False
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        allf.setdefault(key, value)
        if in_first:
            first[key] = value
    return first, allf


def usable_cpus() -> int:
    """CPUs this process may run on (affinity), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_info() -> dict[str, Any]:
    """Model, usable CPUs, max clock, SIMD flags, caches and RAM of this machine, each with where it was read."""
    ls = _lscpu()
    first, allf = _cpuinfo()
    model = ls.get("Model name") or first.get("model name")
    if not model or model.startswith("ARMv"):
        part = first.get("CPU part", "").lower()
        model = _ARM_PARTS.get(part, model or f"Arm CPU part {part or 'unknown'}")
    board = _read("/proc/device-tree/model") or allf.get("Model") or allf.get("Hardware")
    board = board.rstrip("\x00") if board else None
    flags = set((first.get("flags") or first.get("Features") or ls.get("Flags") or "").split())
    clock_ghz, clock_src = None, ""
    max_khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if max_khz and max_khz.isdigit():
        clock_ghz, clock_src = int(max_khz) / 1e6, "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"
    elif ls.get("CPU max MHz"):
        clock_ghz, clock_src = float(ls["CPU max MHz"]) / 1e3, "lscpu 'CPU max MHz'"
    elif first.get("cpu MHz"):
        clock_ghz, clock_src = (
            float(first["cpu MHz"]) / 1e3,
            "/proc/cpuinfo 'cpu MHz' (current clock, no cpufreq)",
        )
    mem_kib = None
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return {
        "model": model or platform.processor() or platform.machine(),
        "board": board,
        "machine": platform.machine(),
        "cpus": usable_cpus(),
        "logical_cpus": os.cpu_count() or 1,
        "clock_ghz": clock_ghz,
        "clock_source": clock_src,
        "simd": sorted(f for f in _SIMD_FLAGS if f in flags),
        "fp16_native": sorted(f for f in _FP16_FLAGS if f in flags),
        "int8_dot": sorted(f for f in _INT8_DOT_FLAGS if f in flags),
        "caches": _sys_caches(),
        "mem_gib": round(mem_kib / 2**20, 2) if mem_kib else None,
    }


def _parse_size_kib(text: str) -> float | None:
    m = re.fullmatch(r"(\d+)\s*([KMG]?)i?B?", text.strip(), re.IGNORECASE)
    if not m:
        return None
    return int(m.group(1)) * {"": 1 / 1024, "K": 1, "M": 1024, "G": 1024**2}[m.group(2).upper()]


def _cpu_list_len(text: str) -> int:
    n = 0
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            n += int(hi) - int(lo) + 1
        elif part.strip():
            n += 1
    return n


def _sys_caches() -> list[dict[str, Any]]:
    """cpu0's caches from /sys/devices/system/cpu/cpu0/cache/index*, with their sharing scope."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    siblings = _read("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list") or "0"
    smt = _cpu_list_len(siblings)
    total = os.cpu_count() or 1
    out = []
    for index in sorted(base.glob("index*")) if base.is_dir() else []:
        level, kind, size = _read(index / "level"), _read(index / "type"), _read(index / "size")
        shared = _read(index / "shared_cpu_list") or "0"
        if not (level and kind and size and level.isdigit()):
            continue
        size_kib = _parse_size_kib(size)
        if not size_kib:
            continue
        n_shared = _cpu_list_len(shared)
        scope = "per-core" if n_shared <= smt else ("shared" if n_shared >= total else "per-cluster")
        out.append({"level": int(level), "kind": kind.lower(), "size_kib": size_kib, "scope": scope,
                    "source": str(index)})  # fmt: skip
    return out


def last_level_cache_bytes(caches: list[dict[str, Any]]) -> int:
    """Size of the largest data/unified cache (bytes); 8 MiB when /sys has none."""
    sizes = [c["size_kib"] for c in caches if c["kind"] in ("unified", "data")]
    return int(max(sizes) * 1024) if sizes else 8 << 20


# ------------------------------------------------------------------------------------------------------------
# BLAS threads
# ------------------------------------------------------------------------------------------------------------


def blas_info() -> dict[str, Any]:
    """numpy's BLAS (name, version) and the thread count it uses, with where the count came from."""
    name, version = "unknown", ""
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        name, version = blas.get("name", name), blas.get("version", "")
    except Exception:  # noqa: BLE001, S110 - numpy < 1.25 or an unusual build: the name is informational
        pass
    lib = _openblas()
    if lib is not None:
        return {"name": name, "version": version, "threads": int(lib[1]()),
                "threads_source": "openblas_get_num_threads"}  # fmt: skip
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return {"name": name, "version": version, "threads": int(os.environ[var]), "threads_source": var}
    return {"name": name, "version": version, "threads": usable_cpus(),
            "threads_source": "assumed: one per usable CPU (BLAS default)"}  # fmt: skip


_OPENBLAS_SYMBOLS = (
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)


def _openblas() -> tuple[Any, Any] | None:
    """(set_num_threads, get_num_threads) of the OpenBLAS numpy loaded, found in /proc/self/maps; else None."""
    maps = _read("/proc/self/maps")
    if not maps:
        return None
    paths = sorted({line.split()[-1] for line in maps.splitlines()
                    if "openblas" in line.rsplit("/", 1)[-1].lower() and line.split()[-1].startswith("/")})  # fmt: skip
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _OPENBLAS_SYMBOLS:
            setter, getter = getattr(lib, set_name, None), getattr(lib, get_name, None)
            if setter is not None and getter is not None:
                setter.argtypes, getter.restype = [ctypes.c_int], ctypes.c_int
                return setter, getter
    return None


@contextmanager
def _blas_threads(n: int):
    """Limit numpy's OpenBLAS to `n` threads in-process; yields False (no change) when that is not possible."""
    lib = _openblas()
    if lib is None:
        yield False
        return
    setter, getter = lib
    before = int(getter())
    setter(n)
    try:
        yield True
    finally:
        setter(before)


# ------------------------------------------------------------------------------------------------------------
# Micro-benchmarks
# ------------------------------------------------------------------------------------------------------------


def gemm_gflops(dtype: str, mode: Mode = FULL) -> dict[str, Any]:
    """Best GFLOP/s of numpy.matmul on n x n `dtype` ("float32"/"float64") matrices, 2 n^3 FLOP per call.

    n starts at 256 (smaller orders measure call and threading overhead, never the peak) and doubles until the
    better of two calls takes `mode.gemm_target_s` (one preempted call on a busy or virtual machine must not
    end the search early) or n reaches `mode.gemm_max_n`; then calls repeat for `mode.gemm_budget_s`.
    """
    if dtype not in ("float32", "float64"):
        raise ConfigError(
            f"gemm_gflops: dtype {dtype!r} is not BLAS-backed in numpy (use float32 or float64)"
        )
    rng = np.random.default_rng(0)
    n = 256
    while True:
        a = rng.random((n, n), dtype=np.dtype(dtype))
        b = rng.random((n, n), dtype=np.dtype(dtype))
        c = np.empty((n, n), dtype=dtype)
        times = []
        for _ in range(2):  # the first call also warms up: thread pool start, page faults
            t0 = time.perf_counter()
            np.matmul(a, b, out=c)
            times.append(time.perf_counter() - t0)
        best = min(times)
        if best >= mode.gemm_target_s or n >= mode.gemm_max_n:
            break
        n *= 2
    runs = 2
    start = time.perf_counter()
    while runs < mode.min_runs or time.perf_counter() - start < mode.gemm_budget_s:
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return {"n": n, "runs": runs, "best_s": best, "gflops": 2.0 * n**3 / best / 1e9}


_ORT_MATMUL = base64.b64decode(
    "CAgSCGVkZ2Utc2VyOl4KEQoBQQoBQhIBQyIGTWF0TXVsEgRnZW1tWhUKAUESEAoOCAESCgoDEgFuCgMSAW5aFQoBQhIQCg4IARIKCgMSAW4KAxIB"
    "bmIVCgFDEhAKDggBEgoKAxIBbgoDEgFuQgQKABAR"
)
"""A 114-byte ONNX model, C = MatMul(A, B) on float32 [n, n] inputs (opset 17), so a device without the onnx
package can time onnxruntime's GEMM; tests/test_profiles.py rebuilds it with onnx.helper and compares."""


def ort_gemm_gflops(threads: int | None, mode: Mode = FULL, n: int = 1024) -> dict[str, Any] | None:
    """Best GFLOP/s of onnxruntime's float32 MatMul (its MLAS kernels, what the onnxruntime engine runs) on
    n x n matrices with `threads` intra-op threads (None: onnxruntime's default); None without onnxruntime.

    numpy's BLAS can stay well below what a tuned kernel reaches on the same core (measured here: OpenBLAS
    120 GFLOP/s on one thread where onnxruntime's convolutions of av_cnn ran at 170), so the host's fp32 peak
    is the better of the two: a roof the engines we run can actually reach.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(_ORT_MATMUL, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {"A": rng.random((n, n), dtype=np.float32), "B": rng.random((n, n), dtype=np.float32)}
    sess.run(None, feeds)  # warm-up: thread pool, packing buffers
    best, runs = float("inf"), 0
    start = time.perf_counter()
    while runs < mode.min_runs or time.perf_counter() - start < mode.gemm_budget_s:
        t0 = time.perf_counter()
        sess.run(None, feeds)
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return {"n": n, "runs": runs, "best_s": best, "gflops": 2.0 * n**3 / best / 1e9, "threads": threads,
            "library": f"onnxruntime {ort.__version__} MatMul (MLAS)"}  # fmt: skip


def triad_gbps(
    threads: int | list[int], mode: Mode = FULL, *, array_bytes: int | None = None, block: int = 16384
) -> dict[str, Any] | list[dict[str, Any]]:
    """Best GB/s of a = b + s*c over float64 arrays of `array_bytes` each, split over `threads` threads.

    Counts 24 bytes per element (STREAM). Each thread walks its slice in `block`-element steps; s*c goes to a
    per-thread buffer that stays in cache, so the DRAM traffic is read b, read c, write a. A list of thread
    counts runs each on the same arrays (allocated and touched once) and returns a list of results.
    """
    counts = [threads] if isinstance(threads, int) else list(threads)
    if not counts or min(counts) < 1:
        raise ConfigError(f"triad_gbps: thread counts must be >= 1, got {threads!r}")
    if array_bytes is None:
        array_bytes = max(4 * last_level_cache_bytes(_sys_caches()), mode.triad_min_mib << 20)
    n = max(array_bytes // 8, max(counts) * block)
    scalar = 3.0
    a = np.zeros(n)
    b = np.full(n, 1.0)
    c = np.full(n, 2.0)
    results = [_triad_passes(a, b, c, scalar, k, mode, block) for k in counts]
    if not (a[0] == a[-1] == 1.0 + scalar * 2.0):
        raise RuntimeError("triad produced wrong values: the benchmark is broken")
    return results[0] if isinstance(threads, int) else results


def _triad_passes(a, b, c, scalar: float, threads: int, mode: Mode, block: int) -> dict[str, Any]:
    n = a.size
    bounds = np.linspace(0, n, threads + 1).astype(np.int64)
    tmps = [np.empty(block) for _ in range(threads)]

    def work(k: int) -> None:
        lo, hi, tmp = int(bounds[k]), int(bounds[k + 1]), tmps[k]
        for i in range(lo, hi, block):
            j = min(i + block, hi)
            t = tmp[: j - i]
            np.multiply(c[i:j], scalar, out=t)
            np.add(b[i:j], t, out=a[i:j])

    with ThreadPoolExecutor(max_workers=threads) as pool:

        def one_pass() -> float:
            t0 = time.perf_counter()
            for f in [pool.submit(work, k) for k in range(threads)]:
                f.result()
            return time.perf_counter() - t0

        best = one_pass()  # warm-up: thread start; on the first call also the first touch of `a`'s pages
        runs = 0
        start = time.perf_counter()
        while runs < mode.min_runs or time.perf_counter() - start < mode.triad_budget_s:
            best = min(best, one_pass())
            runs += 1
    return {"threads": threads, "array_mib": round(n * 8 / 2**20, 1), "runs": runs, "best_s": best,
            "gbps": 24.0 * n / best / 1e9}  # fmt: skip


def _gemm_one_thread(mode: Mode) -> tuple[dict[str, dict[str, Any]], str]:
    """GEMM results on one BLAS thread: in-process via OpenBLAS, else in a child process with *_NUM_THREADS=1."""
    with _blas_threads(1) as limited:
        if limited:
            return {d: gemm_gflops(d, mode) for d in ("float32", "float64")}, "openblas_set_num_threads(1)"
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):  # fmt: skip
        env[var] = "1"
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    code = ("import json, sys; from edge_ser.hostbench import gemm_gflops, FULL, QUICK; "
            "m = QUICK if sys.argv[1] == 'quick' else FULL; "
            "print(json.dumps({d: gemm_gflops(d, m) for d in ('float32', 'float64')}))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code, mode.name], capture_output=True, text=True, env=env,
                          timeout=120, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"one-thread GEMM child process failed: {proc.stderr[-500:]}")
    return json.loads(proc.stdout), "child process with OPENBLAS/OMP/MKL/BLIS/VECLIB_*_NUM_THREADS=1"


def _cpu_busy_s() -> float | None:
    """CPU seconds every process (and a hypervisor's steal) has used since boot, from /proc/stat; None without."""
    fields = (_read("/proc/stat") or "").partition("\n")[0].split()
    if len(fields) < 9 or fields[0] != "cpu" or not all(f.isdigit() for f in fields[1:9]):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    """CPU seconds this process and its waited-for children (the one-thread GEMM child) have used."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def machine_load(busy_s: float | None, own_s: float, wall_s: float, cpus: int) -> dict[str, Any]:
    """The `load` record of a measurement: CPUs other processes used on average over `wall_s` (all processes'
    CPU time `busy_s` less this one's `own_s`), and whether that is `BUSY_CPUS` or more."""
    if busy_s is None or wall_s <= 0:
        return {
            "others_cpus": None,
            "cpus": cpus,
            "busy": None,
            "method": "not checked: /proc/stat unreadable",
        }
    others = max(0.0, busy_s - own_s) / wall_s
    return {"others_cpus": round(others, 2), "cpus": cpus, "busy": others >= BUSY_CPUS,
            "method": f"/proc/stat CPU time (with steal) less this process's, over {wall_s:.1f} s; busy from "
            f"{BUSY_CPUS} CPUs"}  # fmt: skip


def measure(*, quick: bool = False) -> dict[str, Any]:
    """Run every micro-benchmark and return the raw record (see the module docstring for conventions)."""
    mode = QUICK if quick else FULL
    t_start = time.perf_counter()
    busy_before, own_before = _cpu_busy_s(), _own_cpu_s()
    info = cpu_info()
    blas = blas_info()
    with _blas_threads(info["cpus"]) as grown:  # the CLI starts numpy's BLAS on one thread (edge_ser.cli)
        gemm_all = {d: gemm_gflops(d, mode) for d in ("float32", "float64")}
    for r in gemm_all.values():
        r["threads"] = info["cpus"] if grown else blas["threads"]
    gemm_one, one_method = _gemm_one_thread(mode)
    for r in gemm_one.values():
        r["threads"] = 1
    ort_all, ort_one = ort_gemm_gflops(None, mode), ort_gemm_gflops(1, mode)
    llc = last_level_cache_bytes(info["caches"])
    array_bytes = max(4 * llc, mode.triad_min_mib << 20)
    avail = _mem_available_bytes()
    if avail is not None:
        array_bytes = max(min(array_bytes, avail // 8), 4 << 20)  # 3 arrays within 3/8 of free RAM
    cpus = info["cpus"]
    triads = triad_gbps([1, cpus] if cpus > 1 else [1], mode, array_bytes=array_bytes)
    fp16_why = ("numpy has no float16 GEMM kernel: float16 matmul is emulated element by element in float32, so "
                "timing it measures numpy, not the CPU; ")  # fmt: skip
    fp16_why += (f"this CPU has native FP16 arithmetic ({', '.join(info['fp16_native'])})" if info["fp16_native"]
                 else "this CPU reports no native FP16 vector arithmetic")  # fmt: skip
    int8_why = ("numpy's integer matmul is a generic loop without BLAS or SDOT/VNNI kernels, so timing it "
                "measures numpy, not the CPU; ")  # fmt: skip
    int8_why += (f"this CPU has int8 dot-product instructions ({', '.join(info['int8_dot'])})" if info["int8_dot"]
                 else "this CPU reports no int8 dot-product instructions")  # fmt: skip
    record = {
        "tool": "edge_ser.hostbench",
        "mode": mode.name,
        "host": platform.node() or "unknown-host",
        "measured_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "cpu": info,
        "gemm": {
            "float32": gemm_all["float32"],
            "float64": gemm_all["float64"],
            "float32_1thread": gemm_one["float32"],
            "float64_1thread": gemm_one["float64"],
            "one_thread_method": one_method,
            "onnxruntime_float32": ort_all,
            "onnxruntime_float32_1thread": ort_one,
            "flop_convention": "2*n^3 per n x n x n matmul (multiply-add = 2 FLOP)",
        },
        "triad": {
            "kernel": "a = b + s*c, float64",
            "llc_bytes": llc,
            "array_bytes": array_bytes,
            "byte_convention": "24 bytes/element: read b + read c + write a (STREAM; write-allocate not "
            "counted)",
            "runs": triads,
        },
        "not_measured": {"fp16": fp16_why, "int8": int8_why},
    }
    wall = time.perf_counter() - t_start
    busy_after = _cpu_busy_s()
    busy = None if busy_before is None or busy_after is None else busy_after - busy_before
    record["load"] = machine_load(busy, _own_cpu_s() - own_before, wall, os.cpu_count() or 1)
    record["duration_s"] = round(wall, 2)
    return record


def _mem_available_bytes() -> int | None:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


# ------------------------------------------------------------------------------------------------------------
# Record -> Profile
# ------------------------------------------------------------------------------------------------------------


def profile_from_measurement(rec: dict[str, Any]) -> Profile:
    """Build (and validate) the `host` Profile from a `measure()` record."""
    info, blas, gemm, triad = rec["cpu"], rec["blas"], rec["gemm"], rec["triad"]
    where = f"measured on {rec['host']} at {rec['measured_at']} by edge_ser.hostbench ({rec['mode']} mode)"
    lib = f"numpy {rec['numpy']} / {blas['name']} {blas['version']}".strip()
    best = max(triad["runs"], key=lambda r: r["gbps"])
    one = triad["runs"][0]

    def peak(dtype: str) -> dict[str, Any]:
        g, g1 = gemm[dtype], gemm[f"{dtype}_1thread"]
        o, o1 = gemm.get(f"onnxruntime_{dtype}"), gemm.get(f"onnxruntime_{dtype}_1thread")
        value, single = g["gflops"], g1["gflops"]
        method = f"numpy.matmul {dtype} n={g['n']} ({lib}), best of {g['runs']} runs"
        note = f"numpy's BLAS: {g['gflops']:.1f} GFLOP/s, one thread {g1['gflops']:.1f} ({gemm['one_thread_method']})"
        if o and o1:
            note += f"; {o['library']}: {o['gflops']:.1f}, one thread {o1['gflops']:.1f}"
            if o["gflops"] > value or o1["gflops"] > single:
                method += f" and {o['library']} n={o['n']}, the better of the two"
            value, single = max(value, o["gflops"]), max(single, o1["gflops"])
        return {
            "value": round(value, 3),
            "unit": "GFLOP/s",
            "source": where,
            "method": method + ", " + gemm["flop_convention"],
            "threads": g["threads"],
            "single_thread": round(single, 3),
            "note": note + ". What a GEMM attains here: a lower bound on the silicon's peak.",
        }

    clock = None
    if info.get("clock_ghz"):
        clock = {"value": round(info["clock_ghz"], 4), "source": f"{info['clock_source']} on {rec['host']}"}
    caches = [
        {"level": c["level"], "kind": c["kind"] if c["kind"] in ("data", "instruction", "unified") else "unified",
         "size_kib": c["size_kib"], "scope": c["scope"], "source": f"{c['source']} on {rec['host']}"}
        for c in info["caches"]
    ]  # fmt: skip
    fp16_note = ("fp16 not measured (" + rec["not_measured"]["fp16"] + "); edge-ser's CPU engines compute fp16 "
                 "models in fp32, so the fp32 roof applies.")  # fmt: skip
    data = {
        "schema_version": 1,
        "name": HOST,
        "description": f"this machine: {info['model']}"
        + (f" ({info['board']})" if info.get("board") else ""),
        "operating_point": f"as found: {info['cpus']} usable CPUs, current governor and clocks",
        "cpu": {
            "model": info["model"],
            "cores": info["cpus"],
            **({"clock_ghz": clock} if clock else {}),
            "simd": info["simd"] or ["none detected"],
            "source": f"lscpu / /proc/cpuinfo / sched_getaffinity on {rec['host']}",
        },
        "memory": {
            "type": "unknown (not readable without root)",
            **({"capacity_gib": info["mem_gib"]} if info.get("mem_gib") else {}),
            "measured_gbps": {
                "value": round(best["gbps"], 3),
                "source": where,
                "method": f"triad {triad['kernel']}, {best['array_mib']} MiB per array (last-level cache "
                f"{triad['llc_bytes'] >> 10} KiB), best of {best['runs']} passes, {triad['byte_convention']}",
                "threads": best["threads"],
                "note": f"one thread: {one['gbps']:.2f} GB/s; "
                + ", ".join(f"{r['threads']} threads: {r['gbps']:.2f} GB/s" for r in triad["runs"][1:]),
            },
            "source": f"/proc/meminfo on {rec['host']}",
        },
        "caches": caches,
        "peaks": {"cpu": {"fp64": peak("float64"), "fp32": peak("float32")}},
        "power_modes": [],
        "roofline": {
            "default": "cpu",
            "reason": "Measured on this machine: compute = the numpy BLAS GEMM rate with all threads, bandwidth = "
            "the best triad rate. fp16 and int8 are not measured (see notes); fp16 models use the fp32 "
            "roof because edge-ser's CPU engines compute them in fp32.",
            "targets": {
                "cpu": {
                    "fp64": {"compute": "peaks.cpu.fp64", "bandwidth": "memory.measured_gbps"},
                    "fp32": {"compute": "peaks.cpu.fp32", "bandwidth": "memory.measured_gbps"},
                    "fp16": {
                        "compute": "peaks.cpu.fp32",
                        "bandwidth": "memory.measured_gbps",
                        "note": fp16_note,
                    },
                }
            },
        },
        "notes": [f"{p} not measured: {why}" for p, why in rec["not_measured"].items()] + _load_notes(rec),
        "measurement": rec,
    }
    return Profile.from_dict(data, origin="<host measurement>")


def _load_notes(rec: dict[str, Any]) -> list[str]:
    """The profile's note on the machine's load while it was measured: busy, or not checked (none when quiet)."""
    load = rec.get("load") or {}
    again = (
        "measure again on a quiet machine (`edge-ser bench --remeasure`, "
        "`python -m edge_ser.hostbench --remeasure`)"
    )
    if load.get("busy"):
        return [
            f"Measured while the machine was busy: other processes used {load['others_cpus']:.2f} of its "
            f"{load['cpus']} CPUs on average, so these peaks and bandwidths may be low and a measured point can "
            f"exceed them; {again}."
        ]
    if load.get("busy") is None:
        why = load.get("method", "not checked: a record without it")
        return [f"Whether the machine was busy while it was measured is unknown ({why}); {again} if a measured "
                "point exceeds these figures."]  # fmt: skip
    return []


# ------------------------------------------------------------------------------------------------------------
# Cache and entry point
# ------------------------------------------------------------------------------------------------------------


def cache_path() -> Path:
    """$EDGE_SER_CACHE/host-profile.json, else $XDG_CACHE_HOME/edge-ser/..., else ~/.cache/edge-ser/..."""
    if os.environ.get("EDGE_SER_CACHE"):
        return Path(os.environ["EDGE_SER_CACHE"]) / CACHE_NAME
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edge-ser" / CACHE_NAME


def machine_key(quick: bool = False) -> tuple[str, dict[str, Any]]:
    """(key, fields) identifying this machine + software for the cache: host, CPU, numpy, BLAS and its threads,
    onnxruntime (None without it)."""
    info = cpu_info()
    blas = blas_info()
    # the fp32 peak is the better of numpy's GEMM and onnxruntime's: a new onnxruntime is a new peak
    ort = library_versions(("onnxruntime",)).get("onnxruntime")
    fields = {"host": platform.node(), "machine": info["machine"], "cpu": info["model"], "cpus": info["cpus"],
              "clock_ghz": info["clock_ghz"] if info["clock_source"].startswith("/sys") else None,
              "numpy": np.__version__, "blas": f"{blas['name']} {blas['version']}",
              "blas_threads": info["cpus"] if _openblas() is not None else blas["threads"],  # as `measure` times
              "onnxruntime": ort, "mode": "quick" if quick else "full"}  # fmt: skip
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
    return key, fields


def host_profile(*, remeasure: bool = False, quick: bool = False, cache: Path | None = None,
                 use_cache: bool = True) -> Profile:  # fmt: skip
    """The `host` profile: from the cache when this machine was measured before, else measured now (~5-10 s).

    remeasure: ignore the cached figures and measure again (the cache entry is replaced).
    quick: a ~1-2 s measurement with small sizes (for tests; noisier). Cached under its own key.
    cache: the cache file (default `cache_path()`); use_cache=False neither reads nor writes it.
    """
    path = cache if cache is not None else cache_path()
    key, fields = machine_key(quick)
    entries: dict[str, Any] = {}
    if use_cache and path.is_file():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("schema") == CACHE_SCHEMA and isinstance(doc.get("entries"), dict):
                entries = doc["entries"]
        except (OSError, ValueError) as e:
            warnings.warn(
                f"{path}: unreadable host-profile cache ({e}); measuring again", CacheWarning, stacklevel=2
            )
        if not remeasure and key in entries:
            try:
                return Profile.from_dict(entries[key]["profile"], origin=str(path))
            except (ProfileError, KeyError, TypeError) as e:
                warnings.warn(
                    f"{path}: cached host profile is invalid ({e}); measuring again",
                    CacheWarning,
                    stacklevel=2,
                )
    profile = profile_from_measurement(measure(quick=quick))
    if use_cache:
        entries[key] = {"fields": fields, "profile": profile.to_dict()}
        _write_cache(path, {"schema": CACHE_SCHEMA, "entries": entries})
    return profile


def _write_cache(path: Path, doc: dict[str, Any]) -> None:
    try:
        atomic_write(path, json.dumps(doc, indent=1))
    except OSError as e:
        warnings.warn(
            f"{path}: cannot write the host-profile cache ({e}); the measurement is not kept",
            CacheWarning,
            stacklevel=3,
        )


def main(argv: list[str] | None = None) -> int:
    """`python -m edge_ser.hostbench [--remeasure] [--quick] [--json]`: print the host profile."""
    ap = argparse.ArgumentParser(prog="python -m edge_ser.hostbench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--remeasure", action="store_true", help="ignore the cached figures and measure again")
    ap.add_argument("--quick", action="store_true", help="small, fast (~1-2 s), noisier measurement")
    ap.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    ap.add_argument("--json", action="store_true", help="print the profile as JSON instead of a summary")
    args = ap.parse_args(argv)
    profile = host_profile(remeasure=args.remeasure, quick=args.quick, use_cache=not args.no_cache)
    if args.json:
        print(json.dumps(profile.to_dict(), indent=1))
    else:
        print(profile)
        m = profile.measurement or {}
        g = m.get("gemm", {})
        for d in ("float32", "float64"):
            if d in g:
                print(f"  gemm {d}: {g[d]['gflops']:.1f} GFLOP/s on {g[d]['threads']} threads (n={g[d]['n']}), "
                      f"{g[d + '_1thread']['gflops']:.1f} on 1 thread")  # fmt: skip
            o = g.get(f"onnxruntime_{d}")
            if o and f"onnxruntime_{d}_1thread" in g:  # the peak is the better of numpy's and this one
                print(f"  gemm {d}, {o['library']}: {o['gflops']:.1f} GFLOP/s (n={o['n']}), "
                      f"{g[f'onnxruntime_{d}_1thread']['gflops']:.1f} on 1 thread")  # fmt: skip
        for r in m.get("triad", {}).get("runs", []):
            print(f"  triad: {r['gbps']:.2f} GB/s on {r['threads']} thread(s), {r['array_mib']} MiB arrays")
        cached = "not used" if args.no_cache else str(cache_path())
        load = m.get("load") or {}
        if load.get("others_cpus") is not None:
            print(f"  other processes used {load['others_cpus']:.2f} of {load['cpus']} CPUs while it was measured"
                  + (": BUSY, the figures may be low (see the profile's notes)" if load["busy"] else ""))  # fmt: skip
        print(f"  measured in {m.get('duration_s')} s (at {m.get('measured_at')}); cache: {cached}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
