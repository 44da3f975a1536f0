"""Inference engines: one small interface over onnxruntime, a pure-numpy graph runner and TFLite.

    engine = load_engine("out/bundle", "auto", threads=2)
    logits = engine.predict(features)          # float32 [n, 180] -> float32 [n, classes]

`"auto"` picks onnxruntime when it is installed, else numpy (never TFLite: ask for it by name, "tflite" or
"tflite-int8" / "tflite-fp16" / "tflite-fp32"); an explicit name that cannot run here raises
`MissingDependencyError` with the install command. `engines_for(bundle)` lists every name a bundle can run on
here. Backends are imported inside the functions that build them, so importing this package costs nothing but
numpy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from edge_ser.errors import BundleError, ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from edge_ser.bundle import Bundle

ENGINES = ("onnxruntime", "numpy", "tflite")
"""Engine kinds; "tflite" runs one of a bundle's TFLITE_VARIANTS, also named "tflite-int8" and so on."""
TFLITE_VARIANTS = ("fp32", "fp16", "int8")
"""TFLite variants a bundle may carry (manifest `tflite.variants`; as edge_ser.bundle.TFLITE_VARIANTS)."""

PROVIDERS = ("CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider")
"""onnxruntime execution providers an engine may be asked for; "cpu", "cuda" and "tensorrt" are accepted too."""
_PROVIDER_ALIASES = {"cpu": PROVIDERS[0], "cuda": PROVIDERS[1], "tensorrt": PROVIDERS[2], "trt": PROVIDERS[2]}

_HINTS = {
    "onnxruntime": "pip install 'edge-ser[device]' (onnxruntime)",
    "tflite": "pip install 'edge-ser[tflite]' (ai-edge-litert)",
}


@runtime_checkable
class Engine(Protocol):
    """A model ready to run: built once from a bundle, then `predict` as often as needed."""

    name: str
    """Engine name: "onnxruntime", "numpy" or "tflite-<variant>"."""

    def predict(self, x: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
        """Logits for a batch.

        Args:
            x: float32 [n, d] features (for laq_mlp d = feature_spec.dim), or one sample without the batch axis,
                or for a model with several inputs a mapping input name -> array.

        Returns:
            float32 [n, classes] logits, in the order of `bundle.labels`.
        """
        ...

    def describe(self) -> str:
        """One line: engine, model, threads, providers in use and requested-but-missing."""
        ...


def available_engines() -> dict[str, str | None]:
    """Engine name -> None when it can run here, else a one-line install hint."""
    out: dict[str, str | None] = {}
    for name in ENGINES:
        err = _import_error(name)
        out[name] = None if err is None else _HINTS[name]
    return out


def _import_error(name: str) -> str | None:
    if name == "numpy":
        return None
    if name == "tflite":
        from edge_ser.engines.tflite import import_interpreter

        try:
            import_interpreter()
        except MissingDependencyError as e:
            return str(e)
        return None
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        return str(e) or "cannot import onnxruntime"
    except Exception as e:  # noqa: BLE001 - a broken wheel (wrong CPU/ABI) fails with OSError and friends
        return f"{type(e).__name__}: {e}"
    return None


def load_engine(
    bundle: Bundle | str | os.PathLike[str],
    engine: str = "auto",
    *,
    threads: int | None = None,
    providers: Sequence[str] | None = None,
    variant: str | None = None,
) -> Engine:
    """Build an engine for a bundle (a loaded Bundle, or the path of one, which is loaded and verified).

    Args:
        engine: "auto" (onnxruntime if installed, else numpy), "onnxruntime", "numpy", "tflite" (the
            bundle's int8 variant if it has one, else fp16, else fp32) or "tflite-int8" / "-fp16" / "-fp32".
        threads: intra-op threads (onnxruntime) or interpreter threads (TFLite); None leaves the runtime's
            default.
        providers: onnxruntime execution providers in order of preference; ones not available here are
            reported (`engine.missing_providers`, `describe()`) and CPU runs instead.
        variant: the TFLite variant ("int8", "fp16", "fp32") for engine "tflite"; same as "tflite-<variant>".

    Raises:
        MissingDependencyError: the requested engine's package is not installed (says what to install).
        ConfigError: unknown engine, variant, provider or thread count.
        BundleError: the bundle does not load, the engine cannot run its graph, or (TFLite) the bundle has no
            TFLite variants or not the one asked for (the message lists what it has).
    """
    if isinstance(engine, str):
        engine = engine.strip().lower()
    if isinstance(variant, str):
        variant = variant.strip().lower()
    names = ["auto", *ENGINES, *(f"tflite-{v}" for v in TFLITE_VARIANTS)]
    if isinstance(engine, str) and engine.startswith("tflite-") and engine in names:
        if variant is not None and variant != engine[len("tflite-") :]:
            raise ConfigError(f"engine {engine!r} and variant={variant!r} disagree; give one of them")
        engine, variant = "tflite", engine[len("tflite-") :]
    if engine not in ("auto", *ENGINES):
        raise ConfigError(f"engine {engine!r} is not known; choose from {names}")
    if variant is not None and (engine != "tflite" or variant not in TFLITE_VARIANTS):
        raise ConfigError(
            f"variant={variant!r}: only the tflite engine has variants, one of {list(TFLITE_VARIANTS)}"
        )
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads={threads!r}: must be a positive integer or None")
    wanted = normalize_providers(providers)
    if not hasattr(bundle, "manifest"):
        from edge_ser.bundle import load_bundle

        bundle = load_bundle(bundle)
    if engine == "tflite":
        from edge_ser.engines.tflite import TFLiteEngine

        # checks the variant against the bundle first (BundleError: installing a runtime would not help),
        # then imports an interpreter (MissingDependencyError)
        return TFLiteEngine(bundle, variant, threads=threads, providers=wanted)
    if engine == "auto":
        engine = "onnxruntime" if _import_error("onnxruntime") is None else "numpy"
    if engine == "onnxruntime":
        err = _import_error("onnxruntime")
        if err is not None:
            raise MissingDependencyError("onnxruntime", "device", f"the onnxruntime engine; {err}")
        from edge_ser.engines.onnxrt import OnnxRuntimeEngine

        return OnnxRuntimeEngine(bundle, threads=threads, providers=wanted)
    from edge_ser.engines.numpy_engine import NumpyEngine

    return NumpyEngine(bundle, threads=threads, providers=wanted)


def engines_for(bundle: Bundle | str | os.PathLike[str]) -> list[str]:
    """Every engine name this bundle can run on this machine, for `load_engine`.

    "onnxruntime" when it is installed, "numpy" when the numpy engine supports every op of the graph, and
    "tflite-<variant>" for each TFLite variant the bundle carries when a TFLite interpreter is installed.
    """
    if not hasattr(bundle, "manifest"):
        from edge_ser.bundle import load_bundle

        bundle = load_bundle(bundle)
    from edge_ser.engines.numpy_engine import SUPPORTED_OPS
    from edge_ser.engines.tflite import bundle_variants

    out = []
    if _import_error("onnxruntime") is None:
        out.append("onnxruntime")
    if all(
        n.get("op") in SUPPORTED_OPS and n.get("domain", "") in ("", "ai.onnx") for n in bundle.graph["nodes"]
    ):
        out.append("numpy")
    variants = bundle_variants(bundle)
    if variants and _import_error("tflite") is None:
        out += [f"tflite-{v}" for v in variants]
    return out


def normalize_providers(providers: Sequence[str] | None) -> tuple[str, ...] | None:
    """Canonical provider names (short names accepted), duplicates dropped; ConfigError for unknown ones."""
    if providers is None:
        return None
    if isinstance(providers, str):
        providers = [providers]
    out: list[str] = []
    for p in providers:
        canon = _PROVIDER_ALIASES.get(str(p).lower(), p)
        if canon not in PROVIDERS:
            raise ConfigError(
                f"provider {p!r} is not supported; choose from {list(PROVIDERS)} (or cpu, cuda, tensorrt)"
            )
        if canon not in out:
            out.append(canon)
    return tuple(out)


class InputAdapter:
    """Turns what `predict` is given into the graph's named float32 inputs, checking shapes against the model.

    Applies the manifest's normalisation when it is not part of the graph (`normalization.in_graph = false`).
    """

    def __init__(self, bundle: Bundle, names: Sequence[str], shapes: Sequence[Sequence[Any]]) -> None:
        self.source = bundle.source
        self.names = tuple(names)
        self.shapes = tuple(tuple(d if isinstance(d, int) else None for d in s) for s in shapes)
        norm = bundle.normalization
        self.norm = None
        self.norm_input = bundle.normalized_input
        if norm is not None and not norm["in_graph"]:
            self.norm = (
                np.asarray(norm["mean"], dtype=np.float32),
                (1.0 / np.asarray(norm["std"], dtype=np.float64)).astype(np.float32),
            )

    def __call__(self, x: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Named float32 inputs, each with a batch axis (added when one sample was given)."""
        if isinstance(x, Mapping):
            missing = [n for n in self.names if n not in x]
            if missing:
                raise ConfigError(f"predict: input(s) {missing} missing; the model takes {list(self.names)}")
            given = {n: x[n] for n in self.names}
        else:
            if len(self.names) != 1:
                raise ConfigError(
                    f"predict: the model takes {len(self.names)} inputs {list(self.names)}; pass a dict"
                )
            given = {self.names[0]: x}
        out, added = {}, set()
        for (name, arr), shape in zip(given.items(), self.shapes):
            a = np.asarray(arr)
            if a.dtype.kind not in "fiu":
                raise ConfigError(f"predict: input {name!r} must be numeric, got dtype {a.dtype}")
            a = np.ascontiguousarray(a, dtype=np.float32)
            if a.ndim == len(shape) - 1:
                a = a[None]
                added.add(True)
            else:
                added.add(False)
            if a.ndim != len(shape) or any(d is not None and d != s for d, s in zip(shape[1:], a.shape[1:])):
                want = ["n", *("?" if d is None else d for d in shape[1:])]
                raise ConfigError(
                    f"predict: input {name!r} has shape {list(a.shape)}, the model takes {want}"
                )
            if name == self.norm_input and self.norm is not None:
                a = (a - self.norm[0]) * self.norm[1]
            out[name] = a
        if len(added) > 1:
            raise ConfigError("predict: give every input with a batch axis, or none of them")
        return out


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Probabilities from logits along `axis` (max-subtracted, so large logits do not overflow)."""
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def finish_logits(y: Any, source: str, num_classes: int) -> np.ndarray:
    """The first output as float32 [n, classes], checked."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 1:
        y = y[None]
    if y.ndim != 2 or y.shape[1] != num_classes:
        raise BundleError(
            f"bundle {source}: the model returned shape {list(y.shape)}, expected [n, {num_classes}]"
        )
    return y


__all__ = [
    "ENGINES",
    "PROVIDERS",
    "Engine",
    "available_engines",
    "engines_for",
    "load_engine",
    "normalize_providers",
    "softmax",
]
