"""FLOPs and bytes of a model, counted on its graph: per node and in total, by one stated convention.

numpy only: it reads the ONNX graph (`bundle.graph`, read from model.onnx) and the packed weights'
shapes and bit widths, so it runs on a Pi from a bundle as well as on the host at export time (where
`converters.export.bundle` writes its totals into the manifest's `flops` block and its conv / dense rows into
`layers`). It is the project's one FLOP counter: `edge-ser model`, the zoo and the manifests all count a
model's exported graph with it (`converters.models.counts`).

    >>> from edge_ser.bundle import load_bundle
    >>> c = count(load_bundle("bundles/av_cnn"))
    >>> c.flops, c.dense_flops, c.weight_bytes, c.activation_bytes, round(c.intensity, 2)
    (20142887, 19948663, 16160, 1903580, 10.49)
    >>> print(c.report())           # per-node table + totals + CONVENTION

Convention (the AV seed's; `CONVENTION` says it in words and every report prints it):

- Conv, Gemm, MatMul: `FLOPS_PER_MAC` (2) per multiply-accumulate, plus `BIAS_FLOPS` (1) per output element
  when there is a bias: conv = 2*Yh*Yw*(Ci/groups)*Co*Kh*Kw + Yh*Yw*Co, dense = 2*in*out + out. Gemm's alpha or
  beta other than 1 add one op per output each (our exports never have them).
- Element-wise ops and activations (Add, Sub, Mul, Div, Relu, LeakyRelu, Sigmoid, Tanh, Clip, ...):
  `ELEMENTWISE_FLOPS` (1) per output element, whatever the function (a sigmoid is one op, not its exp + add +
  divide); variadic Sum / Max / Min: (inputs - 1) per output element.
- MaxPool / AveragePool: `POOL_FLOPS` (1) per window element per output element, i.e. prod(kernel) per output
  (a max of K values is K-1 comparisons, an average K-1 adds + 1 divide: both counted as K). Global pools and
  Reduce* the same, which is one per input element.
- BatchNormalization (inference): `BATCHNORM_FLOPS` (2) per element, a folded scale and shift; the per-channel
  folding (sqrt, divide on C values) is not counted.
- LayerNormalization: `LAYERNORM_FLOPS` (7) per element: the mean (an add), centring (a subtract), square,
  the variance (an add), the normalising multiply, scale and shift; the per-row sqrt and divide not counted.
- Softmax / LogSoftmax: `SOFTMAX_FLOPS` (3) per element: exp, add into the sum, divide (or subtract the log
  sum); the max subtracted for numerical stability is not counted.
- Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Concat, Identity, Dropout (inference): 0 FLOPs, but their
  bytes are counted as a copy (an engine that aliases its input moves nothing: an upper bound).
- Bytes: weights at their stored width, read once by each node that uses them (b-bit codes take
  ceil(n*b/8) bytes + each output channel's scale as the packed file stores it: 4 bytes as float32, 2 as
  float16 (`WeightInfo.of`; `stored_bytes` alone assumes float32, `SCALE_BYTES`); float tensors 4 bytes a value
  (float16: 2)); activations float32 (`ACTIVATION_BYTES`, 4 a value): each node reads its activation inputs
  and writes its outputs, so an intermediate tensor counts once written and once per reader. Inline shape
  constants (Reshape's int64 target shape, `graph.constants`) are metadata, not counted.
- `count(bundle, held_bytes=B, activation_bytes=A)` counts the same graph as an engine holds it at run time
  instead (`held_weight_infos`): every weight value B bytes (4: float32, what onnxruntime's CPU EP, the numpy
  engine and TFLite fp32 / fp16 read once they dequantize at load; 1: TFLite int8, whose int8 kernels also keep a
  float32 scale per output channel and int32 biases), activations A bytes a value (1 for int8). The roofline
  report uses it for the engine it is about; `edge-ser info` prints the stored figure.
- Arithmetic intensity = FLOPs / (weight bytes + activation bytes), FLOP per byte. Batch 1 unless told.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_ser.errors import ConfigError
from edge_ser.graph_attrs import NodeAttrs

if TYPE_CHECKING:
    from edge_ser.bundle import Bundle
    from edge_ser.packed import EsqFile, Tensor

__all__ = [
    "ACTIVATION_BYTES",
    "BATCHNORM_FLOPS",
    "BIAS_FLOPS",
    "CONVENTION",
    "DENSE_OPS",
    "ELEMENTWISE_FLOPS",
    "FLOPS_PER_MAC",
    "LAYERNORM_FLOPS",
    "POOL_FLOPS",
    "SCALE_BYTES",
    "SOFTMAX_FLOPS",
    "SUPPORTED_OPS",
    "GraphCount",
    "GraphCountError",
    "LayerCount",
    "OP_NAMES",
    "WeightInfo",
    "count",
    "convention",
    "count_graph",
    "held_weight_infos",
    "op_name",
    "rate_unit",
    "stored_bytes",
    "weight_infos",
]

FLOPS_PER_MAC = 2
"""Conv / Gemm / MatMul: FLOPs per multiply-accumulate (a multiply and an add)."""
BIAS_FLOPS = 1
"""Conv / Gemm: FLOPs per output element for adding the bias (when there is one)."""
ELEMENTWISE_FLOPS = 1
"""Element-wise ops and activations: FLOPs per output element (per extra input for variadic ops)."""
POOL_FLOPS = 1
"""Pooling and reductions: FLOPs per window element per output element (prod(kernel) per output)."""
BATCHNORM_FLOPS = 2
"""BatchNormalization at inference: a folded multiply and add per element."""
LAYERNORM_FLOPS = 7
"""LayerNormalization: mean, centre, square, variance, normalise, scale, shift, per element."""
SOFTMAX_FLOPS = 3
"""Softmax / LogSoftmax: exp, add into the sum, divide, per element (the stabilising max not counted)."""
ACTIVATION_BYTES = 4
"""Bytes per activation value: every activation is float32."""
SCALE_BYTES = 4
"""Bytes per output channel of a quantized tensor's float32 scales (`stored_bytes`; a packed tensor's
`WeightInfo.of` counts its scales as the file stores them: float16 scales 2 bytes)."""

DENSE_OPS = ("Conv", "Gemm", "MatMul")
"""The ops the AV seed's figures count (its 0.014 GFLOPs): `GraphCount.dense_flops` sums them."""

_OP_CONVENTION = (
    "{op}s per inference at batch 1, AV seed convention: Conv/Gemm/MatMul = 2 {op}s per multiply-accumulate "
    "+ 1 per output element for a bias (conv = 2*Yh*Yw*(Ci/groups)*Co*Kh*Kw + Yh*Yw*Co; dense = 2*in*out + out); "
    "element-wise ops and activations (Add, Sub, Mul, Div, Relu, Sigmoid, Clip, ...) 1 per output element; "
    "MaxPool/AveragePool 1 per window element per output (prod(kernel) per output), global pools and "
    "reductions 1 per input element; BatchNormalization 2 per element (folded scale and shift); "
    "LayerNormalization 7 per element (mean, centre, square, variance, normalise, scale, shift); Softmax 3 per "
    "element (exp, sum, divide); Reshape/Flatten/Transpose/Squeeze/Unsqueeze/Concat/Identity/Dropout 0. "
)
_STORED_WEIGHTS = (
    "weights at their stored bit width (b-bit codes ceil(n*b/8) bytes + each output channel's scale as stored: "
    "4 bytes as float32, 2 as float16; float tensors 4 bytes a value, float16 2)"
)
_HELD_WEIGHTS = {
    4: "weights as the engine holds them at run time, float32: 4 bytes a value whatever their stored bits",
    2: "weights as the engine holds them at run time, float16: 2 bytes a value whatever their stored bits",
    1: "weights as the engine holds them at run time, int8: 1 byte a value + a 4-byte float32 scale per output "
    "channel for tensors of 2 or more axes, 1-d tensors (biases) 4 bytes a value (int32)",
}
_ACTIVATIONS = {4: "float32", 2: "float16", 1: "int8"}


OP_NAMES = ("FLOP", "OP")
"""What the counts are called: FLOPs, or OPs in an integer engine's report (`edge_ser.roofline`'s `op`)."""


def op_name(precision: str) -> str:
    """What a report at `precision` calls its counts: OP for an integer precision (int8), else FLOP; its tables,
    units and counting convention all say it. The one rule for the profiles' peaks and the roofline reports."""
    return "OP" if precision.startswith("int") else "FLOP"


def rate_unit(precision: str) -> str:
    """The unit of a compute rate at `precision`: GOP/s for an integer one, GFLOP/s for a float one (`op_name`)."""
    return f"G{op_name(precision)}/s"


def convention(
    held_bytes: int | None = None, activation_bytes: int = ACTIVATION_BYTES, op: str = "FLOP"
) -> str:
    """The counting convention in words: weights as stored (`held_bytes` None) or as an engine holds them at run
    time (`held_bytes` bytes a value, see `held_weight_infos`), activations `activation_bytes` bytes a value; the
    counts called `op`s (one of OP_NAMES), so an int8 report's convention says OPs as the rest of it does."""
    if held_bytes not in (None, *_HELD_WEIGHTS) or activation_bytes not in _ACTIVATIONS:
        raise ConfigError(
            f"held_bytes={held_bytes!r}, activation_bytes={activation_bytes!r}: each must be one of 4, 2, 1 "
            "(held_bytes also None: as stored)"
        )
    if op not in OP_NAMES:
        raise ConfigError(f"op={op!r}: the counts are called one of {', '.join(OP_NAMES)}")
    weights = _STORED_WEIGHTS if held_bytes is None else _HELD_WEIGHTS[held_bytes]
    return (
        _OP_CONVENTION.format(op=op)
        + f"Bytes: {weights}, read once by each node that uses them; activations {_ACTIVATIONS[activation_bytes]} "
        f"({activation_bytes} byte{'s' if activation_bytes > 1 else ''} a value), each node reading its activation "
        "inputs and writing its outputs (shape-only ops counted as a copy); inline shape constants not counted. "
        f"Intensity = {op}s / (weight + activation bytes)."
    )


CONVENTION = convention()
"""The counter's default convention (weights as stored, float32 activations), printed in every report."""


class GraphCountError(ConfigError):
    """The graph cannot be counted: an unsupported op, a missing weight or input shape, inconsistent shapes."""


# --------------------------------------------------------------------------------------------------------------
# weights: shapes and stored bytes
# --------------------------------------------------------------------------------------------------------------


def stored_bytes(shape: Sequence[int], bits: int) -> int:
    """Bytes a tensor of `shape` takes when stored at `bits`: b-bit codes + per-output-channel scales, or floats.

    Quantized (1..8 bits): ceil(n * bits / 8) bytes of codes + `SCALE_BYTES` per output channel (axis 0), as
    the packed .esq format stores them. Raw floats (16 / 32 bits): n * bits / 8.
    """
    n = math.prod(int(d) for d in shape)
    bits = int(bits)
    if 1 <= bits <= 8:
        if not len(shape):
            raise GraphCountError(
                f"a {bits}-bit quantized tensor needs an output-channel axis, got shape {shape}"
            )
        return (n * bits + 7) // 8 + SCALE_BYTES * int(shape[0])
    if bits in (16, 32):
        return n * bits // 8
    raise GraphCountError(f"bits={bits}: a stored tensor has 1..8 (quantized) or 16 / 32 (float) bits")


@dataclass(frozen=True)
class WeightInfo:
    """Shape, stored bit width and stored bytes of one initializer (what the counter needs of a weight)."""

    shape: tuple[int, ...]
    bits: int = 32
    nbytes: int | None = None
    """Stored bytes; None: computed from shape and bits by `stored_bytes`."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if self.nbytes is None:
            object.__setattr__(self, "nbytes", stored_bytes(self.shape, self.bits))

    @classmethod
    def of(cls, tensor: Tensor) -> WeightInfo:
        """From a packed .esq tensor (its bytes as the file stores it: float16 scales take 2 bytes, not 4)."""
        return cls(tensor.shape, tensor.bits, tensor.payload_bytes())


def weight_infos(source: EsqFile | Iterable[Tensor] | Mapping[str, np.ndarray]) -> dict[str, WeightInfo]:
    """{name: WeightInfo} from a parsed .esq file, packed Tensors, or float arrays (stored as float32)."""
    if isinstance(source, Mapping):
        return {k: WeightInfo(np.shape(v), 32) for k, v in source.items()}
    tensors = getattr(source, "tensors", None)
    items = tensors.values() if isinstance(tensors, Mapping) else source
    return {t.name: WeightInfo.of(t) for t in items}


def held_weight_infos(infos: Mapping[str, WeightInfo], held_bytes: int) -> dict[str, WeightInfo]:
    """Each weight as an engine holds it in memory at run time rather than as the file stores it.

    The packed file's sub-byte codes are unpacked at load by every engine here, so the bytes a node reads per
    call are the engine's width, not the stored bits. `held_bytes` 4 (float32) or 2 (float16): every value that
    many bytes. 1 (int8 kernels): a tensor of 2 or more axes is int8 codes + a float32 scale per output channel
    (axis 0); a 1-d tensor (a bias) stays 4 bytes a value (int32 accumulators' width).
    """
    if held_bytes not in (4, 2, 1):
        raise GraphCountError(
            f"held_bytes={held_bytes!r}: an engine holds weights at 4, 2 or 1 bytes a value"
        )
    out = {}
    for name, w in infos.items():
        n = math.prod(w.shape)
        if held_bytes == 1 and len(w.shape) >= 2:
            out[name] = WeightInfo(w.shape, 8, n + SCALE_BYTES * w.shape[0])
        elif held_bytes == 1:
            out[name] = WeightInfo(w.shape, 32, 4 * n)
        else:
            out[name] = WeightInfo(w.shape, 8 * held_bytes, held_bytes * n)
    return out


# --------------------------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------------------------


Shape = tuple[int, ...]


class _Traffic:
    """`bytes` and `intensity` of a count that has `flops`, `weight_bytes` and `activation_bytes`: one node's
    (`LayerCount`) or the whole inference's (`GraphCount`)."""

    @property
    def bytes(self) -> int:
        """Bytes moved: weights plus activations."""
        return self.weight_bytes + self.activation_bytes

    @property
    def intensity(self) -> float:
        """FLOP per byte moved."""
        return self.flops / self.bytes if self.bytes else 0.0


@dataclass(frozen=True)
class LayerCount(_Traffic):
    """One graph node: its FLOPs, the weight and activation bytes it moves, and its shapes."""

    index: int
    """Position in `graph.nodes`."""
    op: str
    name: str
    """The node's name, else its layer, else its first output."""
    layer: str | None
    """The torch module it comes from, from its `<layer>.weight` initializer (e.g. "video.0"); None without."""
    in_shapes: tuple[Shape, ...]
    """Shapes of its activation inputs (weights and constants excluded)."""
    out_shapes: tuple[Shape, ...]
    flops: int
    weight_bytes: int
    activation_bytes: int
    weights: tuple[str, ...]
    """Names of the initializers it reads."""
    bits: int | None
    """Stored bit width of its main weight (a Conv / Gemm / MatMul's second input); None without."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "op": self.op,
            "name": self.name,
            "layer": self.layer,
            "in_shapes": [list(s) for s in self.in_shapes],
            "out_shapes": [list(s) for s in self.out_shapes],
            "flops": self.flops,
            "weight_bytes": self.weight_bytes,
            "activation_bytes": self.activation_bytes,
            "bytes": self.bytes,
            "intensity": self.intensity,
            "bits": self.bits,
        }


@dataclass(frozen=True)
class GraphCount(_Traffic):
    """Per-node counts of a graph and their totals, by `CONVENTION`."""

    layers: tuple[LayerCount, ...]
    input_shapes: Mapping[str, Shape]
    convention: str = CONVENTION

    @property
    def flops(self) -> int:
        return sum(r.flops for r in self.layers)

    @property
    def dense_flops(self) -> int:
        """FLOPs of the Conv / Gemm / MatMul nodes only: the figure the AV seed reports (0.014 GFLOPs)."""
        return sum(r.flops for r in self.layers if r.op in DENSE_OPS)

    @property
    def weight_bytes(self) -> int:
        return sum(r.weight_bytes for r in self.layers)

    @property
    def activation_bytes(self) -> int:
        return sum(r.activation_bytes for r in self.layers)

    def by_layer(self) -> dict[str, LayerCount]:
        """The nodes that carry a `<layer>.weight`, by layer name (e.g. {"video.0": Conv row, ...})."""
        return {r.layer: r for r in self.layers if r.layer is not None}

    def by_op(self) -> dict[str, dict[str, int]]:
        """Per op type: number of nodes, FLOPs, weight and activation bytes."""
        out: dict[str, dict[str, int]] = {}
        for r in self.layers:
            d = out.setdefault(r.op, {"nodes": 0, "flops": 0, "weight_bytes": 0, "activation_bytes": 0})
            d["nodes"] += 1
            d["flops"] += r.flops
            d["weight_bytes"] += r.weight_bytes
            d["activation_bytes"] += r.activation_bytes
        return out

    def summary(self) -> dict[str, Any]:
        """The totals as a JSON-ready dict (the bundle manifest's `flops` block)."""
        return {
            "flops": self.flops,
            "dense_flops": self.dense_flops,
            "weight_bytes": self.weight_bytes,
            "activation_bytes": self.activation_bytes,
            "bytes": self.bytes,
            "intensity": self.intensity,
            "input_shapes": {k: list(v) for k, v in self.input_shapes.items()},
            "by_op": self.by_op(),
            "convention": self.convention,
        }

    def to_dict(self) -> dict[str, Any]:
        """Totals and every node's row."""
        return {**self.summary(), "layers": [r.to_dict() for r in self.layers]}

    def report(self) -> str:
        """A Markdown table per node, the totals, and the convention."""
        head = "| # | op | name | output | FLOPs | weight B | bits | activation B | FLOP/B |"
        lines = [head, "|" + "---|" * 9]
        for r in self.layers:
            out = " ".join("x".join(map(str, s)) for s in r.out_shapes)
            lines.append(
                f"| {r.index} | {r.op} | {r.name} | {out} | {r.flops:,} | {r.weight_bytes:,} | "
                f"{'' if r.bits is None else r.bits} | {r.activation_bytes:,} | {r.intensity:.2f} |"
            )
        lines.append(
            f"| | **total** | | | **{self.flops:,}** | **{self.weight_bytes:,}** | | "
            f"**{self.activation_bytes:,}** | **{self.intensity:.2f}** |"
        )
        inputs = ", ".join(f"{k} {list(v)}" for k, v in self.input_shapes.items())
        total = (
            f"{self.flops:,} FLOPs ({self.dense_flops:,} in Conv/Gemm/MatMul), {self.weight_bytes:,} weight "
            f"bytes + {self.activation_bytes:,} activation bytes = {self.bytes:,} bytes, "
            f"{self.intensity:.2f} FLOP/byte"
        )
        return "\n".join([f"inputs: {inputs}", "", *lines, "", total, "", f"Convention: {self.convention}"])

    def __str__(self) -> str:
        return self.report()


# --------------------------------------------------------------------------------------------------------------
# counting
# --------------------------------------------------------------------------------------------------------------


def count(
    bundle: Bundle,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    *,
    batch: int = 1,
    held_bytes: int | None = None,
    activation_bytes: int = ACTIVATION_BYTES,
    op: str = "FLOP",
) -> GraphCount:
    """Count a loaded bundle: its graph, its packed weights at their stored bits, batch `batch`.

    `input_shapes` ({input name: full shape}) overrides the manifest's input shapes (whose dynamic batch axis
    is otherwise set to `batch`). `held_bytes` (4, 2 or 1) counts the weights as an engine holds them at run time
    instead of as stored (`held_weight_infos`), and `activation_bytes` the activations at that width (1: int8);
    the result's `convention` says which, calling the counts `op`s (`convention`).
    """
    infos = weight_infos(bundle.weights())
    if held_bytes is not None:
        infos = held_weight_infos(infos, held_bytes)
    counted = count_graph(
        bundle.graph,
        infos,
        input_shapes,
        constants=bundle.constants(),
        batch=batch,
        activation_bytes=activation_bytes,
    )
    return replace(counted, convention=convention(held_bytes, activation_bytes, op))


def count_graph(
    graph: Mapping[str, Any],
    weights: Mapping[str, WeightInfo | np.ndarray],
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    *,
    constants: Mapping[str, Any] | None = None,
    batch: int = 1,
    activation_bytes: int = ACTIVATION_BYTES,
) -> GraphCount:
    """Infer every tensor's shape and count FLOPs and bytes per node of a graph JSON (`bundle.graph` format).

    Args:
        graph: {"inputs": [{"name", "shape"}], "outputs": [...], "initializers": [names], "nodes": [{"op",
            "inputs", "outputs", "attrs"}], "opset", optional "constants"}, as `graph_json` writes it.
        weights: per initializer its `WeightInfo` (shape, stored bits and bytes), or a float array (counted
            as float32); see `weight_infos`.
        input_shapes: full shape per graph input; default the graph's, with a dynamic (null) axis 0 = `batch`.
        constants: small tensors whose values shape inference needs (Reshape target shapes, Squeeze axes), by
            name; added to the graph's own `constants`. They take no bytes (shape metadata).
        batch: the value of the graph inputs' dynamic axes when `input_shapes` does not give them.
        activation_bytes: bytes per activation value (4: float32, the convention; 1 for an int8 engine).

    Raises:
        GraphCountError: naming the node, for an unsupported op, a missing weight or input, or shapes that do
            not fit.
    """
    consts = _constants(graph, constants)
    infos: dict[str, WeightInfo] = {}
    for name, w in weights.items():
        infos[name] = w if isinstance(w, WeightInfo) else WeightInfo(np.shape(w), 32)
    for name in graph.get("initializers", []):
        if name not in infos and name not in consts:
            raise GraphCountError(
                f"initializer {name!r} of the graph has no weight entry (shape and stored bits) and no constant"
            )
    shapes: dict[str, Shape] = {n: tuple(np.shape(v)) for n, v in consts.items()}
    for name, w in infos.items():
        shapes.setdefault(name, w.shape)
    shapes.update(_input_shapes(graph, input_shapes, batch))
    opset = int(graph.get("opset", 17))

    rows = []
    for i, node in enumerate(graph.get("nodes", [])):
        op = node.get("op")
        name = node.get("name") or None
        where = f"graph node {i} ({op}{', ' + repr(name) if name else ''})"
        ins = list(node.get("inputs", []))
        outs = list(node.get("outputs", []))
        if node.get("domain", "") not in ("", "ai.onnx"):
            raise GraphCountError(
                f"{where}: domain {node.get('domain')!r} is not supported by the FLOP counter"
            )
        rule = _RULES.get(op)
        if rule is None:
            raise GraphCountError(
                f"{where}: op {op!r} is not supported by the FLOP counter (supported: {list(SUPPORTED_OPS)}); "
                "add a rule to edge_ser.flops"
            )
        in_shapes: list[Shape | None] = []
        for nm in ins:
            if not nm:
                in_shapes.append(None)
            elif nm not in shapes:
                raise GraphCountError(
                    f"{where}: input {nm!r} is not a graph input, initializer or earlier output"
                )
            else:
                in_shapes.append(shapes[nm])
        try:
            out_shapes, flops = rule(_Node(node, opset, consts), in_shapes)
        except _ShapeError as e:
            shown = ", ".join(
                f"{nm} {list(s) if s is not None else '-'}" for nm, s in zip(ins, in_shapes, strict=True)
            )
            raise GraphCountError(f"{where}: {e} (inputs: {shown})") from None
        for nm, s in zip(outs, out_shapes, strict=False):  # a rule may leave optional outputs unset
            if nm:
                shapes[nm] = tuple(int(d) for d in s)
        wnames = tuple(nm for nm in ins if nm and nm in infos and nm not in consts)
        act_in = [
            s for nm, s in zip(ins, in_shapes, strict=True) if nm and nm not in infos and nm not in consts
        ]
        act_out = [tuple(s) for nm, s in zip(outs, out_shapes, strict=False) if nm]
        layer = next((nm[: -len(".weight")] for nm in wnames if nm.endswith(".weight")), None)
        main = ins[1] if op in DENSE_OPS and len(ins) > 1 else None
        rows.append(
            LayerCount(
                index=i,
                op=op,
                name=name or layer or (outs[0] if outs else f"node{i}"),
                layer=layer,
                in_shapes=tuple(tuple(s) for s in act_in),
                out_shapes=tuple(act_out),
                flops=int(flops),
                weight_bytes=sum(int(infos[nm].nbytes) for nm in wnames),
                activation_bytes=activation_bytes
                * (sum(map(math.prod, act_in)) + sum(map(math.prod, act_out))),
                weights=wnames,
                bits=infos[main].bits if main in infos else None,
            )
        )
    _check_outputs(graph, shapes)
    return GraphCount(layers=tuple(rows), input_shapes={n: shapes[n] for n in _input_names(graph)})


def _constants(graph: Mapping[str, Any], extra: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, c in (graph.get("constants") or {}).items():
        try:
            out[name] = np.asarray(c["values"]).reshape(c["shape"])
        except (KeyError, TypeError, ValueError) as e:
            raise GraphCountError(
                f"graph constant {name!r}: needs 'values' and 'shape' that fit ({e})"
            ) from None
    for name, v in (extra or {}).items():
        out[name] = np.asarray(v)
    return out


def _input_names(graph: Mapping[str, Any]) -> list[str]:
    return [io_["name"] for io_ in graph.get("inputs", [])]


def _input_shapes(
    graph: Mapping[str, Any], given: Mapping[str, Sequence[int]] | None, batch: int
) -> dict[str, Shape]:
    given = dict(given or {})
    unknown = sorted(set(given) - set(_input_names(graph)))
    if unknown:
        raise GraphCountError(
            f"input_shapes names {unknown}, which are not graph inputs {_input_names(graph)}"
        )
    out = {}
    for io_ in graph.get("inputs", []):
        name, declared = io_["name"], list(io_.get("shape") or [])
        if name in given:
            shape = tuple(int(d) for d in given[name])
            if len(shape) != len(declared) or any(
                isinstance(d, int) and d != s for d, s in zip(declared, shape, strict=True)
            ):
                raise GraphCountError(
                    f"input {name!r}: shape {list(shape)} does not fit the graph's {declared}"
                )
        else:
            dynamic = [j for j, d in enumerate(declared) if d is None and j > 0]
            if dynamic:
                raise GraphCountError(
                    f"input {name!r}: shape {declared} has dynamic axes {dynamic} besides the batch; "
                    "give its shape in input_shapes"
                )
            shape = tuple(int(batch) if d is None else int(d) for d in declared)
        if any(d < 1 for d in shape):
            raise GraphCountError(f"input {name!r}: shape {list(shape)} must have every axis >= 1")
        out[name] = shape
    return out


def _check_outputs(graph: Mapping[str, Any], shapes: Mapping[str, Shape]) -> None:
    for io_ in graph.get("outputs", []):
        name = io_["name"]
        if name not in shapes:
            raise GraphCountError(f"graph output {name!r} is not produced by any node")
        declared = list(io_.get("shape") or [])
        got = shapes[name]
        if declared and (
            len(declared) != len(got)
            or any(isinstance(d, int) and d != g for d, g in zip(declared, got, strict=True))
        ):
            raise GraphCountError(
                f"graph output {name!r}: shape inference gives {list(got)}, the graph declares {declared}"
            )


# --------------------------------------------------------------------------------------------------------------
# shape and FLOP rules, one per op
# --------------------------------------------------------------------------------------------------------------


class _ShapeError(Exception):
    """An attribute or input shape a rule cannot handle; becomes a GraphCountError naming the node."""


class _Node(NodeAttrs):
    error = _ShapeError

    def __init__(self, node: Mapping[str, Any], opset: int, consts: Mapping[str, np.ndarray]) -> None:
        self.op = node["op"]
        self.inputs = list(node.get("inputs", []))
        self.outputs = list(node.get("outputs", []))
        self.attrs = dict(node.get("attrs") or {})
        self.opset = opset
        self.consts = consts

    def const(self, j: int, what: str) -> list[int] | None:
        """Integer values of input j (a constant), None when the input is absent; error when not constant."""
        if j >= len(self.inputs) or not self.inputs[j]:
            return None
        v = self.consts.get(self.inputs[j])
        if v is None:
            raise _ShapeError(
                f"{what} (input {self.inputs[j]!r}) is computed at run time; the counter needs it as a constant"
            )
        a = np.asarray(v).reshape(-1)
        if a.dtype.kind == "f" and not (np.isfinite(a).all() and (a == np.round(a)).all()):
            raise _ShapeError(f"{what} must hold whole numbers, got {a.tolist()}")
        return [int(x) for x in a]


Rule = Callable[[_Node, list], tuple[list, int]]


def _need(shapes: list[Shape | None], lo: int, hi: int | None = None) -> None:
    n = len(shapes)
    if n < lo or (hi is not None and n > hi):
        want = str(lo) if hi == lo else f"{lo}..{hi}" if hi is not None else f"{lo} or more"
        raise _ShapeError(f"takes {want} inputs, got {n}")
    for j in range(lo):
        if shapes[j] is None:
            raise _ShapeError(f"input {j} is required")


def _axis(axis: int, ndim: int, what: str = "axis") -> int:
    if not -ndim <= axis < ndim:
        raise _ShapeError(f"{what}={axis} is out of range for a {ndim}-d input")
    return axis % ndim


def _broadcast(shapes: Sequence[Shape]) -> Shape:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*shapes))
    except ValueError:
        raise _ShapeError(f"shapes {[list(s) for s in shapes]} do not broadcast") from None


def _elementwise(n: _Node, s: list) -> tuple[list, int]:
    """Add, Sub, Mul, Div, Pow, PRelu (2 inputs): 1 op per output element; Sum, Max, Min: inputs - 1."""
    if n.op in _VARIADIC:
        _need(s, 1)
        present = [x for x in s if x is not None]
        out = _broadcast(present)
        return [out], ELEMENTWISE_FLOPS * math.prod(out) * (len(present) - 1)
    _need(s, 2, 2)
    out = _broadcast(s)
    return [out], ELEMENTWISE_FLOPS * math.prod(out)


def _unary(n: _Node, s: list) -> tuple[list, int]:
    """Activations and unary maths: 1 op per output element."""
    _need(s, 1, 3 if n.op == "Clip" else 1)
    return [s[0]], ELEMENTWISE_FLOPS * math.prod(s[0])


def _softmax(n: _Node, s: list) -> tuple[list, int]:
    _need(s, 1, 1)
    _axis(n.i("axis", -1 if n.opset >= 13 else 1), len(s[0]))
    return [s[0]], SOFTMAX_FLOPS * math.prod(s[0])


def _batchnorm(n: _Node, s: list) -> tuple[list, int]:
    _need(s, 5, 5)
    if n.i("training_mode", 0):
        raise _ShapeError("training_mode=1 is not supported (inference only)")
    x = s[0]
    if len(x) < 2:
        raise _ShapeError(f"input must be [N, C, ...], got {list(x)}")
    for j in range(1, 5):
        if tuple(s[j]) != (x[1],):
            raise _ShapeError(f"input {j} has shape {list(s[j])}, expected [{x[1]}] (one value per channel)")
    return [x], BATCHNORM_FLOPS * math.prod(x)


def _layernorm(n: _Node, s: list) -> tuple[list, int]:
    _need(s, 2, 3)
    x = s[0]
    ax = _axis(n.i("axis", -1), len(x))
    for j, what in ((1, "Scale"), (2, "B")):
        if j < len(s) and s[j] is not None and _broadcast([s[j], x[ax:]]) != tuple(x[ax:]):
            raise _ShapeError(f"{what} {list(s[j])} does not broadcast to the normalised axes {list(x[ax:])}")
    stats = (*x[:ax], *([1] * (len(x) - ax)))  # the optional Mean and InvStdDev outputs
    return [x, stats, stats][: max(1, len(n.outputs))], LAYERNORM_FLOPS * math.prod(x)


def _gemm(n: _Node, s: list) -> tuple[list, int]:
    _need(s, 2, 3)
    a, b = s[0], s[1]
    if len(a) != 2 or len(b) != 2:
        raise _ShapeError(f"Gemm takes 2-d A and B, got {list(a)} and {list(b)}")
    m, k = (a[1], a[0]) if n.i("transA", 0) else a
    kb, nn = (b[1], b[0]) if n.i("transB", 0) else b
    if k != kb:
        raise _ShapeError(f"A {list(a)} and B {list(b)} do not multiply (transA/transB applied): {k} != {kb}")
    out = (m, nn)
    c = s[2] if len(s) > 2 else None
    if c is not None and _broadcast([c, out]) != out:
        raise _ShapeError(f"C {list(c)} does not broadcast to the output {list(out)}")
    flops = FLOPS_PER_MAC * m * k * nn
    if c is not None:
        flops += BIAS_FLOPS * m * nn
        if n.f("beta", 1.0) != 1.0:
            flops += ELEMENTWISE_FLOPS * m * nn
    if n.f("alpha", 1.0) != 1.0:
        flops += ELEMENTWISE_FLOPS * m * nn
    return [out], flops


def _matmul(n: _Node, s: list) -> tuple[list, int]:
    _need(s, 2, 2)
    a, b = s
    if not a or not b:
        raise _ShapeError("MatMul inputs must have at least 1 axis")
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise _ShapeError(f"{list(a)} and {list(b)} do not multiply: {a2[-1]} != {b2[-2]}")
    batch = _broadcast([a2[:-2], b2[:-2]])
    out = (*batch, *([a2[-2]] if len(a) > 1 else []), *([b2[-1]] if len(b) > 1 else []))
    return [out], FLOPS_PER_MAC * math.prod(batch) * a2[-2] * a2[-1] * b2[-1]


def _window(n: _Node, x: Shape, kernel: Sequence[int], *, conv: bool) -> Shape:
    """Output spatial sizes of a Conv or pool over input [N, C, *spatial]."""
    nd = len(kernel)
    if len(x) != 2 + nd:
        raise _ShapeError(f"expects a {2 + nd}-d input [N, C, spatial...] for a {nd}-d kernel, got {list(x)}")
    strides = n.ints("strides", [1] * nd)
    dil = n.ints("dilations", [1] * nd)
    pads = n.ints("pads", [0] * (2 * nd))
    auto = n.s("auto_pad", "NOTSET")
    ceil = bool(n.i("ceil_mode", 0)) and not conv
    if len(strides) != nd or len(dil) != nd or len(pads) != 2 * nd:
        raise _ShapeError(f"strides {strides}, dilations {dil}, pads {pads} do not fit {nd} spatial axes")
    if min(strides) < 1 or min(dil) < 1 or min(pads) < 0 or min(kernel) < 1:
        raise _ShapeError("kernel, strides and dilations must be >= 1 and pads >= 0")
    out = []
    for j, (size, k, st, d) in enumerate(zip(x[2:], kernel, strides, dil, strict=True)):
        span = d * (k - 1) + 1
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-size // st)
        elif auto in ("NOTSET", "VALID"):
            padded = size + (pads[j] + pads[j + nd] if auto == "NOTSET" else 0)
            if padded < span:
                raise _ShapeError(
                    f"spatial axis {j} of size {size} (padded {padded}) is smaller than the kernel span {span}"
                )
            o = (-(-(padded - span) // st) if ceil else (padded - span) // st) + 1
            if ceil and (o - 1) * st >= size + (pads[j] if auto == "NOTSET" else 0):
                o -= 1  # the last window would start in the end padding (ONNX / PyTorch rule)
        else:
            raise _ShapeError(f"auto_pad={auto!r} is not supported")
        out.append(o)
    return tuple(out)


def _conv(n: _Node, s: list) -> tuple[list, int]:
    _need(s, 2, 3)
    x, w = s[0], s[1]
    group = n.i("group", 1)
    kernel = n.ints("kernel_shape", None) or list(w[2:])
    if len(w) != len(x) or list(w[2:]) != list(kernel) or group < 1 or w[0] % group:
        raise _ShapeError(f"weight {list(w)} does not fit input {list(x)}, kernel {kernel}, group={group}")
    if x[1] != w[1] * group:
        raise _ShapeError(f"input has {x[1]} channels, the weight expects {w[1] * group} (group={group})")
    b = s[2] if len(s) > 2 else None
    if b is not None and tuple(b) != (w[0],):
        raise _ShapeError(f"bias {list(b)} must be [{w[0]}]")
    sp = _window(n, x, kernel, conv=True)
    outputs = x[0] * w[0] * math.prod(sp)  # N * Co * Y
    macs = outputs * w[1] * math.prod(kernel)  # (Ci / groups) * K per output
    return [(x[0], w[0], *sp)], FLOPS_PER_MAC * macs + (BIAS_FLOPS * outputs if b is not None else 0)


def _pool(n: _Node, s: list) -> tuple[list, int]:
    _need(s, 1, 1)
    kernel = n.ints("kernel_shape", None)
    if not kernel:
        raise _ShapeError("attribute 'kernel_shape' is required")
    out = (*s[0][:2], *_window(n, s[0], kernel, conv=False))
    outs = [out, out] if len(n.outputs) > 1 and n.outputs[1] else [out]  # MaxPool's optional Indices
    return outs, POOL_FLOPS * math.prod(out) * math.prod(kernel)


def _global_pool(n: _Node, s: list) -> tuple[list, int]:
    _need(s, 1, 1)
    x = s[0]
    if len(x) < 3:
        raise _ShapeError(f"expects [N, C, spatial...], got {list(x)}")
    return [(*x[:2], *([1] * (len(x) - 2)))], POOL_FLOPS * math.prod(x)


def _reduce(n: _Node, s: list) -> tuple[list, int]:
    _need(s, 1, 2)
    x = s[0]
    keep = bool(n.i("keepdims", 1))
    since = 13 if n.op == "ReduceSum" else 18  # when `axes` moved from an attribute to an input
    axes = n.ints("axes", None) if n.opset < since else n.const(1, "axes")
    if not axes:
        if n.opset >= since and n.i("noop_with_empty_axes", 0):
            return [x], 0
        axes = list(range(len(x)))
    ax = {_axis(a, len(x)) for a in axes}
    out = tuple(1 if j in ax else d for j, d in enumerate(x) if keep or j not in ax)
    return [out], POOL_FLOPS * math.prod(x)


def _flatten(n: _Node, s: list) -> tuple[list, int]:
    _need(s, 1, 1)
    x = s[0]
    axis = n.i("axis", 1)
    ax = axis + len(x) if axis < 0 else axis
    if not 0 <= ax <= len(x):
        raise _ShapeError(f"axis={axis} is out of range for a {len(x)}-d input")
    return [(math.prod(x[:ax]), math.prod(x[ax:]))], 0


def _reshape(n: _Node, s: list) -> tuple[list, int]:
    _need(s, 1, 2)
    x = s[0]
    target = n.const(1, "Reshape shape") if len(s) > 1 else n.ints("shape", None)
    if target is None:
        raise _ShapeError("needs a shape (second input or 'shape' attribute)")
    allowzero = n.i("allowzero", 0)
    out = []
    for j, d in enumerate(target):
        if d == 0 and not allowzero:
            if j >= len(x):
                raise _ShapeError(f"shape {target}: 0 at axis {j} but the input has {len(x)} axes")
            d = x[j]
        elif d < -1:
            raise _ShapeError(f"shape {target}: invalid dimension {d}")
        out.append(d)
    if out.count(-1) > 1:
        raise _ShapeError(f"shape {target}: more than one -1")
    total = math.prod(x)
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        if known == 0 or total % known:
            raise _ShapeError(f"cannot reshape {list(x)} to {target}")
        out[out.index(-1)] = total // known
    if math.prod(out) != total:
        raise _ShapeError(f"cannot reshape {list(x)} ({total} values) to {target}")
    return [tuple(out)], 0


def _transpose(n: _Node, s: list) -> tuple[list, int]:
    _need(s, 1, 1)
    x = s[0]
    perm = n.ints("perm", None) or list(range(len(x)))[::-1]
    if sorted(perm) != list(range(len(x))):
        raise _ShapeError(f"perm {perm} is not a permutation of {len(x)} axes")
    return [tuple(x[p] for p in perm)], 0


def _squeeze(n: _Node, s: list) -> tuple[list, int]:
    _need(s, 1, 2)
    x = s[0]
    axes = n.ints("axes", None) if n.opset < 13 else n.const(1, "axes")
    if axes is None:
        return [tuple(d for d in x if d != 1)], 0
    ax = {_axis(a, len(x)) for a in axes}
    bad = [a for a in ax if x[a] != 1]
    if bad:
        raise _ShapeError(f"cannot squeeze axes {sorted(bad)} of {list(x)}: not of size 1")
    return [tuple(d for j, d in enumerate(x) if j not in ax)], 0


def _unsqueeze(n: _Node, s: list) -> tuple[list, int]:
    _need(s, 1, 2)
    x = s[0]
    axes = n.ints("axes", None) if n.opset < 13 else n.const(1, "axes")
    if not axes:
        raise _ShapeError("needs axes")
    nd = len(x) + len(axes)
    ax = {_axis(a, nd) for a in axes}
    if len(ax) != len(axes):
        raise _ShapeError(f"repeated axes {axes}")
    it = iter(x)
    return [tuple(1 if j in ax else next(it) for j in range(nd))], 0


def _identity(n: _Node, s: list) -> tuple[list, int]:
    _need(s, 1, 3 if n.op == "Dropout" else 1)
    if n.op == "Dropout" and n.i("training_mode", 0):
        raise _ShapeError("training_mode is not supported (inference only)")
    return [s[0]] * max(1, len(n.outputs)), 0  # Dropout's optional mask has the input's shape


def _pad(n: _Node, s: list) -> tuple[list, int]:
    """Pad: each axis grows by its begin + end pads (negative pads crop); a copy, no arithmetic."""
    _need(s, 1, 1 if n.opset < 11 else 4)
    x = s[0]
    pads = n.ints("pads", None) if n.opset < 11 else n.const(1, "pads")
    if pads is None:
        raise _ShapeError("needs pads")
    given = n.const(3, "axes") if n.opset >= 18 and len(s) > 3 else None
    axes = list(range(len(x))) if given is None else [_axis(a, len(x)) for a in given]
    if len(pads) != 2 * len(axes):
        raise _ShapeError(f"pads {pads} do not fit {len(axes)} axes")
    out = list(x)
    for j, a in enumerate(axes):
        out[a] = x[a] + pads[j] + pads[j + len(axes)]
        if out[a] < 0:
            raise _ShapeError(f"pads {pads} crop axis {a} of {list(x)} below zero")
    return [tuple(out)], 0


def _concat(n: _Node, s: list) -> tuple[list, int]:
    _need(s, 1)
    if "axis" not in n.attrs:
        raise _ShapeError("attribute 'axis' is required")
    xs = [x for x in s if x is not None]
    nd = len(xs[0])
    ax = _axis(n.i("axis", 0), nd)
    for x in xs[1:]:
        if len(x) != nd or any(a != b for j, (a, b) in enumerate(zip(x, xs[0], strict=True)) if j != ax):
            raise _ShapeError(f"shapes {[list(x) for x in xs]} cannot be concatenated on axis {ax}")
    out = list(xs[0])
    out[ax] = sum(x[ax] for x in xs)
    return [tuple(out)], 0


_VARIADIC = ("Sum", "Max", "Min")
_UNARY = (
    "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu", "Celu",
    "Softplus", "Softsign", "Gelu", "Erf", "Exp", "Log", "Sqrt", "Reciprocal", "Neg", "Abs", "Floor", "Ceil",
    "Round", "Sign", "Clip",
)  # fmt: skip
_RULES: dict[str, Rule] = {
    **{op: _elementwise for op in ("Add", "Sub", "Mul", "Div", "Pow", "PRelu", *_VARIADIC)},
    **{op: _unary for op in _UNARY},
    "Softmax": _softmax,
    "LogSoftmax": _softmax,
    "BatchNormalization": _batchnorm,
    "LayerNormalization": _layernorm,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Conv": _conv,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "GlobalAveragePool": _global_pool,
    "GlobalMaxPool": _global_pool,
    **{op: _reduce for op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin")},
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Identity": _identity,
    "Dropout": _identity,
    "Concat": _concat,
    "Pad": _pad,
}

SUPPORTED_OPS = tuple(sorted(_RULES))
"""Ops the counter has a shape and FLOP rule for (a superset of the numpy engine's)."""
