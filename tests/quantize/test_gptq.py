"""GPTQ on single weight matrices: against RTN, against a plain reference, edge cases."""

import logging

import pytest
import torch

from frugal.formats import get_format
from frugal.quantize import GPTQConfig, Hessian, gptq_weight, output_error
from frugal.quantize.gptq import HessianCollector
from tests.tolerance import assert_matmul_close, gamma


def correlated_inputs(n: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) * 0.3 + torch.eye(d)
    return torch.randn(n, d, generator=g) @ mix


def hessian_of(x: torch.Tensor) -> torch.Tensor:
    h = Hessian(x.shape[1])
    h.add(x)
    return h.matrix


def reference_gptq(w, h, fmt, damp=0.01, order=None):
    """Unoptimized GPTQ/OBQ in float64: explicit inverse Hessian, one column at a time,
    the inverse updated by eliminating each quantized column; group scales fitted when
    reaching a group's first column (on the updated weights)."""
    w = w.double().clone()
    h = h.double().clone()
    cols = w.shape[1]
    h += damp * torch.diag(h).mean() * torch.eye(cols, dtype=h.dtype)
    hinv = torch.linalg.inv(h)
    order = list(range(cols)) if order is None else order
    group = fmt.column_group(cols)
    q = torch.zeros_like(w)
    params = None
    for i in order:
        if group > 1 and i % group == 0:
            params = fmt.fit(w[:, i : i + group].float())
        q[:, i] = fmt.apply(w[:, i : i + 1].float(), params)[:, 0].double()
        err = (w[:, i] - q[:, i]) / hinv[i, i]
        w -= err[:, None] * hinv[i][None, :]
        hinv = hinv - torch.outer(hinv[:, i], hinv[i, :]) / hinv[i, i]
        hinv[i, :] = 0
        hinv[:, i] = 0
        hinv[i, i] = 1  # eliminated; keeps later divisions finite
    return q.float()


@pytest.mark.parametrize("name", ["int4_g128", "mxint4", "mxfp4", "nf4", "int3_g128", "fp4"])
def test_gptq_beats_rtn_on_random_layers(name):
    fmt = get_format(name)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(128, 256, generator=g)
    h = hessian_of(correlated_inputs(2048, 256))
    rtn = output_error(fmt.quantize(w) - w, h)
    res = gptq_weight(w, h, fmt)
    assert res.error < 0.8 * rtn
    # the reported error sums 128·256 positive fp32 terms: within γ_n of the float64 value
    exact = output_error((res.weight - w).double(), h.double())
    assert res.error == pytest.approx(exact, rel=gamma(w.numel()))


@pytest.mark.parametrize("name", ["int4_g16", "mxint4_b16", "fp4", "int4_pc", "int4_g7", "nf4_b12"])
def test_gptq_equals_plain_reference(name):
    fmt = get_format(name)
    g = torch.Generator().manual_seed(2)
    w = torch.randn(24, 64, generator=g)
    h = hessian_of(correlated_inputs(512, 64, seed=3))
    fast = gptq_weight(w, h, fmt, GPTQConfig(block=32)).weight
    ref = reference_gptq(w, h, fmt)
    # float32 vs float64 may flip a rare rounding tie; the solutions must otherwise agree
    assert (fast == ref).float().mean() > 0.99
    assert output_error(fast - w, h) == pytest.approx(output_error(ref - w, h), rel=0.01)


def test_act_order_matches_reference_in_permuted_order():
    fmt = get_format("fp4")  # element-wise: no group bookkeeping
    g = torch.Generator().manual_seed(4)
    w = torch.randn(16, 48, generator=g)
    x = correlated_inputs(400, 48, seed=5) * torch.linspace(0.1, 3, 48)
    h = hessian_of(x)
    fast = gptq_weight(w, h, fmt, GPTQConfig(act_order=True, block=16)).weight
    order = torch.argsort(torch.diag(h), descending=True).tolist()
    ref = reference_gptq(w, h, fmt, order=order)
    assert (fast == ref).float().mean() > 0.99


def test_act_order_with_groups_keeps_groups_on_the_grid():
    fmt = get_format("int4_g16")
    w = torch.randn(8, 64)
    h = hessian_of(correlated_inputs(300, 64))
    q = gptq_weight(w, h, fmt, GPTQConfig(act_order=True)).weight
    # scales were fitted on the original weights' groups: each group's values are integer
    # multiples of that group's scale
    for g0 in range(0, 64, 16):
        scale = fmt.fit(w[:, g0 : g0 + 16])[0]
        k = q[:, g0 : g0 + 16] / scale
        assert torch.allclose(k, k.round(), atol=1e-4)


def test_dead_columns_and_too_few_inputs(caplog):
    fmt = get_format("int4_g16")
    w = torch.randn(8, 32)
    x = torch.randn(10, 32)  # 10 vectors: H has rank 10 < 32
    x[:, 5] = 0  # a dead input
    h = hessian_of(x)
    with caplog.at_level(logging.WARNING):
        res = gptq_weight(w, h, fmt, GPTQConfig(damp=0.0))
    assert torch.isfinite(res.weight).all()
    assert res.dead_columns == 1 and (res.weight[:, 5] == 0).all()
    assert res.damp > 0 and "not positive definite" in caplog.text


def test_bad_input_is_refused():
    h = hessian_of(torch.randn(64, 16))
    w = torch.randn(4, 16)
    w[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        gptq_weight(w, h, get_format("int8"))
    with pytest.raises(ValueError, match="do not match"):
        gptq_weight(torch.randn(4, 8), h, get_format("int8"))
    from frugal.formats.mx import MXFormat

    with pytest.raises(ValueError, match="input"):
        gptq_weight(torch.randn(4, 16), h, MXFormat("int4", axis=0))
    with pytest.raises(ValueError, match="no calibration"):
        Hessian(4).matrix  # noqa: B018


def test_collector_shares_hessians_of_one_input():
    torch.manual_seed(0)
    q, k, other = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
    x, y = torch.randn(5, 8), torch.randn(5, 8)
    with HessianCollector({"q": q, "k": k, "o": other}) as hc:
        q(x), k(x), other(y)
        hc.next_batch()
    m = hc.matrices()
    assert m["q"] is m["k"] and m["q"] is not m["o"]
    assert_matmul_close(m["q"], x.t(), x, scale=2 / 5)
    assert_matmul_close(m["o"], y.t(), y, scale=2 / 5)


def test_blocked_hessian_equals_the_full_product():
    x = torch.randn(300, 2500, dtype=torch.float32)
    h = Hessian(2500)
    h.add(x[:100])
    h.add(x[100:])
    assert_matmul_close(h.matrix, x.t(), x, scale=2 / 300)  # any blocking, any order
    assert torch.equal(h.matrix, h.matrix.t())


@pytest.mark.parametrize("act_order", [False, True])
def test_reported_error_is_the_exact_layer_error(act_order):
    """The error comes from GPTQ's step losses minus the damping term; it must equal
    ½·tr(ΔW H ΔWᵀ)/rows under the undamped calibration Hessian, dead columns included."""
    x = correlated_inputs(800, 96, seed=6)
    x[:, 7] = 0
    h = hessian_of(x)
    w = torch.randn(40, 96)
    res = gptq_weight(w, h, get_format("mxint4"), GPTQConfig(damp=0.1, act_order=act_order))
    assert res.error == pytest.approx(output_error(res.weight - w, h), rel=1e-3)


def test_inverse_cholesky_factor():
    # U upper with a positive diagonal and UᵀU = (H + λ·mean(diag H)·I)⁻¹, to a bound from
    # the condition number and float32's epsilon
    from frugal.quantize.gptq import _inverse_cholesky

    h = hessian_of(correlated_inputs(512, 96, seed=7)).float()
    damped = h.double() + 0.01 * h.diagonal().double().mean() * torch.eye(96, dtype=torch.float64)
    upper, lam = _inverse_cholesky(h.clone(), 0.01, "test")
    assert lam == 0.01
    assert torch.equal(upper, upper.triu()) and (upper.diagonal() > 0).all()
    u = upper.double()
    residual = (u.t() @ u @ damped - torch.eye(96, dtype=torch.float64)).abs().max()
    bound = 96 * torch.linalg.cond(damped) * torch.finfo(torch.float32).eps
    assert residual < bound
