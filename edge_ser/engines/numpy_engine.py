"""The pure-numpy engine: runs the bundle's ONNX graph (read from model.onnx by edge_ser.bundle), node by
node, in float32.

Needs nothing but numpy, so a device without onnxruntime (or a CI box) can still run a bundle. Everything that does
not depend on the input is done once, at load: weights dequantized, each node compiled (attributes parsed and
checked, constant weights transposed / reshaped for their GEMM) into a small function, and every value given a slot
of a list. Fusions: a Conv followed by an inference BatchNormalization folded into one Conv; a depthwise Conv and
the 1x1 Conv after it run as one op; a residual Add that is a Conv's only consumer done in place on the Conv's
output; a standardisation Sub(x, a) / s of single constants folded into the Conv after it (padding with a); a
classifier head GlobalAveragePool, Flatten, Gemm as one GEMM on the unpooled map; a Relu after a Conv / Gemm /
BatchNormalization (and what was fused into it) applied in place on that op's fresh output. A node whose inputs are
all constants runs once, at load. The plan then runs as one generated straight-line function, with no loop or dict
look-up per node, and each op keeps, per input shape, its work buffers and its views into them (`_Window.plan`), so
a call is a few numpy calls.

Convolutions use im2col (the input into a flat padded buffer, then one strided copy of every kernel tap's inputs
into the columns) and one matrix product per layer (grouped: one batched np.matmul over the groups), so the heavy
lifting is BLAS; a 1x1 Conv is one GEMM on its input; a depthwise Conv (one input channel per group) is one
broadcast multiply over the flat padded input and one sum over the taps, with no Python loop over groups, taps or
positions (on a small map: one matrix per channel, one multiply and one GEMV); a padded MaxPool is separable over
the same flat padded layout. Attention is the graph's batched MatMuls (np.matmul over [batch, heads, tokens, d]),
with no Python loop over positions. `steps` keeps one function per graph node (unfused) for the per-node profiler
(edge_ser.engines.profiling).

Supported ops (ONNX semantics, opset 7..21 where they differ): Add, Sub, Mul, Div, Gemm, MatMul, Relu,
LeakyRelu, Sigmoid, Tanh, Softmax, Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Identity, Dropout, Concat,
Clip, Pad (constant / reflect / edge / wrap), Conv (1-D/2-D/3-D, groups, strides, pads, dilations, auto_pad),
MaxPool and AveragePool (ceil_mode=0), GlobalAveragePool, GlobalMaxPool, ReduceMean, BatchNormalization
(inference), LayerNormalization (opset 17+, axis / epsilon; optional Mean and InvStdDev outputs).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import operator
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_ser.engines.base import InputAdapter, cpu_only, finish_logits
from edge_ser.errors import BundleError
from edge_ser.graph_attrs import NodeAttrs

if TYPE_CHECKING:
    from edge_ser.bundle import Bundle

Op = Callable[..., Any]

NAME = "numpy"
HINT = "nothing to install: numpy only"
VARIANTS: tuple[str, ...] = ()


def unavailable() -> str | None:
    """The numpy engine runs wherever edge_ser does."""
    return None


def names_for(bundle: Bundle) -> tuple[str, ...]:
    """("numpy",) when the engine supports every op of the bundle's graph, else ()."""
    ok = all(
        n.get("op") in SUPPORTED_OPS and n.get("domain", "") in ("", "ai.onnx") for n in bundle.graph["nodes"]
    )
    return (NAME,) if ok else ()


def create(
    bundle: Bundle, variant: str | None = None, *, threads: int | None, providers: Sequence[str] | None
) -> NumpyEngine:
    return NumpyEngine(bundle, threads=threads, providers=providers)


class _NodeError(Exception):
    """An attribute or input the numpy engine cannot handle; turned into a BundleError naming the node."""


class NumpyEngine:
    """Runs the bundle's graph (`bundle.graph`, read from model.onnx) with numpy; `predict(x)` -> float32 logits."""

    name = "numpy"

    def __init__(
        self, bundle: Bundle, *, threads: int | None = None, providers: Sequence[str] | None = None
    ) -> None:
        self.bundle = bundle
        self.threads = threads
        self.providers, self.missing_providers = cpu_only(providers, "numpy")
        g = bundle.graph
        self.opset = int(g["opset"])
        self.input_names = tuple(x["name"] for x in g["inputs"])
        self.output_names = tuple(x["name"] for x in g["outputs"])
        self.params: dict[str, np.ndarray] = {**bundle.dequantized(), **bundle.constants()}
        missing = [n for n in g["initializers"] if n not in self.params]
        if missing:
            raise BundleError(f"bundle {bundle.source}: weights.esq: initializer(s) {missing[:8]} missing")
        defined = set(self.params) | set(self.input_names)
        self.steps: list[tuple[int, str, Op, tuple[str, ...], tuple[str, ...]]] = []
        for i, node in enumerate(g["nodes"]):
            op = node["op"]
            ins, outs = tuple(node["inputs"]), tuple(node["outputs"])
            where = f"bundle {bundle.source}: graph node {i} ({op})"
            for nm in ins:
                if nm and nm not in defined:
                    raise BundleError(
                        f"{where}: input {nm!r} is not defined by any earlier node or initializer"
                    )
            builder = _OPS.get(op) if node.get("domain", "") in ("", "ai.onnx") else None
            if builder is None:
                raise BundleError(
                    f"{where}: op {op!r} is not supported by the numpy engine (supported: {sorted(_OPS)}); "
                    "use the onnxruntime engine"
                )
            try:
                fn = builder(_Node(node, self.opset, self.params))
                if any(ins) and all(not nm or nm in self.params for nm in ins):
                    self._fold_constant(fn, ins, outs)  # its outputs are constants now, as initializers are
                    defined.update(n for n in outs if n)
                    continue
            except (_NodeError, ValueError, TypeError, IndexError) as e:
                raise BundleError(f"{where}: {e}") from None
            self.steps.append((i, op, fn, ins, outs))
            defined.update(n for n in outs if n)
        for nm in self.output_names:
            if nm not in defined:
                raise BundleError(f"bundle {bundle.source}: graph output {nm!r} is not produced by any node")
        self._compile(g["nodes"])
        norm = bundle.normalization
        self.adapt = InputAdapter(bundle, normalize=norm is not None and not norm["in_graph"])
        self._num_classes = bundle.num_classes

    def _fold_constant(self, fn: Op, ins: tuple[str, ...], outs: tuple[str, ...]) -> None:
        """Run a node whose inputs are all constants once, at load, its outputs becoming constants (a later
        node then sees them as it sees initializers: a Conv whose weight is an Identity of one keeps its fast
        path, a standardisation by an Identity'd constant can be folded)."""
        with np.errstate(all="ignore"):
            res = fn(*(self.params[nm] if nm else None for nm in ins))
        for nm, val in zip(outs, res if isinstance(res, tuple) else (res,), strict=False):
            if nm:
                self.params[nm] = np.asarray(val)

    def _compile(self, nodes: Sequence[Mapping[str, Any]]) -> None:
        """The run plan: `steps` with Conv + BatchNormalization folded and Relu fused (`_fuse`), every value
        in a slot of one list (slot 0 holds None, for an absent optional input), initializers pre-filled."""
        plan = _fuse(self.steps, nodes, self.opset, self.params, self.output_names)
        slots: dict[str, int] = {"": 0}
        for name in itertools.chain(self.params, self.input_names):
            slots.setdefault(name, len(slots))
        compiled, code = [], ["def straight(env):"]
        scope = {"store": _store, "maximum": np.maximum, "zero": _f32(0.0)}
        for k, (i, op, fn, ins, outs) in enumerate(plan):
            for nm in outs:
                if nm:
                    slots.setdefault(nm, len(slots))
            outs_idx = tuple(slots[nm] if nm else -1 for nm in outs)
            get = operator.itemgetter(*(slots[nm] for nm in ins))  # a tuple for 2+ inputs, the value for 1
            compiled.append((i, op, fn, get, len(ins) > 1, outs_idx))
            inner = getattr(fn, "relu_of", None)
            scope[f"f{k}"] = fn if inner is None else inner
            call = f"f{k}({', '.join(f'env[{slots[nm]}]' for nm in ins)})"
            if inner is not None:  # a fused Relu: one call frame fewer
                code.append(f"    r = {call}")
                code.append(f"    env[{outs_idx[0]}] = maximum(r, zero, out=r)")
            elif len(outs) == 1:
                code.append(f"    r = {call}")
                code.append(f"    if r.__class__ is tuple: store(env, r, {outs_idx})")
                code.append(f"    else: env[{outs_idx[0]}] = r")
            else:
                code.append(f"    store(env, {call}, {outs_idx})")
        template: list[Any] = [None] * len(slots)
        for name, value in self.params.items():
            template[slots[name]] = value
        self._plan = tuple(compiled)
        # The plan as one straight-line function (as collections.namedtuple builds its class): no loop,
        # unpacking or itemgetter per node, ~1 us a node; `run` falls back to the loop to name a failing node
        exec(compile("\n".join(code), f"<numpy engine: {self.bundle.source}>", "exec"), scope)
        self._straight = scope["straight"]
        self._template = template
        self._feed_slots = tuple((name, slots[name]) for name in self.input_names)
        self._out_slots = tuple(slots[name] for name in self.output_names)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Execute the graph on named float32 inputs; returns every graph output by name."""
        env = self._template.copy()
        for name, slot in self._feed_slots:
            env[slot] = feeds[name]
        # NaN / inf propagate silently, as in onnxruntime (no RuntimeWarning per frame on a device)
        with np.errstate(all="ignore"):
            try:
                self._straight(env)
                return {name: env[j] for name, j in zip(self.output_names, self._out_slots, strict=True)}
            except (ValueError, TypeError, IndexError, _NodeError, FloatingPointError):
                env = self._template.copy()  # run again node by node, to say which node failed
                for name, slot in self._feed_slots:
                    env[slot] = feeds[name]
            for i, op, fn, get, several, outs in self._plan:
                try:
                    res = fn(*get(env)) if several else fn(get(env))
                except (ValueError, TypeError, IndexError, _NodeError, FloatingPointError) as e:
                    raise BundleError(f"bundle {self.bundle.source}: graph node {i} ({op}): {e}") from e
                _store(env, res, outs)
        return {name: env[j] for name, j in zip(self.output_names, self._out_slots, strict=True)}

    def predict(self, x: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
        """float32 [n, d] (or one sample [d], or a dict for several inputs) -> float32 logits [n, classes]."""
        out = self.run(self.adapt(x))
        return finish_logits(out[self.output_names[0]], self.bundle.source, self._num_classes)

    def describe(self) -> str:
        s = (
            f"numpy engine: {self.bundle.name} ({self.bundle.source}); {len(self.steps)} nodes, opset {self.opset}; "
            "threads: numpy/BLAS default (threads= is not applied: OPENBLAS_NUM_THREADS sets them)"
        )
        if self.missing_providers:
            s += f"; requested but not available with this engine: {list(self.missing_providers)} (running on CPU)"
        return s

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


def _store(env: list[Any], res: Any, outs: tuple[int, ...]) -> None:
    """An op's result(s) into their slots; an op may leave optional outputs (a mask) unset."""
    for j, val in zip(outs, res if isinstance(res, tuple) else (res,), strict=False):
        if j >= 0:
            env[j] = val


Step = tuple[int, str, Op, tuple[str, ...], tuple[str, ...]]
"""(graph node index, op, compiled function, input names, output names)."""
_FRESH = frozenset({"Conv", "Gemm", "BatchNormalization"})
"""Ops whose compiled function returns a new float32 array of its own (never a view of an input or a weight):
a Relu after one runs in place on it."""


def _fuse(
    steps: Sequence[Step],
    nodes: Sequence[Mapping[str, Any]],
    opset: int,
    params: dict[str, np.ndarray],
    outputs: Sequence[str],
) -> list[Step]:
    """`steps` with each Conv whose only consumer is an inference BatchNormalization of constants folded into
    one Conv (new weight and bias added to `params`), an Add that is the only use of a _FRESH op's output (a
    residual connection, its other addend computed earlier) done by that op, and each Relu whose input is the
    only use of a _FRESH op's output applied in place by that op. The absorbed node's own check ran when it
    was compiled."""
    uses = Counter(nm for _, _, _, ins, _ in steps for nm in ins if nm)
    uses.update(outputs)
    consumer = {nm: k for k, (_, _, _, ins, _) in enumerate(steps) for nm in ins if nm}

    def only_consumer(outs: tuple[str, ...], op: str) -> int | None:
        if len(outs) != 1 or not outs[0] or uses[outs[0]] != 1 or outs[0] not in consumer:
            return None
        k = consumer[outs[0]]
        return k if steps[k][1] == op else None

    producer = {nm: k for k, (_, _, _, _, outs) in enumerate(steps) for nm in outs if nm}
    absorbed: set[int] = set()
    plan: list[Step] = []
    for k, (i, op, fn, ins, outs) in enumerate(steps):
        if k in absorbed:
            continue
        div = only_consumer(outs, "Div") if op == "Sub" else None
        conv = None if div is None else only_consumer(steps[div][4], "Conv")
        # the Conv the standardisation folds into, itself with the BatchNormalization after it folded in
        conv_node, conv_bn = None if conv is None else nodes[steps[conv][0]], None
        if conv is not None and conv_node is not None:
            conv_bn = only_consumer(steps[conv][4], "BatchNormalization")
            bn_fold = (
                None
                if conv_bn is None
                else _fold_batchnorm(conv_node, nodes[steps[conv_bn][0]], opset, params)
            )
            if bn_fold is None or conv_bn is None:
                conv_bn = None
            else:
                conv_node = {**conv_node, "inputs": list(bn_fold[1]), "outputs": list(steps[conv_bn][4])}
        std = (
            None
            if conv is None or div is None or conv_node is None
            else _fold_standardisation(k, div, conv_node, steps, opset, params)
        )
        if std is not None and div is not None and conv is not None:
            fn, ins, op, outs = std, ins[:1], "Sub+Div+Conv", steps[conv][4]
            absorbed.update((div, conv))
            if conv_bn is not None:
                op, outs = f"{op}+BatchNormalization", steps[conv_bn][4]
                absorbed.add(conv_bn)
        flat = only_consumer(outs, "Flatten") if op == "GlobalAveragePool" else None
        dense = None if flat is None else only_consumer(steps[flat][4], "Gemm")
        head = (
            None
            if dense is None or flat is None
            else _pool_gemm(nodes[steps[flat][0]], nodes[steps[dense][0]], opset, params)
        )
        if head is not None and flat is not None and dense is not None:
            fn, op, outs = head, "GlobalAveragePool+Flatten+Gemm", steps[dense][4]
            absorbed.update((flat, dense))
        bn = only_consumer(outs, "BatchNormalization") if op == "Conv" else None
        folded = None if bn is None else _fold_batchnorm(nodes[i], nodes[steps[bn][0]], opset, params)
        if folded is not None and bn is not None:
            fn, ins = folded
            op, outs = f"{op}+BatchNormalization", steps[bn][4]
            absorbed.add(bn)
        pw = only_consumer(outs, "Conv") if op == "Conv" else None
        sep = None if pw is None else _separable(nodes[i], nodes[steps[pw][0]], opset, params)
        if sep is not None and pw is not None:
            fn, ins, op, outs = sep, ins[:1], "Conv+Conv", steps[pw][4]
            absorbed.add(pw)
        add = only_consumer(outs, "Add") if op.split("+")[-1] in _FRESH else None
        if add is not None:
            a, b = steps[add][3]
            other = b if a == outs[0] else a
            if other != outs[0] and producer.get(other, -1) < k:  # the other addend exists by then
                fn, ins, op, outs = _then_add(fn, len(ins)), (*ins, other), f"{op}+Add", steps[add][4]
                absorbed.add(add)
        fresh = op.split("+")[0] in _FRESH or op.split("+")[-1] in _FRESH  # what is fused keeps it fresh
        relu = only_consumer(outs, "Relu") if fresh else None
        if relu is not None:
            fn, op, outs = _then_relu(fn), f"{op}+Relu", steps[relu][4]
            absorbed.add(relu)
        plan.append((i, op, fn, ins, outs))
    return plan


def _fold_standardisation(
    sub: int,
    div: int,
    node: Mapping[str, Any],
    steps: Sequence[Step],
    opset: int,
    params: dict[str, np.ndarray],
) -> Op | None:
    """Sub(x, a), Div(., s), then a Conv of constants (`node`: the graph's, or one with the BatchNormalization
    after it folded in), a and s single constants (a model standardising its input), as one Conv on x: weight
    w / s, bias b - (a / s) * (sum of each output channel's weights), and padding that holds a (the raw value
    that standardises to 0, what the graph's zero padding is). None unless the pattern holds exactly."""
    x, a_name = steps[sub][3]
    d_in, s_name = steps[div][3]
    a, sd = params.get(a_name), params.get(s_name)
    w = params.get(node["inputs"][1]) if len(node["inputs"]) > 1 else None
    b_name = node["inputs"][2] if len(node["inputs"]) > 2 else ""
    if (
        a is None
        or sd is None
        or a.size != 1
        or sd.size != 1
        or float(sd.ravel()[0]) == 0.0
        or d_in != steps[sub][4][0]
        or node["inputs"][0] != steps[div][4][0]
        or w is None
        or (b_name and b_name not in params)
        or x in params
    ):
        return None
    a0, s0 = float(a.ravel()[0]), float(sd.ravel()[0])
    b = params[b_name].astype(np.float64) if b_name else np.zeros(w.shape[0])
    w_name, bias_name = (
        f"{node['outputs'][0]}::standardised_weight",
        f"{node['outputs'][0]}::standardised_bias",
    )
    params[w_name] = (w.astype(np.float64) / s0).astype(np.float32)
    params[bias_name] = (b - a0 / s0 * w.astype(np.float64).reshape(w.shape[0], -1).sum(axis=1)).astype(
        np.float32
    )
    conv_fn = _conv(_Node({**node, "inputs": [x, w_name, bias_name]}, opset, params), pad_value=a0)
    return functools.partial(conv_fn, w=params[w_name], b=params[bias_name])  # its constants: the fast path


def _pool_gemm(
    flat: Mapping[str, Any], gemm: Mapping[str, Any], opset: int, params: Mapping[str, np.ndarray]
) -> Op | None:
    """GlobalAveragePool, Flatten (axis 1), then a Gemm of a constant weight (a CNN's classifier head) as one
    GEMM on the unpooled input: the weight repeated over the P pixels and divided by P (built once per P), so
    mean and product are one np.dot. None unless the pattern holds (transA, a weight or bias that is an
    input)."""
    fn_, gn = _Node(flat, opset, params), _Node(gemm, opset, params)
    w, c = gn.const(1), gn.const(2)
    has_c = len(gemm["inputs"]) > 2 and bool(gemm["inputs"][2])
    if fn_.i("axis", 1) != 1 or gemm["inputs"][0] != flat["outputs"][0] or gn.i("transA", 0) or w is None:
        return None
    if (has_c and c is None) or w.ndim != 2:
        return None
    wm = (w.T if gn.i("transB", 0) else w).astype(np.float64) * gn.f("alpha", 1.0)  # [C, M]
    bias = None if c is None else np.asarray(c * gn.f("beta", 1.0), np.float32)
    spread: dict[int, np.ndarray] = {}

    def head(x: np.ndarray) -> np.ndarray:
        if x.ndim < 3 or x.shape[1] != wm.shape[0]:
            raise _NodeError(f"input {list(x.shape)} does not fit a classifier of {wm.shape[0]} inputs")
        n, ch, p = x.shape[0], x.shape[1], math.prod(x.shape[2:])
        wp = spread.get(p)
        if wp is None:
            wp = np.ascontiguousarray(np.repeat(wm / p, p, axis=0), dtype=np.float32)  # row c * P + q
            if len(spread) < 4:
                spread[p] = wp
        y = np.dot(x.reshape(n, ch * p), wp)
        if bias is not None:
            y += bias
        return y

    return head


def _fold_batchnorm(
    conv: Mapping[str, Any], bn: Mapping[str, Any], opset: int, params: dict[str, np.ndarray]
) -> tuple[Op, tuple[str, ...]] | None:
    """Conv then BatchNormalization as one Conv: weight * k per output channel, bias (b - mean) * k + beta
    (k = scale / sqrt(var + eps)); None unless the weight, bias and BN inputs are all constants."""
    if len(bn["inputs"]) != 5:  # not folded: `_batchnorm` refuses the node by name (here it was a TypeError)
        return None
    w = params.get(conv["inputs"][1])
    b_name = conv["inputs"][2] if len(conv["inputs"]) > 2 else ""
    stats = [params.get(nm) for nm in bn["inputs"][1:5]]
    if w is None or (b_name and b_name not in params) or any(v is None for v in stats):
        return None
    k, shift = _bn_affine(*stats, _Node(bn, opset, params).f("epsilon", 1e-5))
    b = params[b_name] if b_name else np.zeros(w.shape[0], np.float32)
    out = bn["outputs"][0]
    w_name, bias_name = f"{out}::folded_weight", f"{out}::folded_bias"
    params[w_name] = (w * k.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)
    params[bias_name] = (b * k + shift).astype(np.float32)
    ins = (conv["inputs"][0], w_name, bias_name)
    return _conv(_Node({**conv, "inputs": list(ins)}, opset, params)), ins


def _then_add(fn: Op, n_args: int) -> Op:
    """`fn` on the first `n_args` inputs, then the last input added to its (fresh) output, in place when the
    shapes match (a residual connection), else broadcast into a new array."""

    def fused(*args: Any) -> np.ndarray:
        y, other = fn(*args[:n_args]), args[n_args]
        if other.shape == y.shape and other.dtype == y.dtype:
            return np.add(y, other, out=y)
        return np.add(y, other)

    return fused


def _separable(
    dw: Mapping[str, Any], pw: Mapping[str, Any], opset: int, params: Mapping[str, np.ndarray]
) -> Op | None:
    """A depthwise Conv whose only consumer is a 1x1 Conv (a separable conv), both of constant weights, as
    one op: the depthwise outputs go straight into the 1x1 GEMM's columns, next to a row of ones that adds
    its bias (the depthwise bias folded in: W (d + b_d) + b = W d + (W b_d + b)). None when the pair is not
    one (a grouped, strided or padded 1x1, weights that are graph inputs, a depthwise conv that is not)."""
    dn, pn = _Node(dw, opset, params), _Node(pw, opset, params)
    wd, wp = dn.const(1), pn.const(1)
    has_bd = len(dw["inputs"]) > 2 and bool(dw["inputs"][2])
    has_bp = len(pw["inputs"]) > 2 and bool(pw["inputs"][2])
    bd, bp = dn.const(2), pn.const(2)
    group = dn.i("group", 1)
    if wd is None or wp is None or (has_bd and bd is None) or (has_bp and bp is None):
        return None
    if group < 2 or wd.ndim < 3 or wd.shape[1] != 1 or wd.shape[0] % group:
        return None
    if wp.shape[1:] != (wd.shape[0],) + (1,) * (wd.ndim - 2) or pn.i("group", 1) != 1:
        return None
    pwin = _Window(pn, list(wp.shape[2:]), None)
    if pwin.auto_pad not in ("NOTSET", "VALID") or any(pwin.pads) or max(pwin.strides) > 1:
        return None
    w2 = wp.reshape(wp.shape[0], -1).astype(np.float64)
    bias = np.zeros(wp.shape[0]) if bp is None else np.asarray(bp, np.float64)
    if bd is not None:
        bias = bias + w2 @ np.asarray(bd, np.float64)
    wb = np.ascontiguousarray(np.concatenate([w2, bias[:, None]], axis=1), dtype=np.float32)
    kernel = dn.ints("kernel_shape", None) or list(wd.shape[2:])
    return _depthwise(_Window(dn, kernel, None), kernel, wd, None, group, then=wb)


def _then_relu(fn: Op) -> Op:
    """`fn`, then Relu in place on its (fresh) output."""
    zero = _f32(0.0)

    def fused(*args: Any) -> np.ndarray:
        y = fn(*args)
        return np.maximum(y, zero, out=y)

    fused.relu_of = fn  # type: ignore[attr-defined]  # the generated plan calls fn and the maximum inline
    return fused


# --------------------------------------------------------------------------------------------------------------
# node compilation helpers
# --------------------------------------------------------------------------------------------------------------


class _Node(NodeAttrs):
    error = _NodeError

    def __init__(self, node: Mapping[str, Any], opset: int, params: Mapping[str, np.ndarray]) -> None:
        self.op = node["op"]
        self.inputs = list(node["inputs"])
        self.outputs = list(node["outputs"])
        self.attrs = dict(node.get("attrs") or {})
        self.opset = opset
        self.params = params

    def need_inputs(self, lo: int, hi: int | None = None) -> None:
        n = len(self.inputs)
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if hi == lo else f"{lo}..{hi if hi is not None else 'n'}"
            raise _NodeError(f"takes {want} inputs, got {n}")
        for j in range(lo):
            if not self.inputs[j]:
                raise _NodeError(f"input {j} is required")

    def only_outputs(self, n: int) -> None:
        extra = [o for o in self.outputs[n:] if o]
        if extra:
            raise _NodeError(f"optional output(s) {extra} are not supported by the numpy engine")

    def const(self, j: int) -> np.ndarray | None:
        """Input j when it is an initializer or constant (known at load), else None."""
        if j >= len(self.inputs) or not self.inputs[j]:
            return None
        return self.params.get(self.inputs[j])


def _f32(x: float) -> np.float32:
    return np.float32(x)


_KEEP_BYTES = 4 << 20
"""Work buffers up to this size are kept between calls (a batch-1 call's are well under 1 MB); a larger one, of
a big batch, is freed after its call, so a long file read in batches does not keep tens of MB alive."""
_SHIFT_RANGE = 60.0
"""Softmax may subtract one maximum for the whole tensor when all values lie within this of it: exp(-60) is
~1e-26, far above float32's smallest normal (~1e-38)."""


@functools.lru_cache(maxsize=64)
def _mean_vector(n: int, total: float | None = None) -> np.ndarray:
    """float32 [n] of 1/n (or of `total`): x @ it is the mean (sum) over x's last axis, as a BLAS GEMV."""
    v = np.full(n, 1.0 / max(n, 1) if total is None else total, dtype=np.float32)
    v.setflags(write=False)
    return v


def _int_list(a: np.ndarray, what: str) -> list[int]:
    a = np.asarray(a).reshape(-1)
    if a.dtype.kind == "f" and not (np.isfinite(a).all() and (a == np.round(a)).all()):
        raise _NodeError(f"{what} must hold whole numbers, got {a.tolist()}")
    return [int(v) for v in a]


def _axis(axis: int, ndim: int, what: str = "axis") -> int:
    if not -ndim <= axis < ndim:
        raise _NodeError(f"{what}={axis} is out of range for a {ndim}-d input")
    return axis % ndim


# --------------------------------------------------------------------------------------------------------------
# element-wise and dense ops
# --------------------------------------------------------------------------------------------------------------


def _binary(fn: Callable[[Any, Any], Any]) -> Callable[[_Node], Op]:
    def build(n: _Node) -> Op:
        n.need_inputs(2, 2)
        n.only_outputs(1)
        return fn

    return build


def _unary(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[_Node], Op]:
    def build(n: _Node) -> Op:
        n.need_inputs(1, 1)
        n.only_outputs(1)
        return fn

    return build


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # 0.5 * (1 + tanh(x / 2)) == 1 / (1 + exp(-x)), without overflow for large |x|
    return (_f32(0.5) * (_f32(1.0) + np.tanh(x * _f32(0.5)))).astype(np.float32, copy=False)


def _gemm(n: _Node) -> Op:
    n.need_inputs(2, 3)
    n.only_outputs(1)
    alpha, beta = _f32(n.f("alpha", 1.0)), _f32(n.f("beta", 1.0))
    ta, tb = n.i("transA", 0), n.i("transB", 0)
    b_const, c_const = n.const(1), n.const(2)
    has_c = len(n.inputs) > 2 and bool(n.inputs[2])
    if b_const is not None and not ta and (c_const is not None or not has_c):
        # the usual layer: constant weight (transposed once, alpha folded in) and bias (beta folded in)
        b_pre = np.ascontiguousarray(b_const.T if tb else b_const, dtype=np.float32)
        if alpha != 1:
            b_pre = b_pre * alpha
        c_pre = None if c_const is None else np.asarray(c_const * beta if beta != 1 else c_const, np.float32)

        def dense(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
            if a.ndim != 2:
                raise _NodeError(f"Gemm takes 2-d inputs, got {list(a.shape)} and {list(b.shape)}")
            y = np.dot(a, b_pre)  # np.dot: half matmul's call overhead on small 2-d operands
            if c_pre is not None:
                y += c_pre
            return y

        return dense

    def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        if a.ndim != 2 or b.ndim != 2:
            raise _NodeError(f"Gemm takes 2-d inputs, got {list(a.shape)} and {list(b.shape)}")
        y = (a.T if ta else a) @ (b.T if tb else b)
        if alpha != 1:
            y = y * alpha
        if c is not None:
            y = y + (c * beta if beta != 1 else c)
        return y

    return gemm


def _leaky_relu(n: _Node) -> Op:
    n.need_inputs(1, 1)
    n.only_outputs(1)
    alpha = _f32(n.f("alpha", 0.01))
    return lambda x: np.where(x >= 0, x, x * alpha)


def _softmax(n: _Node) -> Op:
    n.need_inputs(1, 1)
    n.only_outputs(1)
    axis = n.i("axis", -1 if n.opset >= 13 else 1)
    legacy = n.opset < 13  # before opset 13: coerce to 2-d at `axis`, softmax over the flattened tail

    def softmax(x: np.ndarray) -> np.ndarray:
        ax = _axis(axis, x.ndim)
        if legacy:
            shape = x.shape
            x2 = x.reshape(math.prod(shape[:ax]), -1)
            return softmax_2d(x2, 1).reshape(shape)
        return softmax_2d(x, ax)

    def softmax_2d(x: np.ndarray, ax: int) -> np.ndarray:
        if ax == x.ndim - 1 and x.size and float(x.max()) - float(x.min()) < _SHIFT_RANGE:
            # attention rows: numpy reduces short last axes slowly; any shift gives the same softmax, and with
            # every value within _SHIFT_RANGE of the global maximum no exp underflows. Row sums as one GEMV.
            e = np.exp(x - x.max())
            e /= (e @ _mean_vector(x.shape[-1], 1.0))[..., None]
            return e
        e = np.exp(x - x.max(axis=ax, keepdims=True))
        e /= e.sum(axis=ax, keepdims=True)
        return e

    return softmax


def _flatten(n: _Node) -> Op:
    n.need_inputs(1, 1)
    n.only_outputs(1)
    axis = n.i("axis", 1)

    def flatten(x: np.ndarray) -> np.ndarray:
        ax = axis + x.ndim if axis < 0 else axis
        if not 0 <= ax <= x.ndim:
            raise _NodeError(f"axis={axis} is out of range for a {x.ndim}-d input")
        return x.reshape(math.prod(x.shape[:ax]), math.prod(x.shape[ax:]))

    return flatten


def _reshape(n: _Node) -> Op:
    n.need_inputs(1, 2)
    n.only_outputs(1)
    allowzero = n.i("allowzero", 0)
    if len(n.inputs) >= 2 and n.inputs[1]:
        c = n.const(1)
        static = _int_list(c, "Reshape shape") if c is not None else None
    else:
        static = n.ints("shape", None)
        if static is None:
            raise _NodeError("needs a shape (second input or 'shape' attribute)")

    if static is not None and 0 not in static and min(static, default=0) >= -1 and static.count(-1) <= 1:
        target = tuple(static)
        return lambda x, shape=None: x.reshape(target)

    def reshape(x: np.ndarray, shape: np.ndarray | None = None) -> np.ndarray:
        target = static if static is not None else _int_list(shape, "Reshape shape")
        out = []
        for j, s in enumerate(target):
            if s == 0 and not allowzero:
                if j >= x.ndim:
                    raise _NodeError(f"shape {target}: 0 at axis {j} but the input has {x.ndim} axes")
                s = x.shape[j]
            elif s < -1:
                raise _NodeError(f"shape {target}: invalid dimension {s}")
            out.append(s)
        if out.count(-1) > 1:
            raise _NodeError(f"shape {target}: more than one -1")
        return x.reshape(out)

    return reshape


def _transpose(n: _Node) -> Op:
    n.need_inputs(1, 1)
    n.only_outputs(1)
    perm = n.ints("perm", None)
    return lambda x: np.transpose(x, perm)


def _axes_from(n: _Node, attr_until: int) -> tuple[list[int] | None, bool]:
    """Axes of Squeeze / Unsqueeze / ReduceMean: attribute before opset `attr_until`, else an optional input."""
    if n.opset < attr_until:
        return n.ints("axes", None), False
    if len(n.inputs) >= 2 and n.inputs[1]:
        c = n.const(1)
        if c is None:
            return None, True  # computed at run time
        return _int_list(c, "axes"), False
    return None, False


def _squeeze(n: _Node) -> Op:
    n.need_inputs(1, 2)
    n.only_outputs(1)
    axes, dynamic = _axes_from(n, 13)

    def squeeze(x: np.ndarray, ax_in: np.ndarray | None = None) -> np.ndarray:
        ax = _int_list(ax_in, "axes") if dynamic else axes
        if ax is None:
            return np.squeeze(x)
        return np.squeeze(x, axis=tuple(_axis(a, x.ndim) for a in ax))

    return squeeze


def _unsqueeze(n: _Node) -> Op:
    n.need_inputs(1, 2)
    n.only_outputs(1)
    axes, dynamic = _axes_from(n, 13)
    if axes is None and not dynamic:
        raise _NodeError("needs axes")

    def unsqueeze(x: np.ndarray, ax_in: np.ndarray | None = None) -> np.ndarray:
        ax = _int_list(ax_in, "axes") if dynamic else axes
        out_nd = x.ndim + len(ax)
        return np.expand_dims(x, tuple(_axis(a, out_nd) for a in ax))

    return unsqueeze


def _reduce_mean(n: _Node) -> Op:
    n.need_inputs(1, 2)
    n.only_outputs(1)
    keep = bool(n.i("keepdims", 1))
    noop = bool(n.i("noop_with_empty_axes", 0))
    axes, dynamic = _axes_from(n, 18)

    def reduce_mean(x: np.ndarray, ax_in: np.ndarray | None = None) -> np.ndarray:
        ax = _int_list(ax_in, "axes") if dynamic else axes
        if not ax:
            if noop:
                return x
            return x.mean(axis=None, keepdims=keep).astype(np.float32, copy=False)
        if len(ax) == 1 and x.dtype == np.float32:
            return _mean_one_axis(x, _axis(ax[0], x.ndim), keep)
        return x.mean(axis=tuple(_axis(a, x.ndim) for a in ax), keepdims=keep).astype(np.float32, copy=False)

    return reduce_mean


def _mean_one_axis(x: np.ndarray, a: int, keep: bool) -> np.ndarray:
    """x.mean(axis=a) as one GEMV with a vector of 1/n (numpy's reductions over a short axis are slow)."""
    shape = x.shape
    pre, n, post = math.prod(shape[:a]), shape[a], math.prod(shape[a + 1 :])
    w = _mean_vector(n)
    r = x.reshape(pre, n) @ w if post == 1 else w @ x.reshape(pre, n, post)
    return r.reshape(shape[:a] + ((1,) if keep else ()) + shape[a + 1 :])


def _identity(n: _Node) -> Op:
    n.need_inputs(1, 1)
    n.only_outputs(1)
    return lambda x: x


def _dropout(n: _Node) -> Op:
    n.need_inputs(1, 3)
    if n.i("training_mode", 0) or (n.const(2) is not None and bool(np.asarray(n.const(2)).reshape(-1)[0])):
        raise _NodeError("training_mode is not supported (inference only)")
    want_mask = len(n.outputs) > 1 and bool(n.outputs[1])
    return lambda x, *_: (x, np.ones(x.shape, dtype=bool)) if want_mask else x


def _concat(n: _Node) -> Op:
    n.need_inputs(1)
    n.only_outputs(1)
    if "axis" not in n.attrs:
        raise _NodeError("attribute 'axis' is required")
    axis = n.i("axis", 0)
    return lambda *xs: np.concatenate(xs, axis=_axis(axis, xs[0].ndim))


def _clip(n: _Node) -> Op:
    n.need_inputs(1, 3)
    n.only_outputs(1)
    if n.opset < 11:
        lo: Any = _f32(n.f("min", -np.inf))
        hi: Any = _f32(n.f("max", np.inf))
        return lambda x: np.clip(x, lo, hi)

    def clip(x: np.ndarray, lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> np.ndarray:
        a = None if lo is None else np.asarray(lo, dtype=np.float32).reshape(())
        b = None if hi is None else np.asarray(hi, dtype=np.float32).reshape(())
        if a is None and b is None:
            return x
        return np.clip(x, a, b)

    return clip


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


def _pad(n: _Node) -> Op:
    """ONNX Pad: pads [begin..., end...] per axis (negative values crop), modes constant / reflect / edge /
    wrap; before opset 11 pads and value are attributes, from 18 an optional `axes` input names the axes."""
    n.need_inputs(1 if n.opset < 11 else 2, 1 if n.opset < 11 else 4)
    n.only_outputs(1)
    mode = n.s("mode", "constant")
    if mode not in _PAD_MODES:
        raise _NodeError(f"mode={mode!r} is not supported")
    if n.opset < 11:
        static, value, axes_static = n.ints("pads", None), _f32(n.f("value", 0.0)), None
        if static is None:
            raise _NodeError("attribute 'pads' is required")
    else:
        c, a = n.const(1), n.const(3)
        static = None if c is None else _int_list(c, "pads")
        axes_static = None if a is None else _int_list(a, "axes")
        value = None

    def pad(x: np.ndarray, p: Any = None, v: Any = None, ax: Any = None) -> np.ndarray:
        pads = static if static is not None else _int_list(p, "pads")
        axes = list(range(x.ndim))
        if ax is not None:
            axes = [_axis(a, x.ndim) for a in (axes_static or _int_list(ax, "axes"))]
        if len(pads) != 2 * len(axes):
            raise _NodeError(f"pads {pads} do not fit {len(axes)} axes")
        width = [[0, 0] for _ in range(x.ndim)]
        for j, a in enumerate(axes):
            width[a] = [pads[j], pads[j + len(axes)]]
        crop = tuple(slice(max(-b, 0), x.shape[a] - max(-e, 0)) for a, (b, e) in enumerate(width))
        x = x[crop]
        grow = [(max(b, 0), max(e, 0)) for b, e in width]
        if mode != "constant":
            return np.pad(x, grow, mode=_PAD_MODES[mode])
        fill = value if value is not None else (0.0 if v is None else np.asarray(v).reshape(-1)[0])
        return np.pad(x, grow, mode="constant", constant_values=np.asarray(fill, dtype=x.dtype))

    return pad


def _batchnorm(n: _Node) -> Op:
    n.need_inputs(5, 5)
    n.only_outputs(1)
    if n.i("training_mode", 0):
        raise _NodeError("training_mode=1 is not supported (inference only)")
    eps = n.f("epsilon", 1e-5)
    consts = [n.const(j) for j in range(1, 5)]
    pre = _bn_affine(*consts, eps) if all(c is not None for c in consts) else None

    def bn(x: np.ndarray, scale: np.ndarray, b: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        k, shift = pre if pre is not None else _bn_affine(scale, b, mean, var, eps)
        y = x * k.reshape(shape)
        y += shift.reshape(shape)
        return y

    return bn


def _bn_affine(
    scale: np.ndarray, b: np.ndarray, mean: np.ndarray, var: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Inference BatchNormalization as y = x * k + shift, per channel (float32)."""
    k = (scale / np.sqrt(var + _f32(eps))).astype(np.float32)
    return k, (b - mean * k).astype(np.float32)


def _layernorm(n: _Node) -> Op:
    """ONNX LayerNormalization: normalise over axes [axis, ..., rank-1], then * Scale (+ B); float32 maths."""
    n.need_inputs(2, 3)
    if len(n.outputs) > 3:
        raise _NodeError(f"has at most 3 outputs, got {len(n.outputs)}")
    axis = n.i("axis", -1)
    eps = _f32(n.f("epsilon", 1e-5))
    if n.i("stash_type", 1) != 1:
        raise _NodeError("stash_type other than 1 (float32) is not supported")
    extra = any(n.outputs[1:])  # Mean / InvStdDev requested

    def layernorm(x: np.ndarray, scale: np.ndarray, b: np.ndarray | None = None) -> Any:
        ax = _axis(axis, x.ndim)
        stat_shape = x.shape[:ax] + (1,) * (x.ndim - ax)
        x2 = x.reshape(-1, math.prod(x.shape[ax:]))  # rows to normalise
        w = _mean_vector(x2.shape[1])
        mean = x2 @ w  # row means as one GEMV (numpy's reductions over short rows are slow)
        d = (x2 - mean[:, None]).astype(np.float32, copy=False)
        var = np.square(d) @ w
        var += eps
        inv = np.sqrt(var)
        np.divide(_f32(1.0), inv, out=inv)
        d *= inv[:, None]
        y = d.reshape(x.shape)
        y *= scale
        if b is not None:
            y += b
        return (y, mean.reshape(stat_shape), inv.reshape(stat_shape)) if extra else y

    return layernorm


# --------------------------------------------------------------------------------------------------------------
# convolution and pooling
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _FlatGeometry:
    """An input [N, C, spatial...] in a flat padded buffer: each image padded to `padded`
    (`size` values, one gap after each row / plane), the buffer offset of one step of each kernel axis, where
    the first image starts (the padding before it), the extra values after the last image, the input's place in
    a padded image, the output size and its positions among the padded ones."""

    padded: tuple[int, ...]
    size: int
    tap_strides: tuple[int, ...]
    lead: int
    slack: int
    interior: tuple[slice, ...]
    out: tuple[int, ...]
    pick: tuple[slice, ...]


def _buffer_bytes(a: Any) -> int:
    """The bytes of the array `a` is a view of (a tuple: its largest item's), for `_Window.plan`'s limit."""
    if isinstance(a, tuple):
        return max((_buffer_bytes(b) for b in a), default=0)
    while isinstance(a, np.ndarray) and isinstance(a.base, np.ndarray):
        a = a.base
    return a.nbytes if isinstance(a, np.ndarray) else 0


class _Window:
    """Kernel, strides, pads and dilations of a Conv or pool node over `nd` spatial axes."""

    def __init__(self, n: _Node, kernel: list[int] | None, nd: int | None) -> None:
        if kernel is not None:
            nd = len(kernel)
        assert nd is not None
        self.nd = nd
        self.kernel = kernel
        self.strides = n.ints("strides", [1] * nd)
        self.dilations = n.ints("dilations", [1] * nd)
        self.pads = n.ints("pads", [0] * (2 * nd))
        self.auto_pad = n.s("auto_pad", "NOTSET")
        if len(self.strides) != nd or len(self.dilations) != nd or len(self.pads) != 2 * nd:
            raise _NodeError(
                f"strides {self.strides}, dilations {self.dilations}, pads {self.pads} do not fit {nd} spatial axes"
            )
        if min(self.strides) < 1 or min(self.dilations) < 1 or min(self.pads) < 0:
            raise _NodeError("strides and dilations must be >= 1 and pads >= 0")
        if self.auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
            raise _NodeError(f"auto_pad={self.auto_pad!r} is not supported")
        if n.i("ceil_mode", 0):
            raise _NodeError("ceil_mode=1 is not supported by the numpy engine")
        self.pad_value = 0.0
        """What im2col and the depthwise path pad with (`_conv`'s pad_value)."""
        self._scratch = threading.local()
        self._taps: dict[
            tuple[int, ...], tuple[tuple[int, ...], list[tuple[tuple[int, ...], tuple[slice, ...]]]]
        ] = {}

    def pad_widths(self, spatial: Sequence[int], kernel: Sequence[int]) -> list[tuple[int, int]]:
        if self.auto_pad == "VALID":
            return [(0, 0)] * self.nd
        if self.auto_pad == "NOTSET":
            return [(self.pads[j], self.pads[j + self.nd]) for j in range(self.nd)]
        out = []
        for size, k, s, d in zip(spatial, kernel, self.strides, self.dilations, strict=True):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small = total // 2
            out.append((small, total - small) if self.auto_pad == "SAME_UPPER" else (total - small, small))
        return out

    def taps(
        self, spatial: Sequence[int], kernel: Sequence[int]
    ) -> tuple[tuple[int, ...], list[tuple[tuple[int, ...], tuple[slice, ...]]]]:
        """Output size, and per kernel tap (offsets) the strided slice of the padded input it reads; worked
        out once per padded input size (a handful of sizes per model)."""
        key = tuple(spatial)
        hit = self._taps.get(key)
        if hit is not None:
            return hit
        span = [d * (k - 1) + 1 for k, d in zip(kernel, self.dilations, strict=True)]
        if any(size < sp for size, sp in zip(spatial, span, strict=True)):
            raise _NodeError(f"input of spatial size {list(spatial)} is smaller than the kernel span {span}")
        out = tuple((size - sp) // s + 1 for size, sp, s in zip(spatial, span, self.strides, strict=True))
        taps = []
        for tap in itertools.product(*(range(k) for k in kernel)):
            src = tuple(
                slice(t * d, t * d + (o - 1) * s + 1, s)
                for t, d, o, s in zip(tap, self.dilations, out, self.strides, strict=True)
            )
            taps.append((tap, (slice(None), slice(None), *src)))
        if len(self._taps) < 16:
            self._taps[key] = (out, taps)
        return out, taps

    def scratch(self, what: str, shape: tuple[int, ...], dtype: Any, fill: float | None = None) -> np.ndarray:
        """This thread's work buffer `what` of this node (padded input, im2col columns), kept between calls:
        a fresh 0.5 MB array per call costs more in page faults (the allocator hands large blocks back to
        the OS) than the copy into it. A padded buffer's border is filled once; each call overwrites the
        interior. Only used inside one op call, so never seen by the caller."""
        bufs = self._scratch.__dict__
        buf = bufs.get(what)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)
            bufs[what] = buf if buf.nbytes <= _KEEP_BYTES else None
        return buf

    def plan(
        self, key: tuple[Any, ...], build: Callable[..., tuple[Any, ...]], *args: Any
    ) -> tuple[Any, ...]:
        """This thread's run plan for `key` (an input shape): the views into its work buffers an op reuses on
        every call, built once; kept while its buffers stay under _KEEP_BYTES (the hot path of a small model is
        then a few numpy calls, with no Python work per call to find buffers and views again). `build(*args)`
        makes it on the first call."""
        plans = self._scratch.__dict__.get("plans")
        if plans is None:
            plans = self._scratch.plans = {}
        hit = plans.get(key)
        if hit is None:
            hit = build(*args)
            if len(plans) < 8 and all(_buffer_bytes(a) <= _KEEP_BYTES for a in hit):
                plans[key] = hit
        return hit

    def columns(
        self, x: np.ndarray, kernel: Sequence[int], ones_row: bool
    ) -> tuple[np.ndarray, tuple[int, ...]]:
        """im2col: [N, C * prod(kernel) (+ 1), prod(out)] (channel-major, then kernel offsets: the layout of an
        ONNX weight [M, C, *kernel] flattened), and the out size. Two numpy calls: x into this node's flat
        padded buffer (`flat_geometry`), then one copy from a strided view of that buffer whose entry
        [n, c, *tap, *o] is the input output o reads at that tap (9 strided copies, one per tap, cost ~2x
        more on face_fer's small maps). With `ones_row` a last row of ones lets the GEMM add the bias."""
        if x.ndim != 2 + self.nd:
            raise _NodeError(f"expects a {2 + self.nd}-d input [N, C, spatial...], got {list(x.shape)}")
        buf, interior, taps, cols, out = self.plan(
            ("columns", ones_row, *x.shape), self._columns_plan, x, kernel, ones_row
        )
        interior[...] = x
        np.copyto(cols, taps)
        return buf, out

    def _columns_plan(self, x: np.ndarray, kernel: Sequence[int], ones_row: bool) -> tuple[Any, ...]:
        """`columns`' buffers and views: the columns, the padded input's interior, the taps view, the out size."""
        flat, interior, geo = self.flat_buffer(x.shape, kernel, x.dtype, self.pad_value)
        n, c = x.shape[:2]
        item = flat.itemsize
        pixel = [math.prod(geo.padded[j + 1 :]) for j in range(self.nd)]
        taps = np.lib.stride_tricks.as_strided(  # padded image (n, c) starts at (n * C + c) * size
            flat,
            (n, c, *kernel, *geo.out),
            (
                c * geo.size * item,
                geo.size * item,
                *(t * item for t in geo.tap_strides),
                *(st * p * item for st, p in zip(self.strides, pixel, strict=True)),
            ),
            writeable=False,
        )
        rows = c * math.prod(kernel)
        buf = np.zeros((n, rows + ones_row, math.prod(geo.out)), dtype=x.dtype)
        if ones_row:
            buf[:, rows] = 1
        return buf, interior, taps, buf[:, :rows].reshape(n, c, *kernel, *geo.out), geo.out

    def flat_buffer(
        self, shape: tuple[int, ...], kernel: Sequence[int], dtype: Any, value: float
    ) -> tuple[np.ndarray, np.ndarray, _FlatGeometry]:
        """A new flat padded buffer for inputs of `shape` (`flat_geometry`), filled with `value` once, the view
        of it the input is copied into each call (its interior), and the geometry."""
        geo = self.flat_geometry(shape, kernel)
        n, c = shape[:2]
        buf = np.full(n * c * geo.size + geo.slack, value, dtype)
        interior = buf[geo.lead : geo.lead + n * c * geo.size].reshape(n, c, *geo.padded)[geo.interior]
        return buf, interior, geo

    def flat_geometry(self, shape: tuple[int, ...], kernel: Sequence[int]) -> _FlatGeometry:
        """Where an input of `shape` [N, C, spatial...] sits in a flat padded buffer, worked out once per input
        shape. Each (n, c) image's padded pixels are one contiguous run of `size` values, image (n, c) starting
        at (n * C + c) * size, so every kernel tap is one fixed offset into the buffer and a strided view of it
        (no copy) holds, per tap, the input each output reads: the depthwise path multiplies that view, the
        im2col path copies it once. Positions off the stride grid (`pick`) read across rows and are thrown
        away; the buffer ends in `slack` padding values so the last image's taps stay inside it."""
        key = ("flat", *shape)
        hit = self._taps.get(key)
        if hit is not None:
            return hit  # type: ignore[return-value]
        spatial = shape[2:]
        pw = self.pad_widths(spatial, kernel)
        out, _ = self.taps([s + lo + hi for s, (lo, hi) in zip(spatial, pw, strict=True)], kernel)
        # One gap of `value` after each row (plane, ...) serves as the right padding of that row and the left
        # padding of the next one, so a gap of max(lo, hi) is enough (and wide enough that the last output
        # on the stride grid still lies inside the padded row)
        gaps = [
            max(lo, hi, (o - 1) * st + 1 - s)
            for s, (lo, hi), o, st in zip(spatial, pw, out, self.strides, strict=True)
        ]
        padded = tuple(s + g for s, g in zip(spatial, gaps, strict=True))
        pixel_strides = [math.prod(padded[j + 1 :]) for j in range(self.nd)]
        lead = sum(lo * p for (lo, _), p in zip(pw, pixel_strides, strict=True))
        reach = sum((k - 1) * d * p for k, d, p in zip(kernel, self.dilations, pixel_strides, strict=True))
        geo = _FlatGeometry(
            padded=padded,
            size=math.prod(padded),
            tap_strides=tuple(d * p for d, p in zip(self.dilations, pixel_strides, strict=True)),
            lead=lead,
            slack=max(lead, reach),
            interior=(slice(None), slice(None), *(slice(0, s) for s in spatial)),
            out=out,
            pick=(
                slice(None),
                slice(None),
                *(slice(0, (o - 1) * st + 1, st) for o, st in zip(out, self.strides, strict=True)),
            ),
        )
        if len(self._taps) < 16:
            self._taps[key] = geo  # type: ignore[assignment]
        return geo

    def pad(self, x: np.ndarray, kernel: Sequence[int], value: float) -> np.ndarray:
        if x.ndim != 2 + self.nd:
            raise _NodeError(f"expects a {2 + self.nd}-d input [N, C, spatial...], got {list(x.shape)}")
        pw = self.pad_widths(x.shape[2:], kernel)
        if not any(a or b for a, b in pw):
            return x
        spatial = [s + a + b for s, (a, b) in zip(x.shape[2:], pw, strict=True)]
        xp = self.scratch(f"pad {value}", (*x.shape[:2], *spatial), x.dtype, fill=value)
        xp[
            (slice(None), slice(None), *(slice(a, a + s) for s, (a, _) in zip(x.shape[2:], pw, strict=True)))
        ] = x
        return xp


def _conv(n: _Node, pad_value: float = 0.0) -> Op:
    """ONNX Conv. `pad_value`: what the padding holds instead of 0 (a Conv with its input's standardisation
    folded in pads with the raw value that standardises to 0: `_fold_standardisation`)."""
    n.need_inputs(2, 3)
    n.only_outputs(1)
    w_const, b_const = n.const(1), n.const(2)
    kernel = n.ints("kernel_shape", None)
    if kernel is None and w_const is not None:
        kernel = list(w_const.shape[2:])
    if kernel is None:
        raise _NodeError("needs kernel_shape or a constant weight")
    win = _Window(n, kernel, None)
    win.pad_value = pad_value
    group = n.i("group", 1)
    if group < 1:
        raise _NodeError(f"group={group} must be >= 1")
    if w_const is not None and (
        w_const.ndim != 2 + win.nd or list(w_const.shape[2:]) != kernel or w_const.shape[0] % group
    ):
        raise _NodeError(f"weight shape {list(w_const.shape)} does not fit kernel {kernel} and group={group}")
    # the weight as GEMM matrices [group, M / group, C / group * prod(kernel)], the bias as a column: once
    w_pre = (
        None
        if w_const is None
        else np.ascontiguousarray(w_const.reshape(group, w_const.shape[0] // group, -1))
    )
    b_pre = None if b_const is None else b_const.reshape(-1, 1)
    wb_pre = None  # group 1 with a constant bias: [weight | bias], the GEMM adds the bias
    if w_pre is not None and b_const is not None and group == 1 and b_const.shape == (w_const.shape[0],):
        wb_pre = np.ascontiguousarray(np.concatenate([w_pre[0], b_pre], axis=1), dtype=np.float32)

    fast: Op | None = None  # a constant weight and bias: the depthwise or 1x1 path when the conv is one
    if w_const is not None and group > 1 and w_const.shape[1] == 1:
        fast = _depthwise(win, kernel, w_const, b_const, group)
    elif (
        w_const is not None
        and group == 1
        and max(kernel) == 1
        and (win.auto_pad != "NOTSET" or not any(win.pads))
    ):
        fast = _pointwise(win, w_const, b_const)  # a 1x1 kernel never pads under auto_pad

    def conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        if fast is not None and w is w_const and b is b_const:
            return fast(x)
        m, cg = w.shape[0], w.shape[1]
        if x.shape[1] != cg * group:
            raise _NodeError(
                f"input has {x.shape[1]} channels, the weight expects {cg * group} (group={group})"
            )
        fold_bias = wb_pre is not None and w is w_const and b is b_const
        cols, out = win.columns(x, kernel, fold_bias)  # [N, C * K (+ 1), P]
        if fold_bias:
            wm = wb_pre  # [M, C * K + 1]: the bias is the weight of the columns' row of ones
        else:
            wm = w_pre if w is w_const else w.reshape(group, m // group, -1)
        if group == 1 or fold_bias:
            w2 = wm if fold_bias else wm[0]
            # one GEMM per layer, already channels-first: [M, P] (np.dot: less call overhead) or [N, M, P]
            y = np.dot(w2, cols[0]) if x.shape[0] == 1 else np.matmul(w2, cols)
        else:
            y = np.matmul(wm, cols.reshape(x.shape[0], group, -1, cols.shape[-1])).reshape(x.shape[0], m, -1)
        if b is not None and not fold_bias:
            y += b_pre if b is b_const else b.reshape(-1, 1)
        return y.reshape(x.shape[0], m, *out)

    return conv


def _depthwise(
    win: _Window,
    kernel: Sequence[int],
    w: np.ndarray,
    b: np.ndarray | None,
    group: int,
    then: np.ndarray | None = None,
) -> Op:
    """A Conv with one input channel per group (depthwise; m / group outputs per input channel) and constant
    weights: the sum over kernel taps of each tap's input times its per-channel weight, as one broadcast
    multiply over the flat padded input (`_Window.flat_geometry`: every tap a fixed offset, so the products
    [*kernel, N, C, m / group, pixels] need no copy per tap) and one sum over the taps (a GEMV with ones).
    No Python loop over groups, taps or positions; the outputs on the stride grid are picked at the end (a
    stride s computes s^nd times the outputs it keeps: every depthwise conv shipped has stride 1).

    `then` [M', m + 1]: a 1x1 Conv's weight with its bias as the last column (`_separable`), applied to the
    picked outputs in one GEMM against a row of ones: the pair is one op, its bias add free."""
    m, nd = w.shape[0], win.nd
    mult, taps_n = m // group, math.prod(kernel)
    # [*kernel, 1, C, mult, 1]: tap t's weight for channel c's j-th output (ONNX out channel c * mult + j)
    wt = np.moveaxis(w.reshape(group, mult, *kernel), (0, 1), (nd, nd + 1))
    wt = np.ascontiguousarray(wt.reshape(*kernel, 1, group, mult, 1), dtype=np.float32)
    ones = _mean_vector(taps_n, 1.0)
    bias = None if b is None else np.asarray(b, np.float32).reshape(1, m, *([1] * nd))

    def flat(shape: tuple[int, ...], dtype: Any) -> tuple[Any, ...]:
        """The flat path's buffers for inputs of `shape`; returns (run, its buffers...): run(x) -> the
        outputs as a view of a work buffer (valid until the next call)."""
        n = shape[0]
        buf, interior, geo = win.flat_buffer(shape, kernel, dtype, win.pad_value)
        item = buf.itemsize  # every tap a fixed offset into the flat buffer (`_Window.flat_geometry`)
        taps = np.lib.stride_tricks.as_strided(
            buf,
            (*kernel, n, group, 1, geo.size),
            (*(t * item for t in geo.tap_strides), group * geo.size * item, geo.size * item, 0, item),
            writeable=False,
        )
        # the weight repeated over the pixels: the multiply then runs over [N, C * pixels] contiguous rows,
        # not one short row per (tap, channel)
        ws = np.ascontiguousarray(np.broadcast_to(wt, (*wt.shape[:-1], geo.size)))
        prods = np.empty((*kernel, n, group, mult, geo.size), dtype)
        prods_2d = prods.reshape(taps_n, -1)
        total = np.empty(n * m * geo.size, dtype)
        pick = total.reshape(n, m, *geo.padded)[geo.pick]

        def run(x: np.ndarray) -> np.ndarray:
            interior[...] = x
            np.multiply(taps, ws, out=prods)
            np.dot(ones, prods_2d, out=total)  # the sum over taps as a GEMV: ~1.5x add.reduce
            return pick

        return run, buf, prods, total, geo

    def dense(shape: tuple[int, ...], dtype: Any, geo: _FlatGeometry) -> tuple[Any, ...] | None:
        """On a small map the conv as one [P_out, P_in] matrix per output channel (found by running the flat
        path on the P_in one-hot images), when that takes no more products than the flat path (face_fer's
        3x3 maps: 81 against 9 taps x 20 padded pixels): one multiply over contiguous rows and one GEMV, and
        none of the flat path's short rows. Returns (run, its buffers...) as `flat` does, or None."""
        n, p_in, p_out = shape[0], math.prod(shape[2:]), math.prod(geo.out)
        if p_in * p_out > taps_n * geo.size or win.pad_value != 0.0:  # a padding value makes it affine
            return None
        basis = np.zeros((p_in, group, p_in), dtype)
        basis[np.arange(p_in), :, np.arange(p_in)] = 1
        cols = flat((p_in, group, *shape[2:]), dtype)[0](
            basis.reshape(p_in, group, *shape[2:])
        )  # [P_in, m, *out]: column q of each matrix
        mats = np.ascontiguousarray(cols.reshape(p_in, group, mult, p_out).transpose(1, 2, 3, 0))
        prods = np.empty((n, group, mult, p_out, p_in), dtype)
        prods_2d = prods.reshape(-1, p_in)
        total = np.empty(n * m * p_out, dtype)
        out = total.reshape(n, m, *geo.out)
        ones_in = _mean_vector(p_in, 1.0)

        def run(x: np.ndarray) -> np.ndarray:
            np.multiply(mats, x.reshape(n, group, 1, 1, p_in), out=prods)
            np.dot(prods_2d, ones_in, out=total)
            return out

        return run, mats, prods, total

    def build(x: np.ndarray) -> tuple[Any, ...]:
        if x.ndim != 2 + nd or x.shape[1] != group:
            raise _NodeError(
                f"input has shape {list(x.shape)}, the weight expects {group} channels (group={group})"
            )
        n = x.shape[0]
        parts = flat(x.shape, x.dtype)
        geo = parts[-1]
        parts = dense(x.shape, x.dtype, geo) or parts[:-1]
        rows = None  # with `then`: the outputs [n, m, P] and a row of ones [n, 1, P], for the GEMM
        if then is not None:
            rows = np.ones((n, m + 1, math.prod(geo.out)), x.dtype)
        return *parts, rows, rows if rows is None else rows[:, :m].reshape(n, m, *geo.out), geo.out

    def depthwise(x: np.ndarray) -> np.ndarray:
        plan = win.plan(x.shape, build, x)
        y = plan[0](x)  # a view of a work buffer
        if then is None:
            return y.copy() if bias is None else np.add(y, bias)  # a fresh array
        rows, into, out = plan[-3:]
        into[...] = y
        n = x.shape[0]
        z = np.dot(then, rows[0]) if n == 1 else np.matmul(then, rows)
        return z.reshape(n, then.shape[0], *out)

    return depthwise


def _pointwise(win: _Window, w: np.ndarray, b: np.ndarray | None) -> Op:
    """A 1x1 Conv (group 1, no padding) with constant weights: one GEMM on the input itself and the bias added;
    no im2col copy of a stride-1 input. Strided, the pixels it keeps are copied anyway, so they go into a work
    buffer next to a row of ones and the GEMM adds the bias too."""
    m, c = w.shape[0], w.shape[1]
    w2 = np.ascontiguousarray(w.reshape(m, c), dtype=np.float32)
    b_col = None if b is None else np.asarray(b, np.float32).reshape(-1, 1)
    wb = w2 if b is None else np.ascontiguousarray(np.concatenate([w2, b_col], axis=1))
    step = (slice(None), slice(None), *(slice(None, None, s) for s in win.strides))
    strided = max(win.strides) > 1

    def strided_plan(x: np.ndarray) -> tuple[Any, ...]:
        n, out = x.shape[0], x[step].shape[2:]
        rows = np.ones((n, c + (b is not None), math.prod(out)), x.dtype)
        return rows, rows[:, :c].reshape(n, c, *out), out

    def pointwise(x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 + win.nd or x.shape[1] != c:
            raise _NodeError(f"input {list(x.shape)} does not fit a 1x1 weight of {c} input channels")
        n = x.shape[0]
        if strided:
            rows, into, out = win.plan(x.shape, strided_plan, x)
            into[...] = x[step]
            return (np.dot(wb, rows[0]) if n == 1 else np.matmul(wb, rows)).reshape(n, m, *out)
        y = np.dot(w2, x.reshape(c, -1)) if n == 1 else np.matmul(w2, x.reshape(n, c, -1))
        if b_col is not None:
            y += b_col
        return y.reshape(n, m, *x.shape[2:])

    return pointwise


def _flat_window_plan(win: _Window, x: np.ndarray, fill: float) -> tuple[Any, ...]:
    """A separable pool's run plan on the flat padded input (`_Window.flat_buffer`, padded with `fill`): the
    buffer's interior, the binary calls (operands and output) that reduce one kernel axis at a time, each tap one
    contiguous slice at a fixed offset, and the view of the result on the stride grid. MaxPool runs the calls
    with np.maximum, AveragePool with np.add."""
    if x.ndim != 2 + win.nd:
        raise _NodeError(f"expects a {2 + win.nd}-d input [N, C, spatial...], got {list(x.shape)}")
    kernel = win.kernel
    assert kernel is not None
    y, interior, geo = win.flat_buffer(x.shape, kernel, x.dtype, fill)
    n, c = x.shape[:2]
    steps = []
    for k, step in zip(kernel, geo.tap_strides, strict=True):
        if k == 1:
            continue
        size = len(y) - (k - 1) * step
        r = np.empty(size, x.dtype)
        steps.append((y[:size], y[step : step + size], r))
        steps += [(r, y[t * step : t * step + size], r) for t in range(2, k)]
        y = r
    return interior, tuple(steps), y[: n * c * geo.size].reshape(n, c, *geo.padded)[geo.pick]


def _maxpool(n: _Node) -> Op:
    n.need_inputs(1, 1)
    n.only_outputs(1)
    kernel = n.ints("kernel_shape", None)
    if not kernel:
        raise _NodeError("attribute 'kernel_shape' is required")
    if min(kernel) < 1:
        raise _NodeError(f"kernel_shape {kernel} must be >= 1 on every axis")
    win = _Window(n, kernel, None)

    padded = win.auto_pad.startswith("SAME") or any(win.pads)

    def maxpool(x: np.ndarray) -> np.ndarray:
        if not padded:
            # no copy needed: the running maximum over the kernel's taps, one strided slice of x each
            _, taps = win.taps(x.shape[2:], kernel)
            out = x[taps[0][1]].copy()
            for _, src in taps[1:]:
                np.maximum(out, x[src], out=out)
            return out
        # Padded: separable, on the flat padded input (`_Window.flat`): the running maximum over one kernel
        # axis at a time, each tap one contiguous slice of the buffer at a fixed offset (3 + 3 taps -> 4
        # np.maximum calls over whole contiguous runs for 3x3), then the outputs on the stride grid picked
        # (face_fer's 3/2 pools: ~2.5x faster than one strided slice per tap, which walks short rows one by
        # one; a window view is worse still: numpy walks its last axes element by element, 2.4 ms per av_cnn
        # clip). Without padding the strided slices win: no copy, and only the stride grid is computed.
        interior, steps, pick = win.plan(x.shape, _flat_window_plan, win, x, -np.inf)
        interior[...] = x
        for a, b, out in steps:
            np.maximum(a, b, out=out)
        return pick.copy()  # fresh: the maxima are in a work buffer

    return maxpool


def _avgpool(n: _Node) -> Op:
    n.need_inputs(1, 1)
    n.only_outputs(1)
    kernel = n.ints("kernel_shape", None)
    if not kernel:
        raise _NodeError("attribute 'kernel_shape' is required")
    win = _Window(n, kernel, None)
    include_pad = bool(n.i("count_include_pad", 0))

    def window_sum(x: np.ndarray) -> np.ndarray:
        xp = win.pad(x, kernel, 0.0)
        _, taps = win.taps(xp.shape[2:], kernel)
        total = xp[taps[0][1]].astype(np.float32, copy=True)
        for _, src in taps[1:]:
            total += xp[src]
        return total

    padded = win.auto_pad.startswith("SAME") or any(win.pads)
    scale = _f32(1 / math.prod(kernel))

    def avgpool(x: np.ndarray) -> np.ndarray:
        if padded and not include_pad:  # each window divided by its count of real values
            return window_sum(x) / window_sum(np.ones((1, 1, *x.shape[2:]), dtype=np.float32))
        # Zero padding counted (or none): the window sums as MaxPool's flat plan with np.add, then one multiply.
        # The anti-aliased face model's 16 blur pools run on small maps, where strided 4-d slices per tap walk
        # rows of 3-24 values one by one: ~2x slower (docs/face.md)
        interior, steps, pick = win.plan(
            x.shape, _flat_window_plan, win, x.astype(np.float32, copy=False), 0.0
        )
        interior[...] = x
        for a, b, out in steps:
            np.add(a, b, out=out)
        return pick * scale

    return avgpool


def _global_pool(reduce: str) -> Callable[[_Node], Op]:
    def build(n: _Node) -> Op:
        n.need_inputs(1, 1)
        n.only_outputs(1)

        def pool(x: np.ndarray) -> np.ndarray:
            if reduce == "mean" and x.dtype == np.float32 and x.ndim > 2:
                # one GEMV with a vector of 1/pixels (numpy's mean over the last axes is slow on small maps)
                p = math.prod(x.shape[2:])
                return (x.reshape(-1, p) @ _mean_vector(p)).reshape(*x.shape[:2], *([1] * (x.ndim - 2)))
            axes = tuple(range(2, x.ndim))
            return getattr(x, reduce)(axis=axes, keepdims=True).astype(np.float32, copy=False)

        return pool

    return build


_OPS: dict[str, Callable[[_Node], Op]] = {
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": _binary(np.divide),
    "Gemm": _gemm,
    "MatMul": _binary(np.matmul),
    "Relu": _unary(lambda x: np.maximum(x, _f32(0.0))),
    "LeakyRelu": _leaky_relu,
    "Sigmoid": _unary(_sigmoid),
    "Tanh": _unary(np.tanh),
    "Softmax": _softmax,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "ReduceMean": _reduce_mean,
    "Identity": _identity,
    "Dropout": _dropout,
    "Concat": _concat,
    "Clip": _clip,
    "Pad": _pad,
    "Conv": _conv,
    "MaxPool": _maxpool,
    "AveragePool": _avgpool,
    "GlobalAveragePool": _global_pool("mean"),
    "GlobalMaxPool": _global_pool("max"),
    "BatchNormalization": _batchnorm,
    "LayerNormalization": _layernorm,
}

SUPPORTED_OPS = tuple(sorted(_OPS))
