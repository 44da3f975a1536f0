"""Candidate ONNX -> TFLite converters side by side on every model family: which convert, fidelity against
onnxruntime, size, op count, conversion time.

    PYTHONPATH=/tmp/o2t:/tmp/otf python benchmarks/tflite_converters.py
    python benchmarks/tflite_converters.py --routes onnx-graph,hand-built   # ours only -> ..._partial

Routes:
- `onnx-graph` (ours, `converters.export.onnx_tflite`): the bundle's ONNX graph translated node by node to
  TF ops, tensorflow's TFLite converter;
- `hand-built` (`converters.export.tflite_export`): a TF graph rebuilt from a torch MLP / AVCNN. It needs
  the torch model, which a bundle does not carry; tried on fresh torch models of each family;
- `onnx2tf` (PyPI, installed with `pip install --target /tmp/o2t --no-deps onnx2tf onnx-graphsurgeon
  sng4onnx tf_keras==2.21.0`; it declares none of them) on the same ONNX graph with its weights inline;
- `onnx-tf` (PyPI 1.10.0, `pip install --target /tmp/otf --no-deps onnx-tf tensorflow-addons typeguard==2.13.3`).
Models: the shipped bundles (LAQ weights dequantized into the ONNX file for the third-party tools) and the
TIM-Net temporal model (float, random init). Relative diff = max |TFLite - onnxruntime| / max |onnxruntime|
over 8 random standardised rows (fp32). Writes benchmarks/results/tflite_converters.{md,json} when every route
ran, else tflite_converters_partial.{md,json}; a third-party converter that is not importable is refused before
anything runs (install it as above, or leave its route out with --routes).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import pin_single_thread, run_main, write_results  # noqa: E402
from converters.export import onnx_tflite as ot  # noqa: E402
from edge_ser.bundle import load_bundle  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = ("laq_mlp_emodb", "ser_emodb", "tiny_transformer_emodb", "av_cnn", "av_cnn_audio")


def inline_onnx(bundle) -> bytes:
    """The bundle's model.onnx with its weights (dequantized from weights.esq) inline: a plain ONNX file."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load_from_string(bundle.onnx_bytes())
    w = bundle.dequantized()
    for t in m.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            new = numpy_helper.from_array(np.asarray(w[t.name], np.float32), t.name)
            t.CopyFrom(new)
    return m.SerializeToString()


def timnet_onnx() -> tuple[bytes, dict]:
    import torch

    from converters.export.onnx_export import export_model
    from converters.models.timnet import timnet

    torch.manual_seed(0)
    model = timnet(frames=150, dilations=8).eval()
    return export_model(model).SerializeToString(), {}


def _ops(data: bytes) -> list[str]:
    from converters.export.tflite_export import op_names

    return op_names(data)


def _run_tflite(data: bytes, x: dict[str, np.ndarray]) -> np.ndarray:
    """Runs a float .tflite with inputs matched by name (or by position when the names differ)."""
    from converters.export.tflite_export import interpreter

    it = interpreter(data)
    ins = it.get_input_details()
    names = list(x)
    for i, d in enumerate(ins):
        key = next((n for n in names if n in d["name"]), names[i] if len(names) > i else None)
        a = x[key]
        it.resize_tensor_input(d["index"], list(a.shape), strict=False)
    it.allocate_tensors()
    for i, d in enumerate(it.get_input_details()):
        key = next((n for n in names if n in d["name"]), names[i])
        it.set_tensor(d["index"], x[key])
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def _ort(onnx_bytes: bytes, x: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    s = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return s.run(None, x)[0]


def _raw_inputs(bundle, g: ot.Graph, z: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    raw = dict(z)
    norm = bundle.normalization if bundle is not None else None
    if norm is not None and norm.get("in_graph"):
        name = bundle.normalized_input
        raw[name] = (
            np.asarray(norm["mean"], np.float32) + z[name] * np.asarray(norm["std"], np.float32)
        ).astype(np.float32)
    return raw


def route_ours(bundle, onnx_bytes: bytes, g: ot.Graph, z, raw) -> dict:
    t0 = time.perf_counter()
    t = ot.trace(g)
    m = ot.convert(t, "fp32")
    dt = time.perf_counter() - t0
    got = _run_tflite(m.data, z)
    return {"data": m.data, "seconds": dt, "got": got}


def route_onnx2tf(bundle, onnx_bytes: bytes, g: ot.Graph, z, raw) -> dict:
    import onnx2tf

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "model.onnx"
        p.write_bytes(onnx_bytes)
        t0 = time.perf_counter()
        onnx2tf.convert(
            input_onnx_file_path=str(p),
            output_folder_path=str(Path(tmp) / "out"),
            keep_ncw_or_nchw_or_ncdhw_input_names=[n for n, s in g.inputs.items() if 2 <= len(s) <= 4]
            or None,
            non_verbose=True,
        )
        dt = time.perf_counter() - t0
        data = (Path(tmp) / "out" / "model_float32.tflite").read_bytes()
    return {"data": data, "seconds": dt, "got": _run_tflite(data, raw)}


def route_onnx_tf(bundle, onnx_bytes: bytes, g: ot.Graph, z, raw) -> dict:
    import onnx
    import tensorflow as tf
    from onnx_tf.backend import prepare

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        prepare(onnx.load_from_string(onnx_bytes)).export_graph(str(Path(tmp) / "sm"))
        data = tf.lite.TFLiteConverter.from_saved_model(str(Path(tmp) / "sm")).convert()
        dt = time.perf_counter() - t0
    return {"data": data, "seconds": dt, "got": _run_tflite(data, raw)}


def route_hand(bundle, onnx_bytes: bytes, g: ot.Graph, z, raw) -> dict:
    """The hand-built route on a fresh torch model of the bundle's family (it needs the torch model)."""
    from converters.export.tflite_export import export_tflite

    family = bundle.name if bundle is not None else "timnet"
    model = _torch_model(family, bundle)
    t0 = time.perf_counter()
    m = export_tflite(model, "fp32")
    return {"data": m.data, "seconds": time.perf_counter() - t0, "got": None}


def _torch_model(family: str, bundle):
    from converters.models.av_cnn import av_cnn
    from converters.models.functionals_mlp import functionals_mlp
    from converters.models.laq_mlp import laq_mlp
    from converters.models.timnet import timnet
    from converters.models.tiny_transformer import tiny_transformer

    if family == "laq_mlp":
        return laq_mlp()
    if family == "functionals_mlp":
        return functionals_mlp(num_classes=bundle.num_classes)
    if family.startswith("av_cnn"):
        return av_cnn("audio" if family == "av_cnn_audio" else "fused")
    if family == "tiny_transformer":
        return tiny_transformer()
    return timnet()


ROUTES = {
    "onnx-graph": route_ours,
    "hand-built": route_hand,
    "onnx2tf": route_onnx2tf,
    "onnx-tf": route_onnx_tf,
}


THIRD_PARTY = {"onnx2tf": "onnx2tf", "onnx-tf": "onnx_tf"}
"""Routes that need a package outside the project's requirements -> the module they import."""


def parse_routes(text: str) -> list[str]:
    """--routes: comma-separated route names, each one of ROUTES (argparse's error names an unknown one)."""
    routes = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in routes if r not in ROUTES]
    if unknown or not routes:
        raise argparse.ArgumentTypeError(f"unknown {unknown or text!r}; choose from {', '.join(ROUTES)}")
    return routes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--routes",
        type=parse_routes,
        default=list(ROUTES),
        help=f"comma-separated converter routes (default: all, {', '.join(ROUTES)}); fewer write ..._partial",
    )
    args = ap.parse_args()
    routes = args.routes
    missing = [r for r in routes if r in THIRD_PARTY and importlib.util.find_spec(THIRD_PARTY[r]) is None]
    if missing:
        ap.error(
            f"{', '.join(missing)} not importable: install as the module doc says (then "
            f"PYTHONPATH=/tmp/o2t:/tmp/otf), or leave the route out: --routes "
            f"{','.join(r for r in routes if r not in missing)}"
        )
    pin_single_thread()
    cases = []
    for name in BUNDLES:
        b = load_bundle(ROOT / "bundles" / name)
        cases.append((name, b, inline_onnx(b), ot.bundle_graph(b)))
    proto, _ = timnet_onnx()
    import onnx

    cases.append(("timnet (float, 8 scales)", None, proto, ot.graph_from_onnx(onnx.load_from_string(proto))))
    rows = []
    for name, b, onnx_bytes, g in cases:
        rng = np.random.default_rng(0)
        z = {}
        for n, shape in g.inputs.items():
            a = rng.uniform(0, 1, (8, *shape)) if n == "faces" else rng.standard_normal((8, *shape))
            z[n] = a.astype(np.float32)
        raw = _raw_inputs(b, g, z)
        ref = _ort(onnx_bytes, raw)
        for route in routes:
            fn = ROUTES[route]
            row = {"model": name, "route": route}
            try:
                r = fn(b, onnx_bytes, g, z, raw)
                ops = _ops(r["data"])
                row.update(converts=True, seconds=round(r["seconds"], 2), bytes=len(r["data"]), ops=len(ops),
                           op_kinds=sorted(set(ops)))  # fmt: skip
                if r["got"] is not None:
                    got = np.asarray(r["got"], np.float32).reshape(ref.shape)
                    row["rel_diff"] = float(np.abs(got - ref).max() / np.abs(ref).max())
            except Exception as e:  # noqa: BLE001 - a converter that fails is a row of the table
                row.update(converts=False, error=f"{type(e).__name__}: {str(e).splitlines()[0][:160]}")
                traceback.print_exc(limit=2)
            rows.append(row)
            print(row, file=sys.stderr)
    md = markdown(rows)
    full = routes == list(ROUTES)
    write_results("tflite_converters" if full else "tflite_converters_partial", {"rows": rows}, md)
    print(md)
    return 0


def markdown(rows: list[dict]) -> str:
    out = [
        "# ONNX -> TFLite converters side by side (fp32)",
        "",
        "| model | route | converts | bytes | ops | rel. diff vs onnxruntime | seconds | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["converts"]:
            rel = f"{r['rel_diff']:.1e}" if "rel_diff" in r else "(fresh torch model)"
            out.append(
                f"| {r['model']} | {r['route']} | yes | {r['bytes']:,} | {r['ops']} | {rel} | {r['seconds']} | |"
            )
        else:
            out.append(f"| {r['model']} | {r['route']} | no | | | | | {r['error']} |")
    return "\n".join(out)


if __name__ == "__main__":
    run_main(main)
