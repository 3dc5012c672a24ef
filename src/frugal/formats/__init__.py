"""Simulated low-precision number formats: quantize-dequantize exact to the bit, with a
straight-through gradient. `get_format("mxfp4").quantize(x)`."""

from frugal.formats.base import NumberFormat, set_compile, straight_through
from frugal.formats.flexpoint import Autoflex, FixedPointFormat, FlexpointFormat
from frugal.formats.integer import IntFormat
from frugal.formats.minifloat import FLOAT_SPECS, FloatSpec, MinifloatFormat, round_to_float
from frugal.formats.mx import MXFormat
from frugal.formats.nf4 import NF4_LEVELS, NF4Format
from frugal.formats.registry import CATALOGUE, UnknownFormatError, get_format, list_formats

__all__ = [
    "CATALOGUE",
    "FLOAT_SPECS",
    "NF4_LEVELS",
    "Autoflex",
    "FixedPointFormat",
    "FlexpointFormat",
    "FloatSpec",
    "IntFormat",
    "MXFormat",
    "MinifloatFormat",
    "NF4Format",
    "NumberFormat",
    "UnknownFormatError",
    "get_format",
    "list_formats",
    "round_to_float",
    "set_compile",
    "straight_through",
]
