"""Phased int8: an int8 TFLite model rewritten so every activation is carried as k int8 copies on grids shifted by
a fraction of a step (`edge_ser.bundle.manifest.phase_offsets`), their mean a k times finer grid over the same
range (issue 20: the int8 input and logits grids flipped near-tied clips of ser_ravdess).

    python -m converters.export.tflite_phases bundles/ser_ravdess --input 4 --hidden 2 --output 8

A weight op (FULLY_CONNECTED, or CONV_2D with channels last) reads k_in copies of its input on its input
channels and writes k_out copies of its output on its output channels. Its weight becomes the LAQ codes tiled
k_out times on the output channels and k_in times on the input channels (copy-major) with every per-channel scale
divided by k_in (a power of two: exact), so each output copy is W applied to the mean of the input copies.
Output copy p gets the bias b - o_p * s_out (o_p its offset, s_out its step), so the kernel's own rounding puts
it on the shifted grid; a fused ReLU clamps each copy at its zero point, which keeps the mean 0 below 0 because
the offsets sum to 0. EXPAND_DIMS, RESHAPE and TRANSPOSE carry the copies' axis along (a RESHAPE must keep each
copy one block; its shape constant is widened). The codes stay the LAQ codes, so `edge-ser info` and the packed
format agree with the int8 file; the price is k_out * k_in times each layer's int8 weights and multiply-adds
(ser bundles: 8k -> 57k, a 66 KB file).

The device (`edge_ser.engines.tflite`) quantizes the input's copies with their offsets and averages the output's;
the manifest's `tflite.variants.int8.inputs[n].phases` / `.output.phases` say how many. An ADD of two tensors
that carry the same copies (a seed ensemble's members' logits, `FunctionalsEnsemble`) adds them copy by copy:
copy p of each side sits o_p of its own step off, so copy p of the sum sits o_p (s_a + s_b) off, a shift the
output grid's rounding dithers like the others, and the offsets still sum to 0; the weight ops that feed the
output through ADDs write the output's copies. A graph with several inputs or outputs, or any other op (pools,
attention), is a ConfigError naming the op (`tflite_bundle.convert_bundle(strict=False)` keeps such a model
plain int8).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converters.export import tflite_export as tfx
from converters.export.onnx_tflite import _own_buffer
from edge_ser.bundle.manifest import TFLITE_PHASES, phase_offsets
from edge_ser.errors import ConfigError


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


_WEIGHT_OPS = ("FULLY_CONNECTED", "CONV_2D")
_LAYOUT_OPS = ("EXPAND_DIMS", "RESHAPE", "TRANSPOSE")


def _shape(t) -> list[int]:
    return [int(v) for v in t.shape]


def _widen(t, axis: int, k: int) -> None:
    """Tensor shape (and signature) with `axis` k times as long: where its copies sit."""
    shape = _shape(t)
    shape[axis] *= k
    t.shape = np.array(shape, np.int32)
    if t.shapeSignature is not None and len(t.shapeSignature):
        sig = [int(v) for v in t.shapeSignature]
        sig[axis] = shape[axis] if sig[axis] >= 0 else sig[axis]
        t.shapeSignature = np.array(sig, np.int32)


def _scale(f: tfx._Flat, t, what: str) -> float:
    q = t.quantization
    if t.type != f.schema.TensorType.INT8 or q is None or q.scale is None or len(q.scale) != 1:
        raise ConfigError(f"phased int8: {what} {t.name!r} is not int8 with one per-tensor scale")
    return float(q.scale[0])


def _bytes(a: np.ndarray) -> np.ndarray:
    return np.frombuffer(np.ascontiguousarray(a).tobytes(), dtype=np.uint8).copy()


def _reshaped_axis(before: list[int], after: list[int], axis: int, name: str) -> int:
    """Where copies on `axis` of a [before] tensor sit after a reshape to [after]: the axis with as many
    elements in front of it, so each copy stays one contiguous block (copy-major); else a ConfigError."""
    front = int(np.prod(before[:axis]))
    for b in range(len(after)):
        if int(np.prod(after[:b])) == front and after[b] > 1:
            return b
    raise ConfigError(
        f"phased int8: RESHAPE {name!r} {before} -> {after} splits the copies on axis {axis} apart"
    )


def _rewrite_weights(f: tfx._Flat, k: int, k_in: int, k_out: int) -> None:
    """Weight op `k`: LAQ codes tiled k_out x k_in (output channels on axis 0, input channels last), scales / k_in,
    one bias per output copy moved by its offset (module doc)."""
    op = f.sg.operators[k]
    if len(op.inputs) < 3 or int(op.inputs[2]) < 0:
        raise ConfigError(f"phased int8: {f.names[k]} op {k} has no bias")
    x, w, b, y = (f.tensor(i) for i in (op.inputs[0], op.inputs[1], op.inputs[2], op.outputs[0]))
    s_in, s_out = _scale(f, x, "input"), _scale(f, y, "output")
    wq = w.quantization
    if w.type != f.schema.TensorType.INT8 or wq is None or int(wq.quantizedDimension) != 0:
        raise ConfigError(f"phased int8: the weight {w.name!r} is not int8 per output channel")
    if b.type != f.schema.TensorType.INT32:
        raise ConfigError(f"phased int8: the bias {b.name!r} is not int32")
    if f.users[w.buffer] != 1 or f.users[b.buffer] != 1:
        raise ConfigError(f"phased int8: the weight or bias buffer of op {k} is shared with other tensors")
    shape = _shape(w)  # [O, I] or [O, kh, kw, I]
    o = shape[0]
    codes = np.frombuffer(bytes(f.obj.buffers[w.buffer].data), np.int8).reshape(shape)
    s_w = np.broadcast_to(np.asarray(wq.scale, np.float32), (o,))
    bias = np.frombuffer(bytes(f.obj.buffers[b.buffer].data), "<i4").astype(np.float64)
    unit = np.float64(s_in) * s_w.astype(np.float64)  # the bias unit the kernel assumes
    new_s_w = (s_w / np.float32(k_in)).astype(np.float32)
    new_unit = np.float64(s_in) * new_s_w.astype(np.float64)
    bq = np.concatenate(
        [np.round((bias * unit - np.float64(off) * s_out) / new_unit) for off in phase_offsets(k_out)]
    )
    if np.abs(bq).max() > tfx.INT32_MAX:
        raise ConfigError(f"phased int8: the int32 bias of op {k} overflows at {k_in} input copies")
    tiled = np.tile(codes, (k_out,) + (1,) * (len(shape) - 2) + (k_in,))
    f.obj.buffers[w.buffer].data = _bytes(tiled)
    w.shape = np.array(tiled.shape, np.int32)
    wq.scale = [float(v) for v in np.tile(new_s_w, k_out)]
    wq.zeroPoint = [0] * (k_out * o)
    f.obj.buffers[b.buffer].data = _bytes(bq.astype("<i4"))
    b.shape = np.array([k_out * o], np.int32)
    b.quantization.scale = [float(v) for v in np.tile(new_unit.astype(np.float32), k_out)]
    b.quantization.zeroPoint = [0] * (k_out * o)


def _summed_into(f: tfx._Flat, out_t: int) -> set[int]:
    """The output tensor and every tensor ADDs sum into it (a seed ensemble's members' logits)."""
    logits = {out_t}
    for k in reversed(range(len(f.sg.operators))):
        op = f.sg.operators[k]
        if f.names[k] == "ADD" and int(op.outputs[0]) in logits:
            logits.update(int(t) for t in op.inputs)
    return logits


def _widen_reshape(f: tfx._Flat, op, before: list[int], after: list[int], axis: int, kk: int) -> int:
    """A RESHAPE of a tensor carrying kk copies on `axis`: its new-shape constant and options widened where the
    copies go; returns that axis."""
    b = _reshaped_axis(before, after, axis, f.tensor(op.outputs[0]).name)
    if len(op.inputs) > 1 and int(op.inputs[1]) >= 0:  # the new shape: a constant to widen too
        st = f.tensor(op.inputs[1])
        _own_buffer(f, op.inputs[1])
        new = np.frombuffer(bytes(f.obj.buffers[st.buffer].data), "<i4").copy()
        if new[b] >= 0:
            new[b] *= kk
        f.obj.buffers[st.buffer].data = _bytes(new.astype("<i4"))
    opts = op.builtinOptions
    if opts is not None and getattr(opts, "newShape", None) is not None and len(opts.newShape):
        ns = [int(v) for v in opts.newShape]
        ns[b] = ns[b] * kk if ns[b] >= 0 else ns[b]
        opts.newShape = ns
    return b


def phase(data: bytes, phasing: Phasing) -> bytes:
    """The int8 flatbuffer `data` with every activation carried as phased copies (module doc).

    The copies of a tensor sit copy-major on one of its axes: the input's on its last; a FULLY_CONNECTED or
    CONV_2D (channels last) reads them on its input channels and writes its own on its output channels;
    EXPAND_DIMS, RESHAPE and TRANSPOSE carry them to wherever the axis goes (a RESHAPE must keep each copy one
    block). Any other op, a second input or a weight op whose input copies are not on its channels is a
    ConfigError naming the op."""
    f = tfx._Flat.read(data)
    sg = f.sg
    if len(sg.inputs) != 1 or len(sg.outputs) != 1:
        raise ConfigError(
            f"phased int8: the model has {len(sg.inputs)} inputs and {len(sg.outputs)} outputs; only one-input, "
            "one-output graphs are phased"
        )
    out_t = int(sg.outputs[0])
    x0 = int(sg.inputs[0])
    orig = {i: _shape(t) for i, t in enumerate(sg.tensors)}  # shapes before any widening
    copies = {x0: (phasing.input, len(orig[x0]) - 1)}  # tensor -> (copies, axis)
    logits = _summed_into(f, out_t)  # these carry the output's copies
    for k, op in enumerate(sg.operators):
        name = f.names[k]
        src = int(op.inputs[0])
        dst = int(op.outputs[0])
        if src not in copies:
            raise ConfigError(
                f"phased int8: {name} op {k} reads {f.tensor(src).name!r}, which carries no copies"
            )
        kk, axis = copies[src]
        if name in _WEIGHT_OPS:
            if axis != len(orig[src]) - 1 or (name == "FULLY_CONNECTED" and len(orig[src]) != 2):
                raise ConfigError(
                    f"phased int8: {name} op {k} reads copies on axis {axis} of {orig[src]}, not on its channels"
                )
            k_out = phasing.output if dst in logits else phasing.hidden
            _rewrite_weights(f, k, kk, k_out)
            copies[dst] = (k_out, len(orig[dst]) - 1)
        elif name == "ADD":  # copy p of the sum is the sum of copy p of each side (module doc)
            other = int(op.inputs[1])
            if copies.get(other) != (kk, axis) or orig[other] != orig[src]:
                raise ConfigError(
                    f"phased int8: ADD op {k} sums {f.tensor(src).name!r} and {f.tensor(other).name!r}, which do "
                    "not carry the same copies on the same axis"
                )
            copies[dst] = (kk, axis)
        elif name == "EXPAND_DIMS":
            at = int(np.frombuffer(bytes(f.obj.buffers[f.tensor(op.inputs[1]).buffer].data), "<i4")[0])
            at = at if at >= 0 else at + len(orig[dst])
            copies[dst] = (kk, axis + 1 if at <= axis else axis)
        elif name == "TRANSPOSE":
            perm = [
                int(v) for v in np.frombuffer(bytes(f.obj.buffers[f.tensor(op.inputs[1]).buffer].data), "<i4")
            ]
            copies[dst] = (kk, perm.index(axis))
        elif name == "RESHAPE":
            copies[dst] = (kk, _widen_reshape(f, op, orig[src], orig[dst], axis, kk))
        else:
            raise ConfigError(
                f"phased int8: op {k} is {name}; only {list(_WEIGHT_OPS + _LAYOUT_OPS + ('ADD',))} are phased"
            )
    for t, (kk, axis) in copies.items():
        if kk > 1:
            _widen(f.tensor(t), axis, kk)
    if out_t not in copies:
        raise ConfigError("phased int8: the graph's output is not reached from its input")
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


def run(argv: Sequence[str] | None = None) -> int:
    """`main`, with an edge-ser error (no bundle, no int8 variant, one phased already, copy counts it cannot take)
    printed as one line and exit status 2, as `tflite_bundle.run` does (it was a traceback)."""
    from edge_ser.errors import EdgeSerError

    try:
        return main(argv)
    except EdgeSerError as e:
        print(f"python -m converters.export.tflite_phases: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(run())
