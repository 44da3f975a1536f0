"""Which nodes of each shipped bundle's graph a TensorRT engine would take, and which fall back, from the graph
alone (no GPU needed).

    python benchmarks/trt_ops.py [--bundles bundles/*]

Reads `bundle.graph` (model.onnx as edge_ser reads it) and checks every node against TensorRT's ONNX operator
support matrix (TRT_OPS below), for two TensorRT releases: 8.5 (JetPack 5.1) and 10.x (JetPack 6 and later).
onnxruntime's TensorRT provider hands TensorRT the connected runs of supported nodes, one TensorRT engine
each; the nodes between them run on the next provider asked for (CUDA: onnxruntime's CUDA provider has
kernels for every op these graphs use, else the CPU), and every border between two providers is a copy.
Writes benchmarks/results/trt_ops.{md,json}; docs/accelerators.md explains the table.

Source of TRT_OPS: the onnx-tensorrt parser's support matrix, github.com/onnx/onnx-tensorrt docs/operators.md,
the "TensorRT 8.5 supports operators up to Opset 17" edition (commit 6d0ab7b) and the TensorRT 10.15 edition
("opset 9 to opset 24"). Only the ops the zoo's graphs use, and the restrictions that can be checked from a
graph, are transcribed; an op not listed is treated as unsupported.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run_main, write_results  # noqa: E402

RELEASES = ("8.5", "10.x")
Check = Callable[[Mapping[str, Any], Mapping[str, Any]], str | None]
"""(node, context) -> why TensorRT refuses this node, or None; context: `consts` (initializer and constant
names), `opset`."""


def _pool_2d_3d(node: Mapping[str, Any], ctx: Mapping[str, Any]) -> str | None:
    k = (node.get("attrs") or {}).get("kernel_shape") or []
    return None if len(k) in (2, 3) else f"{len(k)}-D pooling (2D or 3D pooling only)"


def _pool_no_dilation(node: Mapping[str, Any], ctx: Mapping[str, Any]) -> str | None:
    d = (node.get("attrs") or {}).get("dilations") or []
    return _pool_2d_3d(node, ctx) or (None if all(v == 1 for v in d) else "dilations must be all ones")


def _weight_initializer(node: Mapping[str, Any], ctx: Mapping[str, Any]) -> str | None:
    return None if node["inputs"][1] in ctx["consts"] else "weights W must be an initializer"


def _axes_initializer(node: Mapping[str, Any], ctx: Mapping[str, Any]) -> str | None:
    ins = node["inputs"]
    if len(ins) > 1 and ins[1] and ins[1] not in ctx["consts"]:
        return "axes must be an initializer"
    return None


def _first_output_only(node: Mapping[str, Any], ctx: Mapping[str, Any]) -> str | None:
    return None if not any(node["outputs"][1:]) else "only the first output Y is supported"


def _yes(node: Mapping[str, Any], ctx: Mapping[str, Any]) -> str | None:
    return None


def _no(node: Mapping[str, Any], ctx: Mapping[str, Any]) -> str | None:
    return "not supported by this release's ONNX parser"


TRT_OPS: dict[str, dict[str, Check]] = {
    # op: {release: check}; restrictions as the matrix words them
    "Add": {"8.5": _yes, "10.x": _yes},
    "Sub": {"8.5": _yes, "10.x": _yes},
    "Mul": {"8.5": _yes, "10.x": _yes},
    "Div": {"8.5": _yes, "10.x": _yes},
    "Gemm": {"8.5": _yes, "10.x": _yes},
    "MatMul": {"8.5": _yes, "10.x": _yes},
    "Relu": {"8.5": _yes, "10.x": _yes},
    "LeakyRelu": {"8.5": _yes, "10.x": _yes},
    "Sigmoid": {"8.5": _yes, "10.x": _yes},
    "Tanh": {"8.5": _yes, "10.x": _yes},
    "Softmax": {"8.5": _yes, "10.x": _yes},
    "Flatten": {"8.5": _yes, "10.x": _yes},
    "Reshape": {"8.5": _yes, "10.x": _yes},
    "Transpose": {"8.5": _yes, "10.x": _yes},
    "Squeeze": {"8.5": _axes_initializer, "10.x": _yes},
    "Unsqueeze": {"8.5": _axes_initializer, "10.x": _yes},
    "Identity": {"8.5": _yes, "10.x": _yes},
    "Dropout": {"8.5": _yes, "10.x": _yes},
    "Concat": {"8.5": _yes, "10.x": _yes},
    "Clip": {"8.5": _yes, "10.x": _yes},
    "Pad": {"8.5": _yes, "10.x": _yes},
    "Conv": {"8.5": _weight_initializer, "10.x": _yes},
    "MaxPool": {"8.5": _pool_2d_3d, "10.x": _pool_no_dilation},
    "AveragePool": {"8.5": _pool_2d_3d, "10.x": _pool_no_dilation},
    "GlobalAveragePool": {"8.5": _yes, "10.x": _yes},
    "GlobalMaxPool": {"8.5": _yes, "10.x": _yes},
    "ReduceMean": {"8.5": _yes, "10.x": _axes_initializer},
    "BatchNormalization": {"8.5": _yes, "10.x": _yes},
    "LayerNormalization": {"8.5": _no, "10.x": _first_output_only},
}


def placement(graph: Mapping[str, Any], release: str, consts: set[str]) -> list[str | None]:
    """Per node: None when TensorRT `release` takes it, else why it falls back."""
    ctx = {"consts": consts, "opset": graph.get("opset")}
    out: list[str | None] = []
    for node in graph["nodes"]:
        checks = TRT_OPS.get(node["op"]) if node.get("domain", "") in ("", "ai.onnx") else None
        out.append("not in the support matrix" if checks is None else checks[release](node, ctx))
    return out


def segments(falls_back: list[str | None]) -> int:
    """TensorRT subgraphs: maximal runs of supported nodes in the graph's (topological) node order."""
    runs, inside = 0, False
    for why in falls_back:
        if why is None and not inside:
            runs += 1
        inside = why is None
    return runs


def report(path: Path) -> dict[str, Any]:
    from edge_ser.bundle import load_bundle

    bundle = load_bundle(path)
    g = bundle.graph
    consts = set(g["initializers"]) | set(g.get("constants") or {})
    row: dict[str, Any] = {"bundle": path.name, "nodes": len(g["nodes"]), "opset": g["opset"]}
    row["ops"] = dict(Counter(n["op"] for n in g["nodes"]))
    for release in RELEASES:
        why = placement(g, release, consts)
        back = Counter(f"{n['op']}: {w}" for n, w in zip(g["nodes"], why, strict=True) if w is not None)
        row[release] = {
            "tensorrt_nodes": sum(w is None for w in why),
            "fallback": dict(back),
            "tensorrt_subgraphs": segments(why),
        }
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    md = [
        "# TensorRT placement of every shipped bundle's graph (from the graph alone)",
        "",
        "| bundle | nodes (ops) | TensorRT 8.5: nodes taken, subgraphs | falls back (8.5) "
        "| TensorRT 10.x: nodes taken, subgraphs | falls back (10.x) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ops = ", ".join(f"{op} {k}" for op, k in sorted(r["ops"].items()))
        cells = []
        for release in RELEASES:
            p = r[release]
            back = "; ".join(f"{k} x {v}" for k, v in p["fallback"].items()) or "none"
            cells += [f"{p['tensorrt_nodes']}/{r['nodes']}, {p['tensorrt_subgraphs']}", back]
        md.append(f"| {r['bundle']} | {r['nodes']} ({ops}) | " + " | ".join(cells) + " |")
    md += [
        "",
        "Subgraphs: runs of supported nodes in graph order; onnxruntime's TensorRT provider builds one TensorRT "
        "engine per connected run and the nodes between them run on the CUDA provider (or the CPU), with a "
        "copy at every border. Op matrix: onnx-tensorrt docs/operators.md (TensorRT 8.5 and 10.15 editions), "
        "transcribed in benchmarks/trt_ops.py.",
    ]
    return "\n".join(md)


def main() -> None:
    from backends import shipped_bundles

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundles", nargs="*", help="bundle folders (default: every bundle in bundles/)")
    args = ap.parse_args()
    paths = [Path(p) for p in args.bundles] if args.bundles else shipped_bundles()
    rows = [report(p) for p in paths]
    text = markdown(rows)
    print(text)
    write_results("trt_ops", {"rows": rows, "releases": list(RELEASES)}, text)


if __name__ == "__main__":
    run_main(main)
