"""The TFLite engine: one of a bundle's TFLite variants (fp32, fp16, int8) on a TFLite interpreter.

    engine = load_engine("out/bundle", "tflite-int8", threads=2)
    logits = engine.predict(features)          # raw float32 [n, 180] -> float32 [n, classes]

The interpreter class comes from `ai_edge_litert.interpreter`, else `tflite_runtime.interpreter`, else
`tensorflow.lite` (imported inside `import_interpreter`, never at module top); `describe()` says which.

The variants take the standardised feature vector. Unless the manifest's `tflite.normalization_in_graph` is
true, `predict` computes (x - mean) / std in float32 with the manifest's `normalization.mean` / `.std` (a
bundle without a `normalization` block is fed as given, as the onnxruntime engine does). An int8 model's input
is then quantized, q = clip(round(x / scale) + zero_point, -128, 127), and its output dequantized,
(q - zero_point) * scale. Input and output index, dtype, shape and quantization are read from the interpreter
(the model is the authority) and checked against the manifest's `tflite.variants[variant]`: any disagreement
is a BundleError naming the bundle, the variant and what differs.

Batches: the converter's models declare batch 1 (shape [1, d], usually with -1 in the shape signature). A
batch of n rows resizes the input to [n, d] (`resize_tensor_input` + `allocate_tensors`, once per new batch
size) and runs one invoke. Measured against one invoke per row with ai-edge-litert 2.3 on a 2-core x86-64,
interpreter only, the laq_mlp shape 180-512-128-64-7:
    n=1:  fp32 6.2 us, int8 2.5 us (threads=1), the same either way (no resize);
    n=64: fp32 103 us resized vs 419 us looping, int8 31 vs 172 us (threads=1); threads=2: fp32 56 vs 333 us,
          int8 24 vs 448 us;
    alternating n=64 and n=1 (a resize before every call): fp32 118 us per pair vs 417 us looping 65 rows,
          int8 38 vs 158 us; a resize + allocate_tensors alone costs ~2 us.
(A 180-32-7 MLP: n=64 2.6-5.7 us resized vs 90-103 us looping.) So resizing it is. Only a model with a fixed
batch of 1 that refuses the resize is run one invoke per row (`describe()` says so); a model with a dynamic
batch that refuses it is a BundleError.

An engine object is not thread-safe (nor is the interpreter); use one per thread.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_ser.engines import PROVIDERS, finish_logits
from edge_ser.engines import TFLITE_VARIANTS as VARIANTS
from edge_ser.errors import BundleError, ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from edge_ser.bundle import Bundle

DEFAULT_ORDER = ("int8", "fp16", "fp32")
"""Which variant "tflite" means: the first of these the bundle has (smallest and fastest first)."""
INTERPRETERS = (
    ("ai_edge_litert.interpreter", "Interpreter"),
    ("tflite_runtime.interpreter", "Interpreter"),
    ("tensorflow", "lite.Interpreter"),
)
"""Where the interpreter class is looked for, in order: (module, attribute path)."""
HINT = "pip install 'edge-ser[tflite]' (ai-edge-litert)"

_QMIN, _QMAX = -128, 127


def import_interpreter() -> tuple[Any, str]:
    """The TFLite Interpreter class and where it came from, e.g. "ai_edge_litert.interpreter.Interpreter".

    Raises:
        MissingDependencyError: none of INTERPRETERS imports (says what to install, and why each failed).
    """
    errors = []
    for module, attr in INTERPRETERS:
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except ImportError as e:
            errors.append(f"{module}: {e or 'cannot be imported'}")
        except Exception as e:  # noqa: BLE001 - a broken wheel (wrong CPU/ABI) fails with OSError and friends
            errors.append(f"{module}: {type(e).__name__}: {e}")
        else:
            return obj, f"{module}.{attr}"
    raise MissingDependencyError(
        "ai-edge-litert", "tflite", "the tflite engine; no TFLite interpreter: " + "; ".join(errors)
    )


def bundle_variants(bundle: Bundle) -> tuple[str, ...]:
    """The TFLite variants the bundle carries, in VARIANTS order (empty without a `tflite` block)."""
    block = bundle.manifest.get("tflite") or {}
    have = block.get("variants") or {}
    return tuple(v for v in VARIANTS if v in have)


def pick_variant(bundle: Bundle, variant: str | None = None) -> str:
    """`variant`, checked against the bundle; None: int8 if the bundle has it, else fp16, else fp32.

    Raises:
        ConfigError: `variant` is not one of VARIANTS.
        BundleError: the bundle has no TFLite variants, or not this one (the message lists what it has).
    """
    if variant is not None and variant not in VARIANTS:
        raise ConfigError(f"TFLite variant {variant!r} is not known; choose from {list(VARIANTS)}")
    have = bundle_variants(bundle)
    if not have:
        raise BundleError(
            f"bundle {bundle.source}: has no TFLite model (no 'tflite' block in manifest.json; files "
            f"{sorted(bundle.files)}): run it on onnxruntime or numpy, or re-export it with TFLite variants"
        )
    if variant is None:
        return next(v for v in DEFAULT_ORDER if v in have)
    if variant not in have:
        raise BundleError(
            f"bundle {bundle.source}: has no TFLite variant {variant!r}; it has {list(have)} "
            f"(engines {['tflite-' + v for v in have]})"
        )
    return variant


class TFLiteEngine:
    """A TFLite interpreter over one variant of a bundle; `predict(x)` -> float32 logits [n, classes]."""

    def __init__(
        self,
        bundle: Bundle,
        variant: str | None = None,
        *,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
    ) -> None:
        """Load the variant (None: int8 if present, else fp16, else fp32) with `threads` interpreter threads.

        `providers` are onnxruntime's; TFLite runs on the CPU here, so any other provider asked for is
        reported as missing (`missing_providers`, `describe()`), as the numpy engine does.

        Raises:
            MissingDependencyError: no TFLite interpreter can be imported.
            BundleError: no such variant, the interpreter cannot load the file, or the model's inputs and
                outputs disagree with the manifest or the bundle's labels and feature size.
        """
        self.bundle = bundle
        self.variant = pick_variant(bundle, variant)
        self.name = f"tflite-{self.variant}"
        self.threads = threads
        self.providers = (PROVIDERS[0],)
        self.missing_providers = tuple(p for p in (providers or ()) if p != PROVIDERS[0])
        interpreter_cls, self.interpreter_module = import_interpreter()
        block = bundle.manifest["tflite"]
        spec = block["variants"][self.variant]
        self.file = str(spec["file"])
        self._where = f"bundle {bundle.source}: TFLite variant {self.variant!r} ({self.file})"
        try:
            self.interpreter = interpreter_cls(model_content=bundle.read(self.file), num_threads=threads)
            self.interpreter.allocate_tensors()
        except BundleError:
            raise
        except Exception as e:  # the interpreters raise ValueError / RuntimeError on a bad flatbuffer
            raise BundleError(
                f"{self._where}: the TFLite interpreter cannot load it: {type(e).__name__}: {e}"
            ) from e

        # STYLE 5: indices, dtypes, shapes and quantization come from the model, the manifest is checked.
        ins = self.interpreter.get_input_details()
        outs = self.interpreter.get_output_details()
        if len(ins) != 1 or not outs:
            raise BundleError(
                f"{self._where}: the model has {len(ins)} inputs and {len(outs)} outputs; "
                "expected one input (the feature vector) and at least one output (the logits)"
            )
        self._dim = int(bundle.manifest["model"]["inputs"][0]["shape"][-1])
        self._num_classes = bundle.num_classes
        self._in = self._io(ins[0], spec["input"], "input", self._dim)
        self._out = self._io(outs[0], spec["output"], "output", self._num_classes)
        self._batch = int(ins[0]["shape"][0])  # the batch the tensors are allocated for now
        self._loop = False  # True: the model refused a resize and has batch 1: one invoke per row
        self.input_name = bundle.input_name

        norm = bundle.normalization
        self.normalization_in_graph = bool(block["normalization_in_graph"])
        self._norm = None
        if norm is not None and not self.normalization_in_graph:
            self._norm = (
                np.asarray(norm["mean"], dtype=np.float32),
                np.asarray(norm["std"], dtype=np.float32),
            )

    def _io(self, d: Mapping[str, Any], want: Mapping[str, Any], what: str, last: int) -> dict[str, Any]:
        """One tensor's index, dtype, shape and quantization from the interpreter, checked against `want`."""
        shape = [int(s) for s in d["shape"]]
        sig = [int(s) for s in d.get("shape_signature", shape)]
        dtype = np.dtype(d["dtype"])
        scale, zero_point = (float(d["quantization"][0]), int(d["quantization"][1]))
        problems = []
        if len(shape) != 2 or shape[-1] != last or sig[-1] != last or not (sig[0] == -1 or sig[0] >= 1):
            role = "feature vector" if what == "input" else "logits, one per label"
            problems.append(f"shape {sig} (-1: any), expected [batch, {last}] ({role})")
        if dtype.name != want["dtype"]:
            problems.append(f"dtype {dtype.name}, the manifest says {want['dtype']}")
        elif dtype == np.int8:
            n_scales = len(d.get("quantization_parameters", {}).get("scales", [scale]))
            if scale <= 0 or n_scales != 1:
                problems.append(f"int8 without one per-tensor scale (scale {scale}, {n_scales} scales)")
            elif not np.isclose(scale, want["scale"], rtol=1e-6, atol=0):
                problems.append(f"scale {scale!r}, the manifest says {want['scale']!r}")
            if zero_point != want["zero_point"]:
                problems.append(f"zero_point {zero_point}, the manifest says {want['zero_point']}")
        elif dtype != np.float32:
            problems.append(f"dtype {dtype.name} is not supported (float32 or int8)")
        if problems:
            raise BundleError(
                f"{self._where}: the model's {what} {d.get('name', '')!r} has " + "; ".join(problems)
            )
        return {
            "index": int(d["index"]),
            "dtype": dtype,
            "shape": shape,
            "signature": sig,
            "scale": np.float32(scale),
            "zero_point": zero_point,
        }

    # ----------------------------------------------------------------------------------------------------------

    def predict(self, x: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
        """Raw features float32 [n, d] (or one sample [d], or {input name: array}) -> logits [n, classes]."""
        a = self._prepare(x)
        n = a.shape[0]
        if n == 0:
            return np.zeros((0, self._num_classes), dtype=np.float32)
        if n != self._batch and not self._loop:
            self._resize(n)
        if self._loop and n != self._batch:
            y = np.concatenate([self._invoke(a[i : i + 1]) for i in range(n)])
        else:
            y = self._invoke(a)
        if self._out["dtype"] == np.int8:
            y = (y.astype(np.float32) - np.float32(self._out["zero_point"])) * self._out["scale"]
        return finish_logits(y, self.bundle.source, self._num_classes)

    def _prepare(self, x: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
        """Standardised (and for int8, quantized) input rows [n, d] of the model's input dtype."""
        if isinstance(x, Mapping):
            if self.input_name not in x:
                raise ConfigError(
                    f"predict: input {self.input_name!r} missing; the model takes [{self.input_name!r}]"
                )
            x = x[self.input_name]
        a = np.asarray(x)
        if a.dtype.kind not in "fiu":
            raise ConfigError(f"predict: input {self.input_name!r} must be numeric, got dtype {a.dtype}")
        a = np.asarray(a, dtype=np.float32)
        if a.ndim == 1:
            a = a[None]
        if a.ndim != 2 or a.shape[1] != self._dim:
            raise ConfigError(
                f"predict: input {self.input_name!r} has shape {list(a.shape)}, "
                f"the model takes ['n', {self._dim}]"
            )
        if self._norm is not None:
            a = (a - self._norm[0]) / self._norm[1]
        if self._in["dtype"] == np.int8:
            if not np.isfinite(a).all():
                raise ConfigError(
                    f"predict: input {self.input_name!r} has NaN or inf values: cannot quantize to int8"
                )
            q = np.rint(a / self._in["scale"])
            q += np.float32(self._in["zero_point"])
            np.clip(q, _QMIN, _QMAX, out=q)
            a = q.astype(np.int8)
        return np.ascontiguousarray(a)

    def _resize(self, n: int) -> None:
        """Re-allocate the tensors for n rows (or switch to one invoke per row: see the module doc)."""
        it, idx = self.interpreter, self._in["index"]
        try:
            it.resize_tensor_input(idx, [n, self._dim], strict=False)
            it.allocate_tensors()
            got = [int(s) for s in it.get_output_details()[0]["shape"]]
            ok = got == [n, self._num_classes]
        except Exception as e:  # noqa: BLE001 - the interpreters raise RuntimeError / ValueError
            ok, got = False, f"{type(e).__name__}: {e}"
        if ok:
            self._batch = n
            return
        self._batch = -1  # not known: the next call resizes again
        if self._in["signature"][0] != 1:
            raise BundleError(
                f"{self._where}: cannot run a batch of {n} rows (after resizing the input: {got})"
            )
        # a fixed batch of 1 that does not resize: (back) to [1, d], one invoke per row
        try:
            if [int(s) for s in it.get_input_details()[0]["shape"]] != [1, self._dim]:
                it.resize_tensor_input(idx, [1, self._dim], strict=False)
            it.allocate_tensors()
        except Exception as e:
            raise BundleError(f"{self._where}: cannot resize the input to its own batch of 1: {e}") from e
        self._batch, self._loop = 1, True

    def _invoke(self, a: np.ndarray) -> np.ndarray:
        it = self.interpreter
        it.set_tensor(self._in["index"], a)
        it.invoke()
        return it.get_tensor(self._out["index"])

    def describe(self) -> str:
        q, b = self._in, self.bundle
        threads = self.threads if self.threads is not None else "default"
        s = (
            f"tflite engine: {self.variant} variant ({self.file}) of {b.name} ({b.source}); "
            f"interpreter {self.interpreter_module}; threads {threads}; input {q['dtype'].name} {q['signature']}"
        )
        if q["dtype"] == np.int8:
            s += f" (scale {float(q['scale']):.4g}, zero point {q['zero_point']})"
        if self.normalization_in_graph:
            s += "; normalisation in the graph"
        elif self._norm is not None:
            s += "; normalisation by the engine"
        s += "; batches: " + (
            "one invoke per row (fixed batch 1)" if self._loop else "input resized to n rows"
        )
        if self.missing_providers:
            s += f"; requested but not available here: {list(self.missing_providers)} (running on CPU)"
        return s

    def __repr__(self) -> str:
        return f"<{self.describe()}>"
