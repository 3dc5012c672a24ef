"""Quantized modules and model surgery driven by a QuantConfig (rules → formats)."""

from frugal.nn.config import QuantConfig, QuantRule
from frugal.nn.modules import (
    QuantConv1d,
    QuantConv2d,
    QuantEmbedding,
    QuantLinear,
    QuantMatmul,
    make_quantizer,
    quantize_grad,
)
from frugal.nn.surgery import apply_config, matching_linears, rtn_weights

__all__ = [
    "QuantConfig",
    "QuantConv1d",
    "QuantConv2d",
    "QuantEmbedding",
    "QuantLinear",
    "QuantMatmul",
    "QuantRule",
    "apply_config",
    "make_quantizer",
    "matching_linears",
    "quantize_grad",
    "rtn_weights",
]
