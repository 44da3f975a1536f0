"""A TIM-Net-like temporal model on MFCC sequences: bidirectional dilated convolutions, multi-scale fusion.

After Ye et al., "Temporal Modeling Matters: A Novel Temporal Emotional Modeling Approach for Speech Emotion
Recognition" (ICASSP 2023; reference code github.com/Jiaxin-Ye/TIM-Net_SER, `Code/TIMNET.py`, `Code/Model.py`),
written here in torch for this project's export path:

- input "mfcc" [B, T, n_mfcc] (`edge_ser.inputs.sequence`), standardised per coefficient in the graph;
- a 1x1 conv per direction, then `dilations` temporal-aware blocks per direction with dilation 1, 2, 4, ...:
  two dilated kernel-2 convs (each BatchNorm, ReLU, channel dropout), a sigmoid gate multiplying the block's
  input (TIM-Net's `Temporal_Aware_Block`);
- after block i, forward + backward are added and averaged over time: one vector per scale; the scales are
  fused by learned weights (TIM-Net's `WeightLayer`), then one linear classifier (logits).

The backward direction: TIM-Net reverses the sequence and runs causal convolutions. Every layer here is either
pointwise in time or a convolution, so "reverse, causal stack" equals an *anti-causal* stack on the sequence as
it is (padding on the right instead of the left, each kernel mirrored), and the global average of each scale
does not care about the order of time. So the graph has no reversal: each conv is a Pad then a Conv, and the
backward blocks pad on the right. The exported ops (Sub, Div, Transpose, Pad, Conv, BatchNormalization, Relu,
Sigmoid, Mul, Add, ReduceMean, Unsqueeze, Concat, MatMul, Squeeze, Gemm) all run on the numpy engine.

Differences from the reference, on purpose: 16 kHz MFCC frames 20 ms apart in fixed 3 s windows (the
reference pads or crops every clip to 4.35 s at 22.05 kHz, frames 23 ms apart); the fusion weights start equal (the reference draws them
uniformly); no label smoothing (the training path has mixup instead). With 39 filters, kernel 2 and 8 scales
the model has ~104 k parameters, of which ~101 k are conv / dense weights that LAQ quantizes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TimNetConfig:
    n_mfcc: int = 39
    frames: int = 150
    """T: frames per input window."""
    filters: int = 39
    """Channels of every conv (the reference's `filter_size`, equal to its 39 MFCCs)."""
    kernel: int = 2
    dilations: int = 8
    """Blocks per direction, with dilations 1, 2, ..., 2**(dilations - 1): receptive field
    1 + 2 * (kernel - 1) * (2**dilations - 1) frames (511 for kernel 2 and 8 blocks)."""
    dropout: float = 0.1
    """Channel dropout after each conv (the reference's SpatialDropout1D)."""
    num_classes: int = 7

    def __post_init__(self) -> None:
        for name in ("n_mfcc", "frames", "filters", "kernel", "dilations"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"TimNetConfig.{name}={getattr(self, name)!r} must be an integer >= 1")
        if self.num_classes < 2:
            raise ValueError(f"num_classes={self.num_classes} must be >= 2")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)


class DilatedConv(nn.Module):
    """Pad (left: causal, right: anti-causal) then a dilated Conv1d, so the output keeps the input's length."""

    def __init__(self, channels: int, kernel: int, dilation: int, causal: bool) -> None:
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.causal = causal
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = (self.pad, 0) if self.causal else (0, self.pad)
        return self.conv(F.pad(x, pads))


class TemporalAwareBlock(nn.Module):
    """Two dilated convs (BatchNorm, ReLU, channel dropout each); the sigmoid of the result gates the input."""

    def __init__(self, channels: int, kernel: int, dilation: int, causal: bool, dropout: float) -> None:
        super().__init__()
        self.conv1 = DilatedConv(channels, kernel, dilation, causal)
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv2 = DilatedConv(channels, kernel, dilation, causal)
        self.bn2 = nn.BatchNorm1d(channels)
        self.drop = nn.Dropout1d(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(torch.relu(self.bn1(self.conv1(x))))
        h = self.drop(torch.relu(self.bn2(self.conv2(h))))
        return x * torch.sigmoid(h)


class TimNet(nn.Module):
    """Standardise, 1x1 conv per direction, `dilations` gated blocks per direction, per-scale time averages of
    forward + backward, learned scale weights, linear classifier."""

    def __init__(self, config: TimNetConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.register_buffer("mean", torch.zeros(c.n_mfcc))
        self.register_buffer("std", torch.ones(c.n_mfcc))
        self.fwd_in = nn.Conv1d(c.n_mfcc, c.filters, 1)
        self.bwd_in = nn.Conv1d(c.n_mfcc, c.filters, 1)
        scales = [2**i for i in range(c.dilations)]
        self.fwd = nn.ModuleList(TemporalAwareBlock(c.filters, c.kernel, d, True, c.dropout) for d in scales)
        self.bwd = nn.ModuleList(TemporalAwareBlock(c.filters, c.kernel, d, False, c.dropout) for d in scales)
        self.fusion = nn.Parameter(torch.full((c.dilations, 1), 1.0 / c.dilations))
        """Scale weights [scales, 1] (TIM-Net's WeightLayer); float, not quantized (8 values)."""
        self.classifier = nn.Linear(c.filters, c.num_classes)

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-6) -> None:
        """Store the training windows' per-coefficient statistics (std floored at eps)."""
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype))
        self.std.copy_(torch.as_tensor(std, dtype=self.std.dtype).clamp_min(eps))

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample input shape by input name: one window of MFCC frames (T, n_mfcc)."""
        return {"mfcc": (self.config.frames, self.config.n_mfcc)}

    def onnx_fixups(self, proto) -> None:
        """Fold the pads of every `F.pad` into an int64 initializer (the legacy exporter leaves them as a
        ConstantOfShape / Concat / Slice / Cast chain), so the graph is Pad -> Conv throughout."""
        from converters.export.onnx_export import fold_integer_constants

        fold_integer_constants(proto)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = ((x - self.mean) / self.std).transpose(1, 2)  # [B, n_mfcc, T]
        f, b = self.fwd_in(x), self.bwd_in(x)
        pooled = []
        for fb, bb in zip(self.fwd, self.bwd, strict=True):
            f, b = fb(f), bb(b)
            pooled.append((f + b).mean(dim=2))  # [B, filters]
        fused = torch.matmul(torch.stack(pooled, dim=2), self.fusion).squeeze(2)  # [B, filters]
        return self.classifier(fused)


def timnet(num_classes: int = 7, **options) -> TimNet:
    """A TimNet from `TimNetConfig` keywords (n_mfcc, frames, filters, kernel, dilations, dropout)."""
    return TimNet(TimNetConfig(num_classes=num_classes, **options))


__all__ = ["TemporalAwareBlock", "TimNet", "TimNetConfig", "timnet"]
