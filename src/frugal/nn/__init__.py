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
from frugal.nn.surgery import (
    apply_config,
    conv1d_state,
    conv1d_to_linear,
    matching_linears,
    rtn_weights,
)

__all__ = [
    "QuantConfig",
    "QuantConv1d",
    "QuantConv2d",
    "QuantEmbedding",
    "QuantLinear",
    "QuantMatmul",
    "QuantRule",
    "apply_config",
    "conv1d_state",
    "conv1d_to_linear",
    "make_quantizer",
    "matching_linears",
    "quantize_grad",
    "rtn_weights",
]
