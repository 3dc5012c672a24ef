import pytest
import torch

from frugal.formats import IntFormat, get_format


def test_int4_per_tensor_hand_worked():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.3, 0.7, 0.98])
    # scale = absmax / 7 = 1/7, stored in fp16 as 0.142822265625; x / scale rounds to
    # -7.0017 → -7, -3.5009 → -4, 0, 2.1005 → 2, 4.9012 → 5, 6.8617 → 7 (worked by hand)
    q = get_format("int4").quantize(x)
    expected = torch.tensor([-7.0, -4.0, 0.0, 2.0, 5.0, 7.0]) * 0.142822265625
    assert torch.equal(q, expected)
    assert torch.equal(q[2], torch.tensor(0.0))


def test_groups_have_their_own_scales():
    x = torch.cat([torch.full((128,), 0.01), torch.full((128,), 100.0)])[None]
    q = get_format("int4_g128").quantize(x)
    assert torch.allclose(q, x, rtol=1e-3)  # each group's absmax is exactly representable
    coarse = get_format("int4").quantize(x)
    assert coarse[0, 0] == 0  # one shared scale crushes the small group


def test_partial_last_group_and_per_channel():
    x = torch.randn(3, 200)
    q = get_format("int8_g128").quantize(x)
    assert q.shape == x.shape and (q - x).abs().max() < x.abs().max() / 127
    pc = get_format("int8_pc").quantize(x * torch.tensor([[1.0], [10.0], [100.0]]))
    assert ((pc[0] - x[0]).abs().max()) < x[0].abs().max() / 100


def test_asymmetric_keeps_zero_and_uses_all_levels():
    x = torch.linspace(0.0, 1.0, 1000)
    q = get_format("int4_g128_asym").quantize(x[None])[0]
    assert q[0] == 0.0
    assert q.unique().numel() >= 15


def test_ste_gradient_is_identity_inside_range():
    x = torch.randn(4, 64, requires_grad=True)
    get_format("int4_g64").quantize(x).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_invalid_integer_settings():
    with pytest.raises(ValueError):
        IntFormat(9)
    with pytest.raises(ValueError):
        IntFormat(4, "row")
