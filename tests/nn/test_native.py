"""int8 Linears on the int8 kernel: the exact integer computation, within the final
scaling's float32 rounding; exact on integer-exact inputs; which formats have a kernel."""

import pytest
import torch

from frugal.formats import get_format
from frugal.formats.packing import NotPackableError
from frugal.nn import QuantConfig, QuantRule, apply_config
from frugal.nn.native import Int8Linear, native_kernel, quantize_rows, to_native

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
