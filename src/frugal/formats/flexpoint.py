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

import numpy as np
import torch

from frugal.formats import fastpath, kernels
from frugal.formats.base import NumberFormat, straight_through

_BIG = float(np.float32(3.4e38))  # what nan_to_num(posinf=3.4e38) gives in float32


def abs_max(x: torch.Tensor) -> float:
    """max |x| as a Python float, NaN counted as 0 and inf as the largest float32 (the
    range Flexpoint's exponent is chosen from)."""
    if x.numel() == 0:
        return 0.0
    fused = fastpath.attempt(fastpath.min_max, x.detach().float())
    if fused is None:
        return float(torch.nan_to_num(x.detach().abs().amax(), posinf=3.4e38))
    return range_measure(max(abs(fused[0]), abs(fused[1])))


def range_measure(amax: float) -> float:
    """A raw max |x| as Flexpoint measures ranges: NaN counts as 0, inf as 3.4e38 (float32)."""
    return 0.0 if math.isnan(amax) else (_BIG if math.isinf(amax) else amax)


def round_fixed(x: torch.Tensor, step: float, qmax: int):
    """clamp(round(x / step), -qmax - 1, qmax) * step for float32 `x`, and its limit."""
    fused = fastpath.attempt(
        lambda t: fastpath.run_elements(
            kernels.fixed, t, np.float32(step), np.float32(-qmax - 1), np.float32(qmax)
        ),
        x,
    )
    if fused is not None:
        return fused, float(np.float32(qmax * step))  # the limit as a float32 tensor holds it
    limit = torch.tensor(qmax * step, device=x.device)
    return torch.clamp(torch.round(x / step), -qmax - 1, qmax) * step, limit


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
        return round_fixed(x, 2.0 ** (exponent - (self.mbits - 2)), self.qmax)

    def qdq_measuring(self, x: torch.Tensor, exponent: int):
        """`qdq_with_exponent` and, from the same pass over `x`, `abs_max(x)`. The limit is
        None when nothing saturated (every |x| within it): the gradient then passes whole."""
        fused = fastpath.attempt(
            lambda t: fastpath.run_elements_absmax(
                t, np.float32(2.0 ** (exponent - (self.mbits - 2))), self.qmax
            ),
            x,
        )
        if fused is None:
            return (*self.qdq_with_exponent(x, exponent), abs_max(x))
        q, raw = fused
        limit = float(np.float32(self.max_value(exponent)))
        return q, (None if raw <= limit else limit), range_measure(raw)  # NaN: keeps the limit

    def quantize_with_exponent(self, x: torch.Tensor, exponent: int) -> torch.Tensor:
        q, limit = self.qdq_with_exponent(x.detach().float(), exponent)
        return straight_through(x, q.to(x.dtype), limit)

    def column_group(self, n_cols: int) -> int:
        return n_cols  # one exponent per tensor

    def fit(self, w: torch.Tensor) -> int:
        return self.exponent_for(abs_max(w))

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
        return round_fixed(x, 2.0**-self.frac, self.qmax)


class Autoflex:
    """Exponent manager of one tensor: history of recent maxima → next exponent.

    Statistics are exactly rounded (math.fsum), so the exponents are the same on every CPU.
    CPU tensors take one pass over memory in steady state (quantize with the predicted
    exponent while measuring the maximum; a second pass only on overflow). Tensors on other
    devices keep the history there and never wait for the host (counts sync when read)."""

    def __init__(
        self,
        fmt: FlexpointFormat,
        history_size: int = 16,
        c: float = 3.0,
        margin: float = 0.0,
        tensor_state: bool = False,
    ):
        """`tensor_state`: keep the state as tensors on CPU too (what other devices do)."""
        self.fmt, self.history_size, self.c, self.margin = fmt, history_size, c, margin
        self.tensor_state = tensor_state
        self.history: deque[float] = deque(maxlen=history_size)
        self.steps = 0
        self._overflows = 0
        self._exponent: int | None = None
        self._device: _DeviceState | None = None

    @property
    def overflows(self) -> int:
        """Quantizations whose maximum exceeded the predicted range (then rescaled)."""
        return self._overflows + (self._device.overflows() if self._device else 0)

    @property
    def exponent(self) -> int | None:
        """The shared exponent of the last quantization."""
        if self._device is not None and self._device.count:
            return int(self._device.exponent)
        return self._exponent

    def predict_max(self) -> float | None:
        """max(history) + c·std(history), times (1 + margin); None without history."""
        if not self.history:
            return None
        return _predict(list(self.history), self.c, self.margin)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Quantize with the predicted exponent; on overflow count it and rescale."""
        if x.device.type != "cpu" or self.tensor_state:
            if self._device is None:
                self._device = _DeviceState(self, x.device)
            q, limit = self._device.qdq(x.detach().float())
            self.steps += 1
            return straight_through(x, q.to(x.dtype), limit)
        x32 = x.detach().float()
        pred = self.predict_max()
        if pred is None:
            amax = abs_max(x32)
            exponent = self._settle(amax, self.fmt.exponent_for(amax))
            q, limit = self.fmt.qdq_with_exponent(x32, exponent)
        else:
            first = self.fmt.exponent_for(pred)
            q, limit, amax = self.fmt.qdq_measuring(x32, first)
            exponent = self._settle(amax, first)
            if exponent != first:
                q, limit = self.fmt.qdq_with_exponent(x32, exponent)
        return straight_through(x, q.to(x.dtype), limit)

    @torch.no_grad()
    def quantize_(self, x: torch.Tensor) -> torch.Tensor:
        """Quantize `x` in place (same exponents and values as `quantize`): for stored
        weights and gradients, where a new tensor and a copy back would double the traffic."""
        fused = x.device.type == "cpu" and not self.tensor_state and x.is_contiguous()
        if not (fused and x.dtype == torch.float32 and fastpath.kernels_enabled()):
            return x.copy_(self.quantize(x))
        amax = abs_max(x)
        pred = self.predict_max()
        exponent = self._settle(amax, self.fmt.exponent_for(amax if pred is None else pred))
        step = np.float32(2.0 ** (exponent - (self.fmt.mbits - 2)))
        qmax = self.fmt.qmax
        lo, hi = np.float32(-qmax - 1), np.float32(qmax)
        return fastpath.run_elements(kernels.fixed, x, step, lo, hi, out=x)

    def _settle(self, amax: float, exponent: int) -> int:
        """The exponent to use for a tensor of maximum `amax` given the predicted one (on
        overflow: counted, and the exponent of amax); records amax in the history."""
        if amax > self.fmt.max_value(exponent):
            self._overflows += 1
            exponent = self.fmt.exponent_for(amax)
        self.history.append(amax)
        self.steps += 1
        self._exponent = exponent
        return exponent

    def state(self) -> dict:
        history = list(self.history)
        if self._device is not None:
            history = self._device.history()
        return {
            "exponent": self.exponent,
            "overflows": self.overflows,
            "steps": self.steps,
            "history": history,
        }


def _predict(h: list[float], c: float, margin: float) -> float:
    """Autoflex's prediction from a history of maxima (population std, exactly rounded)."""
    n = len(h)
    std = 0.0
    if n > 1:
        mean = math.fsum(h) / n
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in h) / n)
    return (max(h) + c * std) * (1.0 + margin)


class _DeviceState:
    """Autoflex's state as tensors on the data's device: history ring, exponent, overflow
    count — so a steady-state step launches kernels and never reads a value back."""

    def __init__(self, owner: Autoflex, device: torch.device):
        self.owner = owner
        self.ring = torch.zeros(owner.history_size, dtype=torch.float64, device=device)
        self.count = 0  # known on the host: how many maxima the ring holds
        self.slot = 0
        self.exponent = torch.zeros((), dtype=torch.int64, device=device)
        self.overflow_count = torch.zeros((), dtype=torch.int64, device=device)

    def exponent_for(self, a: torch.Tensor) -> torch.Tensor:
        """`FlexpointFormat.exponent_for` on a float64 tensor (frexp: exact floor(log2))."""
        fmt = self.owner.fmt
        e = torch.frexp(a).exponent.to(torch.int64) - 1
        e = torch.clamp(e, fmt.emin, fmt.emax)
        e = torch.where(a > 0, e, torch.full_like(e, fmt.emin))
        return torch.where(torch.isinf(a), torch.full_like(e, fmt.emax), e)

    def qdq(self, x: torch.Tensor):
        fmt, owner = self.owner.fmt, self.owner
        amax = torch.nan_to_num(x.abs().amax(), nan=0.0, posinf=_BIG).double()
        if self.count == 0:
            exponent = self.exponent_for(amax)
        else:
            h = self.ring[: self.count]
            std = (h - h.mean()).square().mean().sqrt() if self.count > 1 else h.new_zeros(())
            pred = (h.max() + owner.c * std) * (1.0 + owner.margin)
            exponent = self.exponent_for(pred)
            step = torch.exp2((exponent - (fmt.mbits - 2)).double())
            over = amax > fmt.qmax * step
            self.overflow_count += over
            exponent = torch.where(over, self.exponent_for(amax), exponent)
        self.ring[self.slot] = amax
        self.slot = (self.slot + 1) % owner.history_size
        self.count = min(self.count + 1, owner.history_size)
        self.exponent = exponent
        step = torch.exp2((exponent - (fmt.mbits - 2)).float())
        q = torch.clamp(torch.round(x / step), -fmt.qmax - 1, fmt.qmax) * step
        return q, fmt.qmax * step

    def overflows(self) -> int:
        return int(self.overflow_count)

    def history(self) -> list[float]:
        """Maxima oldest first."""
        ring = self.ring.tolist()
        if self.count < self.owner.history_size:
            return ring[: self.count]
        return ring[self.slot :] + ring[: self.slot]
