"""Time per graph node, from the engines that can say it: the numpy engine (each step timed) and onnxruntime
(its own profiler). Node i is the i-th node of the bundle's graph (`bundle.graph`), so the times line
up with the FLOP and byte counts of the same nodes. TFLite's interpreter offers no per-op timing through
its Python API: `node_times` returns None for it and a report then has the model's total only.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping

import numpy as np


def node_times(
    engine, x: Mapping[str, np.ndarray] | np.ndarray, repeats: int = 50
) -> dict[int, float] | None:
    """Median milliseconds per run of each graph node (node index -> ms), or None if the engine cannot say.

    onnxruntime fuses some nodes (e.g. Conv + Relu): a fused kernel's time goes to the node it is named after
    and the nodes folded into it get 0.
    """
    name = getattr(engine, "name", "")
    if name == "numpy":
        return _numpy_times(engine, x, repeats)
    if name == "onnxruntime":
        return _ort_times(engine, x, repeats)
    return None


def _numpy_times(engine, x, repeats: int) -> dict[int, float]:
    feeds = engine.adapt(x)
    samples: dict[int, list[float]] = defaultdict(list)
    for _ in range(repeats + 1):
        env = dict(engine.params)
        env.update(feeds)
        for i, _op, fn, ins, outs in engine.steps:
            args = [env[n] if n else None for n in ins]
            t0 = time.perf_counter()
            with np.errstate(all="ignore"):
                res = fn(*args)
            samples[i].append((time.perf_counter() - t0) * 1e3)
            for nm, val in zip(
                outs, res if isinstance(res, tuple) else (res,), strict=False
            ):  # optional outputs
                if nm:
                    env[nm] = val
    return {i: statistics.median(v[1:]) for i, v in samples.items()}  # the first run warms up


def _ort_times(engine, x, repeats: int) -> dict[int, float]:
    import onnxruntime as ort

    bundle = engine.bundle
    nodes = bundle.graph["nodes"]
    names = [n.get("name", "") for n in nodes]
    index = {nm: i for i, nm in enumerate(names) if nm}
    producer = {out: i for i, n in enumerate(nodes) for out in n["outputs"]}
    so = ort.SessionOptions()
    if engine.threads is not None:
        so.intra_op_num_threads = int(engine.threads)
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        so.profile_file_prefix = os.path.join(tmp, "ort")
        so.add_external_initializers(list(bundle.graph["initializers"]), engine.ort_values)
        sess = ort.InferenceSession(bundle.onnx_bytes(), sess_options=so, providers=["CPUExecutionProvider"])
        feeds = engine.adapt(x)
        for _ in range(repeats + 1):
            sess.run(None, feeds)
        path = sess.end_profiling()
        with open(path, encoding="utf-8") as fh:
            events = json.load(fh)
    per: dict[int, list[float]] = defaultdict(list)
    runs = 0
    for e in events:
        if e.get("cat") == "Session" and e.get("name") == "model_run":
            runs += 1
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        i = _ort_node(str(e["name"])[: -len("_kernel_time")], nodes, index, producer)
        if i is not None:
            per[i].append(e["dur"] / 1e3)  # microseconds -> ms
    out = {i: 0.0 for i in range(len(names))}
    for i, v in per.items():
        out[i] = _middle_mean(v[1:] if len(v) > 1 else v)
    return out


def _middle_mean(v: list[float]) -> float:
    """The mean of the middle half of `v`: onnxruntime's profiler gives whole microseconds, so the median of a
    3 us kernel is 0.003 ms exactly (+-15-30 % of rounding on the small layers); the middle half's mean resolves
    below a microsecond where the times jitter, and stays robust to the outliers the median was chosen for."""
    s = sorted(v)
    k = len(s) // 4
    mid = s[k : len(s) - k] or s
    return statistics.fmean(mid)


_FUSED_INTO_PRODUCER = ("Relu", "Clip", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid")


def _ort_node(kernel: str, nodes, index: dict[str, int], producer: dict[str, int]) -> int | None:
    """Which graph node an onnxruntime kernel's time belongs to.

    Kernels keep the node's name ("/video/video.0/Conv"), or carry "fused " in front (FusedGemm), or, after
    the NCHWc layout transform, are named after their output tensor + "_nchwc": a Conv fused with the Relu
    after it is "<Relu output>_nchwc", and its time belongs to the Conv. Layout reorders (ReorderInput /
    ReorderOutput) belong to no node of ours and are left out.
    """
    kernel = kernel.removeprefix("fused ")
    if kernel in index:
        return index[kernel]
    if kernel.endswith("_nchwc"):
        i = producer.get(kernel[: -len("_nchwc")])
        if i is not None and nodes[i]["op"] in _FUSED_INTO_PRODUCER and nodes[i]["inputs"]:
            i = producer.get(nodes[i]["inputs"][0], i)
        return i
    return None
