"""Packed storage: pack -> unpack gives the simulated values exactly, sizes match bits per
element, values off the grid are refused."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from frugal.formats import get_format, packing
from frugal.formats.packing import (
    NotPackableError,
    is_packable,
    pack,
    pack_bits,
    unpack,
    unpack_bits,
)
from frugal.formats.registry import CATALOGUE

PACKABLE = [n for n in CATALOGUE if is_packable(n)] + [
    "int3_g64_asym",
    "int2_pc",
    "int5_g32",
    "mxfp4_b16",
    "mxint2",
    "bfp6_b16",
    "nf4_b32",
]


def test_catalogue_split():
    assert not is_packable("flex16+5") and not is_packable("fixed16_f8")
    assert all(is_packable(n) for n in PACKABLE)
    with pytest.raises(NotPackableError, match="no packed layout"):
        pack(torch.zeros(4), "flex16+5")


@pytest.mark.parametrize("bits", range(1, 9))
def test_bit_stream_round_trip(bits):
    g = torch.Generator().manual_seed(bits)
    for n in (1, 7, 8, 9, 1001):
        codes = torch.randint(0, 2**bits, (n,), generator=g)
        stream = pack_bits(codes, bits)
        assert stream.numel() == math.ceil(n * bits / 8)
        assert torch.equal(unpack_bits(stream, bits, n).long(), codes)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(PACKABLE),
    rows=st.integers(1, 5),
    cols=st.integers(1, 300),
    log_scale=st.integers(-20, 12),
    seed=st.integers(0, 2**16),
    chunk=st.sampled_from([1, 7, 64, packing.UNPACK_CHUNK]),
)
def test_pack_unpack_is_exact(name, rows, cols, log_scale, seed, chunk):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=g) * 2.0**log_scale
    x[0, 0] = 0.0  # zeros and a zero row where there is one
    if rows > 2:
        x[2] = 0.0
    fmt = get_format(name)
    q = fmt.quantize(x)
    p = pack(q, fmt)
    whole, packing.UNPACK_CHUNK = packing.UNPACK_CHUNK, chunk  # decoded in pieces of `chunk`
    try:
        assert torch.equal(unpack(p), q)  # equal as values (-0.0 decodes as +0.0)
    finally:
        packing.UNPACK_CHUNK = whole


@pytest.mark.parametrize(
    "name,bits",
    [("int4_g128", 4.125), ("int8_g128", 8.125), ("mxint4", 4.25), ("mxfp6", 6.25),
     ("nf4", 4.25), ("fp8_e4m3", 8.0), ("fp4_e2m1", 4.0), ("int3_g128", 3.125),
     ("int4_g128_asym", 4 + 20 / 128), ("bf16", 16.0)],
)  # fmt: skip
def test_stored_bytes_match_bits_per_element(name, bits):
    """On whole groups, stored bytes equal the format's bits per element exactly."""
    x = torch.randn(64, 384)
    p = pack(get_format(name).quantize(x), name)
    assert get_format(name).bits_per_element == bits
    assert p.nbytes * 8 == bits * x.numel()


def test_int8_per_channel_counts_one_scale_per_row():
    p = pack(get_format("int8_pc").quantize(torch.randn(10, 384)), "int8_pc")
    assert p.nbytes == 10 * 384 + 10 * 2


def test_gptq_like_groups_recover_their_scale():
    """GPTQ can leave a group whose largest value sits at code -8 (not where RTN puts the
    largest), or never reaches the top code: the scale is still found exactly."""
    s = torch.tensor([0.013, 0.5, 3e-5]).half().float()
    codes = torch.tensor([[-8, 3, 0, 1], [-3, 2, -1, 0], [5, -8, 7, 7]], dtype=torch.float32)
    w = codes.repeat_interleave(32, 1) * s[:, None]  # 3 rows x 128 = one group each
    p = pack(w, "int4_g128")
    assert torch.equal(unpack(p), w)
    mx = torch.tensor([[0.5, -0.25, 0.125, 0.0] * 8]) * 2.0**-3  # below the binade RTN picks
    assert torch.equal(unpack(pack(mx, "mxint8")), mx)


def test_values_off_the_grid_are_refused():
    w = get_format("int4_g128").quantize(torch.randn(4, 128))
    w[1, 5] += 1e-3
    with pytest.raises(NotPackableError, match="not on the int4_g128 grid"):
        pack(w, "int4_g128")
    with pytest.raises(NotPackableError, match="NaN"):
        pack(torch.tensor([1.0, float("nan")]), "fp8_e4m3")
    with pytest.raises(NotPackableError, match="not on the fp8_e4m3 grid"):
        pack(torch.tensor([1.0, 1.01]), "fp8_e4m3")


@pytest.mark.parametrize("name", ["int8_pc", "int4_g128", "mxint8"])
def test_many_groups_pack_and_any_group_off_the_grid_is_refused(name):
    """Beyond 64 groups a few are tried against every scale first (a trained weight fails
    there at once); groups on the grid still pack, and one bad value in a group the first
    look did not see is still refused."""
    w = get_format(name).quantize(torch.randn(300, 256))
    assert torch.equal(unpack(pack(w, name)), w)
    with pytest.raises(NotPackableError, match="not on the"):
        pack(torch.randn(300, 256), name)
    w[1, 5] += 1e-3  # row 1: not among the groups looked at first
    with pytest.raises(NotPackableError, match="not on the"):
        pack(w, name)


def test_three_dim_weights_per_channel():
    w = get_format("int8_pc").quantize(torch.randn(6, 5, 3))  # a Conv1d weight
    p = pack(w, "int8_pc")
    assert p.scales.numel() == 6 and torch.equal(unpack(p), w)
