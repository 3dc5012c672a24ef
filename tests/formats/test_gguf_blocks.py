"""GGUF Q4_0 / Q8_0: frugal's quantizer equals llama.cpp's reference (through the `gguf`
package's port of ggml-quants.c) bit for bit, and the bytes frugal writes decode exactly."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from frugal.formats import get_format
from frugal.formats.gguf_blocks import NotOnGridError, Q4_0Format, Q8_0Format

gguf = pytest.importorskip("gguf")  # in the locked environment (llm extra): fails there if absent
Q = gguf.GGMLQuantizationType
FORMATS = {"q4_0": (Q4_0Format(), Q.Q4_0), "q8_0": (Q8_0Format(), Q.Q8_0)}

# values with ties and repeats: small integers scaled, plus a wide range
elements = st.one_of(
    st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32),
    st.integers(-16, 16).map(lambda k: np.float32(k * 0.125)),
)
blocks = st.tuples(st.integers(1, 4), st.integers(1, 3)).flatmap(
    lambda s: arrays(np.float32, (s[0], 32 * s[1]), elements=elements)
)


def tie_blocks(name: str):
    """Blocks whose scale is a power of two and whose other values fall halfway between two
    codes: where rounding rules (half away from zero, trunc(x + 8.5), half to even) differ."""
    top, half = (127, 127) if name == "q8_0" else (8, 8)

    def block(draw_e, sign, halves):
        s = np.float32(2.0**draw_e)
        return np.array([sign * top * s, *[(h + 0.5) * s for h in halves]], np.float32)

    one = st.builds(
        block,
        st.integers(-6, 6),
        st.sampled_from([-1, 1]),
        st.lists(st.integers(-half, half - 1), min_size=31, max_size=31),
    )
    return st.lists(one, min_size=1, max_size=3).map(lambda rows: np.stack(rows))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(FORMATS)).flatmap(
        lambda n: st.tuples(st.just(n), st.one_of(blocks, tie_blocks(n)))
    )
)
def test_quantizer_equals_llama_cpp_reference(case):
    name, x = case
    fmt, qtype = FORMATS[name]
    ref = gguf.quants.dequantize(gguf.quants.quantize(x, qtype), qtype).reshape(x.shape)
    ours = fmt.qdq(torch.from_numpy(x))[0].numpy()
    assert np.array_equal(ours, ref)
    assert torch.equal(fmt.qdq(torch.from_numpy(ours))[0], torch.from_numpy(ours))  # idempotent


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(FORMATS)), blocks, st.integers(0, 2**31 - 1))
def test_encoded_bytes_decode_to_the_values_exactly(name, x, seed):
    """RTN values, and GPTQ-like values (a block's grid fixed, then other values rounded onto
    it, so the largest one need not sit on the code RTN gives it), encode without re-rounding."""
    fmt, qtype = FORMATS[name]
    w = torch.from_numpy(x)
    rtn = fmt.qdq(w)[0]
    rows = w.reshape(-1, 32)
    shifted = rows + torch.randn(
        rows.shape, generator=torch.Generator().manual_seed(seed)
    ) * 0.3 * rows.abs().amax(-1, keepdim=True)
    moved = fmt.apply(shifted, fmt.fit(rows)).reshape(w.shape)
    for values in (rtn, moved):
        raw = fmt.encode(values).numpy()
        assert raw.dtype == np.uint8 and raw.shape == (
            x.shape[0],
            x.shape[1] // 32 * (18 if name == "q4_0" else 34),
        )
        back = gguf.quants.dequantize(raw, qtype).reshape(x.shape)
        assert np.array_equal(back, values.numpy())


def test_values_off_the_grid_and_partial_blocks_are_refused():
    fmt = get_format("q4_0")
    assert fmt.bits_per_element == 4.5 and get_format("q8_0").bits_per_element == 8.5
    w = fmt.qdq(torch.randn(2, 64))[0]
    w[1, 5] += 1e-3
    with pytest.raises(NotOnGridError, match="1 block"):
        fmt.encode(w)
    with pytest.raises(ValueError, match="whole blocks of 32"):
        fmt.encode(torch.zeros(2, 40))
    with pytest.raises(NotOnGridError, match="NaN"):
        fmt.encode(torch.full((1, 32), float("nan")))
    x = torch.randn(3, 40)  # a partial block is padded for simulation only
    assert torch.equal(fmt.qdq(x)[0][:, :32], fmt.qdq(x[:, :32].contiguous())[0])
    assert torch.equal(fmt.encode(torch.zeros(1, 32)), fmt.encode(torch.zeros(1, 32)))


@pytest.mark.parametrize("name", ["q8_0", "q4_0"])
def test_a_block_whose_scale_underflows_is_zero_and_stays_zero(name):
    """A block of float32 values near the smallest normal: d = amax / 127 (or / 8) is
    subnormal, 1 / d overflows and the stored fp16 d is 0, so llama.cpp dequantizes it to 0.
    The codes must not become NaN (inf * 0) on the way."""
    f = get_format(name)
    x = torch.tensor([[1.1754944e-38, 0.0, -3e-39] + [0.0] * 29])
    q = f.quantize(x)
    assert torch.equal(q, torch.zeros_like(x))
    assert torch.equal(f.quantize(q), q)
    assert f.encode(q).shape[-1] in (18, 34)
