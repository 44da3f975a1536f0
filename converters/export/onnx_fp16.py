"""The fp16 copy of a bundle's graph, for a GPU: weights and activations float16, inputs and outputs float32.

- `fp16_onnx(bundle)`: model.onnx with the bundle's dequantized weights inline, converted by onnxruntime's
  float16 converter (`onnxruntime.transformers.float16.convert_float_to_float16`, keep_io_types: a Cast after
  each input and before each output) and put back in topological order (the converter appends its Casts at
  the end; TensorRT's ONNX parser reads the nodes in file order).
- `check_fp16(bundle, data, inputs)`: the copy against the fp32 graph on the CPU (onnxruntime: its CPU
  provider runs what it has no fp16 kernel for in fp32 between Casts, so every tensor between nodes is
  rounded to fp16 as on a GPU): top-1 agreement and largest logit difference relative to the largest |logit|.
- `add_onnx_fp16(path, inputs)`: writes the copy into the bundle (`model_fp16.onnx`, manifest `onnx_fp16`
  with the check's figures), verified as the device loads it. The onnxruntime engine runs it when a CUDA or
  TensorRT provider is in use (docs/accelerators.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge_ser.bundle import Bundle, load_bundle
from edge_ser.bundle.manifest import MANIFEST_NAME, MANIFEST_SUM_NAME, ONNX_FP16_NAME
from edge_ser.bundle.write import write_bundle
from edge_ser.errors import BundleError

MIN_AGREEMENT = 0.99
"""`add_onnx_fp16` refuses a copy whose top-1 agrees with fp32 on fewer of the check's rows."""


def fp16_onnx(bundle: Bundle) -> bytes:
    """The bundle's graph as a self-contained fp16 ONNX model (float32 inputs and outputs), serialized."""
    import onnx
    from onnx import numpy_helper
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load_from_string(bundle.onnx_bytes())
    weights = bundle.dequantized()
    inits = [
        numpy_helper.from_array(weights[t.name], t.name) if t.name in weights else t
        for t in model.graph.initializer
    ]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    half = convert_float_to_float16(model, keep_io_types=True)
    _topological(half.graph)
    onnx.checker.check_model(half)
    return half.SerializeToString()


def _topological(graph: Any) -> None:
    """Reorder `graph.node` so every node comes after the producers of its inputs (stable otherwise)."""
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise BundleError(
                f"fp16 graph: nodes {[n.name for n in pending[:5]]} have inputs nobody produces"
            )
        for n in ready:
            known.update(n.output)
        ordered += ready
        pending = [n for n in pending if n not in ready]
    del graph.node[:]
    graph.node.extend(ordered)


def check_fp16(bundle: Bundle, data: bytes, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The fp16 model `data` against the bundle's fp32 graph on onnxruntime's CPU provider, on `inputs`
    (the model's inputs, rows first, as the engine feeds them)."""
    import onnxruntime as ort

    from edge_ser.engines import load_engine

    fp32 = load_engine(bundle, "onnxruntime", threads=1)
    feeds = fp32.adapt(dict(inputs))
    want = fp32.session.run(fp32.output_names[:1], feeds)[0]
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = sess.run(fp32.output_names[:1], feeds)[0]
    return {
        "rows": int(len(want)),
        "top1_agreement": float((got.argmax(1) == want.argmax(1)).mean()),
        "max_rel_diff": float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-12)),
    }


def add_onnx_fp16(
    path: str | os.PathLike[str], inputs: Mapping[str, np.ndarray], out: str | os.PathLike[str] | None = None
) -> tuple[Path, dict[str, Any]]:
    """Write the bundle at `path` (to `out`, default in place) with its fp16 copy and the check's figures on
    `inputs`; BundleError if the copy's top-1 agrees with fp32 on fewer than MIN_AGREEMENT of the rows."""
    bundle = load_bundle(path)
    data = fp16_onnx(bundle)
    checked = check_fp16(bundle, data, inputs)
    if checked["top1_agreement"] < MIN_AGREEMENT:
        raise BundleError(
            f"bundle {bundle.source}: the fp16 copy agrees with fp32 on {checked['top1_agreement']:.1%} of "
            f"{checked['rows']} rows (at least {MIN_AGREEMENT:.0%} wanted); not written"
        )
    manifest = {k: v for k, v in bundle.manifest.items() if k != "files"}
    manifest["onnx_fp16"] = {"file": ONNX_FP16_NAME, "checked": checked}
    files = {
        n: bundle.read(n) for n in bundle.manifest["files"] if n not in (MANIFEST_NAME, MANIFEST_SUM_NAME)
    }
    files[ONNX_FP16_NAME] = data
    return write_bundle(out if out is not None else path, manifest=manifest, files=files), checked
