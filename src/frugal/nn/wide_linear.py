"""h @ wᵀ for a few rows h against a very wide weight w (Whisper's 51,864 × 384 vocabulary
projection, read once per decoding step), on whichever of two equivalent BLAS calls this CPU
runs faster.

`F.linear(h, w)` and `(w @ hᵀ)ᵀ` compute the same dot products h_i · w_j (in fp32, each within
the usual γ_d bound of the exact sum); BLAS routes them to different kernels. Measured on an
AMD EPYC (Zen 3, AVX2; torch 2.13 with MKL 2024.2; 2 threads), the vocabulary of tiny.en:

    rows of h        1        2        4        5       16
    F.linear      13.5 ms  33.6 ms  27.3 ms  25.9 ms  30.6 ms
    w @ hᵀ        14.0 ms   7.7 ms   7.7 ms   9.7 ms  19.0 ms

With one row both fall to the same matrix-vector kernel; `w @ hᵀ` with the row repeated
(two columns) takes the 7.7 ms path. So the first product of each weight shape (and thread
count) in a process times both forms on two rows against the weight itself (best of three)
and keeps the faster one; FRUGAL_WIDE_GEMM=linear|transposed overrides. Nothing is copied: w
stays as stored."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from frugal.nn.kernel_timing import best_ms, forced_choice

WIDE_GEMM_ENV = "FRUGAL_WIDE_GEMM"
# below this many output rows the choice is not worth a probe (decoder layers are ≤ 1536)
WIDE_ROWS = 8192


def _transposed(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    if h.shape[0] == 1:  # one column would take the matrix-vector kernel: pad to two
        return (w @ torch.cat([h, h]).t())[:, :1].t()
    return (w @ h.t()).t()


_PROBED: dict[tuple, tuple[float, float]] = {}


def _probe(w: torch.Tensor) -> tuple[float, float]:
    """(F.linear, transposed) milliseconds for two rows against w itself, best of three after
    a warm-up."""
    h = torch.randn(2, w.shape[1], generator=torch.Generator().manual_seed(0)).to(w)
    with torch.inference_mode():
        return best_ms(lambda: F.linear(h, w)), best_ms(lambda: _transposed(h, w))


def wide_gemm_timings(w: torch.Tensor) -> tuple[float, float]:
    """(F.linear, transposed) milliseconds for two rows against w's shape here, timed once per
    shape, dtype and thread count in a process."""
    key = (tuple(w.shape), w.dtype, torch.get_num_threads())
    if key not in _PROBED:
        _PROBED[key] = _probe(w)
    return _PROBED[key]


def wide_gemm_form(w: torch.Tensor) -> str:
    """ "transposed" where `(w @ hᵀ)ᵀ` beats `F.linear(h, w)` on this CPU for w's shape (timed
    once per shape and process), else "linear"; FRUGAL_WIDE_GEMM overrides. Small or non-CPU
    weights: "linear"."""
    forced = forced_choice(WIDE_GEMM_ENV, ("linear", "transposed"))
    if forced:
        return forced
    if w.device.type != "cpu" or w.dim() != 2 or w.shape[0] < WIDE_ROWS:
        return "linear"
    linear, transposed = wide_gemm_timings(w)
    return "transposed" if transposed < 0.9 * linear else "linear"


def wide_linear(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """h (..., d) @ w (n, d)ᵀ → (..., n), the same products as F.linear(h, w) (no bias) on the
    faster form for this CPU (`wide_gemm_form`)."""
    if h.dim() != 2:
        return wide_linear(h.reshape(-1, h.shape[-1]), w).reshape(*h.shape[:-1], w.shape[0])
    if h.shape[0] == 0 or wide_gemm_form(w) == "linear":
        return F.linear(h, w)
    return _transposed(h, w)


__all__ = ["WIDE_GEMM_ENV", "wide_gemm_form", "wide_gemm_timings", "wide_linear"]
