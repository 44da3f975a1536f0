"""Inference engines: one small interface over onnxruntime, a pure-numpy graph runner and TFLite.

    engine = load_engine("out/bundle", "auto", threads=2)
    logits = engine.predict(features)          # float32 [n, 180] -> float32 [n, classes]

`"auto"` picks the first engine of AUTO that is installed (onnxruntime, else numpy; never TFLite: ask for it by
name, "tflite" or "tflite-int8" / "tflite-fp16" / "tflite-fp32"); an explicit name that cannot run here raises
`MissingDependencyError` with the install command. `engines_for(bundle)` lists every name a bundle can run on
here.

Adding an engine is one module and one line of REGISTRY. The module defines `NAME`, `HINT` (how to install
it), `VARIANTS` (named variants such as TFLite's "int8", or empty), `unavailable() -> str | None` (why it cannot
run here, None when it can), `names_for(bundle) -> tuple[str, ...]` (the engine names this bundle can use with
it) and `create(bundle, variant, threads=, providers=) -> Engine`; what engines share (the input adapter,
softmax, the logit check) is in `edge_ser.engines.base`. Engine modules import their runtime inside functions,
so importing this package costs nothing but numpy.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from edge_ser.engines.base import PROVIDERS, Engine, normalize_providers, softmax
from edge_ser.errors import ConfigError

if TYPE_CHECKING:
    from edge_ser.bundle import Bundle, FusionBundle

REGISTRY: dict[str, str] = {
    "onnxruntime": "edge_ser.engines.onnxrt",
    "numpy": "edge_ser.engines.numpy_engine",
    "tflite": "edge_ser.engines.tflite",
}
"""Engine name -> the module that implements it (see the module docstring for what it defines)."""
ENGINES = tuple(REGISTRY)
"""Engine kinds; "tflite" runs one of a bundle's TFLite variants, also named "tflite-int8" and so on."""
AUTO = ("onnxruntime", "numpy")
"""What "auto" tries, in order: the first engine installed here."""


MAX_THREADS = 256
"""The most inference threads an engine is asked for: more than any board's cores many times over."""


def engine_module(name: str) -> ModuleType:
    """The module of a registered engine (imported on first use; it does not import its runtime)."""
    return importlib.import_module(REGISTRY[name])


def available_engines() -> dict[str, str | None]:
    """Engine name -> None when it can run here, else a one-line install hint."""
    out: dict[str, str | None] = {}
    for name in REGISTRY:
        mod = engine_module(name)
        out[name] = None if mod.unavailable() is None else mod.HINT
    return out


def engine_names() -> list[str]:
    """Every name `load_engine` accepts: "auto", each engine, and each engine-variant ("tflite-int8")."""
    names = ["auto", *REGISTRY]
    for name in REGISTRY:
        names += [f"{name}-{v}" for v in engine_module(name).VARIANTS]
    return names


def parse_engine(engine: str, variant: str | None = None) -> tuple[str, str | None]:
    """("auto" or a registered engine, its variant or None) from a name such as "tflite-int8"; ConfigError."""
    if isinstance(engine, str):
        engine = engine.strip().lower()
    if isinstance(variant, str):
        variant = variant.strip().lower()
    if engine not in ("auto", *REGISTRY):
        family, _, suffix = str(engine).partition("-")
        if family not in REGISTRY or suffix not in engine_module(family).VARIANTS:
            raise ConfigError(f"engine {engine!r} is not known; choose from {engine_names()}")
        if variant is not None and variant != suffix:
            raise ConfigError(f"engine {engine!r} and variant={variant!r} disagree; give one of them")
        engine, variant = family, suffix
    if variant is not None and (engine == "auto" or variant not in engine_module(engine).VARIANTS):
        have = {n: list(engine_module(n).VARIANTS) for n in REGISTRY if engine_module(n).VARIANTS}
        which = "; ".join(f"the {n} engine has variants, one of {v}" for n, v in have.items())
        raise ConfigError(f"variant={variant!r}: only {which}")
    return engine, variant


def load_engine(
    bundle: Bundle | FusionBundle | str | os.PathLike[str],
    engine: str = "auto",
    *,
    threads: int | None = None,
    providers: Sequence[str] | None = None,
    variant: str | None = None,
    delegate: str | os.PathLike[str] | None = None,
) -> Engine:
    """Build an engine for a bundle (a loaded Bundle, or the path of one, which is loaded and verified).

    Args:
        engine: "auto" (the first of AUTO installed here), "onnxruntime", "numpy", "tflite" (the bundle's int8
            variant if it has one, else fp16, else fp32) or "tflite-int8" / "-fp16" / "-fp32".
        threads: intra-op threads (onnxruntime) or interpreter threads (TFLite); None leaves the runtime's
            default.
        providers: onnxruntime execution providers in order of preference; ones not available here are
            reported (`engine.missing_providers`, `describe()`) and CPU runs instead.
        variant: the TFLite variant ("int8", "fp16", "fp32") for engine "tflite"; same as "tflite-<variant>".
        delegate: the path of a TFLite delegate library (Coral Edge TPU, Hexagon, GPU...) for the tflite
            engine; a missing file or one that does not load is a DelegateError naming the path.

    Raises:
        MissingDependencyError: the requested engine's package is not installed (says what to install).
        ConfigError: unknown engine, variant, provider or thread count; a delegate for another engine.
        DelegateError: the delegate is missing or cannot be loaded.
        BundleError: the bundle does not load, the engine cannot run its graph, or (TFLite) the bundle has no
            TFLite variants or not the one asked for (the message lists what it has).
    """
    name, variant = parse_engine(engine, variant)
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS
    ):  # 100000 made onnxruntime start 9,238 threads and take 16 GB before it answered anything
        raise ConfigError(
            f"threads={threads!r}: must be an integer in 1..{MAX_THREADS} or None (this machine has "
            f"{os.cpu_count() or '?'} cores)"
        )
    wanted = normalize_providers(providers)
    if not hasattr(bundle, "manifest"):
        from edge_ser.bundle import load_bundle

        bundle = load_bundle(bundle)
    if getattr(bundle, "branches", None):  # a fusion bundle: one engine per branch (edge_ser.engines.fusion)
        from edge_ser.engines.fusion import FusionEngine

        kw = {"threads": threads, "providers": providers, "variant": variant}
        return FusionEngine(bundle, {n: load_engine(b, engine, **kw) for n, b in bundle.branches.items()})
    if name == "auto":
        name = next((n for n in AUTO if engine_module(n).unavailable() is None), AUTO[-1])
    if delegate is not None:
        if name != "tflite":
            raise ConfigError(
                f"a delegate ({os.fspath(delegate)}) is for the tflite engine, not {name!r}: "
                'use the tflite engine (--engine tflite, or tflite-int8 / -fp16 / -fp32; engine="tflite" in Python)'
            )
        return engine_module(name).create(
            bundle, variant, threads=threads, providers=wanted, delegate=delegate
        )
    return engine_module(name).create(bundle, variant, threads=threads, providers=wanted)


def bundle_engines(bundle: Bundle | FusionBundle) -> list[str]:
    """Every engine name the bundle itself supports, installed here or not: "onnxruntime", "numpy" when the
    numpy engine has every op of its graph, and "tflite-<variant>" for each TFLite variant it carries."""
    if getattr(bundle, "branches", None):  # a fusion bundle: what every branch supports
        each = [bundle_engines(b) for b in bundle.branches.values()]
        return [n for n in each[0] if all(n in e for e in each[1:])]
    return [n for name in REGISTRY for n in engine_module(name).names_for(bundle)]


def engines_for(bundle: Bundle | FusionBundle | str | os.PathLike[str]) -> list[str]:
    """Every engine name this bundle can run on this machine, for `load_engine`.

    "onnxruntime" when it is installed, "numpy" when the numpy engine supports every op of the graph, and
    "tflite-<variant>" for each TFLite variant the bundle carries when a TFLite interpreter is installed.
    """
    if not hasattr(bundle, "manifest"):
        from edge_ser.bundle import load_bundle

        bundle = load_bundle(bundle)
    if getattr(bundle, "branches", None):  # a fusion bundle: what every branch can run on
        each = [engines_for(b) for b in bundle.branches.values()]
        return [n for n in each[0] if all(n in e for e in each[1:])]
    out: list[str] = []
    for name in REGISTRY:
        mod = engine_module(name)
        if mod.unavailable() is None:
            out += mod.names_for(bundle)
    return out


__all__ = [
    "AUTO",
    "ENGINES",
    "PROVIDERS",
    "REGISTRY",
    "Engine",
    "available_engines",
    "bundle_engines",
    "engine_names",
    "engines_for",
    "load_engine",
    "normalize_providers",
    "parse_engine",
    "softmax",
]
