"""TFLite export of the MLP and the audio-visual CNN: fp32, fp16 (float16 weights) and full-integer int8.

    m = export_tflite(model, "int8", calibration=standardize_inputs(model, X_train), codes=compressed.codes)
    logits = run_tflite(m, standardize_inputs(model, X_test))      # float32 [n, classes]

    # av_cnn: two inputs, by name ("faces" [n, 6, 64, 64] in [0, 1], "audio" [n, 6, 40] raw MFCCs)
    cal = standardize_inputs(av, {"faces": F_train, "audio": A_train})   # standardises "audio" only
    m = export_tflite(av, "int8", calibration=cal, codes=codes)

Route (docs/tflite.md has the measurements that chose it): the torch model is rebuilt as a TF graph on its
own (constant) weights - MatMul + bias for Linear, conv2d / conv1d + bias for Conv2d / Conv1d, Relu, max pool,
flatten - and converted with tensorflow's own TFLite converter (`TFLiteConverter.from_concrete_functions`).
tensorflow is a host-only extra (`edge-ser[tf-export]`); it is imported inside the functions that need it.
Supported models: LaqMLP-like MLPs (standardise -> Linear [-> ReLU] [-> Dropout] ... -> Linear) and
`converters.models.AVCNN` in every mode ("fused", "audio", "video") with frame_fusion "channels".

Inputs and layouts. The TFLite inputs are the ONNX inputs, by name and layout: "features" [n, 180];
"faces" [n, 6, 64, 64] (NCHW) and "audio" [n, 6, 40]. TFLite convolutions are channels-last, so the graph
transposes "faces" to NHWC itself; "audio" [n, segments, n_mfcc] already is the NWC layout of torch's
Conv1d over segments (torch transposes it to NCW, TF does not need to). Before each Flatten the activation
is transposed back to channels-first, so the flattened vector is in torch's (C, H, W) / (C, W) order and
every Linear weight keeps torch's layout. Input and output tensors are renamed to the model's input names
and "logits" (the converter calls them "serving_default_faces:0" etc.); match them by name, not by index.

Normalisation. The model's `mean` / `std` buffers standardise ONE input (LaqMLP: "features", AVCNN: "audio";
`normalized_input`) and are not in the graph: it takes the STANDARDISED input (`standardize_inputs`). An int8
input has one scale per tensor, and raw features span many orders of magnitude (MFCC 0 ~ -400, mel powers
~ 1e-6..1e2), so (x - mean) / std stays outside, in float32, on the device. "faces" (already in [0, 1]) is
fed as it is; its int8 grid is then 1/255 with zero point -128, exactly the 8-bit camera pixels.

int8: calibrated (min/max) on `calibration`, int8 inputs and output, int8 per-output-channel weights, int32
biases. With `codes` (layer -> (int8 LAQ codes, float32 per-channel scales), as `freeze` returns them), every
FULLY_CONNECTED / CONV_2D weight of a coded layer is rewritten after conversion so its int8 data ARE the LAQ
codes (in TFLite's layout) and its scales the LAQ scales (zero points 0), and the layer's int32 bias is
requantized with bias_scale[c] = input_scale * weight_scale[c]: the dequantized int8 weights then equal the
QAT weights exactly. The float variants are built from float32(codes) * scales of coded layers (for a frozen
model that is its weight, bit for bit). Ops are matched to torch layers by data flow (`_locate`) and
checked by weight shape; weight and bias tensors are renamed "<layer>.weight" / "<layer>.bias".

TF prints start-up noise: TF_CPP_MIN_LOG_LEVEL=3 and TF_ENABLE_ONEDNN_OPTS=0 are set (setdefault) before the
first import of tensorflow here.
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from edge_ser.bundle import TFLITE_VARIANTS
from edge_ser.errors import ConfigError, MissingDependencyError
from edge_ser.native_log import native_stderr_held

VARIANTS = TFLITE_VARIANTS
"""The TFLite variants export_tflite makes: the ones a bundle may carry."""
INPUT = "features"
"""The MLP's one input (the AV CNN's are "faces" and "audio")."""
OUTPUT = "logits"
_PARITY = 1e-4
"""The TF graph must reproduce the torch forward within this fraction of max |logit| (float32, measured ~1e-7)."""

Inputs = np.ndarray | Mapping[str, np.ndarray]
"""One array (a one-input model) or {input name: array}."""


@dataclass(frozen=True)
class TFLiteModel:
    """One converted model: its variant, the .tflite flatbuffer, its inputs and the int8 I/O quantization."""

    variant: str  # "fp32" | "fp16" | "int8"
    data: bytes  # the .tflite flatbuffer
    inputs: tuple[str, ...]  # the model's input names, in its forward's order (= the TFLite tensor names)
    input_quant: dict[str, tuple[float, int]] | None  # int8: input name -> (scale, zero_point); None: float
    output_quant: tuple[float, int] | None  # (scale, zero_point) of the int8 output "logits"
    input_phases: dict[str, int] | None = None  # phased int8 (`tflite_phases`): input name -> copies
    output_phases: int = 1  # phased int8: copies of the logits


# --------------------------------------------------------------------------------------------------------------
# imports
# --------------------------------------------------------------------------------------------------------------


def _tf():
    """tensorflow, imported quietly (host-only extra)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        import tensorflow as tf
    except ImportError as e:
        raise MissingDependencyError("tensorflow-cpu", "tf-export", "TFLite export") from e
    return tf


def _schema():
    """(flatbuffer_utils, schema_py_generated) of tensorflow's TFLite flatbuffer object API."""
    _tf()
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils, schema


def _interpreter_cls():
    """The TFLite Interpreter: ai_edge_litert's, else tensorflow's (deprecated there, but present on the host)."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        return _tf().lite.Interpreter
    except MissingDependencyError as e:
        raise MissingDependencyError("ai-edge-litert", "tflite", "running a TFLite model") from e


# --------------------------------------------------------------------------------------------------------------
# the torch model as the export sees it: named inputs, weight layers, and steps that rebuild its forward
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Layer:
    """One Linear / Conv1d / Conv2d layer with its float32 weight in torch's layout."""

    name: str  # the torch module name, e.g. "features.0" or "video.3"
    kind: str  # "dense" | "conv1d" | "conv2d"
    weight: np.ndarray  # float32, torch layout: [out, in] / [out, in, k] / [out, in, kh, kw]
    bias: np.ndarray  # float32 [out]
    padding: str = "VALID"  # convs: "VALID" (torch padding 0) or "SAME" (odd kernel, padding k // 2)
    relu: bool = False  # MLP chain only: a ReLU follows (used by `_check_chain`)

    def tflite_layout(self, a: np.ndarray) -> np.ndarray:
        """A torch-layout weight-shaped array in the TFLite op's weight layout.

        FULLY_CONNECTED [out, in] (= torch); CONV_2D OHWI: Conv2d [O, I, kh, kw] -> [O, kh, kw, I], Conv1d
        [O, I, k] -> [O, 1, k, I] (TF runs conv1d as a 1 x k CONV_2D).
        """
        if self.kind == "conv2d":
            return np.ascontiguousarray(a.transpose(0, 2, 3, 1))
        if self.kind == "conv1d":
            return np.ascontiguousarray(a.transpose(0, 2, 1)[:, None])
        return np.ascontiguousarray(a)


@dataclass(frozen=True)
class _Step:
    """One step of a branch: "layer" (with `layer`), "relu", "maxpool" (window = stride = `size`), "flatten"."""

    op: str
    layer: _Layer | None = None
    size: int = 0


@dataclass
class _Net:
    """A torch model as the export sees it.

    One branch per input, in the forward's order: the input (after `entry`, a transpose to channels-last) runs
    through its steps; with several inputs the flattened branch outputs are concatenated in that order and run
    through `head`; with one input `head` continues the branch.
    """

    inputs: dict[str, tuple[int, ...]]  # input name -> per-sample shape (ONNX layout), forward's order
    branches: dict[str, list[_Step]]
    head: list[_Step]
    # input -> the transpose (perm) to channels-last before its branch
    entry: dict[str, tuple[int, ...]] = field(default_factory=dict)
    normalized: str | None = None  # the input the model standardises with its mean / std buffers
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # inputs with a fixed value range
    # one-input nets: chains run side by side on the input's branch output, their outputs summed (ADD), then head
    parallel: list[list[_Step]] = field(default_factory=list)

    @staticmethod
    def layers(steps: list[_Step]) -> list[_Layer]:
        """The weight layers of `steps`, in order."""
        return [s.layer for s in steps if s.layer is not None]

    @property
    def all_layers(self) -> list[_Layer]:
        out = [la for steps in self.branches.values() for la in self.layers(steps)]
        out += [la for steps in self.parallel for la in self.layers(steps)]
        return out + self.layers(self.head)


def _tensor(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().float().numpy())


def _refuse_parametrized(name: str, m: nn.Module) -> None:
    if parametrize.is_parametrized(m):
        raise ConfigError(
            f"TFLite export: layer {name!r} still carries a QAT parametrization; export the frozen model "
            "(converters.quant.qat.freeze / Compressed.model)"
        )


def _dense_chain(model: nn.Module) -> list[_Layer]:
    """The MLP's Linear layers in registration order, each with whether a ReLU follows it.

    Supported: standardise (buffers `mean` / `std`, left out of the graph) -> Linear [-> ReLU] [-> Dropout] ...
    -> Linear, as LaqMLP. Anything else raises ConfigError; `_check_chain` then checks the order against the
    model's own forward.
    """
    chain: list[_Layer] = []
    for name, m in model.named_modules():
        if m is model or isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            continue
        _refuse_parametrized(name, m)
        if isinstance(m, nn.Linear):
            b = _tensor(m.bias) if m.bias is not None else np.zeros(m.out_features, np.float32)
            chain.append(_Layer(name, "dense", _tensor(m.weight), b))
        elif isinstance(m, nn.ReLU):
            if not chain or chain[-1].relu:
                raise ConfigError(f"TFLite export: ReLU {name!r} does not follow a Linear layer")
            chain[-1].relu = True
        elif isinstance(m, (nn.Dropout, nn.Identity)):
            continue
        else:
            raise ConfigError(
                f"TFLite export handles MLPs of Linear, ReLU and Dropout layers and the AV CNN (AVCNN); "
                f"{name!r} is {type(m).__name__}"
            )
    if not chain:
        raise ConfigError("TFLite export: the model has no Linear layer")
    for a, b in itertools.pairwise(chain):
        if b.weight.shape[1] != a.weight.shape[0]:
            raise ConfigError(
                f"TFLite export: {b.name!r} takes {b.weight.shape[1]} inputs but {a.name!r} gives "
                f"{a.weight.shape[0]}: the layers do not form a chain"
            )
    return chain


def _chain_steps(chain: list[_Layer]) -> list[_Step]:
    steps: list[_Step] = []
    for la in chain:
        steps.append(_Step("layer", la))
        if la.relu:
            steps.append(_Step("relu"))
    return steps


def _mlp_net(model: nn.Module) -> _Net:
    chain = _dense_chain(model)
    steps = _chain_steps(chain)
    has_norm = isinstance(getattr(model, "mean", None), torch.Tensor)
    return _Net(
        {INPUT: (chain[0].weight.shape[1],)}, {INPUT: steps}, [], normalized=INPUT if has_norm else None
    )


def _conv_layer(name: str, m: nn.Conv1d | nn.Conv2d) -> _Layer:
    """A Conv1d / Conv2d the TF graph can rebuild: stride 1, no dilation or groups, valid or odd 'same'."""
    k = tuple(m.kernel_size)
    pad = tuple(m.padding) if not isinstance(m.padding, str) else m.padding
    if pad in ((0,) * len(k), "valid"):
        padding = "VALID"
    elif all(kk % 2 == 1 for kk in k) and (pad == "same" or pad == tuple(kk // 2 for kk in k)):
        padding = "SAME"
    else:
        padding = ""
    plain = set(m.stride) == {1} and set(m.dilation) == {1} and m.groups == 1 and m.padding_mode == "zeros"
    if not padding or not plain:
        raise ConfigError(
            f"TFLite export: {name!r} ({m}) is not supported: stride 1, dilation 1, groups 1 and zero padding "
            "0 (valid) or k // 2 with an odd kernel (same) only"
        )
    b = _tensor(m.bias) if m.bias is not None else np.zeros(m.out_channels, np.float32)
    kind = "conv2d" if isinstance(m, nn.Conv2d) else "conv1d"
    return _Layer(name, kind, _tensor(m.weight), b, padding)


def _steps(seq: nn.Sequential, prefix: str) -> list[_Step]:
    """The steps of one AVCNN Sequential (Conv / Linear / ReLU / MaxPool / Dropout / Flatten)."""
    out: list[_Step] = []
    for child, m in seq.named_children():
        name = f"{prefix}.{child}"
        _refuse_parametrized(name, m)
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            out.append(_Step("layer", _conv_layer(name, m)))
        elif isinstance(m, nn.Linear):
            b = _tensor(m.bias) if m.bias is not None else np.zeros(m.out_features, np.float32)
            out.append(_Step("layer", _Layer(name, "dense", _tensor(m.weight), b)))
        elif isinstance(m, nn.ReLU):
            out.append(_Step("relu"))
        elif isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)):
            k = m.kernel_size
            plain = m.stride == k and m.padding == 0 and m.dilation == 1 and not m.ceil_mode
            if isinstance(k, tuple) or not plain:
                raise ConfigError(f"TFLite export: {name!r} ({m}): only max pooling with stride = window")
            out.append(_Step("maxpool", size=int(k)))
        elif isinstance(m, nn.Flatten):
            out.append(_Step("flatten"))
        elif isinstance(m, (nn.Dropout, nn.Identity)):
            continue
        else:
            raise ConfigError(
                f"TFLite export: {name!r} is {type(m).__name__}, which the AV export does not map"
            )
    return out


def _av_net(model: nn.Module) -> _Net:
    """The AVCNN's branches: "faces" NCHW -> NHWC -> video CNN, "audio" (already NWC) -> 1D CNN; head."""
    cfg = model.cfg
    if cfg.frame_fusion != "channels":
        raise ConfigError(
            f"TFLite export: AVCNN with frame_fusion={cfg.frame_fusion!r} is not supported (only 'channels', "
            "the default: the 'shared' per-frame CNN reshapes [B, 6, 64, 64] to [B*6, 1, 64, 64], which this "
            "export does not rebuild)"
        )
    shapes = model.input_shapes()
    branches, entry = {}, {}
    if "faces" in shapes:
        branches["faces"] = _steps(model.video, "video")
        entry["faces"] = (0, 2, 3, 1)  # NCHW -> NHWC
    if "audio" in shapes:
        branches["audio"] = _steps(model.audio, "audio")  # [n, segments, mfcc] is NWC: no transpose
    return _Net(
        dict(shapes),
        branches,
        _steps(model.head, "head"),
        entry,
        normalized="audio" if "audio" in shapes else None,
        ranges={"faces": (0.0, 1.0)} if "faces" in shapes else {},
    )


def _ensemble_net(model: nn.Module) -> _Net:
    """A `FunctionalsEnsemble`: its members' Linear / ReLU chains side by side on the standardised input, summed
    (the average's 1 / K is in their classifiers)."""
    parallel = []
    for i, branch in enumerate(model.branches):
        chain = _dense_chain(branch)
        for la in chain:
            la.name = f"branches.{i}.{la.name}"
        parallel.append(_chain_steps(chain))
    dim = parallel[0][0].layer.weight.shape[1]
    return _Net({INPUT: (dim,)}, {INPUT: []}, [], normalized=INPUT, parallel=parallel)


def _net(model: nn.Module) -> _Net:
    """The export's view of `model` (ConfigError for a model it cannot export)."""
    from converters.models.av_cnn import AVCNN
    from converters.models.functionals_mlp import FunctionalsEnsemble

    if isinstance(model, AVCNN):
        return _av_net(model)
    if isinstance(model, FunctionalsEnsemble):
        return _ensemble_net(model)
    return _mlp_net(model)


def input_names(model: nn.Module) -> tuple[str, ...]:
    """The TFLite (= ONNX) input names of a model, in its forward's order: ("features",) for an MLP."""
    return tuple(_net(model).inputs)


def normalized_input(model: nn.Module) -> str | None:
    """The input the model standardises with its `mean` / `std` buffers ("features", "audio"), else None.

    The TFLite graph takes that input standardised (`standardize_inputs`); the bundle's `normalization.input`.
    """
    return _net(model).normalized


def _normalization(model: nn.Module, dim: int) -> tuple[np.ndarray, np.ndarray]:
    mean = getattr(model, "mean", None)
    std = getattr(model, "std", None)
    if isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor):
        return _tensor(mean), _tensor(std)
    return np.zeros(dim, np.float32), np.ones(dim, np.float32)


def _as_inputs(net: _Net, x: Inputs, what: str) -> dict[str, np.ndarray]:
    """{input name: float32 array [n, *shape]} from one array or a mapping, checked against the net."""
    names = list(net.inputs)
    if isinstance(x, Mapping):
        missing, extra = [n for n in names if n not in x], sorted(set(x) - set(names))
        if missing or extra:
            raise ConfigError(f"{what}: inputs {sorted(x)}, the model takes {names}")
        given = {n: x[n] for n in names}
    elif len(names) == 1:
        given = {names[0]: x}
    else:
        raise ConfigError(f"{what}: the model takes {len(names)} inputs {names}; pass {{name: array}}")
    out = {}
    for n, a in given.items():
        a = np.asarray(a, dtype=np.float32)
        want = net.inputs[n]
        if a.ndim != 1 + len(want) or tuple(a.shape[1:]) != tuple(want):
            dims = ", ".join(map(str, want))
            raise ConfigError(f"{what}: input {n!r} must be float32 [n, {dims}], got shape {list(a.shape)}")
        out[n] = a
    if len({a.shape[0] for a in out.values()}) > 1:
        raise ConfigError(
            f"{what}: the inputs have different numbers of rows {[a.shape[0] for a in out.values()]}"
        )
    return out


def standardize_inputs(model: nn.Module, raw: Inputs) -> dict[str, np.ndarray]:
    """The TFLite graph's inputs from the model's raw inputs: the normalised one becomes (x - mean) / std.

    Args:
        model: the torch model (its `mean` / `std` buffers standardise `normalized_input(model)`).
        raw: float32 [n, *shape] for a one-input model, or {input name: array} (AVCNN: "faces" [n, 6, 64, 64]
            in [0, 1], "audio" [n, 6, 40] raw MFCCs).

    Returns:
        {input name: float32 [n, *shape]} in the model's input order; the other inputs unchanged.
    """
    net = _net(model)
    x = _as_inputs(net, raw, "standardize_inputs")
    if net.normalized is not None:
        a = x[net.normalized]
        mean, std = _normalization(model, a.shape[-1])
        x[net.normalized] = ((a - mean) / std).astype(np.float32)  # as torch computes it, in float32
    return x


# --------------------------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------------------------


def _chain_numpy(chain: list[_Layer], z: np.ndarray) -> np.ndarray:
    h = z.astype(np.float32)
    for d in chain:
        h = h @ d.weight.T + d.bias
        if d.relu:
            h = np.maximum(h, 0)
    return h


def _torch_logits(model: nn.Module, raw: dict[str, np.ndarray]) -> np.ndarray:
    """The model's eval-mode logits of raw inputs (in its forward's order), float32 numpy."""
    was_training = model.training
    model.eval()
    device = next(iter(model.parameters())).device
    try:
        with torch.no_grad():
            y = model(*(torch.as_tensor(a, device=device) for a in raw.values()))
    finally:
        model.train(was_training)
    return y.detach().cpu().float().numpy()


def _check_chain(model: nn.Module, chain: list[_Layer]) -> None:
    """The MLP chain on standardised rows must reproduce the model's forward on the raw rows (else ConfigError)."""
    dim = chain[0].weight.shape[1]
    mean, std = _normalization(model, dim)
    z = np.random.default_rng(0).standard_normal((16, dim)).astype(np.float32)
    x = (mean + z * std).astype(np.float32)
    zs = (x - mean) / std  # exactly what the model computes in float32
    ref = _torch_logits(model, {INPUT: x})
    got = _chain_numpy(chain, zs)
    if ref.shape != got.shape or np.abs(ref - got).max() > 1e-4 * max(float(np.abs(ref).max()), 1e-6):
        raise ConfigError(
            "TFLite export: the model's forward is not standardise -> its Linear/ReLU layers in registration "
            "order -> logits; export supports MLPs like converters.models.LaqMLP"
        )


def _check_codes(net: _Net, codes: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Every coded layer exists, its codes fit int8, and the model's weight IS float32(code) * scale."""
    by_name = {la.name: la for la in net.all_layers}
    for layer, (q, s) in codes.items():
        if layer not in by_name:
            raise ConfigError(
                f"TFLite export: codes for {layer!r}, which is not a Linear or Conv layer of the model"
            )
        w = by_name[layer].weight
        q, s = np.asarray(q), np.asarray(s, dtype=np.float32)
        if q.shape != w.shape or s.shape != (w.shape[0],):
            raise ConfigError(
                f"TFLite export: codes of {layer!r} have shape {q.shape} / scales {s.shape}, weight {w.shape}"
            )
        if q.min() < -127 or q.max() > 127 or not np.all(s > 0):
            raise ConfigError(f"TFLite export: codes of {layer!r} outside [-127, 127] or scales not > 0")
        grid = _grid(q, s)
        if not np.allclose(grid, w, rtol=1e-6, atol=1e-6 * float(s.max())):
            raise ConfigError(
                f"TFLite export: the model's {layer!r} weight is not float32(codes) * scales; pass the "
                "frozen QAT model together with its own codes"
            )


def _grid(q: np.ndarray, s: np.ndarray) -> np.ndarray:
    """float32(codes) * per-output-channel scales, in float32 (as `dequantize` computes it)."""
    s = np.asarray(s, dtype=np.float32)
    return np.asarray(q).astype(np.float32) * s.reshape((-1,) + (1,) * (np.ndim(q) - 1))


def _check_calibration(model: nn.Module, net: _Net, calibration: Inputs) -> dict[str, np.ndarray]:
    """Graph inputs for the int8 calibration: shapes, finite values, value ranges, and the normalised input
    really standardised (raw features are refused: their spread is the model's `std` buffer, not 1)."""
    cal = _as_inputs(net, calibration, "TFLite export: calibration")
    for name, a in cal.items():
        if a.shape[0] < 1:
            raise ConfigError(
                f"TFLite export: calibration input {name!r} has no rows (shape {list(a.shape)})"
            )
        if not np.isfinite(a).all():
            raise ConfigError(f"TFLite export: calibration input {name!r} has NaN or inf values")
        lo, hi = net.ranges.get(name, (-math.inf, math.inf))
        if a.min() < lo - 1e-6 or a.max() > hi + 1e-6:
            raise ConfigError(
                f"TFLite export: calibration input {name!r} spans [{a.min():.4g}, {a.max():.4g}], the model "
                f"takes values in [{lo:g}, {hi:g}] (faces are scaled by 1/255 before the model)"
            )
    if net.normalized is not None:
        _refuse_raw(model, net.normalized, cal[net.normalized])
    return cal


def _refuse_raw(model: nn.Module, name: str, a: np.ndarray) -> None:
    """ConfigError when the normalised input's per-feature spread matches the model's `std` buffer (raw
    features) rather than 1 (standardised): the log-spreads are compared."""
    rows = a.reshape(-1, a.shape[-1])
    _, std = _normalization(model, rows.shape[1])
    spread = rows.std(0)
    ok = (spread > 0) & (std > 1e-5)
    if rows.shape[0] < 2 or not ok.any():
        return
    off_raw = float(np.median(np.abs(np.log(spread[ok] / std[ok]))))
    off_std = float(np.median(np.abs(np.log(spread[ok]))))
    if off_raw < 0.5 * off_std:
        raise ConfigError(
            f"TFLite export: calibration input {name!r} looks like raw features (its per-feature spread is the "
            f"model's `std` buffer, not 1); pass the STANDARDISED training features (X - model.mean) / "
            "model.std (standardize_inputs)"
        )


def _check_tf_graph(model: nn.Module, net: _Net, graph) -> None:
    """The TF graph on standardised inputs must reproduce the torch forward on raw inputs (else ConfigError):
    catches a layout or flatten-order mistake, and a model whose forward is not what `_net` read."""
    rng = np.random.default_rng(0)
    graph_in = {}
    for name, shape in net.inputs.items():
        if name in net.ranges:
            lo, hi = net.ranges[name]
            graph_in[name] = rng.uniform(lo, hi, (4, *shape)).astype(np.float32)
        else:
            graph_in[name] = rng.standard_normal((4, *shape)).astype(np.float32)
    raw = dict(graph_in)
    if net.normalized is not None:
        z = graph_in[net.normalized]
        mean, std = _normalization(model, z.shape[-1])
        raw[net.normalized] = (mean + z * std).astype(np.float32)
        graph_in = standardize_inputs(model, raw)  # the float32 rounding the device sees
    ref = _torch_logits(model, raw)
    got = graph(*(graph_in[n] for n in net.inputs))[OUTPUT].numpy()
    err = float(np.abs(ref - got).max()) if ref.shape == got.shape else math.inf
    if err > _PARITY * max(float(np.abs(ref).max()), 1e-6):
        raise ConfigError(
            f"TFLite export: the TF graph rebuilt from {type(model).__name__} gives logits {err:.3g} away from "
            "the torch forward; the model's forward is not what the export reads from its modules"
        )


# --------------------------------------------------------------------------------------------------------------
# the TF graph and the conversion
# --------------------------------------------------------------------------------------------------------------


def _tf_name(layer: str) -> str:
    """A TF op name for a torch layer name ("branches.0.features.0" -> "branches_0_features_0")."""
    return layer.replace(".", "_")


def _tf_step(tf, step: _Step, h):
    """One step on a channels-last activation."""
    if step.op == "relu":
        return tf.nn.relu(h)
    if step.op == "maxpool":
        pool = tf.nn.max_pool2d if len(h.shape) == 4 else tf.nn.max_pool1d
        return pool(h, step.size, step.size, "VALID")
    if step.op == "flatten":  # channels-last -> channels-first, then flatten: torch's (C, H, W) order
        perm = {4: [0, 3, 1, 2], 3: [0, 2, 1]}.get(len(h.shape))
        if perm is not None:
            h = tf.transpose(h, perm)
        return tf.reshape(h, [-1, math.prod(h.shape[1:])])
    la = step.layer
    if la.kind == "dense":  # named after the layer: `_locate` tells parallel chains apart by it
        return tf.add(tf.matmul(h, tf.constant(la.weight.T)), tf.constant(la.bias), name=_tf_name(la.name))
    if la.kind == "conv2d":
        w = tf.constant(la.weight.transpose(2, 3, 1, 0))  # OIHW -> HWIO
        return tf.nn.conv2d(h, w, 1, la.padding) + tf.constant(la.bias)
    w = tf.constant(la.weight.transpose(2, 1, 0))  # OIK -> KIO
    return tf.nn.conv1d(h, w, 1, la.padding) + tf.constant(la.bias)


def _tf_function(tf, net: _Net):
    """The net as a tf.function: named inputs (TensorSpec names = the model's input names) -> {"logits"}."""
    sig = [tf.TensorSpec([None, *shape], tf.float32, name=name) for name, shape in net.inputs.items()]

    def run(steps: list[_Step], h):
        for step in steps:
            h = _tf_step(tf, step, h)
        return h

    @tf.function(input_signature=sig)
    def logits(*xs):
        parts = []
        for (name, steps), x in zip(net.branches.items(), xs, strict=True):
            if name in net.entry:
                x = tf.transpose(x, net.entry[name])
            parts.append(run(steps, x))
        z = parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)
        if net.parallel:
            outs = [run(steps, z) for steps in net.parallel]
            z = outs[0]
            for o in outs[1:]:
                z = z + o
        return {OUTPUT: run(net.head, z)}

    return logits


def convert(
    tf: Any, fn: Any, graph: Any, variant: str, cal: dict[str, np.ndarray] | None, *, batch: int = 1
) -> bytes:
    """The .tflite bytes of the tf.function `fn` (its concrete function `graph`) as `variant`; int8 calibrates
    on `cal` `batch` rows at a time. Shared by this exporter and `converters.export.onnx_tflite`."""
    holder = tf.Module()
    holder.logits = fn
    conv = tf.lite.TFLiteConverter.from_concrete_functions([graph], holder)
    if variant == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        n = len(next(iter(cal.values())))

        def representative():  # by input name (the signature's keys), `batch` rows at a time
            for i in range(0, n, batch):
                yield {name: a[i : i + batch] for name, a in cal.items()}

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    with warnings.catch_warnings():
        # "Statistics for quantized inputs were expected, but not specified": the representative data set is
        # what sets them
        warnings.simplefilter("ignore", UserWarning)
        with native_stderr_held():  # the converter's C++ log on fd 2; shown if it fails
            return bytes(conv.convert())


def export_tflite(
    model: nn.Module,
    variant: str,
    *,
    calibration: Inputs | None = None,
    codes: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> TFLiteModel:
    """Convert an MLP or an AVCNN (standardised inputs -> logits) to a TFLite flatbuffer of `variant`.

    Args:
        model: a LaqMLP-like torch model (Linear / ReLU / Dropout after a standardisation by its `mean` / `std`
            buffers) or an AVCNN (any mode, frame_fusion "channels"); a QAT model must be frozen. The
            standardisation is left out of the graph (`normalized_input`).
        variant: "fp32", "fp16" (float16 weights and biases, DEQUANTIZE to float32 at load) or "int8" (full
            integer: int8 inputs and output, int8 per-channel weights, int32 biases).
        calibration: int8 only, required: the graph's inputs for the converter's min/max activation ranges,
            float32 [n, *shape] (one-input models) or {input name: array} with the normalised input
            STANDARDISED (`standardize_inputs` of raw training inputs); every row is used, one at a time.
        codes: layer name -> (int8 codes, float32 per-channel scales) of the model's quantized layers (from
            `freeze` / `compress`), torch layout. Checked against the model's weights in every variant; the
            float variants are built from float32(codes) * scales, and in int8 each such layer's weight is
            rewritten to exactly these codes and scales (see the module doc).

    Raises:
        ConfigError: unknown variant, missing or bad calibration, a model the export cannot rebuild, or codes
            that do not belong to the model.
        MissingDependencyError: tensorflow is not installed.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"TFLite variant {variant!r} is not known; choose from {list(VARIANTS)}")
    net = _net(model)
    if len(net.inputs) == 1 and not net.head and not net.parallel:  # an MLP: the cheap numpy check first
        _check_chain(model, net.layers(net.branches[INPUT]))
    if codes:
        _check_codes(net, codes)
        for la in net.all_layers:  # exactly float32(codes) * scales in every variant
            if la.name in codes:
                la.weight = _grid(*codes[la.name])
    cal = None
    if variant == "int8":
        if calibration is None:
            raise ConfigError("TFLite int8 export needs calibration= (standardised training inputs)")
        cal = _check_calibration(model, net, calibration)
    elif calibration is not None:
        raise ConfigError(f"TFLite export: calibration is for the int8 variant, not {variant!r}")

    tf = _tf()
    fn = _tf_function(tf, net)
    graph = fn.get_concrete_function()  # traced once; called directly (no retracing) by the check
    _check_tf_graph(model, net, graph)
    data = convert(tf, fn, graph, variant, cal)
    data, in_q, out_q = _finish(data, net, codes if variant == "int8" else None, variant)
    return TFLiteModel(variant, data, tuple(net.inputs), in_q, out_q)


# --------------------------------------------------------------------------------------------------------------
# the flatbuffer: name the I/O, map ops to layers, name weight tensors, write the LAQ grid into int8
# --------------------------------------------------------------------------------------------------------------

_WEIGHT_OPS = {"dense": ("FULLY_CONNECTED",), "conv1d": ("CONV_2D",), "conv2d": ("CONV_2D",)}
_MERGE_OPS = ("CONCATENATION",)


@dataclass
class _Flat:
    """The converted model's object tree and what the rewrite needs of its one subgraph."""

    fb: Any  # tensorflow.lite.tools.flatbuffer_utils
    schema: Any  # schema_py_generated
    obj: Any  # ModelT
    sg: Any  # SubGraphT
    names: list[str]  # builtin op name per operator
    consumers: dict[int, list[int]]  # tensor index -> indices of the operators that read it
    users: dict[int, int]  # buffer index -> how many tensors use it

    @classmethod
    def read(cls, data: bytes) -> _Flat:
        fb, schema = _schema()
        obj = fb.read_model_from_bytearray(bytearray(data))
        if len(obj.subgraphs) != 1:
            raise ConfigError(
                f"TFLite export: the converted model has {len(obj.subgraphs)} subgraphs, expected 1"
            )
        sg = obj.subgraphs[0]
        names = [fb.opcode_to_name(obj, op.opcodeIndex) for op in sg.operators]
        consumers: dict[int, list[int]] = {}
        for k, op in enumerate(sg.operators):
            for t in op.inputs:
                if int(t) >= 0:
                    consumers.setdefault(int(t), []).append(k)
        users: dict[int, int] = {}
        for t in sg.tensors:
            users[t.buffer] = users.get(t.buffer, 0) + 1
        return cls(fb, schema, obj, sg, names, consumers, users)

    def tensor(self, i: int):
        return self.sg.tensors[int(i)]


def _finish(
    data: bytes,
    net: _Net,
    codes: dict[str, tuple[np.ndarray, np.ndarray]] | None,
    variant: str,
) -> tuple[bytes, dict[str, tuple[float, int]] | None, tuple[float, int] | None]:
    """Name the I/O and weight / bias tensors, write the LAQ grid (int8 with codes), read the I/O quantization."""
    f = _Flat.read(data)
    inputs, output = _name_io(f, net)
    for layer, k in _locate(f, net, inputs, output):
        op = f.sg.operators[k]
        want = list(layer.tflite_layout(layer.weight).shape)
        wt = f.tensor(op.inputs[1])
        if [int(s) for s in wt.shape] != want:
            raise ConfigError(
                f"TFLite export: {f.names[k]} for {layer.name!r} has weight shape {list(wt.shape)}, expected "
                f"{want} (the torch weight {list(layer.weight.shape)} in TFLite's layout)"
            )
        wt.name = f"{layer.name}.weight".encode()
        if len(op.inputs) > 2 and int(op.inputs[2]) >= 0:
            f.tensor(op.inputs[2]).name = f"{layer.name}.bias".encode()
        if codes and layer.name in codes:
            q, s = codes[layer.name]
            _write_grid(f, op, layer, layer.tflite_layout(np.asarray(q)), np.asarray(s, np.float32))
    in_q = {n: _io_quant(f.schema, f.tensor(t), variant, f"input {n!r}") for n, t in inputs.items()}
    out_q = _io_quant(f.schema, f.tensor(output), variant, f"output {OUTPUT!r}")
    data = bytes(f.fb.convert_object_to_bytearray(f.obj))
    return data, (in_q if variant == "int8" else None), out_q


def _name_io(f: _Flat, net: _Net) -> tuple[dict[str, int], int]:
    """Input name -> tensor index and the output's index, from the converter's signature (its keys are the
    TensorSpec names); the tensors are renamed to those names (the converter's are "serving_default_x:0")."""
    sigs = f.obj.signatureDefs or []
    if len(sigs) != 1:
        raise ConfigError(f"TFLite export: the converted model has {len(sigs)} signatures, expected 1")

    def keyed(maps) -> dict[str, int]:
        return {
            (m.name.decode() if isinstance(m.name, bytes) else str(m.name)): int(m.tensorIndex) for m in maps
        }

    inputs, outputs = keyed(sigs[0].inputs), keyed(sigs[0].outputs)
    if set(inputs) != set(net.inputs) or list(outputs) != [OUTPUT]:
        raise ConfigError(
            f"TFLite export: the converted signature has inputs {sorted(inputs)} and outputs {sorted(outputs)}, "
            f"expected {list(net.inputs)} and [{OUTPUT!r}]"
        )
    if sorted(int(t) for t in f.sg.inputs) != sorted(inputs.values()) or [int(t) for t in f.sg.outputs] != [
        outputs[OUTPUT]
    ]:
        raise ConfigError("TFLite export: the signature's tensors are not the subgraph's inputs and output")
    for name, t in (*inputs.items(), (OUTPUT, outputs[OUTPUT])):
        f.tensor(t).name = name.encode()
    return {n: inputs[n] for n in net.inputs}, outputs[OUTPUT]


def _walk(
    f: _Flat, start: int, output: int, merges: tuple[str, ...] = _MERGE_OPS
) -> tuple[list[int], int, int | None]:
    """Follow the activation from tensor `start`: (weight ops met, in order; the last tensor; the merge op
    (`merges`: CONCATENATION, or ADD for parallel chains) the walk stopped at, or None at the graph output)."""
    ops: list[int] = []
    t = start
    while t != output:
        readers = f.consumers.get(t, [])
        if len(readers) != 1:
            raise ConfigError(
                f"TFLite export: tensor {f.tensor(t).name!r} feeds {len(readers)} ops; the export expects one "
                "chain of ops per input"
            )
        k = readers[0]
        op = f.sg.operators[k]
        if f.names[k] in merges:
            return ops, t, k
        if f.names[k] in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D"):
            if int(op.inputs[0]) != t:
                raise ConfigError(f"TFLite export: {f.names[k]} #{k} does not take the activation as input 0")
            ops.append(k)
        t = int(op.outputs[0])
    return ops, t, None


def _locate(f: _Flat, net: _Net, inputs: dict[str, int], output: int) -> list[tuple[_Layer, int]]:
    """(torch layer, index of its FULLY_CONNECTED / CONV_2D op) for every layer, by data flow.

    From each graph input the activation is followed through single-reader ops (transposes, reshapes,
    pools, ...) to the CONCATENATION that merges the branches (several inputs) or to the graph output (one
    input); with several inputs, all branches must reach the same CONCATENATION, as its inputs in the model's
    input order, and the walk goes on from its output to the graph output. The k-th weight op met on a chain
    is that chain's k-th torch layer (registration order = the forward's order, which `_check_tf_graph`
    confirms on the TF side); names are not used (the converter names tensors after TF ops), and shapes alone
    would be ambiguous for equal layers. The caller then checks each weight's shape.
    """
    chains: list[tuple[list[int], list[_Layer]]] = []
    if net.parallel:
        chains = _parallel_chains(f, net, inputs, output)
    elif len(net.inputs) == 1:
        (name,) = net.inputs
        ops, _, merge = _walk(f, inputs[name], output)
        if merge is not None:
            raise ConfigError("TFLite export: a one-input model's graph has a CONCATENATION")
        chains.append((ops, net.layers(net.branches[name]) + net.layers(net.head)))
    else:
        merges = set()
        for pos, name in enumerate(net.inputs):
            ops, last, merge = _walk(f, inputs[name], output)
            if merge is None or int(f.sg.operators[merge].inputs[pos]) != last:
                raise ConfigError(
                    f"TFLite export: the branch of input {name!r} does not reach the CONCATENATION as its "
                    f"input #{pos}"
                )
            merges.add(merge)
            chains.append((ops, net.layers(net.branches[name])))
        (merge,) = merges if len(merges) == 1 else (None,)
        if merge is None or len(f.sg.operators[merge].inputs) != len(net.inputs):
            raise ConfigError(
                "TFLite export: the input branches do not meet in one CONCATENATION of them all"
            )
        ops, _, again = _walk(f, int(f.sg.operators[merge].outputs[0]), output)
        if again is not None:
            raise ConfigError("TFLite export: a second CONCATENATION after the merge of the inputs")
        chains.append((ops, net.layers(net.head)))
    found: list[tuple[_Layer, int]] = []
    for ops, layers in chains:
        if len(ops) != len(layers):
            raise ConfigError(
                f"TFLite export: {len(ops)} weight ops ({[f.names[k] for k in ops]}) on the chain of "
                f"{[la.name for la in layers]}: cannot map them one to one"
            )
        for k, la in zip(ops, layers, strict=True):
            if f.names[k] not in _WEIGHT_OPS[la.kind]:
                raise ConfigError(f"TFLite export: {la.name!r} ({la.kind}) maps to a {f.names[k]} op")
            found.append((la, k))
    return found


def _parallel_chains(
    f: _Flat, net: _Net, inputs: dict[str, int], output: int
) -> list[tuple[list[int], list[_Layer]]]:
    """(weight ops, torch layers) of each of the parallel chains that read the one input and meet in ADDs.

    The converter may order the chains as it likes, so each is matched to its member by name: `_tf_step` names
    a dense layer's bias add after the torch layer, and the converter keeps that name in the fused op's output
    tensor ("MatMul_3;Relu_2;branches_1_features_0"). Every op of a chain must carry its own layer's name."""
    (name,) = net.inputs
    if net.branches[name] or net.head:
        raise ConfigError("TFLite export: parallel chains must read the input directly and end the graph")
    readers = f.consumers.get(inputs[name], [])
    if len(readers) != len(net.parallel):
        raise ConfigError(
            f"TFLite export: the input feeds {len(readers)} ops, expected the {len(net.parallel)} parallel chains"
        )

    def tokens(k: int) -> set[str]:
        out = f.tensor(f.sg.operators[k].outputs[0]).name
        return set((out.decode() if isinstance(out, bytes) else str(out)).split(";"))

    by_first = {_tf_name(net.layers(steps)[0].name): net.layers(steps) for steps in net.parallel}
    chains = []
    for k in readers:
        if f.names[k] not in _WEIGHT_OPS["dense"]:
            raise ConfigError(
                f"TFLite export: the input feeds a {f.names[k]} op, not a parallel chain's layer"
            )
        ops, _, merge = _walk(f, int(f.sg.operators[k].outputs[0]), output, merges=("ADD",))
        ops = [k, *ops]
        hit = [n for n in by_first if n in tokens(k)]
        if len(hit) != 1 or merge is None:
            raise ConfigError(
                f"TFLite export: cannot tell which parallel chain op {k} starts ({sorted(tokens(k))}), or it does "
                "not end in an ADD"
            )
        layers = by_first.pop(hit[0])
        for op, la in zip(ops, layers, strict=False):
            if _tf_name(la.name) not in tokens(op):
                raise ConfigError(f"TFLite export: op {op} of the chain of {hit[0]!r} is not {la.name!r}")
        chains.append((ops, layers))
    n_weight = sum(f.names[k] in ("FULLY_CONNECTED", "CONV_2D") for k in range(len(f.sg.operators)))
    if n_weight != sum(len(ops) for ops, _ in chains):
        raise ConfigError("TFLite export: weight ops outside the parallel chains")
    return chains


INT32_MAX = 2**31 - 1


class ExportWarning(UserWarning):
    """The exported variant differs from the model in a bounded, stated way (named layer and size)."""


def _bias_dominated(
    name: str, q: np.ndarray, s: np.ndarray, bias: np.ndarray, x_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Codes and scales with the channels whose int32 bias (bias / (x_scale * s)) would overflow written as
    bias only.

    Such a channel's weighted sum is at most 127 * 128 * K * x_scale * s over the calibrated input range, and
    its bias exceeds 2^31 * x_scale * s: the weights move its output by under 127 * 128 * K / 2^31 of the bias
    (< 0.8 % for K = 1000 inputs), as when a layer's calibrated input is ~0 (dead units). Their codes become 0
    and their scale the smallest that holds the bias, with a warning naming the layer.
    """
    over = np.abs(bias.astype(np.float64)) > INT32_MAX * x_scale * s.astype(np.float64)
    if not over.any():
        return q, s
    fan_in = int(np.prod(q.shape[1:]))
    warnings.warn(
        f"TFLite export: {name!r}: {int(over.sum())} of {len(s)} channels have a bias beyond int32 at the "
        f"calibrated input scale {x_scale:.3g}; their weights (at most {127 * 128 * fan_in / 2**31:.2%} of the "
        "bias) are written as 0 in the int8 variant",
        ExportWarning,
        stacklevel=3,
    )
    q, s = q.copy(), s.astype(np.float64).copy()
    q[over] = 0
    s[over] = np.abs(bias[over]) / (x_scale * (INT32_MAX // 2))
    return q, s.astype(np.float32)


def _write_grid(f: _Flat, op, layer: _Layer, q: np.ndarray, s: np.ndarray, axis: int = 0) -> None:
    """Replace one int8 weight by the LAQ codes `q` (TFLite layout, output channels on `axis`: 0, or 3 for
    DEPTHWISE_CONV_2D [1, kh, kw, O]) and scales `s`; requantize its int32 bias."""
    schema, name = f.schema, layer.name
    wt = f.tensor(op.inputs[1])
    if wt.type != schema.TensorType.INT8:
        raise ConfigError(f"TFLite export: the int8 model's weight of {name!r} is not int8 (type {wt.type})")
    wq = wt.quantization
    if wq is None or wq.scale is None or len(wq.scale) != q.shape[axis] or wq.quantizedDimension != axis:
        raise ConfigError(
            f"TFLite export: the int8 weight of {name!r} is not quantized per output channel "
            f"(quantized_dimension {axis}), so the LAQ scales cannot be written into it"
        )
    if f.users[wt.buffer] != 1:
        raise ConfigError(f"TFLite export: the weight buffer of {name!r} is shared with other tensors")
    buf = f.obj.buffers[wt.buffer]
    if buf.data is None or len(buf.data) != q.size:
        raise ConfigError(f"TFLite export: the int8 weight of {name!r} has no inline data of {q.size} bytes")
    xq = f.tensor(op.inputs[0]).quantization
    if xq is None or xq.scale is None or len(xq.scale) != 1:
        raise ConfigError(f"TFLite export: the input of {name!r} has no per-tensor int8 scale")
    if len(op.inputs) < 3 or int(op.inputs[2]) < 0:
        raise ConfigError(f"TFLite export: the op of {name!r} has no bias tensor")
    bt = f.tensor(op.inputs[2])
    if bt.type != schema.TensorType.INT32 or f.users[bt.buffer] != 1:
        raise ConfigError(f"TFLite export: the bias of {name!r} is not an unshared int32 tensor")
    q, s = _bias_dominated(name, np.moveaxis(q, axis, 0), s, layer.bias, float(xq.scale[0]))
    q = np.moveaxis(q, 0, axis)
    buf.data = np.frombuffer(np.ascontiguousarray(q.astype(np.int8)).tobytes(), dtype=np.uint8).copy()
    wq.scale = [float(v) for v in s]
    wq.zeroPoint = [0] * len(s)
    wq.min = wq.max = None

    bias_scale = np.float64(xq.scale[0]) * s.astype(np.float64)
    bq = np.round(layer.bias.astype(np.float64) / bias_scale)
    if not np.all(np.abs(bq) <= INT32_MAX):
        raise ConfigError(f"TFLite export: the requantized int32 bias of {name!r} overflows")
    f.obj.buffers[bt.buffer].data = np.frombuffer(bq.astype("<i4").tobytes(), dtype=np.uint8).copy()
    bt.quantization.scale = [float(v) for v in bias_scale.astype(np.float32)]
    bt.quantization.zeroPoint = [0] * len(s)
    bt.quantization.quantizedDimension = 0
    bt.quantization.min = bt.quantization.max = None


def _io_quant(schema, t, variant: str, what: str) -> tuple[float, int] | None:
    if variant != "int8":
        if t.type != schema.TensorType.FLOAT32:
            raise ConfigError(f"TFLite export: the {variant} model's {what} is not float32 (type {t.type})")
        return None
    q = t.quantization
    if t.type != schema.TensorType.INT8 or q is None or q.scale is None or len(q.scale) != 1:
        raise ConfigError(f"TFLite export: the int8 model's {what} is not int8 with one scale")
    return float(q.scale[0]), int(q.zeroPoint[0])


# --------------------------------------------------------------------------------------------------------------
# running and inspecting
# --------------------------------------------------------------------------------------------------------------


def interpreter(m: TFLiteModel | bytes, threads: int | None = None):
    """A TFLite Interpreter (ai_edge_litert's, else tensorflow's) over the model, tensors allocated."""
    data = m.data if isinstance(m, TFLiteModel) else bytes(m)
    it = _interpreter_cls()(model_content=data, num_threads=threads)
    it.allocate_tensors()
    return it


def run_tflite(m: TFLiteModel, x: Inputs) -> np.ndarray:
    """Float logits [n, classes] of the graph's inputs, through the device's own TFLite engine
    (`edge_ser.engines.tflite.TFLiteEngine.from_model`: int8 quantize in / dequantize out, batches by resizing).

    Args:
        m: an exported model.
        x: float32 [n, *shape] (or one sample [*shape]) for a one-input model, or {input name: array}; the
            normalised input STANDARDISED (`standardize_inputs`), as the graph takes it.
    """
    from edge_ser.engines.tflite import TFLiteEngine

    engine = TFLiteEngine.from_model(
        m.data,
        m.inputs,
        variant=m.variant,
        input_quant=m.input_quant,
        output_quant=m.output_quant,
        input_phases=m.input_phases,
        output_phases=m.output_phases,
    )
    return engine.predict(x)


def op_names(m: TFLiteModel | bytes) -> list[str]:
    """The builtin operator names of the model's main subgraph, in execution order."""
    fb, _ = _schema()
    obj = fb.read_model_from_bytearray(bytearray(m.data if isinstance(m, TFLiteModel) else m))
    return [fb.opcode_to_name(obj, op.opcodeIndex) for op in obj.subgraphs[0].operators]


def layer_weights(m: TFLiteModel) -> dict[str, np.ndarray]:
    """Layer -> the stored data of its "<layer>.weight" tensor (TFLite layout), read through the interpreter:
    the float32 weights of an fp32 model, the int8 codes of an int8 one (fp16 weights are DEQUANTIZE outputs,
    not stored data)."""
    it = interpreter(m)
    return {
        t["name"][: -len(".weight")]: np.array(it.get_tensor(t["index"]))
        for t in it.get_tensor_details()
        if t["name"].endswith(".weight")
    }


def int8_weights(m: TFLiteModel) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """Layer -> (int8 data, scales, zero points, quantized_dimension) of each "<layer>.weight" tensor of an
    int8 model, read back through the interpreter (`get_tensor` and the tensor's quantization parameters).
    The data are in TFLite's layout (`_Layer.tflite_layout`: Linear [out, in], Conv2d [O, kh, kw, I],
    Conv1d [O, 1, k, I])."""
    it = interpreter(m)
    out = {}
    for t in it.get_tensor_details():
        name = t["name"]
        if name.endswith(".weight") and np.dtype(t["dtype"]) == np.int8:
            qp = t["quantization_parameters"]
            out[name[: -len(".weight")]] = (
                np.array(it.get_tensor(t["index"])),
                np.asarray(qp["scales"], np.float32),
                np.asarray(qp["zero_points"]),
                int(qp["quantized_dimension"]),
            )
    return out
