"""Weight quantizers, the one implementation shared by post-training quantization, QAT and the packed format.

Symmetric per-output-channel (axis 0), matching the `.esq` format exactly (docs/packed-format.md):
- b = 2..8 bits: scale s_c = max|w_c| / qmax with qmax = 2**(b-1) - 1; code q = clamp(round(w / s_c), +-qmax).
  Symmetric and zero-exact; the two's-complement value -2**(b-1) is never used (so 2 bits = {-1, 0, +1}).
- b = 1 bit: the paper's binarisation, q = sign(w) (0 -> +1) and s_c = mean|w_c|.
The dequantized weight is float32(q) * s_c, computed in float32, so torch, numpy and onnxruntime agree bit for bit.
QAT may train the scales instead of taking the rule's (`learned_fake_quant`, LSQ); `quantize(w, bits, scales)` then
gives the codes on that grid, and the file stores those scales.
"""

from __future__ import annotations

import math

import torch

from edge_ser.errors import ConfigError

# A channel of exact zeros gets this scale instead of 0 (a zero scale is not a valid .esq value).
MIN_SCALE = 1e-12


def check_bits(bits: int) -> int:
    """Weight bit widths this project quantizes to: 1..8 (32 means "leave in float")."""
    # a bool is no width (True == 1: a flag passed where a width goes was taken as 1 bit)
    if isinstance(bits, int) and not isinstance(bits, bool) and (bits == 32 or 1 <= bits <= 8):
        return bits
    raise ConfigError(f"bits must be an integer in 1..8 (or 32 for float), got {bits!r}")


def quantize(
    w: torch.Tensor, bits: int, scales: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer codes (int8, shape of w) and per-output-channel scales (float32 [w.shape[0]]) of a weight.

    `scales`: the channels' scales to use (learned in QAT) instead of the rule's max|w_c| / qmax or mean|w_c|;
    ConfigError for a NaN, infinite or negative one (0 becomes MIN_SCALE, as in `learned_fake_quant`)."""
    check_bits(bits)
    if bits == 32:
        raise ConfigError("bits=32 means float: there is nothing to quantize")
    flat = w.detach().float().reshape(w.shape[0], -1)
    if scales is not None:
        scales = scales.detach().float().reshape(-1)
        if scales.numel() != w.shape[0]:
            raise ConfigError(f"{scales.numel()} scales for a weight of {w.shape[0]} output channels")
        bad = ~torch.isfinite(scales) | (scales < 0)
        if bad.any():
            i = int(torch.nonzero(bad)[0])
            raise ConfigError(
                f"the scale of output channel {i} is {float(scales[i])!r}: a scale must be finite and > 0 "
                "(did training diverge?)"
            )
        scales = scales.clamp_min(MIN_SCALE)
    if bits == 1:
        if scales is None:
            scales = flat.abs().mean(dim=1).clamp_min(MIN_SCALE)
        codes = torch.where(flat >= 0, 1, -1)
    else:
        qmax = 2 ** (bits - 1) - 1
        if scales is None:
            scales = (flat.abs().amax(dim=1) / qmax).clamp_min(MIN_SCALE)
        codes = torch.clamp(torch.round(flat / scales[:, None]), -qmax, qmax)
    return codes.to(torch.int8).reshape(w.shape), scales.to(torch.float32)


def dequantize(codes: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """float32(codes) * scales, broadcast over axis 0: the exact weights the device reconstructs."""
    shape = (-1,) + (1,) * (codes.dim() - 1)
    return codes.to(torch.float32) * scales.reshape(shape)


def fake_quant(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantize-dequantize with a straight-through estimator: forward sees the grid, backward passes through.

    Exactly the grid at 2-8 bits. At 1 bit, `w + (g - w)` rounds in float32 where |w| and the scale (the
    channel's mean |w|) are far apart: 1,108 of 19,200 weights of randn(64, 300) land 1 ulp off the grid (a review,
    2026-12-07). `dequantize(...) + (w - w.detach())` would be exact; it is not used, so QAT runs and the shipped
    rows made with this form reproduce to the digit (the exported model is the grid itself, `qat.freeze`)."""
    if bits == 32:
        return w
    codes, scales = quantize(w, bits)
    return w + (dequantize(codes, scales).to(w.dtype) - w).detach()


class _ScaleGrad(torch.autograd.Function):
    """Identity forward (the value bit for bit), gradient times `g` backward: LSQ's gradient scale."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, g: float) -> torch.Tensor:
        ctx.g = g
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.g, None


def learned_fake_quant(w: torch.Tensor, scales: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantize-dequantize at trained per-channel `scales` (LSQ: Esser et al., "Learned Step Size Quantization",
    ICLR 2020): forward exactly dequantize(*quantize(w, bits, scales)).

    Backward: the weight's gradient passes straight through where the grid does not clip it (zero where it does;
    at 1 bit, where nothing clips, it is multiplied by the channel's scale: the sign's straight-through estimator);
    each scale gets sum(grad x (q - w / s)) over its channel (x q where clipped; x q at 1 bit), times
    1 / sqrt(weights per channel x qmax) so that scales and weights learn at comparable rates."""
    qmax = 1 if bits == 1 else 2 ** (bits - 1) - 1
    shape = (-1,) + (1,) * (w.dim() - 1)
    g = 1.0 / math.sqrt(max(w[0].numel(), 1) * qmax)
    s = _ScaleGrad.apply(scales.clamp_min(MIN_SCALE), g).reshape(shape).to(w.dtype)
    if bits == 1:
        q = torch.where(w >= 0, 1.0, -1.0).to(w.dtype)
        return (q + (w - w.detach())) * s
    v = torch.clamp(w / s, -qmax, qmax)
    return (torch.round(v).detach() + (v - v.detach())) * s


def quant_error(w: torch.Tensor, bits: int) -> float:
    """Relative L2 error ||w - Q(w)|| / ||w|| of quantizing `w` to `bits`."""
    q = dequantize(*quantize(w, bits))
    return float((w.detach().float() - q).norm() / w.detach().float().norm().clamp_min(1e-30))
