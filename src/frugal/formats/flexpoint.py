"""Flexpoint flexN+M (Köster et al. 2017): N-bit two's-complement integer mantissas sharing
one M-bit exponent per tensor, managed by Autoflex.

Exponent convention: the shared exponent E is that of the tensor's top mantissa bit, so the
grid step is 2^(E - (N-2)) and values up to (2^(N-1) - 1)·step are representable. E is an
M-bit two's-complement integer, E ∈ [-2^(M-1), 2^(M-1) - 1] (flex16+5: [-16, 15], steps down
to 2^-30). Autoflex predicts the next maximum of each tensor from a history of its recent
maxima — max(history) + c·std(history), times (1 + margin) — and picks E so the prediction
fills the top bit; a value above the representable range counts as an overflow and the tensor
is re-quantized with the exponent of its actual maximum.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import torch

from frugal.formats.base import NumberFormat, straight_through


class FlexpointFormat(NumberFormat):
    """flexN+M. Stateless use (`quantize`) takes the exponent from the current maximum, the
    ideal an Autoflex predictor aims at; `quantize_with_exponent` takes a given one."""

    def __init__(self, mbits: int = 16, ebits: int = 5):
        if not 2 <= mbits <= 32 or not 1 <= ebits <= 8:
            raise ValueError(f"flex{mbits}+{ebits}: need 2..32 mantissa and 1..8 exponent bits")
        self.mbits, self.ebits = mbits, ebits
        self.name = f"flex{mbits}+{ebits}"
        self.emin, self.emax = -(2 ** (ebits - 1)), 2 ** (ebits - 1) - 1
        self.qmax = 2 ** (mbits - 1) - 1

    compilable = False  # the exponent comes from a host-side maximum

    @property
    def bits_per_element(self) -> float:
        return float(self.mbits)  # one exponent per tensor: negligible

    def exponent_for(self, amax: float) -> int:
        """Shared exponent placing `amax` in the top mantissa bit (clamped to M bits)."""
        if not amax > 0 or not math.isfinite(amax):
            return self.emin if not amax > 0 else self.emax
        e = math.floor(math.log2(amax))
        if 2.0 ** (e + 1) <= amax:  # guard log2 rounding just below a power of two
            e += 1
        elif 2.0**e > amax:
            e -= 1
        return int(min(max(e, self.emin), self.emax))

    def max_value(self, exponent: int) -> float:
        return self.qmax * 2.0 ** (exponent - (self.mbits - 2))

    def qdq_with_exponent(self, x: torch.Tensor, exponent: int):
        step = 2.0 ** (exponent - (self.mbits - 2))
        q = torch.clamp(torch.round(x / step), -self.qmax - 1, self.qmax) * step
        return q, torch.tensor(self.max_value(exponent), device=x.device)

    def quantize_with_exponent(self, x: torch.Tensor, exponent: int) -> torch.Tensor:
        q, limit = self.qdq_with_exponent(x.detach().float(), exponent)
        return straight_through(x, q.to(x.dtype), limit)

    def column_group(self, n_cols: int) -> int:
        return n_cols  # one exponent per tensor

    def fit(self, w: torch.Tensor) -> int:
        amax = torch.nan_to_num(w.abs().amax(), posinf=3.4e38).item() if w.numel() else 0.0
        return self.exponent_for(amax)

    def apply(self, w: torch.Tensor, params: int) -> torch.Tensor:
        return self.qdq_with_exponent(w, params)[0]

    def qdq(self, x: torch.Tensor):
        return self.qdq_with_exponent(x, self.fit(x))


class FixedPointFormat(NumberFormat):
    """fixedN_fF: N-bit two's complement with F fractional bits — one exponent fixed for
    every tensor forever (step 2^-F, range ±2^(N-1-F)). The weak 16-bit baseline that
    Flexpoint's managed exponent is compared against."""

    def __init__(self, bits: int = 16, frac: int = 8):
        if not 2 <= bits <= 32 or not 0 <= frac < 64:
            raise ValueError(f"fixed{bits}_f{frac}: need 2..32 bits and 0..63 fraction bits")
        self.bits, self.frac = bits, frac
        self.name = f"fixed{bits}_f{frac}"
        self.qmax = 2 ** (bits - 1) - 1

    @property
    def bits_per_element(self) -> float:
        return float(self.bits)

    def qdq(self, x: torch.Tensor):
        step = 2.0**-self.frac
        q = torch.clamp(torch.round(x / step), -self.qmax - 1, self.qmax) * step
        return q, torch.tensor(self.qmax * step, device=x.device)


@dataclass
class Autoflex:
    """Exponent manager of one tensor: history of recent maxima → next exponent."""

    fmt: FlexpointFormat
    history_size: int = 16
    c: float = 3.0
    margin: float = 0.0
    history: deque = field(default_factory=deque)
    overflows: int = 0
    steps: int = 0
    exponent: int | None = None

    def predict_max(self) -> float | None:
        """max(history) + c·std(history), times (1 + margin); None without history."""
        if not self.history:
            return None
        h = torch.tensor(list(self.history), dtype=torch.float64)
        std = float(h.std(unbiased=False)) if len(h) > 1 else 0.0
        return (float(h.max()) + self.c * std) * (1.0 + self.margin)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Quantize with the predicted exponent; on overflow count it and rescale."""
        amax = float(torch.nan_to_num(x.detach().abs().amax(), posinf=3.4e38)) if x.numel() else 0.0
        pred = self.predict_max()
        exponent = self.fmt.exponent_for(amax if pred is None else pred)
        if amax > self.fmt.max_value(exponent):
            self.overflows += 1
            exponent = self.fmt.exponent_for(amax)
        self.history.append(amax)
        while len(self.history) > self.history_size:
            self.history.popleft()
        self.steps += 1
        self.exponent = exponent
        return self.fmt.quantize_with_exponent(x, exponent)

    def state(self) -> dict:
        return {
            "exponent": self.exponent,
            "overflows": self.overflows,
            "steps": self.steps,
            "history": list(self.history),
        }
