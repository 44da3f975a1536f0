"""Phased int8: a chain of int8 FULLY_CONNECTED layers rewritten so every activation is carried as k int8 copies
on grids shifted by a fraction of a step (`edge_ser.bundle.manifest.phase_offsets`), their mean a k times finer
grid over the same range (issue 20: the int8 input and logits grids flipped near-tied clips of ser_ravdess).

    python -m converters.export.tflite_phases bundles/ser_ravdess --input 4 --hidden 2 --output 8

Layer l reads k_in copies of its input and writes k_out copies of its output. Its weight becomes the LAQ codes
tiled k_out x k_in times ([k_out * O, k_in * I], copy-major on both axes) with every per-row scale divided by
k_in (a power of two: exact), so each output copy is W times the mean of the input copies. Output copy p gets
the bias b - o_p * s_out (o_p its offset, s_out its step), so the kernel's own rounding puts it on the shifted
grid; a fused ReLU clamps each copy at its zero point, which keeps the mean 0 below 0 because the offsets sum
to 0. The codes stay the LAQ codes, so `edge-ser info` and the packed format agree with the int8 file; the
price is k_out * k_in times the layer's int8 weights and multiply-adds (ser bundles: 8k -> 57k, still ~60 KB).

The device (`edge_ser.engines.tflite`) quantizes the input's copies with their offsets and averages the output's;
the manifest's `tflite.variants.int8.inputs[n].phases` / `.output.phases` say how many. Only a graph whose ops
are all FULLY_CONNECTED in one chain from its one input to its output is phased (the functionals MLPs);
anything else is a ConfigError naming the op.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converters.export import tflite_export as tfx
from edge_ser.bundle.manifest import TFLITE_PHASES, phase_offsets
from edge_ser.errors import ConfigError

INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class Phasing:
    """How many int8 copies the input, every hidden activation and the output (logits) carry."""

    input: int = 4
    hidden: int = 2
    output: int = 8

    def __post_init__(self) -> None:
        for name in ("input", "hidden", "output"):
            if getattr(self, name) not in TFLITE_PHASES:
                raise ConfigError(
                    f"phased int8: {name} phases must be one of {TFLITE_PHASES}, got {getattr(self, name)!r}"
                )

    def describe(self) -> str:
        return f"input x{self.input}, hidden x{self.hidden}, output x{self.output}"


FUNCTIONALS = Phasing(4, 2, 8)
"""The functionals MLPs' phasing: of the settings simulated on ser_ravdess's 720 clips, (input, hidden, output) =
(4, 2, 8) expects 2.9 flips against fp32 at 7x the multiply-adds (8k -> 57k), (4, 4, 4) 2.7 at 16x, (2, 2, 2) 6.1
at 4x; unphased 11.4 (docs/tflite.md, "phased int8")."""


def _chain(f: tfx._Flat) -> list[int]:
    """The operator indices of the FULLY_CONNECTED chain from the one input to the one output, in order."""
    sg = f.sg
    if len(sg.inputs) != 1 or len(sg.outputs) != 1:
        raise ConfigError(
            f"phased int8: the model has {len(sg.inputs)} inputs and {len(sg.outputs)} outputs; only a one-input, "
            "one-output chain of FULLY_CONNECTED layers is phased"
        )
    order, t = [], int(sg.inputs[0])
    while t != int(sg.outputs[0]):
        readers = f.consumers.get(t, [])
        if len(readers) != 1:
            raise ConfigError(
                f"phased int8: tensor {f.tensor(t).name!r} is read by {len(readers)} ops, not one"
            )
        k = readers[0]
        if f.names[k] != "FULLY_CONNECTED":
            raise ConfigError(
                f"phased int8: op {k} is {f.names[k]}; only chains of FULLY_CONNECTED layers are phased"
            )
        if int(f.sg.operators[k].inputs[0]) != t:
            raise ConfigError(f"phased int8: op {k} reads {f.tensor(t).name!r} as a weight, not as its input")
        order.append(k)
        t = int(f.sg.operators[k].outputs[0])
    if len(order) != len(sg.operators):
        raise ConfigError(
            f"phased int8: {len(sg.operators) - len(order)} ops lie outside the FULLY_CONNECTED chain "
            f"({sorted(set(f.names) - {'FULLY_CONNECTED'})})"
        )
    return order


def _widen(t, k: int) -> None:
    """Tensor [batch, n] -> [batch, k * n] (its shape signature too)."""
    shape = [int(s) for s in t.shape]
    if len(shape) != 2:
        raise ConfigError(
            f"phased int8: tensor {t.name!r} has shape {shape}; only [batch, n] tensors are phased"
        )
    t.shape = np.array([shape[0], k * shape[1]], np.int32)
    if t.shapeSignature is not None and len(t.shapeSignature):
        t.shapeSignature = np.array([int(t.shapeSignature[0]), k * shape[1]], np.int32)


def _scale(f: tfx._Flat, t, what: str) -> float:
    q = t.quantization
    if t.type != f.schema.TensorType.INT8 or q is None or q.scale is None or len(q.scale) != 1:
        raise ConfigError(f"phased int8: {what} {t.name!r} is not int8 with one per-tensor scale")
    return float(q.scale[0])


def _bytes(a: np.ndarray) -> np.ndarray:
    return np.frombuffer(np.ascontiguousarray(a).tobytes(), dtype=np.uint8).copy()


def phase(data: bytes, phasing: Phasing) -> bytes:
    """The int8 flatbuffer `data` (a FULLY_CONNECTED chain, per-channel int8 weights, int32 biases) with every
    activation carried as phased copies (module doc). Raises ConfigError for any other graph."""
    f = tfx._Flat.read(data)
    order = _chain(f)
    ks = [phasing.input] + [phasing.hidden] * (len(order) - 1) + [phasing.output]
    for j, k in enumerate(order):
        op = f.sg.operators[k]
        if len(op.inputs) < 3 or int(op.inputs[2]) < 0:
            raise ConfigError(f"phased int8: FULLY_CONNECTED op {k} has no bias")
        x, w, b, y = (f.tensor(i) for i in (op.inputs[0], op.inputs[1], op.inputs[2], op.outputs[0]))
        s_in, s_out = _scale(f, x, "input"), _scale(f, y, "output")
        k_in, k_out = ks[j], ks[j + 1]
        wq = w.quantization
        if w.type != f.schema.TensorType.INT8 or wq is None or int(wq.quantizedDimension) != 0:
            raise ConfigError(f"phased int8: the weight {w.name!r} is not int8 per output channel")
        if b.type != f.schema.TensorType.INT32:
            raise ConfigError(f"phased int8: the bias {b.name!r} is not int32")
        if f.users[w.buffer] != 1 or f.users[b.buffer] != 1:
            raise ConfigError(
                f"phased int8: the weight or bias buffer of op {k} is shared with other tensors"
            )
        o, i = (int(s) for s in w.shape)
        codes = np.frombuffer(bytes(f.obj.buffers[w.buffer].data), np.int8).reshape(o, i)
        s_w = np.broadcast_to(np.asarray(wq.scale, np.float32), (o,))
        bias = np.frombuffer(bytes(f.obj.buffers[b.buffer].data), "<i4").astype(np.float64)
        # the float bias the kernel adds (int32 * s_in * s_w), moved by each output copy's offset
        unit = np.float64(s_in) * s_w.astype(np.float64)  # the old bias unit
        new_s_w = (s_w / np.float32(k_in)).astype(np.float32)
        new_unit = np.float64(s_in) * new_s_w.astype(np.float64)
        bq = np.concatenate(
            [np.round((bias * unit - np.float64(off) * s_out) / new_unit) for off in phase_offsets(k_out)]
        )
        if np.abs(bq).max() > INT32_MAX:
            raise ConfigError(f"phased int8: the int32 bias of op {k} overflows at {k_in} input copies")
        f.obj.buffers[w.buffer].data = _bytes(np.tile(codes, (k_out, k_in)))
        w.shape = np.array([k_out * o, k_in * i], np.int32)
        wq.scale = [float(v) for v in np.tile(new_s_w, k_out)]
        wq.zeroPoint = [0] * (k_out * o)
        f.obj.buffers[b.buffer].data = _bytes(bq.astype("<i4"))
        b.shape = np.array([k_out * o], np.int32)
        b.quantization.scale = [float(v) for v in np.tile(new_unit.astype(np.float32), k_out)]
        b.quantization.zeroPoint = [0] * (k_out * o)
        if j == 0:
            _widen(x, k_in)
        _widen(y, k_out)
    return bytes(f.fb.convert_object_to_bytearray(f.obj))


def phase_bundle(path: str | Path, phasing: Phasing = FUNCTIONALS) -> Path:
    """Rewrite the bundle's int8 TFLite variant as phased int8 (its manifest entry says how many copies); the
    other files are kept byte for byte. Refuses a variant that is already phased."""
    from edge_ser.bundle import load_bundle
    from edge_ser.bundle.write import write_bundle

    b = load_bundle(path)
    block = b.manifest.get("tflite", {})
    spec = block.get("variants", {}).get("int8")
    if spec is None:
        raise ConfigError(f"bundle {path}: has no int8 TFLite variant to phase (make it with tflite_bundle)")
    if any(e.get("phases", 1) != 1 for e in [*spec["inputs"].values(), spec["output"]]):
        raise ConfigError(
            f"bundle {path}: its int8 variant is phased already; export it again to change that"
        )
    data = phase(b.files[spec["file"]], phasing)
    new_spec = {
        **spec,
        "inputs": {n: {**e, "phases": phasing.input} for n, e in spec["inputs"].items()},
        "output": {**spec["output"], "phases": phasing.output},
    }
    manifest = dict(b.manifest)
    manifest["tflite"] = {**block, "variants": {**block["variants"], "int8": new_spec}}
    return write_bundle(path, manifest=manifest, files={**b.files, spec["file"]: data})


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", help="bundle folder (its int8 TFLite variant is rewritten in place)")
    p.add_argument(
        "--input", type=int, default=FUNCTIONALS.input, help="copies of the input (default %(default)s)"
    )
    p.add_argument("--hidden", type=int, default=FUNCTIONALS.hidden, help="copies of each hidden activation")
    p.add_argument("--output", type=int, default=FUNCTIONALS.output, help="copies of the logits")
    a = p.parse_args(argv)
    phasing = Phasing(a.input, a.hidden, a.output)
    phase_bundle(a.bundle, phasing)
    print(f"{a.bundle}: int8 variant phased ({phasing.describe()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
