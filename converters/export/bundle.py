"""Building a model bundle on the host: weight-free ONNX graph + packed weights + manifest.

The manifest carries everything the device needs (labels, the input kind's blocks and FeatureSpec,
normalisation, BitPlan, per-layer params/bits/bytes/FLOPs, the accuracy and the split it was measured on);
`edge_ser.bundle` verifies and loads it.
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import edge_ser
from converters.export.onnx_export import export_model, externalize, graph_json, initializers
from converters.quant.bitplan import BitPlan, quantizable_layers
from edge_ser.bundle import MANIFEST_SCHEMA_VERSION, TFLITE_VARIANTS, write_bundle
from edge_ser.errors import ConfigError
from edge_ser.flops import GraphCount, count_graph, weight_infos
from edge_ser.inputs import InputKind
from edge_ser.packed import ALIGNMENT, RAW_BITS, SCALE_BITS, Tensor, write_esq


@dataclass(frozen=True)
class Packing:
    """How the .esq file stores a model: its float tensors that are not quantized (biases, normalisation) at
    `raw_bits` (32, or 16: they must then already be float16 values, `round_raw_to_fp16`), every data block
    aligned to `alignment` bytes, the quantized layers' per-channel scales at `scale_bits` (32, or 16: they must
    then already be float16 values, `round_scales_to_fp16`; the file is then format version 2). The default
    suits any model; face_fer's 39 tensors take ~2 KB less with (16, 16), and ~2 KB less again with 16-bit scales."""

    raw_bits: int = 32
    alignment: int = ALIGNMENT
    scale_bits: int = 32

    def __post_init__(self) -> None:
        if self.raw_bits not in RAW_BITS:
            raise ConfigError(f"Packing.raw_bits={self.raw_bits!r} must be one of {RAW_BITS}")
        if self.scale_bits not in SCALE_BITS:
            raise ConfigError(f"Packing.scale_bits={self.scale_bits!r} must be one of {SCALE_BITS}")


@torch.no_grad()
def round_raw_to_fp16(model: nn.Module, codes: Mapping[str, Any]) -> nn.Module:
    """Round every float parameter and buffer of `model` that is not a quantized layer's weight (a key of
    `codes`) to the nearest float16, in place, so a `Packing(raw_bits=16)` file holds exactly this model."""
    quantized = {f"{layer}.weight" for layer in codes}
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if name not in quantized and t.is_floating_point():
            t.copy_(t.to(torch.float16).to(t.dtype))
    return model


FP16_MIN_NORMAL = float(np.finfo(np.float16).tiny)
"""Smallest normal float16 (2^-14): a scale below it would become a subnormal and lose relative precision."""


@torch.no_grad()
def round_scales_to_fp16(model: nn.Module, codes: dict[str, tuple[np.ndarray, np.ndarray]]) -> nn.Module:
    """Round every quantized layer's per-channel scales (`codes[layer] = (codes, scales)`, from `freeze`) to the
    nearest float16, in place, and set the layer's weight to codes x the rounded scales, so a
    `Packing(scale_bits=16)` file holds exactly this model. Each weight moves by at most 2^-11 of itself."""
    layers = quantizable_layers(model)
    for layer, (q, s) in codes.items():
        if layer not in layers:
            raise ConfigError(f"{layer}: a quantized layer the model does not have")
        s16 = s.astype(np.float16).astype(np.float32)
        normal = np.isfinite(s16) & (s16 >= FP16_MIN_NORMAL)
        if not normal.all():
            i = int(np.flatnonzero(~normal)[0])
            raise ConfigError(
                f"{layer}: scale of output channel {i} is {float(s.reshape(-1)[i])!r}, outside float16's normal "
                f"range ({FP16_MIN_NORMAL:g} .. 65504; it would round to inf, or lose more than 2^-11 of itself as a "
                "subnormal or 0): keep 32-bit scales for this model"
            )
        codes[layer] = (q, s16)
        w = q.astype(np.float32) * s16.reshape((-1,) + (1,) * (q.ndim - 1))
        layers[layer].weight.copy_(torch.from_numpy(w))
    return model


def layer_table(model: nn.Module, plan: BitPlan, counts: GraphCount) -> list[dict[str, Any]]:
    """Per quantizable layer: params (weight + bias), bits, stored bytes (codes + scales + bias), FLOPs, ...

    FLOPs and bytes are the exported graph's node for the layer (the node reading `<layer>.weight`) as
    `edge_ser.flops` counts it (`counts`: the one counter, by its `CONVENTION`: dense 2 * in * out + out per
    sample, conv 2 * Y * Ci * Co * K + Y * Co, Y output positions, K kernel taps); `bytes` are its weights at
    their stored bits. Each row also has the node's `activation_bytes` (float32 read + written), `intensity`
    (FLOP per byte) and `out_shape` (batch 1). A layer with no node in the graph gets flops None.
    """
    nodes = counts.by_layer()
    rows = []
    for name, m in quantizable_layers(model).items():
        bits = plan.bits.get(name, 32)
        w, out_ch = m.weight.numel(), m.weight.shape[0]
        bias = m.bias.numel() if m.bias is not None else 0
        wbytes = w * 4 if bits == 32 else -(-w * bits // 8) + 4 * out_ch
        row = {"name": name, "op": type(m).__name__, "params": w + bias, "bits": bits}
        row["bytes"] = wbytes + 4 * bias
        node = nodes.get(name)
        if node is None:
            row["flops"] = None
        else:
            row.update(
                bytes=node.weight_bytes,
                flops=node.flops,
                activation_bytes=node.activation_bytes,
                intensity=node.intensity,
                out_shape=list(node.out_shapes[0]),
            )
        rows.append(row)
    return rows


def packed_tensors(
    proto,
    plan: BitPlan,
    codes: dict[str, tuple[np.ndarray, np.ndarray]],
    raw_bits: int = 32,
    scale_bits: int = 32,
) -> list[Tensor]:
    """One .esq tensor per float ONNX initializer: quantized layer weights as codes + scales (scales at
    `scale_bits`), the rest as float at `raw_bits` (16 for either: each value must be exactly a float16, else
    ConfigError naming the tensor).

    int64 initializers (Reshape target shapes) are not weights: they stay inline in model.onnx."""
    tensors = []
    weight_of = {f"{layer}.weight": layer for layer in codes}
    for name, arr in initializers(proto).items():
        if arr.dtype == np.int64:
            continue
        layer = weight_of.get(name)
        if layer is None:
            values = np.array(arr, dtype=np.float32, order="C")  # keeps 0-d scalars 0-d
            if raw_bits == 16 and not np.array_equal(values.astype(np.float16).astype(np.float32), values):
                raise ConfigError(
                    f"{name}: not exactly float16, so a 16-bit raw tensor would change the model "
                    "(round it first: round_raw_to_fp16)"
                )
            tensors.append(Tensor.raw(name, values, bits=raw_bits))
            continue
        q, s = codes[layer]
        if not np.array_equal(q.astype(np.float32) * s.reshape((-1,) + (1,) * (q.ndim - 1)), arr):
            raise ConfigError(
                f"{name}: the exported weight is not exactly its codes x scales (model not frozen?)"
            )
        tensors.append(Tensor.quantized(name, q, s, plan.bits[layer], scale_bits=scale_bits))
    missing = sorted(set(weight_of) - set(initializers(proto)))
    if missing:
        raise ConfigError(f"quantized layers {missing} have no ONNX initializer of that name")
    return tensors


def _check_accuracy(accuracy: Mapping[str, Any]) -> None:
    """A bundle that reports an accuracy says what it was measured on: `dataset` (text) and `split` (a mapping
    with at least "kind", e.g. {"kind": "random", "seed": 0, "sizes": {...}}), else ConfigError. `{}` (no
    figures) is allowed."""
    if not isinstance(accuracy, Mapping):
        raise ConfigError(f"accuracy must be a mapping, got {type(accuracy).__name__}")
    figures = sorted(
        k for k, v in accuracy.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    )
    if not figures:
        return
    dataset, split = accuracy.get("dataset"), accuracy.get("split")
    missing = []
    if not isinstance(dataset, str) or not dataset.strip():
        missing.append("'dataset' (the data set's name)")
    if not isinstance(split, Mapping) or not split.get("kind"):
        missing.append("'split' (a mapping such as {'kind': 'random', 'seed': 0, 'sizes': ...})")
    if missing:
        raise ConfigError(
            f"accuracy {figures} must say what it was measured on: add {' and '.join(missing)} "
            "to the accuracy block (`edge-ser info` prints them)"
        )


def build_bundle(
    out: str | os.PathLike,
    model: nn.Module,
    plan: BitPlan,
    codes: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    name: str,
    labels: list[str],
    kind: InputKind,
    accuracy: dict[str, Any],
    as_tar: bool = False,
    extra: dict[str, Any] | None = None,
    tflite_calibration: np.ndarray | Mapping[str, np.ndarray] | None = None,
    packing: Packing = Packing(),
) -> Path:
    """Export a frozen (QAT) model to a bundle directory or .tar at `out`; returns its path.

    `kind` is the model's input kind (`edge_ser.inputs`: VectorKind(spec), PatchesKind(lms_spec),
    AVKind(av_spec, input names), ...): the manifest gets its blocks, its feature spec and, when the model
    standardises an input, that input's statistics. With `tflite_calibration` (raw training inputs: an array, or
    {input name: array}) the bundle also carries TFLite fp32, float16 and full-int8 variants (needs tensorflow,
    a host-only extra); they take standardised inputs. `packing`: how weights.esq stores the model (`Packing`).
    """
    _check_accuracy(accuracy)
    model = model.eval()
    shapes = {k: tuple(v) for k, v in model.input_shapes().items()}
    want = {k: tuple(v) for k, v in kind.input_shapes.items()}
    if shapes != want:
        raise ConfigError(f"the model takes inputs {shapes}, its {kind.name} input kind gives {want}")
    norm_input = kind.standardized_input
    if norm_input is not None and not all(
        isinstance(getattr(model, a, None), torch.Tensor) for a in ("mean", "std")
    ):
        raise ConfigError(
            f"{name}: its {kind.name} input kind says the model standardises input {norm_input!r} in its graph "
            f"(InputKind.standardized_input), but {type(model).__name__} has no 'mean' / 'std' buffers: register "
            "them, or give the kind standardized_input None if the model takes its input as the kind makes it"
        )
    proto = export_model(model)
    tensors = packed_tensors(proto, plan, codes, packing.raw_bits, packing.scale_bits)
    with tempfile.TemporaryDirectory() as tmp:
        esq = write_esq(
            Path(tmp) / "weights.esq", tensors, metadata={"model": name}, alignment=packing.alignment
        )
        esq_bytes = esq.read_bytes()
    g = graph_json(proto)
    counts = count_graph(g, weight_infos(tensors))
    manifest: dict[str, Any] = {
        "schema": "edge-ser-bundle",
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "edge_ser_version": edge_ser.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": {"name": name, "inputs": g["inputs"], "outputs": g["outputs"]},
        "labels": list(labels),
        "feature_spec": kind.feature_spec.to_dict(),
        **kind.manifest_blocks(),
        "bitplan": {
            "method": plan.method,
            "bits": dict(plan.bits),
            "params": dict(plan.params),
            "average_bits": plan.average_bits,
        },
        "layers": layer_table(model, plan, counts),
        "flops": counts.summary(),
        "accuracy": accuracy,
        **(extra or {}),
    }
    if norm_input is not None:
        mean, std = (
            model.mean.reshape(-1).tolist(),
            model.std.reshape(-1).tolist(),
        )  # scalars for patch models
        manifest["normalization"] = {"mean": mean, "std": std, "in_graph": True, "input": norm_input}
    files = {"model.onnx": externalize(proto).SerializeToString(), "weights.esq": esq_bytes}
    if tflite_calibration is not None:
        block, tfl_files = tflite_variants(model, codes, tflite_calibration)
        manifest["tflite"] = block
        files.update(tfl_files)
    return write_bundle(out, manifest=manifest, files=files, as_tar=as_tar)


def tflite_variants(
    model: nn.Module,
    codes: dict[str, tuple[np.ndarray, np.ndarray]],
    calibration: np.ndarray | Mapping[str, np.ndarray],
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest's `tflite` block and the .tflite files of the three variants of a frozen model.

    `calibration` holds RAW training inputs: an array for a one-input model (laq_mlp's feature vectors), or
    {input name: array} (av_cnn: "faces" [n, 6, 64, 64] in [0, 1], "audio" [n, 6, 40] MFCCs). The input the
    model standardises is standardised here (the TFLite graphs take it standardised), and the int8 variant is
    calibrated on all rows. Each variant's entry lists every model input by name, in the model's input order:

        {"file": "model_int8.tflite",
         "inputs": {"faces": {"dtype": "int8", "scale": 0.0039, "zero_point": -128}, "audio": {...}},
         "output": {"dtype": "int8", "scale": 0.05, "zero_point": 3}}

    (float variants: {"dtype": "float32"} each, no quantization).
    """
    from converters.export.tflite_export import export_tflite, standardize_inputs

    def tensor_entry(quant: tuple[float, int] | None) -> dict[str, Any]:
        """float32, or int8 with its (scale, zero_point)."""
        if quant is None:
            return {"dtype": "float32"}
        return {"dtype": "int8", "scale": float(quant[0]), "zero_point": int(quant[1])}

    calib = standardize_inputs(model, calibration)
    variants, files = {}, {}
    for variant in TFLITE_VARIANTS:
        m = export_tflite(
            model, variant, calibration=calib if variant == "int8" else None, codes=codes or None
        )
        name = f"model_{variant}.tflite"
        files[name] = m.data
        in_q = m.input_quant or {}
        variants[variant] = {
            "file": name,
            "inputs": {n: tensor_entry(in_q.get(n)) for n in m.inputs},
            "output": tensor_entry(m.output_quant),
        }
    return {"normalization_in_graph": False, "variants": variants}, files
