"""Tolerances from error bounds, never from one machine's rounding.

Two kinds of allowance, each stated once here:

- `matmul_bound`: the worst-case error of a float32 matrix product in *any* summation order,
  blocked or not, with or without FMA (Higham, Accuracy and Stability of Numerical
  Algorithms, eq. 3.5): |fl(A·B) − A·B| ≤ γ_n |A|·|B| with γ_n = n·u / (1 − n·u), u = 2⁻²⁴,
  plus the rounding of a bias add. A rigorous bound: it holds for every correct kernel.
- `NETWORK_RMS_U` / `NETWORK_MAX_U`: the distance of a float32 run of a whole network (a
  Whisper encoder, Silero's LSTM) from a float64 run of the same network, in units of u
  times the output's scale. No rigorous bound exists for a deep network, so the factor is
  stated and generous: on an AMD EPYC (Zen 4) with AVX2 / AVX-512 / plain ATen kernels,
  1 and 2 threads, MKL, CTranslate2 and TorchScript, the largest seen were 41u (rms, relative
  to the output's rms) and 1,254u (max, relative to the output's largest magnitude); the
  allowances are ≥ 6x those (the whole suite also passes at 3 threads). A conversion bug (a
  wrong weight, bias, norm or activation, a lost recurrent state) moves outputs by ≥ 1e-2
  relative, ≥ 170,000u: far outside.
"""

from __future__ import annotations

import numpy as np
import torch

U32 = 2.0**-24  # float32 unit roundoff
U64 = 2.0**-53  # float64 unit roundoff
NETWORK_RMS_U = 2**10  # rms error / rms output, in u
NETWORK_MAX_U = 2**13  # max error / max |output|, in u


def gamma(n: int, u: float = U32) -> float:
    """γ_n = n·u / (1 − n·u): the relative error bound of an n-term float sum."""
    return n * u / (1 - n * u)


def matmul_bound(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None):
    """Elementwise worst-case error of float32 `a @ b (+ bias)` against exact arithmetic,
    in float64: γ_n·|a|·|b| for the products and sums, one more rounding for the bias."""
    a64, b64 = a.detach().double().abs(), b.detach().double().abs()
    n = a.shape[-1] + (bias is not None)
    bound = gamma(n) * (a64 @ b64)
    if bias is not None:
        bound = bound + gamma(n) * bias.detach().double().abs()
    return bound


def assert_matmul_close(got, a, b, bias=None, scale: float = 1.0) -> None:
    """`got`, a float32 result of scale · (a @ b) (+ bias), is within the worst-case bound of
    the exact value: γ_n·|a|·|b| for the sums in any order, 2u relative for a scale factor
    computed and applied in float32. The exact value is computed in float64 (its own error,
    ~1e-16 relative, is far inside the allowance)."""
    exact = scale * (a.detach().double() @ b.detach().double())
    if bias is not None:
        exact = exact + bias.detach().double()
    bound = abs(scale) * matmul_bound(a, b, bias)
    if scale != 1.0:
        bound = bound + 2 * U32 * exact.abs()
    err = (got.detach().double() - exact).abs()
    assert (err <= bound * (1 + 1e-9)).all(), f"max excess {float((err - bound).max()):.3g}"


def _arrays(got, exact) -> tuple[np.ndarray, np.ndarray]:
    def as_np(x):
        return x.detach().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

    return as_np(got).astype(np.float64), as_np(exact).astype(np.float64)


def network_error(got, exact, u: float = U32) -> tuple[float, float]:
    """(rms error / rms |exact|, max error / max |exact|) in units of u."""
    g, e = _arrays(got, exact)
    err = g - e
    rms = np.sqrt(np.mean(np.square(err))) / max(np.sqrt(np.mean(np.square(e))), 1e-300)
    peak = np.abs(err).max() / max(np.abs(e).max(), 1e-300)
    return float(rms / u), float(peak / u)


def assert_fp32_network_close(got, exact, what: str = "output", u: float = U32) -> None:
    """A float32 run of a network against its float64 run: within the stated allowances
    (u = U64 states the same for a float64 run against a float64 run by another path)."""
    rms_u, max_u = network_error(got, exact, u)
    assert rms_u <= NETWORK_RMS_U, f"{what}: rms error {rms_u:.0f}u > {NETWORK_RMS_U}u"
    assert max_u <= NETWORK_MAX_U, f"{what}: max error {max_u:.0f}u > {NETWORK_MAX_U}u"


def argmax_is_clear(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None):
    """Rows of a @ b (+ bias) whose largest entry beats the runner-up by more than twice the
    worst-case float32 error: every correct fp32 kernel picks the same argmax there. Tests
    that compare argmaxes of two fp32 paths check that their seeded inputs are all clear."""
    exact = a.detach().double() @ b.detach().double()
    if bias is not None:
        exact = exact + bias.detach().double()
    finite = torch.where(torch.isfinite(exact), exact, torch.finfo(torch.float64).min)
    top2 = finite.topk(2, dim=-1).values
    worst = torch.where(torch.isfinite(exact), matmul_bound(a, b, bias), 0).amax(-1)
    return top2[..., 0] - top2[..., 1] > 2 * worst


def assert_fp32_pair_close(a, b, what: str = "output") -> None:
    """Two float32 runs of the same network by other paths (shapes, kernels, libraries): each
    within the network allowance of the float64 value, so within twice it of each other."""
    rms_u, max_u = network_error(a, b)
    assert rms_u <= 2 * NETWORK_RMS_U, f"{what}: rms difference {rms_u:.0f}u > 2x{NETWORK_RMS_U}u"
    assert max_u <= 2 * NETWORK_MAX_U, f"{what}: max difference {max_u:.0f}u > 2x{NETWORK_MAX_U}u"
