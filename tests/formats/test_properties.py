"""Property tests over every catalogue format: idempotence, monotonicity, saturation."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from frugal.formats import CATALOGUE, get_format

finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)
tensors = arrays(np.float32, st.integers(1, 300), elements=finite)
names = st.sampled_from([n for n in CATALOGUE])


@settings(max_examples=300, deadline=None)
@given(names, tensors)
def test_idempotent(name, x):
    f = get_format(name)
    q = f.quantize(torch.from_numpy(x))
    assert torch.equal(f.quantize(q), q)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(
        [
            "fp8_e4m3",
            "fp8_e5m2",
            "fp6_e3m2",
            "fp4_e2m1",
            "bf16",
            "fp16",
            "int4",
            "int8",
            "mxfp4",
            "mxint4",
            "mxfp6",
            "nf4",
            "flex8+5",
        ]
    ),
    arrays(np.float32, st.integers(2, 32), elements=finite),
)
def test_monotone_within_a_shared_scale(name, x):
    # one block / group / tensor: the scale is shared, so rounding preserves order
    xs = torch.from_numpy(np.sort(x))
    q = get_format(name).quantize(xs)
    assert (q[1:] >= q[:-1]).all()


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp4_e2m1"]), tensors)
def test_saturation(name, x):
    f = get_format(name)
    q = f.quantize(torch.from_numpy(x) * 1e6)
    assert q.abs().max() <= f.spec.max


@settings(max_examples=200, deadline=None)
@given(names, st.integers(1, 5), st.integers(1, 300), st.integers(0, 2**31 - 1))
def test_fit_then_apply_equals_qdq(name, rows, cols, seed):
    """The fitted-parameter split GPTQ uses (`fit` on a group of columns, `apply` with the
    fitted parameters) rounds exactly as `qdq` does, a partial last group included (zero
    padding changes no scale)."""
    f = get_format(name)
    x = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * 3
    group = f.column_group(cols)
    parts = [
        f.apply(x[:, g : g + group], f.fit(x[:, g : g + group])) for g in range(0, cols, group)
    ]
    assert torch.equal(torch.cat(parts, 1), f.qdq(x)[0])
