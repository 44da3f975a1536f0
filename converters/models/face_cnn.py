"""face_cnn: a small mini-Xception-like face-expression CNN on one grey face crop [B, 1, S, S] (S = 48 default).

Layout (after Arriaga et al. 2017, "Real-time Convolutional Neural Networks for Emotion and Gender
Classification", arXiv:1710.07557, the mini-Xception): a stem of two conv 3x3 (pad 1) + BN + ReLU, then one
residual block per entry of `channels`: main path [depthwise 3x3 + pointwise 1x1 + BN + ReLU, depthwise 3x3 +
pointwise 1x1 + BN, max pool 3/2 pad 1], shortcut conv 1x1 stride 2 + BN, summed; then global average pool,
dropout and Linear -> classes. Input `face` in [0, 1] (the crop / 255, done by the `face` input kind); the graph
maps it to [-1, 1] (Sub 0.5, Div 0.5, buffers `mean` / `std`, as `squeezenet_lms` standardises).

`fold_batchnorm(model)` returns an equivalent copy with every BatchNorm folded into the conv before it (the conv
gains a bias, the BN becomes Identity): QAT then trains and freezes the folded convs, so the packed file stores
one float bias per channel instead of four BN vectors (the difference between ~30 KB and < 20 KB at 2 bits).

`antialias=True` (Zhang 2019, "Making Convolutional Networks Shift-Invariant Again"): max pool 3/1 then a weight-free
binomial blur with stride 2 (`blur_down`) in place of each max pool 3/2; the shortcut blurs before its 1x1 conv.

Export: input "face" [batch, 1, S, S], output "logits"; ops Sub, Div, Conv (groups for the depthwise convs), Relu,
MaxPool, AveragePool (antialias), Add, GlobalAveragePool, Flatten, Gemm (+ BatchNormalization before folding), all in
`edge_ser.engines.numpy_engine.SUPPORTED_OPS`. Parameter counts: `converters.models.counts`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["FaceCNN", "FaceCNNConfig", "face_cnn", "fold_batchnorm"]


@dataclass(frozen=True)
class FaceCNNConfig:
    size: int = 48
    """S: side of the square grey face crop."""
    num_classes: int = 7
    stem: int = 8
    """Channels of the two stem convs."""
    stem_stride: int = 1
    """Stride of the stem: 2 halves the side before the blocks (~4x fewer MACs than 1)."""
    stride_in_second: bool = False
    """Put the stem's stride in its second conv, so the first conv sees the full-resolution crop (~10 % more
    MACs than striding the first; the blocks' cost is unchanged)."""
    channels: tuple[int, ...] = (16, 32, 64, 128)
    """Output channels of each residual block (each halves the side)."""
    dropout: float = 0.2
    antialias: bool = False
    """Anti-aliased downsampling (Zhang 2019): each block's max pool 3/2 becomes max pool 3/1 then a binomial
    [1, 2, 1] x [1, 2, 1] / 16 blur with stride 2, and the shortcut blurs before its (then stride-1) 1x1 conv.
    Decisions steadier under a 1-pixel shift; no stored weights (`blur_down`)."""

    def __post_init__(self) -> None:
        if not self.channels:
            raise ValueError("channels: at least one block")
        if self.size < 2 ** len(self.channels):
            raise ValueError(
                f"size={self.size}: at least {2 ** len(self.channels)} for {len(self.channels)} blocks"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout}: must be in [0, 1)")


def _conv_bn(ci: int, co: int, k: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """Conv k x k (pad k // 2, no bias) + BN (+ ReLU)."""
    layers: list[nn.Module] = [nn.Conv2d(ci, co, k, stride, padding=k // 2, bias=False), nn.BatchNorm2d(co)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


def _sep_bn(ci: int, co: int, relu: bool) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1 + BN (+ ReLU): the mini-Xception's separable conv."""
    layers: list[nn.Module] = [
        nn.Conv2d(ci, ci, 3, padding=1, groups=ci, bias=False),
        nn.Conv2d(ci, co, 1, bias=False),
        nn.BatchNorm2d(co),
    ]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


def blur_down() -> nn.Sequential:
    """A [1, 2, 1] x [1, 2, 1] / 16 blur (zero padding 1) with stride 2, as two average pools and no weights:
    AvgPool 2/1 (pad 1) gives (x[i] + x[i+1]) / 2, the stride-2 AvgPool 2/2 after it (x[2j] + 2 x[2j+1] + x[2j+2])
    / 4 on the padded input. Side S -> ceil(S / 2), as a max pool 3/2 pad 1. Every engine and the TFLite translator
    has AveragePool, while a per-channel blur kernel would cost ~6 KB of the face model's 20 KB."""
    return nn.Sequential(nn.AvgPool2d(2, 1, padding=1), nn.AvgPool2d(2, 2))


class _Block(nn.Module):
    """Residual separable block: side / 2, channels ci -> co (downsampling anti-aliased if `antialias`)."""

    def __init__(self, ci: int, co: int, antialias: bool = False) -> None:
        super().__init__()
        pool = (
            nn.Sequential(nn.MaxPool2d(3, 1, padding=1), blur_down()) if antialias else nn.MaxPool2d(3, 2, 1)
        )
        self.main = nn.Sequential(_sep_bn(ci, co, True), _sep_bn(co, co, False), pool)
        if antialias:
            self.short = nn.Sequential(blur_down(), *_conv_bn(ci, co, 1, relu=False))
        else:
            self.short = _conv_bn(ci, co, 1, stride=2, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.short(x)


class FaceCNN(nn.Module):
    """[0, 1] face -> x*2-1 -> stem -> residual separable blocks -> GAP -> dropout -> Linear -> logits."""

    def __init__(self, cfg: FaceCNNConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or FaceCNNConfig()
        self.cfg = cfg
        self.register_buffer("mean", torch.tensor(0.5))
        self.register_buffer("std", torch.tensor(0.5))
        s1, s2 = (1, cfg.stem_stride) if cfg.stride_in_second else (cfg.stem_stride, 1)
        self.stem = nn.Sequential(_conv_bn(1, cfg.stem, 3, s1), _conv_bn(cfg.stem, cfg.stem, 3, s2))
        blocks, c = [], cfg.stem
        for co in cfg.channels:
            blocks.append(_Block(c, co, cfg.antialias))
            c = co
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(c, cfg.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"face": (1, self.cfg.size, self.cfg.size)}

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        x = (face - self.mean) / self.std
        x = self.blocks(self.stem(x))
        return self.classifier(self.dropout(torch.flatten(self.pool(x), 1)))


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of `model` (eval mode) with each BatchNorm2d that directly follows a Conv2d in an nn.Sequential
    folded into that conv (w * g / sqrt(v + eps), bias (b0 - m) * g / sqrt(v + eps) + beta) and replaced by
    Identity: the same function, fewer stored floats."""
    out = copy.deepcopy(model).eval()
    for seq in out.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(1, len(seq)):
            conv, bn = seq[i - 1], seq[i]
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
                continue
            k = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            b0 = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.weight.mul_(k.reshape(-1, 1, 1, 1))
            conv.bias = nn.Parameter((b0 - bn.running_mean) * k + bn.bias)
            seq[i] = nn.Identity()
    return out


def face_cnn(**kwargs) -> FaceCNN:
    """The face-expression CNN; kwargs are FaceCNNConfig fields (size, num_classes, stem, stem_stride,
    stride_in_second, channels, dropout, antialias)."""
    if "channels" in kwargs:
        kwargs["channels"] = tuple(kwargs["channels"])
    return FaceCNN(FaceCNNConfig(**kwargs))
