"""MX / BFP conformance on hand-worked blocks, scale equivariance, block boundaries."""

import torch

from frugal.formats import MXFormat, get_format


def test_mxfp4_hand_worked_block():
    x = torch.zeros(32)
    x[:8] = torch.tensor([1.0, 2.0, 3.0, 6.0, 5.0, 0.25, 0.75, -2.5])
    # max 6 -> floor(log2 6) = 2 = emax(fp4) -> shared exponent 0, scale 1
    q = get_format("mxfp4").quantize(x)
    # 5 is a tie between 4 and 6 -> 4 (even); 0.25 tie 0/0.5 -> 0; 0.75 tie 0.5/1 -> 1;
    # -2.5 tie -2/-3 -> -2
    assert q[:8].tolist() == [1.0, 2.0, 3.0, 6.0, 4.0, 0.0, 1.0, -2.0]


def test_mxfp4_saturates_inside_block():
    x = torch.zeros(32)
    x[0], x[1] = 100.0, 1.0
    q = get_format("mxfp4").quantize(x)
    # floor(log2 100) = 6 -> shared 4, scale 16: 100/16 = 6.25 saturates to 6 -> 96
    assert q[0] == 96.0 and q[1] == 0.0  # 1/16 is below fp4's smallest subnormal/2


def test_mxint8_hand_worked():
    x = torch.zeros(32)
    x[0], x[1], x[2] = 1.0, 32.5 / 64, -0.01
    q = get_format("mxint8").quantize(x)
    # max 1 -> shared 0 -> step 1/64; 32.5/64 ties to 32/64; -0.01 -> -1/64
    assert q[:3].tolist() == [1.0, 0.5, -1 / 64]
    assert get_format("mxint8").bits_per_element == 8.25


def test_blocks_follow_axis_and_size():
    x = torch.ones(64, 2)
    x[0, 0] = 1000.0
    q_rows = MXFormat("int4", 32, axis=0).quantize(x)
    assert (
        (q_rows[1:32, 0] == 0).all() and (q_rows[32:, 0] == 1).all() and (q_rows[:, 1] == 1).all()
    )
    q128 = get_format("mxint4_b128").quantize(torch.ones(1, 130))
    assert q128.shape == (1, 130) and (q128 == 1).all()
    assert get_format("mxint4_b128").bits_per_element == 4 + 8 / 128


def test_power_of_two_scale_equivariance():
    torch.manual_seed(0)
    x = torch.randn(8, 64)
    for name in ("mxfp4", "mxfp6", "mxfp8", "mxint8", "mxint4", "bfp8_b64"):
        f = get_format(name)
        for k in (-20, -3, 5, 30):
            assert torch.equal(f.quantize(x * 2.0**k), f.quantize(x) * 2.0**k), (name, k)


def test_zero_block_and_bfp_name():
    assert torch.equal(get_format("mxfp8").quantize(torch.zeros(40)), torch.zeros(40))
    f = get_format("bfp8_b64")
    assert f.name == "bfp8_b64" and f.bits_per_element == 8 + 8 / 64
