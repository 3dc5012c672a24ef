"""Exact int8 products for a few input rows (a decoding step), compiled by numba.

A decoding step multiplies 1-8 rows by a weight; there the weight's bytes are the cost. Where
torch's int8 GEMM is slow (AVX2 CPUs without VNNI, see frugal.nn.native), the emulated path
reads the weight as float32: four times the int8 bytes. This kernel reads the int8 codes
themselves and sums the products in int32 (|int8 · int8| <= 2^14, so any K below 2^17 terms
is exact); LLVM vectorizes the loop with 16-bit multiply-adds. Measured on an AMD EPYC (Zen 3,
AVX2, 1 thread), 51,864 x 384 codes: 1.9 ms for one row, 2.1 ms for two, 7.5 ms for eight,
against 9.5-11 ms for one or two rows in fp32 (torch F.linear / matmul) and 10-13 ms for
eight. Compiled once and cached on disk like the format kernels (frugal.formats.kernels).
`screen` runs the decoder's vocabulary screen on it with the scaling, the bias, the error
bounds and the candidate search in two compiled passes instead of a dozen torch operations
over (rows, 51,864) tensors (~2 ms of a ~15 ms step on that Zen 3)."""

from __future__ import annotations

import numpy as np
import torch

try:
    from numba import njit
except Exception:  # numba absent or broken: callers use the GEMM paths
    njit = None

# above 2^17 terms an int32 sum of int8 products could overflow
MAX_TERMS = 1 << 17

if njit is not None:

    @njit(nogil=True, cache=True, boundscheck=False)
    def _dot_rows(q, codes, out, n0, n1):  # pragma: no cover - compiled
        """out[m, n] = Σ_k q[m, k] · codes[n, k] for n in [n0, n1): q int16, codes int8."""
        rows, k_ = q.shape
        for n in range(n0, n1):
            for m in range(rows):
                acc = np.int32(0)
                for k in range(k_):
                    acc += np.int32(q[m, k] * np.int16(codes[n, k]))
                out[m, n] = acc

    @njit(nogil=True, cache=True, boundscheck=False)
    def _screen_logits(
        acc, s1, s2, pscale, alpha, hn, rnorm, rerr, bias, approx, err, n0, n1
    ):  # pragma: no cover - compiled
        """The vocabulary screen's logits and bounds for tokens [n0, n1) from the int32
        products acc of B rows' two int8 planes (B first-plane rows, then B second-plane
        rows): approx[b, n] = (acc₁ · s1[b] + acc₂ · s2[b]) · pscale[n] + bias, and err[b, n]
        = alpha[b]·rnorm[n] + hn[b]·rerr[n], plus 2^-23·(|approx| + err) for the roundings of
        adding the bias (here and in the fp32 product it stands for)."""
        rows = s1.shape[0]
        one = bias.shape[0] == 1
        tiny = np.float32(2.0**-23)
        for b in range(rows):
            bb = 0 if one else b
            for n in range(n0, n1):
                v = np.float32(acc[b, n]) * s1[b] + np.float32(acc[rows + b, n]) * s2[b]
                v = v * pscale[n] + bias[bb, n]
                e = alpha[b] * rnorm[n] + hn[b] * rerr[n]
                approx[b, n] = v
                err[b, n] = e + tiny * (abs(v) + e) if v > -np.inf else e

    @njit(nogil=True, cache=True, boundscheck=False)
    def _near_max(approx, err, near):  # pragma: no cover - compiled
        """Per row its largest logit (-inf: every token masked) and, over the rows with a
        finite one, near[n] = True for each token whose upper bound reaches its row's best
        lower bound. Returns the largest logits."""
        rows, n_ = approx.shape
        top = np.full(rows, -np.inf, np.float32)
        for b in range(rows):
            floor = -np.inf
            for n in range(n_):
                v = approx[b, n]
                if not v < np.inf:  # NaN or +inf, as torch's amax gives it back
                    top[b] = v
                    break
                top[b] = max(top[b], v)
                floor = max(floor, v - err[b, n])
            if np.isfinite(top[b]):
                for n in range(n_):
                    if approx[b, n] + err[b, n] >= floor:
                        near[n] = True
        return top


def screen(
    q: torch.Tensor,
    codes: torch.Tensor,
    s1: torch.Tensor,
    s2: torch.Tensor,
    pscale: torch.Tensor,
    alpha: torch.Tensor,
    hn: torch.Tensor,
    rnorm: torch.Tensor,
    rerr: torch.Tensor,
    bias: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The vocabulary screen of frugal.tasks.asr.lean_decoder in two passes: (approx (B, N)
    with the bias added, the largest logit per row (B,), the candidate tokens); see
    `LeanDecoder.screen_logits` for the bound. The codes are split over torch's threads."""
    from frugal.formats.fastpath import run_split

    _check(q, codes)
    rows, n_ = s1.shape[0], codes.shape[0]
    f32 = [t.float().contiguous().numpy() for t in (s1, s2, pscale, alpha, hn, rnorm, rerr)]
    b = bias.float().reshape(-1, n_).numpy()
    q16 = q.to(torch.int16).numpy()
    c = codes.numpy()
    approx = np.empty((rows, n_), np.float32)
    err = np.empty((rows, n_), np.float32)
    acc = np.empty((q.shape[0], n_), np.int32)

    def part(n0: int, n1: int) -> None:
        _dot_rows(q16, c, acc, n0, n1)
        _screen_logits(acc, *f32, b, approx, err, n0, n1)

    run_split(part, n_, q.numel())
    near = np.zeros(n_, np.bool_)
    top = _near_max(approx, err, near)
    return torch.from_numpy(approx), torch.from_numpy(top), torch.from_numpy(np.nonzero(near)[0])


def _check(q: torch.Tensor, codes: torch.Tensor) -> None:
    if njit is None:
        raise RuntimeError("the few-row int8 kernel needs numba")
    if q.shape[1] != codes.shape[1] or q.shape[1] >= MAX_TERMS:
        raise ValueError(f"int8 rows: shapes {tuple(q.shape)} and {tuple(codes.shape)}")


def available() -> bool:
    """True when numba is importable (the kernel compiles on first use)."""
    return njit is not None


def int8_rows_matmul(q: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """q (M, K) int8 times codes (N, K) int8 transposed: the exact int32 products (M, N),
    the N rows of codes split over torch's threads."""
    from frugal.formats.fastpath import run_split

    _check(q, codes)
    q16 = q.to(torch.int16).numpy()
    c = codes.contiguous().numpy()
    out = np.empty((q.shape[0], codes.shape[0]), np.int32)
    run_split(lambda n0, n1: _dot_rows(q16, c, out, n0, n1), codes.shape[0], q.numel())
    return torch.from_numpy(out)


__all__ = ["MAX_TERMS", "available", "int8_rows_matmul", "screen"]
