"""squeezenet_lms: SqueezeNet v1.1 (fire modules) on single-channel log-Mel patches [B, 1, M, T].

Layout is torchvision's `squeezenet1_1` (Iandola et al. 2016, v1.1 from the SqueezeNet repo):
conv 3x3/2 64 + ReLU, maxpool 3/2, fire(16, 64, 64) x2, maxpool, fire(32, 128, 128) x2, maxpool,
fire(48, 192, 192) x2, fire(64, 256, 256) x2, dropout 0.5, conv 1x1 -> classes, ReLU, global average pool.
A fire(s, e1, e3) is squeeze conv 1x1 (s) + ReLU, then concat[expand 1x1 (e1) + ReLU, expand 3x3 pad 1 (e3) +
ReLU]. Differences from torchvision: one input channel (a log-Mel patch, not RGB); a `width` multiplier
scales every channel count (rounded, at least 4) so the model can shrink; input standardisation (scalar
mean / std of the training patches, in dB) is inside the model as buffers, like `LaqMLP`; the initialisation
is torchvision's (kaiming-uniform convs, final conv normal(0, 0.01)).

Pooling: torchvision pools with `ceil_mode=True`, which the numpy engine does not run. For kernel 3 / stride 2,
ceil mode equals floor mode with one extra padded row / column at the end (pads [0, 0, 1, 1], ONNX MaxPool pads
never win a max), so `onnx_fixups` (run by the export) rewrites each ceil-mode MaxPool that way: same outputs,
both engines run it.

FLOPs by the AV convention (conv = 2*Yh*Yw*Ci*Co*Kh*Kw + Yh*Yw*Co; only conv layers counted: the exported
graph's `dense_flops` by `edge_ser.flops`, `converters.models.counts`), 7 classes, input 1 x 128 x 64 (M=128 mels, T=64 frames), exact:

=======  ==========  ==========
width    params      MFLOPs
=======  ==========  ==========
1.0      724,935     69.65
0.5      183,015     18.10
0.25     46,647      4.87
=======  ==========  ==========

Export: `export_model(model)` (converters.export.onnx_export) -> input "lms" [batch, 1, M, T], output "logits"; ops Sub, Div, Conv, Relu, MaxPool,
Concat, GlobalAveragePool, Flatten, all in `edge_ser.engines.numpy_engine.SUPPORTED_OPS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from converters.models.lms_patch import LMSPatchModel, PatchConfig

# torchvision squeezenet1_1: (squeeze, expand1x1, expand3x3) per fire, "M" = maxpool 3/2 ceil
V11_LAYOUT: tuple[Any, ...] = (
    "M",
    (16, 64, 64),
    (16, 64, 64),
    "M",
    (32, 128, 128),
    (32, 128, 128),
    "M",
    (48, 192, 192),
    (48, 192, 192),
    (64, 256, 256),
    (64, 256, 256),
)
STEM = 64
MIN_SIDE = 25
"""Smallest M and T: conv 3/2 -> 12, pool -> 6, pool -> 3, pool -> 1 (each 3/2 pool needs an input >= 3)."""


@dataclass(frozen=True)
class SqueezeNetConfig(PatchConfig):
    n_mels: int = 128
    """M: patch height (mel bands)."""
    segment_frames: int = 64
    """T: patch width (frames)."""
    num_classes: int = 7
    width: float = 1.0
    """Multiplier on every channel count (stem, squeeze and expand), rounded, at least `min_channels`."""
    min_channels: int = 4
    dropout: float = 0.5

    def __post_init__(self) -> None:
        self.check_common()
        for name in ("n_mels", "segment_frames"):
            n = getattr(self, name)
            if n < MIN_SIDE:
                # the stride-2 conv and three 3/2 pools: every pool needs >= 3 rows / columns in
                raise ValueError(f"{name}={n}: the input must be at least {MIN_SIDE} on each side")


class Fire(nn.Module):
    def __init__(self, c_in: int, squeeze: int, e1: int, e3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(c_in, squeeze, 1)
        self.squeeze_act = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, e1, 1)
        self.expand1x1_act = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, e3, 3, padding=1)
        self.expand3x3_act = nn.ReLU(inplace=True)
        self.out_channels = e1 + e3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_act(self.squeeze(x))
        return torch.cat([self.expand1x1_act(self.expand1x1(x)), self.expand3x3_act(self.expand3x3(x))], 1)


class SqueezeNetLMS(LMSPatchModel):
    """Standardise, SqueezeNet v1.1 features, classifier (dropout, conv 1x1, ReLU, GAP) -> logits [B, classes]."""

    def __init__(self, cfg: SqueezeNetConfig | None = None) -> None:
        cfg = cfg or SqueezeNetConfig()
        super().__init__(cfg.n_mels, cfg.segment_frames)
        self.cfg = cfg
        c = cfg.ch(STEM)
        layers: list[nn.Module] = [nn.Conv2d(1, c, 3, stride=2), nn.ReLU(inplace=True)]
        for item in V11_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
            else:
                s, e1, e3 = (cfg.ch(v) for v in item)
                fire = Fire(c, s, e1, e3)
                layers.append(fire)
                c = fire.out_channels
        self.features = nn.Sequential(*layers)
        self.final_conv = nn.Conv2d(c, cfg.num_classes, 1)
        self.classifier = nn.Sequential(
            nn.Dropout(cfg.dropout), self.final_conv, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1)
        )
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                if m is self.final_conv:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)

    def onnx_fixups(self, proto) -> None:
        """After export: its ceil-mode pools as floor pools with an end pad (see the module doc)."""
        _ceil_pools_to_pads(proto)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.standardize(x)
        return torch.flatten(self.classifier(self.features(x)), 1)


def squeezenet_lms(**kwargs) -> SqueezeNetLMS:
    """SqueezeNet v1.1 for log-Mel patches; kwargs are SqueezeNetConfig fields (n_mels, segment_frames, width...)."""
    return SqueezeNetLMS(SqueezeNetConfig(**kwargs))


def _ceil_pools_to_pads(proto) -> int:
    """Rewrite MaxPool(k=3, s=2, ceil_mode=1) as ceil_mode=0 with end pads 1 (identical output); returns count."""
    from onnx import helper

    n_done = 0
    for node in proto.graph.node:
        if node.op_type != "MaxPool":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if not attrs.get("ceil_mode", 0):
            continue
        k, s = list(attrs["kernel_shape"]), list(attrs.get("strides", [1, 1]))
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if k != [3, 3] or s != [2, 2] or any(pads):
            raise ValueError(f"cannot rewrite ceil-mode MaxPool kernel {k} strides {s} pads {pads}")
        keep = [a for a in node.attribute if a.name not in ("ceil_mode", "pads")]
        del node.attribute[:]
        node.attribute.extend(keep)
        node.attribute.extend([helper.make_attribute("pads", [0, 0, 1, 1])])
        n_done += 1
    return n_done
