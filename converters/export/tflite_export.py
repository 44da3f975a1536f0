"""TFLite export of the MLP models: fp32, fp16 (float16 weights) and full-integer int8 flatbuffers.

    m = export_tflite(model, "int8", calibration=Z_train, codes=compressed.codes)
    logits = run_tflite(m, Z_test)          # Z = (X - model.mean) / model.std, float32 [n, 180]

Route (docs/tflite.md has the measurements that chose it): the torch Linear/ReLU chain is rebuilt as a TF
graph of MatMul + bias (+ ReLU) on constant weights and converted with tensorflow's own TFLite converter
(`TFLiteConverter.from_concrete_functions`), which fuses each block into one FULLY_CONNECTED op. tensorflow is
a host-only extra (`edge-ser[tf-export]`); it is imported inside the functions that need it.

The graph takes the STANDARDISED feature vector and returns logits (no softmax): the model's `mean` / `std`
buffers are not in it. An int8 input has one scale per tensor, and raw features span many orders of magnitude
(MFCCs ~ +-500, mel powers ~ 1e-6..1e2), so (x - mean) / std stays outside, in float32, on the device.

int8: calibrated (min/max) on `calibration`, int8 input and output, int8 per-output-channel weights, int32
biases. With `codes` (layer -> (int8 LAQ codes, float32 per-channel scales), as `freeze` returns them), every
FULLY_CONNECTED weight of the converted model is rewritten afterwards so its int8 data ARE the LAQ codes and its
scales the LAQ scales (zero points 0), and the layer's int32 bias is requantized with
bias_scale[c] = input_scale * weight_scale[c]: the dequantized int8 weights then equal the QAT weights exactly.
FULLY_CONNECTED ops are matched to the torch Linear layers by data flow (the ops must form one chain from the
graph input to its output, in the torch layers' order) and checked by weight shape; weight and bias tensors
are renamed "<layer>.weight" / "<layer>.bias" in every variant.

TF prints start-up noise: TF_CPP_MIN_LOG_LEVEL=3 and TF_ENABLE_ONEDNN_OPTS=0 are set (setdefault) before the
first import of tensorflow here.
"""

from __future__ import annotations

import itertools
import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from edge_ser.errors import ConfigError, MissingDependencyError

VARIANTS = ("fp32", "fp16", "int8")
"""The TFLite variants export_tflite makes (as edge_ser.engines.TFLITE_VARIANTS)."""
INPUT = "features"
_QMIN, _QMAX = -128, 127


@dataclass(frozen=True)
class TFLiteModel:
    """One converted model: its variant, the .tflite flatbuffer and the int8 input / output quantization."""

    variant: str  # "fp32" | "fp16" | "int8"
    data: bytes  # the .tflite flatbuffer
    input_quant: tuple[float, int] | None  # (scale, zero_point) of the int8 input, None for float variants
    output_quant: tuple[float, int] | None  # (scale, zero_point) of the int8 output


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
# the torch model as a chain of dense layers
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Dense:
    name: str  # the torch module name, e.g. "features.0"
    weight: np.ndarray  # float32 [out, in] (torch layout = TFLite FULLY_CONNECTED layout)
    bias: np.ndarray  # float32 [out]
    relu: bool = False


def _dense_chain(model: nn.Module) -> list[_Dense]:
    """The model's Linear layers in registration order, each with whether a ReLU follows it.

    Supported: standardise (buffers `mean` / `std`, left out of the graph) -> Linear [-> ReLU] [-> Dropout] ...
    -> Linear, as LaqMLP. Anything else raises ConfigError; `_check_chain` then checks the order against the
    model's own forward.
    """
    chain: list[_Dense] = []
    for name, m in model.named_modules():
        if m is model or isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            continue
        if parametrize.is_parametrized(m):
            raise ConfigError(
                f"TFLite export: layer {name!r} still carries a QAT parametrization; export the frozen model "
                "(converters.quant.qat.freeze / Compressed.model)"
            )
        if isinstance(m, nn.Linear):
            w = m.weight.detach().cpu().float().numpy()
            b = (
                m.bias.detach().cpu().float().numpy()
                if m.bias is not None
                else np.zeros(m.out_features, np.float32)
            )
            chain.append(_Dense(name, np.ascontiguousarray(w), np.ascontiguousarray(b)))
        elif isinstance(m, nn.ReLU):
            if not chain or chain[-1].relu:
                raise ConfigError(f"TFLite export: ReLU {name!r} does not follow a Linear layer")
            chain[-1].relu = True
        elif isinstance(m, (nn.Dropout, nn.Identity)):
            continue
        else:
            raise ConfigError(
                f"TFLite export handles MLPs of Linear, ReLU and Dropout layers; {name!r} is "
                f"{type(m).__name__}"
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


def _normalization(model: nn.Module, dim: int) -> tuple[np.ndarray, np.ndarray]:
    mean = getattr(model, "mean", None)
    std = getattr(model, "std", None)
    if isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor):
        return mean.detach().cpu().float().numpy(), std.detach().cpu().float().numpy()
    return np.zeros(dim, np.float32), np.ones(dim, np.float32)


def _chain_numpy(chain: list[_Dense], z: np.ndarray) -> np.ndarray:
    h = z.astype(np.float32)
    for d in chain:
        h = h @ d.weight.T + d.bias
        if d.relu:
            h = np.maximum(h, 0)
    return h


def _check_chain(model: nn.Module, chain: list[_Dense]) -> None:
    """The chain on standardised rows must reproduce the model's forward on the raw rows (else ConfigError)."""
    dim = chain[0].weight.shape[1]
    mean, std = _normalization(model, dim)
    z = np.random.default_rng(0).standard_normal((16, dim)).astype(np.float32)
    x = (mean + z * std).astype(np.float32)
    zs = (x - mean) / std  # exactly what the model computes in float32
    was_training = model.training
    model.eval()
    device = next(iter(model.parameters())).device
    try:
        with torch.no_grad():
            ref = model(torch.as_tensor(x, device=device)).detach().cpu().float().numpy()
    finally:
        model.train(was_training)
    got = _chain_numpy(chain, zs)
    if ref.shape != got.shape or np.abs(ref - got).max() > 1e-4 * max(float(np.abs(ref).max()), 1e-6):
        raise ConfigError(
            "TFLite export: the model's forward is not standardise -> its Linear/ReLU layers in registration "
            "order -> logits; export supports MLPs like converters.models.LaqMLP"
        )


def _check_codes(chain: list[_Dense], codes: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Every coded layer exists, its codes fit int8, and the model's weight IS float32(code) * scale."""
    by_name = {d.name: d for d in chain}
    for layer, (q, s) in codes.items():
        if layer not in by_name:
            raise ConfigError(f"TFLite export: codes for {layer!r}, which is not a Linear layer of the model")
        w = by_name[layer].weight
        q, s = np.asarray(q), np.asarray(s, dtype=np.float32)
        if q.shape != w.shape or s.shape != (w.shape[0],):
            raise ConfigError(
                f"TFLite export: codes of {layer!r} have shape {q.shape} / scales {s.shape}, weight {w.shape}"
            )
        if q.min() < -127 or q.max() > 127 or not np.all(s > 0):
            raise ConfigError(f"TFLite export: codes of {layer!r} outside [-127, 127] or scales not > 0")
        grid = q.astype(np.float32) * s[:, None]
        if not np.allclose(grid, w, rtol=1e-6, atol=1e-6 * float(s.max())):
            raise ConfigError(
                f"TFLite export: the model's {layer!r} weight is not float32(codes) * scales; pass the "
                "frozen QAT model together with its own codes"
            )


def _check_calibration(model: nn.Module, chain: list[_Dense], calibration: Any) -> np.ndarray:
    dim = chain[0].weight.shape[1]
    cal = np.asarray(calibration, dtype=np.float32)
    if cal.ndim != 2 or cal.shape[1] != dim or cal.shape[0] < 1:
        raise ConfigError(
            f"TFLite export: calibration must be float32 [n, {dim}], got shape {list(cal.shape)}"
        )
    if not np.isfinite(cal).all():
        raise ConfigError("TFLite export: calibration has NaN or inf values")
    _, std = _normalization(model, dim)
    # standardised columns have a spread of ~1, raw ones the model's `std` buffer: compare log-spreads
    spread = cal.std(0)
    ok = (spread > 0) & (std > 1e-5)
    if cal.shape[0] >= 2 and ok.any():
        off_raw = float(np.median(np.abs(np.log(spread[ok] / std[ok]))))
        off_std = float(np.median(np.abs(np.log(spread[ok]))))
        if off_raw < 0.5 * off_std:
            raise ConfigError(
                "TFLite export: calibration looks like raw features (its per-feature spread is the model's "
                "`std` buffer, not 1); pass the STANDARDISED training features (X - model.mean) / model.std"
            )
    return cal


# --------------------------------------------------------------------------------------------------------------
# conversion
# --------------------------------------------------------------------------------------------------------------


def _converter(tf, chain: list[_Dense]):
    """A TFLiteConverter for the chain as a tf.function on constants (MatMul + add [+ Relu] per layer)."""
    consts = [(tf.constant(d.weight.T), tf.constant(d.bias), d.relu) for d in chain]
    dim = chain[0].weight.shape[1]

    @tf.function(input_signature=[tf.TensorSpec([None, dim], tf.float32, name=INPUT)])
    def logits(x):
        h = x
        for w, b, relu in consts:
            h = tf.matmul(h, w) + b
            if relu:
                h = tf.nn.relu(h)
        return h

    holder = tf.Module()
    holder.logits = logits
    return tf.lite.TFLiteConverter.from_concrete_functions([logits.get_concrete_function()], holder)


def export_tflite(
    model: nn.Module,
    variant: str,
    *,
    calibration: np.ndarray | None = None,
    codes: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> TFLiteModel:
    """Convert an MLP (standardised input -> logits) to a TFLite flatbuffer of `variant`.

    Args:
        model: a LaqMLP-like torch model (Linear / ReLU / Dropout after a standardisation by its `mean` / `std`
            buffers, which the TFLite graph leaves out); a QAT model must be frozen.
        variant: "fp32", "fp16" (float16 weights and biases, DEQUANTIZE to float32 at load) or "int8" (full
            integer: int8 input and output, int8 per-channel weights, int32 biases).
        calibration: int8 only, required: standardised training features float32 [n, in] for the converter's
            min/max activation ranges (every row is used, one at a time).
        codes: layer name -> (int8 codes, float32 per-channel scales) of the model's quantized layers (from
            `freeze` / `compress`). Checked against the model's weights in every variant; in int8 each such
            layer's weight is rewritten to exactly these codes and scales (see the module doc).

    Raises:
        ConfigError: unknown variant, missing or bad calibration, a model that is not such an MLP, or codes
            that do not belong to the model.
        MissingDependencyError: tensorflow is not installed.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"TFLite variant {variant!r} is not known; choose from {list(VARIANTS)}")
    chain = _dense_chain(model)
    _check_chain(model, chain)
    if codes:
        _check_codes(chain, codes)
    if variant == "int8":
        if calibration is None:
            raise ConfigError("TFLite int8 export needs calibration= (standardised training features)")
        cal = _check_calibration(model, chain, calibration)
    elif calibration is not None:
        raise ConfigError(f"TFLite export: calibration is for the int8 variant, not {variant!r}")

    tf = _tf()
    conv = _converter(tf, chain)
    if variant == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif variant == "int8":

        def representative():
            for i in range(cal.shape[0]):
                yield [cal[i : i + 1]]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    with warnings.catch_warnings():
        # "Statistics for quantized inputs were expected, but not specified": the representative data set is
        # what sets them
        warnings.simplefilter("ignore", UserWarning)
        data = conv.convert()
    data, in_q, out_q = _finish(bytes(data), chain, codes if variant == "int8" else None, variant)
    return TFLiteModel(variant, data, in_q, out_q)


# --------------------------------------------------------------------------------------------------------------
# the flatbuffer: map FULLY_CONNECTED ops to layers, name tensors, write the LAQ grid into int8
# --------------------------------------------------------------------------------------------------------------


def _fc_chain(fb, obj, n_layers: int) -> list:
    """The FULLY_CONNECTED operators of the (single) subgraph, checked to form one chain input -> output."""
    if len(obj.subgraphs) != 1:
        raise ConfigError(
            f"TFLite export: the converted model has {len(obj.subgraphs)} subgraphs, expected 1"
        )
    sg = obj.subgraphs[0]
    names = [fb.opcode_to_name(obj, op.opcodeIndex) for op in sg.operators]
    fcs = [op for op, n in zip(sg.operators, names) if n == "FULLY_CONNECTED"]
    if len(fcs) != n_layers:
        raise ConfigError(
            f"TFLite export: the converted model has {len(fcs)} FULLY_CONNECTED ops for {n_layers} Linear "
            f"layers (ops {names})"
        )
    if len(sg.inputs) != 1 or len(sg.outputs) != 1:
        raise ConfigError("TFLite export: the converted model must have one input and one output")
    produced = {int(t): op for op in sg.operators for t in op.outputs}

    def source(t: int) -> int:
        """Follow DEQUANTIZE / QUANTIZE back to the tensor that feeds them (fp16 and float-in graphs)."""
        op = produced.get(t)
        while op is not None and names[sg.operators.index(op)] in ("DEQUANTIZE", "QUANTIZE"):
            t = int(op.inputs[0])
            op = produced.get(t)
        return t

    prev = int(sg.inputs[0])
    for k, op in enumerate(fcs):
        if source(int(op.inputs[0])) != source(prev):
            raise ConfigError(
                f"TFLite export: FULLY_CONNECTED #{k} does not consume the previous layer's output"
            )
        prev = int(op.outputs[0])
    if source(int(sg.outputs[0])) != prev and int(sg.outputs[0]) != prev:
        raise ConfigError("TFLite export: the last FULLY_CONNECTED does not produce the model's output")
    return fcs


def _finish(
    data: bytes,
    chain: list[_Dense],
    codes: dict[str, tuple[np.ndarray, np.ndarray]] | None,
    variant: str,
) -> tuple[bytes, tuple[float, int] | None, tuple[float, int] | None]:
    """Name the weight / bias tensors, write the LAQ grid (int8 with codes), read the I/O quantization."""
    fb, schema = _schema()
    obj = fb.read_model_from_bytearray(bytearray(data))
    fcs = _fc_chain(fb, obj, len(chain))
    sg = obj.subgraphs[0]
    users: dict[int, int] = {}
    for t in sg.tensors:
        users[t.buffer] = users.get(t.buffer, 0) + 1
    for d, op in zip(chain, fcs):
        wt = sg.tensors[int(op.inputs[1])]
        if [int(s) for s in wt.shape] != list(d.weight.shape):
            raise ConfigError(
                f"TFLite export: FULLY_CONNECTED for {d.name!r} has weight shape {list(wt.shape)}, "
                f"the torch layer {list(d.weight.shape)}"
            )
        wt.name = f"{d.name}.weight".encode()
        if len(op.inputs) > 2 and int(op.inputs[2]) >= 0:
            sg.tensors[int(op.inputs[2])].name = f"{d.name}.bias".encode()
        if codes and d.name in codes:
            _write_grid(schema, obj, sg, op, d, codes[d.name], users)
    in_q = _io_quant(schema, sg.tensors[int(sg.inputs[0])], variant, "input")
    out_q = _io_quant(schema, sg.tensors[int(sg.outputs[0])], variant, "output")
    return bytes(fb.convert_object_to_bytearray(obj)), in_q, out_q


def _write_grid(schema, obj, sg, op, d: _Dense, code: tuple[np.ndarray, np.ndarray], users) -> None:
    """Replace one int8 FULLY_CONNECTED weight by the LAQ codes and scales; requantize its int32 bias."""
    q = np.asarray(code[0]).astype(np.int8)
    s = np.asarray(code[1], dtype=np.float32)
    wt = sg.tensors[int(op.inputs[1])]
    if wt.type != schema.TensorType.INT8:
        raise ConfigError(
            f"TFLite export: the int8 model's weight of {d.name!r} is not int8 (type {wt.type})"
        )
    wq = wt.quantization
    if wq is None or wq.scale is None or len(wq.scale) != d.weight.shape[0] or wq.quantizedDimension != 0:
        raise ConfigError(
            f"TFLite export: the int8 weight of {d.name!r} is not quantized per output channel "
            "(quantized_dimension 0), so the LAQ scales cannot be written into it"
        )
    if users[wt.buffer] != 1:
        raise ConfigError(f"TFLite export: the weight buffer of {d.name!r} is shared with other tensors")
    buf = obj.buffers[wt.buffer]
    if buf.data is None or len(buf.data) != q.size:
        raise ConfigError(
            f"TFLite export: the int8 weight of {d.name!r} has no inline data of {q.size} bytes"
        )
    buf.data = np.frombuffer(np.ascontiguousarray(q).tobytes(), dtype=np.uint8).copy()
    wq.scale = [float(v) for v in s]
    wq.zeroPoint = [0] * len(s)
    wq.min = wq.max = None

    xq = sg.tensors[int(op.inputs[0])].quantization
    if xq is None or xq.scale is None or len(xq.scale) != 1:
        raise ConfigError(f"TFLite export: the input of {d.name!r} has no per-tensor int8 scale")
    if len(op.inputs) < 3 or int(op.inputs[2]) < 0:
        raise ConfigError(f"TFLite export: FULLY_CONNECTED of {d.name!r} has no bias tensor")
    bt = sg.tensors[int(op.inputs[2])]
    if bt.type != schema.TensorType.INT32 or users[bt.buffer] != 1:
        raise ConfigError(f"TFLite export: the bias of {d.name!r} is not an unshared int32 tensor")
    bias_scale = np.float64(xq.scale[0]) * s.astype(np.float64)
    bq = np.round(d.bias.astype(np.float64) / bias_scale)
    if np.abs(bq).max(initial=0) > 2**31 - 1:
        raise ConfigError(f"TFLite export: the requantized int32 bias of {d.name!r} overflows")
    obj.buffers[bt.buffer].data = np.frombuffer(bq.astype("<i4").tobytes(), dtype=np.uint8).copy()
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


def run_tflite(m: TFLiteModel, x_standardized: np.ndarray) -> np.ndarray:
    """Float logits [n, classes] of standardised rows float32 [n, in] (int8: quantize in, dequantize out)."""
    x = np.asarray(x_standardized, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    it = interpreter(m)
    inp = it.get_input_details()[0]
    if x.ndim != 2 or x.shape[1] != int(inp["shape"][-1]):
        raise ConfigError(f"run_tflite: input shape {list(x.shape)}, the model takes [n, {inp['shape'][-1]}]")
    if x.shape[0] == 0:
        return np.zeros((0, int(it.get_output_details()[0]["shape"][-1])), np.float32)
    if list(inp["shape"]) != list(x.shape):
        it.resize_tensor_input(inp["index"], list(x.shape), strict=False)
        it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    if inp["dtype"] == np.int8:
        scale, zp = inp["quantization"]
        if m.input_quant is not None and (not np.isclose(scale, m.input_quant[0]) or zp != m.input_quant[1]):
            raise ConfigError(f"run_tflite: input quantization {(scale, zp)} is not {m.input_quant}")
        q = np.rint(x / np.float32(scale)) + np.float32(zp)
        x = np.clip(q, _QMIN, _QMAX).astype(np.int8)
    it.set_tensor(inp["index"], np.ascontiguousarray(x))
    it.invoke()
    y = it.get_tensor(out["index"])
    if out["dtype"] == np.int8:
        scale, zp = out["quantization"]
        y = (y.astype(np.float32) - np.float32(zp)) * np.float32(scale)
    return np.asarray(y, dtype=np.float32)


def op_names(m: TFLiteModel | bytes) -> list[str]:
    """The builtin operator names of the model's main subgraph, in execution order."""
    fb, _ = _schema()
    obj = fb.read_model_from_bytearray(bytearray(m.data if isinstance(m, TFLiteModel) else m))
    return [fb.opcode_to_name(obj, op.opcodeIndex) for op in obj.subgraphs[0].operators]


def int8_weights(m: TFLiteModel) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """Layer -> (int8 data, scales, zero points, quantized_dimension) of each "<layer>.weight" tensor of an
    int8 model, read back through the interpreter (`get_tensor` and the tensor's quantization parameters)."""
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
