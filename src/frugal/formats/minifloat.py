"""Minifloats (fp8 e4m3/e5m2, fp6 e3m2/e2m3, fp4 e2m1, fp16, bf16): saturating, round to
nearest even (or stochastic), subnormals kept."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from frugal.formats import fastpath, kernels
from frugal.formats.base import NumberFormat


@dataclass(frozen=True)
class FloatSpec:
    """Layout of a float with `ebits` exponent and `mbits` stored mantissa bits.

    `ieee`: the top exponent code is reserved for inf/NaN (e5m2, fp16, bf16); otherwise it
    holds normal numbers (OCP fp6/fp4). `fn`: fp8 e4m3 "fn" style, only mantissa all-ones of
    the top exponent is NaN (max 448)."""

    ebits: int
    mbits: int
    ieee: bool = False
    fn: bool = False

    @property
    def bias(self) -> int:
        return 2 ** (self.ebits - 1) - 1

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number."""
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest normal number."""
        top = 2**self.ebits - 1 - self.bias
        return top - 1 if self.ieee else top

    @property
    def max(self) -> float:
        """Largest finite value."""
        frac = (2**self.mbits - 2) if self.fn else (2**self.mbits - 1)
        return 2.0**self.emax * (1 + frac / 2**self.mbits)

    @property
    def bits(self) -> int:
        return 1 + self.ebits + self.mbits


def floor_log2(a: torch.Tensor) -> torch.Tensor:
    """floor(log2(a)) of non-negative float32 as int32, read from the exponent bits: exact
    for normal numbers, -127 for zero and subnormals (callers clamp at or above -127, where
    that is exact too). Integer ops only, so torch.compile fuses it."""
    return ((a.view(torch.int32) >> 23) & 0xFF) - 127


def round_to_float(
    x: torch.Tensor,
    spec: FloatSpec,
    stochastic: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Round float32 `x` onto the grid of `spec`, saturating at ±max (inf too); NaN stays NaN.

    Exact: the grid step 2^(exponent - mbits) is a power of two, so x / step is exact and
    torch.round (half to even) does the rounding."""
    a = x.abs()
    exp = torch.clamp(floor_log2(a), min=spec.emin, max=spec.emax)
    step = torch.exp2((exp - spec.mbits).to(torch.float32))
    y = x / step
    if stochastic:
        y = torch.floor(y + torch.rand(y.shape, generator=generator, device=y.device))
    else:
        y = torch.round(y)
    return torch.clamp(y * step, -spec.max, spec.max)


FP8_E4M3 = FloatSpec(4, 3, fn=True)
FP8_E5M2 = FloatSpec(5, 2, ieee=True)
FP6_E3M2 = FloatSpec(3, 2)
FP6_E2M3 = FloatSpec(2, 3)
FP4_E2M1 = FloatSpec(2, 1)
FP16 = FloatSpec(5, 10, ieee=True)
BF16 = FloatSpec(8, 7, ieee=True)

FLOAT_SPECS: dict[str, FloatSpec] = {
    "fp8_e4m3": FP8_E4M3,
    "fp8_e5m2": FP8_E5M2,
    "fp6_e3m2": FP6_E3M2,
    "fp6_e2m3": FP6_E2M3,
    "fp4_e2m1": FP4_E2M1,
    "fp16": FP16,
    "bf16": BF16,
}

# torch dtypes whose casts round to nearest even exactly like round_to_float (after clamping)
_NATIVE = {
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "fp8_e4m3": torch.float8_e4m3fn,
    "fp8_e5m2": torch.float8_e5m2,
}


class MinifloatFormat(NumberFormat):
    """Element-wise minifloat, e.g. "fp8_e4m3", "fp4_e2m1", "bf16" (suffix "_sr": stochastic
    rounding)."""

    def __init__(self, kind: str, stochastic: bool = False, seed: int | None = None):
        if kind not in FLOAT_SPECS:
            raise ValueError(f"unknown minifloat {kind!r}; known: {', '.join(FLOAT_SPECS)}")
        self.kind, self.spec, self.stochastic = kind, FLOAT_SPECS[kind], stochastic
        self.name = kind + ("_sr" if stochastic else "")
        self.generator = None
        if seed is not None:
            self.generator = torch.Generator().manual_seed(seed)

    @property
    def bits_per_element(self) -> float:
        return float(self.spec.bits)

    def qdq(self, x: torch.Tensor):
        limit = torch.tensor(self.spec.max, device=x.device)
        if self.stochastic:
            return round_to_float(x, self.spec, True, self.generator), limit
        if self.kind in _NATIVE:
            clamped = torch.clamp(
                torch.nan_to_num(x, posinf=self.spec.max, neginf=-self.spec.max),
                -self.spec.max,
                self.spec.max,
            )
            clamped = torch.where(torch.isnan(x), x, clamped)
            return clamped.to(_NATIVE[self.kind]).float(), limit
        return round_to_float(x, self.spec), limit

    def fused_qdq(self, x: torch.Tensor):
        if self.stochastic:  # the random draws stay torch's, for identical streams
            return None
        s = self.spec
        out = fastpath.run_elements(
            kernels.minifloat, x, s.emin, s.emax, s.mbits, np.float32(s.max)
        )
        return out, float(np.float32(s.max))
