"""tiny_transformer: a small convolution + self-attention model on single-channel log-Mel patches [B, 1, M, T].

In the spirit of SERCT (a convolutional front end, then a few transformer layers): two stem blocks of conv
3x3 stride 2 pad 1 (no bias) + BatchNorm2d + ReLU shrink M and T four-fold (M' = ceil(ceil(M/2)/2), likewise
T'); the frequency axis is folded into the channels, so each of the T' time steps is one token of C*M' values,
projected by a Linear to `dim`; a learned positional embedding [1, T', dim] is added; `layers` pre-norm
encoder layers follow (x += MHSA(LN(x)); x += FF(LN(x)), FF = Linear dim -> ff_mult*dim, ReLU, Linear back),
then a final LayerNorm, the mean over tokens, dropout and Linear -> classes. Input standardisation (scalar mean
/ std of the training patches, in dB) is inside the model as buffers, like `squeezenet_lms`.

Attention is written out (Linear q, k, v; reshape to heads; softmax(q k^T / sqrt(dk)) v; Linear out) instead
of nn.MultiheadAttention, and every Linear sees a 2-D [B*T', features] tensor, so the export is plain Gemm
(weights under their `<layer>.weight` names, which the bundle's quantized tensors need; a Linear on a 3-D
tensor would export as MatMul with a transposed, renamed copy), MatMul, Softmax, Transpose, Reshape (constant
target shapes with a -1 batch axis, no Shape / Gather), Add, Mul. The feed-forward uses ReLU, not GELU.

`width` scales the stem channels and `dim` (rounded to a multiple of `heads`, at least 4 per head).

FLOPs by the AV convention (conv = 2*Yh*Yw*Ci*Co*Kh*Kw, no conv bias here; dense = 2*in*out + out per token;
the two attention products q k^T and att v = 2 MAC each; norms, softmax, ReLU, adds and the mean not counted,
so the total equals `edge_ser.flops.GraphCount.dense_flops` of the exported graph), 7 classes, input
1 x 128 x 64 (16 tokens of 512 values), defaults (stem 16-16, dim 48, 3 heads, 2 layers, ff_mult 2), exact:

=======  ==========  ==========
width    params      MFLOPs
=======  ==========  ==========
1.0      66,263      5.03
0.5      17,199      1.43
=======  ==========  ==========

(params include the LayerNorm and BatchNorm scales and shifts and the positional embedding.)

Export: `export_model(model)` (converters.export.onnx_export) -> input "lms" [batch, 1, M, T], output "logits"; ops Sub, Div, Conv,
BatchNormalization, Relu, Transpose, Reshape, Gemm, Add, LayerNormalization (opset 17), MatMul, Mul, Softmax,
ReduceMean (plus Identity where the exporter shares equal initializers), all in
`edge_ser.engines.numpy_engine.SUPPORTED_OPS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from converters.models.lms_patch import LMSPatchModel, PatchConfig

__all__ = [
    "TinyTransformer",
    "TinyTransformerConfig",
    "tiny_transformer",
]


def _half(n: int) -> int:
    """Output size of a conv 3x3 stride 2 pad 1: ceil(n / 2)."""
    return (n - 1) // 2 + 1


@dataclass(frozen=True)
class TinyTransformerConfig(PatchConfig):
    n_mels: int = 128
    """M: patch height (mel bands)."""
    segment_frames: int = 64
    """T: patch width (frames); the model sees ceil(T / 4) tokens."""
    num_classes: int = 7
    width: float = 1.0
    """Multiplier on the stem channels and on `dim`."""
    stem: tuple[int, ...] = (16, 16)
    """Channels of the stride-2 conv blocks at width 1 (each halves M and T, rounded up)."""
    dim: int = 48
    """Token width d at width 1 (rounded to a multiple of `heads`)."""
    heads: int = 3
    layers: int = 2
    ff_mult: int = 2
    """Feed-forward hidden width = ff_mult * d."""
    dropout: float = 0.1
    """Before the classifier only."""
    min_channels: int = 4
    ln_eps: float = 1e-5

    def __post_init__(self) -> None:
        self.check_common()
        for name in ("n_mels", "segment_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if not self.stem:
            raise ValueError("stem: at least one conv block (the tokens come from its channels)")
        if self.heads < 1 or self.layers < 1 or self.ff_mult < 1 or self.dim < 1:
            raise ValueError(
                f"heads={self.heads}, layers={self.layers}, ff_mult={self.ff_mult}, dim={self.dim}: all >= 1"
            )
        if not (0 <= self.dropout < 1):
            raise ValueError(f"dropout={self.dropout}: must be in [0, 1)")

    @property
    def d(self) -> int:
        """Token width: dim * width rounded to a multiple of heads, at least 4 per head."""
        return self.heads * max(4, round(self.dim * self.width / self.heads))

    @property
    def head_dim(self) -> int:
        return self.d // self.heads

    @property
    def grid(self) -> tuple[int, int]:
        """(M', T') after the stem."""
        m, t = self.n_mels, self.segment_frames
        for _ in self.stem:
            m, t = _half(m), _half(t)
        return m, t

    @property
    def tokens(self) -> int:
        return self.grid[1]

    @property
    def token_features(self) -> int:
        """Values per token before the projection: last stem channels * M'."""
        return self.ch(self.stem[-1]) * self.grid[0]


class SelfAttention(nn.Module):
    """Multi-head self-attention on x [B, N, d] with explicit q / k / v / out Linears (2-D Gemm on export)."""

    def __init__(self, d: int, heads: int, tokens: int) -> None:
        super().__init__()
        self.d, self.heads, self.tokens, self.dk = d, heads, tokens, d // heads
        self.scale = 1.0 / math.sqrt(self.dk)
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.out = nn.Linear(d, d)

    def _heads(self, x2: torch.Tensor) -> torch.Tensor:
        """[B*N, d] -> [B, heads, N, dk]."""
        return x2.reshape(-1, self.tokens, self.heads, self.dk).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.d)
        q = self._heads(self.q(x2)) * self.scale
        k = self._heads(self.k(x2))
        v = self._heads(self.v(x2))
        att = torch.softmax(torch.matmul(q, k.transpose(2, 3)), dim=-1)  # [B, h, N, N]
        y = torch.matmul(att, v).transpose(1, 2).reshape(-1, self.d)  # [B*N, d]
        return self.out(y).reshape(-1, self.tokens, self.d)


class FeedForward(nn.Module):
    def __init__(self, d: int, hidden: int, tokens: int) -> None:
        super().__init__()
        self.d, self.tokens = d, tokens
        self.fc1 = nn.Linear(d, hidden)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x.reshape(-1, self.d)))).reshape(-1, self.tokens, self.d)


class EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer: x + MHSA(LN(x)), then + FF(LN(x))."""

    def __init__(self, d: int, heads: int, hidden: int, tokens: int, eps: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d, eps=eps)
        self.attn = SelfAttention(d, heads, tokens)
        self.norm2 = nn.LayerNorm(d, eps=eps)
        self.ff = FeedForward(d, hidden, tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ff(self.norm2(x))


class TinyTransformer(LMSPatchModel):
    """Standardise, conv stem, fold M' into tokens, project + positions, encoder layers, LN, mean, Linear."""

    def __init__(self, cfg: TinyTransformerConfig | None = None) -> None:
        cfg = cfg or TinyTransformerConfig()
        super().__init__(cfg.n_mels, cfg.segment_frames)
        self.cfg = cfg
        layers: list[nn.Module] = []
        c = 1
        for width in cfg.stem:
            co = cfg.ch(width)
            layers += [
                nn.Conv2d(c, co, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(co),
                nn.ReLU(inplace=True),
            ]
            c = co
        self.stem = nn.Sequential(*layers)
        d, n = cfg.d, cfg.tokens
        self.proj = nn.Linear(cfg.token_features, d)
        self.pos = nn.Parameter(torch.zeros(1, n, d))
        self.blocks = nn.ModuleList(
            EncoderLayer(d, cfg.heads, cfg.ff_mult * d, n, cfg.ln_eps) for _ in range(cfg.layers)
        )
        self.norm = nn.LayerNorm(d, eps=cfg.ln_eps)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(d, cfg.num_classes)
        nn.init.trunc_normal_(self.pos, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        x = self.standardize(x)
        x = self.stem(x).permute(0, 3, 1, 2)  # [B, T', C, M']
        x = self.proj(x.reshape(-1, cfg.token_features)).reshape(-1, cfg.tokens, cfg.d) + self.pos
        for block in self.blocks:
            x = block(x)
        x = self.norm(x).mean(dim=1)  # [B, d]
        return self.classifier(self.dropout(x))


def tiny_transformer(**kwargs) -> TinyTransformer:
    """The tiny transformer; kwargs are TinyTransformerConfig fields (n_mels, segment_frames, width, dim...)."""
    return TinyTransformer(TinyTransformerConfig(**kwargs))
