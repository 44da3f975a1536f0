"""The TFLite engine: one of a bundle's TFLite variants (fp32, fp16, int8) on a TFLite interpreter.

    engine = load_engine("out/bundle", "tflite-int8", threads=2)
    logits = engine.predict(features)          # raw float32 [n, 180] -> float32 [n, classes]
    logits = av_engine.predict({"faces": faces, "audio": mfcc})   # several inputs: a dict, by name

The interpreter class comes from `ai_edge_litert.interpreter`, else `tflite_runtime.interpreter`, else
`tensorflow.lite` (imported inside `import_interpreter`, never at module top); `describe()` says which.

Inputs are matched to the manifest's `model.inputs` by NAME, never by position: a TFLite input tensor named
`<name>` (the host exporter renames them so), or `serving_default_<name>:0` (what tensorflow's converter calls
a signature input, e.g. in a Keras-converted model). Each input's index, dtype, shape and quantization are
read from the interpreter (the model is the authority) and checked against the manifest's
`tflite.variants[variant].inputs[<name>]`, the output against `.output`: any disagreement is a BundleError
naming the bundle, the variant and what differs.

Normalisation: unless `tflite.normalization_in_graph` is true, `predict` standardises ONE input, the one
named by `normalization.input` (default: the first; laq_mlp "features", av_cnn "audio"), as
(x - mean) / std in float32 with the manifest's `normalization.mean` / `.std`; the other inputs (av_cnn's
"faces", already in [0, 1]) are fed as given, and so is everything when the bundle has no `normalization`
block (as the onnxruntime engine does). An int8 input is then quantized with its own scale and zero point,
q = clip(round(x / scale) + zero_point, -128, 127), and the int8 output dequantized, (q - zero_point) * scale.
A phased int8 tensor (manifest `"phases": k`, `edge_ser.bundle.manifest.phase_offsets`) is k such copies side
by side on the last axis, copy p on the grid shifted by o_p steps: the input's are quantized as
round(x / scale - o_p) + zero_point, the output's dequantized and averaged (docs/tflite.md, "phased int8").

Batches: the converter's models declare batch 1 (shape [1, ...], usually with -1 in the shape signature). A
batch of n rows resizes every input to [n, ...] (`resize_tensor_input` + `allocate_tensors`, once per new
batch size) and runs one invoke: several times faster than one invoke per row (measured in docs/tflite.md).
Only a model whose inputs all have a fixed batch of 1 and that refuses the resize is run one invoke per row
(`describe()` says so); a model with a dynamic batch that refuses it is a BundleError.

An engine object is not thread-safe (nor is the interpreter); use one per thread.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_ser.bundle.manifest import TFLITE_VARIANTS, phase_offsets, tflite_io_entry
from edge_ser.engines.base import InputAdapter, cpu_only, finish_logits
from edge_ser.errors import BundleError, ConfigError, DelegateError, MissingDependencyError, install_hint
from edge_ser.native_log import native_stderr_held
from edge_ser.schema import tflite_variants

if TYPE_CHECKING:
    from edge_ser.bundle import Bundle

NAME = "tflite"
VARIANTS = TFLITE_VARIANTS
"""TFLite variants a bundle may carry (manifest `tflite.variants`): float32, float16 weights, full int8."""
DEFAULT_ORDER = ("int8", "fp16", "fp32")
"""Which variant "tflite" means: the first of these the bundle has (smallest and fastest first)."""
INTERPRETERS = (
    ("ai_edge_litert.interpreter", "Interpreter"),
    ("tflite_runtime.interpreter", "Interpreter"),
    ("tensorflow", "lite.Interpreter"),
)
"""Where the interpreter class is looked for, in order: (module, attribute path)."""
HINT = install_hint("ai-edge-litert", "tflite")

_QMIN, _QMAX = -128, 127
SATURATED_SHARE = 0.01
"""An int8 input row is flagged out of range when more than this share of its values had to saturate: the bound
docs/tflite.md judges captures by. Any one value flagged it until 2026-12-06, which the calibration's own
clipping (the 0.99999 quantile) makes common in a 16,384-value log-Mel patch: tiny_transformer_emodb flagged 35
of 60 of its own training clips on int8, none on onnxruntime."""


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


DELEGATE_LOADERS = (
    ("ai_edge_litert.interpreter", "load_delegate"),
    ("tflite_runtime.interpreter", "load_delegate"),
    ("tensorflow", "lite.experimental.load_delegate"),
)
"""Where `load_delegate` is looked for, in order (the same packages as INTERPRETERS)."""


def _construct(loader: Any, path: str, options: dict[str, str]) -> Any:
    """`loader(path, options)`, or why it failed (a str). The loaders' Delegate fails a second time in its
    `__del__` when its constructor failed (an 'Exception ignored in Delegate.__del__' traceback after the clear
    error): the half-made object is freed here, with that second report silenced."""
    import gc
    import sys

    hook = sys.unraisablehook
    sys.unraisablehook = lambda _: None
    try:
        try:
            return loader(path, options)
        except Exception as e:  # noqa: BLE001 - ValueError / RuntimeError / OSError from dlopen
            why = f"{type(e).__name__}: {e}"
        gc.collect()  # the traceback that held the half-made delegate is gone: free it while silenced
        return why
    finally:
        sys.unraisablehook = hook


def load_delegate(path: str | Path, options: Mapping[str, str] | None = None) -> Any:
    """A TFLite delegate from its shared library (`--delegate PATH`: e.g. libedgetpu.so.1 for a Coral,
    libhexagon_interface.so, an external XNNPACK / GPU delegate build).

    Raises:
        DelegateError: the file does not exist, or no loader here can load it (the path and the reason).
    """
    p = Path(path)
    if p.is_dir():  # it said "no such file" of a folder that is there
        raise DelegateError(str(path), "is a folder; give the delegate's shared library (.so) in it")
    if not p.is_file():
        raise DelegateError(
            str(path),
            "no such file; give the delegate's shared library (.so), or leave --delegate out to run "
            "on the CPU (XNNPACK)",
        )
    p = p.resolve()  # dlopen searches the library path for a name without '/', not the working folder
    try:  # dlopen first: a file that is no library fails here, with the loader's own reason
        ctypes.CDLL(str(p))
    except OSError as e:
        raise DelegateError(str(path), f"is not a loadable shared library: {e}") from None
    errors = []
    for module, attr in DELEGATE_LOADERS:
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as e:  # noqa: BLE001 - not installed or a broken wheel: try the next one
            errors.append(f"{module}: {type(e).__name__}: {e}")
            continue
        failed = _construct(obj, str(p), dict(options or {}))
        if not isinstance(failed, str):
            return failed
        raise DelegateError(str(path), f"cannot be loaded by {module}: {failed}")
    raise DelegateError(str(path), "no TFLite runtime with load_delegate is installed: " + "; ".join(errors))


def unavailable() -> str | None:
    """Why no TFLite interpreter can be imported here, or None when one can."""
    try:
        import_interpreter()
    except MissingDependencyError as e:
        return str(e)
    return None


def names_for(bundle: Bundle) -> tuple[str, ...]:
    """ "tflite-<variant>" for each TFLite variant the bundle carries."""
    return tuple(f"{NAME}-{v}" for v in bundle_variants(bundle))


def create(
    bundle: Bundle,
    variant: str | None = None,
    *,
    threads: int | None,
    providers: Sequence[str] | None,
    delegate: str | Path | None = None,
) -> TFLiteEngine:
    # checks the variant against the bundle first (BundleError: installing a runtime would not help),
    # then imports an interpreter (MissingDependencyError), then loads the delegate (DelegateError)
    return TFLiteEngine(bundle, variant, threads=threads, providers=providers, delegate=delegate)


def bundle_variants(bundle: Bundle) -> tuple[str, ...]:
    """The TFLite variants the bundle carries, in VARIANTS order (empty without a `tflite` block)."""
    have = tflite_variants(bundle.manifest)
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


def int8_codes(
    a: np.ndarray, scale: np.float32, zero_point: int, offsets: np.ndarray | None = None
) -> np.ndarray:
    """float32 rows -> their int8 codes as float32, round(x / scale) + zero_point, not yet clipped to
    [-128, 127]; with `offsets` ([k, 1], `phase_offsets`) the k phased copies, copy p at round(x / scale - o_p) +
    zero_point, side by side on the last axis. The one quantizer of int8 inputs (the exporter's saturation
    count uses it too). A finite value whose x / scale overflows float32 gives an infinite code, which saturates
    like any other code out of range (NaN in, NaN out)."""
    with np.errstate(over="ignore"):
        if offsets is None:
            q = np.rint(a / scale)
        else:
            q = np.rint(a[..., None, :] / scale - offsets).reshape(*a.shape[:-1], len(offsets) * a.shape[-1])
    q += np.float32(zero_point)
    return q


@dataclass(frozen=True)
class _Tensor:
    """One model input or output as the interpreter has it, checked against the manifest."""

    name: str  # the manifest's name ("features", "faces", "audio"; "logits")
    index: int  # the interpreter's tensor index
    dtype: np.dtype  # float32 or int8
    signature: tuple[int, ...]  # shape signature, -1 = any (the batch)
    dims: tuple[int | None, ...]  # per-sample shape (the manifest's, None = any)
    scale: np.float32  # int8: real = (q - zero_point) * scale
    zero_point: int
    phases: int = 1  # int8: k phased copies side by side on the last axis (`phase_offsets`)

    @functools.cached_property
    def offsets(self) -> np.ndarray:
        """[phases, 1]: each copy's grid offset in steps (`phase_offsets`)."""
        return phase_offsets(self.phases)[:, None]

    def quantize(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """float32 rows -> (the int8 rows the model takes, per row whether more than SATURATED_SHARE of its values
        saturated; None: none did). Raises ConfigError for NaN / inf values; a finite value too large for
        x / scale in float32 saturates (it was refused as "NaN or inf", which it is not)."""
        q = int8_codes(a, self.scale, self.zero_point, self.offsets if self.phases > 1 else None)
        lo, hi = (float(q.min()), float(q.max())) if q.size else (0.0, 0.0)
        if not (math.isfinite(lo) and math.isfinite(hi)) and not np.isfinite(a).all():
            raise ConfigError(f"predict: input {self.name!r} has NaN or inf values: cannot quantize to int8")
        saturated = None
        if lo < _QMIN or hi > _QMAX:  # never silently: the caller flags the rows out of range
            saturated = ((q < _QMIN) | (q > _QMAX)).reshape(len(q), -1).mean(axis=1) > SATURATED_SHARE
            np.clip(q, _QMIN, _QMAX, out=q)
        return q.astype(np.int8), saturated

    def dequantize(self, y: np.ndarray) -> np.ndarray:
        """The int8 output rows -> float32 logits (the mean of the phased copies: their offsets sum to 0)."""
        k = self.phases
        if k > 1:
            y = y.reshape(len(y), k, -1).sum(axis=1, dtype=np.float32)
        else:
            y = y.astype(np.float32)
        y -= np.float32(k * self.zero_point)
        y *= np.float32(self.scale / k)
        return y

    @property
    def fixed_batch_1(self) -> bool:
        return self.signature[0] == 1

    def batch_shape(self, n: int, a: np.ndarray | None = None) -> list[int]:
        """[n, *dims], the per-sample dims from `a` (the rows as fed) where the manifest leaves them open; the
        last one times the phased copies."""
        dims = [d if d is not None else int(a.shape[1 + i]) for i, d in enumerate(self.dims)]
        if self.phases > 1 and self.dims[-1] is not None:
            dims[-1] *= self.phases
        return [n, *dims]

    def describe(self) -> str:
        s = f"{self.name} {self.dtype.name} {list(self.signature)}"
        if self.dtype == np.int8:
            s += f" (scale {float(self.scale):.4g}, zero point {self.zero_point}"
            s += f", {self.phases} phased copies)" if self.phases > 1 else ")"
        return s


class TFLiteEngine:
    """A TFLite interpreter over one variant of a bundle; `predict(x)` -> float32 logits [n, classes]."""

    def __init__(
        self,
        bundle: Bundle,
        variant: str | None = None,
        *,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        delegate: str | Path | None = None,
    ) -> None:
        """Load the variant (None: int8 if present, else fp16, else fp32) with `threads` interpreter threads,
        and `delegate` (the path of a TFLite delegate library, `load_delegate`) when given.

        `providers` are onnxruntime's; TFLite runs on the CPU here, so any other provider asked for is
        reported as missing (`missing_providers`, `describe()`), as the numpy engine does.

        Raises:
            MissingDependencyError: no TFLite interpreter can be imported.
            DelegateError: `delegate` is missing, cannot be loaded, or the interpreter cannot apply it.
            BundleError: no such variant, the interpreter cannot load the file, or the model's inputs (by name)
                and outputs disagree with the manifest or the bundle's labels and input shapes.
        """
        self.bundle = bundle
        self.variant = pick_variant(bundle, variant)
        self.name = f"tflite-{self.variant}"
        self.threads = threads
        self.providers, self.missing_providers = cpu_only(providers, "TFLite")
        interpreter_cls, self.interpreter_module = import_interpreter()
        block = bundle.manifest["tflite"]
        spec = block["variants"][self.variant]
        self.file = str(spec["file"])
        self._where = f"bundle {bundle.source}: TFLite variant {self.variant!r} ({self.file})"
        self.delegate = None if delegate is None else str(delegate)
        extra = {} if delegate is None else {"experimental_delegates": [load_delegate(delegate)]}
        try:
            # "INFO: Created TensorFlow Lite XNNPACK delegate" on fd 2: shown only if loading fails
            with native_stderr_held():
                self.interpreter = interpreter_cls(
                    model_content=bundle.read(self.file), num_threads=threads, **extra
                )
                self.interpreter.allocate_tensors()
        except BundleError:
            raise
        except Exception as e:  # the interpreters raise ValueError / RuntimeError on a bad flatbuffer
            if delegate is not None:  # the delegate loaded but the interpreter could not apply it
                raise DelegateError(
                    str(delegate), f"loaded, but cannot run {self._where}: {type(e).__name__}: {e}"
                ) from e
            raise BundleError(
                f"{self._where}: the TFLite interpreter cannot load it: {type(e).__name__}: {e}"
            ) from e

        # STYLE 5: indices, dtypes, shapes and quantization come from the model, the manifest is checked.
        self.input_names = bundle.input_names
        self.input_name = self.input_names[0]
        self._num_classes = bundle.num_classes
        details = self._match_inputs(self.interpreter.get_input_details())
        self._ins = tuple(
            self._io(details[n], spec["inputs"][n], f"input {n!r}", n, dims)
            for n, dims in zip(self.input_names, (s[1:] for s in bundle.input_shapes), strict=True)
        )
        self._out = self._io(
            self._output_detail(), spec["output"], "output", bundle.output_names[0], (self._num_classes,)
        )
        self._batch = int(details[self.input_name]["shape"][0])  # the batch the tensors are allocated for now
        self._loop = False  # True: the model refused a resize and has batch 1: one invoke per row

        self.normalization_in_graph = bool(block["normalization_in_graph"])
        # the variants take the normalised input standardised unless their graph does it (manifest `tflite`)
        self.adapt = InputAdapter(bundle, normalize=not self.normalization_in_graph)
        self.normalized_input = self.adapt.norm_input

    @classmethod
    def from_model(
        cls,
        content: bytes,
        input_names: Sequence[str],
        *,
        variant: str = "fp32",
        input_quant: Mapping[str, tuple[float, int]] | None = None,
        output_quant: tuple[float, int] | None = None,
        threads: int | None = None,
        input_phases: Mapping[str, int] | None = None,
        output_phases: int = 1,
    ) -> TFLiteEngine:
        """This engine over a .tflite flatbuffer that is not in a bundle yet (the exporter checks its own
        output with it): an in-memory bundle holding just the model, its input shapes read from the model, its
        int8 quantization (and phased copies, `phase_offsets`) as given. The inputs are taken as the graph takes
        them (already standardised)."""
        from edge_ser.bundle import Bundle
        from edge_ser.features.spec import FeatureSpec

        interpreter_cls, _ = import_interpreter()
        with native_stderr_held():
            it = interpreter_cls(model_content=bytes(content))
            it.allocate_tensors()
        details = {str(d.get("name", "")): d for d in it.get_input_details()}

        def io(name: str) -> dict[str, Any]:
            d = details.get(name, details.get(f"serving_default_{name}:0"))
            if d is None:
                raise BundleError(f"TFLite model: no input named {name!r} (inputs: {sorted(details)})")
            sig = [int(v) for v in d.get("shape_signature", d["shape"])]
            k = (input_phases or {}).get(name, 1)
            return {"name": name, "shape": [None, *sig[1:-1], sig[-1] // k], "dtype": "float32"}

        k = int(it.get_output_details()[0]["shape"][-1]) // output_phases
        file = f"model_{variant}.tflite"
        manifest = {
            "model": {
                "name": "tflite-export",
                "inputs": [io(n) for n in input_names],
                "outputs": [{"name": "logits", "shape": [None, k], "dtype": "float32"}],
            },
            "tflite": {
                "normalization_in_graph": True,
                "variants": {
                    variant: {
                        "file": file,
                        "inputs": {
                            n: tflite_io_entry((input_quant or {}).get(n), (input_phases or {}).get(n, 1))
                            for n in input_names
                        },
                        "output": tflite_io_entry(output_quant, output_phases),
                    }
                },
            },
        }
        labels = tuple(f"class {i}" for i in range(k))
        bundle = Bundle(
            Path("<in memory>"), manifest, labels, FeatureSpec(), MappingProxyType({file: bytes(content)})
        )
        return cls(bundle, variant, threads=threads)

    # ----------------------------------------------------------------------------------------------------------
    # the model's tensors against the manifest

    def _match_inputs(self, details: list[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
        """Manifest input name -> the interpreter's input detail of that name (module doc: naming)."""
        by_name = {str(d.get("name", "")): d for d in details}
        found, missing = {}, []
        for n in self.input_names:
            d = by_name.get(n, by_name.get(f"serving_default_{n}:0"))
            if d is None:
                missing.append(n)
            else:
                found[n] = d
        if missing or len(details) != len(self.input_names):
            raise BundleError(
                f"{self._where}: the model's inputs {sorted(by_name)} do not match the manifest's model.inputs "
                f"{list(self.input_names)} (matched by name; not found: {missing})"
            )
        return found

    def _output_detail(self) -> Mapping[str, Any]:
        outs = self.interpreter.get_output_details()
        if len(outs) != 1:
            raise BundleError(
                f"{self._where}: the model has {len(outs)} outputs; expected one (the logits, one per label)"
            )
        return outs[0]

    def _io(
        self,
        d: Mapping[str, Any],
        want: Mapping[str, Any],
        what: str,
        name: str,
        dims: Sequence[int | None],
    ) -> _Tensor:
        """One tensor's index, dtype, shape and quantization from the interpreter, checked against `want`."""
        shape = [int(s) for s in d["shape"]]
        sig = [int(s) for s in d.get("shape_signature", shape)]
        dims = tuple(dims)
        dtype = np.dtype(d["dtype"])
        scale, zero_point = (float(d["quantization"][0]), int(d["quantization"][1]))
        phases = int(want.get("phases", 1)) if dtype == np.int8 else 1
        problems = []
        wide = (*dims[:-1], None if dims[-1] is None else phases * dims[-1]) if dims else dims
        fits = len(sig) == 1 + len(dims) and all(
            w is None or (s == w and g == w) for s, g, w in zip(sig[1:], shape[1:], wide, strict=True)
        )
        if phases > 1 and (not dims or dims[-1] is None):
            problems.append(f"{phases} phased copies, but its last axis has no fixed size")
        if not fits or not (sig[0] == -1 or sig[0] >= 1):
            role = "logits, one per label" if what == "output" else "the manifest's model.inputs shape"
            want_shape = ", ".join("?" if w is None else str(w) for w in wide)
            copies = f", {phases} phased copies" if phases > 1 else ""
            problems.append(f"shape {sig} (-1: any), expected [batch, {want_shape}] ({role}{copies})")
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
        return _Tensor(name, int(d["index"]), dtype, tuple(sig), dims, np.float32(scale), zero_point, phases)

    # ----------------------------------------------------------------------------------------------------------

    def predict(self, x: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
        """Raw inputs -> logits float32 [n, classes].

        `x`: for a one-input model float32 [n, *dims] (or one sample [*dims]) or {name: array}; with several
        inputs {name: array} for every input, all with the same n (or all one sample without the batch axis).
        """
        arrays = self._prepare(x)
        n = next(iter(arrays.values())).shape[0]
        if n == 0:
            return np.zeros((0, self._num_classes), dtype=np.float32)
        if n != self._batch and not self._loop:
            self._resize(n, arrays)
        if self._loop and n != self._batch:
            y = np.concatenate([self._invoke({k: a[i : i + 1] for k, a in arrays.items()}) for i in range(n)])
        else:
            y = self._invoke(arrays)
        if self._out.dtype == np.int8:
            y = self._out.dequantize(y)
        return finish_logits(y, self.bundle.source, self._num_classes)

    def _prepare(self, x: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Input name -> rows of the model's dtype: the shared adapter's float32 rows (shapes checked, the
        normalised input standardised), quantized for an int8 input."""
        out = self.adapt(x)
        for t in self._ins:
            if t.dtype == np.int8:
                q, saturated = t.quantize(out[t.name])
                if saturated is not None:  # never silently: the rows are flagged out of range
                    self.adapt.mark(saturated)
                out[t.name] = q
        return out

    def _resize(self, n: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Re-allocate the tensors for n rows (or switch to one invoke per row: see the module doc)."""
        it = self.interpreter
        try:
            for t in self._ins:
                it.resize_tensor_input(t.index, t.batch_shape(n, arrays[t.name]), strict=False)
            it.allocate_tensors()
            got = [int(s) for s in it.get_output_details()[0]["shape"]]
            ok = got == [n, self._out.phases * self._num_classes]
        except Exception as e:  # noqa: BLE001 - the interpreters raise RuntimeError / ValueError
            ok, got = False, f"{type(e).__name__}: {e}"
        if ok:
            self._batch = n
            return
        self._batch = -1  # not known: the next call resizes again
        if not all(t.fixed_batch_1 for t in self._ins):
            raise BundleError(
                f"{self._where}: cannot run a batch of {n} rows (after resizing the inputs: {got})"
            )
        # a fixed batch of 1 that does not resize: (back) to [1, ...], one invoke per row
        try:
            shapes = {int(d["index"]): [int(s) for s in d["shape"]] for d in it.get_input_details()}
            for t in self._ins:
                one = t.batch_shape(1, arrays[t.name])
                if shapes[t.index] != one:
                    it.resize_tensor_input(t.index, one, strict=False)
            it.allocate_tensors()
        except Exception as e:
            raise BundleError(f"{self._where}: cannot resize the inputs to their own batch of 1: {e}") from e
        self._batch, self._loop = 1, True

    def _invoke(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        it = self.interpreter
        for t in self._ins:
            it.set_tensor(t.index, arrays[t.name])
        it.invoke()
        return it.get_tensor(self._out.index)

    def describe(self) -> str:
        b = self.bundle
        threads = self.threads if self.threads is not None else "default"
        s = (
            f"tflite engine: {self.variant} variant ({self.file}) of {b.name} ({b.source}); "
            f"interpreter {self.interpreter_module}; threads {threads}; "
            f"input{'s' if len(self._ins) > 1 else ''} " + ", ".join(t.describe() for t in self._ins)
        )
        if self.delegate is not None:
            s += f"; delegate {self.delegate}"
        if self.normalization_in_graph:
            s += "; normalisation in the graph"
        elif self.normalized_input is not None:
            s += f"; normalisation by the engine (of {self.normalized_input!r})"
        s += "; batches: " + (
            "one invoke per row (fixed batch 1)"
            if self._loop
            else f"input{'s' if len(self._ins) > 1 else ''} resized to n rows"
        )
        if self.missing_providers:
            s += f"; requested but not available here: {list(self.missing_providers)} (running on CPU)"
        return s

    def __repr__(self) -> str:
        return f"<{self.describe()}>"
