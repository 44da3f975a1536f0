"""The onnxruntime engine: the bundle's model.onnx, with its weights supplied from weights.esq at load.

model.onnx carries no weight bytes: every float initializer is declared as external data in weights.esq.
The weights are dequantized once and handed to onnxruntime with `SessionOptions.add_external_initializers`,
so onnxruntime never opens a file (verified with onnxruntime 1.32). onnxruntime is imported here only,
inside the engine's constructor. Execution providers are asked for by name, in order ("tensorrt", "cuda"); one
that this onnxruntime does not have (a CPU-only wheel, missing CUDA libraries) is left out with a
`ProviderWarning` naming it and what runs instead, and CPU is always the last resort (docs/accelerators.md).
When a GPU provider is in use and the bundle carries an fp16 copy of its graph (manifest `onnx_fp16`), that
copy runs (fp16 weights and activations, float32 inputs and outputs); on the CPU, always the fp32 graph.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_ser.bundle.manifest import MODEL_NAME
from edge_ser.engines.base import PROVIDERS, InputAdapter, finish_logits
from edge_ser.errors import BundleError, MissingDependencyError, ProviderWarning, install_hint

if TYPE_CHECKING:
    from edge_ser.bundle import Bundle

NAME = "onnxruntime"
HINT = install_hint("onnxruntime", "device")
VARIANTS: tuple[str, ...] = ()


def unavailable() -> str | None:
    """Why onnxruntime cannot be imported here, or None when it can."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        return str(e) or "cannot import onnxruntime"
    except Exception as e:  # noqa: BLE001 - a broken wheel (wrong CPU/ABI) fails with OSError and friends
        return f"{type(e).__name__}: {e}"
    return None


def names_for(bundle: Bundle) -> tuple[str, ...]:
    """onnxruntime runs every bundle's model.onnx."""
    return (NAME,)


def create(
    bundle: Bundle, variant: str | None = None, *, threads: int | None, providers: Sequence[str] | None
) -> OnnxRuntimeEngine:
    err = unavailable()
    if err is not None:
        raise MissingDependencyError("onnxruntime", "device", f"the onnxruntime engine; {err}")
    return OnnxRuntimeEngine(bundle, threads=threads, providers=providers)


class OnnxRuntimeEngine:
    """onnxruntime InferenceSession over a bundle; `predict(x)` -> float32 logits [n, classes]."""

    name = "onnxruntime"

    def __init__(
        self, bundle: Bundle, *, threads: int | None = None, providers: Sequence[str] | None = None
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise MissingDependencyError("onnxruntime", "device", "the onnxruntime engine") from e
        self.bundle = bundle
        self.threads = threads
        requested = list(providers) if providers else [PROVIDERS[0]]
        available = set(ort.get_available_providers())
        use = [p for p in requested if p in available]
        if PROVIDERS[0] not in use:
            use.append(PROVIDERS[0])  # CPU is always there, and always the last resort
        self.requested_providers = tuple(requested)

        fp16 = fp16_file(bundle, use)
        self.model_file = MODEL_NAME
        if fp16:
            # a GPU provider is there: the bundle's fp16 copy (weights inline); back to fp32 if it did not load
            self.session = self._session(ort, threads, use, fp16)
            if self.session.get_providers()[0] != PROVIDERS[0]:
                self.model_file = fp16
        if self.model_file == MODEL_NAME:
            self.session = self._session(ort, threads, use, None)
        self.providers = tuple(self.session.get_providers())
        self.missing_providers = tuple(p for p in requested if p not in self.providers)
        if self.missing_providers:
            warnings.warn(
                f"onnxruntime: {list(self.missing_providers)} requested but not in use (this onnxruntime "
                f"offers {sorted(available)}; a GPU provider whose CUDA / TensorRT libraries do not load is "
                f"dropped too); running on {list(self.providers)}",
                ProviderWarning,
                stacklevel=3,
            )
        # STYLE 5: I/O names come from the model itself (verified against the manifest at load).
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        norm = bundle.normalization
        self.adapt = InputAdapter(bundle, normalize=norm is not None and not norm["in_graph"])
        self._num_classes = bundle.num_classes

    def _session(self, ort: Any, threads: int | None, use: list[str], fp16: str | None) -> Any:
        """An InferenceSession of model.onnx with the packed weights as external initializers, or of the
        self-contained fp16 file `fp16`."""
        so = ort.SessionOptions()
        if threads is not None:
            so.intra_op_num_threads = int(threads)
            so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3  # errors only: a missing CUDA library is reported by us (ProviderWarning)
        bundle = self.bundle
        if fp16 is None:
            weights = bundle.dequantized()
            names = list(bundle.graph["initializers"])
            # The OrtValues wrap the arrays without copying; keep both referenced for the session's lifetime.
            self._weights = weights
            self.ort_values = [ort.OrtValue.ortvalue_from_numpy(weights[n]) for n in names]
            if names:
                so.add_external_initializers(names, self.ort_values)
        try:
            return ort.InferenceSession(
                bundle.read(fp16) if fp16 else bundle.onnx_bytes(), sess_options=so, providers=use
            )
        except Exception as e:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            raise BundleError(
                f"bundle {bundle.source}: {fp16 or MODEL_NAME}: onnxruntime cannot load it: {type(e).__name__}: {e}"
            ) from e

    def predict(self, x: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
        """float32 [n, d] (or one sample [d], or a dict for several inputs) -> float32 logits [n, classes]."""
        feeds = self.adapt(x)
        y = self.session.run(self.output_names[:1], feeds)[0]
        return finish_logits(y, self.bundle.source, self._num_classes)

    def describe(self) -> str:
        s = f"onnxruntime engine: {self.bundle.name} ({self.bundle.source}); providers {list(self.providers)}"
        if self.model_file != MODEL_NAME:
            s += f"; {self.model_file} (fp16 weights and activations)"
        s += f"; threads {self.threads if self.threads is not None else 'default'}"
        if self.missing_providers:
            s += f"; requested but not available here: {list(self.missing_providers)} (running on CPU)"
        return s

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


def fp16_file(bundle: Bundle, use: Sequence[str]) -> str | None:
    """The bundle's fp16 graph file when it carries one and a GPU provider (CUDA, TensorRT) is among `use`."""
    fp16 = (bundle.manifest.get("onnx_fp16") or {}).get("file")
    return fp16 if fp16 and any(p != PROVIDERS[0] for p in use) else None


def session_info(engine: OnnxRuntimeEngine) -> dict[str, Any]:
    """Inputs and outputs as onnxruntime sees them (name, shape, type), for reports."""
    s = engine.session
    return {
        "inputs": [{"name": i.name, "shape": list(i.shape), "type": i.type} for i in s.get_inputs()],
        "outputs": [{"name": o.name, "shape": list(o.shape), "type": o.type} for o in s.get_outputs()],
        "providers": list(engine.providers),
    }
