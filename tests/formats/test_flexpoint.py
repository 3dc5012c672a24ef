import math

import pytest
import torch

from frugal.formats import Autoflex, FlexpointFormat, get_format


def test_exponent_fills_top_bit():
    f = FlexpointFormat(16, 5)
    for amax in (1.0, 1.5, 3.999, 1000.0, 2.0**-10):
        e = f.exponent_for(amax)
        assert 2.0**e <= amax < 2.0 ** (e + 1)
        assert amax <= f.max_value(e)
    assert f.exponent_for(1e9) == 15 and f.exponent_for(1e-9) == -16  # 5-bit range
    x = torch.randn(1000)
    q = f.quantize(x)
    step = 2.0 ** (f.exponent_for(x.abs().max().item()) - 14)
    assert torch.equal(torch.round(q / step) * step, q) and (q - x).abs().max() <= step / 2


def test_autoflex_growing_stream_overflows_rarely():
    af = Autoflex(FlexpointFormat(16, 5))
    torch.manual_seed(0)
    base = torch.randn(1000)
    for t in range(100):
        af.quantize(base * 1.05**t)
    assert af.steps == 100 and af.overflows <= 3


def test_autoflex_shrinking_stream_never_overflows_and_follows_down():
    af = Autoflex(FlexpointFormat(16, 5))
    base = torch.randn(1000)
    exps = []
    for t in range(60):
        af.quantize(base * 0.8**t)
        exps.append(af.exponent)
    assert af.overflows == 0
    assert exps[-1] < exps[0] - 5  # the history forgets old maxima


def test_autoflex_sudden_overflow_is_counted_and_recovered():
    af = Autoflex(FlexpointFormat(16, 5), history_size=16, c=3.0)
    x = torch.randn(1000)
    for _ in range(20):
        af.quantize(x)
    spike = x * 100
    q = af.quantize(spike)
    assert af.overflows == 1
    assert (q - spike).abs().max() <= 2.0 ** (af.exponent - 14)  # rescaled, not clipped
    assert math.isclose(af.history[-1], spike.abs().max().item())


def test_registry_and_bad_settings():
    assert get_format("flex16+5").bits_per_element == 16
    with pytest.raises(ValueError):
        FlexpointFormat(1, 5)


def _stream(seed: int, steps: int = 40) -> list[torch.Tensor]:
    """Tensors whose range drifts, jumps (overflows) and holds NaN / inf once each."""
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(300, 70, generator=g) * 1.08**t for t in range(steps)]
    xs[25] = xs[25] * 50
    xs[30][3, 4] = float("nan")
    xs[33][0, 0] = float("inf")
    return xs


@pytest.mark.parametrize("kernels_on", [True, False])
def test_autoflex_paths_agree(kernels_on):
    # one pass (fused), two passes (torch reference) and tensor state (the GPU path, run on
    # the CPU here) pick the same exponents and give the same values and overflow counts
    from frugal.formats import fastpath

    fmt = FlexpointFormat(16, 5)
    host, dev = Autoflex(fmt), Autoflex(fmt, tensor_state=True)
    fastpath.set_kernels(kernels_on)
    try:
        for x in _stream(0):
            a, b = host.quantize(x), dev.quantize(x)
            assert host.exponent == dev.exponent
            assert torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0))
    finally:
        fastpath.set_kernels(True)
    assert host.overflows == dev.overflows >= 1
    assert host.state()["history"] == pytest.approx(dev.state()["history"])


def test_autoflex_gradient_is_straight_through_within_range():
    af = Autoflex(FlexpointFormat(8, 5))
    x = (torch.randn(64, 64) * 3).requires_grad_(True)
    for _ in range(5):
        af.quantize(x.detach() * 0.01)  # the history predicts a range far below x's
    q = af.quantize(x)
    q.sum().backward()
    assert af.overflows == 1  # x exceeded the prediction: rescaled to hold its maximum
    assert torch.equal(x.grad, torch.ones_like(x))


def test_in_place_quantization_matches_quantize():
    # LowPrecisionTrainer stores weights and gradients with quantize_: same exponents,
    # values and overflow counts as quantize on a fresh tensor
    fmt = FlexpointFormat(16, 5)
    a, b = Autoflex(fmt), Autoflex(fmt)
    for x in _stream(1):
        y = x.clone()
        b.quantize_(y)
        assert torch.equal(a.quantize(x).nan_to_num(7.0), y.nan_to_num(7.0))
        assert a.exponent == b.exponent
    assert a.overflows == b.overflows >= 1
