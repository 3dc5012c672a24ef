"""Names for every format: "int4_g128", "int8_pc", "fp8_e4m3", "mxfp4", "mxint4_b128",
"bfp8_b64", "nf4", "flex16+5", "bf16", ... parsed into format objects."""

from __future__ import annotations

import difflib
import re
from functools import lru_cache

from frugal.formats.base import NumberFormat
from frugal.formats.flexpoint import FixedPointFormat, FlexpointFormat
from frugal.formats.gguf_blocks import Q4_0Format, Q8_0Format
from frugal.formats.integer import IntFormat
from frugal.formats.minifloat import FLOAT_SPECS, MinifloatFormat
from frugal.formats.mx import MX_FLOAT_ELEMENTS, MXFormat
from frugal.formats.nf4 import NF4Format

GGUF_BLOCK_FORMATS = {"q4_0": Q4_0Format, "q8_0": Q8_0Format}


class UnknownFormatError(ValueError):
    """A format name that does not parse."""


_INT = re.compile(r"^int(\d)(?:_(pc|g(\d+)))?(_asym)?$")
_MX = re.compile(
    r"^mx(int\d|fp8_e4m3|fp8_e5m2|fp6_e2m3|fp6_e3m2|fp4_e2m1|fp8|fp6|fp4)(?:_b(\d+))?$"
)
_BFP = re.compile(r"^bfp(\d)(?:_b(\d+))?$")
_NF4 = re.compile(r"^nf4(?:_b(\d+))?$")
_FLEX = re.compile(r"^flex(\d+)\+(\d+)$")
_FIXED = re.compile(r"^fixed(\d+)_f(\d+)$")
_FLOAT = re.compile(r"^(fp8_e4m3|fp8_e5m2|fp6_e3m2|fp6_e2m3|fp4_e2m1|fp4|fp16|bf16)(_sr)?$")

# The name grammar, one family per pattern above (what `frugal formats` and errors show),
# each with an example name that parses.
GRAMMAR = (
    ("intN[_pc|_gG][_asym]", "int4_g128_asym"),
    ("fp8_e4m3|fp8_e5m2|fp6_e3m2|fp6_e2m3|fp4_e2m1|fp4|fp16|bf16[_sr]", "bf16_sr"),
    ("mx<int2..8|fp8[_e4m3|_e5m2]|fp6[_e2m3|_e3m2]|fp4[_e2m1]>[_bK]", "mxfp6_e3m2_b16"),
    ("bfpN[_bK]", "bfp4_b32"),
    ("nf4[_bK]", "nf4_b32"),
    ("q4_0|q8_0 (GGUF blocks of 32)", "q4_0"),
    ("flexN+M", "flex16+5"),
    ("fixedN_fF", "fixed16_f8"),
)


def grammar() -> str:
    """The format-name grammar in one line."""
    return ", ".join(pattern for pattern, _ in GRAMMAR)


# The formats `frugal formats` lists (a representative, not exhaustive, set).
CATALOGUE = (
    "int8", "int8_pc", "int8_g128", "int6_g128", "int4_pc", "int4_g128", "int4_g64",
    "int4_g128_asym", "int3_g128", "int2_g64",
    "fp16", "bf16", "fp8_e4m3", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1",
    "mxint8", "mxint6", "mxint4", "mxint3", "mxint4_b128", "mxfp8", "mxfp8_e5m2", "mxfp6",
    "mxfp6_e3m2", "mxfp4", "bfp8_b64", "bfp4_b32", "nf4", "q8_0", "q4_0", "flex16+5", "flex8+5",
    "fixed16_f8",
)  # fmt: skip


@lru_cache(maxsize=256)
def get_format(name: str) -> NumberFormat:
    """Parse a format name; an unknown one raises UnknownFormatError suggesting close names."""
    try:
        return _parse(name.strip().lower(), name)
    except UnknownFormatError:
        raise
    except ValueError as exc:
        raise UnknownFormatError(f"{name!r}: {exc}") from None


def _parse(key: str, name: str) -> NumberFormat:
    if key in GGUF_BLOCK_FORMATS:
        return GGUF_BLOCK_FORMATS[key]()
    if m := _INT.match(key):
        bits = int(m.group(1))
        gran = "tensor" if not m.group(2) else ("channel" if m.group(2) == "pc" else "group")
        group = int(m.group(3)) if m.group(3) else 128
        return IntFormat(bits, gran, group, symmetric=not m.group(4))
    if m := _FLOAT.match(key):
        kind = "fp4_e2m1" if m.group(1) == "fp4" else m.group(1)
        return MinifloatFormat(kind, stochastic=bool(m.group(2)))
    if m := _MX.match(key):
        elem = m.group(1)
        if elem not in MX_FLOAT_ELEMENTS and not 2 <= int(elem[3:]) <= 8:
            raise UnknownFormatError(f"MX integer elements need 2..8 bits: {name!r}")
        return MXFormat(elem, int(m.group(2) or 32))
    if m := _BFP.match(key):
        bits = int(m.group(1))
        if not 2 <= bits <= 8:
            raise UnknownFormatError(f"BFP mantissas need 2..8 bits: {name!r}")
        return MXFormat(f"int{bits}", int(m.group(2) or 32), prefix="bfp")
    if m := _NF4.match(key):
        return NF4Format(int(m.group(1) or 64))
    if m := _FLEX.match(key):
        return FlexpointFormat(int(m.group(1)), int(m.group(2)))
    if m := _FIXED.match(key):
        return FixedPointFormat(int(m.group(1)), int(m.group(2)))
    close = difflib.get_close_matches(key, CATALOGUE, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownFormatError(
        f"unknown number format {name!r}{hint} (names: {grammar()}; `frugal formats` lists them)"
    )


def list_formats() -> list[NumberFormat]:
    """The catalogue's formats, parsed."""
    return [get_format(n) for n in CATALOGUE]


__all__ = [
    "CATALOGUE",
    "FLOAT_SPECS",
    "GRAMMAR",
    "UnknownFormatError",
    "get_format",
    "grammar",
    "list_formats",
]
