"""serct_lite: the SERCT thesis's raw-waveform model, width cut to fit: a conv1d front end, then a transformer.

Input "waveform" [B, N]: N = frames * 320 conditioned samples at 16 kHz (DC removed, -26 dBFS: the host recipe),
standardised by a scalar mean / std of the training windows (buffers, as `squeezenet_lms`). The front end is
wav2vec 2.0's feature encoder pattern (Baevski et al., NeurIPS 2020; the thesis's "conv1d 10/3/2"): one conv of
kernel 10 stride 5, four of kernel 3 stride 2, two of kernel 2 stride 2 (total stride 320 = 20 ms, so the T
tokens are the 20 ms frames `timnet` sees), each followed by LayerNorm over the channels and GELU. Padding
(3, 1, 0) makes every stage exactly halve (N/5, then /2), so T = N / 320. The tokens are projected to `dim`,
given learned positions and run through `layers` pre-norm encoder layers (`tiny_transformer.EncoderLayer`),
then LayerNorm, the mean over tokens and a Linear to the classes.

GELU is x * sigmoid(1.702 x) (Hendrycks & Gimpel's sigmoid approximation, within 0.02 of the erf form), so the
export is Mul and Sigmoid, ops every engine here runs (opset 17 has no Gelu; the erf form needs Erf).

Defaults (channels 32, dim 32, 2 heads, 2 layers, ff_mult 2), 7 classes, T = 112 (2.24 s): 39,175 parameters
(3,584 of them the positional embedding).
Width was cut from the thesis's 512-channel encoder to fit the packed budget (<= 100 KB at <= 2 bits).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from converters.models.tiny_transformer import EncoderLayer

HOP = 320
"""Samples per token: the conv stack's total stride (5 * 2^6)."""
STAGES = ((10, 5, 3), (3, 2, 1), (3, 2, 1), (3, 2, 1), (3, 2, 1), (2, 2, 0), (2, 2, 0))
"""(kernel, stride, padding) of each conv1d stage."""


@dataclass(frozen=True)
class SerctLiteConfig:
    num_classes: int = 7
    frames: int = 112
    """T: tokens per window; the input has frames * HOP samples."""
    channels: int = 32
    dim: int = 32
    heads: int = 2
    layers: int = 2
    ff_mult: int = 2
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.num_classes < 2 or self.frames < 1 or self.channels < 1 or self.layers < 0:
            raise ValueError(f"SerctLiteConfig: bad sizes {self}")
        if self.dim % self.heads:
            raise ValueError(f"SerctLiteConfig: dim={self.dim} must be a multiple of heads={self.heads}")

    @property
    def samples(self) -> int:
        return self.frames * HOP

    def to_dict(self) -> dict:
        return asdict(self)


class Gelu(nn.Module):
    """x * sigmoid(1.702 x): GELU's sigmoid approximation (exports as Mul + Sigmoid)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ConvStage(nn.Module):
    """Conv1d (no bias), LayerNorm over channels, GELU: [B, C_in, L] -> [B, C_out, L / stride]."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.norm = nn.LayerNorm(c_out)
        self.act = Gelu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x).transpose(1, 2)  # [B, L, C]
        return self.act(self.norm(x)).transpose(1, 2)


class SerctLite(nn.Module):
    """Standardise, conv1d front end (stride 320), project + positions, encoder layers, LN, mean, Linear."""

    def __init__(self, cfg: SerctLiteConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or SerctLiteConfig()
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))
        stages, c = [], 1
        for kernel, stride, padding in STAGES:
            stages.append(ConvStage(c, cfg.channels, kernel, stride, padding))
            c = cfg.channels
        self.encoder = nn.Sequential(*stages)
        self.proj = nn.Linear(cfg.channels, cfg.dim)
        self.pos = nn.Parameter(torch.zeros(1, cfg.frames, cfg.dim))
        self.blocks = nn.ModuleList(
            EncoderLayer(cfg.dim, cfg.heads, cfg.ff_mult * cfg.dim, cfg.frames, 1e-5)
            for _ in range(cfg.layers)
        )
        self.norm = nn.LayerNorm(cfg.dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.dim, cfg.num_classes)
        nn.init.trunc_normal_(self.pos, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def set_normalization(self, mean: float, std: float, eps: float = 1e-6) -> None:
        """Store the training windows' scalar mean and std (std floored at eps)."""
        self.mean.fill_(float(mean))
        self.std.fill_(max(float(std), eps))

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample input shape by input name: one window of samples."""
        return {"waveform": (self.cfg.samples,)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        x = ((x - self.mean) / self.std).reshape(-1, 1, cfg.samples)
        x = self.encoder(x).transpose(1, 2)  # [B, T, C]
        x = self.proj(x.reshape(-1, cfg.channels)).reshape(-1, cfg.frames, cfg.dim) + self.pos
        for block in self.blocks:
            x = block(x)
        x = self.norm(x).mean(dim=1)
        return self.classifier(self.dropout(x))


def serct_lite(num_classes: int = 7, **options) -> SerctLite:
    """The SERCT-lite model; options are SerctLiteConfig fields (frames, channels, dim, heads, layers...)."""
    return SerctLite(SerctLiteConfig(num_classes=num_classes, **options))


__all__ = ["HOP", "SerctLite", "SerctLiteConfig", "serct_lite"]
