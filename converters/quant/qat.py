"""Quantization-aware training at a BitPlan, post-training quantization, and freezing to exact codes.

QAT attaches `fake_quant` to each planned layer's weight as a torch parametrization: the optimiser updates
the latent float weight, the forward pass sees its b-bit grid (straight-through estimator). `freeze` reads
the codes from the latent weights with the same quantizer, so the exported model is bit-identical to the
one QAT evaluated (at 1 bit, up to 1 float32 ulp on some weights: `fake_quant`). With `scales="learned"` each
channel's scale is a trained parameter too (LSQ, `LearnedScaleQuant`), started at the rule's value; `freeze`
then quantizes on the learned grid, exactly the one QAT evaluated.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from converters.quant.bitplan import BitPlan, quantizable_layers
from converters.quant.quantizers import dequantize, fake_quant, learned_fake_quant, quantize
from converters.train import TrainConfig, TrainResult, train_classifier
from edge_ser.errors import ConfigError


class FakeQuant(nn.Module):
    """Parametrization: weight -> its `bits`-bit per-channel grid, with straight-through gradients."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = bits

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return fake_quant(w, self.bits)


class LearnedScaleQuant(nn.Module):
    """Parametrization: weight -> its `bits`-bit grid at a trained per-channel scale (LSQ), which starts at the
    rule's scale for `init` (so the first forward pass is the rule's grid, up to float rounding of the log).

    The parameter is the log of the scale: Adam's steps are about `lr` in size whatever the gradient, which is a
    relative step on a log scale (5e-4 -> 0.05 %) but would be 17 % of a 3e-3 scale (an 8-bit layer's) per step."""

    def __init__(self, bits: int, init: torch.Tensor) -> None:
        super().__init__()
        self.bits = bits
        self.log_scale = nn.Parameter(torch.log(quantize(init, bits)[1]))

    @property
    def scale(self) -> torch.Tensor:
        return torch.exp(self.log_scale)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return learned_fake_quant(w, self.scale, self.bits)


SCALES = ("rule", "learned")
"""How QAT sets each channel's scale: the quantizer's rule from the latent weight at each step (the recipe), or
a trained parameter (LSQ)."""


def check_scales(scales: str, what: str = "QAT scales") -> str:
    """`scales` if it is one of SCALES, else a ConfigError naming `what` (the option or argument it came from)."""
    if scales not in SCALES:
        raise ConfigError(f"{what} must be one of {', '.join(SCALES)}, got {scales!r}")
    return scales


def attach(model: nn.Module, plan: BitPlan, scales: str = "rule") -> nn.Module:
    """Put fake quantization on every planned layer with bits < 32 (in place); returns the model.

    `scales`: "rule" (max|w| / qmax, mean|w| at 1 bit, from the latent weight) or "learned" (LSQ; the scales' logs
    are parameters of the model, so an optimiser's weight decay pulls each log toward 0, i.e. each scale toward 1,
    growing the small scales of a trained layer: the QAT recipes use none)."""
    check_scales(scales)
    layers = quantizable_layers(model)
    for name, bits in plan.bits.items():
        if bits == 32:
            continue
        m = layers[name]
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
        w = m.weight.detach()
        parametrize.register_parametrization(
            m, "weight", LearnedScaleQuant(bits, w) if scales == "learned" else FakeQuant(bits)
        )
    return model


def latent_weight(m: nn.Module) -> torch.Tensor:
    """The float weight QAT trains (the parametrization's original), or the plain weight."""
    if parametrize.is_parametrized(m, "weight"):
        return m.parametrizations.weight.original
    return m.weight


def _learned(m: nn.Module) -> LearnedScaleQuant | None:
    """The LSQ parametrization of a layer attached with scales="learned", else None."""
    if parametrize.is_parametrized(m, "weight"):
        p = m.parametrizations.weight[0]
        if isinstance(p, LearnedScaleQuant):
            return p
    return None


def learned_scales(m: nn.Module) -> torch.Tensor | None:
    """The trained per-channel scales of a layer attached with scales="learned", else None (the rule's)."""
    p = _learned(m)
    return None if p is None else p.scale.detach()


def _own_class(m: nn.Module) -> None:
    """Give a deep-copied parametrized module its own injected class. A deepcopy keeps the original's class,
    and `remove_parametrizations` deletes the weight property from that class, which would break the
    original (still fake-quantized) model."""
    cls = type(m)
    skip = ("__dict__", "__weakref__")
    m.__class__ = type(cls.__name__, cls.__bases__, {k: v for k, v in cls.__dict__.items() if k not in skip})


def freeze(model: nn.Module, plan: BitPlan) -> tuple[nn.Module, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """A plain copy of `model` whose planned weights are exactly dequantize(codes, scales), and those codes.

    Returns (model, {layer name: (int8 codes, float32 scales)}) for layers with bits < 32. A planned weight with a
    NaN or inf value, a learned scale that is NaN or inf, or scales learned for another width than the plan's, is a
    ConfigError naming the layer.
    """
    src = quantizable_layers(model)
    codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    grid: dict[str, torch.Tensor] = {}
    for name, bits in plan.bits.items():
        w = latent_weight(src[name]).detach()
        if bits == 32:
            grid[name] = w.clone()
            continue
        bad = int((~torch.isfinite(w)).sum())
        if bad:  # quantize gave code 0 and a NaN / inf scale, refused later as "not frozen?" (a review)
            raise ConfigError(
                f"{name}: the weight has {bad} non-finite value(s) (NaN / inf), which cannot be quantized "
                "(did training diverge?)"
            )
        learned = _learned(src[name])
        if learned is not None and learned.bits != bits:
            raise ConfigError(
                f"{name}: its scales were learned for {learned.bits} bits, the plan gives it {bits}: freeze it with "
                "the plan it was trained at"
            )
        try:
            q, s = quantize(w, bits, None if learned is None else learned.scale.detach())
        except ConfigError as e:
            raise ConfigError(f"{name}: {e}") from None
        codes[name] = (q.numpy(), s.numpy())
        grid[name] = dequantize(q, s)
    out = copy.deepcopy(model)
    for m in quantizable_layers(out).values():
        if parametrize.is_parametrized(m, "weight"):
            _own_class(m)
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
    for name, m in quantizable_layers(out).items():
        if name in grid:
            with torch.no_grad():
                m.weight.copy_(grid[name])
    out.eval()
    return out, codes


def ptq(model: nn.Module, plan: BitPlan) -> nn.Module:
    """Post-training quantization: a copy of a float model with its weights rounded to the plan's grids."""
    return freeze(model, plan)[0]


QAT_DEFAULTS = TrainConfig(epochs=120, lr=5e-4, weight_decay=0.0, patience=25)


def qat(
    model: nn.Module,
    plan: BitPlan,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    config: TrainConfig = QAT_DEFAULTS,
    *,
    progress: bool = False,
    scales: str = "rule",
    **train_kwargs,
) -> tuple[nn.Module, dict[str, tuple[np.ndarray, np.ndarray]], TrainResult]:
    """Fine-tune a copy of a trained float model at `plan` (STE), keep the best validation epoch, freeze it.

    `scales`: "rule" or "learned" (`attach`). `train_kwargs` go to `train_classifier` (val_accuracy, augment)."""
    work = attach(copy.deepcopy(model), plan, scales)
    result = train_classifier(work, X_train, y_train, X_val, y_val, config, progress=progress, **train_kwargs)
    frozen, codes = freeze(result.model, plan)
    return frozen, codes, replace(result, model=frozen)
