"""small_cnn: the comparative study's small 2-D CNN baseline on single-channel log-Mel patches [B, 1, M, T].

Layout: four blocks of conv 3x3 pad 1 (no bias) + BatchNorm2d + ReLU + maxpool 2/2 (floor mode), with 16, 32,
64, 64 channels at width 1 (a `width` multiplier scales every count, rounded, at least `min_channels`), then
global average pool, dropout, Linear -> classes. Input standardisation (scalar mean / std of the training
patches, in dB) is inside the model as buffers, like `squeezenet_lms`. Initialisation: kaiming-normal convs
(fan_out, ReLU), BatchNorm weight 1 / bias 0, PyTorch's default Linear.

FLOPs by the AV convention (conv = 2*Yh*Yw*Ci*Co*Kh*Kw + Yh*Yw*Co, the bias term absent here: the convs have
none, BatchNorm follows; dense = 2*in*out + out; BatchNorm, ReLU and pools not counted, so the total equals
`edge_ser.flops.GraphCount.dense_flops` of the exported graph), 7 classes, input 1 x 128 x 64, exact:

=======  ==========  ==========
width    params      MFLOPs
=======  ==========  ==========
1.0      60,855      49.55
0.5      15,455      12.98
=======  ==========  ==========

(params include the BatchNorm scales and shifts; the running statistics are buffers.)

Export: `export_model(model)` (converters.export.onnx_export) -> input "lms" [batch, 1, M, T], output "logits"; ops Sub, Div, Conv,
BatchNormalization, Relu, MaxPool, GlobalAveragePool, Flatten, Gemm (plus Identity where the exporter shares
equal initializers, e.g. a fresh BatchNorm's weight and running_var), all in
`edge_ser.engines.numpy_engine.SUPPORTED_OPS`. BatchNorm stays a BatchNormalization node (the exporter does not
fold it into the conv, `converters.export.onnx_export.to_onnx`), so a quantized conv weight keeps its name
and grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from converters.models.lms_patch import LMSPatchModel, PatchConfig

__all__ = ["SmallCNN", "SmallCNNConfig", "small_cnn"]

CHANNELS = (16, 32, 64, 64)
"""Conv channels per block at width 1."""


@dataclass(frozen=True)
class SmallCNNConfig(PatchConfig):
    n_mels: int = 128
    """M: patch height (mel bands)."""
    segment_frames: int = 64
    """T: patch width (frames)."""
    num_classes: int = 7
    width: float = 1.0
    """Multiplier on every channel count, rounded, at least `min_channels`."""
    min_channels: int = 4
    channels: tuple[int, ...] = CHANNELS
    """Conv channels per block at width 1; one 2/2 max pool per block."""
    dropout: float = 0.3

    def __post_init__(self) -> None:
        self.check_common()
        if not self.channels:
            raise ValueError("channels: at least one block")
        for name in ("n_mels", "segment_frames"):
            n = getattr(self, name)
            if n < self.min_side:
                raise ValueError(
                    f"{name}={n}: the input must be at least {self.min_side} on each side "
                    f"({len(self.channels)} 2/2 pools)"
                )
        if not (0 <= self.dropout < 1):
            raise ValueError(f"dropout={self.dropout}: must be in [0, 1)")

    @property
    def min_side(self) -> int:
        """Smallest M and T: every floor-mode 2/2 pool needs at least 2 rows / columns in."""
        return 2 ** len(self.channels)


class SmallCNN(LMSPatchModel):
    """Standardise, [conv 3x3 + BN + ReLU + maxpool 2] x blocks, GAP, dropout, Linear -> logits [B, classes]."""

    def __init__(self, cfg: SmallCNNConfig | None = None) -> None:
        cfg = cfg or SmallCNNConfig()
        super().__init__(cfg.n_mels, cfg.segment_frames)
        self.cfg = cfg
        layers: list[nn.Module] = []
        c = 1
        for width in cfg.channels:
            co = cfg.ch(width)
            layers += [
                nn.Conv2d(c, co, 3, padding=1, bias=False),
                nn.BatchNorm2d(co),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, 2),
            ]
            c = co
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(c, cfg.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.standardize(x)
        x = torch.flatten(self.pool(self.features(x)), 1)
        return self.classifier(self.dropout(x))


def small_cnn(**kwargs) -> SmallCNN:
    """The small CNN baseline; kwargs are SmallCNNConfig fields (n_mels, segment_frames, num_classes, width...)."""
    return SmallCNN(SmallCNNConfig(**kwargs))
