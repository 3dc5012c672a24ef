"""int8 Linears on the int8 kernel: the exact integer computation, within the final
scaling's float32 rounding; exact on integer-exact inputs; which formats have a kernel."""

import pytest
import torch

from frugal.formats import get_format
from frugal.formats.packing import NotPackableError
from frugal.nn import QuantConfig, QuantRule, apply_config
from frugal.nn.native import (
    CACHE_BELOW_ROWS,
    FEW_ROWS,
    FEW_ROWS_ENV,
    INT8_GEMM_ENV,
    Int8Linear,
    fast_int8_rows,
    few_rows_backend,
    few_rows_timings,
    int8_gemm_backend,
    int8_gemm_timings,
    int8_matmul,
    native_kernel,
    quantize_rows,
    to_native,
)

U = 2.0**-24


def _int8_linear(out_f, in_f, seed=0):
    torch.manual_seed(seed)
    lin = torch.nn.Linear(in_f, out_f)
    with torch.no_grad():
        lin.weight.copy_(get_format("int8_pc").quantize(lin.weight))
    return lin


@pytest.mark.parametrize("out_f,in_f,rows", [(7, 13, 5), (96, 384, 1), (40, 1536, 3)])
def test_matches_the_simulated_module_within_the_scaling_rounding(out_f, in_f, rows):
    lin = _int8_linear(out_f, in_f)
    native = Int8Linear.from_linear(lin)
    x = torch.randn(2, rows, in_f) * 3
    y = native(x)
    assert y.shape == (2, rows, out_f)
    xq = get_format(f"int8_g{in_f}").quantize(x)  # the simulated input format
    exact = xq.double() @ lin.weight.double().T + lin.bias.double()
    mag = xq.double().abs() @ lin.weight.double().abs().T + lin.bias.double().abs()
    # int32 sums are exact; int32 -> fp32 (2^-24 when over 2^24), two scalings, the bias add
    assert ((y.double() - exact).abs() <= 4 * U * mag).all()
    # the simulated module rounds every fp32 product and sum: within γ_in of the same value
    sim = QuantConfig([QuantRule("0", weight="int8_pc", input=f"int8_g{in_f}")])
    model = torch.nn.Sequential(lin)
    apply_config(model, sim)
    gamma = in_f * U / (1 - in_f * U)
    with torch.no_grad():
        assert ((model(x).double() - y.double()).abs() <= (gamma + 4 * U) * mag).all()


def test_exact_on_integer_exact_inputs():
    """Small integers with power-of-two scales: every path computes the same value exactly."""
    torch.manual_seed(1)
    codes = torch.randint(-127, 128, (6, 32))
    codes[:, 0] = 127  # the row maximum sets the scale to 1 (x 2^-3)
    w = codes.float() * 2.0**-3
    lin = torch.nn.Linear(32, 6, bias=False)
    with torch.no_grad():
        lin.weight.copy_(w)
    x = torch.randint(-127, 128, (3, 32)).float()
    x[:, 0] = 127.0  # input rows' scale 1
    assert torch.equal(Int8Linear.from_linear(lin)(x), x @ w.T)


def test_quantize_rows_is_the_int8_row_format():
    x = torch.randn(9, 50) * 10
    q, s = quantize_rows(x)
    assert q.dtype == torch.int8
    assert torch.equal(q.float() * s, get_format("int8_g50").quantize(x))


def test_kernel_table_and_swap():
    assert native_kernel("int8_pc") and native_kernel("int8")
    for name in ("int8_g128", "int4_g128", "mxint8", "fp8_e4m3", "int8_pc_asym"):
        assert native_kernel(name) is None, name
    model = torch.nn.Sequential(_int8_linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    before = model[0].weight.detach().clone()
    done = to_native(model, {"0": "int8_pc", "2": "int4_g128"})
    assert isinstance(model[0], Int8Linear) and type(model[2]) is torch.nn.Linear
    assert done == {"0": native_kernel("int8_pc"), "2": "simulated"}
    assert torch.equal(model[0].weight, before)
    with pytest.raises(NotPackableError):
        Int8Linear.from_linear(torch.nn.Linear(16, 8))  # fp32 weights are not on the grid


def test_fused_rows_equal_separate_ones():
    parts = [Int8Linear.from_linear(_int8_linear(5, 24, seed=s)) for s in range(3)]
    x = torch.randn(4, 24)
    assert torch.equal(Int8Linear.cat(parts)(x), torch.cat([p(x) for p in parts], -1))


@pytest.mark.parametrize("k", [13, 1024, 1536, 4100])
@pytest.mark.parametrize("rows", [1, 5, FEW_ROWS + 1])
def test_every_int8_path_gives_the_exact_integer_products(k, rows, monkeypatch):
    """native (torch._int_mm), emulated (fp32 GEMMs over chunks of <= 1024 terms) and the
    few-row kernel (int32 sums, for up to FEW_ROWS rows) all return the exact int32
    products, on random codes and on the worst case: every product -128 · -128, whose sum
    over 1536 terms (2^14 · 1536) is past float32's 2^24."""
    g = torch.Generator().manual_seed(k)
    q = torch.randint(-128, 128, (rows, k), generator=g, dtype=torch.int8)
    codes = torch.randint(-128, 128, (7, k), generator=g, dtype=torch.int8)
    q[0], codes[0] = -128, -128
    exact = q.long() @ codes.long().t()
    got = {}
    for few in ("kernel", "gemm"):
        monkeypatch.setenv(FEW_ROWS_ENV, few)
        for backend in ("native", "emulated"):
            monkeypatch.setenv(INT8_GEMM_ENV, backend)
            assert int8_gemm_backend() == backend and few_rows_backend() == few
            got[few, backend] = int8_matmul(q, codes)
            assert got[few, backend].dtype == torch.int32
            assert torch.equal(got[few, backend].long(), exact), (few, backend)
    monkeypatch.setenv(INT8_GEMM_ENV, "emulated")
    assert torch.equal(int8_matmul(q, codes, codes.float()), got["gemm", "native"])


@pytest.mark.parametrize("rows", [3, FEW_ROWS + 1, CACHE_BELOW_ROWS])
def test_int8_linear_is_bit_identical_on_every_path(monkeypatch, rows):
    """Few rows (the few-row kernel reads the codes; the emulated GEMM keeps a float copy of
    them) and many (it converts them per call, int8 stays int8 in memory): the same bits as
    the int8 kernel."""
    lin = _int8_linear(40, 1536)
    x = torch.randn(rows, 1536) * 3
    outs = []
    for few in ("kernel", "gemm"):
        monkeypatch.setenv(FEW_ROWS_ENV, few)
        for backend in ("native", "emulated"):
            monkeypatch.setenv(INT8_GEMM_ENV, backend)
            module = Int8Linear.from_linear(lin)
            outs.append(module(x))
            float_copy = backend == "emulated" and rows < CACHE_BELOW_ROWS
            float_copy &= not (few == "kernel" and rows <= FEW_ROWS)
            assert ("_cf" in module.__dict__) == float_copy, (few, backend)
            fast = backend == "native" or (few == "kernel" and rows <= FEW_ROWS)
            assert fast_int8_rows(rows) == fast, (few, backend)
    for out in outs[1:]:
        assert torch.equal(out, outs[0])


@pytest.mark.parametrize(
    "env, timings, choose, picks",
    [
        (INT8_GEMM_ENV, int8_gemm_timings, int8_gemm_backend, ("native", "emulated")),
        (FEW_ROWS_ENV, few_rows_timings, few_rows_backend, ("kernel", "gemm")),
    ],
)
def test_kernel_choice_follows_its_timing_and_the_override(
    env, timings, choose, picks, monkeypatch
):
    first, second = timings()
    assert first > 0 and second > 0
    monkeypatch.delenv(env, raising=False)
    assert choose() == (picks[0] if first < second else picks[1])
    for forced in picks:
        monkeypatch.setenv(env, forced)
        assert choose() == forced
    monkeypatch.setenv(env, "vnni")
    with pytest.raises(ValueError, match=f"{env}='vnni': choose auto, {picks[0]} or {picks[1]}"):
        choose()
