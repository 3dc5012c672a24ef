import pytest
import torch

from frugal.nn import wide_linear as wl
from tests.tolerance import assert_matmul_close


@pytest.mark.parametrize("form", ["linear", "transposed", "auto"])
@pytest.mark.parametrize("rows", [1, 2, 5])
def test_every_form_is_the_fp32_product(monkeypatch, form, rows):
    monkeypatch.setenv(wl.WIDE_GEMM_ENV, form)
    gen = torch.Generator().manual_seed(rows)
    w = torch.randn(wl.WIDE_ROWS + 3, 384, generator=gen)
    h = torch.randn(rows, 384, generator=gen)
    got = wl.wide_linear(h, w)
    assert got.shape == (rows, w.shape[0]) and got.dtype == torch.float32
    assert_matmul_close(got, h, w.t())
    # leading dimensions are kept, a row's result does not depend on its neighbours' count
    got3 = wl.wide_linear(h[None], w)
    assert got3.shape == (1, rows, w.shape[0])
    assert_matmul_close(got3[0], h, w.t())


def test_the_probe_picks_a_form_once_per_shape(monkeypatch):
    monkeypatch.delenv(wl.WIDE_GEMM_ENV, raising=False)
    probed = []
    real = wl._probe
    monkeypatch.setattr(wl, "_probe", lambda w: probed.append(w.shape) or real(w))
    w = torch.randn(wl.WIDE_ROWS, 72)
    form = wl.wide_gemm_form(w)
    assert form in ("linear", "transposed")
    assert wl.wide_gemm_form(w.clone()) == form  # cached, not timed again
    assert probed == [w.shape]
    assert wl.wide_gemm_form(torch.randn(100, 64)) == "linear"  # too small to probe


def test_an_unknown_form_is_refused(monkeypatch):
    monkeypatch.setenv(wl.WIDE_GEMM_ENV, "fast")
    with pytest.raises(ValueError, match="choose auto, linear or transposed"):
        wl.wide_linear(torch.randn(1, 8), torch.randn(wl.WIDE_ROWS, 8))
