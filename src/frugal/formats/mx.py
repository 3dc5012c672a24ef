"""OCP Microscaling (MX) block formats and block floating point (BFP).

A block of k elements along one axis shares a power-of-two scale stored as E8M0:
shared = floor(log2(max|x| in block)) - emax(element), clamped to [-127, 127]; each element
x / 2^shared is then rounded, saturating, in the element format: a minifloat (MXFP8/6/4) or a
sign-magnitude integer with an implicit 2^-(bits-2) scale (MXINT8: step 1/64, max 127/64).
BFP (shared exponent, integer mantissas) is the same computation with integer elements."""

from __future__ import annotations

import numpy as np
import torch

from frugal.formats import fastpath, kernels
from frugal.formats.base import NumberFormat, move_axis_to_blocks, undo_blocks
from frugal.formats.minifloat import FLOAT_SPECS, FloatSpec, floor_log2, round_to_float

SCALE_BITS = 8  # E8M0
SCALE_EMAX = 127

MX_FLOAT_ELEMENTS = {
    "fp8": "fp8_e4m3",
    "fp8_e4m3": "fp8_e4m3",
    "fp8_e5m2": "fp8_e5m2",
    "fp6": "fp6_e2m3",
    "fp6_e2m3": "fp6_e2m3",
    "fp6_e3m2": "fp6_e3m2",
    "fp4": "fp4_e2m1",
    "fp4_e2m1": "fp4_e2m1",
}


class MXFormat(NumberFormat):
    """Block format with E8M0 shared scales. `element` is "int2".."int8" or a minifloat name
    (fp8/fp8_e4m3/fp8_e5m2/fp6/fp6_e2m3/fp6_e3m2/fp4); `block` elements along `axis`."""

    def __init__(self, element: str, block: int = 32, axis: int = -1, prefix: str = "mx"):
        if block < 1:
            raise ValueError("block size must be >= 1")
        self.block, self.axis = block, axis
        self.float_spec: FloatSpec | None = None
        if element.startswith("int"):
            bits = int(element[3:])
            if not 2 <= bits <= 8:
                raise ValueError(f"MX integer elements need 2..8 bits, not {bits}")
            self.int_bits = bits
            self.elem_emax = 0
            self.elem_max = (2 ** (bits - 1) - 1) / 2 ** (bits - 2)
            self.elem_bits = bits
        elif element in MX_FLOAT_ELEMENTS:
            self.float_spec = FLOAT_SPECS[MX_FLOAT_ELEMENTS[element]]
            self.elem_emax = self.float_spec.emax
            self.elem_max = self.float_spec.max
            self.elem_bits = self.float_spec.bits
        else:
            raise ValueError(f"unknown MX element {element!r}")
        self.element = element
        if prefix == "bfp":  # BFP names the mantissa width and always the block
            self.name = f"bfp{self.elem_bits}_b{block}"
        else:
            self.name = f"mx{element}" + ("" if block == 32 else f"_b{block}")

    @property
    def bits_per_element(self) -> float:
        return self.elem_bits + SCALE_BITS / self.block

    def shared_exponent(self, blocks: torch.Tensor) -> torch.Tensor:
        """E8M0 exponent of each block (int32), shape (..., n_blocks, 1)."""
        amax = blocks.abs().amax(-1, keepdim=True)
        amax = torch.nan_to_num(amax, nan=0.0, posinf=torch.finfo(torch.float32).max)
        return torch.clamp(floor_log2(amax) - self.elem_emax, -SCALE_EMAX, SCALE_EMAX)

    def _round(self, blocks: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        y = blocks / scale
        if self.float_spec is not None:
            y = round_to_float(y, self.float_spec)
        else:
            step = 2.0 ** (self.int_bits - 2)
            y = torch.clamp(torch.round(y * step) / step, -self.elem_max, self.elem_max)
        return y * scale

    def column_group(self, n_cols: int) -> int:
        if self.axis not in (-1, 1):
            raise ValueError(
                f"{self.name} has blocks along axis {self.axis}; column-wise algorithms "
                "need blocks along the input (last) axis"
            )
        return min(self.block, n_cols)

    def fit(self, w: torch.Tensor) -> torch.Tensor:
        return torch.exp2(self.shared_exponent(w).to(torch.float32))

    def apply(self, w: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return self._round(w, params)

    def qdq(self, x: torch.Tensor):
        blocks, moved, n = move_axis_to_blocks(x, self.axis, self.block)
        scale = self.fit(blocks)
        q = undo_blocks(self._round(blocks, scale), moved, n, self.axis)
        limit = undo_blocks((self.elem_max * scale).expand_as(blocks), moved, n, self.axis)
        return q, limit

    def fused_qdq(self, x: torch.Tensor):
        if x.dim() == 0 or self.axis not in (-1, x.dim() - 1):
            return None
        if self.float_spec is None:
            step = 2.0 ** (self.int_bits - 2)
            params = (kernels.mx_int, np.float32(step), np.float32(self.elem_max))
        else:
            s = self.float_spec
            params = (kernels.mx_float, s.emin, s.emax, s.mbits, np.float32(s.max))
        out, scales = fastpath.run_blocks(
            params[0], x, x.shape[-1], self.block, self.elem_emax, *params[1:]
        )
        return out, fastpath.BlockLimits(self.elem_max * scales, x.shape[-1], self.block)
