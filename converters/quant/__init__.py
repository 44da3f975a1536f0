"""Quantization: per-channel b-bit quantizers, BitPlans, LAQ bit allocation and quantization-aware training."""

from converters.quant.allocate import LaqConfig, allocate
from converters.quant.bitplan import BitPlan, quantizable_layers
from converters.quant.laq import METHODS, LaqWeights, entropy_bits, layer_metrics
from converters.quant.qat import attach, freeze, ptq, qat
from converters.quant.quantizers import dequantize, fake_quant, quantize

__all__ = [
    "METHODS",
    "BitPlan",
    "LaqConfig",
    "LaqWeights",
    "allocate",
    "attach",
    "dequantize",
    "entropy_bits",
    "fake_quant",
    "freeze",
    "layer_metrics",
    "ptq",
    "qat",
    "quantizable_layers",
    "quantize",
]
