"""What every engine shares: the `Engine` protocol, the input adapter, providers, softmax and the logit check.

An engine module (onnxrt, numpy_engine, tflite) builds on these and registers itself with one line in
`edge_ser.engines.REGISTRY`; nothing here imports a runtime, so importing it costs nothing but numpy.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from edge_ser.errors import BundleError, ConfigError, InferenceError, ProviderWarning

if TYPE_CHECKING:
    from edge_ser.bundle import Bundle

PROVIDERS = ("CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider")
"""onnxruntime execution providers an engine may be asked for; "cpu", "cuda" and "tensorrt" are accepted too."""
CPU = PROVIDERS[0]
OOD_Z = 20.0
"""A standardised input value beyond +-OOD_Z training standard deviations is out of the range the model saw:
its row is flagged (`InputAdapter.last_ood`) and the value clamped to the bound. The shipped bundles' own
training clips reach |z| 19 at most (heavy-tailed mel power means), log-Mel patches 3; a full-band recording
through a front end trained on band-limited audio reaches thousands."""
_PROVIDER_ALIASES = {"cpu": PROVIDERS[0], "cuda": PROVIDERS[1], "tensorrt": PROVIDERS[2], "trt": PROVIDERS[2]}


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


def cpu_only(
    providers: Sequence[str] | None, engine: str = "this"
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(providers in use, requested but missing) for an engine that runs on the CPU only; a `ProviderWarning`
    names the missing ones."""
    missing = tuple(p for p in (providers or ()) if p != CPU)
    if missing:
        warnings.warn(
            f"the {engine} engine runs on the CPU only: {list(missing)} requested, running on [{CPU!r}] "
            "(the onnxruntime engine is the one that uses CUDA / TensorRT)",
            ProviderWarning,
            stacklevel=4,
        )
    return (CPU,), missing


class InputAdapter:
    """Turns what `predict` is given into the model's named float32 inputs, each with a batch axis, checking
    shapes against the manifest's `model.inputs`, and standardising the normalised input when asked to.

    `normalize`: apply the manifest's `normalization` here, as (x - mean) / std in float32. An engine asks for
    it when its model does not standardise inside: onnxruntime and numpy when `normalization.in_graph` is
    false, TFLite when `tflite.normalization_in_graph` is false.
    """

    def __init__(self, bundle: Bundle, *, normalize: bool) -> None:
        inputs = bundle.manifest["model"]["inputs"]
        self.last_ood = np.zeros(0, dtype=bool)
        """Per row of the last call: was any value of the normalised input beyond +-OOD_Z (then clamped), or
        did an int8 engine have to saturate it (`mark`)."""
        self.names = tuple(io_["name"] for io_ in inputs)
        self.shapes = tuple(tuple(d if isinstance(d, int) else None for d in io_["shape"]) for io_ in inputs)
        """Per input its shape, batch axis first, None where any size goes."""
        norm = bundle.manifest.get("normalization")
        self.norm_input = bundle.normalized_input if normalize and norm is not None else None
        self.norm = None
        self.range_input = bundle.normalized_input if norm is not None else None
        if norm is not None:
            mean = np.asarray(norm["mean"], dtype=np.float32)
            std = np.asarray(norm["std"], dtype=np.float32)
            self.bounds = (mean - np.float32(OOD_Z) * std, mean + np.float32(OOD_Z) * std)
            if self.norm_input is not None:
                self.norm = (mean, std)

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
        out, added, ood = {}, set(), None
        for (name, arr), shape in zip(given.items(), self.shapes, strict=True):
            a = np.asarray(arr)
            if a.dtype.kind not in "fiu":
                raise ConfigError(f"predict: input {name!r} must be numeric, got dtype {a.dtype}")
            a = np.ascontiguousarray(a, dtype=np.float32)
            one = a.ndim == len(shape) - 1
            if one:
                a = a[None]
            added.add(one)
            if a.ndim != len(shape) or any(
                d is not None and d != s for d, s in zip(shape[1:], a.shape[1:], strict=True)
            ):
                want = ["n", *("?" if d is None else d for d in shape[1:])]
                raise ConfigError(
                    f"predict: input {name!r} has shape {list(a.shape)}, the model takes {want}"
                )
            check_finite(a, f"input {name!r}")
            if name == self.range_input:
                a, ood = _clamp(a, *self.bounds)
            if name == self.norm_input:
                a = (a - self.norm[0]) / self.norm[1]
            out[name] = a
        if len(added) > 1:
            raise ConfigError("predict: give every input with a batch axis, or none of them")
        rows = {k: a.shape[0] for k, a in out.items()}
        if len(set(rows.values())) > 1:
            raise ConfigError(f"predict: the inputs have different numbers of rows {rows}")
        n = next(iter(rows.values()))
        self.last_ood = ood if ood is not None else np.zeros(n, dtype=bool)
        return out

    def mark(self, rows: np.ndarray) -> None:
        """Flag rows of the last call as out of range (an int8 engine saturated them)."""
        self.last_ood = self.last_ood | np.asarray(rows, dtype=bool)


def clamp_to_training_range(bundle: Bundle, x: np.ndarray) -> np.ndarray:
    """`x` (raw rows of the bundle's normalised input) clamped as every engine clamps it (+-OOD_Z training
    standard deviations): what a reference model must be given to match an engine on out-of-range rows. A bundle
    that records no normalisation has no training range and no engine clamps its input: `x` is returned as is.
    Of a model with several inputs (av_cnn: faces and audio) only the normalised one is given and clamped."""
    name = bundle.normalized_input
    if name is None:
        return x
    adapter = InputAdapter(bundle, normalize=False)
    i = adapter.names.index(name)
    # that input alone: a model's other inputs (av_cnn's faces) have no training range and are not given here
    adapter.names, adapter.shapes = (name,), (adapter.shapes[i],)
    return adapter({name: x})[name]


def _clamp(a: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`a` clamped to [lo, hi] (broadcast on the last axes), and per row whether anything was clamped."""
    outside = (a < lo) | (a > hi)
    if a.size == 0:  # an empty batch (or a zero-size axis): nothing to clamp
        return a, np.zeros(a.shape[0] if a.ndim else 0, dtype=bool)
    rows = outside.reshape(a.shape[0], -1).any(axis=1) if a.ndim > 1 else outside
    if rows.any():
        a = np.clip(a, lo, hi).astype(np.float32, copy=False)
    return a, rows


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Probabilities from logits along `axis` (max-subtracted, so large logits do not overflow)."""
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def check_finite(a: np.ndarray, what: str) -> None:
    """InferenceError when `a` holds NaN or infinity (named `what`, with how many rows are affected)."""
    if a.size and not np.isfinite(a).all():
        bad = ~np.isfinite(a.reshape(a.shape[0], -1) if a.ndim > 1 else a[:, None])
        rows = int(bad.any(axis=1).sum())
        raise InferenceError(
            f"{what}: NaN or infinite values in {rows} of {a.shape[0]} row(s); no prediction is made "
            "(damaged or out-of-range audio, or weights that overflow)"
        )


def finish_logits(y: Any, source: str, num_classes: int) -> np.ndarray:
    """The first output as float32 [n, classes], checked: the right shape, and finite (InferenceError), so a
    NaN never becomes a probability."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 1:
        y = y[None]
    if y.ndim != 2 or y.shape[1] != num_classes:
        raise BundleError(
            f"bundle {source}: the model returned shape {list(y.shape)}, expected [n, {num_classes}]"
        )
    check_finite(y, f"bundle {source}: the model's logits")
    return y


__all__ = [
    "CPU",
    "OOD_Z",
    "PROVIDERS",
    "Engine",
    "InputAdapter",
    "check_finite",
    "clamp_to_training_range",
    "cpu_only",
    "finish_logits",
    "normalize_providers",
    "softmax",
]
