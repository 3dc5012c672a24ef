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
